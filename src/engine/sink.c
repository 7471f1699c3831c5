/*-------------------------------------------------------------------------
 *
 * sink.c
 *	  A view's final (or changed) rows sent to a Kafka topic, exactly once.
 *
 * kappa_create_sink(name, view, topic, ...) records a sink in kappa.sinks.
 * It follows its view by name, so a replay's new version feeds it too.
 *
 * Exactly once rests on two transactions and one number:
 *
 * - Postgres: the flush that makes windows final (emit 'final'), or that
 *   changes rows (emit 'changes'), also writes those rows to
 *   kappa.sink_outbox, numbered by the sink's seq, in the same
 *   transaction as the rows themselves.  So the outbox holds exactly what
 *   the view committed, once.  Replays and checks write nothing there.
 *
 * - Kafka: the stream's worker (its first, with several) sends the outbox
 *   after each flush, in one Kafka transaction per batch, with a
 *   transactional producer of its own per sink.  Each message's value
 *   carries the sink's name and the row's seq.  Once the Kafka transaction
 *   commits, the worker records the last seq sent (sent_seq) and deletes
 *   the outbox up to it, in a Postgres transaction.
 *
 * - After a crash between the two commits, kappa_sink_last_seq reads what
 *   the topic holds (read_committed: an unfinished transaction of the dead
 *   producer is aborted when the new one starts) and takes the largest seq
 *   of this sink there as sent.  So a row is sent again only if Kafka never
 *   committed it, and never twice.
 *
 * The messages are JSON: the key, the view's key columns ({} for a view
 * without); the value, {"kappa": {"sink", "sink_id", "seq", "view",
 * "final"}, "row": the row}.  sink_id tells this sink from an earlier one
 * of the same name.
 *
 * src/engine/sink.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "engine/compile.h"
#include "engine/portable.h"
#include "engine/sink.h"
#include "engine/view_read.h"
#include "guc.h"
#include "kafka/kafka.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/connection.h"
#include "kappa_catalog/sinks.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"
#include "kappa_catalog/view_plan.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kappa_create_sink);
PG_FUNCTION_INFO_V1(kappa_drop_sink);

/* A sink as a flush sees it. */
typedef struct FlushSink
{
	KappaSinkRows out;
	char	   *name;
	TimestampTz final_upto;		/* what the outbox has of final windows */
} FlushSink;

/* One sink's producer, kept by the stream worker, and its backoff. */
typedef struct SinkSender
{
	int32		sink_id;
	KappaSinkProducer *producer;	/* NULL until made, or after a failure */
	TimestampTz next_attempt;	/* after a failure: not before */
	int			backoff_ms;
} SinkSender;

/* How a send went. */
typedef enum SinkSendResult
{
	SINK_SENT_ALL,				/* the outbox is empty */
	SINK_SENT_BATCH,			/* a full batch went: there may be more */
	SINK_FAILED					/* recorded in kappa.sinks; back off */
} SinkSendResult;

/* The longest a worker goes on sending after a flush, and backoff bounds. */
#define SINK_SEND_BUDGET_MS 1000
#define SINK_BACKOFF_MIN_MS 1000
#define SINK_BACKOFF_MAX_MS 60000

struct KappaSinkSenders
{
	List	   *senders;		/* SinkSender */
	MemoryContext cxt;
};

static KappaStream *sink_connection(KappaStream *stream, const char *topic,
									const char *brokers, Jsonb *options);
static List *sink_settings(Jsonb *options);

/*
 * kappa_create_sink(name, view, topic, brokers, eventhubs, emit, options)
 * sends a view's rows to a topic: with emit 'final', the rows of its
 * windows once final (those final already first), each once; with
 * 'changes', each row as a flush changes it, from now on.  The view's
 * owner creates it; by default it sends to the stream's own brokers, with
 * the stream's settings and credentials.
 */
