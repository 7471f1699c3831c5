/*-------------------------------------------------------------------------
 *
 * archive_read.c
 *	  Reading Event Hubs Capture files (Avro): kappa_archive_read.
 *
 * A stream's history lives in Capture's format: Avro container files of
 * records "EventData" with SequenceNumber (long), Offset (string, a byte
 * position on Event Hubs), EnqueuedTimeUtc (string, "12/9/2022 4:50:12
 * PM"), SystemProperties and Properties (maps of unions) and Body (null or
 * bytes).  Files written by Azure's Capture and files written by kappa's
 * archive (archive_write.c) are read the same way, with libavro-c, through
 * the schema each file carries: Capture's own files differ from its
 * documented schema (Properties values may be null).  Replay, check and
 * crash recovery read archives with kappa_archive_read_file (history.c);
 * kappa_archive_read shows a file in SQL.
 *
 * A file that cannot be read is an error naming the file and what is
 * wrong with it (missing, truncated, corrupt block, a schema without
 * Capture's fields), never a crash: libavro-c reports errors by return
 * value, which are checked everywhere here.
 *
 * src/archive/archive_read.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include <avro.h>

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "archive/archive.h"
#include "kappa_catalog/archive_files.h"
#include "kappa_catalog/catalog.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kappa_archive_read);

/* The fields of a Capture record, found by name in a file's schema. */
static const char *const capture_fields[] = {
	"SequenceNumber", "Offset", "EnqueuedTimeUtc", "SystemProperties", "Properties", "Body"
};

static void archive_error(const char *path, const char *what) pg_attribute_noreturn();
static void map_to_json(const char *path, avro_value_t *map, StringInfo out,
						ArchiveRecord *r);
static TimestampTz parse_enqueued_time(const char *text, bool *ok);

/* An error about an archive file, with libavro-c's reason. */
static void
archive_error(const char *path, const char *what)
{
	const char *reason = avro_strerror();

	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("could not read archive file \"%s\": %s", path, what),
			 reason && reason[0] ? errdetail("%s", reason) : 0));
}

/*
 * A map of (long | double | string | bytes | null) as a JSON object in out
 * (unless out is NULL); bytes become their hex text.  Notes, in r,
 * x-opt-enqueued-time (epoch ms, exact where EnqueuedTimeUtc has only
 * seconds) and the key, x-opt-partition-key.
 */
