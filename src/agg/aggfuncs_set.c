/*-------------------------------------------------------------------------
 *
 * aggfuncs_set.c
 *	  The aggregates whose state is a set of distinct values:
 *	  kappa_count_distinct(x) and kappa_collect_set(x), and
 *	  kappa_sum_distinct(x) and kappa_avg_distinct(x), as combinable
 *	  aggregates.
 *
 *	kappa_count_distinct(x)		count(DISTINCT x)
 *	kappa_collect_set(x)		array_agg(DISTINCT x ORDER BY x), NULL for none
 *	kappa_sum_distinct(x)		sum(DISTINCT x)
 *	kappa_avg_distinct(x)		avg(DISTINCT x)
 *
 * The four share one state (KappaSet: a simplehash of the non-null values,
 * by the type's default hash opclass or binary image) and its combine,
 * serialize and deserialize functions (kappa.set_combine and friends); the
 * state's kind says which aggregate made it.  Of values the type calls
 * equal, the set keeps the one with the smallest binary image (see
 * aggfuncs.c), so what kappa_collect_set returns and what the sums add
 * never depend on the order of the inputs.
 *
 * Memory grows with the number of distinct values.  Memory rules, rights
 * and transactions are those of aggfuncs.c.
 *
 * src/agg/aggfuncs_set.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/cash.h"
#include "utils/datum.h"
#include "utils/float.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "agg/aggfuncs_internal.h"

/* One value of a distinct set (a simplehash entry). */
typedef struct KappaSetEntry
{
	Datum		value;
	uint32		hash;
	char		status;
} KappaSetEntry;

static inline uint32 kappa_value_hash_value(KappaValueType *t, Datum value);
static inline bool kappa_value_equal_values(KappaValueType *t, Datum a, Datum b);

#define SH_PREFIX kdset
#define SH_ELEMENT_TYPE KappaSetEntry
#define SH_KEY_TYPE Datum
#define SH_KEY value
#define SH_HASH_KEY(tb, key) kappa_value_hash_value((KappaValueType *) (tb)->private_data, key)
#define SH_EQUAL(tb, a, b) kappa_value_equal_values((KappaValueType *) (tb)->private_data, a, b)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/*
 * State of kappa_count_distinct, kappa_collect_set, kappa_sum_distinct and
 * kappa_avg_distinct: a set of values.
 */
typedef struct KappaSet
{
	char		kind;			/* one of KD_SET_KINDS */
	KappaValueType		t;
	MemoryContext mcxt;			/* where the set and its values live */
	kdset_hash *tab;			/* private_data is &t */
} KappaSet;

PG_FUNCTION_INFO_V1(kappa_count_distinct_trans);
PG_FUNCTION_INFO_V1(kappa_count_distinct_final);
PG_FUNCTION_INFO_V1(kappa_collect_set_trans);
PG_FUNCTION_INFO_V1(kappa_collect_set_final);
PG_FUNCTION_INFO_V1(kappa_set_combine);
PG_FUNCTION_INFO_V1(kappa_set_serialize);
PG_FUNCTION_INFO_V1(kappa_set_deserialize);
PG_FUNCTION_INFO_V1(kappa_sum_distinct_trans);
PG_FUNCTION_INFO_V1(kappa_avg_distinct_trans);
PG_FUNCTION_INFO_V1(kappa_sum_distinct_final);
PG_FUNCTION_INFO_V1(kappa_avg_distinct_final);

/* The hash of a value by its type's default hash opclass (or its image). */
static inline uint32
kappa_value_hash_value(KappaValueType *t, Datum value)
{
	if (t->image_hash)
		return (uint32) kappa_value_image_hash(t, value, 0);
	return DatumGetUInt32(FunctionCall1Coll(&t->tce->hash_proc_finfo, t->collation, value));
}

/* Whether two values are equal by their type's default equality. */
static inline bool
kappa_value_equal_values(KappaValueType *t, Datum a, Datum b)
{
	if (t->image_hash)
		return kappa_value_image_cmp(t, a, b) == 0;
	return DatumGetBool(FunctionCall2Coll(&t->tce->eq_opr_finfo, t->collation, a, b));
}

/* ------------------------------------------------------------------------
 * Distinct sets: kappa_count_distinct and kappa_collect_set
 * ------------------------------------------------------------------------
 */

/* An empty set of values of a type, in mcxt. */
static KappaSet *
kappa_value_set_create(char kind, Oid type, Oid collation, MemoryContext mcxt)
{
	KappaValueType		t;
	KappaSet	   *set;

	kappa_value_type_init(&t, kind, type, collation);
	set = MemoryContextAllocZero(mcxt, sizeof(KappaSet));
	set->kind = kind;
	set->t = t;
	set->mcxt = mcxt;
	set->tab = kdset_create(mcxt, 8, &set->t);
	return set;
}

