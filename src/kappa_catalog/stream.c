/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  The stream catalog: a stream's rows and relation written, and its
 *	  definition loaded for the workers and the SQL functions (which are
 *	  in api/: create_stream.c, alter.c).
 *
 * A stream lives in three tables of schema kappa: streams (one row, secret
 * values masked), stream_columns (a row per column) and stream_secrets (the
 * secret librdkafka settings, such as the Event Hubs connection string,
 * readable only by the stream's owner: row level security).  Nobody but
 * kappa writes these tables, so every catalog access here runs as the
 * bootstrap superuser with search_path pinned to pg_catalog, between
 * catalog_enter and catalog_leave, much as Postgres runs its own internal
 * queries.  The rest of each function runs as the caller, so that type
 * names in a column list resolve on the caller's search_path, as in
 * CREATE TABLE, and the calling role becomes the stream's owner.
 *
 * All SQL here is constant text with $n parameters, prepared once per
 * backend (statement.c); the statements other folders need on the same
 * tables are in stream_rows.c and stream_origin.c.  Creating or dropping
 * a stream wakes the launcher when the transaction commits, so it starts
 * or stops the stream's worker at once.
 *
 * Lifetime: the one static, whether to wake the launcher, lives for the
 * transaction (reset at commit and abort).
 *
 * src/kappa_catalog/stream.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/ruleutils.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/columns.h"
#include "kappa_catalog/connection.h"
#include "kappa_catalog/statement.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/stream_rows.h"
#include "kappa_catalog/view.h"
#include "shmem.h"



static bool wake_launcher_at_commit = false;
static bool xact_callback_registered = false;

static KappaStream *load_stream(const char *where_name, int32 where_id);
static void launcher_xact_callback(XactEvent event, void *arg);

/*
 * Create the relation that stands for the stream in its views' queries:
 * the stream's columns and the metadata columns every stream has.  It is
 * empty and never written; Postgres's parser resolves view queries
 * against it.  Called between kappa_catalog_enter and kappa_catalog_leave.
 */
void
kappa_stream_create_relation(KappaStream *s)
{
	StringInfoData sql;
	ListCell   *lc;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE kappa.%s (",
					 quote_identifier(kappa_stream_relation_name(s->id)));
	foreach(lc, s->columns)
	{
		KappaColumn *col = lfirst(lc);

		appendStringInfo(&sql, "%s %s, ", quote_identifier(col->name),
						 format_type_extended(col->typid, col->typmod,
											  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
	}
	appendStringInfoString(&sql, "kafka_partition int4, kafka_offset int8, "
						   "kafka_timestamp timestamptz, kafka_key bytea)");
	kappa_catalog_exec(sql.data, SPI_OK_UTILITY);
}

KappaTimeUnit
kappa_stream_parse_time_unit(const char *unit)
{
	if (strcmp(unit, "s") == 0)
		return KAPPA_TIME_S;
	if (strcmp(unit, "ms") == 0)
		return KAPPA_TIME_MS;
	if (strcmp(unit, "us") == 0)
		return KAPPA_TIME_US;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid time_unit \"%s\"", unit),
			 errdetail("Event times given as JSON numbers count seconds (\"s\"), milliseconds (\"ms\") or microseconds (\"us\") since 1970-01-01 00:00 UTC.")));
	return KAPPA_TIME_MS;		/* keep compiler quiet */
}

/*
 * An interval as microseconds.  Months have no fixed length, so watermarks
 * and timeouts must be given in days or smaller units.
 */
int64
kappa_interval_to_us(Interval *iv, const char *what, bool allow_zero)
{
	int64		us;

	if (iv->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be given in months or years", what),
				 errhint("Use days, hours, minutes or seconds.")));
	if (pg_mul_s64_overflow((int64) iv->day, USECS_PER_DAY, &us) ||
		pg_add_s64_overflow(us, iv->time, &us))
		ereport(ERROR,
				(errcode(ERRCODE_INTERVAL_FIELD_OVERFLOW),
				 errmsg("%s is out of range", what)));
	if (us < 0 || (us == 0 && !allow_zero))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be %s", what, allow_zero ? "zero or positive" : "positive")));
	return us;
}

