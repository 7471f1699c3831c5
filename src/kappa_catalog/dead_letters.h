/*-------------------------------------------------------------------------
 *
 * dead_letters.h
 *	  A stream's dead letters and its views' kept late events.
 *
 * src/kappa_catalog/dead_letters.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_DEAD_LETTERS_H
#define KAPPA_DEAD_LETTERS_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/palloc.h"

/*
 * A row of kappa.dead_letters as a read returns it: the fields its
 * statement reads (each function says which), the others 0, -1 or NULL.
 */
typedef struct KappaDeadLetter
{
	int32		partition;
	int64		offset;
	int32		view_id;		/* 0: the stream could not decode it */
	int64		broker_time_ms; /* since the Unix epoch; -1 if none */
	bytea	   *key;			/* or NULL */
	bytea	   *payload;		/* or NULL */
	char	   *sqlstate;
	char	   *reason;
} KappaDeadLetter;

/* Insert one, unless it is there (after a crash); broker_time 0: none. */
extern void kappa_dead_letters_insert(int32 stream_id, int32 view_id, int32 partition,
									  int64 offset, TimestampTz broker_time,
									  bytea *key, bytea *payload,
									  const char *reason, const char *sqlstate);
/* A retried letter that failed again: its new reason. */
extern void kappa_dead_letters_set_reason(int32 stream_id, int32 partition, int64 offset,
										  int32 view_id, const char *reason,
										  const char *sqlstate);
/* A retried letter whose event went to its views. */
extern void kappa_dead_letters_delete(int32 stream_id, int32 partition, int64 offset,
									  int32 view_id);
extern List *kappa_dead_letters_of_view(int32 stream_id, int32 view_id);
extern List *kappa_dead_letters_to_retry(int32 stream_id, TimestampTz since,
										 TimestampTz until, MemoryContext cxt);

/* Keep a late event of a view, unless it is kept already (after a crash). */
extern void kappa_late_events_insert(int32 view_id, int32 partition, int64 offset,
									 TimestampTz event_time, bytea *payload);

#endif							/* KAPPA_DEAD_LETTERS_H */
