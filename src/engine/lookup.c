/*-------------------------------------------------------------------------
 *
 * lookup.c
 *	  Lookup joins: a view's stream joined with ordinary tables by key.
 *
 * A view may join its stream with tables, to enrich each event with a
 * row of reference data:
 *
 *	  FROM telemetry t JOIN devices d ON d.id = t.deviceId, kappa_tumble(...) w
 *
 * As in Flink's processing-time lookup join, an event is joined with the
 * table's row as it is when the event is processed.  Later changes to the
 * table do not rewrite rows already computed, and a replay joins with the
 * table as it is when it runs.
 *
 * Compiling (kappa_compile_lookups) turns each join into one statement,
 *
 *	  SELECT l.<the columns the view reads> FROM [ONLY] schema.table l
 *	  WHERE <the ON clause>
 *
 * in which every part of the ON clause that reads the event (or a table
 * joined before) has become a parameter, which the engine computes from
 * the event.  The statement's text is the analysed ON clause deparsed by
 * Postgres, so nothing the user wrote is pasted into it.  The ON clause
 * of a new view must compare every column of a unique index of the table
 * with such values, so that an event finds at most one row, and the join
 * of the same events with the same table in batch SQL gives the same
 * result; the statement can then use that index.  The view's other expressions
 * read the tables' columns from the "lookup row" instead (Vars of
 * INNER_VAR), which the engine fills for each event before evaluating
 * them.
 *
 * Running (kappa_lookups_run), for each table in join order: compute the
 * parameters, and find the row in the cache of this flush's lookups, or
 * run the statement, as the view's owner (the caller runs as the owner),
 * so the owner's rights and the table's row security apply.  No row: a
 * LEFT JOIN gives nulls, an inner join filters the event out.  More than
 * one row (the unique index was dropped since): the event is rejected,
 * as an event a view cannot evaluate is.  The cache is emptied at every
 * flush (kappa_lookups_forget), so an event sees the table as it was at
 * most one flush interval before it was processed.  An error of the
 * statement itself (the table dropped, a right revoked) is the view's,
 * not the event's: *executing tells the caller whose it is.
 *
 * src/engine/lookup.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/sysattr.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "engine/compile.h"
#include "engine/lookup.h"

/* A flush's cache of one table's rows holds at most this many. */
#define LOOKUP_CACHE_MAX 65536

/* The parameters of one lookup's statement, while its ON clause is compiled. */
typedef struct ParamContext
{
	Index		rti;			/* the joined table */
	List	   *params;			/* Expr: what $1, $2, ... stand for */
} ParamContext;

/* The columns of one table a view reads. */
typedef struct UsedContext
{
	Index		rti;
	Bitmapset  *attnos;
} UsedContext;

/* Where each joined table's columns are in the lookup row. */
typedef struct LookupRowContext
{
	int			nrtes;
	int		  **positions;		/* by range table index, then attno: 0-based */
} LookupRowContext;

/* A cache key: the bytes of a lookup's parameter values. */
typedef struct LookupCacheKey
{
	uint32		hash;
	uint32		len;
	char	   *bytes;
} LookupCacheKey;

/* What a lookup found for those values. */
typedef struct LookupCacheEntry
{
	LookupCacheKey key;
	uint32		nrows;			/* 0, 1, or 2 for more than one */
	Datum	   *values;
	bool	   *nulls;
} LookupCacheEntry;

/* One joined table, running. */
typedef struct LookupTable
{
	KappaLookup *lookup;
	SPIPlanPtr	plan;
	int			nparams;
	ExprState **params;
	int16	   *param_typlens;
	bool	   *param_byvals;
	Datum	   *param_values;
	char	   *param_nulls;
	int16	   *typlens;		/* of its columns */
	bool	   *byvals;
	MemoryContext cxt;			/* the cache, emptied at every flush */
	HTAB	   *cache;
	long		cached;
} LookupTable;

struct KappaLookupRun
{
	int			ntables;
	LookupTable *tables;
	TupleTableSlot *slot;		/* the lookup row */
	StringInfoData key;
};

