/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  A stream worker: the background worker that serves one stream.
 *
 * The launcher starts one worker per stream, passing the slot index as
 * bgw_main_arg and the database and stream id in bgw_extra.  The worker
 * claims its slot (if the slot still belongs to its stream), loads its
 * stream, reaches the brokers and checks the topic, publishes its state in
 * its slot, and then waits on its latch until it is told to stop.
 * Consuming the partitions comes on top of this skeleton.
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
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "guc.h"
#include "kafka.h"
#include "shmem.h"
#include "stream.h"
#include "worker.h"

static int	worker_slot = -1;

static void worker_start(int32 stream_id);
static KappaStream *worker_load_stream(int32 stream_id);
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
	worker_start(args.stream_id);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 kappa_launcher_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Load the stream, reach its brokers and check its topic.  Any error is
 * copied into the slot, where kappa_workers shows it, before it ends the
 * worker.
 */
static void
worker_start(int32 stream_id)
{
	MemoryContext cxt = CurrentMemoryContext;
	KappaStream *stream;
	int			partitions;

	PG_TRY();
	{
		stream = worker_load_stream(stream_id);
		if (stream == NULL)
		{
			ereport(LOG,
					(errmsg("kappa worker: stream %d no longer exists", stream_id)));
			proc_exit(0);
		}
		pgstat_report_appname(psprintf("kappa worker %s", stream->name));
		partitions = kappa_kafka_topic_partitions(stream);
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

	kappa_slot_set_state(worker_slot, KAPPA_WORKER_RUNNING, partitions);
	ereport(LOG,
			(errmsg("kappa worker for stream \"%s\" reached topic \"%s\" (%d partitions)",
					stream->name, stream->topic, partitions)));
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
