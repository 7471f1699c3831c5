/*-------------------------------------------------------------------------
 *
 * archive_files.c
 *	  The archive's manifest: kappa.archive_files, the files that hold a
 *	  stream's history and the offsets each holds.
 *
 * A stream's archive (archive/) is a set of Avro files in Event Hubs
 * Capture's format: kappa's own, which a stream's worker writes under the
 * stream's archive directory, and Capture's, registered from any
 * directory.  The manifest records each file by stream and path, with its
 * partition, the first and last offset and time it holds and whether it
 * is closed.  Readers (archive_read.c, engine/history.c) trust the
 * manifest, not the files: records of a file beyond its recorded last
 * offset were written but never committed, and are ignored.  This file
 * holds those statements; when and why they run is archive/'s.
 *
 * Transactions: a worker records its files (kappa_archive_files_store) in
 * the transaction that commits the messages' positions, after fsync, so
 * the manifest never names a record that is not on disk.  Readers read it
 * with a new snapshot (SPI not read-only), since a worker may have
 * committed files after the reader's transaction began.  A registered
 * file is recorded only if its range meets none the manifest has of its
 * partition (kappa_archive_files_register).
 *
 * Rights: every function runs in the caller's catalog section
 * (catalog.c).
 *
 * Lifetime: callbacks are called with SPI's memory current, which goes
 * with kappa_catalog_leave; what they keep, they copy.  They run no SPI
 * statement.
 *
 * src/kappa_catalog/archive_files.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "kappa_catalog/archive_files.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/statement.h"

/*
 * Where the manifest says the archive of each of a stream's partitions
 * 0..nparts-1 ends (the offset after the last it records), in ends[]:
 * -1 for a partition it records nothing of.  Not read-only: another
 * worker may just have moved the end.
 */
void
kappa_archive_files_ends(int32 stream_id, int nparts, int64 *ends)
{
	static KappaStatement read_ends =
		KAPPA_STATEMENT("SELECT partition, max(last_offset) + 1 FROM kappa.archive_files "
						"WHERE stream_id = $1 GROUP BY partition",
						"int4");
	Datum		values[1] = {Int32GetDatum(stream_id)};
	uint64		n;

	for (int p = 0; p < nparts; p++)
		ends[p] = -1;
	n = kappa_statement_run(&read_ends, values, NULL, SPI_OK_SELECT, 0);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int32		p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		if (p >= 0 && p < nparts)
			ends[p] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
}

/*
 * Whether the manifest records a file of the stream at that path.
 */
bool
kappa_archive_files_has_path(int32 stream_id, const char *path)
{
	static KappaStatement find_path =
		KAPPA_STATEMENT("SELECT 1 FROM kappa.archive_files WHERE stream_id = $1 AND path = $2",
						"int4", "text");
	Datum		values[2] = {Int32GetDatum(stream_id), CStringGetTextDatum(path)};

	return kappa_statement_read(&find_path, values, NULL, 1) > 0;
}

/*
 * Record a file of kappa's own archive, or what was appended to it since
 * it was last recorded: its last offset and time, its records and whether
 * it is closed (its first offset and time stay).
 */
void
kappa_archive_files_store(int32 stream_id, const KappaArchiveFile *file)
{
	static KappaStatement upsert =
		KAPPA_STATEMENT("INSERT INTO kappa.archive_files AS a (stream_id, partition, path, "
						"first_offset, last_offset, first_time, last_time, records, closed) "
						"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
						"ON CONFLICT (stream_id, path) DO UPDATE SET "
						"last_offset = EXCLUDED.last_offset, last_time = EXCLUDED.last_time, "
						"records = EXCLUDED.records, closed = EXCLUDED.closed",
						"int4", "int4", "text", "int8", "int8", "timestamptz", "timestamptz",
						"int8", "bool");
	Datum		values[9];

	values[0] = Int32GetDatum(stream_id);
	values[1] = Int32GetDatum(file->partition);
	values[2] = CStringGetTextDatum(file->path);
	values[3] = Int64GetDatum(file->first_offset);
	values[4] = Int64GetDatum(file->last_offset);
	values[5] = TimestampTzGetDatum(file->first_time);
	values[6] = TimestampTzGetDatum(file->last_time);
	values[7] = Int64GetDatum(file->records);
	values[8] = BoolGetDatum(file->closed);
	kappa_statement_run(&upsert, values, NULL, SPI_OK_INSERT, 0);
}