/* The text of an options value: a string, a number or a boolean. */
char *
kappa_option_value(const char *name, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("value of librdkafka setting \"%s\" must be a string, number or boolean", name)));
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * A stream's settings as stored: all of them, secret values masked, for
 * kappa.streams.options, and the secret ones in clear, for
 * kappa.stream_secrets (NULL if there are none).
 */
void
kappa_settings_to_jsonb(List *settings, Jsonb **public_settings, Jsonb **secret_settings)
{
	JsonbParseState *pub_state = NULL;
	JsonbParseState *sec_state = NULL;
	bool		has_secrets = false;
	JsonbValue *pub;
	JsonbValue *sec;
	ListCell   *lc;

	pushJsonbValue(&pub_state, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&sec_state, WJB_BEGIN_OBJECT, NULL);
	foreach(lc, settings)
	{
		KappaSetting *setting = lfirst(lc);
		JsonbValue	k,
					v;

		k.type = jbvString;
		k.val.string.val = setting->name;
		k.val.string.len = strlen(setting->name);
		v.type = jbvString;
		v.val.string.val = setting->secret ? KAPPA_SECRET_MASK : setting->value;
		v.val.string.len = strlen(v.val.string.val);
		pushJsonbValue(&pub_state, WJB_KEY, &k);
		pushJsonbValue(&pub_state, WJB_VALUE, &v);
		if (setting->secret)
		{
			v.val.string.val = setting->value;
			v.val.string.len = strlen(setting->value);
			pushJsonbValue(&sec_state, WJB_KEY, &k);
			pushJsonbValue(&sec_state, WJB_VALUE, &v);
			has_secrets = true;
		}
	}
	pub = pushJsonbValue(&pub_state, WJB_END_OBJECT, NULL);
	sec = pushJsonbValue(&sec_state, WJB_END_OBJECT, NULL);
	*public_settings = JsonbValueToJsonb(pub);
	*secret_settings = has_secrets ? JsonbValueToJsonb(sec) : NULL;
}

/* Write a validated stream into the catalog tables. */
void
kappa_stream_insert(KappaStream *s, const char *eventhubs_masked,
			  Interval *watermark, Interval *idle_timeout)
{
	static KappaStatement name_taken =
		KAPPA_STATEMENT("SELECT 1 FROM kappa.streams WHERE name = $1", "text");
	static KappaStatement insert_stream =
		KAPPA_STATEMENT("INSERT INTO kappa.streams (name, owner, topic, brokers, eventhubs, "
						"event_time, time_unit, watermark, idle_timeout, dedup_key, archive, options, keep_late, "
						"partitions, on_gap) "
						"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
						"RETURNING stream_id",
						"text", "oid", "text", "text", "text", "name", "text", "interval", "interval",
						"name", "text", "jsonb", "bool", "int4[]", "text");
	Jsonb	   *pub;
	Jsonb	   *sec;
	Datum		values[15];
	char		nulls[15];
	static const char *const unit_names[] = {"s", "ms", "us"};
	bool		isnull;
	KappaCatalogAccess access;
	ListCell   *lc;

	kappa_settings_to_jsonb(s->settings, &pub, &sec);

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(s->name);
	values[1] = ObjectIdGetDatum(s->owner);
	values[2] = CStringGetTextDatum(s->topic);
	values[3] = CStringGetTextDatum(s->brokers);
	values[4] = eventhubs_masked ? CStringGetTextDatum(eventhubs_masked) : (Datum) 0;
	nulls[4] = eventhubs_masked ? ' ' : 'n';
	values[5] = s->event_time ? DirectFunctionCall1(namein, CStringGetDatum(s->event_time)) : (Datum) 0;
	nulls[5] = s->event_time ? ' ' : 'n';
	values[6] = CStringGetTextDatum(unit_names[s->time_unit]);
	values[7] = IntervalPGetDatum(watermark);
	values[8] = IntervalPGetDatum(idle_timeout);
	values[9] = s->dedup_key ? DirectFunctionCall1(namein, CStringGetDatum(s->dedup_key)) : (Datum) 0;
	nulls[9] = s->dedup_key ? ' ' : 'n';
	values[10] = s->archive ? CStringGetTextDatum(s->archive) : (Datum) 0;
	nulls[10] = s->archive ? ' ' : 'n';
	values[11] = JsonbPGetDatum(pub);
	values[12] = BoolGetDatum(s->keep_late);
	nulls[13] = 'n';
	if (s->partitions != NULL)
	{
		Datum	   *elems = palloc(sizeof(Datum) * s->npartitions);

		for (int i = 0; i < s->npartitions; i++)
			elems[i] = Int32GetDatum(s->partitions[i]);
		values[13] = PointerGetDatum(construct_array(elems, s->npartitions, INT4OID,
													 sizeof(int32), true, TYPALIGN_INT));
		nulls[13] = ' ';
	}
	values[14] = CStringGetTextDatum(s->skip_gaps ? "skip" : "stop");

	kappa_catalog_enter(&access);
	if (kappa_statement_read(&name_taken, values, nulls, 1) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("stream \"%s\" already exists", s->name),
				 errhint("Drop it first with kappa_drop_stream, or choose another name.")));

	kappa_statement_run(&insert_stream, values, nulls, SPI_OK_INSERT_RETURNING, 1);
	s->id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	foreach(lc, s->columns)
	{
		KappaColumn *col = lfirst(lc);

		kappa_stream_columns_insert(s->id, col, col->not_null);
	}
	if (sec != NULL)
		kappa_stream_secrets_insert(s->id, s->owner, sec);
	kappa_stream_create_relation(s);
	kappa_catalog_leave(&access);
}

