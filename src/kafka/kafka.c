/*-------------------------------------------------------------------------
 *
 * kafka.c
 *	  kappa's Kafka client: librdkafka behind functions that speak Postgres.
 *
 * This file, consumer.c (a stream worker's consumer) and kafka_internal.h
 * are the only ones that include rdkafka.h.  librdkafka runs threads
 * inside the Postgres process, so three rules hold everywhere there:
 *
 *	- Every handle is created with all signals blocked (kafka_new), so its
 *	  threads inherit a full mask and Postgres's signal handlers only ever
 *	  run in the main thread.
 *	- No librdkafka thread calls Postgres.  Logs go to a queue (log.queue)
 *	  and, like errors and delivery reports, are served by rd_kafka_poll in
 *	  the main thread; the callbacks only copy into static memory, and the
 *	  copies are reported with ereport after the poll returns, so an error
 *	  never longjmps through librdkafka's frames.
 *	- Waits are loops of short polls with CHECK_FOR_INTERRUPTS, bounded by
 *	  kappa.broker_timeout, so a dead broker is an error and never a hang.
 *
 * Secrets: error and log texts from librdkafka may quote a setting's value;
 * kafka_mask replaces every secret value of the stream before anything is
 * reported.
 *
 * Lifetime: a backend keeps one producer per stream for kappa_produce, in
 * TopMemoryContext; it is dropped after any failure, so that the next call
 * starts from a fresh connection, and when the stream it finds under its
 * id is not the one it was made for (the extension dropped and created
 * again).  Every handle lives in a memory context of its own under
 * TopMemoryContext, with the messages and queue the process holds of it.
 * Every handle still alive when the process exits, however it exits, is
 * destroyed by a before_shmem_exit callback, messages and queue first, so
 * that no librdkafka thread runs while the process tears itself down.
 *
 * src/kafka/kafka.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>

#include <librdkafka/rdkafka.h>

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "kafka/kafka.h"
#include "kafka/kafka_internal.h"
#include "kappa_catalog/connection.h"

#define KAFKA_LOG_RING 32
#define KAFKA_POLL_MS 50

/* A log line of librdkafka's, copied by the log callback. */
typedef struct KafkaLogLine
{
	int			level;
	char		text[KAFKA_ERRSTR_LEN];
} KafkaLogLine;

/* The delivery report of the one message kappa_produce waits for. */
typedef struct KafkaDelivery
{
	uint64		seq;
	bool		done;
	rd_kafka_resp_err_t err;
	rd_kafka_msg_status_t status;
	int32		partition;
	int64		offset;
} KafkaDelivery;

static KafkaLogLine log_ring[KAFKA_LOG_RING];
static int	log_ring_used = 0;
static int	log_ring_dropped = 0;
static KafkaDelivery delivery;
static List *producers = NIL;	/* KappaKafka *, in TopMemoryContext */

/*
 * Every librdkafka handle of this process that is not destroyed yet: at
 * exit, even by FATAL or a SIGTERM, they are destroyed, so that no
 * librdkafka thread still runs while the process tears itself down.
 */
static List *live_handles = NIL;	/* KappaKafka *, in TopMemoryContext */
static bool exit_callback_registered = false;

static rd_kafka_conf_t *kafka_conf(const char *brokers, List *settings, KappaKafka *kk);
static uint32 stream_identity(KappaStream *stream);
static void destroy_live_handles(int code, Datum arg);
static void kafka_flush_logs(KappaKafka *kk);
static char *kafka_mask(KappaKafka *kk, const char *text);
static int	remaining_ms(TimestampTz deadline);
static KappaKafka *get_producer(KappaStream *stream);
static void drop_producer(KappaKafka *kk);
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque);
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);
static int	peek_cmp(const ListCell *a, const ListCell *b);

/* The librdkafka version this server runs, for logs and diagnostics. */
const char *
kappa_kafka_version(void)
{
	return rd_kafka_version_str();
}

/*
 * Ask librdkafka whether it accepts a stream's settings, quoting its message
 * (secrets masked) when it does not.  Each setting is checked on its own by
 * rd_kafka_conf_set, and their combination by creating a consumer, which is
 * destroyed before it has done anything but start connecting.
 */
void
kappa_kafka_check_settings(KappaStream *stream)
{
	kappa_kafka_destroy(kappa_kafka_new(stream, RD_KAFKA_CONSUMER,
							list_make1(kappa_make_setting("group.id", stream->name)), NULL));
}

/*
 * A configuration with the stream's settings and kappa's callbacks.  The
 * opaque pointer is the KappaKafka the callbacks report to.
 */
