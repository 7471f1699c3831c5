/*-------------------------------------------------------------------------
 *
 * aggfuncs.c
 *	  What all of kappa's combinable aggregates share (aggfuncs_internal.h):
 *	  their kinds and SQL names, the element type a state was made for and
 *	  what the aggregate needs of it, the calling context, and values:
 *	  hashed, compared, copied, sorted, made into arrays.
 *
 * The aggregates are one family a file, each with its state struct and its
 * support functions: aggfuncs_set.c (kappa_count_distinct,
 * kappa_collect_set, kappa_sum_distinct, kappa_avg_distinct: one
 * distinct-set state), aggfuncs_list.c (kappa_collect_list),
 * aggfuncs_pick.c (kappa_first, kappa_last), aggfuncs_hll.c
 * (kappa_approx_count_distinct) and aggfuncs_bag.c
 * (kappa_string_agg(_distinct), kappa_percentile_cont/disc).  Their
 * serialized states are written and read through aggfuncs_serial.c.  This
 * file holds the design they all follow.
 *
 * Purpose.  A kappa view keeps partial aggregate states and merges them
 * with the aggregate's combine function (across flushes, partitions and
 * merging sessions); count(DISTINCT x), array_agg(x) and friends have no
 * combine function in Postgres 15.  These aggregates do, and they are real
 * aggregates, so the same query runs as batch SQL, serially or in
 * parallel, with the same result.
 *
 * Design.
 *	- Every result is a function of the multiset of inputs alone, never of
 *	  their order or of how they were split into partial states: sets are
 *	  sets, lists are returned sorted, first/last break ties on the value,
 *	  and the approximate count depends only on the set of 64-bit hashes.
 *	  Where the type's btree order calls two values equal though they
 *	  differ (numeric 1.0 and 1.00, float8 0 and -0), the one with the
 *	  smaller binary image wins, so even the representative is
 *	  deterministic.
 *	- The polymorphic states are C structs behind the internal transtype.
 *	  The element type comes from the transition call (its expression, or
 *	  else the Aggref that AggGetAggref finds) and is kept in the state with
 *	  the input collation; combine, final, serialize and deserialize
 *	  functions learn it from the state.
 *	- Equality, hashing and order are the type's defaults, from the type
 *	  cache: the default btree opclass's comparison and "<", and the
 *	  default hash opclass's hash functions with its equality.  A type
 *	  with no hash opclass but whose btree equality is binary equality
 *	  (its equalimage function says so: money, bit, varbit) is hashed by
 *	  its binary image instead.  An aggregate whose type lacks what it
 *	  needs fails at its first call.
 *	- Serialized states are bytea: a kind byte, a format version, the
 *	  element type's OID and the collation's OID, then the contents, with
 *	  each value in its type's binary send format (length-prefixed), so a
 *	  deserializer needs nothing but the bytes.  Every aggregate writes and
 *	  reads them through aggfuncs_serial.c's KappaStateWriter and
 *	  KappaStateReader.
 *	- Final functions never modify the state (FINALFUNC_MODIFY =
 *	  READ_ONLY): kappa calls them again at every flush.  They sort copies.
 *
 * Memory rules.  A state and everything it points to live in one memory
 * context, recorded in the state: the aggregate context that
 * AggCheckCallContext names when a transition or combine function creates
 * the state, or the current context when a deserialize function does (as
 * nodeAgg.c and kappa's aggregate.c expect).  Values are copied into it
 * (varlena values detoasted), and a value that a state replaces is freed.
 * Serialize and deserialize run the types' send and receive functions in a
 * short-lived child context, so their garbage does not stay with the state.
 * Final functions allocate their results in the current context.
 *
 * Rights and transactions.  None of their own: the support functions run
 * in the caller's transaction with the caller's rights (a view's owner,
 * under kappa's engine), and read no catalog but through the type cache
 * and lsyscache.
 *
 * src/agg/aggfuncs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/nbtree.h"
#include "access/tupmacs.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "nodes/pg_list.h"
#include "nodes/primnodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/sortsupport.h"
#include "utils/typcache.h"

#include "agg/aggfuncs.h"
#include "agg/aggfuncs_internal.h"

/* What a sort of values compares with. */
typedef struct KappaSortArg
{
	SortSupport ssup;
	KappaValueType	   *t;
} KappaSortArg;

/* ------------------------------------------------------------------------
 * Types, values and the calling context
 * ------------------------------------------------------------------------
 */

