/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  A stream worker: the background worker that serves one stream.
 *
 * The launcher starts kappa.workers_per_stream workers per stream, passing
 * the slot index as bgw_main_arg and the database, stream id and worker
 * number in bgw_extra.  The worker claims its slot (if the slot still
 * belongs to its stream), loads its stream, opens its consumer and builds
 * the engine of its views (engine.c), points the consumer at the positions
 * stored in Postgres, and consumes until told to stop.  With several
 * workers, they form the stream's consumer group instead, and each carries
 * out the group's rebalances between polls (worker_rebalance): it flushes
 * before giving partitions up, and reads the positions of partitions it is
 * given from Postgres; the engine then shares the views' state with the
 * other workers (flush.c).  Messages are processed inside a
 * transaction (functions may read the catalog); every kappa.flush_interval
 * (or kappa.flush_events) the engine writes everything since the last
 * flush and the transaction commits: view rows, states, positions and
 * counts, all or nothing.  New and dropped views are noticed at each
 * flush.
 *
 * Failure: any error ends the worker (an ERROR in a background worker is
 * FATAL); before that, its message is copied into the slot, where
 * kappa_workers shows it, and the launcher restarts the worker after a
 * backoff.  A worker whose stream was dropped exits quietly.
 *
 * Locking: the worker writes only its own slot, under the slot's spinlock,
 * and only while the slot's pid is its own.
 *
 * src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/snapmgr.h"

#include "archive.h"
#include "guc.h"
#include "engine.h"
#include "kafka.h"
#include "shmem.h"
#include "stream.h"
#include "worker.h"

/* Messages taken from the consumer at a time, and the longest wait. */
#define WORKER_BATCH 10000
#define WORKER_POLL_MS 100

static int	worker_slot = -1;

/* A worker's run: what it consumes, and with what. */
typedef struct WorkerRun
{
	KappaStream *stream;
	int32		worker;			/* which of the stream's workers, from 0 */
	int32		nworkers;
	bool		group;			/* a member of the stream's consumer group */
	KappaConsumer *consumer;
	KappaEngine *engine;
	ArchiveWriter *archive;		/* NULL without an archive */
	int			nparts;			/* the topic's */
	int			nowned;			/* those this worker consumes now */
	bool	   *given;			/* the consumer group's latest assignment */
	int64	   *committed;		/* positions to tell the brokers */
} WorkerRun;

static void worker_run(const KappaWorkerArgs *args);
static void worker_consume(const KappaWorkerArgs *args);
static int	worker_assign(WorkerRun *run, bool seek);
static bool *worker_static_partitions(WorkerRun *run);
static void worker_flush(WorkerRun *run, const bool *keep);
static void worker_rebalance(WorkerRun *run);
static void worker_leave_group(int code, Datum arg);
static KappaStream *worker_load_stream(int32 stream_id);
static bool worker_note_health(KappaStream *stream, KappaConsumer *consumer, int received,
							   bool stalled, int nparts);
static void worker_detach(int code, Datum arg);

