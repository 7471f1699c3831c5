/*-------------------------------------------------------------------------
 *
 * create_stream.c
 *	  The SQL functions that define streams: kappa_create_stream,
 *	  kappa_drop_stream and kappa_stream_settings.
 *
 * kappa_create_stream validates every argument before anything is
 * written (the name, columns and paths, the brokers or the Event Hubs
 * connection string, the topic, and the librdkafka settings, which
 * librdkafka itself checks), so that a stream in the catalog is one a
 * worker can run; kappa_catalog/stream.c writes the catalog rows and the
 * stream's relation, as the catalog.  The functions run as the caller, so
 * type names in a column list resolve on the caller's search_path, as in
 * CREATE TABLE, and the caller becomes the stream's owner.
 *
 * src/api/create_stream.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "api/args.h"
#include "kafka/kafka.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/columns.h"
#include "kappa_catalog/connection.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/stream_rows.h"
#include "kappa_catalog/view.h"
#include "shmem.h"

#define STREAM_NAME_HINT "Stream names are lower-case SQL identifiers: letters, digits and underscores, starting with a letter or underscore, at most 63 characters."

PG_FUNCTION_INFO_V1(kappa_create_stream);
PG_FUNCTION_INFO_V1(kappa_drop_stream);
PG_FUNCTION_INFO_V1(kappa_stream_settings);

static void check_stream_name(const char *name);
static List *options_to_settings(Jsonb *options);
static void parse_partitions(KappaStream *s, const char *text);
static void drop_stream_views(KappaStream *s, bool cascade);

/*
 * kappa_create_stream(name, topic, brokers, columns, paths, event_time,
 * watermark, dedup_key, archive, options, eventhubs, time_unit,
 * idle_timeout, keep_late, partitions, on_gap) defines a stream; its
 * arguments are read by name (api/args.c).
 */
Datum
kappa_create_stream(PG_FUNCTION_ARGS)
{
	KappaStream *s = palloc0(sizeof(KappaStream));
	KappaArgs	args;
	char	   *topic;
	char	   *brokers;
	char	   *eventhubs;
	char	   *partitions;
	Interval   *watermark;
	Interval   *idle_timeout;
	char	   *eventhubs_masked = NULL;
	char	   *on_gap;
	List	   *derived = NIL;

	/* any error below must not log the statement: it may hold secrets */
	kappa_statement_has_secrets(true);
	kappa_require_preload();

	kappa_args_init(&args, fcinfo);
	topic = kappa_arg_text(&args, "topic", NULL);
	brokers = kappa_arg_text(&args, "brokers", NULL);
	eventhubs = kappa_arg_text(&args, "eventhubs", NULL);
	partitions = kappa_arg_text(&args, "partitions", NULL);
	on_gap = kappa_arg_text(&args, "on_gap", "stop");
	if (kappa_arg_isnull(&args, "columns"))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("columns must be given"),
				 errhint("List the columns of the events as in CREATE TABLE, as in columns => 'deviceId text, temperature float8'.")));
	if (partitions)
		parse_partitions(s, partitions);
	if (strcmp(on_gap, "stop") != 0 && strcmp(on_gap, "skip") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid on_gap \"%s\"", on_gap),
				 errhint("on_gap is \"stop\" (the default: the worker stops where the log lost offsets it did not read, until kappa_accept_gap) or \"skip\" (it counts them as lost and goes on).")));
	s->skip_gaps = (strcmp(on_gap, "skip") == 0);
	if (kappa_arg_isnull(&args, "name") || kappa_arg_isnull(&args, "watermark") ||
		kappa_arg_isnull(&args, "options") || kappa_arg_isnull(&args, "time_unit") ||
		kappa_arg_isnull(&args, "idle_timeout") || kappa_arg_isnull(&args, "keep_late"))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name, watermark, options, time_unit, idle_timeout and keep_late must not be null")));

	s->name = kappa_arg_text(&args, "name", NULL);
	check_stream_name(s->name);
	s->keep_late = kappa_arg_bool(&args, "keep_late", false);
	watermark = kappa_arg_interval(&args, "watermark");
	idle_timeout = kappa_arg_interval(&args, "idle_timeout");
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
		kappa_validate_brokers(brokers);
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
	kappa_validate_topic(s->topic);

	/* what the events look like */
	s->columns = kappa_parse_columns(kappa_arg_text(&args, "columns", NULL));
	if (kappa_arg_jsonb(&args, "paths"))
		kappa_apply_paths(s->columns, kappa_arg_jsonb(&args, "paths"));
	if (kappa_arg_text(&args, "event_time", NULL))
	{
		KappaColumn *col;

		s->event_time = kappa_parse_column_ref(kappa_arg_text(&args, "event_time", NULL),
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
	s->time_unit = kappa_stream_parse_time_unit(kappa_arg_text(&args, "time_unit", "ms"));
	s->watermark_us = kappa_interval_to_us(watermark, "watermark", true);
	s->idle_timeout_us = kappa_interval_to_us(idle_timeout, "idle_timeout", false);
	if (kappa_arg_text(&args, "dedup_key", NULL))
	{
		s->dedup_key = kappa_parse_column_ref(kappa_arg_text(&args, "dedup_key", NULL),
											  "dedup_key column");
		if (kappa_find_column(s->columns, s->dedup_key) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("dedup_key column \"%s\" is not a column of the stream", s->dedup_key)));
	}
	if (kappa_arg_text(&args, "archive", NULL))
	{
		s->archive = kappa_arg_text(&args, "archive", NULL);
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
	s->settings = list_concat(derived, options_to_settings(kappa_arg_jsonb(&args, "options")));
	kappa_kafka_check_settings(s);

	kappa_stream_insert(s, eventhubs_masked, watermark, idle_timeout);
	kappa_wake_launcher_on_commit();
	PG_RETURN_VOID();
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
	KappaCatalogAccess access;

	kappa_require_preload();
	s = kappa_stream_load_owned(name);

	drop_stream_views(s, PG_GETARG_BOOL(1));
	kappa_catalog_enter(&access);
	kappa_streams_delete(s->id);
	kappa_catalog_exec(psprintf("DROP TABLE IF EXISTS kappa.%s",
								quote_identifier(kappa_stream_relation_name(s->id))),
					   SPI_OK_UTILITY);
	kappa_catalog_leave(&access);

	kappa_wake_launcher_on_commit();
	PG_RETURN_VOID();
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
		kappa_validate_setting(name);
		settings = lappend(settings, kappa_make_setting(name, value));
	}
	return settings;
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
