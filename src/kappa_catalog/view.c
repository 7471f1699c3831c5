/*-------------------------------------------------------------------------
 *
 * view.c
 *	  The view catalog: kappa_create_view and kappa_drop_view.
 *
 * A view is three things: a row in kappa.views (its query, and the
 * analysed Query its worker runs), an ordinary table kappa.view_<id> that
 * holds its rows, with a unique index on the columns that identify a row,
 * and the user-facing name, a Postgres view over that table owned by the
 * role that created it.  Users query, join, index-scan and GRANT on the
 * user-facing view like on any relation; the worker upserts the table.
 * The table keeps every group; a view with HAVING or ORDER BY ... LIMIT
 * stores their inputs in hidden columns, and its user-facing view filters
 * and ranks the groups when it is read (kappa_view_read_query), so what a
 * reader sees is exact however later events move groups in and out.
 *
 * Like the stream catalog, kappa's tables are written as the bootstrap
 * superuser between kappa_catalog_enter and kappa_catalog_leave, with SQL
 * built only from constants, $n parameters and quoted identifiers; the
 * user-facing view is created and dropped as the caller, with the
 * caller's rights.
 *
 * The stream's worker notices new and dropped views at its next flush:
 * it locks its views' catalog rows (FOR KEY SHARE) before writing, and
 * kappa_drop_view deletes the row first, so a flush never writes into a
 * view that is being dropped.
 *
 * Plain DDL: the event trigger of ddl.c drops a kappa view whose
 * user-facing view a DROP removed, through kappa_view_forget as
 * kappa_drop_view does.  With the trigger suppressed, a row can outlive
 * its relations; kappa_drop_view finds such a leftover by its row, and
 * kappa_create_view names it rather than failing on kappa.views' unique
 * key.
 *
 * src/kappa_catalog/view.c
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

#include "kappa_catalog/catalog.h"
#include "engine/compile.h"
#include "engine/lookup.h"
#include "engine/portable.h"
#include "shmem.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"

PG_FUNCTION_INFO_V1(kappa_create_view);
PG_FUNCTION_INFO_V1(kappa_drop_view);

static Jsonb *check_view_options(Jsonb *options);
static char *leftover_view_schema(const RangeVar *rv);
static bool view_row_exists(const char *schema, const char *relname);

/*
 * The keys a view's options may hold, as kappa_create_view takes them.
 * kappa_replay adds "since" and "until" to the versions it builds; a
 * user does not set them (they are stored in UTC by the replay).
 */
static const char *const view_option_keys[] = {"start", "notify", "retention", "emit", NULL};

/* The table that holds a view's rows, unqualified (it is in schema kappa). */
char *
kappa_view_rows_table_name(int32 view_id)
{
	return psprintf("view_%d", view_id);
}

/* The same, qualified and quoted for SQL text. */
char *
kappa_view_rows_table(int32 view_id)
{
	return psprintf("kappa.%s", quote_identifier(kappa_view_rows_table_name(view_id)));
}

/*
 * A timestamptz as kappa stores it in options: ISO, in UTC, so that any
 * backend or worker reads the same instant whatever its TimeZone.
 */
char *
kappa_canonical_time(TimestampTz ts)
{
	int			save_nestlevel = NewGUCNestLevel();
	char	   *text;

	(void) set_config_option("TimeZone", "UTC", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("DateStyle", "ISO", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	text = DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(ts)));
	AtEOXact_GUC(true, save_nestlevel);
	return text;
}

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
 * The output column that holds the end (*is_end) or the start of a view's
 * window, for retention to find old rows by; NULL if it selects neither.
 * A session's end is not its start plus a size: only its end will do.
 */