static bool reads_relation_walker(Node *node, Index *rti);
static bool used_columns_walker(Node *node, UsedContext *context);
static Node *event_values_to_params(Node *node, ParamContext *context);
static Node *to_lookup_row(Node *node, LookupRowContext *context);
static void collect_joins(Query *query, Node *node, List **joins);
static bool finds_one_row(Relation rel, Index rti, Node *quals);
static KappaLookup *compile_lookup(Query *query, JoinExpr *join, Bitmapset *used);

/* ---------- compiling ---------- */

/* Whether an expression reads a column of range table entry *rti. */
static bool
reads_relation_walker(Node *node, Index *rti)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
		return ((Var *) node)->varlevelsup == 0 && (Index) ((Var *) node)->varno == *rti;
	return expression_tree_walker(node, reads_relation_walker, rti);
}

static bool
reads_relation(Node *node, Index rti)
{
	return reads_relation_walker(node, &rti);
}

/* The columns of context->rti the query reads. */
static bool
used_columns_walker(Node *node, UsedContext *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varlevelsup == 0 && (Index) var->varno == context->rti)
		{
			if (var->varattno <= 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("whole-row references and system columns of a joined table cannot be used in a kappa view"),
						 errhint("Name the table's columns.")));
			context->attnos = bms_add_member(context->attnos, var->varattno);
		}
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, used_columns_walker, context,
								 QTW_IGNORE_JOINALIASES);
	return expression_tree_walker(node, used_columns_walker, context);
}

/*
 * Replace each largest part of an ON clause that reads the event (or a
 * table joined before) but not the joined table by a parameter.  Parts
 * without columns (constants) stay in the statement.
 */
static Node *
event_values_to_params(Node *node, ParamContext *context)
{
	if (node == NULL)
		return NULL;
	if (!reads_relation(node, context->rti) && contain_var_clause(node))
	{
		Param	   *param = makeNode(Param);

		param->paramkind = PARAM_EXTERN;
		param->paramid = list_length(context->params) + 1;
		param->paramtype = exprType(node);
		param->paramtypmod = exprTypmod(node);
		param->paramcollid = exprCollation(node);
		param->location = -1;
		context->params = lappend(context->params, node);
		return (Node *) param;
	}
	return expression_tree_mutator(node, event_values_to_params, context);
}

/* A joined table's column, read from the lookup row instead. */
static Node *
to_lookup_row(Node *node, LookupRowContext *context)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varlevelsup == 0 && var->varno >= 1 && var->varno <= context->nrtes &&
			context->positions[var->varno] != NULL)
			return (Node *) makeVar(INNER_VAR,
									context->positions[var->varno][var->varattno] + 1,
									var->vartype, var->vartypmod, var->varcollid, 0);
		return (Node *) copyObject(var);
	}
	return expression_tree_mutator(node, to_lookup_row, context);
}

/*
 * The joins of FROM, innermost first: the stream first, then one table
 * at a time, each JOIN or LEFT JOIN ... ON.
 */
static void
collect_joins(Query *query, Node *node, List **joins)
{
	JoinExpr   *join;
	RangeTblEntry *rte;

	if (IsA(node, RangeTblRef))
	{
		if (((RangeTblRef *) node)->rtindex != 1)
			kappa_view_unsupported("a table before the stream in FROM",
								   "Write the stream first: FROM stream s JOIN table t ON ....");
		return;
	}
	if (!IsA(node, JoinExpr))
		elog(ERROR, "unexpected node type in FROM: %d", (int) nodeTag(node));
	join = (JoinExpr *) node;
	collect_joins(query, join->larg, joins);
	if (join->jointype != JOIN_INNER && join->jointype != JOIN_LEFT)
		kappa_view_unsupported("RIGHT and FULL joins",
							   "A view joins each event with at most one row of a table: use JOIN or LEFT JOIN, with the stream first.");
	if (join->isNatural || join->usingClause != NIL)
		kappa_view_unsupported("NATURAL joins and joins with USING",
							   "Write the join's condition with ON.");
	if (join->quals == NULL)
		kappa_view_unsupported("joins without a condition (CROSS JOIN)",
							   "Write the join's condition with ON, comparing a key of the table with the event's values.");
	if (!IsA(join->rarg, RangeTblRef))
		kappa_view_unsupported("joins with joins in parentheses",
							   "Join one table at a time: FROM s JOIN a ON ... JOIN b ON ....");
	rte = rt_fetch(((RangeTblRef *) join->rarg)->rtindex, query->rtable);
	if (rte->rtekind != RTE_RELATION)
		kappa_view_unsupported("joins with subqueries, functions or streams",
							   "A view joins its stream with tables only.");
	*joins = lappend(*joins, join);
}