static rd_kafka_conf_t *
kafka_conf(const char *brokers, List *settings, KappaKafka *kk)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		errstr[KAFKA_ERRSTR_LEN];
	ListCell   *lc;

	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("librdkafka rejected the broker list"),
				 errdetail("%s", errstr)));
	}
	foreach(lc, settings)
	{
		KappaSetting *s = lfirst(lc);

		rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, s->name, s->value, errstr, sizeof(errstr));

		if (res != RD_KAFKA_CONF_OK)
		{
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid librdkafka setting \"%s\"", s->name),
					 errdetail("%s", kafka_mask(kk, errstr)),
					 res == RD_KAFKA_CONF_UNKNOWN ?
					 errhint("options holds librdkafka settings only: kappa's own are the arguments of kappa_create_stream, and a topic's retention is the brokers'. "
							 "See the librdkafka CONFIGURATION page for version %s.",
							 rd_kafka_version_str()) :
					 errhint("See the librdkafka CONFIGURATION page for version %s.",
							 rd_kafka_version_str())));
		}
	}

	/* kappa's own: logs through the main thread, callbacks, no autocommit */
	if (rd_kafka_conf_set(conf, "log.queue", "true", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		elog(ERROR, "could not set log.queue: %s", errstr);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_opaque(conf, kk);
	return conf;
}

/*
 * Create a handle for a stream, with extra settings (KappaSetting) on top
 * of its own, in a memory context of its own that kafka_destroy deletes.
 * Signals are blocked while librdkafka starts its threads.
 */
KappaKafka *
kappa_kafka_new(KappaStream *stream, rd_kafka_type_t type, List *extra,
		  KafkaRebalanceCallback rebalance)
{
	MemoryContext context = AllocSetContextCreate(TopMemoryContext, "kappa librdkafka handle",
												  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(context);
	KappaKafka *volatile kk = palloc0(sizeof(KappaKafka));

	kk->context = context;
	PG_TRY();
	{
		rd_kafka_conf_t *conf;
		char		errstr[KAFKA_ERRSTR_LEN];
		sigset_t	all;
		sigset_t	saved;
		ListCell   *lc;

		kk->stream_id = stream->id;
		kk->identity = stream_identity(stream);
		foreach(lc, stream->settings)
		{
			KappaSetting *s = lfirst(lc);

			if (s->secret)
				kk->secrets = lappend(kk->secrets, pstrdup(s->value));
		}
		conf = kafka_conf(stream->brokers, list_concat_copy(stream->settings, extra), kk);
		if (type == RD_KAFKA_PRODUCER)
			rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
		if (rebalance)
			rd_kafka_conf_set_rebalance_cb(conf, rebalance);

		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &saved);
		kk->rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
		pthread_sigmask(SIG_SETMASK, &saved, NULL);

		if (kk->rk == NULL)
		{
			/* rd_kafka_new destroys conf only on success */
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("librdkafka rejected the settings of stream \"%s\"", stream->name),
					 errdetail("%s", kafka_mask(kk, errstr))));
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(context);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (!exit_callback_registered)
	{
		before_shmem_exit(destroy_live_handles, (Datum) 0);
		exit_callback_registered = true;
	}
	MemoryContextSwitchTo(TopMemoryContext);
	live_handles = lappend(live_handles, kk);
	MemoryContextSwitchTo(old);
	if (rd_kafka_set_log_queue(kk->rk, NULL) != RD_KAFKA_RESP_ERR_NO_ERROR)
		elog(ERROR, "could not route librdkafka's log to the main queue");
	return kk;
}

/*
 * Destroy a handle, and its memory, without waiting for anything it still
 * had queued: a producer's unsent messages are purged (consumers have
 * none).  The messages and queue the process held of it are given back
 * first.
 */
void
kappa_kafka_destroy(KappaKafka *kk)
{
	live_handles = list_delete_ptr(live_handles, kk);
	for (int i = 0; i < kk->nheld; i++)
		rd_kafka_message_destroy(kk->held[i]);
	if (kk->queue)
		rd_kafka_queue_destroy(kk->queue);
	if (rd_kafka_type(kk->rk) == RD_KAFKA_PRODUCER)
		(void) rd_kafka_purge(kk->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_destroy_flags(kk->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	MemoryContextDelete(kk->context);
}

/*
 * At exit, destroy the handles still alive, whichever way the process
 * exits: librdkafka's threads must not outlive what they use.
 */
static void
destroy_live_handles(int code, Datum arg)
{
	while (live_handles != NIL)
		kappa_kafka_destroy(linitial(live_handles));
}

/* Serve callbacks for up to timeout_ms, then report what they logged. */
void
kappa_kafka_poll(KappaKafka *kk, int timeout_ms)
{
	rd_kafka_poll(kk->rk, timeout_ms);
	kafka_flush_logs(kk);
}

/* Report the log lines the log callback copied, secrets masked. */
static void
kafka_flush_logs(KappaKafka *kk)
{
	for (int i = 0; i < log_ring_used; i++)
	{
		int			level = log_ring[i].level <= 4 ? LOG :
			log_ring[i].level <= 6 ? DEBUG1 : DEBUG2;

		/* a stream's settings serve producers and consumers alike */
		if (strncmp(log_ring[i].text, "CONFWARN:", 9) == 0)
			level = DEBUG1;

		ereport(level,
				(errmsg_internal("kappa: librdkafka: %s", kafka_mask(kk, log_ring[i].text))));
	}
	if (log_ring_dropped > 0)
		ereport(LOG,
				(errmsg("kappa: %d librdkafka log lines were dropped", log_ring_dropped)));
	log_ring_used = 0;
	log_ring_dropped = 0;
}

/* text with every secret value of the handle's stream replaced. */
static char *
kafka_mask(KappaKafka *kk, const char *text)
{
	char	   *result = pstrdup(text);
	ListCell   *lc;

	foreach(lc, kk->secrets)
	{
		const char *secret = lfirst(lc);
		size_t		len = strlen(secret);
		StringInfoData buf;
		const char *p = result;
		const char *hit;

		if (len == 0)
			continue;
		initStringInfo(&buf);
		while ((hit = strstr(p, secret)) != NULL)
		{
			appendBinaryStringInfo(&buf, p, hit - p);
			appendStringInfoString(&buf, KAPPA_SECRET_MASK);
			p = hit + len;
		}
		appendStringInfoString(&buf, p);
		result = buf.data;
	}
	return result;
}

/* Milliseconds left until deadline, at least 0. */
static int
remaining_ms(TimestampTz deadline)
{
	long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);

	return (int) Min(ms, INT_MAX);
}

/* What librdkafka said last about a handle, masked, in the caller's context. */
char *
kappa_kafka_reason(KappaKafka *kk)
{
	return kafka_mask(kk, kk->last_error);
}

/*
 * Report a failure to reach the brokers, with what librdkafka said last
 * (already masked; see kafka_reason).
 */
void
kappa_kafka_broker_error(const char *reason, KappaStream *stream, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("could not %s for stream \"%s\"", what, stream->name),
			 reason[0] ? errdetail("%s", reason) : 0,
			 errhint("Check that a broker of \"%s\" is reachable; kappa.broker_timeout is %d ms.",
					 stream->brokers, kappa_broker_timeout)));
}

