/*-------------------------------------------------------------------------
 *
 * gaps.h
 *	  Offsets a stream lost (kappa.gaps), and those its views never saw
 *	  (kappa.view_gaps).
 *
 * src/kappa_catalog/gaps.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_GAPS_H
#define KAPPA_GAPS_H

#include "nodes/pg_list.h"

/* Offsets [from, to) of a partition. */
typedef struct KappaOffsetRange
{
	int64		from;
	int64		to;				/* exclusive */
} KappaOffsetRange;

/* Whether a gap of the partition that holds offset was accepted. */
extern bool kappa_gaps_accepted(int32 stream_id, int32 partition, int64 offset);
/* Delete the partition's gaps not accepted that begin at from or later. */
extern void kappa_gaps_forget(int32 stream_id, int32 partition, int64 from);
extern void kappa_gaps_record(int32 stream_id, int32 partition, int64 from, int64 to,
							  bool accepted);
/* Accept the stream's gaps; returns how many offsets they hold. */
extern int64 kappa_gaps_accept(int32 stream_id);

/* Record offsets a view missed, growing a range recorded from the same from. */
extern void kappa_view_gaps_record(int32 view_id, int32 partition, int64 from, int64 to);
/* Insert offsets a new version of a view (kappa_replay) went on without. */
extern void kappa_view_gaps_insert(int32 view_id, int32 partition, int64 from, int64 to);
extern List *kappa_view_gaps_of_partition(int32 view_id, int32 partition);

#endif							/* KAPPA_GAPS_H */