/* The SQL name of the aggregate that keeps states of a kind. */
const char *
kappa_value_kind_name(char kind)
{
	switch (kind)
	{
		case KD_COUNT_DISTINCT:
			return "kappa_count_distinct";
		case KD_COLLECT_SET:
			return "kappa_collect_set";
		case KD_COLLECT_LIST:
			return "kappa_collect_list";
		case KD_FIRST:
			return "kappa_first";
		case KD_LAST:
			return "kappa_last";
		case KD_APPROX:
			return "kappa_approx_count_distinct";
		case KD_SUM_DISTINCT:
			return "kappa_sum_distinct";
		case KD_AVG_DISTINCT:
			return "kappa_avg_distinct";
		case KD_STRING_AGG:
			return "kappa_string_agg";
		case KD_STRING_AGG_DISTINCT:
			return "kappa_string_agg_distinct";
		case KD_PERCENTILE_CONT:
		case KD_PERCENTILE_CONT_MULTI:
			return "kappa_percentile_cont";
		case KD_PERCENTILE_DISC:
		case KD_PERCENTILE_DISC_MULTI:
			return "kappa_percentile_disc";
	}
	return "a kappa aggregate";
}

/* What an aggregate of a kind needs of its argument's type (KD_NEED_*). */
static int
kappa_value_kind_needs(char kind)
{
	switch (kind)
	{
		case KD_COUNT_DISTINCT:
			return KD_NEED_HASH;
		case KD_COLLECT_SET:
		case KD_SUM_DISTINCT:
		case KD_AVG_DISTINCT:
			return KD_NEED_HASH | KD_NEED_ORDER;
		case KD_COLLECT_LIST:
		case KD_FIRST:
		case KD_LAST:
		case KD_STRING_AGG:
		case KD_STRING_AGG_DISTINCT:
		case KD_PERCENTILE_CONT:
		case KD_PERCENTILE_DISC:
		case KD_PERCENTILE_CONT_MULTI:
		case KD_PERCENTILE_DISC_MULTI:
			return KD_NEED_ORDER;
		case KD_APPROX:
			return KD_NEED_HASH64;
	}
	return 0;
}

/*
 * Whether the type's default btree equality is binary equality (its
 * opclass's equalimage function says so), so that a type without a hash
 * opclass (money, bit, varbit) can be hashed by its binary image.
 */
static bool
kappa_value_equal_is_image(Oid type, Oid collation)
{
	TypeCacheEntry *tce = lookup_type_cache(type, TYPECACHE_BTREE_OPFAMILY);
	Oid			proc;

	if (!OidIsValid(tce->btree_opf))
		return false;
	proc = get_opfamily_proc(tce->btree_opf, tce->btree_opintype, tce->btree_opintype,
							 BTEQUALIMAGE_PROC);
	if (!OidIsValid(proc))
		return false;
	return DatumGetBool(OidFunctionCall1Coll(proc, collation, ObjectIdGetDatum(type)));
}

