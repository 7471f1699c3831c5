/*-------------------------------------------------------------------------
 *
 * view_plan.c
 *	  A view's row in kappa.views as written when it is defined and read
 *	  when it is run: its query, its stored plan (the analysed Query as a
 *	  node string), its portable definition, owner and options.
 *
 * Who reads what: a stream's engine loads the definitions of the views it
 * runs (engine/engine_views.c); a view's plan is compiled again to read
 * its rows (engine/view_read.c) or to check a sink (engine/sink.c);
 * kappa_alter_stream checks what the stream's views read (api/alter.c).
 * A plan written by another database (a restored dump, an upgrade) is
 * analysed again from the definition and stored (engine/portable.c).
 * Defining the view, which compiles its query, is api/create_view.c's;
 * the row it inserts is written here.
 *
 * Sections: kappa_views_insert, kappa_views_all_plans and
 * kappa_views_set_definition run in their caller's catalog section (which
 * creates the view's relations, or walks every view), and return what they
 * read in the current (SPI's) memory.  The other functions open their own
 * section, and return what they read in the caller's memory (or the one
 * given).
 *
 * Locking: kappa_views_running locks the rows it reads FOR KEY SHARE until
 * the transaction ends, so that no view is dropped under a worker's flush
 * (a drop deletes the row first).
 *
 * src/kappa_catalog/view_plan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/statement.h"
#include "kappa_catalog/view_plan.h"

/*
 * A view's definition from a row whose columns, from first on, are plan,
 * start, qualified name, since, until, owner and the options notify,
 * retention and emit; copied into cxt.
 */
static void
definition_from_row(KappaViewDefinition *def, int32 view_id, HeapTuple row, TupleDesc desc,
					int first, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	bool		isnull;

	def->view_id = view_id;
	def->plan = SPI_getvalue(row, desc, first);
	def->start = SPI_getvalue(row, desc, first + 1);
	def->name = SPI_getvalue(row, desc, first + 2);
	def->since = SPI_getvalue(row, desc, first + 3);
	def->until = SPI_getvalue(row, desc, first + 4);
	def->owner = DatumGetObjectId(SPI_getbinval(row, desc, first + 5, &isnull));
	def->notify = SPI_getvalue(row, desc, first + 6);
	def->retention = SPI_getvalue(row, desc, first + 7);
	def->emit = SPI_getvalue(row, desc, first + 8);
	MemoryContextSwitchTo(old);
}

/*
 * Insert a new view's row; returns its id.  The caller creates its rows
 * table in the same catalog section.
 */
int32
kappa_views_insert(int32 stream_id, const char *schema, const char *relname, Oid owner,
				   const char *query_text, const char *plan, Jsonb *options,
				   const char *status, const char *origin, const char *definition)
{
	static KappaStatement insert_view =
		KAPPA_STATEMENT("INSERT INTO kappa.views (stream_id, schema_name, view_name, owner, query, plan, "
						"options, status, plan_origin, definition) "
						"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING view_id",
						"int4", "name", "name", "oid", "text", "text", "jsonb", "text",
						"text", "text");
	Datum		values[10];
	bool		isnull;

	values[0] = Int32GetDatum(stream_id);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(schema));
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(relname));
	values[3] = ObjectIdGetDatum(owner);
	values[4] = CStringGetTextDatum(query_text);
	values[5] = CStringGetTextDatum(plan);
	values[6] = JsonbPGetDatum(options);
	values[7] = CStringGetTextDatum(status);
	values[8] = CStringGetTextDatum(origin);
	values[9] = CStringGetTextDatum(definition);
	kappa_statement_run(&insert_view, values, NULL, SPI_OK_INSERT_RETURNING, 1);
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The views a stream's engine runs: its live and incomplete views, or with
 * only_view, that view whatever its status; in view-id order, their rows
 * locked FOR KEY SHARE.  For each, wanted (called in cxt, in the catalog
 * section) says whether to return its definition; the List of
 * KappaViewDefinition it returns is in cxt.  Opens its own catalog
 * section.
 */
