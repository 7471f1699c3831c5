/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  A stream's events through its views: decode, route, aggregate, flush.
 *
 * The engine is what a stream's worker runs between the consumer and the
 * database, and what replay will run between the archive and a new view.
 * For each message it decodes the payload once (or records a dead
 * letter), then, for every view whose position in the message's partition
 * it has not passed: drops duplicates (dedup_key), applies the WHERE
 * clause, decides lateness against the view's watermark of that partition,
 * and advances the aggregates of the group (or groups: hopping windows;
 * merged sessions) the event belongs to.
 *
 * Per-partition watermarks (DESIGN §1b): a view's watermark of a
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
 * src/engine.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/resowner.h"
#include "utils/typcache.h"

#include "archive.h"
#include "catalog.h"
#include "columns.h"
#include "compile.h"
#include "decode.h"
#include "engine.h"
#include "engine_internal.h"
#include "guc.h"
#include "state.h"
#include "view.h"


/* A view found in kappa.views that the engine does not run yet. */
typedef struct NewView
{
	int32		view_id;
	Oid			owner;
	char	   *name;			/* qualified, quoted */
	char	   *plan;
	char	   *start;
	char	   *since;			/* or NULL */
	char	   *until;			/* or NULL */
} NewView;

static KappaEngine *engine_init(KappaStream *stream, int nparts, KappaPoisons *poisons);
static void new_view_from_row(NewView *nv, int32 view_id, HeapTuple row, TupleDesc desc,
							  int first, MemoryContext cxt);
static void sync_failed_views(KappaEngine *engine);
static void free_view_plans(void *arg);
static void load_stream_positions(KappaEngine *engine, const bool *which);
static ViewRuntime *load_view(KappaEngine *engine, NewView *nv);
static ViewRuntime *load_view_isolated(KappaEngine *engine, NewView *nv);
static void prepare_view_sql(ViewRuntime *view);
static char *delete_sql(ViewRuntime *view, const char *op);
static void drop_view_runtime(ViewRuntime *view);
static void process_view(KappaEngine *engine, ViewRuntime *view, ViewPartition *vp,
						 TimestampTz event_time, bool event_time_null);
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
static TimestampTz parse_time(const char *text);
static void remember_dedup_key(KappaEngine *engine, ViewPartition *vp, const char *key,
							   TimestampTz time);