static void
map_to_json(const char *path, avro_value_t *map, StringInfo out, ArchiveRecord *r)
{
	size_t		n;

	if (avro_value_get_size(map, &n) != 0)
		archive_error(path, "a property map cannot be read");
	if (out)
		appendStringInfoChar(out, '{');
	for (size_t i = 0; i < n; i++)
	{
		avro_value_t elem;
		avro_value_t branch;
		const char *key;
		int64_t		l;
		double		d;
		const char *s;
		const void *b;
		size_t		len;

		if (avro_value_get_by_index(map, i, &elem, &key) != 0)
			archive_error(path, "a property cannot be read");
		if (avro_value_get_type(&elem) == AVRO_UNION)
		{
			if (avro_value_get_current_branch(&elem, &branch) != 0)
				archive_error(path, "a property's type cannot be read");
		}
		else
			branch = elem;
		if (out == NULL)
		{
			/* only what the record needs: the enqueued time and the key */
			if (r == NULL)
				continue;
			if (strcmp(key, "x-opt-enqueued-time") == 0 && avro_value_get_type(&branch) == AVRO_INT64)
			{
				avro_value_get_long(&branch, &l);
				r->enqueued_ms = l;
			}
			else if (strcmp(key, "x-opt-partition-key") == 0 && avro_value_get_type(&branch) == AVRO_STRING)
			{
				avro_value_get_string(&branch, &s, &len);
				r->key = pnstrdup(s, len > 0 ? len - 1 : 0);
				r->key_len = len > 0 ? len - 1 : 0;
			}
			else if (strcmp(key, "x-opt-partition-key") == 0 && avro_value_get_type(&branch) == AVRO_BYTES)
			{
				avro_value_get_bytes(&branch, &b, &len);
				r->key = palloc(len > 0 ? len : 1);
				memcpy(r->key, b, len);
				r->key_len = len;
			}
			continue;
		}
		if (i > 0)
			appendStringInfoString(out, ", ");
		escape_json(out, key);
		appendStringInfoString(out, ": ");
		switch (avro_value_get_type(&branch))
		{
			case AVRO_INT64:
				avro_value_get_long(&branch, &l);
				appendStringInfo(out, INT64_FORMAT, (int64) l);
				if (r && strcmp(key, "x-opt-enqueued-time") == 0)
					r->enqueued_ms = l;
				break;
			case AVRO_INT32:
				{
					int32_t		v;

					avro_value_get_int(&branch, &v);
					appendStringInfo(out, "%d", v);
				}
				break;
			case AVRO_DOUBLE:
				avro_value_get_double(&branch, &d);
				if (isnan(d) || isinf(d))
					escape_json(out, isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"));
				else
					appendStringInfoString(out, float8out_internal(d));
				break;
			case AVRO_STRING:
				avro_value_get_string(&branch, &s, &len);
				escape_json(out, pnstrdup(s, len > 0 ? len - 1 : 0));
				if (r && strcmp(key, "x-opt-partition-key") == 0)
				{
					r->key = pnstrdup(s, len > 0 ? len - 1 : 0);
					r->key_len = len > 0 ? len - 1 : 0;
				}
				break;
			case AVRO_BYTES:
				avro_value_get_bytes(&branch, &b, &len);
				if (r && strcmp(key, "x-opt-partition-key") == 0)
				{
					r->key = palloc(len > 0 ? len : 1);
					memcpy(r->key, b, len);
					r->key_len = len;
				}
				{
					StringInfoData hex;

					initStringInfo(&hex);
					appendStringInfoString(&hex, "\\x");
					for (size_t k = 0; k < len; k++)
						appendStringInfo(&hex, "%02x", ((const unsigned char *) b)[k]);
					escape_json(out, hex.data);
				}
				break;
			case AVRO_NULL:
				appendStringInfoString(out, "null");
				break;
			default:
				archive_error(path, "a property has a type Capture does not use");
		}
	}
	if (out)
		appendStringInfoChar(out, '}');
}

/* Capture's EnqueuedTimeUtc, "12/9/2022 4:50:12 PM" (UTC), or ISO 8601. */
static TimestampTz
parse_enqueued_time(const char *text, bool *ok)
{
	int			month,
				day,
				year,
				hour,
				min,
				sec;
	char		ampm[3];
	struct pg_tm tm;
	TimestampTz result;

	*ok = false;
	if (sscanf(text, "%d/%d/%d %d:%d:%d %2s", &month, &day, &year, &hour, &min, &sec, ampm) != 7)
		return 0;
	if (hour < 1 || hour > 12 || (strcmp(ampm, "AM") != 0 && strcmp(ampm, "PM") != 0))
		return 0;
	hour = hour % 12 + (strcmp(ampm, "PM") == 0 ? 12 : 0);
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year;
	tm.tm_mon = month;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	if (ValidateDate(DTK_DATE_M, false, false, false, &tm) != 0 ||
		min < 0 || min > 59 || sec < 0 || sec > 60 ||
		tm2timestamp(&tm, 0, NULL, &result) != 0)
		return 0;
	*ok = true;
	return result;
}

/*
 * Read every record of a Capture file, calling emit for each; the property
 * maps as JSON only if want_properties (replay needs just the enqueued time
 * and the key).  An error names the file and, for a bad record, its number.
 */
void
kappa_archive_read_file(const char *path, bool want_properties, ArchiveRecordCallback emit, void *arg)
{
	avro_file_reader_t reader;
	avro_schema_t schema;
	avro_value_iface_t *iface;
	avro_value_t record;
	volatile int64 n = 0;
	int			rc;
	MemoryContext record_cxt;
	MemoryContext outer = CurrentMemoryContext;

	if (access(path, R_OK) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open archive file \"%s\": %m", path)));
	if (avro_file_reader(path, &reader) != 0)
		archive_error(path, "not an Avro container file");
	schema = avro_file_reader_get_writer_schema(reader);
	iface = avro_generic_class_from_schema(schema);
	if (iface == NULL || avro_generic_value_new(iface, &record) != 0)
	{
		avro_file_reader_close(reader);
		archive_error(path, "its schema cannot be used");
	}

	/* each record's memory is freed once emit has used it */
	record_cxt = AllocSetContextCreate(CurrentMemoryContext, "kappa archive record",
									   ALLOCSET_DEFAULT_SIZES);
	PG_TRY();
	{
		avro_value_t fields[lengthof(capture_fields)];
		int			field_index[lengthof(capture_fields)];

		if (!is_avro_record(schema))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("archive file \"%s\" does not hold Capture records", path),
					 errdetail("Its schema is not a record.")));
		/* the fields' places, once per file rather than by name per record */
		for (int i = 0; i < (int) lengthof(capture_fields); i++)
		{
			field_index[i] = avro_schema_record_field_get_index(schema, capture_fields[i]);
			if (field_index[i] < 0)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("archive file \"%s\" does not hold Capture records", path),
						 errdetail("Its records have no field \"%s\".", capture_fields[i])));
		}
		while ((rc = avro_file_reader_read_value(reader, &record)) == 0)
		{
			ArchiveRecord r;
			const char *s;
			size_t		len;
			int64_t		seq;
			StringInfoData json;
			avro_value_t body;

			CHECK_FOR_INTERRUPTS();
			n++;
			MemoryContextReset(record_cxt);
			MemoryContextSwitchTo(record_cxt);
			for (int i = 0; i < (int) lengthof(capture_fields); i++)
			{
				if (avro_value_get_by_index(&record, field_index[i], &fields[i], NULL) != 0)
					archive_error(path, psprintf("record " INT64_FORMAT ": field \"%s\" cannot be read",
												 n, capture_fields[i]));
			}
			memset(&r, 0, sizeof(r));
			r.enqueued_ms = -1;
			if (avro_value_get_long(&fields[0], &seq) != 0)
				archive_error(path, psprintf("record " INT64_FORMAT ": SequenceNumber is not a long", n));
			r.sequence_number = seq;
			if (avro_value_get_string(&fields[1], &s, &len) != 0)
				archive_error(path, psprintf("record " INT64_FORMAT ": Offset is not a string", n));
			r.offset = pnstrdup(s, len > 0 ? len - 1 : 0);
			if (avro_value_get_string(&fields[2], &s, &len) != 0)
				archive_error(path, psprintf("record " INT64_FORMAT ": EnqueuedTimeUtc is not a string", n));
			r.enqueued_time_utc = pnstrdup(s, len > 0 ? len - 1 : 0);
			if (want_properties)
			{
				initStringInfo(&json);
				map_to_json(path, &fields[3], &json, &r);
				r.system_properties = json.data;
				initStringInfo(&json);
				map_to_json(path, &fields[4], &json, NULL);
				r.properties = json.data;
			}
			else
				map_to_json(path, &fields[3], NULL, &r);
			body = fields[5];
			if (avro_value_get_type(&body) == AVRO_UNION &&
				avro_value_get_current_branch(&fields[5], &body) != 0)
				archive_error(path, psprintf("record " INT64_FORMAT ": Body cannot be read", n));
			if (avro_value_get_type(&body) == AVRO_BYTES)
			{
				const void *b;

				avro_value_get_bytes(&body, &b, &len);
				r.body = palloc(len > 0 ? len : 1);
				memcpy(r.body, b, len);
				r.body_len = len;
			}
			else if (avro_value_get_type(&body) != AVRO_NULL)
				archive_error(path, psprintf("record " INT64_FORMAT ": Body is neither bytes nor null", n));
			if (r.enqueued_ms >= 0)
			{
				r.enqueued_time = time_t_to_timestamptz(0) + r.enqueued_ms * INT64CONST(1000);
				r.has_enqueued_time = true;
			}
			else
				r.enqueued_time = parse_enqueued_time(r.enqueued_time_utc, &r.has_enqueued_time);
			MemoryContextSwitchTo(outer);
			emit(&r, arg);
			avro_value_reset(&record);
		}
		if (rc != EOF)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("could not read archive file \"%s\": record " INT64_FORMAT " is corrupt or cut short",
							path, n + 1),
					 errdetail("%s", avro_strerror())));
	}
	PG_FINALLY();
	{
		MemoryContextSwitchTo(outer);
		MemoryContextDelete(record_cxt);
		avro_value_decref(&record);
		avro_value_iface_decref(iface);
		avro_file_reader_close(reader);
	}
	PG_END_TRY();
}

