/*-------------------------------------------------------------------------
 *
 * broker_control.c
 *	  kappa-broker's fault controls: a loopback port taking line commands.
 *
 * Fault tests need to break the brokers while a client uses them: take a
 * broker down and up again, make requests fail, move partition leaders,
 * slow a broker down.  librdkafka's mock cluster can do all of that
 * (rdkafka_mock.h); this file lets another process ask for it.  With
 * --control-file, kappa-broker listens on 127.0.0.1 on a fresh port, writes
 * "127.0.0.1:PORT" to the file, and serves one connection at a time in a
 * thread of its own.  Each line is a command; the answer is one line, "ok"
 * or "error: why":
 *
 *	down BROKER                    the broker stops answering (connections close)
 *	up BROKER                      it answers again
 *	rtt BROKER MS                  it answers every request MS ms late
 *	errors APIKEY COUNT ERRCODE    the next COUNT requests of type APIKEY
 *	                               (Kafka's numbers: 1 Fetch, 2 ListOffsets,
 *	                               3 Metadata, ...) fail with ERRCODE
 *	                               (Kafka's numbers: 6 NOT_LEADER_OR_FOLLOWER,
 *	                               7 REQUEST_TIMED_OUT, ...)
 *	leader TOPIC PARTITION BROKER  the partition's leader moves to BROKER
 *	ping                           nothing: "ok" says the port is alive
 *
 * Brokers are numbered 1..--brokers, as in the metadata the cluster gives.
 * Only loopback clients can connect; nothing is authenticated.
 *
 * IDENTIFICATION
 *	  tools/broker_control.c
 *
 *-------------------------------------------------------------------------
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "broker_control.h"

#define CONTROL_LINE_MAX 512
#define MAX_PUSHED_ERRORS 1000

struct BrokerControl
{
	rd_kafka_mock_cluster_t *cluster;
	int			brokers;
	int			listener;
	pthread_t	thread;
	pthread_mutex_t lock;		/* protects client and stopping */
	int			client;			/* the connection being served, or -1 */
	bool		stopping;
};

/* Whether broker is one of the cluster's, writing an answer if not. */
static bool
valid_broker(BrokerControl *control, int broker, char *answer, size_t len)
{
	if (broker >= 1 && broker <= control->brokers)
		return true;
	snprintf(answer, len, "error: no broker %d (there are %d)", broker, control->brokers);
	return false;
}

/* Carry out one command line, writing the answer (without newline). */
static void
run_command(BrokerControl *control, char *line, char *answer, size_t len)
{
	char		topic[CONTROL_LINE_MAX];
	int			broker;
	int			value;
	int			count;
	int			code;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

	line[strcspn(line, "\r\n")] = '\0';
	if (strcmp(line, "ping") == 0)
		;
	else if (sscanf(line, "down %d", &broker) == 1)
	{
		if (!valid_broker(control, broker, answer, len))
			return;
		err = rd_kafka_mock_broker_set_down(control->cluster, broker);
	}
	else if (sscanf(line, "up %d", &broker) == 1)
	{
		if (!valid_broker(control, broker, answer, len))
			return;
		err = rd_kafka_mock_broker_set_up(control->cluster, broker);
	}
	else if (sscanf(line, "rtt %d %d", &broker, &value) == 2)
	{
		if (!valid_broker(control, broker, answer, len))
			return;
		if (value < 0)
		{
			snprintf(answer, len, "error: rtt must be 0 or more ms");
			return;
		}
		err = rd_kafka_mock_broker_set_rtt(control->cluster, broker, value);
	}
	else if (sscanf(line, "errors %d %d %d", &value, &count, &code) == 3)
	{
		rd_kafka_resp_err_t errors[MAX_PUSHED_ERRORS];

		if (count < 1 || count > MAX_PUSHED_ERRORS)
		{
			snprintf(answer, len, "error: count must be 1 to %d", MAX_PUSHED_ERRORS);
			return;
		}
		for (int i = 0; i < count; i++)
			errors[i] = (rd_kafka_resp_err_t) code;
		rd_kafka_mock_push_request_errors_array(control->cluster, (int16_t) value,
												(size_t) count, errors);
	}
	else if (sscanf(line, "leader %511s %d %d", topic, &value, &broker) == 3)
	{
		if (!valid_broker(control, broker, answer, len))
			return;
		err = rd_kafka_mock_partition_set_leader(control->cluster, topic, value, broker);
	}
	else
	{
		snprintf(answer, len, "error: unknown command \"%.100s\"", line);
		return;
	}
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		snprintf(answer, len, "error: %s", rd_kafka_err2str(err));
	else
		snprintf(answer, len, "ok");
}

