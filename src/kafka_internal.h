/*-------------------------------------------------------------------------
 *
 * kafka_internal.h
 *	  What kafka.c (handles, producing, peeking) shares with consumer.c (a
 *	  stream worker's consumer), and with nothing else.
 *
 * src/kafka_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_KAFKA_INTERNAL_H
#define KAPPA_KAFKA_INTERNAL_H

#include <librdkafka/rdkafka.h>

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "stream.h"

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
	MemoryContext context;		/* producer: holds this struct */
	void	   *owner;			/* consumer: its KappaConsumer, for callbacks */
	char		last_error[KAFKA_ERRSTR_LEN];
} KappaKafka;

extern KappaKafka *kafka_new(KappaStream *stream, rd_kafka_type_t type, List *extra,
							 KafkaRebalanceCallback rebalance);
extern void kafka_destroy(KappaKafka *kk);
extern void kafka_poll(KappaKafka *kk, int timeout_ms);
extern int	kafka_partitions(KappaKafka *kk, const char *topic, TimestampTz deadline);
extern void kafka_broker_error(const char *reason, KappaStream *stream, const char *what);
extern char *kafka_reason(KappaKafka *kk);

#endif							/* KAPPA_KAFKA_INTERNAL_H */