List *
kappa_views_running(int32 stream_id, int32 only_view, KappaViewWanted wanted, void *arg,
					MemoryContext cxt)
{
	/* planned per run: with only_view, the key lookup a generic plan loses */
	static KappaStatement running_views =
		KAPPA_STATEMENT_PLANNED_EACH_RUN("SELECT view_id, plan, coalesce(options->>'start', 'earliest'), "
						"format('%I.%I', schema_name, view_name), options->>'since', options->>'until', owner, "
						"options->>'notify', options->>'retention', options->>'emit' "
						"FROM kappa.views WHERE stream_id = $1 AND "
						"CASE WHEN $2 = 0 THEN status IN ('live', 'incomplete') ELSE view_id = $2 END "
						"ORDER BY view_id FOR KEY SHARE",
						"int4", "int4");
	Datum		values[2] = {Int32GetDatum(stream_id), Int32GetDatum(only_view)};
	KappaCatalogAccess access;
	MemoryContext old;
	List	   *wanted_views = NIL;
	uint64		n;

	kappa_catalog_enter(&access);
	n = kappa_statement_run(&running_views, values, NULL, SPI_OK_SELECT, 0);
	old = MemoryContextSwitchTo(cxt);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		if (wanted(id, arg))
		{
			KappaViewDefinition *def = palloc(sizeof(KappaViewDefinition));

			definition_from_row(def, id, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, cxt);
			wanted_views = lappend(wanted_views, def);
		}
	}
	MemoryContextSwitchTo(old);
	kappa_catalog_leave(&access);
	return wanted_views;
}

/*
 * One view's definition by id, whatever its status, into *def (its
 * strings in cxt); false if the view is gone.  Opens its own catalog
 * section.
 */
bool
kappa_views_definition(int32 view_id, KappaViewDefinition *def, MemoryContext cxt)
{
	static KappaStatement view_definition =
		KAPPA_STATEMENT("SELECT plan, coalesce(options->>'start', 'earliest'), "
						"format('%I.%I', schema_name, view_name), options->>'since', options->>'until', owner, "
						"options->>'notify', options->>'retention', options->>'emit' "
						"FROM kappa.views WHERE view_id = $1",
						"int4");
	Datum		value = Int32GetDatum(view_id);
	KappaCatalogAccess access;
	bool		found;

	kappa_catalog_enter(&access);
	found = kappa_statement_read(&view_definition, &value, NULL, 1) > 0;
	if (found)
		definition_from_row(def, view_id, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, cxt);
	kappa_catalog_leave(&access);
	return found;
}

/*
 * A view's stored plan, in the caller's memory, and its owner if owner is
 * not NULL; an error if the view is gone.  in_snapshot: read in the
 * caller's snapshot (read-only); otherwise with a new one, which sees a
 * row the current command wrote (a replay's new version).  Opens its own
 * catalog section.
 */
char *
kappa_views_plan(int32 view_id, Oid *owner, bool in_snapshot)
{
	static KappaStatement view_plan =
		KAPPA_STATEMENT("SELECT plan, owner FROM kappa.views WHERE view_id = $1", "int4");
	MemoryContext caller = CurrentMemoryContext;
	Datum		value = Int32GetDatum(view_id);
	KappaCatalogAccess access;
	char	   *plan;
	bool		isnull;

	kappa_catalog_enter(&access);
	if ((in_snapshot ?
		 kappa_statement_read(&view_plan, &value, NULL, 1) :
		 kappa_statement_run(&view_plan, &value, NULL, SPI_OK_SELECT, 1)) != 1)
		elog(ERROR, "could not read kappa.views");
	/* in the caller's memory: SPI's goes with the catalog section */
	plan = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	if (owner)
		*owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	kappa_catalog_leave(&access);
	return plan;
}

/*
 * Whether a view's stored plan is of another origin than this database's
 * (given), and then what analysing its definition again needs, into *view
 * in the caller's memory.  Opens its own catalog section.
 */
