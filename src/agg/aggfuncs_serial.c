/*-------------------------------------------------------------------------
 *
 * aggfuncs_serial.c
 *	  Serialized states of kappa's aggregates: the format every one of them
 *	  shares, and the writer and reader their serialize and deserialize
 *	  functions use, so that each of those says only what its state holds.
 *
 * A kappa view stores its aggregates' states (kappa.view_state) and
 * restores them after a restart, and Postgres passes them between parallel
 * workers, so a serialized state must be readable with nothing but its
 * bytes, by this version and by the next.  Every state is a bytea:
 *
 *	kind (1 byte)  format version (1 byte, KD_FORMAT_VERSION)
 *	element type OID (4 bytes)  collation OID (4 bytes)
 *	the contents, as each aggregate defines them
 *
 * where integers are in network byte order (pqformat.h) and each value of
 * the element type is its length (4 bytes) and its type's binary send
 * format.  A stored state must still be read after an upgrade: never change
 * what an existing kind writes; a new layout needs a new format version.
 *
 * A serialize function opens a KappaStateWriter (which checks the calling
 * context and writes the header), appends its contents with pq_send* into
 * the writer's buf and kappa_state_write_count/_value, and returns
 * kappa_state_write_end.  A deserialize function opens a KappaStateReader
 * (context check, header, kind among the aggregate's own), makes its state
 * from the reader's kind, type and collation, reads its contents with
 * pq_getmsg* from the reader's buf and kappa_state_read_count/_values, and
 * calls kappa_state_read_end, which fails on bytes left over.  The send or
 * receive function is looked up when the first count or value is written
 * or read (kappa_state_read_expect_values: at once), never for a state
 * that holds no values of its type.
 *
 * Memory and lifetime.  The send and receive functions run in a short-lived
 * child of the current memory context, reset after each value, so their
 * garbage does not stay with the state.  A deserialized state is made in
 * the current memory context (as nodeAgg.c and agg/aggregate.c expect).
 * The functions' FmgrInfo is cached in the calling support function's
 * fn_extra.  No rights, locks or transactions of their own.
 *
 * src/agg/aggfuncs_serial.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "agg/aggfuncs_internal.h"

/* The serialized format's version; the second byte. */
#define KD_FORMAT_VERSION	1

