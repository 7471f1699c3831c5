/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  Shared memory of kappa: the launcher's latch and one slot per stream
 *	  worker.
 *
 * src/shmem.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_SHMEM_H
#define KAPPA_SHMEM_H

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"

#define KAPPA_ERROR_LEN 256
/* Partitions a worker slot can say it consumes; those beyond never idle. */
#define KAPPA_SLOT_PARTITIONS 2048

typedef enum KappaWorkerState
{
	KAPPA_WORKER_STARTING,		/* registered, process not yet attached */
	KAPPA_WORKER_CONNECTING,	/* attached, reaching the broker */
	KAPPA_WORKER_RUNNING,		/* connected to the topic */
	KAPPA_WORKER_STALLED,		/* running, but the brokers fail it: retrying */
	KAPPA_WORKER_BACKOFF,		/* failed; launcher restarts it later */
	KAPPA_WORKER_DISABLED,		/* kappa.enabled is off */
	KAPPA_WORKER_FAILED			/* stopped for a reason of the stream's own */
	/* (kappa.max_state_memory): started again when the catalog or the */
	/* settings change */
} KappaWorkerState;

/*
 * One slot per stream worker the launcher supervises
 * (kappa.workers_per_stream per stream).  The launcher allocates and
 * frees slots and owns the restart bookkeeping; the worker writes only its
 * own state, partition count and last error.  Every field is read and
 * written under the slot's spinlock.
 */
typedef struct KappaWorkerSlot
{
	slock_t		mutex;
	bool		in_use;
	int32		stream_id;
	char		stream_name[NAMEDATALEN];
	int32		worker;			/* which of the stream's workers, from 0 */
	pid_t		pid;
	KappaWorkerState state;
	int32		partitions;
	int32		failures;		/* consecutive failed runs */
	TimestampTz started_at;
	TimestampTz next_start_at;	/* when in backoff */
	TimestampTz last_error_at;
	char		last_error[KAPPA_ERROR_LEN];
	char		last_sqlstate[6];
	Oid			owner;			/* the stream's: may read last_error */
	TimestampTz owned_since;	/* when it was last given partitions */
	uint8		owned[KAPPA_SLOT_PARTITIONS / 8];	/* bitmap: what it consumes */

	/*
	 * kappa_retry_dead_letters (retry.c): a backend places a request (a
	 * number, and bounds on broker time) while none is pending; the worker
	 * takes it at its next flush and, once that committed, answers it with
	 * the counts and clears it.
	 */
	uint32		retry_next;		/* the last request number given */
	uint32		retry_id;		/* the pending request; 0: none */
	uint32		retry_taken;	/* the request a worker is carrying out */
	TimestampTz retry_since;	/* its bounds: [since, until) */
	TimestampTz retry_until;
	uint32		retry_done;		/* the last request carried out, */
	int64		retry_applied;	/* and what it came to */
	int64		retry_late;
	int64		retry_still_dead;
} KappaWorkerSlot;

/* Replays that may report progress at once; more run, unreported. */
#define KAPPA_MAX_REPLAYS 16

/*
 * The progress of a kappa_replay, for kappa_replays: written by the
 * replaying backend only, under the slot's spinlock; free when pid is 0.
 */
typedef struct KappaReplaySlot
{
	slock_t		mutex;
	pid_t		pid;
	char		view[2 * NAMEDATALEN + 8];
	char		phase[16];
	int32		partitions_done;
	int32		partitions_total;
	int64		events_done;
	int64		events_total;
	TimestampTz started_at;
} KappaReplaySlot;

typedef struct KappaSharedState
{
	slock_t		mutex;			/* protects the next three */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	bool		catalog_changed;	/* a backend changed streams or views */
	KappaReplaySlot replays[KAPPA_MAX_REPLAYS];
	int			nslots;
	KappaWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} KappaSharedState;

extern KappaSharedState *kappa_shared;

extern void kappa_shmem_install_hooks(void);
extern void kappa_require_preload(void);
extern void kappa_launcher_attach(void);
extern void kappa_wake_launcher(void);
extern bool kappa_launcher_take_wakeup(void);
extern KappaWorkerSlot *kappa_slot(int index);
extern void kappa_slot_set_state(int index, KappaWorkerState state,
								 int partitions);
extern void kappa_slot_set_error(int index, const char *message, const char *sqlstate);
extern void kappa_slot_set_owner(int index, Oid owner);
extern void kappa_slot_set_partitions(int index, const bool *owned, int nparts);
extern TimestampTz kappa_partition_owned_since(int32 stream_id, int32 partition);
extern const char *kappa_worker_state_name(KappaWorkerState state);

#endif							/* KAPPA_SHMEM_H */
