/*-------------------------------------------------------------------------
 *
 * compile.c
 *	  From a view's SELECT to what its worker runs.
 *
 * A view is one SELECT over one stream.  Postgres itself parses and
 * analyses it: every stream has a relation of its columns,
 * kappa.stream_<id>, which is empty and never written, and the stream's
 * name in FROM is pointed at it before analysis, with the stream's name as
 * alias.  So names, types, operators, functions and aggregates resolve as
 * in any query, with Postgres's own errors, and the same SELECT over a
 * table of the same events is the batch equivalent of the view.
 *
 * kappa_compile_view then checks the analysed Query's shape, naming any
 * construct a view cannot have (among them whatever a replay would not
 * reproduce: volatile functions, the clock, the session; see
 * view_rules.c; and aggregates it cannot merge: compile_aggs.c), and
 * takes it apart into a KappaViewSpec:
 * the WHERE clause, the window, the GROUP BY keys, the aggregates, and the
 * select list rewritten over a "group row" (keys, window bounds, aggregate
 * results), followed by the hidden columns that HAVING and ORDER BY ...
 * LIMIT need when the view is read (compile_read_filter).  The analysed
 * Query is what kappa.views stores (as a node string, as Postgres stores
 * its own views), so the worker runs exactly what was checked, bound to
 * the same objects.  Beside it kappa.views keeps the query deparsed with
 * every name qualified, which another database (a restored dump) analyses
 * again (portable.c).
 *
 * src/engine/compile.c
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

/* What the select-list rewrite needs to know. */
typedef struct GroupRowContext
{
	List	   *keys;			/* Expr */
	List	   *aggrefs;		/* Aggref */
	Index		window_rti;
	int			nkeys;
} GroupRowContext;

static Query *analyze_view(const char *query_text, KappaStream **stream);
static void point_at_stream(SelectStmt *select, KappaStream **stream);
static void check_shape(Query *query);
static KappaWindowKind window_kind(Oid funcid);
static void compile_window(KappaViewSpec *spec, RangeTblEntry *rte);
static int64 const_interval_us(Node *arg, const char *what);
static bool collect_aggrefs(Node *node, List **aggrefs);
static Node *to_group_row(Node *node, GroupRowContext *context);
static List *compile_read_filter(KappaViewSpec *spec, Query *query, List *key_tles);
static void check_not_reserved(const char *name);

/*
 * The stream of the stored definition being analysed (see portable.c),
 * whose FROM names the stream's relation kappa.stream_<id> rather than the
 * stream; NULL when a user's query is analysed.
 */
static KappaStream *definition_stream = NULL;

/*
 * Parse and analyse a view's query, whose FROM names a stream; return the
 * Query and the stream.
 */
Query *
kappa_analyze_view(const char *query_text, KappaStream **stream)
{
	definition_stream = NULL;
	return analyze_view(query_text, stream);
}

/*
 * Parse and analyse a view's stored definition (kappa.views.definition:
 * the analysed query deparsed, every name qualified, FROM naming
 * kappa.stream_<id>), which must read the given stream, loaded by the
 * caller: this may run as the view's owner, where no catalog statement
 * may.
 */
Query *
kappa_analyze_definition(const char *definition, KappaStream *stream)
{
	Query	   *volatile query = NULL;
	KappaStream *found;

	definition_stream = stream;
	PG_TRY();
	{
		query = analyze_view(definition, &found);
	}
	PG_FINALLY();
	{
		definition_stream = NULL;
	}
	PG_END_TRY();
	return query;
}

/* Parse and analyse a view's query or stored definition. */
static Query *
analyze_view(const char *query_text, KappaStream **stream)
{
	List	   *raw = raw_parser(query_text, RAW_PARSE_DEFAULT);
	RawStmt    *stmt;
	Query	   *query;

	if (list_length(raw) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("a kappa view is defined by exactly one SELECT statement")));
	stmt = linitial_node(RawStmt, raw);
	if (!IsA(stmt->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("a kappa view is defined by a SELECT statement")));
	point_at_stream((SelectStmt *) stmt->stmt, stream);
	query = parse_analyze_fixedparams(stmt, query_text, NULL, 0, NULL);
	kappa_view_rewrite_aggregates((Node *) query->targetList);
	return query;
}

