/*-------------------------------------------------------------------------
 *
 * consumer.c
 *	  A stream worker's consumer: partitions assigned by the worker or by
 *	  the stream's consumer group, and messages read in batches.
 *
 * With one worker per stream (kappa.workers_per_stream = 1) the worker
 * assigns itself every partition it owns, at the positions Postgres holds.
 * With several, each worker subscribes to the topic in the stream's
 * consumer group and the brokers spread the partitions over them.  The
 * rebalance callback only notes what the group decided (no librdkafka
 * thread, and no librdkafka frame, ever runs Postgres code): the worker
 * sees it when kappa_consumer_poll returns, flushes what it read from
 * partitions it is giving up, or reads the positions of those it was
 * given, and only then completes the assignment.  librdkafka allows the
 * assign call after the callback has returned, within the session timeout.
 *
 * The rules of kafka.c hold here too: handles are made by kafka_new, and
 * every wait is bounded.
 *
 * src/kafka/consumer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "kafka/kafka.h"
#include "kafka/kafka_internal.h"
#include "kappa_catalog/connection.h"

/* Messages kappa_consumer_read_ranges takes from the consumer at a time. */
#define CONSUMER_RANGE_BATCH 10000
/* How long a worker that stops waits to leave its consumer group. */
#define CONSUMER_LEAVE_MS 5000

/* A stream worker's consumer: assigned partitions, batches of messages. */
struct KappaConsumer
{
	KappaKafka *kk;				/* with the queue and the messages held */
	KappaStream *stream;
	int			nparts;
	bool		group;			/* a member of the stream's consumer group */
	bool		leaving;		/* kappa_consumer_leave: give everything back */
	KappaRebalance rebalance;	/* what the group decided, not yet done */
	bool	   *given;			/* with KAPPA_REBALANCE_ASSIGN: the partitions */
	int64	   *out_of_range;	/* per partition: the offset the log no longer
								 * holds that a fetch asked for, or
								 * KAPPA_OFFSET_NONE */
};

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
						 rd_kafka_topic_partition_list_t *partitions, void *opaque);

/* A setting, unless the stream's own options set it already. */
static List *
consumer_default(KappaStream *stream, const char *name, const char *value)
{
	ListCell   *lc;

	foreach(lc, stream->settings)
	{
		if (strcmp(((KappaSetting *) lfirst(lc))->name, name) == 0)
			return NIL;
	}
	return list_make1(kappa_make_setting(name, value));
}

/*
 * Open a stream's consumer and learn its topic's partition count.  The
 * consumer is in the stream's consumer group (kappa-<stream>).  With group
 * set it takes part in the group's assignment (kappa_consumer_subscribe);
 * otherwise its worker assigns it partitions directly.  Either way the
 * positions come from Postgres, never from Kafka's committed offsets.
 * A position the log no longer holds is never moved silently (librdkafka's
 * auto.offset.reset is "error"): the poll notes it, and the caller decides
 * (kappa_consumer_out_of_range).
 */
