/*-------------------------------------------------------------------------
 *
 * portable.c
 *	  Views that survive pg_dump and pg_upgrade: a stored plan's origin,
 *	  and the portable definition another database rebuilds it from.
 *
 * kappa.views.plan is the analysed Query as a node string, bound by OID to
 * the functions, operators, types and relations of the database that
 * analysed it: exact and fast to load, but meaningless in another
 * database (a dump restored elsewhere, a cluster after pg_upgrade, where
 * functions get new OIDs), where it would call whatever now has those
 * OIDs, or nothing ("cache lookup failed for function").  So each plan
 * is stored with
 *
 * - its origin, kappa_origin_text(): the cluster's system identifier, the
 *   database's OID, the extension's OID and the catalog version.  A
 *   restore into another database or cluster changes the first two, a
 *   restore into the same database after DROP EXTENSION the third, a
 *   pg_upgrade the last (and the node string format may change with it),
 *   so a plan is used only where it was written: the origin is compared
 *   before the node string is read.  A physical copy (a standby, a base
 *   backup) keeps all four, and its OIDs with them.
 *
 * - its definition: the same Query deparsed by Postgres (pg_get_querydef)
 *   with search_path pinned to pg_catalog, so that every other name in it
 *   is schema-qualified.  The stream appears as its relation,
 *   kappa.stream_<id> aliased by the stream's name; stream ids are kept by
 *   a dump (kappa.streams is dumped with them).
 *
 * Views of kappa 0.1 had a plan and no definition: kappa_upgrade_views,
 * called by the update script, deparses one from the plan, and the script
 * marks the plan as of another origin, so that it is analysed again.
 *
 * kappa_view_localize, called wherever a stored plan is loaded (a worker
 * loading a view, kappa_replay), finds a plan of another origin, analyses
 * the definition again as the view's owner with kappa's fixed settings,
 * as at creation, compiles and checks it, and stores the new plan and
 * origin.  A definition that no longer analyses (a function it calls is
 * gone) is an error of the view, which the worker marks failed.
 *
 * Rights: catalog statements between kappa_catalog_enter and leave; the
 * analysis, compilation and checks as the owner (catalog.c), with the
 * stream loaded before, so that no catalog section opens inside the
 * owner's.
 *
 * Locking: the plan is updated only if its origin is still foreign, so
 * workers of the same stream that localize a view together store the
 * same plan once (the second waits on the first's row lock, then finds
 * nothing to do).
 *
 * src/engine/portable.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/catversion.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/ruleutils.h"

#include "engine/compile.h"
#include "engine/portable.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"
#include "kappa_catalog/view_plan.h"
#include "subxact.h"

PG_FUNCTION_INFO_V1(kappa_origin);
PG_FUNCTION_INFO_V1(kappa_upgrade_views);

static void require_unique_index(int32 view_id, const char *name);

/*
 * This database as kappa tells databases apart: system identifier,
 * database OID, the extension's OID (a DROP and CREATE EXTENSION gives
 * kappa's own functions new OIDs), catalog version.
 */
char *
kappa_origin_text(void)
{
	return psprintf(UINT64_FORMAT "/%u/%u/%u", GetSystemIdentifier(), MyDatabaseId,
					get_extension_oid("kappa", false), (unsigned) CATALOG_VERSION_NO);
}

/* kappa.origin() returns kappa_origin_text(). */
Datum
kappa_origin(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(kappa_origin_text()));
}

/*
 * A view's analysed query deparsed with every name but pg_catalog's
 * qualified: what kappa_analyze_definition reads back in any database.
 * As the owner: deparsing calls the output functions of the query's
 * constants, which may be the owner's.
 */
char *
kappa_view_definition(Query *query, Oid owner)
{
	int			nestlevel = kappa_settings_enter();
	KappaOwnerAccess as_owner;
	char	   *text;

	kappa_owner_enter(&as_owner, owner);
	text = pg_get_querydef(query, false);
	kappa_owner_leave(&as_owner);
	kappa_settings_leave(nestlevel);
	return text;
}

/*
 * Refuse, for now, to load a restored view whose rows table has no unique
 * index yet: a restore creates indexes after all data, including the
 * dump's sentinel, so the view's worker may start in between, and could
 * not upsert its rows.  The error is of the kind a worker retries (with
 * backoff) rather than one that fails the view.  Once the index is there,
 * so are the table's rows (pg_restore loads a table's data before its
 * indexes).
 */
