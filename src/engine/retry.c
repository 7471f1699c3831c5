/*-------------------------------------------------------------------------
 *
 * retry.c
 *	  kappa_retry_dead_letters: dead letters decoded and applied again.
 *
 * A dead letter is a message the stream could not decode (view_id 0) or
 * an event a view could not evaluate (view_id: that view).  Once the cause
 * is mended (a type's input function, or a domain's constraint, accepts
 * the value now; a function a view calls no longer fails), the stream's
 * owner asks for its dead letters to be tried again.  They are decoded
 * with the stream's definition as it is now and, where that works, go to
 * their views as any event goes: through dedup, the WHERE clause and
 * lateness against the views' state now.  Those that fail again stay, with
 * the new reason.
 *
 * The views' state in memory belongs to the stream's worker, so the
 * calling backend applies nothing itself: it places a request in the
 * worker's slot (shmem.h) and waits, as kappa_wait does, bounded.  The
 * worker takes the request at its next flush (kappa_retry_apply, called
 * before kappa_engine_flush): it reads the dead letters, runs each through
 * kappa_engine_retry, and the flush then writes the views' rows, states
 * and positions and deletes the letters applied (or updates those that
 * failed again) in one transaction.  So each letter is applied once: a
 * crash before the commit leaves every letter in place and nothing
 * applied, one after it leaves none of them.  After the commit the worker
 * answers in the slot (kappa_retry_report).
 *
 * An error while retrying (an input function, a view's code) is the
 * event's, as any poison: the worker goes back to its last flush, and the
 * next flush carries the request out again, now knowing that poison, which
 * is then counted still dead.  Only the first attempt of a request forgets
 * what the worker knew of the letters as poisons.
 *
 * Rights: only the stream's owner (or a member of the owning role, or a
 * superuser) may retry: the views it changes read the owner's stream, and
 * the letters hold the owner's data.  The function is granted to
 * kappa_admin, as the stream functions are.
 *
 * src/engine/retry.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "engine/engine.h"
#include "engine/retry.h"
#include "guc.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/dead_letters.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view_status.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kappa_retry_dead_letters);

/*
 * The worker's side: the request its current flush carries out, what it
 * came to so far, and which request already forgot its letters' poisons.
 * A worker serves one stream, so one of each for the process's life.
 */
static uint32 retry_current = 0;
static uint32 retry_forgotten = 0;
static int64 retry_applied = 0;
static int64 retry_late = 0;
static int64 retry_still_dead = 0;

static int	retry_find_slot(int32 stream_id, pid_t *pid);
static void retry_cancel(int slot_index, uint32 id);

/*
 * kappa_retry_dead_letters(stream, since, until, timeout) returns
 * (applied, late, still_dead): the dead letters of the stream whose broker
 * time is in [since, until) (null: unbounded; a letter without a broker
 * time only when both are null), tried again by the stream's worker.
 */
