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
 * flush, and dead letters a backend asked to retry are applied by it
 * (retry.c).
 *
 * Failure: an error while the engine applies a message is the message's
 * or a view's (poison.c): the worker rolls back to its last flush, builds
 * the engine again from what that flush stored, and reads on from there,
 * now knowing the poison, which becomes a dead letter (worker_recover).
 * Any other error ends the worker (an ERROR in a background worker is
 * FATAL); before that, its message is copied into the slot, where
 * kappa_workers shows it, and the launcher restarts the worker after a
 * backoff: backing off is for brokers and the server, never for data.  A
 * stream whose open state outgrows kappa.max_state_memory stops in state
 * "failed", naming the view that holds the most.  A worker whose stream
 * was dropped exits quietly.
 *
 * Rights: a worker connects as the bootstrap superuser, the owner of
 * kappa's catalog, and runs every piece of user code as its owner
 * (catalog.c), with the settings kappa fixes for the worker's life.
 *
 * Locking: the worker writes only its own slot, under the slot's spinlock,
 * and only while the slot's pid is its own.
 *
 * Lifetime: a run (consumer, archive writer, known poisons) lives in a
 * memory context for the worker's life; the engine is built anew after
 * each poison, and its memory goes with it.
 *
 * src/bgw/worker.c
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

#include "archive/archive.h"
#include "bgw/worker.h"
#include "engine/engine.h"
#include "engine/gap.h"
#include "engine/history.h"
#include "engine/retry.h"
#include "engine/sink.h"
#include "guc.h"
#include "kafka/kafka.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/stream.h"
#include "shmem.h"

/* Messages taken from the consumer at a time, and the longest wait. */
#define WORKER_BATCH 10000
#define WORKER_POLL_MS 100
/* Bytes of messages held since the last flush that make a flush due. */
#define WORKER_MAX_HELD_BYTES (64 * 1024 * 1024)

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
	KappaArchiveWriter *archive;		/* NULL without an archive */
	int			nparts;			/* the topic's */
	int			nowned;			/* those this worker consumes now */
	bool	   *given;			/* the consumer group's latest assignment */
	bool	   *owned;			/* what it consumes: given, or its share */
	bool	   *behind;			/* partitions whose position the log lost */
	KappaSinkSenders *sinks;	/* worker 0: the producers of the sinks */
	int64	   *committed;		/* positions to tell the brokers */
	KappaPoisons *poisons;		/* events known to fail */
	KappaMessage *msgs;			/* the messages polled since the last flush, */
	int			nmsgs;			/* held by the consumer until it */
	int			done;			/* of which the first done are processed */
	int			msgs_size;
	Size		held_bytes;		/* their payloads' and keys' bytes */
	MemoryContext cxt;			/* where the run lives: the worker's life */
	TimestampTz last_flush;
	bool		stalled;
} WorkerRun;

static void worker_run(const KappaWorkerArgs *args);
static void worker_consume(const KappaWorkerArgs *args);
static void worker_loop(WorkerRun *run);
static void worker_forget_processed(WorkerRun *run);
static bool worker_needs_seek(WorkerRun *run);
static void worker_start_engine(WorkerRun *run);
static bool worker_recover(WorkerRun *run, ErrorData *edata);
static void worker_check_memory(WorkerRun *run);
static void worker_behind_log(WorkerRun *run, int32 partition);
static void worker_archive_message(const KappaMessage *m, void *arg);
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
	/* the search_path, time zone and date style kappa evaluates views with */
	kappa_settings_fix();
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
		kappa_slot_set_error(worker_slot, edata->message,
							 unpack_sql_state(edata->sqlerrcode));
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
	/* what the consumer reads from now on begins there */
	memcpy(run->committed, offsets, sizeof(int64) * run->nparts);
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
		kappa_archive_writer_flush(run->archive);
	/* dead letters a backend asked to retry: applied by this flush */
	if (keep == NULL)
		kappa_retry_apply(worker_slot, run->engine, run->stream, run->poisons);
	kappa_engine_flush(run->engine);
	if (keep == NULL && added)
		(void) worker_assign(run, run->group);
	if (keep != NULL && run->archive)
		kappa_archive_writer_adopt(run->archive, keep);
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (keep == NULL)
		kappa_retry_report(worker_slot);
	worker_forget_processed(run);
	if (keep == NULL && added)
	{
		/*
		 * The consumer reads again from the new view's start.  The rest of
		 * the batch comes again after what the view must read first: were
		 * it processed now, the view would take its first message for its
		 * start, and skip the earlier ones when they come.
		 */
		kappa_consumer_release(run->consumer);
		run->nmsgs = 0;
	}
	if (keep != NULL)
		return;					/* the group is rebalancing: it would refuse */

	for (int p = 0; p < run->nparts; p++)
		run->committed[p] = kappa_engine_owns(run->engine, p) ?
			kappa_engine_start_offset(run->engine, p) : KAPPA_OFFSET_NONE;
	kappa_consumer_commit(run->consumer, run->nparts, run->committed);

	/* what the flush gave the sinks goes out now: by one worker only */
	if (run->worker == 0)
	{
		kappa_sinks_send(run->stream, &run->sinks);
		MemoryContextSwitchTo(run->cxt);
	}
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
			kappa_archive_writer_adopt(run->archive, run->given);
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
 * kappa.flush_events say, and recovering from poison events.
 */
