/*-------------------------------------------------------------------------
 *
 * view.c
 *	  The view catalog: a view's names, rows table and catalog row, found,
 *	  forgotten and dropped (kappa_create_view, which defines one, is in
 *	  api/create_view.c; how its rows are read, in engine/view_read.c).
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
 * The other statements on kappa.views are beside: the row a view is
 * defined with and what running it reads (view_plan.c), its status
 * (view_status.c) and the versions kappa_replay builds (view_version.c).
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
#include "kappa_catalog/statement.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"
#include "shmem.h"

static char *leftover_view_schema(const RangeVar *rv);


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
	static KappaStatement find_view =
		KAPPA_STATEMENT("SELECT v.view_id, v.owner, s.name, v.base_name IS NULL "
						"FROM kappa.views v JOIN kappa.streams s USING (stream_id) "
						"WHERE v.schema_name = $1 AND v.view_name = $2 "
						"AND (NOT $3 OR v.base_name IS NULL)",
						"name", "name", "bool");
	MemoryContext caller = CurrentMemoryContext;
	KappaCatalogAccess access;
	Datum		values[3];
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;

	kappa_view_relation(name, AccessShareLock, &ref->schema, &ref->relname);
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(ref->schema));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(ref->relname));
	values[2] = BoolGetDatum(current_only);
	kappa_catalog_enter(&access);
	if (kappa_statement_read(&find_view, values, NULL, 1) == 0)
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
 * The qualified names of the views a catalog statement selects (its only
 * column), in the caller's memory.
 */
static List *
view_names(KappaStatement *stmt, const Datum *values)
{
	MemoryContext caller = CurrentMemoryContext;
	KappaCatalogAccess access;
	List	   *names = NIL;
	uint64		n;

	kappa_catalog_enter(&access);
	n = kappa_statement_run(stmt, values, NULL, SPI_OK_SELECT, 0);
	for (uint64 i = 0; i < n; i++)
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
	static KappaStatement current_views =
		KAPPA_STATEMENT("SELECT format('%I.%I', schema_name, view_name) FROM kappa.views "
						"WHERE stream_id = $1 AND base_name IS NULL ORDER BY view_id", "int4");
	Datum		value = Int32GetDatum(stream_id);

	return view_names(&current_views, &value);
}

/*
 * The qualified names of the versions kept beside a current view
 * (kappa_replay(..., swap => false)), by its schema and name.
 */
static List *
view_versions_beside(Datum schema, Datum relname)
{
	static KappaStatement versions_beside =
		KAPPA_STATEMENT("SELECT format('%I.%I', schema_name, view_name) FROM kappa.views "
						"WHERE schema_name = $1 AND base_name = $2 ORDER BY view_id", "name", "name");
	Datum		values[2] = {schema, relname};

	return view_names(&versions_beside, values);
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
		return kappa_view_row_exists(rv->schemaname, rv->relname) ? rv->schemaname : NULL;
	foreach(lc, fetch_search_path(false))
	{
		char	   *nspname = get_namespace_name(lfirst_oid(lc));

		if (nspname && kappa_view_row_exists(nspname, rv->relname))
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
bool
kappa_view_row_exists(const char *schema, const char *relname)
{
	static KappaStatement row_exists =
		KAPPA_STATEMENT("SELECT FROM kappa.views WHERE schema_name = $1 AND view_name = $2",
						"name", "name");
	KappaCatalogAccess access;
	Datum		values[2];
	bool		exists;

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(schema));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(relname));
	kappa_catalog_enter(&access);
	exists = kappa_statement_read(&row_exists, values, NULL, 1) > 0;
	kappa_catalog_leave(&access);
	return exists;
}

/*
 * Remove what a view has besides its catalog row and user-facing view,
 * once the caller deleted the row: its rows table if it is still there,
 * its states, dedup keys, marks and late events.  The one list of what a
 * view leaves behind: dropping a view, the DROP trigger and a replay's
 * swap all forget through it.
 */
void
kappa_view_forget(int32 view_id)
{
	static KappaStatement forget[] = {
		KAPPA_STATEMENT("DELETE FROM kappa.view_dedup WHERE view_id = $1", "int4"),
		KAPPA_STATEMENT("DELETE FROM kappa.view_state WHERE view_id = $1", "int4"),
		KAPPA_STATEMENT("DELETE FROM kappa.view_state_marker WHERE view_id = $1", "int4"),
		KAPPA_STATEMENT("DELETE FROM kappa.view_marks WHERE view_id = $1", "int4"),
		KAPPA_STATEMENT("DELETE FROM kappa.late_events WHERE view_id = $1", "int4"),
	};
	KappaCatalogAccess access;
	Datum		value = Int32GetDatum(view_id);

	kappa_catalog_enter(&access);
	if (OidIsValid(get_relname_relid(kappa_view_rows_table_name(view_id),
									 get_namespace_oid("kappa", false))))
		kappa_catalog_exec(psprintf("DROP TABLE %s", kappa_view_rows_table(view_id)),
						   SPI_OK_UTILITY);
	for (int i = 0; i < (int) lengthof(forget); i++)
		kappa_statement_run(&forget[i], &value, NULL, SPI_OK_DELETE, 0);
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
	static KappaStatement delete_view =
		KAPPA_STATEMENT("DELETE FROM kappa.views WHERE schema_name = $1 AND view_name = $2 "
						"RETURNING view_id, owner", "name", "name");
	KappaCatalogAccess access;
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
	if (kappa_statement_run(&delete_view, values, NULL, SPI_OK_DELETE_RETURNING, 0) == 0)
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
	foreach(lc, view_versions_beside(values[0], values[1]))
		kappa_drop_view_by_name(lfirst(lc));
	/* a stream stopped for its views' memory may run again */
	kappa_wake_launcher_on_commit();
}

