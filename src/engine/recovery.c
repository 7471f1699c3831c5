/*-------------------------------------------------------------------------
 *
 * recovery.c
 *	  A view's state when its engine loads it: restored, or rebuilt.
 *
 * A worker that loads a view (engine_views.c, load_view) reads back what the
 * last flush stored: positions, watermarks, dedup keys and the states of
 * open groups.  Crash recovery and failover empty the unlogged state
 * tables, which the missing marker row shows; the view is then rebuilt
 * from the first offset it read in each partition, from the log, and from
 * the archive for what the log no longer holds, or, if neither has it,
 * marked needs_replay rather than rebuilt wrong.
 * src/engine/README.md tells the story.
 *
 * Rights (catalog.c): kappa's tables are read and written as the catalog;
 * a stored state is deserialized, and a view's rows table written, as the
 * view's owner.  A view that can no longer run is marked failed here too
 * (kappa_view_mark_failed), with the error that stopped it.
 *
 * src/engine/recovery.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/timestamp.h"

#include "agg/aggregate.h"
#include "archive/archive.h"
#include "engine/engine_internal.h"
#include "engine/history.h"
#include "engine/state.h"
#include "guc.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/positions.h"
#include "kappa_catalog/view_state.h"
#include "kappa_catalog/view_status.h"

/* What load_dedup_key needs: the view and the partitions to load. */
typedef struct DedupLoad
{
	KappaEngine *engine;
	ViewRuntime *view;
	const bool *which;
} DedupLoad;

static bool rebuild_view(KappaEngine *engine, ViewRuntime *view, const char *name);
static void archive_message(const KappaMessage *m, void *arg);
static void load_dedup_key(void *arg, int32 partition, char *key, TimestampTz time);

/*
 * Read a view's positions and stored states.  If its state marker is gone
 * (crash recovery empties unlogged tables), the states are lost: rebuild
 * the view (rebuild_view).  Returns false if the view cannot run.
 *
 * When several workers keep the view (engine->shared), the state is read
 * at each flush instead (flush.c), and the marker is checked under the
 * view's state lock, so that exactly one of them rebuilds the view.
 */
bool
kappa_view_restore(KappaEngine *engine, ViewRuntime *view, const char *name)
{
	KappaCatalogAccess catalog;
	bool		marker;

	if (engine->shared)
		kappa_view_lock_state(view->view_id);
	kappa_catalog_enter(&catalog);
	marker = kappa_view_state_marker_exists(view->view_id);
	kappa_catalog_leave(&catalog);
	if (!marker)
		return rebuild_view(engine, view, name);

	kappa_view_load_partitions(engine, view, NULL);
	if (!engine->shared)
	{
		KappaOwnerAccess owner;
		KappaStoredState *stored;
		int64		nstored;

		kappa_catalog_enter(&catalog);
		nstored = kappa_view_state_read(view->view_id, &stored);
		kappa_owner_enter(&owner, view->owner);
		for (int64 i = 0; i < nstored; i++)
			(void) kappa_view_restore_state(view, &stored[i], false);
		kappa_owner_leave(&owner);
		kappa_catalog_leave(&catalog);
	}
	view->finalized_upto = kappa_engine_watermark(engine, view, GetCurrentTimestamp());
	if (engine->shared)
	{
		/*
		 * States are deleted up to the mark every worker has stored
		 * (flush.c): never take as on time what a worker, this one before
		 * a restart included, has already finalized.
		 */
		TimestampTz furthest;

		kappa_catalog_enter(&catalog);
		furthest = kappa_view_marks_furthest(view->view_id);
		if (furthest != DT_NOBEGIN)
			view->finalized_upto = Max(view->finalized_upto, furthest);
		kappa_catalog_leave(&catalog);
	}
	return true;
}

/*
 * Read a view's positions, watermarks and dedup keys in the partitions
 * which[] says (NULL: all) as the last flush stored them; where there are
 * none, the view starts there as its options say.
 */
void
kappa_view_load_partitions(KappaEngine *engine, ViewRuntime *view, const bool *which)
{
	KappaCatalogAccess catalog;
	ListCell   *lc;

	for (int p = 0; p < engine->nparts; p++)
	{
		ViewPartition *vp = &view->parts[p];

		if (which && !which[p])
			continue;
		vp->next = view->start_latest ? KAPPA_OFFSET_END : KAPPA_OFFSET_BEGINNING;
		vp->first = -1;
		vp->max_time = DT_NOBEGIN;
		if (vp->dedup)
			deduptab_reset(vp->dedup);
	}

	kappa_catalog_enter(&catalog);
	foreach(lc, kappa_positions_load_view(view->view_id))
	{
		KappaPosition *pos = lfirst(lc);
		int32		p = pos->partition;

		if (p < 0 || p >= engine->nparts || (which && !which[p]))
			continue;
		view->parts[p].next = pos->next_offset;
		view->parts[p].max_time = pos->max_event_time;	/* DT_NOBEGIN if none */
		view->parts[p].first = pos->first_offset;	/* -1 if none */
	}

	if (engine->dedup_col >= 0)
	{
		DedupLoad	load = {.engine = engine,.view = view,.which = which};

		kappa_view_dedup_load(view->view_id, load_dedup_key, &load);
	}
	kappa_catalog_leave(&catalog);
}