Datum
kappa_create_sink(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *topic;
	char	   *brokers = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	char	   *emit = PG_ARGISNULL(5) ? "final" : text_to_cstring(PG_GETARG_TEXT_PP(5));
	Jsonb	   *options = PG_ARGISNULL(6) ? NULL : PG_GETARG_JSONB_P(6);
	KappaViewRef view;
	KappaStream *stream;
	KappaCatalogAccess access;
	KappaOwnerAccess as_owner;
	char	   *plan;
	KappaViewSpec *spec;
	bool		is_end;
	Oid			owner = GetUserId();	/* the caller: the sink is theirs */

	/* any error below must not log the statement: its options may hold secrets */
	kappa_statement_has_secrets(true);
	kappa_require_preload();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name, view and topic must be given")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	topic = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strlen(name) == 0 || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid sink name \"%s\"", name),
				 errdetail("A sink's name is 1 to %d bytes.", NAMEDATALEN - 1)));
	if (!PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a sink to another Event Hubs namespace is not supported yet"),
				 errhint("Leave brokers and eventhubs out to send to the stream's own brokers (its Event Hubs namespace, with its credentials).")));
	if (strcmp(emit, "final") != 0 && strcmp(emit, "changes") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid emit \"%s\"", emit),
				 errhint("emit is \"final\" (each window's row once, when it is final) or \"changes\" (each row as it changes).")));
	kappa_validate_topic(topic);
	kappa_view_resolve_owned(text_to_cstring(PG_GETARG_TEXT_PP(1)), true, &view);
	stream = kappa_stream_load_owned(view.stream_name);

	/* other brokers: their settings are checked as a stream's are */
	if (brokers != NULL)
	{
		ListCell   *lc;

		kappa_validate_brokers(brokers);
		foreach(lc, sink_settings(options))
			kappa_validate_setting(((KappaSetting *) lfirst(lc))->name);
		kappa_kafka_check_settings(sink_connection(stream, topic, brokers,
												   options ? options : DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")))));
	}
	else if (options != NULL && JB_ROOT_COUNT(options) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options of a sink are for other brokers than the stream's"),
				 errhint("Without brokers, a sink uses the stream's own settings.")));

	/* emit final needs windows, and a column by which to find them */
	plan = kappa_view_localize(view.view_id);
	if (plan == NULL)
		plan = kappa_views_plan(view.view_id, NULL, true);
	kappa_owner_enter(&as_owner, view.owner);
	spec = kappa_compile_view(kappa_stored_view(plan, &stream));
	kappa_owner_leave(&as_owner);
	if (strcmp(emit, "final") == 0 &&
		(spec->window.kind == KAPPA_WINDOW_NONE || kappa_view_window_column(spec, &is_end) == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(spec->window.kind == KAPPA_WINDOW_NONE ?
						"a view without windows has no final rows to send" :
						"a sink of final rows needs the view to select its window's end"),
				 errhint(spec->window.kind == KAPPA_WINDOW_NONE ?
						 "Use emit => 'changes' to send each row as it changes." :
						 "Add w.window_end (or, for tumbling and hopping windows, w.window_start) to the view's select list.")));

	if (options == NULL)
		options = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	kappa_catalog_enter(&access);
	if (kappa_sinks_exists(name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("sink \"%s\" already exists", name),
				 errhint("Drop it first with kappa_drop_sink, or choose another name.")));
	/* emit changes: from now on; emit final: every final window, from the first */
	kappa_sinks_insert(name, owner, view.schema, view.relname, topic, brokers, options, emit);
	kappa_catalog_leave(&access);
	PG_RETURN_VOID();
}

/*
 * kappa_drop_sink(name) removes a sink and its outbox: what it has not sent
 * is not sent.  Its owner (or a superuser) may.
 */