/* ------------------------------------------------------------------------
 * The format
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
static void
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
static char
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
static void
kappa_value_end_read(StringInfo buf)
{
	if (buf->cursor != buf->len)
		kappa_value_corrupt("trailing bytes");
	pfree(buf->data);
}

/* The send (or receive) function of a type, cached in the call's fn_extra. */
static KappaValueIo *
kappa_value_io_cache(FunctionCallInfo fcinfo, Oid type, bool send)
{
	KappaValueIo *cache = (KappaValueIo *) fcinfo->flinfo->fn_extra;

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
static MemoryContext
kappa_value_temp_context(void)
{
	return AllocSetContextCreate(CurrentMemoryContext, "kappa aggregate state I/O",
								 ALLOCSET_SMALL_SIZES);
}

/* Append a value in its type's binary format, with its length first. */
static void
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
 * Read a value written by kappa_value_send_value, allocated in the current
 * memory context.  The byte after the value is zeroed during the call (buf
 * is our own copy) and restored.
 */
static Datum
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
 * Writing a state: what a serialize function does
 * ------------------------------------------------------------------------
 */

/*
 * Start serializing a state of a kind over t (NULL for a state that holds
 * no values of a type), as the aggregate's serialize function called with
 * fcinfo: fail unless called as an aggregate, then write the header.
 */
void
kappa_state_write_begin(KappaStateWriter *w, FunctionCallInfo fcinfo, char kind,
						KappaValueType *t)
{
	MemoryContext aggcxt;

	kappa_value_check_context(fcinfo, &aggcxt, kind);
	w->fcinfo = fcinfo;
	w->type = t ? t->type : InvalidOid;
	w->io = NULL;
	w->scratch = NULL;
	kappa_value_begin_state(&w->buf, kind, t);
}

/* The values' send function and scratch memory, made at the first need. */
static void
kappa_state_writer_prepare(KappaStateWriter *w)
{
	if (w->io != NULL)
		return;
	w->io = kappa_value_io_cache(w->fcinfo, w->type, true);
	w->scratch = kappa_value_temp_context();
}

/*
 * Append the number of values that follow.  The send function is looked
 * up here, so that a type without one fails even when there are none.
 */
void
kappa_state_write_count(KappaStateWriter *w, int64 n)
{
	kappa_state_writer_prepare(w);
	pq_sendint64(&w->buf, n);
}

/* Append a value of the state's type: its length, its send format. */
void
kappa_state_write_value(KappaStateWriter *w, Datum value)
{
	kappa_state_writer_prepare(w);
	kappa_value_send_value(&w->buf, w->io, value, w->scratch);
}

/* The finished state, allocated in the current memory context. */
bytea *
kappa_state_write_end(KappaStateWriter *w)
{
	if (w->scratch != NULL)
		MemoryContextDelete(w->scratch);
	return pq_endtypsend(&w->buf);
}

/* ------------------------------------------------------------------------
 * Reading a state: what a deserialize function does
 * ------------------------------------------------------------------------
 */

/*
 * Start deserializing the state in the first argument of fcinfo, the
 * call of a deserialize function whose states are of the given kinds
 * (zero-terminated): fail unless called as an aggregate, copy the bytes,
 * read the header and check its kind.  The kind, type and collation are
 * then in r.
 */
void
kappa_state_read_begin(KappaStateReader *r, FunctionCallInfo fcinfo, const char *kinds)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	MemoryContext aggcxt;

	kappa_value_check_context(fcinfo, &aggcxt, kinds[0]);
	r->fcinfo = fcinfo;
	r->io = NULL;
	r->scratch = NULL;
	r->kind = kappa_value_begin_read(&r->buf, data, kinds, &r->type, &r->collation);
}

/*
 * Look up the values' receive function now, and make the scratch memory
 * they are received in, if not done yet.  A deserialize function calls it
 * before reading anything that may fail, so that a type without a receive
 * function is the error reported.
 */
void
kappa_state_read_expect_values(KappaStateReader *r)
{
	if (r->io != NULL)
		return;
	r->io = kappa_value_io_cache(r->fcinfo, r->type, false);
	r->scratch = kappa_value_temp_context();
}

/*
 * Read a count of values, as kappa_state_write_count wrote it (the
 * caller checks it, or kappa_state_read_values does).
 */
int64
kappa_state_read_count(KappaStateReader *r)
{
	kappa_state_read_expect_values(r);
	return pq_getmsgint64(&r->buf);
}

/*
 * Read one value of the state's type, in the reader's scratch memory: it
 * lasts until the next value that kappa_state_read_values reads, or
 * kappa_state_read_end.  For a value the state keeps a copy of.
 */
Datum
kappa_state_read_value(KappaStateReader *r)
{
	MemoryContext old;
	Datum		value;

	kappa_state_read_expect_values(r);
	old = MemoryContextSwitchTo(r->scratch);
	value = kappa_value_recv_value(&r->buf, r->io);
	MemoryContextSwitchTo(old);
	return value;
}

/*
 * Read n values (a count, from the state: negative is corrupt) and give
 * each to add(state, value).  Each is received, and add runs, in the
 * scratch memory, reset after every value: add copies what it keeps into
 * the state's own memory, and its garbage goes.
 */
void
kappa_state_read_values(KappaStateReader *r, int64 n, KappaStateAddValue add, void *state)
{
	if (n < 0)
		kappa_value_corrupt("bad count");
	kappa_state_read_expect_values(r);
	for (int64 i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(r->scratch);

		add(state, kappa_value_recv_value(&r->buf, r->io));
		MemoryContextSwitchTo(old);
		MemoryContextReset(r->scratch);
	}
}

/* Finish deserializing: free the scratch memory; fail on bytes left over. */
void
kappa_state_read_end(KappaStateReader *r)
{
	if (r->scratch != NULL)
		MemoryContextDelete(r->scratch);
	kappa_value_end_read(&r->buf);
}
