/*-------------------------------------------------------------------------
 *
 * dead_letters.c
 *	  A stream's dead letters (kappa.dead_letters) and its views' kept late
 *	  events (kappa.late_events): written by the flush, read by the poison
 *	  list and by kappa_retry_dead_letters.
 *
 * A dead letter is a message the stream could not decode (view_id 0) or an
 * event a view rejected because evaluating it failed (view_id: that view),
 * kept with its bytes, the reason and its SQLSTATE.  The engine collects
 * them in memory and its flush inserts them (engine/flush.c) in the
 * transaction that writes the views' rows, states and positions; the same
 * flush deletes the letters a retry applied, or gives those that failed
 * again their new reason, so that each is applied once.  Reading history
 * again (a rebuild, a check) learns the letters as known poisons
 * (engine/poison.c), and a retry reads them back as messages
 * (engine/retry.c).  A late event of a stream created with keep_late is
 * kept per view that found it late; kappa_view_forget deletes a view's.
 *
 * Inserts are ON CONFLICT DO NOTHING: after a crash the worker reads the
 * same messages again and records the same letters.
 *
 * Rights and transactions: every function runs in the caller's catalog
 * section (catalog.c) and transaction; nobody but kappa writes these
 * tables, and each stream's dead letters are visible to its owner only
 * (row level security).
 *
 * Lifetime: what a read returns is allocated as each function says; the
 * statements are kept for the backend's life (statement.c).
 *
 * src/kappa_catalog/dead_letters.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "kappa_catalog/dead_letters.h"
#include "kappa_catalog/statement.h"


/*
 * Insert a dead letter of a stream: a message it could not decode
 * (view_id 0) or an event view_id rejected.  Nothing happens if it is
 * there already.  A broker_time of 0, a key or payload of NULL are none.
 */
void
kappa_dead_letters_insert(int32 stream_id, int32 view_id, int32 partition, int64 offset,
						  TimestampTz broker_time, bytea *key, bytea *payload,
						  const char *reason, const char *sqlstate)
{
	static KappaStatement insert_letter =
		KAPPA_STATEMENT("INSERT INTO kappa.dead_letters (stream_id, partition, \"offset\", broker_time, "
						"key, payload, reason, view_id, sqlstate) "
						"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
						"int4", "int4", "int8", "timestamptz", "bytea", "bytea", "text",
						"int4", "text");
	Datum		values[9];
	char		nulls[9] = "         ";

	values[0] = Int32GetDatum(stream_id);
	values[1] = Int32GetDatum(partition);
	values[2] = Int64GetDatum(offset);
	values[3] = TimestampTzGetDatum(broker_time);
	nulls[3] = broker_time ? ' ' : 'n';
	values[4] = PointerGetDatum(key);
	nulls[4] = key ? ' ' : 'n';
	values[5] = PointerGetDatum(payload);
	nulls[5] = payload ? ' ' : 'n';
	values[6] = CStringGetTextDatum(reason);
	values[7] = Int32GetDatum(view_id);
	values[8] = CStringGetTextDatum(sqlstate);
	kappa_statement_run(&insert_letter, values, nulls, SPI_OK_INSERT, 0);
}

/*
 * A dead letter retried, whose event failed again: it keeps its place,
 * with the new reason and SQLSTATE.
 */
void
kappa_dead_letters_set_reason(int32 stream_id, int32 partition, int64 offset, int32 view_id,
							  const char *reason, const char *sqlstate)
{
	static KappaStatement set_reason =
		KAPPA_STATEMENT("UPDATE kappa.dead_letters SET reason = $5, sqlstate = $6 "
						"WHERE stream_id = $1 AND partition = $2 AND \"offset\" = $3 "
						"AND view_id = $4",
						"int4", "int4", "int8", "int4", "text", "text");
	Datum		values[6];

	values[0] = Int32GetDatum(stream_id);
	values[1] = Int32GetDatum(partition);
	values[2] = Int64GetDatum(offset);
	values[3] = Int32GetDatum(view_id);
	values[4] = CStringGetTextDatum(reason);
	values[5] = CStringGetTextDatum(sqlstate);
	kappa_statement_run(&set_reason, values, NULL, SPI_OK_UPDATE, 0);
}

/*
 * A dead letter retried, whose event went to its views: deleted in the
 * transaction that writes what it changed there, so it is applied once.
 */
void
kappa_dead_letters_delete(int32 stream_id, int32 partition, int64 offset, int32 view_id)
{
	static KappaStatement delete_letter =
		KAPPA_STATEMENT("DELETE FROM kappa.dead_letters "
						"WHERE stream_id = $1 AND partition = $2 AND \"offset\" = $3 "
						"AND view_id = $4",
						"int4", "int4", "int8", "int4");
	Datum		values[4];

	values[0] = Int32GetDatum(stream_id);
	values[1] = Int32GetDatum(partition);
	values[2] = Int64GetDatum(offset);
	values[3] = Int32GetDatum(view_id);
	kappa_statement_run(&delete_letter, values, NULL, SPI_OK_DELETE, 0);
}