/*
 * Add a non-null value with its hash.  A set for any aggregate but
 * kappa_count_distinct keeps, of values its type calls equal, the one with
 * the smallest image: kappa_collect_set returns it, and a sum of numeric
 * 1.0 or 1.00 differs in scale.
 */
static void
kappa_value_set_add(KappaSet *set, Datum value, uint32 hash)
{
	KappaSetEntry *entry = kdset_lookup_hash(set->tab, value, hash);

	if (entry == NULL)
	{
		Datum		copy = kappa_value_copy_value(&set->t, set->mcxt, value);
		bool		found;

		entry = kdset_insert_hash(set->tab, copy, hash, &found);
		Assert(!found);
	}
	else if (set->kind != KD_COUNT_DISTINCT &&
			 kappa_value_image_cmp(&set->t, value, entry->value) < 0)
	{
		Datum		copy = kappa_value_copy_value(&set->t, set->mcxt, value);

		kappa_value_free_value(&set->t, entry->value);
		entry->value = copy;
	}
}

/* Transition of both set aggregates: add the value unless it is null. */
static Datum
kappa_value_set_trans(FunctionCallInfo fcinfo, char kind)
{
	MemoryContext aggcxt;
	KappaSet	   *set;

	kappa_value_check_context(fcinfo, &aggcxt, kind);
	if (PG_ARGISNULL(0))
	{
		Oid			type = kappa_value_arg_type(fcinfo, kind);

		set = kappa_value_set_create(kind, type, kappa_value_arg_collation(fcinfo, type), aggcxt);
	}
	else
		set = (KappaSet *) PG_GETARG_POINTER(0);
	if (!PG_ARGISNULL(1))
	{
		Datum		value = PG_GETARG_DATUM(1);

		kappa_value_set_add(set, value, kappa_value_hash_value(&set->t, value));
	}
	PG_RETURN_POINTER(set);
}

/* kappa_count_distinct's transition function. */
Datum
kappa_count_distinct_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_set_trans(fcinfo, KD_COUNT_DISTINCT);
}

/* kappa_collect_set's transition function. */
Datum
kappa_collect_set_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_set_trans(fcinfo, KD_COLLECT_SET);
}

/* Combine function of both set aggregates: the union. */
Datum
kappa_set_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	KappaSet	   *state = PG_ARGISNULL(0) ? NULL : (KappaSet *) PG_GETARG_POINTER(0);
	KappaSet	   *other = PG_ARGISNULL(1) ? NULL : (KappaSet *) PG_GETARG_POINTER(1);
	kdset_iterator it;
	KappaSetEntry *entry;

	kappa_value_check_context(fcinfo, &aggcxt, state ? state->kind : other ? other->kind : 0);
	if (other == NULL)
	{
		if (state == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state);
	}
	if (state == NULL)
		state = kappa_value_set_create(other->kind, other->t.type, other->t.collation, aggcxt);
	else
		kappa_value_check_same(state->kind, &state->t, other->kind, &other->t);

	kdset_start_iterate(other->tab, &it);
	while ((entry = kdset_iterate(other->tab, &it)) != NULL)
		kappa_value_set_add(state, entry->value, entry->hash);
	PG_RETURN_POINTER(state);
}

/* Serialize function of both set aggregates: header, count, values. */
Datum
kappa_set_serialize(PG_FUNCTION_ARGS)
{
	KappaSet   *set = (KappaSet *) PG_GETARG_POINTER(0);
	KappaStateWriter w;
	kdset_iterator it;
	KappaSetEntry *entry;

	kappa_state_write_begin(&w, fcinfo, set->kind, &set->t);
	kappa_state_write_count(&w, (int64) set->tab->members);
	kdset_start_iterate(set->tab, &it);
	while ((entry = kdset_iterate(set->tab, &it)) != NULL)
		kappa_state_write_value(&w, entry->value);
	PG_RETURN_BYTEA_P(kappa_state_write_end(&w));
}

/* Add a value just deserialized to a set (a KappaStateAddValue). */
static void
kappa_value_set_add_received(void *state, Datum value)
{
	KappaSet   *set = (KappaSet *) state;

	kappa_value_set_add(set, value, kappa_value_hash_value(&set->t, value));
}

/* Deserialize function of both set aggregates. */
Datum
kappa_set_deserialize(PG_FUNCTION_ARGS)
{
	KappaStateReader r;
	KappaSet   *set;
	int64		n;

	kappa_state_read_begin(&r, fcinfo, KD_SET_KINDS);
	set = kappa_value_set_create(r.kind, r.type, r.collation, CurrentMemoryContext);
	n = kappa_state_read_count(&r);
	kappa_state_read_values(&r, n, kappa_value_set_add_received, set);
	kappa_state_read_end(&r);
	PG_RETURN_POINTER(set);
}