/*
 * A view's query as kappa.views stores it (the analysed Query, as a node
 * string), and its stream.
 */
Query *
kappa_stored_view(const char *plan, KappaStream **stream)
{
	Query	   *query = (Query *) stringToNode(plan);
	RangeTblEntry *rte = linitial_node(RangeTblEntry, query->rtable);
	char	   *relname = get_rel_name(rte->relid);
	int32		stream_id;

	if (relname == NULL || sscanf(relname, "stream_%d", &stream_id) != 1 ||
		(*stream = kappa_stream_load_by_id(stream_id)) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the stream of the view no longer exists")));
	return query;
}

/*
 * Find the stream in FROM and point it at the stream's relation, keeping
 * the stream's name as alias so that "telemetry.deviceId" still resolves.
 */
static void
point_at_stream(SelectStmt *select, KappaStream **stream)
{
	ListCell   *lc;
	RangeVar   *found = NULL;

	if (select->op != SETOP_NONE)
		kappa_view_unsupported("UNION, INTERSECT and EXCEPT", NULL);
	if (select->withClause)
		kappa_view_unsupported("WITH", NULL);
	if (select->valuesLists)
		kappa_view_unsupported("VALUES", NULL);
	foreach(lc, select->fromClause)
	{
		Node	   *item = lfirst(lc);

		/* in a join, the stream comes first (lookup.c) */
		while (IsA(item, JoinExpr))
			item = ((JoinExpr *) item)->larg;
		if (IsA(item, RangeSubselect))
			kappa_view_unsupported("subqueries in FROM", NULL);
		if (IsA(item, RangeVar))
		{
			if (found)
				kappa_view_unsupported("tables in FROM beside the stream",
									   "Join a table with the stream by key: FROM stream s JOIN table t ON t.id = s.column.");
			found = (RangeVar *) item;
		}
	}
	if (found == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("a kappa view must read a stream in FROM"),
				 errhint("Write FROM stream_name, kappa_tumble(event_time, '5 minutes') w.")));
	if (definition_stream)
	{
		/* kappa.stream_<id> AS <stream name>, as portable.c deparsed it */
		if (found->catalogname != NULL || found->schemaname == NULL ||
			strcmp(found->schemaname, "kappa") != 0 ||
			strcmp(found->relname, kappa_stream_relation_name(definition_stream->id)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("the stored definition of the view does not read its stream \"%s\"",
							definition_stream->name),
					 errdetail("It reads \"%s\".", found->relname)));
		*stream = definition_stream;
		if (found->alias == NULL)
			found->alias = makeAlias(definition_stream->name, NIL);
		found->inh = false;
		return;
	}
	if (found->schemaname != NULL || found->catalogname != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("stream names are not schema-qualified"),
				 errhint("Write the stream's name alone: FROM %s.", found->relname)));

	*stream = kappa_stream_load(found->relname);
	if (found->alias == NULL)
		found->alias = makeAlias(found->relname, NIL);
	found->schemaname = "kappa";
	found->relname = kappa_stream_relation_name((*stream)->id);
	found->inh = false;
}

/* Refuse a construct a view cannot have, by name. */
void
kappa_view_unsupported(const char *construct, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s cannot be used in a kappa view", construct),
			 hint ? errhint("%s", hint) : 0));
}

