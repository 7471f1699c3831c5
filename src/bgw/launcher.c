/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The kappa launcher: one background worker that starts, stops and
 *	  restarts the workers of each stream (kappa.workers_per_stream).
 *
 * The launcher is a static background worker, registered by _PG_init while
 * the library is preloaded, connected to kappa.database.  It keeps the set
 * of running stream workers (kappa.workers_per_stream per stream, each with
 * its own slot and backoff) equal to the set of streams in the catalog:
 * it reads kappa.streams when a backend that created, altered or dropped a
 * stream wakes it (its latch is in shared memory), or at the latest every
 * kappa.launcher_naptime, and starts or stops workers to match.  It only
 * starts once recovery has finished, so nothing kappa does writes on a
 * hot standby; a promoted standby starts it.
 *
 * Restored streams: a stream whose origin (kappa.origin()) is another
 * database's came from a dump; the launcher starts its workers only once
 * the dump's last data, its sentinel row, has been restored (see
 * launcher_adopt_restored), so no worker writes positions or dead letters
 * that the rest of the restore would collide with.
 *
 * Versions: while kappa's catalog is older than the library (the files of
 * a new version installed, ALTER EXTENSION kappa UPDATE not run yet), the
 * launcher says so once, with a hint, and starts no worker; it starts
 * them once the update has committed (which wakes it), so that no worker
 * ever runs against a catalog it does not know.
 *
 * Altered streams: kappa_alter_stream bumps kappa.streams.revision and
 * wakes the launcher at commit; a revision other than the one last read
 * makes the launcher stop the stream's workers and start them again at
 * once, so that they run the new definition from their stored positions
 * (launcher_restart_altered).
 *
 * Restart discipline: stream workers are dynamic background workers that
 * the postmaster never restarts itself (BGW_NEVER_RESTART); when one exits,
 * the launcher restarts it after 1 s, 2 s, 4 s, ... up to
 * kappa.restart_backoff_max, resetting the delay once a worker has run for
 * a minute.  A worker that keeps failing therefore costs one attempt every
 * few minutes, and its last error stays visible in kappa_workers.  A
 * worker that stops for a reason of its stream's own (its open state
 * outgrew kappa.max_state_memory) says so in its slot (state "failed"):
 * the launcher does not restart it until the settings are reloaded or a
 * backend changes the catalog (a view dropped or replayed, say), since
 * restarting it as it is would only fail again.  The launcher itself is
 * restarted by the postmaster after 10 s if it dies.
 *
 * Locking: the launcher is the only process that allocates or frees worker
 * slots; see shmem.c.  On SIGTERM it exits, stopping its workers first.
 *
 * Lifetime: the supervised streams and their worker handles live in
 * TopMemoryContext for the launcher's life; each is freed when its stream
 * leaves the catalog.
 *
 * src/bgw/launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "bgw/launcher.h"
#include "bgw/worker.h"
#include "engine/portable.h"
#include "guc.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/stream_origin.h"
#include "kappa_catalog/stream_rows.h"
#include "shmem.h"

/* A worker that ran this long before exiting starts its backoff afresh. */
#define LAUNCHER_HEALTHY_RUN_MS (60 * 1000)
#define LAUNCHER_RESTART_SECONDS 10
/* How long a new launcher waits for an old launcher's workers to exit. */
#define LAUNCHER_ORPHAN_WAIT_MS (30 * 1000)

/* A stream worker the launcher supervises: one per stream and worker index. */
typedef struct SupervisedStream
{
	int32		stream_id;
	char		name[NAMEDATALEN];
	int32		worker;			/* 0 .. kappa.workers_per_stream - 1 */
	int			slot;
	BackgroundWorkerHandle *handle; /* NULL when not running */
	bool		in_catalog;		/* seen by the latest catalog read */
	int32		revision;		/* the stream's, as last read */
	bool		altered;		/* since its worker started: restart it */
} SupervisedStream;

static List *supervised = NIL;	/* SupervisedStream *, in TopMemoryContext */
static bool retry_failed = false;	/* start failed workers again */
static bool slots_exhausted_reported = false;
static bool catalog_read_once = false;
static bool version_mismatch_reported = false;	/* said once per launcher */
static List *waiting_noted = NIL;	/* ids of restored streams said to wait */

static void launcher_reset_slots(void);
static void launcher_read_catalog(void);
static void launcher_adopt_restored(const char *origin);
static void launcher_add_stream(int32 stream_id, const char *name, int32 revision);
static void launcher_add_worker(int32 stream_id, const char *name, int32 worker,
								int32 revision);
