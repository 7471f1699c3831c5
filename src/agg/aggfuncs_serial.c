/*-------------------------------------------------------------------------
 *
 * aggfuncs_serial.c
 *	  Serialized states of kappa's aggregates: the format every one of them
 *	  shares, and the helpers their serialize and deserialize functions
 *	  write and read it with.
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
