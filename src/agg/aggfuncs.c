/*-------------------------------------------------------------------------
 *
 * aggfuncs.c
 *	  Aggregates that Postgres 15 cannot combine, as ordinary combinable
 *	  Postgres aggregates: kappa_count_distinct, kappa_collect_set,
 *	  kappa_sum_distinct, kappa_avg_distinct (one distinct-set state) and
 *	  kappa_collect_list here, and the helpers all of kappa's aggregates
 *	  share (aggfuncs_internal.h); kappa_first and kappa_last are in
 *	  aggfuncs_pick.c, kappa_approx_count_distinct in aggfuncs_hll.c,
 *	  kappa_string_agg(_distinct) and kappa_percentile_cont/disc in
 *	  aggfuncs_bag.c.
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
 *	  deserializer needs nothing but the bytes.
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
 * src/agg/aggfuncs.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/nbtree.h"
#include "access/tupmacs.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "nodes/pg_list.h"
#include "nodes/primnodes.h"
#include "port/pg_bitutils.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/cash.h"
#include "utils/float.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/sortsupport.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "agg/aggfuncs.h"
#include "agg/aggfuncs_internal.h"

/* Kinds of state; the first byte of a serialized state. */


/* HyperLogLog: precision, registers, and the most hashes a sparse state keeps. */



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





/* What a sort of values compares with. */
typedef struct KappaSortArg
{
	SortSupport ssup;
	KappaValueType	   *t;
} KappaSortArg;

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
PG_FUNCTION_INFO_V1(kappa_collect_list_trans);
PG_FUNCTION_INFO_V1(kappa_collect_list_combine);
PG_FUNCTION_INFO_V1(kappa_collect_list_serialize);
PG_FUNCTION_INFO_V1(kappa_collect_list_deserialize);
PG_FUNCTION_INFO_V1(kappa_collect_list_final);

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

/* ------------------------------------------------------------------------
 * Serialized states
 * ------------------------------------------------------------------------
 */

/* Report a serialized state that cannot be read. */
void
kappa_value_corrupt(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid serialized state of a kappa aggregate: %s", what)));
}

/* Start a serialized state: kind, version, type and collation. */
void
kappa_value_begin_state(StringInfo buf, char kind, KappaValueType *t)
{
	pq_begintypsend(buf);
	pq_sendbyte(buf, (uint8) kind);
	pq_sendbyte(buf, KD_FORMAT_VERSION);
	pq_sendint32(buf, t ? t->type : InvalidOid);
	pq_sendint32(buf, t ? t->collation : InvalidOid);
}

/*
 * Start reading a serialized state: copy its bytes into buf (so element
 * receive functions may rely on a terminating zero byte), check its kind
 * is one of kinds, and return the kind, type and collation.
 */
char
kappa_value_begin_read(StringInfo buf, bytea *data, const char *kinds,
			  Oid *type, Oid *collation)
{
	char		kind;

	initStringInfo(buf);
	appendBinaryStringInfo(buf, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
	if (buf->len < 10)
		kappa_value_corrupt("too short");
	kind = (char) pq_getmsgbyte(buf);
	if (kind == '\0' || strchr(kinds, kind) == NULL)
		kappa_value_corrupt("state of another aggregate");
	if (pq_getmsgbyte(buf) != KD_FORMAT_VERSION)
		kappa_value_corrupt("unknown format version");
	*type = (Oid) pq_getmsgint(buf, 4);
	*collation = (Oid) pq_getmsgint(buf, 4);
	return kind;
}

/* Finish reading a serialized state: every byte must have been used. */
void
kappa_value_end_read(StringInfo buf)
{
	if (buf->cursor != buf->len)
		kappa_value_corrupt("trailing bytes");
	pfree(buf->data);
}

/* The send (or receive) function of a type, cached in the call's fn_extra. */
KappaValueIo *
kappa_value_io_cache(FunctionCallInfo fcinfo, Oid type, bool send)
{
	KappaValueIo  *cache = (KappaValueIo *) fcinfo->flinfo->fn_extra;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(KappaValueIo));
		fcinfo->flinfo->fn_extra = cache;
	}
	if (cache->type != type)
	{
		Oid			fn;
		bool		varlena;

		if (send)
			getTypeBinaryOutputInfo(type, &fn, &varlena);
		else
			getTypeBinaryInputInfo(type, &fn, &cache->ioparam);
		fmgr_info_cxt(fn, &cache->fn, fcinfo->flinfo->fn_mcxt);
		cache->type = type;
	}
	return cache;
}

/* A child context for the garbage of send and receive functions. */
MemoryContext
kappa_value_temp_context(void)
{
	return AllocSetContextCreate(CurrentMemoryContext, "kappa aggregate state I/O",
								 ALLOCSET_SMALL_SIZES);
}

/* Append a value in its type's binary format, with its length first. */
void
kappa_value_send_value(StringInfo buf, KappaValueIo *io, Datum value, MemoryContext tmp)
{
	MemoryContext old = MemoryContextSwitchTo(tmp);
	bytea	   *bytes = SendFunctionCall(&io->fn, value);

	MemoryContextSwitchTo(old);
	pq_sendint32(buf, VARSIZE(bytes) - VARHDRSZ);
	pq_sendbytes(buf, VARDATA(bytes), VARSIZE(bytes) - VARHDRSZ);
	MemoryContextReset(tmp);
}

/*
 * Read a value written by kappa_value_send_value, allocated in the current memory
 * context.  The byte after the value is zeroed during the call (buf is our
 * own copy) and restored.
 */
