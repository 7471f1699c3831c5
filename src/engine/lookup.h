/*-------------------------------------------------------------------------
 *
 * lookup.h
 *	  Lookup joins: a view's stream joined with ordinary tables by key.
 *
 * src/engine/lookup.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_LOOKUP_H
#define KAPPA_LOOKUP_H

#include "access/tupdesc.h"
#include "nodes/execnodes.h"
#include "nodes/parsenodes.h"

/*
 * One table joined to the stream: the statement that finds its row for an
 * event, and where that row's columns go in the view's lookup row (the
 * inner tuple its expressions read the tables' columns from).
 */
typedef struct KappaLookup
{
	Oid			relid;
	char	   *relname;		/* qualified and quoted, for messages */
	bool		left;			/* LEFT JOIN: no row gives nulls; else the event is filtered */
	char	   *sql;			/* SELECT of its columns the view reads, by the ON clause */
	List	   *params;			/* Expr: $1, $2, ... over the event and earlier lookups */
	int			first;			/* its first column in the lookup row (0-based) */
	int			ncolumns;
	bool		unique;			/* the ON clause covers a unique index */
} KappaLookup;

/* What a lookup found for an event. */
typedef enum KappaLookupResult
{
	KAPPA_LOOKUP_FOUND,			/* every table's row, or nulls of a LEFT JOIN */
	KAPPA_LOOKUP_MISSING,		/* no row of an inner join: the event is filtered */
	KAPPA_LOOKUP_AMBIGUOUS		/* more than one row: the event is rejected */
} KappaLookupResult;

typedef struct KappaLookupRun KappaLookupRun;

/* compiling (compile.c calls it) */
extern Query *kappa_compile_lookups(Query *query, List **lookups, TupleDesc *lookup_desc);
extern void kappa_lookup_check_rights(Query *query, Oid owner);
extern void kappa_lookups_require_unique(List *lookups);

/* running (engine) */
extern KappaLookupRun *kappa_lookups_start(List *lookups, TupleDesc lookup_desc);
extern KappaLookupResult kappa_lookups_run(KappaLookupRun *run, ExprContext *econtext,
										   bool *executing, char **reason);
extern TupleTableSlot *kappa_lookups_slot(KappaLookupRun *run);
extern void kappa_lookups_forget(KappaLookupRun *run);
extern void kappa_lookups_free(KappaLookupRun *run);

#endif							/* KAPPA_LOOKUP_H */
