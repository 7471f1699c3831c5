/*-------------------------------------------------------------------------
 *
 * sinks.c
 *	  The sink catalog: kappa.sinks, a sink's definition and progress, and
 *	  kappa.sink_outbox, the rows it has yet to send.
 *
 * A sink (engine/sink.c) sends a view's rows to a Kafka topic exactly
 * once.  Its row in kappa.sinks holds what it sends and where, and two
 * numbers: next_seq, the last seq given to a row, and sent_seq, the last
 * one Kafka committed.  A flush numbers the rows it gives a sink
 * (kappa_sinks_give_seqs) and writes them to kappa.sink_outbox in its own
 * transaction; the stream's worker later sends them, records what Kafka
 * committed (kappa_sinks_record_sent) and deletes it from the outbox.
 * This file holds those statements; when and why they run is sink.c's.
 *
 * Locking: a sender locks its sink's row FOR UPDATE for the whole send
 * (kappa_sinks_lock), and kappa_drop_sink locks it before deleting it
 * (kappa_sinks_lock_owner), so a drop waits for a send to end.  The
 * outbox goes with its sink (ON DELETE CASCADE).
 *
 * Transactions and rights: every function runs in the caller's
 * transaction and catalog section (catalog.c).  The statements the
 * caller ran read-only before they moved here still are: they read with
 * the caller's snapshot rather than a new one.
 *
 * Lifetime: what a function returns is allocated in the memory context
 * it names, or else in the caller's current one, which in a catalog
 * section is SPI's and goes with kappa_catalog_leave.
 *
 * src/kappa_catalog/sinks.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/sinks.h"
#include "kappa_catalog/statement.h"

/* Whether a sink of that name exists. */
bool
kappa_sinks_exists(const char *name)
{
	static KappaStatement find_by_name =
		KAPPA_STATEMENT("SELECT FROM kappa.sinks WHERE name = $1", "text");
	Datum		values[1] = {CStringGetTextDatum(name)};

	return kappa_statement_read(&find_by_name, values, NULL, 1) > 0;
}

/*
 * Record a new sink (brokers NULL: the stream's own).  Its seqs start at
 * 0 and its final_upto is null: emit final sends every final window, from
 * the first.
 */
void
kappa_sinks_insert(const char *name, Oid owner, const char *schema_name, const char *view_name,
				   const char *topic, const char *brokers, Jsonb *options, const char *emit)
{
	static KappaStatement insert_sink =
		KAPPA_STATEMENT("INSERT INTO kappa.sinks (name, owner, schema_name, view_name, topic, brokers, options, emit) "
						"VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
						"text", "oid", "name", "name", "text", "text", "jsonb", "text");
	Datum		values[8];
	char		nulls[8] = "        ";

	values[0] = CStringGetTextDatum(name);
	values[1] = ObjectIdGetDatum(owner);
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(schema_name));
	values[3] = DirectFunctionCall1(namein, CStringGetDatum(view_name));
	values[4] = CStringGetTextDatum(topic);
	values[5] = brokers ? CStringGetTextDatum(brokers) : (Datum) 0;
	nulls[5] = brokers ? ' ' : 'n';
	values[6] = JsonbPGetDatum(options);
	values[7] = CStringGetTextDatum(emit);
	kappa_statement_run(&insert_sink, values, nulls, SPI_OK_INSERT, 0);
}

/* The sink's owner, its row locked until the transaction ends; InvalidOid if there is none. */
Oid
kappa_sinks_lock_owner(const char *name)
{
	static KappaStatement lock_by_name =
		KAPPA_STATEMENT("SELECT owner FROM kappa.sinks WHERE name = $1 FOR UPDATE", "text");
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;

	if (kappa_statement_run(&lock_by_name, values, NULL, SPI_OK_SELECT, 1) == 0)
		return InvalidOid;
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Delete a sink by name; its outbox goes with it. */
void
kappa_sinks_delete(const char *name)
{
	static KappaStatement delete_sink =
		KAPPA_STATEMENT("DELETE FROM kappa.sinks WHERE name = $1", "text");
	Datum		values[1] = {CStringGetTextDatum(name)};

	kappa_statement_run(&delete_sink, values, NULL, SPI_OK_DELETE, 0);
}

/*
 * The sinks of a view (KappaSinkOfView, in cxt), by sink_id.  A sink
 * follows its view by name; a view of that name may since belong to
 * someone else, whose view is not the sink owner's to send.
 */
List *
kappa_sinks_of_view(int32 view_id, MemoryContext cxt)
{
	static KappaStatement read_view_sinks =
		KAPPA_STATEMENT("SELECT k.sink_id, k.name, k.emit = 'final', k.final_upto "
						"FROM kappa.sinks k JOIN kappa.views v "
						"  ON v.schema_name = k.schema_name AND v.view_name = k.view_name "
						"WHERE v.view_id = $1 AND pg_catalog.pg_has_role(k.owner, v.owner, 'USAGE') "
						"ORDER BY k.sink_id",
						"int4");
	Datum		values[1] = {Int32GetDatum(view_id)};
	List	   *sinks = NIL;
	uint64		n;

	n = kappa_statement_run(&read_view_sinks, values, NULL, SPI_OK_SELECT, 0);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(cxt);
		KappaSinkOfView *sink = palloc0(sizeof(KappaSinkOfView));
		bool		isnull;
		Datum		d;

		sink->sink_id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
		sink->name = SPI_getvalue(row, desc, 2);
		sink->final = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull));
		d = SPI_getbinval(row, desc, 4, &isnull);
		sink->final_upto = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
		sinks = lappend(sinks, sink);
		MemoryContextSwitchTo(spi);
	}
	return sinks;
}