/* Fill in a state's type, or fail clearly if the aggregate cannot take it. */
void
kappa_value_type_init(KappaValueType *t, char kind, Oid type, Oid collation)
{
	int			needs = kappa_value_kind_needs(kind);
	int			flags = 0;
	TypeCacheEntry *tce;

	if (needs & KD_NEED_HASH)
		flags |= TYPECACHE_EQ_OPR_FINFO | TYPECACHE_HASH_PROC_FINFO;
	if (needs & KD_NEED_ORDER)
		flags |= TYPECACHE_CMP_PROC_FINFO | TYPECACHE_LT_OPR;
	if (needs & KD_NEED_HASH64)
		flags |= TYPECACHE_HASH_EXTENDED_PROC_FINFO;
	tce = lookup_type_cache(type, flags);

	t->image_hash = false;
	if ((needs & KD_NEED_HASH) &&
		(!OidIsValid(tce->eq_opr_finfo.fn_oid) || !OidIsValid(tce->hash_proc_finfo.fn_oid)))
		t->image_hash = kappa_value_equal_is_image(type, collation);
	if ((needs & KD_NEED_HASH64) && !OidIsValid(tce->hash_extended_proc_finfo.fn_oid))
		t->image_hash = kappa_value_equal_is_image(type, collation);
	if (t->image_hash)
		tce = lookup_type_cache(type, flags | TYPECACHE_CMP_PROC_FINFO);

	if ((needs & KD_NEED_HASH) && !t->image_hash &&
		(!OidIsValid(tce->eq_opr_finfo.fn_oid) || !OidIsValid(tce->hash_proc_finfo.fn_oid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("%s cannot be used with type %s",
						kappa_value_kind_name(kind), format_type_be(type)),
				 errdetail("It needs the type's default hash operator class, to find equal values, and type %s has none (nor a btree operator class whose equality is binary equality).",
						   format_type_be(type))));
	if ((needs & KD_NEED_ORDER) &&
		(!OidIsValid(tce->cmp_proc_finfo.fn_oid) || !OidIsValid(tce->lt_opr)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("%s cannot be used with type %s",
						kappa_value_kind_name(kind), format_type_be(type)),
				 errdetail("It needs the type's default btree operator class, to order values, and type %s has none.",
						   format_type_be(type))));
	if ((needs & KD_NEED_HASH64) && !t->image_hash &&
		!OidIsValid(tce->hash_extended_proc_finfo.fn_oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("%s cannot be used with type %s",
						kappa_value_kind_name(kind), format_type_be(type)),
				 errdetail("It needs the extended (64-bit) hash function of the type's default hash operator class, and type %s has none (nor a btree operator class whose equality is binary equality).",
						   format_type_be(type))));

	t->type = type;
	t->collation = collation;
	t->typlen = tce->typlen;
	t->typbyval = tce->typbyval;
	t->typalign = tce->typalign;
	t->tce = tce;
}

/* The error an aggregate named aggname would raise at once for argtype. */
void
kappa_aggfunc_check_type(const char *aggname, Oid argtype)
{
	static const char kinds[] = {KD_COUNT_DISTINCT, KD_COLLECT_SET, KD_COLLECT_LIST,
		KD_FIRST, KD_LAST, KD_APPROX, KD_SUM_DISTINCT, KD_AVG_DISTINCT, KD_STRING_AGG,
	KD_STRING_AGG_DISTINCT, KD_PERCENTILE_CONT, KD_PERCENTILE_DISC};
	Oid			type = getBaseType(argtype);
	KappaValueType		t;

	for (int i = 0; i < (int) lengthof(kinds); i++)
		if (strcmp(aggname, kappa_value_kind_name(kinds[i])) == 0)
			kappa_value_type_init(&t, kinds[i], type, get_typcollation(type));
}

/* Fail unless called as an aggregate; set *aggcxt to the aggregate memory. */
void
kappa_value_check_context(FunctionCallInfo fcinfo, MemoryContext *aggcxt, char kind)
{
	if (!AggCheckCallContext(fcinfo, aggcxt))
		elog(ERROR, "support function of %s called in non-aggregate context",
			 kappa_value_kind_name(kind));
}

/*
 * The type of a transition function's first aggregated argument: from the
 * call's expression, or else from the Aggref being run; domains are
 * replaced by their base types.
 */
Oid
kappa_value_arg_type(FunctionCallInfo fcinfo, char kind)
{
	Oid			type = get_fn_expr_argtype(fcinfo->flinfo, 1);

	if (!OidIsValid(type))
	{
		Aggref	   *aggref = AggGetAggref(fcinfo);

		if (aggref != NULL && aggref->aggargtypes != NIL)
			type = linitial_oid(aggref->aggargtypes);
	}
	if (!OidIsValid(type))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not determine the input data type of %s",
						kappa_value_kind_name(kind))));
	return getBaseType(type);
}

/*
 * The collation to compare values of a type with: the call's input
 * collation, or the Aggref's, or the type's own; none for types that have
 * no collation.
 */
Oid
kappa_value_arg_collation(FunctionCallInfo fcinfo, Oid type)
{
	Oid			collation;

	if (!type_is_collatable(type))
		return InvalidOid;
	collation = PG_GET_COLLATION();
	if (!OidIsValid(collation))
	{
		Aggref	   *aggref = AggGetAggref(fcinfo);

		if (aggref != NULL)
			collation = aggref->inputcollid;
	}
	if (!OidIsValid(collation))
		collation = get_typcollation(type);
	return collation;
}

/* The 64-bit hash of a value's binary image (varlena: its contents). */
uint64
kappa_value_image_hash(KappaValueType *t, Datum value, uint64 seed)
{
	if (t->typbyval)
	{
		char		buf[sizeof(Datum)];

		store_att_byval(buf, value, t->typlen);
		return hash_bytes_extended((unsigned char *) buf, t->typlen, seed);
	}
	if (t->typlen > 0)
		return hash_bytes_extended((unsigned char *) DatumGetPointer(value), t->typlen, seed);
	if (t->typlen == -1)
	{
		struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(value));
		uint64		hash = hash_bytes_extended((unsigned char *) VARDATA_ANY(v),
											   VARSIZE_ANY_EXHDR(v), seed);

		if ((Pointer) v != DatumGetPointer(value))
			pfree(v);
		return hash;
	}
	return hash_bytes_extended((unsigned char *) DatumGetCString(value),
							   strlen(DatumGetCString(value)), seed);
}

