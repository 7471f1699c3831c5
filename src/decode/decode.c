/*-------------------------------------------------------------------------
 *
 * decode.c
 *	  Decoding of event payloads: JSON bytes to a stream's typed columns,
 *	  and kappa.decode, which shows what a worker makes of a payload.
 *
 * A decoder is made once per stream (kappa_decoder_create): it compiles
 * the columns' JSON paths into a trie for json_scan.c, and looks up each
 * column's base type and input function, so that decoding a message
 * (kappa_decode) needs no catalog access.  A message is scanned once;
 * then each column takes the value of its first path present in the
 * payload (even a JSON null), and converts it by its base type:
 *
 * - text, varchar: built directly from the string (or the number's text,
 *	 or "true"/"false"); varchar(n) lengths as varcharin checks them.
 * - int2/4/8, float4/8: parsed directly when the JSON number or string is
 *	 plain, else by the input function, whose rules and messages apply.
 * - bool: JSON true/false; strings go through boolin.
 * - timestamptz, timestamp (the event time's or any other column's): the
 *	 common ISO 8601 forms are parsed here; other strings go through the
 *	 input function.  JSON numbers count the stream's time_unit since
 *	 1970-01-01 00:00 UTC, exactly (decimal, not floating point), rounded
 *	 to the microsecond, halves away from zero; "us" takes whole numbers.
 * - json, jsonb: the value's JSON text through the input function.
 * - anything else: the string (or the number's text) through the type's
 *	 input function.  Numbers never go to bool, booleans and containers
 *	 only to text, bool, json and jsonb.
 *
 * Domains are decoded as their base type, then their constraints are
 * checked (domain_check), as storing the value in a column would.
 *
 * Times: strings without a zone are read in the session's TimeZone, which
 * kappa fixes to UTC (catalog.c), so a time without a zone is UTC.  A
 * numeric date whose field order is not evident ("05/12/2026") is never
 * guessed: it is a reason, with SQLSTATE 22007; ISO 8601 dates
 * (2026-05-12), and dates with the month's name, are read.  Nor are the
 * words Postgres reads as of the current transaction ("now", "today",
 * "tomorrow", "yesterday"): a replay would read another time.  An event
 * time must be finite.
 *
 * Errors.  A payload that cannot be decoded yields false, a reason and a
 * SQLSTATE (kappa_decoder_sqlstate), for a dead letter.  Postgres 15 has no
 * soft input errors.  The input functions of the built-in types listed in
 * safe_types are pure parsers: they hold no locks, buffers or other
 * resources when they raise a data exception (SQLSTATE class 22), and
 * leave no state behind, so they are called inside PG_TRY without a
 * subtransaction, and such an error becomes a reason.  Any other error,
 * and any error of another type's input function (reg* types, text search
 * types, extension and user types, domain constraints), is raised: the
 * engine's caller rolls back and dead-letters the message (poison.c), and
 * kappa.decode catches it in a subtransaction, so both give the same
 * verdict.  Some input functions (enums, reg* types) read the catalog
 * through the syscache, so a stream with such columns must be decoded
 * inside a transaction.
 *
 * Memory.  A decoder owns a per-message memory context, reset at the start
 * of each kappa_decode, and an arena that grows as needed: by-reference
 * values and the reason live there, valid until the next call.  Text
 * values are carved from the arena, so a typical message costs no palloc
 * at all.  A decoder is used by one backend at a time and takes no locks.
 *
 * src/decode/decode.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "decode/decode.h"
#include "decode/json_scan.h"
#include "guc.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/columns.h"
#include "subxact.h"

/* Microseconds from 1970-01-01 to 2000-01-01, Postgres's epoch. */
#define UNIX_TO_PG_EPOCH_US \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/* How a column's values are converted: by its base type. */
typedef enum DecodeKind
{
	DECODE_TEXT,				/* text, varchar, bpchar */
	DECODE_BOOL,
	DECODE_INT2,
	DECODE_INT4,
	DECODE_INT8,
	DECODE_FLOAT4,
	DECODE_FLOAT8,
	DECODE_TIMESTAMPTZ,
	DECODE_TIMESTAMP,
	DECODE_JSON,				/* json, jsonb: the value's JSON text */
	DECODE_OTHER				/* the input function, from a string */
} DecodeKind;

/* A column as the decoder needs it. */
typedef struct DecodeColumn
{
	DecodeKind	kind;
	bool		direct;			/* text, varchar: no input function */
	bool		safe;			/* its input function only raises class 22 */
	bool		is_date;		/* date, timestamp(tz): order must be evident */
	bool		is_clock;		/* date, time(tz), timestamp(tz): no "now" */
	Oid			domain;			/* the declared type, if a domain */
	void	   *domain_extra;	/* domain_check's cache */
	bool		not_null;
	int32		typmod;			/* the base type's */
	Oid			typioparam;
	FmgrInfo	input;			/* the base type's input function */
	const char *type_name;		/* the declared type, for reasons */
	int			npaths;
	int32	   *nodes;			/* trie node of each path */
	char	  **paths;			/* as written, for reasons */
	int			out;			/* its place in values[]: attnum - 1 */
} DecodeColumn;

