/*-------------------------------------------------------------------------
 *
 * view_version.c
 *	  The versions of a view in kappa.views, for kappa_replay, kappa_promote
 *	  and kappa_compare (api/replay.c): the row a replay starts from, the
 *	  swap of a new version for the old one, versions kept beside the
 *	  current one and found by number.
 *
 * A replay defines its new version as a view of its own (a kappa.views
 * row with status 'replaying', named so that nobody reads it), rebuilds
 * it, and then either swaps it in (the old row goes, the new one takes its
 * name) or keeps it beside the current version: base_name is then the
 * current version's name, version its number, and view_name relname@vN.
 * kappa_promote swaps such a version in and clears its base_name.  A
 * version goes live, or incomplete if it recorded gaps (kappa.view_gaps).
 *
 * Sections: each function opens its own catalog section and returns what
 * it read in the caller's memory.
 *
 * Locking: kappa_views_lock_versions takes both rows of a swap FOR UPDATE
 * in view-id order, as a worker's flush takes its views' rows FOR KEY
 * SHARE, so a swap and a flush cannot deadlock; the writes keep their row
 * locks until the transaction ends.
 *
 * src/kappa_catalog/view_version.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/statement.h"
#include "kappa_catalog/view_version.h"

/*
 * The query, plan and options a replay of the view starts from, in the
 * caller's memory: options without a start of 'latest' (a replay reads
 * from the view's start).  An error if the view is gone.
 */
void
kappa_views_replay_source(int32 view_id, char **query, char **plan, Jsonb **options)
{
	static KappaStatement replay_source =
		KAPPA_STATEMENT("SELECT query, plan, "
						"CASE WHEN options->>'start' = 'latest' THEN options - 'start' "
						"ELSE options END "
						"FROM kappa.views WHERE view_id = $1", "int4");
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;
	Datum		value = Int32GetDatum(view_id);
	KappaCatalogAccess access;
	bool		isnull;

	kappa_catalog_enter(&access);
	if (kappa_statement_read(&replay_source, &value, NULL, 1) != 1)
		elog(ERROR, "could not read kappa.views");
	/* copied out of SPI's memory, which goes with kappa_catalog_leave */
	old = MemoryContextSwitchTo(caller);
	*query = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*plan = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	*options = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	MemoryContextSwitchTo(old);
	kappa_catalog_leave(&access);
}

/*
 * The stream a view reads; an error if the view is gone.  The row may be
 * the current command's own (a replay's new version).
 */
int32
kappa_views_stream_id(int32 view_id)
{
	static KappaStatement view_stream =
		KAPPA_STATEMENT("SELECT stream_id FROM kappa.views WHERE view_id = $1", "int4");
	Datum		value = Int32GetDatum(view_id);
	KappaCatalogAccess access;
	int32		stream_id;
	bool		isnull;

	kappa_catalog_enter(&access);
	if (kappa_statement_run(&view_stream, &value, NULL, SPI_OK_SELECT, 1) != 1)
		elog(ERROR, "could not read kappa.views");
	stream_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	kappa_catalog_leave(&access);
	return stream_id;
}

/*
 * Lock the rows of two versions of a view FOR UPDATE, in view-id order,
 * before a swap: a worker's flush locks its views' rows in that order
 * (kappa_views_running), and kappa_promote may swap in a version older
 * than the current one.
 */
void
kappa_views_lock_versions(int32 view_id_a, int32 view_id_b)
{
	static KappaStatement lock_versions =
		KAPPA_STATEMENT("SELECT FROM kappa.views WHERE view_id IN ($1, $2) "
						"ORDER BY view_id FOR UPDATE", "int4", "int4");
	Datum		values[2] = {Int32GetDatum(view_id_a), Int32GetDatum(view_id_b)};
	KappaCatalogAccess access;

	kappa_catalog_enter(&access);
	kappa_statement_run(&lock_versions, values, NULL, SPI_OK_SELECT, 0);
	kappa_catalog_leave(&access);
}

/*
 * The old version's row goes; the new one takes its name (relname) and
 * goes live, or incomplete if it has gaps.  What else the old version has
 * is the caller's to forget (kappa_view_forget).
 */
