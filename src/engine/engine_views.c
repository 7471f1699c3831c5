/*-------------------------------------------------------------------------
 *
 * engine_views.c
 *	  The views an engine runs: loaded from kappa.views, compiled,
 *	  prepared and restored as their owners, and forgotten.
 *
 * kappa_engine_sync_views brings an engine's views in line with the
 * catalog at every flush: it loads the views it does not run yet, and
 * forgets those dropped or no longer live.  Loading a view compiles its
 * stored plan, builds its expressions, aggregates and group table,
 * prepares the statements its flush runs on its rows table, and restores
 * its positions and states (recovery.c), or rebuilds it after a crash.
 *
 * Rights (catalog.c): a view is loaded as its owner, so that compiling
 * (constant folding), initializing its expressions (EXECUTE checks) and
 * its aggregates (initial values through an input function) run with the
 * owner's rights; kappa.views is read as the catalog.  A worker loads each
 * view in a subtransaction of its own: a view that cannot be loaded (its
 * plan names what no longer exists, its owner lost a right) is marked
 * failed, and the stream goes on without it.
 *
 * Lifetime: a view's runtime lives in a memory context of its own, a child
 * of the engine's, deleted when the view is forgotten; its prepared
 * statements live in the plan cache and are freed with it, or with the
 * engine's memory (kappa_engine_free_view_plans).
 *
 * src/engine/engine_views.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "engine/compile.h"
#include "engine/engine_internal.h"
#include "engine/portable.h"
#include "engine/state.h"
#include "engine/view_read.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"
#include "kappa_catalog/view_plan.h"
#include "subxact.h"

/* A view found in kappa.views that the engine does not run yet. */
typedef KappaViewDefinition NewView;

static void sync_failed_views(KappaEngine *engine);
static ViewRuntime *load_view(KappaEngine *engine, NewView *nv);
static ViewRuntime *load_view_isolated(KappaEngine *engine, NewView *nv);
static void prepare_view_sql(ViewRuntime *view);
static char *delete_sql(ViewRuntime *view, const char *op);
static TimestampTz parse_time(const char *text);

/*
 * The prepared statements of an engine's views are kept in the plan
 * cache, outside its memory: free them when its memory goes, whether by
 * kappa_engine_destroy or with the transaction of a SQL function that
 * failed.
 */
void
kappa_engine_free_view_plans(void *arg)
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
		if (view->insert_plan)
			SPI_freeplan(view->insert_plan);
		if (view->lookups)
			kappa_lookups_free(view->lookups);
		view->upsert_plan = view->delete_plan = view->insert_plan = NULL;
	}
}

/* What kappa_engine_sync_views learns of the views it finds. */
typedef struct SyncFound
{
	KappaEngine *engine;
	List	   *live;			/* ids of the views found */
} SyncFound;

/*
 * A view kappa_views_running found, its row locked: note it as live, and
 * want its definition if the engine does not run it yet.  In engine->cxt.
 */
