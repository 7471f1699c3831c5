/*-------------------------------------------------------------------------
 *
 * stream_rows.c
 *	  A stream's catalog rows: kappa.streams, stream_columns and
 *	  stream_secrets written, locked, deleted and listed, one prepared
 *	  statement each, for the SQL functions of api/ (create_stream.c,
 *	  alter.c, monitor.c), the launcher and stream.c.
 *
 * How a stream is defined and loaded is stream.c's; this file holds the
 * statements that other folders (and stream.c) need on the same tables,
 * so that none of them writes SQL against kappa's catalog.  The secret
 * settings are written here and read only by stream.c's load, for the
 * callers that reach the brokers; nothing here returns them.
 *
 * Sections: each function runs in its caller's catalog section
 * (kappa_catalog_enter), but for kappa_streams_lock and kappa_streams_ids,
 * which open their own and return what they read in the caller's memory
 * context.  What the others return is in the current (SPI's) memory, for
 * the caller's section.
 *
 * Locking: kappa_streams_lock takes the stream's row FOR UPDATE until the
 * transaction ends, which serialises kappa_alter_stream calls on one
 * stream; the other writes take the row locks their statements take.
 *
 * src/kappa_catalog/stream_rows.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/statement.h"
#include "kappa_catalog/stream_rows.h"

/* A column's JSON paths as the text[] stream_columns stores. */
static Datum
paths_array(List *paths)
{
	Datum	   *elems = palloc(sizeof(Datum) * list_length(paths));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, paths)
		elems[n++] = CStringGetTextDatum(lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * A stream's column, at its attribute (kappa_create_stream's, or one
 * kappa_alter_stream adds, which is never NOT NULL).
 */
void
kappa_stream_columns_insert(int32 stream_id, const KappaColumn *col, bool not_null)
{
	static KappaStatement insert_column =
		KAPPA_STATEMENT("INSERT INTO kappa.stream_columns (stream_id, attnum, name, type, typmod, not_null, paths) "
						"VALUES ($1, $2, $3, $4, $5, $6, $7)",
						"int4", "int2", "name", "oid", "int4", "bool", "text[]");
	Datum		values[7];

	values[0] = Int32GetDatum(stream_id);
	values[1] = Int16GetDatum(col->attnum);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(col->name));
	values[3] = ObjectIdGetDatum(col->typid);
	values[4] = Int32GetDatum(col->typmod);
	values[5] = BoolGetDatum(not_null);
	values[6] = paths_array(col->paths);
	kappa_statement_run(&insert_column, values, NULL, SPI_OK_INSERT, 0);
}

/* Give a column new JSON paths (kappa_alter_stream's add_paths). */
uint64
kappa_stream_columns_set_paths(int32 stream_id, AttrNumber attnum, List *paths)
{
	static KappaStatement set_paths =
		KAPPA_STATEMENT("UPDATE kappa.stream_columns SET paths = $3 "
						"WHERE stream_id = $1 AND attnum = $2",
						"int4", "int2", "text[]");
	Datum		values[3];

	values[0] = Int32GetDatum(stream_id);
	values[1] = Int16GetDatum(attnum);
	values[2] = paths_array(paths);
	return kappa_statement_run(&set_paths, values, NULL, SPI_OK_UPDATE, 0);
}

/* A stream's secret settings, readable by its owner only (row security). */
void
kappa_stream_secrets_insert(int32 stream_id, Oid owner, Jsonb *settings)
{
	static KappaStatement insert_secrets =
		KAPPA_STATEMENT("INSERT INTO kappa.stream_secrets (stream_id, owner, settings) "
						"VALUES ($1, $2, $3)",
						"int4", "oid", "jsonb");
	Datum		values[3];

	values[0] = Int32GetDatum(stream_id);
	values[1] = ObjectIdGetDatum(owner);
	values[2] = JsonbPGetDatum(settings);
	kappa_statement_run(&insert_secrets, values, NULL, SPI_OK_INSERT, 0);
}

/* Remove a stream's secret settings, before new ones are written. */
void
kappa_stream_secrets_delete(int32 stream_id)
{
	static KappaStatement delete_secrets =
		KAPPA_STATEMENT("DELETE FROM kappa.stream_secrets WHERE stream_id = $1", "int4");
	Datum		value = Int32GetDatum(stream_id);

	kappa_statement_run(&delete_secrets, &value, NULL, SPI_OK_DELETE, 0);
}