struct KappaDecoder
{
	MemoryContext cxt;			/* where the decoder lives */
	MemoryContext msg_cxt;		/* reset per message */
	size_t		max_payload;
	KappaTimeUnit time_unit;
	int			event_time_col; /* its place in values[], or -1 */
	bool		convert;		/* the database encoding is not UTF-8 */
	int			sqlstate;		/* of the last reason */
	const char *path;			/* the field being converted, for errors */
	int			ncolumns;
	DecodeColumn *columns;
	KappaJsonTrie *trie;
	KappaJsonValue *found;		/* per trie node, for the current message */
	const char *payload;		/* the current message */
	char	   *arena;			/* text values and C strings, per message */
	size_t		arena_size;
	size_t		arena_used;
};

/* The base types decoded otherwise than by DECODE_OTHER. */
static const struct
{
	Oid			typid;
	DecodeKind	kind;
}			decode_kinds[] =
{
	{TEXTOID, DECODE_TEXT},
	{VARCHAROID, DECODE_TEXT},
	{BPCHAROID, DECODE_TEXT},
	{BOOLOID, DECODE_BOOL},
	{INT2OID, DECODE_INT2},
	{INT4OID, DECODE_INT4},
	{INT8OID, DECODE_INT8},
	{FLOAT4OID, DECODE_FLOAT4},
	{FLOAT8OID, DECODE_FLOAT8},
	{TIMESTAMPTZOID, DECODE_TIMESTAMPTZ},
	{TIMESTAMPOID, DECODE_TIMESTAMP},
	{JSONOID, DECODE_JSON},
	{JSONBOID, DECODE_JSON}
};

/* JSON types, with their articles, for reasons. */
static const char *const json_type_names[] = {
	[KAPPA_JSON_STRING] = "a string",
	[KAPPA_JSON_NUMBER] = "a number",
	[KAPPA_JSON_TRUE] = "a boolean",
	[KAPPA_JSON_FALSE] = "a boolean",
	[KAPPA_JSON_NULL] = "null",
	[KAPPA_JSON_OBJECT] = "an object",
	[KAPPA_JSON_ARRAY] = "an array"
};

/*
 * Built-in types whose input functions are pure parsers (see the banner):
 * called without a subtransaction, their data exceptions become reasons.
 */
static const Oid safe_types[] = {
	BOOLOID, INT2OID, INT4OID, INT8OID, FLOAT4OID, FLOAT8OID, NUMERICOID,
	TEXTOID, VARCHAROID, BPCHAROID, CHAROID, NAMEOID, BYTEAOID,
	DATEOID, TIMEOID, TIMETZOID, TIMESTAMPOID, TIMESTAMPTZOID, INTERVALOID,
	UUIDOID, INETOID, CIDROID, MACADDROID, MACADDR8OID, CASHOID, BITOID, VARBITOID,
	JSONOID, JSONBOID, OIDOID, POINTOID, LSEGOID, LINEOID, BOXOID, PATHOID,
	POLYGONOID, CIRCLEOID
};

PG_FUNCTION_INFO_V1(kappa_decode_payload);

static void *arena_alloc(KappaDecoder *d, size_t size);
static const char *mismatch(DecodeColumn *col, const char *path,
							const KappaJsonValue *v);
static int64 value_text(KappaDecoder *d, const KappaJsonValue *v,
						const char *path, char *dst, const char **reason);
static char *value_cstring(KappaDecoder *d, const KappaJsonValue *v,
						   const char *path, const char **reason);
static bool input_guarded(KappaDecoder *d, DecodeColumn *col, const char *path,
						  char *str, bool convert, Datum *value,
						  const char **reason);
static bool decode_text(KappaDecoder *d, DecodeColumn *col, const char *path,
						const KappaJsonValue *v, Datum *value,
						const char **reason);
static bool parse_int(const char *s, size_t len, int64 *result);
static bool parse_float(const char *s, size_t len, bool is_float4,
						Datum *value);
static bool parse_iso_timestamp(const char *s, size_t len, bool with_tz,
								Timestamp *result);
static const char *epoch_timestamp(const char *s, size_t len,
								   KappaTimeUnit unit, Timestamp *result,
								   const char *path, const char *type_name);
static bool decode_value(KappaDecoder *d, DecodeColumn *col, const char *path,
						 const KappaJsonValue *v, Datum *value,
						 const char **reason);
static bool ambiguous_date(const char *s);
static const char *relative_time_word(const char *s);
static void check_domain(KappaDecoder *d, DecodeColumn *col, const char *path,
						 Datum value, bool isnull);
static void decode_verdict(KappaStream *stream, KappaDecoder *decoder, bytea *payload,
						   Datum *result, bool *result_nulls);
static void decode_error_context(void *arg);

