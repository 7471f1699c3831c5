/*-------------------------------------------------------------------------
 *
 * positions.c
 *	  Positions and counts: how far a stream has read each partition
 *	  (kappa.partitions), and how far each of its views has
 *	  (kappa.view_partitions), with what they counted on the way.
 *
 * A worker's flush stores both, in the transaction that writes the views'
 * rows and states, so a position is never ahead of, nor behind, what was
 * applied (engine/flush.c); loading a view or a stream reads them back
 * (engine/recovery.c, engine/engine.c), and kappa_check and kappa_replay
 * read where a view began (api/check.c, api/replay.c).  A position's
 * counts are added to the stored ones, so the workers of a shared stream
 * each store what they counted; a position itself is the last one
 * stored, which only the worker that owns the partition writes.
 *
 * Each function runs one constant statement (statement.c), in its
 * caller's catalog section and transaction; none takes locks of its own
 * beyond the statement's row locks.  Those that read return what they
 * read as a List of KappaPosition, allocated in the current memory
 * context: in a catalog section, SPI's, which is gone once the section is
 * left, as the rows it was read from are.  Most read with a fresh
 * snapshot, seeing what another worker has just committed; the functions
 * named _in_snapshot read with the caller's active snapshot, so that
 * what the caller reads next (kappa_check: the view's rows) agrees.
 *
 * src/kappa_catalog/positions.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/timestamp.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/positions.h"
#include "kappa_catalog/statement.h"

static List *read_positions(KappaStatement *stmt, const Datum *values, bool in_snapshot,
							int next_col, int first_col, int max_time_col, int message_time_col);


/*
 * Store a stream's position in a partition, and add what its flush
 * counted.  In a catalog section.
 */
void
kappa_positions_store_stream(int32 stream_id, int32 partition, const KappaStreamProgress *progress)
{
	static KappaStatement store =
		KAPPA_STATEMENT("INSERT INTO kappa.partitions AS k (stream_id, partition, next_offset, end_offset, "
						"consumed, dead_lettered, last_event_at, events_per_s, flush_ms, last_message_at, flushed_at) "
						"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now()) "
						"ON CONFLICT (stream_id, partition) DO UPDATE SET "
						"next_offset = EXCLUDED.next_offset, end_offset = EXCLUDED.end_offset, "
						"consumed = k.consumed + EXCLUDED.consumed, "
						"dead_lettered = k.dead_lettered + EXCLUDED.dead_lettered, "
						"last_event_at = coalesce(EXCLUDED.last_event_at, k.last_event_at), "
						"last_message_at = coalesce(EXCLUDED.last_message_at, k.last_message_at), "
						"events_per_s = EXCLUDED.events_per_s, flushed_at = now(), "
						"flush_ms = EXCLUDED.flush_ms",
						"int4", "int4", "int8", "int8", "int8", "int8", "timestamptz", "float8",
						"float8", "timestamptz");
	Datum		values[10];
	char		nulls[10] = "          ";

	values[0] = Int32GetDatum(stream_id);
	values[1] = Int32GetDatum(partition);
	values[2] = Int64GetDatum(progress->next_offset);
	values[3] = Int64GetDatum(progress->end_offset);
	nulls[3] = (progress->end_offset < 0) ? 'n' : ' ';
	values[4] = Int64GetDatum(progress->consumed);
	values[5] = Int64GetDatum(progress->dead_lettered);
	values[6] = TimestampTzGetDatum(progress->last_event_at);
	nulls[6] = progress->last_event_at ? ' ' : 'n';
	values[7] = Float8GetDatum(progress->events_per_s);
	values[8] = Float8GetDatum(progress->flush_ms);
	values[9] = TimestampTzGetDatum(progress->last_message_at);
	nulls[9] = progress->last_message_at ? ' ' : 'n';
	kappa_statement_run(&store, values, nulls, SPI_OK_INSERT, 0);
}

/*
 * A stream goes on past lost offsets of a partition (engine/gap.c): its
 * position moves to next_offset, if that is further, and lost offsets
 * are counted.  In a catalog section.
 */
