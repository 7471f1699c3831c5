/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Shared memory of kappa, and the SQL view of the worker slots.
 *
 * kappa's shared state is small: the launcher's PID and latch, so that a
 * backend that creates or drops a stream can wake it, and an array of
 * kappa.max_streams worker slots through which the launcher and the stream
 * workers tell each other, and the kappa_workers view, what they are doing.
 *
 * Locking: the header fields are protected by KappaSharedState.mutex and
 * each slot by its own spinlock.  Nothing is held for more than a few
 * instructions: readers copy a slot out under the lock and format it after
 * releasing it, as pg_stat_statements does with its entries.  Only the
 * launcher allocates or frees a slot, so two writers never race for one.
 *
 * src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "shmem.h"

KappaSharedState *kappa_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(kappa_worker_status);

static Size kappa_shmem_size(void);
static void kappa_shmem_request(void);
static void kappa_shmem_startup(void);
static void kappa_launcher_detach(int code, Datum arg);

/* Bytes of shared memory kappa needs. */
static Size
kappa_shmem_size(void)
{
	return add_size(offsetof(KappaSharedState, slots),
					mul_size(mul_size(kappa_max_streams, kappa_workers_per_stream),
							 sizeof(KappaWorkerSlot)));
}

/* Install the shared memory hooks; only called while preloading. */
void
kappa_shmem_install_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = kappa_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = kappa_shmem_startup;
}

static void
kappa_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(kappa_shmem_size());
}

