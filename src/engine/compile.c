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
 * check_deterministic), and takes it apart into a KappaViewSpec:
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
static void check_aggregate(Aggref *aggref);
static Node *to_group_row(Node *node, GroupRowContext *context);
static List *compile_read_filter(KappaViewSpec *spec, Query *query, List *key_tles);
static void check_not_reserved(const char *name);
static void check_deterministic(Node *node, const char *clause);
static Oid	kappa_function(const char *name);
static bool rewrite_aggregates(Node *node, void *context);

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
	(void) rewrite_aggregates((Node *) query->targetList, NULL);
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
 * The schema kappa is installed in (get_extension_schema is not exported
 * by Postgres 15).
 */
static Oid
extension_schema(void)
{
	Oid			extoid = get_extension_oid("kappa", false);
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			nspid = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		nspid = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nspid;
}

/* One of kappa's aggregates by name and argument types, or InvalidOid. */
static Oid
kappa_function_args(const char *name, int nargs, const Oid *argtypes)
{
	return LookupFuncName(list_make2(makeString(get_namespace_name(extension_schema())),
									 makeString(pstrdup(name))),
						  nargs, argtypes, true);
}

/* One of kappa's one-argument polymorphic aggregates by name, or InvalidOid. */
static Oid
kappa_function(const char *name)
{
	Oid			argtypes[1] = {ANYELEMENTOID};

	return kappa_function_args(name, 1, argtypes);
}

/*
 * Whether an aggregate's ORDER BY (or WITHIN GROUP) is its argument value
 * alone, ascending by its type's default order: the order kappa's
 * aggregates sort their values in.  Where nulls are kept (array_agg), they
 * must also come last, as in kappa_collect_list; string_agg and the
 * percentiles skip them.
 */
static bool
ordered_by_value(Aggref *aggref, TargetEntry *value, bool nulls_last)
{
	SortGroupClause *sort;
	Oid			type = exprType((Node *) value->expr);

	if (list_length(aggref->aggorder) != 1)
		return false;
	sort = linitial_node(SortGroupClause, aggref->aggorder);
	return value->ressortgroupref != 0 &&
		sort->tleSortGroupRef == value->ressortgroupref &&
		sort->sortop == lookup_type_cache(type, TYPECACHE_LT_OPR)->lt_opr &&
		(!nulls_last || !sort->nulls_first);
}

/*
 * Point an Aggref at one of kappa's aggregates, which takes the same
 * arguments with neither DISTINCT nor ORDER BY (kappa's sorts itself).
 * kappa's aggregates compare values in the input collation, which becomes
 * the value's own, as ORDER BY x sorts (the input collation of
 * string_agg(x, d COLLATE "C") would be the delimiter's).
 */
static void
use_kappa_aggregate(Aggref *aggref, Oid replacement)
{
	ListCell   *lc;

	aggref->aggfnoid = replacement;
	aggref->inputcollid = exprCollation((Node *) linitial_node(TargetEntry, aggref->args)->expr);
	aggref->aggdistinct = NIL;
	aggref->aggorder = NIL;
	foreach(lc, aggref->args)
		lfirst_node(TargetEntry, lc)->ressortgroupref = 0;
}

/*
 * percentile_cont(f) or percentile_disc(f) WITHIN GROUP (ORDER BY x) as
 * the plain aggregate kappa_percentile_cont(x, f) or
 * kappa_percentile_disc(x, f), f a fraction or an array of them; false if
 * it has another shape (a descending order), left for check_aggregate to
 * refuse.
 */
static bool
rewrite_percentile(Aggref *aggref)
{
	bool		cont;
	bool		multi;
	TargetEntry *value;
	Oid			argtypes[2];
	Oid			replacement;

	switch (aggref->aggfnoid)
	{
		case F_PERCENTILE_CONT_FLOAT8_FLOAT8:
		case F_PERCENTILE_CONT_FLOAT8_INTERVAL:
			cont = true;
			multi = false;
			break;
		case F_PERCENTILE_CONT__FLOAT8_FLOAT8:
		case F_PERCENTILE_CONT__FLOAT8_INTERVAL:
			cont = true;
			multi = true;
			break;
		case F_PERCENTILE_DISC_FLOAT8_ANYELEMENT:
			cont = false;
			multi = false;
			break;
		case F_PERCENTILE_DISC__FLOAT8_ANYELEMENT:
			cont = false;
			multi = true;
			break;
		default:
			return false;
	}
	if (list_length(aggref->args) != 1 || list_length(aggref->aggdirectargs) != 1)
		return false;
	value = linitial_node(TargetEntry, aggref->args);
	if (!ordered_by_value(aggref, value, false))
		return false;
	argtypes[0] = cont ? exprType((Node *) value->expr) : ANYELEMENTOID;
	argtypes[1] = multi ? FLOAT8ARRAYOID : FLOAT8OID;
	replacement = kappa_function_args(cont ? "kappa_percentile_cont" : "kappa_percentile_disc",
									  2, argtypes);
	if (!OidIsValid(replacement))
		return false;
	value->ressortgroupref = 0;
	aggref->args = list_make2(value,
							  makeTargetEntry(linitial(aggref->aggdirectargs), 2, NULL, false));
	aggref->aggargtypes = list_make2_oid(exprType((Node *) value->expr), argtypes[1]);
	aggref->aggdirectargs = NIL;
	aggref->aggkind = AGGKIND_NORMAL;
	use_kappa_aggregate(aggref, replacement);
	return true;
}

