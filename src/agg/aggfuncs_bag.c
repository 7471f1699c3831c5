/*-------------------------------------------------------------------------
 *
 * aggfuncs_bag.c
 *	  Aggregates over every value of a group and one constant parameter:
 *	  kappa_string_agg(value, delimiter), kappa_string_agg_distinct(value,
 *	  delimiter), kappa_percentile_cont(value, fraction) and
 *	  kappa_percentile_disc(value, fraction), as combinable aggregates.
 *
 * Postgres's string_agg concatenates in input order and its percentiles
 * are ordered-set aggregates; neither can be combined.  Here the state is
 * the bag (multiset) of non-null values with the parameter, and the final
 * function sorts a copy of the values by their type's default btree order
 * (ties by binary image, see aggfuncs.c), so each result depends on the
 * multiset alone:
 *
 *	kappa_string_agg(x, d)			string_agg(x, d ORDER BY x)
 *	kappa_string_agg_distinct(x, d) string_agg(DISTINCT x, d ORDER BY x)
 *	kappa_percentile_cont(x, f)		percentile_cont(f) WITHIN GROUP (ORDER BY x)
 *	kappa_percentile_disc(x, f)		percentile_disc(f) WITHIN GROUP (ORDER BY x)
 *
 * and the percentiles with an array of fractions (float8[]), giving an
 * array of the same shape, as Postgres's percentile_cont(float8[]) and
 * percentile_disc(float8[]).
 *
 * The parameter must be the same in every row of a group (a view's is a
 * constant; compile.c checks): a state takes it from its first row, and a
 * row or state with another one is an error, as the results would
 * otherwise depend on which row came first.  A state for
 * kappa_string_agg_distinct drops duplicates whenever its array of values
 * fills up, so it holds at most about twice the distinct values.
 *
 * Memory grows with the group: every (distinct) value is kept.  Memory
 * rules are those of aggfuncs.c.
 *
 * src/agg/aggfuncs_bag.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "agg/aggfuncs_internal.h"

/* The kinds whose state is a bag. */
#define KD_BAG_KINDS	((const char[]) {KD_STRING_AGG, KD_STRING_AGG_DISTINCT, \
								 KD_PERCENTILE_CONT, KD_PERCENTILE_DISC, \
								 KD_PERCENTILE_CONT_MULTI, KD_PERCENTILE_DISC_MULTI, 0})

/* Whether a kind's parameter is a fraction (float8) rather than a delimiter. */
#define KD_BAG_FRACTION(kind)	((kind) == KD_PERCENTILE_CONT || (kind) == KD_PERCENTILE_DISC)

/* Whether a kind's parameter is an array of fractions (float8[]). */
#define KD_BAG_FRACTIONS(kind)	((kind) == KD_PERCENTILE_CONT_MULTI || (kind) == KD_PERCENTILE_DISC_MULTI)

/* The state: the non-null values of a group, and the parameter. */
typedef struct KappaBag
{
	char		kind;			/* one of KD_BAG_KINDS */
	KappaValueType		t;
	MemoryContext mcxt;
	bool		param_null;		/* the delimiter or fraction is null */
	Datum		param;			/* the delimiter (of the values' type), or the
								 * fractions (a float8[], detoasted) */
	float8		fraction;		/* the fraction */
	Datum	   *values;
	int64		nvalues;
	int64		maxvalues;
	int64		ndistinct;		/* KD_STRING_AGG_DISTINCT: values[0..ndistinct)
								 * are sorted and distinct */
} KappaBag;

PG_FUNCTION_INFO_V1(kappa_string_agg_trans);
PG_FUNCTION_INFO_V1(kappa_string_agg_distinct_trans);
PG_FUNCTION_INFO_V1(kappa_percentile_cont_trans);
PG_FUNCTION_INFO_V1(kappa_percentile_disc_trans);
PG_FUNCTION_INFO_V1(kappa_bag_combine);
PG_FUNCTION_INFO_V1(kappa_bag_serialize);
PG_FUNCTION_INFO_V1(kappa_bag_deserialize);
PG_FUNCTION_INFO_V1(kappa_string_agg_final);
PG_FUNCTION_INFO_V1(kappa_percentile_cont_final);
PG_FUNCTION_INFO_V1(kappa_percentile_disc_final);
PG_FUNCTION_INFO_V1(kappa_percentile_cont_multi_trans);
PG_FUNCTION_INFO_V1(kappa_percentile_disc_multi_trans);
PG_FUNCTION_INFO_V1(kappa_percentile_cont_multi_final);
PG_FUNCTION_INFO_V1(kappa_percentile_disc_multi_final);

