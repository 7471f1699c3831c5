/*-------------------------------------------------------------------------
 *
 * statement.c
 *	  Running kappa's catalog statements: each prepared once per backend
 *	  and kept, prepared again when kappa's catalog is replaced.
 *
 * Every statement against kappa's tables is a KappaStatement: constant
 * text with $n parameters, declared beside the one typed function of this
 * folder that runs it (positions.c, view_state.c, ...), so that the rest
 * of kappa calls functions, not SQL.  The first run in a backend prepares
 * it (SPI_prepare, then SPI_keepplan); later runs reuse the plan.  A
 * statement whose best plan depends on its parameters' size (an array of
 * a flush's groups) is declared KAPPA_STATEMENT_PLANNED_EACH_RUN: parsed
 * once, planned at every run (CURSOR_OPT_CUSTOM_PLAN).  A statement that
 * only reads may run read-only (kappa_statement_read), in the caller's
 * snapshot, as a STABLE function's statements do.
 *
 * Invalidation has two levels:
 *
 * - A kept plan is in Postgres's plan cache, which revalidates it after
 *   any invalidation of what it depends on (an ALTER TABLE on one of
 *   kappa's tables, an index created or dropped), as for any prepared
 *   statement.
 *
 * - What the plan cache cannot redo is resolving the parameters' types,
 *   which it keeps as OIDs; they may name kappa's own types.  When schema
 *   kappa is dropped or created (DROP and CREATE EXTENSION, in this
 *   session or another), a syscache callback on pg_namespace moves the
 *   catalog generation on, and each statement is prepared afresh, its
 *   types resolved again, on its next run.  A caller that finds one of
 *   kappa's tables replaced within the schema says so
 *   (kappa_catalog_replaced), with the same effect.
 *
 * An ALTER EXTENSION kappa UPDATE does not replace the schema; no plan
 * of the new library exists before it commits, because the library runs
 * no catalog statement against an older catalog (catalog.c).
 *
 * Rights: statements run only in a catalog section (catalog.c), which
 * kappa_statement_run checks, as the bootstrap superuser with search_path
 * pinned to pg_catalog; a type name of kappa's is therefore qualified.
 *
 * Lifetime: a plan lives in CacheMemoryContext until it is replaced; the
 * statements are static variables of their files.
 *
 * src/kappa_catalog/statement.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "parser/parse_type.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/statement.h"

/*
 * The generation of kappa's catalog the statements were prepared for,
 * and the hash under which pg_namespace's syscache knows schema kappa's
 * row (0 until a statement was prepared, and after the schema changed).
 */
static uint64 catalog_generation = 1;
static uint32 kappa_namespace_hash = 0;
static bool callback_registered = false;

/*
 * pg_namespace changed.  A reset (hashvalue 0) or a change of kappa's row
 * (its drop; a new schema kappa has a row the hash did not know, but then
 * the old one was dropped first) replaces the catalog.
 */
static void
namespace_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	if (hashvalue == 0 || hashvalue == kappa_namespace_hash)
	{
		catalog_generation++;
		kappa_namespace_hash = 0;
	}
}

/*
 * The generation of kappa's catalog: it changes when schema kappa is
 * dropped or created, so a cache of something in it (a type's OID, a
 * tuple descriptor) can tell that it must be read again.
 */
uint64
kappa_catalog_generation(void)
{
	if (!callback_registered)
	{
		CacheRegisterSyscacheCallback(NAMESPACEOID, namespace_callback, (Datum) 0);
		callback_registered = true;
	}
	if (kappa_namespace_hash == 0)
	{
		Oid			namespace = get_namespace_oid("kappa", false);

		kappa_namespace_hash = GetSysCacheHashValue1(NAMESPACEOID,
													 ObjectIdGetDatum(namespace));
	}
	return catalog_generation;
}

/*
 * Say that kappa's catalog was replaced, as the syscache callback would:
 * for a caller that found one of kappa's tables replaced within the
 * schema.  Every statement is prepared again on its next run.
 */
void
kappa_catalog_replaced(void)
{
	catalog_generation++;
	kappa_namespace_hash = 0;
}

/*
 * The statement's plan, prepared (or prepared again, for a new catalog)
 * and kept.  For callers that open a cursor on it.  In a catalog section.
 */
SPIPlanPtr
kappa_statement_plan(KappaStatement *stmt)
{
	uint64		generation = kappa_catalog_generation();
	Oid			types[KAPPA_STATEMENT_MAX_ARGS];
	int			nargs;
	SPIPlanPtr	plan;

	if (stmt->plan != NULL && stmt->generation == generation)
		return stmt->plan;

	for (nargs = 0; nargs < KAPPA_STATEMENT_MAX_ARGS && stmt->types[nargs] != NULL; nargs++)
	{
		int32		typmod;

		parseTypeString(stmt->types[nargs], &types[nargs], &typmod, false);
	}
	plan = SPI_prepare_cursor(stmt->sql, nargs, types, stmt->cursor_options);
	if (plan == NULL)
		elog(ERROR, "could not prepare a kappa catalog statement (%s): %s",
			 SPI_result_code_string(SPI_result), stmt->sql);
	SPI_keepplan(plan);
	if (stmt->plan != NULL)
		SPI_freeplan(stmt->plan);
	stmt->plan = plan;
	stmt->generation = generation;
	return plan;
}

/* Run a statement in a catalog section, expecting the result code given. */
static uint64
execute(KappaStatement *stmt, const Datum *values, const char *nulls, bool read_only,
		int expected, long count)
{
	int			rc;

	kappa_catalog_check();
	rc = SPI_execute_plan(kappa_statement_plan(stmt), (Datum *) values, nulls, read_only, count);
	if (rc != expected)
		elog(ERROR, "kappa catalog statement failed (%s): %s",
			 SPI_result_code_string(rc), stmt->sql);
	return SPI_processed;
}

/*
 * Run a catalog statement with its parameters' values (nulls as SPI
 * takes them: 'n' for null, ' ' otherwise, or NULL for none), expecting
 * the SPI result code given; at most count rows if count > 0.  Returns
 * SPI_processed; the rows, if any, are in SPI_tuptable.
 */
uint64
kappa_statement_run(KappaStatement *stmt, const Datum *values, const char *nulls,
					int expected, long count)
{
	return execute(stmt, values, nulls, false, expected, count);
}

/*
 * Run a catalog statement that only reads, as a read-only SPI execution
 * (no new snapshot, no command counter increment: what a STABLE caller
 * needs), expecting rows; at most count if count > 0.  Returns
 * SPI_processed; the rows are in SPI_tuptable.
 */
uint64
kappa_statement_read(KappaStatement *stmt, const Datum *values, const char *nulls, long count)
{
	return execute(stmt, values, nulls, true, SPI_OK_SELECT, count);
}