Datum
kappa_retry_dead_letters(PG_FUNCTION_ARGS)
{
	KappaStream *stream;
	char	   *name;
	TimestampTz since = PG_ARGISNULL(1) ? DT_NOBEGIN : PG_GETARG_TIMESTAMPTZ(1);
	TimestampTz until = PG_ARGISNULL(2) ? DT_NOEND : PG_GETARG_TIMESTAMPTZ(2);
	Interval   *timeout;
	TimestampTz deadline;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int			slot_index;
	pid_t		pid;
	volatile uint32 id = 0;
	volatile bool done = false;
	volatile bool taken = false;
	KappaWorkerSlot *slot;

	kappa_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream must not be null")));
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("timeout must not be null")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	timeout = PG_GETARG_INTERVAL_P(3);

	stream = kappa_stream_load(name);
	if (!has_privs_of_role(GetUserId(), stream->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of stream \"%s\"", name),
				 errdetail("Retrying dead letters changes the views of the stream's owner with the owner's data.")));
	if (since >= until)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("since must be before until"),
				 errdetail("The dead letters retried are those whose broker time is at or after since and before until.")));
	if (kappa_workers_per_stream > 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot retry dead letters while kappa.workers_per_stream is %d",
						kappa_workers_per_stream),
				 errdetail("Retrying dead letters is carried out by a stream's only worker."),
				 errhint("Set kappa.workers_per_stream to 1 for the retry.")));

	/* a view being rebuilt reads the letters as dead: it would miss them */
	{
		if (kappa_views_any_replaying(stream->id))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("a view of stream \"%s\" is being replayed", name),
					 errdetail("The replay reads the stream's dead letters as dead, and would miss those applied meanwhile."),
					 errhint("Retry once kappa_replay has finished.")));
	}

	slot_index = retry_find_slot(stream->id, &pid);
	if (slot_index < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stream \"%s\" has no running worker", name),
				 errdetail("The stream's worker applies its dead letters to the views, whose state it keeps."),
				 errhint("kappa_workers says why the worker is not running (kappa.enabled, its last error); call again once it runs.")));
	slot = kappa_slot(slot_index);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   (timeout->time + (int64) timeout->day * USECS_PER_DAY) / 1000);

	PG_TRY();
	{
		/* place the request once no other is pending, then wait for it */
		for (;;)
		{
			SpinLockAcquire(&slot->mutex);
			if (!slot->in_use || slot->stream_id != stream->id)
			{
				SpinLockRelease(&slot->mutex);
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("the worker of stream \"%s\" stopped", name),
						 errhint("Call again once it runs.")));
			}
			if (id == 0 && slot->retry_id == 0)
			{
				id = ++slot->retry_next;
				if (id == 0)
					id = ++slot->retry_next;
				slot->retry_id = id;
				slot->retry_since = since;
				slot->retry_until = until;
			}
			if (id != 0)
			{
				done = (slot->retry_done == id);
				taken = (slot->retry_taken == id);
				if (done)
				{
					values[0] = Int64GetDatum(slot->retry_applied);
					values[1] = Int64GetDatum(slot->retry_late);
					values[2] = Int64GetDatum(slot->retry_still_dead);
				}
			}
			SpinLockRelease(&slot->mutex);
			if (done || GetCurrentTimestamp() >= deadline)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 50, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		retry_cancel(slot_index, id);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!done)
	{
		retry_cancel(slot_index, id);
		if (id != 0 && taken)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("the worker of stream \"%s\" did not finish the retry within the timeout", name),
					 errdetail("It had begun: it commits all of it or, if it fails, none of it."),
					 errhint("kappa.dead_letters shows what is left; call again, with a longer timeout, to retry that.")));
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("the worker of stream \"%s\" did not take the retry within the timeout", name),
				 errdetail("%s", id == 0 ? "Another retry of the stream was pending all along." :
						   "Nothing was retried."),
				 errhint("Call again, with a longer timeout.")));
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* The slot of the stream's running worker, and its pid; -1 if none. */
pg_noinline static int
retry_find_slot(int32 stream_id, pid_t *pid)
{
	int			found = -1;

	for (int i = 0; i < kappa_shared->nslots && found < 0; i++)
	{
		KappaWorkerSlot *slot = kappa_slot(i);

		SpinLockAcquire(&slot->mutex);
		if (slot->in_use && slot->stream_id == stream_id && slot->pid != 0 &&
			(slot->state == KAPPA_WORKER_RUNNING || slot->state == KAPPA_WORKER_STALLED ||
			 slot->state == KAPPA_WORKER_CONNECTING))
		{
			found = i;
			*pid = slot->pid;
		}
		SpinLockRelease(&slot->mutex);
	}
	return found;
}

/*
 * Withdraw a request the caller no longer waits for, unless the worker has
 * taken it: then it is carried out (all or nothing) and nobody hears of it.
 */
static void
retry_cancel(int slot_index, uint32 id)
{
	KappaWorkerSlot *slot = kappa_slot(slot_index);

	if (id == 0)
		return;
	SpinLockAcquire(&slot->mutex);
	if (slot->retry_id == id && slot->retry_taken != id)
		slot->retry_id = 0;
	SpinLockRelease(&slot->mutex);
}

/* Whether a retry waits for the worker of a slot (a flush is due then). */
bool
kappa_retry_pending(int slot_index)
{
	KappaWorkerSlot *slot = kappa_slot(slot_index);
	bool		pending;

	SpinLockAcquire(&slot->mutex);
	pending = (slot->retry_id != 0 && slot->retry_done != slot->retry_id);
	SpinLockRelease(&slot->mutex);
	return pending;
}

/*
 * The worker, in the transaction of a flush, before kappa_engine_flush:
 * carry out the pending request, if any.  Each dead letter in the
 * request's bounds, of a partition the engine consumes and (a view's) of a
 * view it runs, goes through kappa_engine_retry, in log order; the flush
 * that follows deletes or updates it.
 */
