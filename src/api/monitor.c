/*-------------------------------------------------------------------------
 *
 * monitor.c
 *	  Where each stream's log begins and ends now, asked of the brokers
 *	  for kappa_stats.
 *
 * A stream's worker notes the log's end at every flush, but a worker that
 * is stopped, disabled, failing or stalled notes nothing, and a lag
 * computed from what it noted last says 0 while events pile up.  So
 * kappa_stats asks the brokers itself, through kappa_log_ends(): for each
 * stream, the low and high watermark of every partition.  Brokers that do
 * not answer within a second (or kappa.broker_timeout, if shorter), or a
 * topic they no longer have, leave the stream out, and kappa_stats falls
 * back on what the worker noted.
 * Answers are kept for a second per backend, so that a dashboard that
 * polls, or a query that reads kappa_stats several times, does not open a
 * connection per row.
 *
 * src/api/monitor.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "kafka/kafka.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/stream_rows.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kappa_log_ends);

/* How long an answer is kept, and the longest wait for one. */
#define LOG_ENDS_KEEP_MS 1000
#define LOG_ENDS_TIMEOUT_MS 1000

/* A stream's watermarks as the brokers last gave them to this backend. */
typedef struct LogEnds
{
	int32		stream_id;
	TimestampTz asked_at;
	bool		answered;
	int			nparts;
	int64	   *low;
	int64	   *high;
} LogEnds;

static List *known_ends = NIL;	/* LogEnds, in TopMemoryContext */

/* The stream's watermarks, from this backend's memory if fresh enough. */
static LogEnds *
log_ends(int32 stream_id, TimestampTz now)
{
	LogEnds    *volatile ends = NULL;
	ListCell   *lc;
	MemoryContext old;
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	KappaStream *stream;
	int64	   *low = NULL;
	int64	   *high = NULL;

	foreach(lc, known_ends)
	{
		if (((LogEnds *) lfirst(lc))->stream_id == stream_id)
		{
			ends = lfirst(lc);
			break;
		}
	}
	if (ends != NULL && !TimestampDifferenceExceeds(ends->asked_at, now, LOG_ENDS_KEEP_MS))
		return ends;
	if (ends == NULL)
	{
		ends = MemoryContextAllocZero(TopMemoryContext, sizeof(LogEnds));
		ends->stream_id = stream_id;
		old = MemoryContextSwitchTo(TopMemoryContext);
		known_ends = lappend(known_ends, ends);
		MemoryContextSwitchTo(old);
	}

	ends->asked_at = now;
	ends->answered = false;
	if (ends->low)
		pfree(ends->low);
	if (ends->high)
		pfree(ends->high);
	ends->low = ends->high = NULL;

	/*
	 * In a subtransaction: a topic deleted since, or rights the brokers
	 * refuse, are errors of librdkafka's setup, and kappa_stats must show
	 * every other stream all the same.
	 */
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		stream = kappa_stream_load_by_id(stream_id);
		ends->answered = stream != NULL &&
			kappa_kafka_try_watermarks(stream, Min(kappa_broker_timeout, LOG_ENDS_TIMEOUT_MS),
									   &ends->nparts, &low, &high);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
		ends->answered = false;
	}
	PG_END_TRY();
	if (ends->answered)
	{
		Size		size = sizeof(int64) * Max(ends->nparts, 1);

		ends->low = MemoryContextAlloc(TopMemoryContext, size);
		ends->high = MemoryContextAlloc(TopMemoryContext, size);
		memcpy(ends->low, low, sizeof(int64) * ends->nparts);
		memcpy(ends->high, high, sizeof(int64) * ends->nparts);
	}
	return ends;
}

/*
 * kappa_log_ends() returns (stream_id, partition, log_start, log_end) for
 * every partition of every stream whose brokers answer now.
 */
Datum
kappa_log_ends(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	List	   *stream_ids;
	ListCell   *lc;

	kappa_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	stream_ids = kappa_streams_ids();

	foreach(lc, stream_ids)
	{
		LogEnds    *ends = log_ends(lfirst_int(lc), now);

		for (int p = 0; ends->answered && p < ends->nparts; p++)
		{
			Datum		values[4] = {Int32GetDatum(ends->stream_id), Int32GetDatum(p),
			Int64GetDatum(ends->low[p]), Int64GetDatum(ends->high[p])};
			bool		nulls[4] = {false, false, false, false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}
