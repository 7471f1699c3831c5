/*-------------------------------------------------------------------------
 *
 * replay.c
 *	  kappa_replay: rebuild a view from its stream's history and swap it in.
 *
 * Replay makes this a Kappa system: a view is rebuilt, with its own query
 * or a new one, by reading the stream's history again through the very
 * engine the live worker runs (engine.c, kappa_engine_create_replay).
 * The history is the archive (kappa.archive_files, Capture files) for the
 * offsets the log no longer holds, and the log for the rest, up to where
 * it ends when the replay starts.
 *
 * It runs in the calling backend, in the caller's transaction, which is
 * what makes it simple and safe: the new version (a kappa.views row with
 * status 'replaying', its own rows table, states and positions) is built
 * invisibly; then, in the same transaction, the user-facing view is
 * pointed at the new rows table with the new version's read query
 * (kappa_view_read_query: HAVING and top N are applied when the view is
 * read), by CREATE OR REPLACE VIEW, so that a query waiting on it sees
 * either version whole; the old version is dropped, and the new one
 * becomes live.  One commit makes it all visible.  The live worker
 * goes on meanwhile; at its next flush after the commit it drops the old
 * version and loads the new one from the positions the replay committed,
 * reading again from there: no message is missed or counted twice across
 * the handover.  A cancelled or crashed replay rolls back: the live view
 * is untouched, and nothing is left to clean.  The cost: a long
 * transaction, and the old version is dropped only once no reader holds it
 * (DROP TABLE waits for them).
 *
 * since/until bound the event time the new version covers, for good: they
 * are stored in its options, and the worker goes on filtering by them.
 * Progress is reported with NOTICEs, one per phase and one per 100,000
 * events, and in kappa_replays (shared memory).  With swap => false the new
 * version goes live beside the current one instead (keep_beside);
 * kappa_compare and kappa_promote work on such versions.
 *
 * Rights (catalog.c): only the view's owner (or a member of the owning
 * role) may replay, compare or promote it.  Every version belongs to the
 * view's owner, whoever replays it: its code runs as the owner, its rows
 * table and user-facing view are the owner's, and kappa_compare turns rows
 * into jsonb as the owner.  An event that fails is a poison as in a worker
 * (poison.c): the replay works in subtransactions of one flush each, rolls
 * the failing one back and reads again from what the new version stored.
 *
 * Lifetime: a backend holds at most one progress slot, freed when the
 * replay's transaction ends, or the backend exits, whichever comes first;
 * the engine and everything the replay reads live in a context of the
 * call, which an error takes with the transaction.
 *
 * src/api/replay.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"

#include "api/create_view.h"
#include "archive/archive.h"
#include "engine/engine.h"
#include "engine/history.h"
#include "engine/portable.h"
#include "engine/view_read.h"
#include "guc.h"
#include "kafka/kafka.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/ddl.h"
#include "kappa_catalog/gaps.h"
#include "kappa_catalog/positions.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"
#include "kappa_catalog/view_version.h"
#include "shmem.h"
#include "subxact.h"

PG_FUNCTION_INFO_V1(kappa_replay);
PG_FUNCTION_INFO_V1(kappa_replay_status);
PG_FUNCTION_INFO_V1(kappa_compare);
PG_FUNCTION_INFO_V1(kappa_promote);

#define REPLAY_NOTICE_EVERY 100000

/* The phases kappa_replays shows while history is read (and "swap"). */
static const char PHASE_ARCHIVE[] = "archive";
static const char PHASE_LOG[] = "log";

/* What a replay is doing, for its callbacks and notices. */
typedef struct Replay
{
	KappaEngine *engine;
	const char *name;
	int64		archive_events;
	int64		log_events;
	int64		noticed;
	int64		reported;		/* events when progress was last published */
	const int64 *log_to;		/* where the log is read to, per partition */
	int32		partitions_read;	/* to the end of the log */
	int64		flushed_archive_events;	/* the counts at the last flush, */
	int64		flushed_log_events; /* which a rollback goes back to */
	KappaSubxact sub;			/* of the events since the last flush */
	const char *phase;			/* "archive" or "log": what is read now */
	MemoryContext cxt;			/* the replay's memory */
} Replay;

/* This backend's progress slot (kappa_replays), or -1. */
static int	progress_slot = -1;
static bool progress_exit_registered = false;

