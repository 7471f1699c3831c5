/*-------------------------------------------------------------------------
 *
 * raw_consume.c
 *	  The raw consume baseline of bench/run: how fast librdkafka alone
 *	  reads a topic from its beginning to its end, doing nothing with the
 *	  messages but counting them.
 *
 * It reads the way a kappa stream worker does (src/kafka/kafka.c): a consumer
 * handle with a group.id but no subscription, every partition assigned
 * directly from the beginning, batches of up to 10,000 messages taken with
 * rd_kafka_consume_batch_queue, fetch.wait.max.ms = 100.  It first asks
 * the brokers for each partition's watermarks, then consumes until every
 * partition has delivered the message just before its high watermark.
 *
 * Usage:
 *	raw_consume -b BROKERS -t TOPIC [-T TIMEOUT_S] [-d US] [-X NAME=VALUE]...
 *	raw_consume -b BROKERS -t TOPIC -w      print the watermarks only
 *	raw_consume -V                          print librdkafka's version
 *
 * -d spends US microseconds of busy work on each message, as a consumer
 * that does something with its messages would: bench/run uses it to show
 * how librdkafka's fetching behaves then.  -X sets a librdkafka property
 * (after the defaults above, so it may replace them).
 *
 * Output (one line, key=value, for bench/run to parse):
 *	messages=N bytes=B setup_s=S consume_s=C msgs_per_s=R mb_per_s=M
 * With -w, one line per partition: "PARTITION LOW HIGH".
 *
 * Exit status: 0 on success, 1 on any librdkafka error or timeout, 2 on a
 * bad argument.  Built by bench/run: cc -O2 -o raw_consume raw_consume.c
 * -lrdkafka.
 *
 * bench/raw_consume.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define BATCH_MAX 10000
#define META_TIMEOUT_MS 10000
#define MAX_PROPS 32

static const char *progname = "raw_consume";
static char *props[MAX_PROPS];	/* -X NAME=VALUE, in order */
static int	nprops = 0;

/* Print an error message and exit with status 1. */
static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Seconds on the monotonic clock. */
static double
now_s(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Set one configuration property, or die with librdkafka's reason. */
static void
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		die("cannot set %s=%s: %s", name, value, errstr);
}

/* Spin for us microseconds: the stand-in for work done on a message. */
static void
busy_work(double us)
{
	double		until = now_s() + us / 1e6;

	while (now_s() < until)
		;
}

/* Create the consumer handle, configured as a kappa stream worker's. */
static rd_kafka_t *
consumer_new(const char *brokers)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	char		errstr[512];

	if (conf == NULL)
		die("rd_kafka_conf_new failed");
	conf_set(conf, "bootstrap.servers", brokers);
	conf_set(conf, "group.id", "kappa-bench-raw");
	conf_set(conf, "enable.auto.commit", "false");
	conf_set(conf, "enable.auto.offset.store", "false");
	conf_set(conf, "auto.offset.reset", "earliest");
	conf_set(conf, "fetch.wait.max.ms", "100");
	for (int i = 0; i < nprops; i++)
	{
		char	   *eq = strchr(props[i], '=');

		*eq = '\0';
		conf_set(conf, props[i], eq + 1);
		*eq = '=';
	}
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		die("rd_kafka_new: %s", errstr);	/* conf is still ours; we exit */
	return rk;
}

