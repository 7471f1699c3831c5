/*-------------------------------------------------------------------------
 *
 * aggregate.c
 *	  Running any Postgres aggregate incrementally: transition, combine,
 *	  final, serialize and deserialize, as nodeAgg.c runs them.
 *
 * A view may use any aggregate that has a combine function; nothing here
 * knows one aggregate from another.  The functions come from pg_aggregate
 * and run with the rules of nodeAgg.c: a strict transition function with
 * a null initial value takes the first non-null input as its state, a
 * strict function skips null inputs, by-reference states are copied into
 * the group's memory when the function returns a new one, and the old one
 * is freed.
 *
 * Support functions of many aggregates (numeric's, array_agg's, those of
 * extensions) insist on being called by an aggregate node: they call
 * AggCheckCallContext to find the memory their state must live in.  So
 * every call here passes an AggState in fcinfo->context, a node made for
 * the purpose (KappaAggContext), whose aggregate memory is switched to the
 * memory of the group being updated before each call.  Only the fields
 * that nodeAgg.h's public functions read are set: curaggcontext,
 * tmpcontext, curpertrans and curperagg.
 *
 * At a new Postgres major version, check in nodeAgg.c what these public
 * functions read of the AggState (AggCheckCallContext, AggGetAggref,
 * AggGetTempMemoryContext, AggStateIsShared, AggRegisterCallback) and of
 * its per-trans and per-agg data (AggStatePerTransData in nodeAgg.h),
 * and whether a new one appeared that support functions call: a field
 * they read and this file does not set is zero here (AggStateIsShared,
 * for one, answers "not shared" because curperagg is NULL and the
 * per-trans data is zeroed, which is what kappa needs: every group has
 * its own state).  The tests run numeric and array aggregates, whose
 * support functions call AggCheckCallContext.
 *
 * Memory: a group's states live in the context the caller passes (the
 * group's); calls run in the per-event memory of the caller's ExprContext,
 * or in the temporary context here, which is reset after each call.
 *
 * src/agg/aggregate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "lib/stringinfo.h"
#include "optimizer/optimizer.h"
#include "parser/parse_agg.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/expandeddatum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "agg/aggregate.h"

static FunctionCallInfo make_call(Oid fnoid, int nargs, Expr *expr, Oid collation,
								  KappaAggContext *cx);
static void keep_new_state(KappaAgg *agg, MemoryContext cxt, Datum *state,
						   bool *state_null, Datum result, bool result_null);
static void enter_group(KappaAggContext *cx, KappaAgg *agg, MemoryContext cxt);

/* The AggState that every aggregate call gets as its context. */
KappaAggContext *
kappa_agg_context_create(void)
{
	KappaAggContext *cx = palloc0(sizeof(KappaAggContext));

	cx->aggstate = makeNode(AggState);
	cx->state_econtext.type = T_ExprContext;
	cx->temp_econtext.type = T_ExprContext;
	cx->temp_econtext.ecxt_per_tuple_memory =
		AllocSetContextCreate(CurrentMemoryContext, "kappa aggregate calls",
							  ALLOCSET_DEFAULT_SIZES);
	cx->aggstate->curaggcontext = &cx->state_econtext;
	cx->aggstate->tmpcontext = &cx->temp_econtext;
	cx->aggstate->curpertrans = &cx->pertrans;
	cx->aggstate->curperagg = NULL;
	return cx;
}

/* Point the aggregate context at a group's memory and an aggregate. */
static void
enter_group(KappaAggContext *cx, KappaAgg *agg, MemoryContext cxt)
{
	cx->state_econtext.ecxt_per_tuple_memory = cxt;
	cx->pertrans.aggref = agg->aggref;
}

/*
 * A call frame for a support function, with the aggregate context, the
 * aggregate's input collation, and an expression describing the call, from
 * which polymorphic functions learn their actual argument types.
 */
