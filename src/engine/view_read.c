/*-------------------------------------------------------------------------
 *
 * view_read.c
 *	  How a view's rows are read: the user-facing view's query, and the
 *	  column that holds a row's window.
 *
 * The rows table kappa.view_<id> keeps every group of a view.  A view
 * with HAVING or ORDER BY ... LIMIT stores their inputs in hidden columns,
 * and its user-facing view filters and ranks the groups when it is read
 * (kappa_view_read_query), so what a reader sees is exact however later
 * events move groups in and out.  Every path that makes the user-facing
 * view (creation, a replay's swap, a promotion) builds its query here,
 * from the view's compiled plan, as do the sinks that send final rows.
 *
 * src/engine/view_read.c
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

#include "engine/compile.h"
#include "engine/portable.h"
#include "engine/view_read.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"
#include "kappa_catalog/view_plan.h"

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
	KappaOwnerAccess as_owner;
	KappaStream *stream;
	KappaViewSpec *spec;
	Query	   *query;
	char	   *plan;
	char	   *stored_plan;
	Oid			owner;

	plan = kappa_view_localize(view_id);
	stored_plan = kappa_views_plan(view_id, &owner, false);
	if (plan == NULL)
		plan = stored_plan;

	query = kappa_stored_view(plan, &stream);
	kappa_owner_enter(&as_owner, owner);
	spec = kappa_compile_view(query);
	kappa_owner_leave(&as_owner);
	if (nvisible)
		*nvisible = spec->nvisible;
	return kappa_view_read_query(spec, kappa_view_rows_table(view_id));
}