void
kappa_positions_count_lost(int32 stream_id, int32 partition, int64 next_offset, int64 lost)
{
	static KappaStatement count_lost =
		KAPPA_STATEMENT("INSERT INTO kappa.partitions AS k (stream_id, partition, next_offset, lost) "
						"VALUES ($1, $2, $3, $4) "
						"ON CONFLICT (stream_id, partition) DO UPDATE SET "
						"next_offset = greatest(k.next_offset, EXCLUDED.next_offset), "
						"lost = k.lost + EXCLUDED.lost",
						"int4", "int4", "int8", "int8");
	Datum		values[4] = {Int32GetDatum(stream_id), Int32GetDatum(partition),
	Int64GetDatum(next_offset), Int64GetDatum(lost)};

	kappa_statement_run(&count_lost, values, NULL, SPI_OK_INSERT, 0);
}

/*
 * A stream's stored positions: KappaPosition with partition and
 * next_offset, with a fresh snapshot (what another worker has just
 * flushed).  In a catalog section.
 */
List *
kappa_positions_load_stream(int32 stream_id)
{
	static KappaStatement load =
		KAPPA_STATEMENT("SELECT partition, next_offset FROM kappa.partitions WHERE stream_id = $1",
						"int4");
	Datum		value = Int32GetDatum(stream_id);

	return read_positions(&load, &value, false, 2, 0, 0, 0);
}

/*
 * Store a view's position in a partition, and add what its flush
 * counted; where it began is kept once stored.  In a catalog section.
 */
void
kappa_positions_store_view(int32 view_id, int32 partition, const KappaViewProgress *progress)
{
	static KappaStatement store =
		KAPPA_STATEMENT("INSERT INTO kappa.view_partitions AS v (view_id, partition, next_offset, "
						"max_event_time, filtered, duplicate, delivered, applied, late, first_offset, rejected) "
						"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
						"ON CONFLICT (view_id, partition) DO UPDATE SET "
						"next_offset = EXCLUDED.next_offset, max_event_time = EXCLUDED.max_event_time, "
						"filtered = v.filtered + EXCLUDED.filtered, duplicate = v.duplicate + EXCLUDED.duplicate, "
						"delivered = v.delivered + EXCLUDED.delivered, applied = v.applied + EXCLUDED.applied, "
						"late = v.late + EXCLUDED.late, rejected = v.rejected + EXCLUDED.rejected, "
						"first_offset = coalesce(v.first_offset, EXCLUDED.first_offset)",
						"int4", "int4", "int8", "timestamptz", "int8", "int8", "int8", "int8",
						"int8", "int8", "int8");
	Datum		values[11];
	char		nulls[11] = "           ";

	values[0] = Int32GetDatum(view_id);
	values[1] = Int32GetDatum(partition);
	values[2] = Int64GetDatum(progress->next_offset);
	values[3] = TimestampTzGetDatum(progress->max_event_time);
	nulls[3] = (progress->max_event_time == DT_NOBEGIN) ? 'n' : ' ';
	values[4] = Int64GetDatum(progress->filtered);
	values[5] = Int64GetDatum(progress->duplicate);
	values[6] = Int64GetDatum(progress->delivered);
	values[7] = Int64GetDatum(progress->applied);
	values[8] = Int64GetDatum(progress->late);
	values[9] = Int64GetDatum(progress->first_offset);
	nulls[9] = (progress->first_offset < 0) ? 'n' : ' ';
	values[10] = Int64GetDatum(progress->rejected);
	kappa_statement_run(&store, values, nulls, SPI_OK_INSERT, 0);
}

/*
 * How far a view's windows are final (kappa_final_until), in each of its
 * partitions' rows; never back, since another worker may have stored a
 * later one.  In a catalog section.
 */
void
kappa_positions_raise_final_upto(int32 view_id, TimestampTz final_upto)
{
	static KappaStatement raise =
		KAPPA_STATEMENT("UPDATE kappa.view_partitions SET final_upto = $2 "
						"WHERE view_id = $1 AND (final_upto IS NULL OR final_upto < $2)",
						"int4", "timestamptz");
	Datum		values[2] = {Int32GetDatum(view_id), TimestampTzGetDatum(final_upto)};

	kappa_statement_run(&raise, values, NULL, SPI_OK_UPDATE, 0);
}