/* sum or avg over the given input type, or neither. */
static bool
is_sum_or_avg(Oid aggfnoid, bool *sum)
{
	switch (aggfnoid)
	{
		case F_SUM_INT2:
		case F_SUM_INT4:
		case F_SUM_INT8:
		case F_SUM_NUMERIC:
		case F_SUM_FLOAT4:
		case F_SUM_FLOAT8:
		case F_SUM_MONEY:
		case F_SUM_INTERVAL:
			*sum = true;
			return true;
		case F_AVG_INT2:
		case F_AVG_INT4:
		case F_AVG_INT8:
		case F_AVG_NUMERIC:
		case F_AVG_FLOAT4:
		case F_AVG_FLOAT8:
		case F_AVG_INTERVAL:
			*sum = false;
			return true;
	}
	return false;
}

/*
 * Replace aggregates Postgres 15 cannot combine by kappa's equivalents,
 * which can, and whose results have the same types and values:
 *
 *	count(DISTINCT x)					kappa_count_distinct(x)
 *	sum(DISTINCT x), avg(DISTINCT x)	kappa_sum_distinct(x), kappa_avg_distinct(x)
 *	array_agg(DISTINCT x)				kappa_collect_set(x)
 *	array_agg(x [ORDER BY x])			kappa_collect_list(x)
 *	string_agg(x, d [ORDER BY x])		kappa_string_agg(x, d)
 *	string_agg(DISTINCT x, d [ORDER BY x])	kappa_string_agg_distinct(x, d)
 *	percentile_cont(f) WITHIN GROUP (ORDER BY x)	kappa_percentile_cont(x, f)
 *	percentile_disc(f) WITHIN GROUP (ORDER BY x)	kappa_percentile_disc(x, f)
 *
 * kappa's aggregates order by the value, ascending (see aggfuncs.c), so
 * an ORDER BY is accepted where it says just that.  Done before the query
 * is stored, so workers run the replacements; what is left (another
 * order, DISTINCT elsewhere) check_aggregate refuses.
 */
static bool
rewrite_aggregates(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
	{
		Aggref	   *aggref = (Aggref *) node;
		TargetEntry *value = aggref->args ? linitial_node(TargetEntry, aggref->args) : NULL;
		bool		order_ok = aggref->aggorder == NIL ||
			(value != NULL && ordered_by_value(aggref, value, false));
		const char *replacement = NULL;
		bool		sum;

		if (aggref->aggkind == AGGKIND_ORDERED_SET)
		{
			(void) rewrite_percentile(aggref);
			return false;
		}
		if (aggref->aggkind != AGGKIND_NORMAL)
			return false;
		if (aggref->aggfnoid == F_COUNT_ANY && aggref->aggdistinct != NIL)
			replacement = "kappa_count_distinct";
		else if (aggref->aggfnoid == F_ARRAY_AGG_ANYNONARRAY && aggref->aggorder == NIL)
			replacement = aggref->aggdistinct ? "kappa_collect_set" : "kappa_collect_list";
		else if (aggref->aggfnoid == F_ARRAY_AGG_ANYNONARRAY && aggref->aggdistinct == NIL &&
				 ordered_by_value(aggref, value, true))
			replacement = "kappa_collect_list";
		if (replacement)
		{
			Oid			oid = kappa_function(replacement);

			if (OidIsValid(oid))
				use_kappa_aggregate(aggref, oid);
			return false;
		}

		if ((aggref->aggfnoid == F_STRING_AGG_TEXT_TEXT ||
			 aggref->aggfnoid == F_STRING_AGG_BYTEA_BYTEA) && order_ok)
			replacement = aggref->aggdistinct ? "kappa_string_agg_distinct" : "kappa_string_agg";
		else if (is_sum_or_avg(aggref->aggfnoid, &sum) && aggref->aggdistinct != NIL && order_ok)
			replacement = sum ? "kappa_sum_distinct" : "kappa_avg_distinct";
		if (replacement)
		{
			Oid			argtypes[FUNC_MAX_ARGS];
			int			nargs = 0;
			ListCell   *lc;
			Oid			oid;

			foreach(lc, aggref->aggargtypes)
				argtypes[nargs++] = lfirst_oid(lc);
			oid = kappa_function_args(replacement, nargs, argtypes);
			if (OidIsValid(oid))
				use_kappa_aggregate(aggref, oid);
		}
		return false;
	}
	return expression_tree_walker(node, rewrite_aggregates, context);
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

	check_deterministic((Node *) func, "the window function's arguments");
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

/* Refuse an aggregate in a view, saying why (detail) and what to use instead. */
static void
refuse_aggregate(const char *name, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("aggregate %s cannot be used in a kappa view", name),
			 errdetail("%s", detail),
			 errhint("%s", hint)));
}