static void progress_start(const char *view, int32 partitions, int64 events);
static void progress_update(const char *phase, int32 partitions_done, int64 events_done);
static void progress_end(int code, Datum arg);
static void progress_xact_end(XactEvent event, void *arg);

static void replay_event(Replay *r, const KappaMessage *m);
static void replay_archive_message(const KappaMessage *m, void *arg);
static void replay_log_message(const KappaMessage *m, void *arg);
static void replay_run(Replay *r, KappaStream *stream, int nparts, int32 new_id,
					   const int64 *first, const int64 *low, const int64 *high);
static void replay_read(Replay *r, KappaStream *stream, int nparts, const int64 *first,
						const int64 *low, const int64 *high);
static void swap(const char *schema, const char *relname, Oid owner, int32 old_id, int32 new_id);
static char *replay_name(const char *relname, int32 view_id);
static bool columns_extend(const char *user_view, int32 new_id, int nvisible);
static void recreate_user_view(const char *user_view, const char *read_query, Oid owner);
static Jsonb *bound_options(Jsonb *options, TimestampTz since, TimestampTz until);
static void keep_beside(const char *schema, const char *relname, Oid owner, int32 new_id);
static int32 version_id(const char *schema, const char *relname, int32 version, char **view_name);

/*
 * Claim a progress slot for this replay, if one is free (a replay without
 * one just goes unreported).  The backend frees it when the replay ends,
 * and at exit.
 */
static void
progress_start(const char *view, int32 partitions, int64 events)
{
	if (!progress_exit_registered)
	{
		/* an error or a cancel ends the transaction, and the replay */
		RegisterXactCallback(progress_xact_end, NULL);
		before_shmem_exit(progress_end, (Datum) 0);
		progress_exit_registered = true;
	}
	for (int i = 0; i < KAPPA_MAX_REPLAYS && progress_slot < 0; i++)
	{
		KappaReplaySlot *slot = &kappa_shared->replays[i];

		SpinLockAcquire(&slot->mutex);
		if (slot->pid == 0)
		{
			slot->pid = MyProcPid;
			strlcpy(slot->view, view, sizeof(slot->view));
			strlcpy(slot->phase, "starting", sizeof(slot->phase));
			slot->partitions_done = 0;
			slot->partitions_total = partitions;
			slot->events_done = 0;
			slot->events_total = events;
			slot->started_at = GetCurrentTimestamp();
			progress_slot = i;
		}
		SpinLockRelease(&slot->mutex);
	}
}

/* Publish a replay's progress (a negative count leaves it as it was). */
static void
progress_update(const char *phase, int32 partitions_done, int64 events_done)
{
	KappaReplaySlot *slot;

	if (progress_slot < 0)
		return;
	slot = &kappa_shared->replays[progress_slot];
	SpinLockAcquire(&slot->mutex);
	if (phase)
		strlcpy(slot->phase, phase, sizeof(slot->phase));
	if (partitions_done >= 0)
		slot->partitions_done = partitions_done;
	if (events_done >= 0)
		slot->events_done = events_done;
	SpinLockRelease(&slot->mutex);
}

/* Free this backend's progress slot: the replay ended, or the backend. */
static void
progress_end(int code, Datum arg)
{
	KappaReplaySlot *slot;

	if (progress_slot < 0)
		return;
	slot = &kappa_shared->replays[progress_slot];
	SpinLockAcquire(&slot->mutex);
	if (slot->pid == MyProcPid)
		slot->pid = 0;
	SpinLockRelease(&slot->mutex);
	progress_slot = -1;
}

/* A replay lives in one transaction: whichever way it ends, so does it. */
static void
progress_xact_end(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
		progress_end(0, (Datum) 0);
}

/*
 * kappa_replay_status() returns the progress of the replays running now:
 * the data behind the kappa_replays view.
 */
