/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  A stream's events through its views: decode, route, aggregate, flush.
 *
 * The engine is what a stream's worker runs between the consumer and the
 * database, and what replay, check and crash recovery run between the
 * history (archive and log) and a view.
 * For each message it decodes the payload once (or records a dead
 * letter), then, for every view whose position in the message's partition
 * it has not passed: drops duplicates (dedup_key), applies the WHERE
 * clause, decides lateness against the view's watermark of that partition,
 * and advances the aggregates of the group (or groups: hopping windows;
 * merged sessions) the event belongs to.
 *
 * Per-partition watermarks: a view's watermark of a
 * partition is the largest event time it has consumed from that partition
 * minus the stream's watermark delay; an event is late iff every window it
 * falls in ended at or before that watermark (for sessions: its time plus
 * the gap), or in a window already finalized.  A window is finalized when
 * every partition's watermark has passed its end (for sessions, its end
 * plus the gap, since a later event up to a gap before the end could still
 * merge into it); partitions idle longer than idle_timeout do not hold it
 * back.  Finalizing frees the window's state; its row stays.
 *
 * Each view keeps its own position per partition, so a view created on a
 * running stream reads from its own start while the others go on.  Which
 * views an engine runs, and how each is loaded, is engine_views.c's.
 *
 * kappa_engine_flush (flush.c) writes everything since the last flush in
 * the caller's transaction: view rows (upserted), the states of open
 * groups (kappa.view_state, unlogged), the positions and counts, and dead
 * letters.  One COMMIT makes them all durable together, so every message
 * counts once.  After a crash the unlogged state is gone while the
 * positions say the messages were consumed; the marker row in
 * kappa.view_state_marker is gone too, which is how loading notices, and
 * then the view is rebuilt (recovery.c).
 *
 * Rights: a message is decoded as its stream's owner and applied to each
 * view as the view's owner (catalog.c); engine->message and
 * engine->blame_view say meanwhile whose an error would be (poison.c).
 *
 * Lifetime: an engine lives in a memory context of its own, a child of
 * its caller's (a worker's life, or a SQL function's call), deleted by
 * kappa_engine_destroy or with the caller's.  Its views' prepared
 * statements live in the plan cache and are freed with that context (a
 * reset callback), so an engine left behind by an error leaks nothing
 * that points into freed memory.  Per-message work is in the ExprContext's
 * per-tuple memory, reset for each message; per-flush work in a context
 * reset after each flush.  Nothing here is static.
 *
 * src/engine/engine.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "archive/archive.h"
#include "decode/decode.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "engine/lookup.h"
#include "engine/state.h"
#include "guc.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/columns.h"
#include "kappa_catalog/positions.h"



static KappaEngine *engine_init(KappaStream *stream, int nparts, KappaPoisons *poisons);
static void load_stream_positions(KappaEngine *engine, const bool *which);
static void process_view(KappaEngine *engine, ViewRuntime *view, ViewPartition *vp,
						 TimestampTz event_time, bool event_time_null, bool check_dedup);
static bool decode_message(KappaEngine *engine, const KappaMessage *message,
						   TimestampTz broker_time, const char **reason, const char **sqlstate,
						   TimestampTz *event_time, bool *event_time_null);
static void advance_group(KappaEngine *engine, ViewRuntime *view, KappaGroup *group);
static bool is_duplicate(KappaEngine *engine, ViewPartition *vp, TimestampTz event_time);
static DeadLetter *make_dead_letter(KappaEngine *engine, int32 view_id, const char *reason,
									const char *sqlstate);
static void reject_event(KappaEngine *engine, ViewRuntime *view, ViewPartition *vp,
						 const char *sqlstate, const char *reason);
static char *dedup_key_text(KappaEngine *engine, Datum value);
static Size key_bytes(ViewRuntime *view);
static void process_error_context(void *arg);
static void note_late(KappaEngine *engine, ViewRuntime *view, ViewPartition *vp,
					  TimestampTz event_time);
static bytea *bytes_to_bytea(const char *data, size_t len);
static void remember_dedup_key(KappaEngine *engine, ViewPartition *vp, const char *key,
							   TimestampTz time);

/* A bytea copy of raw bytes, or NULL for NULL. */
static bytea *
bytes_to_bytea(const char *data, size_t len)
{
	bytea	   *b;

	if (data == NULL)
		return NULL;
	b = palloc(VARHDRSZ + len);
	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return b;
}

/*
 * The engine of a stream with nparts partitions: its decoder, its views,
 * their positions and their stored state.  owned[] says which partitions
 * it consumes (NULL: all of this server's; see kappa_engine_adopt); with
 * nworkers > 1, this is one (worker) of the stream's workers, which keep
 * the same views (flush.c).  Runs SPI; call it in a transaction.
 * Allocated in the current memory context.
 */
KappaEngine *
kappa_engine_create(KappaStream *stream, int nparts, const bool *owned,
					int32 worker, int32 nworkers,
					KappaLogStart log_start, void *log_arg,
					KappaPoisons *poisons)
{
	KappaEngine *engine = engine_init(stream, nparts, poisons);

	engine->isolate_views = true;
	engine->log_start = log_start;
	engine->log_arg = log_arg;
	engine->shared = (nworkers > 1);
	engine->worker = worker;
	engine->nworkers = nworkers;
	if (owned)
		memcpy(engine->owned, owned, sizeof(bool) * nparts);
	load_stream_positions(engine, NULL);
	(void) kappa_engine_sync_views(engine);
	return engine;
}

/*
 * An engine that recomputes one view from the log into a scratch table,
 * for kappa_check: the view's own plan, but no stored state, positions
 * starting at first[p] (KAPPA_OFFSET_NONE: the partition is not read), and
 * flushes that write rows into rows_table (quoted, qualified; it must have
 * the view's unique index) and nothing else.  NULL if the view is gone.
 */
