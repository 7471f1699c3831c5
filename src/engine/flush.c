/*-------------------------------------------------------------------------
 *
 * flush.c
 *	  Writing what the engine processed: view rows, states, positions,
 *	  counts, dead letters and late events, in the caller's transaction.
 *
 * kappa_engine_flush runs every kappa.flush_interval in the worker's
 * transaction, and the commit that follows makes it all durable together:
 * that is what makes every message count once.  Per view it first decides
 * which windows every partition has passed, then deletes the rows of
 * sessions merged away, writes every changed group's row and the states
 * of those still open (each with one statement: an array of rows), and
 * drops the states of finalized groups.  src/engine/README.md
 * tells the whole story.
 *
 * Rights (catalog.c): a view's flush computes its rows (final functions,
 * the select list) and states (serialization functions), and writes its
 * rows table, as the view's owner; then it writes kappa's tables (states,
 * positions, dedup keys, the events it rejected) as the catalog.  A view
 * that cannot be flushed (a row its table refuses, a right its owner
 * lost) fails alone: with engine->isolate_views, each view is flushed in a
 * subtransaction, and one that fails is marked failed and dropped from the
 * engine, while the others and the stream go on.
 *
 * With kappa.workers_per_stream > 1 (engine->shared), a view's state is
 * shared by the stream's workers: flush_shared.c merges the stored groups
 * into this worker's before the flush, and forgets them after.
 *
 * Lifetime: kappa's tables are written through kappa_catalog
 * (positions.c, view_state.c), whose statements are prepared once per
 * backend and kept.  Everything else lives in the engine's flush context,
 * reset after each flush.  All SQL here is prepared or built from
 * constants and quoted identifiers, with $n parameters.
 *
 * src/engine/flush.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "agg/aggregate.h"
#include "engine/engine_internal.h"
#include "engine/state.h"
#include "engine/sink.h"
#include "guc.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/dead_letters.h"
#include "kappa_catalog/positions.h"
#include "kappa_catalog/view.h"
#include "kappa_catalog/view_state.h"
#include "subxact.h"

/* What a view's flush writes, gathered as its owner, written after. */
typedef struct FlushWrites
{
	MemoryContext cxt;			/* where they live: the flush's context */
	List	   *row_deletes;	/* RowKey: rows to delete, by unique columns */
	List	   *rows;			/* HeapTupleHeader: every row to write, ... */
	List	   *rows_known;		/* ... those whose group has one already, */
	List	   *rows_new;		/* ... and those whose group has none yet */
	List	   *state_keys;		/* bytea *: states to delete, by key ... */
	List	   *state_starts;	/* TimestampTz *: ... and window start */
	List	   *states;			/* HeapTupleHeader: states to upsert, ... */
	List	   *states_new;		/* ... and those of groups that stored none */
	int64		finalized;		/* groups whose windows became final */
	List	   *sinks;			/* the view's sinks and what they get (sink.c) */
} FlushWrites;

/* A row to delete: its unique columns' values. */
typedef struct RowKey
{
	Datum	   *values;
	char	   *nulls;
	bool		any_null;
} RowKey;

static void project_group(ViewRuntime *view, KappaGroup *group, TimestampTz start,
						  TimestampTz end, bool with_aggs, Datum *values, char *nulls);
static Datum group_row(ViewRuntime *view, KappaGroup *group);
static Datum group_state(ViewRuntime *view, KappaGroup *group);
static void write_rows(SPIPlanPtr plan, Oid row_type, List *rows, const char *what,
					   const char *view);
static void note_row(KappaEngine *engine, ViewRuntime *view, KappaGroup *group, FlushWrites *w);
static void write_view_rows(ViewRuntime *view, List *rows, bool upsert);
static void write_states(ViewRuntime *view, List *states, bool upsert);
static void insert_new(ViewRuntime *view, void (*write) (ViewRuntime *view, List *tuples, bool upsert),
					   List *tuples, const char *what);
static void forget_stored(ViewRuntime *view, KappaGroup *group, FlushWrites *w);
static void forget_merged(ViewRuntime *view, KappaGroup *group, void *writes);
static void forget_stored_state(ViewRuntime *view, KappaGroup *group, FlushWrites *w);
static void delete_rows(ViewRuntime *view, List *keys);
static void delete_states(ViewRuntime *view, List *keys, List *starts);
static void write_view_catalog(KappaEngine *engine, ViewRuntime *view, FlushWrites *w,
							   int64 margin, TimestampTz state_upto);