/*
 * Prepare a decoder for a stream: compile the columns' paths into one trie,
 * and look up each column's base type and its input function.
 */
KappaDecoder *
kappa_decoder_create(KappaStream *stream, size_t max_payload)
{
	KappaDecoder *d = palloc0(sizeof(KappaDecoder));
	List	   *all_paths = NIL;
	int32	   *all_nodes;
	int			i = 0;
	int			n = 0;
	ListCell   *lc;

	d->cxt = CurrentMemoryContext;
	d->msg_cxt = AllocSetContextCreate(CurrentMemoryContext,
									   "kappa decode message",
									   ALLOCSET_DEFAULT_SIZES);
	/* offsets into a payload are 32 bits; no message is near that */
	d->max_payload = Min(max_payload, (size_t) MaxAllocSize);
	d->time_unit = stream->time_unit;
	d->event_time_col = -1;
	d->convert = GetDatabaseEncoding() != PG_UTF8 &&
		GetDatabaseEncoding() != PG_SQL_ASCII;
	d->ncolumns = list_length(stream->columns);
	d->columns = palloc0(sizeof(DecodeColumn) * Max(d->ncolumns, 1));

	foreach(lc, stream->columns)
	{
		KappaColumn *kc = lfirst(lc);
		DecodeColumn *col = &d->columns[i++];
		int32		typmod = kc->typmod;
		Oid			base = getBaseTypeAndTypmod(kc->typid, &typmod);
		Oid			typinput;
		ListCell   *pc;
		int			j = 0;

		getTypeInputInfo(base, &typinput, &col->typioparam);
		fmgr_info(typinput, &col->input);
		col->typmod = typmod;
		if (base != kc->typid)
			col->domain = kc->typid;
		for (int k = 0; k < (int) lengthof(safe_types); k++)
			col->safe |= (safe_types[k] == base);
		col->is_date = (base == DATEOID || base == TIMESTAMPOID || base == TIMESTAMPTZOID);
		col->is_clock = col->is_date || base == TIMEOID || base == TIMETZOID;
		col->out = kc->attnum - 1;
		if (stream->event_time && strcmp(kc->name, stream->event_time) == 0)
			d->event_time_col = col->out;
		col->not_null = kc->not_null;
		col->type_name = format_type_with_typemod(kc->typid, kc->typmod);
		col->npaths = list_length(kc->paths);
		col->paths = palloc(sizeof(char *) * col->npaths);
		foreach(pc, kc->paths)
		{
			char	   *path = lfirst(pc);

			col->paths[j++] = pstrdup(path);
			/* payloads are UTF-8, and so must the keys be to match */
			all_paths = lappend(all_paths, d->convert ?
								pg_server_to_any(path, strlen(path), PG_UTF8) : path);
		}

		col->kind = DECODE_OTHER;
		for (int k = 0; k < (int) lengthof(decode_kinds); k++)
			if (decode_kinds[k].typid == base)
				col->kind = decode_kinds[k].kind;
		col->direct = (base == TEXTOID || base == VARCHAROID) && !d->convert;
	}

	all_nodes = palloc(sizeof(int32) * Max(list_length(all_paths), 1));
	d->trie = kappa_json_trie_build(all_paths, all_nodes);
	d->found = palloc(sizeof(KappaJsonValue) * d->trie->nnodes);
	for (i = 0; i < d->ncolumns; i++)
	{
		DecodeColumn *col = &d->columns[i];

		col->nodes = palloc(sizeof(int32) * Max(col->npaths, 1));
		for (int j = 0; j < col->npaths; j++)
			col->nodes[j] = all_nodes[n++];
	}
	return d;
}

/*
 * Memory for one message's values: carved from the arena, or, once that is
 * used up (a payload whose values overlap, as "data" and "data.x" do),
 * from the per-message context.
 */
static void *
arena_alloc(KappaDecoder *d, size_t size)
{
	void	   *p;

	size = MAXALIGN(size);
	if (d->arena_size - d->arena_used < size)
		return MemoryContextAlloc(d->msg_cxt, size);
	p = d->arena + d->arena_used;
	d->arena_used += size;
	return p;
}

/* The reason for a value of a JSON type the column cannot take. */
static const char *
mismatch(DecodeColumn *col, const char *path, const KappaJsonValue *v)
{
	bool		vowel = strchr("aeioAEIO", col->type_name[0]) != NULL;

	return psprintf("field \"%s\" is %s, not %s %s", path,
					json_type_names[v->type], vowel ? "an" : "a", col->type_name);
}

/*
 * Copy a value's text to dst, which has room for v->len bytes: a string's
 * contents unescaped, or a scalar's JSON text.  Its length, or -1 with a
 * reason if it holds a NUL, which neither text nor a C string can.
 */
