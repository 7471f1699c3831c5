/*-------------------------------------------------------------------------
 *
 * compile_aggs.c
 *	  The aggregates a view may use: those kappa runs in place of
 *	  Postgres's, and the refusals of the others.
 *
 * A view merges partial aggregate states (across partitions, when
 * sessions merge) and stores them between flushes, so an aggregate needs
 * a combine function, storable states and a read-only final function.
 * Postgres 15 cannot combine count(DISTINCT), array_agg, string_agg,
 * sum/avg(DISTINCT) and the percentiles; kappa_view_rewrite_aggregates
 * replaces them, before the query is stored, by kappa's own combinable
 * aggregates (agg/aggfuncs*.c) of the same result types, ordered by value
 * so that a view and its replay agree.  kappa_view_check_aggregate
 * refuses the rest, each refusal with a hint saying what to use instead.
 *
 * src/engine/compile_aggs.c
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


static bool rewrite_aggregates(Node *node, void *context);

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
 * Replace, in a view's analysed select list, the aggregates Postgres 15
 * cannot combine by kappa's equivalents.
 */
void
kappa_view_rewrite_aggregates(Node *target_list)
{
	(void) rewrite_aggregates(target_list, NULL);
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
void
kappa_view_check_aggregate(Aggref *aggref)
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