/* A timestamptz from its text (stored options are canonical, in UTC). */
static TimestampTz
parse_time(const char *text)
{
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(text),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
}

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
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(view_id)};
	KappaCatalogAccess access;
	NewView		nv;
	ViewRuntime *view;
	MemoryContext old = MemoryContextSwitchTo(engine->cxt);

	engine->scratch_table = pstrdup(rows_table);
	engine->scratch_first = first;
	kappa_catalog_enter(&access);
	if (SPI_execute_with_args("SELECT plan, coalesce(options->>'start', 'earliest'), "
							  "format('%I.%I', schema_name, view_name), options->>'since', options->>'until', owner "
							  "FROM kappa.views WHERE view_id = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	if (SPI_processed == 0)
	{
		kappa_catalog_leave(&access);
		MemoryContextSwitchTo(old);
		kappa_engine_destroy(engine);
		return NULL;
	}
	new_view_from_row(&nv, view_id, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, engine->cxt);
	kappa_catalog_leave(&access);
	view = load_view(engine, &nv);
	engine->views = list_make1(view);
	MemoryContextSwitchTo(old);
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

	/* the event row: the stream's columns, then its metadata columns */
	engine->event_desc = CreateTemplateTupleDesc(engine->ncols + 4);
	foreach(lc, stream->columns)
	{
		KappaColumn *col = lfirst(lc);

		TupleDescInitEntry(engine->event_desc, ++attno, col->name, col->typid, col->typmod, 0);
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
	TupleDescInitEntry(engine->event_desc, ++attno, "kafka_partition", INT4OID, -1, 0);
	TupleDescInitEntry(engine->event_desc, ++attno, "kafka_offset", INT8OID, -1, 0);
	TupleDescInitEntry(engine->event_desc, ++attno, "kafka_timestamp", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(engine->event_desc, ++attno, "kafka_key", BYTEAOID, -1, 0);
	engine->event_slot = MakeSingleTupleTableSlot(engine->event_desc, &TTSOpsVirtual);
	engine->econtext = CreateStandaloneExprContext();
	engine->econtext->ecxt_scantuple = engine->event_slot;
	engine->free_plans.func = free_view_plans;
	engine->free_plans.arg = engine;
	MemoryContextRegisterResetCallback(cxt, &engine->free_plans);
	MemoryContextSwitchTo(old);
	return engine;
}

/*
 * The prepared statements of an engine's views are kept in the plan
 * cache, outside its memory: free them when its memory goes, whether by
 * kappa_engine_destroy or with the transaction of a SQL function that
 * failed.
 */
static void
free_view_plans(void *arg)
{
	KappaEngine *engine = arg;
	ListCell   *lc;

	foreach(lc, engine->views)
	{
		ViewRuntime *view = lfirst(lc);

		if (view->upsert_plan)
			SPI_freeplan(view->upsert_plan);
		if (view->delete_plan)
			SPI_freeplan(view->delete_plan);
		view->upsert_plan = view->delete_plan = NULL;
	}
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

	foreach(lc, engine->views)
		drop_view_runtime(lfirst(lc));
	engine->views = NIL;
	FreeExprContext(engine->econtext, true);
	MemoryContextDelete(engine->cxt);
}

/*
 * A view found in kappa.views, from a row whose columns, from first on,
 * are plan, start, qualified name, since, until and owner; copied into
 * cxt.
 */
static void
new_view_from_row(NewView *nv, int32 view_id, HeapTuple row, TupleDesc desc, int first,
				  MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	bool		isnull;

	nv->view_id = view_id;
	nv->plan = SPI_getvalue(row, desc, first);
	nv->start = SPI_getvalue(row, desc, first + 1);
	nv->name = SPI_getvalue(row, desc, first + 2);
	nv->since = SPI_getvalue(row, desc, first + 3);
	nv->until = SPI_getvalue(row, desc, first + 4);
	nv->owner = DatumGetObjectId(SPI_getbinval(row, desc, first + 5, &isnull));
	MemoryContextSwitchTo(old);
}

/*
 * Read the stream's positions in the partitions which[] says (NULL: all);
 * none yet means its start.
 */
static void
load_stream_positions(KappaEngine *engine, const bool *which)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(engine->stream->id)};
	KappaCatalogAccess access;

	for (int p = 0; p < engine->nparts; p++)
	{
		if (which && !which[p])
			continue;
		engine->parts[p].next = KAPPA_OFFSET_BEGINNING;
		engine->parts[p].end = -1;
	}
	kappa_catalog_enter(&access);
	/* not read_only: a fresh snapshot sees what another worker just flushed */
	if (SPI_execute_with_args("SELECT partition, next_offset FROM kappa.partitions WHERE stream_id = $1",
							  1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.partitions");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		if (p >= 0 && p < engine->nparts && (which == NULL || which[p]))
			engine->parts[p].next = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
																 SPI_tuptable->tupdesc, 2, &isnull));
	}
	kappa_catalog_leave(&access);
}

/*
 * Bring the engine's views in line with kappa.views: load new ones, forget
 * dropped ones.  Locks the stream's view rows (FOR KEY SHARE) for the rest
 * of the transaction, so that no view is dropped under a flush.  Returns
 * whether a view was added (its start may need the consumer to seek).
 */