/* Check what an analysed view query contains, naming what it may not. */
static void
check_shape(Query *query)
{
	if (query->commandType != CMD_SELECT || query->utilityStmt)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("a kappa view is defined by a SELECT statement")));
	if (query->hasWindowFuncs)
		kappa_view_unsupported("window functions (OVER)", "Use kappa_tumble, kappa_hop or kappa_session in FROM for time windows.");
	if (query->hasSubLinks)
		kappa_view_unsupported("subqueries", NULL);
	if (query->hasTargetSRFs)
		kappa_view_unsupported("set-returning functions in the select list", NULL);
	/*
	 * ORDER BY ... LIMIT n: the top n groups of each window (of all groups
	 * in a view without windows), chosen when the view is read.  Alone,
	 * either says nothing a view could keep.
	 */
	if (query->limitOffset)
		kappa_view_unsupported("OFFSET", "Skip rows when you query the view; ORDER BY ... LIMIT n keeps the top n groups of each window.");
	if (query->sortClause && query->limitCount == NULL)
		kappa_view_unsupported("ORDER BY without LIMIT", "Order the rows when you query the view; ORDER BY ... LIMIT n keeps the top n groups of each window.");
	if (query->limitCount && query->sortClause == NIL)
		kappa_view_unsupported("LIMIT without ORDER BY", "ORDER BY says which groups LIMIT keeps, as in ORDER BY count(*) DESC LIMIT 3: the top 3 groups of each window.");
	if (query->distinctClause)
		kappa_view_unsupported("SELECT DISTINCT", "GROUP BY the columns instead.");
	if (query->groupingSets)
		kappa_view_unsupported("GROUPING SETS, ROLLUP and CUBE", NULL);
	if (query->rowMarks)
		kappa_view_unsupported("FOR UPDATE and FOR SHARE", NULL);
	if (!query->hasAggs && query->groupClause == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("a kappa view must aggregate"),
				 errdetail("A view keeps one row per group; a SELECT without GROUP BY or aggregates would keep every event."),
				 errhint("Add GROUP BY and aggregates such as count(*).")));
}

/*
 * Which of kappa's window functions funcid is, if any: known by the C
 * function behind it, whatever schema the extension is in.
 */
static KappaWindowKind
window_kind(Oid funcid)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	KappaWindowKind kind = KAPPA_WINDOW_NONE;
	Form_pg_proc proc;
	bool		isnull;
	Datum		probin;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", funcid);
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	probin = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_probin, &isnull);
	if (proc->prolang == ClanguageId && !isnull &&
		strcmp(TextDatumGetCString(probin), "$libdir/kappa") == 0)
	{
		char	   *prosrc = TextDatumGetCString(SysCacheGetAttr(PROCOID, tuple,
																  Anum_pg_proc_prosrc, &isnull));

		if (strcmp(prosrc, "kappa_tumble") == 0)
			kind = KAPPA_WINDOW_TUMBLE;
		else if (strcmp(prosrc, "kappa_hop") == 0)
			kind = KAPPA_WINDOW_HOP;
		else if (strcmp(prosrc, "kappa_session") == 0)
			kind = KAPPA_WINDOW_SESSION;
	}
	ReleaseSysCache(tuple);
	return kind;
}

/* A window size argument: a constant, positive interval. */
static int64
const_interval_us(Node *arg, const char *what)
{
	Node	   *value = eval_const_expressions(NULL, arg);

	if (!IsA(value, Const) || ((Const *) value)->constisnull ||
		((Const *) value)->consttype != INTERVALOID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the window %s must be a constant interval", what),
				 errhint("Write it as a literal, such as '5 minutes'.")));
	return kappa_window_interval_us(DatumGetIntervalP(((Const *) value)->constvalue), what);
}