/* Create or attach to kappa's shared state. */
static void
kappa_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	kappa_shared = ShmemInitStruct("kappa", kappa_shmem_size(), &found);
	if (!found)
	{
		memset(kappa_shared, 0, kappa_shmem_size());
		SpinLockInit(&kappa_shared->mutex);
		kappa_shared->nslots = kappa_max_streams * kappa_workers_per_stream;
		for (int i = 0; i < kappa_shared->nslots; i++)
			SpinLockInit(&kappa_shared->slots[i].mutex);
		for (int i = 0; i < KAPPA_MAX_REPLAYS; i++)
			SpinLockInit(&kappa_shared->replays[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Fail clearly when the library was not preloaded: without it there is no
 * shared state and no launcher, so nothing kappa does would take effect.
 */
void
kappa_require_preload(void)
{
	if (kappa_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kappa must be loaded via \"shared_preload_libraries\""),
				 errhint("Add kappa to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Publish the calling process as the launcher, until it exits. */
void
kappa_launcher_attach(void)
{
	SpinLockAcquire(&kappa_shared->mutex);
	kappa_shared->launcher_pid = MyProcPid;
	kappa_shared->launcher_latch = MyLatch;
	SpinLockRelease(&kappa_shared->mutex);
	before_shmem_exit(kappa_launcher_detach, (Datum) 0);
}

static void
kappa_launcher_detach(int code, Datum arg)
{
	SpinLockAcquire(&kappa_shared->mutex);
	if (kappa_shared->launcher_pid == MyProcPid)
	{
		kappa_shared->launcher_pid = 0;
		kappa_shared->launcher_latch = NULL;
	}
	SpinLockRelease(&kappa_shared->mutex);
}

/* Ask the launcher to look at the catalog now rather than at its next nap. */
void
kappa_wake_launcher(void)
{
	Latch	   *latch;

	if (kappa_shared == NULL)
		return;
	SpinLockAcquire(&kappa_shared->mutex);
	latch = kappa_shared->launcher_latch;
	kappa_shared->catalog_changed = true;
	SpinLockRelease(&kappa_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * For the launcher: whether a backend changed streams or views since the
 * last call (its latch is also set when a worker exits).
 */
bool
kappa_launcher_take_wakeup(void)
{
	bool		changed;

	SpinLockAcquire(&kappa_shared->mutex);
	changed = kappa_shared->catalog_changed;
	kappa_shared->catalog_changed = false;
	SpinLockRelease(&kappa_shared->mutex);
	return changed;
}

/* The worker slot at index, which must be valid. */
KappaWorkerSlot *
kappa_slot(int index)
{
	Assert(index >= 0 && index < kappa_shared->nslots);
	return &kappa_shared->slots[index];
}

/*
 * Called by a worker to publish its state, as long as the slot is still its
 * own (a launcher that restarted may have given it to another worker).
 */
void
kappa_slot_set_state(int index, KappaWorkerState state, int partitions)
{
	KappaWorkerSlot *slot = kappa_slot(index);

	SpinLockAcquire(&slot->mutex);
	if (slot->pid == MyProcPid)
	{
		slot->state = state;
		slot->partitions = partitions;
		/* running again: the last error is over (last_error_at stays) */
		if (state == KAPPA_WORKER_RUNNING)
		{
			slot->last_error[0] = '\0';
			slot->last_sqlstate[0] = '\0';
		}
	}
	SpinLockRelease(&slot->mutex);
}

/*
 * Publish which partitions a worker consumes from now on, so that the
 * stream's other workers can tell a partition someone is reading (and
 * may find idle) from one nobody is (kappa_partition_owned_since).
 */
void
kappa_slot_set_partitions(int index, const bool *owned, int nparts)
{
	KappaWorkerSlot *slot = kappa_slot(index);
	uint8		map[KAPPA_SLOT_PARTITIONS / 8] = {0};
	TimestampTz now = GetCurrentTimestamp();

	for (int p = 0; p < nparts && p < KAPPA_SLOT_PARTITIONS; p++)
	{
		if (owned[p])
			map[p / 8] |= (uint8) (1 << (p % 8));
	}
	SpinLockAcquire(&slot->mutex);
	if (slot->pid == MyProcPid)
	{
		memcpy(slot->owned, map, sizeof(map));
		slot->owned_since = now;
	}
	SpinLockRelease(&slot->mutex);
}

/*
 * Since when a running worker of the stream has consumed a partition, or 0
 * if none does now (its worker is gone, or its consumer group is moving
 * it).
 */
TimestampTz
kappa_partition_owned_since(int32 stream_id, int32 partition)
{
	TimestampTz since = 0;

	if (partition < 0 || partition >= KAPPA_SLOT_PARTITIONS)
		return 0;
	for (int i = 0; i < kappa_shared->nslots && since == 0; i++)
	{
		KappaWorkerSlot *slot = &kappa_shared->slots[i];

		SpinLockAcquire(&slot->mutex);
		if (slot->in_use && slot->stream_id == stream_id && slot->pid != 0 &&
			(slot->owned[partition / 8] & (1 << (partition % 8))) != 0)
			since = slot->owned_since;
		SpinLockRelease(&slot->mutex);
	}
	return since;
}

/*
 * Record why a stream's worker failed, or stalls: called by the worker
 * itself, or by the launcher when it could not start one.  The text is an
 * error message of kappa's, Postgres's or librdkafka's; none contains a
 * secret, but one may quote the stream's data, so kappa_worker_status
 * shows it only to the stream's owner, and the SQLSTATE to everyone.
 */
void
kappa_slot_set_error(int index, const char *message, const char *sqlstate)
{
	KappaWorkerSlot *slot = kappa_slot(index);
	TimestampTz now = GetCurrentTimestamp();
	char		copy[KAPPA_ERROR_LEN];

	/* no strlen of a long message under the spinlock */
	strlcpy(copy, message, sizeof(copy));
	SpinLockAcquire(&slot->mutex);
	if (slot->pid == MyProcPid || slot->pid == 0)
	{
		memcpy(slot->last_error, copy, sizeof(copy));
		strlcpy(slot->last_sqlstate, sqlstate, sizeof(slot->last_sqlstate));
		slot->last_error_at = now;
	}
	SpinLockRelease(&slot->mutex);
}

/* Record whose stream a worker serves: its owner may read its errors. */
void
kappa_slot_set_owner(int index, Oid owner)
{
	KappaWorkerSlot *slot = kappa_slot(index);

	SpinLockAcquire(&slot->mutex);
	if (slot->pid == MyProcPid)
		slot->owner = owner;
	SpinLockRelease(&slot->mutex);
}

/* Name of a worker state as shown in kappa_workers. */
const char *
kappa_worker_state_name(KappaWorkerState state)
{
	switch (state)
	{
		case KAPPA_WORKER_STARTING:
			return "starting";
		case KAPPA_WORKER_CONNECTING:
			return "connecting";
		case KAPPA_WORKER_RUNNING:
			return "running";
		case KAPPA_WORKER_STALLED:
			return "stalled";
		case KAPPA_WORKER_BACKOFF:
			return "backoff";
		case KAPPA_WORKER_DISABLED:
			return "disabled";
		case KAPPA_WORKER_FAILED:
			return "failed";
	}
	return "unknown";
}

/*
 * kappa_worker_status() returns one row per supervised stream: the data
 * behind the kappa_workers view.
 */
Datum
kappa_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	kappa_require_preload();
	InitMaterializedSRF(fcinfo, 0);

	for (int i = 0; i < kappa_shared->nslots; i++)
	{
		KappaWorkerSlot copy;
		KappaWorkerSlot *slot = &kappa_shared->slots[i];
		Datum		values[12];
		bool		nulls[12] = {0};

		SpinLockAcquire(&slot->mutex);
		memcpy(&copy, slot, sizeof(copy));
		SpinLockRelease(&slot->mutex);

		if (!copy.in_use)
			continue;

		values[0] = Int32GetDatum(copy.stream_id);
		values[1] = CStringGetTextDatum(copy.stream_name);
		values[2] = CStringGetTextDatum(kappa_worker_state_name(copy.state));
		values[3] = Int32GetDatum(copy.pid);
		nulls[3] = (copy.pid == 0);
		values[4] = Int32GetDatum(copy.partitions);
		nulls[4] = (copy.state != KAPPA_WORKER_RUNNING && copy.state != KAPPA_WORKER_STALLED);
		values[5] = Int32GetDatum(copy.failures);
		values[6] = TimestampTzGetDatum(copy.started_at);
		nulls[6] = (copy.started_at == 0);
		/* the error may quote data: its text for the owner, its code for all */
		if (OidIsValid(copy.owner) && !has_privs_of_role(GetUserId(), copy.owner))
			values[7] = CStringGetTextDatum(psprintf("SQLSTATE %s", copy.last_sqlstate));
		else
			values[7] = CStringGetTextDatum(copy.last_error);
		nulls[7] = (copy.last_error[0] == '\0');
		values[8] = TimestampTzGetDatum(copy.last_error_at);
		nulls[8] = (copy.last_error_at == 0);
		values[9] = TimestampTzGetDatum(copy.next_start_at);
		nulls[9] = (copy.state != KAPPA_WORKER_BACKOFF);
		values[10] = Int32GetDatum(copy.worker);
		values[11] = CStringGetTextDatum(copy.last_sqlstate);
		nulls[11] = (copy.last_error[0] == '\0');

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
