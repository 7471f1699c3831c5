/*-------------------------------------------------------------------------
 *
 * gap.c
 *	  Offsets a stream lost: retention deleted them before its worker read
 *	  them, and no archive holds them.
 *
 * A worker whose position falls behind the start of a partition's log
 * (librdkafka reports it instead of moving the position: see consumer.c)
 * reads what it can of the missing offsets from the archive.  What is left
 * is a gap.  It is never skipped silently: it is recorded in kappa.gaps,
 * logged with its range, and then either the worker stops there (the
 * stream's on_gap = 'stop', the default) until someone decides, or it
 * counts the offsets as lost (kappa.partitions.lost), records in
 * kappa.view_gaps which views miss which offsets, marks those views
 * "incomplete", and goes on.  Deciding is registering the Capture files
 * that hold the offsets (kappa_archive_register: the worker then reads
 * them) or accepting the loss (kappa_accept_gap).
 *
 * src/engine/gap.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "engine/engine.h"
#include "engine/gap.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/gaps.h"
#include "kappa_catalog/positions.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view_status.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kappa_accept_gap);

/*
 * Whether the stream goes on past lost offsets of a partition beginning at
 * from: its on_gap says so, or kappa_accept_gap accepted a gap recorded
 * there.
 */
bool
kappa_gap_accepted(KappaStream *stream, int32 partition, int64 from)
{
	bool		accepted;
	KappaCatalogAccess catalog;

	if (stream->skip_gaps)
		return true;
	kappa_catalog_enter(&catalog);
	/* not read-only: kappa_accept_gap may have committed just now */
	accepted = kappa_gaps_accepted(stream->id, partition, from);
	kappa_catalog_leave(&catalog);
	return accepted;
}

/*
 * Forget the gaps of a partition not accepted yet from offset from on: the
 * worker is about to look again, and the archive may hold them now.
 */
void
kappa_gap_forget(KappaStream *stream, int32 partition, int64 from)
{
	KappaCatalogAccess catalog;

	kappa_catalog_enter(&catalog);
	kappa_gaps_forget(stream->id, partition, from);
	kappa_catalog_leave(&catalog);
}

/*
 * Record lost offsets [from, to) of a partition in kappa.gaps, in the
 * caller's transaction.  A gap found again (the worker stopped there, and
 * retention went on meanwhile) grows; it stays accepted once it was.
 */
void
kappa_gap_record(KappaStream *stream, int32 partition, int64 from, int64 to, bool accepted)
{
	KappaCatalogAccess catalog;

	kappa_catalog_enter(&catalog);
	kappa_gaps_record(stream->id, partition, from, to, accepted);
	kappa_catalog_leave(&catalog);
}

/*
 * The stream goes on past lost offsets of a partition: count those it had
 * not read as lost, and record for each view the offsets it misses (gaps,
 * from kappa_engine_skip), marking it incomplete.  In the caller's
 * transaction, which the worker's next flush commits.
 */
void
kappa_gap_skip(KappaStream *stream, int32 partition, int64 to, int64 stream_lost, List *gaps)
{
	ListCell   *lc;
	KappaCatalogAccess catalog;

	kappa_catalog_enter(&catalog);
	if (stream_lost > 0)
		kappa_positions_count_lost(stream->id, partition, to, stream_lost);
	foreach(lc, gaps)
	{
		KappaViewGap *gap = lfirst(lc);

		kappa_view_gaps_record(gap->view_id, partition, gap->from, gap->to);
		kappa_views_mark_incomplete(gap->view_id);
	}
	kappa_catalog_leave(&catalog);
}

/*
 * kappa_accept_gap(stream) accepts the loss of the offsets the stream's
 * worker stopped at: it goes on after them, counting them as lost.
 * Returns how many offsets that is.
 */
Datum
kappa_accept_gap(PG_FUNCTION_ARGS)
{
	KappaStream *stream;
	int64		accepted = 0;
	KappaCatalogAccess catalog;

	kappa_require_preload();
	stream = kappa_stream_load_owned(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	kappa_catalog_enter(&catalog);
	accepted = kappa_gaps_accept(stream->id);
	kappa_catalog_leave(&catalog);
	if (accepted == 0)
		ereport(NOTICE,
				(errmsg("stream \"%s\" has no gap to accept", stream->name)));
	/* the worker stopped at the gap: start it again once this commits */
	kappa_wake_launcher_on_commit();
	PG_RETURN_INT64(accepted);
}