static void launcher_restart_altered(SupervisedStream *ss);
static void launcher_remove_stream(SupervisedStream *ss);
static long launcher_supervise(void);
static void launcher_start_worker(SupervisedStream *ss);
static void launcher_stop_worker(SupervisedStream *ss);
static void launcher_note_exit(SupervisedStream *ss);
static void launcher_schedule_restart(SupervisedStream *ss);
static void launcher_shutdown(int code, Datum arg);
static void describe_worker(BackgroundWorker *worker, const char *function,
							const char *type, int restart_time);

/*
 * Fill in what kappa's background workers have in common: they use a
 * database connection and run only once recovery has finished, so nothing
 * of kappa's ever writes on a hot standby.
 */
static void
describe_worker(BackgroundWorker *worker, const char *function,
				const char *type, int restart_time)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = restart_time;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "kappa");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s", type);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", type);
}

/* Register the launcher; called from _PG_init while preloading. */
void
kappa_launcher_register(void)
{
	BackgroundWorker worker;

	describe_worker(&worker, "kappa_launcher_main", "kappa launcher",
					LAUNCHER_RESTART_SECONDS);
	RegisterBackgroundWorker(&worker);
}

/* Entry point of the launcher. */
void
kappa_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	kappa_launcher_attach();
	launcher_reset_slots();
	before_shmem_exit(launcher_shutdown, (Datum) 0);

	BackgroundWorkerInitializeConnection(kappa_database, NULL, 0);
	pgstat_report_appname("kappa launcher");
	ereport(LOG,
			(errmsg("kappa launcher started in database \"%s\"", kappa_database)));

	for (;;)
	{
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			bool		was_enabled = kappa_enabled;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			retry_failed = true;
			if (was_enabled != kappa_enabled)
				ereport(LOG,
						(errmsg("kappa is now %s", kappa_enabled ? "enabled" : "disabled")));
		}

		if (kappa_launcher_take_wakeup())
			retry_failed = true;
		launcher_read_catalog();
		timeout = launcher_supervise();
		retry_failed = false;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Free every slot: a new launcher owns none of what an earlier one left.
 * That launcher told its workers to stop as it exited; wait until they
 * have (a worker clears its pid as it exits), so that no stream ever has
 * two workers and no worker writes into a slot given to another.  A worker
 * still there after LAUNCHER_ORPHAN_WAIT_MS keeps its slot.
 */