/* What kappa_archive_read_range is doing, for its callback. */
typedef struct RangeRead
{
	int32		partition;
	int64		next;			/* the next offset expected */
	int64		to;				/* records of [next, to) are wanted */
	KappaMessageCallback emit;
	void	   *arg;
} RangeRead;

/* An archive record, as the message it archived, if it is wanted. */
static void
range_record(ArchiveRecord *rec, void *arg)
{
	RangeRead  *rr = arg;
	KappaMessage m;

	/* past the file's recorded range, or read already */
	if (rec->sequence_number < rr->next || rec->sequence_number >= rr->to)
		return;
	if (rec->sequence_number != rr->next)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the archive of partition %d has a gap: offset " INT64_FORMAT " follows " INT64_FORMAT,
						rr->partition, rec->sequence_number, rr->next - 1)));
	memset(&m, 0, sizeof(m));
	m.partition = rr->partition;
	m.offset = rec->sequence_number;
	m.timestamp_ms = rec->enqueued_ms >= 0 ? rec->enqueued_ms :
		rec->has_enqueued_time ? (rec->enqueued_time - SetEpochTimestamp()) / 1000 : -1;
	m.key = rec->key;
	m.key_len = rec->key_len;
	m.payload = rec->body;
	m.len = rec->body_len;
	rr->next++;
	rr->emit(&m, rr->arg);
}

