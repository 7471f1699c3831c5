/*-------------------------------------------------------------------------
 *
 * ddl.c
 *	  Plain DDL on kappa's relations: an sql_drop event trigger that keeps
 *	  kappa's catalog in line with what DROP removed.
 *
 * A kappa view is a row in kappa.views, a rows table kappa.view_<id>, and
 * a user-facing view over that table (see view.c); a stream has a relation
 * kappa.stream_<id> its views' queries are resolved against.  Plain DDL
 * can remove the relations without kappa's catalog knowing, which would
 * leave a view that kappa_drop_view cannot find and whose name cannot be
 * used again.  The event trigger kappa_sql_drop (created by the extension
 * script) runs at the end of every command that drops objects and decides
 * by what the command dropped:
 *
 * - a kappa view's user-facing view (DROP VIEW, DROP SCHEMA ... CASCADE,
 *   DROP OWNED BY, or any command that cascades to it): the user meant
 *   the view to go, so the view goes as kappa_drop_view would drop it:
 *   its catalog row first (which keeps its worker's next flush away from
 *   it), then its rows table, state, marks and late events, and, for the
 *   current version, the versions kept beside it;
 * - its rows table under DROP OWNED BY: the same, since the owner's views
 *   are meant to go with everything else of the owner's;
 * - its rows table under any other command (DROP TABLE kappa.view_<id>
 *   CASCADE), or a column of it: refused, with a hint to use
 *   kappa_drop_view.  The table is kappa's own, and dropping it before the
 *   catalog row takes locks in the order a flush takes them reversed;
 * - a stream's relation, when the stream has no views left (as under
 *   pg_restore --clean, which drops the views first): the stream goes, as
 *   kappa_drop_stream would drop it;
 * - a stream's relation while views are defined over it, or a column of
 *   it: refused, with a hint to use kappa_drop_stream.
 *
 * kappa's own DROPs run either after the catalog rows they concern are
 * deleted (kappa_drop_view, kappa_drop_stream, the end of a swap), which
 * leaves the trigger nothing to do, or through kappa_ddl_own_execute
 * (kappa_replay's swap and kappa_promote drop a user-facing view whose
 * catalog row stays), which the trigger lets through.  The trigger's own
 * DROPs are let through the same way.
 *
 * Rights: the catalog statements, and the DROPs of what the user's
 * command left of a view (its rows table, the versions beside it), run as
 * the catalog (catalog.c).  Whoever may drop a kappa view's user-facing
 * view (its owner, the owner of its schema, a superuser) may thus remove
 * the kappa view: Postgres already lets them destroy it.
 *
 * Locking: the catalog rows are deleted after the user's command locked
 * what it drops.  For a user-facing view that is harmless (no worker locks
 * it); DROP OWNED BY locks the rows table first, which can deadlock with
 * a flush of the same view, and then one of the two is cancelled and may
 * simply run again.
 *
 * A trigger disabled (ALTER EVENT TRIGGER kappa_sql_drop DISABLE, or
 * session_replication_role = replica) leaves catalog rows without
 * relations; kappa_drop_view and kappa_drop_stream remove them.
 *
 * src/kappa_catalog/ddl.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/ddl.h"
#include "kappa_catalog/statement.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"

PG_FUNCTION_INFO_V1(kappa_ddl_sql_drop);

/* A kappa view (or version) one of whose relations the command dropped. */
typedef struct DroppedPart
{
	int32		view_id;
	char	   *view;			/* qualified and quoted */
	char	   *what;			/* "view", "rows" or "column" */
	char	   *identity;		/* the dropped object's type and identity */
} DroppedPart;

/* Whether kappa is running a DROP of its own (kappa_ddl_own_execute). */
static bool own_ddl = false;

static void handle_stream_drops(void);
static List *dropped_view_parts(void);
static void forget_views(List *view_ids);

/*
 * Run a utility statement of kappa's own through SPI (connected by the
 * caller), letting the event trigger pass over what it drops.  Returns
 * SPI_execute's result.
 */
int
kappa_ddl_own_execute(const char *sql)
{
	bool		save = own_ddl;
	volatile int rc = 0;

	own_ddl = true;
	PG_TRY();
	{
		rc = SPI_execute(sql, false, 0);
	}
	PG_FINALLY();
	{
		own_ddl = save;
	}
	PG_END_TRY();
	return rc;
}

