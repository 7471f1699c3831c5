/*-------------------------------------------------------------------------
 *
 * view_rules.c
 *	  What a view's code may do: run only what its owner may run, and
 *	  depend on its events alone.
 *
 * kappa_view_check_rights checks that a view's owner may run everything
 * the view runs (Postgres checks EXECUTE only when a plan runs, and a
 * view's query never runs as such): at creation, when a worker loads the
 * view, and at every flush, so that a right revoked later stops the view.
 * kappa_view_check_deterministic refuses what a replay would not
 * reproduce: volatile functions, and the functions and keywords that read
 * the clock or the session.
 *
 * src/engine/view_rules.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "agg/aggfuncs.h"
#include "engine/compile.h"
#include "engine/lookup.h"
#include "kappa_catalog/stream.h"

/* What kappa_view_check_rights checks against. */
typedef struct RightsContext
{
	Oid			owner;
} RightsContext;

/* The owner of a function. */
static Oid
function_owner(Oid funcid)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", funcid);
	owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
	ReleaseSysCache(tuple);
	return owner;
}

/* EXECUTE on a function, for the role in context; the error names it. */
static bool
check_function_right(Oid funcid, void *context)
{
	RightsContext *rights = context;

	if (pg_proc_aclcheck(funcid, rights->owner, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", format_procedure(funcid)),
				 errdetail("A kappa view runs as its owner, role \"%s\", which lacks EXECUTE on it.",
						   GetUserNameFromId(rights->owner, false))));
	return false;
}

/* USAGE on a type, for the role in context. */
static void
check_type_right(Oid typid, RightsContext *rights)
{
	if (OidIsValid(typid) && pg_type_aclcheck(typid, rights->owner, ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for type %s", format_type_be(typid)),
				 errdetail("A kappa view runs as its owner, role \"%s\", which lacks USAGE on it.",
						   GetUserNameFromId(rights->owner, false))));
}

/*
 * Walk a view's query: every function and operator it calls, and the
 * support functions of its aggregates (as nodeAgg.c checks them: against
 * the aggregate's owner), and the type of every expression.
 */
static bool
check_rights_walker(Node *node, RightsContext *rights)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, check_rights_walker, rights, 0);
	if (IsA(node, Aggref))
	{
		Aggref	   *aggref = (Aggref *) node;
		HeapTuple	tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
		Form_pg_aggregate agg;
		RightsContext agg_owner;
		Oid			support[5];

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for aggregate %u", aggref->aggfnoid);
		agg = (Form_pg_aggregate) GETSTRUCT(tuple);
		support[0] = agg->aggtransfn;
		support[1] = agg->aggcombinefn;
		support[2] = agg->aggfinalfn;
		support[3] = agg->aggserialfn;
		support[4] = agg->aggdeserialfn;
		ReleaseSysCache(tuple);
		agg_owner.owner = function_owner(aggref->aggfnoid);
		for (int i = 0; i < (int) lengthof(support); i++)
		{
			if (OidIsValid(support[i]))
				(void) check_function_right(support[i], &agg_owner);
		}
		check_type_right(aggref->aggtranstype, rights);
	}
	(void) check_functions_in_node(node, check_function_right, rights);
	/* the type of every expression; the query's other nodes have none */
	if (!IsA(node, TargetEntry) && !IsA(node, FromExpr) && !IsA(node, JoinExpr) &&
		!IsA(node, RangeTblRef) && !IsA(node, RangeTblFunction) && !IsA(node, List))
		check_type_right(exprType(node), rights);
	return expression_tree_walker(node, check_rights_walker, rights);
}

/*
 * Check that a view's owner may run everything the view runs: EXECUTE on
 * every function, operator and aggregate, USAGE on every type (42501
 * otherwise).  Postgres checks EXECUTE only when a plan is executed, and a
 * view's query is never executed as such; kappa checks at creation, when
 * a worker loads the view, and at every flush, so that a right revoked
 * later stops the view.
 */
void
kappa_view_check_rights(Query *query, Oid owner)
{
	RightsContext rights = {.owner = owner};

	(void) query_tree_walker(query, check_rights_walker, &rights, 0);
	kappa_lookup_check_rights(query, owner);
}

/*
 * Functions that are not volatile but still depend on more than the event:
 * the time of the transaction or statement (a replay runs later than the
 * worker did), or the session that runs them (a worker's session is not
 * the one that replays).  Stable functions that depend only on settings,
 * such as to_char or the timestamptz output, stay allowed: kappa pins
 * TimeZone, DateStyle and IntervalStyle wherever a view is evaluated.
 */
static const Oid clock_functions[] = {
	F_NOW, F_TRANSACTION_TIMESTAMP, F_STATEMENT_TIMESTAMP,
	F_AGE_TIMESTAMP, F_AGE_TIMESTAMPTZ,	/* age(x) is age(current_date, x) */
	F_PG_CONF_LOAD_TIME, F_PG_POSTMASTER_START_TIME
};
static const Oid session_functions[] = {
	F_SESSION_USER, F_CURRENT_SCHEMA, F_CURRENT_SCHEMAS,
	F_CURRENT_SETTING_TEXT, F_CURRENT_SETTING_TEXT_BOOL, F_PG_BACKEND_PID,
	F_PG_TRIGGER_DEPTH, F_INET_CLIENT_ADDR, F_INET_CLIENT_PORT,
	F_INET_SERVER_ADDR, F_INET_SERVER_PORT, F_TXID_CURRENT,
	F_TXID_CURRENT_IF_ASSIGNED, F_TXID_CURRENT_SNAPSHOT, F_PG_CURRENT_XACT_ID,
	F_PG_CURRENT_XACT_ID_IF_ASSIGNED
};