static int64
value_text(KappaDecoder *d, const KappaJsonValue *v, const char *path,
		   char *dst, const char **reason)
{
	const char *raw = d->payload + v->start;
	bool		has_nul = false;
	size_t		len = v->len;

	if (v->type == KAPPA_JSON_STRING && v->escaped)
		len = kappa_json_unescape(raw, v->len, dst, &has_nul);
	else
		memcpy(dst, raw, len);
	if (has_nul)
	{
		*reason = psprintf("field \"%s\" contains a NUL character", path);
		d->sqlstate = ERRCODE_UNTRANSLATABLE_CHARACTER;
		return -1;
	}
	return len;
}

/* A value's text (see value_text) as a C string in the arena, or NULL. */
static char *
value_cstring(KappaDecoder *d, const KappaJsonValue *v, const char *path,
			  const char **reason)
{
	char	   *str = arena_alloc(d, v->len + 1);
	int64		len = value_text(d, v, path, str, reason);

	if (len < 0)
		return NULL;
	str[len] = '\0';
	return str;
}

/*
 * Call the column's input function.  For the safe types, a data exception
 * it raises becomes a reason instead; see the banner for why catching it
 * is safe, and why any other error is raised.  With convert, str is UTF-8
 * to be converted to the database encoding first.
 */
static bool
input_guarded(KappaDecoder *d, DecodeColumn *col, const char *path,
			  char *str, bool convert, Datum *value, const char **reason)
{
	volatile bool ok = true;
	ErrorContextCallback context;
	const char *word;

	if (col->is_date && ambiguous_date(str))
	{
		*reason = psprintf("field \"%s\": the order of the date's fields in \"%s\" is ambiguous",
						   path, str);
		d->sqlstate = ERRCODE_INVALID_DATETIME_FORMAT;
		return false;
	}
	if (col->is_clock && (word = relative_time_word(str)) != NULL)
	{
		*reason = psprintf("field \"%s\": \"%s\" in \"%s\" depends on when the event is read",
						   path, word, str);
		d->sqlstate = ERRCODE_INVALID_DATETIME_FORMAT;
		return false;
	}
	d->path = path;
	context.callback = decode_error_context;
	context.arg = d;
	context.previous = error_context_stack;
	error_context_stack = &context;
	if (!col->safe)
	{
		char	   *in = convert ? pg_any_to_server(str, strlen(str), PG_UTF8) : str;

		*value = InputFunctionCall(&col->input, in, col->typioparam, col->typmod);
		error_context_stack = context.previous;
		d->path = NULL;
		return true;
	}
	PG_TRY();
	{
		char	   *in = convert ? pg_any_to_server(str, strlen(str), PG_UTF8) : str;

		*value = InputFunctionCall(&col->input, in, col->typioparam, col->typmod);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		error_context_stack = context.previous;
		MemoryContextSwitchTo(d->msg_cxt);
		edata = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
			PG_RE_THROW();
		FlushErrorState();
		*reason = psprintf("field \"%s\": %s", path, edata->message);
		d->sqlstate = edata->sqlerrcode;
		ok = false;
	}
	PG_END_TRY();
	error_context_stack = context.previous;
	d->path = NULL;
	return ok;
}

/* Errors raised while converting a field say which field it was. */
static void
decode_error_context(void *arg)
{
	KappaDecoder *d = arg;

	if (d->path)
		errcontext("field \"%s\"", d->path);
}

/*
 * Whether a date's text begins with numeric fields in an order that is
 * not evident: one or two digits, a separator, one or two digits, another
 * separator (05/12/2026, 5.12.26).  ISO 8601 begins with the year, and a
 * month's name is no number.
 */
static bool
ambiguous_date(const char *s)
{
	int			n;

	while (*s == ' ')
		s++;
	for (int field = 0; field < 2; field++)
	{
		for (n = 0; *s >= '0' && *s <= '9'; s++)
			n++;
		if (n < 1 || n > 2 || (*s != '/' && *s != '-' && *s != '.'))
			return false;
		s++;
	}
	return *s >= '0' && *s <= '9';
}

/*
 * The word of a date or time's text that Postgres reads as of the current
 * transaction (its input functions accept them among other fields, as in
 * "today 10:00"), or NULL: words are runs of letters, in any case.
 */