/* Compare two values by their type's default btree order. */
int
kappa_value_compare_values(KappaValueType *t, Datum a, Datum b)
{
	return DatumGetInt32(FunctionCall2Coll(&t->tce->cmp_proc_finfo, t->collation, a, b));
}

/*
 * Compare the binary images of two values: the tie-break between values
 * that the type's order calls equal.  Varlena values compare by their
 * contents, whatever their headers.
 */
int
kappa_value_image_cmp(KappaValueType *t, Datum a, Datum b)
{
	if (t->typbyval)
	{
		Datum		mask = ~(Datum) 0;

		if (t->typlen < (int) sizeof(Datum))
			mask = (((Datum) 1) << (t->typlen * BITS_PER_BYTE)) - 1;
		a &= mask;
		b &= mask;
		return (a < b) ? -1 : (a > b) ? 1 : 0;
	}
	if (t->typlen > 0)
		return memcmp(DatumGetPointer(a), DatumGetPointer(b), t->typlen);
	if (t->typlen == -1)
	{
		struct varlena *va = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(a));
		struct varlena *vb = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(b));
		Size		la = VARSIZE_ANY_EXHDR(va);
		Size		lb = VARSIZE_ANY_EXHDR(vb);
		int			c = memcmp(VARDATA_ANY(va), VARDATA_ANY(vb), Min(la, lb));

		if (c == 0)
			c = (la < lb) ? -1 : (la > lb) ? 1 : 0;
		if ((Pointer) va != DatumGetPointer(a))
			pfree(va);
		if ((Pointer) vb != DatumGetPointer(b))
			pfree(vb);
		return c;
	}
	return strcmp(DatumGetCString(a), DatumGetCString(b));
}

/* A copy of a value in a state's memory (varlena values detoasted). */
Datum
kappa_value_copy_value(KappaValueType *t, MemoryContext mcxt, Datum value)
{
	MemoryContext old;
	Datum		copy;

	if (t->typbyval)
		return value;
	old = MemoryContextSwitchTo(mcxt);
	if (t->typlen == -1)
		copy = PointerGetDatum(PG_DETOAST_DATUM_COPY(value));
	else
		copy = datumCopy(value, false, t->typlen);
	MemoryContextSwitchTo(old);
	return copy;
}

/* Free a value that a state copied. */
void
kappa_value_free_value(KappaValueType *t, Datum value)
{
	if (!t->typbyval)
		pfree(DatumGetPointer(value));
}

/* qsort_arg comparator: btree order, then binary image. */
static int
kappa_value_sort_cmp(const void *a, const void *b, void *arg)
{
	KappaSortArg  *sa = (KappaSortArg *) arg;
	Datum		da = *(const Datum *) a;
	Datum		db = *(const Datum *) b;
	int			c = ApplySortComparator(da, false, db, false, sa->ssup);

	if (c == 0)
		c = kappa_value_image_cmp(sa->t, da, db);
	return c;
}

/* Sort non-null values in place by their type's default btree order. */
void
kappa_value_sort_values(KappaValueType *t, Datum *values, int n)
{
	SortSupportData ssup;
	KappaSortArg	arg;

	if (n < 2)
		return;
	memset(&ssup, 0, sizeof(ssup));
	ssup.ssup_cxt = CurrentMemoryContext;
	ssup.ssup_collation = t->collation;
	ssup.ssup_nulls_first = false;
	ssup.abbreviate = false;
	PrepareSortSupportFromOrderingOp(t->tce->lt_opr, &ssup);
	arg.ssup = &ssup;
	arg.t = t;
	qsort_arg(values, n, sizeof(Datum), kappa_value_sort_cmp, &arg);
}

/* A one-dimensional array of n values (nulls may be NULL), from index 1. */
Datum
kappa_value_make_array(KappaValueType *t, Datum *values, bool *nulls, int64 n)
{
	int			dims[1];
	int			lbs[1] = {1};

	if (n > (int64) MaxArraySize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("array size exceeds the maximum allowed (%d)", (int) MaxArraySize)));
	dims[0] = (int) n;
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, t->type,
											  t->typlen, t->typbyval, t->typalign));
}

/* Fail if two states to be combined are of different kinds or types. */
void
kappa_value_check_same(char kind1, KappaValueType *t1, char kind2, KappaValueType *t2)
{
	if (kind1 != kind2 || t1->type != t2->type || t1->collation != t2->collation)
		elog(ERROR, "cannot combine states of %s over %s with states of %s over %s",
			 kappa_value_kind_name(kind1), format_type_be(t1->type),
			 kappa_value_kind_name(kind2), format_type_be(t2->type));
}

