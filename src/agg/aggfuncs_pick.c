/*-------------------------------------------------------------------------
 *
 * aggfuncs_pick.c
 *	  kappa_first(value, time) and kappa_last(value, time): the value with
 *	  the earliest (latest) time, as combinable aggregates.
 *
 * Ties in time go to the smaller value in the type's default btree order,
 * nulls last, so the result never depends on the order of the inputs or
 * on how they were split into partial states (see aggfuncs.c).
 *
 * src/agg/aggfuncs_pick.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/nbtree.h"
#include "access/tupmacs.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "nodes/pg_list.h"
#include "nodes/primnodes.h"
#include "port/pg_bitutils.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/sortsupport.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "agg/aggfuncs_internal.h"

/* State of kappa_first and kappa_last: the best candidate so far. */
typedef struct KappaPick
{
	char		kind;			/* KD_FIRST or KD_LAST */
	KappaValueType		t;
	MemoryContext mcxt;
	bool		has;			/* a candidate (with a non-null ts) was seen */
	TimestampTz ts;
	bool		isnull;
	Datum		value;
} KappaPick;

PG_FUNCTION_INFO_V1(kappa_first_trans);
PG_FUNCTION_INFO_V1(kappa_last_trans);
PG_FUNCTION_INFO_V1(kappa_pick_combine);
PG_FUNCTION_INFO_V1(kappa_pick_serialize);
PG_FUNCTION_INFO_V1(kappa_pick_deserialize);
PG_FUNCTION_INFO_V1(kappa_pick_final);

/* ------------------------------------------------------------------------
 * kappa_first and kappa_last
 * ------------------------------------------------------------------------
 */

/* A state without a candidate, in mcxt. */
static KappaPick *
kappa_value_pick_create(char kind, Oid type, Oid collation, MemoryContext mcxt)
{
	KappaValueType		t;
	KappaPick	   *pick;

	kappa_value_type_init(&t, kind, type, collation);
	pick = MemoryContextAllocZero(mcxt, sizeof(KappaPick));
	pick->kind = kind;
	pick->t = t;
	pick->mcxt = mcxt;
	return pick;
}

/*
 * Whether value a comes strictly before value b in the tie-break order:
 * the type's default btree order with nulls last, then binary image.
 */
static bool
kappa_value_value_before(KappaValueType *t, Datum a, bool anull, Datum b, bool bnull)
{
	int			c;

	if (anull)
		return false;
	if (bnull)
		return true;
	c = kappa_value_compare_values(t, a, b);
	if (c != 0)
		return c < 0;
	return kappa_value_image_cmp(t, a, b) < 0;
}

/*
 * Offer a candidate: it replaces the state's if its ts is smaller
 * (kappa_first) or larger (kappa_last), or equal with a value that comes
 * before in the tie-break order.
 */
static void
kappa_value_pick_offer(KappaPick *pick, TimestampTz ts, Datum value, bool isnull)
{
	Datum		copy = (Datum) 0;

	if (pick->has)
	{
		if (ts != pick->ts)
		{
			if (pick->kind == KD_FIRST ? ts > pick->ts : ts < pick->ts)
				return;
		}
		else if (!kappa_value_value_before(&pick->t, value, isnull, pick->value, pick->isnull))
			return;
	}
	if (!isnull)
		copy = kappa_value_copy_value(&pick->t, pick->mcxt, value);
	if (pick->has && !pick->isnull)
		kappa_value_free_value(&pick->t, pick->value);
	pick->has = true;
	pick->ts = ts;
	pick->isnull = isnull;
	pick->value = copy;
}

/* Transition of kappa_first and kappa_last: offer (value, ts) unless ts is null. */
static Datum
kappa_value_pick_trans(FunctionCallInfo fcinfo, char kind)
{
	MemoryContext aggcxt;
	KappaPick	   *pick;

	kappa_value_check_context(fcinfo, &aggcxt, kind);
	if (PG_ARGISNULL(0))
	{
		Oid			type = kappa_value_arg_type(fcinfo, kind);

		pick = kappa_value_pick_create(kind, type, kappa_value_arg_collation(fcinfo, type), aggcxt);
	}
	else
		pick = (KappaPick *) PG_GETARG_POINTER(0);
	if (!PG_ARGISNULL(2))
		kappa_value_pick_offer(pick, PG_GETARG_TIMESTAMPTZ(2),
					  PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1), PG_ARGISNULL(1));
	PG_RETURN_POINTER(pick);
}