/*
 * The number of partitions of topic, asked of the brokers until deadline.
 * An error if the topic does not exist or no broker answers.
 */
int
kappa_kafka_partitions(KappaKafka *kk, const char *topic, TimestampTz deadline)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(kk->rk, topic, NULL);
	volatile int result = -1;
	volatile rd_kafka_resp_err_t unknown = RD_KAFKA_RESP_ERR_NO_ERROR;

	if (rkt == NULL)
		elog(ERROR, "could not create a topic handle: %s",
			 rd_kafka_err2str(rd_kafka_last_error()));

	/* the topic handle must go before the client, even on an interrupt */
	PG_TRY();
	{
		while (result < 0 && unknown == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			const struct rd_kafka_metadata *md = NULL;
			rd_kafka_resp_err_t err;
			int			wait = Min(remaining_ms(deadline), 500);

			CHECK_FOR_INTERRUPTS();
			err = rd_kafka_metadata(kk->rk, 0, rkt, &md, Max(wait, 1));
			kappa_kafka_poll(kk, 0);
			if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1)
			{
				rd_kafka_resp_err_t terr = md->topics[0].err;

				if (terr == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0)
					result = md->topics[0].partition_cnt;
				else if (terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
						 terr == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
					unknown = terr;
			}
			else if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
				strlcpy(kk->last_error, rd_kafka_err2str(err), sizeof(kk->last_error));
			if (md)
				rd_kafka_metadata_destroy(md);
			/* every broker refused: waiting longer would only delay the error */
			if (result < 0 && (kk->all_brokers_down || remaining_ms(deadline) <= 0))
				break;
		}
	}
	PG_FINALLY();
	{
		rd_kafka_topic_destroy(rkt);
	}
	PG_END_TRY();

	if (unknown != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("topic \"%s\" does not exist on the brokers", topic),
				 errdetail("%s", rd_kafka_err2str(unknown)),
				 errhint("Create the topic on the Kafka cluster (or the event hub in its namespace), or check the stream's credentials.")));
	return result;
}

