/*-------------------------------------------------------------------------
 *
 * produce.c
 *	  SQL functions that talk to a stream's brokers: kappa_produce and
 *	  kappa_peek.
 *
 * kappa_produce appends an event to a stream's topic, for demos, tests and
 * producers that live in SQL; kappa_peek reads the newest messages back,
 * for a look at what a topic holds; kappa_wait waits until the stream's
 * worker has committed everything the topic held when it was called (the
 * positions, read by kappa_catalog/positions.c).  They are thin: kafka.c
 * does the talking and bounds every wait by kappa.broker_timeout.  Reaching the
 * brokers may need the stream's secret settings, which stream.c loads for
 * them and which they never show; so both are granted to kappa_admin only,
 * and act only on streams the caller owns.
 *
 * src/api/produce.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "api/produce.h"
#include "kafka/kafka.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/positions.h"
#include "kappa_catalog/stream.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kappa_produce);
PG_FUNCTION_INFO_V1(kappa_peek);
PG_FUNCTION_INFO_V1(kappa_wait);

static Datum text_if_valid(const char *data, size_t len, bool *isnull);

/*
 * kappa_produce(stream, payload, key) appends one message and returns its
 * (partition, offset).  It serves both SQL forms, (text, text, text) and
 * (text, bytea, bytea): either way payload and key are bytes to send.
 */
Datum
kappa_produce(PG_FUNCTION_ARGS)
{
	KappaStream *stream;
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int32		partition;
	int64		offset;
	const char *payload = NULL;
	size_t		payload_len = 0;
	const char *key = NULL;
	size_t		key_len = 0;

	kappa_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream must not be null")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	/* a null payload is a tombstone, as in Kafka */
	if (!PG_ARGISNULL(1))
	{
		struct varlena *v = PG_GETARG_VARLENA_PP(1);

		payload = VARDATA_ANY(v);
		payload_len = VARSIZE_ANY_EXHDR(v);
	}
	if (!PG_ARGISNULL(2))
	{
		struct varlena *v = PG_GETARG_VARLENA_PP(2);

		key = VARDATA_ANY(v);
		key_len = VARSIZE_ANY_EXHDR(v);
	}

	stream = kappa_stream_load_owned(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	kappa_kafka_produce(stream, payload, payload_len, key, key_len,
						&partition, &offset);

	values[0] = Int32GetDatum(partition);
	values[1] = Int64GetDatum(offset);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* data as text if it is valid in the server encoding, else null. */
static Datum
text_if_valid(const char *data, size_t len, bool *isnull)
{
	*isnull = (data == NULL || memchr(data, '\0', len) != NULL ||
			   !pg_verify_mbstr(GetDatabaseEncoding(), data, len, true));
	return *isnull ? (Datum) 0 : PointerGetDatum(cstring_to_text_with_len(data, len));
}

/*
 * kappa_peek(stream text, n int) returns the newest n messages of the
 * stream's topic, oldest first: partition, offset, timestamp, key, payload
 * (null where the bytes are not valid text) and the raw payload.
 */
Datum
kappa_peek(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		n = PG_GETARG_INT32(1);
	KappaStream *stream;
	List	   *messages;

	kappa_require_preload();
	if (n < 1 || n > KAPPA_PEEK_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be between 1 and %d", KAPPA_PEEK_MAX)));
	stream = kappa_stream_load_owned(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	messages = kappa_kafka_peek(stream, n);
	InitMaterializedSRF(fcinfo, 0);

	/* kappa_kafka_peek returns newest first; show them as a log reads */
	for (int i = list_length(messages) - 1; i >= 0; i--)
	{
		KappaPeekMessage *m = list_nth(messages, i);
		Datum		values[6];
		bool		nulls[6] = {0};

		values[0] = Int32GetDatum(m->partition);
		values[1] = Int64GetDatum(m->offset);
		if (m->timestamp_ms >= 0)
			values[2] = TimestampTzGetDatum(time_t_to_timestamptz(0) +
											m->timestamp_ms * INT64CONST(1000));
		else
			nulls[2] = true;
		values[3] = text_if_valid(m->key, m->key_len, &nulls[3]);
		values[4] = text_if_valid(m->payload, m->payload_len, &nulls[4]);
		if (m->payload)
		{
			bytea	   *raw = palloc(VARHDRSZ + m->payload_len);

			SET_VARSIZE(raw, VARHDRSZ + m->payload_len);
			memcpy(VARDATA(raw), m->payload, m->payload_len);
			values[5] = PointerGetDatum(raw);
		}
		else
			nulls[5] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * kappa_wait(stream, timeout) waits until the stream and every live view
 * of it have committed positions at or past the end of each partition it
 * consumes, as it was when called; true, or false when the timeout passes
 * first.  A view whose state marker is missing (crash recovery emptied it,
 * and the worker has not rebuilt the view yet) is not done either: its
 * positions are those from before the crash.
 */
Datum
kappa_wait(PG_FUNCTION_ARGS)
{
	KappaStream *stream;
	Interval   *timeout = PG_GETARG_INTERVAL_P(1);
	TimestampTz deadline;
	int			nparts;
	int64	   *low;
	int64	   *high;
	int32	   *parts;
	int64	   *ends;
	int			nwait = 0;
	bool		done = false;

	kappa_require_preload();
	stream = kappa_stream_load_owned(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   (timeout->time + (int64) timeout->day * USECS_PER_DAY) / 1000);
	kappa_kafka_watermarks(stream, &nparts, &low, &high);

	/* only partitions that hold something to consume here */
	parts = palloc(sizeof(int32) * Max(nparts, 1));
	ends = palloc(sizeof(int64) * Max(nparts, 1));
	for (int p = 0; p < nparts; p++)
	{
		if (high[p] > low[p] && kappa_stream_owns(stream, p))
		{
			parts[nwait] = p;
			ends[nwait++] = high[p];
		}
	}
	for (;;)
	{
		KappaCatalogAccess access;

		kappa_catalog_enter(&access);
		done = kappa_positions_caught_up(stream->id, nwait, parts, ends);
		kappa_catalog_leave(&access);
		if (done || GetCurrentTimestamp() >= deadline)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 50, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_BOOL(done);
}