/* What to use instead of an aggregate kappa cannot combine. */
#define HINT_AT_READ_TIME \
	"Keep the values with array_agg(x) (kappa runs it as kappa_collect_list, sorted) and compute the result from the array when you query the view."

/* An ordered-set or hypothetical-set aggregate that rewrite_aggregates left. */
static void
refuse_ordered_set(Aggref *aggref, const char *name)
{
	const char *hint;

	switch (aggref->aggfnoid)
	{
		case F_PERCENTILE_CONT_FLOAT8_FLOAT8:
		case F_PERCENTILE_CONT_FLOAT8_INTERVAL:
		case F_PERCENTILE_DISC_FLOAT8_ANYELEMENT:
		case F_PERCENTILE_CONT__FLOAT8_FLOAT8:
		case F_PERCENTILE_CONT__FLOAT8_INTERVAL:
		case F_PERCENTILE_DISC__FLOAT8_ANYELEMENT:
			hint = "kappa computes percentile_cont and percentile_disc over the values in ascending order: "
				"write WITHIN GROUP (ORDER BY x) (for percentile_cont, the fraction 1 - f does what DESC does). "
				"For large groups, the tdigest extension (CREATE EXTENSION tdigest) is approximate but small: tdigest_percentile(x, 100, f) in the view.";
			break;
		default:
			if (aggref->aggkind == AGGKIND_HYPOTHETICAL)
				hint = HINT_AT_READ_TIME;
			else
				hint = "For mode(), keep count(*) per value (add the value to GROUP BY) and pick the most frequent when you query the view. "
					HINT_AT_READ_TIME;
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s aggregate %s cannot be used in a kappa view",
					aggref->aggkind == AGGKIND_HYPOTHETICAL ? "hypothetical-set" : "ordered-set",
					name),
			 errdetail("kappa merges partial aggregates (when sessions merge, and across partitions), and these cannot be merged."),
			 errhint("%s", hint)));
}

/*
 * The second argument of kappa_string_agg and of kappa_percentile_*: a
 * constant (its state takes it from the first row, and would fail on a
 * row with another), and a fraction between 0 and 1.
 */
static void
check_constant_argument(Aggref *aggref, const char *aggname)
{
	bool		fraction = strncmp(aggname, "kappa_percentile_", 17) == 0;
	Node	   *arg;

	if (strncmp(aggname, "kappa_string_agg", 16) != 0 && !fraction)
		return;
	if (list_length(aggref->args) != 2)
		return;
	arg = eval_const_expressions(NULL, (Node *) lsecond_node(TargetEntry, aggref->args)->expr);
	if (!IsA(arg, Const))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s with a %s that is not a constant cannot be used in a kappa view",
						fraction ? (strcmp(aggname, "kappa_percentile_cont") == 0 ? "percentile_cont" : "percentile_disc") : "string_agg",
						fraction ? "fraction" : "delimiter"),
				 errdetail("kappa merges partial aggregates, which must all have the same %s.",
						   fraction ? "fraction" : "delimiter"),
				 errhint(fraction ?
						 "Write the fraction as a literal, such as 0.5; for a fraction that varies, keep the values with array_agg(x) and compute the percentile when you query the view." :
						 "Write the delimiter as a literal, such as ', '; for a delimiter that varies, keep the values with array_agg(x) and join them with array_to_string when you query the view.")));
	if (fraction && !((Const *) arg)->constisnull)
	{
		Datum	   *fractions;
		bool	   *nulls;
		int			n = 1;

		if (((Const *) arg)->consttype == FLOAT8ARRAYOID)
			deconstruct_array(DatumGetArrayTypeP(((Const *) arg)->constvalue), FLOAT8OID,
							  sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
							  &fractions, &nulls, &n);
		else
		{
			fractions = &((Const *) arg)->constvalue;
			nulls = &((Const *) arg)->constisnull;
		}
		for (int i = 0; i < n; i++)
		{
			float8		f = DatumGetFloat8(fractions[i]);

			if (!nulls[i] && (f < 0 || f > 1 || isnan(f)))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("percentile value %g is not between 0 and 1", f)));
		}
	}
}