static void write_rejects(KappaEngine *engine, List *dead_letters);
static void write_retried(KappaEngine *engine);
static void write_dedup_keys(ViewRuntime *view, int32 partition, ViewPartition *vp,
							 TimestampTz horizon, bool owned);
static void notify_flush(ViewRuntime *view, TimestampTz final_until, int64 changed,
						 int64 finalized);
static void apply_retention(ViewRuntime *view, TimestampTz final_until, bool bounded);
static void flush_view_isolated(KappaEngine *engine, ViewRuntime *view, TimestampTz now);
static int	view_id_cmp(const ListCell *a, const ListCell *b);

/*
 * A group's output row, as values[] and nulls[] ('n'/' ') for SPI, with
 * the given window bounds; its aggregates finalized, or null.  Runs the
 * view's code: call as its owner.
 */
static void
project_group(ViewRuntime *view, KappaGroup *group, TimestampTz start, TimestampTz end,
			  bool with_aggs, Datum *values, char *nulls)
{
	TupleTableSlot *gslot = view->group_slot;
	TupleTableSlot *out;
	int			nkeys = view->nkeys;

	ExecClearTuple(gslot);
	for (int i = 0; i < nkeys; i++)
	{
		gslot->tts_values[i] = group->keys[i];
		gslot->tts_isnull[i] = group->key_nulls[i];
	}
	gslot->tts_values[nkeys] = TimestampTzGetDatum(start);
	gslot->tts_isnull[nkeys] = (view->spec->window.kind == KAPPA_WINDOW_NONE);
	gslot->tts_values[nkeys + 1] = TimestampTzGetDatum(end);
	gslot->tts_isnull[nkeys + 1] = (view->spec->window.kind == KAPPA_WINDOW_NONE);
	for (int i = 0; i < view->sspec.naggs; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(view->out_econtext->ecxt_per_tuple_memory);

		if (with_aggs)
			gslot->tts_values[nkeys + 2 + i] =
				kappa_agg_final(&view->sspec.aggs[i], view->sspec.aggcx, group->cxt,
								group->states[i], group->state_nulls[i],
								&gslot->tts_isnull[nkeys + 2 + i]);
		else
			gslot->tts_isnull[nkeys + 2 + i] = true;
		MemoryContextSwitchTo(old);
	}
	ExecStoreVirtualTuple(gslot);
	out = ExecProject(view->project);
	slot_getallattrs(out);
	for (int i = 0; i < view->nout; i++)
	{
		values[i] = out->tts_values[i];
		nulls[i] = out->tts_isnull[i] ? 'n' : ' ';
	}
}

/*
 * A group was stored under other bounds than it has now, or is going:
 * note its row (by its unique columns, projected as the view's owner) and
 * its stored state, to delete.  In the flush context.
 */
static void
forget_stored(ViewRuntime *view, KappaGroup *group, FlushWrites *w)
{
	MemoryContext old;
	Datum	   *values;
	char	   *nulls;
	RowKey	   *key;

	if (view->emit_final)
	{
		/* an open window, which has no row yet */
		forget_stored_state(view, group, w);
		return;
	}
	old = MemoryContextSwitchTo(w->cxt);
	values = palloc(sizeof(Datum) * view->nout);
	nulls = palloc(view->nout);
	key = palloc(sizeof(RowKey));
	project_group(view, group, group->stored_start, group->stored_end, false, values, nulls);
	key->values = palloc(sizeof(Datum) * Max(view->nunique, 1));
	key->nulls = palloc(Max(view->nunique, 1));
	key->any_null = false;
	for (int i = 0; i < view->nunique; i++)
	{
		int			col = view->unique_cols[i];

		key->values[i] = values[col];
		key->nulls[i] = nulls[col];
		if (nulls[col] == 'n')
			key->any_null = true;
		else
		{
			Form_pg_attribute att = TupleDescAttr(view->row_desc, col);

			key->values[i] = datumCopy(values[col], att->attbyval, att->attlen);
		}
	}
	ResetExprContext(view->out_econtext);
	w->row_deletes = lappend(w->row_deletes, key);
	forget_stored_state(view, group, w);
	MemoryContextSwitchTo(old);
}

/* forget_stored, for a stored session a shared flush merged away. */
static void
forget_merged(ViewRuntime *view, KappaGroup *group, void *writes)
{
	forget_stored(view, group, (FlushWrites *) writes);
}