Datum
kappa_drop_sink(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			owner;
	KappaCatalogAccess access;

	kappa_require_preload();
	kappa_catalog_enter(&access);
	owner = kappa_sinks_lock_owner(name);
	kappa_catalog_leave(&access);
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("sink \"%s\" does not exist", name),
				 errhint("kappa_sinks lists the sinks.")));
	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of sink \"%s\"", name)));
	kappa_catalog_enter(&access);
	kappa_sinks_delete(name);
	kappa_catalog_leave(&access);
	PG_RETURN_VOID();
}

/*
 * The sinks of a view, as a flush sees them (read in a catalog section of
 * its own; call it before the owner's section of the flush).  NIL for a
 * replay's or a check's engine: they send nothing.
 */
List *
kappa_sink_load(ViewRuntime *view)
{
	List	   *sinks = NIL;
	List	   *found;
	ListCell   *lc;
	KappaCatalogAccess access;
	MemoryContext caller = CurrentMemoryContext;

	kappa_catalog_enter(&access);
	/* in the caller's memory: SPI's goes with the catalog section */
	found = kappa_sinks_of_view(view->view_id, caller);
	kappa_catalog_leave(&access);
	foreach(lc, found)
	{
		KappaSinkOfView *found_sink = lfirst(lc);
		FlushSink  *sink = palloc0(sizeof(FlushSink));

		sink->out.sink_id = found_sink->sink_id;
		sink->name = found_sink->name;
		sink->out.final = found_sink->final;
		sink->final_upto = found_sink->final_upto;
		sink->out.final_upto = DT_NOBEGIN;
		sinks = lappend(sinks, sink);
	}
	list_free_deep(found);		/* the names stay: the sinks have them */
	return sinks;
}

/* The SQL of a row's key: its key columns as a JSON object. */
static char *
key_expression(ViewRuntime *view)
{
	StringInfoData key;

	initStringInfo(&key);
	appendStringInfoString(&key, "pg_catalog.jsonb_build_object(");
	for (int i = 0; i < view->nunique; i++)
	{
		TargetEntry *tle = list_nth(view->spec->output, view->unique_cols[i]);

		appendStringInfo(&key, "%s%s, r.%s", i > 0 ? ", " : "",
						 quote_literal_cstr(tle->resname), quote_identifier(tle->resname));
	}
	appendStringInfoString(&key, ")::text");
	return key.data;
}