static void
launcher_reset_slots(void)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   LAUNCHER_ORPHAN_WAIT_MS);

	for (int i = 0; i < kappa_shared->nslots; i++)
	{
		KappaWorkerSlot *slot = kappa_slot(i);
		pid_t		pid;

		for (;;)
		{
			SpinLockAcquire(&slot->mutex);
			pid = slot->pid;
			if (pid == 0)
				slot->in_use = false;
			SpinLockRelease(&slot->mutex);
			if (pid == 0)
				break;
			if (GetCurrentTimestamp() >= deadline)
			{
				ereport(WARNING,
						(errmsg("kappa worker with PID %d did not exit; its slot stays reserved", (int) pid)));
				break;
			}
			(void) kill(pid, SIGTERM);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 100, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
}

/* Read the stream catalog and start supervising or stop as it says. */
static void
launcher_read_catalog(void)
{
	KappaCatalogAccess catalog;
	ListCell   *lc;
	char	   *version;

	foreach(lc, supervised)
		((SupervisedStream *) lfirst(lc))->in_catalog = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	kappa_catalog_enter(&catalog);
	pgstat_report_activity(STATE_RUNNING, "reading the kappa stream catalog");

	/*
	 * Before CREATE EXTENSION there is nothing to read, and nothing to
	 * run; before ALTER EXTENSION kappa UPDATE, a catalog of an older
	 * version (or a newer one) that this library cannot run.  The launcher looks again at its next nap, or when the
	 * update commits and wakes it.
	 */
	if (!kappa_catalog_is_current(&version))
	{
		if (!version_mismatch_reported)
			ereport(LOG,
					(errmsg("kappa's catalog is at version %s and its library at %s",
							version, kappa_library_version()),
					 errdetail("No stream worker starts until the versions agree."),
					 errhint("%s", kappa_catalog_version_hint(version))));
		version_mismatch_reported = true;
	}
	else if (OidIsValid(get_extension_oid("kappa", true)))
	{
		char	   *origin = kappa_origin_text();
		ListCell   *sc;

		launcher_adopt_restored(origin);
		/* a restored stream not adopted yet waits for the rest of its dump */
		foreach(sc, kappa_streams_of_origin(origin))
		{
			KappaStreamRevision *stream = lfirst(sc);
			int32		id = stream->stream_id;
			char	   *name = stream->name;
			int32		revision = stream->revision;
			bool		known = false;

			foreach(lc, supervised)
			{
				SupervisedStream *ss = lfirst(lc);

				if (ss->stream_id == id)
				{
					ss->in_catalog = known = true;
					/* kappa_alter_stream changed its definition */
					if (ss->revision != revision)
						ss->altered = true;
					ss->revision = revision;
				}
			}
			if (!known)
				launcher_add_stream(id, name, revision);
		}
	}

	kappa_catalog_leave(&catalog);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	catalog_read_once = true;

	foreach(lc, supervised)
	{
		SupervisedStream *ss = lfirst(lc);

		if (!ss->in_catalog)
		{
			launcher_remove_stream(ss);
			supervised = foreach_delete_current(supervised, lc);
		}
		else if (ss->altered)
			launcher_restart_altered(ss);
	}
}

/*
 * A stream's definition changed (kappa_alter_stream committed): stop its
 * worker, which runs with the old one, and have it start again at once,
 * whatever its backoff, with the new one.  A worker keeps nothing but what
 * its flushes committed, so the new one reads on from its stored
 * positions, and decodes with the new definition whatever the old one had
 * read and not flushed yet.
 */
static void
launcher_restart_altered(SupervisedStream *ss)
{
	KappaWorkerSlot *slot = kappa_slot(ss->slot);

	ss->altered = false;
	if (ss->worker == 0)
		ereport(LOG,
				(errmsg("kappa launcher: stream \"%s\" altered, restarting its worker%s", ss->name,
						kappa_workers_per_stream > 1 ? "s" : "")));
	launcher_stop_worker(ss);
	SpinLockAcquire(&slot->mutex);
	if (slot->state != KAPPA_WORKER_DISABLED)
	{
		slot->state = KAPPA_WORKER_STARTING;
		slot->next_start_at = 0;
	}
	SpinLockRelease(&slot->mutex);
}

/*
 * Make the streams of a restored dump this database's (origin), once the
 * dump's last data, its row in kappa.zz_dump_sentinel, is there: until
 * then their positions, views and dead letters may still be coming, and a
 * worker's writes would collide with them.  Then keep the sentinel holding
 * this database's origin alone, for the next dump.  Writes nothing unless
 * a restore or an upgrade changed something.
 */
static void
launcher_adopt_restored(const char *origin)
{
	ListCell   *lc;

	if (!kappa_dump_sentinel_pending(origin))
		return;

	foreach(lc, kappa_streams_adopt(origin))
		ereport(LOG,
				(errmsg("kappa stream \"%s\" restored from a dump: its workers start",
						(char *) lfirst(lc))));

	/* the others wait; say so once per stream and launcher */
	foreach(lc, kappa_streams_waiting(origin))
	{
		KappaStreamWaiting *stream = lfirst(lc);
		MemoryContext old;

		if (list_member_int(waiting_noted, stream->stream_id))
			continue;
		ereport(LOG,
				(errmsg("kappa stream \"%s\" comes from a dump whose restore is not complete: its workers wait",
						stream->name),
				 errdetail("A stream's workers start once the last data of its dump, in kappa.zz_dump_sentinel, is restored."),
				 errhint("If the restore has finished without it, run INSERT INTO kappa.zz_dump_sentinel (origin) SELECT DISTINCT origin FROM kappa.streams as a superuser.")));
		old = MemoryContextSwitchTo(TopMemoryContext);
		waiting_noted = lappend_int(waiting_noted, stream->stream_id);
		MemoryContextSwitchTo(old);
	}
	/*
	 * Each statement sees the restore's latest commits: keep a sentinel
	 * that arrived after the adoption above until its streams are adopted.
	 */
	kappa_dump_sentinel_reset(origin);
}

/* Start supervising the workers of a stream that appeared in the catalog. */
static void
launcher_add_stream(int32 stream_id, const char *name, int32 revision)
{
	for (int32 worker = 0; worker < kappa_workers_per_stream; worker++)
		launcher_add_worker(stream_id, name, worker, revision);
}

/* Give one of a stream's workers a slot; it starts at the next supervision. */
static void
launcher_add_worker(int32 stream_id, const char *name, int32 worker, int32 revision)
{
	MemoryContext old;
	SupervisedStream *ss;
	int			free_slot = -1;

	for (int i = 0; i < kappa_shared->nslots && free_slot < 0; i++)
	{
		KappaWorkerSlot *slot = kappa_slot(i);

		SpinLockAcquire(&slot->mutex);
		if (!slot->in_use)
		{
			free_slot = i;
			memset((char *) slot + sizeof(slock_t), 0, sizeof(*slot) - sizeof(slock_t));
			slot->in_use = true;
			slot->stream_id = stream_id;
			slot->worker = worker;
			strlcpy(slot->stream_name, name, NAMEDATALEN);
			slot->state = KAPPA_WORKER_STARTING;
		}
		SpinLockRelease(&slot->mutex);
	}
	if (free_slot < 0)
	{
		/* tried again at every catalog read; say so once */
		if (!slots_exhausted_reported)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("kappa cannot run stream \"%s\": all %d worker slots are in use",
							name, kappa_shared->nslots),
					 errdetail("There are kappa.max_streams times kappa.workers_per_stream slots."),
					 errhint("Increase kappa.max_streams and restart the server.")));
		slots_exhausted_reported = true;
		return;
	}

	if (worker > 0)
		ereport(LOG,
				(errmsg("kappa launcher: starting worker %d of stream \"%s\"", worker, name)));
	else if (catalog_read_once)
		ereport(LOG,
				(errmsg("kappa launcher: stream \"%s\" created, starting its worker", name)));
	else
		ereport(LOG,
				(errmsg("kappa launcher: starting the worker of stream \"%s\"", name)));
	old = MemoryContextSwitchTo(TopMemoryContext);
	ss = palloc0(sizeof(SupervisedStream));
	ss->stream_id = stream_id;
	strlcpy(ss->name, name, NAMEDATALEN);
	ss->worker = worker;
	ss->slot = free_slot;
	ss->in_catalog = true;
	ss->revision = revision;
	supervised = lappend(supervised, ss);
	MemoryContextSwitchTo(old);
}