static const char *
relative_time_word(const char *s)
{
	static const char *const words[] = {"now", "today", "tomorrow", "yesterday"};

	while (*s)
	{
		const char *start;

		while (*s && !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
			s++;
		start = s;
		while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
			s++;
		for (int i = 0; i < (int) lengthof(words); i++)
		{
			if ((size_t) (s - start) == strlen(words[i]) &&
				pg_strncasecmp(start, words[i], s - start) == 0)
				return words[i];
		}
	}
	return NULL;
}

/*
 * A text, varchar or bpchar value, from a string, a number's text, or a
 * boolean's ("true", "false"); built directly for text and varchar.
 */
static bool
decode_text(KappaDecoder *d, DecodeColumn *col, const char *path,
			const KappaJsonValue *v, Datum *value, const char **reason)
{
	text	   *t;
	int64		n;

	if (v->type == KAPPA_JSON_OBJECT || v->type == KAPPA_JSON_ARRAY)
	{
		*reason = mismatch(col, path, v);
		d->sqlstate = ERRCODE_INVALID_TEXT_REPRESENTATION;
		return false;
	}
	if (!col->direct)
	{
		char	   *str = value_cstring(d, v, path, reason);

		return str != NULL &&
			input_guarded(d, col, path, str, d->convert && v->type == KAPPA_JSON_STRING,
						  value, reason);
	}

	t = arena_alloc(d, VARHDRSZ + v->len);
	if ((n = value_text(d, v, path, VARDATA(t), reason)) < 0)
		return false;
	SET_VARSIZE(t, VARHDRSZ + n);

	/* too long for varchar(n): varcharin may trim spaces, or says why not */
	if (col->typmod >= (int32) VARHDRSZ && n > col->typmod - (int32) VARHDRSZ &&
		pg_mbstrlen_with_len(VARDATA(t), n) > col->typmod - (int32) VARHDRSZ)
		return input_guarded(d, col, path, text_to_cstring(t), false,
							 value, reason);
	*value = PointerGetDatum(t);
	return true;
}

/*
 * A plain integer, -?[0-9]{1,18}, which cannot overflow an int64; anything
 * else is left to the input function, with its rules and messages.
 */
static inline bool
parse_int(const char *s, size_t len, int64 *result)
{
	size_t		i = (len > 0 && s[0] == '-') ? 1 : 0;
	bool		neg = i == 1;
	int64		v = 0;

	if (len == i || len - i > 18)
		return false;
	for (; i < len; i++)
	{
		unsigned	c = (unsigned char) s[i] - '0';

		if (c > 9)
			return false;
		v = v * 10 + c;
	}
	*result = neg ? -v : v;
	return true;
}

/*
 * A float4 or float8 from a JSON number's text, as float4in/float8in would
 * read it (they use strtof/strtod too); false for whatever needs their
 * special cases: out of range, underflow, too long.
 */
static inline bool
parse_float(const char *s, size_t len, bool is_float4, Datum *value)
{
	char		buf[64];
	char	   *endptr;
	float8		f8;

	if (!is_float4 && kappa_json_number_float8(s, len, &f8))
	{
		*value = Float8GetDatum(f8);
		return true;
	}
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	if (is_float4)
	{
		float4		f = strtof(buf, &endptr);

		if (errno != 0 || isinf(f) || endptr != buf + len)
			return false;
		*value = Float4GetDatum(f);
	}
	else
	{
		f8 = strtod(buf, &endptr);
		if (errno != 0 || isinf(f8) || endptr != buf + len)
			return false;
		*value = Float8GetDatum(f8);
	}
	return true;
}

/* Two digits at s, or -1. */
static inline int
two_digits(const char *s)
{
	unsigned	a = (unsigned char) s[0] - '0';
	unsigned	b = (unsigned char) s[1] - '0';

	return (a > 9 || b > 9) ? -1 : (int) (a * 10 + b);
}

/*
 * The common ISO 8601 forms, YYYY-MM-DD{T| }HH:MM:SS[.f{1,6}][Z|+-HH[:MM]|
 * +-HHMM], for years 1 to 9999, read as timestamptz_in (with_tz) or
 * timestamp_in (which ignores the zone) would; false for anything else,
 * which goes to the input function.  A timestamptz without a zone is in the
 * session's time zone, so it too is left to the input function.
 */
static bool
parse_iso_timestamp(const char *s, size_t len, bool with_tz, Timestamp *result)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = s + 19;
	const char *end = s + len;
	int			year,
				mon,
				day,
				hour,
				min,
				sec,
				hi,
				lo;
	int64		fsec = 0;
	int			zone = 0;		/* seconds east of UTC */
	bool		has_zone = false;

	if (len < 19 || s[4] != '-' || s[7] != '-' ||
		(s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':')
		return false;
	hi = two_digits(s);
	lo = two_digits(s + 2);
	mon = two_digits(s + 5);
	day = two_digits(s + 8);
	hour = two_digits(s + 11);
	min = two_digits(s + 14);
	sec = two_digits(s + 17);
	if (hi < 0 || lo < 0)
		return false;
	year = hi * 100 + lo;
	if (year < 1 || mon < 1 || mon > 12 || day < 1 || hour < 0 || hour > 23 ||
		min < 0 || min > 59 || sec < 0 || sec > 59 ||
		day > mdays[mon - 1] + (mon == 2 && isleap(year)))
		return false;

	if (p < end && *p == '.')
	{
		int			digits = 0;

		for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++)
		{
			if (digits == 6)
				return false;	/* rounding: the input function's business */
			fsec = fsec * 10 + (*p - '0');
		}
		if (digits == 0)
			return false;
		for (; digits < 6; digits++)
			fsec *= 10;
	}
	if (p < end && *p == 'Z')
	{
		has_zone = true;
		p++;
	}
	else if (p < end && (*p == '+' || *p == '-'))
	{
		int			sign = (*p == '-') ? -1 : 1;
		int			zh,
					zm = 0;

		if (end - p < 3 || (zh = two_digits(p + 1)) < 0 || zh > 15)
			return false;
		p += 3;
		if (p < end)
		{
			if (*p == ':')
				p++;
			if (end - p < 2 || (zm = two_digits(p)) < 0 || zm > 59)
				return false;
			p += 2;
		}
		zone = sign * (zh * SECS_PER_HOUR + zm * SECS_PER_MINUTE);
		has_zone = true;
	}
	if (p != end || (with_tz && !has_zone))
		return false;

	*result = (int64) (date2j(year, mon, day) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY +
		((int64) ((hour * MINS_PER_HOUR + min) * SECS_PER_MINUTE + sec)) * USECS_PER_SEC +
		fsec;
	if (with_tz)
		*result -= (int64) zone * USECS_PER_SEC;
	return true;
}

/*
 * A timestamp from a JSON number counting unit since the Unix epoch, read
 * exactly: NULL, or the reason it cannot be one.
 */
static const char *
epoch_timestamp(const char *s, size_t len, KappaTimeUnit unit, Timestamp *result,
				const char *path, const char *type_name)
{
	int			scale = unit == KAPPA_TIME_S ? 6 : unit == KAPPA_TIME_MS ? 3 : 0;
	int64		us;
	int			rc = kappa_json_number_scaled(s, len, scale, UNIX_TO_PG_EPOCH_US, &us);

	if (rc > 0 && unit == KAPPA_TIME_US)
		return psprintf("field \"%s\": value \"%.*s\" is not a whole number of microseconds",
						path, (int) len, s);
	if (rc < 0 || !IS_VALID_TIMESTAMP(us))
		return psprintf("field \"%s\": value \"%.*s\" is out of range for type %s",
						path, (int) len, s, type_name);
	*result = us;
	return NULL;
}

/*
 * Convert one present, non-null value for its column; false with a reason
 * if it cannot be.
 */
static bool
decode_value(KappaDecoder *d, DecodeColumn *col, const char *path,
			 const KappaJsonValue *v, Datum *value, const char **reason)
{
	const char *raw = d->payload + v->start;
	bool		scalar = v->type == KAPPA_JSON_STRING || v->type == KAPPA_JSON_NUMBER;
	char	   *str;
	int64		i;
	Timestamp	ts = 0;

	switch (col->kind)
	{
		case DECODE_TEXT:
			return decode_text(d, col, path, v, value, reason);

		case DECODE_BOOL:
			if (v->type == KAPPA_JSON_TRUE || v->type == KAPPA_JSON_FALSE)
			{
				*value = BoolGetDatum(v->type == KAPPA_JSON_TRUE);
				return true;
			}
			if (v->type != KAPPA_JSON_STRING)
				break;
			goto input;

		case DECODE_INT2:
		case DECODE_INT4:
		case DECODE_INT8:
			if (!scalar)
				break;
			if (!v->escaped && parse_int(raw, v->len, &i))
			{
				if (col->kind == DECODE_INT8)
				{
					*value = Int64GetDatum(i);
					return true;
				}
				if (col->kind == DECODE_INT4 && i >= PG_INT32_MIN && i <= PG_INT32_MAX)
				{
					*value = Int32GetDatum((int32) i);
					return true;
				}
				if (col->kind == DECODE_INT2 && i >= PG_INT16_MIN && i <= PG_INT16_MAX)
				{
					*value = Int16GetDatum((int16) i);
					return true;
				}
			}
			goto input;

		case DECODE_FLOAT4:
		case DECODE_FLOAT8:
			if (!scalar)
				break;
			if (!v->escaped &&
				(v->type == KAPPA_JSON_NUMBER || kappa_json_is_number(raw, v->len)) &&
				parse_float(raw, v->len, col->kind == DECODE_FLOAT4, value))
				return true;
			goto input;

		case DECODE_TIMESTAMPTZ:
		case DECODE_TIMESTAMP:
			if (v->type == KAPPA_JSON_NUMBER)
			{
				*reason = epoch_timestamp(raw, v->len, d->time_unit, &ts,
										  path, col->type_name);
				if (*reason)
				{
					d->sqlstate = ERRCODE_DATETIME_VALUE_OUT_OF_RANGE;
					return false;
				}
				*value = TimestampGetDatum(ts);
				return true;
			}
			if (v->type != KAPPA_JSON_STRING)
				break;
			if (!v->escaped &&
				parse_iso_timestamp(raw, v->len, col->kind == DECODE_TIMESTAMPTZ, &ts))
			{
				*value = TimestampGetDatum(ts);
				return true;
			}
			goto input;

		case DECODE_JSON:
			/* the JSON text itself, quotes and all */
			str = arena_alloc(d, v->len + 3);
			if (v->type == KAPPA_JSON_STRING)
				raw--;
			memcpy(str, raw, v->len + (v->type == KAPPA_JSON_STRING ? 2 : 0));
			str[v->len + (v->type == KAPPA_JSON_STRING ? 2 : 0)] = '\0';
			return input_guarded(d, col, path, str, d->convert, value, reason);

		case DECODE_OTHER:
			if (!scalar)
				break;
			goto input;
	}
	*reason = mismatch(col, path, v);
	d->sqlstate = ERRCODE_INVALID_TEXT_REPRESENTATION;
	return false;

input:
	str = value_cstring(d, v, path, reason);
	return str != NULL &&
		input_guarded(d, col, path, str,
					  d->convert && v->type == KAPPA_JSON_STRING, value, reason);
}

/*
 * Decode one payload into values[]/nulls[]; false with a reason if it
 * must be dead-lettered.  See decode.h.
 */
bool
kappa_decode(KappaDecoder *d, const char *payload, size_t len,
			 Datum *values, bool *nulls, const char **reason)
{
	MemoryContext old;
	KappaJsonError error;
	size_t		need;
	bool		ok = true;

	MemoryContextReset(d->msg_cxt);
	old = MemoryContextSwitchTo(d->msg_cxt);
	*reason = NULL;

	d->sqlstate = ERRCODE_INVALID_TEXT_REPRESENTATION;
	d->path = NULL;
	if (len > d->max_payload)
	{
		*reason = psprintf("payload of %zu bytes exceeds the limit of %zu bytes",
						   len, d->max_payload);
		d->sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		ok = false;
	}
	else if (len == 0)
	{
		*reason = "payload is empty";
		ok = false;
	}
	else if (!kappa_json_scan(d->trie, payload, len, d->found, &error))
	{
		switch (error.kind)
		{
			case KAPPA_JSON_ERROR_SYNTAX:
				*reason = psprintf("invalid JSON at byte %zu: %s",
								   error.offset, error.message);
				break;
			case KAPPA_JSON_ERROR_UTF8:
				*reason = psprintf("payload is not valid UTF-8 at byte %zu",
								   error.offset);
				d->sqlstate = ERRCODE_CHARACTER_NOT_IN_REPERTOIRE;
				break;
			case KAPPA_JSON_ERROR_BLANK:
				*reason = "payload holds only white space";
				break;
			case KAPPA_JSON_ERROR_DEPTH:
				*reason = "JSON nested too deeply";
				d->sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
				break;
			case KAPPA_JSON_ERROR_NOT_OBJECT:
				*reason = psprintf("payload is %s, not a JSON object", error.message);
				break;
		}
		ok = false;
	}
	if (!ok)
	{
		MemoryContextSwitchTo(old);
		return false;
	}

	/* room for every text value and C string of a message, in most cases */
	need = len + d->ncolumns * (MAXIMUM_ALIGNOF + VARHDRSZ + 1) + 64;
	if (d->arena_size < need)
	{
		if (d->arena)
			pfree(d->arena);
		d->arena_size = Max(need + len, 1024);
		d->arena = MemoryContextAlloc(d->cxt, d->arena_size);
	}
	d->arena_used = 0;
	d->payload = payload;

	for (int i = 0; i < d->ncolumns && ok; i++)
	{
		DecodeColumn *col = &d->columns[i];
		const KappaJsonValue *v = NULL;
		int			o = col->out;
		int			j;

		values[o] = (Datum) 0;
		nulls[o] = true;
		for (j = 0; j < col->npaths; j++)
		{
			v = &d->found[col->nodes[j]];
			if (v->type != KAPPA_JSON_NONE)
				break;
		}
		if (j == col->npaths)
		{
			if (col->not_null)
			{
				*reason = psprintf("missing field \"%s\"", col->paths[0]);
				d->sqlstate = ERRCODE_NULL_VALUE_NOT_ALLOWED;
				ok = false;
			}
		}
		else if (v->type == KAPPA_JSON_NULL)
		{
			if (col->not_null)
			{
				*reason = psprintf("field \"%s\" is null", col->paths[j]);
				d->sqlstate = ERRCODE_NULL_VALUE_NOT_ALLOWED;
				ok = false;
			}
		}
		else if (decode_value(d, col, col->paths[j], v, &values[o], reason))
			nulls[o] = false;
		else
			ok = false;
		if (ok && OidIsValid(col->domain))
			check_domain(d, col, j < col->npaths ? col->paths[j] : col->paths[0],
						 values[o], nulls[o]);
	}
	if (ok && d->event_time_col >= 0)
	{
		if (nulls[d->event_time_col])
		{
			*reason = "the event time is null";
			d->sqlstate = ERRCODE_NULL_VALUE_NOT_ALLOWED;
			ok = false;
		}
		else if (TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(values[d->event_time_col])))
		{
			*reason = "the event time is infinite";
			d->sqlstate = ERRCODE_DATETIME_VALUE_OUT_OF_RANGE;
			ok = false;
		}
	}
	MemoryContextSwitchTo(old);
	return ok;
}

