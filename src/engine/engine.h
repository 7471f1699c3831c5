/*-------------------------------------------------------------------------
 *
 * engine.h
 *	  A stream's events through its views: decode, route, aggregate, flush.
 *
 * src/engine/engine.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_ENGINE_H
#define KAPPA_ENGINE_H

#include "portability/instr_time.h"
#include "utils/elog.h"

#include "kappa_catalog/stream.h"
#include "message.h"

typedef struct KappaEngine KappaEngine;

/*
 * Events known to fail, each with its error, that an engine skips: a
 * message its stream cannot decode, or an event one view cannot apply
 * (poison.c).  Kept by the engine's caller across the engines it builds
 * after rolling back to the last flush.
 */
typedef struct KappaPoisons KappaPoisons;

/* What an error while processing a message is blamed on. */
typedef enum KappaBlame
{
	KAPPA_BLAME_NONE,			/* not the data: the caller's error */
	KAPPA_BLAME_EVENT,			/* the message, for the stream or one view */
	KAPPA_BLAME_VIEW			/* a view that can no longer run (rights) */
} KappaBlame;

/* The first offset a partition's log still holds; -1: unknown. */
typedef int64 (*KappaLogStart) (void *arg, int32 partition);

/* The first offset of a partition stamped at or after a time; -1: unknown. */
typedef int64 (*KappaOffsetForTime) (void *arg, int32 partition, TimestampTz time);

extern KappaEngine *kappa_engine_create(KappaStream *stream, int nparts, const bool *owned,
										int32 worker, int32 nworkers,
										KappaLogStart log_start, void *log_arg,
										KappaPoisons *poisons);
extern bool kappa_engine_owns(KappaEngine *engine, int32 partition);
extern void kappa_engine_adopt(KappaEngine *engine, const bool *owned);
extern KappaEngine *kappa_engine_create_scratch(KappaStream *stream, int nparts, int32 view_id,
												const char *rows_table, const int64 *first,
												KappaPoisons *poisons);
extern KappaEngine *kappa_engine_create_replay(KappaStream *stream, int nparts, int32 view_id,
											   KappaPoisons *poisons);
extern void kappa_engine_destroy(KappaEngine *engine);
extern char *kappa_engine_joined_tables(KappaEngine *engine);
extern bool kappa_engine_sync_views(KappaEngine *engine);
extern int64 kappa_engine_start_offset(KappaEngine *engine, int32 partition);
extern void kappa_engine_resolve_latest(KappaEngine *engine, int32 partition, int64 end);

/* Offsets [from, to) of a partition that a view never saw (gap.c). */
typedef struct KappaViewGap
{
	int32		view_id;
	int64		from;
	int64		to;
} KappaViewGap;

extern List *kappa_engine_skip(KappaEngine *engine, int32 partition, int64 from, int64 to,
							   int64 *stream_lost);
extern void kappa_engine_resolve_times(KappaEngine *engine, int32 partition,
									   KappaOffsetForTime lookup, void *arg);
extern void kappa_engine_process(KappaEngine *engine, const KappaMessage *message);
/* What retrying a dead letter came to (kappa_engine_retry). */
typedef struct KappaRetryResult
{
	bool		dead;			/* it failed again: why, and its SQLSTATE */
	const char *reason;
	const char *sqlstate;
	int64		late;			/* else the views that found it late */
} KappaRetryResult;

extern void kappa_engine_retry(KappaEngine *engine, const KappaMessage *message, int32 view_id,
							   KappaRetryResult *result);
extern bool kappa_engine_has_view(KappaEngine *engine, int32 view_id);
extern void kappa_engine_note_end(KappaEngine *engine, int32 partition, int64 end);
extern void kappa_engine_flush(KappaEngine *engine);
extern int64 kappa_engine_pending(KappaEngine *engine);
extern bool kappa_engine_flush_due(KappaEngine *engine);
extern Size kappa_engine_memory(KappaEngine *engine, int32 *view_id, char **name, Size *largest);

/*
 * Where an engine's time goes, for kappa_feed and the benchmark: set with
 * kappa_engine_time_phases, and then added to at every message and flush.
 * Untimed engines (the workers) pay nothing for it.
 */
typedef enum KappaPhase
{
	KAPPA_PHASE_DECODE,			/* payload to columns, the dedup key */
	KAPPA_PHASE_VIEWS,			/* dedup, WHERE, windows, aggregates */
	KAPPA_PHASE_ROWS,			/* view rows: finalize, project, write */
	KAPPA_PHASE_STATES,			/* open groups' states: serialize, write */
	KAPPA_PHASE_DEDUP,			/* dedup keys: prune, write */
	KAPPA_PHASE_POSITIONS,		/* positions, counts, dead letters */
	KAPPA_NPHASES
} KappaPhase;

typedef struct KappaPhaseTimes
{
	instr_time	spent[KAPPA_NPHASES];
} KappaPhaseTimes;

extern const char *const kappa_phase_names[KAPPA_NPHASES];

extern void kappa_engine_time_phases(KappaEngine *engine, KappaPhaseTimes *times);

extern KappaPoisons *kappa_poisons_create(void);
extern void kappa_poisons_load(KappaPoisons *poisons, int32 stream_id, int32 view_id);
extern KappaBlame kappa_engine_blame(KappaEngine *engine, ErrorData *edata);
extern void kappa_poisons_forget(KappaPoisons *poisons, int32 partition, int64 offset,
								 int32 view_id);
extern void kappa_poisons_note(KappaPoisons *poisons, int32 partition, int64 offset,
							   int32 view_id, const char *sqlstate, const char *reason);

#endif							/* KAPPA_ENGINE_H */