/*
 * The function of the event trigger kappa_sql_drop: refuse or follow up
 * the dropping of kappa's relations by plain DDL (see the banner).
 */
Datum
kappa_ddl_sql_drop(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Oid			kappa_nsp;
	List	   *parts;
	List	   *view_ids = NIL;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "kappa_ddl_sql_drop: not fired by the event trigger manager");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (own_ddl)
		PG_RETURN_VOID();
	/* DROP EXTENSION kappa takes the catalog with it: nothing to keep */
	kappa_nsp = get_namespace_oid("kappa", true);
	if (!OidIsValid(kappa_nsp) ||
		!OidIsValid(get_relname_relid("views", kappa_nsp)) ||
		!OidIsValid(get_relname_relid("streams", kappa_nsp)))
		PG_RETURN_VOID();

	handle_stream_drops();
	parts = dropped_view_parts();
	foreach(lc, parts)
	{
		DroppedPart *part = lfirst(lc);

		if (strcmp(part->what, "column") == 0 ||
			(strcmp(part->what, "rows") == 0 && trigdata->tag != CMDTAG_DROP_OWNED))
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop %s because kappa view %s uses it", part->identity, part->view),
					 errdetail("The table holds the view's rows, which its stream's worker writes."),
					 errhint("Use kappa_drop_view(%s) to drop the view.",
							 quote_literal_cstr(part->view))));
		view_ids = list_append_unique_int(view_ids, part->view_id);
	}
	if (view_ids == NIL)
		PG_RETURN_VOID();

	own_ddl = true;
	PG_TRY();
	{
		forget_views(view_ids);
	}
	PG_FINALLY();
	{
		own_ddl = false;
	}
	PG_END_TRY();
	/* as kappa_drop_view: a stream stopped for its views' memory may run again */
	kappa_wake_launcher_on_commit();
	PG_RETURN_VOID();
}

/*
 * A command dropped a stream's relation, or a column of it.  The whole
 * relation of a stream without views (pg_restore --clean drops the views
 * first, and the trigger drops the kappa views with them): the stream
 * goes, as kappa_drop_stream would drop it.  Otherwise refused: the
 * stream's views are defined over the relation.
 */
static void
handle_stream_drops(void)
{
	static KappaStatement dropped_streams =
		KAPPA_STATEMENT("SELECT s.name, d.object_type || ' ' || d.object_identity, "
						"  d.objsubid = 0 AND NOT EXISTS (SELECT FROM kappa.views v WHERE v.stream_id = s.stream_id) "
						"FROM pg_event_trigger_dropped_objects() d JOIN kappa.streams s "
						"  ON d.classid = 'pg_class'::regclass AND d.schema_name = 'kappa' AND CASE "
						"    WHEN d.objsubid <> 0 THEN d.objid = to_regclass(format('kappa.%I', 'stream_' || s.stream_id)) "
						"    ELSE d.object_type = 'table' AND d.object_name = 'stream_' || s.stream_id END "
						"ORDER BY 3, s.stream_id", NULL);
	static KappaStatement delete_dropped_streams =
		KAPPA_STATEMENT("DELETE FROM kappa.streams s USING pg_event_trigger_dropped_objects() d "
						"WHERE d.classid = 'pg_class'::regclass AND d.schema_name = 'kappa' "
						"  AND d.objsubid = 0 AND d.object_type = 'table' "
						"  AND d.object_name = 'stream_' || s.stream_id", NULL);
	KappaCatalogAccess access;
	char	   *stream = NULL;
	char	   *identity = NULL;
	bool		dropped = false;
	MemoryContext caller = CurrentMemoryContext;
	uint64		n;

	kappa_catalog_enter(&access);
	n = kappa_statement_read(&dropped_streams, NULL, NULL, 0);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull)))
		{
			dropped = true;
			continue;
		}
		stream = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		identity = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		break;
	}
	if (stream == NULL && dropped)
		kappa_statement_run(&delete_dropped_streams, NULL, NULL, SPI_OK_DELETE, 0);
	kappa_catalog_leave(&access);
	if (stream)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop %s because kappa stream \"%s\" uses it", identity, stream),
				 errdetail("The stream's views are defined over this relation."),
				 errhint("Use kappa_drop_stream(%s) to drop the stream.", quote_literal_cstr(stream))));
	if (dropped)
		kappa_wake_launcher_on_commit();
}