bool
kappa_views_foreign(int32 view_id, const char *origin, KappaViewForeign *view)
{
	static KappaStatement foreign_plan =
		KAPPA_STATEMENT("SELECT definition, format('%I.%I', schema_name, view_name), "
						"stream_id, owner FROM kappa.views "
						"WHERE view_id = $1 AND plan_origin <> $2",
						"int4", "text");
	MemoryContext caller = CurrentMemoryContext;
	Datum		values[2] = {Int32GetDatum(view_id), CStringGetTextDatum(origin)};
	KappaCatalogAccess access;
	bool		isnull;

	kappa_catalog_enter(&access);
	if (kappa_statement_run(&foreign_plan, values, NULL, SPI_OK_SELECT, 1) == 0)
	{
		kappa_catalog_leave(&access);
		return false;
	}
	view->definition = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	view->name = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	view->stream_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	view->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	kappa_catalog_leave(&access);
	return true;
}

/*
 * Store a plan analysed again in this database (origin), unless another
 * call stored one first.  Opens its own catalog section.
 */
void
kappa_views_store_plan(int32 view_id, const char *plan, const char *origin)
{
	static KappaStatement store_plan =
		KAPPA_STATEMENT("UPDATE kappa.views SET plan = $2, plan_origin = $3 "
						"WHERE view_id = $1 AND plan_origin <> $3",
						"int4", "text", "text");
	Datum		values[3] = {Int32GetDatum(view_id), CStringGetTextDatum(plan),
	CStringGetTextDatum(origin)};
	KappaCatalogAccess access;

	kappa_catalog_enter(&access);
	kappa_statement_run(&store_plan, values, NULL, SPI_OK_UPDATE, 0);
	kappa_catalog_leave(&access);
}

/*
 * Every view's stored plan and owner, by id, as KappaViewPlan in the
 * current memory (kappa.upgrade_views).
 */
List *
kappa_views_all_plans(void)
{
	static KappaStatement all_plans =
		KAPPA_STATEMENT("SELECT view_id, plan, owner::oid, format('%I.%I', schema_name, view_name) "
						"FROM kappa.views ORDER BY view_id", NULL);
	List	   *views = NIL;
	uint64		n;

	n = kappa_statement_read(&all_plans, NULL, NULL, 0);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		KappaViewPlan *view = palloc(sizeof(KappaViewPlan));
		bool		isnull;

		view->view_id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
		view->plan = SPI_getvalue(row, desc, 2);
		view->owner = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
		view->name = SPI_getvalue(row, desc, 4);
		views = lappend(views, view);
	}
	return views;
}

/* Store a view's portable definition (kappa.upgrade_views). */
void
kappa_views_set_definition(int32 view_id, const char *definition)
{
	static KappaStatement set_definition =
		KAPPA_STATEMENT("UPDATE kappa.views SET definition = $2 WHERE view_id = $1",
						"int4", "text");
	Datum		values[2] = {Int32GetDatum(view_id), CStringGetTextDatum(definition)};

	kappa_statement_run(&set_definition, values, NULL, SPI_OK_UPDATE, 0);
}

/*
 * The views of a stream (every version), by id: their qualified names,
 * and their stored plans where this database (origin) wrote them, else
 * NULL; two Lists of the same length, in the caller's memory.  Opens its
 * own catalog section.
 */
void
kappa_views_plans_of_stream(int32 stream_id, const char *origin, List **names, List **plans)
{
	static KappaStatement stream_plans =
		KAPPA_STATEMENT("SELECT format('%I.%I', schema_name, view_name), "
						"CASE WHEN plan_origin = $2 THEN plan END "
						"FROM kappa.views WHERE stream_id = $1 ORDER BY view_id",
						"int4", "text");
	MemoryContext caller = CurrentMemoryContext;
	Datum		values[2] = {Int32GetDatum(stream_id), CStringGetTextDatum(origin)};
	KappaCatalogAccess access;
	uint64		n;

	*names = NIL;
	*plans = NIL;
	kappa_catalog_enter(&access);
	n = kappa_statement_read(&stream_plans, values, NULL, 0);
	for (uint64 i = 0; i < n; i++)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		*names = lappend(*names, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		*plans = lappend(*plans, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		MemoryContextSwitchTo(spi);
	}
	kappa_catalog_leave(&access);
}