/*
 * Lock a stream's row until the transaction ends, and return its
 * watermark as text, in the caller's memory; NULL if the stream is gone.
 * Opens its own catalog section.
 */
char *
kappa_streams_lock(int32 stream_id)
{
	static KappaStatement lock_stream =
		KAPPA_STATEMENT("SELECT watermark::text FROM kappa.streams WHERE stream_id = $1 FOR UPDATE",
						"int4");
	MemoryContext caller = CurrentMemoryContext;
	Datum		value = Int32GetDatum(stream_id);
	KappaCatalogAccess access;
	char	   *text = NULL;

	kappa_catalog_enter(&access);
	if (kappa_statement_run(&lock_stream, &value, NULL, SPI_OK_SELECT, 1) > 0)
		text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (text)
		text = MemoryContextStrdup(caller, text);
	kappa_catalog_leave(&access);
	return text;
}

/*
 * Write kappa_alter_stream's changes to a stream's row: each setting
 * given (not NULL), and a new revision, which makes the launcher restart
 * the stream's workers.
 */
void
kappa_streams_update(int32 stream_id, Interval *watermark, Interval *idle_timeout,
					 Jsonb *options)
{
	static KappaStatement update_stream =
		KAPPA_STATEMENT("UPDATE kappa.streams SET watermark = coalesce($2, watermark), "
						"idle_timeout = coalesce($3, idle_timeout), options = coalesce($4, options), "
						"revision = revision + 1, altered_at = now() WHERE stream_id = $1",
						"int4", "interval", "interval", "jsonb");
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = Int32GetDatum(stream_id);
	values[1] = PointerGetDatum(watermark);
	nulls[1] = watermark ? ' ' : 'n';
	values[2] = PointerGetDatum(idle_timeout);
	nulls[2] = idle_timeout ? ' ' : 'n';
	values[3] = PointerGetDatum(options);
	nulls[3] = options ? ' ' : 'n';
	kappa_statement_run(&update_stream, values, nulls, SPI_OK_UPDATE, 0);
}

/*
 * Delete a stream's row; its columns and secrets go with it (ON DELETE
 * CASCADE), its relation is the caller's to drop.
 */
void
kappa_streams_delete(int32 stream_id)
{
	static KappaStatement delete_stream =
		KAPPA_STATEMENT("DELETE FROM kappa.streams WHERE stream_id = $1", "int4");
	Datum		value = Int32GetDatum(stream_id);

	kappa_statement_run(&delete_stream, &value, NULL, SPI_OK_DELETE, 0);
}

/*
 * The ids of every stream, ascending, as an integer List in the caller's
 * memory.  Opens its own catalog section.
 */
List *
kappa_streams_ids(void)
{
	static KappaStatement stream_ids =
		KAPPA_STATEMENT("SELECT stream_id FROM kappa.streams ORDER BY stream_id", NULL);
	MemoryContext caller = CurrentMemoryContext;
	KappaCatalogAccess access;
	List	   *ids = NIL;
	uint64		n;

	kappa_catalog_enter(&access);
	n = kappa_statement_read(&stream_ids, NULL, NULL, 0);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		MemoryContext spi = MemoryContextSwitchTo(caller);

		ids = lappend_int(ids, DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 1, &isnull)));
		MemoryContextSwitchTo(spi);
	}
	kappa_catalog_leave(&access);
	return ids;
}

/*
 * The streams of a database's origin (this one's: those its launcher
 * runs), by id, as KappaStreamRevision in the current memory.
 */
List *
kappa_streams_of_origin(const char *origin)
{
	static KappaStatement of_origin =
		KAPPA_STATEMENT("SELECT stream_id, name, revision FROM kappa.streams WHERE origin = $1 "
						"ORDER BY stream_id", "text");
	Datum		value = CStringGetTextDatum(origin);
	List	   *streams = NIL;
	uint64		n;

	n = kappa_statement_read(&of_origin, &value, NULL, 0);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		KappaStreamRevision *s = palloc(sizeof(KappaStreamRevision));
		bool		isnull;

		s->stream_id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
		s->name = SPI_getvalue(row, desc, 2);
		s->revision = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
		streams = lappend(streams, s);
	}
	return streams;
}