static FunctionCallInfo
make_call(Oid fnoid, int nargs, Expr *expr, Oid collation, KappaAggContext *cx)
{
	FunctionCallInfo fcinfo = palloc0(SizeForFunctionCallInfo(nargs));
	FmgrInfo   *flinfo = palloc0(sizeof(FmgrInfo));

	fmgr_info(fnoid, flinfo);
	fmgr_info_set_expr((Node *) expr, flinfo);
	InitFunctionCallInfoData(*fcinfo, flinfo, nargs, collation,
							 (Node *) cx->aggstate, NULL);
	return fcinfo;
}

/*
 * Prepare an aggregate of a view: its support functions from pg_aggregate
 * and its arguments and filter as expressions over the stream's row.
 */
void
kappa_agg_init(KappaAgg *agg, Aggref *aggref, KappaAggContext *cx)
{
	HeapTuple	tuple;
	Form_pg_aggregate form;
	Datum		initval;
	bool		isnull;
	ListCell   *lc;
	int			i = 0;
	Oid			input_types[FUNC_MAX_ARGS];
	int			ninputs;
	Expr	   *expr;
	Expr	   *unused;

	memset(agg, 0, sizeof(KappaAgg));
	agg->aggref = aggref;
	agg->nargs = list_length(aggref->args);
	agg->args = palloc0(sizeof(ExprState *) * Max(agg->nargs, 1));
	foreach(lc, aggref->args)
		agg->args[i++] = ExecInitExpr(expression_planner(((TargetEntry *) lfirst(lc))->expr), NULL);
	if (aggref->aggfilter)
		agg->filter = ExecInitExpr(expression_planner(aggref->aggfilter), NULL);

	tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggref->aggfnoid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for aggregate %u", aggref->aggfnoid);
	form = (Form_pg_aggregate) GETSTRUCT(tuple);

	/* the actual argument and state types, as nodeAgg.c resolves them */
	ninputs = get_aggregate_argtypes(aggref, input_types);
	agg->transtype = resolve_aggregate_transtype(aggref->aggfnoid, form->aggtranstype,
												 input_types, ninputs);
	get_typlenbyval(agg->transtype, &agg->translen, &agg->transbyval);
	agg->internal = (agg->transtype == INTERNALOID);
	agg->trans_strict = func_strict(form->aggtransfn);
	agg->combine_strict = func_strict(form->aggcombinefn);

	build_aggregate_transfn_expr(input_types, ninputs, 0, aggref->aggvariadic,
								 agg->transtype, aggref->inputcollid,
								 form->aggtransfn, InvalidOid, &expr, &unused);
	agg->trans_call = make_call(form->aggtransfn, agg->nargs + 1, expr, aggref->inputcollid, cx);
	/* a combine function is a transition function whose input is a state */
	build_aggregate_transfn_expr(&agg->transtype, 1, 0, false, agg->transtype,
								 aggref->inputcollid, form->aggcombinefn, InvalidOid,
								 &expr, &unused);
	agg->combine_call = make_call(form->aggcombinefn, 2, expr, aggref->inputcollid, cx);
	if (OidIsValid(form->aggfinalfn))
	{
		agg->has_final = true;
		agg->final_strict = func_strict(form->aggfinalfn);
		agg->final_nargs = form->aggfinalextra ? agg->nargs + 1 : 1;
		build_aggregate_finalfn_expr(input_types, agg->final_nargs, agg->transtype,
									 aggref->aggtype, aggref->inputcollid,
									 form->aggfinalfn, &expr);
		agg->final_call = make_call(form->aggfinalfn, agg->final_nargs, expr,
									aggref->inputcollid, cx);
	}
	if (agg->internal)
	{
		build_aggregate_serialfn_expr(form->aggserialfn, &expr);
		agg->serial_call = make_call(form->aggserialfn, 1, expr, InvalidOid, cx);
		build_aggregate_deserialfn_expr(form->aggdeserialfn, &expr);
		agg->deserial_call = make_call(form->aggdeserialfn, 2, expr, InvalidOid, cx);
	}

	initval = SysCacheGetAttr(AGGFNOID, tuple, Anum_pg_aggregate_agginitval, &isnull);
	agg->init_null = isnull;
	if (!isnull)
	{
		Oid			typinput;
		Oid			typioparam;

		getTypeInputInfo(agg->transtype, &typinput, &typioparam);
		agg->init = OidInputFunctionCall(typinput, TextDatumGetCString(initval),
										 typioparam, -1);
	}
	ReleaseSysCache(tuple);
}