static void
worker_consume(const KappaWorkerArgs *args)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "kappa worker",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	WorkerRun  *run;
	bool		shared = args->nworkers > 1;
	KappaStream *stream = worker_load_stream(args->stream_id);

	if (stream == NULL)
	{
		ereport(LOG,
				(errmsg("kappa worker: stream %d no longer exists", args->stream_id)));
		proc_exit(0);
	}
	kappa_slot_set_owner(worker_slot, stream->owner);
	pgstat_report_appname(args->nworkers > 1 ?
						  psprintf("kappa worker %d %s", args->worker, stream->name) :
						  psprintf("kappa worker %s", stream->name));

	old = MemoryContextSwitchTo(cxt);
	run = palloc0(sizeof(WorkerRun));
	run->cxt = cxt;
	run->stream = stream;
	run->worker = args->worker;
	run->nworkers = args->nworkers;
	/* an explicit partition list is split among the workers, not by a group */
	run->group = shared && stream->npartitions == 0;
	run->consumer = kappa_consumer_open(stream, &run->nparts, run->group);
	run->given = palloc0(sizeof(bool) * Max(run->nparts, 1));
	run->behind = palloc0(sizeof(bool) * Max(run->nparts, 1));
	run->committed = palloc(sizeof(int64) * Max(run->nparts, 1));
	for (int p = 0; p < run->nparts; p++)
		run->committed[p] = KAPPA_OFFSET_NONE;
	run->owned = run->group ? run->given : worker_static_partitions(run);
	run->poisons = kappa_poisons_create();
	run->msgs_size = 2 * WORKER_BATCH;
	run->msgs = palloc(sizeof(KappaMessage) * run->msgs_size);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* a kappa_feed in progress finishes first; its positions then count */
	(void) kappa_stream_lock_consumer(stream->id, true);
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(cxt);
	if (stream->archive)
		run->archive = kappa_archive_writer_create(stream, run->nparts);
	/* the stream's dead letters stay dead for every view until retried */
	kappa_poisons_load(run->poisons, stream->id, 0);
	worker_start_engine(run);
	kappa_slot_set_partitions(worker_slot, run->owned, run->nparts);
	if (run->group)
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
						run->group ? ", in the consumer group" : "")));
	else
		ereport(LOG,
				(errmsg("kappa worker for stream \"%s\" consuming topic \"%s\" (%d partitions)",
						stream->name, stream->topic, run->nparts)));

	run->last_flush = GetCurrentTimestamp();
	for (;;)
	{
		PG_TRY();
		{
			worker_loop(run);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(run->cxt);
			edata = CopyErrorData();
			if (!worker_recover(run, edata))
				PG_RE_THROW();
		}
		PG_END_TRY();
	}
}

/*
 * Build the engine of the worker's views, from what the last flush stored,
 * in the caller's transaction.  With several workers, a view rebuilt here
 * is stored before the others see it.
 */
static void
worker_start_engine(WorkerRun *run)
{
	MemoryContext old = MemoryContextSwitchTo(run->cxt);

	run->engine = kappa_engine_create(run->stream, run->nparts, run->owned, run->worker,
									  run->nworkers, worker_log_start, run->consumer,
									  run->poisons);
	if (run->nworkers > 1)
		kappa_engine_flush(run->engine);
	MemoryContextSwitchTo(old);
}

/*
 * Consume: poll, hand the messages to the engine, flush and commit as due.
 * The messages polled since the last flush stay held by the consumer (and
 * listed in run->msgs) until the flush commits them: after a poison,
 * worker_recover processes them again from there, without asking the
 * brokers for them again.  Returns only by an error.
 */