char *
kappa_view_window_column(KappaViewSpec *spec, bool *is_end)
{
	int			nkeys = list_length(spec->keys);
	char	   *start = NULL;
	ListCell   *lc;

	foreach(lc, spec->output)
	{
		TargetEntry *tle = lfirst(lc);
		Var		   *var = (Var *) tle->expr;

		if (tle->resjunk || !IsA(var, Var))
			continue;
		if (var->varattno == nkeys + 2)
		{
			*is_end = true;
			return tle->resname;
		}
		if (var->varattno == nkeys + 1 && start == NULL)
			start = tle->resname;
	}
	*is_end = false;
	return spec->window.kind == KAPPA_WINDOW_SESSION ? NULL : start;
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
	bool		isnull;
	Oid			types[10] = {INT4OID, NAMEOID, NAMEOID, OIDOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID,
							 TEXTOID, TEXTOID};
	Datum		values[10];
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
	kappa_check_view_rights(query, owner);
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
	values[0] = Int32GetDatum(stream->id);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(schema));
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(relname));
	values[3] = ObjectIdGetDatum(owner);
	values[4] = CStringGetTextDatum(query_text);
	values[5] = CStringGetTextDatum(nodeToString(query));
	values[6] = JsonbPGetDatum(options);
	values[7] = CStringGetTextDatum(status);
	values[8] = CStringGetTextDatum(kappa_origin_text());
	values[9] = CStringGetTextDatum(definition);
	if (SPI_execute_with_args("INSERT INTO kappa.views (stream_id, schema_name, view_name, owner, query, plan, "
							  "options, status, plan_origin, definition) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING view_id",
							  10, types, values, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not insert view \"%s\"", relname);
	view_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

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
	kappa_catalog_exec(psprintf("INSERT INTO kappa.view_state_marker VALUES (%d)", view_id),
					   SPI_OK_INSERT);
	kappa_catalog_leave(&access);

	return view_id;
}

/* A sort item of the read query, over a column of alias. */
static void
append_sort_item(StringInfo sql, const char *alias, KappaSortItem *item)
{
	TypeCacheEntry *tc = lookup_type_cache(item->type, TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);

	appendStringInfo(sql, "%s.%s", alias, quote_identifier(item->column));
	if (OidIsValid(item->collation))
	{
		HeapTuple	tuple = SearchSysCache1(COLLOID, ObjectIdGetDatum(item->collation));
		Form_pg_collation coll;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for collation %u", item->collation);
		coll = (Form_pg_collation) GETSTRUCT(tuple);
		appendStringInfo(sql, " COLLATE %s",
						 quote_qualified_identifier(get_namespace_name(coll->collnamespace),
													NameStr(coll->collname)));
		ReleaseSysCache(tuple);
	}
	if (item->sortop == tc->lt_opr)
		appendStringInfoString(sql, " ASC");
	else if (item->sortop == tc->gt_opr)
		appendStringInfoString(sql, " DESC");
	else
	{
		HeapTuple	tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(item->sortop));
		Form_pg_operator oper;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for operator %u", item->sortop);
		oper = (Form_pg_operator) GETSTRUCT(tuple);
		appendStringInfo(sql, " USING OPERATOR(%s.%s)",
						 quote_identifier(get_namespace_name(oper->oprnamespace)),
						 NameStr(oper->oprname));
		ReleaseSysCache(tuple);
	}
	appendStringInfoString(sql, item->nulls_first ? " NULLS FIRST" : " NULLS LAST");
}

/*
 * The query of a view's user-facing view over its rows table: what a
 * reader sees.  The rows table holds every group; the read query applies
 * HAVING (the hidden verdict column) and keeps the top N groups of each
 * window (partitioned by window_start; of all groups without windows),
 * HAVING first, as SQL does, and shows the select list's columns only.
 * Without HAVING or LIMIT it is SELECT * of the rows table, as it always
 * was.  Every path that creates or re-creates a user-facing view uses it
 * (create, replay's swap, a version kept beside, promote); pg_dump keeps
 * the view's definition as it is.
 */
