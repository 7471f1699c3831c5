/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Definition of kappa's configuration settings.
 *
 * Every kappa.* setting is defined here, once, from _PG_init.  Settings
 * that size shared memory or choose the launcher's database are
 * PGC_POSTMASTER; the ones the launcher and workers re-read on SIGHUP are
 * PGC_SIGHUP; kappa.broker_timeout bounds SQL calls that talk to a broker
 * and may be set per session.  docs/reference.md describes each one; keep
 * the two in step.
 *
 * src/guc.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "utils/guc.h"
#include "utils/memutils.h"

#include "guc.h"

char	   *kappa_database = NULL;
bool		kappa_enabled = true;
int			kappa_launcher_naptime = 10000;
int			kappa_max_streams = 32;
int			kappa_workers_per_stream = 1;
int			kappa_restart_backoff_max = 300;
int			kappa_broker_timeout = 10000;
int			kappa_flush_interval = 1000;
int			kappa_flush_events = 100000;
int			kappa_max_payload = 10 * 1024 * 1024;
bool		kappa_archive_deflate = false;
int			kappa_archive_roll_size = 64 * 1024;	/* kB */
int			kappa_archive_roll_interval = 300;	/* s */
bool		kappa_replay_prefer_archive = false;
int			kappa_max_state_memory = 1024;	/* MB */

/* Register every kappa.* setting; called once from _PG_init. */
void
kappa_guc_define(void)
{
	DefineCustomStringVariable("kappa.database",
							   "Database in which the kappa launcher runs.",
							   "Streams and views are read from this database; "
							   "the kappa extension must be created there.",
							   &kappa_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("kappa.enabled",
							 "Whether kappa's background workers consume streams.",
							 "When off, the launcher stops every stream worker "
							 "and starts none until it is turned on again.",
							 &kappa_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.launcher_naptime",
							"Longest time the launcher sleeps between checks of the stream catalog.",
							"Creating or dropping a stream wakes the launcher at "
							"once; this is the safety net.",
							&kappa_launcher_naptime,
							10000, 100, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.max_streams",
							"Maximum number of streams with a running worker.",
							"Sizes kappa's shared memory; each running stream "
							"also needs a background worker slot "
							"(max_worker_processes).",
							&kappa_max_streams,
							32, 1, 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.workers_per_stream",
							"Number of background workers that consume each stream.",
							"With more than one, the workers join the stream's "
							"consumer group, the brokers spread the partitions "
							"over them, and they share each view's state in "
							"Postgres.  Each worker needs a background worker "
							"slot (max_worker_processes).",
							&kappa_workers_per_stream,
							1, 1, 64,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.restart_backoff_max",
							"Longest delay before a failed stream worker is restarted.",
							"A worker that fails is restarted after 1 s, then "
							"2 s, 4 s, ... up to this many seconds.",
							&kappa_restart_backoff_max,
							300, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.broker_timeout",
							"Time limit for SQL calls that talk to a broker.",
							"kappa_produce and kappa_peek fail with an error "
							"when the broker does not answer within this time.",
							&kappa_broker_timeout,
							10000, 100, 600 * 1000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.flush_interval",
							"Longest time a stream worker keeps events before writing them to its views.",
							"Views are at most this far behind the consumed events.",
							&kappa_flush_interval,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.flush_events",
							"Most events a stream worker processes before writing them to its views.",
							NULL,
							&kappa_flush_events,
							100000, 1, INT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.max_payload",
							"Largest message payload a stream worker decodes.",
							"Larger payloads are dead-lettered as oversized, with "
							"their bytes; a worker reads this when it starts.",
							&kappa_max_payload,
							10 * 1024 * 1024, 1024, MaxAllocSize / 2,
							PGC_SIGHUP,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("kappa.archive_deflate",
							 "Compress archive files with deflate.",
							 "Applies to files opened from then on; readers of "
							 "Capture files (Avro) handle both.",
							 &kappa_archive_deflate,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.archive_roll_size",
							"Size after which an archive file is closed and a new one begun.",
							NULL,
							&kappa_archive_roll_size,
							64 * 1024, 64, INT_MAX / 1024,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.archive_roll_interval",
							"Age after which an archive file is closed and a new one begun.",
							"Checked at each flush of the stream's worker.",
							&kappa_archive_roll_interval,
							300, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("kappa.replay_prefer_archive",
							 "Replay from the archive wherever it reaches, not only where the log no longer does.",
							 "Reading local files spares the brokers; the log is read "
							 "from where the archive ends.",
							 &kappa_replay_prefer_archive,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("kappa.max_state_memory",
							"Memory a stream's open windows and groups may take in its worker.",
							"Checked after every flush; a stream over the limit stops in state "
							"\"failed\", naming the view that holds the most, until the "
							"setting is raised or the view changes.  0 means no limit.",
							&kappa_max_state_memory,
							1024,
							0, INT_MAX / 2,
							PGC_SIGHUP,
							GUC_UNIT_MB,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("kappa");
}
