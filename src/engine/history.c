/*-------------------------------------------------------------------------
 *
 * history.c
 *	  A partition's history from any mix of archive and log.
 *
 * A stream's history is held in two places: the log, from where retention
 * has brought its start to its end, and the archive, as the ranges of
 * offsets kappa.archive_files records (kappa's own files, and Capture
 * files registered from any number of directories).  Archive ranges may
 * lie before the log's start, overlap it, or leave holes; offsets neither
 * holds are a gap.  kappa_history_spans cuts the offsets a reader needs
 * into spans, each read from one source, in offset order: the log wherever
 * it holds an offset, the archive elsewhere, or, with
 * kappa.replay_prefer_archive, the archive wherever it holds one.
 * kappa_history_read then reads every partition's spans in order, the
 * archive's directly and the log's through a consumer, so that each
 * partition's messages reach the reader in offset order.  kappa_replay,
 * kappa_check and the worker (for a partition whose position fell behind
 * the log's start) all read history this way.
 *
 * src/engine/history.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "archive/archive.h"
#include "engine/history.h"
#include "kappa_catalog/archive_files.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/gaps.h"

/* An archive range, [from, to). */
typedef struct Range
{
	int64		from;
	int64		to;
} Range;

/* The archive ranges archive_ranges has merged so far. */
typedef struct MergedRanges
{
	List	   *ranges;			/* Range, in offset order */
	Range	   *last;			/* the last of them, or NULL */
	MemoryContext cxt;			/* where they live */
} MergedRanges;

/* A file's range [f, t), from the manifest, merged into the ranges. */
static void
merge_range(int64 f, int64 t, void *arg)
{
	MergedRanges *merged = arg;
	Range	   *last = merged->last;
	MemoryContext spi;

	if (last != NULL && f <= last->to)
	{
		last->to = Max(last->to, t);
		return;
	}
	/* the range and the list in the caller's memory: SPI's goes with the catalog section */
	spi = MemoryContextSwitchTo(merged->cxt);
	last = palloc(sizeof(Range));
	last->from = f;
	last->to = t;
	merged->ranges = lappend(merged->ranges, last);
	MemoryContextSwitchTo(spi);
	merged->last = last;
}

/*
 * The archive's ranges of a partition that meet [from, to), merged where
 * they touch or overlap, in offset order.  Not read-only: a worker's
 * transaction may be older than files registered since.
 */
static List *
archive_ranges(KappaStream *stream, int32 partition, int64 from, int64 to)
{
	MergedRanges merged = {.ranges = NIL, .last = NULL, .cxt = CurrentMemoryContext};
	KappaCatalogAccess catalog;

	kappa_catalog_enter(&catalog);
	kappa_archive_files_ranges(stream->id, partition, from, to, merge_range, &merged);
	kappa_catalog_leave(&catalog);
	return merged.ranges;
}

/* Append a span, merging it into the last one if it continues it. */
static List *
add_span(List *spans, int64 from, int64 to, KappaSource source)
{
	KappaSpan  *span;

	if (spans != NIL)
	{
		span = llast(spans);
		if (span->source == source && span->to == from)
		{
			span->to = to;
			return spans;
		}
	}
	span = palloc(sizeof(KappaSpan));
	span->from = from;
	span->to = to;
	span->source = source;
	return lappend(spans, span);
}

/*
 * Cut offsets [from, to) of a partition into spans by where they are read
 * from, in offset order: the log holds what is at or after log_start; the
 * archive what kappa.archive_files records.  Where both hold an offset,
 * prefer_archive chooses.  Spans from nowhere are the gaps.
 */
List *
kappa_history_spans(KappaStream *stream, int32 partition, int64 from, int64 to,
					int64 log_start, bool prefer_archive)
{
	List	   *ranges;
	ListCell   *lc;
	List	   *spans = NIL;
	int64		at = from;

	if (from >= to)
		return NIL;
	ranges = archive_ranges(stream, partition, from, to);
	lc = list_head(ranges);
	while (at < to)
	{
		Range	   *range;
		bool		in_archive;
		bool		in_log = (at >= log_start);
		int64		until = to;
		KappaSource source;

		/* the first archive range that ends after at */
		while (lc != NULL && ((Range *) lfirst(lc))->to <= at)
			lc = lnext(ranges, lc);
		range = lc ? lfirst(lc) : NULL;
		in_archive = (range != NULL && range->from <= at);

		/* up to where neither changes */
		if (range != NULL)
			until = Min(until, in_archive ? range->to : range->from);
		if (!in_log)
			until = Min(until, log_start);

		if (in_archive && (prefer_archive || !in_log))
			source = KAPPA_FROM_ARCHIVE;
		else if (in_log)
			source = KAPPA_FROM_LOG;
		else
			source = KAPPA_FROM_NOWHERE;
		spans = add_span(spans, at, until, source);
		at = until;
	}
	return spans;
}

