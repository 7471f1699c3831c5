/*-------------------------------------------------------------------------
 *
 * compile.h
 *	  From a view's SELECT to what its worker runs.
 *
 * src/engine/compile.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_COMPILE_H
#define KAPPA_COMPILE_H

#include "nodes/parsenodes.h"

#include "engine/window.h"
#include "kappa_catalog/stream.h"

/*
 * One ORDER BY item of a top-N view (or a tie-break key), over a column of
 * the rows table: what the user-facing view's window function sorts by.
 */
typedef struct KappaSortItem
{
	char	   *column;			/* the rows table's column */
	Oid			type;
	Oid			sortop;			/* as the query sorts: <, > or USING's */
	Oid			collation;		/* the expression's, or InvalidOid */
	bool		nulls_first;
} KappaSortItem;

/*
 * A view's query, taken apart.  All expressions are over the stream's
 * relation (range table index 1) and, if the view joins tables, the
 * lookup row of their columns (INNER_VAR; lookup.c), planned
 * (expression_planner), and free of the window's columns.  The output
 * target list is over the "group row": the key values (attributes
 * 1..nkeys), window_start and window_end (nkeys+1, nkeys+2), then the
 * aggregates' results.
 *
 * The output is the rows table's columns: the select list (nvisible
 * columns, which the user-facing view shows), then hidden columns
 * (resjunk) that the user-facing view reads to filter and rank the groups
 * when it is read: kappa_order_<n>, an ORDER BY expression that is not in
 * the select list, and kappa_having, HAVING's verdict on the group.  Every
 * group is stored, whatever HAVING and LIMIT say (see
 * kappa_view_read_query).
 */
typedef struct KappaViewSpec
{
	Query	   *query;
	KappaWindow window;
	Expr	   *window_ts;		/* the window's time argument, or NULL */
	Expr	   *where;			/* or NULL */
	List	   *keys;			/* Expr: the GROUP BY expressions */
	List	   *key_eqops;		/* Oid: their equality operators */
	List	   *aggrefs;		/* Aggref, in group-row order */
	List	   *output;			/* TargetEntry over the group row */
	List	   *unique_columns; /* char *: output columns that identify a row */
	TupleDesc	group_desc;		/* the group row */
	List	   *lookups;		/* KappaLookup: the tables joined, in join order */
	TupleDesc	lookup_desc;	/* the lookup row they fill, or NULL */
	int			nvisible;		/* output columns the user-facing view shows */
	char	   *having_column;	/* the hidden column of HAVING's verdict, or NULL */
	List	   *order;			/* KappaSortItem: ORDER BY of a top-N view */
	List	   *tiebreak;		/* KappaSortItem: the GROUP BY keys, for LIMIT */
	int64		limit;			/* the N of top N, or 0 */
	bool		with_ties;		/* FETCH FIRST N ROWS WITH TIES: rank, not row_number */
	char	   *partition_column;	/* window_start's column: top N per window */
} KappaViewSpec;

/* Names of the rows table's hidden columns and of the read query's rank. */
#define KAPPA_HAVING_COLUMN "kappa_having"
#define KAPPA_ORDER_COLUMN_PREFIX "kappa_order_"
#define KAPPA_RANK_COLUMN "kappa_rank"

extern Query *kappa_analyze_view(const char *query_text, KappaStream **stream);
extern Query *kappa_analyze_definition(const char *definition, KappaStream *stream);
extern Query *kappa_stored_view(const char *plan, KappaStream **stream);
extern KappaViewSpec *kappa_compile_view(Query *query);
extern void kappa_view_check_rights(Query *query, Oid owner);
extern void kappa_view_check_deterministic(Node *node, const char *clause);
extern void kappa_view_rewrite_aggregates(Node *target_list);
extern void kappa_view_check_aggregate(Aggref *aggref);
extern void kappa_view_unsupported(const char *construct, const char *hint) pg_attribute_noreturn();

#endif							/* KAPPA_COMPILE_H */