KappaEngine *
kappa_engine_create_scratch(KappaStream *stream, int nparts, int32 view_id,
							const char *rows_table, const int64 *first,
							KappaPoisons *poisons)
{
	KappaEngine *engine = engine_init(stream, nparts, poisons);
	ViewRuntime *view;
	MemoryContext old = MemoryContextSwitchTo(engine->cxt);

	engine->scratch_table = pstrdup(rows_table);
	engine->scratch_first = first;
	view = kappa_engine_load_view_by_id(engine, view_id);
	MemoryContextSwitchTo(old);
	if (view == NULL)
	{
		kappa_engine_destroy(engine);
		return NULL;
	}
	engine->views = list_make1(view);
	return engine;
}

/*
 * An engine that builds one view (a new version, for kappa_replay) in the
 * calling backend: the view's states, positions and rows are written as
 * the worker writes them, but nothing of the stream's own (its positions,
 * counts and dead letters belong to its worker), and no partition is ever
 * idle, since a replay reads partitions one after another.
 */
KappaEngine *
kappa_engine_create_replay(KappaStream *stream, int nparts, int32 view_id,
						   KappaPoisons *poisons)
{
	KappaEngine *engine = engine_init(stream, nparts, poisons);

	/* the stream's own positions are its worker's: only the view's count */
	for (int p = 0; p < nparts; p++)
		engine->parts[p].next = KAPPA_OFFSET_BEGINNING;

	engine->only_view = view_id;
	(void) kappa_engine_sync_views(engine);
	return engine;
}

/*
 * What every engine has: the stream, its decoder and the event row, in a
 * memory context of its own (a child of the current one), which
 * kappa_engine_destroy deletes.
 */
static KappaEngine *
engine_init(KappaStream *stream, int nparts, KappaPoisons *poisons)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "kappa engine",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	KappaEngine *engine = palloc0(sizeof(KappaEngine));
	ListCell   *lc;
	int			attno = 0;

	engine->cxt = cxt;
	engine->flush_cxt = AllocSetContextCreate(engine->cxt, "kappa flush",
											  ALLOCSET_DEFAULT_SIZES);
	engine->stream = stream;
	engine->poisons = poisons;
	engine->blame_view = -1;
	engine->nparts = nparts;
	engine->parts = palloc0(sizeof(StreamPartition) * Max(nparts, 1));
	engine->local = palloc(sizeof(bool) * Max(nparts, 1));
	engine->owned = palloc(sizeof(bool) * Max(nparts, 1));
	for (int p = 0; p < nparts; p++)
		engine->local[p] = engine->owned[p] = kappa_stream_owns(stream, p);
	engine->decoder = kappa_decoder_create(stream, kappa_max_payload);
	engine->ncols = list_length(stream->columns);
	engine->event_time_col = -1;
	engine->dedup_col = -1;
	engine->started = GetCurrentTimestamp();
	engine->last_flush = engine->started;

	/*
	 * The event row, laid out as the stream's relation, which the views'
	 * expressions refer to: the stream's columns, with its metadata columns
	 * after those it was created with (kappa_stream_meta_attnum).
	 */
	engine->meta_col = kappa_stream_meta_attnum(stream) - 1;
	engine->event_desc = CreateTemplateTupleDesc(engine->ncols + 4);
	foreach(lc, stream->columns)
	{
		KappaColumn *col = lfirst(lc);

		attno = col->attnum;
		TupleDescInitEntry(engine->event_desc, attno, col->name, col->typid, col->typmod, 0);
		if (stream->event_time && strcmp(col->name, stream->event_time) == 0)
			engine->event_time_col = attno - 1;
		if (stream->dedup_key && strcmp(col->name, stream->dedup_key) == 0)
		{
			Oid			output;
			bool		varlena;

			engine->dedup_col = attno - 1;
			getTypeOutputInfo(col->typid, &output, &varlena);
			fmgr_info(output, &engine->dedup_out);
		}
	}
	attno = engine->meta_col;
	TupleDescInitEntry(engine->event_desc, ++attno, "kafka_partition", INT4OID, -1, 0);
	TupleDescInitEntry(engine->event_desc, ++attno, "kafka_offset", INT8OID, -1, 0);
	TupleDescInitEntry(engine->event_desc, ++attno, "kafka_timestamp", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(engine->event_desc, ++attno, "kafka_key", BYTEAOID, -1, 0);
	engine->event_slot = MakeSingleTupleTableSlot(engine->event_desc, &TTSOpsVirtual);
	engine->econtext = CreateStandaloneExprContext();
	engine->econtext->ecxt_scantuple = engine->event_slot;
	engine->free_plans.func = kappa_engine_free_view_plans;
	engine->free_plans.arg = engine;
	MemoryContextRegisterResetCallback(cxt, &engine->free_plans);
	MemoryContextSwitchTo(old);
	return engine;
}

/*
 * Free an engine: its views' prepared statements and expression contexts,
 * and its memory.  Also after an error, once the transaction is gone: an
 * engine holds nothing the transaction owns.
 */
void
kappa_engine_destroy(KappaEngine *engine)
{
	ListCell   *lc;

	if (engine == NULL)
		return;
	foreach(lc, engine->views)
		kappa_engine_drop_view_runtime(lfirst(lc));
	engine->views = NIL;
	FreeExprContext(engine->econtext, true);
	MemoryContextDelete(engine->cxt);
}

/*
 * Read the stream's positions in the partitions which[] says (NULL: all);
 * none yet means its start.
 */
