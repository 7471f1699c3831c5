/*-------------------------------------------------------------------------
 *
 * archive_write.c
 *	  A stream's archive: every consumed message, in Event Hubs Capture's
 *	  format (Avro), under Capture's directory layout.
 *
 * A stream created with archive => DIR has its worker append each message
 * it consumes to the current file of the message's partition:
 *
 *	DIR/{namespace}/{hub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro
 *
 * with the stream's name as namespace, its topic as hub, and the time of
 * the file's first message (UTC).  Records are Capture's EventData:
 * SequenceNumber is the Kafka offset, Offset its text, EnqueuedTimeUtc the
 * broker timestamp as Capture writes it, SystemProperties hold
 * x-opt-enqueued-time (epoch ms), x-opt-sequence-number and the key as
 * x-opt-partition-key, Body the payload (null for a tombstone).  So the
 * same reader (archive_read.c) reads kappa's files and Azure's.
 *
 * Durability: at every flush of the worker, before its transaction
 * commits, each file written to since the last flush is flushed and
 * fsync'd (its directory too, when the file is new), and its row in
 * kappa.archive_files (partition, path, first and last offset and time,
 * records, closed) is written in that same transaction.  So a message's
 * position is never committed unless its archive record is on disk, and
 * the manifest never names a record that is not.  After a crash, the
 * positions go back to the last commit and the messages are consumed
 * again; the archive skips any offset the manifest already covers, and
 * starts a new file rather than appending to one whose tail it did not
 * record: records in a file beyond its manifest range are to be ignored
 * by readers (replay reads by manifest range).  No gap, no duplicate.
 *
 * Files roll after kappa.archive_roll_interval or kappa.archive_roll_size,
 * and are deflate-compressed when kappa.archive_deflate says so.
 *
 * src/archive/archive_write.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include <avro.h>

#include "catalog/pg_type.h"
#include "common/file_perm.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "archive/archive.h"
#include "guc.h"
#include "kappa_catalog/archive_files.h"
#include "kappa_catalog/catalog.h"

/* Capture's record, as Azure's files carry it (null property values). */
static const char capture_schema_json[] =
"{\"type\":\"record\",\"name\":\"EventData\",\"namespace\":\"Microsoft.ServiceBus.Messaging\","
"\"fields\":[{\"name\":\"SequenceNumber\",\"type\":\"long\"},"
"{\"name\":\"Offset\",\"type\":\"string\"},"
"{\"name\":\"EnqueuedTimeUtc\",\"type\":\"string\"},"
"{\"name\":\"SystemProperties\",\"type\":{\"type\":\"map\",\"values\":[\"long\",\"double\",\"string\",\"bytes\"]}},"
"{\"name\":\"Properties\",\"type\":{\"type\":\"map\",\"values\":[\"long\",\"double\",\"string\",\"bytes\",\"null\"]}},"
"{\"name\":\"Body\",\"type\":[\"null\",\"bytes\"]}]}";

/* Branches of the unions above. */
#define BRANCH_LONG 0
#define BRANCH_STRING 2
#define BRANCH_BYTES 3
#define BODY_NULL 0
#define BODY_BYTES 1

/* Avro block size; a larger record gets a file with a block of its own size. */
#define ARCHIVE_BLOCK_SIZE (1024 * 1024)

/* The file a partition is being archived into. */
typedef struct ArchiveFile
{
	FILE	   *fp;
	avro_file_writer_t writer;
	char	   *path;			/* relative to the archive directory */
	size_t		block_size;
	int64		first_offset;
	int64		last_offset;
	TimestampTz first_time;
	TimestampTz last_time;
	int64		records;
	TimestampTz opened_at;
	bool		dirty;			/* records since the last sync */
	bool		new_dir_entry;	/* its directory must be synced */
} ArchiveFile;

struct KappaArchiveWriter
{
	KappaStream *stream;
	int			nparts;
	int64	   *next;			/* first offset not yet archived; -1: any */
	ArchiveFile **files;		/* per partition, or NULL */
	avro_schema_t schema;
	avro_value_iface_t *iface;
	avro_value_t record;
	MemoryContext cxt;
};

static void archive_fail(KappaArchiveWriter *w, const char *what, const char *path) pg_attribute_noreturn();
static ArchiveFile *open_file(KappaArchiveWriter *w, int32 partition, TimestampTz time, size_t need);
static void close_file(KappaArchiveWriter *w, int32 partition);
static void read_archive_ends(KappaArchiveWriter *w, const bool *which);
static void fill_record(KappaArchiveWriter *w, const KappaMessage *m, TimestampTz time);
static void sync_dir_of(const char *path);

