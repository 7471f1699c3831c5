/*-------------------------------------------------------------------------
 *
 * create_view.c
 *	  The SQL functions that define views: kappa_create_view and
 *	  kappa_drop_view, and kappa_view_define, which kappa_replay also uses.
 *
 * A view is three things: a row in kappa.views (its query, and the
 * analysed Query its worker runs), an ordinary table kappa.view_<id> that
 * holds its rows, with a unique index on the columns that identify a row,
 * and the user-facing name, a Postgres view over that table owned by the
 * role that created it.  Users query, join, index-scan and GRANT on the
 * user-facing view like on any relation; the worker writes the table.
 *
 * Postgres parses and analyses the query (engine/compile.c); it is
 * compiled and its rights are checked as the view's owner before
 * anything is written.  kappa's tables are written as the bootstrap
 * superuser between kappa_catalog_enter and kappa_catalog_leave, with SQL
 * built only from constants, $n parameters and quoted identifiers; the
 * user-facing view is created and dropped as the caller, with the
 * caller's rights.  The stream's worker notices new and dropped views at
 * its next flush (see kappa_catalog/view.c).
 *
 * src/api/create_view.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "api/create_view.h"
#include "engine/compile.h"
#include "engine/lookup.h"
#include "engine/portable.h"
#include "engine/view_read.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"
#include "kappa_catalog/view_plan.h"
#include "kappa_catalog/view_state.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kappa_create_view);
PG_FUNCTION_INFO_V1(kappa_drop_view);

static Jsonb *check_view_options(Jsonb *options);

/*
 * The keys a view's options may hold, as kappa_create_view takes them.
 * kappa_replay adds "since" and "until" to the versions it builds; a
 * user does not set them (they are stored in UTC by the replay).
 */
static const char *const view_option_keys[] = {"start", "notify", "retention", "emit", NULL};

/* The valid keys of a view's options, quoted, for messages. */
static char *
view_option_key_list(void)
{
	StringInfoData list;

	initStringInfo(&list);
	for (int i = 0; view_option_keys[i]; i++)
		appendStringInfo(&list, "%s\"%s\"", i > 0 ? ", " : "", view_option_keys[i]);
	return list.data;
}

/* Whether a view's options give key. */
bool
kappa_view_option_given(Jsonb *options, const char *key)
{
	return getKeyJsonValueFromContainer(&options->root, key, strlen(key), NULL) != NULL;
}

/* Whether a view's options say {"emit": "final"}. */
bool
kappa_view_emit_final(Jsonb *options)
{
	JsonbValue *emit = getKeyJsonValueFromContainer(&options->root, "emit", 4, NULL);

	return emit != NULL && emit->type == jbvString &&
		emit->val.string.len == strlen("final") &&
		strncmp(emit->val.string.val, "final", emit->val.string.len) == 0;
}

/*
 * A view's retention option, in microseconds: how long after they are
 * final its windows' rows are kept (0: for ever).  An interval in days or
 * smaller units, as a string; anything else is refused.
 */
int64
kappa_view_retention_us(Jsonb *options)
{
	JsonbValue *retention = getKeyJsonValueFromContainer(&options->root, "retention", 9, NULL);
	Interval   *iv;
	char	   *text;

	if (retention == NULL)
		return 0;
	if (retention->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid retention option of a view"),
				 errdetail("The option is an interval given as a string, as in {\"retention\": \"30 days\"}.")));
	text = pnstrdup(retention->val.string.val, retention->val.string.len);
	iv = DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(text),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	if (iv->month != 0 || iv->day < 0 || iv->day > 1000000 ||
		iv->time + (int64) iv->day * USECS_PER_DAY <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid retention option of a view: \"%s\"", text),
				 errdetail("Retention must be positive and given in days or smaller units (not months or years).")));
	return iv->time + (int64) iv->day * USECS_PER_DAY;
}

/*
 * Check the options of a view and return them with the start made
 * canonical: "earliest", "latest", or a timestamp with time zone, stored in
 * UTC so that the worker reads the same instant whatever its TimeZone.
 * Input such as 'now' or 'yesterday' is thereby fixed at creation.  A key
 * kappa does not know is refused rather than ignored: a misspelt "start"
 * would otherwise silently mean the earliest message.
 */
