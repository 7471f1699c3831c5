/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  The stream catalog: kappa_create_stream, kappa_drop_stream, and
 *	  loading a stream's definition for the workers and the SQL functions
 *	  (kappa_alter_stream, which changes one, is in alter.c).
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
 * Every argument is validated before anything is written, so a stream in
 * the catalog is one a worker can run.  All SQL here is constant text with
 * $n parameters.  Creating or dropping a stream wakes the launcher when the
 * transaction commits, so it starts or stops the stream's worker at once.
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
#include "engine/compile.h"
#include "kafka/connection.h"
#include "kafka/kafka.h"
#include "shmem.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"

#define STREAM_NAME_HINT "Stream names are lower-case SQL identifiers: letters, digits and underscores, starting with a letter or underscore, at most 63 characters."

PG_FUNCTION_INFO_V1(kappa_create_stream);
PG_FUNCTION_INFO_V1(kappa_drop_stream);
PG_FUNCTION_INFO_V1(kappa_stream_settings);

static bool wake_launcher_at_commit = false;
static bool xact_callback_registered = false;

static void create_stream_relation(KappaStream *s);
static void drop_stream_views(KappaStream *s, bool cascade);
static void check_stream_name(const char *name);
static KappaTimeUnit parse_time_unit(const char *unit);
static void parse_partitions(KappaStream *s, const char *text);
static List *options_to_settings(Jsonb *options);
static void insert_stream(KappaStream *s, const char *eventhubs_masked,
						  Interval *watermark, Interval *idle_timeout);
static KappaStream *load_stream(const char *where_name, int32 where_id);
static void launcher_xact_callback(XactEvent event, void *arg);

/*
 * Create the relation that stands for the stream in its views' queries:
 * the stream's columns and the metadata columns every stream has.  It is
 * empty and never written; Postgres's parser resolves view queries
 * against it.  Called between kappa_catalog_enter and kappa_catalog_leave.
 */
static void
create_stream_relation(KappaStream *s)
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

/* Stream names are plain lower-case identifiers; see STREAM_NAME_HINT. */
static void
check_stream_name(const char *name)
{
	size_t		len = strlen(name);
	bool		ok = len > 0 && len < NAMEDATALEN &&
		((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_');

	for (size_t i = 1; ok && i < len; i++)
		ok = (name[i] >= 'a' && name[i] <= 'z') ||
			(name[i] >= '0' && name[i] <= '9') || name[i] == '_';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid stream name \"%.*s\"", NAMEDATALEN, name),
				 errhint(STREAM_NAME_HINT)));
}

static KappaTimeUnit
parse_time_unit(const char *unit)
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
 * Turn the options object into librdkafka settings, each checked against
 * kappa's own rules and then against librdkafka's configuration API.
 */
static List *
options_to_settings(Jsonb *options)
{
	List	   *settings = NIL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object of librdkafka settings"),
				 errhint("For example: {\"fetch.max.bytes\": \"52428800\"}.")));

	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *name;
		char	   *value;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		value = kappa_option_value(name, &v);
		kappa_check_setting_allowed(name);
		settings = lappend(settings, kappa_make_setting(name, value));
	}
	return settings;
}

/*
 * kappa_create_stream(name, topic, brokers, columns, paths, event_time,
 * watermark, dedup_key, archive, options, eventhubs, time_unit,
 * idle_timeout, keep_late) defines a stream.
 */