/* Load a stream by name; an error if there is none. */
KappaStream *
kappa_stream_load(const char *name)
{
	KappaStream *s = load_stream(name, 0);

	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("stream \"%s\" does not exist", name),
				 errhint("The kappa_streams view lists the streams.")));
	return s;
}

/*
 * Load a stream by name for a call that acts with its credentials: only its
 * owner (or a member of the owning role) and superusers may.
 */
KappaStream *
kappa_stream_load_owned(const char *name)
{
	KappaStream *s = kappa_stream_load(name);

	if (!has_privs_of_role(GetUserId(), s->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of stream \"%s\"", name),
				 errdetail("Reaching a stream's brokers uses its owner's credentials.")));
	return s;
}

/*
 * Whether this server consumes a partition of the stream's topic: all of
 * them, unless the stream names its own (several servers sharing a topic).
 */
bool
kappa_stream_owns(const KappaStream *stream, int32 partition)
{
	if (stream->partitions == NULL)
		return true;
	for (int i = 0; i < stream->npartitions; i++)
	{
		if (stream->partitions[i] == partition)
			return true;
	}
	return false;
}

/*
 * The attribute of kafka_partition in the stream's relation: the columns
 * the stream was created with come first, then its four metadata columns
 * (kafka_partition, kafka_offset, kafka_timestamp, kafka_key), then the
 * columns kappa_alter_stream added, each at the end, so that the
 * attributes the views' stored plans refer to never move.  So it is the
 * first attribute number no column has.
 */
AttrNumber
kappa_stream_meta_attnum(const KappaStream *stream)
{
	AttrNumber	attnum = 1;
	ListCell   *lc;

	/* the columns are loaded (and created) in attribute order */
	foreach(lc, stream->columns)
	{
		if (((KappaColumn *) lfirst(lc))->attnum != attnum)
			break;
		attnum++;
	}
	return attnum;
}

/* The stream's revision in the catalog now (-1 if it was dropped). */
int32
kappa_stream_revision(int32 stream_id)
{
	static KappaStatement read_revision =
		KAPPA_STATEMENT("SELECT revision FROM kappa.streams WHERE stream_id = $1", "int4");
	Datum		value = Int32GetDatum(stream_id);
	KappaCatalogAccess access;
	int32		revision = -1;
	bool		isnull;

	kappa_catalog_enter(&access);
	if (kappa_statement_run(&read_revision, &value, NULL, SPI_OK_SELECT, 1) > 0)
		revision = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	kappa_catalog_leave(&access);
	return revision;
}