KappaConsumer *
kappa_consumer_open(KappaStream *stream, int *nparts, bool group)
{
	KappaConsumer *consumer = palloc0(sizeof(KappaConsumer));
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   kappa_broker_timeout);

	List	   *extra;

	consumer->stream = stream;
	extra = list_make4(kappa_make_setting("group.id", psprintf("kappa-%s", stream->name)),
					   kappa_make_setting("enable.auto.commit", "false"),
					   kappa_make_setting("enable.auto.offset.store", "false"),
					   kappa_make_setting("auto.offset.reset", "error"));

	/*
	 * Defaults the stream's options may override: a short fetch wait, for
	 * fresh views, and a deep prefetch queue.  librdkafka 2.0 stops
	 * fetching for a whole second whenever its queue is full (the pause is
	 * tunable only from 2.2, fetch.queue.backoff.ms), which throttled a
	 * worker to a sixth of what it could do.
	 */
	extra = list_concat(extra, consumer_default(stream, "fetch.wait.max.ms", "100"));
	extra = list_concat(extra, consumer_default(stream, "queued.min.messages", "1000000"));
	extra = list_concat(extra, consumer_default(stream, "queued.max.messages.kbytes", "262144"));

	/*
	 * In a consumer group, a worker that dies without leaving holds its
	 * partitions until its session times out, and a rebalance waits as
	 * long for members to rejoin: 10 s rather than librdkafka's 45 s, with
	 * a heartbeat each second.  (Brokers accept 6 s and up by default.)
	 */
	if (group)
	{
		extra = list_concat(extra, consumer_default(stream, "session.timeout.ms", "10000"));
		extra = list_concat(extra, consumer_default(stream, "heartbeat.interval.ms", "1000"));
	}
	consumer->group = group;
	consumer->kk = kappa_kafka_new(stream, RD_KAFKA_CONSUMER, extra, group ? rebalance_cb : NULL);
	consumer->kk->owner = consumer;
	consumer->nparts = kappa_kafka_partitions(consumer->kk, stream->topic, deadline);
	if (consumer->nparts < 0)
		kappa_kafka_broker_error(kappa_kafka_reason(consumer->kk), stream, "reach the brokers");
	consumer->kk->queue = rd_kafka_queue_get_consumer(consumer->kk->rk);
	if (consumer->kk->queue == NULL)
		elog(ERROR, "could not get the consumer queue of stream \"%s\"", stream->name);
	consumer->given = palloc0(sizeof(bool) * Max(consumer->nparts, 1));
	consumer->out_of_range = palloc(sizeof(int64) * Max(consumer->nparts, 1));
	for (int p = 0; p < consumer->nparts; p++)
		consumer->out_of_range[p] = KAPPA_OFFSET_NONE;
	*nparts = consumer->nparts;
	return consumer;
}

/* Join the stream's consumer group; assignments come through polls. */
void
kappa_consumer_subscribe(KappaConsumer *consumer)
{
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_resp_err_t err;

	Assert(consumer->group);
	rd_kafka_topic_partition_list_add(topics, consumer->stream->topic, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(consumer->kk->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not join the consumer group of stream \"%s\"", consumer->stream->name),
				 errdetail("%s", rd_kafka_err2str(err))));
}

/*
 * The group's rebalance, served inside a poll: note it for the worker and
 * make the poll return.  While leaving, give everything back at once.
 */
static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
	KappaConsumer *consumer = ((KappaKafka *) opaque)->owner;

	if (consumer->leaving)
	{
		(void) rd_kafka_assign(rk, NULL);
		return;
	}
	memset(consumer->given, 0, sizeof(bool) * Max(consumer->nparts, 1));
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		consumer->rebalance = KAPPA_REBALANCE_ASSIGN;
		for (int i = 0; i < partitions->cnt; i++)
		{
			int32		p = partitions->elems[i].partition;

			if (p >= 0 && p < consumer->nparts)
				consumer->given[p] = true;
		}
	}
	else
	{
		/* a revocation, or an error: either way, nothing is ours now */
		consumer->rebalance = KAPPA_REBALANCE_REVOKE;
	}
	rd_kafka_yield(rk);
}

/*
 * What the group decided since the last call: KAPPA_REBALANCE_ASSIGN with
 * the partitions given in given[] (nparts of them; complete it with
 * kappa_consumer_assign), KAPPA_REBALANCE_REVOKE (complete it with
 * kappa_consumer_unassign), or KAPPA_REBALANCE_NONE.
 */
KappaRebalance
kappa_consumer_rebalance(KappaConsumer *consumer, bool *given)
{
	KappaRebalance r = consumer->rebalance;

	if (r == KAPPA_REBALANCE_ASSIGN)
		memcpy(given, consumer->given, sizeof(bool) * consumer->nparts);
	consumer->rebalance = KAPPA_REBALANCE_NONE;
	return r;
}

