/*-------------------------------------------------------------------------
 *
 * broker_control.h
 *	  kappa-broker's fault controls: a loopback port taking line commands.
 *
 * IDENTIFICATION
 *	  tools/broker_control.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_BROKER_CONTROL_H
#define KAPPA_BROKER_CONTROL_H

#include <stdbool.h>

#include <librdkafka/rdkafka_mock.h>

typedef struct BrokerControl BrokerControl;

extern BrokerControl *broker_control_start(rd_kafka_mock_cluster_t *cluster,
										   int brokers, char *address, size_t address_len);
extern void broker_control_stop(BrokerControl *control);

#endif							/* KAPPA_BROKER_CONTROL_H */
