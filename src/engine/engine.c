/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  A stream's engine: its views, its partitions' positions, watermarks
 *	  and finalization, from creation to destruction.
 *
 * The engine is what a stream's worker runs between the consumer and the
 * database, and what replay, check and crash recovery run between the
 * history (archive and log) and a view.  This file makes one (for a
 * worker, a scratch rebuild of one view, or a replay), knows where each
 * partition is (the stream's stored positions and the smallest of its
 * views'), skips what was lost, adopts partitions a consumer group hands
 * over, and computes the watermarks that finalize windows.  Each message
 * goes through the views in apply.c; which views an engine runs, and how
 * each is loaded, is engine_views.c's.
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
 * running stream reads from its own start while the others go on.
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
 * Lifetime: an engine lives in a memory context of its own, a child of
 * its caller's (a worker's life, or a SQL function's call), deleted by
 * kappa_engine_destroy or with the caller's.  Its views' prepared
 * statements live in the plan cache and are freed with that context (a
 * reset callback), so an engine left behind by an error leaks nothing
 * that points into freed memory.  Per-flush work is in a context reset
 * after each flush.  Nothing here is static.
 *
 * src/engine/engine.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "executor/spi.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "decode/decode.h"
#include "engine/engine_internal.h"
#include "guc.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/columns.h"
#include "kappa_catalog/positions.h"

static KappaEngine *engine_init(KappaStream *stream, int nparts, KappaPoisons *poisons);
static void load_stream_positions(KappaEngine *engine, const bool *which);

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

