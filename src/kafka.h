/*-------------------------------------------------------------------------
 *
 * kafka.h
 *	  kappa's Kafka client: librdkafka behind functions that speak Postgres.
 *
 * No other file includes rdkafka.h.  Every function here reports problems
 * with ereport and never blocks longer than kappa.broker_timeout.
 *
 * src/kafka.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_KAFKA_H
#define KAPPA_KAFKA_H

#include "nodes/pg_list.h"

#include "stream.h"

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
extern int	kappa_kafka_topic_partitions(KappaStream *stream);
extern const char *kappa_kafka_version(void);

#endif							/* KAPPA_KAFKA_H */