/* An expression without binary-compatible casts. */
static Node *
strip_relabel(Node *node)
{
	while (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	return node;
}

/*
 * Whether an ON clause finds at most one row of the table: its conjuncts
 * compare every column of a valid, immediate, unique index without
 * expressions or predicate with a value that does not read the table,
 * by an operator of the index's equality.
 */
static bool
finds_one_row(Relation rel, Index rti, Node *quals)
{
	List	   *attnos = NIL;
	List	   *opnos = NIL;
	List	   *indexes;
	ListCell   *lc;
	bool		one = false;

	foreach(lc, make_ands_implicit((Expr *) quals))
	{
		OpExpr	   *op = lfirst(lc);
		Node	   *left;
		Node	   *right;

		if (!IsA(op, OpExpr) || list_length(op->args) != 2)
			continue;
		left = strip_relabel(linitial(op->args));
		right = strip_relabel(lsecond(op->args));
		if (IsA(left, Var) && (Index) ((Var *) left)->varno == rti && !reads_relation(right, rti))
		{
			attnos = lappend_int(attnos, ((Var *) left)->varattno);
			opnos = lappend_oid(opnos, op->opno);
		}
		else if (IsA(right, Var) && (Index) ((Var *) right)->varno == rti &&
				 !reads_relation(left, rti) && OidIsValid(get_commutator(op->opno)))
		{
			attnos = lappend_int(attnos, ((Var *) right)->varattno);
			opnos = lappend_oid(opnos, get_commutator(op->opno));
		}
	}

	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;
		bool		covered;

		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for index %u", lfirst_oid(lc));
		index = (Form_pg_index) GETSTRUCT(tuple);
		covered = index->indisunique && index->indimmediate && index->indisvalid &&
			heap_attisnull(tuple, Anum_pg_index_indexprs, NULL) &&
			heap_attisnull(tuple, Anum_pg_index_indpred, NULL);
		if (covered)
		{
			bool		isnull;
			oidvector  *indclass = (oidvector *)
				DatumGetPointer(SysCacheGetAttr(INDEXRELID, tuple, Anum_pg_index_indclass,
												&isnull));

			for (int i = 0; covered && i < index->indnkeyatts; i++)
			{
				Oid			opfamily = get_opclass_family(indclass->values[i]);
				ListCell   *ac;
				ListCell   *oc;

				covered = false;
				forboth(ac, attnos, oc, opnos)
				{
					if (lfirst_int(ac) == index->indkey.values[i] &&
						get_op_opfamily_strategy(lfirst_oid(oc), opfamily) == BTEqualStrategyNumber)
						covered = true;
				}
			}
		}
		ReleaseSysCache(tuple);
		one |= covered;
	}
	list_free(indexes);
	return one;
}