/* Each row the statement returns (key, row), appended to the sink's. */
static void
take_rows(FlushSink *sink, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		sink->out.keys = lappend(sink->out.keys,
								 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		sink->out.rows = lappend(sink->out.rows,
								 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
	}
	MemoryContextSwitchTo(old);
}

/*
 * What the flush gives each sink of the view: with emit final, the rows
 * of the windows that became final since the sink's last (read from the
 * rows table, whose rows the flush has just written: not read-only, so
 * that the statement sees them); with changes, the
 * rows the flush wrote (changed_rows, of the rows table's type).  In the
 * owner's section of the flush, SPI connected: the rows become JSON
 * through their types' output functions, the owner's code.  What is
 * taken lives in cxt (the flush's memory: SPI's goes at SPI_finish).
 */
void
kappa_sink_collect(ViewRuntime *view, List *sinks, List *changed_rows, TimestampTz final_until,
				   MemoryContext cxt)
{
	ListCell   *lc;
	char	   *key = key_expression(view);

	foreach(lc, sinks)
	{
		FlushSink  *sink = lfirst(lc);

		if (sink->out.final)
		{
			bool		is_end;
			char	   *column = kappa_view_window_column(view->spec, &is_end);
			int64		shift = is_end ? 0 : view->spec->window.size;
			Datum		values[2];

			if (column == NULL || final_until == DT_NOBEGIN || final_until <= sink->final_upto)
				continue;
			values[0] = TimestampTzGetDatum(sink->final_upto == DT_NOBEGIN ? DT_NOBEGIN :
											sink->final_upto - shift);
			values[1] = TimestampTzGetDatum(final_until - shift);
			/* as the user-facing view reads them: HAVING and top N applied */
			if (SPI_execute_with_args(psprintf("SELECT %s, pg_catalog.to_jsonb(r)::text FROM (%s) r "
											   "WHERE r.%s > $1 AND r.%s <= $2",
											   key, kappa_view_read_query(view->spec, view->rows_table),
											   quote_identifier(column), quote_identifier(column)),
									  2, (Oid[]) {TIMESTAMPTZOID, TIMESTAMPTZOID}, values, NULL,
									  false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read the final rows of kappa view %s", view->name);
			take_rows(sink, cxt);
			sink->out.final_upto = final_until;
		}
		else if (changed_rows != NIL)
		{
			int			n = list_length(changed_rows);
			Datum	   *elems = palloc(sizeof(Datum) * n);
			Datum		array;
			ListCell   *rc;

			foreach(rc, changed_rows)
				elems[foreach_current_index(rc)] = PointerGetDatum(lfirst(rc));
			array = PointerGetDatum(construct_array(elems, n, view->row_type, -1, false, TYPALIGN_DOUBLE));
			if (SPI_execute_with_args(psprintf("SELECT %s, pg_catalog.to_jsonb(r)::text FROM pg_catalog.unnest($1) r",
											   key),
									  1, (Oid[]) {get_array_type(view->row_type)}, &array, NULL,
									  false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read the changed rows of kappa view %s", view->name);
			take_rows(sink, cxt);
		}
	}
}

/*
 * Put what kappa_sink_collect took into the sinks' outboxes, numbered
 * from each sink's next seq, in the flush's transaction (a catalog
 * section).
 */
void
kappa_sink_store(ViewRuntime *view, List *sinks)
{
	ListCell   *lc;

	foreach(lc, sinks)
	{
		FlushSink  *sink = lfirst(lc);
		int			n = list_length(sink->out.rows);
		int64		first;

		if (n == 0 && sink->out.final_upto == DT_NOBEGIN)
			continue;
		if (!kappa_sinks_give_seqs(sink->out.sink_id, n, sink->out.final_upto, &first))
			elog(ERROR, "could not write the outbox of sink \"%s\"", sink->name);
		if (n == 0)
			continue;
		kappa_sink_outbox_insert(sink->out.sink_id, first, sink->out.keys, sink->out.rows,
								 sink->name, view->name, sink->out.final);
	}
}

/*
 * A sink's options as librdkafka settings: strings, numbers or booleans,
 * and no secrets (they would be stored unmasked in kappa.sinks).
 */
static List *
sink_settings(Jsonb *options)
{
	List	   *settings = NIL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (options == NULL)
		return NIL;
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object of librdkafka settings")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *name;
		char	   *value;
		KappaSetting *setting;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(v.val.string.val, v.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		if (v.type == jbvString)
			value = pnstrdup(v.val.string.val, v.val.string.len);
		else if (v.type == jbvNumeric)
			value = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
		else if (v.type == jbvBool)
			value = v.val.boolean ? "true" : "false";
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("value of librdkafka setting \"%s\" must be a string, number or boolean", name)));
		setting = kappa_make_setting(name, value);
		if (setting->secret)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("secret settings in a sink's options are not supported yet"),
					 errdetail("Setting \"%s\" is a secret.", name),
					 errhint("Leave brokers out to send with the stream's own settings and credentials.")));
		settings = lappend(settings, setting);
	}
	return settings;
}

/*
 * Where a sink sends: the stream's own brokers and settings (with its
 * credentials), or other brokers with the sink's options.
 */
static KappaStream *
sink_connection(KappaStream *stream, const char *topic, const char *brokers, Jsonb *options)
{
	KappaStream *conn = palloc(sizeof(KappaStream));

	memcpy(conn, stream, sizeof(KappaStream));
	conn->topic = pstrdup(topic);
	if (brokers != NULL)
	{
		conn->brokers = pstrdup(brokers);
		conn->settings = sink_settings(options);
	}
	return conn;
}

/* The sink's producer, kept by the worker; NULL if it has none yet. */
static SinkSender *
find_sender(KappaSinkSenders *senders, int32 sink_id)
{
	ListCell   *lc;

	foreach(lc, senders->senders)
	{
		if (((SinkSender *) lfirst(lc))->sink_id == sink_id)
			return lfirst(lc);
	}
	return NULL;
}

/* Close a sink's producer (its sink dropped, or a send failed). */
static void
close_producer(SinkSender *sender)
{
	if (sender->producer != NULL)
		kappa_sink_producer_close(sender->producer);
	sender->producer = NULL;
}

/*
 * A send failed: close the producer, so that the next attempt makes a new
 * one and learns from the topic what was committed, and back off.
 */
static void
sender_failed(SinkSender *sender)
{
	close_producer(sender);
	sender->backoff_ms = Min(Max(2 * sender->backoff_ms, SINK_BACKOFF_MIN_MS), SINK_BACKOFF_MAX_MS);
	sender->next_attempt = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), sender->backoff_ms);
}

