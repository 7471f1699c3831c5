/*-------------------------------------------------------------------------
 *
 * kappa-broker.c
 *	  A throwaway, in-memory Kafka-protocol broker for kappa's demos and tests.
 *
 * This program wraps librdkafka's mock cluster (rdkafka_mock.h) in a small
 * command-line tool, so that kappa can be exercised against something that
 * speaks the Kafka protocol without a JVM.  It creates the requested topics,
 * announces the bootstrap address on stdout and, atomically, in a port file,
 * and then does nothing but wait for SIGTERM or SIGINT: all protocol work
 * happens in the mock cluster's own thread.  The signals are blocked before
 * any librdkafka handle exists, so every thread librdkafka starts inherits
 * the blocked mask and the main thread alone receives them, synchronously,
 * through sigwait().  The cluster keeps everything in memory, listens on
 * 127.0.0.1 only, on fresh random ports, and is gone when the process exits.
 * docs/kappa-broker.md describes what the mock does and does not emulate.
 *
 * IDENTIFICATION
 *	  tools/kappa-broker.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "broker_control.h"

#define PROGNAME			"kappa-broker"
#define EXIT_USAGE			2
#define MAX_TOPIC_NAME_LEN	249		/* Kafka's own limit */
#define MAX_PARTITIONS		10000
#define MAX_BROKERS			16
#define MAX_REPLICATION		3

/*
 * librdkafka's log level when not --quiet: warnings and worse.  Our handle
 * has no bootstrap.servers, which draws a harmless but alarming notice
 * ("client will not be able to connect") at the default level.
 */
#define LOG_LEVEL_WARNING	"4"

/* One --topic argument, parsed. */
typedef struct TopicSpec
{
	char	   *name;
	int			partitions;
} TopicSpec;

/* The whole command line, parsed. */
typedef struct BrokerOptions
{
	TopicSpec  *topics;
	int			ntopics;
	const char **unknown_topics;	/* --unknown-topic names */
	int			nunknown;
	int			brokers;
	const char *port_file;
	const char *control_file;	/* --control-file: fault controls */
	bool		quiet;
} BrokerOptions;

static void usage_error(const char *fmt,...)
			__attribute__((format(printf, 1, 2), noreturn));

/* Print the usage text on stdout, for --help. */
static void
print_usage(void)
{
	printf("%s runs an in-memory Kafka broker for tests and demos.\n\n"
		   "Usage:\n"
		   "  %s --topic NAME[:PARTITIONS] [--topic ...] [OPTION]...\n\n"
		   "Options:\n"
		   "  -t, --topic NAME[:N]    create topic NAME with N partitions\n"
		   "                          (default 1); may be repeated\n"
		   "  -u, --unknown-topic NAME  answer NAME's metadata with\n"
		   "                          UNKNOWN_TOPIC_OR_PART, as a broker with\n"
		   "                          auto.create.topics.enable=false would;\n"
		   "                          may be repeated\n"
		   "  -b, --brokers N         number of brokers, 1..%d (default 1)\n"
		   "  -p, --port-file FILE    write the bootstrap address to FILE\n"
		   "  -c, --control-file FILE accept fault commands (down, up, rtt,\n"
		   "                          errors, leader) on a loopback port, and\n"
		   "                          write its address to FILE\n"
		   "  -q, --quiet             do not print librdkafka's messages\n"
		   "  -h, --help              show this help, then exit\n\n"
		   "When ready, it prints the bootstrap address on stdout and then\n"
		   "runs until SIGTERM or SIGINT.\n",
		   PROGNAME, PROGNAME, MAX_BROKERS);
}

/* Complain about the command line and exit with the usage status. */
static void
usage_error(const char *fmt,...)
{
	va_list		args;

	fprintf(stderr, "%s: ", PROGNAME);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fprintf(stderr, "\nTry \"%s --help\" for more information.\n", PROGNAME);
	exit(EXIT_USAGE);
}

/* Return ptr, or exit if an allocation failed: no fallback makes sense. */
static void *
check_alloc(void *ptr)
{
	if (ptr == NULL)
	{
		fprintf(stderr, "%s: out of memory\n", PROGNAME);
		exit(EXIT_FAILURE);
	}
	return ptr;
}

/* Parse a whole decimal integer in [min, max]; false if it is not one. */
static bool
parse_bounded_int(const char *text, int min, int max, int *result)
{
	char	   *end;
	long		value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' ||
		value < min || value > max)
		return false;
	*result = (int) value;
	return true;
}

/* Is this a name that Kafka itself would accept for a topic? */
static bool
is_valid_topic_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > MAX_TOPIC_NAME_LEN ||
		strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strspn(name,
				  "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "0123456789._-") == len;
}