/* An empty bag of values of a type, in mcxt, with its parameter. */
static KappaBag *
kappa_value_bag_create(char kind, Oid type, Oid collation, MemoryContext mcxt,
			  Datum param, bool param_null)
{
	KappaValueType		t;
	KappaBag	   *bag;

	kappa_value_type_init(&t, kind, type, collation);
	bag = MemoryContextAllocZero(mcxt, sizeof(KappaBag));
	bag->kind = kind;
	bag->t = t;
	bag->mcxt = mcxt;
	bag->param_null = param_null;
	if (param_null)
		return bag;
	if (KD_BAG_FRACTION(kind))
		bag->fraction = DatumGetFloat8(param);
	else if (KD_BAG_FRACTIONS(kind))
	{
		MemoryContext old = MemoryContextSwitchTo(mcxt);

		bag->param = PointerGetDatum(PG_DETOAST_DATUM_COPY(param));
		MemoryContextSwitchTo(old);
	}
	else
		bag->param = kappa_value_copy_value(&bag->t, mcxt, param);
	return bag;
}

/* A bag's delimiter or fraction, as a Datum (undefined if null). */
static Datum
kappa_value_bag_param(KappaBag *bag)
{
	if (KD_BAG_FRACTION(bag->kind))
		return Float8GetDatum(bag->fraction);
	return bag->param;
}

/* Check a fraction as Postgres's percentile functions do (22003). */
static void
kappa_value_check_fraction(float8 fraction)
{
	if (fraction < 0 || fraction > 1 || isnan(fraction))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("percentile value %g is not between 0 and 1", fraction)));
}

/* Check every non-null fraction of an array. */
static void
kappa_value_check_fractions(Datum fractions)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(fractions), FLOAT8OID, sizeof(float8),
					  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			kappa_value_check_fraction(DatumGetFloat8(elems[i]));
}

/* Whether a parameter is the bag's: the same null or the same image. */
static bool
kappa_value_bag_same_param(KappaBag *bag, Datum param, bool param_null)
{
	if (bag->param_null || param_null)
		return bag->param_null == param_null;
	if (KD_BAG_FRACTION(bag->kind))
		return bag->fraction == DatumGetFloat8(param);
	if (KD_BAG_FRACTIONS(bag->kind))
		return datum_image_eq(bag->param, param, false, -1);
	return kappa_value_image_cmp(&bag->t, bag->param, param) == 0;
}

/* Fail on a row or state whose parameter is not the bag's. */
static void
kappa_value_bag_check_param(KappaBag *bag, Datum param, bool param_null)
{
	if (!kappa_value_bag_same_param(bag, param, param_null))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s needs the same %s in every row of a group",
						kappa_value_kind_name(bag->kind),
						KD_BAG_FRACTION(bag->kind) ? "fraction" :
						KD_BAG_FRACTIONS(bag->kind) ? "fractions" : "delimiter"),
				 errhint("Write it as a constant.")));
}

/*
 * Drop duplicates of a kappa_string_agg_distinct bag: sort, and keep the
 * first of each run of equal values (the smallest image).
 */
static void
kappa_value_bag_compact(KappaBag *bag)
{
	int64		kept = 0;

	if (bag->nvalues > (int64) INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s cannot sort more than %d values", kappa_value_kind_name(bag->kind), INT_MAX)));
	kappa_value_sort_values(&bag->t, bag->values, (int) bag->nvalues);
	for (int64 i = 0; i < bag->nvalues; i++)
	{
		if (kept > 0 && kappa_value_compare_values(&bag->t, bag->values[kept - 1], bag->values[i]) == 0)
			kappa_value_free_value(&bag->t, bag->values[i]);
		else
			bag->values[kept++] = bag->values[i];
	}
	bag->nvalues = kept;
	bag->ndistinct = kept;
}

/* Add a non-null value (copied) to a bag. */
static void
kappa_value_bag_add(KappaBag *bag, Datum value)
{
	if (bag->nvalues == bag->maxvalues)
	{
		/* a distinct bag first drops its duplicates, and grows if still half full */
		if (bag->kind == KD_STRING_AGG_DISTINCT && bag->nvalues > bag->ndistinct)
			kappa_value_bag_compact(bag);
		if (bag->nvalues >= bag->maxvalues / 2)
		{
			int64		newmax = bag->maxvalues ? bag->maxvalues * 2 : 8;

			if ((Size) newmax > MaxAllocHugeSize / sizeof(Datum))
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("%s cannot keep more than %lld values",
								kappa_value_kind_name(bag->kind), (long long) bag->maxvalues)));
			if (bag->values == NULL)
				bag->values = MemoryContextAllocHuge(bag->mcxt, sizeof(Datum) * newmax);
			else
				bag->values = repalloc_huge(bag->values, sizeof(Datum) * newmax);
			bag->maxvalues = newmax;
		}
	}
	bag->values[bag->nvalues++] = kappa_value_copy_value(&bag->t, bag->mcxt, value);
}