static void
worker_loop(WorkerRun *run)
{
	for (;;)
	{
		int			n = 0;
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
		if (run->done == run->nmsgs)
		{
			if (run->msgs_size < run->nmsgs + WORKER_BATCH)
			{
				run->msgs_size = 2 * (run->nmsgs + WORKER_BATCH);
				run->msgs = repalloc(run->msgs, sizeof(KappaMessage) * run->msgs_size);
			}
			n = kappa_consumer_poll(run->consumer, WORKER_POLL_MS, run->msgs + run->nmsgs,
									WORKER_BATCH);
			run->nmsgs += n;
		}
		while (run->done < run->nmsgs)
		{
			KappaMessage *m = &run->msgs[run->done];

			if (run->archive)
				kappa_archive_writer_append(run->archive, m);
			kappa_engine_process(run->engine, m);
			run->done++;
			run->held_bytes += m->len + m->key_len;
			if (kappa_engine_flush_due(run->engine) || run->held_bytes > WORKER_MAX_HELD_BYTES)
			{
				/* a poison met: what a later one makes us read again stays short */
				MemoryContextSwitchTo(run->cxt);
				worker_flush(run, NULL);
				run->last_flush = GetCurrentTimestamp();
				SetCurrentStatementStartTimestamp();
				StartTransactionCommand();
				PushActiveSnapshot(GetTransactionSnapshot());
			}
		}

		/*
		 * A position the log no longer holds: librdkafka stopped fetching
		 * the partition.  Until it is dealt with (even after a poison sends
		 * the worker back to its last flush), nothing else is read there.
		 */
		{
			int32		p;
			int64		offset;

			while (kappa_consumer_out_of_range(run->consumer, &p, &offset))
				run->behind[p] = true;
			for (p = 0; p < run->nparts; p++)
			{
				if (run->behind[p] && kappa_engine_owns(run->engine, p))
					worker_behind_log(run, p);
				run->behind[p] = false;
			}
		}
		run->stalled = worker_note_health(run->stream, run->consumer, n, run->stalled, run->nowned);

		/*
		 * A flush commits, and the transaction's memory goes with it: the
		 * loop goes on in the run's memory, never in a context captured
		 * inside a transaction (the next SIGHUP would then build the
		 * configuration's memory in a freed context).
		 */
		MemoryContextSwitchTo(run->cxt);
		if (run->group)
			worker_rebalance(run);
		now = GetCurrentTimestamp();
		if (IsTransactionState() &&
			(kappa_engine_flush_due(run->engine) ||
			 TimestampDifferenceExceeds(run->last_flush, now, kappa_flush_interval) ||
			 kappa_retry_pending(worker_slot)))
		{
			worker_flush(run, NULL);
			run->last_flush = now;
			worker_check_memory(run);
		}
		MemoryContextSwitchTo(run->cxt);
	}
}

/*
 * After a flush committed: the messages processed so far are durable, so
 * the consumer gives them back; those polled but not processed yet stay.
 */
static void
worker_forget_processed(WorkerRun *run)
{
	kappa_consumer_release_first(run->consumer, run->done);
	if (run->done < run->nmsgs)
		memmove(run->msgs, run->msgs + run->done,
				sizeof(KappaMessage) * (run->nmsgs - run->done));
	run->nmsgs -= run->done;
	run->done = 0;
	run->held_bytes = 0;
}

/*
 * An error interrupted the worker: if the engine blames an event (or a
 * view) for it, roll back to the last flush, build the engine again from
 * what that flush stored, knowing the poison now, and process the
 * messages held since that flush again.  Returns false if the error is
 * not the data's, for the caller to end the worker with it.
 */
