/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  A stream worker: the background worker that serves one stream.
 *
 * The launcher starts one worker per stream, passing the slot index as
 * bgw_main_arg and the database and stream id in bgw_extra.  The worker
 * claims its slot (if the slot still belongs to its stream), loads its
 * stream, opens its consumer and builds the engine of its views
 * (engine.c), points the consumer at the positions stored in Postgres, and
 * consumes until told to stop.  Messages are processed inside a
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

static void worker_run(int32 stream_id);
static void worker_consume(int32 stream_id);
static void worker_assign(KappaStream *stream, KappaConsumer *consumer, KappaEngine *engine,
						  int nparts);
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
	worker_run(args.stream_id);
	proc_exit(0);
}

/*
 * Consume the stream until told to stop, recording any error in the slot
 * (where kappa_workers shows it) before it ends the worker.
 */
static void
worker_run(int32 stream_id)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		worker_consume(stream_id);
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
 * Point the consumer at where the stream and its views are; views that
 * start at "latest" start at each partition's end as of now, those that
 * start at a time where the brokers say that time begins.
 */
static void
worker_assign(KappaStream *stream, KappaConsumer *consumer, KappaEngine *engine, int nparts)
{
	int64	   *offsets = palloc(sizeof(int64) * nparts);

	for (int p = 0; p < nparts; p++)
	{
		if (!kappa_stream_owns(stream, p))
			continue;
		kappa_engine_resolve_times(engine, p, worker_offset_for_time, consumer);
		offsets[p] = kappa_engine_start_offset(engine, p);
		if (offsets[p] == KAPPA_OFFSET_END)
		{
			kappa_engine_resolve_latest(engine, p, kappa_consumer_query_end(consumer, p));
			offsets[p] = kappa_engine_start_offset(engine, p);
		}
	}
	kappa_consumer_assign(consumer, nparts, offsets);
	pfree(offsets);
}

/*
 * The worker's life: load the stream, open its consumer, build the engine
 * of its views, then consume, flushing as kappa.flush_interval and
 * kappa.flush_events say.
 */
static void
worker_consume(int32 stream_id)
{
	MemoryContext engine_cxt = AllocSetContextCreate(TopMemoryContext, "kappa engine",
													 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	KappaStream *stream;
	KappaConsumer *consumer;
	KappaEngine *engine;
	KappaMessage *batch;
	TimestampTz last_flush;
	int64	   *committed;
	int			nparts;
	bool		stalled = false;
	ArchiveWriter *archive = NULL;

	stream = worker_load_stream(stream_id);
	if (stream == NULL)
	{
		ereport(LOG,
				(errmsg("kappa worker: stream %d no longer exists", stream_id)));
		proc_exit(0);
	}
	pgstat_report_appname(psprintf("kappa worker %s", stream->name));

	old = MemoryContextSwitchTo(engine_cxt);
	batch = palloc(sizeof(KappaMessage) * WORKER_BATCH);
	consumer = kappa_consumer_open(stream, &nparts);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* a kappa_feed in progress finishes first; its positions then count */
	(void) kappa_stream_lock_consumer(stream->id, true);
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(engine_cxt);
	engine = kappa_engine_create(stream, nparts, worker_log_start, consumer);
	if (stream->archive)
		archive = archive_writer_create(stream, nparts);
	worker_assign(stream, consumer, engine, nparts);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(old);

	for (int i = 0; i < stream->npartitions; i++)
	{
		if (stream->partitions[i] >= nparts)
			ereport(WARNING,
					(errmsg("stream \"%s\" names partition %d, but topic \"%s\" has %d partitions",
							stream->name, stream->partitions[i], stream->topic, nparts),
					 errdetail("The partition is not consumed.")));
	}
	committed = MemoryContextAlloc(engine_cxt, sizeof(int64) * nparts);
	kappa_slot_set_state(worker_slot, KAPPA_WORKER_RUNNING, nparts);
	ereport(LOG,
			(errmsg("kappa worker for stream \"%s\" consuming topic \"%s\" (%d partitions)",
					stream->name, stream->topic, nparts)));

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
		n = kappa_consumer_poll(consumer, WORKER_POLL_MS, batch, WORKER_BATCH);
		for (int i = 0; i < n; i++)
		{
			if (archive)
				archive_writer_append(archive, &batch[i]);
			kappa_engine_process(engine, &batch[i]);
		}
		kappa_consumer_release(consumer);
		stalled = worker_note_health(stream, consumer, n, stalled, nparts);

		now = GetCurrentTimestamp();
		if (kappa_engine_pending(engine) >= kappa_flush_events ||
			TimestampDifferenceExceeds(last_flush, now, kappa_flush_interval))
		{
			bool		added;

			for (int p = 0; p < nparts; p++)
				kappa_engine_note_end(engine, p, kappa_consumer_end(consumer, p));
			old = MemoryContextSwitchTo(engine_cxt);
			added = kappa_engine_sync_views(engine);
			/* the archive is on disk before the positions commit */
			if (archive)
				archive_writer_flush(archive);
			kappa_engine_flush(engine);
			if (added)
				worker_assign(stream, consumer, engine, nparts);
			MemoryContextSwitchTo(old);
			PopActiveSnapshot();
			CommitTransactionCommand();
			last_flush = now;

			/* committed in Postgres: now tell the brokers, for lag tools */
			for (int p = 0; p < nparts; p++)
				committed[p] = kappa_engine_start_offset(engine, p);
			kappa_consumer_commit(consumer, nparts, committed);
		}
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