static void
load_stream_positions(KappaEngine *engine, const bool *which)
{
	KappaCatalogAccess access;
	ListCell   *lc;

	for (int p = 0; p < engine->nparts; p++)
	{
		if (which && !which[p])
			continue;
		engine->parts[p].next = KAPPA_OFFSET_BEGINNING;
		engine->parts[p].end = -1;
	}
	kappa_catalog_enter(&access);
	/* a fresh snapshot sees what another worker just flushed */
	foreach(lc, kappa_positions_load_stream(engine->stream->id))
	{
		KappaPosition *pos = lfirst(lc);
		int32		p = pos->partition;

		if (p >= 0 && p < engine->nparts && (which == NULL || which[p]))
			engine->parts[p].next = pos->next_offset;
	}
	kappa_catalog_leave(&access);
}

/*
 * Where a partition must be read from: the smallest position of the
 * stream and its views (KAPPA_OFFSET_BEGINNING if any is at the start).
 */
int64
kappa_engine_start_offset(KappaEngine *engine, int32 partition)
{
	int64		start = PG_INT64_MAX;
	int64		stream_next = engine->parts[partition].next;
	bool		at_beginning = false;
	ListCell   *lc;

	foreach(lc, engine->views)
	{
		ViewPartition *vp = &((ViewRuntime *) lfirst(lc))->parts[partition];
		int64		next;

		/*
		 * A view that starts at "latest" on a stream that is consuming
		 * starts where the stream is: were it left unresolved, it would
		 * take every message read from here on, and a view created with it
		 * that reads from further back would make it read those too.
		 */
		if (vp->next == KAPPA_OFFSET_END && stream_next >= 0)
		{
			vp->next = vp->first = stream_next;
			vp->changed = true;
		}
		next = vp->next;
		if (next == KAPPA_OFFSET_BEGINNING)
			at_beginning = true;	/* after every view is resolved */
		if (next >= 0)
			start = Min(start, next);
	}
	if (at_beginning)
		return KAPPA_OFFSET_BEGINNING;
	if (engine->parts[partition].next == KAPPA_OFFSET_BEGINNING)
	{
		if (start == PG_INT64_MAX)
			return KAPPA_OFFSET_BEGINNING;
		/* a stream with views only at "latest" starts where they do */
		engine->parts[partition].next = start;
		return start;
	}
	return Min(start, engine->parts[partition].next);
}

/*
 * Offsets [from, to) of a partition are lost: neither the log nor the
 * archive holds them.  Move the stream and each view that had not read
 * them past them, so that the next flush stores positions after the gap.
 * Returns a KappaViewGap per view that misses some of them, and sets
 * *stream_lost to how many the stream itself had not read.
 */
List *
kappa_engine_skip(KappaEngine *engine, int32 partition, int64 from, int64 to,
				  int64 *stream_lost)
{
	StreamPartition *sp = &engine->parts[partition];
	List	   *gaps = NIL;
	ListCell   *lc;

	*stream_lost = 0;
	if (sp->next >= 0 && sp->next < to)
	{
		*stream_lost = to - Max(from, sp->next);
		sp->next = to;
		sp->changed = true;
	}
	foreach(lc, engine->views)
	{
		ViewRuntime *view = lfirst(lc);
		ViewPartition *vp = &view->parts[partition];
		KappaViewGap *gap;

		if (vp->next < 0 || vp->next >= to)
			continue;
		gap = palloc(sizeof(KappaViewGap));
		gap->view_id = view->view_id;
		gap->from = Max(from, vp->next);
		gap->to = to;
		gaps = lappend(gaps, gap);
		vp->next = to;
		if (vp->first < 0)
			vp->first = gap->from;
		vp->changed = true;
	}
	return gaps;
}

const char *const kappa_phase_names[KAPPA_NPHASES] = {
	"decode", "views", "rows", "states", "dedup", "positions"
};

/* Time the engine's phases from now on, adding to times (NULL: stop). */
void
kappa_engine_time_phases(KappaEngine *engine, KappaPhaseTimes *times)
{
	engine->phases = times;
}

/* Resolve views that start at the latest message: at the log's end now. */
void
kappa_engine_resolve_latest(KappaEngine *engine, int32 partition, int64 end)
{
	ListCell   *lc;

	foreach(lc, engine->views)
	{
		ViewPartition *vp = &((ViewRuntime *) lfirst(lc))->parts[partition];

		if (vp->next == KAPPA_OFFSET_END)
		{
			vp->next = end;
			vp->first = end;
			vp->changed = true;
		}
	}
	engine->parts[partition].end = Max(engine->parts[partition].end, end);
}

/*
 * Position the views that start at a time and have no position yet in a
 * partition at the first offset whose broker timestamp is at or after
 * that time, as lookup finds it (Kafka's ListOffsets by timestamp).  Where
 * lookup answers -1 (no such message, or a broker that cannot tell), the
 * view keeps reading from the beginning: every message stamped before its
 * start is skipped anyway, so the seek only saves reading.
 */
void
kappa_engine_resolve_times(KappaEngine *engine, int32 partition,
						   KappaOffsetForTime lookup, void *arg)
{
	ListCell   *lc;

	foreach(lc, engine->views)
	{
		ViewRuntime *view = lfirst(lc);
		ViewPartition *vp = &view->parts[partition];
		int64		offset;

		if (view->start_time == DT_NOBEGIN || vp->next != KAPPA_OFFSET_BEGINNING)
			continue;
		offset = lookup(arg, partition, view->start_time);
		if (offset >= 0)
		{
			vp->next = offset;
			vp->first = offset;
			vp->changed = true;
		}
	}
}

/*
 * Note the log's end of a partition this engine consumes, as the consumer
 * last saw it.
 */