/* Read the window function in FROM into the spec. */
static void
compile_window(KappaViewSpec *spec, RangeTblEntry *rte)
{
	RangeTblFunction *rtfunc;
	FuncExpr   *func;

	if (list_length(rte->functions) != 1)
		kappa_view_unsupported("ROWS FROM", NULL);
	rtfunc = linitial_node(RangeTblFunction, rte->functions);
	func = (FuncExpr *) rtfunc->funcexpr;
	if (!IsA(func, FuncExpr) ||
		(spec->window.kind = window_kind(func->funcid)) == KAPPA_WINDOW_NONE)
		kappa_view_unsupported("functions in FROM other than kappa_tumble, kappa_hop and kappa_session", NULL);
	if (rte->funcordinality)
		kappa_view_unsupported("WITH ORDINALITY", NULL);

	kappa_view_check_deterministic((Node *) func, "the window function's arguments");
	spec->window_ts = (Expr *) linitial(func->args);
	switch (spec->window.kind)
	{
		case KAPPA_WINDOW_TUMBLE:
			spec->window.size = const_interval_us(lsecond(func->args), "size");
			break;
		case KAPPA_WINDOW_HOP:
			spec->window.size = const_interval_us(lsecond(func->args), "size");
			spec->window.slide = const_interval_us(lthird(func->args), "slide");
			if (spec->window.size / spec->window.slide >= KAPPA_MAX_HOPS)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("a hopping window's size may be at most %d times its slide",
								KAPPA_MAX_HOPS - 1)));
			break;
		case KAPPA_WINDOW_SESSION:
			spec->window.gap = const_interval_us(lsecond(func->args), "gap");
			break;
		case KAPPA_WINDOW_NONE:
			break;
	}
}

/* Collect the Aggrefs of an expression, each once. */
static bool
collect_aggrefs(Node *node, List **aggrefs)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		*aggrefs = list_append_unique(*aggrefs, node);
		return false;			/* aggregates do not nest */
	}
	return expression_tree_walker(node, collect_aggrefs, aggrefs);
}

/* A sort item over a column of the rows table. */
static KappaSortItem *
sort_item(const char *column, Node *expr, Oid sortop, bool nulls_first)
{
	KappaSortItem *item = palloc0(sizeof(KappaSortItem));

	item->column = pstrdup(column);
	item->type = exprType(expr);
	item->sortop = sortop;
	item->collation = exprCollation(expr);
	item->nulls_first = nulls_first;
	return item;
}

/* Refuse a select-list name the rows table or its read query uses. */
static void
check_not_reserved(const char *name)
{
	if (strcmp(name, KAPPA_HAVING_COLUMN) == 0 || strcmp(name, KAPPA_RANK_COLUMN) == 0 ||
		strncmp(name, KAPPA_ORDER_COLUMN_PREFIX, strlen(KAPPA_ORDER_COLUMN_PREFIX)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_COLUMN),
				 errmsg("column name \"%s\" is reserved in a kappa view with HAVING or LIMIT", name),
				 errdetail("kappa names the hidden columns of such a view %s, %s<n> and %s.",
						   KAPPA_HAVING_COLUMN, KAPPA_ORDER_COLUMN_PREFIX, KAPPA_RANK_COLUMN),
				 errhint("Name the column otherwise with AS.")));
}

/*
 * HAVING and ORDER BY ... LIMIT n, which the user-facing view applies
 * when it is read: the rows table keeps every group (a group HAVING
 * rejects now may pass later, and one outside the top n may enter it), so
 * the state stays exact.  Fills in the spec's order, limit and tie-break,
 * and returns the hidden columns to store beside the select list (as
 * TargetEntries over the stream, named): HAVING's verdict, and each
 * ORDER BY expression that is not in the select list.
 *
 * LIMIT n keeps the first n groups of each window in ORDER BY's order,
 * ties broken by the GROUP BY columns in ascending order, so that the
 * result does not depend on the order of rows in the table (row_number);
 * FETCH FIRST n ROWS WITH TIES keeps the groups that tie with the n-th
 * too (rank).  A view without windows ranks all its groups.
 */