/*
 * What a cached producer was made for: a hash of the stream's brokers,
 * topic and settings, so that a cached handle is never used for another
 * stream that got the same id.
 */
static uint32
stream_identity(KappaStream *stream)
{
	StringInfoData buf;
	ListCell   *lc;
	uint32		hash;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s\n%s\n", stream->brokers, stream->topic);
	foreach(lc, stream->settings)
	{
		KappaSetting *setting = lfirst(lc);

		appendStringInfo(&buf, "%s=%s\n", setting->name, setting->value);
	}
	hash = hash_bytes((const unsigned char *) buf.data, buf.len);
	pfree(buf.data);
	return hash;
}

/*
 * The cached producer of a stream, created on first use, or anew when
 * kappa.broker_timeout (its message timeout) has changed, or the stream
 * is not the one it was made for.
 */
static KappaKafka *
get_producer(KappaStream *stream)
{
	MemoryContext old;
	KappaKafka *kk;
	ListCell   *lc;
	char		timeout[32];

	foreach(lc, producers)
	{
		kk = lfirst(lc);
		if (kk->stream_id == stream->id)
		{
			/* the same id may be a new stream (the extension made anew) */
			if (kk->timeout_ms == kappa_broker_timeout &&
				kk->identity == stream_identity(stream))
				return kk;
			drop_producer(kk);
			break;
		}
	}

	/* a typo in a topic name must be an error, not a new topic */
	snprintf(timeout, sizeof(timeout), "%d", kappa_broker_timeout);
	kk = kappa_kafka_new(stream, RD_KAFKA_PRODUCER,
				   list_make3(kappa_make_setting("message.timeout.ms", timeout),
							  kappa_make_setting("linger.ms", "0"),
							  kappa_make_setting("allow.auto.create.topics", "false")),
				   NULL);
	kk->timeout_ms = kappa_broker_timeout;
	old = MemoryContextSwitchTo(TopMemoryContext);
	producers = lappend(producers, kk);
	MemoryContextSwitchTo(old);
	return kk;
}

/* Forget a producer after a failure; the next call makes a new one. */
static void
drop_producer(KappaKafka *kk)
{
	producers = list_delete_ptr(producers, kk);
	kappa_kafka_destroy(kk);
}

/*
 * Append one message to the stream's topic and wait for the broker to
 * acknowledge it, returning its partition and offset.  Once librdkafka has
 * the message, only its delivery report decides: it comes within the
 * producer's message.timeout.ms, and says whether a failed message may
 * still have been written, so that a caller knows whether to retry.
 */
void
kappa_kafka_produce(KappaStream *stream, const char *payload, size_t payload_len,
					const char *key, size_t key_len,
					int32 *partition, int64 *offset)
{
	KappaKafka *kk = get_producer(stream);
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   kappa_broker_timeout);
	rd_kafka_resp_err_t err;

	/*
	 * Serve what happened since the last call.  An "all brokers down" from
	 * an idle spell cannot fail this call: only a fresh producer, in its
	 * topic check, heeds it; after that only the delivery report counts.
	 */
	kappa_kafka_poll(kk, 0);

	/* the topic must exist: fail with a clear error, not a timeout */
	if (!kk->topic_checked)
	{
		if (kappa_kafka_partitions(kk, stream->topic, deadline) < 0)
		{
			char	   *reason = kappa_kafka_reason(kk);

			/* a fresh producer next time notices a dead broker at once */
			drop_producer(kk);
			kappa_kafka_broker_error(reason, stream, "reach the brokers");
		}
		kk->topic_checked = true;
	}

	delivery.seq++;
	delivery.done = false;
	err = rd_kafka_producev(kk->rk,
							RD_KAFKA_V_TOPIC(stream->topic),
							RD_KAFKA_V_VALUE((void *) payload, payload_len),
							RD_KAFKA_V_KEY((void *) key, key_len),
							RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							RD_KAFKA_V_OPAQUE((void *) (uintptr_t) delivery.seq),
							RD_KAFKA_V_END);
	if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("message of %zu bytes is too large for stream \"%s\"",
						payload_len + key_len, stream->name),
				 errhint("Raise message.max.bytes in the stream's options, within what the broker accepts.")));
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not produce to stream \"%s\"", stream->name),
				 errdetail("%s", rd_kafka_err2str(err))));

	/*
	 * librdkafka reports within message.timeout.ms; the deadline, a second
	 * later, only guards against a report that never comes.
	 */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kk->timeout_ms + 1000);
	while (!delivery.done)
	{
		CHECK_FOR_INTERRUPTS();
		kappa_kafka_poll(kk, KAFKA_POLL_MS);
		if (!delivery.done && remaining_ms(deadline) <= 0)
		{
			drop_producer(kk);
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("no delivery report for the message to stream \"%s\"", stream->name),
					 errdetail("The message may or may not have been written.")));
		}
	}
	if (delivery.err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		char	   *reason = kappa_kafka_reason(kk);

		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the brokers did not accept the message for stream \"%s\"", stream->name),
				 errdetail("%s%s%s", rd_kafka_err2str(delivery.err),
						   delivery.status == RD_KAFKA_MSG_STATUS_NOT_PERSISTED ?
						   "; the message was not written" :
						   "; the message may have been written",
						   reason[0] ? psprintf(" (%s)", reason) : ""),
				 errhint("Check that a broker of \"%s\" is reachable; kappa.broker_timeout is %d ms.",
						 stream->brokers, kk->timeout_ms)));
	}
	*partition = delivery.partition;
	*offset = delivery.offset;
}