/* Note the state a group was last stored with, to delete. */
static void
forget_stored_state(ViewRuntime *view, KappaGroup *group, FlushWrites *w)
{
	MemoryContext old;
	TimestampTz *start;

	group->stored = false;
	if (view->scratch)
		return;					/* a recomputation stores no states */
	old = MemoryContextSwitchTo(w->cxt);
	start = palloc(sizeof(TimestampTz));
	*start = group->stored_start;
	w->state_keys = lappend(w->state_keys, kappa_groups_encode_key(view->groups, group));
	w->state_starts = lappend(w->state_starts, start);
	MemoryContextSwitchTo(old);
}

/* Delete rows by their unique columns, as the view's owner. */
static void
delete_rows(ViewRuntime *view, List *keys)
{
	ListCell   *lc;

	foreach(lc, keys)
	{
		RowKey	   *key = lfirst(lc);

		if ((key->any_null ?
			 SPI_execute_with_args(view->delete_nulls_sql, view->nunique, view->delete_types,
								   key->values, key->nulls, false, 0) :
			 SPI_execute_plan(view->delete_plan, key->values, key->nulls, false, 0)) != SPI_OK_DELETE)
			elog(ERROR, "could not delete a row of kappa view %s", view->name);
	}
}

/* Delete stored states by their keys and window starts, in one statement. */
static void
delete_states(ViewRuntime *view, List *keys, List *starts)
{
	int			n = list_length(keys);
	bytea	  **k;
	TimestampTz *s;

	if (n == 0 || view->scratch)
		return;
	k = palloc(sizeof(bytea *) * n);
	s = palloc(sizeof(TimestampTz) * n);
	for (int i = 0; i < n; i++)
	{
		k[i] = list_nth(keys, i);
		s[i] = *(TimestampTz *) list_nth(starts, i);
	}
	kappa_view_state_delete(view->view_id, n, k, s);
}

/*
 * A group's row (its aggregates finalized now), as a row of the rows
 * table.  The view's code: call as its owner.
 */
static Datum
group_row(ViewRuntime *view, KappaGroup *group)
{
	Datum	   *values = palloc(sizeof(Datum) * view->nout);
	char	   *nulls = palloc(view->nout);
	bool	   *isnull = palloc(sizeof(bool) * view->nout);
	HeapTuple	tuple;

	project_group(view, group, group->start, group->end, true, values, nulls);
	for (int i = 0; i < view->nout; i++)
		isnull[i] = (nulls[i] == 'n');
	tuple = heap_form_tuple(view->row_desc, values, isnull);
	ResetExprContext(view->out_econtext);
	return HeapTupleGetDatum(tuple);
}

/*
 * A group's stored state, as a row of kappa.view_state
 * (kappa_view_state_form_row).  Serializing runs the aggregates' code:
 * call as the view's owner.
 */
static Datum
group_state(ViewRuntime *view, KappaGroup *group)
{
	int			naggs = view->sspec.naggs;
	Datum	   *states = palloc(sizeof(Datum) * Max(naggs, 1));
	bool	   *state_nulls = palloc(sizeof(bool) * Max(naggs, 1));
	int			dims[1] = {naggs};
	int			lbs[1] = {1};

	for (int i = 0; i < naggs; i++)
	{
		bytea	   *b = kappa_agg_serialize(&view->sspec.aggs[i], view->sspec.aggcx, group->cxt,
											group->states[i], group->state_nulls[i]);

		states[i] = PointerGetDatum(b);
		state_nulls[i] = (b == NULL);
	}
	return kappa_view_state_form_row(view->view_id, kappa_groups_encode_key(view->groups, group),
									 group->start, group->end,
									 construct_md_array(states, state_nulls, naggs > 0 ? 1 : 0,
														dims, lbs, BYTEAOID, -1, false,
														TYPALIGN_INT));
}