void
kappa_engine_note_end(KappaEngine *engine, int32 partition, int64 end)
{
	if (kappa_engine_owns(engine, partition) &&
		end != engine->parts[partition].end)
	{
		engine->parts[partition].end = end;
		engine->parts[partition].changed = true;
	}
}

/* Whether this engine consumes a partition now. */
bool
kappa_engine_owns(KappaEngine *engine, int32 partition)
{
	return partition >= 0 && partition < engine->nparts && engine->owned[partition];
}

/*
 * Consume the partitions owned[] says from now on (the stream's consumer
 * group moved them).  Those given up were flushed; for those gained, the
 * positions, watermarks and dedup keys are read from Postgres, where the
 * worker that had them last left them.  Call in a transaction.
 */
void
kappa_engine_adopt(KappaEngine *engine, const bool *owned)
{
	bool	   *gained = palloc0(sizeof(bool) * Max(engine->nparts, 1));
	bool		any = false;
	ListCell   *lc;

	for (int p = 0; p < engine->nparts; p++)
	{
		gained[p] = owned[p] && engine->local[p] && !engine->owned[p];
		any |= gained[p];
		if (engine->owned[p] && !owned[p])
		{
			/* its dedup keys are stored; the next owner reads them */
			foreach(lc, engine->views)
			{
				ViewPartition *vp = &((ViewRuntime *) lfirst(lc))->parts[p];

				if (vp->dedup)
					deduptab_reset(vp->dedup);
			}
		}
		engine->owned[p] = owned[p] && engine->local[p];
	}
	if (any)
	{
		load_stream_positions(engine, gained);
		foreach(lc, engine->views)
			kappa_view_load_partitions(engine, lfirst(lc), gained);
	}
	pfree(gained);
}

/*
 * The memory the engine's views take (their groups and states, as
 * allocated), and which view takes the most: its id, name and bytes.
 */
Size
kappa_engine_memory(KappaEngine *engine, int32 *view_id, char **name, Size *largest)
{
	Size		total = 0;
	ListCell   *lc;

	*view_id = 0;
	*name = NULL;
	*largest = 0;
	foreach(lc, engine->views)
	{
		ViewRuntime *view = lfirst(lc);
		Size		bytes = MemoryContextMemAllocated(view->cxt, true);

		total += bytes;
		if (bytes > *largest)
		{
			*largest = bytes;
			*view_id = view->view_id;
			*name = view->name;
		}
	}
	return total;
}

/* Events processed since the last flush. */
int64
kappa_engine_pending(KappaEngine *engine)
{
	return engine->pending;
}

/*
 * Run one message through the stream and its views.  What cannot be
 * decoded becomes a dead letter; what a view cannot apply, that view
 * rejects.  kappa's own checks do that at once; an error raised by
 * Postgres code (an input function, a view's expressions, an aggregate)
 * leaves this function, and the caller rolls back and tries again with
 * the event known as poison (poison.c): engine->message and
 * engine->blame_view say whose error it is meanwhile.
 */
void
kappa_engine_process(KappaEngine *engine, const KappaMessage *message)
{
	StreamPartition *sp;
	TupleTableSlot *slot = engine->event_slot;
	const char *reason = NULL;
	const char *sqlstate = NULL;
	bool		first;
	bool		needed;
	bool		ok;
	bool		poisoned;
	TimestampTz broker_time;
	TimestampTz event_time = 0;
	bool		event_time_null = false;
	KappaOwnerAccess access;
	KappaPoison *poison;
	ErrorContextCallback context;
	MemoryContext old;
	ListCell   *lc;
	instr_time	phase_start;

	if (message->partition < 0 || message->partition >= engine->nparts)
		return;					/* a partition added after the start: next run */
	if (!engine->local[message->partition])
		return;					/* another server's */
	sp = &engine->parts[message->partition];
	first = (sp->next < 0 || message->offset >= sp->next);
	needed = first;
	foreach(lc, engine->views)
	{
		int64		next = ((ViewRuntime *) lfirst(lc))->parts[message->partition].next;

		needed |= (next < 0 || message->offset >= next);
	}
	if (!needed)
		return;					/* read again only for a view catching up */

	/* everything temporary lives in per-event memory */
	kappa_phase_start(engine, &phase_start);
	ResetExprContext(engine->econtext);
	old = MemoryContextSwitchTo(engine->econtext->ecxt_per_tuple_memory);
	ExecClearTuple(slot);
	broker_time = message->timestamp_ms >= 0 ?
		time_t_to_timestamptz(0) + message->timestamp_ms * INT64CONST(1000) : 0;
	engine->message = message;
	engine->dedup_text = NULL;
	poisoned = kappa_poisons_any(engine->poisons, message->partition, message->offset);
	context.callback = process_error_context;
	context.arg = engine;
	context.previous = error_context_stack;
	error_context_stack = &context;

	if (message->payload == NULL)
	{
		ok = false;
		reason = "message has no payload (a tombstone)";
		sqlstate = "22004";
	}
	else if (poisoned &&
			 (poison = kappa_poison_find(engine->poisons, message->partition, message->offset, 0)))
	{
		ok = false;
		reason = poison->reason;
		sqlstate = poison->sqlstate;
	}
	else
		ok = decode_message(engine, message, broker_time, &reason, &sqlstate,
							&event_time, &event_time_null);

	if (first)
	{
		sp->next = message->offset + 1;
		sp->consumed++;
		sp->last_event_at = broker_time;
		sp->last_seen = GetCurrentTimestamp();
		sp->changed = true;
		if (!ok)
		{
			DeadLetter *dl = make_dead_letter(engine, 0, reason, sqlstate);
			MemoryContext cur = MemoryContextSwitchTo(engine->flush_cxt);

			engine->dead_letters = lappend(engine->dead_letters, dl);
			MemoryContextSwitchTo(cur);
			sp->dead++;
		}
	}
	engine->pending++;

	kappa_phase_end(engine, KAPPA_PHASE_DECODE, &phase_start);

	foreach(lc, engine->views)
	{
		ViewRuntime *view = lfirst(lc);
		ViewPartition *vp = &view->parts[message->partition];

		if (vp->next >= 0 && message->offset < vp->next)
			continue;
		if (vp->first < 0)
			vp->first = message->offset;
		vp->next = message->offset + 1;
		vp->changed = true;
		if (view->start_time != DT_NOBEGIN &&
			(message->timestamp_ms < 0 || broker_time < view->start_time))
			vp->filtered++;		/* from before the view's start */
		else if (!ok)
			continue;
		else if (poisoned &&
				 (poison = kappa_poison_find(engine->poisons, message->partition,
											 message->offset, view->view_id)))
		{
			/*
			 * Dedup comes first, as in process_view: a copy of an event the
			 * view rejects is a duplicate, not a second rejection.
			 */
			if (vp->dedup && is_duplicate(engine, vp, event_time))
				vp->duplicate++;
			else
			{
				vp->delivered++;
				reject_event(engine, view, vp, poison->sqlstate, poison->reason);
			}
		}
		else
		{
			/* the view's code, as the view's owner */
			engine->blame_view = view->view_id;
			kappa_owner_enter(&access, view->owner);
			process_view(engine, view, vp, event_time, event_time_null, true);
			kappa_owner_leave(&access);
			engine->blame_view = -1;
		}
	}
	if (poisoned)
		engine->flush_due = true;	/* so that what is read again stays short */
	kappa_phase_end(engine, KAPPA_PHASE_VIEWS, &phase_start);
	error_context_stack = context.previous;
	engine->message = NULL;
	MemoryContextSwitchTo(old);
}