/* Order peeked messages newest first. */
static int
peek_cmp(const ListCell *a, const ListCell *b)
{
	const KappaPeekMessage *ma = lfirst(a);
	const KappaPeekMessage *mb = lfirst(b);

	if (ma->timestamp_ms != mb->timestamp_ms)
		return ma->timestamp_ms > mb->timestamp_ms ? -1 : 1;
	if (ma->partition != mb->partition)
		return ma->partition > mb->partition ? -1 : 1;
	if (ma->offset != mb->offset)
		return ma->offset > mb->offset ? -1 : 1;
	return 0;
}

/*
 * Read the newest n messages of the stream's topic: the last n of every
 * partition, then the n newest of those by timestamp, newest first.
 */
List *
kappa_kafka_peek(KappaStream *stream, int n)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   kappa_broker_timeout);
	List	   *extra = list_make3(kappa_make_setting("group.id", "kappa-peek"),
								   kappa_make_setting("enable.auto.commit", "false"),
								   kappa_make_setting("enable.partition.eof", "true"));
	KappaKafka *volatile kk = NULL;
	List	   *messages = NIL;

	PG_TRY();
	{
		int			nparts;
		int			pending = 0;
		int64	   *high;
		rd_kafka_topic_partition_list_t *assignment;

		kk = kappa_kafka_new(stream, RD_KAFKA_CONSUMER, extra, NULL);
		nparts = kappa_kafka_partitions(kk, stream->topic, deadline);
		if (nparts < 0)
			kappa_kafka_broker_error(kappa_kafka_reason(kk), stream, "reach the brokers");

		/* where each partition ends, and where its last n messages start */
		high = palloc(sizeof(int64) * nparts);
		assignment = rd_kafka_topic_partition_list_new(nparts);
		for (int p = 0; p < nparts; p++)
		{
			int64		lo;
			rd_kafka_resp_err_t err;

			err = rd_kafka_query_watermark_offsets(kk->rk, stream->topic, p, &lo, &high[p],
												   Max(remaining_ms(deadline), 1));
			if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				rd_kafka_topic_partition_list_destroy(assignment);
				strlcpy(kk->last_error, rd_kafka_err2str(err), sizeof(kk->last_error));
				kappa_kafka_broker_error(kappa_kafka_reason(kk), stream, "read the offsets of the topic");
			}
			if (high[p] > lo)
			{
				rd_kafka_topic_partition_list_add(assignment, stream->topic, p)->offset =
					Max(lo, high[p] - n);
				pending++;
			}
		}
		if (pending > 0)
		{
			rd_kafka_resp_err_t err = rd_kafka_assign(kk->rk, assignment);

			if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				rd_kafka_topic_partition_list_destroy(assignment);
				elog(ERROR, "could not assign partitions: %s", rd_kafka_err2str(err));
			}
		}
		rd_kafka_topic_partition_list_destroy(assignment);

		while (pending > 0)
		{
			rd_kafka_message_t *msg;

			CHECK_FOR_INTERRUPTS();
			msg = rd_kafka_consumer_poll(kk->rk, KAFKA_POLL_MS);
			/* errors and logs are on the main queue, not the consumer's */
			kappa_kafka_poll(kk, 0);
			if (msg == NULL)
			{
				if (remaining_ms(deadline) <= 0)
					kappa_kafka_broker_error(kappa_kafka_reason(kk), stream, "read the topic in time");
				continue;
			}
			if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
				;				/* the loop below sees the offset */
			else if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				strlcpy(kk->last_error, rd_kafka_message_errstr(msg), sizeof(kk->last_error));
				rd_kafka_message_destroy(msg);
				kappa_kafka_broker_error(kappa_kafka_reason(kk), stream, "read the topic");
			}
			else
			{
				KappaPeekMessage *m = palloc0(sizeof(KappaPeekMessage));

				m->partition = msg->partition;
				m->offset = msg->offset;
				m->timestamp_ms = rd_kafka_message_timestamp(msg, NULL);
				if (msg->key)
				{
					m->key = palloc(msg->key_len + 1);
					memcpy(m->key, msg->key, msg->key_len);
					m->key[msg->key_len] = '\0';
					m->key_len = msg->key_len;
				}
				if (msg->payload)
				{
					m->payload = palloc(msg->len + 1);
					memcpy(m->payload, msg->payload, msg->len);
					m->payload[msg->len] = '\0';
					m->payload_len = msg->len;
				}
				messages = lappend(messages, m);
			}
			/* a partition is done once the offset before its end is read */
			if (msg->partition >= 0 && msg->partition < nparts &&
				((msg->err == RD_KAFKA_RESP_ERR_NO_ERROR && msg->offset == high[msg->partition] - 1) ||
				 (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && high[msg->partition] >= 0)))
			{
				high[msg->partition] = -1;
				pending--;
			}
			rd_kafka_message_destroy(msg);
		}
	}
	PG_FINALLY();
	{
		if (kk)
			kappa_kafka_destroy(kk);
	}
	PG_END_TRY();

	list_sort(messages, peek_cmp);
	return list_truncate(messages, n);
}