/* Run a prepared statement whose one parameter is an array of rows. */
static void
write_rows(SPIPlanPtr plan, Oid row_type, List *rows, const char *what, const char *view)
{
	Datum	   *elems;
	Datum		array;
	int			n = list_length(rows);
	ListCell   *lc;

	if (n == 0)
		return;
	elems = palloc(sizeof(Datum) * n);
	foreach(lc, rows)
		elems[foreach_current_index(lc)] = PointerGetDatum(lfirst(lc));
	array = PointerGetDatum(construct_array(elems, n, row_type, -1, false, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(plan, &array, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write the %s of kappa view %s", what, view);
}

/*
 * A changed group's row, to write: as an update of the row the group has
 * (it wrote one before, under the same window start), or as a new row.
 * A group has no row if it is new since the last flush, if its session's
 * start moved (the old row is deleted first), and with emit final (only
 * final windows have rows, and a final window's group goes).  A finalized
 * window never comes back (its events are late), nor does a session's
 * start; a crash rebuild and a replay start from empty tables.  With
 * several workers another one may have written the row: an update then.
 */
static void
note_row(KappaEngine *engine, ViewRuntime *view, KappaGroup *group, FlushWrites *w)
{
	Pointer		row = DatumGetPointer(group_row(view, group));
	bool		known = engine->shared ||
		(view->nunique > 0 && !view->emit_final &&
		 group->stored && group->stored_start == group->start);
	MemoryContext old = MemoryContextSwitchTo(w->cxt);

	w->rows = lappend(w->rows, row);
	if (known)
		w->rows_known = lappend(w->rows_known, row);
	else
		w->rows_new = lappend(w->rows_new, row);
	MemoryContextSwitchTo(old);
}

/* Write rows of the view's rows table: inserted, or upserted. */
static void
write_view_rows(ViewRuntime *view, List *rows, bool upsert)
{
	write_rows(upsert ? view->upsert_plan : view->insert_plan, view->row_type, rows, "rows",
			   view->name);
}

/* Write rows of kappa.view_state: inserted, or upserted. */
static void
write_states(ViewRuntime *view, List *states, bool upsert)
{
	kappa_view_state_write(states, upsert);
}

/*
 * Insert the rows (or states) of groups that have none, without ON
 * CONFLICT: a plain insert skips the speculative insertion an upsert pays
 * for (about a third of the cost of writing a new row).  Should one be
 * there after all (someone wrote into the rows table), the insert is
 * undone in its subtransaction and they are upserted, so the view stays
 * exact either way.  write writes them (write_view_rows, write_states);
 * what is "rows" or "states".
 */
static void
insert_new(ViewRuntime *view, void (*write) (ViewRuntime *view, List *tuples, bool upsert),
		   List *tuples, const char *what)
{
	KappaSubxact sub;

	if (tuples == NIL)
		return;
	kappa_subxact_begin(&sub);
	PG_TRY();
	{
		write(view, tuples, false);
		kappa_subxact_commit(&sub);
	}
	PG_CATCH();
	{
		ErrorData  *edata = kappa_subxact_abort(&sub);

		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(edata);
		ereport(LOG,
				(errmsg("kappa view %s found %s it had not written in its table; it updates them",
						view->name, what),
				 errdetail("%s", edata->message)));
		FreeErrorData(edata);
		write(view, tuples, true);
	}
	PG_END_TRY();
}

/*
 * Flush one view: delete merged-away sessions, write changed groups, then
 * finalize the windows every partition has passed.  What the view's code
 * computes, and its rows table, as its owner; kappa's tables after, as
 * the catalog.
 */
void
kappa_flush_view(KappaEngine *engine, ViewRuntime *view, TimestampTz now)
{
	FlushWrites w = {.cxt = CurrentMemoryContext};
	List	   *retired;
	List	   *dirty;
	TimestampTz state_upto;
	KappaWindow *window = &view->spec->window;
	int64		margin = (window->kind == KAPPA_WINDOW_SESSION) ? window->gap : 0;
	KappaCatalogAccess catalog;
	KappaOwnerAccess owner;
	ListCell   *lc;
	instr_time	phase_start;

	kappa_phase_start(engine, &phase_start);
	if (engine->shared && !view->scratch)
	{
		kappa_catalog_enter(&catalog);
		kappa_flush_shared_merge(engine, view, forget_merged, &w);
		if (window->kind != KAPPA_WINDOW_NONE)
			kappa_flush_shared_peer_watermarks(engine, view);
		kappa_catalog_leave(&catalog);
	}
	retired = kappa_groups_take_retired(view->groups);
	dirty = kappa_groups_take_dirty(view->groups);

	/* what every partition has passed, before writing anything */
	if (window->kind != KAPPA_WINDOW_NONE)
	{
		TimestampTz mark = kappa_engine_watermark(engine, view, now);

		if (mark != DT_NOBEGIN && mark > view->finalized_upto)
			view->finalized_upto = mark;
	}
	/* how far states may go: with other workers, what all of them passed */
	state_upto = view->finalized_upto;
	if (engine->shared && !view->scratch && window->kind != KAPPA_WINDOW_NONE)
	{
		kappa_catalog_enter(&catalog);
		state_upto = kappa_flush_shared_finalization(engine, view);
		kappa_catalog_leave(&catalog);
	}

	/* the sinks of a live view: a replay or a check sends nothing */
	if (engine->only_view == 0 && !view->scratch)
		w.sinks = kappa_sink_load(view);

	kappa_owner_enter(&owner, view->owner);
	/* a right revoked since the view was loaded stops it here */
	kappa_view_check_rights(view->spec->query, view->owner);
	foreach(lc, retired)
	{
		KappaGroup *group = lfirst(lc);

		if (group->stored)
			forget_stored(view, group, &w);
		kappa_groups_remove(view->groups, group);
	}

	/*
	 * Changed groups: their rows, and the states of those still open, each
	 * written with one statement.  A session whose start moved (a merge)
	 * has a row under its old start; a final group's stored state goes.
	 */
	foreach(lc, dirty)
	{
		KappaGroup *group = lfirst(lc);
		bool		final = (window->kind != KAPPA_WINDOW_NONE &&
							 state_upto != DT_NOBEGIN &&
							 group->end + margin <= state_upto);

		if (group->stored && group->stored_start != group->start)
			forget_stored(view, group, &w);
		if (final || !view->emit_final)
			note_row(engine, view, group, &w);
		if (final)
		{
			if (group->stored)
				forget_stored_state(view, group, &w);
			kappa_groups_remove(view->groups, group);
			w.finalized++;
			continue;
		}
		if (!view->scratch)
		{
			Pointer		state;

			kappa_phase_end(engine, KAPPA_PHASE_ROWS, &phase_start);
			state = DatumGetPointer(group_state(view, group));

			/* as rows (note_row): a group that stored no state has none */
			if (engine->shared || (group->stored && group->stored_start == group->start))
				w.states = lappend(w.states, state);
			else
				w.states_new = lappend(w.states_new, state);
			kappa_phase_end(engine, KAPPA_PHASE_STATES, &phase_start);
		}
		group->stored = true;
		group->stored_start = group->start;
		group->stored_end = group->end;
	}
	list_free(retired);
	list_free(dirty);

	/*
	 * Unchanged groups whose windows every partition has now passed: their
	 * rows stay as they are (with emit final, written now), their states
	 * go.
	 */
	if (window->kind != KAPPA_WINDOW_NONE && state_upto != DT_NOBEGIN)
	{
		foreach(lc, kappa_groups_all(view->groups))
		{
			KappaGroup *group = lfirst(lc);

			if (group->end + margin > state_upto)
				continue;
			if (view->emit_final)
				note_row(engine, view, group, &w);
			if (group->stored)
				forget_stored_state(view, group, &w);
			kappa_groups_remove(view->groups, group);
			w.finalized++;
		}
	}

	/* the rows table, as the view's owner: its triggers and indexes too */
	SPI_connect();
	delete_rows(view, w.row_deletes);
	if (view->nunique == 0 && w.rows != NIL &&
		SPI_execute(psprintf("DELETE FROM %s", view->rows_table), false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not clear kappa view %s", view->name);
	insert_new(view, write_view_rows, w.rows_new, "rows");
	write_rows(view->upsert_plan, view->row_type, w.rows_known, "rows", view->name);
	/* what the sinks get, before retention deletes any final row */
	if (w.sinks != NIL)
		kappa_sink_collect(view, w.sinks, w.rows,
						   (window->kind == KAPPA_WINDOW_NONE || state_upto == DT_NOBEGIN) ?
						   DT_NOBEGIN : state_upto - margin, w.cxt);
	if (view->retention_us > 0 && state_upto != DT_NOBEGIN)
		apply_retention(view, state_upto - margin, engine->only_view == 0);
	SPI_finish();
	kappa_owner_leave(&owner);
	kappa_phase_end(engine, KAPPA_PHASE_ROWS, &phase_start);

	if (view->scratch)
	{
		/* a recomputation stores nothing else; the lists die with the flush */
		view->rejects = NIL;
		for (int p = 0; p < engine->nparts; p++)
			view->parts[p].dedup_new = NIL;
		return;
	}
	kappa_catalog_enter(&catalog);
	write_view_catalog(engine, view, &w, margin, state_upto);
	kappa_catalog_leave(&catalog);
}

/*
 * The catalog part of a view's flush: its states, positions and counts,
 * dedup keys, and the events it rejected.  In a catalog section.
 */
static void
write_view_catalog(KappaEngine *engine, ViewRuntime *view, FlushWrites *w,
				   int64 margin, TimestampTz state_upto)
{
	TimestampTz final_until;
	bool		moved = false;
	instr_time	phase_start;

	kappa_phase_start(engine, &phase_start);
	delete_states(view, w->state_keys, w->state_starts);
	insert_new(view, write_states, w->states_new, "states");
	kappa_view_state_write(w->states, true);
	if (engine->shared)
		kappa_flush_shared_forget(view, margin, state_upto);
	kappa_phase_end(engine, KAPPA_PHASE_STATES, &phase_start);
	write_rejects(engine, view->rejects);
	view->rejects = NIL;		/* in the flush context, which the flush resets */
	kappa_sink_store(view, w->sinks);
	kappa_phase_end(engine, KAPPA_PHASE_POSITIONS, &phase_start);

	/* positions and counts; dedup keys older than the horizon go */
	for (int p = 0; p < engine->nparts; p++)
	{
		ViewPartition *vp = &view->parts[p];
		KappaViewProgress progress;

		if (vp->dedup)
			write_dedup_keys(view, p, vp,
							 vp->max_time == DT_NOBEGIN ? DT_NOBEGIN :
							 vp->max_time - engine->stream->watermark_us,
							 engine->owned[p]);
		kappa_phase_end(engine, KAPPA_PHASE_DEDUP, &phase_start);
		if (!vp->changed || vp->next < 0)
			continue;
		progress.next_offset = vp->next;
		progress.max_event_time = vp->max_time;
		progress.first_offset = vp->first;
		progress.filtered = vp->filtered;
		progress.duplicate = vp->duplicate;
		progress.delivered = vp->delivered;
		progress.applied = vp->applied;
		progress.late = vp->late;
		progress.rejected = vp->rejected;
		kappa_positions_store_view(view->view_id, p, &progress);
		vp->filtered = vp->duplicate = vp->delivered = vp->applied = vp->late = 0;
		vp->rejected = 0;
		vp->changed = false;
		kappa_phase_end(engine, KAPPA_PHASE_POSITIONS, &phase_start);
	}

	/*
	 * How far its windows are final (kappa_final_until, kappa_stats): what
	 * every worker has passed, less a session's gap, stored when it moved.
	 * With the notify option, a NOTIFY, sent when the flush commits, when
	 * windows became final or rows changed.
	 */
	final_until = (view->spec->window.kind == KAPPA_WINDOW_NONE || state_upto == DT_NOBEGIN) ?
		DT_NOBEGIN : state_upto - margin;
	if (final_until != DT_NOBEGIN && final_until > view->final_stored)
	{
		/* never back: another worker may have stored a later one */
		kappa_positions_raise_final_upto(view->view_id, final_until);
		view->final_stored = final_until;
		moved = true;
	}
	if (view->notify != NULL && engine->only_view == 0 && (moved || w->rows != NIL))
		notify_flush(view, final_until, list_length(w->rows), w->finalized);
	kappa_phase_end(engine, KAPPA_PHASE_POSITIONS, &phase_start);
}

/*
 * The retention option: delete the rows of windows that ended more than
 * the retention before final_until, as the view's owner (the caller is in
 * the owner's section, SPI connected).  Only when that moved on.  A
 * worker's flush deletes at most RETENTION_BATCH rows, and goes on at the
 * next flush; a replay or a check deletes them all, so that they end with
 * what the live view keeps.
 */
#define RETENTION_BATCH 10000

static void
apply_retention(ViewRuntime *view, TimestampTz final_until, bool bounded)
{
	TimestampTz cutoff = final_until - view->retention_us;
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1];
	char	   *sql;

	if (cutoff <= view->retention_done)
		return;
	/* a window's end, or (tumble, hop) its start plus its size */
	values[0] = TimestampTzGetDatum(view->retention_is_end ? cutoff : cutoff - view->spec->window.size);
	sql = psprintf("DELETE FROM %s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %s WHERE %s < $1 LIMIT %d))",
				   view->rows_table, view->rows_table, view->retention_column, RETENTION_BATCH);
	for (;;)
	{
		if (SPI_execute_with_args(sql, 1, types, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete old rows of kappa view %s", view->name);
		if (SPI_processed < RETENTION_BATCH)
		{
			view->retention_done = cutoff;
			return;
		}
		if (bounded)
			return;				/* the next flush goes on */
	}
}

/*
 * NOTIFY the view's channel that a flush finalized windows or changed
 * rows: {"view": "public.v", "final_until": "2026-01-01 00:05:00+00" or
 * null, "changed": rows written, "finalized": groups that became final}.
 * In the flush's transaction, so listeners hear of it once it commits.
 */
static void
notify_flush(ViewRuntime *view, TimestampTz final_until, int64 changed, int64 finalized)
{
	StringInfoData payload;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	initStringInfo(&payload);
	appendStringInfoString(&payload, "{\"view\": ");
	escape_json(&payload, view->name);
	appendStringInfoString(&payload, ", \"final_until\": ");
	if (final_until == DT_NOBEGIN)
		appendStringInfoString(&payload, "null");
	else
		escape_json(&payload, kappa_canonical_time(final_until));
	appendStringInfo(&payload, ", \"changed\": " INT64_FORMAT ", \"finalized\": " INT64_FORMAT "}",
					 changed, finalized);
	values[0] = CStringGetTextDatum(view->notify);
	values[1] = CStringGetTextDatum(payload.data);
	if (SPI_execute_with_args("SELECT pg_catalog.pg_notify($1, $2)", 2, types, values, NULL,
							  false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not notify the listeners of kappa view %s", view->name);
}

/*
 * Store a view partition's dedup keys as the flush leaves them: the keys
 * seen since the last flush go in as one segment; then, in a partition
 * this worker owns, the keys that left the horizon leave memory, and the
 * segments whose keys all did leave the table (after the insert, so that
 * a segment already past the horizon does not stay).  A key seen again
 * after it left the horizon is in two segments; loading keeps its latest
 * time.
 */
static void
write_dedup_keys(ViewRuntime *view, int32 partition, ViewPartition *vp, TimestampTz horizon,
				 bool owned)
{
	int			n = list_length(vp->dedup_new);
	bool		pruned = false;

	if (n > 0)
	{
		const char **keys = palloc(sizeof(char *) * n);
		TimestampTz *times = palloc(sizeof(TimestampTz) * n);
		TimestampTz newest = DT_NOBEGIN;
		ListCell   *lc;

		foreach(lc, vp->dedup_new)
		{
			NewDedupKey *nk = lfirst(lc);

			keys[foreach_current_index(lc)] = nk->key;
			times[foreach_current_index(lc)] = nk->time;
			newest = Max(newest, nk->time);
		}
		kappa_view_dedup_store(view->view_id, partition, newest, n, keys, times);
	}
	/* the new keys point into the table's entries: free those only now */
	vp->dedup_new = NIL;		/* in the flush context, which the flush resets */
	if (horizon == DT_NOBEGIN || !owned)
		return;
	{
		deduptab_iterator it;
		DedupEntry *entry;

		deduptab_start_iterate(vp->dedup, &it);
		while ((entry = deduptab_iterate(vp->dedup, &it)) != NULL)
		{
			if (entry->time < horizon)
			{
				char	   *key = entry->key;

				deduptab_delete_item(vp->dedup, entry);
				pfree(key);
				pruned = true;
			}
		}
	}
	if (pruned)
		kappa_view_dedup_prune(view->view_id, partition, horizon);
}

/* Views in the order their state locks are taken. */
static int
view_id_cmp(const ListCell *a, const ListCell *b)
{
	int32		x = ((ViewRuntime *) lfirst(a))->view_id;
	int32		y = ((ViewRuntime *) lfirst(b))->view_id;

	return (x > y) - (x < y);
}

/* Write the stream's positions and counts.  In a catalog section. */
void
kappa_flush_positions(KappaEngine *engine, TimestampTz now, double flush_ms)
{
	double		seconds = (double) (now - engine->last_flush) / USECS_PER_SEC;

	for (int p = 0; p < engine->nparts; p++)
	{
		StreamPartition *sp = &engine->parts[p];
		KappaStreamProgress progress;

		if (!sp->changed || sp->next < 0)
			continue;
		progress.next_offset = sp->next;
		progress.end_offset = sp->end;
		progress.consumed = sp->consumed;
		progress.dead_lettered = sp->dead;
		progress.last_event_at = sp->last_event_at;
		progress.events_per_s = seconds > 0 ? sp->consumed / seconds : 0;
		progress.flush_ms = flush_ms;
		progress.last_message_at = sp->last_seen;
		kappa_positions_store_stream(engine->stream->id, p, &progress);
		sp->consumed = sp->dead = 0;
		sp->changed = false;
	}
}

/*
 * Insert dead letters: messages the stream could not decode (view_id 0),
 * or events a view rejected (again after a crash: nothing happens).  In a
 * catalog section.
 */
static void
write_rejects(KappaEngine *engine, List *dead_letters)
{
	ListCell   *lc;

	foreach(lc, dead_letters)
	{
		DeadLetter *dl = lfirst(lc);

		kappa_dead_letters_insert(engine->stream->id, dl->view_id, dl->partition, dl->offset,
								  dl->broker_time, dl->key, dl->payload, dl->reason,
								  dl->sqlstate);
	}
}

/*
 * The outcome of the dead letters retried since the last flush
 * (kappa_engine_retry): those whose event went to its views are deleted,
 * in the transaction that writes the views' rows, states and positions,
 * so that each is applied once; those that failed again keep their place
 * with the new reason.  In a catalog section.
 */
static void
write_retried(KappaEngine *engine)
{
	ListCell   *lc;

	foreach(lc, engine->retried)
	{
		RetriedLetter *rl = lfirst(lc);

		if (rl->dead)
			kappa_dead_letters_set_reason(engine->stream->id, rl->partition, rl->offset,
										  rl->view_id, rl->reason, rl->sqlstate);
		else
			kappa_dead_letters_delete(engine->stream->id, rl->partition, rl->offset,
									  rl->view_id);
	}
	engine->retried = NIL;		/* in the flush context, which the flush resets */
}

/*
 * Insert the stream's dead letters and kept late events since the last
 * flush (again after a crash: nothing happens).  In a catalog section.
 */
void
kappa_flush_dead_letters(KappaEngine *engine)
{
	ListCell   *lc;

	write_rejects(engine, engine->dead_letters);
	engine->dead_letters = NIL;
	write_retried(engine);

	foreach(lc, engine->late_events)
	{
		LateEvent  *le = lfirst(lc);

		kappa_late_events_insert(le->view_id, le->partition, le->offset, le->event_time,
								 le->payload);
	}
	engine->late_events = NIL;
}

/*
 * Flush one view in a subtransaction of its own: if it fails for a reason
 * of its own (not the server's), it is marked failed and dropped from the
 * engine, and the flush goes on with the other views.
 */
static void
flush_view_isolated(KappaEngine *engine, ViewRuntime *view, TimestampTz now)
{
	KappaSubxact sub;

	kappa_subxact_begin(&sub);
	PG_TRY();
	{
		kappa_flush_view(engine, view, now);
		kappa_subxact_commit(&sub);
	}
	PG_CATCH();
	{
		ErrorData  *edata = kappa_subxact_abort(&sub);

		if (kappa_error_is_transient(edata->sqlerrcode))
			ReThrowError(edata);
		kappa_engine_fail_view(engine, view, edata);
	}
	PG_END_TRY();
}

/*
 * A view that cannot go on: marked failed, with the error, and dropped
 * from the engine.  kappa_replay or kappa_drop_view gets it out.
 */
void
kappa_engine_fail_view(KappaEngine *engine, ViewRuntime *view, ErrorData *edata)
{
	kappa_view_mark_failed(view->view_id, view->name, edata);
	kappa_engine_forget_view(engine, view);
}

/*
 * Write everything since the last flush, in the caller's transaction:
 * views first, then dead letters and positions.  The caller commits.
 */
void
kappa_engine_flush(KappaEngine *engine)
{
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext old = MemoryContextSwitchTo(engine->flush_cxt);
	List	   *views = list_copy(engine->views);
	KappaCatalogAccess catalog;
	ListCell   *lc;

	/* the state row type, before any view builds states */
	kappa_catalog_enter(&catalog);
	kappa_view_state_prepare();
	kappa_catalog_leave(&catalog);
	if (engine->shared && engine->scratch_table == NULL)
	{
		list_sort(views, view_id_cmp);
		foreach(lc, views)
			kappa_view_lock_state(((ViewRuntime *) lfirst(lc))->view_id);
	}
	foreach(lc, views)
	{
		ViewRuntime *view = lfirst(lc);

		if (engine->isolate_views)
			flush_view_isolated(engine, view, now);
		else
			kappa_flush_view(engine, view, now);
	}
	if (engine->scratch_table == NULL && engine->only_view == 0)
	{
		instr_time	phase_start;

		kappa_phase_start(engine, &phase_start);
		kappa_catalog_enter(&catalog);
		kappa_flush_dead_letters(engine);
		kappa_flush_positions(engine, now,
							  (double) (GetCurrentTimestamp() - now) / 1000.0);
		kappa_catalog_leave(&catalog);
		kappa_phase_end(engine, KAPPA_PHASE_POSITIONS, &phase_start);
	}
	else
		engine->dead_letters = engine->late_events = engine->retried = NIL;	/* flush memory */

	MemoryContextSwitchTo(old);
	MemoryContextReset(engine->flush_cxt);
	/* lookups look at their tables again: as they are now */
	foreach(lc, engine->views)
	{
		ViewRuntime *view = lfirst(lc);

		if (view->lookups)
			kappa_lookups_forget(view->lookups);
	}
	engine->pending = 0;
	engine->flush_due = false;
	engine->last_flush = now;
}

/* Whether the engine should be flushed now: enough events, or a poison met. */
bool
kappa_engine_flush_due(KappaEngine *engine)
{
	return engine->pending >= kappa_flush_events || engine->flush_due;
}