/* A new group's state: the aggregate's initial value, in the group's memory. */
void
kappa_agg_initial(KappaAgg *agg, MemoryContext cxt, Datum *state, bool *state_null)
{
	MemoryContext old;

	*state_null = agg->init_null;
	*state = (Datum) 0;
	if (agg->init_null)
		return;
	if (agg->transbyval)
	{
		*state = agg->init;
		return;
	}
	old = MemoryContextSwitchTo(cxt);
	*state = datumCopy(agg->init, false, agg->translen);
	MemoryContextSwitchTo(old);
}

/*
 * Keep what a transition or combine function returned as the group's
 * state: a new by-reference value is copied into the group's memory (unless
 * it is an expanded object that already lives there) and the old freed.
 */
static void
keep_new_state(KappaAgg *agg, MemoryContext cxt, Datum *state, bool *state_null,
			   Datum result, bool result_null)
{
	if (!agg->transbyval && !result_null &&
		DatumGetPointer(result) != DatumGetPointer(*state))
	{
		if (!(DatumIsReadWriteExpandedObject(result, false, agg->translen) &&
			  MemoryContextGetParent(DatumGetEOHP(result)->eoh_context) == cxt))
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			result = datumCopy(result, false, agg->translen);
			MemoryContextSwitchTo(old);
		}
		if (!*state_null)
		{
			if (DatumIsReadWriteExpandedObject(*state, false, agg->translen))
				DeleteExpandedObject(*state);
			else
				pfree(DatumGetPointer(*state));
		}
	}
	*state = result;
	*state_null = result_null;
}

/*
 * Advance a group's state by the event in econtext's scan tuple, if it
 * passes the aggregate's filter.
 */
void
kappa_agg_advance(KappaAgg *agg, KappaAggContext *cx, MemoryContext cxt,
				  ExprContext *econtext, Datum *state, bool *state_null)
{
	FunctionCallInfo fcinfo = agg->trans_call;
	Datum		result;

	if (agg->filter)
	{
		bool		isnull;
		Datum		pass = ExecEvalExprSwitchContext(agg->filter, econtext, &isnull);

		if (isnull || !DatumGetBool(pass))
			return;
	}
	for (int i = 0; i < agg->nargs; i++)
	{
		fcinfo->args[i + 1].value = ExecEvalExprSwitchContext(agg->args[i], econtext,
															  &fcinfo->args[i + 1].isnull);
		if (agg->trans_strict && fcinfo->args[i + 1].isnull)
			return;
	}
	if (agg->trans_strict && *state_null)
	{
		/*
		 * nodeAgg's rule: with a null initial value, the first non-null
		 * input becomes the state; a strict function never sees a null
		 * state.
		 */
		if (agg->init_null && agg->nargs > 0)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			*state = datumCopy(fcinfo->args[1].value, agg->transbyval, agg->translen);
			*state_null = false;
			MemoryContextSwitchTo(old);
		}
		return;
	}

	enter_group(cx, agg, cxt);
	fcinfo->args[0].value = *state;
	fcinfo->args[0].isnull = *state_null;
	fcinfo->isnull = false;
	{
		MemoryContext old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);

		result = FunctionCallInvoke(fcinfo);
		MemoryContextSwitchTo(old);
	}
	keep_new_state(agg, cxt, state, state_null, result, fcinfo->isnull);
}

