/*-------------------------------------------------------------------------
 *
 * state.c
 *	  The open groups of a view: (key, window) -> partial aggregates.
 *
 * A view's worker keeps the partial aggregate states of every open group
 * in memory, in a hash table keyed by the GROUP BY values and the window's
 * start.  Keys are hashed and compared with the hash and equality
 * functions of the GROUP BY operators, as a hashed aggregate does, so two
 * values are one group exactly when GROUP BY says so (1.0 and 1.00, say).
 *
 * Each group of a windowed view has a small memory context of its own, for
 * its keys and states, deleted when its window is finalized: the memory of
 * a view follows its open windows, not the events it has seen.  Groups of
 * a running view live in one context, since they never close.
 *
 * Session views keep, per key, an anchor group that lists the key's open
 * sessions.  An event opens [ts, ts + gap); every session it overlaps is
 * merged into one, with the aggregates' combine functions, and the merged
 * ones are retired: their rows must leave the view at the next flush.
 *
 * The engine (engine.c) owns the table's life; it flushes dirty groups,
 * deletes retired ones and removes finalized ones.  Nothing here is shared
 * between processes.
 *
 * src/engine/state.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "nodes/nodeFuncs.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "engine/state.h"

/* A hash table entry: a group, found by its keys and window start. */
typedef struct GroupEntry
{
	KappaGroup *group;
	uint32		hash;
	char		status;
} GroupEntry;

struct KappaGroupTable;
static bool group_equal(struct KappaGroupTable *table, KappaGroup *a, KappaGroup *b);

#define SH_PREFIX grouptab
#define SH_ELEMENT_TYPE GroupEntry
#define SH_KEY_TYPE KappaGroup *
#define SH_KEY group
#define SH_HASH_KEY(tb, key) ((key)->hash)
#define SH_EQUAL(tb, a, b) group_equal((struct KappaGroupTable *) (tb)->private_data, a, b)
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_STORE_HASH
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

struct KappaGroupTable
{
	KappaStateSpec *sspec;
	int			nkeys;
	FmgrInfo   *hash_fns;
	FmgrInfo   *eq_fns;
	Oid		   *collations;
	int16	   *typlens;
	bool	   *typbyvals;
	bool		sessions;
	grouptab_hash *hash;
	MemoryContext cxt;			/* the table, and running views' groups */
	List	   *dirty;			/* groups changed since the last flush */
	List	   *retired;		/* merged-away sessions whose rows must go */
};

static uint32 hash_keys(KappaGroupTable *table, Datum *keys, bool *nulls, TimestampTz start);
static KappaGroup *new_group(KappaGroupTable *table, Datum *keys, bool *key_nulls,
							 TimestampTz start, TimestampTz end, KappaGroup *anchor);
static void mark_dirty(KappaGroupTable *table, KappaGroup *group);

/* A table for the groups of a view, in cxt. */
KappaGroupTable *
kappa_groups_create(KappaStateSpec *sspec, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	KappaGroupTable *table = palloc0(sizeof(KappaGroupTable));
	int			n = list_length(sspec->spec->keys);
	ListCell   *lc;
	int			i = 0;

	table->sspec = sspec;
	table->nkeys = n;
	table->cxt = cxt;
	table->sessions = (sspec->spec->window.kind == KAPPA_WINDOW_SESSION);
	table->hash_fns = palloc0(sizeof(FmgrInfo) * Max(n, 1));
	table->eq_fns = palloc0(sizeof(FmgrInfo) * Max(n, 1));
	table->collations = palloc0(sizeof(Oid) * Max(n, 1));
	table->typlens = palloc0(sizeof(int16) * Max(n, 1));
	table->typbyvals = palloc0(sizeof(bool) * Max(n, 1));
	foreach(lc, sspec->spec->keys)
	{
		Node	   *key = lfirst(lc);
		Oid			eqop = list_nth_oid(sspec->spec->key_eqops, i);
		Oid			type = exprType(key);
		RegProcedure hashfn;

		if (!get_op_hash_functions(eqop, &hashfn, NULL))
			elog(ERROR, "no hash function for operator %u", eqop);
		fmgr_info(hashfn, &table->hash_fns[i]);
		fmgr_info(get_opcode(eqop), &table->eq_fns[i]);
		table->collations[i] = exprCollation(key);
		get_typlenbyval(type, &table->typlens[i], &table->typbyvals[i]);
		i++;
	}
	table->hash = grouptab_create(cxt, 256, table);
	MemoryContextSwitchTo(old);
	return table;
}

