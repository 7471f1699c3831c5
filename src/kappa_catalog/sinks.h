/*-------------------------------------------------------------------------
 *
 * sinks.h
 *	  The sink catalog: kappa.sinks, a sink's definition and progress, and
 *	  kappa.sink_outbox, the rows it has yet to send.
 *
 * src/kappa_catalog/sinks.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_SINKS_H
#define KAPPA_SINKS_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/palloc.h"

/* The most outbox rows kappa_sink_outbox_take gives, one Kafka transaction's. */
#define KAPPA_SINK_OUTBOX_BATCH 10000

/* A sink of a view, as a flush reads it (kappa_sinks_of_view). */
typedef struct KappaSinkOfView
{
	int32		sink_id;
	char	   *name;
	bool		final;			/* emit final (else changes) */
	TimestampTz final_upto;		/* the outbox has final windows up to it;
								 * DT_NOBEGIN if none yet */
} KappaSinkOfView;

/* A sink as its sender reads it, its row locked (kappa_sinks_lock). */
typedef struct KappaSinkTarget
{
	int32		sink_id;
	char	   *name;
	char	   *topic;
	char	   *brokers;		/* NULL: the stream's own */
	Jsonb	   *options;
	int64		sent_seq;		/* the last seq Kafka committed */
	int64		next_seq;		/* the last seq given to a row */
} KappaSinkTarget;

extern bool kappa_sinks_exists(const char *name);
extern void kappa_sinks_insert(const char *name, Oid owner, const char *schema_name,
							   const char *view_name, const char *topic, const char *brokers,
							   Jsonb *options, const char *emit);
/* The sink's owner, its row locked; InvalidOid if there is none. */
extern Oid	kappa_sinks_lock_owner(const char *name);
extern void kappa_sinks_delete(const char *name);
extern List *kappa_sinks_of_view(int32 view_id, MemoryContext cxt);
extern void kappa_sinks_of_stream(int32 stream_id, MemoryContext cxt, List **sinks,
								  List **pending);
extern bool kappa_sinks_give_seqs(int32 sink_id, int64 count, TimestampTz final_upto,
								  int64 *first_seq);
extern bool kappa_sinks_lock(int32 sink_id, KappaSinkTarget *target);
extern void kappa_sinks_set_error(int32 sink_id, const char *error);
extern void kappa_sinks_record_sent(int32 sink_id, int64 last_seq);

extern void kappa_sink_outbox_insert(int32 sink_id, int64 first_seq, List *keys, List *rows,
									 const char *sink_name, const char *view_name, bool final);
extern int64 kappa_sink_outbox_take(int32 sink_id, int64 after_seq, List **keys,
									List **messages);
/* Delete a sink's outbox rows up to last_seq: Kafka committed them. */
extern void kappa_sink_outbox_delete_sent(int32 sink_id, int64 last_seq);

#endif							/* KAPPA_SINKS_H */
