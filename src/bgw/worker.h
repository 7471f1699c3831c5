/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  A stream worker: the background worker that serves one stream.
 *
 * src/bgw/worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_WORKER_H
#define KAPPA_WORKER_H

#include "fmgr.h"

/* What the launcher passes a stream worker in bgw_extra. */
typedef struct KappaWorkerArgs
{
	Oid			database;
	int32		stream_id;
	int32		worker;			/* which of the stream's workers, from 0 */
	int32		nworkers;		/* kappa.workers_per_stream at its start */
} KappaWorkerArgs;

extern PGDLLEXPORT void kappa_worker_main(Datum main_arg);

#endif							/* KAPPA_WORKER_H */