/* The hash of a group's keys and window start (0 for an anchor). */
static uint32
hash_keys(KappaGroupTable *table, Datum *keys, bool *nulls, TimestampTz start)
{
	uint32		h = murmurhash32((uint32) start) ^ murmurhash32((uint32) (start >> 32));

	for (int i = 0; i < table->nkeys; i++)
	{
		uint32		kh = 0;

		if (!nulls[i])
			kh = DatumGetUInt32(FunctionCall1Coll(&table->hash_fns[i],
												  table->collations[i], keys[i]));
		h = hash_combine(h, kh);
	}
	return h;
}

/* Whether two groups have equal keys (as GROUP BY sees it) and start. */
static bool
group_equal(KappaGroupTable *table, KappaGroup *a, KappaGroup *b)
{
	if (a->start != b->start)
		return false;
	for (int i = 0; i < table->nkeys; i++)
	{
		if (a->key_nulls[i] || b->key_nulls[i])
		{
			if (a->key_nulls[i] != b->key_nulls[i])
				return false;
			continue;
		}
		if (!DatumGetBool(FunctionCall2Coll(&table->eq_fns[i], table->collations[i],
											a->keys[i], b->keys[i])))
			return false;
	}
	return true;
}

/*
 * A new group with copies of the keys (or its anchor's) and initial
 * states; windowed groups get a memory context of their own.
 */