/*
 * librdkafka's log callback.  It runs inside rd_kafka_poll in the main
 * thread (log.queue), yet must not call Postgres: an ereport that failed
 * there would longjmp through librdkafka.  It only copies the line.
 */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	if (log_ring_used >= KAFKA_LOG_RING)
	{
		log_ring_dropped++;
		return;
	}
	log_ring[log_ring_used].level = level;
	snprintf(log_ring[log_ring_used].text, KAFKA_ERRSTR_LEN, "%s: %s", fac, buf);
	log_ring_used++;
}

/* librdkafka's error callback; runs inside rd_kafka_poll, copies only. */
static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	KappaKafka *kk = opaque;

	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		kk->all_brokers_down = true;
	snprintf(kk->last_error, sizeof(kk->last_error), "%s", reason);
}

/* Delivery report; records the outcome of the message being waited for. */
static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	if ((uint64) (uintptr_t) msg->_private != delivery.seq)
		return;					/* a message an earlier call gave up on */
	delivery.done = true;
	delivery.err = msg->err;
	delivery.status = rd_kafka_message_status(msg);
	delivery.partition = msg->partition;
	delivery.offset = msg->offset;
}

/*
 * The low and high watermark of every partition of the stream's topic,
 * asked of the brokers within timeout_ms.  If they do not answer: an
 * error, or with quiet, false.  Arrays allocated in the current memory
 * context.
 */
static bool
kafka_watermarks(KappaStream *stream, int timeout_ms, bool quiet, int *nparts,
				 int64 **low, int64 **high)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	List	   *extra = list_make1(kappa_make_setting("group.id", "kappa-wait"));
	KappaKafka *volatile kk = NULL;
	volatile bool answered = true;

	PG_TRY();
	{
		kk = kappa_kafka_new(stream, RD_KAFKA_CONSUMER, extra, NULL);
		*nparts = kappa_kafka_partitions(kk, stream->topic, deadline);
		if (*nparts < 0)
		{
			if (!quiet)
				kappa_kafka_broker_error(kappa_kafka_reason(kk), stream, "reach the brokers");
			answered = false;
		}
		else
		{
			*low = palloc(sizeof(int64) * Max(*nparts, 1));
			*high = palloc(sizeof(int64) * Max(*nparts, 1));
		}
		for (int p = 0; answered && p < *nparts; p++)
		{
			rd_kafka_resp_err_t err;

			CHECK_FOR_INTERRUPTS();
			err = rd_kafka_query_watermark_offsets(kk->rk, stream->topic, p, &(*low)[p], &(*high)[p],
												   Max(remaining_ms(deadline), 1));
			if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				strlcpy(kk->last_error, rd_kafka_err2str(err), sizeof(kk->last_error));
				if (!quiet)
					kappa_kafka_broker_error(kappa_kafka_reason(kk), stream, "read the offsets of the topic");
				answered = false;
			}
		}
	}
	PG_FINALLY();
	{
		if (kk)
			kappa_kafka_destroy(kk);
	}
	PG_END_TRY();
	return answered;
}