/*
 * Check a value of a domain column against the domain's constraints, as
 * storing it would; an error is raised (see the banner).
 */
static void
check_domain(KappaDecoder *d, DecodeColumn *col, const char *path, Datum value, bool isnull)
{
	ErrorContextCallback context;

	d->path = path;
	context.callback = decode_error_context;
	context.arg = d;
	context.previous = error_context_stack;
	error_context_stack = &context;
	domain_check(value, isnull, col->domain, &col->domain_extra, d->cxt);
	error_context_stack = context.previous;
	d->path = NULL;
}

/* The SQLSTATE of the reason kappa_decode last gave. */
const char *
kappa_decoder_sqlstate(KappaDecoder *d)
{
	return unpack_sql_state(d->sqlstate);
}

/* The field being converted when an error was raised, or NULL. */
const char *
kappa_decoder_field(KappaDecoder *d)
{
	return d->path;
}

/*
 * kappa.decode(stream, payload) returns (ok, reason, values, sqlstate):
 * what the stream's worker makes of the payload, each column's value in
 * its type's output form.  The verdict is the worker's: an error an input
 * function or a domain raises is caught (in a subtransaction) and given
 * as the reason, as the worker dead-letters such a message; the settings
 * and the rights are the worker's (the stream's owner, with kappa's fixed
 * settings), so only the stream's owner may ask.
 */