/*
 * A view's stored positions: KappaPosition with partition, next_offset,
 * max_event_time and first_offset, with a fresh snapshot.  In a catalog
 * section.
 */
List *
kappa_positions_load_view(int32 view_id)
{
	static KappaStatement load =
		KAPPA_STATEMENT("SELECT partition, next_offset, max_event_time, first_offset "
						"FROM kappa.view_partitions WHERE view_id = $1",
						"int4");
	Datum		value = Int32GetDatum(view_id);

	return read_positions(&load, &value, false, 2, 4, 3, 0);
}

/*
 * The watermarks of a view's partitions as the workers that consume them
 * last stored them, beside when the stream last got a message there:
 * KappaPosition with partition, max_event_time and last_message_at, with
 * a fresh snapshot.  In a catalog section.
 */
List *
kappa_positions_view_watermarks(int32 view_id, int32 stream_id)
{
	static KappaStatement watermarks =
		KAPPA_STATEMENT("SELECT v.partition, v.max_event_time, k.last_message_at "
						"FROM kappa.view_partitions v LEFT JOIN kappa.partitions k "
						"ON k.stream_id = $2 AND k.partition = v.partition WHERE v.view_id = $1",
						"int4", "int4");
	Datum		values[2] = {Int32GetDatum(view_id), Int32GetDatum(stream_id)};

	return read_positions(&watermarks, values, false, 0, 0, 2, 3);
}

/* Where a view began in each partition: for a rebuild, and for a replay. */
static KappaStatement first_offsets =
	KAPPA_STATEMENT("SELECT partition, first_offset FROM kappa.view_partitions "
					"WHERE view_id = $1 ORDER BY partition",
					"int4");

/*
 * Where a view began in each partition, by partition: KappaPosition with
 * partition and first_offset, with a fresh snapshot.  In a catalog
 * section.
 */
List *
kappa_positions_view_first_offsets(int32 view_id)
{
	Datum		value = Int32GetDatum(view_id);

	return read_positions(&first_offsets, &value, false, 0, 2, 0, 0);
}

/* The same, under the caller's active snapshot.  In a catalog section. */
List *
kappa_positions_view_first_offsets_in_snapshot(int32 view_id)
{
	Datum		value = Int32GetDatum(view_id);

	return read_positions(&first_offsets, &value, true, 0, 2, 0, 0);
}

/*
 * What a view has read of each partition, under the caller's active
 * snapshot: KappaPosition with partition, first_offset (0 where it has
 * none) and next_offset.  In a catalog section.
 */
List *
kappa_positions_view_spans_in_snapshot(int32 view_id)
{
	static KappaStatement spans =
		KAPPA_STATEMENT("SELECT partition, coalesce(first_offset, 0), next_offset "
						"FROM kappa.view_partitions WHERE view_id = $1",
						"int4");
	Datum		value = Int32GetDatum(view_id);

	return read_positions(&spans, &value, true, 3, 2, 0, 0);
}

/* Delete a view's positions (a rebuild starts over).  In a catalog section. */
void
kappa_positions_forget_view(int32 view_id)
{
	static KappaStatement forget =
		KAPPA_STATEMENT("DELETE FROM kappa.view_partitions WHERE view_id = $1", "int4");
	Datum		value = Int32GetDatum(view_id);

	kappa_statement_run(&forget, &value, NULL, SPI_OK_DELETE, 0);
}

/*
 * A rebuilt view's position in a partition: back where it began, so that
 * the other workers of a shared view load that.  In a catalog section.
 */
void
kappa_positions_restart_view(int32 view_id, int32 partition, int64 first_offset)
{
	static KappaStatement restart =
		KAPPA_STATEMENT("INSERT INTO kappa.view_partitions (view_id, partition, next_offset, first_offset) "
						"VALUES ($1, $2, $3, $3)",
						"int4", "int4", "int8");
	Datum		values[3] = {Int32GetDatum(view_id), Int32GetDatum(partition),
	Int64GetDatum(first_offset)};

	kappa_statement_run(&restart, values, NULL, SPI_OK_INSERT, 0);
}