/*
 * Check that an aggregate can run in a view: its partial states must be
 * combinable (sessions merge, partitions' partials merge), storable, and
 * finalizable again and again (the view row is refreshed at every flush).
 * rewrite_aggregates has replaced what kappa runs in its own way; every
 * refusal here says what to use instead.
 */
static void
check_aggregate(Aggref *aggref)
{
	HeapTuple	tuple;
	Form_pg_aggregate agg;
	char	   *name = format_procedure(aggref->aggfnoid);
	char	   *aggname;

	if (aggref->aggkind != AGGKIND_NORMAL)
		refuse_ordered_set(aggref, name);
	if (aggref->aggorder != NIL)
		kappa_view_unsupported(psprintf("ORDER BY inside aggregate %s", name),
					"kappa's string_agg and array_agg are ordered by the value, ascending (ORDER BY the value itself is accepted); "
					"kappa_first(x, time) and kappa_last(x, time) pick the value with the earliest or latest time; "
					"for any other order, keep the values with array_agg(x) and order them when you query the view.");
	if (aggref->aggdistinct != NIL)
		kappa_view_unsupported(psprintf("DISTINCT inside aggregate %s", name),
					"A view takes DISTINCT in count, sum, avg, array_agg and string_agg; "
					"for another aggregate, keep the distinct values with array_agg(DISTINCT x) (kappa_collect_set) and aggregate them when you query the view.");
	if (aggref->agglevelsup != 0)
		kappa_view_unsupported("outer-level aggregates", "Aggregate the stream's own columns.");

	tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for aggregate %u", aggref->aggfnoid);
	agg = (Form_pg_aggregate) GETSTRUCT(tuple);
	if (!OidIsValid(agg->aggcombinefn))
		refuse_aggregate(name,
						 "It has no combine function, and kappa merges partial aggregates: when sessions merge, and across partitions.",
						 HINT_AT_READ_TIME);
	if (agg->aggtranstype == INTERNALOID &&
		(!OidIsValid(agg->aggserialfn) || !OidIsValid(agg->aggdeserialfn)))
		refuse_aggregate(name,
						 "Its state has no serialization functions, so it cannot be stored between flushes.",
						 HINT_AT_READ_TIME);
	if (agg->aggfinalmodify == AGGMODIFY_READ_WRITE)
		refuse_aggregate(name,
						 "Its final function modifies its state, and a view row is finalized again at every flush.",
						 HINT_AT_READ_TIME);
	ReleaseSysCache(tuple);

	/* kappa's own aggregates: refuse a type they cannot take now, not later */
	aggname = get_func_name(aggref->aggfnoid);
	if (aggref->aggargtypes != NIL && strncmp(aggname, "kappa_", 6) == 0)
	{
		kappa_aggfunc_check_type(aggname, linitial_oid(aggref->aggargtypes));
		check_constant_argument(aggref, aggname);
	}
}

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

/* The clause check_deterministic is walking, for its messages. */
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
 * Walk an expression for what check_deterministic refuses: SQL's time
 * keywords and SESSION_USER and CURRENT_SCHEMA (CURRENT_USER, CURRENT_ROLE
 * and USER stay allowed: a view's code runs as its owner, live and in a
 * replay, and CURRENT_CATALOG is the database), sequences, and functions.
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
static void
check_deterministic(Node *node, const char *clause)
{
	DeterminismContext det = {.clause = clause};

	(void) determinism_walker(node, &det);
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

			check_deterministic((Node *) tle->expr, "ORDER BY");
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
		check_deterministic(query->havingQual, "HAVING");
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
		check_deterministic(query->jointree->quals, "WHERE");
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
		check_deterministic(expr, "GROUP BY");
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

		check_aggregate(aggref);
		check_deterministic((Node *) aggref->args, "aggregate arguments");
		check_deterministic((Node *) aggref->aggfilter, "aggregate filters");
	}
	check_deterministic((Node *) query->targetList, "the select list");
	check_deterministic((Node *) query, "the query");	/* anything missed above */

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
	check_deterministic((Node *) spec->where, "WHERE");
	check_deterministic((Node *) spec->window_ts, "the window function's arguments");
	check_deterministic((Node *) spec->keys, "GROUP BY");
	check_deterministic((Node *) spec->output, "the select list");
	foreach(lc, spec->aggrefs)
	{
		Aggref	   *aggref = lfirst(lc);

		check_deterministic((Node *) expression_planner((Expr *) copyObject(aggref->args)),
							"aggregate arguments");
		check_deterministic((Node *) expression_planner((Expr *) copyObject(aggref->aggfilter)),
							"aggregate filters");
	}
	return spec;
}
