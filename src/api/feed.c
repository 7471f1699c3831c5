/*-------------------------------------------------------------------------
 *
 * feed.c
 *	  kappa_feed: messages from a table, straight into a stream's engine.
 *
 * A stream's worker takes messages from the brokers and runs them through
 * the engine (src/engine/): decode, route, aggregate, flush.  kappa_feed runs
 * the very same engine in the calling backend, on messages read from a
 * table of (partition, offset, payload[, key][, timestamp]) rows, as if the
 * worker had consumed them from the log: positions, watermarks, lateness,
 * dedup, dead letters, counts and the stream's archive all behave as they
 * would live, and a worker started afterwards goes on from the positions
 * the feed stored.
 *
 * It exists for two reasons.  Benchmarks measure the engine alone with it,
 * without a broker (bench/run's "engine only" figures): it reports the
 * time spent in the engine, not counting reading the table.  And tests can
 * drive the engine deterministically.  The replay of the archive (issue
 * 5) feeds the engine the same way.
 *
 * Rights: the messages table is read as the caller (the cursor is opened
 * and fetched as the caller, so the caller's privileges and row security
 * apply, and any function the table's query calls runs as the caller);
 * the engine runs the views' code as their owners and writes kappa's
 * tables as the catalog (catalog.c), as in a worker.  An event that fails
 * is a poison as in a worker (poison.c): the feed works in subtransactions
 * of one flush each, rolls the failing one back, and reads again from the
 * stored positions, knowing the poison.
 *
 * Exclusion: the worker holds the stream's consumer lock (a session-level
 * advisory lock, see kappa_stream_lock_consumer) for as long as it runs,
 * and kappa_feed takes it for its transaction without waiting; so the two
 * never apply the same messages, and a worker that starts while a feed
 * runs waits for it to commit, then loads the positions it stored.
 *
 * src/api/feed.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "archive/archive.h"
#include "engine/engine.h"
#include "guc.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/stream.h"
#include "shmem.h"
#include "subxact.h"

PG_FUNCTION_INFO_V1(kappa_feed);

/* Rows fetched from the messages table at a time, with this cursor. */
#define FEED_BATCH 10000
#define FEED_CURSOR "kappa_feed_messages"

/* A column of the messages table: its name, and the types it may have. */
typedef struct FeedColumn
{
	const char *name;
	bool		required;
	Oid			types[2];		/* accepted types; InvalidOid ends the list */
} FeedColumn;

static const FeedColumn feed_columns[] = {
	{"partition", true, {INT4OID, InvalidOid}},
	{"offset", true, {INT8OID, InvalidOid}},
	{"payload", true, {BYTEAOID, TEXTOID}},
	{"key", false, {BYTEAOID, TEXTOID}},
	{"timestamp", false, {TIMESTAMPTZOID, InvalidOid}},
};
#define FEED_NCOLUMNS lengthof(feed_columns)

/* A feed under way. */
typedef struct Feed
{
	KappaEngine *engine;
	KappaArchiveWriter *archive;		/* the stream's, if it has one; or NULL */
	KappaMessage *messages;		/* a fetch's */
	KappaSubxact sub;			/* of the messages since the last flush */
	instr_time	engine_time;
	instr_time	flush_time;
	KappaPhaseTimes phases;		/* the same time, by what it went into */
} Feed;

static char *feed_select(Oid relid, bool *present);
static int	feed_partition_ends(Oid relid, int64 **ends);
static void feed_batch(KappaEngine *engine, SPITupleTable *tuptable, uint64 n,
					   KappaMessage *messages);
static void accumulate_since(instr_time *total, instr_time start);
static void feed_flush(Feed *f);
static int64 feed_messages(Feed *f, Portal portal);
static int64 feed_all(Feed *f, KappaStream *stream, const char *select, int nparts,
					  const int64 *ends);

/*
 * The SELECT that reads the messages table in the order a consumer would
 * see its messages, after checking its columns: each message's payload,
 * key and timestamp, null where the table has no such column.
 */