/*
 * The sinks a stream's worker sends, by sink_id, as integer Lists in cxt:
 * all of them in *sinks, those with rows to send or an error to clear in
 * *pending.  Only sinks whose owner may still act for the view's owner
 * (and, without brokers of its own, the stream's) are among them.
 */
void
kappa_sinks_of_stream(int32 stream_id, MemoryContext cxt, List **sinks, List **pending)
{
	static KappaStatement read_stream_sinks =
		KAPPA_STATEMENT("SELECT k.sink_id, k.next_seq > k.sent_seq OR k.last_error IS NOT NULL "
						"FROM kappa.sinks k "
						"JOIN kappa.views v ON v.schema_name = k.schema_name AND v.view_name = k.view_name "
						"JOIN kappa.streams s ON s.stream_id = v.stream_id "
						"WHERE v.stream_id = $1 AND pg_catalog.pg_has_role(k.owner, v.owner, 'USAGE') "
						"  AND (k.brokers IS NOT NULL OR pg_catalog.pg_has_role(k.owner, s.owner, 'USAGE')) "
						"ORDER BY k.sink_id",
						"int4");
	Datum		values[1] = {Int32GetDatum(stream_id)};
	uint64		n;

	n = kappa_statement_read(&read_stream_sinks, values, NULL, 0);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int32		sink_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		MemoryContext spi = MemoryContextSwitchTo(cxt);

		*sinks = lappend_int(*sinks, sink_id);
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)))
			*pending = lappend_int(*pending, sink_id);
		MemoryContextSwitchTo(spi);
	}
}

/*
 * Give count rows of a sink the seqs after its next_seq, and move its
 * final_upto on (unless final_upto is DT_NOBEGIN): *first_seq is the seq
 * before the first one given.  false if the sink is gone.
 */
bool
kappa_sinks_give_seqs(int32 sink_id, int64 count, TimestampTz final_upto, int64 *first_seq)
{
	static KappaStatement give_seqs =
		KAPPA_STATEMENT("UPDATE kappa.sinks SET next_seq = next_seq + $2, "
						"final_upto = coalesce($3, final_upto) "
						"WHERE sink_id = $1 RETURNING next_seq - $2",
						"int4", "int8", "timestamptz");
	Datum		values[3];
	char		nulls[3] = "   ";
	bool		isnull;

	values[0] = Int32GetDatum(sink_id);
	values[1] = Int64GetDatum(count);
	values[2] = TimestampTzGetDatum(final_upto);
	nulls[2] = final_upto == DT_NOBEGIN ? 'n' : ' ';
	if (kappa_statement_run(&give_seqs, values, nulls, SPI_OK_UPDATE_RETURNING, 0) != 1)
		return false;
	*first_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return true;
}

/*
 * Read a sink to send its outbox, and lock its row until the transaction
 * ends: a kappa_drop_sink waits for the send.  false if the sink is gone.
 */
bool
kappa_sinks_lock(int32 sink_id, KappaSinkTarget *target)
{
	static KappaStatement lock_by_id =
		KAPPA_STATEMENT("SELECT sink_id, name, topic, brokers, options, sent_seq, next_seq "
						"FROM kappa.sinks WHERE sink_id = $1 FOR UPDATE",
						"int4");
	Datum		values[1] = {Int32GetDatum(sink_id)};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;

	if (kappa_statement_run(&lock_by_id, values, NULL, SPI_OK_SELECT, 1) != 1)
		return false;
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	target->sink_id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
	target->name = SPI_getvalue(row, desc, 2);
	target->topic = SPI_getvalue(row, desc, 3);
	target->brokers = SPI_getvalue(row, desc, 4);
	target->options = DatumGetJsonbPCopy(SPI_getbinval(row, desc, 5, &isnull));
	target->sent_seq = DatumGetInt64(SPI_getbinval(row, desc, 6, &isnull));
	target->next_seq = DatumGetInt64(SPI_getbinval(row, desc, 7, &isnull));
	return true;
}