/* Entry point of a stream worker. */
void
kappa_worker_main(Datum main_arg)
{
	KappaWorkerArgs args;
	KappaWorkerSlot *slot;
	bool		claimed;

	worker_slot = DatumGetInt32(main_arg);
	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/*
	 * Claim the slot, unless it no longer belongs to this stream: a
	 * launcher that restarted meanwhile has given it to another.
	 */
	slot = kappa_slot(worker_slot);
	SpinLockAcquire(&slot->mutex);
	claimed = slot->in_use && slot->stream_id == args.stream_id && slot->pid == 0;
	if (claimed)
	{
		slot->pid = MyProcPid;
		slot->state = KAPPA_WORKER_CONNECTING;
		/* what an earlier run consumed is not this one's */
		memset(slot->owned, 0, sizeof(slot->owned));
		slot->owned_since = 0;
	}
	SpinLockRelease(&slot->mutex);
	if (!claimed)
	{
		ereport(LOG,
				(errmsg("kappa worker for stream %d: its slot was given away, exiting",
						args.stream_id)));
		proc_exit(0);
	}
	before_shmem_exit(worker_detach, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(args.database, InvalidOid, 0);
	/* kappa's own SQL is qualified; operators resolve in pg_catalog only */
	SetConfigOption("search_path", "pg_catalog", PGC_SUSET, PGC_S_OVERRIDE);
	worker_run(&args);
	proc_exit(0);
}

/*
 * Consume the stream until told to stop, recording any error in the slot
 * (where kappa_workers shows it) before it ends the worker.
 */
static void
worker_run(const KappaWorkerArgs *args)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		worker_consume(args);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		kappa_slot_set_error(worker_slot, edata->message);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/* kappa_consumer_query_start, as the engine calls it. */
static int64
worker_log_start(void *consumer, int32 partition)
{
	return kappa_consumer_query_start((KappaConsumer *) consumer, partition);
}

/* kappa_consumer_offset_for_time, as the engine calls it. */
static int64
worker_offset_for_time(void *consumer, int32 partition, TimestampTz time)
{
	return kappa_consumer_offset_for_time((KappaConsumer *) consumer, partition, time);
}

/*
 * Point the consumer at where the stream and its views are, in the
 * partitions the engine owns; views that start at "latest" start at each
 * partition's end as of now, those that start at a time where the brokers
 * say that time begins.  With seek, the partitions stay assigned and move
 * (a consumer group member's assignment is the group's).  Returns how many
 * partitions it reads.
 */
static int
worker_assign(WorkerRun *run, bool seek)
{
	int64	   *offsets = palloc(sizeof(int64) * Max(run->nparts, 1));
	int			owned = 0;

	for (int p = 0; p < run->nparts; p++)
	{
		offsets[p] = KAPPA_OFFSET_NONE;
		if (!kappa_engine_owns(run->engine, p))
			continue;
		owned++;
		kappa_engine_resolve_times(run->engine, p, worker_offset_for_time, run->consumer);
		offsets[p] = kappa_engine_start_offset(run->engine, p);
		if (offsets[p] == KAPPA_OFFSET_END)
		{
			kappa_engine_resolve_latest(run->engine, p, kappa_consumer_query_end(run->consumer, p));
			offsets[p] = kappa_engine_start_offset(run->engine, p);
		}
	}
	if (seek)
		kappa_consumer_seek(run->consumer, run->nparts, offsets);
	else
		kappa_consumer_assign(run->consumer, run->nparts, offsets);
	pfree(offsets);
	return owned;
}

/*
 * The partitions a worker consumes when it does not take part in a
 * consumer group: all of the stream's (those its partitions option names,
 * or every one), or with several workers, every nworkers-th of them.
 */
static bool *
worker_static_partitions(WorkerRun *run)
{
	bool	   *owned = palloc0(sizeof(bool) * Max(run->nparts, 1));
	int			nth = 0;

	for (int p = 0; p < run->nparts; p++)
	{
		if (!kappa_stream_owns(run->stream, p))
			continue;
		owned[p] = (nth++ % run->nworkers == run->worker);
	}
	return owned;
}

/*
 * Write everything since the last flush and commit, then tell the brokers
 * the positions (asynchronously, for lag tools only; not while the group
 * rebalances).  A view added
 * meanwhile makes the consumer read its partitions again from the view's
 * start.  With keep, the consumer group is taking partitions back, and
 * only those keep[] says stay: the archive closes the files of the others
 * in the same transaction.  The caller is in the worker's transaction, in
 * the engine's memory context.
 */
static void
worker_flush(WorkerRun *run, const bool *keep)
{
	bool		added;

	for (int p = 0; p < run->nparts; p++)
		kappa_engine_note_end(run->engine, p, kappa_consumer_end(run->consumer, p));
	added = kappa_engine_sync_views(run->engine);
	/* the archive is on disk before the positions commit */
	if (run->archive)
		archive_writer_flush(run->archive);
	kappa_engine_flush(run->engine);
	if (keep == NULL && added)
		(void) worker_assign(run, run->group);
	if (keep != NULL && run->archive)
		archive_writer_adopt(run->archive, keep);
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (keep != NULL)
		return;					/* the group is rebalancing: it would refuse */

	for (int p = 0; p < run->nparts; p++)
		run->committed[p] = kappa_engine_owns(run->engine, p) ?
			kappa_engine_start_offset(run->engine, p) : KAPPA_OFFSET_NONE;
	kappa_consumer_commit(run->consumer, run->nparts, run->committed);
}

/*
 * Carry out what the stream's consumer group decided during the last poll.
 * Taken back: flush what was read from those partitions, so that the
 * worker that gets them next starts from a committed position, then give
 * them up.  Given: read their positions from Postgres and read on from
 * there.  The caller is in the worker's transaction; after a revocation it
 * no longer is.
 */
static void
worker_rebalance(WorkerRun *run)
{
	KappaRebalance rebalance = kappa_consumer_rebalance(run->consumer, run->given);

	if (rebalance == KAPPA_REBALANCE_REVOKE)
	{
		/* the group takes everything back (the eager protocol) */
		memset(run->given, 0, sizeof(bool) * Max(run->nparts, 1));
		worker_flush(run, run->given);
		kappa_engine_adopt(run->engine, run->given);
		kappa_slot_set_partitions(worker_slot, run->given, run->nparts);
		kappa_consumer_unassign(run->consumer);
		run->nowned = 0;
		kappa_slot_set_state(worker_slot, KAPPA_WORKER_RUNNING, 0);
		ereport(DEBUG1,
				(errmsg_internal("kappa worker %d of stream \"%s\" gave up its partitions",
								 run->worker, run->stream->name)));
	}
	else if (rebalance == KAPPA_REBALANCE_ASSIGN)
	{
		kappa_engine_adopt(run->engine, run->given);
		if (run->archive)
			archive_writer_adopt(run->archive, run->given);
		kappa_slot_set_partitions(worker_slot, run->given, run->nparts);
		run->nowned = worker_assign(run, false);
		kappa_slot_set_state(worker_slot, KAPPA_WORKER_RUNNING, run->nowned);
		ereport(LOG,
				(errmsg("kappa worker %d of stream \"%s\" was given %d of %d partitions",
						run->worker, run->stream->name, run->nowned, run->nparts)));
	}
}

/* On exit, leave the consumer group at once, so its partitions move now. */
static void
worker_leave_group(int code, Datum arg)
{
	kappa_consumer_leave((KappaConsumer *) DatumGetPointer(arg));
}

/*
 * The worker's life: load the stream, open its consumer, build the engine
 * of its views, then consume, flushing as kappa.flush_interval and
 * kappa.flush_events say.
 */
static void
worker_consume(const KappaWorkerArgs *args)
{
	MemoryContext engine_cxt = AllocSetContextCreate(TopMemoryContext, "kappa engine",
													 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	WorkerRun  *run;
	KappaMessage *batch;
	TimestampTz last_flush;
	bool		stalled = false;
	bool		shared = args->nworkers > 1;
	bool		group;
	bool	   *owned;
	KappaStream *stream = worker_load_stream(args->stream_id);

	if (stream == NULL)
	{
		ereport(LOG,
				(errmsg("kappa worker: stream %d no longer exists", args->stream_id)));
		proc_exit(0);
	}
	pgstat_report_appname(args->nworkers > 1 ?
						  psprintf("kappa worker %d %s", args->worker, stream->name) :
						  psprintf("kappa worker %s", stream->name));
	/* an explicit partition list is split among the workers, not by a group */
	group = shared && stream->npartitions == 0;

	old = MemoryContextSwitchTo(engine_cxt);
	run = palloc0(sizeof(WorkerRun));
	run->stream = stream;
	run->worker = args->worker;
	run->nworkers = args->nworkers;
	run->group = group;
	batch = palloc(sizeof(KappaMessage) * WORKER_BATCH);
	run->consumer = kappa_consumer_open(stream, &run->nparts, group);
	run->given = palloc0(sizeof(bool) * Max(run->nparts, 1));
	run->committed = palloc(sizeof(int64) * Max(run->nparts, 1));
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* a kappa_feed in progress finishes first; its positions then count */
	(void) kappa_stream_lock_consumer(stream->id, true);
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(engine_cxt);
	owned = group ? run->given : worker_static_partitions(run);
	run->engine = kappa_engine_create(stream, run->nparts, owned, run->worker, run->nworkers,
									  worker_log_start, run->consumer);
	kappa_slot_set_partitions(worker_slot, owned, run->nparts);
	if (stream->archive)
		run->archive = archive_writer_create(stream, run->nparts);
	if (shared)
	{
		/* a view rebuilt here is stored before the other workers see it */
		kappa_engine_flush(run->engine);
	}
	if (group)
	{
		before_shmem_exit(worker_leave_group, PointerGetDatum(run->consumer));
		kappa_consumer_subscribe(run->consumer);
	}
	else
		run->nowned = worker_assign(run, false);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(old);

	for (int i = 0; i < stream->npartitions; i++)
	{
		if (stream->partitions[i] >= run->nparts)
			ereport(WARNING,
					(errmsg("stream \"%s\" names partition %d, but topic \"%s\" has %d partitions",
							stream->name, stream->partitions[i], stream->topic, run->nparts),
					 errdetail("The partition is not consumed.")));
	}
	kappa_slot_set_state(worker_slot, KAPPA_WORKER_RUNNING, run->nowned);
	if (shared)
		ereport(LOG,
				(errmsg("kappa worker %d for stream \"%s\" consuming topic \"%s\" (%d partitions, one of %d workers%s)",
						run->worker, stream->name, stream->topic, run->nparts, run->nworkers,
						group ? ", in the consumer group" : "")));
	else
		ereport(LOG,
				(errmsg("kappa worker for stream \"%s\" consuming topic \"%s\" (%d partitions)",
						stream->name, stream->topic, run->nparts)));

	last_flush = GetCurrentTimestamp();
	for (;;)
	{
		int			n;
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		/* an orphan must not write: a new postmaster may be starting */
		if (!PostmasterIsAlive())
			proc_exit(1);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (!IsTransactionState())
		{
			/* now() in the flush is the flush's time, not the worker's start */
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			PushActiveSnapshot(GetTransactionSnapshot());
		}
		n = kappa_consumer_poll(run->consumer, WORKER_POLL_MS, batch, WORKER_BATCH);
		for (int i = 0; i < n; i++)
		{
			if (run->archive)
				archive_writer_append(run->archive, &batch[i]);
			kappa_engine_process(run->engine, &batch[i]);
		}
		kappa_consumer_release(run->consumer);
		stalled = worker_note_health(stream, run->consumer, n, stalled, run->nowned);

		old = MemoryContextSwitchTo(engine_cxt);
		if (group)
			worker_rebalance(run);
		now = GetCurrentTimestamp();
		if (IsTransactionState() &&
			(kappa_engine_pending(run->engine) >= kappa_flush_events ||
			 TimestampDifferenceExceeds(last_flush, now, kappa_flush_interval)))
		{
			worker_flush(run, NULL);
			last_flush = now;
		}
		MemoryContextSwitchTo(old);
	}
}

/*
 * Show in the slot whether consumption stalls: when a poll brings nothing
 * while librdkafka has reported an error (a broker down, requests failing),
 * the state becomes "stalled" and the error is recorded, where kappa_workers
 * and kappa_stats show them; a message, or a fetch that reaches the log's
 * end (which clears the error), makes it "running" again.  librdkafka
 * retries by itself meanwhile.  Returns whether the worker is now stalled.
 */
static bool
worker_note_health(KappaStream *stream, KappaConsumer *consumer, int received,
				   bool stalled, int nparts)
{
	const char *error;

	if (!stalled && received > 0)
		return false;
	error = kappa_consumer_error(consumer);
	if (stalled && (received > 0 || error[0] == '\0'))
	{
		kappa_slot_set_state(worker_slot, KAPPA_WORKER_RUNNING, nparts);
		ereport(LOG,
				(errmsg("kappa worker for stream \"%s\" is consuming again", stream->name)));
		return false;
	}
	if (!stalled && error[0] != '\0')
	{
		kappa_slot_set_state(worker_slot, KAPPA_WORKER_STALLED, nparts);
		kappa_slot_set_error(worker_slot, error);
		ereport(LOG,
				(errmsg("kappa worker for stream \"%s\" stalls: %s", stream->name, error)));
		return true;
	}
	return stalled;
}

/* The worker's stream, read in a transaction of its own; NULL if dropped. */
static KappaStream *
worker_load_stream(int32 stream_id)
{
	KappaStream *stream;
	MemoryContext old;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	old = MemoryContextSwitchTo(TopMemoryContext);
	stream = kappa_stream_load_by_id(stream_id);
	MemoryContextSwitchTo(old);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return stream;
}

/* Leave the slot: the launcher sees the exit through the worker handle. */
static void
worker_detach(int code, Datum arg)
{
	KappaWorkerSlot *slot = kappa_slot(worker_slot);

	SpinLockAcquire(&slot->mutex);
	if (slot->pid == MyProcPid)
		slot->pid = 0;
	SpinLockRelease(&slot->mutex);
}