bool
kappa_engine_sync_views(KappaEngine *engine)
{
	MemoryContext old;
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		values[2] = {Int32GetDatum(engine->stream->id), (Datum) 0};
	KappaCatalogAccess access;
	List	   *live = NIL;
	List	   *added = NIL;
	bool		any_added = false;
	ListCell   *lc;

	sync_failed_views(engine);
	kappa_catalog_enter(&access);
	values[1] = Int32GetDatum(engine->only_view);
	if (SPI_execute_with_args("SELECT view_id, plan, coalesce(options->>'start', 'earliest'), "
							  "format('%I.%I', schema_name, view_name), options->>'since', options->>'until', owner "
							  "FROM kappa.views WHERE stream_id = $1 AND "
							  "CASE WHEN $2 = 0 THEN status = 'live' ELSE view_id = $2 END "
							  "ORDER BY view_id FOR KEY SHARE",
							  2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	old = MemoryContextSwitchTo(engine->cxt);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		bool		known = false;

		/*
		 * Shared state: every view's lock, in id order, before a new view
		 * is loaded under its own (kappa_view_restore); taking a new view's
		 * lock first, then the flush's, could deadlock with another worker.
		 */
		if (engine->shared)
			kappa_view_lock_state(id);
		live = lappend_int(live, id);
		foreach(lc, engine->views)
			known |= (((ViewRuntime *) lfirst(lc))->view_id == id);
		if (!known)
		{
			NewView    *nv = palloc(sizeof(NewView));

			new_view_from_row(nv, id, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, engine->cxt);
			added = lappend(added, nv);
		}
	}
	MemoryContextSwitchTo(old);
	kappa_catalog_leave(&access);

	foreach(lc, engine->views)
	{
		ViewRuntime *view = lfirst(lc);

		if (!list_member_int(live, view->view_id))
		{
			engine->views = foreach_delete_current(engine->views, lc);
			drop_view_runtime(view);
		}
	}
	foreach(lc, added)
	{
		NewView    *nv = lfirst(lc);
		ViewRuntime *view;

		view = engine->isolate_views ? load_view_isolated(engine, nv) : load_view(engine, nv);
		if (view == NULL)
			continue;			/* marked as needing a replay, or failed */
		any_added = true;
		old = MemoryContextSwitchTo(engine->cxt);
		engine->views = lappend(engine->views, view);
		MemoryContextSwitchTo(old);
		kappa_view_rebuild_from_archive(engine, view);
	}
	return any_added;
}

/*
 * Load a view in a subtransaction of its own: a view that cannot be loaded
 * (its stored plan names what no longer exists, its owner lost a right it
 * needs) is marked failed, with the error, and the stream goes on without
 * it.  Errors about the server are the caller's.
 */
static ViewRuntime *
load_view_isolated(KappaEngine *engine, NewView *nv)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ViewRuntime *volatile view = NULL;

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		view = load_view(engine, nv);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (kappa_error_is_transient(edata->sqlerrcode))
			ReThrowError(edata);
		kappa_view_mark_failed(nv->view_id, nv->name, edata);
		view = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return view;
}

/*
 * Mark the views whose code lost a right while the engine ran (noted in
 * its poisons, since the error rolled back to the last flush) as failed,
 * before loading views again.
 */
static void
sync_failed_views(KappaEngine *engine)
{
	ListCell   *lc;

	foreach(lc, kappa_poisons_take_failed(engine->poisons))
	{
		KappaFailedView *failed = lfirst(lc);

		kappa_view_mark_failed(failed->view_id, NULL, failed->error);
	}
}

/*
 * Load a view: compile its stored plan, prepare its expressions,
 * aggregates and statements, read its positions and restore its state
 * (or, when a crash took the state, start it over).  NULL if the view
 * cannot run: its state was lost and the log cannot rebuild it.
 */