/*
 * Transition of every bag aggregate: the value (argument 1) is added
 * unless it or the parameter (argument 2) is null; the first row's
 * parameter is the state's.
 */
static Datum
kappa_value_bag_trans(FunctionCallInfo fcinfo, char kind)
{
	MemoryContext aggcxt;
	KappaBag	   *bag;
	bool		param_null = PG_ARGISNULL(2);
	Datum		param = param_null ? (Datum) 0 : PG_GETARG_DATUM(2);

	kappa_value_check_context(fcinfo, &aggcxt, kind);
	if (PG_ARGISNULL(0))
	{
		Oid			type = kappa_value_arg_type(fcinfo, kind);

		/* checked once: later rows must have the same */
		if (KD_BAG_FRACTION(kind) && !param_null)
			kappa_value_check_fraction(DatumGetFloat8(param));
		if (KD_BAG_FRACTIONS(kind) && !param_null)
			kappa_value_check_fractions(param);
		bag = kappa_value_bag_create(kind, type, kappa_value_arg_collation(fcinfo, type), aggcxt,
							param, param_null);
	}
	else
	{
		bag = (KappaBag *) PG_GETARG_POINTER(0);
		kappa_value_bag_check_param(bag, param, param_null);
	}
	/* null fractions make the result null: no need to keep values */
	if (!PG_ARGISNULL(1) && !((KD_BAG_FRACTION(kind) || KD_BAG_FRACTIONS(kind)) && param_null))
		kappa_value_bag_add(bag, PG_GETARG_DATUM(1));
	PG_RETURN_POINTER(bag);
}

/* kappa_string_agg's transition function. */
Datum
kappa_string_agg_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_bag_trans(fcinfo, KD_STRING_AGG);
}

/* kappa_string_agg_distinct's transition function. */
Datum
kappa_string_agg_distinct_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_bag_trans(fcinfo, KD_STRING_AGG_DISTINCT);
}

/* kappa_percentile_cont's transition function. */
Datum
kappa_percentile_cont_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_bag_trans(fcinfo, KD_PERCENTILE_CONT);
}

/* kappa_percentile_disc's transition function. */
Datum
kappa_percentile_disc_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_bag_trans(fcinfo, KD_PERCENTILE_DISC);
}

/* kappa_percentile_cont's transition function, with an array of fractions. */
Datum
kappa_percentile_cont_multi_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_bag_trans(fcinfo, KD_PERCENTILE_CONT_MULTI);
}

/* kappa_percentile_disc's transition function, with an array of fractions. */
Datum
kappa_percentile_disc_multi_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_bag_trans(fcinfo, KD_PERCENTILE_DISC_MULTI);
}

/* Combine function of every bag aggregate: both bags' values. */
Datum
kappa_bag_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	KappaBag	   *state = PG_ARGISNULL(0) ? NULL : (KappaBag *) PG_GETARG_POINTER(0);
	KappaBag	   *other = PG_ARGISNULL(1) ? NULL : (KappaBag *) PG_GETARG_POINTER(1);

	kappa_value_check_context(fcinfo, &aggcxt, state ? state->kind : other ? other->kind : 0);
	if (other == NULL)
	{
		if (state == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state);
	}
	if (state == NULL)
		state = kappa_value_bag_create(other->kind, other->t.type, other->t.collation, aggcxt,
							  kappa_value_bag_param(other), other->param_null);
	else
	{
		kappa_value_check_same(state->kind, &state->t, other->kind, &other->t);
		kappa_value_bag_check_param(state, kappa_value_bag_param(other), other->param_null);
	}
	for (int64 i = 0; i < other->nvalues; i++)
		kappa_value_bag_add(state, other->values[i]);
	PG_RETURN_POINTER(state);
}

/*
 * An array of fractions in a serialized state: its dimensions and lower
 * bounds, then each element as a null flag and a float8.
 */