/* Stop supervising a stream that left the catalog, freeing its slot. */
static void
launcher_remove_stream(SupervisedStream *ss)
{
	KappaWorkerSlot *slot = kappa_slot(ss->slot);

	if (ss->worker == 0)
		ereport(LOG,
				(errmsg("kappa launcher: stream \"%s\" dropped, stopping its worker%s", ss->name,
						kappa_workers_per_stream > 1 ? "s" : "")));
	launcher_stop_worker(ss);
	SpinLockAcquire(&slot->mutex);
	slot->in_use = false;
	SpinLockRelease(&slot->mutex);
	slots_exhausted_reported = false;
	pfree(ss);
}

/*
 * Start, stop or restart workers as kappa.enabled and their backoff say.
 * Returns how long the launcher may sleep, in milliseconds.
 */
static long
launcher_supervise(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		timeout = kappa_launcher_naptime;
	ListCell   *lc;

	foreach(lc, supervised)
	{
		SupervisedStream *ss = lfirst(lc);
		KappaWorkerSlot *slot = kappa_slot(ss->slot);
		TimestampTz next_start;
		pid_t		pid;

		if (!kappa_enabled)
		{
			launcher_stop_worker(ss);
			SpinLockAcquire(&slot->mutex);
			slot->state = KAPPA_WORKER_DISABLED;
			slot->failures = 0;
			SpinLockRelease(&slot->mutex);
			continue;
		}

		if (ss->handle != NULL)
		{
			if (GetBackgroundWorkerPid(ss->handle, &pid) != BGWH_STOPPED)
				continue;
			launcher_note_exit(ss);
		}

		SpinLockAcquire(&slot->mutex);
		if (slot->state == KAPPA_WORKER_FAILED && retry_failed)
			slot->state = KAPPA_WORKER_BACKOFF;
		next_start = slot->state == KAPPA_WORKER_BACKOFF ? slot->next_start_at : now;
		if (slot->state == KAPPA_WORKER_FAILED)
			next_start = DT_NOEND;
		SpinLockRelease(&slot->mutex);
		if (next_start == DT_NOEND)
			continue;			/* until the settings or the catalog change */
		if (next_start <= now)
			launcher_start_worker(ss);
		else
			timeout = Min(timeout, TimestampDifferenceMilliseconds(now, next_start) + 1);
	}
	return timeout;
}

/*
 * Account for a worker that exited: back off before starting it again,
 * unless it failed for a reason of its stream's own (see the banner).
 */
