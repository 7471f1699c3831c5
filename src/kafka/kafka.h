/*-------------------------------------------------------------------------
 *
 * kafka.h
 *	  kappa's Kafka client: librdkafka behind functions that speak Postgres.
 *
 * Only kafka.c, consumer.c and kafka_internal.h include rdkafka.h.  Every
 * function here reports problems with ereport and never blocks longer than
 * kappa.broker_timeout.
 *
 * src/kafka/kafka.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_KAFKA_H
#define KAPPA_KAFKA_H

#include "nodes/pg_list.h"

#include "kappa_catalog/stream.h"
#include "message.h"

typedef struct KappaConsumer KappaConsumer;

/* What a stream's consumer group decided, for the worker to carry out. */
typedef enum KappaRebalance
{
	KAPPA_REBALANCE_NONE,
	KAPPA_REBALANCE_ASSIGN,		/* partitions given: read their positions */
	KAPPA_REBALANCE_REVOKE		/* everything taken back: flush first */
} KappaRebalance;

/* One message read back by kappa_kafka_peek. */
typedef struct KappaPeekMessage
{
	int32		partition;
	int64		offset;
	int64		timestamp_ms;	/* -1 when the message has none */
	char	   *key;			/* NULL when the message has none */
	size_t		key_len;
	char	   *payload;		/* NULL for a tombstone */
	size_t		payload_len;
} KappaPeekMessage;

extern void kappa_kafka_check_settings(KappaStream *stream);
extern void kappa_kafka_produce(KappaStream *stream,
								const char *payload, size_t payload_len,
								const char *key, size_t key_len,
								int32 *partition, int64 *offset);
extern List *kappa_kafka_peek(KappaStream *stream, int n);
extern const char *kappa_kafka_version(void);
extern void kappa_kafka_watermarks(KappaStream *stream, int *nparts,
								   int64 **low, int64 **high);
extern bool kappa_kafka_try_watermarks(KappaStream *stream, int timeout_ms, int *nparts,
									   int64 **low, int64 **high);

extern KappaConsumer *kappa_consumer_open(KappaStream *stream, int *nparts, bool group);
extern void kappa_consumer_subscribe(KappaConsumer *consumer);
extern KappaRebalance kappa_consumer_rebalance(KappaConsumer *consumer, bool *given);
extern void kappa_consumer_unassign(KappaConsumer *consumer);
extern void kappa_consumer_leave(KappaConsumer *consumer);
extern void kappa_consumer_assign(KappaConsumer *consumer, int nparts, const int64 *offsets);
extern void kappa_consumer_seek(KappaConsumer *consumer, int nparts, const int64 *offsets);
extern int	kappa_consumer_poll(KappaConsumer *consumer, int timeout_ms,
								KappaMessage *messages, int max);
extern bool kappa_consumer_out_of_range(KappaConsumer *consumer, int32 *partition,
									   int64 *offset);
extern bool kappa_consumer_probe(KappaConsumer *consumer, int timeout_ms);
extern void kappa_consumer_release(KappaConsumer *consumer);
extern void kappa_consumer_release_first(KappaConsumer *consumer, int count);
extern int64 kappa_consumer_end(KappaConsumer *consumer, int32 partition);
extern int64 kappa_consumer_query_end(KappaConsumer *consumer, int32 partition);
extern int64 kappa_consumer_query_start(KappaConsumer *consumer, int32 partition);

extern void kappa_consumer_read_ranges(KappaConsumer *consumer, int nparts, int64 *from,
									   const int64 *to, KappaMessageCallback emit, void *arg,
									   const char *what);
extern int64 kappa_consumer_offset_for_time(KappaConsumer *consumer, int32 partition,
											TimestampTz time);
extern void kappa_consumer_commit(KappaConsumer *consumer, int nparts, const int64 *offsets);
extern const char *kappa_consumer_error(KappaConsumer *consumer);
extern void kappa_consumer_close(KappaConsumer *consumer);

/* A sink's transactional producer (sink.c). */
typedef struct KappaSinkProducer KappaSinkProducer;

extern KappaSinkProducer *kappa_sink_producer_open(KappaStream *conn, const char *transactional_id,
												   char **error);
extern void kappa_sink_producer_close(KappaSinkProducer *producer);
extern bool kappa_sink_producer_send(KappaSinkProducer *producer, const char *topic, List *keys,
									 List *values, char **error, bool *fatal);
extern int64 kappa_sink_last_seq(KappaStream *conn, const char *sink, int32 sink_id,
								 char **error);

#endif							/* KAPPA_KAFKA_H */