static char *
feed_select(Oid relid, bool *present)
{
	StringInfoData sql;
	char	   *relname = get_rel_name(relid);

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < (int) FEED_NCOLUMNS; i++)
	{
		const FeedColumn *fc = &feed_columns[i];
		AttrNumber	attno = get_attnum(relid, fc->name);
		bool		ok = false;

		present[i] = (attno != InvalidAttrNumber);
		if (!present[i])
		{
			if (fc->required)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("table \"%s\" has no column \"%s\"", relname, fc->name),
						 errhint("The messages table needs columns partition int, \"offset\" bigint and payload bytea or text; key and \"timestamp\" are optional.")));
			appendStringInfo(&sql, "%sNULL", i > 0 ? ", " : "");
			continue;
		}
		for (int t = 0; t < 2 && fc->types[t] != InvalidOid; t++)
			ok |= (get_atttype(relid, attno) == fc->types[t]);
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of table \"%s\" has type %s", fc->name, relname,
							format_type_be(get_atttype(relid, attno))),
					 errhint("The messages table needs columns partition int, \"offset\" bigint and payload bytea or text; key and \"timestamp\" are optional.")));
		appendStringInfo(&sql, "%s%s", i > 0 ? ", " : "", quote_identifier(fc->name));
	}
	/* interleaved across partitions, each in offset order, as consumed */
	appendStringInfo(&sql, " FROM %s ORDER BY \"offset\", partition",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												relname));
	return sql.data;
}

/*
 * The end of each partition in the messages table (its largest offset plus
 * one; -1 for partitions it lacks), and so the number of partitions.
 */
static int
feed_partition_ends(Oid relid, int64 **ends)
{
	char	   *sql;
	int			nparts = 0;

	sql = psprintf("SELECT partition, max(\"offset\") + 1 FROM %s GROUP BY partition",
				   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
											  get_rel_name(relid)));
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the partitions of the messages table");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		p = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (isnull || DatumGetInt32(p) < 0 || DatumGetInt32(p) >= 100000)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("messages table holds an invalid partition"),
					 errdetail("Partitions are numbered from 0 to 99999; null is none.")));
		nparts = Max(nparts, DatumGetInt32(p) + 1);
	}
	*ends = palloc(sizeof(int64) * Max(nparts, 1));
	for (int p = 0; p < nparts; p++)
		(*ends)[p] = -1;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		Datum		end = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);

		if (!isnull)
			(*ends)[p] = DatumGetInt64(end);
	}
	return nparts;
}

/* Turn fetched rows into messages; the bytes stay in the rows. */
static void
feed_batch(KappaEngine *engine, SPITupleTable *tuptable, uint64 n, KappaMessage *messages)
{
	TupleDesc	desc = tuptable->tupdesc;

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tuple = tuptable->vals[i];
		KappaMessage *m = &messages[i];
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(tuple, desc, 1, &isnull);
		m->partition = isnull ? -1 : DatumGetInt32(d);
		d = SPI_getbinval(tuple, desc, 2, &isnull);
		if (isnull || DatumGetInt64(d) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("messages table holds an invalid offset"),
					 errdetail("Offsets are 0 or more; null is none.")));
		m->offset = DatumGetInt64(d);
		d = SPI_getbinval(tuple, desc, 3, &isnull);
		if (isnull)
		{
			m->payload = NULL;
			m->len = 0;
		}
		else
		{
			struct varlena *v = PG_DETOAST_DATUM_PACKED(d);

			m->payload = VARDATA_ANY(v);
			m->len = VARSIZE_ANY_EXHDR(v);
		}
		d = SPI_getbinval(tuple, desc, 4, &isnull);
		if (isnull)
		{
			m->key = NULL;
			m->key_len = 0;
		}
		else
		{
			struct varlena *v = PG_DETOAST_DATUM_PACKED(d);

			m->key = VARDATA_ANY(v);
			m->key_len = VARSIZE_ANY_EXHDR(v);
		}
		d = SPI_getbinval(tuple, desc, 5, &isnull);
		/* Kafka's timestamps are milliseconds since the epoch */
		m->timestamp_ms = isnull ? -1 :
			(DatumGetTimestampTz(d) - SetEpochTimestamp()) / INT64CONST(1000);
	}
}