/* Give up every partition (after a revocation, once it is flushed). */
void
kappa_consumer_unassign(KappaConsumer *consumer)
{
	rd_kafka_resp_err_t err = rd_kafka_assign(consumer->kk->rk, NULL);

	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not give up the partitions of stream \"%s\"", consumer->stream->name),
				 errdetail("%s", rd_kafka_err2str(err))));
}

/*
 * Leave the consumer group, so that the others get its partitions at once
 * rather than after the session timeout.  Waits CONSUMER_LEAVE_MS at most:
 * a worker that stops while the brokers are down must not hang.
 */
void
kappa_consumer_leave(KappaConsumer *consumer)
{
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;
	rd_kafka_error_t *error;
	TimestampTz deadline;

	if (!consumer->group || consumer->kk == NULL || consumer->leaving)
		return;
	rk = consumer->kk->rk;
	consumer->leaving = true;
	queue = rd_kafka_queue_new(rk);
	error = rd_kafka_consumer_close_queue(rk, queue);
	if (error != NULL)
	{
		rd_kafka_error_destroy(error);
		rd_kafka_queue_destroy(queue);
		return;
	}
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CONSUMER_LEAVE_MS);
	while (!rd_kafka_consumer_closed(rk) && GetCurrentTimestamp() < deadline)
	{
		rd_kafka_event_t *event = rd_kafka_queue_poll(queue, 100);

		if (event == NULL)
			continue;
		if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE)
			(void) rd_kafka_assign(rk, NULL);
		rd_kafka_event_destroy(event);
	}
	rd_kafka_queue_destroy(queue);
}

/*
 * Read each partition from the given offset (KAPPA_OFFSET_BEGINNING and
 * KAPPA_OFFSET_END are librdkafka's own logical offsets), and none whose
 * offset is KAPPA_OFFSET_NONE.  In a consumer group, this completes an
 * assignment the group made.
 */
void
kappa_consumer_assign(KappaConsumer *consumer, int nparts, const int64 *offsets)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts);
	rd_kafka_resp_err_t err;

	for (int p = 0; p < nparts; p++)
	{
		if (offsets[p] != KAPPA_OFFSET_NONE)
			rd_kafka_topic_partition_list_add(list, consumer->stream->topic, p)->offset = offsets[p];
	}
	err = rd_kafka_assign(consumer->kk->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not assign the partitions of stream \"%s\"", consumer->stream->name),
				 errdetail("%s", rd_kafka_err2str(err))));
}

/*
 * Move partitions the consumer reads to the given offsets (and leave those
 * at KAPPA_OFFSET_NONE alone), without changing what it is assigned: how a
 * consumer group member re-reads for a view added meanwhile.
 */
void
kappa_consumer_seek(KappaConsumer *consumer, int nparts, const int64 *offsets)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts);
	rd_kafka_error_t *error;

	for (int p = 0; p < nparts; p++)
	{
		if (offsets[p] != KAPPA_OFFSET_NONE)
			rd_kafka_topic_partition_list_add(list, consumer->stream->topic, p)->offset = offsets[p];
	}
	error = list->cnt > 0 ?
		rd_kafka_seek_partitions(consumer->kk->rk, list, kappa_broker_timeout) : NULL;
	for (int i = 0; error == NULL && i < list->cnt; i++)
	{
		if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
			error = rd_kafka_error_new(list->elems[i].err, "partition %d: %s",
									   list->elems[i].partition,
									   rd_kafka_err2str(list->elems[i].err));
	}
	rd_kafka_topic_partition_list_destroy(list);
	if (error != NULL)
	{
		char	   *detail = pstrdup(rd_kafka_error_string(error));

		rd_kafka_error_destroy(error);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not move the partitions of stream \"%s\" back for a new view",
						consumer->stream->name),
				 errdetail("%s", detail)));
	}
}

/*
 * Wait up to timeout_ms for messages and return up to max of them, into
 * messages[].  The consumer holds every message it returned until
 * kappa_consumer_release gives it back, across polls, in the order they
 * were returned: the message bytes stay valid until then.  Errors of
 * partitions are remembered (see kappa_consumer_error) and logged, not
 * raised: librdkafka retries them.
 */