/* Load a stream by id, or NULL if it was dropped. */
KappaStream *
kappa_stream_load_by_id(int32 id)
{
	return load_stream(NULL, id);
}

/*
 * Read a stream's three catalog rows, by name or by id, into a KappaStream
 * allocated in the caller's memory context, secrets included: only callers
 * that need them to reach the brokers, and never show them, load streams.
 */
static KappaStream *
load_stream(const char *where_name, int32 where_id)
{
	static KappaStatement read_stream =
		KAPPA_STATEMENT("SELECT s.stream_id, s.name, s.owner, s.topic, s.brokers, "
						"s.event_time::text, s.time_unit, "
						"(extract(epoch FROM s.watermark) * 1000000)::int8, "
						"(extract(epoch FROM s.idle_timeout) * 1000000)::int8, "
						"s.dedup_key::text, s.archive, s.options, x.settings, s.keep_late, s.partitions, "
						"s.on_gap = 'skip', s.revision "
						"FROM kappa.streams s "
						"LEFT JOIN kappa.stream_secrets x USING (stream_id) "
						"WHERE s.name = $1 OR s.stream_id = $2",
						"text", "int4");
	static KappaStatement read_columns =
		KAPPA_STATEMENT("SELECT name::text, type, typmod, paths, not_null, attnum FROM kappa.stream_columns "
						"WHERE stream_id = $2 ORDER BY attnum",
						"text", "int4");
	MemoryContext caller_cxt = CurrentMemoryContext;
	KappaStream *s = NULL;
	uint64		ncolumns;
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	TupleDesc	desc;
	HeapTuple	row;
	bool		isnull;
	Jsonb	   *public_settings;
	Jsonb	   *secret_settings = NULL;
	KappaCatalogAccess access;

	values[0] = where_name ? CStringGetTextDatum(where_name) : (Datum) 0;
	nulls[0] = where_name ? ' ' : 'n';
	values[1] = Int32GetDatum(where_id);
	nulls[1] = where_name ? 'n' : ' ';

	kappa_catalog_enter(&access);
	if (kappa_statement_read(&read_stream, values, nulls, 1) == 0)
	{
		kappa_catalog_leave(&access);
		return NULL;
	}

	desc = SPI_tuptable->tupdesc;
	row = SPI_tuptable->vals[0];
	{
		MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);
		char	   *unit;

		s = palloc0(sizeof(KappaStream));
		s->id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
		s->name = SPI_getvalue(row, desc, 2);
		s->owner = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
		s->topic = SPI_getvalue(row, desc, 4);
		s->brokers = SPI_getvalue(row, desc, 5);
		s->event_time = SPI_getvalue(row, desc, 6);
		unit = SPI_getvalue(row, desc, 7);
		s->time_unit = kappa_stream_parse_time_unit(unit);
		s->watermark_us = DatumGetInt64(SPI_getbinval(row, desc, 8, &isnull));
		s->idle_timeout_us = DatumGetInt64(SPI_getbinval(row, desc, 9, &isnull));
		s->dedup_key = SPI_getvalue(row, desc, 10);
		s->archive = SPI_getvalue(row, desc, 11);
		public_settings = DatumGetJsonbPCopy(SPI_getbinval(row, desc, 12, &isnull));
		s->keep_late = DatumGetBool(SPI_getbinval(row, desc, 14, &isnull));
		s->skip_gaps = DatumGetBool(SPI_getbinval(row, desc, 16, &isnull));
		s->revision = DatumGetInt32(SPI_getbinval(row, desc, 17, &isnull));
		{
			Datum		d = SPI_getbinval(row, desc, 15, &isnull);

			if (!isnull)
			{
				Datum	   *elems;
				int			n;

				deconstruct_array(DatumGetArrayTypeP(d), INT4OID, sizeof(int32), true,
								  TYPALIGN_INT, &elems, NULL, &n);
				s->partitions = palloc(sizeof(int) * Max(n, 1));
				for (int i = 0; i < n; i++)
					s->partitions[i] = DatumGetInt32(elems[i]);
				s->npartitions = n;
			}
		}
		{
			Datum		d = SPI_getbinval(row, desc, 13, &isnull);

			if (!isnull)
				secret_settings = DatumGetJsonbPCopy(d);
		}
		MemoryContextSwitchTo(spi_cxt);
	}

	/* columns, in order: by the id just read, whichever way it was found */
	values[1] = Int32GetDatum(s->id);
	nulls[1] = ' ';
	ncolumns = kappa_statement_read(&read_columns, values, nulls, 0);
	for (uint64 i = 0; i < ncolumns; i++)
	{
		MemoryContext spi_cxt;
		HeapTuple	crow = SPI_tuptable->vals[i];
		ArrayType  *paths = DatumGetArrayTypeP(SPI_getbinval(crow, SPI_tuptable->tupdesc, 4, &isnull));
		Datum	   *elems;
		int			nelems;
		KappaColumn *col;

		deconstruct_array(paths, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &nelems);
		spi_cxt = MemoryContextSwitchTo(caller_cxt);
		col = palloc0(sizeof(KappaColumn));
		col->name = SPI_getvalue(crow, SPI_tuptable->tupdesc, 1);
		col->json_key = col->name;
		col->typid = DatumGetObjectId(SPI_getbinval(crow, SPI_tuptable->tupdesc, 2, &isnull));
		col->typmod = DatumGetInt32(SPI_getbinval(crow, SPI_tuptable->tupdesc, 3, &isnull));
		col->not_null = DatumGetBool(SPI_getbinval(crow, SPI_tuptable->tupdesc, 5, &isnull));
		col->attnum = DatumGetInt16(SPI_getbinval(crow, SPI_tuptable->tupdesc, 6, &isnull));
		for (int j = 0; j < nelems; j++)
			col->paths = lappend(col->paths, TextDatumGetCString(elems[j]));
		s->columns = lappend(s->columns, col);
		MemoryContextSwitchTo(spi_cxt);
	}
	kappa_catalog_leave(&access);

	/* settings: the public ones, with secret values from stream_secrets */
	s->settings = kappa_settings_from_jsonb(public_settings, secret_settings);
	return s;
}