/*
 * The offsets of a partition a view is recorded never to have seen
 * (kappa.view_gaps), as spans from nowhere, in offset order.
 */
List *
kappa_history_view_gaps(int32 view_id, int32 partition)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *ranges;
	List	   *gaps = NIL;
	ListCell   *lc;
	KappaCatalogAccess catalog;

	kappa_catalog_enter(&catalog);
	ranges = kappa_view_gaps_of_partition(view_id, partition);
	foreach(lc, ranges)
	{
		KappaOffsetRange *range = lfirst(lc);
		MemoryContext spi = MemoryContextSwitchTo(caller);

		gaps = add_span(gaps, range->from, range->to, KAPPA_FROM_NOWHERE);
		MemoryContextSwitchTo(spi);
	}
	kappa_catalog_leave(&catalog);
	return gaps;
}

/*
 * The offsets of the spans held nowhere, less those in known (spans, in
 * offset order, such as a view's recorded gaps): returns the pieces, as
 * spans in offset order.
 */
List *
kappa_history_gaps(List *spans, List *known)
{
	List	   *gaps = NIL;
	ListCell   *lc;

	foreach(lc, spans)
	{
		KappaSpan  *span = lfirst(lc);
		int64		at = span->from;
		ListCell   *kc;

		if (span->source != KAPPA_FROM_NOWHERE)
			continue;
		foreach(kc, known)
		{
			KappaSpan  *k = lfirst(kc);

			if (k->to <= at || k->from >= span->to)
				continue;
			if (k->from > at)
				gaps = add_span(gaps, at, k->from, KAPPA_FROM_NOWHERE);
			at = Max(at, k->to);
			if (at >= span->to)
				break;
		}
		if (at < span->to)
			gaps = add_span(gaps, at, span->to, KAPPA_FROM_NOWHERE);
	}
	return gaps;
}

/*
 * How many offsets the gaps hold; with ranges, the partition's ranges are
 * appended to it ("partition 0: offsets 100-499, 800-899").
 */
int64
kappa_history_count(List *gaps, int32 partition, StringInfo ranges)
{
	int64		count = 0;
	ListCell   *lc;

	foreach(lc, gaps)
	{
		KappaSpan  *gap = lfirst(lc);

		if (ranges != NULL)
			appendStringInfo(ranges, "%s" INT64_FORMAT "-" INT64_FORMAT,
							 foreach_current_index(lc) == 0 ?
							 psprintf("%spartition %d: offsets ", ranges->len > 0 ? "; " : "", partition) :
							 ", ",
							 gap->from, gap->to - 1);
		count += gap->to - gap->from;
	}
	return count;
}

/*
 * Read offsets [from[p], to[p]) of every partition from wherever they are
 * held, each partition in offset order: in rounds, each reading every
 * partition's spans up to its next log span from the archive, and then
 * those log spans together from the log.  Offsets held nowhere are
 * skipped: the caller checked first that it may go on without them.
 */
void
kappa_history_read(KappaConsumer *consumer, const KappaHistoryRead *read)
{
	int			nparts = read->nparts;
	List	  **spans = palloc0(sizeof(List *) * Max(nparts, 1));
	int		   *next = palloc0(sizeof(int) * Max(nparts, 1));
	int64	   *log_from = palloc(sizeof(int64) * Max(nparts, 1));
	int64	   *log_to = palloc(sizeof(int64) * Max(nparts, 1));

	for (int p = 0; p < nparts; p++)
	{
		if (read->from[p] == KAPPA_OFFSET_NONE || !kappa_stream_owns(read->stream, p))
			continue;
		spans[p] = kappa_history_spans(read->stream, p, read->from[p], read->to[p],
									   read->log_start[p], read->prefer_archive);
	}

	for (;;)
	{
		bool		left = false;
		bool		from_log = false;

		for (int p = 0; p < nparts; p++)
		{
			log_from[p] = KAPPA_OFFSET_NONE;
			log_to[p] = KAPPA_OFFSET_NONE;
			while (next[p] < list_length(spans[p]))
			{
				KappaSpan  *span = list_nth(spans[p], next[p]++);

				if (span->source == KAPPA_FROM_ARCHIVE)
					kappa_archive_read_range(read->stream, p, span->from, span->to,
									   read->from_archive, read->arg);
				else if (span->source == KAPPA_FROM_LOG)
				{
					log_from[p] = span->from;
					log_to[p] = span->to;
					from_log = true;
					break;
				}
			}
			left |= (next[p] < list_length(spans[p]));
		}
		if (from_log)
			kappa_consumer_read_ranges(consumer, nparts, log_from, log_to, read->from_log,
									   read->arg, read->what);
		if (!left)
			break;
	}
}