static ViewRuntime *
load_view(KappaEngine *engine, NewView *nv)
{
	int32		view_id = nv->view_id;
	const char *plan = nv->plan;
	const char *start = nv->start;
	MemoryContext cxt = AllocSetContextCreate(engine->cxt, "kappa view", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ViewRuntime *view = palloc0(sizeof(ViewRuntime));
	KappaViewSpec *spec;
	KappaOwnerAccess access;
	ListCell   *lc;
	int			i;

	view->cxt = cxt;
	view->view_id = view_id;
	view->owner = nv->owner;
	view->name = pstrdup(nv->name);
	view->scratch = (engine->scratch_table != NULL);
	view->rows_table = view->scratch ? pstrdup(engine->scratch_table) :
		kappa_view_rows_table(view_id);
	view->start_latest = (strcmp(start, "latest") == 0);
	view->start_time = DT_NOBEGIN;
	view->since = nv->since ? parse_time(nv->since) : DT_NOBEGIN;
	view->until = nv->until ? parse_time(nv->until) : DT_NOEND;
	if (!view->start_latest && strcmp(start, "earliest") != 0)
		view->start_time = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
																   CStringGetDatum(start),
																   ObjectIdGetDatum(InvalidOid),
																   Int32GetDatum(-1)));
	view->finalized_upto = DT_NOBEGIN;

	/*
	 * From here on, as the view's owner: compiling folds constants (the
	 * window's size may call a function), initializing expressions checks
	 * the owner's EXECUTE rights, and an aggregate's initial value goes
	 * through its state type's input function.
	 */
	kappa_owner_enter(&access, view->owner);
	view->spec = spec = kappa_compile_view((Query *) stringToNode(plan));

	/* expressions over the event row */
	if (spec->where)
		view->where = ExecInitExpr(spec->where, NULL);
	if (spec->window_ts)
		view->window_ts = ExecInitExpr(spec->window_ts, NULL);
	view->nkeys = list_length(spec->keys);
	view->keys = palloc0(sizeof(ExprState *) * Max(view->nkeys, 1));
	view->key_values = palloc0(sizeof(Datum) * Max(view->nkeys, 1));
	view->key_nulls = palloc0(sizeof(bool) * Max(view->nkeys, 1));
	view->key_typlens = palloc0(sizeof(int16) * Max(view->nkeys, 1));
	i = 0;
	foreach(lc, spec->keys)
	{
		view->key_typlens[i] = get_typlen(exprType(lfirst(lc)));
		view->wide_keys |= (view->key_typlens[i] < 0);
		view->keys[i++] = ExecInitExpr(lfirst(lc), NULL);
	}

	/* aggregates and groups */
	view->sspec.spec = spec;
	view->sspec.naggs = list_length(spec->aggrefs);
	view->sspec.aggs = palloc0(sizeof(KappaAgg) * Max(view->sspec.naggs, 1));
	view->sspec.aggcx = kappa_agg_context_create();
	i = 0;
	foreach(lc, spec->aggrefs)
		kappa_agg_init(&view->sspec.aggs[i++], lfirst(lc), view->sspec.aggcx);
	view->groups = kappa_groups_create(&view->sspec, cxt);

	/* the output: the select list over the group row */
	view->group_slot = MakeSingleTupleTableSlot(spec->group_desc, &TTSOpsVirtual);
	view->out_econtext = CreateStandaloneExprContext();
	view->out_econtext->ecxt_scantuple = view->group_slot;
	view->nout = list_length(spec->output);
	view->project = ExecBuildProjectionInfo(spec->output, view->out_econtext,
											MakeSingleTupleTableSlot(ExecTypeFromTL(spec->output),
																	 &TTSOpsVirtual),
											NULL, spec->group_desc);
	view->out_types = palloc(sizeof(Oid) * view->nout);
	view->unique_cols = palloc(sizeof(int) * Max(view->nout, 1));
	foreach(lc, spec->output)
	{
		TargetEntry *tle = lfirst(lc);

		view->out_types[foreach_current_index(lc)] = exprType((Node *) tle->expr);
	}
	foreach(lc, spec->unique_columns)
	{
		ListCell   *oc;

		foreach(oc, spec->output)
		{
			if (strcmp(((TargetEntry *) lfirst(oc))->resname, lfirst(lc)) == 0)
				view->unique_cols[view->nunique++] = foreach_current_index(oc);
		}
	}

	/* positions: stored, or the view's start */
	view->parts = palloc0(sizeof(ViewPartition) * engine->nparts);
	for (int p = 0; p < engine->nparts; p++)
	{
		view->parts[p].next = view->start_latest ? KAPPA_OFFSET_END : KAPPA_OFFSET_BEGINNING;
		view->parts[p].first = -1;
		view->parts[p].archive_to = -1;
		view->parts[p].max_time = DT_NOBEGIN;
		if (engine->dedup_col >= 0)
			view->parts[p].dedup = deduptab_create(cxt, 1024, NULL);
	}
	MemoryContextSwitchTo(old);

	prepare_view_sql(view);
	kappa_owner_leave(&access);
	if (view->scratch)
	{
		/* a recomputation: from the given offsets, with nothing stored */
		for (int p = 0; p < engine->nparts; p++)
		{
			view->parts[p].next = engine->scratch_first[p];
			view->parts[p].first = engine->scratch_first[p];
		}
		return view;
	}
	if (!kappa_view_restore(engine, view, nv->name))
	{
		drop_view_runtime(view);
		return NULL;
	}
	return view;
}