Datum
kappa_decode_payload(PG_FUNCTION_ARGS)
{
	KappaStream *stream = kappa_stream_load_owned(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	bytea	   *payload = PG_GETARG_BYTEA_PP(1);
	TupleDesc	tupdesc;
	Datum		result[4];
	bool		result_nulls[4] = {false, false, false, false};
	KappaSubxact sub;
	int			save_nestlevel;
	KappaDecoder *decoder;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	save_nestlevel = kappa_settings_enter();
	/* the worker's limit on payloads, read as a worker reads it */
	decoder = kappa_decoder_create(stream, kappa_max_payload);
	kappa_subxact_begin(&sub);
	PG_TRY();
	{
		KappaOwnerAccess access;

		kappa_owner_enter(&access, stream->owner);
		decode_verdict(stream, decoder, payload, result, result_nulls);
		kappa_owner_leave(&access);
		kappa_subxact_commit(&sub);
	}
	PG_CATCH();
	{
		const char *field = kappa_decoder_field(decoder);
		ErrorData  *edata = kappa_subxact_abort(&sub);

		if (kappa_error_is_transient(edata->sqlerrcode))
			ReThrowError(edata);
		result[0] = BoolGetDatum(false);
		result[1] = CStringGetTextDatum(field ?
										psprintf("field \"%s\": %s", field, kappa_error_text(edata)) :
										kappa_error_text(edata));
		result_nulls[2] = true;
		result[3] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
	}
	PG_END_TRY();
	kappa_settings_leave(save_nestlevel);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  result, result_nulls)));
}

