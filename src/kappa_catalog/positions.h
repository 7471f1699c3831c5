/*-------------------------------------------------------------------------
 *
 * positions.h
 *	  Positions and counts: a stream's in each partition
 *	  (kappa.partitions), and each view's (kappa.view_partitions).
 *
 * src/kappa_catalog/positions.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_POSITIONS_H
#define KAPPA_POSITIONS_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

/*
 * What a stream's flush stores for one partition: its position, and the
 * counts since its last flush, which are added to the stored ones.
 */
typedef struct KappaStreamProgress
{
	int64		next_offset;
	int64		end_offset;		/* the log's end; < 0: unknown */
	int64		consumed;
	int64		dead_lettered;
	TimestampTz last_event_at;	/* 0: none since the last flush */
	double		events_per_s;
	double		flush_ms;
	TimestampTz last_message_at;	/* 0: none */
} KappaStreamProgress;

/*
 * What a view's flush stores for one partition: its position, and the
 * counts since its last flush, which are added to the stored ones.
 */
typedef struct KappaViewProgress
{
	int64		next_offset;
	TimestampTz max_event_time; /* DT_NOBEGIN: none */
	int64		first_offset;	/* where the view began; < 0: not yet */
	int64		filtered;
	int64		duplicate;
	int64		delivered;
	int64		applied;
	int64		late;
	int64		rejected;
} KappaViewProgress;

/*
 * A stored position, of a stream or a view, in one partition: the columns
 * the function that returns it reads; nulls as in KappaViewProgress.
 */
typedef struct KappaPosition
{
	int32		partition;
	int64		next_offset;
	int64		first_offset;	/* < 0: null */
	TimestampTz max_event_time; /* DT_NOBEGIN: null */
	TimestampTz last_message_at;	/* the stream's, beside a view's; DT_NOBEGIN: null */
} KappaPosition;

/* kappa.partitions: the stream's */
extern void kappa_positions_store_stream(int32 stream_id, int32 partition,
										 const KappaStreamProgress *progress);
extern void kappa_positions_count_lost(int32 stream_id, int32 partition, int64 next_offset,
									   int64 lost);
extern List *kappa_positions_load_stream(int32 stream_id);

/* kappa.view_partitions: a view's */
extern void kappa_positions_store_view(int32 view_id, int32 partition,
									   const KappaViewProgress *progress);
extern void kappa_positions_raise_final_upto(int32 view_id, TimestampTz final_upto);
extern List *kappa_positions_load_view(int32 view_id);
extern List *kappa_positions_view_watermarks(int32 view_id, int32 stream_id);
extern List *kappa_positions_view_first_offsets(int32 view_id);
extern List *kappa_positions_view_first_offsets_in_snapshot(int32 view_id);
extern List *kappa_positions_view_spans_in_snapshot(int32 view_id);
extern void kappa_positions_forget_view(int32 view_id);
extern void kappa_positions_restart_view(int32 view_id, int32 partition, int64 first_offset);
extern bool kappa_positions_caught_up(int32 stream_id, int n, const int32 *partitions,
									  const int64 *ends);

#endif							/* KAPPA_POSITIONS_H */