char *
kappa_view_read_query(KappaViewSpec *spec, const char *rows_table)
{
	StringInfoData sql;
	StringInfoData columns;
	ListCell   *lc;

	if (spec->having_column == NULL && spec->limit == 0)
		return psprintf("SELECT * FROM %s", rows_table);

	initStringInfo(&columns);
	for (int i = 0; i < spec->nvisible; i++)
		appendStringInfo(&columns, "%sr.%s", i > 0 ? ", " : "",
						 quote_identifier(list_nth_node(TargetEntry, spec->output, i)->resname));
	initStringInfo(&sql);
	if (spec->limit == 0)
	{
		appendStringInfo(&sql, "SELECT %s FROM %s r WHERE r.%s", columns.data, rows_table,
						 quote_identifier(spec->having_column));
		return sql.data;
	}
	appendStringInfo(&sql, "SELECT %s FROM (SELECT t.*, pg_catalog.%s() OVER (",
					 columns.data, spec->with_ties ? "rank" : "row_number");
	if (spec->partition_column)
		appendStringInfo(&sql, "PARTITION BY t.%s ", quote_identifier(spec->partition_column));
	appendStringInfoString(&sql, "ORDER BY ");
	foreach(lc, spec->order)
	{
		if (foreach_current_index(lc) > 0)
			appendStringInfoString(&sql, ", ");
		append_sort_item(&sql, "t", lfirst(lc));
	}
	foreach(lc, spec->tiebreak)
	{
		appendStringInfoString(&sql, ", ");
		append_sort_item(&sql, "t", lfirst(lc));
	}
	appendStringInfo(&sql, ") AS %s FROM %s t", KAPPA_RANK_COLUMN, rows_table);
	if (spec->having_column)
		appendStringInfo(&sql, " WHERE t.%s", quote_identifier(spec->having_column));
	appendStringInfo(&sql, ") r WHERE r.%s <= " INT64_FORMAT, KAPPA_RANK_COLUMN, spec->limit);
	return sql.data;
}

/*
 * The read query of a view's user-facing view (kappa_view_read_query),
 * from the view's stored plan, compiled as its owner; *nvisible, if given,
 * is the number of its columns.  In the caller's memory.
 */
