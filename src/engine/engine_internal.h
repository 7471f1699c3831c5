/*-------------------------------------------------------------------------
 *
 * engine_internal.h
 *	  The engine's own structures, shared by the files of src/engine/ that
 *	  run it (engine.c, apply.c, engine_views.c, flush.c, recovery.c, ...),
 *	  and by nothing outside that folder.
 *
 * src/engine/engine_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_ENGINE_INTERNAL_H
#define KAPPA_ENGINE_INTERNAL_H

#include "common/hashfn.h"
#include "executor/spi.h"
#include "nodes/execnodes.h"

#include "decode/decode.h"
#include "engine/compile.h"
#include "engine/engine.h"
#include "engine/lookup.h"
#include "engine/state.h"
#include "kappa_catalog/view_state.h"

/*
 * The widest group key a view takes, in bytes: a stored state's primary
 * key and the rows table's unique index must hold it (a btree entry takes
 * at most about 2700 bytes).  An event with a wider key is rejected.
 */
#define KAPPA_MAX_KEY_BYTES 2000

/* A key seen for deduplication, with the event time it came with. */
typedef struct DedupEntry
{
	char	   *key;
	uint32		hash;
	char		status;
	TimestampTz time;
} DedupEntry;

#define SH_PREFIX deduptab
#define SH_ELEMENT_TYPE DedupEntry
#define SH_KEY_TYPE char *
#define SH_KEY key
#define SH_HASH_KEY(tb, key) hash_bytes((const unsigned char *) (key), strlen(key))
#define SH_EQUAL(tb, a, b) (strcmp(a, b) == 0)
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_STORE_HASH
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* The stream's own position and counts in one partition. */
typedef struct StreamPartition
{
	int64		next;			/* first offset not consumed; or KAPPA_OFFSET_* */
	int64		end;			/* log end last seen, -1 unknown */
	int64		consumed;		/* since the last flush */
	int64		dead;
	TimestampTz last_event_at;	/* broker time of the last message */
	TimestampTz last_seen;		/* wall clock of the last message */
	bool		changed;
} StreamPartition;

/* A view's position, watermark, counts and dedup keys in one partition. */
typedef struct ViewPartition
{
	int64		next;
	int64		first;			/* first offset read here, -1 unknown */
	int64		archive_to;		/* a rebuild reads [first, archive_to) from the archive */
	TimestampTz max_time;		/* DT_NOBEGIN before the first event */
	int64		filtered;
	int64		duplicate;
	int64		delivered;
	int64		applied;
	int64		late;
	int64		rejected;		/* events whose evaluation failed (poison) */
	bool		changed;
	deduptab_hash *dedup;
	List	   *dedup_new;		/* NewDedupKey: seen since the last flush */
} ViewPartition;

/* A dedup key seen since the last flush, to store (in the flush context). */
typedef struct NewDedupKey
{
	const char *key;			/* the dedup table's copy */
	TimestampTz time;
} NewDedupKey;