int
kappa_consumer_poll(KappaConsumer *consumer, int timeout_ms, KappaMessage *messages, int max)
{
	KappaKafka *kk = consumer->kk;
	rd_kafka_message_t **fetched;
	ssize_t		n;
	int			kept = 0;

	/* in the handle's own memory: polls happen inside transactions */
	if (kk->held_size < kk->nheld + max)
	{
		int			size = Max(2 * kk->held_size, kk->nheld + max);

		kk->held = kk->held ?
			repalloc(kk->held, sizeof(rd_kafka_message_t *) * size) :
			MemoryContextAlloc(kk->context, sizeof(rd_kafka_message_t *) * size);
		kk->held_size = size;
	}
	fetched = kk->held + kk->nheld;
	n = rd_kafka_consume_batch_queue(kk->queue, timeout_ms, fetched, max);
	kappa_kafka_poll(consumer->kk, 0);
	for (int i = 0; i < n; i++)
	{
		rd_kafka_message_t *msg = fetched[i];

		if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			/*
			 * The position is out of the log's range (retention deleted it):
			 * librdkafka stops fetching the partition, and the caller must
			 * decide where it goes on.
			 */
			if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET &&
				msg->partition >= 0 && msg->partition < consumer->nparts)
				consumer->out_of_range[msg->partition] = Max(msg->offset, 0);
			/* the fetch reached the log's end: whatever failed works again */
			else if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
				consumer->kk->last_error[0] = '\0';
			else
				snprintf(consumer->kk->last_error, sizeof(consumer->kk->last_error), "%s",
						 rd_kafka_message_errstr(msg));
			rd_kafka_message_destroy(msg);
			continue;
		}
		consumer->kk->last_error[0] = '\0';
		/* held in the order returned, one for one with messages[] */
		kk->held[kk->nheld++] = msg;
		messages[kept].partition = msg->partition;
		messages[kept].offset = msg->offset;
		messages[kept].timestamp_ms = rd_kafka_message_timestamp(msg, NULL);
		messages[kept].key = msg->key;
		messages[kept].key_len = msg->key_len;
		messages[kept].payload = msg->payload;
		messages[kept].len = msg->len;
		kept++;
	}
	return kept;
}

/*
 * A partition whose position the log no longer holds, as polls found it:
 * returns false if there is none, else sets *partition and *offset (the
 * position the fetch asked for) and forgets it.
 */
bool
kappa_consumer_out_of_range(KappaConsumer *consumer, int32 *partition, int64 *offset)
{
	for (int p = 0; p < consumer->nparts; p++)
	{
		if (consumer->out_of_range[p] == KAPPA_OFFSET_NONE)
			continue;
		*partition = p;
		*offset = consumer->out_of_range[p];
		consumer->out_of_range[p] = KAPPA_OFFSET_NONE;
		return true;
	}
	return false;
}

/*
 * Whether the brokers answer now, within timeout_ms: if so, whatever went
 * wrong before is over.  How an idle worker finds out that the brokers are
 * back, when no message comes to say so.
 */