static Jsonb *
check_view_options(Jsonb *options)
{
	JsonbValue *start;
	JsonbValue *notify;
	char	   *value;
	TimestampTz ts;
	char	   *canonical;
	StringInfoData quoted;
	Datum		path;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("view options must be a JSON object"),
				 errhint("Valid keys: %s.", view_option_key_list())));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		for (int i = 0; view_option_keys[i]; i++)
			known = known || strcmp(key, view_option_keys[i]) == 0;
		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\" of a kappa view", key),
					 errdetail("Valid keys: %s.", view_option_key_list()),
					 (strcmp(key, "since") == 0 || strcmp(key, "until") == 0) ?
					 errhint("kappa_replay takes since and until as its arguments.") :
					 errhint("A view starts from {\"start\": \"earliest\"} (the default), {\"start\": \"latest\"} or {\"start\": \"<timestamptz>\"}, notifies a channel with {\"notify\": \"<channel>\"}, keeps final windows for {\"retention\": \"<interval>\"}, and writes rows only of final windows with {\"emit\": \"final\"}.")));
	}

	/* notify: a channel LISTEN can name */
	notify = getKeyJsonValueFromContainer(&options->root, "notify", 6, NULL);
	if (notify != NULL &&
		(notify->type != jbvString || notify->val.string.len == 0 ||
		 notify->val.string.len >= NAMEDATALEN))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid notify option of a view"),
				 errdetail("The option names the channel kappa notifies when windows become final or rows change: a string of 1 to %d bytes.",
						   NAMEDATALEN - 1),
				 errhint("LISTEN to the same name, as in {\"notify\": \"readings\"} and LISTEN readings.")));

	/* retention: how long final windows' rows are kept */
	(void) kappa_view_retention_us(options);

	/* emit: every change of a window (updates, the default), or its final row */
	if (!kappa_view_emit_final(options) && kappa_view_option_given(options, "emit"))
	{
		JsonbValue *emit = getKeyJsonValueFromContainer(&options->root, "emit", 4, NULL);

		if (emit->type != jbvString ||
			strncmp(emit->val.string.val, "updates", emit->val.string.len) != 0 ||
			emit->val.string.len != strlen("updates"))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid emit option of a view"),
					 errdetail("A view writes a window's row at every flush that changes it (\"updates\", the default), or once, when the window is final (\"final\")."),
					 errhint("Use {\"emit\": \"updates\"} or {\"emit\": \"final\"}.")));
	}

	start = getKeyJsonValueFromContainer(&options->root, "start", 5, NULL);
	if (start == NULL)
		return options;
	if (start->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid start option of a view"),
				 errdetail("A view starts from the \"earliest\" message the brokers keep, from the \"latest\", or from a timestamp given as a string.")));
	value = pnstrdup(start->val.string.val, start->val.string.len);
	if (strcmp(value, "earliest") == 0 || strcmp(value, "latest") == 0)
		return options;

	ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(value),
												 ObjectIdGetDatum(InvalidOid),
												 Int32GetDatum(-1)));
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid start option of a view"),
				 errdetail("A start timestamp must be finite; \"earliest\" and \"latest\" say the rest.")));
	canonical = kappa_canonical_time(ts);
	initStringInfo(&quoted);
	escape_json(&quoted, canonical);
	path = CStringGetTextDatum("start");
	/* all four arguments: SQL's default of create_if_missing is not C's */
	return DatumGetJsonbP(DirectFunctionCall4(jsonb_set, JsonbPGetDatum(options),
											  PointerGetDatum(construct_array(&path, 1, TEXTOID, -1, false,
																			  TYPALIGN_INT)),
											  DirectFunctionCall1(jsonb_in, CStringGetDatum(quoted.data)),
											  BoolGetDatum(true)));
}

/*
 * Define a view owned by owner over its stream: analyse and compile the
 * query (or take plan, the query as an earlier version stored it, bound to
 * the same objects), check that the owner may run it, insert its catalog
 * row (with the given status), create its rows table (the owner's) with
 * the unique index of its keys, and mark its state as present.  No
 * user-facing relation: kappa_create_view adds it, replay swaps it.
 * Returns the view's id.
 */