/* Add the time since start to total. */
static void
accumulate_since(instr_time *total, instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_ACCUM_DIFF(*total, now, start);
}

/*
 * Sync the engine's views and flush it (the archive first, as a worker
 * does), adding the time to flush_time; then the subtransaction of what
 * was flushed ends, and a new one begins.
 */
static void
feed_flush(Feed *f)
{
	instr_time	start;

	INSTR_TIME_SET_CURRENT(start);
	(void) kappa_engine_sync_views(f->engine);
	if (f->archive)
		kappa_archive_writer_flush(f->archive);
	kappa_engine_flush(f->engine);
	kappa_subxact_commit(&f->sub);
	kappa_subxact_begin(&f->sub);
	accumulate_since(&f->flush_time, start);
}

/*
 * Run every message of the cursor through the engine (and the stream's
 * archive, if it has one), flushing every kappa.flush_events messages (and
 * when a poison was met) and at the end.  Returns how many messages were
 * read.
 */
static int64
feed_messages(Feed *f, Portal portal)
{
	int64		total = 0;

	for (;;)
	{
		uint64		n;
		instr_time	start;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, FEED_BATCH);
		n = SPI_processed;
		if (n == 0)
			break;
		feed_batch(f->engine, SPI_tuptable, n, f->messages);

		INSTR_TIME_SET_CURRENT(start);
		for (uint64 i = 0; i < n; i++)
		{
			if (f->archive)
				kappa_archive_writer_append(f->archive, &f->messages[i]);
			kappa_engine_process(f->engine, &f->messages[i]);
			if (kappa_engine_flush_due(f->engine))
			{
				accumulate_since(&f->engine_time, start);
				feed_flush(f);
				INSTR_TIME_SET_CURRENT(start);
			}
		}
		accumulate_since(&f->engine_time, start);
		total += n;
		SPI_freetuptable(SPI_tuptable);
	}
	feed_flush(f);
	return total;
}

/*
 * Feed the messages that select reads, in subtransactions of one flush
 * each: an event that fails rolls back to the last flush, and the feed
 * starts over from the table's start with the poison known (the engine
 * skips what it stored).  Returns how many messages were read.
 */
static int64
feed_all(Feed *f, KappaStream *stream, const char *select, int nparts, const int64 *ends)
{
	KappaPoisons *poisons = kappa_poisons_create();
	volatile int64 total = 0;
	volatile bool again = true;
	Portal		portal;

	/* as in the worker: the stream's dead letters stay dead until retried */
	kappa_poisons_load(poisons, stream->id, 0);
	if (stream->archive)
		f->archive = kappa_archive_writer_create(stream, nparts);
	kappa_subxact_begin(&f->sub);
	while (again)
	{
		again = false;
		/* from the start of the table: the engine skips what it stored */
		if ((portal = SPI_cursor_find(FEED_CURSOR)) != NULL)
			SPI_cursor_close(portal);
		portal = SPI_cursor_open_with_args(FEED_CURSOR, select, 0, NULL, NULL, NULL, true, 0);
		PG_TRY();
		{
			/* no log to ask where it begins: a lost state is rebuilt from the table */
			f->engine = kappa_engine_create(stream, nparts, NULL, 0, 1, NULL, NULL, poisons);
			kappa_engine_time_phases(f->engine, &f->phases);
			for (int p = 0; p < nparts; p++)
			{
				if (ends[p] < 0)
					continue;
				if (kappa_engine_start_offset(f->engine, p) == KAPPA_OFFSET_END)
					kappa_engine_resolve_latest(f->engine, p, ends[p]);
				kappa_engine_note_end(f->engine, p, ends[p]);
			}
			total = feed_messages(f, portal);
		}
		PG_CATCH();
		{
			ErrorData  *edata = kappa_subxact_abort(&f->sub);

			if (kappa_engine_blame(f->engine, edata) == KAPPA_BLAME_NONE)
				ReThrowError(edata);
			kappa_engine_destroy(f->engine);
			f->engine = NULL;
			if (f->archive)
				kappa_archive_writer_reset(f->archive);
			kappa_subxact_begin(&f->sub);
			ereport(NOTICE,
					(errmsg("kappa_feed: an event failed; going on without it"),
					 errdetail("%s (SQLSTATE %s)", kappa_error_text(edata),
							   unpack_sql_state(edata->sqlerrcode))));
			again = true;
		}
		PG_END_TRY();
	}
	kappa_subxact_commit(&f->sub);
	kappa_engine_destroy(f->engine);
	f->engine = NULL;
	if ((portal = SPI_cursor_find(FEED_CURSOR)) != NULL)
		SPI_cursor_close(portal);
	return total;
}