bool
kappa_consumer_probe(KappaConsumer *consumer, int timeout_ms)
{
	const struct rd_kafka_metadata *metadata;

	/*
	 * A metadata request, which any broker answers: librdkafka 2.0's
	 * rd_kafka_query_watermark_offsets waits for the partition's leader
	 * past its timeout while every broker is down.
	 */
	if (rd_kafka_metadata(consumer->kk->rk, 0, NULL, &metadata, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return false;
	rd_kafka_metadata_destroy(metadata);
	consumer->kk->last_error[0] = '\0';
	return true;
}

/* Give every message held back to librdkafka. */
void
kappa_consumer_release(KappaConsumer *consumer)
{
	kappa_consumer_release_first(consumer, consumer->kk->nheld);
}

/*
 * Give the first count messages held back to librdkafka (those returned
 * first); the others stay held, and valid.
 */
void
kappa_consumer_release_first(KappaConsumer *consumer, int count)
{
	KappaKafka *kk = consumer->kk;

	count = Min(count, kk->nheld);
	for (int i = 0; i < count; i++)
		rd_kafka_message_destroy(kk->held[i]);
	if (count > 0 && count < kk->nheld)
		memmove(kk->held, kk->held + count, sizeof(rd_kafka_message_t *) * (kk->nheld - count));
	kk->nheld -= count;
}

/* A partition's end offset as the last fetch saw it, without asking; -1. */
int64
kappa_consumer_end(KappaConsumer *consumer, int32 partition)
{
	int64		low;
	int64		high;

	if (rd_kafka_get_watermark_offsets(consumer->kk->rk, consumer->stream->topic, partition,
									   &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return -1;
	return high;
}

/*
 * A partition's watermarks, asked of the brokers: where its log begins
 * (retention moves that on) and ends.  An error if they do not answer
 * within kappa.broker_timeout.
 */
static void
consumer_watermarks(KappaConsumer *consumer, int32 partition, int64 *low, int64 *high)
{
	rd_kafka_resp_err_t err;
	const struct rd_kafka_metadata *metadata;

	/*
	 * librdkafka 2.0's rd_kafka_query_watermark_offsets waits past its
	 * timeout, for good, when the partition's leader went down since the
	 * handle last saw it: ask for metadata first, which times out.
	 */
	err = rd_kafka_metadata(consumer->kk->rk, 0, NULL, &metadata, kappa_broker_timeout);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_metadata_destroy(metadata);
		err = rd_kafka_query_watermark_offsets(consumer->kk->rk, consumer->stream->topic, partition,
											   low, high, kappa_broker_timeout);
	}
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		strlcpy(consumer->kk->last_error, rd_kafka_err2str(err), sizeof(consumer->kk->last_error));
		kappa_kafka_broker_error(kappa_kafka_reason(consumer->kk), consumer->stream, "read the offsets of the topic");
	}
}

/* A partition's end offset, asked of the brokers. */
int64
kappa_consumer_query_end(KappaConsumer *consumer, int32 partition)
{
	int64		low;
	int64		high;

	consumer_watermarks(consumer, partition, &low, &high);
	return high;
}

/* Where a partition's log begins now, asked of the brokers. */
int64
kappa_consumer_query_start(KappaConsumer *consumer, int32 partition)
{
	int64		low;
	int64		high;

	consumer_watermarks(consumer, partition, &low, &high);
	return low;
}

/*
 * Read offsets [from[p], to[p]) of every partition (from[p] ==
 * KAPPA_OFFSET_NONE, or from[p] >= to[p]: none of it), calling emit for
 * each message; for kappa_check and kappa_replay, which read a view's
 * messages again in a backend.  from[] is used up.  An error, beginning
 * with what, if the brokers stop giving messages for 3 x
 * kappa.broker_timeout before every partition is read.
 */
void
kappa_consumer_read_ranges(KappaConsumer *consumer, int nparts, int64 *from, const int64 *to,
						   KappaMessageCallback emit, void *arg, const char *what)
{
	KappaMessage *batch = palloc(sizeof(KappaMessage) * CONSUMER_RANGE_BATCH);
	TimestampTz last_progress = GetCurrentTimestamp();
	int			pending = 0;

	for (int p = 0; p < nparts; p++)
	{
		if (from[p] == KAPPA_OFFSET_NONE || from[p] >= to[p] ||
			!kappa_stream_owns(consumer->stream, p))
			from[p] = KAPPA_OFFSET_NONE;
		else
			pending++;
	}
	if (pending == 0)
		return;
	kappa_consumer_assign(consumer, nparts, from);
	while (pending > 0)
	{
		int			n;

		CHECK_FOR_INTERRUPTS();
		n = kappa_consumer_poll(consumer, 100, batch, CONSUMER_RANGE_BATCH);
		for (int i = 0; i < n; i++)
		{
			int32		p = batch[i].partition;

			if (p < 0 || p >= nparts || from[p] == KAPPA_OFFSET_NONE || batch[i].offset >= to[p])
				continue;
			emit(&batch[i], arg);
			if (batch[i].offset == to[p] - 1)
			{
				from[p] = KAPPA_OFFSET_NONE;	/* this partition is done */
				pending--;
			}
		}
		kappa_consumer_release(consumer);
		{
			int32		p;
			int64		offset;

			if (kappa_consumer_out_of_range(consumer, &p, &offset) && from[p] != KAPPA_OFFSET_NONE)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("%s: the log of stream \"%s\" no longer holds offset " INT64_FORMAT " of partition %d",
								what, consumer->stream->name, offset, p),
						 errdetail("Retention deleted it while it was being read."),
						 errhint("Register Capture files that hold it with kappa_archive_register, or try again with what is left.")));
		}
		if (n > 0)
			last_progress = GetCurrentTimestamp();
		else if (TimestampDifferenceExceeds(last_progress, GetCurrentTimestamp(),
											3 * kappa_broker_timeout))
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("%s: the log of stream \"%s\" stopped before its end", what,
							consumer->stream->name),
					 errdetail("%d partitions are not read to the end; %s", pending,
							   kappa_consumer_error(consumer)),
					 errhint("Check that the brokers are reachable; kappa.broker_timeout is %d ms.",
							 kappa_broker_timeout)));
	}
	pfree(batch);
}