/*
 * A stored dedup key, into its partition's table if it is within the
 * partition's horizon (a segment whose newest key is still in it can hold
 * older ones); a key in two segments, seen again after it left the
 * horizon, has the later time.
 */
static void
load_dedup_key(void *arg, int32 partition, char *key, TimestampTz time)
{
	DedupLoad  *load = arg;
	KappaEngine *engine = load->engine;
	ViewPartition *vp;
	DedupEntry *entry;
	bool		found;

	if (partition < 0 || partition >= engine->nparts || (load->which && !load->which[partition]))
		return;
	vp = &load->view->parts[partition];
	if (vp->max_time != DT_NOBEGIN && time < vp->max_time - engine->stream->watermark_us)
		return;
	entry = deduptab_lookup(vp->dedup, key);
	if (entry == NULL)
	{
		entry = deduptab_insert(vp->dedup, MemoryContextStrdup(load->view->cxt, key), &found);
		entry->time = time;
	}
	else
		entry->time = Max(entry->time, time);
}

/*
 * Bring back one stored group (kappa_view_state_read's): as it was, or,
 * with merge, combined into the group it merges into (kappa_groups_merge),
 * which is then dirty and not marked stored.  Returns the group.  Runs
 * the aggregates' and the keys' code: call as the view's owner.
 */
KappaGroup *
kappa_view_restore_state(ViewRuntime *view, const KappaStoredState *row, bool merge)
{
	KappaStateSpec *sspec = &view->sspec;
	KappaGroup *group;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;

	group = merge ?
		kappa_groups_merge(view->groups, row->group_key, row->window_start,
						   row->window_end) :
		kappa_groups_restore(view->groups, row->group_key, row->window_start,
							 row->window_end);
	deconstruct_array(row->states, BYTEAOID, -1, false, TYPALIGN_INT, &elems, &elem_nulls, &n);
	for (int a = 0; a < n && a < sspec->naggs; a++)
	{
		bytea	   *stored = elem_nulls[a] ? NULL : DatumGetByteaPP(elems[a]);
		Datum		state;
		bool		state_null;

		if (!merge)
		{
			kappa_agg_deserialize(&sspec->aggs[a], sspec->aggcx, group->cxt, stored,
								  &group->states[a], &group->state_nulls[a]);
			continue;
		}
		kappa_agg_deserialize(&sspec->aggs[a], sspec->aggcx, group->cxt, stored,
							  &state, &state_null);
		kappa_agg_combine(&sspec->aggs[a], sspec->aggcx, group->cxt,
						  &group->states[a], &group->state_nulls[a], state, state_null);
	}
	return group;
}

/*
 * A view whose stored states were lost starts over from the first offset it
 * read in each partition, so that it never goes on with wrong numbers: its
 * rows and positions are deleted, and the log is read again.  That is
 * exact only while the log still holds those offsets.  When it does not
 * (retention deleted them), the view is marked needs_replay instead, with
 * the reason, and is not run: kappa_views and kappa_stats show it, and the
 * log says so.  Returns whether the view can run.
 */