/* Record that nothing more will be appended to a file of kappa's own. */
void
kappa_archive_files_close(int32 stream_id, const char *path)
{
	static KappaStatement close_file =
		KAPPA_STATEMENT("UPDATE kappa.archive_files SET closed = true "
						"WHERE stream_id = $1 AND path = $2",
						"int4", "text");
	Datum		values[2] = {Int32GetDatum(stream_id), CStringGetTextDatum(path)};

	kappa_statement_run(&close_file, values, NULL, SPI_OK_UPDATE, 0);
}

/*
 * Record a Capture file registered as the stream's history, closed,
 * unless the manifest already has offsets of its range for its
 * partition: then it records nothing and returns false.
 */
bool
kappa_archive_files_register(int32 stream_id, const KappaArchiveFile *file)
{
	static KappaStatement find_overlap =
		KAPPA_STATEMENT("SELECT 1 FROM kappa.archive_files WHERE stream_id = $1 AND partition = $2 "
						"AND first_offset <= $4 AND last_offset >= $3",
						"int4", "int4", "int8", "int8");
	static KappaStatement insert_file =
		KAPPA_STATEMENT("INSERT INTO kappa.archive_files (stream_id, partition, path, first_offset, "
						"last_offset, first_time, last_time, records, closed) "
						"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true)",
						"int4", "int4", "text", "int8", "int8", "timestamptz", "timestamptz",
						"int8");
	Datum		values[8];

	values[0] = Int32GetDatum(stream_id);
	values[1] = Int32GetDatum(file->partition);
	values[2] = Int64GetDatum(file->first_offset);
	values[3] = Int64GetDatum(file->last_offset);
	if (kappa_statement_run(&find_overlap, values, NULL, SPI_OK_SELECT, 1) > 0)
		return false;

	values[2] = CStringGetTextDatum(file->path);
	values[3] = Int64GetDatum(file->first_offset);
	values[4] = Int64GetDatum(file->last_offset);
	values[5] = TimestampTzGetDatum(file->first_time);
	values[6] = TimestampTzGetDatum(file->last_time);
	values[7] = Int64GetDatum(file->records);
	kappa_statement_run(&insert_file, values, NULL, SPI_OK_INSERT, 0);
	return true;
}

/*
 * The ranges of offsets the manifest records of a partition that meet
 * [from, to), one per file, in order of their first offset, each given to
 * the callback as [first, last + 1).  They may overlap or touch.
 */
void
kappa_archive_files_ranges(int32 stream_id, int32 partition, int64 from, int64 to,
						   KappaArchiveRangeCallback each, void *arg)
{
	static KappaStatement read_ranges =
		KAPPA_STATEMENT("SELECT first_offset, last_offset + 1 FROM kappa.archive_files "
						"WHERE stream_id = $1 AND partition = $2 "
						"  AND last_offset >= $3 AND first_offset < $4 "
						"ORDER BY first_offset",
						"int4", "int4", "int8", "int8");
	Datum		values[4] = {Int32GetDatum(stream_id), Int32GetDatum(partition),
	Int64GetDatum(from), Int64GetDatum(to)};
	SPITupleTable *rows;
	uint64		n;

	n = kappa_statement_run(&read_ranges, values, NULL, SPI_OK_SELECT, 0);
	rows = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int64		first = DatumGetInt64(SPI_getbinval(rows->vals[i], rows->tupdesc, 1, &isnull));
		int64		end = DatumGetInt64(SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull));

		each(first, end, arg);
	}
}

/*
 * The files the manifest records of a partition that hold offsets from
 * `from` on, in order of their first offset, each given to the callback
 * with the last offset recorded of it.
 */
void
kappa_archive_files_scan(int32 stream_id, int32 partition, int64 from,
						 KappaArchiveFileCallback each, void *arg)
{
	static KappaStatement read_files =
		KAPPA_STATEMENT("SELECT path, last_offset FROM kappa.archive_files "
						"WHERE stream_id = $1 AND partition = $2 AND last_offset >= $3 "
						"ORDER BY first_offset",
						"int4", "int4", "int8");
	Datum		values[3] = {Int32GetDatum(stream_id), Int32GetDatum(partition), Int64GetDatum(from)};
	SPITupleTable *rows;
	uint64		n;

	n = kappa_statement_run(&read_files, values, NULL, SPI_OK_SELECT, 0);
	rows = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *path = SPI_getvalue(rows->vals[i], rows->tupdesc, 1);
		int64		last = DatumGetInt64(SPI_getbinval(rows->vals[i], rows->tupdesc, 2, &isnull));

		each(path, last, arg);
	}
}