/* The clause kappa_view_check_deterministic is walking, for its messages. */
typedef struct DeterminismContext
{
	const char *clause;
} DeterminismContext;

/* Whether funcid is in a list of function OIDs. */
static bool
function_in(Oid funcid, const Oid *list, int n)
{
	for (int i = 0; i < n; i++)
		if (list[i] == funcid)
			return true;
	return false;
}

/*
 * Refuse one thing that would make a view's result depend on when or
 * where it is computed rather than on its events alone.  what names it (a
 * function with its argument types, or the SQL keyword), why says what it
 * depends on.
 */
static void
refuse_nondeterministic(const char *what, const char *why, const char *clause)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s cannot be used in %s of a kappa view", what, clause),
			 errdetail("%s", why),
			 errhint("A kappa view must give the same result when it is replayed from the stream's log, so it may depend on the event alone. "
					 "For the time, use the event's time column (or kafka_timestamp), not the clock.")));
}

/* check_functions_in_node's callback: refuse a function, by name. */
static bool
refuse_function(Oid funcid, void *context)
{
	DeterminismContext *det = context;
	const char *why = NULL;

	if (func_volatile(funcid) == PROVOLATILE_VOLATILE)
		why = "It is volatile: it may give another result each time it is called.";
	else if (function_in(funcid, clock_functions, lengthof(clock_functions)))
		why = "It reads the time of the current transaction or statement.";
	else if (function_in(funcid, session_functions, lengthof(session_functions)))
		why = "Its result depends on the session that runs it.";
	if (why)
		refuse_nondeterministic(psprintf("function %s", format_procedure(funcid)), why,
								det->clause);
	return false;
}

/*
 * Walk an expression for what kappa_view_check_deterministic refuses:
 * SQL's time keywords and SESSION_USER and CURRENT_SCHEMA (CURRENT_USER,
 * CURRENT_ROLE and USER stay allowed: a view's code runs as its owner,
 * live and in a replay, and CURRENT_CATALOG is the database), sequences,
 * and functions.
 */
static bool
determinism_walker(Node *node, DeterminismContext *det)
{
	if (node == NULL)
		return false;
	if (IsA(node, SQLValueFunction))
	{
		SQLValueFunction *svf = (SQLValueFunction *) node;
		const char *keyword = NULL;
		const char *why = "It reads the time of the current transaction.";

		switch (svf->op)
		{
			case SVFOP_CURRENT_DATE:
				keyword = "CURRENT_DATE";
				break;
			case SVFOP_CURRENT_TIME:
			case SVFOP_CURRENT_TIME_N:
				keyword = "CURRENT_TIME";
				break;
			case SVFOP_CURRENT_TIMESTAMP:
			case SVFOP_CURRENT_TIMESTAMP_N:
				keyword = "CURRENT_TIMESTAMP";
				break;
			case SVFOP_LOCALTIME:
			case SVFOP_LOCALTIME_N:
				keyword = "LOCALTIME";
				break;
			case SVFOP_LOCALTIMESTAMP:
			case SVFOP_LOCALTIMESTAMP_N:
				keyword = "LOCALTIMESTAMP";
				break;
			case SVFOP_SESSION_USER:
				keyword = "SESSION_USER";
				why = "Its result depends on the session that runs it: a view's worker and a replay run in different sessions.";
				break;
			case SVFOP_CURRENT_SCHEMA:
				keyword = "CURRENT_SCHEMA";
				why = "Its result depends on the search_path of the session that runs it.";
				break;
			case SVFOP_CURRENT_ROLE:
			case SVFOP_CURRENT_USER:
			case SVFOP_USER:
			case SVFOP_CURRENT_CATALOG:
				break;
		}
		if (keyword)
			refuse_nondeterministic(keyword, why, det->clause);
		return false;
	}
	if (IsA(node, NextValueExpr))
		refuse_nondeterministic("a sequence", "It gives another value each time it is read.",
								det->clause);
	(void) check_functions_in_node(node, refuse_function, det);
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, determinism_walker, det, 0);
	return expression_tree_walker(node, determinism_walker, det);
}

/*
 * Refuse what would make a view irreproducible: volatile functions, and
 * the functions and keywords that read the clock or the session (0A000,
 * naming it and the clause).  A replay must reach the same view as the
 * worker, from the same events, at another time and in another session.
 * kappa cannot see into a function's body, except a SQL function's once
 * the planner has inlined it: compile checks the planned expressions too.
 */
void
kappa_view_check_deterministic(Node *node, const char *clause)
{
	DeterminismContext det = {.clause = clause};

	(void) determinism_walker(node, &det);
}
