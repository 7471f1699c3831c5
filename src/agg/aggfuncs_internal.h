/*-------------------------------------------------------------------------
 *
 * aggfuncs_internal.h
 *	  What kappa's aggregates share: their kinds, the element type they were
 *	  called for, and the helpers for values (defined in aggfuncs.c) and
 *	  serialized states (aggfuncs_serial.c).  Private to aggfuncs*.c.
 *
 * src/agg/aggfuncs_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_AGGFUNCS_INTERNAL_H
#define KAPPA_AGGFUNCS_INTERNAL_H

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/typcache.h"

#define KD_COUNT_DISTINCT	'c'
#define KD_COLLECT_SET		's'
#define KD_COLLECT_LIST		'l'
#define KD_FIRST			'f'
#define KD_LAST				'L'
#define KD_APPROX			'h'
#define KD_SUM_DISTINCT		'S'
#define KD_AVG_DISTINCT		'A'
#define KD_STRING_AGG		'g'
#define KD_STRING_AGG_DISTINCT	'G'
#define KD_PERCENTILE_CONT	'p'
#define KD_PERCENTILE_DISC	'd'
#define KD_PERCENTILE_CONT_MULTI	'P'
#define KD_PERCENTILE_DISC_MULTI	'D'

/* The kinds whose state is a distinct set (kappa.set_combine and friends). */
#define KD_SET_KINDS		((const char[]) {KD_COUNT_DISTINCT, KD_COLLECT_SET, \
								 KD_SUM_DISTINCT, KD_AVG_DISTINCT, 0})

/* What an aggregate needs of its argument's type. */
#define KD_NEED_HASH		0x01	/* default hash opclass: hash and equality */
#define KD_NEED_ORDER		0x02	/* default btree opclass: comparison and "<" */
#define KD_NEED_HASH64		0x04	/* default hash opclass: extended hash */

/* The argument type of a state, with what the aggregate needs of it. */
typedef struct KappaValueType
{
	Oid			type;			/* element type (a base type, never a domain) */
	Oid			collation;		/* input collation, or InvalidOid */
	int16		typlen;
	bool		typbyval;
	char		typalign;
	bool		image_hash;		/* no hash opclass: hash the binary image */
	TypeCacheEntry *tce;		/* equality, hash, comparison, "<" */
} KappaValueType;

/* A send or receive function, cached in a serialize or deserialize call. */
typedef struct KappaValueIo
{
	Oid			type;
	Oid			ioparam;
	FmgrInfo	fn;
} KappaValueIo;

/*
 * A serialized state being written by a serialize function
 * (aggfuncs_serial.c): the header is written by kappa_state_write_begin,
 * the contents with pq_send* into buf and kappa_state_write_count/_value.
 */
typedef struct KappaStateWriter
{
	StringInfoData buf;			/* the state so far */
	FunctionCallInfo fcinfo;	/* the serialize call (caches the send function) */
	Oid			type;			/* the values' type */
	KappaValueIo *io;			/* its send function, once needed */
	MemoryContext scratch;		/* the send function's garbage */
} KappaStateWriter;

/*
 * A serialized state being read by a deserialize function: after
 * kappa_state_read_begin, the header is in kind, type and collation, and
 * the contents are read with pq_getmsg* from buf and
 * kappa_state_read_count/_value/_values.
 */
typedef struct KappaStateReader
{
	StringInfoData buf;			/* a copy of the state; cursor: what is read */
	FunctionCallInfo fcinfo;	/* the deserialize call (caches the receive
								 * function) */
	char		kind;			/* the header */
	Oid			type;
	Oid			collation;
	KappaValueIo *io;			/* the receive function, once needed */
	MemoryContext scratch;		/* where values are received */
} KappaStateReader;

/* What takes each value kappa_state_read_values reads into a state. */
typedef void (*KappaStateAddValue) (void *state, Datum value);

extern Oid kappa_value_arg_collation(FunctionCallInfo fcinfo, Oid type);
extern Oid kappa_value_arg_type(FunctionCallInfo fcinfo, char kind);
extern void kappa_value_check_context(FunctionCallInfo fcinfo, MemoryContext *aggcxt, char kind);
extern void kappa_value_check_same(char kind1, KappaValueType *t1, char kind2, KappaValueType *t2);
extern int kappa_value_compare_values(KappaValueType *t, Datum a, Datum b);
extern Datum kappa_value_copy_value(KappaValueType *t, MemoryContext mcxt, Datum value);
extern void kappa_value_free_value(KappaValueType *t, Datum value);
extern const char *kappa_value_kind_name(char kind);
extern Datum kappa_value_make_array(KappaValueType *t, Datum *values, bool *nulls, int64 n);
extern void kappa_value_sort_values(KappaValueType *t, Datum *values, int n);
extern int kappa_value_image_cmp(KappaValueType *t, Datum a, Datum b);
extern void kappa_value_type_init(KappaValueType *t, char kind, Oid type, Oid collation);
extern void kappa_value_corrupt(const char *what);
extern uint64 kappa_value_image_hash(KappaValueType *t, Datum value, uint64 seed);

extern void kappa_state_write_begin(KappaStateWriter *w, FunctionCallInfo fcinfo, char kind,
									KappaValueType *t);
extern void kappa_state_write_count(KappaStateWriter *w, int64 n);
extern void kappa_state_write_value(KappaStateWriter *w, Datum value);
extern bytea *kappa_state_write_end(KappaStateWriter *w);
extern void kappa_state_read_begin(KappaStateReader *r, FunctionCallInfo fcinfo, const char *kinds);
extern void kappa_state_read_expect_values(KappaStateReader *r);
extern int64 kappa_state_read_count(KappaStateReader *r);
extern Datum kappa_state_read_value(KappaStateReader *r);
extern void kappa_state_read_values(KappaStateReader *r, int64 n, KappaStateAddValue add,
									void *state);
extern void kappa_state_read_end(KappaStateReader *r);

#endif							/* KAPPA_AGGFUNCS_INTERNAL_H */