static void
archive_fail(KappaArchiveWriter *w, const char *what, const char *path)
{
	ereport(ERROR,
			(errcode(ERRCODE_IO_ERROR),
			 errmsg("could not %s archive file \"%s/%s\" of stream \"%s\"", what,
					w->stream->archive, path, w->stream->name),
			 errdetail("%s", avro_strerror())));
}

/*
 * The archive writer of a stream, which goes on from what kappa.archive_files
 * records.  Runs SPI; call it in a transaction.  Lives in the current
 * memory context.
 */
KappaArchiveWriter *
kappa_archive_writer_create(KappaStream *stream, int nparts)
{
	KappaArchiveWriter *w = palloc0(sizeof(KappaArchiveWriter));
	KappaCatalogAccess catalog;

	w->stream = stream;
	w->nparts = nparts;
	w->cxt = CurrentMemoryContext;
	w->next = palloc(sizeof(int64) * Max(nparts, 1));
	w->files = palloc0(sizeof(ArchiveFile *) * Max(nparts, 1));
	for (int p = 0; p < nparts; p++)
		w->next[p] = -1;
	if (avro_schema_from_json_length(capture_schema_json, sizeof(capture_schema_json) - 1,
									 &w->schema) != 0 ||
		(w->iface = avro_generic_class_from_schema(w->schema)) == NULL ||
		avro_generic_value_new(w->iface, &w->record) != 0)
		elog(ERROR, "could not build the Capture schema: %s", avro_strerror());

	kappa_catalog_enter(&catalog);
	read_archive_ends(w, NULL);
	kappa_catalog_leave(&catalog);
	return w;
}

/*
 * Go back to what the manifest records, after the worker rolled back to
 * its last flush: the files being written are closed (the records they
 * hold past their manifest range are ignored by readers), and each
 * partition's archive goes on from where the manifest says it ends, in a
 * new file.  Call it in a transaction.
 */
void
kappa_archive_writer_reset(KappaArchiveWriter *w)
{
	KappaCatalogAccess catalog;

	for (int p = 0; p < w->nparts; p++)
	{
		if (w->files[p] != NULL)
			close_file(w, p);
		w->next[p] = -1;
	}
	kappa_catalog_enter(&catalog);
	read_archive_ends(w, NULL);
	kappa_catalog_leave(&catalog);
}

/*
 * Where the manifest says the archive of each partition which[] names
 * (NULL: every one) ends: appends go on from there.  SPI is connected.
 */
static void
read_archive_ends(KappaArchiveWriter *w, const bool *which)
{
	int64	   *ends = palloc(sizeof(int64) * w->nparts);

	kappa_archive_files_ends(w->stream->id, w->nparts, ends);
	for (int p = 0; p < w->nparts; p++)
	{
		if (ends[p] >= 0 && (which == NULL || which[p]))
			w->next[p] = ends[p];
	}
	pfree(ends);
}

/* Capture's time format: "12/9/2022 4:50:12 PM", UTC. */
static char *
capture_time(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		return pstrdup("");
	return psprintf("%d/%d/%d %d:%02d:%02d %s", tm.tm_mon, tm.tm_mday, tm.tm_year,
					tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12, tm.tm_min, tm.tm_sec,
					tm.tm_hour < 12 ? "AM" : "PM");
}