static void
kappa_value_send_fractions(StringInfo buf, Datum fractions)
{
	ArrayType  *array = DatumGetArrayTypeP(fractions);
	int			ndim = ARR_NDIM(array);
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(array, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &n);
	pq_sendint32(buf, ndim);
	for (int i = 0; i < ndim; i++)
	{
		pq_sendint32(buf, ARR_DIMS(array)[i]);
		pq_sendint32(buf, ARR_LBOUND(array)[i]);
	}
	for (int i = 0; i < n; i++)
	{
		pq_sendbyte(buf, nulls[i] ? 1 : 0);
		pq_sendfloat8(buf, nulls[i] ? 0 : DatumGetFloat8(elems[i]));
	}
}

/* Read an array of fractions written by kappa_value_send_fractions. */
static Datum
kappa_value_recv_fractions(StringInfo buf)
{
	int			ndim = pq_getmsgint(buf, 4);
	int			dims[MAXDIM];
	int			lbs[MAXDIM];
	int			n;
	Datum	   *elems;
	bool	   *nulls;

	if (ndim < 0 || ndim > MAXDIM)
		kappa_value_corrupt("bad number of dimensions");
	for (int i = 0; i < ndim; i++)
	{
		dims[i] = pq_getmsgint(buf, 4);
		lbs[i] = pq_getmsgint(buf, 4);
	}
	n = ArrayGetNItems(ndim, dims);
	if (n < 0 || (Size) n * 9 > (Size) (buf->len - buf->cursor))
		kappa_value_corrupt("bad dimensions");
	elems = palloc(sizeof(Datum) * Max(n, 1));
	nulls = palloc(sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		nulls[i] = pq_getmsgbyte(buf) != 0;
		elems[i] = Float8GetDatum(pq_getmsgfloat8(buf));
	}
	return PointerGetDatum(construct_md_array(elems, nulls, ndim, dims, lbs, FLOAT8OID,
											  sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * Serialize function of every bag aggregate: header, the parameter (a
 * null flag, then the fraction, the fractions or the delimiter in the
 * values' send format), the count, the values.
 */
Datum
kappa_bag_serialize(PG_FUNCTION_ARGS)
{
	KappaBag   *bag = (KappaBag *) PG_GETARG_POINTER(0);
	KappaStateWriter w;

	kappa_state_write_begin(&w, fcinfo, bag->kind, &bag->t);
	pq_sendbyte(&w.buf, bag->param_null ? 1 : 0);
	if (!bag->param_null)
	{
		if (KD_BAG_FRACTION(bag->kind))
			pq_sendfloat8(&w.buf, bag->fraction);
		else if (KD_BAG_FRACTIONS(bag->kind))
			kappa_value_send_fractions(&w.buf, bag->param);
		else
			kappa_state_write_value(&w, bag->param);
	}
	kappa_state_write_count(&w, bag->nvalues);
	for (int64 i = 0; i < bag->nvalues; i++)
		kappa_state_write_value(&w, bag->values[i]);
	PG_RETURN_BYTEA_P(kappa_state_write_end(&w));
}

/* Add a value just deserialized to a bag (a KappaStateAddValue). */
static void
kappa_value_bag_add_received(void *state, Datum value)
{
	kappa_value_bag_add((KappaBag *) state, value);
}

/* Deserialize function of every bag aggregate. */
Datum
kappa_bag_deserialize(PG_FUNCTION_ARGS)
{
	KappaStateReader r;
	KappaBag   *bag;
	bool		param_null;
	Datum		param = (Datum) 0;
	int64		n;

	kappa_state_read_begin(&r, fcinfo, KD_BAG_KINDS);
	kappa_state_read_expect_values(&r);
	param_null = pq_getmsgbyte(&r.buf) != 0;
	if (!param_null)
	{
		if (KD_BAG_FRACTION(r.kind))
		{
			param = Float8GetDatum(pq_getmsgfloat8(&r.buf));
			kappa_value_check_fraction(DatumGetFloat8(param));
		}
		else if (KD_BAG_FRACTIONS(r.kind))
		{
			MemoryContext old = MemoryContextSwitchTo(r.scratch);

			param = kappa_value_recv_fractions(&r.buf);
			MemoryContextSwitchTo(old);
			kappa_value_check_fractions(param);
		}
		else
			param = kappa_state_read_value(&r);
	}
	bag = kappa_value_bag_create(r.kind, r.type, r.collation, CurrentMemoryContext,
								 param, param_null);
	n = kappa_state_read_count(&r);
	kappa_state_read_values(&r, n, kappa_value_bag_add_received, bag);
	kappa_state_read_end(&r);
	PG_RETURN_POINTER(bag);
}

/*
 * A bag's values in a new array, sorted (for kappa_string_agg_distinct,
 * without duplicates); *n their number.  The bag is left as it was.
 */
static Datum *
kappa_value_bag_sorted(KappaBag *bag, int64 *n)
{
	Datum	   *values;
	int64		kept = 0;

	if (bag->nvalues > (int64) INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s cannot sort more than %d values", kappa_value_kind_name(bag->kind), INT_MAX)));
	values = palloc_extended(sizeof(Datum) * Max(bag->nvalues, 1), MCXT_ALLOC_HUGE);
	if (bag->nvalues > 0)
		memcpy(values, bag->values, sizeof(Datum) * bag->nvalues);
	kappa_value_sort_values(&bag->t, values, (int) bag->nvalues);
	if (bag->kind != KD_STRING_AGG_DISTINCT)
	{
		*n = bag->nvalues;
		return values;
	}
	for (int64 i = 0; i < bag->nvalues; i++)
		if (kept == 0 || kappa_value_compare_values(&bag->t, values[kept - 1], values[i]) != 0)
			values[kept++] = values[i];
	*n = kept;
	return values;
}

/* Fetch a bag state in a final function, checking its kind. */
static KappaBag *
kappa_value_bag_final_state(FunctionCallInfo fcinfo, const char *kinds)
{
	MemoryContext aggcxt;
	KappaBag	   *bag = PG_ARGISNULL(0) ? NULL : (KappaBag *) PG_GETARG_POINTER(0);

	kappa_value_check_context(fcinfo, &aggcxt, kinds[0]);
	if (bag != NULL && strchr(kinds, bag->kind) == NULL)
		elog(ERROR, "final function of %s called with a state of %s",
			 kappa_value_kind_name(kinds[0]), kappa_value_kind_name(bag->kind));
	return bag;
}

/*
 * Final function of kappa_string_agg and kappa_string_agg_distinct: the
 * sorted values joined by the delimiter (none if it is null), text or
 * bytea as the values; NULL if there is no non-null value.
 */
Datum
kappa_string_agg_final(PG_FUNCTION_ARGS)
{
	KappaBag	   *bag = kappa_value_bag_final_state(fcinfo,
										 (char[]) {KD_STRING_AGG, KD_STRING_AGG_DISTINCT, 0});
	StringInfoData buf;
	Datum	   *values;
	int64		n;
	struct varlena *delimiter = NULL;

	if (bag == NULL || bag->nvalues == 0)
		PG_RETURN_NULL();
	values = kappa_value_bag_sorted(bag, &n);
	if (!bag->param_null)
		delimiter = PG_DETOAST_DATUM_PACKED(bag->param);
	initStringInfo(&buf);
	for (int64 i = 0; i < n; i++)
	{
		struct varlena *v = PG_DETOAST_DATUM_PACKED(values[i]);

		if (i > 0 && delimiter != NULL)
			appendBinaryStringInfo(&buf, VARDATA_ANY(delimiter), VARSIZE_ANY_EXHDR(delimiter));
		appendBinaryStringInfo(&buf, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
	}
	/* text and bytea are both a varlena of bytes */
	PG_RETURN_DATUM(PointerGetDatum(cstring_to_text_with_len(buf.data, buf.len)));
}

/*
 * The continuous percentile of n > 0 sorted values, as Postgres's
 * percentile_cont_final_common: the value at position fraction * (n - 1),
 * interpolated between its neighbours as float8_lerp and interval_lerp do.
 */
static Datum
kappa_value_percentile_cont(KappaValueType *t, Datum *values, int64 n, float8 fraction)
{
	int64		first_row = (int64) floor(fraction * (n - 1));
	int64		second_row = (int64) ceil(fraction * (n - 1));
	float8		proportion;
	Datum		lo = values[first_row];
	Datum		hi;

	if (second_row == first_row)
		return datumCopy(lo, t->typbyval, t->typlen);
	hi = values[second_row];
	proportion = (fraction * (n - 1)) - first_row;
	switch (t->type)
	{
		case FLOAT8OID:
			return Float8GetDatum(DatumGetFloat8(lo) + (proportion * (DatumGetFloat8(hi) - DatumGetFloat8(lo))));
		case INTERVALOID:
			{
				Datum		diff = DirectFunctionCall2(interval_mi, hi, lo);
				Datum		scaled = DirectFunctionCall2(interval_mul, diff,
														 Float8GetDatum(proportion));

				return DirectFunctionCall2(interval_pl, scaled, lo);
			}
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("kappa_percentile_cont cannot be used with type %s",
					format_type_be(t->type))));
	return (Datum) 0;			/* keep compiler quiet */
}

/*
 * The discrete percentile of n > 0 sorted values, as Postgres's
 * percentile_disc_final: the first value whose position (from 1) is at
 * least fraction * n.
 */
static Datum
kappa_value_percentile_disc(KappaValueType *t, Datum *values, int64 n, float8 fraction)
{
	int64		rownum = (int64) ceil(fraction * n);

	return datumCopy(values[rownum > 1 ? rownum - 1 : 0], t->typbyval, t->typlen);
}

/*
 * Final function of kappa_percentile_cont and kappa_percentile_disc with
 * one fraction; NULL if there is no value or the fraction is null.
 */
static Datum
kappa_value_percentile_final(FunctionCallInfo fcinfo, char kind)
{
	KappaBag	   *bag = kappa_value_bag_final_state(fcinfo, (char[]) {kind, 0});
	Datum	   *values;
	int64		n;

	if (bag == NULL || bag->param_null || bag->nvalues == 0)
		PG_RETURN_NULL();
	values = kappa_value_bag_sorted(bag, &n);
	if (kind == KD_PERCENTILE_CONT)
		return kappa_value_percentile_cont(&bag->t, values, n, bag->fraction);
	return kappa_value_percentile_disc(&bag->t, values, n, bag->fraction);
}

/* kappa_percentile_cont's final function. */
Datum
kappa_percentile_cont_final(PG_FUNCTION_ARGS)
{
	return kappa_value_percentile_final(fcinfo, KD_PERCENTILE_CONT);
}

/* kappa_percentile_disc's final function. */
Datum
kappa_percentile_disc_final(PG_FUNCTION_ARGS)
{
	return kappa_value_percentile_final(fcinfo, KD_PERCENTILE_DISC);
}

/*
 * Final function of both percentiles with an array of fractions: an array
 * of the same shape with the percentile of each fraction, null where the
 * fraction is, as Postgres's percentile_cont_multi_final and
 * percentile_disc_multi_final; NULL if there is no value or the array is
 * null.
 */
static Datum
kappa_value_percentiles_final(FunctionCallInfo fcinfo, char kind)
{
	KappaBag	   *bag = kappa_value_bag_final_state(fcinfo, (char[]) {kind, 0});
	ArrayType  *fractions;
	Datum	   *elems;
	bool	   *nulls;
	int			nfractions;
	Datum	   *values;
	Datum	   *results;
	int64		n;

	if (bag == NULL || bag->param_null || bag->nvalues == 0)
		PG_RETURN_NULL();
	fractions = DatumGetArrayTypeP(bag->param);
	deconstruct_array(fractions, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, &nfractions);
	if (nfractions == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(bag->t.type));
	values = kappa_value_bag_sorted(bag, &n);
	results = palloc(sizeof(Datum) * nfractions);
	for (int i = 0; i < nfractions; i++)
	{
		results[i] = (Datum) 0;
		if (nulls[i])
			continue;
		if (kind == KD_PERCENTILE_CONT_MULTI)
			results[i] = kappa_value_percentile_cont(&bag->t, values, n, DatumGetFloat8(elems[i]));
		else
			results[i] = kappa_value_percentile_disc(&bag->t, values, n, DatumGetFloat8(elems[i]));
	}
	PG_RETURN_ARRAYTYPE_P(construct_md_array(results, nulls, ARR_NDIM(fractions),
											 ARR_DIMS(fractions), ARR_LBOUND(fractions),
											 bag->t.type, bag->t.typlen, bag->t.typbyval,
											 bag->t.typalign));
}

/* kappa_percentile_cont's final function, with an array of fractions. */
Datum
kappa_percentile_cont_multi_final(PG_FUNCTION_ARGS)
{
	return kappa_value_percentiles_final(fcinfo, KD_PERCENTILE_CONT_MULTI);
}

/* kappa_percentile_disc's final function, with an array of fractions. */
Datum
kappa_percentile_disc_multi_final(PG_FUNCTION_ARGS)
{
	return kappa_value_percentiles_final(fcinfo, KD_PERCENTILE_DISC_MULTI);
}