static List *
compile_read_filter(KappaViewSpec *spec, Query *query, List *key_tles)
{
	List	   *hidden = NIL;
	ListCell   *lc;
	Node	   *count;

	if (query->limitCount == NULL && query->havingQual == NULL)
		return NIL;
	if (query->limitCount)
	{
		if (spec->window.kind == KAPPA_WINDOW_SESSION)
			kappa_view_unsupported("LIMIT with session windows",
						"Each session is a window of its own key, so its top n is the session itself; order and limit when you query the view.");
		count = eval_const_expressions(NULL, query->limitCount);
		if (!IsA(count, Const) || ((Const *) count)->consttype != INT8OID)
			kappa_view_unsupported("LIMIT other than a constant", "Write the number of groups to keep, as in LIMIT 3.");
		if (((Const *) count)->constisnull || DatumGetInt64(((Const *) count)->constvalue) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_ROW_COUNT_IN_LIMIT_CLAUSE),
					 errmsg("LIMIT of a kappa view must be a positive number"),
					 errhint("Write the number of groups to keep in each window, as in LIMIT 3.")));
		spec->limit = DatumGetInt64(((Const *) count)->constvalue);
		spec->with_ties = (query->limitOption == LIMIT_OPTION_WITH_TIES);
		if (spec->window.kind == KAPPA_WINDOW_NONE)
			spec->partition_column = NULL;

		foreach(lc, query->sortClause)
		{
			SortGroupClause *sgc = lfirst(lc);
			TargetEntry *tle = get_sortgroupclause_tle(sgc, query->targetList);
			const char *column = tle->resname;

			kappa_view_check_deterministic((Node *) tle->expr, "ORDER BY");
			if (tle->resjunk)
			{
				column = psprintf("%s%d", KAPPA_ORDER_COLUMN_PREFIX, list_length(hidden) + 1);
				hidden = lappend(hidden, makeTargetEntry(tle->expr, 0, pstrdup(column), true));
			}
			spec->order = lappend(spec->order, sort_item(column, (Node *) tle->expr,
														 sgc->sortop, sgc->nulls_first));
		}
		if (!spec->with_ties)
		{
			foreach(lc, key_tles)
			{
				TargetEntry *tle = lfirst(lc);
				TypeCacheEntry *tc = lookup_type_cache(exprType((Node *) tle->expr),
													   TYPECACHE_LT_OPR);

				if (!OidIsValid(tc->lt_opr))
					ereport(ERROR,
							(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
							 errmsg("LIMIT cannot be used in a kappa view grouped by type %s",
									format_type_be(exprType((Node *) tle->expr))),
							 errdetail("LIMIT breaks ties by the GROUP BY columns, and the type has no ordering."),
							 errhint("Keep the ties with FETCH FIRST n ROWS WITH TIES instead of LIMIT n.")));
				spec->tiebreak = lappend(spec->tiebreak,
										 sort_item(tle->resname, (Node *) tle->expr,
												   tc->lt_opr, false));
			}
		}
	}
	if (query->havingQual)
	{
		kappa_view_check_deterministic(query->havingQual, "HAVING");
		spec->having_column = KAPPA_HAVING_COLUMN;
		hidden = lappend(hidden, makeTargetEntry((Expr *) query->havingQual, 0,
												 pstrdup(KAPPA_HAVING_COLUMN), true));
	}
	return hidden;
}

/*
 * Rewrite a select-list expression over the group row: GROUP BY
 * expressions become the key attributes, the window's columns the window
 * bounds, aggregates their results.
 */
static Node *
to_group_row(Node *node, GroupRowContext *context)
{
	int			i = 0;
	ListCell   *lc;

	if (node == NULL)
		return NULL;
	foreach(lc, context->keys)
	{
		i++;
		if (equal(node, lfirst(lc)))
			return (Node *) makeVar(1, i, exprType(node), exprTypmod(node),
									exprCollation(node), 0);
	}
	if (IsA(node, Var) && (Index) ((Var *) node)->varno == context->window_rti)
		return (Node *) makeVar(1, context->nkeys + ((Var *) node)->varattno,
								TIMESTAMPTZOID, -1, InvalidOid, 0);
	if (IsA(node, Aggref))
	{
		foreach(lc, context->aggrefs)
		{
			if (equal(node, lfirst(lc)))
				return (Node *) makeVar(1, context->nkeys + 3 + foreach_current_index(lc),
										exprType(node), exprTypmod(node),
										exprCollation(node), 0);
		}
		elog(ERROR, "aggregate not found in the view's aggregates");
	}
	/* parse analysis has refused ungrouped columns outside aggregates */
	if (IsA(node, Var))
		elog(ERROR, "ungrouped column in a kappa view's select list");
	return expression_tree_mutator(node, to_group_row, context);
}