/*
 * kappa.decode's verdict on a payload, into its result columns: ok,
 * reason, values (as jsonb of the columns' output forms), sqlstate.
 */
static void
decode_verdict(KappaStream *stream, KappaDecoder *decoder, bytea *payload,
			   Datum *result, bool *result_nulls)
{
	/* the stream's columns and its metadata columns, as in the engine */
	int			natts = list_length(stream->columns) + 4;
	Datum	   *values = palloc(sizeof(Datum) * natts);
	bool	   *nulls = palloc(sizeof(bool) * natts);
	const char *reason;
	JsonbParseState *state = NULL;
	JsonbValue *object;
	ListCell   *lc;
	int			i = 0;

	if (!kappa_decode(decoder, VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload),
					  values, nulls, &reason))
	{
		result[0] = BoolGetDatum(false);
		result[1] = CStringGetTextDatum(reason);
		result_nulls[2] = true;
		result[3] = CStringGetTextDatum(kappa_decoder_sqlstate(decoder));
		return;
	}
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	foreach(lc, stream->columns)
	{
		KappaColumn *col = lfirst(lc);
		JsonbValue	k,
					v;

		k.type = jbvString;
		k.val.string.val = col->name;
		k.val.string.len = strlen(col->name);
		if (nulls[col->attnum - 1])
			v.type = jbvNull;
		else
		{
			Oid			typoutput;
			bool		varlena;

			getTypeOutputInfo(col->typid, &typoutput, &varlena);
			v.type = jbvString;
			v.val.string.val = OidOutputFunctionCall(typoutput, values[col->attnum - 1]);
			v.val.string.len = strlen(v.val.string.val);
		}
		pushJsonbValue(&state, WJB_KEY, &k);
		pushJsonbValue(&state, WJB_VALUE, &v);
		i++;
	}
	object = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	result[0] = BoolGetDatum(true);
	result_nulls[1] = true;
	result[2] = JsonbPGetDatum(JsonbValueToJsonb(object));
	result_nulls[3] = true;
}
