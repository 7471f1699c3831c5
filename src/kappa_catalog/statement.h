/*-------------------------------------------------------------------------
 *
 * statement.h
 *	  kappa's catalog statements: constant SQL, prepared once per backend,
 *	  prepared again when kappa's catalog is replaced.
 *
 * src/kappa_catalog/statement.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_STATEMENT_H
#define KAPPA_STATEMENT_H

#include "executor/spi.h"
#include "nodes/parsenodes.h"

#define KAPPA_STATEMENT_MAX_ARGS 16

/*
 * One statement against kappa's catalog: its text, with $1..$n, and the
 * names of its parameters' types (as SQL spells them: "int4", "bytea[]",
 * "kappa.view_state[]"), resolved when it is prepared.  Declare each as a
 * static variable beside the one function that runs it:
 *
 *	static KappaStatement forget_gaps =
 *		KAPPA_STATEMENT("DELETE FROM kappa.view_gaps WHERE view_id = $1", "int4");
 */
typedef struct KappaStatement
{
	const char *sql;
	const char *types[KAPPA_STATEMENT_MAX_ARGS];	/* NULL after the last */
	int			cursor_options; /* CURSOR_OPT_CUSTOM_PLAN, or 0 */
	/* private to statement.c */
	SPIPlanPtr	plan;			/* kept, or NULL until first run */
	uint64		generation;		/* of the catalog it was prepared for */
} KappaStatement;

#define KAPPA_STATEMENT(sql_text, ...) \
	{ .sql = (sql_text), .types = { __VA_ARGS__ } }

/*
 * A statement planned for its parameters' values at every run, never with
 * a generic plan: for parameters whose size decides the plan (an array of
 * one group or of ten thousand).  Parsed and analysed once all the same.
 */
#define KAPPA_STATEMENT_PLANNED_EACH_RUN(sql_text, ...) \
	{ .sql = (sql_text), .types = { __VA_ARGS__ }, .cursor_options = CURSOR_OPT_CUSTOM_PLAN }

extern uint64 kappa_statement_run(KappaStatement *stmt, const Datum *values,
								  const char *nulls, int expected, long count);
extern uint64 kappa_statement_read(KappaStatement *stmt, const Datum *values,
								   const char *nulls, long count);
extern SPIPlanPtr kappa_statement_plan(KappaStatement *stmt);
extern uint64 kappa_catalog_generation(void);
extern void kappa_catalog_replaced(void);

#endif							/* KAPPA_STATEMENT_H */