/* Merge another state of the same aggregate into a group's state. */
void
kappa_agg_combine(KappaAgg *agg, KappaAggContext *cx, MemoryContext cxt,
				  Datum *state, bool *state_null, Datum other, bool other_null)
{
	FunctionCallInfo fcinfo = agg->combine_call;
	MemoryContext old;
	Datum		result;

	if (agg->combine_strict)
	{
		if (other_null)
			return;
		if (*state_null)
		{
			old = MemoryContextSwitchTo(cxt);
			*state = datumCopy(other, agg->transbyval, agg->translen);
			*state_null = false;
			MemoryContextSwitchTo(old);
			return;
		}
	}
	enter_group(cx, agg, cxt);
	fcinfo->args[0].value = *state;
	fcinfo->args[0].isnull = *state_null;
	fcinfo->args[1].value = other;
	fcinfo->args[1].isnull = other_null;
	fcinfo->isnull = false;
	old = MemoryContextSwitchTo(cx->temp_econtext.ecxt_per_tuple_memory);
	result = FunctionCallInvoke(fcinfo);
	MemoryContextSwitchTo(old);
	keep_new_state(agg, cxt, state, state_null, result, fcinfo->isnull);
	MemoryContextReset(cx->temp_econtext.ecxt_per_tuple_memory);
}

/*
 * The aggregate's result for a group's state, allocated in the current
 * memory context; the state is left as it was, so the group goes on.
 */
