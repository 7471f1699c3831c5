/*-------------------------------------------------------------------------
 *
 * aggregate.h
 *	  Running any Postgres aggregate incrementally: transition, combine,
 *	  final, serialize and deserialize, as nodeAgg.c runs them.
 *
 * src/agg/aggregate.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_AGGREGATE_H
#define KAPPA_AGGREGATE_H

#include "executor/nodeAgg.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/execnodes.h"

/* One aggregate of a view, ready to run. */
typedef struct KappaAgg
{
	Aggref	   *aggref;
	int			nargs;
	ExprState **args;			/* per event: the arguments */
	ExprState  *filter;			/* per event: FILTER (WHERE ...), or NULL */
	Oid			transtype;
	int16		translen;
	bool		transbyval;
	Datum		init;
	bool		init_null;
	bool		trans_strict;
	bool		combine_strict;
	bool		final_strict;
	bool		has_final;
	int			final_nargs;
	bool		internal;		/* transtype internal: (de)serialize functions */
	FunctionCallInfo trans_call;
	FunctionCallInfo combine_call;
	FunctionCallInfo final_call;
	FunctionCallInfo serial_call;
	FunctionCallInfo deserial_call;
} KappaAgg;

/*
 * What aggregate support functions find in fcinfo->context, as under
 * nodeAgg.c: AggCheckCallContext's aggregate memory (where a group's
 * states live) and AggGetAggref's aggregate.
 */
typedef struct KappaAggContext
{
	AggState   *aggstate;
	ExprContext state_econtext;
	ExprContext temp_econtext;
	AggStatePerTransData pertrans;
} KappaAggContext;

extern void kappa_datum_append(StringInfo buf, Datum value, int16 typlen, bool typbyval);
extern Datum kappa_datum_read(const char **p, int16 typlen, bool typbyval);
extern KappaAggContext *kappa_agg_context_create(void);
extern void kappa_agg_init(KappaAgg *agg, Aggref *aggref, KappaAggContext *cx);
extern void kappa_agg_initial(KappaAgg *agg, MemoryContext cxt,
							  Datum *state, bool *state_null);
extern void kappa_agg_advance(KappaAgg *agg, KappaAggContext *cx, MemoryContext cxt,
							  ExprContext *econtext, Datum *state, bool *state_null);
extern void kappa_agg_combine(KappaAgg *agg, KappaAggContext *cx, MemoryContext cxt,
							  Datum *state, bool *state_null,
							  Datum other, bool other_null);
extern Datum kappa_agg_final(KappaAgg *agg, KappaAggContext *cx, MemoryContext cxt,
							 Datum state, bool state_null, bool *isnull);
extern bytea *kappa_agg_serialize(KappaAgg *agg, KappaAggContext *cx, MemoryContext cxt,
								  Datum state, bool state_null);
extern void kappa_agg_deserialize(KappaAgg *agg, KappaAggContext *cx, MemoryContext cxt,
								  bytea *data, Datum *state, bool *state_null);

#endif							/* KAPPA_AGGREGATE_H */