static bool
rebuild_view(KappaEngine *engine, ViewRuntime *view, const char *name)
{
	MemoryContext caller = CurrentMemoryContext;
	char	   *lost = NULL;
	List	   *positions;
	int			npositions;
	KappaCatalogAccess catalog;
	KappaOwnerAccess owner;
	ListCell   *plc;

	kappa_catalog_enter(&catalog);
	positions = kappa_positions_view_first_offsets(view->view_id);
	npositions = list_length(positions);
	foreach(plc, positions)
	{
		KappaPosition *pos = lfirst(plc);
		int32		p = pos->partition;
		int64		first = pos->first_offset < 0 ? 0 : pos->first_offset;	/* none: 0 */
		int64		log_start;

		if (p < 0 || p >= engine->nparts)
			continue;
		view->parts[p].next = first;
		view->parts[p].first = first;
		log_start = engine->log_start ? engine->log_start(engine->log_arg, p) : -1;
		if (log_start < 0)
			continue;

		/*
		 * What the log no longer holds, the archive may: the rebuild reads
		 * from the archive first, up to where the log takes over (with
		 * kappa.replay_prefer_archive, as far as the archive reaches, up to
		 * the stream's position).  Offsets neither holds are fine only if
		 * the view never saw them (kappa.view_gaps).
		 */
		{
			int64		upto = engine->parts[p].next >= 0 ?
				Max(engine->parts[p].next, log_start) : log_start;
			List	   *spans = kappa_history_spans(engine->stream, p, first, upto, log_start,
													kappa_replay_prefer_archive);
			List	   *known = kappa_history_view_gaps(view->view_id, p);
			ListCell   *lc;
			StringInfoData missing;

			initStringInfo(&missing);
			if (kappa_history_count(kappa_history_gaps(spans, known), p, &missing) > 0)
			{
				/* in the caller's memory: it outlives the catalog section */
				if (lost == NULL)
					lost = MemoryContextStrdup(caller, psprintf("its state was lost to crash recovery or a failover, and partition %d of the log now begins at offset "
									INT64_FORMAT ", after offset " INT64_FORMAT " where the view began; no archive holds %s",
									p, log_start, first, missing.data));
				continue;
			}
			foreach(lc, spans)
			{
				KappaSpan  *span = lfirst(lc);

				if (span->source == KAPPA_FROM_LOG)
					break;
				view->parts[p].archive_to = span->to;
			}
		}
	}

	if (lost != NULL)
	{
		kappa_views_mark_needs_replay(view->view_id, lost);
		kappa_catalog_leave(&catalog);
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("kappa view %s needs a replay and is not kept current", name),
				 errdetail("The view's %s.", lost),
				 errhint("Register the Capture files that hold the missing offsets with kappa_archive_register and rebuild the view with kappa_replay, or rebuild it without them with kappa_replay(..., accept_gaps => true).")));
		return false;
	}

	kappa_positions_forget_view(view->view_id);
	kappa_view_dedup_forget(view->view_id);
	kappa_view_state_marker_insert(view->view_id);

	/*
	 * The other workers of a shared view load its positions once this
	 * transaction commits: they must find every partition back at its first
	 * offset, not at the view's start.
	 */
	for (int p = 0; engine->shared && p < engine->nparts; p++)
	{
		if (view->parts[p].first < 0)
			continue;
		kappa_positions_restart_view(view->view_id, p, view->parts[p].first);
	}
	kappa_catalog_leave(&catalog);

	/* its rows, as its owner: the table is the owner's */
	kappa_owner_enter(&owner, view->owner);
	SPI_connect();
	if (SPI_execute(psprintf("DELETE FROM %s", view->rows_table), false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not reset view %s", name);
	SPI_finish();
	kappa_owner_leave(&owner);

	/* what it rejected before, it rejects again, without failing first */
	if (engine->poisons)
	{
		kappa_poisons_load(engine->poisons, engine->stream->id, view->view_id);
		kappa_poisons_load(engine->poisons, engine->stream->id, 0);
	}
	if (npositions > 0)
		ereport(WARNING,
				(errmsg("kappa view %s lost its state to crash recovery or a failover; rebuilding it from the log", name),
				 errdetail("Each partition is read again from the first offset the view read there.")));
	return true;
}

/* A message read back from the archive: through the engine, like any. */
static void
archive_message(const KappaMessage *m, void *arg)
{
	CHECK_FOR_INTERRUPTS();
	kappa_engine_process((KappaEngine *) arg, m);
}

/*
 * A view rebuilt after a crash reads what the log no longer holds back
 * from the archive first (rebuild_view found it there); the other views
 * skip these messages, which are behind their positions, and the stream
 * does not count them again.
 */
void
kappa_view_rebuild_from_archive(KappaEngine *engine, ViewRuntime *view)
{
	for (int p = 0; p < engine->nparts; p++)
	{
		ViewPartition *vp = &view->parts[p];
		ListCell   *lc;

		if (vp->archive_to < 0)
			continue;
		ereport(LOG,
				(errmsg("kappa view %s: reading offsets " INT64_FORMAT " to " INT64_FORMAT " of partition %d from the archive",
						view->name, vp->first, vp->archive_to - 1, p)));
		/* the spans rebuild_view found: the archive's, and gaps the view never saw */
		foreach(lc, kappa_history_spans(engine->stream, p, vp->first, vp->archive_to,
										vp->archive_to, true))
		{
			KappaSpan  *span = lfirst(lc);

			if (span->source == KAPPA_FROM_ARCHIVE)
				kappa_archive_read_range(engine->stream, p, span->from, span->to, archive_message, engine);
		}
		vp->archive_to = -1;
	}
}


/*
 * Mark a view failed, with the error that stopped it, and say so in the
 * log: its worker runs it no more, and the stream's other views go on.
 * kappa_replay rebuilds it (once what failed is mended), kappa_drop_view
 * removes it.  kappa_views shows the error to the view's owner, and its
 * SQLSTATE to everyone.  name may be NULL (then it is looked up).
 */
void
kappa_view_mark_failed(int32 view_id, const char *name, ErrorData *edata)
{
	char	   *stored_name = kappa_views_mark_failed(view_id, kappa_error_text(edata),
													  unpack_sql_state(edata->sqlerrcode));

	if (name == NULL)
		name = stored_name;
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("kappa view %s failed and is not kept current", name ? name : "(dropped)"),
			 errdetail("%s", kappa_error_text(edata)),
			 ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION &&
			 edata->sqlerrcode != ERRCODE_INSUFFICIENT_PRIVILEGE ?
			 errhint("kappa runs a view's code with search_path = pg_catalog, pg_temp: schema-qualify the names its functions use, or attach a search_path to them (CREATE FUNCTION ... SET search_path = ...); then rebuild the view with kappa_replay.") :
			 errhint("Mend the cause, then rebuild the view with kappa_replay, or drop it with kappa_drop_view.")));
}