/*
 * Run a statement that reads positions: the partition in column 1, the
 * other fields of KappaPosition in the columns given (0: not read, left
 * null).  Its rows as a List of KappaPosition, in the current memory
 * context.  in_snapshot: with the caller's active snapshot (SPI's
 * read-only execution), not a fresh one.
 */
static List *
read_positions(KappaStatement *stmt, const Datum *values, bool in_snapshot, int next_col,
			   int first_col, int max_time_col, int message_time_col)
{
	List	   *positions = NIL;

	if (in_snapshot)
		kappa_statement_read(stmt, values, NULL, 0);
	else
		kappa_statement_run(stmt, values, NULL, SPI_OK_SELECT, 0);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		KappaPosition *pos = palloc(sizeof(KappaPosition));
		bool		isnull;
		Datum		d;

		pos->partition = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
		pos->next_offset = -1;
		pos->first_offset = -1;
		pos->max_event_time = DT_NOBEGIN;
		pos->last_message_at = DT_NOBEGIN;
		if (next_col > 0)
		{
			d = SPI_getbinval(row, desc, next_col, &isnull);
			if (!isnull)
				pos->next_offset = DatumGetInt64(d);
		}
		if (first_col > 0)
		{
			d = SPI_getbinval(row, desc, first_col, &isnull);
			if (!isnull)
				pos->first_offset = DatumGetInt64(d);
		}
		if (max_time_col > 0)
		{
			d = SPI_getbinval(row, desc, max_time_col, &isnull);
			if (!isnull)
				pos->max_event_time = DatumGetTimestampTz(d);
		}
		if (message_time_col > 0)
		{
			d = SPI_getbinval(row, desc, message_time_col, &isnull);
			if (!isnull)
				pos->last_message_at = DatumGetTimestampTz(d);
		}
		positions = lappend(positions, pos);
	}
	return positions;
}

/*
 * Whether the stream and each of its live (or incomplete) views have
 * committed positions at or past ends[i] in partition partitions[i], for
 * the n given, and each such view has its state marker (a view whose
 * marker crash recovery removed still shows its positions from before the
 * crash): what kappa_wait waits for.  Run with a fresh snapshot, so each
 * call sees the worker's latest commit.  In a catalog section.
 */
bool
kappa_positions_caught_up(int32 stream_id, int n, const int32 *partitions, const int64 *ends)
{
	static KappaStatement caught_up =
		KAPPA_STATEMENT("SELECT coalesce(bool_and("
						"  coalesce((SELECT next_offset FROM kappa.partitions k "
						"            WHERE k.stream_id = $1 AND k.partition = e.p), 0) >= e.e "
						"  AND NOT EXISTS (SELECT FROM kappa.views v WHERE v.stream_id = $1 "
						"    AND v.status IN ('live', 'incomplete') "
						"    AND coalesce((SELECT next_offset FROM kappa.view_partitions vp "
						"                  WHERE vp.view_id = v.view_id AND vp.partition = e.p), 0) < e.e)"
						") AND NOT EXISTS (SELECT FROM kappa.views v WHERE v.stream_id = $1 "
						"    AND v.status IN ('live', 'incomplete') "
						"    AND NOT EXISTS (SELECT FROM kappa.view_state_marker m WHERE m.view_id = v.view_id)), "
						"true) FROM unnest($2, $3) AS e(p, e)",
						"int4", "int4[]", "int8[]");
	Datum	   *part_values = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *end_values = palloc(sizeof(Datum) * Max(n, 1));
	Datum		values[3];
	bool		isnull;
	bool		done;

	for (int i = 0; i < n; i++)
	{
		part_values[i] = Int32GetDatum(partitions[i]);
		end_values[i] = Int64GetDatum(ends[i]);
	}
	values[0] = Int32GetDatum(stream_id);
	values[1] = PointerGetDatum(construct_array(part_values, n, INT4OID, 4, true, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(end_values, n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	kappa_statement_run(&caught_up, values, NULL, SPI_OK_SELECT, 1);
	done = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return done && !isnull;
}