void
kappa_retry_apply(int slot_index, KappaEngine *engine, KappaStream *stream,
				  KappaPoisons *poisons)
{
	KappaWorkerSlot *slot = kappa_slot(slot_index);
	uint32		id;
	TimestampTz since;
	TimestampTz until;
	KappaCatalogAccess catalog;
	MemoryContext cxt;
	MemoryContext old;
	List	   *rows;
	List	   *letters = NIL;
	ListCell   *lc;

	SpinLockAcquire(&slot->mutex);
	id = (slot->retry_done != slot->retry_id) ? slot->retry_id : 0;
	since = slot->retry_since;
	until = slot->retry_until;
	if (id != 0)
		slot->retry_taken = id;
	SpinLockRelease(&slot->mutex);
	retry_current = id;
	retry_applied = retry_late = retry_still_dead = 0;
	if (id == 0)
		return;

	/*
	 * The definition as it is now: the flush's transaction may have begun
	 * before the domain or type that rejected the letters was changed.
	 */
	AcceptInvalidationMessages();

	/* the letters, in memory that an error takes with the transaction */
	cxt = AllocSetContextCreate(TopTransactionContext, "kappa retry", ALLOCSET_DEFAULT_SIZES);
	kappa_catalog_enter(&catalog);
	rows = kappa_dead_letters_to_retry(stream->id, since, until, cxt);
	kappa_catalog_leave(&catalog);
	old = MemoryContextSwitchTo(cxt);
	foreach(lc, rows)
	{
		KappaDeadLetter *row = lfirst(lc);
		KappaMessage *m = palloc0(sizeof(KappaMessage));
		int32	   *view_id = palloc(sizeof(int32));

		m->partition = row->partition;
		m->offset = row->offset;
		*view_id = row->view_id;
		m->timestamp_ms = row->broker_time_ms;
		if (row->key != NULL)
		{
			m->key = VARDATA(row->key);
			m->key_len = VARSIZE(row->key) - VARHDRSZ;
		}
		if (row->payload != NULL)
		{
			m->payload = VARDATA(row->payload);
			m->len = VARSIZE(row->payload) - VARHDRSZ;
		}
		letters = lappend(letters, list_make2(m, view_id));
	}
	MemoryContextSwitchTo(old);

	/*
	 * The first attempt tries what is known to fail, too: all of it is
	 * forgotten before any is tried, so that an attempt that fails on one
	 * letter does not make the next forget it again.
	 */
	if (retry_forgotten != id)
	{
		foreach(lc, letters)
		{
			List	   *letter = lfirst(lc);
			KappaMessage *m = linitial(letter);

			kappa_poisons_forget(poisons, m->partition, m->offset,
								 *(int32 *) lsecond(letter));
		}
		retry_forgotten = id;
	}
	foreach(lc, letters)
	{
		List	   *letter = lfirst(lc);
		KappaMessage *m = linitial(letter);
		int32		view_id = *(int32 *) lsecond(letter);
		KappaRetryResult result;

		CHECK_FOR_INTERRUPTS();
		if (!kappa_engine_owns(engine, m->partition) ||
			(view_id != 0 && !kappa_engine_has_view(engine, view_id)))
			continue;			/* not this worker's: left as it is */
		kappa_engine_retry(engine, m, view_id, &result);
		if (result.dead)
		{
			retry_still_dead++;
			kappa_poisons_note(poisons, m->partition, m->offset, view_id,
							   result.sqlstate, result.reason);
		}
		else
		{
			retry_applied++;
			retry_late += result.late;
		}
	}
	MemoryContextDelete(cxt);
	ereport(LOG,
			(errmsg("kappa worker for stream \"%s\": retried %d dead letters: " INT64_FORMAT " applied (" INT64_FORMAT " late for a view), " INT64_FORMAT " still dead",
					stream->name, list_length(letters), retry_applied, retry_late,
					retry_still_dead)));
}

/*
 * The worker, once the flush that carried a request out committed: answer
 * the caller through the slot.
 */
void
kappa_retry_report(int slot_index)
{
	KappaWorkerSlot *slot = kappa_slot(slot_index);

	if (retry_current == 0)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->retry_applied = retry_applied;
	slot->retry_late = retry_late;
	slot->retry_still_dead = retry_still_dead;
	slot->retry_done = retry_current;
	if (slot->retry_id == retry_current)
		slot->retry_id = 0;
	SpinLockRelease(&slot->mutex);
	retry_current = 0;
}