/*
 * Send one batch of a sink's outbox: in one Kafka transaction, then, in
 * the caller's Postgres transaction, the new sent_seq.  The first time
 * (or after a failure), the producer is made, which aborts what a dead
 * one left open, and the topic tells what was sent already: the largest
 * seq of this sink there (its name and id, which another sink of the same
 * name, made later, does not share).  A Kafka error is recorded in
 * kappa.sinks, and the outbox waits.
 */
static SinkSendResult
send_sink(KappaStream *stream, SinkSender *sender, KappaSinkTarget *sink)
{
	int32		sink_id = sink->sink_id;
	char	   *name = sink->name;
	char	   *topic = sink->topic;
	int64		sent = sink->sent_seq;
	int64		next_seq = sink->next_seq;
	KappaStream *conn = sink_connection(stream, topic, sink->brokers, sink->options);
	char	   *error = NULL;
	bool		fatal = false;
	List	   *keys = NIL;
	List	   *messages = NIL;
	int64		last;

	if (sender->producer == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(GetMemoryChunkContext(sender));
		KappaSinkProducer *producer = kappa_sink_producer_open(conn, psprintf("kappa-sink-%u-%d", MyDatabaseId, sink_id),
															   &error);
		int64		committed;

		MemoryContextSwitchTo(old);
		if (producer == NULL)
		{
			kappa_sinks_set_error(sink_id, error);
			return SINK_FAILED;
		}
		sender->producer = producer;
		/* what the topic holds of this sink already counts as sent */
		committed = kappa_sink_last_seq(conn, name, sink_id, &error);
		if (committed < 0)
		{
			kappa_sinks_set_error(sink_id, error);
			return SINK_FAILED;
		}
		if (committed > next_seq)
			ereport(WARNING,
					(errmsg("kappa sink \"%s\": its topic holds seq " INT64_FORMAT ", beyond the last one given, " INT64_FORMAT "; ignored",
							name, committed, next_seq),
					 errhint("Give each sink a topic of its own.")));
		else if (committed > sent)
		{
			ereport(LOG,
					(errmsg("kappa sink \"%s\": its topic holds rows up to seq " INT64_FORMAT ", " INT64_FORMAT " more than recorded as sent",
							name, committed, committed - sent)));
			sent = committed;
		}
	}

	last = kappa_sink_outbox_take(sink_id, sent, &keys, &messages);
	if (messages != NIL && !kappa_sink_producer_send(sender->producer, topic, keys, messages, &error, &fatal))
	{
		kappa_sinks_set_error(sink_id, error);
		return SINK_FAILED;
	}
	kappa_sinks_record_sent(sink_id, last);
	kappa_sink_outbox_delete_sent(sink_id, last);
	sender->backoff_ms = 0;
	return list_length(messages) == KAPPA_SINK_OUTBOX_BATCH ? SINK_SENT_BATCH : SINK_SENT_ALL;
}