/*
 * Decode a message into the event slot, as the stream's owner: its columns,
 * its dedup key, then its metadata columns and its event time.  False, with
 * the reason and its SQLSTATE, if the decoder refuses it; an input function
 * that raises an error leaves with it (engine->blame_view says whose).
 * In per-event memory.
 */
static bool
decode_message(KappaEngine *engine, const KappaMessage *message, TimestampTz broker_time,
			   const char **reason, const char **sqlstate,
			   TimestampTz *event_time, bool *event_time_null)
{
	TupleTableSlot *slot = engine->event_slot;
	KappaOwnerAccess access;
	int			n = engine->meta_col;
	bool		ok;

	engine->blame_view = 0;
	kappa_owner_enter(&access, engine->stream->owner);
	ok = kappa_decode(engine->decoder, message->payload, message->len,
					  slot->tts_values, slot->tts_isnull, reason);
	if (!ok)
		*sqlstate = kappa_decoder_sqlstate(engine->decoder);
	if (ok && engine->dedup_col >= 0 && !slot->tts_isnull[engine->dedup_col])
		engine->dedup_text = dedup_key_text(engine, slot->tts_values[engine->dedup_col]);
	kappa_owner_leave(&access);
	engine->blame_view = -1;
	if (!ok)
		return false;

	slot->tts_values[n] = Int32GetDatum(message->partition);
	slot->tts_isnull[n] = false;
	slot->tts_values[n + 1] = Int64GetDatum(message->offset);
	slot->tts_isnull[n + 1] = false;
	slot->tts_values[n + 2] = TimestampTzGetDatum(broker_time);
	slot->tts_isnull[n + 2] = (message->timestamp_ms < 0);
	slot->tts_isnull[n + 3] = (message->key == NULL);
	if (message->key)
		slot->tts_values[n + 3] = PointerGetDatum(bytes_to_bytea(message->key,
																 message->key_len));
	ExecStoreVirtualTuple(slot);
	if (engine->event_time_col >= 0)
		*event_time = DatumGetTimestampTz(slot->tts_values[engine->event_time_col]);
	else
	{
		*event_time = broker_time;
		*event_time_null = (message->timestamp_ms < 0);
	}
	return true;
}

/*
 * Retry a dead letter (kappa_retry_dead_letters, retry.c): message is its
 * bytes at its place in the log.  view_id 0: a message the stream could
 * not decode, decoded again with the stream's definition now and, if that
 * works, applied to every view that was reading the partition there (its
 * first offset at or before the message, its position past it, and not
 * started after the message's time): those views never counted it.  Else
 * an event that view rejected, applied to that view alone, which counted
 * it delivered and rejected then: it now counts as what it comes to.
 * Either way the event goes through dedup, the WHERE clause and lateness
 * as any event does, against the views' state now.  *result says whether
 * it is dead still, and why.  An error of a view's code or of an input
 * function leaves as in kappa_engine_process, blamed on this message.
 */