/* kappa_first's transition function. */
Datum
kappa_first_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_pick_trans(fcinfo, KD_FIRST);
}

/* kappa_last's transition function. */
Datum
kappa_last_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_pick_trans(fcinfo, KD_LAST);
}

/* Combine function of kappa_first and kappa_last: the better candidate. */
Datum
kappa_pick_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	KappaPick	   *state = PG_ARGISNULL(0) ? NULL : (KappaPick *) PG_GETARG_POINTER(0);
	KappaPick	   *other = PG_ARGISNULL(1) ? NULL : (KappaPick *) PG_GETARG_POINTER(1);

	kappa_value_check_context(fcinfo, &aggcxt, state ? state->kind : other ? other->kind : 0);
	if (other == NULL)
	{
		if (state == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state);
	}
	if (state == NULL)
		state = kappa_value_pick_create(other->kind, other->t.type, other->t.collation, aggcxt);
	else
		kappa_value_check_same(state->kind, &state->t, other->kind, &other->t);
	if (other->has)
		kappa_value_pick_offer(state, other->ts, other->value, other->isnull);
	PG_RETURN_POINTER(state);
}

/* Serialize function of kappa_first and kappa_last: header, candidate. */
Datum
kappa_pick_serialize(PG_FUNCTION_ARGS)
{
	KappaPick  *pick = (KappaPick *) PG_GETARG_POINTER(0);
	KappaStateWriter w;

	kappa_state_write_begin(&w, fcinfo, pick->kind, &pick->t);
	pq_sendbyte(&w.buf, pick->has ? 1 : 0);
	if (pick->has)
	{
		pq_sendint64(&w.buf, pick->ts);
		pq_sendbyte(&w.buf, pick->isnull ? 1 : 0);
		if (!pick->isnull)
			kappa_state_write_value(&w, pick->value);
	}
	PG_RETURN_BYTEA_P(kappa_state_write_end(&w));
}

/* A deserialized candidate's time, with the state it is offered to. */
typedef struct KappaPickReceived
{
	KappaPick  *pick;
	TimestampTz ts;
} KappaPickReceived;

/* Offer a candidate value just deserialized (a KappaStateAddValue). */
static void
kappa_value_pick_offer_received(void *arg, Datum value)
{
	KappaPickReceived *received = (KappaPickReceived *) arg;

	kappa_value_pick_offer(received->pick, received->ts, value, false);
}

/* Deserialize function of kappa_first and kappa_last. */
Datum
kappa_pick_deserialize(PG_FUNCTION_ARGS)
{
	KappaStateReader r;
	KappaPick  *pick;

	kappa_state_read_begin(&r, fcinfo, (char[]) {KD_FIRST, KD_LAST, 0});
	pick = kappa_value_pick_create(r.kind, r.type, r.collation, CurrentMemoryContext);
	if (pq_getmsgbyte(&r.buf) != 0)
	{
		TimestampTz ts = pq_getmsgint64(&r.buf);

		if (pq_getmsgbyte(&r.buf) != 0)
			kappa_value_pick_offer(pick, ts, (Datum) 0, true);
		else
		{
			KappaPickReceived received = {pick, ts};

			kappa_state_read_values(&r, 1, kappa_value_pick_offer_received, &received);
		}
	}
	kappa_state_read_end(&r);
	PG_RETURN_POINTER(pick);
}

/* Final function of kappa_first and kappa_last: the candidate's value, or NULL. */
Datum
kappa_pick_final(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	KappaPick	   *pick = PG_ARGISNULL(0) ? NULL : (KappaPick *) PG_GETARG_POINTER(0);

	kappa_value_check_context(fcinfo, &aggcxt, pick ? pick->kind : KD_FIRST);
	if (pick == NULL || !pick->has || pick->isnull)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(datumCopy(pick->value, pick->t.typbyval, pick->t.typlen));
}

