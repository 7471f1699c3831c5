/*-------------------------------------------------------------------------
 *
 * stream_origin.h
 *	  Streams restored from a dump: their origin, and the dump's sentinel
 *	  (kappa.zz_dump_sentinel) that tells when the restore is complete.
 *
 * src/kappa_catalog/stream_origin.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_STREAM_ORIGIN_H
#define KAPPA_STREAM_ORIGIN_H

#include "nodes/pg_list.h"

/* A stream of another origin, waiting for its dump's sentinel. */
typedef struct KappaStreamWaiting
{
	int32		stream_id;
	char	   *name;
} KappaStreamWaiting;

/* Whether a restore or an upgrade left anything of another origin. */
extern bool kappa_dump_sentinel_pending(const char *origin);
/* Adopt the streams whose sentinel arrived; returns their names. */
extern List *kappa_streams_adopt(const char *origin);
extern List *kappa_streams_waiting(const char *origin);
/* Keep the sentinel of this origin alone, and those still waited for. */
extern void kappa_dump_sentinel_reset(const char *origin);

#endif							/* KAPPA_STREAM_ORIGIN_H */