void
kappa_engine_retry(KappaEngine *engine, const KappaMessage *message, int32 view_id,
				   KappaRetryResult *result)
{
	TupleTableSlot *slot = engine->event_slot;
	MemoryContext caller = CurrentMemoryContext;
	const char *reason = NULL;
	const char *sqlstate = NULL;
	TimestampTz broker_time;
	TimestampTz event_time = 0;
	bool		event_time_null = false;
	bool		ok;
	KappaOwnerAccess access;
	KappaPoison *poison;
	ErrorContextCallback context;
	MemoryContext old;
	ListCell   *lc;

	memset(result, 0, sizeof(*result));
	ResetExprContext(engine->econtext);
	old = MemoryContextSwitchTo(engine->econtext->ecxt_per_tuple_memory);
	ExecClearTuple(slot);
	broker_time = message->timestamp_ms >= 0 ?
		time_t_to_timestamptz(0) + message->timestamp_ms * INT64CONST(1000) : 0;
	engine->message = message;
	engine->dedup_text = NULL;
	context.callback = process_error_context;
	context.arg = engine;
	context.previous = error_context_stack;
	error_context_stack = &context;

	if (message->payload == NULL)
	{
		ok = false;
		reason = "message has no payload (a tombstone)";
		sqlstate = "22004";
	}
	else if ((poison = kappa_poison_find(engine->poisons, message->partition, message->offset, 0)))
	{
		/* it failed again in an earlier attempt of this retry */
		ok = false;
		reason = poison->reason;
		sqlstate = poison->sqlstate;
	}
	else
		ok = decode_message(engine, message, broker_time, &reason, &sqlstate,
							&event_time, &event_time_null);

	foreach(lc, engine->views)
	{
		ViewRuntime *view = lfirst(lc);
		ViewPartition *vp = &view->parts[message->partition];
		int64		late = vp->late;
		int64		rejected = vp->rejected;

		if (!ok)
			break;
		if (view_id != 0)
		{
			if (view->view_id != view_id)
				continue;
			poison = kappa_poison_find(engine->poisons, message->partition, message->offset,
									   view_id);
			if (poison)
			{
				ok = false;
				reason = poison->reason;
				sqlstate = poison->sqlstate;
				break;
			}
			/* counted delivered and rejected when it failed; now as it comes */
			vp->delivered--;
			vp->rejected--;
			rejected--;
		}
		else
		{
			if (vp->first < 0 || message->offset < vp->first ||
				vp->next < 0 || message->offset >= vp->next)
				continue;		/* the view was not reading here then */
			if (view->start_time != DT_NOBEGIN &&
				(message->timestamp_ms < 0 || broker_time < view->start_time))
				continue;		/* from before its start: it counted it filtered */
			poison = kappa_poison_find(engine->poisons, message->partition, message->offset,
									   view->view_id);
			if (poison)
			{
				/* decoded now, but the view cannot apply it: as in process */
				vp->changed = true;
				if (vp->dedup && is_duplicate(engine, vp, event_time))
					vp->duplicate++;
				else
				{
					vp->delivered++;
					reject_event(engine, view, vp, poison->sqlstate, poison->reason);
				}
				continue;
			}
		}
		vp->changed = true;
		engine->blame_view = view->view_id;
		kappa_owner_enter(&access, view->owner);
		process_view(engine, view, vp, event_time, event_time_null, view_id == 0);
		kappa_owner_leave(&access);
		engine->blame_view = -1;
		result->late += vp->late - late;
		if (view_id != 0 && vp->rejected > rejected)
		{
			/* kappa's own checks rejected it again (its window, its key) */
			DeadLetter *dl = llast(view->rejects);

			view->rejects = list_delete_last(view->rejects);
			ok = false;
			reason = dl->reason;
			sqlstate = dl->sqlstate;
		}
	}
	if (ok && view_id == 0)
	{
		/* the stream counts what is dead now */
		engine->parts[message->partition].dead--;
		engine->parts[message->partition].changed = true;
	}

	result->dead = !ok;
	if (!ok)
	{
		result->reason = MemoryContextStrdup(caller, reason);
		result->sqlstate = MemoryContextStrdup(caller, sqlstate ? sqlstate : "22000");
	}
	{
		/* for the flush: the letter goes, or stays with its new reason */
		MemoryContext cur = MemoryContextSwitchTo(engine->flush_cxt);
		RetriedLetter *rl = palloc0(sizeof(RetriedLetter));

		rl->view_id = view_id;
		rl->partition = message->partition;
		rl->offset = message->offset;
		rl->dead = !ok;
		if (!ok)
		{
			rl->reason = pstrdup(reason);
			strlcpy(rl->sqlstate, sqlstate ? sqlstate : "22000", sizeof(rl->sqlstate));
		}
		engine->retried = lappend(engine->retried, rl);
		MemoryContextSwitchTo(cur);
	}
	error_context_stack = context.previous;
	engine->message = NULL;
	MemoryContextSwitchTo(old);
}

/* Whether the engine runs a view (not failed, dropped or being replayed). */
bool
kappa_engine_has_view(KappaEngine *engine, int32 view_id)
{
	ListCell   *lc;

	foreach(lc, engine->views)
	{
		if (((ViewRuntime *) lfirst(lc))->view_id == view_id)
			return true;
	}
	return false;
}

/* Errors while processing a message say which, and for which view. */
static void
process_error_context(void *arg)
{
	KappaEngine *engine = arg;
	const KappaMessage *m = engine->message;
	ListCell   *lc;

	if (m == NULL)
		return;
	if (engine->blame_view > 0)
	{
		foreach(lc, engine->views)
		{
			ViewRuntime *view = lfirst(lc);

			if (view->view_id == engine->blame_view)
				errcontext("kappa view %s, message at offset " INT64_FORMAT " of partition %d of stream \"%s\"",
						   view->name, m->offset, m->partition, engine->stream->name);
		}
	}
	else
		errcontext("message at offset " INT64_FORMAT " of partition %d of stream \"%s\"",
				   m->offset, m->partition, engine->stream->name);
}