/* DELETE of a view's row by its unique columns, compared with op. */
static char *
delete_sql(ViewRuntime *view, const char *op)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "DELETE FROM %s", view->rows_table);
	for (int i = 0; i < view->nunique; i++)
		appendStringInfo(&sql, "%s%s %s $%d", i ? " AND " : " WHERE ",
						 quote_identifier(list_nth_node(TargetEntry, view->spec->output,
														view->unique_cols[i])->resname),
						 op, i + 1);
	return MemoryContextStrdup(view->cxt, sql.data);
}

/* The statements a view's flush runs, prepared once and kept. */
static void
prepare_view_sql(ViewRuntime *view)
{
	StringInfoData sql;
	ListCell   *lc;
	Oid		   *delete_types = MemoryContextAlloc(view->cxt, sizeof(Oid) * Max(view->nunique, 1));
	Oid			row_array_type;
	MemoryContext old = MemoryContextSwitchTo(view->cxt);

	/* every changed row in one statement: an array of the table's rows */
	view->row_type = get_rel_type_id(RangeVarGetRelid(makeRangeVar("kappa", kappa_view_rows_table_name(view->view_id), -1),
													  NoLock, false));
	view->row_desc = lookup_rowtype_tupdesc_copy(view->row_type, -1);
	row_array_type = get_array_type(view->row_type);
	initStringInfo(&sql);
	/* unnest of an array of rows yields their columns, whatever their names */
	appendStringInfo(&sql, "INSERT INTO %s SELECT * FROM unnest($1)", view->rows_table);
	if (view->nunique > 0)
	{
		bool		first = true;

		appendStringInfoString(&sql, " ON CONFLICT (");
		for (int i = 0; i < view->nunique; i++)
			appendStringInfo(&sql, "%s%s", i ? ", " : "",
							 quote_identifier(list_nth_node(TargetEntry, view->spec->output,
															view->unique_cols[i])->resname));
		appendStringInfoString(&sql, ") DO ");
		foreach(lc, view->spec->output)
		{
			char	   *name = ((TargetEntry *) lfirst(lc))->resname;
			bool		unique = false;

			for (int i = 0; i < view->nunique; i++)
				unique |= (view->unique_cols[i] == foreach_current_index(lc));
			if (unique)
				continue;
			appendStringInfo(&sql, "%s%s = EXCLUDED.%s", first ? "UPDATE SET " : ", ",
							 quote_identifier(name), quote_identifier(name));
			first = false;
		}
		if (first)
			appendStringInfoString(&sql, "NOTHING");
	}

	SPI_connect();
	view->upsert_plan = SPI_prepare(sql.data, 1, &row_array_type);
	if (view->upsert_plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql.data, SPI_result_code_string(SPI_result));
	SPI_keepplan(view->upsert_plan);

	/*
	 * A row by its unique columns (with none, the one row there is): with
	 * "=", which the unique index serves, and, for keys with nulls, with
	 * IS NOT DISTINCT FROM, which it does not (rare, so not prepared).
	 */
	for (int i = 0; i < view->nunique; i++)
		delete_types[i] = view->out_types[view->unique_cols[i]];
	view->delete_types = delete_types;
	view->delete_nulls_sql = delete_sql(view, "IS NOT DISTINCT FROM");
	view->delete_plan = SPI_prepare(delete_sql(view, "="), view->nunique, delete_types);
	if (view->delete_plan == NULL)
		elog(ERROR, "could not prepare the delete of kappa view %d: %s", view->view_id, SPI_result_code_string(SPI_result));
	SPI_keepplan(view->delete_plan);
	SPI_finish();
	MemoryContextSwitchTo(old);
}