/* A view, ready to run. */
typedef struct ViewRuntime
{
	int32		view_id;
	Oid			owner;			/* user code of the view runs as this role */
	char	   *name;			/* qualified and quoted, for messages */
	char	   *notify;			/* channel to NOTIFY at flushes, or NULL */
	bool		emit_final;		/* rows only of final windows (option emit) */
	int64		retention_us;	/* keep final windows this long; 0: for ever */
	char	   *retention_column;	/* quoted: the rows' window end or start */
	bool		retention_is_end;
	TimestampTz retention_done; /* rows of windows ended before it are gone */
	bool		scratch;		/* a recomputation (kappa_check): rows only */
	char	   *rows_table;		/* quoted, qualified */
	bool		start_latest;
	TimestampTz start_time;		/* applies messages stamped from then; or DT_NOBEGIN */
	TimestampTz since;			/* applies events of [since, until) only */
	TimestampTz until;			/* (kappa_replay's bounds; or DT_NOBEGIN, DT_NOEND) */
	KappaViewSpec *spec;
	KappaStateSpec sspec;
	KappaGroupTable *groups;
	KappaLookupRun *lookups;	/* the tables it joins, or NULL */
	ExprState  *where;
	ExprState  *window_ts;
	ExprState **keys;
	int			nkeys;
	int16	   *key_typlens;
	bool		wide_keys;		/* a key of variable length: check key_bytes */
	Datum	   *key_values;
	bool	   *key_nulls;
	ViewPartition *parts;
	TimestampTz finalized_upto;
	TimestampTz final_stored;	/* finalized_upto as kappa_stats shows it */
	TupleTableSlot *group_slot;
	ExprContext *out_econtext;
	ProjectionInfo *project;
	int			nout;
	Oid		   *out_types;
	int		   *unique_cols;	/* output column indexes (0-based) */
	int			nunique;
	SPIPlanPtr	upsert_plan;	/* all changed rows, as an array of the table's rows */
	SPIPlanPtr	insert_plan;	/* the same without ON CONFLICT: rows not there yet */
	Oid			row_type;		/* the rows table's composite type */
	TupleDesc	row_desc;
	SPIPlanPtr	delete_plan;	/* by the unique columns, with = (indexed) */
	char	   *delete_nulls_sql;	/* the same, for keys with nulls */
	Oid		   *delete_types;
	List	   *rejects;		/* DeadLetter: events it rejected, to store */
	MemoryContext cxt;
} ViewRuntime;

/* A late event kept for kappa.late_events, waiting for the next flush. */
typedef struct LateEvent
{
	int32		view_id;
	int32		partition;
	int64		offset;
	TimestampTz event_time;
	bytea	   *payload;
} LateEvent;

/*
 * A message that could not be decoded (view_id 0), or an event a view
 * rejected because evaluating it failed, waiting for the next flush.
 */
typedef struct DeadLetter
{
	int32		view_id;
	int32		partition;
	int64		offset;
	TimestampTz broker_time;
	bytea	   *key;
	bytea	   *payload;
	char	   *reason;
	char		sqlstate[6];
} DeadLetter;

/*
 * A dead letter retried (kappa_engine_retry), for the next flush: deleted
 * if its event went to its views, else kept with the new reason.
 */
typedef struct RetriedLetter
{
	int32		view_id;
	int32		partition;
	int64		offset;
	bool		dead;
	char	   *reason;
	char		sqlstate[6];
} RetriedLetter;

/* A known poison event for one view (0: for decoding), with its error. */
typedef struct KappaPoison
{
	int32		view_id;
	char		sqlstate[6];
	char	   *reason;
} KappaPoison;

/* A view whose code lost a right it needs, to be marked failed. */
typedef struct KappaFailedView
{
	int32		view_id;
	ErrorData  *error;
} KappaFailedView;

