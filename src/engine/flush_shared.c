/*-------------------------------------------------------------------------
 *
 * flush_shared.c
 *	  A view's flush when the stream's workers share its state
 *	  (kappa.workers_per_stream > 1).
 *
 * With several workers per stream, each applies only the partitions its
 * consumer group gave it, and a view's groups in memory hold only what
 * this worker applied since its last flush: the stored state is the sum
 * of every worker's flushes.  Each flush (flush.c) therefore takes the
 * view's state lock (views in id order, so two workers never wait on each
 * other crosswise), reads the stored groups it changes, combines them
 * into its own with each aggregate's combine function (sessions that the
 * new events bridge merge, as they do in memory), and writes the results;
 * it finalizes by every partition's watermark, the other workers' as they
 * last stored them, and afterwards forgets its groups.  This file holds
 * those steps; flush.c decides when each runs.
 *
 * Rights: as flush.c's: kappa's tables through kappa_catalog, in a
 * catalog section; the states combined as the view's owner.
 *
 * Lifetime: what is read lives in the flush's memory (SPI's for the rows,
 * the groups' contexts for what is combined into them).
 *
 * src/engine/flush_shared.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "engine/engine_internal.h"
#include "engine/state.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/positions.h"
#include "kappa_catalog/view_state.h"
#include "shmem.h"

/*
 * bring the stored groups this flush changes into memory,
 * combined with this worker's.  Windowed and running groups are read by
 * (key, window start) and then rewritten under the same; the stored
 * sessions of the changed keys are all read, merged where they overlap,
 * and handed to forget (the flush notes their rows and states for
 * deletion), so that the merged sessions are written afresh.  In a
 * catalog section; the states are combined, and forget called, as the
 * view's owner.
 */
void
kappa_flush_shared_merge(KappaEngine *engine, ViewRuntime *view,
						 void (*forget) (ViewRuntime *view, KappaGroup *group, void *arg),
						 void *arg)
{
	bool		sessions = (view->spec->window.kind == KAPPA_WINDOW_SESSION);
	List	   *changed = kappa_groups_all(view->groups);
	int			n = list_length(changed);
	bytea	  **keys;
	TimestampTz *starts;
	KappaStoredState *stored;
	int64		nstored;
	KappaOwnerAccess owner;
	ListCell   *lc;

	if (n == 0)
		return;
	keys = palloc(sizeof(bytea *) * n);
	starts = palloc(sizeof(TimestampTz) * n);
	foreach(lc, changed)
	{
		KappaGroup *group = lfirst(lc);

		keys[foreach_current_index(lc)] = kappa_groups_encode_key(view->groups, group);
		starts[foreach_current_index(lc)] = group->start;
	}
	nstored = sessions ?
		kappa_view_state_read_keys(view->view_id, n, keys, &stored) :
		kappa_view_state_read_groups(view->view_id, n, keys, starts, &stored);

	kappa_owner_enter(&owner, view->owner);
	for (int64 i = 0; i < nstored; i++)
	{
		KappaGroup *group = kappa_view_restore_state(view, &stored[i], true);

		if (sessions)
		{
			KappaGroup	was = *group;

			was.stored_start = stored[i].window_start;
			was.stored_end = stored[i].window_end;
			forget(view, &was, arg);
		}
		else
		{
			group->stored = true;
			group->stored_start = group->start;
			group->stored_end = group->end;
		}
	}
	kappa_owner_leave(&owner);
}

/*
 * the watermarks of the partitions other workers consume,
 * as their last flushes stored them.  Such a partition may count as idle
 * only while a running worker consumes it (shared memory says which): idle
 * when that worker last consumed a message there, or was given it, more
 * than idle_timeout ago.  A partition whose worker is gone, or that the
 * consumer group is moving, holds finalization back, since messages may be
 * waiting there.
 */
void
kappa_flush_shared_peer_watermarks(KappaEngine *engine, ViewRuntime *view)
{
	TimestampTz now = GetCurrentTimestamp();
	ListCell   *lc;

	foreach(lc, kappa_positions_view_watermarks(view->view_id, engine->stream->id))
	{
		KappaPosition *pos = lfirst(lc);
		int32		p = pos->partition;
		TimestampTz since;

		if (p < 0 || p >= engine->nparts || engine->owned[p])
			continue;
		view->parts[p].max_time = pos->max_event_time;	/* DT_NOBEGIN if none */
		since = kappa_partition_owned_since(engine->stream->id, p);
		if (since == 0)
			engine->parts[p].last_seen = now;	/* nobody reads it: not idle */
		else
			engine->parts[p].last_seen = (pos->last_message_at == DT_NOBEGIN) ? since :
				Max(since, pos->last_message_at);
	}
}

/*
 * how far a window's stored state may be deleted.  Each
 * worker decides lateness by its own finalization mark, and the marks of
 * two workers differ for a while (idle partitions, flush times); a state
 * deleted by one worker's mark could then be recreated, partial, by an
 * event another worker still takes as on time.  So each worker stores its
 * mark in kappa.view_marks, moves it up to the furthest any worker has
 * reached (that only makes it treat more as late), and states go only up
 * to the mark every worker of the stream has passed.  In a catalog section.
 */
TimestampTz
kappa_flush_shared_finalization(KappaEngine *engine, ViewRuntime *view)
{
	bool		all_workers;
	TimestampTz lowest;
	TimestampTz highest;
	TimestampTz all_passed = DT_NOBEGIN;

	if (view->finalized_upto != DT_NOBEGIN)
		kappa_view_marks_store(view->view_id, engine->worker, view->finalized_upto);
	kappa_view_marks_read(view->view_id, engine->nworkers, &all_workers, &lowest, &highest);
	if (highest != DT_NOBEGIN && highest > view->finalized_upto)
		view->finalized_upto = highest;
	if (all_workers)
		all_passed = lowest;
	return Min(all_passed, view->finalized_upto);
}

/*
 * everything this flush merged is stored now, so memory
 * keeps nothing until the next event; and the stored states of every
 * window all workers have passed (state_upto) go, whichever worker wrote
 * them.  In a catalog section.
 */
void
kappa_flush_shared_forget(ViewRuntime *view, int64 margin, TimestampTz state_upto)
{
	ListCell   *lc;

	foreach(lc, kappa_groups_all(view->groups))
		kappa_groups_remove(view->groups, lfirst(lc));
	if (view->spec->window.kind != KAPPA_WINDOW_NONE && state_upto != DT_NOBEGIN)
		kappa_view_state_delete_finalized(view->view_id, state_upto - margin);
}