static void
launcher_note_exit(SupervisedStream *ss)
{
	KappaWorkerSlot *slot = kappa_slot(ss->slot);
	bool		failed;

	pfree(ss->handle);
	ss->handle = NULL;
	SpinLockAcquire(&slot->mutex);
	failed = (slot->state == KAPPA_WORKER_FAILED);
	if (failed)
	{
		slot->pid = 0;
		slot->next_start_at = 0;
	}
	SpinLockRelease(&slot->mutex);
	if (!failed)
		launcher_schedule_restart(ss);
}

/*
 * Schedule a stream's next start after a failure: 1 s, 2 s, 4 s, ... up to
 * kappa.restart_backoff_max, afresh after a run of a minute or more.
 */
static void
launcher_schedule_restart(SupervisedStream *ss)
{
	KappaWorkerSlot *slot = kappa_slot(ss->slot);
	TimestampTz now = GetCurrentTimestamp();
	int			delay_s;
	int			failures;

	SpinLockAcquire(&slot->mutex);
	if (slot->started_at != 0 &&
		TimestampDifferenceExceeds(slot->started_at, now, LAUNCHER_HEALTHY_RUN_MS))
		slot->failures = 0;
	failures = ++slot->failures;
	delay_s = kappa_restart_backoff_max;
	if (failures <= 20)
		delay_s = Min(1 << (failures - 1), kappa_restart_backoff_max);
	slot->state = KAPPA_WORKER_BACKOFF;
	slot->next_start_at = TimestampTzPlusMilliseconds(now, delay_s * 1000);
	slot->pid = 0;
	SpinLockRelease(&slot->mutex);

	ereport(LOG,
			(errmsg("kappa worker for stream \"%s\" exited; restarting it in %d s (attempt %d)",
					ss->name, delay_s, failures + 1)));
}

/* Register a dynamic background worker for a stream. */
static void
launcher_start_worker(SupervisedStream *ss)
{
	BackgroundWorker worker;
	KappaWorkerArgs args;
	KappaWorkerSlot *slot = kappa_slot(ss->slot);
	MemoryContext old;
	bool		registered;

	/* the launcher restarts stream workers itself, with a backoff */
	describe_worker(&worker, "kappa_worker_main", "kappa worker", BGW_NEVER_RESTART);
	snprintf(worker.bgw_name, BGW_MAXLEN, "kappa worker for stream %s", ss->name);
	worker.bgw_main_arg = Int32GetDatum(ss->slot);
	worker.bgw_notify_pid = MyProcPid;
	args.database = MyDatabaseId;
	args.stream_id = ss->stream_id;
	args.worker = ss->worker;
	args.nworkers = kappa_workers_per_stream;
	memcpy(worker.bgw_extra, &args, sizeof(args));

	SpinLockAcquire(&slot->mutex);
	slot->state = KAPPA_WORKER_STARTING;
	slot->started_at = GetCurrentTimestamp();
	SpinLockRelease(&slot->mutex);

	/* the handle outlives this loop; the postmaster notifies us of exits */
	old = MemoryContextSwitchTo(TopMemoryContext);
	registered = RegisterDynamicBackgroundWorker(&worker, &ss->handle);
	MemoryContextSwitchTo(old);
	if (!registered)
	{
		ss->handle = NULL;
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a kappa worker for stream \"%s\"", ss->name),
				 errdetail("No background worker slot is free."),
				 errhint("You may need to increase max_worker_processes.")));
		kappa_slot_set_error(ss->slot, "no background worker slot is free (max_worker_processes)",
							 "53000");
		/* a missing slot is a failure like any other: back off */
		SpinLockAcquire(&slot->mutex);
		slot->started_at = 0;
		SpinLockRelease(&slot->mutex);
		launcher_schedule_restart(ss);
	}
}

/* Stop a stream's worker, if it runs, and wait until it is gone. */
static void
launcher_stop_worker(SupervisedStream *ss)
{
	if (ss->handle == NULL)
		return;
	TerminateBackgroundWorker(ss->handle);
	(void) WaitForBackgroundWorkerShutdown(ss->handle);
	pfree(ss->handle);
	ss->handle = NULL;
	/* that wait used (and reset) our latch: look at the catalog again */
	SetLatch(MyLatch);
}

/* On exit, stop every worker, so that no stream runs unsupervised. */
static void
launcher_shutdown(int code, Datum arg)
{
	ListCell   *lc;

	foreach(lc, supervised)
	{
		SupervisedStream *ss = lfirst(lc);

		if (ss->handle != NULL)
			TerminateBackgroundWorker(ss->handle);
	}
}