/* A dead letter of the message being processed, in the flush context. */
static DeadLetter *
make_dead_letter(KappaEngine *engine, int32 view_id, const char *reason, const char *sqlstate)
{
	const KappaMessage *m = engine->message;
	MemoryContext old = MemoryContextSwitchTo(engine->flush_cxt);
	DeadLetter *dl = palloc(sizeof(DeadLetter));

	dl->view_id = view_id;
	dl->partition = m->partition;
	dl->offset = m->offset;
	dl->broker_time = m->timestamp_ms >= 0 ?
		time_t_to_timestamptz(0) + m->timestamp_ms * INT64CONST(1000) : 0;
	dl->key = bytes_to_bytea(m->key, m->key_len);
	dl->payload = bytes_to_bytea(m->payload, m->len);
	dl->reason = pstrdup(reason);
	strlcpy(dl->sqlstate, sqlstate ? sqlstate : "22000", sizeof(dl->sqlstate));
	MemoryContextSwitchTo(old);
	return dl;
}

/*
 * A view rejects the event being processed: it counts it, and keeps it
 * with the reason as a dead letter of the view.
 */
static void
reject_event(KappaEngine *engine, ViewRuntime *view, ViewPartition *vp,
			 const char *sqlstate, const char *reason)
{
	DeadLetter *dl = make_dead_letter(engine, view->view_id, reason, sqlstate);
	MemoryContext old = MemoryContextSwitchTo(engine->flush_cxt);

	vp->rejected++;
	view->rejects = lappend(view->rejects, dl);
	MemoryContextSwitchTo(old);
}

/* The dedup key of the event, as text (its type's output, as the stream's owner). */
static char *
dedup_key_text(KappaEngine *engine, Datum value)
{
	Form_pg_attribute att = TupleDescAttr(engine->event_desc, engine->dedup_col);

	if (att->atttypid == TEXTOID || att->atttypid == VARCHAROID)
		return text_to_cstring(DatumGetTextPP(value));
	return OutputFunctionCall(&engine->dedup_out, value);
}

/*
 * Whether the event repeats a dedup key this view has seen in this
 * partition within the watermark horizon; if not, remember the key.  A
 * key older than the horizon is forgotten here, not only when a flush
 * prunes it, so that what is a duplicate depends on the partition's
 * events alone, never on when flushes happened: a replay or a check
 * decides as the worker did.
 */
static bool
is_duplicate(KappaEngine *engine, ViewPartition *vp, TimestampTz event_time)
{
	char	   *key = engine->dedup_text;
	DedupEntry *entry;
	bool		found;

	if (key == NULL)
		return false;
	entry = deduptab_lookup(vp->dedup, key);
	if (entry != NULL)
	{
		if (vp->max_time == DT_NOBEGIN ||
			entry->time >= vp->max_time - engine->stream->watermark_us)
			return true;
	}
	else
		entry = deduptab_insert(vp->dedup, MemoryContextStrdup(GetMemoryChunkContext(vp->dedup), key),
								&found);
	entry->time = event_time;
	remember_dedup_key(engine, vp, entry->key, event_time);
	return false;
}

/*
 * Note a new dedup key for the next flush to store: the table's own copy,
 * which only that flush frees.
 */
static void
remember_dedup_key(KappaEngine *engine, ViewPartition *vp, const char *key, TimestampTz time)
{
	MemoryContext old = MemoryContextSwitchTo(engine->flush_cxt);
	NewDedupKey *nk = palloc(sizeof(NewDedupKey));

	nk->key = key;
	nk->time = time;
	vp->dedup_new = lappend(vp->dedup_new, nk);
	MemoryContextSwitchTo(old);
}

/*
 * Count a late event for a view, and keep it for kappa.late_events when
 * the stream asks.
 */
static void
note_late(KappaEngine *engine, ViewRuntime *view, ViewPartition *vp, TimestampTz event_time)
{
	vp->late++;
	if (engine->stream->keep_late)
	{
		MemoryContext old = MemoryContextSwitchTo(engine->flush_cxt);
		LateEvent  *le = palloc(sizeof(LateEvent));

		le->view_id = view->view_id;
		le->partition = engine->message->partition;
		le->offset = engine->message->offset;
		le->event_time = event_time;
		le->payload = bytes_to_bytea(engine->message->payload, engine->message->len);
		engine->late_events = lappend(engine->late_events, le);
		MemoryContextSwitchTo(old);
	}
}

/* Advance every aggregate of a group by the event in the slot. */
static void
advance_group(KappaEngine *engine, ViewRuntime *view, KappaGroup *group)
{
	for (int i = 0; i < view->sspec.naggs; i++)
		kappa_agg_advance(&view->sspec.aggs[i], view->sspec.aggcx, group->cxt,
						  engine->econtext, &group->states[i], &group->state_nulls[i]);
}