/*
 * The first offset of a partition whose timestamp is at or after time
 * (ListOffsets by timestamp), or -1 when there is none or the brokers
 * cannot tell (an error, which is no reason to stop: the caller then reads
 * from the beginning and skips what is older).
 */
int64
kappa_consumer_offset_for_time(KappaConsumer *consumer, int32 partition, TimestampTz time)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_resp_err_t err;
	int64		offset = -1;

	/* Kafka's timestamps are milliseconds since the Unix epoch */
	rd_kafka_topic_partition_list_add(list, consumer->stream->topic, partition)->offset =
		(time - SetEpochTimestamp()) / INT64CONST(1000);
	err = rd_kafka_offsets_for_times(consumer->kk->rk, list, kappa_broker_timeout);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
		offset = list->elems[0].offset;
	else
		ereport(DEBUG1,
				(errmsg_internal("kappa: could not look up an offset by time in stream \"%s\": %s",
								 consumer->stream->name,
								 rd_kafka_err2str(err != RD_KAFKA_RESP_ERR_NO_ERROR ? err : list->elems[0].err))));
	rd_kafka_topic_partition_list_destroy(list);
	return offset >= 0 ? offset : -1;
}

/*
 * Tell the brokers the stream's positions (offsets < 0 are skipped),
 * asynchronously.  Only for lag tools such as kafka-consumer-groups: kappa
 * reads its positions from Postgres, never from these.
 */
void
kappa_consumer_commit(KappaConsumer *consumer, int nparts, const int64 *offsets)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts);
	rd_kafka_resp_err_t err;

	for (int p = 0; p < nparts; p++)
	{
		if (offsets[p] >= 0)
			rd_kafka_topic_partition_list_add(list, consumer->stream->topic, p)->offset = offsets[p];
	}
	err = list->cnt > 0 ? rd_kafka_commit(consumer->kk->rk, list, 1) : RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_topic_partition_list_destroy(list);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(DEBUG1,
				(errmsg_internal("kappa: could not commit offsets of stream \"%s\" to the brokers: %s",
								 consumer->stream->name, rd_kafka_err2str(err))));
}

/* What went wrong last while consuming, or "" (masked). */
const char *
kappa_consumer_error(KappaConsumer *consumer)
{
	return kappa_kafka_reason(consumer->kk);
}

/* Close a consumer, giving back what it holds (kafka_destroy does). */
void
kappa_consumer_close(KappaConsumer *consumer)
{
	if (consumer->kk == NULL)
		return;
	kappa_kafka_destroy(consumer->kk);
	consumer->kk = NULL;
}
