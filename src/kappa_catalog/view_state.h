/*-------------------------------------------------------------------------
 *
 * view_state.h
 *	  A view's stored state: its open groups (kappa.view_state), the marker
 *	  that says they survived (kappa.view_state_marker), the workers'
 *	  finalization marks (kappa.view_marks) and dedup keys
 *	  (kappa.view_dedup).
 *
 * src/kappa_catalog/view_state.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_VIEW_STATE_H
#define KAPPA_VIEW_STATE_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/array.h"

/* A stored group: a row of kappa.view_state, as read back. */
typedef struct KappaStoredState
{
	bytea	   *group_key;		/* kappa_groups_encode_key's */
	TimestampTz window_start;
	TimestampTz window_end;
	ArrayType  *states;			/* bytea[]: each aggregate's, serialized */
} KappaStoredState;

/* Called for each stored dedup key (kappa_view_dedup_load). */
typedef void (*KappaDedupKeyCallback) (void *arg, int32 partition, char *key,
									   TimestampTz event_time);

/* kappa.view_state: rows are built with the row type's current descriptor */
extern void kappa_view_state_prepare(void);
extern Datum kappa_view_state_form_row(int32 view_id, bytea *group_key, TimestampTz window_start,
									   TimestampTz window_end, ArrayType *states);
extern void kappa_view_state_write(List *rows, bool upsert);
extern void kappa_view_state_delete(int32 view_id, int n, bytea *const *group_keys,
									const TimestampTz *window_starts);
extern void kappa_view_state_delete_finalized(int32 view_id, TimestampTz upto);
extern int64 kappa_view_state_read(int32 view_id, KappaStoredState **states);
extern int64 kappa_view_state_read_groups(int32 view_id, int n, bytea *const *group_keys,
										  const TimestampTz *window_starts,
										  KappaStoredState **states);
extern int64 kappa_view_state_read_keys(int32 view_id, int n, bytea *const *group_keys,
										KappaStoredState **states);

/* kappa.view_state_marker */
extern bool kappa_view_state_marker_exists(int32 view_id);
extern void kappa_view_state_marker_insert(int32 view_id);

/* kappa.view_marks: how far each worker of a shared view has finalized */
extern void kappa_view_marks_store(int32 view_id, int32 worker, TimestampTz finalized_upto);
extern void kappa_view_marks_read(int32 view_id, int32 nworkers, bool *all_workers,
								  TimestampTz *lowest, TimestampTz *highest);
extern TimestampTz kappa_view_marks_furthest(int32 view_id);

/* kappa.view_dedup: a segment per flush and partition */
extern void kappa_view_dedup_store(int32 view_id, int32 partition, TimestampTz newest, int n,
								   const char *const *keys, const TimestampTz *event_times);
extern void kappa_view_dedup_prune(int32 view_id, int32 partition, TimestampTz horizon);
extern void kappa_view_dedup_load(int32 view_id, KappaDedupKeyCallback callback, void *arg);
extern void kappa_view_dedup_forget(int32 view_id);

#endif							/* KAPPA_VIEW_STATE_H */