/* Run the event in the slot through one view. */
static void
process_view(KappaEngine *engine, ViewRuntime *view, ViewPartition *vp,
			 TimestampTz event_time, bool event_time_null, bool check_dedup)
{
	ExprContext *econtext = engine->econtext;
	KappaWindow *window = &view->spec->window;
	TimestampTz watermark = DT_NOBEGIN;
	TimestampTz max_time = vp->max_time;
	TimestampTz ts = 0;
	TimestampTz session_end = 0;
	TimestampTz starts[KAPPA_MAX_HOPS];
	int			nstarts = 0;
	bool		isnull;

	if (vp->max_time != DT_NOBEGIN)
		watermark = vp->max_time - engine->stream->watermark_us;
	if (!event_time_null && (vp->max_time == DT_NOBEGIN || event_time > vp->max_time))
		vp->max_time = event_time;

	if (check_dedup && vp->dedup && is_duplicate(engine, vp, event_time))
	{
		vp->duplicate++;
		return;
	}
	if (view->lookups)
	{
		char	   *reason = NULL;

		switch (kappa_lookups_run(view->lookups, econtext, &engine->lookup_executing, &reason))
		{
			case KAPPA_LOOKUP_FOUND:
				break;
			case KAPPA_LOOKUP_MISSING:
				vp->filtered++; /* no row to join with */
				return;
			case KAPPA_LOOKUP_AMBIGUOUS:
				vp->max_time = max_time;
				vp->delivered++;
				reject_event(engine, view, vp, "21000", reason);
				return;
		}
	}
	if (view->where)
	{
		Datum		pass = ExecEvalExprSwitchContext(view->where, econtext, &isnull);

		if (isnull || !DatumGetBool(pass))
		{
			vp->filtered++;
			return;
		}
	}
	if ((view->since != DT_NOBEGIN || view->until != DT_NOEND) &&
		(event_time_null || event_time < view->since || event_time >= view->until))
	{
		vp->filtered++;			/* outside the bounds a replay gave it */
		return;
	}
	if (view->window_ts)
	{
		ts = DatumGetTimestampTz(ExecEvalExprSwitchContext(view->window_ts, econtext, &isnull));
		if (isnull)
		{
			vp->filtered++;		/* an event without a time has no window */
			return;
		}
	}
	vp->delivered++;

	/*
	 * Windows that Postgres cannot represent, and keys wider than an index
	 * takes, are rejected here, before anything changes: the event then
	 * moves no watermark either.
	 */
	if (window->kind == KAPPA_WINDOW_TUMBLE || window->kind == KAPPA_WINDOW_HOP)
		nstarts = kappa_window_assign(window, ts, starts);
	else if (window->kind == KAPPA_WINDOW_SESSION &&
			 (TIMESTAMP_NOT_FINITE(ts) || pg_add_s64_overflow(ts, window->gap, &session_end) ||
			  !IS_VALID_TIMESTAMP(session_end)))
		nstarts = -1;
	if (nstarts < 0)
	{
		vp->max_time = max_time;
		reject_event(engine, view, vp, "22008",
					 psprintf("the windows of time %s are out of range", timestamptz_to_str(ts)));
		return;
	}
	for (int i = 0; i < view->nkeys; i++)
		view->key_values[i] = ExecEvalExprSwitchContext(view->keys[i], econtext,
														&view->key_nulls[i]);
	if (view->wide_keys)
	{
		Size		bytes = key_bytes(view);

		if (bytes > KAPPA_MAX_KEY_BYTES)
		{
			vp->max_time = max_time;
			reject_event(engine, view, vp, "54000",
						 psprintf("the group key of %zu bytes exceeds the limit of %d bytes",
								  bytes, KAPPA_MAX_KEY_BYTES));
			return;
		}
	}

	switch (window->kind)
	{
		case KAPPA_WINDOW_NONE:
			advance_group(engine, view,
						  kappa_groups_lookup(view->groups, view->key_values, view->key_nulls,
											  DT_NOBEGIN, DT_NOEND));
			vp->applied++;
			break;
		case KAPPA_WINDOW_TUMBLE:
		case KAPPA_WINDOW_HOP:
			{
				bool		applied = false;

				for (int i = 0; i < nstarts; i++)
				{
					TimestampTz end = starts[i] + window->size;

					if (end <= watermark || end <= view->finalized_upto)
						continue;
					advance_group(engine, view,
								  kappa_groups_lookup(view->groups, view->key_values,
													  view->key_nulls, starts[i], end));
					applied = true;
				}
				if (applied)
					vp->applied++;
				else
					note_late(engine, view, vp, event_time);
				break;
			}
		case KAPPA_WINDOW_SESSION:
			if (session_end <= watermark || session_end <= view->finalized_upto)
				note_late(engine, view, vp, event_time);
			else
			{
				advance_group(engine, view,
							  kappa_groups_session(view->groups, view->key_values,
												   view->key_nulls, ts, window->gap));
				vp->applied++;
			}
			break;
	}
}

/*
 * The bytes of the event's group key, as a stored state and a unique index
 * hold it (flattened, uncompressed: the worst case).
 */
static Size
key_bytes(ViewRuntime *view)
{
	Size		bytes = 0;

	for (int i = 0; i < view->nkeys; i++)
	{
		if (view->key_nulls[i])
			continue;
		if (view->key_typlens[i] > 0)
			bytes += view->key_typlens[i];
		else if (view->key_typlens[i] == -1)
			bytes += toast_raw_datum_size(view->key_values[i]);
		else
			bytes += strlen(DatumGetCString(view->key_values[i])) + 1;
	}
	return bytes;
}

/*
 * The watermark every partition has passed, for finalizing windows: the
 * smallest of the view's partition watermarks, leaving out partitions idle
 * longer than the stream's idle_timeout (or, if all are idle, the
 * largest).  DT_NOBEGIN while nothing can be finalized.
 */
TimestampTz
kappa_engine_watermark(KappaEngine *engine, ViewRuntime *view, TimestampTz now)
{
	TimestampTz active_min = DT_NOEND;
	TimestampTz any_max = DT_NOBEGIN;
	bool		any_active = false;

	for (int p = 0; p < engine->nparts; p++)
	{
		ViewPartition *vp = &view->parts[p];
		TimestampTz last = engine->parts[p].last_seen ? engine->parts[p].last_seen : engine->started;
		bool		idle = engine->only_view == 0 &&
			(now - last) > engine->stream->idle_timeout_us;
		TimestampTz wm;

		if (!engine->local[p])
			continue;			/* another server's: its windows are its own */

		if (vp->max_time == DT_NOBEGIN)
		{
			if (!idle)
				return DT_NOBEGIN;	/* a partition yet to speak holds back */
			continue;
		}
		wm = vp->max_time - engine->stream->watermark_us;
		any_max = Max(any_max, wm);
		if (!idle)
		{
			any_active = true;
			active_min = Min(active_min, wm);
		}
	}
	return any_active ? active_min : any_max;
}