static bool
worker_recover(WorkerRun *run, ErrorData *edata)
{
	KappaBlame blame = kappa_engine_blame(run->engine, edata);

	if (blame == KAPPA_BLAME_NONE)
		return false;
	FlushErrorState();
	ereport(LOG,
			(errmsg("kappa worker for stream \"%s\": %s; going back to the last flush and on without it",
					run->stream->name,
					blame == KAPPA_BLAME_VIEW ? "a view lost a right it needs" :
					"an event failed"),
			 errdetail("%s (SQLSTATE %s)", kappa_error_text(edata),
					   unpack_sql_state(edata->sqlerrcode))));
	AbortCurrentTransaction();

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(run->cxt);
	kappa_engine_destroy(run->engine);
	run->engine = NULL;
	if (run->archive)
		kappa_archive_writer_reset(run->archive);
	worker_start_engine(run);
	/* a view new since the last flush may need what was read before it */
	if (worker_needs_seek(run))
	{
		run->nowned = worker_assign(run, run->group);
		kappa_consumer_release(run->consumer);
		run->nmsgs = 0;
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(run->cxt);
	/* the messages since the last flush, again */
	run->done = 0;
	run->held_bytes = 0;
	return true;
}

/*
 * Whether the engine needs messages from before those held since the
 * last flush: it starts a partition below where that flush left it (a
 * view created since), or nothing was flushed yet.
 */
static bool
worker_needs_seek(WorkerRun *run)
{
	for (int p = 0; p < run->nparts; p++)
	{
		int64		start;

		if (!kappa_engine_owns(run->engine, p))
			continue;
		start = kappa_engine_start_offset(run->engine, p);
		if (run->committed[p] < 0 || start < run->committed[p])
			return true;
	}
	return false;
}

/* A message read back from the archive for a gap in the log. */
static void
worker_archive_message(const KappaMessage *m, void *arg)
{
	WorkerRun  *run = arg;

	CHECK_FOR_INTERRUPTS();
	if (run->archive)
		kappa_archive_writer_append(run->archive, m);
	kappa_engine_process(run->engine, m);
}

/*
 * The log of a partition no longer holds the worker's position there:
 * retention deleted what it had not read yet (it fell behind, or was
 * stopped too long).  Read what the archive holds of the missing offsets;
 * what is left is a gap (gap.c): the worker either stops there, in state
 * "failed", recording the gap and saying so, or, if the gap is accepted,
 * counts it as lost, records which views miss it, and goes on.  Then it
 * flushes (so the gap is dealt with once) and reads on from the log's
 * start.  The caller is in the worker's transaction; so is the return.
 */
static void
worker_behind_log(WorkerRun *run, int32 partition)
{
	KappaStream *stream = run->stream;
	int64		from = kappa_engine_start_offset(run->engine, partition);
	int64		log_start = kappa_consumer_query_start(run->consumer, partition);
	int64		log_end = kappa_consumer_query_end(run->consumer, partition);
	List	   *spans;
	ListCell   *lc;

	if (from > log_end)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("partition %d of topic \"%s\" ends at offset " INT64_FORMAT ", before offset " INT64_FORMAT " where stream \"%s\" is",
						partition, stream->topic, log_end, from, stream->name),
				 errdetail("The topic was deleted and created again, or its log truncated."),
				 errhint("Drop the stream and create it again to read the new topic from its start.")));

	MemoryContextSwitchTo(run->cxt);
	kappa_gap_forget(stream, partition, from);
	spans = kappa_history_spans(stream, partition, from, log_start, log_start, false);
	foreach(lc, spans)
	{
		KappaSpan  *span = lfirst(lc);
		int64		stream_lost;
		List	   *gaps;
		bool		accepted;

		if (span->source == KAPPA_FROM_ARCHIVE)
		{
			ereport(LOG,
					(errmsg("kappa worker for stream \"%s\": the log of partition %d begins at offset " INT64_FORMAT "; reading offsets " INT64_FORMAT " to " INT64_FORMAT " from the archive",
							stream->name, partition, log_start, span->from, span->to - 1)));
			kappa_archive_read_range(stream, partition, span->from, span->to, worker_archive_message, run);
			continue;
		}
		if (span->source != KAPPA_FROM_NOWHERE)
			continue;

		accepted = kappa_gap_accepted(stream, partition, span->from);
		kappa_gap_record(stream, partition, span->from, span->to, accepted);
		if (!accepted)
		{
			/* what was read is kept, and the gap recorded, before stopping */
			worker_flush(run, NULL);
			kappa_slot_set_error(worker_slot,
								 psprintf("offsets " INT64_FORMAT " to " INT64_FORMAT " of partition %d are lost: the log begins at offset " INT64_FORMAT " and no archive holds them",
										  span->from, span->to - 1, partition, log_start),
								 "55000");
			kappa_slot_set_state(worker_slot, KAPPA_WORKER_FAILED, 0);
			ereport(WARNING,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("kappa stream \"%s\" stopped: offsets " INT64_FORMAT " to " INT64_FORMAT " of partition %d are lost",
							stream->name, span->from, span->to - 1, partition),
					 errdetail("Retention deleted them from the log before the stream read them, and no archive holds them; kappa.gaps records them."),
					 errhint("Register the Capture files that hold them with kappa_archive_register, or accept the loss with SELECT kappa_accept_gap('%s').",
							 stream->name)));
			proc_exit(0);
		}
		gaps = kappa_engine_skip(run->engine, partition, span->from, span->to, &stream_lost);
		kappa_gap_skip(stream, partition, span->to, stream_lost, gaps);
		if (run->archive)
			kappa_archive_writer_break(run->archive, partition);
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kappa stream \"%s\" skipped lost offsets " INT64_FORMAT " to " INT64_FORMAT " of partition %d",
						stream->name, span->from, span->to - 1, partition),
				 errdetail("Retention deleted them before the stream read them, and no archive holds them; %d views miss them and are marked incomplete.",
						   list_length(gaps))));
	}

	/* dealt with once: the positions after the gap commit now */
	worker_flush(run, NULL);
	run->last_flush = GetCurrentTimestamp();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(run->cxt);
	run->nowned = worker_assign(run, run->group);
}