/* Take an analysed view query apart; see KappaViewSpec. */
KappaViewSpec *
kappa_compile_view(Query *query)
{
	KappaViewSpec *spec = palloc0(sizeof(KappaViewSpec));
	GroupRowContext context = {0};
	Index		window_rti = 0;
	bool		window_start_grouped = false;
	List	   *key_tles = NIL;
	List	   *hidden;
	ListCell   *lc;
	int			attno = 0;

	check_shape(query);
	spec->query = query;

	/*
	 * FROM: the stream, perhaps joined with tables (lookup.c), and perhaps
	 * one window function
	 */
	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (foreach_current_index(lc) == 0)
		{
			if (rte->rtekind != RTE_RELATION)
				kappa_view_unsupported("anything but a stream first in FROM", NULL);
			continue;
		}
		if (rte->rtekind == RTE_RELATION || rte->rtekind == RTE_JOIN)
			continue;			/* a joined table: see below */
		if (rte->rtekind != RTE_FUNCTION || window_rti != 0)
			kappa_view_unsupported("subqueries and functions in FROM other than one window",
								   "Use one of kappa_tumble, kappa_hop and kappa_session in FROM.");
		window_rti = foreach_current_index(lc) + 1;
		compile_window(spec, rte);
	}
	foreach(lc, query->jointree->fromlist)
	{
		Node	   *item = lfirst(lc);

		if (IsA(item, RangeTblRef) &&
			rt_fetch(((RangeTblRef *) item)->rtindex, query->rtable)->rtekind == RTE_RELATION &&
			((RangeTblRef *) item)->rtindex != 1)
			kappa_view_unsupported("tables in FROM beside the stream",
								   "Join a table with the stream by key: FROM stream s JOIN table t ON t.id = s.column.");
	}

	/* the joined tables' columns are read from the lookup row from here on */
	query = kappa_compile_lookups(query, &spec->lookups, &spec->lookup_desc);

	/* WHERE */
	if (query->jointree->quals)
	{
		kappa_view_check_deterministic(query->jointree->quals, "WHERE");
		spec->where = (Expr *) query->jointree->quals;
	}

	/* GROUP BY: the keys, and the window's start */
	foreach(lc, query->groupClause)
	{
		SortGroupClause *sgc = lfirst(lc);
		TargetEntry *tle = get_sortgroupclause_tle(sgc, query->targetList);
		Node	   *expr = (Node *) tle->expr;

		if (tle->resjunk)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("every GROUP BY expression of a kappa view must be in its select list"),
					 errdetail("The view's rows are identified by their GROUP BY columns.")));
		if (IsA(expr, Var) && (Index) ((Var *) expr)->varno == window_rti)
		{
			/*
			 * A window is identified by its start: a session's end moves
			 * as it grows, and its row must be updated, not replaced.
			 */
			if (((Var *) expr)->varattno == 1)
			{
				window_start_grouped = true;
				spec->unique_columns = lappend(spec->unique_columns, tle->resname);
				spec->partition_column = tle->resname;
			}
			continue;
		}
		if (!OidIsValid(sgc->eqop) || !op_hashjoinable(sgc->eqop, exprType(expr)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("GROUP BY expression of type %s cannot be used in a kappa view",
							format_type_be(exprType(expr))),
					 errdetail("Its type has no hashable equality.")));
		kappa_view_check_deterministic(expr, "GROUP BY");
		spec->keys = lappend(spec->keys, expr);
		spec->key_eqops = lappend_oid(spec->key_eqops, sgc->eqop);
		spec->unique_columns = lappend(spec->unique_columns, tle->resname);
		key_tles = lappend(key_tles, tle);
	}
	if (window_rti != 0 && !window_start_grouped)
		ereport(ERROR,
				(errcode(ERRCODE_GROUPING_ERROR),
				 errmsg("a windowed kappa view must GROUP BY the window's window_start"),
				 errhint("Add w.window_start (and w.window_end) to the select list and to GROUP BY.")));

	/* HAVING and ORDER BY ... LIMIT: what the user-facing view reads */
	hidden = compile_read_filter(spec, query, key_tles);

	/* the aggregates, and the select list over the group row */
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);

		if (tle->resjunk)
			continue;
		if (strcmp(tle->resname, "?column?") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_DEFINITION),
					 errmsg("column %d of the view has no name", tle->resno),
					 errhint("Name it with AS.")));
		if (hidden != NIL || spec->limit > 0)
			check_not_reserved(tle->resname);
		(void) collect_aggrefs((Node *) tle->expr, &spec->aggrefs);
	}
	foreach(lc, hidden)
		(void) collect_aggrefs((Node *) ((TargetEntry *) lfirst(lc))->expr, &spec->aggrefs);
	foreach(lc, spec->aggrefs)
	{
		Aggref	   *aggref = lfirst(lc);

		kappa_view_check_aggregate(aggref);
		kappa_view_check_deterministic((Node *) aggref->args, "aggregate arguments");
		kappa_view_check_deterministic((Node *) aggref->aggfilter, "aggregate filters");
	}
	kappa_view_check_deterministic((Node *) query->targetList, "the select list");
	kappa_view_check_deterministic((Node *) query, "the query");	/* anything missed above */

	context.keys = spec->keys;
	context.aggrefs = spec->aggrefs;
	context.window_rti = window_rti;
	context.nkeys = list_length(spec->keys);
	foreach(lc, query->targetList)
	{
		TargetEntry *tle = lfirst(lc);

		if (tle->resjunk)
			continue;
		spec->output = lappend(spec->output,
							   makeTargetEntry((Expr *) to_group_row((Node *) tle->expr, &context),
											   list_length(spec->output) + 1,
											   tle->resname, false));
	}
	spec->nvisible = list_length(spec->output);
	foreach(lc, hidden)
	{
		TargetEntry *tle = lfirst(lc);

		spec->output = lappend(spec->output,
							   makeTargetEntry((Expr *) to_group_row((Node *) tle->expr, &context),
											   list_length(spec->output) + 1,
											   tle->resname, true));
	}

	/* the group row: keys, window bounds, aggregate results */
	spec->group_desc = CreateTemplateTupleDesc(context.nkeys + 2 + list_length(spec->aggrefs));
	foreach(lc, spec->keys)
		TupleDescInitEntry(spec->group_desc, ++attno, NULL,
						   exprType(lfirst(lc)), exprTypmod(lfirst(lc)), 0);
	TupleDescInitEntry(spec->group_desc, ++attno, "window_start", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(spec->group_desc, ++attno, "window_end", TIMESTAMPTZOID, -1, 0);
	foreach(lc, spec->aggrefs)
		TupleDescInitEntry(spec->group_desc, ++attno, NULL,
						   exprType(lfirst(lc)), exprTypmod(lfirst(lc)), 0);

	/* plan the expressions the worker evaluates per event */
	if (spec->where)
		spec->where = expression_planner(spec->where);
	if (spec->window_ts)
		spec->window_ts = expression_planner(spec->window_ts);
	foreach(lc, spec->keys)
		lfirst(lc) = expression_planner(lfirst(lc));
	foreach(lc, spec->output)
	{
		TargetEntry *tle = lfirst(lc);

		tle->expr = expression_planner(tle->expr);
	}

	/* again, planned: inlined SQL functions show what they call */
	kappa_view_check_deterministic((Node *) spec->where, "WHERE");
	kappa_view_check_deterministic((Node *) spec->window_ts, "the window function's arguments");
	kappa_view_check_deterministic((Node *) spec->keys, "GROUP BY");
	kappa_view_check_deterministic((Node *) spec->output, "the select list");
	foreach(lc, spec->aggrefs)
	{
		Aggref	   *aggref = lfirst(lc);

		kappa_view_check_deterministic((Node *) expression_planner((Expr *) copyObject(aggref->args)),
							"aggregate arguments");
		kappa_view_check_deterministic((Node *) expression_planner((Expr *) copyObject(aggref->aggfilter)),
							"aggregate filters");
	}
	return spec;
}
