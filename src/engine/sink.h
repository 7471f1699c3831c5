/*-------------------------------------------------------------------------
 *
 * sink.h
 *	  A view's final (or changed) rows sent to a Kafka topic, exactly once.
 *
 * src/engine/sink.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_SINK_H
#define KAPPA_SINK_H

#include "nodes/pg_list.h"

#include "engine/engine_internal.h"

/* What one flush puts in one sink's outbox (in the flush's memory). */
typedef struct KappaSinkRows
{
	int32		sink_id;
	TimestampTz final_upto;		/* emit final: the new final_upto, or DT_NOBEGIN */
	List	   *keys;			/* char *: each row's key, JSON text */
	List	   *rows;			/* char *: each row, JSON text */
	bool		final;			/* emit final (else changes) */
} KappaSinkRows;

extern List *kappa_sink_load(ViewRuntime *view);
extern void kappa_sink_collect(ViewRuntime *view, List *sinks, List *changed_rows,
							   TimestampTz final_until, MemoryContext cxt);
extern void kappa_sink_store(ViewRuntime *view, List *sinks);

/* The stream worker's senders: one transactional producer per sink. */
typedef struct KappaSinkSenders KappaSinkSenders;

extern void kappa_sinks_send(KappaStream *stream, KappaSinkSenders **senders);

#endif							/* KAPPA_SINK_H */