struct KappaEngine
{
	KappaStream *stream;
	bool		isolate_views;	/* a view that fails is marked failed, not the caller */
	KappaPoisons *poisons;		/* known poison events; or NULL */
	bool		flush_due;		/* a poison was applied: flush soon */
	int32		blame_view;		/* what is being evaluated: -1 nothing, */
	/* 0 the message's decoding, else a view */
	bool		lookup_executing;	/* in a lookup join's statement (lookup.c) */
	int			nparts;
	bool	   *local;			/* partitions of this server (kappa_stream_owns) */
	bool	   *owned;			/* those this worker consumes now */
	bool		shared;			/* several workers keep the views: see flush.c */
	int32		worker;			/* with shared, which of them this is */
	int32		nworkers;		/* and how many there are */
	StreamPartition *parts;
	List	   *views;			/* ViewRuntime */
	KappaDecoder *decoder;
	KappaLogStart log_start;	/* where the log begins now; or NULL */
	void	   *log_arg;
	char	   *scratch_table;	/* kappa_engine_create_scratch's, or NULL */
	int32		only_view;		/* kappa_engine_create_replay's view, or 0 */
	const int64 *scratch_first;
	int			event_time_col; /* -1: broker time */
	int			dedup_col;		/* -1: no dedup */
	FmgrInfo	dedup_out;		/* its output function, unless text */
	int			ncols;
	int			meta_col;		/* kafka_partition's place in the event row */
	TupleDesc	event_desc;
	TupleTableSlot *event_slot;
	ExprContext *econtext;
	List	   *dead_letters;
	List	   *late_events;	/* LateEvent, with keep_late */
	List	   *retried;		/* RetriedLetter: dead letters retried */
	const KappaMessage *message;	/* the message being processed */
	char	   *dedup_text;		/* its dedup key, as text; or NULL */
	int64		pending;
	TimestampTz started;
	TimestampTz last_flush;
	MemoryContext cxt;
	MemoryContext flush_cxt;
	MemoryContextCallback free_plans;	/* frees the views' plans with cxt */
	KappaPhaseTimes *phases;	/* where the time goes; NULL: not timed */
};

/* Timing a phase: cheap when the engine is not timed. */
static inline void
kappa_phase_start(KappaEngine *engine, instr_time *start)
{
	if (engine->phases)
		INSTR_TIME_SET_CURRENT(*start);
}

/* Add the time since start to a phase, and start again from now. */
static inline void
kappa_phase_end(KappaEngine *engine, KappaPhase phase, instr_time *start)
{
	if (engine->phases)
	{
		instr_time	now;

		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_ACCUM_DIFF(engine->phases->spent[phase], now, *start);
		*start = now;
	}
}

extern KappaPoison *kappa_poison_find(KappaPoisons *poisons, int32 partition, int64 offset,
									 int32 view_id);
extern bool kappa_poisons_any(KappaPoisons *poisons, int32 partition, int64 offset);
extern List *kappa_poisons_take_failed(KappaPoisons *poisons);

extern TimestampTz kappa_engine_watermark(KappaEngine *engine, ViewRuntime *view,
										  TimestampTz now);
extern bool kappa_view_restore(KappaEngine *engine, ViewRuntime *view, const char *name);
extern void kappa_view_load_partitions(KappaEngine *engine, ViewRuntime *view,
									   const bool *which);
extern KappaGroup *kappa_view_restore_state(ViewRuntime *view, const KappaStoredState *row,
											bool merge);
extern void kappa_view_rebuild_from_archive(KappaEngine *engine, ViewRuntime *view);
extern void kappa_flush_view(KappaEngine *engine, ViewRuntime *view, TimestampTz now);
extern void kappa_flush_positions(KappaEngine *engine, TimestampTz now, double flush_ms);
extern void kappa_flush_dead_letters(KappaEngine *engine);
extern void kappa_flush_shared_merge(KappaEngine *engine, ViewRuntime *view,
									 void (*forget) (ViewRuntime *view, KappaGroup *group,
													 void *arg),
									 void *arg);
extern void kappa_flush_shared_peer_watermarks(KappaEngine *engine, ViewRuntime *view);
extern TimestampTz kappa_flush_shared_finalization(KappaEngine *engine, ViewRuntime *view);
extern void kappa_flush_shared_forget(ViewRuntime *view, int64 margin, TimestampTz state_upto);
extern void kappa_engine_fail_view(KappaEngine *engine, ViewRuntime *view, ErrorData *edata);
extern void kappa_view_mark_failed(int32 view_id, const char *name, ErrorData *edata);
extern void kappa_engine_forget_view(KappaEngine *engine, ViewRuntime *view);
extern void kappa_engine_drop_view_runtime(ViewRuntime *view);
extern void kappa_engine_free_view_plans(void *arg);
extern ViewRuntime *kappa_engine_load_view_by_id(KappaEngine *engine, int32 view_id);

#endif							/* KAPPA_ENGINE_INTERNAL_H */