/*
 * The dead letters of a stream for one view (0: those it could not
 * decode), as KappaDeadLetters with partition, offset, view_id, sqlstate
 * and reason, in no particular order.  Allocated in the current memory
 * context: a catalog section's, which its end frees.
 */
List *
kappa_dead_letters_of_view(int32 stream_id, int32 view_id)
{
	static KappaStatement of_view =
		KAPPA_STATEMENT("SELECT partition, \"offset\", sqlstate, reason FROM kappa.dead_letters "
						"WHERE stream_id = $1 AND view_id = $2",
						"int4", "int4");
	Datum		values[2] = {Int32GetDatum(stream_id), Int32GetDatum(view_id)};
	List	   *letters = NIL;
	uint64		n;

	n = kappa_statement_read(&of_view, values, NULL, 0);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		KappaDeadLetter *letter = palloc0(sizeof(KappaDeadLetter));
		bool		isnull;

		letter->partition = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
		letter->offset = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
		letter->view_id = view_id;
		letter->broker_time_ms = -1;
		letter->sqlstate = SPI_getvalue(row, desc, 3);
		letter->reason = SPI_getvalue(row, desc, 4);
		letters = lappend(letters, letter);
	}
	return letters;
}

/*
 * The dead letters of a stream whose broker time is in [since, until)
 * (DT_NOBEGIN, DT_NOEND: unbounded), to retry: KappaDeadLetters with
 * partition, offset, view_id, broker_time_ms, key and payload, in the
 * order of partition, offset and view.  The List, the structs and the
 * bytes are copied into cxt, where the caller keeps them while it retries.
 */
List *
kappa_dead_letters_to_retry(int32 stream_id, TimestampTz since, TimestampTz until,
							MemoryContext cxt)
{
	static KappaStatement to_retry =
		KAPPA_STATEMENT("SELECT partition, \"offset\", view_id, "
						"(extract(epoch FROM broker_time) * 1000)::bigint, key, payload "
						"FROM kappa.dead_letters WHERE stream_id = $1 "
						"AND ($2 IS NULL OR broker_time >= $2) AND ($3 IS NULL OR broker_time < $3) "
						"ORDER BY partition, \"offset\", view_id",
						"int4", "timestamptz", "timestamptz");
	Datum		values[3];
	char		nulls[3] = "   ";
	List	   *letters = NIL;
	MemoryContext old;
	uint64		n;

	values[0] = Int32GetDatum(stream_id);
	values[1] = TimestampTzGetDatum(since);
	nulls[1] = (since == DT_NOBEGIN) ? 'n' : ' ';
	values[2] = TimestampTzGetDatum(until);
	nulls[2] = (until == DT_NOEND) ? 'n' : ' ';
	n = kappa_statement_run(&to_retry, values, nulls, SPI_OK_SELECT, 0);
	old = MemoryContextSwitchTo(cxt);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		KappaDeadLetter *letter = palloc0(sizeof(KappaDeadLetter));
		bool		isnull;
		Datum		d;

		letter->partition = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
		letter->offset = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
		letter->view_id = DatumGetInt32(SPI_getbinval(row, desc, 3, &isnull));
		d = SPI_getbinval(row, desc, 4, &isnull);
		letter->broker_time_ms = isnull ? -1 : DatumGetInt64(d);
		d = SPI_getbinval(row, desc, 5, &isnull);
		letter->key = isnull ? NULL : DatumGetByteaPCopy(d);
		d = SPI_getbinval(row, desc, 6, &isnull);
		letter->payload = isnull ? NULL : DatumGetByteaPCopy(d);
		letters = lappend(letters, letter);
	}
	MemoryContextSwitchTo(old);
	return letters;
}

/*
 * Keep a late event of a view (a stream created with keep_late): the
 * message's place, its event time and bytes (payload NULL: none).
 * Nothing happens if it is kept already.
 */
void
kappa_late_events_insert(int32 view_id, int32 partition, int64 offset,
						 TimestampTz event_time, bytea *payload)
{
	static KappaStatement keep_late =
		KAPPA_STATEMENT("INSERT INTO kappa.late_events VALUES ($1, $2, $3, $4, $5) "
						"ON CONFLICT DO NOTHING",
						"int4", "int4", "int8", "timestamptz", "bytea");
	Datum		values[5];
	char		nulls[5] = "     ";

	values[0] = Int32GetDatum(view_id);
	values[1] = Int32GetDatum(partition);
	values[2] = Int64GetDatum(offset);
	values[3] = TimestampTzGetDatum(event_time);
	values[4] = PointerGetDatum(payload);
	nulls[4] = payload ? ' ' : 'n';
	kappa_statement_run(&keep_late, values, nulls, SPI_OK_INSERT, 0);
}
