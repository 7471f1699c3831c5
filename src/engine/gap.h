/*-------------------------------------------------------------------------
 *
 * gap.h
 *	  Offsets a stream lost, recorded and accepted or not.
 *
 * src/engine/gap.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_GAP_H
#define KAPPA_GAP_H

#include "nodes/pg_list.h"

#include "kappa_catalog/stream.h"

extern bool kappa_gap_accepted(KappaStream *stream, int32 partition, int64 from);
extern void kappa_gap_forget(KappaStream *stream, int32 partition, int64 from);
extern void kappa_gap_record(KappaStream *stream, int32 partition, int64 from, int64 to,
							 bool accepted);
extern void kappa_gap_skip(KappaStream *stream, int32 partition, int64 to, int64 stream_lost,
						   List *gaps);

#endif							/* KAPPA_GAP_H */