/* One join: its statement and parameters (over the query's range table). */
static KappaLookup *
compile_lookup(Query *query, JoinExpr *join, Bitmapset *used)
{
	Index		rti = ((RangeTblRef *) join->rarg)->rtindex;
	RangeTblEntry *rte = rt_fetch(rti, query->rtable);
	Relation	rel = relation_open(rte->relid, AccessShareLock);
	KappaLookup *lookup = palloc0(sizeof(KappaLookup));
	ParamContext params = {.rti = rti};
	char		relkind = rel->rd_rel->relkind;
	Node	   *quals;
	StringInfoData sql;
	int			attno = -1;

	lookup->relid = rte->relid;
	lookup->relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												 RelationGetRelationName(rel));
	lookup->left = (join->jointype == JOIN_LEFT);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
		relkind != RELKIND_MATVIEW)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("a kappa view cannot join %s", lookup->relname),
				 errdetail("A kappa view joins its stream with tables and materialized views only."),
				 errhint("Join with the tables the relation reads.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a kappa view cannot join temporary table %s", lookup->relname),
				 errdetail("The view's worker runs in a session of its own, which does not see this session's temporary tables.")));
	lookup->unique = finds_one_row(rel, rti, join->quals);

	quals = event_values_to_params(copyObject(join->quals), &params);
	lookup->params = params.params;
	ChangeVarNodes(quals, rti, 1, 0);

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	while ((attno = bms_next_member(used, attno)) >= 0)
		appendStringInfo(&sql, "%sl.%s", lookup->ncolumns++ ? ", " : "",
						 quote_identifier(NameStr(TupleDescAttr(RelationGetDescr(rel), attno - 1)->attname)));
	if (lookup->ncolumns == 0)
		appendStringInfoString(&sql, "NULL");
	appendStringInfo(&sql, " FROM %s%s l WHERE %s", rte->inh ? "" : "ONLY ", lookup->relname,
					 deparse_expression(quals, deparse_context_for("l", rte->relid), true, true));
	lookup->sql = sql.data;
	relation_close(rel, NoLock);
	return lookup;
}

/*
 * The lookup joins of a view's analysed query, if FROM has any: each
 * table's KappaLookup, in join order, into *lookups, and the lookup row
 * they fill into *lookup_desc.  Returns the query with every column of a
 * joined table read from the lookup row (a copy; the query itself is what
 * kappa.views stores), or the query itself without joins.
 */
Query *
kappa_compile_lookups(Query *query, List **lookups, TupleDesc *lookup_desc)
{
	List	   *joins = NIL;
	JoinExpr   *top = NULL;
	LookupRowContext context;
	Query	   *rewritten;
	ListCell   *lc;
	int			ncolumns = 0;
	int			position = 0;

	*lookups = NIL;
	*lookup_desc = NULL;
	foreach(lc, query->jointree->fromlist)
	{
		if (IsA(lfirst(lc), JoinExpr))
		{
			if (top != NULL)
				elog(ERROR, "a kappa view with two joins in FROM");
			top = lfirst(lc);
		}
	}
	if (top == NULL)
		return query;
	collect_joins(query, (Node *) top, &joins);

	context.nrtes = list_length(query->rtable);
	context.positions = palloc0(sizeof(int *) * (context.nrtes + 1));
	foreach(lc, joins)
	{
		JoinExpr   *join = lfirst(lc);
		Index		rti = ((RangeTblRef *) join->rarg)->rtindex;
		UsedContext used = {.rti = rti};
		KappaLookup *lookup;
		int			attno = -1;

		(void) query_tree_walker(query, used_columns_walker, &used, QTW_IGNORE_JOINALIASES);
		lookup = compile_lookup(query, join, used.attnos);
		lookup->first = ncolumns;
		ncolumns += lookup->ncolumns;
		context.positions[rti] = palloc0(sizeof(int) * (bms_num_members(used.attnos) > 0 ?
														 bms_prev_member(used.attnos, -1) + 1 : 1));
		while ((attno = bms_next_member(used.attnos, attno)) >= 0)
			context.positions[rti][attno] = position++;
		*lookups = lappend(*lookups, lookup);
	}

	/* the lookup row: every table's columns, in join order */
	*lookup_desc = CreateTemplateTupleDesc(ncolumns);
	position = 0;
	foreach(lc, joins)
	{
		JoinExpr   *join = lfirst(lc);
		Index		rti = ((RangeTblRef *) join->rarg)->rtindex;
		RangeTblEntry *rte = rt_fetch(rti, query->rtable);
		UsedContext used = {.rti = rti};
		int			attno = -1;

		(void) query_tree_walker(query, used_columns_walker, &used, QTW_IGNORE_JOINALIASES);
		while ((attno = bms_next_member(used.attnos, attno)) >= 0)
		{
			Oid			type;
			int32		typmod;
			Oid			collation;

			get_atttypetypmodcoll(rte->relid, attno, &type, &typmod, &collation);
			TupleDescInitEntry(*lookup_desc, ++position, get_attname(rte->relid, attno, false),
							   type, typmod, 0);
			TupleDescInitEntryCollation(*lookup_desc, position, collation);
		}
	}

	/* the parameters, and the query, read the tables' columns from the lookup row */
	foreach(lc, *lookups)
	{
		KappaLookup *lookup = lfirst(lc);

		lookup->params = (List *) expression_planner((Expr *) to_lookup_row((Node *) lookup->params,
																			&context));
	}
	rewritten = query_tree_mutator(query, to_lookup_row, &context, QTW_IGNORE_JOINALIASES);
	return rewritten;
}