/*
 * One batch of one sink, in a transaction of its own.  An error (a
 * setting librdkafka refuses, a topic that does not exist, the catalog
 * changing under it) is the sink's, not the stream's: it is recorded in
 * kappa.sinks and the sink backs off, while the stream goes on.
 */
static SinkSendResult
send_one_batch(KappaStream *stream, SinkSender *sender)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile SinkSendResult result = SINK_SENT_ALL;
	KappaCatalogAccess access;
	KappaSinkTarget sink;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		kappa_catalog_enter(&access);
		/* the row locked: a kappa_drop_sink waits for the send to end */
		if (kappa_sinks_lock(sender->sink_id, &sink))
			result = send_sink(stream, sender, &sink);
		kappa_catalog_leave(&access);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		kappa_catalog_enter(&access);
		kappa_sinks_set_error(sender->sink_id, edata->message);
		kappa_catalog_leave(&access);
		PopActiveSnapshot();
		CommitTransactionCommand();
		result = SINK_FAILED;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	if (result == SINK_FAILED)
	{
		ereport(LOG,
				(errmsg("kappa sink %d of stream \"%s\" could not send; trying again in %d ms",
						sender->sink_id, stream->name,
						Min(Max(2 * sender->backoff_ms, SINK_BACKOFF_MIN_MS), SINK_BACKOFF_MAX_MS))));
		sender_failed(sender);
	}
	return result;
}

/*
 * Send what the sinks of the stream's views have in their outboxes, after
 * a flush committed, in transactions of their own: batch after batch, for
 * up to SINK_SEND_BUDGET_MS, skipping sinks backing off.  Only sinks whose
 * owner may still act for the view's owner (and, without brokers of its
 * own, the stream's) send: a sink follows its view by name, and a view of
 * that name may since belong to someone else.  The producers live in
 * *senders, made on first use; those of sinks gone are closed.
 */
void
kappa_sinks_send(KappaStream *stream, KappaSinkSenders **senders)
{
	List	   *sinks = NIL;
	List	   *pending = NIL;
	ListCell   *lc;
	KappaCatalogAccess access;
	TimestampTz start = GetCurrentTimestamp();

	if (*senders == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "kappa sink senders",
												  ALLOCSET_SMALL_SIZES);

		*senders = MemoryContextAllocZero(cxt, sizeof(KappaSinkSenders));
		(*senders)->cxt = cxt;
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	kappa_catalog_enter(&access);
	/* in the senders' memory: the transaction's goes at its commit */
	kappa_sinks_of_stream(stream->id, (*senders)->cxt, &sinks, &pending);
	kappa_catalog_leave(&access);
	PopActiveSnapshot();
	CommitTransactionCommand();

	/* the producers of sinks gone (or no longer allowed) are closed */
	foreach(lc, (*senders)->senders)
	{
		SinkSender *sender = lfirst(lc);

		if (!list_member_int(sinks, sender->sink_id))
		{
			close_producer(sender);
			(*senders)->senders = foreach_delete_current((*senders)->senders, lc);
			pfree(sender);
		}
	}

	foreach(lc, pending)
	{
		SinkSender *sender = find_sender(*senders, lfirst_int(lc));

		if (sender == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo((*senders)->cxt);

			sender = palloc0(sizeof(SinkSender));
			sender->sink_id = lfirst_int(lc);
			(*senders)->senders = lappend((*senders)->senders, sender);
			MemoryContextSwitchTo(old);
		}
		if (sender->next_attempt > GetCurrentTimestamp())
			continue;			/* backing off */
		while (send_one_batch(stream, sender) == SINK_SENT_BATCH &&
			   !TimestampDifferenceExceeds(start, GetCurrentTimestamp(), SINK_SEND_BUDGET_MS))
			;
	}
	list_free(sinks);
	list_free(pending);
}