/* kappa_count_distinct's final function: the set's size (0 for no rows). */
Datum
kappa_count_distinct_final(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	KappaSet	   *set = PG_ARGISNULL(0) ? NULL : (KappaSet *) PG_GETARG_POINTER(0);

	kappa_value_check_context(fcinfo, &aggcxt, KD_COUNT_DISTINCT);
	PG_RETURN_INT64(set ? (int64) set->tab->members : 0);
}

/* kappa_collect_set's final function: the values, sorted; NULL if none. */
Datum
kappa_collect_set_final(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	KappaSet	   *set = PG_ARGISNULL(0) ? NULL : (KappaSet *) PG_GETARG_POINTER(0);
	Datum	   *values;
	int64		n = 0;
	kdset_iterator it;
	KappaSetEntry *entry;

	kappa_value_check_context(fcinfo, &aggcxt, KD_COLLECT_SET);
	if (set == NULL || set->tab->members == 0)
		PG_RETURN_NULL();
	if (set->tab->members > MaxArraySize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("array size exceeds the maximum allowed (%d)", (int) MaxArraySize)));
	values = palloc(sizeof(Datum) * set->tab->members);
	kdset_start_iterate(set->tab, &it);
	while ((entry = kdset_iterate(set->tab, &it)) != NULL)
		values[n++] = entry->value;
	kappa_value_sort_values(&set->t, values, (int) n);
	PG_RETURN_DATUM(kappa_value_make_array(&set->t, values, NULL, n));
}

/* ------------------------------------------------------------------------
 * kappa_sum_distinct and kappa_avg_distinct
 *
 * sum(DISTINCT x) and avg(DISTINCT x) over a set of values: Postgres sorts
 * the distinct values and feeds them to sum's or avg's transition function
 * in ascending order, which matters for floating point.  The final
 * functions do the same with the same arithmetic (the same functions
 * where they can be called outside an aggregate), so the result has
 * Postgres's type and, value for value, its result.
 * ------------------------------------------------------------------------
 */

/* kappa_sum_distinct's transition function. */
Datum
kappa_sum_distinct_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_set_trans(fcinfo, KD_SUM_DISTINCT);
}

/* kappa_avg_distinct's transition function. */
Datum
kappa_avg_distinct_trans(PG_FUNCTION_ARGS)
{
	return kappa_value_set_trans(fcinfo, KD_AVG_DISTINCT);
}

/* A set's values in a new array, in ascending order; *n their number. */
static Datum *
kappa_value_set_sorted(KappaSet *set, int64 *n)
{
	Datum	   *values = palloc(sizeof(Datum) * Max(set->tab->members, 1));
	kdset_iterator it;
	KappaSetEntry *entry;

	*n = 0;
	kdset_start_iterate(set->tab, &it);
	while ((entry = kdset_iterate(set->tab, &it)) != NULL)
		values[(*n)++] = entry->value;
	if (*n > (int64) INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s cannot sort more than %d values", kappa_value_kind_name(set->kind), INT_MAX)));
	kappa_value_sort_values(&set->t, values, (int) *n);
	return values;
}

/*
 * The exact sum of integers as a numeric: added as int64 until that would
 * overflow, then carried into the numeric.
 */
static Numeric
kd_sum_int64(Datum *values, int64 n, Oid type)
{
	Datum		total = NumericGetDatum(int64_to_numeric(0));
	int64		part = 0;

	for (int64 i = 0; i < n; i++)
	{
		int64		v = type == INT8OID ? DatumGetInt64(values[i]) :
			type == INT4OID ? (int64) DatumGetInt32(values[i]) : (int64) DatumGetInt16(values[i]);

		int64		next;

		if (pg_add_s64_overflow(part, v, &next))
		{
			total = DirectFunctionCall2(numeric_add, total,
										NumericGetDatum(int64_to_numeric(part)));
			next = v;
		}
		part = next;
	}
	return DatumGetNumeric(DirectFunctionCall2(numeric_add, total,
											   NumericGetDatum(int64_to_numeric(part))));
}

/*
 * Add up values in order with a type's "+" function, from the first; a
 * new Datum, never one of the state's.
 */
static Datum
kappa_value_fold(KappaValueType *t, PGFunction plus, Datum *values, int64 n)
{
	Datum		total = datumCopy(values[0], t->typbyval, t->typlen);

	for (int64 i = 1; i < n; i++)
		total = DirectFunctionCall2(plus, total, values[i]);
	return total;
}

/*
 * sum of a non-empty set of distinct values, as Postgres's sum for their
 * type: int2, int4 -> bigint (no overflow check, as int4_sum), int8 ->
 * numeric, float4, float8, numeric, money and interval -> themselves.
 */
static Datum
kappa_value_distinct_sum(KappaValueType *t, Datum *values, int64 n)
{
	Oid			type = t->type;

	switch (type)
	{
		case INT2OID:
		case INT4OID:
			{
				uint64		total = 0;

				for (int64 i = 0; i < n; i++)
					total += (uint64) (type == INT4OID ? (int64) DatumGetInt32(values[i]) :
									   (int64) DatumGetInt16(values[i]));
				return Int64GetDatum((int64) total);
			}
		case INT8OID:
			return NumericGetDatum(kd_sum_int64(values, n, type));
		case NUMERICOID:
			return kappa_value_fold(t, numeric_add, values, n);
		case FLOAT4OID:
			return kappa_value_fold(t, float4pl, values, n);
		case FLOAT8OID:
			return kappa_value_fold(t, float8pl, values, n);
		case CASHOID:
			return kappa_value_fold(t, cash_pl, values, n);
		case INTERVALOID:
			return kappa_value_fold(t, interval_pl, values, n);
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("kappa_sum_distinct cannot be used with type %s", format_type_be(type))));
	return (Datum) 0;			/* keep compiler quiet */
}