/* Turn "NAME[:PARTITIONS]" into a TopicSpec, exiting on bad input. */
static void
parse_topic_argument(const char *arg, TopicSpec *topic)
{
	/* ':' cannot occur in a valid name, so the first one is the separator. */
	const char *colon = strchr(arg, ':');
	size_t		name_len = colon ? (size_t) (colon - arg) : strlen(arg);

	/* Copy rather than cut argv in place, which would garble ps output. */
	topic->name = check_alloc(strndup(arg, name_len));
	if (!is_valid_topic_name(topic->name))
		usage_error("invalid topic name \"%s\": need 1-%d characters of "
					"[a-zA-Z0-9._-], and not \".\" or \"..\"",
					topic->name, MAX_TOPIC_NAME_LEN);

	topic->partitions = 1;
	if (colon != NULL &&
		!parse_bounded_int(colon + 1, 1, MAX_PARTITIONS, &topic->partitions))
		usage_error("invalid partition count \"%s\": must be 1..%d",
					colon + 1, MAX_PARTITIONS);
}

/* Parse argv into opts, exiting with status 2 on any mistake. */
static void
parse_command_line(int argc, char **argv, BrokerOptions *opts)
{
	static const struct option long_options[] = {
		{"topic", required_argument, NULL, 't'},
		{"unknown-topic", required_argument, NULL, 'u'},
		{"brokers", required_argument, NULL, 'b'},
		{"port-file", required_argument, NULL, 'p'},
		{"control-file", required_argument, NULL, 'c'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	int			c;

	/* There cannot be more topics than arguments. */
	opts->topics = check_alloc(calloc((size_t) argc, sizeof(TopicSpec)));
	opts->unknown_topics = check_alloc(calloc((size_t) argc, sizeof(char *)));

	while ((c = getopt_long(argc, argv, "t:u:b:p:c:qh", long_options, NULL)) != -1)
	{
		TopicSpec  *topic = &opts->topics[opts->ntopics];

		switch (c)
		{
			case 't':
				parse_topic_argument(optarg, topic);
				for (int i = 0; i < opts->ntopics; i++)
					if (strcmp(opts->topics[i].name, topic->name) == 0)
						usage_error("topic \"%s\" given more than once",
									topic->name);
				opts->ntopics++;
				break;
			case 'u':
				if (!is_valid_topic_name(optarg))
					usage_error("invalid topic name \"%s\"", optarg);
				opts->unknown_topics[opts->nunknown++] = optarg;
				break;
			case 'b':
				if (!parse_bounded_int(optarg, 1, MAX_BROKERS, &opts->brokers))
					usage_error("invalid broker count \"%s\": must be 1..%d",
								optarg, MAX_BROKERS);
				break;
			case 'p':
				opts->port_file = optarg;
				break;
			case 'c':
				opts->control_file = optarg;
				break;
			case 'q':
				opts->quiet = true;
				break;
			case 'h':
				print_usage();
				exit(EXIT_SUCCESS);
			default:
				/* getopt_long has already said what was wrong. */
				fprintf(stderr, "Try \"%s --help\" for more information.\n",
						PROGNAME);
				exit(EXIT_USAGE);
		}
	}

	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (opts->ntopics == 0)
		usage_error("at least one --topic is required");
}

/* librdkafka log callback: pass the message on to stderr. */
static void
log_to_stderr(const rd_kafka_t *rk, int level, const char *facility,
			  const char *message)
{
	(void) rk;
	fprintf(stderr, "%s: librdkafka %d %s: %s\n",
			PROGNAME, level, facility, message);
}

/* librdkafka log callback for --quiet: drop the message. */
static void
log_nowhere(const rd_kafka_t *rk, int level, const char *facility,
			const char *message)
{
	(void) rk;
	(void) level;
	(void) facility;
	(void) message;
}

/* Set one librdkafka property, reporting librdkafka's complaint if any. */
static bool
set_config(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, name, value,
						  errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
		return true;
	fprintf(stderr, "%s: could not set %s: %s\n", PROGNAME, name, errstr);
	return false;
}

/* Write "bootstraps\n" to path through an fsync'd temporary and rename(). */
static bool
write_port_file(const char *path, const char *bootstraps)
{
	char		tmp_path[PATH_MAX];
	FILE	   *file;
	bool		ok;

	if (snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", path) >=
		(int) sizeof(tmp_path))
	{
		fprintf(stderr, "%s: port file name \"%s\" is too long\n",
				PROGNAME, path);
		return false;
	}

	/* A script polls for path to appear: it must never see half a line. */
	file = fopen(tmp_path, "w");
	if (file == NULL)
	{
		fprintf(stderr, "%s: could not create \"%s\": %s\n",
				PROGNAME, tmp_path, strerror(errno));
		return false;
	}
	ok = fprintf(file, "%s\n", bootstraps) >= 0 &&
		fflush(file) == 0 &&
		fsync(fileno(file)) == 0;
	if (fclose(file) != 0)
		ok = false;
	if (ok && rename(tmp_path, path) == 0)
		return true;

	fprintf(stderr, "%s: could not write \"%s\": %s\n",
			PROGNAME, path, strerror(errno));
	unlink(tmp_path);
	return false;
}

/* Start the cluster, create the topics, announce them, wait for a signal. */
int
main(int argc, char **argv)
{
	BrokerOptions opts = {.brokers = 1};
	sigset_t	handled_signals;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *cluster;
	const char *bootstraps;
	char		errstr[512];
	int			replication;
	int			exit_code = EXIT_FAILURE;
	int			sig;
	BrokerControl *control = NULL;
	char		control_address[64];

	parse_command_line(argc, argv, &opts);

	/*
	 * Block the signals before librdkafka starts any thread, so that they
	 * reach only the sigwait() below.  SIGHUP is taken and ignored (there is
	 * nothing to reload), so a closing terminal does not pull the broker
	 * from under a running test.  SIGPIPE is ignored outright: a client that
	 * vanishes mid-write, or a closed stdout, must not end the broker.
	 */
	sigemptyset(&handled_signals);
	sigaddset(&handled_signals, SIGTERM);
	sigaddset(&handled_signals, SIGINT);
	sigaddset(&handled_signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &handled_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* A port file left by a killed run must not pass for a live broker. */
	if (opts.port_file != NULL)
		unlink(opts.port_file);
	if (opts.control_file != NULL)
		unlink(opts.control_file);

	/* The handle only keeps the mock cluster's books; it connects nowhere. */
	conf = rd_kafka_conf_new();
	rd_kafka_conf_set_log_cb(conf, opts.quiet ? log_nowhere : log_to_stderr);
	if (!set_config(conf, "client.id", PROGNAME) ||
		!set_config(conf, "log_level", LOG_LEVEL_WARNING))
	{
		rd_kafka_conf_destroy(conf);
		return EXIT_FAILURE;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		/* rd_kafka_new() takes ownership of conf only when it succeeds. */
		fprintf(stderr, "%s: could not create handle: %s\n", PROGNAME, errstr);
		rd_kafka_conf_destroy(conf);
		return EXIT_FAILURE;
	}

	/* The brokers are listening once this returns. */
	cluster = rd_kafka_mock_cluster_new(rk, opts.brokers);
	if (cluster == NULL)
	{
		fprintf(stderr, "%s: could not create the mock cluster\n", PROGNAME);
		rd_kafka_destroy(rk);
		return EXIT_FAILURE;
	}

	/* As on a real cluster, never ask for more replicas than brokers. */
	replication = opts.brokers < MAX_REPLICATION ?
		opts.brokers : MAX_REPLICATION;
	for (int i = 0; i < opts.ntopics; i++)
	{
		rd_kafka_resp_err_t err;

		err = rd_kafka_mock_topic_create(cluster, opts.topics[i].name,
										 opts.topics[i].partitions,
										 replication);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			fprintf(stderr, "%s: could not create topic \"%s\": %s\n",
					PROGNAME, opts.topics[i].name, rd_kafka_err2str(err));
			goto done;
		}
	}

	/*
	 * The mock creates any topic a request names; these names stand for
	 * topics that do not exist on a broker that does not create them.
	 */
	for (int i = 0; i < opts.nunknown; i++)
		rd_kafka_mock_topic_set_error(cluster, opts.unknown_topics[i],
									  RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);

	/* the controls are ready before the broker is announced */
	if (opts.control_file != NULL)
	{
		control = broker_control_start(cluster, opts.brokers, control_address,
									   sizeof(control_address));
		if (control == NULL || !write_port_file(opts.control_file, control_address))
			goto done;
	}

	bootstraps = rd_kafka_mock_cluster_bootstraps(cluster);
	if (opts.port_file != NULL && !write_port_file(opts.port_file, bootstraps))
		goto done;
	/* Not fatal: a caller that reads the port file may have closed stdout. */
	if (printf("%s\n", bootstraps) < 0 || fflush(stdout) != 0)
		fprintf(stderr, "%s: could not write to stdout: %s\n",
				PROGNAME, strerror(errno));

	/* Sleep until told to stop; SIGHUP just goes round again. */
	do
	{
		if (sigwait(&handled_signals, &sig) != 0)
			sig = SIGTERM;		/* only for an invalid set; stop anyway */
	} while (sig == SIGHUP);

	/*
	 * Withdraw the address first: tearing the cluster down can take up to a
	 * second, as librdkafka waits for an internal thread's 1 s poll tick.
	 */
	if (opts.port_file != NULL)
		unlink(opts.port_file);
	exit_code = EXIT_SUCCESS;

done:
	if (opts.control_file != NULL)
		unlink(opts.control_file);
	broker_control_stop(control);
	rd_kafka_mock_cluster_destroy(cluster);
	rd_kafka_destroy(rk);
	for (int i = 0; i < opts.ntopics; i++)
		free(opts.topics[i].name);
	free(opts.topics);
	free(opts.unknown_topics);
	return exit_code;
}