/* Record a sink's error, where kappa_sinks shows it. */
void
kappa_sinks_set_error(int32 sink_id, const char *error)
{
	static KappaStatement set_error =
		KAPPA_STATEMENT("UPDATE kappa.sinks SET last_error = $2 WHERE sink_id = $1",
						"int4", "text");
	Datum		values[2] = {Int32GetDatum(sink_id), CStringGetTextDatum(error)};

	kappa_statement_run(&set_error, values, NULL, SPI_OK_UPDATE, 0);
}

/*
 * Record that Kafka committed a sink's rows up to last_seq, which clears
 * its error; its last_sent_at moves only if that is more than before.
 */
void
kappa_sinks_record_sent(int32 sink_id, int64 last_seq)
{
	static KappaStatement record_sent =
		KAPPA_STATEMENT("UPDATE kappa.sinks SET sent_seq = greatest(sent_seq, $2), last_error = NULL, "
						"last_sent_at = CASE WHEN $2 > sent_seq THEN now() ELSE last_sent_at END "
						"WHERE sink_id = $1",
						"int4", "int8");
	Datum		values[2] = {Int32GetDatum(sink_id), Int64GetDatum(last_seq)};

	kappa_statement_run(&record_sent, values, NULL, SPI_OK_UPDATE, 0);
}

/*
 * Write rows to a sink's outbox, seqs first_seq + 1 on: each key and row
 * (JSON text, the Lists side by side) as its message, whose value carries
 * the sink's name and id, the row's seq and the view's name.
 */
void
kappa_sink_outbox_insert(int32 sink_id, int64 first_seq, List *keys, List *rows,
						 const char *sink_name, const char *view_name, bool final)
{
	static KappaStatement insert_rows =
		KAPPA_STATEMENT("INSERT INTO kappa.sink_outbox (sink_id, seq, key, value) "
						"SELECT $1, $2 + u.o, u.k, "
						"  pg_catalog.format('{\"kappa\": {\"sink\": %s, \"sink_id\": %s, \"seq\": %s, \"view\": %s, \"final\": %s}, \"row\": %s}', "
						"    pg_catalog.to_json($5::text), $1, $2 + u.o, pg_catalog.to_json($6::text), pg_catalog.to_json($7), u.r) "
						"FROM ROWS FROM (pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[])) "
						"  WITH ORDINALITY AS u(k, r, o)",
						"int4", "int8", "text[]", "text[]", "text", "text", "bool");
	int			n = list_length(rows);
	Datum	   *key_texts = palloc(sizeof(Datum) * n);
	Datum	   *row_texts = palloc(sizeof(Datum) * n);
	Datum		values[7];
	ListCell   *kc;
	ListCell   *rc;

	forboth(kc, keys, rc, rows)
	{
		int			i = foreach_current_index(kc);

		key_texts[i] = CStringGetTextDatum(lfirst(kc));
		row_texts[i] = CStringGetTextDatum(lfirst(rc));
	}
	values[0] = Int32GetDatum(sink_id);
	values[1] = Int64GetDatum(first_seq);
	values[2] = PointerGetDatum(construct_array(key_texts, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(row_texts, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = CStringGetTextDatum(sink_name);
	values[5] = CStringGetTextDatum(view_name);
	values[6] = BoolGetDatum(final);
	kappa_statement_run(&insert_rows, values, NULL, SPI_OK_INSERT, 0);
}

/*
 * The next batch of a sink's outbox, after after_seq, in seq order: keys
 * and messages appended to the Lists (text, in the current memory
 * context), at most KAPPA_SINK_OUTBOX_BATCH.  Returns the last seq taken,
 * or after_seq if there is none.
 */
int64
kappa_sink_outbox_take(int32 sink_id, int64 after_seq, List **keys, List **messages)
{
	static KappaStatement take_batch =
		KAPPA_STATEMENT("SELECT seq, key, value FROM kappa.sink_outbox "
						"WHERE sink_id = $1 AND seq > $2 ORDER BY seq LIMIT " CppAsString2(KAPPA_SINK_OUTBOX_BATCH),
						"int4", "int8");
	Datum		values[2] = {Int32GetDatum(sink_id), Int64GetDatum(after_seq)};
	int64		last = after_seq;
	uint64		n;

	n = kappa_statement_read(&take_batch, values, NULL, 0);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		*keys = lappend(*keys, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		*messages = lappend(*messages, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3));
	}
	return last;
}

/* Delete a sink's outbox rows up to last_seq, which Kafka committed. */
void
kappa_sink_outbox_delete_sent(int32 sink_id, int64 last_seq)
{
	static KappaStatement delete_sent =
		KAPPA_STATEMENT("DELETE FROM kappa.sink_outbox WHERE sink_id = $1 AND seq <= $2",
						"int4", "int8");
	Datum		values[2] = {Int32GetDatum(sink_id), Int64GetDatum(last_seq)};

	kappa_statement_run(&delete_sent, values, NULL, SPI_OK_DELETE, 0);
}