/*
 * Stop the stream, in state "failed", if its views' open state outgrew
 * kappa.max_state_memory, naming the view that holds the most: better a
 * stream stopped with a clear reason than a server killed for its memory.
 * Checked after each flush, when the state in memory is what is stored.
 */
static void
worker_check_memory(WorkerRun *run)
{
	Size		total;
	int32		view_id;
	Size		largest;
	char	   *name;

	if (kappa_max_state_memory <= 0)
		return;
	total = kappa_engine_memory(run->engine, &view_id, &name, &largest);
	if (total <= (Size) kappa_max_state_memory * 1024 * 1024)
		return;
	kappa_slot_set_error(worker_slot,
						 psprintf("the open state of stream \"%s\" takes %zu MB, more than kappa.max_state_memory (%d MB); view %s holds %zu MB",
								  run->stream->name, total / (1024 * 1024), kappa_max_state_memory,
								  name ? name : "?", largest / (1024 * 1024)),
						 "53200");
	kappa_slot_set_state(worker_slot, KAPPA_WORKER_FAILED, 0);
	ereport(WARNING,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("kappa stream \"%s\" stopped: its open state takes %zu MB, more than kappa.max_state_memory (%d MB)",
					run->stream->name, total / (1024 * 1024), kappa_max_state_memory),
			 errdetail("View %s holds %zu MB of it.", name ? name : "?", largest / (1024 * 1024)),
			 errhint("Raise kappa.max_state_memory and reload, or drop or replay the view with a shorter window or fewer groups.")));
	proc_exit(0);
}

/*
 * Show in the slot whether consumption stalls: when a poll brings nothing
 * while librdkafka has reported an error (a broker down, requests failing)
 * and the brokers do not answer a probe either, the state becomes "stalled"
 * and the error is recorded, where kappa_workers and kappa_stats show
 * them; a message, or the brokers answering a probe, makes it "running"
 * again, which clears the error shown too.  librdkafka retries by itself
 * meanwhile.  Returns whether the worker is now stalled.
 */
static bool
worker_note_health(KappaStream *stream, KappaConsumer *consumer, int received,
				   bool stalled, int nparts)
{
	static TimestampTz last_probe = 0;
	const char *error;
	bool		answered;

	error = kappa_consumer_error(consumer);
	if (received == 0 && error[0] != '\0')
	{
		/*
		 * librdkafka reported an error and nothing came: whether the brokers
		 * answer decides, asked once a second at most.  Its reports lag (it
		 * suppresses repeats and reports them later), and an idle stream
		 * gets no message to say the brokers are back.
		 */
		if (!TimestampDifferenceExceeds(last_probe, GetCurrentTimestamp(), 1000))
			return stalled;
		last_probe = GetCurrentTimestamp();
		answered = kappa_consumer_probe(consumer, 500);
	}
	else
		answered = true;

	if (stalled && answered)
	{
		kappa_slot_set_state(worker_slot, KAPPA_WORKER_RUNNING, nparts);
		ereport(LOG,
				(errmsg("kappa worker for stream \"%s\" is consuming again", stream->name)));
		return false;
	}
	if (!stalled && !answered)
	{
		kappa_slot_set_state(worker_slot, KAPPA_WORKER_STALLED, nparts);
		kappa_slot_set_error(worker_slot, error, "08000");
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