void
kappa_views_swap(int32 old_id, int32 new_id, const char *relname)
{
	static KappaStatement delete_old =
		KAPPA_STATEMENT("DELETE FROM kappa.views WHERE view_id = $1", "int4");
	static KappaStatement rename_new =
		KAPPA_STATEMENT("UPDATE kappa.views SET view_name = $3, status = "
						"CASE WHEN EXISTS (SELECT FROM kappa.view_gaps g WHERE g.view_id = $2) "
						"THEN 'incomplete' ELSE 'live' END WHERE view_id = $2",
						"int4", "int4", "name");
	Datum		values[3] = {Int32GetDatum(old_id), Int32GetDatum(new_id),
	DirectFunctionCall1(namein, CStringGetDatum(relname))};
	KappaCatalogAccess access;

	kappa_catalog_enter(&access);
	kappa_statement_run(&delete_old, values, NULL, SPI_OK_DELETE, 0);
	kappa_statement_run(&rename_new, values, NULL, SPI_OK_UPDATE, 0);
	kappa_catalog_leave(&access);
}

/*
 * The number the next version of a view (by its schema and current name)
 * gets: one more than the highest so far, and at least 2.
 */
int32
kappa_views_next_version(const char *schema, const char *base_name)
{
	static KappaStatement next_version =
		KAPPA_STATEMENT("SELECT coalesce(max(version), 1) + 1 FROM kappa.views "
						"WHERE schema_name = $1 AND coalesce(base_name, view_name) = $2",
						"name", "name");
	Datum		values[2];
	KappaCatalogAccess access;
	int32		version;
	bool		isnull;

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(schema));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(base_name));
	kappa_catalog_enter(&access);
	kappa_statement_run(&next_version, values, NULL, SPI_OK_SELECT, 1);
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	kappa_catalog_leave(&access);
	return version;
}

/*
 * Keep a replayed version beside the current one (base_name), as version
 * number version, named view_name; it goes live, or incomplete if it has
 * gaps.
 */
void
kappa_views_record_version(int32 view_id, const char *view_name, const char *base_name,
						   int32 version)
{
	static KappaStatement record_version =
		KAPPA_STATEMENT("UPDATE kappa.views SET view_name = $1, base_name = $2, version = $3, "
						"status = CASE WHEN EXISTS (SELECT FROM kappa.view_gaps g WHERE g.view_id = $4) "
						"THEN 'incomplete' ELSE 'live' END WHERE view_id = $4",
						"name", "name", "int4", "int4");
	Datum		values[4];
	KappaCatalogAccess access;

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(view_name));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(base_name));
	values[2] = Int32GetDatum(version);
	values[3] = Int32GetDatum(view_id);
	kappa_catalog_enter(&access);
	kappa_statement_run(&record_version, values, NULL, SPI_OK_UPDATE, 0);
	kappa_catalog_leave(&access);
}

/*
 * A live (or incomplete) version of a view by number (negative: the
 * current one): its id, and its catalog name in the caller's memory if
 * view_name is not NULL.  False if there is none.
 */
bool
kappa_views_find_version(const char *schema, const char *base_name, int32 version,
						 int32 *view_id, char **view_name)
{
	/* planned per run: a version number, or the current one, by its key */
	static KappaStatement find_version =
		KAPPA_STATEMENT_PLANNED_EACH_RUN("SELECT view_id, view_name FROM kappa.views WHERE schema_name = $1 "
						"AND coalesce(base_name, view_name) = $2 AND status IN ('live', 'incomplete') "
						"AND CASE WHEN $3 < 0 THEN base_name IS NULL ELSE version = $3 END",
						"name", "name", "int4");
	MemoryContext caller = CurrentMemoryContext;
	Datum		values[3];
	KappaCatalogAccess access;
	bool		found;
	bool		isnull;

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(schema));
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(base_name));
	values[2] = Int32GetDatum(version);
	kappa_catalog_enter(&access);
	found = kappa_statement_run(&find_version, values, NULL, SPI_OK_SELECT, 1) > 0;
	if (found)
	{
		*view_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (view_name)
			*view_name = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0],
																  SPI_tuptable->tupdesc, 2));
	}
	kappa_catalog_leave(&access);
	return found;
}

/* A version swapped in by kappa_promote is the current one: no base. */
void
kappa_views_promote(int32 view_id)
{
	static KappaStatement promote =
		KAPPA_STATEMENT("UPDATE kappa.views SET base_name = NULL WHERE view_id = $1", "int4");
	Datum		value = Int32GetDatum(view_id);
	KappaCatalogAccess access;

	kappa_catalog_enter(&access);
	kappa_statement_run(&promote, &value, NULL, SPI_OK_UPDATE, 0);
	kappa_catalog_leave(&access);
}