char *
kappa_view_read_definition(int32 view_id, int *nvisible)
{
	MemoryContext caller = CurrentMemoryContext;
	KappaCatalogAccess access;
	KappaOwnerAccess as_owner;
	Datum		values[1] = {Int32GetDatum(view_id)};
	KappaStream *stream;
	KappaViewSpec *spec;
	Query	   *query;
	char	   *plan;
	Oid			owner;
	bool		isnull;

	plan = kappa_view_localize(view_id);
	kappa_catalog_enter(&access);
	/* not read-only: the row may be this command's own */
	if (SPI_execute_with_args("SELECT plan, owner FROM kappa.views WHERE view_id = $1",
							  1, (Oid[]) {INT4OID}, values, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read kappa.views");
	/* in the caller's memory: SPI's goes with the catalog section */
	if (plan == NULL)
		plan = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	kappa_catalog_leave(&access);

	query = kappa_stored_view(plan, &stream);
	kappa_owner_enter(&as_owner, owner);
	spec = kappa_compile_view(query);
	kappa_owner_leave(&as_owner);
	if (nvisible)
		*nvisible = spec->nvisible;
	return kappa_view_read_query(spec, kappa_view_rows_table(view_id));
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
	if (view_row_exists(schema, rv->relname))
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

/*
 * The relation a view's (possibly qualified) name finds, locked in
 * lockmode, and its schema and name as kappa.views spells them; an error if
 * there is none.  Whether it is a kappa view is the caller's to ask.
 */
Oid
kappa_view_relation(const char *name, LOCKMODE lockmode, char **schema, char **relname)
{
	RangeVar   *rv = makeRangeVarFromNameList(stringToQualifiedNameList(name));
	Oid			relid = RangeVarGetRelid(rv, lockmode, true);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("kappa view \"%s\" does not exist", name)));
	*schema = get_namespace_name(get_rel_namespace(relid));
	*relname = get_rel_name(relid);
	return relid;
}

/*
 * The kappa view a caller names, read under AccessShareLock on its
 * relation, in the caller's memory; an error unless it is a kappa view (with
 * current_only, the current version of one, not a version beside it) that
 * the caller owns (or is a member of its owning role).
 */
void
kappa_view_resolve_owned(const char *name, bool current_only, KappaViewRef *ref)
{
	MemoryContext caller = CurrentMemoryContext;
	KappaCatalogAccess access;
	Oid			types[3] = {NAMEOID, NAMEOID, BOOLOID};
	Datum		values[3];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;

	kappa_view_relation(name, AccessShareLock, &ref->schema, &ref->relname);
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(ref->schema));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(ref->relname));
	values[2] = BoolGetDatum(current_only);
	kappa_catalog_enter(&access);
	if (SPI_execute_with_args("SELECT v.view_id, v.owner, s.name, v.base_name IS NULL "
							  "FROM kappa.views v JOIN kappa.streams s USING (stream_id) "
							  "WHERE v.schema_name = $1 AND v.view_name = $2 "
							  "AND (NOT $3 OR v.base_name IS NULL)",
							  3, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 current_only ?
				 errmsg("\"%s\" is not the current version of a kappa view", name) :
				 errmsg("\"%s\" is not a kappa view", name)));
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	ref->view_id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
	ref->owner = DatumGetObjectId(SPI_getbinval(row, desc, 2, &isnull));
	/* out of SPI's memory, which goes with kappa_catalog_leave */
	ref->stream_name = MemoryContextStrdup(caller, SPI_getvalue(row, desc, 3));
	ref->current = DatumGetBool(SPI_getbinval(row, desc, 4, &isnull));
	kappa_catalog_leave(&access);
	if (!has_privs_of_role(GetUserId(), ref->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of view %s", name)));
}

/*
 * The qualified names of the views a condition over kappa.views selects
 * (a constant of kappa's, with $n parameters), in the caller's memory.
 */
static List *
view_names_where(const char *condition, int nargs, Oid *types, Datum *values)
{
	MemoryContext caller = CurrentMemoryContext;
	KappaCatalogAccess access;
	List	   *names = NIL;

	kappa_catalog_enter(&access);
	if (SPI_execute_with_args(psprintf("SELECT format('%%I.%%I', schema_name, view_name) FROM kappa.views "
									   "WHERE %s ORDER BY view_id", condition),
							  nargs, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		names = lappend(names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		MemoryContextSwitchTo(spi);
	}
	kappa_catalog_leave(&access);
	return names;
}

/*
 * The qualified names of a stream's views: their current versions (which
 * are dropped with the versions beside them).
 */
List *
kappa_stream_view_names(int32 stream_id)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(stream_id)};

	return view_names_where("stream_id = $1 AND base_name IS NULL", 1, types, values);
}

/*
 * The schema of a kappa view whose relations are gone but whose catalog row
 * is left (dropped while kappa's event trigger was disabled): the name's
 * own schema, or the first schema of the search path that has such a row.
 * NULL if there is none.
 */
static char *
leftover_view_schema(const RangeVar *rv)
{
	ListCell   *lc;

	if (rv->schemaname)
		return view_row_exists(rv->schemaname, rv->relname) ? rv->schemaname : NULL;
	foreach(lc, fetch_search_path(false))
	{
		char	   *nspname = get_namespace_name(lfirst_oid(lc));

		if (nspname && view_row_exists(nspname, rv->relname))
			return nspname;
	}
	return NULL;
}

/*
 * Whether a relation is the user-facing view of a kappa view: a view whose
 * query reads the kappa view's rows table.  A relation of the same name
 * may be another, made after the kappa view's was dropped by hand.
 */
bool
kappa_view_is_user_facing(Oid relid, int32 view_id)
{
	KappaCatalogAccess access;
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		values[2] = {ObjectIdGetDatum(relid),
	CStringGetTextDatum(kappa_view_rows_table(view_id))};
	bool		reads;
	bool		isnull;

	kappa_catalog_enter(&access);
	if (SPI_execute_with_args("SELECT EXISTS (SELECT FROM pg_rewrite r JOIN pg_depend d "
							  "  ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
							  "  WHERE r.ev_class = $1 AND d.refclassid = 'pg_class'::regclass "
							  "  AND d.refobjid = to_regclass($2))",
							  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_rewrite");
	reads = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	kappa_catalog_leave(&access);
	return reads;
}

/*
 * Whether kappa.views has a row of that schema and name, whose relations
 * may be gone (see leftover_view_schema).
 */
static bool
view_row_exists(const char *schema, const char *relname)
{
	KappaCatalogAccess access;
	Oid			types[2] = {NAMEOID, NAMEOID};
	Datum		values[2];
	bool		exists;

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(schema));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(relname));
	kappa_catalog_enter(&access);
	if (SPI_execute_with_args("SELECT FROM kappa.views WHERE schema_name = $1 AND view_name = $2",
							  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kappa.views");
	exists = SPI_processed > 0;
	kappa_catalog_leave(&access);
	return exists;
}

/*
 * Remove what a view has besides its catalog row and user-facing view,
 * once the caller deleted the row: its rows table if it is still there,
 * its state, marks and late events.
 */
void
kappa_view_forget(int32 view_id)
{
	KappaCatalogAccess access;

	kappa_catalog_enter(&access);
	if (OidIsValid(get_relname_relid(kappa_view_rows_table_name(view_id),
									 get_namespace_oid("kappa", false))))
		kappa_catalog_exec(psprintf("DROP TABLE %s", kappa_view_rows_table(view_id)),
						   SPI_OK_UTILITY);
	kappa_catalog_exec(psprintf("DELETE FROM kappa.view_dedup WHERE view_id = %d", view_id),
					   SPI_OK_DELETE);
	kappa_catalog_exec(psprintf("DELETE FROM kappa.view_state WHERE view_id = %d", view_id),
					   SPI_OK_DELETE);
	kappa_catalog_exec(psprintf("DELETE FROM kappa.view_state_marker WHERE view_id = %d", view_id),
					   SPI_OK_DELETE);
	kappa_catalog_exec(psprintf("DELETE FROM kappa.view_marks WHERE view_id = %d", view_id),
					   SPI_OK_DELETE);
	kappa_catalog_exec(psprintf("DELETE FROM kappa.late_events WHERE view_id = %d", view_id),
					   SPI_OK_DELETE);
	kappa_catalog_leave(&access);
}

/*
 * Drop a view by its (possibly qualified) name: its catalog rows, state,
 * rows table, and user-facing view.  Only its owner or a superuser may.
 * What is left of a view whose relations were dropped by hand (while
 * kappa's event trigger was disabled) is dropped the same way; its name
 * then finds no relation, so it is looked up in kappa.views.
 */
void
kappa_drop_view_by_name(const char *name)
{
	KappaCatalogAccess access;
	Oid			types[2] = {NAMEOID, NAMEOID};
	Datum		values[2];
	RangeVar   *rv = makeRangeVarFromNameList(stringToQualifiedNameList(name));
	Oid			relid = RangeVarGetRelid(rv, NoLock, true);
	char	   *schema;
	char	   *relname;
	int32		view_id;
	Oid			owner;
	bool		isnull;
	ListCell   *lc;

	if (OidIsValid(relid))
	{
		schema = get_namespace_name(get_rel_namespace(relid));
		relname = get_rel_name(relid);
	}
	else if ((schema = leftover_view_schema(rv)) != NULL)
		relname = rv->relname;
	else
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("kappa view \"%s\" does not exist", name)));
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(schema));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(relname));

	kappa_catalog_enter(&access);
	/* deleting the row first keeps the worker's next flush away from it */
	if (SPI_execute_with_args("DELETE FROM kappa.views WHERE schema_name = $1 AND view_name = $2 "
							  "RETURNING view_id, owner",
							  2, types, values, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not delete view \"%s\"", name);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a kappa view", name),
				 errhint("Drop other relations with DROP VIEW or DROP TABLE.")));
	view_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	kappa_catalog_leave(&access);

	if (!has_privs_of_role(GetUserId(), owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of view %s", name)));

	/* the user-facing view, as the caller, unless it is gone already */
	if (OidIsValid(relid) && kappa_view_is_user_facing(relid, view_id))
	{
		SPI_connect();
		if (SPI_execute(psprintf("DROP VIEW %s", quote_qualified_identifier(schema, relname)),
						false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not drop view \"%s\"", name);
		SPI_finish();
	}
	kappa_view_forget(view_id);

	/* the versions kept beside it (kappa_replay(..., swap => false)) go too */
	foreach(lc, view_names_where("schema_name = $1 AND base_name = $2", 2, types, values))
		kappa_drop_view_by_name(lfirst(lc));
	/* a stream stopped for its views' memory may run again */
	kappa_wake_launcher_on_commit();
}

/* kappa_drop_view(name) removes a view. */
Datum
kappa_drop_view(PG_FUNCTION_ARGS)
{
	kappa_require_preload();
	kappa_drop_view_by_name(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}
