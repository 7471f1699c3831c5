/*-------------------------------------------------------------------------
 *
 * gaps.c
 *	  Offsets a stream lost (kappa.gaps), and those its views never saw
 *	  (kappa.view_gaps).
 *
 * Retention can delete offsets of a partition before the stream's worker
 * read them; what no archive holds either is a gap (engine/gap.c says how
 * the worker finds and decides them).  kappa.gaps records each with the
 * offset it begins at: recorded again, it grows, and it stays accepted
 * once kappa_accept_gap (or the stream's on_gap = 'skip') accepted it.  A
 * stream that goes on past a gap records in kappa.view_gaps, per view,
 * the offsets the view misses, and so does kappa_replay for a new version
 * built without offsets held nowhere; those views are "incomplete", and a
 * rebuild (engine/history.c) knows those offsets were never seen.
 * kappa.view_gaps' rows go with their view (ON DELETE CASCADE).
 *
 * Rights and transactions: every function runs in the caller's catalog
 * section (catalog.c) and transaction.  Reads are not read-only: a gap
 * kappa_accept_gap accepted may have committed just before.
 *
 * Lifetime: what a read returns is allocated in the current memory
 * context; the statements are kept for the backend's life (statement.c).
 *
 * src/kappa_catalog/gaps.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

#include "kappa_catalog/gaps.h"
#include "kappa_catalog/statement.h"


/*
 * Whether a gap of the partition that holds offset was accepted: the
 * stream goes on past it.
 */
bool
kappa_gaps_accepted(int32 stream_id, int32 partition, int64 offset)
{
	static KappaStatement find_accepted =
		KAPPA_STATEMENT("SELECT FROM kappa.gaps WHERE stream_id = $1 AND partition = $2 "
						"AND from_offset <= $3 AND to_offset > $3 AND accepted",
						"int4", "int4", "int8");
	Datum		values[3] = {Int32GetDatum(stream_id), Int32GetDatum(partition),
	Int64GetDatum(offset)};

	return kappa_statement_run(&find_accepted, values, NULL, SPI_OK_SELECT, 1) > 0;
}

/*
 * Delete the gaps of a partition not accepted yet that begin at from or
 * later: the worker is about to look again.
 */
void
kappa_gaps_forget(int32 stream_id, int32 partition, int64 from)
{
	static KappaStatement forget =
		KAPPA_STATEMENT("DELETE FROM kappa.gaps WHERE stream_id = $1 AND partition = $2 "
						"AND from_offset >= $3 AND NOT accepted",
						"int4", "int4", "int8");
	Datum		values[3] = {Int32GetDatum(stream_id), Int32GetDatum(partition),
	Int64GetDatum(from)};

	kappa_statement_run(&forget, values, NULL, SPI_OK_DELETE, 0);
}

/*
 * Record lost offsets [from, to) of a partition.  A gap recorded from the
 * same offset grows to the larger end, and stays accepted once it was.
 */
void
kappa_gaps_record(int32 stream_id, int32 partition, int64 from, int64 to, bool accepted)
{
	static KappaStatement record =
		KAPPA_STATEMENT("INSERT INTO kappa.gaps AS g (stream_id, partition, from_offset, to_offset, accepted) "
						"VALUES ($1, $2, $3, $4, $5) "
						"ON CONFLICT (stream_id, partition, from_offset) DO UPDATE SET "
						"to_offset = greatest(g.to_offset, EXCLUDED.to_offset), "
						"accepted = g.accepted OR EXCLUDED.accepted",
						"int4", "int4", "int8", "int8", "bool");
	Datum		values[5] = {Int32GetDatum(stream_id), Int32GetDatum(partition),
		Int64GetDatum(from), Int64GetDatum(to), BoolGetDatum(accepted)};

	kappa_statement_run(&record, values, NULL, SPI_OK_INSERT, 0);
}

/*
 * Accept the gaps of a stream not accepted yet.  Returns how many offsets
 * they hold (0: none).
 */
int64
kappa_gaps_accept(int32 stream_id)
{
	static KappaStatement accept =
		KAPPA_STATEMENT("WITH a AS (UPDATE kappa.gaps SET accepted = true "
						"  WHERE stream_id = $1 AND NOT accepted RETURNING to_offset - from_offset AS n) "
						"SELECT coalesce(sum(n), 0)::int8 FROM a",
						"int4");
	Datum		value = Int32GetDatum(stream_id);
	bool		isnull;

	kappa_statement_run(&accept, &value, NULL, SPI_OK_SELECT, 0);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Record offsets [from, to) of a partition a view misses, because its
 * stream went on past them.  A range recorded from the same offset grows
 * to the larger end.
 */
void
kappa_view_gaps_record(int32 view_id, int32 partition, int64 from, int64 to)
{
	static KappaStatement record =
		KAPPA_STATEMENT("INSERT INTO kappa.view_gaps AS g (view_id, partition, from_offset, to_offset) "
						"VALUES ($1, $2, $3, $4) "
						"ON CONFLICT (view_id, partition, from_offset) DO UPDATE SET "
						"to_offset = greatest(g.to_offset, EXCLUDED.to_offset)",
						"int4", "int4", "int8", "int8");
	Datum		values[4] = {Int32GetDatum(view_id), Int32GetDatum(partition),
	Int64GetDatum(from), Int64GetDatum(to)};

	kappa_statement_run(&record, values, NULL, SPI_OK_INSERT, 0);
}

/*
 * Insert offsets [from, to) of a partition a new version of a view went
 * on without (kappa_replay): the version is new, so nothing is recorded
 * for it yet.
 */
void
kappa_view_gaps_insert(int32 view_id, int32 partition, int64 from, int64 to)
{
	static KappaStatement insert =
		KAPPA_STATEMENT("INSERT INTO kappa.view_gaps (view_id, partition, from_offset, to_offset) "
						"VALUES ($1, $2, $3, $4)",
						"int4", "int4", "int8", "int8");
	Datum		values[4] = {Int32GetDatum(view_id), Int32GetDatum(partition),
	Int64GetDatum(from), Int64GetDatum(to)};

	kappa_statement_run(&insert, values, NULL, SPI_OK_INSERT, 0);
}

/*
 * The offsets of a partition a view is recorded never to have seen, as
 * KappaOffsetRanges in offset order, allocated in the current memory
 * context.
 */
List *
kappa_view_gaps_of_partition(int32 view_id, int32 partition)
{
	static KappaStatement of_partition =
		KAPPA_STATEMENT("SELECT from_offset, to_offset FROM kappa.view_gaps "
						"WHERE view_id = $1 AND partition = $2 ORDER BY from_offset",
						"int4", "int4");
	Datum		values[2] = {Int32GetDatum(view_id), Int32GetDatum(partition)};
	List	   *ranges = NIL;
	uint64		n;

	n = kappa_statement_read(&of_partition, values, NULL, 0);
	for (uint64 i = 0; i < n; i++)
	{
		KappaOffsetRange *range = palloc(sizeof(KappaOffsetRange));
		bool		isnull;

		range->from = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		range->to = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		ranges = lappend(ranges, range);
	}
	return ranges;
}