/* Set the Avro record to a message. */
static void
fill_record(KappaArchiveWriter *w, const KappaMessage *m, TimestampTz time)
{
	avro_value_t field;
	avro_value_t elem;
	avro_value_t branch;
	char	   *offset_text = psprintf(INT64_FORMAT, m->offset);
	char	   *when = capture_time(time);
	int64		ms = (time - SetEpochTimestamp()) / 1000;

	avro_value_reset(&w->record);
	avro_value_get_by_name(&w->record, "SequenceNumber", &field, NULL);
	avro_value_set_long(&field, m->offset);
	avro_value_get_by_name(&w->record, "Offset", &field, NULL);
	avro_value_set_string(&field, offset_text);
	avro_value_get_by_name(&w->record, "EnqueuedTimeUtc", &field, NULL);
	avro_value_set_string(&field, when);

	avro_value_get_by_name(&w->record, "SystemProperties", &field, NULL);
	avro_value_add(&field, "x-opt-enqueued-time", &elem, NULL, NULL);
	avro_value_set_branch(&elem, BRANCH_LONG, &branch);
	avro_value_set_long(&branch, ms);
	avro_value_add(&field, "x-opt-sequence-number", &elem, NULL, NULL);
	avro_value_set_branch(&elem, BRANCH_LONG, &branch);
	avro_value_set_long(&branch, m->offset);
	if (m->key != NULL)
	{
		avro_value_add(&field, "x-opt-partition-key", &elem, NULL, NULL);
		/* a key is text when it is valid UTF-8 without NULs, else bytes */
		if (memchr(m->key, '\0', m->key_len) == NULL &&
			pg_verify_mbstr(PG_UTF8, m->key, m->key_len, true))
		{
			avro_value_set_branch(&elem, BRANCH_STRING, &branch);
			avro_value_set_string_len(&branch, pnstrdup(m->key, m->key_len), m->key_len + 1);
		}
		else
		{
			avro_value_set_branch(&elem, BRANCH_BYTES, &branch);
			avro_value_set_bytes(&branch, (void *) m->key, m->key_len);
		}
	}

	avro_value_get_by_name(&w->record, "Body", &field, NULL);
	if (m->payload == NULL)
		avro_value_set_branch(&field, BODY_NULL, &branch);
	else
	{
		avro_value_set_branch(&field, BODY_BYTES, &branch);
		avro_value_set_bytes(&branch, (void *) m->payload, m->len);
	}
}

/* fsync the directory holding path (absolute), so a new entry is durable. */
static void
sync_dir_of(const char *path)
{
	char	   *dir = pstrdup(path);

	get_parent_directory(dir);
	fsync_fname(dir, true);
}

/*
 * Open a new file for a partition, named after time, with a block that
 * holds a record of need bytes.  A file of that name that the manifest
 * records is kept (the new one gets a suffix); one it does not record is
 * a leftover of a crash and is replaced.
 */
static ArchiveFile *
open_file(KappaArchiveWriter *w, int32 partition, TimestampTz time, size_t need)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	ArchiveFile *f = palloc0(sizeof(ArchiveFile));
	struct pg_tm tm;
	fsec_t		fsec;
	char	   *dir;
	char	   *base;
	char	   *full;

	if (timestamp2tm(time, NULL, &tm, &fsec, NULL, NULL) != 0)
		memset(&tm, 0, sizeof(tm));
	dir = psprintf("%s/%s/%d/%04d/%02d/%02d/%02d/%02d", w->stream->name, w->stream->topic,
				   partition, tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min);
	base = psprintf("%s/%02d", dir, tm.tm_sec);
	f->path = psprintf("%s.avro", base);
	for (int n = 1;; n++)
	{
		bool		taken;
		KappaCatalogAccess catalog;

		kappa_catalog_enter(&catalog);
		taken = kappa_archive_files_has_path(w->stream->id, f->path);
		kappa_catalog_leave(&catalog);
		if (!taken)
			break;
		f->path = psprintf("%s-%d.avro", base, n);
	}
	full = psprintf("%s/%s", w->stream->archive, dir);
	if (pg_mkdir_p(full, pg_dir_create_mode) != 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create archive directory \"%s\": %m", full)));
	full = psprintf("%s/%s", w->stream->archive, f->path);
	/* not AllocateFile: that closes the file at the end of the transaction */
	f->fp = fopen(full, PG_BINARY_W);
	if (f->fp == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create archive file \"%s\": %m", full)));
	f->block_size = Max(ARCHIVE_BLOCK_SIZE, need * 2 + 65536);
	if (avro_file_writer_create_with_codec_fp(f->fp, full, 0, w->schema, &f->writer,
											  kappa_archive_deflate ? "deflate" : "null",
											  f->block_size) != 0)
		archive_fail(w, "create", f->path);
	f->first_offset = f->last_offset = -1;
	f->opened_at = GetCurrentTimestamp();
	f->new_dir_entry = true;
	w->files[partition] = f;
	MemoryContextSwitchTo(old);
	return f;
}

/* Close a partition's file; its manifest row is written by the flush. */
static void
close_file(KappaArchiveWriter *w, int32 partition)
{
	ArchiveFile *f = w->files[partition];

	if (avro_file_writer_close(f->writer) != 0)
		archive_fail(w, "close", f->path);
	if (fclose(f->fp) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close archive file \"%s/%s\": %m", w->stream->archive, f->path)));
	w->files[partition] = NULL;
}

/*
 * Archive one consumed message, unless the archive has it already.  What
 * is appended is durable only after kappa_archive_writer_flush.
 */