/*
 * A new view's joins must each find at most one row (0A000 otherwise).
 * Only a new view's: a view whose table lost its unique index since goes
 * on, and rejects the events that find more than one row.
 */
void
kappa_lookups_require_unique(List *lookups)
{
	ListCell   *lc;

	foreach(lc, lookups)
	{
		KappaLookup *lookup = lfirst(lc);

		if (!lookup->unique)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the join with %s must find at most one row per event", lookup->relname),
					 errdetail("A kappa view looks up the joined table's row for each event: its ON clause must compare every column of a primary key or unique index of the table with the event's values, using the index's equality."),
					 errhint("Join on the table's primary key, or create a unique index on the columns the ON clause compares.")));
	}
}

/*
 * SELECT on the tables a view joins, for its owner (42501 otherwise):
 * on the table, or on every column the view reads.  A worker runs the
 * lookups as the owner, where Postgres checks again.
 */
void
kappa_lookup_check_rights(Query *query, Oid owner)
{
	ListCell   *lc;

	foreach(lc, query->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		int			col = -1;

		if (foreach_current_index(lc) == 0 || rte->rtekind != RTE_RELATION)
			continue;			/* the stream's relation */
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rte->relid)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("a table the kappa view joins no longer exists")));
		if (pg_class_aclcheck(rte->relid, owner, ACL_SELECT) == ACLCHECK_OK)
			continue;
		while ((col = bms_next_member(rte->selectedCols, col)) >= 0)
		{
			AttrNumber	attno = col + FirstLowInvalidHeapAttributeNumber;

			if (attno <= 0 ||
				pg_attribute_aclcheck(rte->relid, attno, owner, ACL_SELECT) != ACLCHECK_OK)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied for table %s", get_rel_name(rte->relid)),
						 errdetail("A kappa view runs as its owner, role \"%s\", which lacks SELECT on it.",
								   GetUserNameFromId(owner, false))));
		}
	}
}

/* ---------- running ---------- */

static uint32
cache_key_hash(const void *key, Size keysize)
{
	return ((const LookupCacheKey *) key)->hash;
}

static int
cache_key_match(const void *key1, const void *key2, Size keysize)
{
	const LookupCacheKey *a = key1;
	const LookupCacheKey *b = key2;

	return (a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0) ? 0 : 1;
}

/* Append a value's bytes to a cache key: equal bytes, equal lookups. */
static void
append_value(StringInfo key, Datum value, int16 typlen, bool byval)
{
	if (byval)
		appendBinaryStringInfo(key, (char *) &value, sizeof(Datum));
	else if (typlen > 0)
		appendBinaryStringInfo(key, DatumGetPointer(value), typlen);
	else if (typlen == -1)
	{
		struct varlena *v = PG_DETOAST_DATUM_PACKED(value);
		uint32		len = VARSIZE_ANY_EXHDR(v);

		appendBinaryStringInfo(key, (char *) &len, sizeof(len));
		appendBinaryStringInfo(key, VARDATA_ANY(v), len);
	}
	else
		appendBinaryStringInfo(key, DatumGetCString(value), strlen(DatumGetCString(value)) + 1);
}