static KappaGroup *
new_group(KappaGroupTable *table, Datum *keys, bool *key_nulls,
		  TimestampTz start, TimestampTz end, KappaGroup *anchor)
{
	KappaStateSpec *sspec = table->sspec;
	bool		running = (sspec->spec->window.kind == KAPPA_WINDOW_NONE);
	MemoryContext cxt = running ? table->cxt :
		AllocSetContextCreate(table->cxt, "kappa group", ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	KappaGroup *group = palloc0(sizeof(KappaGroup));

	group->cxt = cxt;
	group->start = start;
	group->end = end;
	group->anchor = anchor;
	if (anchor)
	{
		group->keys = anchor->keys;
		group->key_nulls = anchor->key_nulls;
	}
	else
	{
		group->keys = palloc(sizeof(Datum) * Max(table->nkeys, 1));
		group->key_nulls = palloc(sizeof(bool) * Max(table->nkeys, 1));
		for (int i = 0; i < table->nkeys; i++)
		{
			group->key_nulls[i] = key_nulls[i];
			group->keys[i] = key_nulls[i] ? (Datum) 0 :
				datumCopy(keys[i], table->typbyvals[i], table->typlens[i]);
		}
		group->hash = hash_keys(table, group->keys, group->key_nulls,
								table->sessions ? 0 : start);
	}
	group->states = palloc(sizeof(Datum) * Max(sspec->naggs, 1));
	group->state_nulls = palloc(sizeof(bool) * Max(sspec->naggs, 1));
	for (int i = 0; i < sspec->naggs; i++)
		kappa_agg_initial(&sspec->aggs[i], cxt, &group->states[i], &group->state_nulls[i]);
	MemoryContextSwitchTo(old);
	return group;
}

/* Note that a group changed, for the next flush. */
static void
mark_dirty(KappaGroupTable *table, KappaGroup *group)
{
	if (!group->dirty)
	{
		MemoryContext old = MemoryContextSwitchTo(table->cxt);

		group->dirty = true;
		table->dirty = lappend(table->dirty, group);
		MemoryContextSwitchTo(old);
	}
}

/*
 * The group of the given keys and window (tumble, hop, running), created
 * if new, and marked dirty: the caller is about to advance it.
 */
KappaGroup *
kappa_groups_lookup(KappaGroupTable *table, Datum *keys, bool *key_nulls,
					TimestampTz start, TimestampTz end)
{
	KappaGroup	probe;
	GroupEntry *entry;
	bool		found;

	probe.keys = keys;
	probe.key_nulls = key_nulls;
	probe.start = start;
	probe.hash = hash_keys(table, keys, key_nulls, start);
	entry = grouptab_lookup(table->hash, &probe);
	if (entry == NULL)
	{
		KappaGroup *group = new_group(table, keys, key_nulls, start, end, NULL);

		entry = grouptab_insert(table->hash, group, &found);
		Assert(!found);
	}
	mark_dirty(table, entry->group);
	return entry->group;
}

/*
 * The session an event at ts joins, with every session of the key that
 * [ts, ts + gap) overlaps merged into it, and its bounds extended.  Marked
 * dirty: the caller is about to advance it.
 */
KappaGroup *
kappa_groups_session(KappaGroupTable *table, Datum *keys, bool *key_nulls,
					 TimestampTz ts, int64 gap)
{
	KappaStateSpec *sspec = table->sspec;
	KappaGroup	probe;
	GroupEntry *entry;
	KappaGroup *anchor;
	KappaGroup *session = NULL;
	ListCell   *lc;
	bool		found;

	probe.keys = keys;
	probe.key_nulls = key_nulls;
	probe.start = 0;
	probe.hash = hash_keys(table, keys, key_nulls, 0);
	entry = grouptab_lookup(table->hash, &probe);
	if (entry == NULL)
	{
		anchor = new_group(table, keys, key_nulls, 0, 0, NULL);
		entry = grouptab_insert(table->hash, anchor, &found);
	}
	anchor = entry->group;

	foreach(lc, anchor->sessions)
	{
		KappaGroup *s = lfirst(lc);

		if (!(ts < s->end && ts + gap > s->start))
			continue;
		if (session == NULL)
		{
			session = s;
			continue;
		}
		/* the event bridges two sessions: merge s into the first */
		for (int i = 0; i < sspec->naggs; i++)
			kappa_agg_combine(&sspec->aggs[i], sspec->aggcx, session->cxt,
							  &session->states[i], &session->state_nulls[i],
							  s->states[i], s->state_nulls[i]);
		session->start = Min(session->start, s->start);
		session->end = Max(session->end, s->end);
		anchor->sessions = foreach_delete_current(anchor->sessions, lc);
		if (s->dirty)
		{
			table->dirty = list_delete_ptr(table->dirty, s);
			s->dirty = false;
		}
		{
			/* events run in short-lived memory; the table's lists may not */
			MemoryContext old = MemoryContextSwitchTo(table->cxt);

			table->retired = lappend(table->retired, s);
			MemoryContextSwitchTo(old);
		}
	}
	if (session == NULL)
	{
		MemoryContext old;

		session = new_group(table, keys, key_nulls, ts, ts + gap, anchor);
		old = MemoryContextSwitchTo(table->cxt);
		anchor->sessions = lappend(anchor->sessions, session);
		MemoryContextSwitchTo(old);
	}
	session->start = Min(session->start, ts);
	session->end = Max(session->end, ts + gap);
	mark_dirty(table, session);
	return session;
}

/*
 * Forget a group (its window was finalized, or it was retired and
 * flushed), freeing its memory.
 */
void
kappa_groups_remove(KappaGroupTable *table, KappaGroup *group)
{
	if (group->anchor)
	{
		KappaGroup *anchor = group->anchor;

		anchor->sessions = list_delete_ptr(anchor->sessions, group);
		if (anchor->sessions == NIL)
		{
			grouptab_delete(table->hash, anchor);
			MemoryContextDelete(anchor->cxt);
		}
	}
	else if (table->sspec->spec->window.kind != KAPPA_WINDOW_SESSION)
		grouptab_delete(table->hash, group);
	if (group->dirty)
		table->dirty = list_delete_ptr(table->dirty, group);
	if (group->cxt != table->cxt)
		MemoryContextDelete(group->cxt);
}

/* Every open group (for session views: every open session). */
List *
kappa_groups_all(KappaGroupTable *table)
{
	List	   *all = NIL;
	grouptab_iterator it;
	GroupEntry *entry;

	grouptab_start_iterate(table->hash, &it);
	while ((entry = grouptab_iterate(table->hash, &it)) != NULL)
	{
		if (table->sessions)
			all = list_concat(all, entry->group->sessions);
		else
			all = lappend(all, entry->group);
	}
	return all;
}

/* The groups changed since the last call, now clean again. */
List *
kappa_groups_take_dirty(KappaGroupTable *table)
{
	List	   *dirty = table->dirty;
	ListCell   *lc;

	foreach(lc, dirty)
		((KappaGroup *) lfirst(lc))->dirty = false;
	table->dirty = NIL;
	return dirty;
}

/* The sessions merged away since the last call; the caller removes them. */
List *
kappa_groups_take_retired(KappaGroupTable *table)
{
	List	   *retired = table->retired;

	table->retired = NIL;
	return retired;
}

/* How many groups (for session views: keys) are open. */
long
kappa_groups_count(KappaGroupTable *table)
{
	return (long) table->hash->members;
}

/*
 * A group's keys as bytes, to identify its stored state: per key a null
 * flag, then its stored form (kappa_datum_append).
 */
bytea *
kappa_groups_encode_key(KappaGroupTable *table, KappaGroup *group)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ);
	for (int i = 0; i < table->nkeys; i++)
	{
		appendStringInfoChar(&buf, group->key_nulls[i] ? 'n' : 'v');
		if (!group->key_nulls[i])
			kappa_datum_append(&buf, group->keys[i], table->typlens[i], table->typbyvals[i]);
	}
	SET_VARSIZE(buf.data, buf.len);
	return (bytea *) buf.data;
}