Datum
kappa_agg_final(KappaAgg *agg, KappaAggContext *cx, MemoryContext cxt,
				Datum state, bool state_null, bool *isnull)
{
	FunctionCallInfo fcinfo = agg->final_call;
	Datum		result;

	if (!agg->has_final)
	{
		*isnull = state_null;
		return state_null ? (Datum) 0 : datumCopy(state, agg->transbyval, agg->translen);
	}
	if (agg->final_strict && state_null)
	{
		*isnull = true;
		return (Datum) 0;
	}
	enter_group(cx, agg, cxt);
	cx->aggstate->curperagg = NULL;
	fcinfo->args[0].value = state;
	fcinfo->args[0].isnull = state_null;
	for (int i = 1; i < agg->final_nargs; i++)
	{
		fcinfo->args[i].value = (Datum) 0;
		fcinfo->args[i].isnull = true;
	}
	fcinfo->isnull = false;
	result = FunctionCallInvoke(fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

/*
 * Append a datum to buf in the form a heap tuple stores it (Postgres's
 * on-disk format, so as stable as a table's contents): by-value and
 * fixed-length types as their bytes, varlena types flattened (detoasted,
 * expanded objects flattened, with a 4-byte header, which says the length),
 * cstrings with their terminator.  Much cheaper than the type's send
 * function, which builds a StringInfo per call.
 */
void
kappa_datum_append(StringInfo buf, Datum value, int16 typlen, bool typbyval)
{
	if (typbyval)
	{
		char		c = DatumGetChar(value);
		int16		i16 = DatumGetInt16(value);
		int32		i32 = DatumGetInt32(value);

		switch (typlen)
		{
			case sizeof(char):
				appendBinaryStringInfo(buf, &c, sizeof(c));
				break;
			case sizeof(int16):
				appendBinaryStringInfo(buf, (char *) &i16, sizeof(i16));
				break;
			case sizeof(int32):
				appendBinaryStringInfo(buf, (char *) &i32, sizeof(i32));
				break;
			case sizeof(Datum):
				appendBinaryStringInfo(buf, (char *) &value, sizeof(value));
				break;
			default:
				elog(ERROR, "unsupported by-value type length %d", typlen);
		}
	}
	else if (typlen > 0)
		appendBinaryStringInfo(buf, DatumGetPointer(value), typlen);
	else if (typlen == -1)
	{
		struct varlena *v = pg_detoast_datum((struct varlena *) DatumGetPointer(value));

		appendBinaryStringInfo(buf, (char *) v, VARSIZE(v));
		if ((Pointer) v != DatumGetPointer(value))
			pfree(v);
	}
	else
		appendBinaryStringInfo(buf, DatumGetCString(value), strlen(DatumGetCString(value)) + 1);
}

/*
 * Read back a datum written by kappa_datum_append at *p, advancing *p past
 * it; anything by reference is copied (aligned) into the current memory
 * context.
 */
Datum
kappa_datum_read(const char **p, int16 typlen, bool typbyval)
{
	char	   *copy;
	Size		len;

	if (typbyval)
	{
		const char *at = *p;

		*p += typlen;
		switch (typlen)
		{
			case sizeof(char):
				return CharGetDatum(*at);
			case sizeof(int16):
				{
					int16		v;

					memcpy(&v, at, sizeof(v));
					return Int16GetDatum(v);
				}
			case sizeof(int32):
				{
					int32		v;

					memcpy(&v, at, sizeof(v));
					return Int32GetDatum(v);
				}
			case sizeof(Datum):
				{
					Datum		v;

					memcpy(&v, at, sizeof(v));
					return v;
				}
			default:
				elog(ERROR, "unsupported by-value type length %d", typlen);
		}
	}
	if (typlen > 0)
		len = typlen;
	else if (typlen == -1)
	{
		uint32		header;

		memcpy(&header, *p, sizeof(header));
		len = VARSIZE(&header);
	}
	else
		len = strlen(*p) + 1;
	copy = palloc(len);
	memcpy(copy, *p, len);
	*p += len;
	return PointerGetDatum(copy);
}

/*
 * A state as bytes, to store between flushes: the serialization function
 * for internal states, the state's stored form otherwise (see
 * kappa_datum_append); NULL for null.
 */
bytea *
kappa_agg_serialize(KappaAgg *agg, KappaAggContext *cx, MemoryContext cxt,
					Datum state, bool state_null)
{
	StringInfoData buf;

	if (state_null)
		return NULL;
	if (agg->internal)
	{
		enter_group(cx, agg, cxt);
		agg->serial_call->args[0].value = state;
		agg->serial_call->args[0].isnull = false;
		agg->serial_call->isnull = false;
		return DatumGetByteaPP(FunctionCallInvoke(agg->serial_call));
	}

	/*
	 * Sized for the state, not initStringInfo's kilobyte: a flush
	 * serializes every open group's states, and a kilobyte each made the
	 * flush's memory, and its page faults, the larger part of its cost.
	 */
	buf.maxlen = VARHDRSZ + (agg->translen > 0 ? (Size) agg->translen :
							 agg->translen == -1 ? VARSIZE_ANY(DatumGetPointer(state)) :
							 strlen(DatumGetCString(state)) + 1) + 1;
	buf.data = palloc(buf.maxlen);
	buf.len = 0;
	buf.data[0] = '\0';
	buf.cursor = 0;
	appendStringInfoSpaces(&buf, VARHDRSZ);
	kappa_datum_append(&buf, state, agg->translen, agg->transbyval);
	SET_VARSIZE(buf.data, buf.len);
	return (bytea *) buf.data;
}

/* A state read back from bytes, into the group's memory. */
void
kappa_agg_deserialize(KappaAgg *agg, KappaAggContext *cx, MemoryContext cxt,
					  bytea *data, Datum *state, bool *state_null)
{
	MemoryContext old;
	const char *p;

	*state_null = (data == NULL);
	if (data == NULL)
		return;
	if (agg->internal)
	{
		enter_group(cx, agg, cxt);
		agg->deserial_call->args[0].value = PointerGetDatum(data);
		agg->deserial_call->args[0].isnull = false;
		agg->deserial_call->args[1].value = (Datum) 0;
		agg->deserial_call->args[1].isnull = false;
		agg->deserial_call->isnull = false;
		old = MemoryContextSwitchTo(cxt);
		*state = FunctionCallInvoke(agg->deserial_call);
		MemoryContextSwitchTo(old);
		return;
	}
	p = VARDATA_ANY(data);
	old = MemoryContextSwitchTo(cxt);
	*state = kappa_datum_read(&p, agg->translen, agg->transbyval);
	MemoryContextSwitchTo(old);
}