/*
 * What the command dropped of kappa views: per view and dropped object,
 * whether it was the user-facing view ("view"), the rows table ("rows") or
 * a column of it ("column"), in the caller's memory, by view id.
 */
static List *
dropped_view_parts(void)
{
	static KappaStatement dropped_parts =
		KAPPA_STATEMENT("SELECT v.view_id, format('%I.%I', v.schema_name, v.view_name), "
						"  CASE WHEN d.objsubid <> 0 THEN 'column' WHEN d.object_type = 'table' THEN 'rows' "
						"    ELSE 'view' END, d.object_type || ' ' || d.object_identity "
						"FROM pg_event_trigger_dropped_objects() d JOIN kappa.views v "
						"  ON d.classid = 'pg_class'::regclass AND CASE "
						"    WHEN d.objsubid <> 0 THEN d.objid = to_regclass(format('kappa.%I', 'view_' || v.view_id)) "
						"    WHEN d.object_type = 'table' THEN d.schema_name = 'kappa' "
						"      AND d.object_name = 'view_' || v.view_id "
						"    ELSE d.object_type = 'view' AND d.schema_name = v.schema_name "
						"      AND d.object_name = v.view_name END "
						"ORDER BY v.view_id", NULL);
	KappaCatalogAccess access;
	List	   *parts = NIL;
	MemoryContext caller = CurrentMemoryContext;
	uint64		n;

	kappa_catalog_enter(&access);
	n = kappa_statement_read(&dropped_parts, NULL, NULL, 0);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(caller);
		DroppedPart *part = palloc(sizeof(DroppedPart));
		bool		isnull;

		part->view_id = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
		part->view = SPI_getvalue(row, desc, 2);
		part->what = SPI_getvalue(row, desc, 3);
		part->identity = SPI_getvalue(row, desc, 4);
		parts = lappend(parts, part);
		MemoryContextSwitchTo(spi);
	}
	kappa_catalog_leave(&access);
	return parts;
}

/*
 * Remove the kappa views a command dropped part of, with the versions kept
 * beside each current one, as kappa_drop_view removes them: catalog rows
 * first, then what is left of their relations, state, marks and late
 * events.
 */
static void
forget_views(List *view_ids)
{
	static KappaStatement delete_views =
		KAPPA_STATEMENT("DELETE FROM kappa.views v WHERE v.view_id = ANY ($1) "
						"OR EXISTS (SELECT FROM kappa.views c WHERE c.view_id = ANY ($1) "
						"  AND c.base_name IS NULL AND v.schema_name = c.schema_name "
						"  AND v.base_name = c.view_name) "
						"RETURNING v.view_id, v.schema_name, v.view_name", "int4[]");
	KappaCatalogAccess access;
	MemoryContext caller = CurrentMemoryContext;
	Datum	   *ids = palloc(sizeof(Datum) * list_length(view_ids));
	Datum		values[1];
	uint64		n;
	List	   *forgotten = NIL;
	List	   *relations = NIL;
	ListCell   *lc;
	ListCell   *lc2;

	foreach(lc, view_ids)
		ids[foreach_current_index(lc)] = Int32GetDatum(lfirst_int(lc));
	values[0] = PointerGetDatum(construct_array(ids, list_length(view_ids), INT4OID,
												sizeof(int32), true, TYPALIGN_INT));

	kappa_catalog_enter(&access);
	n = kappa_statement_run(&delete_views, values, NULL, SPI_OK_DELETE_RETURNING, 0);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext spi = MemoryContextSwitchTo(caller);
		bool		isnull;

		forgotten = lappend_int(forgotten, DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull)));
		relations = lappend(relations, makeRangeVar(SPI_getvalue(row, desc, 2),
													SPI_getvalue(row, desc, 3), -1));
		MemoryContextSwitchTo(spi);
	}
	kappa_catalog_leave(&access);

	forboth(lc, forgotten, lc2, relations)
	{
		int32		view_id = lfirst_int(lc);
		RangeVar   *rv = lfirst(lc2);
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);

		/* a version's user-facing view the command left (the current one went) */
		if (OidIsValid(relid) && kappa_view_is_user_facing(relid, view_id))
		{
			kappa_catalog_enter(&access);
			kappa_catalog_exec(psprintf("DROP VIEW %s",
										quote_qualified_identifier(rv->schemaname, rv->relname)),
							   SPI_OK_UTILITY);
			kappa_catalog_leave(&access);
		}
		kappa_view_forget(view_id);
	}
}
