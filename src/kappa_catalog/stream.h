/*-------------------------------------------------------------------------
 *
 * stream.h
 *	  The stream catalog: definition, validation and loading of streams.
 *
 * src/kappa_catalog/stream.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_STREAM_H
#define KAPPA_STREAM_H

#include "access/attnum.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/* Event times given as JSON numbers count these units since the epoch. */
typedef enum KappaTimeUnit
{
	KAPPA_TIME_S,
	KAPPA_TIME_MS,
	KAPPA_TIME_US
} KappaTimeUnit;

/* The largest partition number a stream may name (Kafka has no limit). */
#define KAPPA_MAX_PARTITION 99999

/* The advisory lock key space of stream consumption ('kapp'). */
#define KAPPA_CONSUMER_LOCK_KEY 0x6B617070

/* A stream, as loaded from the catalog, secrets included. */
typedef struct KappaStream
{
	int32		id;
	char	   *name;
	Oid			owner;
	char	   *topic;
	char	   *brokers;		/* bootstrap.servers */
	List	   *columns;		/* KappaColumn */
	char	   *event_time;		/* column name, or NULL for broker time */
	KappaTimeUnit time_unit;
	int64		watermark_us;	/* allowed lateness */
	int64		idle_timeout_us;
	char	   *dedup_key;		/* column name, or NULL */
	char	   *archive;		/* directory, or NULL */
	bool		keep_late;		/* keep late events in kappa.late_events */
	bool		skip_gaps;		/* on_gap = 'skip': go on past lost offsets */
	int		   *partitions;		/* the partitions consumed here, ascending; */
	int			npartitions;	/* NULL and 0: all of the topic's */
	List	   *settings;		/* KappaSetting, librdkafka settings */
	int32		revision;		/* kappa_alter_stream calls so far */
} KappaStream;

extern void kappa_wake_launcher_on_commit(void);
extern bool kappa_stream_lock_consumer(int32 stream_id, bool session);
extern void kappa_view_lock_state(int32 view_id);
extern char *kappa_stream_relation_name(int32 stream_id);
extern void kappa_stream_create_relation(KappaStream *s);
extern void kappa_stream_insert(KappaStream *s, const char *eventhubs_masked,
								Interval *watermark, Interval *idle_timeout);
extern KappaTimeUnit kappa_stream_parse_time_unit(const char *unit);
extern KappaStream *kappa_stream_load(const char *name);
extern KappaStream *kappa_stream_load_owned(const char *name);
extern KappaStream *kappa_stream_load_by_id(int32 id);
extern bool kappa_stream_owns(const KappaStream *stream, int32 partition);
extern AttrNumber kappa_stream_meta_attnum(const KappaStream *stream);
extern int32 kappa_stream_revision(int32 stream_id);
extern int64 kappa_interval_to_us(Interval *iv, const char *what, bool allow_zero);
extern char *kappa_option_value(const char *name, JsonbValue *v);
extern void kappa_settings_to_jsonb(List *settings, Jsonb **public_settings,
									Jsonb **secret_settings);

#endif							/* KAPPA_STREAM_H */
