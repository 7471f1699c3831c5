/*-------------------------------------------------------------------------
 *
 * aggfuncs_internal.h
 *	  What kappa's aggregates share: their kinds, the element type they were
 *	  called for, and the helpers for values and serialized states (defined
 *	  in aggfuncs.c).  Private to aggfuncs*.c.
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

/* The serialized format's version; the second byte. */
#define KD_FORMAT_VERSION	1

/* What an aggregate needs of its argument's type. */
#define KD_NEED_HASH		0x01	/* default hash opclass: hash and equality */
#define KD_NEED_ORDER		0x02	/* default btree opclass: comparison and "<" */
#define KD_NEED_HASH64		0x04	/* default hash opclass: extended hash */

/* The argument type of a state, with what the aggregate needs of it. */
typedef struct KdType
{
	Oid			type;			/* element type (a base type, never a domain) */
	Oid			collation;		/* input collation, or InvalidOid */
	int16		typlen;
	bool		typbyval;
	char		typalign;
	bool		image_hash;		/* no hash opclass: hash the binary image */
	TypeCacheEntry *tce;		/* equality, hash, comparison, "<" */
} KdType;

/* A send or receive function, cached in a serialize or deserialize call. */
typedef struct KdIoCache
{
	Oid			type;
	Oid			ioparam;
	FmgrInfo	fn;
} KdIoCache;

extern Oid kd_arg_collation(FunctionCallInfo fcinfo, Oid type);
extern Oid kd_arg_type(FunctionCallInfo fcinfo, char kind);
extern char kd_begin_read(StringInfo buf, bytea *data, const char *kinds, Oid *type, Oid *collation);
extern void kd_begin_state(StringInfo buf, char kind, KdType *t);
extern void kd_check_context(FunctionCallInfo fcinfo, MemoryContext *aggcxt, char kind);
extern void kd_check_same(char kind1, KdType *t1, char kind2, KdType *t2);
extern int kd_compare_values(KdType *t, Datum a, Datum b);
extern Datum kd_copy_value(KdType *t, MemoryContext mcxt, Datum value);
extern void kd_end_read(StringInfo buf);
extern void kd_free_value(KdType *t, Datum value);
extern const char *kd_kind_name(char kind);
extern Datum kd_make_array(KdType *t, Datum *values, bool *nulls, int64 n);
extern void kd_sort_values(KdType *t, Datum *values, int n);
extern int kd_image_cmp(KdType *t, Datum a, Datum b);
extern KdIoCache *kd_io_cache(FunctionCallInfo fcinfo, Oid type, bool send);
extern Datum kd_recv_value(StringInfo buf, KdIoCache *io);
extern void kd_send_value(StringInfo buf, KdIoCache *io, Datum value, MemoryContext tmp);
extern MemoryContext kd_temp_context(void);
extern void kd_type_init(KdType *t, char kind, Oid type, Oid collation);
extern void kd_corrupt(const char *what);
extern uint64 kd_image_hash(KdType *t, Datum value, uint64 seed);

#endif							/* KAPPA_AGGFUNCS_INTERNAL_H */