/* Drop a view from the engine, which runs it no more. */
void
kappa_engine_forget_view(KappaEngine *engine, ViewRuntime *view)
{
	engine->views = list_delete_ptr(engine->views, view);
	drop_view_runtime(view);
}

/* Forget a dropped view. */
static void
drop_view_runtime(ViewRuntime *view)
{
	if (view->upsert_plan)
		SPI_freeplan(view->upsert_plan);
	if (view->delete_plan)
		SPI_freeplan(view->delete_plan);
	FreeExprContext(view->out_econtext, true);
	MemoryContextDelete(view->cxt);
}

/*
 * Where a partition must be read from: the smallest position of the
 * stream and its views (KAPPA_OFFSET_BEGINNING if any is at the start).
 */
int64
kappa_engine_start_offset(KappaEngine *engine, int32 partition)
{
	int64		start = PG_INT64_MAX;
	ListCell   *lc;

	foreach(lc, engine->views)
	{
		int64		next = ((ViewRuntime *) lfirst(lc))->parts[partition].next;

		if (next == KAPPA_OFFSET_BEGINNING)
			return KAPPA_OFFSET_BEGINNING;
		if (next >= 0)
			start = Min(start, next);
	}
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
	{
		/* the input functions of the stream's types, as its owner */
		engine->blame_view = 0;
		kappa_owner_enter(&access, engine->stream->owner);
		ok = kappa_decode(engine->decoder, message->payload, message->len,
						  slot->tts_values, slot->tts_isnull, &reason);
		if (!ok)
			sqlstate = kappa_decoder_sqlstate(engine->decoder);
		if (ok && engine->dedup_col >= 0 && !slot->tts_isnull[engine->dedup_col])
			engine->dedup_text = dedup_key_text(engine, slot->tts_values[engine->dedup_col]);
		kappa_owner_leave(&access);
		engine->blame_view = -1;
	}

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

	if (ok)
	{
		int			n = engine->ncols;

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
			event_time = DatumGetTimestampTz(slot->tts_values[engine->event_time_col]);
		else
		{
			event_time = broker_time;
			event_time_null = (message->timestamp_ms < 0);
		}
	}

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
			vp->delivered++;
			reject_event(engine, view, vp, poison->sqlstate, poison->reason);
		}
		else
		{
			/* the view's code, as the view's owner */
			engine->blame_view = view->view_id;
			kappa_owner_enter(&access, view->owner);
			process_view(engine, view, vp, event_time, event_time_null);
			kappa_owner_leave(&access);
			engine->blame_view = -1;
		}
	}
	if (poisoned)
		engine->flush_due = true;	/* so that what is read again stays short */
	error_context_stack = context.previous;
	engine->message = NULL;
	MemoryContextSwitchTo(old);
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
 * partition within the watermark horizon; if not, remember the key.
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
		return true;
	entry = deduptab_insert(vp->dedup, MemoryContextStrdup(GetMemoryChunkContext(vp->dedup), key),
							&found);
	entry->time = event_time;
	remember_dedup_key(engine, vp, key, event_time);
	return false;
}

/* Note a new dedup key for the next flush to store. */
static void
remember_dedup_key(KappaEngine *engine, ViewPartition *vp, const char *key, TimestampTz time)
{
	MemoryContext old = MemoryContextSwitchTo(engine->flush_cxt);
	NewDedupKey *nk = palloc(sizeof(NewDedupKey));

	nk->key = pstrdup(key);
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
			 TimestampTz event_time, bool event_time_null)
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

	if (vp->dedup && is_duplicate(engine, vp, event_time))
	{
		vp->duplicate++;
		return;
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