void
kappa_archive_writer_append(KappaArchiveWriter *w, const KappaMessage *m)
{
	int32		p = m->partition;
	ArchiveFile *f;
	TimestampTz time;
	size_t		need = m->len + m->key_len + 256;

	if (p < 0 || p >= w->nparts || (w->next[p] >= 0 && m->offset < w->next[p]))
		return;
	time = m->timestamp_ms >= 0 ?
		time_t_to_timestamptz(0) + m->timestamp_ms * INT64CONST(1000) : GetCurrentTimestamp();
	f = w->files[p];
	if (f != NULL && need > f->block_size / 2)
		f = NULL;				/* too big for its blocks: a file of its own */
	if (f == NULL)
		f = open_file(w, p, time, need);
	fill_record(w, m, time);
	if (avro_file_writer_append_value(f->writer, &w->record) != 0)
		archive_fail(w, "append to", f->path);
	if (f->first_offset < 0)
	{
		f->first_offset = m->offset;
		f->first_time = time;
	}
	f->last_offset = m->offset;
	f->last_time = time;
	f->records++;
	f->dirty = true;
	w->next[p] = m->offset + 1;
}

/*
 * Archive the partitions owned[] says from now on (a stream's consumer
 * group moved them; the caller flushed first).  The file of a partition
 * given up is closed, so that its range ends where this worker stopped;
 * one gained goes on from where the manifest says the archive ends, which
 * another worker may have moved.  Runs SPI; call it in a transaction.
 */
void
kappa_archive_writer_adopt(KappaArchiveWriter *w, const bool *owned)
{
	KappaCatalogAccess catalog;

	kappa_catalog_enter(&catalog);
	for (int p = 0; p < w->nparts; p++)
	{
		char	   *path;

		if (owned[p] || w->files[p] == NULL)
			continue;
		Assert(!w->files[p]->dirty);
		path = pstrdup(w->files[p]->path);
		close_file(w, p);
		kappa_archive_files_close(w->stream->id, path);
	}
	read_archive_ends(w, owned);
	kappa_catalog_leave(&catalog);
}

/*
 * The log lost offsets of a partition that the archive does not have
 * either, and the worker goes on after them: end the partition's file
 * where the archive stops, so that no file's recorded range spans the
 * gap.  In the caller's transaction, like kappa_archive_writer_flush.
 */
void
kappa_archive_writer_break(KappaArchiveWriter *w, int32 partition)
{
	char	   *path;
	KappaCatalogAccess catalog;

	kappa_archive_writer_flush(w);
	if (w->files[partition] == NULL)
		return;
	path = pstrdup(w->files[partition]->path);
	close_file(w, partition);
	kappa_catalog_enter(&catalog);
	kappa_archive_files_close(w->stream->id, path);
	kappa_catalog_leave(&catalog);
}

/*
 * Make every record appended since the last flush durable, and record the
 * files in kappa.archive_files, in the caller's transaction: call it
 * before the transaction that commits the messages' positions.  Files past
 * kappa.archive_roll_interval or kappa.archive_roll_size are closed.
 */
void
kappa_archive_writer_flush(KappaArchiveWriter *w)
{
	TimestampTz now = GetCurrentTimestamp();
	KappaCatalogAccess catalog;

	kappa_catalog_enter(&catalog);
	for (int p = 0; p < w->nparts; p++)
	{
		ArchiveFile *f = w->files[p];
		KappaArchiveFile record;
		char	   *full;
		bool		roll;
		long		size;

		if (f == NULL || !f->dirty)
			continue;
		full = psprintf("%s/%s", w->stream->archive, f->path);
		if (avro_file_writer_flush(f->writer) != 0)
			archive_fail(w, "write", f->path);
		if (fflush(f->fp) != 0 || pg_fsync(fileno(f->fp)) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not fsync archive file \"%s\": %m", full)));
		if (f->new_dir_entry)
		{
			sync_dir_of(full);
			f->new_dir_entry = false;
		}
		size = ftell(f->fp);
		roll = size >= (long) kappa_archive_roll_size * 1024L ||
			TimestampDifferenceExceeds(f->opened_at, now, kappa_archive_roll_interval * 1000);

		record.partition = p;
		record.path = f->path;
		record.first_offset = f->first_offset;
		record.last_offset = f->last_offset;
		record.first_time = f->first_time;
		record.last_time = f->last_time;
		record.records = f->records;
		record.closed = roll;
		kappa_archive_files_store(w->stream->id, &record);
		f->dirty = false;
		if (roll)
			close_file(w, p);
	}
	kappa_catalog_leave(&catalog);
}