/* The files kappa_archive_read_range reads, as the manifest lists them. */
typedef struct RangeFiles
{
	KappaStream *stream;
	List	   *paths;			/* full paths */
	List	   *lasts;			/* int64 *: each file's last recorded offset */
	MemoryContext cxt;			/* where the lists live */
} RangeFiles;

/* A file the manifest lists, added to the files to read. */
static void
range_file(const char *path, int64 last_offset, void *arg)
{
	RangeFiles *files = arg;

	/* in the caller's memory: SPI's goes with the catalog section */
	MemoryContext spi = MemoryContextSwitchTo(files->cxt);

	/* kappa's own files are under its archive; registered ones absolute */
	files->paths = lappend(files->paths, path[0] == '/' ? pstrdup(path) :
						   psprintf("%s/%s", files->stream->archive, path));
	files->lasts = lappend(files->lasts, palloc(sizeof(int64)));
	*(int64 *) llast(files->lasts) = last_offset;
	MemoryContextSwitchTo(spi);
}

/*
 * Read offsets [from, to) of a partition back from the stream's archive, by
 * the ranges kappa.archive_files records, calling emit for each message in
 * offset order.  An error if the archive does not hold them all.  The
 * manifest is read with a fresh snapshot (not read-only), as history.c
 * plans with one: a worker archives meanwhile, and the plan may count on
 * files it committed since the caller's snapshot.
 */
void
kappa_archive_read_range(KappaStream *stream, int32 partition, int64 from, int64 to,
				   KappaMessageCallback emit, void *arg)
{
	RangeFiles	files = {.stream = stream, .paths = NIL, .lasts = NIL, .cxt = CurrentMemoryContext};
	ListCell   *lc;
	ListCell   *lc2;
	RangeRead	rr;
	KappaCatalogAccess catalog;

	if (from >= to)
		return;
	kappa_catalog_enter(&catalog);
	kappa_archive_files_scan(stream->id, partition, from, range_file, &files);
	kappa_catalog_leave(&catalog);

	rr.partition = partition;
	rr.next = from;
	rr.emit = emit;
	rr.arg = arg;
	forboth(lc, files.paths, lc2, files.lasts)
	{
		if (rr.next >= to)
			break;
		/* only the file's recorded records: any later ones are unrecorded */
		rr.to = Min(to, *(int64 *) lfirst(lc2) + 1);
		kappa_archive_read_file(lfirst(lc), false, range_record, &rr);
	}
	if (rr.next < to)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the archive of stream \"%s\" does not hold offset " INT64_FORMAT " of partition %d",
						stream->name, rr.next, partition)));
}

/* kappa_archive_read's callback: a row of its result. */
static void
emit_row(ArchiveRecord *r, void *arg)
{
	ReturnSetInfo *rsinfo = arg;
	Datum		values[7];
	bool		nulls[7] = {0};

	values[0] = Int64GetDatum(r->sequence_number);
	values[1] = CStringGetTextDatum(r->offset);
	values[2] = TimestampTzGetDatum(r->enqueued_time);
	nulls[2] = !r->has_enqueued_time;
	values[3] = CStringGetTextDatum(r->enqueued_time_utc);
	values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum(r->system_properties));
	values[5] = DirectFunctionCall1(jsonb_in, CStringGetDatum(r->properties));
	if (r->body)
	{
		bytea	   *b = palloc(VARHDRSZ + r->body_len);

		SET_VARSIZE(b, VARHDRSZ + r->body_len);
		memcpy(VARDATA(b), r->body, r->body_len);
		values[6] = PointerGetDatum(b);
	}
	else
		nulls[6] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * kappa_archive_read(path) returns the records of a Capture file.  It
 * reads a server file, so it needs what COPY FROM a file needs.
 */
Datum
kappa_archive_read(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *path = text_to_cstring(PG_GETARG_TEXT_PP(0));

	kappa_require_preload();
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser or a member of pg_read_server_files to read archive files")));
	if (!is_absolute_path(path))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("archive file \"%s\" is not an absolute path", path)));
	InitMaterializedSRF(fcinfo, 0);
	kappa_archive_read_file(path, true, emit_row, rsinfo);
	return (Datum) 0;
}