/*
 * The low and high watermark of every partition of the stream's topic,
 * asked of the brokers within kappa.broker_timeout: what kappa_wait waits
 * for.  Arrays allocated in the current memory context.
 */
void
kappa_kafka_watermarks(KappaStream *stream, int *nparts, int64 **low, int64 **high)
{
	(void) kafka_watermarks(stream, kappa_broker_timeout, false, nparts, low, high);
}

/*
 * The same within timeout_ms, for monitoring: false if the brokers do not
 * answer in time.
 */
bool
kappa_kafka_try_watermarks(KappaStream *stream, int timeout_ms, int *nparts,
						   int64 **low, int64 **high)
{
	return kafka_watermarks(stream, timeout_ms, true, nparts, low, high);
}

/*
 * Sinks (sink.c): a transactional producer per sink, batches sent in one
 * Kafka transaction each, and what a topic holds of a sink already.
 * librdkafka's errors come back as text, never as Postgres errors: a sink
 * whose brokers fail must not stop its stream.
 */

/* A sink's producer: a transactional librdkafka producer. */
struct KappaSinkProducer
{
	KappaKafka *kk;
};

/* A transactional producer for a sink, or NULL with *error set. */
KappaSinkProducer *
kappa_sink_producer_open(KappaStream *conn, const char *transactional_id, char **error)
{
	KappaSinkProducer *producer;
	KappaKafka *kk = kappa_kafka_new(conn, RD_KAFKA_PRODUCER,
							   list_make1(kappa_make_setting("transactional.id", transactional_id)),
							   NULL);
	rd_kafka_error_t *err;

	/* fences an earlier producer of this sink, and aborts what it left open */
	err = rd_kafka_init_transactions(kk->rk, kappa_broker_timeout);
	kafka_flush_logs(kk);
	if (err != NULL)
	{
		*error = psprintf("could not start the transactions of the sink's producer: %s",
						  kafka_mask(kk, rd_kafka_error_string(err)));
		rd_kafka_error_destroy(err);
		kappa_kafka_destroy(kk);
		return NULL;
	}
	producer = palloc(sizeof(KappaSinkProducer));
	producer->kk = kk;
	return producer;
}

/* Close a sink's producer; an open transaction is aborted by its brokers. */
void
kappa_sink_producer_close(KappaSinkProducer *producer)
{
	kappa_kafka_destroy(producer->kk);
	pfree(producer);
}

/*
 * Send messages (keys[i], values[i], JSON texts) to topic in one Kafka
 * transaction.  False, with *error, if it did not commit: then *fatal says
 * whether the producer is done for (fenced, or its state unknown).
 */
bool
kappa_sink_producer_send(KappaSinkProducer *producer, const char *topic, List *keys, List *values,
						 char **error, bool *fatal)
{
	KappaKafka *kk = producer->kk;
	rd_kafka_error_t *err = rd_kafka_begin_transaction(kk->rk);
	ListCell   *kc;
	ListCell   *vc;

	*fatal = false;
	if (err == NULL)
	{
		forboth(kc, keys, vc, values)
		{
			const char *key = lfirst(kc);
			const char *value = lfirst(vc);
			rd_kafka_resp_err_t perr;

			for (;;)
			{
				perr = rd_kafka_producev(kk->rk,
										 RD_KAFKA_V_TOPIC(topic),
										 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
										 RD_KAFKA_V_KEY(key, strlen(key)),
										 RD_KAFKA_V_VALUE((void *) value, strlen(value)),
				/* never one kappa_produce waits for */
										 RD_KAFKA_V_OPAQUE((void *) (uintptr_t) UINT64_MAX),
										 RD_KAFKA_V_END);
				if (perr != RD_KAFKA_RESP_ERR__QUEUE_FULL)
					break;
				CHECK_FOR_INTERRUPTS();
				rd_kafka_poll(kk->rk, 100);
			}
			if (perr != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				err = rd_kafka_error_new(perr, "%s", rd_kafka_err2str(perr));
				break;
			}
		}
		if (err == NULL)
			err = rd_kafka_commit_transaction(kk->rk, kappa_broker_timeout);
	}
	kafka_flush_logs(kk);
	if (err == NULL)
		return true;

	*error = psprintf("could not send to topic \"%s\": %s", topic,
					  kafka_mask(kk, rd_kafka_error_string(err)));
	if (rd_kafka_error_txn_requires_abort(err))
	{
		rd_kafka_error_t *aerr = rd_kafka_abort_transaction(kk->rk, kappa_broker_timeout);

		if (aerr != NULL)
		{
			*fatal = true;
			rd_kafka_error_destroy(aerr);
		}
	}
	else if (!rd_kafka_error_is_retriable(err))
		*fatal = true;
	rd_kafka_error_destroy(err);
	return false;
}

