/*-------------------------------------------------------------------------
 *
 * aggfuncs_list.c
 *	  kappa_collect_list(x): every value of a group, nulls included, as
 *	  array_agg(x ORDER BY x) but combinable.
 *
 * The state is the values in arrival order and a count of nulls; the final
 * function sorts a copy by the type's default btree order (ties by binary
 * image, see aggfuncs.c), nulls last, so the result depends on the
 * multiset of inputs alone.
 *
 * Memory grows with the group: every value is kept.  Memory rules, rights
 * and transactions are those of aggfuncs.c.
 *
 * src/agg/aggfuncs_list.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/memutils.h"

#include "agg/aggfuncs_internal.h"

/* State of kappa_collect_list: the non-null values, and how many nulls. */
typedef struct KappaList
{
	char		kind;			/* KD_COLLECT_LIST */
	KappaValueType		t;
	MemoryContext mcxt;
	Datum	   *values;
	int64		nvalues;
	int64		maxvalues;
	int64		nnulls;
} KappaList;

PG_FUNCTION_INFO_V1(kappa_collect_list_trans);
PG_FUNCTION_INFO_V1(kappa_collect_list_combine);
PG_FUNCTION_INFO_V1(kappa_collect_list_serialize);
PG_FUNCTION_INFO_V1(kappa_collect_list_deserialize);
PG_FUNCTION_INFO_V1(kappa_collect_list_final);

/* ------------------------------------------------------------------------
 * kappa_collect_list
 * ------------------------------------------------------------------------
 */

/* An empty list of values of a type, in mcxt. */
static KappaList *
kappa_value_list_create(Oid type, Oid collation, MemoryContext mcxt)
{
	KappaValueType		t;
	KappaList	   *list;

	kappa_value_type_init(&t, KD_COLLECT_LIST, type, collation);
	list = MemoryContextAllocZero(mcxt, sizeof(KappaList));
	list->kind = KD_COLLECT_LIST;
	list->t = t;
	list->mcxt = mcxt;
	return list;
}

/* Fail if a list would have more elements than an array can. */
static void
kappa_value_list_check_size(KappaList *list, int64 more)
{
	if (list->nvalues + list->nnulls + more > (int64) MaxArraySize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("kappa_collect_list would exceed the maximum array size (%d)",
						(int) MaxArraySize)));
}

/* Append a value (copied) or a null to a list. */
static void
kappa_value_list_add(KappaList *list, Datum value, bool isnull)
{
	kappa_value_list_check_size(list, 1);
	if (isnull)
	{
		list->nnulls++;
		return;
	}
	if (list->nvalues == list->maxvalues)
	{
		int64		newmax = list->maxvalues ? list->maxvalues * 2 : 8;

		newmax = Min(newmax, (int64) MaxArraySize);
		if (list->values == NULL)
			list->values = MemoryContextAlloc(list->mcxt, sizeof(Datum) * newmax);
		else
			list->values = repalloc(list->values, sizeof(Datum) * newmax);
		list->maxvalues = newmax;
	}
	list->values[list->nvalues] = kappa_value_copy_value(&list->t, list->mcxt, value);
	list->nvalues++;
}

/* kappa_collect_list's transition function: append the value or null. */
Datum
kappa_collect_list_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	KappaList	   *list;

	kappa_value_check_context(fcinfo, &aggcxt, KD_COLLECT_LIST);
	if (PG_ARGISNULL(0))
	{
		Oid			type = kappa_value_arg_type(fcinfo, KD_COLLECT_LIST);

		list = kappa_value_list_create(type, kappa_value_arg_collation(fcinfo, type), aggcxt);
	}
	else
		list = (KappaList *) PG_GETARG_POINTER(0);
	kappa_value_list_add(list, PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1), PG_ARGISNULL(1));
	PG_RETURN_POINTER(list);
}