Datum
kappa_create_stream(PG_FUNCTION_ARGS)
{
	KappaStream *s = palloc0(sizeof(KappaStream));
	char	   *topic = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *brokers = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *eventhubs = PG_ARGISNULL(10) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(10));
	Interval   *watermark = PG_GETARG_INTERVAL_P(6);
	Interval   *idle_timeout = PG_GETARG_INTERVAL_P(12);
	char	   *eventhubs_masked = NULL;
	char	   *on_gap = "stop";
	List	   *derived = NIL;

	/* any error below must not log the statement: it may hold secrets */
	kappa_statement_has_secrets(true);
	kappa_require_preload();

	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("columns must be given"),
				 errhint("List the columns of the events as in CREATE TABLE, as in columns => 'deviceId text, temperature float8'.")));
	/* PG_NARGS: an older SQL definition of the function lacks the argument */
	if (PG_NARGS() > 14 && !PG_ARGISNULL(14))
		parse_partitions(s, text_to_cstring(PG_GETARG_TEXT_PP(14)));
	if (PG_NARGS() > 15 && !PG_ARGISNULL(15))
		on_gap = text_to_cstring(PG_GETARG_TEXT_PP(15));
	if (strcmp(on_gap, "stop") != 0 && strcmp(on_gap, "skip") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid on_gap \"%s\"", on_gap),
				 errhint("on_gap is \"stop\" (the default: the worker stops where the log lost offsets it did not read, until kappa_accept_gap) or \"skip\" (it counts them as lost and goes on).")));
	s->skip_gaps = (strcmp(on_gap, "skip") == 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(6) || PG_ARGISNULL(9) ||
		PG_ARGISNULL(11) || PG_ARGISNULL(12) || PG_ARGISNULL(13))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name, watermark, options, time_unit, idle_timeout and keep_late must not be null")));

	s->name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_stream_name(s->name);
	s->keep_late = PG_GETARG_BOOL(13);
	s->owner = GetUserId();

	/* where the events come from */
	if ((brokers == NULL) == (eventhubs == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg(brokers ? "brokers and eventhubs cannot both be given" :
						"either brokers or eventhubs must be given"),
				 errhint("Give brokers => 'host:port,...' for Kafka, or eventhubs => 'Endpoint=sb://...' for Azure Event Hubs.")));
	if (brokers)
	{
		kappa_check_brokers(brokers);
		s->brokers = brokers;
		s->topic = topic ? topic : s->name;
	}
	else
	{
		KappaEventHubs *eh = kappa_parse_eventhubs(eventhubs);

		s->brokers = eh->bootstrap;
		derived = eh->settings;
		eventhubs_masked = eh->masked;
		s->topic = topic ? topic : eh->entity_path;
		if (s->topic == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("no topic given for stream \"%s\"", s->name),
					 errdetail("The Event Hubs connection string has no EntityPath part."),
					 errhint("Give the event hub's name as topic, or use a connection string with EntityPath.")));
	}
	kappa_check_topic(s->topic);

	/* what the events look like */
	s->columns = kappa_parse_columns(text_to_cstring(PG_GETARG_TEXT_PP(3)));
	if (!PG_ARGISNULL(4))
		kappa_apply_paths(s->columns, PG_GETARG_JSONB_P(4));
	if (!PG_ARGISNULL(5))
	{
		KappaColumn *col;

		s->event_time = kappa_parse_column_ref(text_to_cstring(PG_GETARG_TEXT_PP(5)),
											   "event_time column");
		col = kappa_find_column(s->columns, s->event_time);
		if (col == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("event_time column \"%s\" is not a column of the stream", s->event_time)));
		if (getBaseType(col->typid) != TIMESTAMPTZOID &&
			getBaseType(col->typid) != TIMESTAMPOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("event_time column \"%s\" is of type %s", s->event_time,
							format_type_be(col->typid)),
					 errdetail("The event time must be a timestamptz or timestamp column."),
					 errhint("Declare it as timestamptz; ISO 8601 strings and epoch numbers (see time_unit) are both read.")));
	}
	s->time_unit = parse_time_unit(text_to_cstring(PG_GETARG_TEXT_PP(11)));
	s->watermark_us = kappa_interval_to_us(watermark, "watermark", true);
	s->idle_timeout_us = kappa_interval_to_us(idle_timeout, "idle_timeout", false);
	if (!PG_ARGISNULL(7))
	{
		s->dedup_key = kappa_parse_column_ref(text_to_cstring(PG_GETARG_TEXT_PP(7)),
											  "dedup_key column");
		if (kappa_find_column(s->columns, s->dedup_key) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("dedup_key column \"%s\" is not a column of the stream", s->dedup_key)));
	}
	if (!PG_ARGISNULL(8))
	{
		s->archive = text_to_cstring(PG_GETARG_TEXT_PP(8));
		if (!is_absolute_path(s->archive))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("archive directory must be an absolute path")));
		/* the worker writes the archive with the server's rights */
		if (!has_privs_of_role(GetUserId(), ROLE_PG_WRITE_SERVER_FILES))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be superuser or a member of pg_write_server_files to archive a stream"),
					 errdetail("The stream's worker writes the archive's files as the database server.")));
	}

	/* how to reach them: derived settings first, so options may refine them */
	s->settings = list_concat(derived, options_to_settings(PG_GETARG_JSONB_P(9)));
	kappa_kafka_check_settings(s);

	insert_stream(s, eventhubs_masked, watermark, idle_timeout);
	kappa_wake_launcher_on_commit();
	PG_RETURN_VOID();
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
static void
insert_stream(KappaStream *s, const char *eventhubs_masked,
			  Interval *watermark, Interval *idle_timeout)
{
	Jsonb	   *pub;
	Jsonb	   *sec;
	Datum		values[15];
	char		nulls[15];
	Oid			types[15] = {TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, NAMEOID,
	TEXTOID, INTERVALOID, INTERVALOID, NAMEOID, TEXTOID, JSONBOID, BOOLOID, INT4ARRAYOID, TEXTOID};
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
	if (SPI_execute_with_args("SELECT 1 FROM kappa.streams WHERE name = $1",
							  1, types, values, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up stream \"%s\"", s->name);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("stream \"%s\" already exists", s->name),
				 errhint("Drop it first with kappa_drop_stream, or choose another name.")));

	if (SPI_execute_with_args("INSERT INTO kappa.streams (name, owner, topic, brokers, eventhubs, "
							  "event_time, time_unit, watermark, idle_timeout, dedup_key, archive, options, keep_late, "
							  "partitions, on_gap) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
							  "RETURNING stream_id",
							  15, types, values, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not insert stream \"%s\"", s->name);
	s->id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	foreach(lc, s->columns)
	{
		KappaColumn *col = lfirst(lc);
		Oid			coltypes[7] = {INT4OID, INT2OID, NAMEOID, OIDOID, INT4OID, BOOLOID, TEXTARRAYOID};
		Datum		colvalues[7];
		Datum	   *paths = palloc(sizeof(Datum) * list_length(col->paths));
		ListCell   *pc;
		int			n = 0;

		foreach(pc, col->paths)
			paths[n++] = CStringGetTextDatum(lfirst(pc));
		colvalues[0] = Int32GetDatum(s->id);
		colvalues[1] = Int16GetDatum(col->attnum);
		colvalues[2] = DirectFunctionCall1(namein, CStringGetDatum(col->name));
		colvalues[3] = ObjectIdGetDatum(col->typid);
		colvalues[4] = Int32GetDatum(col->typmod);
		colvalues[5] = BoolGetDatum(col->not_null);
		colvalues[6] = PointerGetDatum(construct_array(paths, n, TEXTOID, -1, false, TYPALIGN_INT));
		if (SPI_execute_with_args("INSERT INTO kappa.stream_columns (stream_id, attnum, name, type, typmod, not_null, paths) "
								  "VALUES ($1, $2, $3, $4, $5, $6, $7)",
								  7, coltypes, colvalues, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert column \"%s\"", col->name);
	}

	if (sec != NULL)
	{
		Oid			sectypes[3] = {INT4OID, OIDOID, JSONBOID};
		Datum		secvalues[3];

		secvalues[0] = Int32GetDatum(s->id);
		secvalues[1] = ObjectIdGetDatum(s->owner);
		secvalues[2] = JsonbPGetDatum(sec);
		if (SPI_execute_with_args("INSERT INTO kappa.stream_secrets (stream_id, owner, settings) "
								  "VALUES ($1, $2, $3)",
								  3, sectypes, secvalues, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert secrets of stream \"%s\"", s->name);
	}
	create_stream_relation(s);
	kappa_catalog_leave(&access);
}

/*
 * kappa_drop_stream(name, cascade) removes a stream.  Only its owner (or a
 * member of the owning role) and superusers may drop it.
 */
Datum
kappa_drop_stream(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	KappaStream *s;
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	KappaCatalogAccess access;

	kappa_require_preload();
	s = kappa_stream_load_owned(name);

	drop_stream_views(s, PG_GETARG_BOOL(1));
	values[0] = Int32GetDatum(s->id);
	kappa_catalog_enter(&access);
	if (SPI_execute_with_args("DELETE FROM kappa.streams WHERE stream_id = $1",
							  1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete stream \"%s\"", name);
	kappa_catalog_exec(psprintf("DROP TABLE IF EXISTS kappa.%s",
								quote_identifier(kappa_stream_relation_name(s->id))),
					   SPI_OK_UTILITY);
	kappa_catalog_leave(&access);

	kappa_wake_launcher_on_commit();
	PG_RETURN_VOID();
}

/*
 * Drop the views of a stream that is being dropped, or refuse when there
 * are views and cascade is false.
 */
static void
drop_stream_views(KappaStream *s, bool cascade)
{
	List	   *views = kappa_stream_view_names(s->id);
	ListCell   *lc;

	if (views != NIL && !cascade)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop stream \"%s\" because views depend on it", s->name),
				 errdetail("View %s reads the stream.", (char *) linitial(views)),
				 errhint("Drop the views first, or use kappa_drop_stream(name, cascade => true).")));
	foreach(lc, views)
		kappa_drop_view_by_name(lfirst(lc));
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
	Datum		value = Int32GetDatum(stream_id);
	KappaCatalogAccess access;
	int32		revision = -1;
	bool		isnull;

	kappa_catalog_enter(&access);
	if (SPI_execute_with_args("SELECT revision FROM kappa.streams WHERE stream_id = $1",
							  1, (Oid[]) {INT4OID}, &value, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.streams");
	if (SPI_processed > 0)
		revision = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	kappa_catalog_leave(&access);
	return revision;
}

/*
 * Parse a partitions option, "0-3,7,9-10", into the stream: ascending,
 * each once.  An error names what is wrong.
 */
static void
parse_partitions(KappaStream *s, const char *text)
{
	bool	   *seen = palloc0(sizeof(bool) * (KAPPA_MAX_PARTITION + 1));
	const char *p = text;

	for (;;)
	{
		char	   *end;
		long		lo;
		long		hi;

		while (*p == ' ')
			p++;
		errno = 0;
		lo = strtol(p, &end, 10);
		if (end == p || errno != 0 || lo < 0 || lo > KAPPA_MAX_PARTITION)
			break;
		p = end;
		hi = lo;
		if (*p == '-')
		{
			p++;
			hi = strtol(p, &end, 10);
			if (end == p || errno != 0 || hi < lo || hi > KAPPA_MAX_PARTITION)
				break;
			p = end;
		}
		for (long i = lo; i <= hi; i++)
			seen[i] = true;
		while (*p == ' ')
			p++;
		if (*p == '\0')
		{
			s->partitions = palloc(sizeof(int) * (KAPPA_MAX_PARTITION + 1));
			for (int i = 0; i <= KAPPA_MAX_PARTITION; i++)
				if (seen[i])
					s->partitions[s->npartitions++] = i;
			return;
		}
		if (*p++ != ',')
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid partitions \"%s\"", text),
			 errdetail("Partitions are listed as numbers and ascending ranges from 0 to %d, as in '0-3,7'.",
					   KAPPA_MAX_PARTITION)));
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
	MemoryContext caller_cxt = CurrentMemoryContext;
	KappaStream *s = NULL;
	Oid			types[2] = {TEXTOID, INT4OID};
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
	if (SPI_execute_with_args("SELECT s.stream_id, s.name, s.owner, s.topic, s.brokers, "
							  "s.event_time::text, s.time_unit, "
							  "(extract(epoch FROM s.watermark) * 1000000)::int8, "
							  "(extract(epoch FROM s.idle_timeout) * 1000000)::int8, "
							  "s.dedup_key::text, s.archive, s.options, x.settings, s.keep_late, s.partitions, "
							  "s.on_gap = 'skip', s.revision "
							  "FROM kappa.streams s "
							  "LEFT JOIN kappa.stream_secrets x USING (stream_id) "
							  "WHERE s.name = $1 OR s.stream_id = $2",
							  2, types, values, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the stream catalog");
	if (SPI_processed == 0)
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
		s->time_unit = parse_time_unit(unit);
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
	if (SPI_execute_with_args("SELECT name::text, type, typmod, paths, not_null, attnum FROM kappa.stream_columns "
							  "WHERE stream_id = $2 ORDER BY attnum",
							  2, types, values, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the columns of stream \"%s\"", s->name);
	for (uint64 i = 0; i < SPI_processed; i++)
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

/*
 * kappa_stream_settings(name) shows the librdkafka settings a stream's
 * workers use, secrets masked: what kappa derived from brokers or the
 * Event Hubs connection string, then the stream's options.
 */
Datum
kappa_stream_settings(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KappaStream *s;
	ListCell   *lc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	kappa_require_preload();
	s = kappa_stream_load(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	InitMaterializedSRF(fcinfo, 0);

	values[0] = CStringGetTextDatum("bootstrap.servers");
	values[1] = CStringGetTextDatum(s->brokers);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	foreach(lc, s->settings)
	{
		KappaSetting *setting = lfirst(lc);

		values[0] = CStringGetTextDatum(setting->name);
		values[1] = CStringGetTextDatum(setting->secret ? KAPPA_SECRET_MASK : setting->value);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
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