/*
 * avg of a non-empty set of distinct values, as Postgres's avg for their
 * type: integers and numeric -> numeric (sum / count by numeric_div, as
 * int8_avg and numeric_avg), float4 and float8 -> float8 (float8_accum's
 * running sums, as float4_accum and float8_accum, then float8_avg),
 * interval -> interval (sum / count by interval_div, as interval_avg).
 */
static Datum
kappa_value_distinct_avg(KappaValueType *t, Datum *values, int64 n)
{
	Oid			type = t->type;
	Datum		count = NumericGetDatum(int64_to_numeric(n));

	switch (type)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return DirectFunctionCall2(numeric_div, NumericGetDatum(kd_sum_int64(values, n, type)),
									   count);
		case NUMERICOID:
			return DirectFunctionCall2(numeric_div, kappa_value_fold(t, numeric_add, values, n), count);
		case FLOAT4OID:
		case FLOAT8OID:
			{
				Datum		zeros[3] = {Float8GetDatum(0), Float8GetDatum(0), Float8GetDatum(0)};
				Datum		trans = PointerGetDatum(construct_array(zeros, 3, FLOAT8OID, sizeof(float8),
																	FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

				for (int64 i = 0; i < n; i++)
					trans = DirectFunctionCall2(type == FLOAT4OID ? float4_accum : float8_accum,
												trans, values[i]);
				return DirectFunctionCall1(float8_avg, trans);
			}
		case INTERVALOID:
			return DirectFunctionCall2(interval_div, kappa_value_fold(t, interval_pl, values, n),
									   Float8GetDatum((float8) n));
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("kappa_avg_distinct cannot be used with type %s", format_type_be(type))));
	return (Datum) 0;			/* keep compiler quiet */
}

/* Final function of kappa_sum_distinct and kappa_avg_distinct. */
static Datum
kappa_value_distinct_final(FunctionCallInfo fcinfo, char kind)
{
	MemoryContext aggcxt;
	KappaSet	   *set = PG_ARGISNULL(0) ? NULL : (KappaSet *) PG_GETARG_POINTER(0);
	Datum	   *values;
	int64		n;

	kappa_value_check_context(fcinfo, &aggcxt, kind);
	if (set == NULL || set->tab->members == 0)
		PG_RETURN_NULL();
	if (set->kind != kind)
		elog(ERROR, "%s called with a state of %s",
			 kappa_value_kind_name(kind), kappa_value_kind_name(set->kind));
	values = kappa_value_set_sorted(set, &n);
	if (kind == KD_SUM_DISTINCT)
		return kappa_value_distinct_sum(&set->t, values, n);
	return kappa_value_distinct_avg(&set->t, values, n);
}

/* kappa_sum_distinct's final function: sum(DISTINCT x); NULL if none. */
Datum
kappa_sum_distinct_final(PG_FUNCTION_ARGS)
{
	return kappa_value_distinct_final(fcinfo, KD_SUM_DISTINCT);
}

/* kappa_avg_distinct's final function: avg(DISTINCT x); NULL if none. */
Datum
kappa_avg_distinct_final(PG_FUNCTION_ARGS)
{
	return kappa_value_distinct_final(fcinfo, KD_AVG_DISTINCT);
}
