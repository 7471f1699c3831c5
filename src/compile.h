/*-------------------------------------------------------------------------
 *
 * compile.h
 *	  From a view's SELECT to what its worker runs.
 *
 * src/compile.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_COMPILE_H
#define KAPPA_COMPILE_H

#include "nodes/parsenodes.h"

#include "stream.h"
#include "window.h"

/*
 * A view's query, taken apart.  All expressions are over the stream's
 * relation (range table index 1) and, if the view joins tables, the
 * lookup row of their columns (INNER_VAR; lookup.c), planned
 * (expression_planner), and free of the window's columns.  The output target list is over the "group
 * row": the key values (attributes 1..nkeys), window_start and window_end
 * (nkeys+1, nkeys+2), then the aggregates' results.
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
} KappaViewSpec;

extern Query *kappa_analyze_view(const char *query_text, KappaStream **stream);
extern Query *kappa_analyze_definition(const char *definition, KappaStream *stream);
extern Query *kappa_stored_view(const char *plan, KappaStream **stream);
extern KappaViewSpec *kappa_compile_view(Query *query);
extern char *kappa_stream_relation_name(int32 stream_id);
extern void kappa_check_view_rights(Query *query, Oid owner);
extern void kappa_view_unsupported(const char *construct, const char *hint) pg_attribute_noreturn();

#endif							/* KAPPA_COMPILE_H */
