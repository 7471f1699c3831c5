/*-------------------------------------------------------------------------
 *
 * poison.c
 *	  Events that fail: the error is the event's, never the stream's.
 *
 * Evaluating an event may fail in ways no check can foresee: a column
 * type's input function refuses the value (whatever its SQLSTATE), a
 * view's WHERE divides by zero, an aggregate overflows, a function raises.
 * Such an error must cost that event, for that view, and nothing else: the
 * stream and its other views go on.
 *
 * Catching an error safely takes a (sub)transaction, which costs too much
 * per event.  So the engine runs without one, and notes what it is
 * evaluating (the message, and the view or 0 for decoding); the caller
 * catches an error at its own level, asks kappa_engine_blame whose it is,
 * rolls back to the last flush, builds the engine again from what that
 * flush stored, and reads the messages since then again.  This time the
 * engine knows the poison: a message its stream cannot decode becomes a
 * dead letter (view 0), an event a view cannot apply is rejected by that
 * view (a dead letter with its view id), and the other views apply it.
 * Then it flushes soon (kappa_engine_flush_due), so that what is read
 * twice stays short.  Every poison is decided by evaluating the event, so
 * a replay or a check decides the same.
 *
 * An error is not the event's when it is about the server (no memory,
 * cancel, shutdown: kappa_error_is_transient), or when the same event
 * fails again although it is known: the caller then fails as before.  A
 * permission error of a view's code, and any error of the statement of a
 * lookup join (its table dropped, say), is the view's, not the event's:
 * the view is marked failed (KAPPA_BLAME_VIEW), and the others go on.
 *
 * A dead letter of the stream stays dead for every engine that reads its
 * offset again (a view catching up, a replay, a rebuild, a check): they
 * load the stream's dead letters into the set (kappa_poisons_load), until
 * kappa_retry_dead_letters (retry.c) forgets them and applies them, once.
 *
 * The set lives in the caller's memory context, across the engines it
 * builds; engines only read it, and note failed views in it.
 *
 * src/engine/poison.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "engine/engine_internal.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/dead_letters.h"

/* Where a poison event is in the log. */
typedef struct PoisonKey
{
	int64		offset;
	int32		partition;
} PoisonKey;

/* The poisons of one message: one per view that cannot apply it. */
typedef struct PoisonEntry
{
	PoisonKey	key;
	List	   *poisons;		/* KappaPoison */
} PoisonEntry;

struct KappaPoisons
{
	MemoryContext cxt;
	HTAB	   *events;			/* PoisonKey -> PoisonEntry */
	int64		count;
	/*
	 * Per partition, the largest offset that has a poison (-1: none): the
	 * worker knows its stream's dead letters, which lie behind what it
	 * reads, so a message past them needs no hash lookup.
	 */
	int64	   *max_offset;
	int			nmax;
	List	   *failed_views;	/* KappaFailedView, to mark at the next load */
};

/* Whether a message may have a poison at all: cheap, before the hash. */
static inline bool
poisons_may_have(KappaPoisons *poisons, int32 partition, int64 offset)
{
	return poisons != NULL && poisons->count > 0 && partition >= 0 &&
		partition < poisons->nmax && offset <= poisons->max_offset[partition];
}