int32
kappa_view_define(const char *schema, const char *relname, const char *query_text,
				  const char *plan, Jsonb *options, const char *status, Oid owner)
{
	KappaStream *stream;
	Query	   *query;
	KappaViewSpec *spec;
	KappaCatalogAccess access;
	KappaOwnerAccess as_owner;
	int32		view_id;
	StringInfoData sql;
	ListCell   *lc;
	char	   *definition;

	/* the query: analysed by Postgres, checked and taken apart by kappa */
	if (plan)
		query = kappa_stored_view(plan, &stream);
	else
		query = kappa_analyze_view(query_text, &stream);
	if (!has_privs_of_role(GetUserId(), stream->owner) ||
		!has_privs_of_role(owner, stream->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of stream \"%s\" to create a view over it", stream->name)));

	/*
	 * Compiling folds constants, which may call the owner's functions: as
	 * the owner, who must be allowed to run everything the view runs.
	 */
	kappa_owner_enter(&as_owner, owner);
	spec = kappa_compile_view(copyObject(query));
	kappa_view_check_rights(query, owner);
	kappa_owner_leave(&as_owner);
	if (plan == NULL)
		kappa_lookups_require_unique(spec->lookups);
	if (kappa_view_emit_final(options) && spec->window.kind == KAPPA_WINDOW_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a view without windows cannot emit final rows"),
				 errdetail("Its rows are never final: every event may change them."),
				 errhint("Give the view a window (kappa_tumble, kappa_hop or kappa_session), or drop the emit option.")));
	if (kappa_view_retention_us(options) > 0)
	{
		bool		is_end;

		if (spec->window.kind == KAPPA_WINDOW_NONE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a view without windows cannot have a retention"),
					 errdetail("Its rows are never final: every event may change them."),
					 errhint("Give the view a window (kappa_tumble, kappa_hop or kappa_session), or drop the retention option.")));
		if (kappa_view_window_column(spec, &is_end) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a view with a retention must select its window's end"),
					 errdetail("Retention deletes the rows of windows that ended long enough ago, and finds them by that column."),
					 errhint("Add w.window_end (or, for tumbling and hopping windows, w.window_start) to the select list.")));
	}
	/* what another database (a restored dump) analyses again */
	definition = kappa_view_definition(query, owner);

	kappa_catalog_enter(&access);
	view_id = kappa_views_insert(stream->id, schema, relname, owner, query_text,
								 nodeToString(query), options, status, kappa_origin_text(),
								 definition);

	/* the rows table, its unique index, and the marker of its state */
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s (", kappa_view_rows_table(view_id));
	foreach(lc, spec->output)
	{
		TargetEntry *tle = lfirst(lc);
		/* a hidden column's type is its expression's over the group row */
		Node	   *original = tle->resjunk ? (Node *) tle->expr :
			(Node *) list_nth_node(TargetEntry, query->targetList, tle->resno - 1)->expr;

		appendStringInfo(&sql, "%s%s %s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_identifier(tle->resname),
						 format_type_extended(exprType(original), exprTypmod(original),
											  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY));
	}
	appendStringInfoChar(&sql, ')');
	kappa_catalog_exec(sql.data, SPI_OK_UTILITY);

	if (spec->unique_columns != NIL)
	{
		resetStringInfo(&sql);
		appendStringInfo(&sql, "CREATE UNIQUE INDEX ON %s (",
						 kappa_view_rows_table(view_id));
		foreach(lc, spec->unique_columns)
			appendStringInfo(&sql, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
							 quote_identifier(lfirst(lc)));
		appendStringInfoString(&sql, ") NULLS NOT DISTINCT");
		kappa_catalog_exec(sql.data, SPI_OK_UTILITY);
	}

	/*
	 * Logical replication of the rows (CREATE PUBLICATION ... FOR TABLE
	 * the rows table) needs a replica identity for the updates and
	 * deletes, and key columns may be null, which an index identity does
	 * not allow: the whole row.  It costs WAL only with wal_level =
	 * logical.
	 */
	kappa_catalog_exec(psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", kappa_view_rows_table(view_id)),
					   SPI_OK_UTILITY);
	/*
	 * The owner's table: what runs on it (its triggers, its index's
	 * functions, ANALYZE of its types) runs as the owner.
	 */
	kappa_catalog_exec(psprintf("ALTER TABLE %s OWNER TO %s",
								kappa_view_rows_table(view_id),
								quote_identifier(GetUserNameFromId(owner, false))),
					   SPI_OK_UTILITY);
	kappa_view_state_marker_insert(view_id);
	kappa_catalog_leave(&access);

	return view_id;
}

/*
 * kappa_create_view(name, query, options) defines a view: one SELECT over
 * one stream.
 */
Datum
kappa_create_view(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *query_text = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *options = PG_GETARG_JSONB_P(2);
	RangeVar   *rv;
	Oid			nspid;
	char	   *schema;
	int32		view_id;
	char	   *read_query;

	kappa_require_preload();
	options = check_view_options(options);

	/* the name: like CREATE VIEW's, in the caller's creation schema */
	rv = makeRangeVarFromNameList(stringToQualifiedNameList(name));
	nspid = RangeVarGetCreationNamespace(rv);
	if (pg_namespace_aclcheck(nspid, GetUserId(), ACL_CREATE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for schema %s", get_namespace_name(nspid))));
	schema = get_namespace_name(nspid);
	if (OidIsValid(get_relname_relid(rv->relname, nspid)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists", rv->relname)));
	if (kappa_view_row_exists(schema, rv->relname))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("kappa view \"%s\" already exists", rv->relname),
				 errdetail("Its relations were dropped while kappa's event trigger did not fire, which left its catalog entry."),
				 errhint("Remove what is left of it with kappa_drop_view(%s).",
						 quote_literal_cstr(quote_qualified_identifier(schema, rv->relname)))));

	view_id = kappa_view_define(schema, rv->relname, query_text, NULL, options, "live", GetUserId());

	/* the user-facing name, created as the caller */
	read_query = kappa_view_read_definition(view_id, NULL);
	SPI_connect();
	if (SPI_execute(psprintf("CREATE VIEW %s AS %s",
							 quote_qualified_identifier(schema, rv->relname), read_query),
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create view \"%s\"", name);
	SPI_finish();
	kappa_wake_launcher_on_commit();

	PG_RETURN_VOID();
}

/* kappa_drop_view(name) removes a view. */
Datum
kappa_drop_view(PG_FUNCTION_ARGS)
{
	kappa_require_preload();
	kappa_drop_view_by_name(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}