/* The topic's partition count, from the brokers' metadata. */
static int
partition_count(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err;
	int			n;

	if (rkt == NULL)
		die("rd_kafka_topic_new(%s): %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
	err = rd_kafka_metadata(rk, 0, rkt, &md, META_TIMEOUT_MS);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("metadata of topic %s: %s", topic, rd_kafka_err2str(err));
	if (md->topic_cnt != 1)
		die("metadata of topic %s: %d topics returned", topic, md->topic_cnt);
	if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("metadata of topic %s: %s", topic, rd_kafka_err2str(md->topics[0].err));
	n = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	if (n <= 0)
		die("topic %s has no partitions", topic);
	return n;
}

/* Ask the brokers for every partition's low and high watermark. */
static void
watermarks(rd_kafka_t *rk, const char *topic, int nparts, int64_t *low, int64_t *high)
{
	for (int p = 0; p < nparts; p++)
	{
		rd_kafka_resp_err_t err;

		err = rd_kafka_query_watermark_offsets(rk, topic, p, &low[p], &high[p],
											   META_TIMEOUT_MS);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			die("watermarks of %s [%d]: %s", topic, p, rd_kafka_err2str(err));
	}
}

/* Assign every partition that holds messages, from its beginning. */
static void
assign_all(rd_kafka_t *rk, const char *topic, int nparts,
		   const int64_t *low, const int64_t *high)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts);
	rd_kafka_resp_err_t err;

	if (list == NULL)
		die("rd_kafka_topic_partition_list_new failed");
	for (int p = 0; p < nparts; p++)
	{
		if (high[p] > low[p])
			rd_kafka_topic_partition_list_add(list, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	}
	err = rd_kafka_assign(rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("rd_kafka_assign: %s", rd_kafka_err2str(err));
}

/* Print the usage and exit with status 2. */
static void
usage(void)
{
	fprintf(stderr,
			"usage: %s -b BROKERS -t TOPIC [-T TIMEOUT_S] [-d US] [-X NAME=VALUE]... [-w]\n"
			"       %s -V\n"
			"  consume TOPIC from its beginning to its end and print the rate;\n"
			"  -d spends US microseconds of busy work on each message,\n"
			"  -X sets a librdkafka property,\n"
			"  -w prints each partition's low and high watermark instead,\n"
			"  -V librdkafka's version\n",
			progname, progname);
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *brokers = NULL;
	const char *topic = NULL;
	double		timeout_s = 600;
	double		work_us = 0;
	int			only_watermarks = 0;
	int			opt;
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;
	rd_kafka_message_t **batch;
	rd_kafka_resp_err_t err;
	int64_t    *low;
	int64_t    *high;
	int64_t    *next;
	int			nparts;
	int			remaining = 0;
	int64_t		messages = 0;
	int64_t		bytes = 0;
	double		t_start;
	double		t_assigned;
	double		t_last;
	double		deadline;

	while ((opt = getopt(argc, argv, "b:t:T:d:X:wV")) != -1)
	{
		switch (opt)
		{
			case 'b':
				brokers = optarg;
				break;
			case 't':
				topic = optarg;
				break;
			case 'T':
				timeout_s = atof(optarg);
				if (timeout_s <= 0)
					usage();
				break;
			case 'd':
				work_us = atof(optarg);
				if (work_us < 0)
					usage();
				break;
			case 'X':
				if (strchr(optarg, '=') == NULL || nprops == MAX_PROPS)
					usage();
				props[nprops++] = optarg;
				break;
			case 'w':
				only_watermarks = 1;
				break;
			case 'V':
				printf("%s\n", rd_kafka_version_str());
				return 0;
			default:
				usage();
		}
	}
	if (brokers == NULL || topic == NULL || optind != argc)
		usage();

	t_start = now_s();
	rk = consumer_new(brokers);
	nparts = partition_count(rk, topic);
	low = calloc(nparts, sizeof(int64_t));
	high = calloc(nparts, sizeof(int64_t));
	next = calloc(nparts, sizeof(int64_t));
	batch = calloc(BATCH_MAX, sizeof(rd_kafka_message_t *));
	if (low == NULL || high == NULL || next == NULL || batch == NULL)
		die("out of memory");
	watermarks(rk, topic, nparts, low, high);

	if (only_watermarks)
	{
		for (int p = 0; p < nparts; p++)
			printf("%d %" PRId64 " %" PRId64 "\n", p, low[p], high[p]);
		rd_kafka_destroy(rk);
		return 0;
	}

	for (int p = 0; p < nparts; p++)
	{
		next[p] = low[p];
		if (high[p] > low[p])
			remaining++;
	}
	queue = rd_kafka_queue_get_consumer(rk);
	if (queue == NULL)
		die("rd_kafka_queue_get_consumer returned no queue");
	assign_all(rk, topic, nparts, low, high);
	t_assigned = now_s();
	t_last = t_assigned;
	deadline = t_assigned + timeout_s;

	while (remaining > 0)
	{
		ssize_t		n = rd_kafka_consume_batch_queue(queue, 100, batch, BATCH_MAX);

		if (n < 0)
			die("rd_kafka_consume_batch_queue: %s", rd_kafka_err2str(rd_kafka_last_error()));
		for (ssize_t i = 0; i < n; i++)
		{
			rd_kafka_message_t *m = batch[i];

			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			{
				rd_kafka_message_destroy(m);
				continue;
			}
			if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
				die("consume error on [%d]: %s", (int) m->partition, rd_kafka_message_errstr(m));
			if (m->partition < 0 || m->partition >= nparts)
				die("message from unknown partition %d", (int) m->partition);
			messages++;
			bytes += (int64_t) m->len + (int64_t) m->key_len;
			if (next[m->partition] < high[m->partition] && m->offset + 1 >= high[m->partition])
				remaining--;
			next[m->partition] = m->offset + 1;
			rd_kafka_message_destroy(m);
			if (work_us > 0)
				busy_work(work_us);
		}
		/* serve errors and logs; the consumer has no other callbacks */
		rd_kafka_poll(rk, 0);
		t_last = now_s();
		if (t_last > deadline)
			die("timed out after %.0f s with %d partitions still unread", timeout_s, remaining);
	}

	printf("messages=%" PRId64 " bytes=%" PRId64 " setup_s=%.3f consume_s=%.3f "
		   "msgs_per_s=%.0f mb_per_s=%.1f\n",
		   messages, bytes, t_assigned - t_start, t_last - t_assigned,
		   messages / (t_last - t_assigned), bytes / (t_last - t_assigned) / 1e6);

	err = rd_kafka_assign(rk, NULL);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("rd_kafka_assign(NULL): %s", rd_kafka_err2str(err));
	rd_kafka_queue_destroy(queue);
	err = rd_kafka_consumer_close(rk);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		die("rd_kafka_consumer_close: %s", rd_kafka_err2str(err));
	rd_kafka_destroy(rk);
	free(batch);
	free(next);
	free(high);
	free(low);
	return 0;
}