/* Serve one connection: a command per line until the client closes it. */
static void
serve(BrokerControl *control, int fd)
{
	FILE	   *in = fdopen(fd, "r");
	char		line[CONTROL_LINE_MAX];
	char		answer[CONTROL_LINE_MAX + 64];

	if (in == NULL)
	{
		close(fd);
		return;
	}
	while (fgets(line, sizeof(line), in) != NULL)
	{
		size_t		n;

		run_command(control, line, answer, sizeof(answer) - 1);
		n = strlen(answer);
		answer[n++] = '\n';
		if (write(fd, answer, n) != (ssize_t) n)
			break;
	}
	fclose(in);					/* closes fd */
}

/* The control thread: accept connections until the listener is shut. */
static void *
control_main(void *arg)
{
	BrokerControl *control = arg;

	for (;;)
	{
		int			fd = accept(control->listener, NULL, NULL);
		bool		stopping;

		if (fd < 0)
		{
			if (errno == EINTR)
				continue;
			return NULL;		/* shut down by broker_control_stop */
		}
		pthread_mutex_lock(&control->lock);
		stopping = control->stopping;
		control->client = stopping ? -1 : fd;
		pthread_mutex_unlock(&control->lock);
		if (stopping)
		{
			close(fd);
			return NULL;
		}
		serve(control, fd);
		pthread_mutex_lock(&control->lock);
		control->client = -1;
		pthread_mutex_unlock(&control->lock);
	}
}

/*
 * Listen on 127.0.0.1, on a port the kernel picks, and serve commands in a
 * thread.  Writes "127.0.0.1:PORT" to address.  NULL on failure, with a
 * message on stderr.
 */
BrokerControl *
broker_control_start(rd_kafka_mock_cluster_t *cluster, int brokers,
					 char *address, size_t address_len)
{
	BrokerControl *control = calloc(1, sizeof(BrokerControl));
	struct sockaddr_in sa = {0};
	socklen_t	sa_len = sizeof(sa);

	if (control == NULL)
		return NULL;
	control->cluster = cluster;
	control->brokers = brokers;
	control->client = -1;
	pthread_mutex_init(&control->lock, NULL);
	control->listener = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	if (control->listener < 0 ||
		bind(control->listener, (struct sockaddr *) &sa, sizeof(sa)) != 0 ||
		listen(control->listener, 4) != 0 ||
		getsockname(control->listener, (struct sockaddr *) &sa, &sa_len) != 0)
	{
		fprintf(stderr, "kappa-broker: could not listen for control commands: %s\n",
				strerror(errno));
		if (control->listener >= 0)
			close(control->listener);
		free(control);
		return NULL;
	}
	snprintf(address, address_len, "127.0.0.1:%d", ntohs(sa.sin_port));
	if (pthread_create(&control->thread, NULL, control_main, control) != 0)
	{
		fprintf(stderr, "kappa-broker: could not start the control thread\n");
		close(control->listener);
		free(control);
		return NULL;
	}
	return control;
}

/*
 * Stop listening, end the connection being served (after the command at
 * hand, if any), and wait for the control thread, so that no command runs
 * while the cluster goes away.
 */
void
broker_control_stop(BrokerControl *control)
{
	if (control == NULL)
		return;
	pthread_mutex_lock(&control->lock);
	control->stopping = true;
	if (control->client >= 0)
		shutdown(control->client, SHUT_RDWR);
	pthread_mutex_unlock(&control->lock);
	shutdown(control->listener, SHUT_RDWR);
	pthread_join(control->thread, NULL);
	close(control->listener);
	pthread_mutex_destroy(&control->lock);
	free(control);
}