/*
 * The largest seq of the sink that the topic holds, committed (0 if
 * none), or -1 with *error.  The value of a sink's message begins
 * {"kappa": {"sink": <name>, "sink_id": <id>, "seq": <seq>, ...: the tail of each
 * partition is read (read_committed, up to 1,000 messages back: a sink's
 * last transaction ends each partition it wrote, and a topic is a sink's
 * own).
 */
int64
kappa_sink_last_seq(KappaStream *conn, const char *sink, int32 sink_id, char **error)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   3 * kappa_broker_timeout);
	List	   *extra = list_make4(kappa_make_setting("group.id", "kappa-sink-recovery"),
								   kappa_make_setting("enable.auto.commit", "false"),
								   kappa_make_setting("enable.partition.eof", "true"),
								   kappa_make_setting("isolation.level", "read_committed"));
	KappaKafka *volatile kk = NULL;
	StringInfoData prefix;
	volatile int64 last = 0;
	char	   *volatile failure = NULL;

	initStringInfo(&prefix);
	appendStringInfoString(&prefix, "{\"kappa\": {\"sink\": ");
	escape_json(&prefix, sink);
	appendStringInfo(&prefix, ", \"sink_id\": %d, \"seq\": ", sink_id);

	PG_TRY();
	{
		int			nparts;
		int			pending = 0;
		rd_kafka_topic_partition_list_t *assignment;

		kk = kappa_kafka_new(conn, RD_KAFKA_CONSUMER, extra, NULL);
		nparts = kappa_kafka_partitions(kk, conn->topic, deadline);
		if (nparts < 0)
			failure = psprintf("could not reach the brokers: %s", kappa_kafka_reason(kk));
		assignment = rd_kafka_topic_partition_list_new(Max(nparts, 1));
		for (int p = 0; failure == NULL && p < nparts; p++)
		{
			int64		lo;
			int64		hi;
			rd_kafka_resp_err_t err;

			err = rd_kafka_query_watermark_offsets(kk->rk, conn->topic, p, &lo, &hi,
												   Max(remaining_ms(deadline), 1));
			if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
				failure = psprintf("could not read the offsets of topic \"%s\": %s", conn->topic,
								   rd_kafka_err2str(err));
			else if (hi > lo)
			{
				rd_kafka_topic_partition_list_add(assignment, conn->topic, p)->offset = Max(lo, hi - 1000);
				pending++;
			}
		}
		if (failure == NULL && pending > 0)
		{
			rd_kafka_resp_err_t err = rd_kafka_assign(kk->rk, assignment);

			if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
				failure = psprintf("could not read topic \"%s\": %s", conn->topic, rd_kafka_err2str(err));
		}
		rd_kafka_topic_partition_list_destroy(assignment);
		while (failure == NULL && pending > 0)
		{
			rd_kafka_message_t *msg;

			CHECK_FOR_INTERRUPTS();
			if (remaining_ms(deadline) <= 0)
			{
				failure = psprintf("could not read topic \"%s\" to its end within %d ms",
								   conn->topic, 3 * kappa_broker_timeout);
				break;
			}
			msg = rd_kafka_consumer_poll(kk->rk, 100);
			kafka_flush_logs(kk);
			if (msg == NULL)
				continue;
			if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
				pending--;
			else if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR && msg->payload != NULL &&
					 msg->len > (size_t) prefix.len && memcmp(msg->payload, prefix.data, prefix.len) == 0)
			{
				const char *digits = (const char *) msg->payload + prefix.len;
				int64		seq = 0;

				for (size_t i = prefix.len; i < msg->len && *digits >= '0' && *digits <= '9'; i++, digits++)
					seq = seq * 10 + (*digits - '0');
				last = Max(last, seq);
			}
			rd_kafka_message_destroy(msg);
		}
	}
	PG_FINALLY();
	{
		if (kk)
			kappa_kafka_destroy(kk);
	}
	PG_END_TRY();
	if (failure != NULL)
	{
		*error = failure;
		return -1;
	}
	return last;
}