/* Events known to fail: an empty set, in the current memory context. */
KappaPoisons *
kappa_poisons_create(void)
{
	KappaPoisons *poisons = palloc0(sizeof(KappaPoisons));
	HASHCTL		ctl;

	poisons->cxt = AllocSetContextCreate(CurrentMemoryContext, "kappa poisons",
										 ALLOCSET_SMALL_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(PoisonKey);
	ctl.entrysize = sizeof(PoisonEntry);
	ctl.hcxt = poisons->cxt;
	poisons->events = hash_create("kappa poisons", 64, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	return poisons;
}

/* Add a poison: a message that view_id (0: decoding) cannot take. */
static void
poisons_add(KappaPoisons *poisons, int32 partition, int64 offset, int32 view_id,
			const char *sqlstate, const char *reason)
{
	PoisonKey	key;
	PoisonEntry *entry;
	KappaPoison *poison;
	bool		found;
	MemoryContext old = MemoryContextSwitchTo(poisons->cxt);

	memset(&key, 0, sizeof(key));
	key.partition = partition;
	key.offset = offset;
	entry = hash_search(poisons->events, &key, HASH_ENTER, &found);
	if (!found)
		entry->poisons = NIL;
	poison = palloc(sizeof(KappaPoison));
	poison->view_id = view_id;
	strlcpy(poison->sqlstate, sqlstate, sizeof(poison->sqlstate));
	poison->reason = pstrdup(reason);
	entry->poisons = lappend(entry->poisons, poison);
	poisons->count++;
	if (partition >= poisons->nmax)
	{
		int			n = Max(partition + 1, 2 * poisons->nmax);

		poisons->max_offset = poisons->max_offset == NULL ?
			palloc(sizeof(int64) * n) : repalloc(poisons->max_offset, sizeof(int64) * n);
		for (int p = poisons->nmax; p < n; p++)
			poisons->max_offset[p] = -1;
		poisons->nmax = n;
	}
	poisons->max_offset[partition] = Max(poisons->max_offset[partition], offset);
	MemoryContextSwitchTo(old);
}

/*
 * The poison of a message for a view (0: for decoding it), or NULL.  As
 * cheap as a test while the set is empty, which it nearly always is.
 */
KappaPoison *
kappa_poison_find(KappaPoisons *poisons, int32 partition, int64 offset, int32 view_id)
{
	PoisonKey	key;
	PoisonEntry *entry;
	ListCell   *lc;

	if (!poisons_may_have(poisons, partition, offset))
		return NULL;
	memset(&key, 0, sizeof(key));
	key.partition = partition;
	key.offset = offset;
	entry = hash_search(poisons->events, &key, HASH_FIND, NULL);
	if (entry == NULL)
		return NULL;
	foreach(lc, entry->poisons)
	{
		KappaPoison *poison = lfirst(lc);

		if (poison->view_id == view_id)
			return poison;
	}
	return NULL;
}

/* Whether a message has any poison at all (for the engine's fast path). */
bool
kappa_poisons_any(KappaPoisons *poisons, int32 partition, int64 offset)
{
	PoisonKey	key;

	if (!poisons_may_have(poisons, partition, offset))
		return false;
	memset(&key, 0, sizeof(key));
	key.partition = partition;
	key.offset = offset;
	return hash_search(poisons->events, &key, HASH_FIND, NULL) != NULL;
}

/*
 * Forget the poison of a message for a view (0: for decoding it), if
 * known: kappa_retry_dead_letters evaluates the event again, and an error
 * then is the event's once more, not a known poison failing again.
 */
void
kappa_poisons_forget(KappaPoisons *poisons, int32 partition, int64 offset, int32 view_id)
{
	PoisonKey	key;
	PoisonEntry *entry;
	ListCell   *lc;

	if (!poisons_may_have(poisons, partition, offset))
		return;
	memset(&key, 0, sizeof(key));
	key.partition = partition;
	key.offset = offset;
	entry = hash_search(poisons->events, &key, HASH_FIND, NULL);
	if (entry == NULL)
		return;
	foreach(lc, entry->poisons)
	{
		KappaPoison *poison = lfirst(lc);

		if (poison->view_id == view_id)
		{
			entry->poisons = foreach_delete_current(entry->poisons, lc);
			poisons->count--;
			break;
		}
	}
	if (entry->poisons == NIL)
		(void) hash_search(poisons->events, &key, HASH_REMOVE, NULL);
}

/* Know a message as poison for a view (0: for decoding), unless known. */
void
kappa_poisons_note(KappaPoisons *poisons, int32 partition, int64 offset, int32 view_id,
				   const char *sqlstate, const char *reason)
{
	if (kappa_poison_find(poisons, partition, offset, view_id) == NULL)
		poisons_add(poisons, partition, offset, view_id, sqlstate, reason);
}

/*
 * Learn the events a view (0: the stream's decoding) already recorded as
 * failing, from kappa.dead_letters: reading history that was read before
 * (a rebuild, a check) then decides as it did, without failing again.
 */
void
kappa_poisons_load(KappaPoisons *poisons, int32 stream_id, int32 view_id)
{
	KappaCatalogAccess access;
	List	   *letters;
	ListCell   *lc;

	kappa_catalog_enter(&access);
	letters = kappa_dead_letters_of_view(stream_id, view_id);
	foreach(lc, letters)
	{
		KappaDeadLetter *letter = lfirst(lc);

		if (kappa_poison_find(poisons, letter->partition, letter->offset, view_id) == NULL)
			poisons_add(poisons, letter->partition, letter->offset, view_id,
						letter->sqlstate, letter->reason);
	}
	kappa_catalog_leave(&access);
}

/*
 * Whose error this is, that the caller caught while the engine processed a
 * message: the event's (recorded as a poison, for the engine the caller
 * builds next), a view's (noted as failed), or nobody's here (the caller
 * fails as it would have).
 */
KappaBlame
kappa_engine_blame(KappaEngine *engine, ErrorData *edata)
{
	const KappaMessage *m;
	int32		view_id;
	const char *field;
	char	   *reason;

	if (engine == NULL || engine->poisons == NULL || engine->blame_view < 0 ||
		engine->message == NULL || kappa_error_is_transient(edata->sqlerrcode))
		return KAPPA_BLAME_NONE;
	m = engine->message;
	view_id = engine->blame_view;
	if (view_id > 0 &&
		(edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE || engine->lookup_executing))
	{
		MemoryContext old = MemoryContextSwitchTo(engine->poisons->cxt);
		KappaFailedView *failed = palloc(sizeof(KappaFailedView));

		failed->view_id = view_id;
		failed->error = CopyErrorData();
		engine->poisons->failed_views = lappend(engine->poisons->failed_views, failed);
		MemoryContextSwitchTo(old);
		return KAPPA_BLAME_VIEW;
	}
	/* known already, and failing again: skipping it did not help */
	if (kappa_poison_find(engine->poisons, m->partition, m->offset, view_id) != NULL)
		return KAPPA_BLAME_NONE;
	reason = kappa_error_text(edata);
	if (view_id == 0 && (field = kappa_decoder_field(engine->decoder)) != NULL)
		reason = psprintf("field \"%s\": %s", field, reason);
	poisons_add(engine->poisons, m->partition, m->offset, view_id,
				unpack_sql_state(edata->sqlerrcode), reason);
	return KAPPA_BLAME_EVENT;
}

/* The views noted as failed since the last call, for the engine to mark. */
List *
kappa_poisons_take_failed(KappaPoisons *poisons)
{
	List	   *failed;

	if (poisons == NULL)
		return NIL;
	failed = poisons->failed_views;
	poisons->failed_views = NIL;
	return failed;
}