/*
 * Prepare a view's lookups, in the current memory context, which must
 * live as long as the view; the caller runs as the view's owner.
 */
KappaLookupRun *
kappa_lookups_start(List *lookups, TupleDesc lookup_desc)
{
	KappaLookupRun *run = palloc0(sizeof(KappaLookupRun));
	ListCell   *lc;

	run->ntables = list_length(lookups);
	run->tables = palloc0(sizeof(LookupTable) * run->ntables);
	run->slot = MakeSingleTupleTableSlot(lookup_desc, &TTSOpsVirtual);
	initStringInfo(&run->key);
	foreach(lc, lookups)
	{
		LookupTable *table = &run->tables[foreach_current_index(lc)];
		KappaLookup *lookup = lfirst(lc);
		Oid		   *types;
		ListCell   *pc;

		table->lookup = lookup;
		table->nparams = list_length(lookup->params);
		table->params = palloc(sizeof(ExprState *) * Max(table->nparams, 1));
		table->param_typlens = palloc(sizeof(int16) * Max(table->nparams, 1));
		table->param_byvals = palloc(sizeof(bool) * Max(table->nparams, 1));
		table->param_values = palloc(sizeof(Datum) * Max(table->nparams, 1));
		table->param_nulls = palloc(sizeof(char) * Max(table->nparams, 1));
		types = palloc(sizeof(Oid) * Max(table->nparams, 1));
		foreach(pc, lookup->params)
		{
			int			i = foreach_current_index(pc);

			types[i] = exprType(lfirst(pc));
			get_typlenbyval(types[i], &table->param_typlens[i], &table->param_byvals[i]);
			table->params[i] = ExecInitExpr(lfirst(pc), NULL);
		}
		table->typlens = palloc(sizeof(int16) * Max(lookup->ncolumns, 1));
		table->byvals = palloc(sizeof(bool) * Max(lookup->ncolumns, 1));
		for (int c = 0; c < lookup->ncolumns; c++)
		{
			Form_pg_attribute att = TupleDescAttr(lookup_desc, lookup->first + c);

			table->typlens[c] = att->attlen;
			table->byvals[c] = att->attbyval;
		}
		table->cxt = AllocSetContextCreate(CurrentMemoryContext, "kappa lookup cache",
										   ALLOCSET_DEFAULT_SIZES);
		SPI_connect();
		table->plan = SPI_prepare(lookup->sql, table->nparams, types);
		if (table->plan == NULL)
			elog(ERROR, "could not prepare the lookup \"%s\": %s", lookup->sql,
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(table->plan);
		SPI_finish();
	}
	return run;
}

/* The lookup row, which the view's expressions read as the inner tuple. */
TupleTableSlot *
kappa_lookups_slot(KappaLookupRun *run)
{
	return run->slot;
}

/*
 * The row of one table for the event in econtext: from this flush's
 * cache, or by running the statement.
 */
static LookupCacheEntry *
lookup_row(KappaLookupRun *run, LookupTable *table, ExprContext *econtext, bool *executing)
{
	StringInfo	key = &run->key;
	LookupCacheKey probe;
	LookupCacheEntry *entry;
	MemoryContext old;
	int			ret;

	if (table->cache == NULL || table->cached >= LOOKUP_CACHE_MAX)
	{
		HASHCTL		ctl;

		MemoryContextReset(table->cxt);
		ctl.keysize = sizeof(LookupCacheKey);
		ctl.entrysize = sizeof(LookupCacheEntry);
		ctl.hash = cache_key_hash;
		ctl.match = cache_key_match;
		ctl.hcxt = table->cxt;
		table->cache = hash_create("kappa lookup cache", 256, &ctl,
								   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
		table->cached = 0;
	}

	resetStringInfo(key);
	for (int i = 0; i < table->nparams; i++)
	{
		bool		isnull;

		table->param_values[i] = ExecEvalExprSwitchContext(table->params[i], econtext, &isnull);
		table->param_nulls[i] = isnull ? 'n' : ' ';
		appendStringInfoChar(key, isnull ? 'n' : 'v');
		if (!isnull)
			append_value(key, table->param_values[i], table->param_typlens[i],
						 table->param_byvals[i]);
	}
	probe.len = key->len;
	probe.bytes = key->data;
	probe.hash = hash_bytes((const unsigned char *) key->data, key->len);
	entry = hash_search(table->cache, &probe, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	*executing = true;
	SPI_connect();
	ret = SPI_execute_plan(table->plan, table->param_values, table->param_nulls, false, 2);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "lookup in %s failed: %s", table->lookup->relname, SPI_result_code_string(ret));
	old = MemoryContextSwitchTo(table->cxt);
	probe.bytes = palloc(key->len + 1);
	memcpy(probe.bytes, key->data, key->len);
	entry = hash_search(table->cache, &probe, HASH_ENTER, NULL);
	entry->nrows = (uint32) Min(SPI_processed, 2);
	entry->values = NULL;
	entry->nulls = NULL;
	if (entry->nrows == 1)
	{
		int			ncolumns = table->lookup->ncolumns;

		entry->values = palloc(sizeof(Datum) * Max(ncolumns, 1));
		entry->nulls = palloc(sizeof(bool) * Max(ncolumns, 1));
		for (int c = 0; c < ncolumns; c++)
		{
			Datum		value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											  c + 1, &entry->nulls[c]);

			entry->values[c] = entry->nulls[c] ? (Datum) 0 :
				datumCopy(value, table->byvals[c], table->typlens[c]);
		}
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	*executing = false;
	table->cached++;
	return entry;
}

/*
 * Fill the lookup row for the event in econtext's scan tuple, table by
 * table in join order (a table's parameters may read the tables joined
 * before it).  On KAPPA_LOOKUP_AMBIGUOUS, *reason says which table.
 */
KappaLookupResult
kappa_lookups_run(KappaLookupRun *run, ExprContext *econtext, bool *executing, char **reason)
{
	TupleTableSlot *slot = run->slot;
	int			natts = slot->tts_tupleDescriptor->natts;

	ExecClearTuple(slot);
	for (int i = 0; i < natts; i++)
	{
		slot->tts_values[i] = (Datum) 0;
		slot->tts_isnull[i] = true;
	}
	ExecStoreVirtualTuple(slot);
	econtext->ecxt_innertuple = slot;
	for (int t = 0; t < run->ntables; t++)
	{
		LookupTable *table = &run->tables[t];
		LookupCacheEntry *entry = lookup_row(run, table, econtext, executing);

		if (entry->nrows > 1)
		{
			*reason = psprintf("more than one row of %s matches the event",
							   table->lookup->relname);
			return KAPPA_LOOKUP_AMBIGUOUS;
		}
		if (entry->nrows == 0)
		{
			if (!table->lookup->left)
				return KAPPA_LOOKUP_MISSING;
			continue;			/* LEFT JOIN: its columns stay null */
		}
		for (int c = 0; c < table->lookup->ncolumns; c++)
		{
			slot->tts_values[table->lookup->first + c] = entry->values[c];
			slot->tts_isnull[table->lookup->first + c] = entry->nulls[c];
		}
	}
	return KAPPA_LOOKUP_FOUND;
}

/* A flush: what the cache holds may have changed since. */
void
kappa_lookups_forget(KappaLookupRun *run)
{
	for (int t = 0; t < run->ntables; t++)
	{
		if (run->tables[t].cache != NULL)
		{
			MemoryContextReset(run->tables[t].cxt);
			run->tables[t].cache = NULL;
			run->tables[t].cached = 0;
		}
	}
}

/* Free the prepared statements, which live in the plan cache. */
void
kappa_lookups_free(KappaLookupRun *run)
{
	for (int t = 0; t < run->ntables; t++)
	{
		if (run->tables[t].plan != NULL)
			SPI_freeplan(run->tables[t].plan);
		run->tables[t].plan = NULL;
	}
}