/*
 * Recreate a stored group from its encoded keys and bounds; the caller
 * restores its states.  Returns the group, dirty-free and marked stored.
 */
KappaGroup *
kappa_groups_restore(KappaGroupTable *table, bytea *key, TimestampTz start, TimestampTz end)
{
	KappaGroup *group = kappa_groups_merge(table, key, start, end);

	group->start = start;
	group->end = end;
	group->stored = true;
	group->stored_start = start;
	group->stored_end = end;
	(void) kappa_groups_take_dirty(table);
	return group;
}

/*
 * The group a stored one, given by its encoded keys and bounds, merges
 * into: the group of the same keys and window, or for session views the
 * session every session of the key that [start, end) overlaps merges into
 * (as if one event spanned it).  New groups are created empty.  Marked
 * dirty; the caller combines the stored states into it.
 */
KappaGroup *
kappa_groups_merge(KappaGroupTable *table, bytea *key, TimestampTz start, TimestampTz end)
{
	Datum	   *keys = palloc0(sizeof(Datum) * Max(table->nkeys, 1));
	bool	   *nulls = palloc0(sizeof(bool) * Max(table->nkeys, 1));
	const char *p = VARDATA_ANY(key);
	KappaGroup *group;

	for (int i = 0; i < table->nkeys; i++)
	{
		nulls[i] = (*p++ == 'n');
		if (!nulls[i])
			keys[i] = kappa_datum_read(&p, table->typlens[i], table->typbyvals[i]);
	}
	if (table->sessions)
		group = kappa_groups_session(table, keys, nulls, start, end - start);
	else
		group = kappa_groups_lookup(table, keys, nulls, start, end);
	return group;
}