/*
 * kappa_feed(stream, messages regclass) runs every row of the messages
 * table through the stream's engine, flushing every kappa.flush_events
 * messages and at the end, in the caller's transaction.  Returns how many
 * messages it read, the seconds spent in the engine (decode, aggregate)
 * and in its flushes, and the same time by phase (KappaPhase); reading
 * the table is not counted.
 */
Datum
kappa_feed(PG_FUNCTION_ARGS)
{
	Oid			relid;
	KappaStream *stream;
	MemoryContext feed_cxt;
	MemoryContext old;
	Feed		f = {0};
	TupleDesc	tupdesc;
	bool		present[FEED_NCOLUMNS];
	char	   *select;
	int64	   *ends;
	int			nparts;
	int64		total;
	int			save_nestlevel;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	StringInfoData phases;

	kappa_require_preload();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream and messages must not be null")));
	relid = PG_GETARG_OID(1);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	stream = kappa_stream_load_owned(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (!kappa_stream_lock_consumer(stream->id, false))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("stream \"%s\" is being consumed by its worker", stream->name),
				 errdetail("A feed and the stream's worker would apply the same messages twice."),
				 errhint("Stop the worker first, e.g. with kappa.enabled = off.")));

	feed_cxt = AllocSetContextCreate(CurrentMemoryContext, "kappa feed",
									 ALLOCSET_DEFAULT_SIZES);
	SPI_connect();
	select = feed_select(relid, present);
	nparts = feed_partition_ends(relid, &ends);
	save_nestlevel = kappa_settings_enter();
	/* the engine and the archive writer live in the feed's memory */
	old = MemoryContextSwitchTo(feed_cxt);
	f.messages = palloc(sizeof(KappaMessage) * FEED_BATCH);
	INSTR_TIME_SET_ZERO(f.engine_time);
	INSTR_TIME_SET_ZERO(f.flush_time);
	for (int i = 0; i < KAPPA_NPHASES; i++)
		INSTR_TIME_SET_ZERO(f.phases.spent[i]);
	total = feed_all(&f, stream, select, nparts, ends);
	MemoryContextSwitchTo(old);
	kappa_settings_leave(save_nestlevel);
	SPI_finish();
	MemoryContextDelete(feed_cxt);

	values[0] = Int64GetDatum(total);
	values[1] = Float8GetDatum(INSTR_TIME_GET_DOUBLE(f.engine_time));
	values[2] = Float8GetDatum(INSTR_TIME_GET_DOUBLE(f.flush_time));
	initStringInfo(&phases);
	for (int i = 0; i < KAPPA_NPHASES; i++)
		appendStringInfo(&phases, "%s\"%s\": %.6f", i > 0 ? ", " : "{",
						 kappa_phase_names[i], INSTR_TIME_GET_DOUBLE(f.phases.spent[i]));
	appendStringInfoChar(&phases, '}');
	values[3] = DirectFunctionCall1(jsonb_in, CStringGetDatum(phases.data));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
