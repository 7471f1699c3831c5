/*-------------------------------------------------------------------------
 *
 * view_status.c
 *	  A view's status in kappa.views, as the engine sets it: incomplete
 *	  after a gap (engine/gap.c), needs_replay or failed when it cannot go
 *	  on (engine/recovery.c), and whether a stream has a view being
 *	  replayed (engine/retry.c).
 *
 * The status says whether a view's worker keeps it current: 'live' and
 * 'incomplete' views run (kappa_engine_sync_views loads those), the others
 * wait for kappa_replay or kappa_drop_view.  kappa_views shows it, with
 * the detail and SQLSTATE of a failure.  kappa_replay's versions set their
 * own status (view_version.c); a new view gets its first at its insert.
 *
 * Sections: kappa_views_mark_incomplete and kappa_views_mark_needs_replay
 * run in their caller's catalog section, which writes the gap or resets
 * the view's positions in the same one; kappa_views_mark_failed and
 * kappa_views_any_replaying open their own, and what they return is the
 * caller's memory.  Each UPDATE locks the view's row until the
 * transaction ends, as any write of it does.
 *
 * src/kappa_catalog/view_status.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/statement.h"
#include "kappa_catalog/view_status.h"

/* A live view that misses offsets becomes incomplete (other statuses stay). */
void
kappa_views_mark_incomplete(int32 view_id)
{
	static KappaStatement mark_incomplete =
		KAPPA_STATEMENT("UPDATE kappa.views SET status = 'incomplete' "
						"WHERE view_id = $1 AND status = 'live'", "int4");
	Datum		value = Int32GetDatum(view_id);

	kappa_statement_run(&mark_incomplete, &value, NULL, SPI_OK_UPDATE, 0);
}

/*
 * A view whose state was lost and cannot be rebuilt needs a replay; the
 * detail says what it misses.
 */
void
kappa_views_mark_needs_replay(int32 view_id, const char *detail)
{
	static KappaStatement mark_needs_replay =
		KAPPA_STATEMENT("UPDATE kappa.views SET status = 'needs_replay', status_detail = $2 "
						"WHERE view_id = $1", "int4", "text");
	Datum		values[2];

	values[0] = Int32GetDatum(view_id);
	values[1] = CStringGetTextDatum(detail);
	kappa_statement_run(&mark_needs_replay, values, NULL, SPI_OK_UPDATE, 0);
}

/*
 * A view failed, with the error's text and SQLSTATE.  Returns its
 * qualified name in the caller's memory, or NULL if it is gone.  Opens its
 * own catalog section.
 */
char *
kappa_views_mark_failed(int32 view_id, const char *detail, const char *sqlstate)
{
	static KappaStatement mark_failed =
		KAPPA_STATEMENT("UPDATE kappa.views SET status = 'failed', status_detail = $2, status_sqlstate = $3 "
						"WHERE view_id = $1 RETURNING format('%I.%I', schema_name, view_name)",
						"int4", "text", "text");
	MemoryContext caller = CurrentMemoryContext;
	KappaCatalogAccess catalog;
	Datum		values[3];
	char	   *name = NULL;

	values[0] = Int32GetDatum(view_id);
	values[1] = CStringGetTextDatum(detail);
	values[2] = CStringGetTextDatum(sqlstate);
	kappa_catalog_enter(&catalog);
	if (kappa_statement_run(&mark_failed, values, NULL, SPI_OK_UPDATE_RETURNING, 0) > 0)
		name = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	kappa_catalog_leave(&catalog);
	return name;
}

/*
 * Whether a view of the stream is being rebuilt by kappa_replay.  Opens
 * its own catalog section.
 */
bool
kappa_views_any_replaying(int32 stream_id)
{
	static KappaStatement replaying =
		KAPPA_STATEMENT("SELECT 1 FROM kappa.views WHERE stream_id = $1 AND status = 'replaying'",
						"int4");
	Datum		value = Int32GetDatum(stream_id);
	KappaCatalogAccess catalog;
	bool		any;

	kappa_catalog_enter(&catalog);
	any = kappa_statement_run(&replaying, &value, NULL, SPI_OK_SELECT, 1) > 0;
	kappa_catalog_leave(&catalog);
	return any;
}