/* kappa_collect_list's combine function: the concatenation. */
Datum
kappa_collect_list_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	KappaList	   *state = PG_ARGISNULL(0) ? NULL : (KappaList *) PG_GETARG_POINTER(0);
	KappaList	   *other = PG_ARGISNULL(1) ? NULL : (KappaList *) PG_GETARG_POINTER(1);

	kappa_value_check_context(fcinfo, &aggcxt, KD_COLLECT_LIST);
	if (other == NULL)
	{
		if (state == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(state);
	}
	if (state == NULL)
		state = kappa_value_list_create(other->t.type, other->t.collation, aggcxt);
	else
		kappa_value_check_same(state->kind, &state->t, other->kind, &other->t);
	kappa_value_list_check_size(state, other->nvalues + other->nnulls);
	for (int64 i = 0; i < other->nvalues; i++)
		kappa_value_list_add(state, other->values[i], false);
	state->nnulls += other->nnulls;
	PG_RETURN_POINTER(state);
}

/* kappa_collect_list's serialize function: header, counts, values. */
Datum
kappa_collect_list_serialize(PG_FUNCTION_ARGS)
{
	KappaList  *list = (KappaList *) PG_GETARG_POINTER(0);
	KappaStateWriter w;

	kappa_state_write_begin(&w, fcinfo, list->kind, &list->t);
	kappa_state_write_count(&w, list->nvalues);
	pq_sendint64(&w.buf, list->nnulls);
	for (int64 i = 0; i < list->nvalues; i++)
		kappa_state_write_value(&w, list->values[i]);
	PG_RETURN_BYTEA_P(kappa_state_write_end(&w));
}

/* Append a value just deserialized to a list (a KappaStateAddValue). */
static void
kappa_value_list_add_received(void *state, Datum value)
{
	kappa_value_list_add((KappaList *) state, value, false);
}

/* kappa_collect_list's deserialize function. */
Datum
kappa_collect_list_deserialize(PG_FUNCTION_ARGS)
{
	KappaStateReader r;
	KappaList  *list;
	int64		nvalues;
	int64		nnulls;

	kappa_state_read_begin(&r, fcinfo, (char[]) {KD_COLLECT_LIST, 0});
	list = kappa_value_list_create(r.type, r.collation, CurrentMemoryContext);
	nvalues = kappa_state_read_count(&r);
	nnulls = pq_getmsgint64(&r.buf);
	if (nvalues < 0 || nnulls < 0)
		kappa_value_corrupt("bad count");
	kappa_value_list_check_size(list, nvalues + nnulls);
	kappa_state_read_values(&r, nvalues, kappa_value_list_add_received, list);
	list->nnulls = nnulls;
	kappa_state_read_end(&r);
	PG_RETURN_POINTER(list);
}

/*
 * kappa_collect_list's final function: every value, sorted by the type's
 * default btree order, nulls last (array_agg(x ORDER BY x)); NULL for no
 * rows.
 */
Datum
kappa_collect_list_final(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	KappaList	   *list = PG_ARGISNULL(0) ? NULL : (KappaList *) PG_GETARG_POINTER(0);
	int64		n;
	Datum	   *values;
	bool	   *nulls = NULL;

	kappa_value_check_context(fcinfo, &aggcxt, KD_COLLECT_LIST);
	if (list == NULL || list->nvalues + list->nnulls == 0)
		PG_RETURN_NULL();
	n = list->nvalues + list->nnulls;
	values = palloc0(sizeof(Datum) * n);
	if (list->nvalues > 0)
		memcpy(values, list->values, sizeof(Datum) * list->nvalues);
	kappa_value_sort_values(&list->t, values, (int) list->nvalues);
	if (list->nnulls > 0)
	{
		nulls = palloc0(sizeof(bool) * n);
		for (int64 i = list->nvalues; i < n; i++)
			nulls[i] = true;
	}
	PG_RETURN_DATUM(kappa_value_make_array(&list->t, values, nulls, n));
}