Datum
kappa_value_recv_value(StringInfo buf, KappaValueIo *io)
{
	int			len = pq_getmsgint(buf, 4);
	StringInfoData elem;
	char		saved;
	Datum		value;

	if (len < 0 || len > buf->len - buf->cursor)
		kappa_value_corrupt("bad value length");
	elem.data = buf->data + buf->cursor;
	elem.len = len;
	elem.maxlen = len + 1;
	elem.cursor = 0;
	saved = elem.data[len];
	elem.data[len] = '\0';
	value = ReceiveFunctionCall(&io->fn, &elem, io->ioparam, -1);
	if (elem.cursor != elem.len)
		kappa_value_corrupt("value not fully read by its type's receive function");
	elem.data[len] = saved;
	buf->cursor += len;
	return value;
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

/* Fail if two states to be combined are of different kinds or types. */
void
kappa_value_check_same(char kind1, KappaValueType *t1, char kind2, KappaValueType *t2)
{
	if (kind1 != kind2 || t1->type != t2->type || t1->collation != t2->collation)
		elog(ERROR, "cannot combine states of %s over %s with states of %s over %s",
			 kappa_value_kind_name(kind1), format_type_be(t1->type),
			 kappa_value_kind_name(kind2), format_type_be(t2->type));
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
	KappaSet	   *set = (KappaSet *) PG_GETARG_POINTER(0);
	MemoryContext aggcxt;
	MemoryContext tmp;
	StringInfoData buf;
	KappaValueIo  *io;
	kdset_iterator it;
	KappaSetEntry *entry;

	kappa_value_check_context(fcinfo, &aggcxt, set->kind);
	io = kappa_value_io_cache(fcinfo, set->t.type, true);
	tmp = kappa_value_temp_context();
	kappa_value_begin_state(&buf, set->kind, &set->t);
	pq_sendint64(&buf, (int64) set->tab->members);
	kdset_start_iterate(set->tab, &it);
	while ((entry = kdset_iterate(set->tab, &it)) != NULL)
		kappa_value_send_value(&buf, io, entry->value, tmp);
	MemoryContextDelete(tmp);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* Deserialize function of both set aggregates. */
Datum
kappa_set_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	MemoryContext aggcxt;
	MemoryContext tmp;
	MemoryContext old;
	StringInfoData buf;
	KappaValueIo  *io;
	KappaSet	   *set;
	Oid			type;
	Oid			collation;
	char		kind;
	int64		n;

	kappa_value_check_context(fcinfo, &aggcxt, KD_COUNT_DISTINCT);
	kind = kappa_value_begin_read(&buf, data, KD_SET_KINDS, &type, &collation);
	set = kappa_value_set_create(kind, type, collation, CurrentMemoryContext);
	io = kappa_value_io_cache(fcinfo, type, false);
	n = pq_getmsgint64(&buf);
	if (n < 0)
		kappa_value_corrupt("bad count");
	tmp = kappa_value_temp_context();
	for (int64 i = 0; i < n; i++)
	{
		Datum		value;

		old = MemoryContextSwitchTo(tmp);
		value = kappa_value_recv_value(&buf, io);
		kappa_value_set_add(set, value, kappa_value_hash_value(&set->t, value));
		MemoryContextSwitchTo(old);
		MemoryContextReset(tmp);
	}
	MemoryContextDelete(tmp);
	kappa_value_end_read(&buf);
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
	KappaList	   *list = (KappaList *) PG_GETARG_POINTER(0);
	MemoryContext aggcxt;
	MemoryContext tmp;
	StringInfoData buf;
	KappaValueIo  *io;

	kappa_value_check_context(fcinfo, &aggcxt, KD_COLLECT_LIST);
	io = kappa_value_io_cache(fcinfo, list->t.type, true);
	tmp = kappa_value_temp_context();
	kappa_value_begin_state(&buf, list->kind, &list->t);
	pq_sendint64(&buf, list->nvalues);
	pq_sendint64(&buf, list->nnulls);
	for (int64 i = 0; i < list->nvalues; i++)
		kappa_value_send_value(&buf, io, list->values[i], tmp);
	MemoryContextDelete(tmp);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* kappa_collect_list's deserialize function. */
Datum
kappa_collect_list_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	MemoryContext aggcxt;
	MemoryContext tmp;
	MemoryContext old;
	StringInfoData buf;
	KappaValueIo  *io;
	KappaList	   *list;
	Oid			type;
	Oid			collation;
	int64		nvalues;
	int64		nnulls;

	kappa_value_check_context(fcinfo, &aggcxt, KD_COLLECT_LIST);
	(void) kappa_value_begin_read(&buf, data, (char[]) {KD_COLLECT_LIST, 0}, &type, &collation);
	list = kappa_value_list_create(type, collation, CurrentMemoryContext);
	io = kappa_value_io_cache(fcinfo, type, false);
	nvalues = pq_getmsgint64(&buf);
	nnulls = pq_getmsgint64(&buf);
	if (nvalues < 0 || nnulls < 0)
		kappa_value_corrupt("bad count");
	kappa_value_list_check_size(list, nvalues + nnulls);
	tmp = kappa_value_temp_context();
	for (int64 i = 0; i < nvalues; i++)
	{
		old = MemoryContextSwitchTo(tmp);
		kappa_value_list_add(list, kappa_value_recv_value(&buf, io), false);
		MemoryContextSwitchTo(old);
		MemoryContextReset(tmp);
	}
	MemoryContextDelete(tmp);
	list->nnulls = nnulls;
	kappa_value_end_read(&buf);
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
