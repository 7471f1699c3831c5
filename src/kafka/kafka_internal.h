/*-------------------------------------------------------------------------
 *
 * kafka_internal.h
 *	  What kafka.c (handles, producing, peeking) shares with consumer.c (a
 *	  stream worker's consumer), and with nothing else.
 *
 * src/kafka/kafka_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_KAFKA_INTERNAL_H
#define KAPPA_KAFKA_INTERNAL_H

#include <librdkafka/rdkafka.h>

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "kappa_catalog/stream.h"

#define KAFKA_ERRSTR_LEN 512

typedef void (*KafkaRebalanceCallback) (rd_kafka_t *rk, rd_kafka_resp_err_t err,
										rd_kafka_topic_partition_list_t *partitions,
										void *opaque);

/* A librdkafka handle and what its callbacks reported. */
typedef struct KappaKafka
{
	rd_kafka_t *rk;
	int32		stream_id;
	uint32		identity;		/* of the stream's brokers, topic and settings */
	List	   *secrets;		/* char *, values to mask */
	bool		all_brokers_down;
	bool		topic_checked;	/* producer: the topic is known to exist */
	int			timeout_ms;		/* producer: its message.timeout.ms */
	MemoryContext context;		/* holds this struct; goes with the handle */
	void	   *owner;			/* consumer: its KappaConsumer, for callbacks */

	/*
	 * What the process holds of the handle, given back by kafka_destroy:
	 * librdkafka's destroy waits until every message and queue is, so a
	 * process that exited holding one would never end.
	 */
	rd_kafka_queue_t *queue;	/* consumer: its consumer queue, or NULL */
	rd_kafka_message_t **held;	/* consumer: messages handed out, in order */
	int			nheld;
	int			held_size;
	char		last_error[KAFKA_ERRSTR_LEN];
} KappaKafka;

extern KappaKafka *kappa_kafka_new(KappaStream *stream, rd_kafka_type_t type, List *extra,
							 KafkaRebalanceCallback rebalance);
extern void kappa_kafka_destroy(KappaKafka *kk);
extern void kappa_kafka_poll(KappaKafka *kk, int timeout_ms);
extern int	kappa_kafka_partitions(KappaKafka *kk, const char *topic, TimestampTz deadline);
extern void kappa_kafka_broker_error(const char *reason, KappaStream *stream, const char *what);
extern char *kappa_kafka_reason(KappaKafka *kk);

#endif							/* KAPPA_KAFKA_INTERNAL_H */