static void
require_unique_index(int32 view_id, const char *name)
{
	KappaCatalogAccess access;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	bool		found;

	values[0] = CStringGetTextDatum(kappa_view_rows_table(view_id));
	kappa_catalog_enter(&access);
	if (SPI_execute_with_args("SELECT EXISTS (SELECT FROM pg_index "
							  "WHERE indrelid = $1::regclass AND indisunique AND indisvalid)",
							  1, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_index");
	found = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	kappa_catalog_leave(&access);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_CANNOT_CONNECT_NOW),
				 errmsg("kappa view %s is not completely restored yet", name),
				 errdetail("Its rows table %s has no unique index, which a restore creates after the data.",
						   kappa_view_rows_table(view_id)),
				 errhint("If no restore is running, create the index again, or drop and create the view.")));
}

/*
 * Make a view's stored plan this database's: if its origin is another's,
 * analyse its definition again, as the owner, and store the new plan.
 * Returns the new plan, or NULL if the stored one is this database's (or
 * the view is gone).
 */
char *
kappa_view_localize(int32 view_id)
{
	char	   *origin = kappa_origin_text();
	KappaOwnerAccess as_owner;
	KappaViewForeign view;
	char	   *definition;
	char	   *name;
	Oid			owner;
	KappaStream *stream;
	Query	   *query;
	KappaViewSpec *spec;
	char	   *plan;
	int			nestlevel;

	if (!kappa_views_foreign(view_id, origin, &view))
		return NULL;
	definition = view.definition;
	name = view.name;
	owner = view.owner;

	stream = kappa_stream_load_by_id(view.stream_id);
	if (stream == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the stream of the view no longer exists")));

	/*
	 * As at creation (kappa_view_define): kappa's settings, the same
	 * compilation and checks, and the owner's rights, since analysis may
	 * call the input functions of the owner's types.
	 */
	nestlevel = kappa_settings_enter();
	kappa_owner_enter(&as_owner, owner);
	query = kappa_analyze_definition(definition, stream);
	spec = kappa_compile_view(copyObject(query));
	kappa_view_check_rights(query, owner);
	kappa_owner_leave(&as_owner);
	kappa_settings_leave(nestlevel);
	plan = nodeToString(query);
	if (spec->unique_columns != NIL)
		require_unique_index(view_id, name);

	kappa_views_store_plan(view_id, plan, origin);
	ereport(LOG,
			(errmsg("kappa view %s: plan rebuilt from its definition", name),
			 errdetail("The stored plan was written by another database (a restored dump or an upgrade).")));
	return plan;
}

/*
 * kappa.upgrade_views(), called once by the update script from 0.1: give
 * every view the portable definition 0.1 did not store, deparsed from its
 * stored plan as kappa_create_view deparses a new one, and wake the
 * launcher when the update commits, so that the streams' workers start at
 * once.  The script marks the plans as of another origin, so that each
 * worker analyses the definition again with this library's rules
 * (kappa_view_localize) before it runs the view.
 */
Datum
kappa_upgrade_views(PG_FUNCTION_ARGS)
{
	KappaCatalogAccess access;
	ListCell   *lc;

	if (!creating_extension)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kappa.upgrade_views() may only be called by ALTER EXTENSION kappa UPDATE")));
	kappa_catalog_enter(&access);
	foreach(lc, kappa_views_all_plans())
	{
		KappaViewPlan *view = lfirst(lc);
		char	   *plan = view->plan;
		Oid			owner = view->owner;
		char	   *definition;
		KappaSubxact sub;

		/*
		 * A plan that no longer deparses (0.1 had no event trigger: its
		 * stream's relation may have been dropped by hand) must not stop
		 * the update: the view gets an empty definition, which its worker
		 * cannot analyse, so it marks the view failed.
		 */
		kappa_subxact_begin(&sub);
		PG_TRY();
		{
			definition = kappa_view_definition(castNode(Query, stringToNode(plan)), owner);
			kappa_subxact_commit(&sub);
		}
		PG_CATCH();
		{
			ErrorData  *edata = kappa_subxact_abort(&sub);

			ereport(WARNING,
					(errmsg("kappa view %s: its plan could not be deparsed: %s",
							view->name, edata->message),
					 errdetail("The view's worker will mark it failed."),
					 errhint("Drop the view (kappa_drop_view) and create it again.")));
			FreeErrorData(edata);
			definition = "";
		}
		PG_END_TRY();
		kappa_views_set_definition(view->view_id, definition);
	}
	kappa_catalog_leave(&access);
	kappa_wake_launcher_on_commit();
	PG_RETURN_VOID();
}