/* The relation that stands for a stream in its views' queries. */
char *
kappa_stream_relation_name(int32 stream_id)
{
	return psprintf("stream_%d", stream_id);
}

/*
 * Take the lock that says who consumes a stream: its workers, for as long
 * as they run (session, shared among them: each applies only the
 * partitions it was given), or kappa_feed, for its transaction (alone, no
 * wait).  So the same positions are never applied by a worker and
 * kappa_feed at once.  An advisory lock of the database, in a key space of
 * kappa's own (field4 3: SQL's advisory lock functions use 1 and 2).
 * Returns false if not waiting and it is taken.
 */
bool
kappa_stream_lock_consumer(int32 stream_id, bool session)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, KAPPA_CONSUMER_LOCK_KEY, (uint32) stream_id, 3);
	return LockAcquire(&tag, session ? ShareLock : ExclusiveLock, session, !session) !=
		LOCKACQUIRE_NOT_AVAIL;
}

/*
 * Take, until the transaction ends, the lock on a view's stored state that
 * the workers of a stream with kappa.workers_per_stream > 1 hold while they
 * read, merge and write it (and while one rebuilds it after a crash).
 * Same key space, the view's id in field2 and field4 4.
 */
void
kappa_view_lock_state(int32 view_id)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, KAPPA_CONSUMER_LOCK_KEY, (uint32) view_id, 4);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/* Have the launcher look at the catalog once this transaction commits. */
void
kappa_wake_launcher_on_commit(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(launcher_xact_callback, NULL);
		xact_callback_registered = true;
	}
	wake_launcher_at_commit = true;
}

static void
launcher_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_launcher_at_commit)
				kappa_wake_launcher();
			wake_launcher_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			wake_launcher_at_commit = false;
			break;
		default:
			break;
	}
}
