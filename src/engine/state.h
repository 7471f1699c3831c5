/*-------------------------------------------------------------------------
 *
 * state.h
 *	  The open groups of a view: (key, window) -> partial aggregates.
 *
 * src/engine/state.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_STATE_H
#define KAPPA_STATE_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "agg/aggregate.h"
#include "engine/compile.h"

/*
 * A group: one row of the view.  For session views, every key has an
 * anchor group (keys only) whose sessions list holds the session groups.
 */
typedef struct KappaGroup
{
	uint32		hash;
	TimestampTz start;			/* window; DT_NOBEGIN for running views */
	TimestampTz end;			/* DT_NOEND for running views */
	Datum	   *keys;
	bool	   *key_nulls;
	Datum	   *states;
	bool	   *state_nulls;
	MemoryContext cxt;			/* keys and states live here */
	bool		dirty;			/* changed since the last flush */
	bool		stored;			/* has rows in the table and kappa.view_state */
	TimestampTz stored_start;	/* the bounds its rows were stored with */
	TimestampTz stored_end;
	List	   *sessions;		/* anchor of a session view: KappaGroup */
	struct KappaGroup *anchor;	/* session: its key's anchor */
} KappaGroup;

typedef struct KappaGroupTable KappaGroupTable;

/* Everything state.c needs to know of a view. */
typedef struct KappaStateSpec
{
	KappaViewSpec *spec;
	KappaAgg   *aggs;
	int			naggs;
	KappaAggContext *aggcx;
} KappaStateSpec;

extern KappaGroupTable *kappa_groups_create(KappaStateSpec *sspec, MemoryContext cxt);
extern KappaGroup *kappa_groups_lookup(KappaGroupTable *table, Datum *keys, bool *key_nulls,
									   TimestampTz start, TimestampTz end);
extern KappaGroup *kappa_groups_session(KappaGroupTable *table, Datum *keys, bool *key_nulls,
										TimestampTz ts, int64 gap);
extern void kappa_groups_remove(KappaGroupTable *table, KappaGroup *group);
extern List *kappa_groups_all(KappaGroupTable *table);
extern List *kappa_groups_take_dirty(KappaGroupTable *table);
extern List *kappa_groups_take_retired(KappaGroupTable *table);
extern long kappa_groups_count(KappaGroupTable *table);
extern bytea *kappa_groups_encode_key(KappaGroupTable *table, KappaGroup *group);
extern KappaGroup *kappa_groups_restore(KappaGroupTable *table, bytea *key,
										TimestampTz start, TimestampTz end);
extern KappaGroup *kappa_groups_merge(KappaGroupTable *table, bytea *key,
									  TimestampTz start, TimestampTz end);

#endif							/* KAPPA_STATE_H */