static bool
sync_view_found(int32 view_id, void *arg)
{
	SyncFound  *found = arg;
	bool		known = false;
	ListCell   *lc;

	/*
	 * Shared state: every view's lock, in id order, before a new view is
	 * loaded under its own (kappa_view_restore); taking a new view's lock
	 * first, then the flush's, could deadlock with another worker.
	 */
	if (found->engine->shared)
		kappa_view_lock_state(view_id);
	found->live = lappend_int(found->live, view_id);
	foreach(lc, found->engine->views)
		known |= (((ViewRuntime *) lfirst(lc))->view_id == view_id);
	return !known;
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
	SyncFound	found = {engine, NIL};
	List	   *live;
	List	   *added;
	bool		any_added = false;
	ListCell   *lc;

	sync_failed_views(engine);
	added = kappa_views_running(engine->stream->id, engine->only_view, sync_view_found, &found,
								engine->cxt);
	live = found.live;

	/*
	 * A view created after kappa_alter_stream may read a column this
	 * engine's stream does not have yet: load new views only with the
	 * stream's definition as it is now.  A worker leaves them to the
	 * worker the launcher starts in its place (launcher.c); a backend
	 * (replay, check) that loaded the stream before the change commits
	 * tries again.
	 */
	if (added != NIL && kappa_stream_revision(engine->stream->id) != engine->stream->revision)
	{
		if (engine->only_view != 0)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("stream \"%s\" was altered meanwhile", engine->stream->name),
					 errhint("Try again.")));
		added = NIL;
	}

	foreach(lc, engine->views)
	{
		ViewRuntime *view = lfirst(lc);

		if (!list_member_int(live, view->view_id))
		{
			engine->views = foreach_delete_current(engine->views, lc);
			kappa_engine_drop_view_runtime(view);
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
	KappaSubxact sub;
	ViewRuntime *volatile view = NULL;

	kappa_subxact_begin(&sub);
	PG_TRY();
	{
		view = load_view(engine, nv);
		kappa_subxact_commit(&sub);
	}
	PG_CATCH();
	{
		ErrorData  *edata = kappa_subxact_abort(&sub);

		if (kappa_error_is_transient(edata->sqlerrcode))
			ReThrowError(edata);
		kappa_view_mark_failed(nv->view_id, nv->name, edata);
		view = NULL;
	}
	PG_END_TRY();
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
	/* a plan another database wrote (a restored dump) is analysed again */
	char	   *local_plan = kappa_view_localize(view_id);
	ViewRuntime *view = palloc0(sizeof(ViewRuntime));
	KappaViewSpec *spec;
	KappaOwnerAccess access;
	ListCell   *lc;
	int			i;

	view->cxt = cxt;
	view->view_id = view_id;
	view->owner = nv->owner;
	view->name = pstrdup(nv->name);
	view->notify = nv->notify ? pstrdup(nv->notify) : NULL;
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
	view->final_stored = DT_NOBEGIN;

	/*
	 * From here on, as the view's owner: compiling folds constants (the
	 * window's size may call a function), initializing expressions checks
	 * the owner's EXECUTE rights, and an aggregate's initial value goes
	 * through its state type's input function.
	 */
	kappa_owner_enter(&access, view->owner);
	view->spec = spec = kappa_compile_view((Query *) stringToNode(local_plan ? local_plan : plan));

	/* retention: old final windows' rows go, found by their window column */
	if (nv->retention != NULL)
	{
		Interval   *iv = DatumGetIntervalP(DirectFunctionCall3(interval_in,
															   CStringGetDatum(nv->retention),
															   ObjectIdGetDatum(InvalidOid),
															   Int32GetDatum(-1)));
		char	   *column = kappa_view_window_column(spec, &view->retention_is_end);

		if (column != NULL)
		{
			view->retention_us = iv->time + (int64) iv->day * USECS_PER_DAY;
			view->retention_column = pstrdup(quote_identifier(column));
		}
	}
	view->retention_done = DT_NOBEGIN;

	/*
	 * emit final: a row once its window is final.  Several workers finalize
	 * windows by deleting states other workers stored, without their rows:
	 * not with those.
	 */
	view->emit_final = (nv->emit != NULL && strcmp(nv->emit, "final") == 0 &&
						spec->window.kind != KAPPA_WINDOW_NONE);
	if (view->emit_final && engine->shared)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("kappa view %s emits final rows, which one worker per stream must write",
						view->name),
				 errdetail("kappa.workers_per_stream is %d.", engine->nworkers),
				 errhint("Set kappa.workers_per_stream to 1, or drop the emit option with kappa_replay or a new view.")));

	/* expressions over the event row, and the lookup row of joined tables */
	if (spec->lookups != NIL)
		view->lookups = kappa_lookups_start(spec->lookups, spec->lookup_desc);
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
		kappa_engine_drop_view_runtime(view);
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
	SPI_connect();
	view->insert_plan = SPI_prepare(sql.data, 1, &row_array_type);
	if (view->insert_plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql.data, SPI_result_code_string(SPI_result));
	SPI_keepplan(view->insert_plan);
	SPI_finish();
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
		elog(ERROR, "could not prepare the delete of kappa view %s: %s", view->name, SPI_result_code_string(SPI_result));
	SPI_keepplan(view->delete_plan);
	SPI_finish();
	MemoryContextSwitchTo(old);
}

/*
 * The tables the engine's views join (lookup.c), comma-separated, or NULL
 * if none does.
 */
char *
kappa_engine_joined_tables(KappaEngine *engine)
{
	StringInfoData names;
	ListCell   *lc;

	initStringInfo(&names);
	foreach(lc, engine->views)
	{
		ViewRuntime *view = lfirst(lc);
		ListCell   *tc;

		foreach(tc, view->spec->lookups)
			appendStringInfo(&names, "%s%s", names.len ? ", " : "",
							 ((KappaLookup *) lfirst(tc))->relname);
	}
	return names.len ? names.data : NULL;
}

/* Drop a view from the engine, which runs it no more. */
void
kappa_engine_forget_view(KappaEngine *engine, ViewRuntime *view)
{
	engine->views = list_delete_ptr(engine->views, view);
	kappa_engine_drop_view_runtime(view);
}

/* Forget a dropped view. */
void
kappa_engine_drop_view_runtime(ViewRuntime *view)
{
	if (view->upsert_plan)
		SPI_freeplan(view->upsert_plan);
	if (view->delete_plan)
		SPI_freeplan(view->delete_plan);
	if (view->insert_plan)
		SPI_freeplan(view->insert_plan);
	FreeExprContext(view->out_econtext, true);
	MemoryContextDelete(view->cxt);
}

/* A timestamptz from its text (stored options are canonical, in UTC). */
static TimestampTz
parse_time(const char *text)
{
	return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(text),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
}

/*
 * Load one view of the engine's stream by id, whatever its status (for a
 * recomputation, kappa_engine_create_scratch): NULL if it is gone.
 */
ViewRuntime *
kappa_engine_load_view_by_id(KappaEngine *engine, int32 view_id)
{
	NewView		nv;

	if (!kappa_views_definition(view_id, &nv, engine->cxt))
		return NULL;
	return load_view(engine, &nv);
}