Datum
kappa_replay_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	kappa_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < KAPPA_MAX_REPLAYS; i++)
	{
		KappaReplaySlot copy;
		KappaReplaySlot *slot = &kappa_shared->replays[i];
		Datum		values[8];
		bool		nulls[8] = {0};

		SpinLockAcquire(&slot->mutex);
		memcpy(&copy, slot, sizeof(copy));
		SpinLockRelease(&slot->mutex);
		if (copy.pid == 0)
			continue;
		values[0] = CStringGetTextDatum(copy.view);
		values[1] = Int32GetDatum(copy.pid);
		values[2] = CStringGetTextDatum(copy.phase);
		values[3] = Int32GetDatum(copy.partitions_done);
		values[4] = Int32GetDatum(copy.partitions_total);
		values[5] = Int64GetDatum(copy.events_done);
		values[6] = Int64GetDatum(copy.events_total);
		values[7] = TimestampTzGetDatum(copy.started_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* Run one message through the new version; flush and report now and then. */
static void
replay_event(Replay *r, const KappaMessage *m)
{
	kappa_engine_process(r->engine, m);
	if (r->archive_events + r->log_events >= r->reported + 10000)
	{
		r->reported = r->archive_events + r->log_events;
		progress_update(NULL, -1, r->reported);
	}
	if (kappa_engine_flush_due(r->engine))
	{
		/* what is flushed is kept: a poison later rolls back to here */
		kappa_engine_flush(r->engine);
		kappa_subxact_commit(&r->sub);
		kappa_subxact_begin(&r->sub);
		r->flushed_archive_events = r->archive_events;
		r->flushed_log_events = r->log_events;
	}
	if (r->archive_events + r->log_events >= r->noticed + REPLAY_NOTICE_EVERY)
	{
		r->noticed = r->archive_events + r->log_events;
		ereport(NOTICE,
				(errmsg("replaying %s: " INT64_FORMAT " events from the archive, " INT64_FORMAT " from the log",
						r->name, r->archive_events, r->log_events)));
	}
}

/* A message read back from the archive, through the new version. */
static void
replay_archive_message(const KappaMessage *m, void *arg)
{
	Replay	   *r = arg;

	CHECK_FOR_INTERRUPTS();
	if (r->phase != PHASE_ARCHIVE)
		progress_update(r->phase = PHASE_ARCHIVE, -1, -1);
	r->archive_events++;
	replay_event(r, m);
}

/* A message read back from the log, through the new version. */
static void
replay_log_message(const KappaMessage *m, void *arg)
{
	Replay	   *r = arg;

	if (r->phase != PHASE_LOG)
		progress_update(r->phase = PHASE_LOG, -1, -1);
	r->log_events++;
	replay_event(r, m);
	if (m->offset == r->log_to[m->partition] - 1)
		progress_update(NULL, ++r->partitions_read, -1);
}

/*
 * Build the new version: read its history through a replay engine, in
 * subtransactions of one flush each (replay_event), so that an event that
 * fails rolls back only to the last flush; the engine is then built again
 * from what that flush stored, knows the poison, and reading goes on from
 * its positions.
 */
static void
replay_run(Replay *r, KappaStream *stream, int nparts, int32 new_id,
		   const int64 *first, const int64 *low, const int64 *high)
{
	KappaPoisons *poisons = kappa_poisons_create();
	volatile bool again = true;

	/*
	 * The stream's dead letters are dead for the new version too, as for
	 * the worker's views, until kappa_retry_dead_letters applies them to
	 * the views that read them.
	 */
	kappa_poisons_load(poisons, stream->id, 0);

	kappa_subxact_begin(&r->sub);
	while (again)
	{
		again = false;
		PG_TRY();
		{
			r->engine = kappa_engine_create_replay(stream, nparts, new_id, poisons);
			replay_read(r, stream, nparts, first, low, high);
			kappa_engine_flush(r->engine);
			kappa_subxact_commit(&r->sub);
		}
		PG_CATCH();
		{
			ErrorData  *edata = kappa_subxact_abort(&r->sub);

			if (kappa_engine_blame(r->engine, edata) == KAPPA_BLAME_NONE)
				ReThrowError(edata);
			/* back to the last flush: what was read since is read again */
			r->archive_events = r->flushed_archive_events;
			r->log_events = r->flushed_log_events;
			kappa_engine_destroy(r->engine);
			r->engine = NULL;
			kappa_subxact_begin(&r->sub);
			ereport(NOTICE,
					(errmsg("replaying %s: an event failed; going on without it", r->name),
					 errdetail("%s (SQLSTATE %s)", kappa_error_text(edata),
							   unpack_sql_state(edata->sqlerrcode))));
			again = true;
		}
		PG_END_TRY();
	}
	kappa_engine_destroy(r->engine);
	r->engine = NULL;
}

/*
 * Read the new version's history from where its engine stands to high[p]
 * in each partition, from the archive and the log (low[p]: where each
 * partition's log begins) as kappa_history_read decides.
 */
static void
replay_read(Replay *r, KappaStream *stream, int nparts, const int64 *first,
			const int64 *low, const int64 *high)
{
	int64	   *from = palloc(sizeof(int64) * Max(nparts, 1));
	KappaHistoryRead read;
	KappaConsumer *consumer;
	int			consumer_parts;

	for (int p = 0; p < nparts; p++)
		from[p] = Max(first[p], kappa_engine_start_offset(r->engine, p));
	r->log_to = high;
	read.stream = stream;
	read.nparts = nparts;
	read.from = from;
	read.to = high;
	read.log_start = low;
	read.prefer_archive = kappa_replay_prefer_archive;
	read.from_archive = replay_archive_message;
	read.from_log = replay_log_message;
	read.arg = r;
	read.what = psprintf("cannot replay %s", r->name);
	consumer = kappa_consumer_open(stream, &consumer_parts, false);
	PG_TRY();
	{
		kappa_history_read(consumer, &read);
	}
	PG_FINALLY();
	{
		kappa_consumer_close(consumer);
	}
	PG_END_TRY();
}

/*
 * The new version went on without offsets held nowhere: record them, as
 * offsets it never saw, so that kappa_views marks it incomplete.
 */
static void
record_gaps(int32 view_id, int nparts, List **gaps)
{
	KappaCatalogAccess access;

	kappa_catalog_enter(&access);
	for (int p = 0; p < nparts; p++)
	{
		ListCell   *lc;

		foreach(lc, gaps[p])
		{
			KappaSpan  *gap = lfirst(lc);

			kappa_view_gaps_insert(view_id, p, gap->from, gap->to);
		}
	}
	kappa_catalog_leave(&access);
}

/*
 * Point the user-facing view at the new version, drop the old one, and
 * make the new one live, in the caller's transaction.  The user-facing
 * view is the owner's, and stays so.
 */
static void
swap(const char *schema, const char *relname, Oid owner, int32 old_id, int32 new_id)
{
	char	   *user_view = quote_qualified_identifier(schema, relname);
	int			nvisible;
	char	   *read_query = kappa_view_read_definition(new_id, &nvisible);

	/*
	 * Both catalog rows first, in view-id order, as a worker's flush locks
	 * its views' rows (kappa_engine_sync_views): kappa_promote may swap in
	 * a version older than the current one, and deleting the higher id
	 * before updating the lower could deadlock with the flush.
	 */
	kappa_views_lock_versions(old_id, new_id);

	/*
	 * Replaced in place when the new columns extend the old ones (readers
	 * waiting on it then see the new version, and it keeps its grants),
	 * else dropped and created again, with the same grants.
	 */
	if (columns_extend(user_view, new_id, nvisible))
	{
		KappaOwnerAccess as_owner;

		kappa_owner_enter(&as_owner, owner);
		SPI_connect();
		if (SPI_execute(psprintf("CREATE OR REPLACE VIEW %s AS %s", user_view, read_query),
						false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not replace view %s", user_view);
		SPI_finish();
		kappa_owner_leave(&as_owner);
	}
	else
		recreate_user_view(user_view, read_query, owner);

	/* the old version goes, the new one takes its name and goes live */
	kappa_views_swap(old_id, new_id, relname);
	kappa_view_forget(old_id);
	kappa_wake_launcher_on_commit();
}

/*
 * Whether the columns the new version shows (the first nvisible of its
 * rows table: the hidden ones follow) begin with the user-facing view's,
 * with the same names and types: then CREATE OR REPLACE VIEW can point
 * the user-facing view at it.
 */
static bool
columns_extend(const char *user_view, int32 new_id, int nvisible)
{
	KappaCatalogAccess access;
	Oid			types[3] = {TEXTOID, TEXTOID, INT4OID};
	Datum		values[3] = {CStringGetTextDatum(user_view),
		CStringGetTextDatum(kappa_view_rows_table(new_id)), Int32GetDatum(nvisible)};
	bool		extends;
	bool		isnull;

	kappa_catalog_enter(&access);
	if (SPI_execute_with_args("SELECT NOT EXISTS (SELECT FROM pg_attribute o "
							  "  LEFT JOIN pg_attribute n ON n.attrelid = $2::regclass AND n.attnum = o.attnum "
							  "    AND NOT n.attisdropped AND n.attnum <= $3 "
							  "  WHERE o.attrelid = $1::regclass AND o.attnum > 0 AND NOT o.attisdropped "
							  "    AND (n.attname IS DISTINCT FROM o.attname OR n.atttypid IS DISTINCT FROM o.atttypid "
							  "         OR n.atttypmod IS DISTINCT FROM o.atttypmod "
							  "         OR n.attcollation IS DISTINCT FROM o.attcollation))",
							  3, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not compare the columns of two versions");
	extends = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	kappa_catalog_leave(&access);
	return extends;
}

/*
 * Drop the user-facing view and create it again with the new version's
 * read query (over its rows table), as its owner, granting again what was
 * granted on it.
 */
static void
recreate_user_view(const char *user_view, const char *read_query, Oid owner)
{
	KappaOwnerAccess as_owner;
	List	   *grants = NIL;
	ListCell   *lc;

	kappa_owner_enter(&as_owner, owner);
	SPI_connect();
	if (SPI_execute(psprintf("SELECT format('GRANT %%s ON %s TO %%s%%s', a.privilege_type, "
							 "  CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
							 "  CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) "
							 "FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a "
							 "LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee "
							 "WHERE c.oid = %s::regclass AND a.grantee <> c.relowner",
							 user_view, quote_literal_cstr(user_view)),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the grants of view %s", user_view);
	for (uint64 i = 0; i < SPI_processed; i++)
		grants = lappend(grants, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	if (kappa_ddl_own_execute(psprintf("DROP VIEW %s", user_view)) != SPI_OK_UTILITY ||
		SPI_execute(psprintf("CREATE VIEW %s AS %s", user_view, read_query),
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create view %s", user_view);
	foreach(lc, grants)
	{
		if (SPI_execute(lfirst(lc), false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not grant on view %s", user_view);
	}
	SPI_finish();
	kappa_owner_leave(&as_owner);
}

/*
 * The name of a version kept beside the current one: the view's name, cut
 * to leave room for "@vN" within NAMEDATALEN - 1 bytes (a 63-byte name
 * would otherwise be truncated back to the view's own name, which exists).
 * Versions are found by base name and number, never by this name.
 */
static char *
version_name(const char *relname, int32 version)
{
	char	   *suffix = psprintf("@v%d", version);
	int			room = NAMEDATALEN - 1 - strlen(suffix);

	return psprintf("%.*s%s", pg_mbcliplen(relname, strlen(relname), room), relname, suffix);
}

/*
 * Keep a replayed version beside the current one (swap => false): it goes
 * live as the next version of the view, named relname@vN (cut to fit), with a
 * user-facing view of that name; kappa_promote can make it current.
 */
static void
keep_beside(const char *schema, const char *relname, Oid owner, int32 new_id)
{
	KappaOwnerAccess as_owner;
	int32		version;
	char	   *name;
	char	   *read_query;

	version = kappa_views_next_version(schema, relname);
	name = version_name(relname, version);
	kappa_views_record_version(new_id, name, relname, version);

	read_query = kappa_view_read_definition(new_id, NULL);
	kappa_owner_enter(&as_owner, owner);
	SPI_connect();
	if (SPI_execute(psprintf("CREATE VIEW %s AS %s",
							 quote_qualified_identifier(schema, name), read_query),
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create view %s", name);
	SPI_finish();
	kappa_owner_leave(&as_owner);
	ereport(NOTICE,
			(errmsg("version %d of %s runs beside the current one, as %s", version, relname,
					quote_qualified_identifier(schema, name)),
			 errhint("Compare them with kappa_compare, make it current with kappa_promote.")));
}

/*
 * The id of a version of a view (the current one or one beside it; a
 * negative version: the current one), and its catalog name; an error if
 * there is none.
 */
static int32
version_id(const char *schema, const char *relname, int32 version, char **view_name)
{
	int32		id;

	if (!kappa_views_find_version(schema, relname, version, &id, view_name))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("view %s has no version %d", relname, version),
				 errhint("kappa_views lists the versions of each view.")));
	return id;
}

/*
 * kappa_compare(view, version_a, version_b) returns the rows in which two
 * versions differ, matched by the key columns they share (those of
 * version_a's unique index): the key, and each version's row (null where
 * it has none).
 */
Datum
kappa_compare(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KappaViewRef view;
	char	   *schema;
	char	   *relname;
	Oid			owner;
	int32		a;
	int32		b;
	char	   *table_a;
	char	   *table_b;
	KappaCatalogAccess access;
	KappaOwnerAccess as_owner;
	Oid			key_types[2] = {TEXTOID, TEXTOID};
	Datum		key_tables[2];
	StringInfoData keys;
	StringInfoData join;
	int			nkeys = 0;
	int			save_nestlevel;
	MemoryContext caller = CurrentMemoryContext;

	kappa_require_preload();
	kappa_view_resolve_owned(text_to_cstring(PG_GETARG_TEXT_PP(0)), true, &view);
	schema = view.schema;
	relname = view.relname;
	owner = view.owner;
	a = version_id(schema, relname, PG_GETARG_INT32(1), NULL);
	b = version_id(schema, relname, PG_GETARG_INT32(2), NULL);
	table_a = kappa_view_rows_table(a);
	table_b = kappa_view_rows_table(b);
	key_tables[0] = CStringGetTextDatum(table_a);
	key_tables[1] = CStringGetTextDatum(table_b);
	InitMaterializedSRF(fcinfo, 0);
	initStringInfo(&keys);
	initStringInfo(&join);

	kappa_catalog_enter(&access);
	/* the key: version a's unique columns that version b has too */
	if (SPI_execute_with_args("SELECT a.attname FROM pg_index i JOIN pg_attribute a "
							  "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
							  "WHERE i.indrelid = $1::regclass AND i.indisunique "
							  "AND EXISTS (SELECT FROM pg_attribute b WHERE b.attrelid = $2::regclass "
							  "            AND b.attname = a.attname AND NOT b.attisdropped) "
							  "ORDER BY a.attnum",
							  2, key_types, key_tables, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the keys of view %s", relname);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext spi = MemoryContextSwitchTo(caller);
		const char *col = quote_identifier(name);

		appendStringInfo(&keys, "%s%s, coalesce(a.%s, b.%s)", nkeys > 0 ? ", " : "",
						 quote_literal_cstr(name), col, col);
		/* =, since a FULL JOIN needs it; rows with a null key stay unmatched */
		appendStringInfo(&join, "%sa.%s = b.%s", nkeys > 0 ? " AND " : "", col, col);
		nkeys++;
		MemoryContextSwitchTo(spi);
	}
	kappa_catalog_leave(&access);

	/* the rows, their casts to jsonb and their keys' operators: the owner's */
	save_nestlevel = kappa_settings_enter();
	kappa_owner_enter(&as_owner, owner);
	SPI_connect();
	/*
	 * a.* and b.*: a bare a could be a column of that name.  Without key
	 * columns a version has one row at most, so the two rows are matched.
	 */
	if (SPI_execute(psprintf("SELECT %s, to_jsonb(a.*), to_jsonb(b.*) "
							 "FROM %s a FULL JOIN %s b ON %s "
							 "WHERE to_jsonb(a.*) IS DISTINCT FROM to_jsonb(b.*)",
							 nkeys > 0 ? psprintf("jsonb_build_object(%s)", keys.data) : "NULL::jsonb",
							 table_a, table_b, nkeys > 0 ? join.data : "true"),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not compare the versions of view %s", relname);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[3];
		bool		nulls[3];

		for (int c = 0; c < 3; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	kappa_owner_leave(&as_owner);
	kappa_settings_leave(save_nestlevel);
	return (Datum) 0;
}

/*
 * kappa_promote(view, version) makes a version beside the current one the
 * current one, in one transaction, as kappa_replay's swap does; the former
 * current version goes.
 */
Datum
kappa_promote(PG_FUNCTION_ARGS)
{
	KappaViewRef view;
	char	   *schema;
	char	   *relname;
	char	   *version_name;
	Oid			owner;
	int32		current;
	int32		promoted;
	KappaOwnerAccess as_owner;

	kappa_require_preload();
	kappa_view_resolve_owned(text_to_cstring(PG_GETARG_TEXT_PP(0)), true, &view);
	schema = view.schema;
	relname = view.relname;
	owner = view.owner;
	promoted = version_id(schema, relname, PG_GETARG_INT32(1), &version_name);
	if (strcmp(version_name, relname) == 0)
		return (Datum) 0;		/* current already */
	current = version_id(schema, relname, -1, NULL);

	/* the version's own name goes; the view's name will read its rows */
	kappa_owner_enter(&as_owner, owner);
	SPI_connect();
	if (kappa_ddl_own_execute(psprintf("DROP VIEW %s", quote_qualified_identifier(schema, version_name)))
		!= SPI_OK_UTILITY)
		elog(ERROR, "could not drop view %s", version_name);
	SPI_finish();
	kappa_owner_leave(&as_owner);
	swap(schema, relname, owner, current, promoted);
	kappa_views_promote(promoted);
	PG_RETURN_VOID();
}

/*
 * The new version's options: the old ones, with the event-time bounds of
 * this replay (replacing any the old version had), canonical and in UTC.
 */
static Jsonb *
bound_options(Jsonb *options, TimestampTz since, TimestampTz until)
{
	StringInfoData json;

	if (TIMESTAMP_NOT_FINITE(since) && since != DT_NOBEGIN)
		since = DT_NOBEGIN;
	if (since != DT_NOBEGIN && until != DT_NOEND && until <= since)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("until must be later than since")));
	options = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(options),
												 CStringGetTextDatum("since")));
	options = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(options),
												 CStringGetTextDatum("until")));
	initStringInfo(&json);
	appendStringInfoChar(&json, '{');
	if (since != DT_NOBEGIN)
	{
		appendStringInfoString(&json, "\"since\": ");
		escape_json(&json, kappa_canonical_time(since));
	}
	if (until != DT_NOEND && !TIMESTAMP_IS_NOEND(until))
	{
		if (since != DT_NOBEGIN)
			appendStringInfoString(&json, ", ");
		appendStringInfoString(&json, "\"until\": ");
		escape_json(&json, kappa_canonical_time(until));
	}
	appendStringInfoChar(&json, '}');
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(options),
											  DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data))));
}

/*
 * The name of a version being replayed, until the swap: the view's name,
 * cut to leave room (Postgres truncates longer names, and two replays of
 * views with the same first 55 bytes would clash), and the view's id.
 */
static char *
replay_name(const char *relname, int32 view_id)
{
	char	   *suffix = psprintf("#replay%d", view_id);
	int			room = NAMEDATALEN - 1 - strlen(suffix);

	return psprintf("%.*s%s", pg_mbcliplen(relname, strlen(relname), room), relname, suffix);
}

/*
 * kappa_replay(view, since, until, query) rebuilds a view from its stream's
 * history, with its own query or a new one, and swaps it in.  Returns the
 * events read from the archive and from the log, and the seconds taken.
 */
Datum
kappa_replay(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *schema;
	char	   *relname;
	char	   *query_text;
	char	   *plan;
	char	   *local_plan;
	KappaViewRef view;
	Jsonb	   *options;
	Oid			owner;
	int32		old_id;
	int32		new_id;
	int32		new_stream_id;
	KappaStream *stream;
	KappaCatalogAccess access;
	int			nparts;
	int64	   *low;
	int64	   *high;
	int64	   *first;
	Replay		r;
	instr_time	start;
	instr_time	elapsed;
	TupleDesc	tupdesc;
	Datum		result[3];
	bool		nulls[3] = {false, false, false};
	MemoryContext cxt;
	MemoryContext old;
	int32		total_partitions = 0;
	int64		total_events = 0;
	int			save_nestlevel;
	bool		accept_gaps = PG_NARGS() > 5 && !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
	List	  **gaps;
	int64		lost = 0;
	StringInfoData missing;

	kappa_require_preload();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	INSTR_TIME_SET_CURRENT(start);
	kappa_view_resolve_owned(name, false, &view);
	schema = view.schema;
	relname = view.relname;
	owner = view.owner;
	old_id = view.view_id;

	/*
	 * Its query, plan and options; one begun at "latest" replays from its
	 * start.  A plan another database wrote (a restored dump) is analysed
	 * again first, and that plan is the one used.
	 */
	local_plan = kappa_view_localize(old_id);
	kappa_views_replay_source(old_id, &query_text, &plan, &options);
	if (local_plan)
		plan = local_plan;
	/* a new query is analysed as at creation; the same one is as stored */
	if (!PG_ARGISNULL(3))
	{
		query_text = text_to_cstring(PG_GETARG_TEXT_PP(3));
		plan = NULL;
	}
	options = bound_options(options, PG_ARGISNULL(1) ? DT_NOBEGIN : PG_GETARG_TIMESTAMPTZ(1),
							PG_ARGISNULL(2) ? DT_NOEND : PG_GETARG_TIMESTAMPTZ(2));
	stream = kappa_stream_load_owned(view.stream_name);

	/* the new version, the view owner's, invisible until the swap */
	new_id = kappa_view_define(schema, replay_name(relname, old_id), query_text, plan, options,
							   "replaying", owner);
	save_nestlevel = kappa_settings_enter();
	new_stream_id = kappa_views_stream_id(new_id);
	if (new_stream_id != stream->id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the new query of %s must read stream \"%s\"", name, stream->name)));

	/* where the history is: the view began at first[p]; the log holds [low, high) */
	kappa_kafka_watermarks(stream, &nparts, &low, &high);
	first = palloc0(sizeof(int64) * Max(nparts, 1));
	gaps = palloc0(sizeof(List *) * Max(nparts, 1));
	kappa_catalog_enter(&access);
	{
		ListCell   *lc;

		foreach(lc, kappa_positions_view_first_offsets_in_snapshot(old_id))
		{
			KappaPosition *pos = lfirst(lc);
			int32		p = pos->partition;

			if (p >= 0 && p < nparts && pos->first_offset >= 0)	/* < 0: none */
				first[p] = pos->first_offset;
		}
	}
	kappa_catalog_leave(&access);

	/*
	 * Where each partition's history is: the log holds [low, high), the
	 * archive what kappa.archive_files records.  Offsets neither holds are
	 * a gap: an error, unless accept_gaps says to go on without them.
	 */
	initStringInfo(&missing);
	for (int p = 0; p < nparts; p++)
	{
		List	   *spans;

		if (!kappa_stream_owns(stream, p) || high[p] <= first[p])
		{
			low[p] = high[p] = first[p];	/* nothing to read there */
			continue;
		}
		total_partitions++;
		spans = kappa_history_spans(stream, p, first[p], high[p], low[p], kappa_replay_prefer_archive);
		gaps[p] = kappa_history_gaps(spans, NIL);
		lost += kappa_history_count(gaps[p], p, &missing);
		total_events += high[p] - first[p];
	}
	total_events -= lost;
	if (lost > 0 && !accept_gaps)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot replay %s: neither the archive nor the log holds " INT64_FORMAT " offsets of its history",
						name, lost),
				 errdetail("Missing: %s.", missing.data),
				 errhint("Register the Capture files that hold them with kappa_archive_register, or replay without them with kappa_replay(..., accept_gaps => true).")));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "kappa replay", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	memset(&r, 0, sizeof(r));
	r.name = name;
	r.cxt = cxt;
	ereport(NOTICE,
			(errmsg("replaying %s from the history of stream \"%s\"", name, stream->name)));
	progress_start(name, total_partitions, total_events);
	replay_run(&r, stream, nparts, new_id, first, low, high);
	MemoryContextSwitchTo(old);
	if (lost > 0)
	{
		ereport(WARNING,
				(errmsg("replayed %s without " INT64_FORMAT " offsets that neither the archive nor the log holds",
						name, lost),
				 errdetail("Missing: %s.", missing.data)));
		record_gaps(new_id, nparts, gaps);
	}

	progress_update("swap", total_partitions, r.archive_events + r.log_events);
	if (PG_NARGS() > 4 && !PG_ARGISNULL(4) && !PG_GETARG_BOOL(4))
		keep_beside(schema, relname, owner, new_id);
	else
		swap(schema, relname, owner, old_id, new_id);
	MemoryContextDelete(cxt);
	kappa_settings_leave(save_nestlevel);
	progress_end(0, (Datum) 0);

	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	ereport(NOTICE,
			(errmsg("replayed %s: " INT64_FORMAT " events from the archive, " INT64_FORMAT " from the log, in %.1f s",
					name, r.archive_events, r.log_events, INSTR_TIME_GET_DOUBLE(elapsed))));
	result[0] = Int64GetDatum(r.archive_events);
	result[1] = Int64GetDatum(r.log_events);
	result[2] = Float8GetDatum(INSTR_TIME_GET_DOUBLE(elapsed));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), result, nulls)));
}
