/*-------------------------------------------------------------------------
 *
 * archive_register.c
 *	  kappa_archive_register: Capture files written elsewhere as a stream's
 *	  history.
 *
 * Event Hubs Capture writes a hub's events under
 * {namespace}/{hub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}.avro, with
 * the Kafka offset of each event as its SequenceNumber.  Given the hub's
 * directory (say, a storage account mounted on the server), this records
 * every non-empty Capture file under it in kappa.archive_files, with its
 * absolute path, partition and offset range, so that kappa_replay,
 * kappa_check and crash recovery read them as they read kappa's own
 * archive.  Each file is read once here, to find its range; a file whose
 * range overlaps one already recorded for its partition is skipped, with
 * a NOTICE, so registering the same directory twice changes nothing.
 *
 * src/archive/archive_register.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "archive/archive.h"
#include "kappa_catalog/archive_files.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/stream.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kappa_archive_register);

/* What one file holds, as its records are read. */
typedef struct FileRange
{
	int64		first;
	int64		last;
	int64		records;
	TimestampTz first_time;
	TimestampTz last_time;
} FileRange;

static void range_of(ArchiveRecord *rec, void *arg);
static int	compare_paths(const ListCell *a, const ListCell *b);
static void register_dir(KappaStream *stream, int32 partition, const char *dir,
						 ReturnSetInfo *rsinfo);

static void
range_of(ArchiveRecord *rec, void *arg)
{
	FileRange  *fr = arg;
	TimestampTz t = rec->has_enqueued_time ? rec->enqueued_time : 0;

	if (fr->records == 0 || rec->sequence_number < fr->first)
	{
		fr->first = rec->sequence_number;
		fr->first_time = t;
	}
	if (fr->records == 0 || rec->sequence_number > fr->last)
	{
		fr->last = rec->sequence_number;
		fr->last_time = t;
	}
	fr->records++;
}

static int
compare_paths(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

/* Register the .avro files under dir (recursively) for a partition. */
static void
register_dir(KappaStream *stream, int32 partition, const char *dir, ReturnSetInfo *rsinfo)
{
	DIR		   *d = AllocateDir(dir);
	struct dirent *de;
	List	   *entries = NIL;
	ListCell   *lc;

	while ((de = ReadDir(d, dir)) != NULL)
	{
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			entries = lappend(entries, psprintf("%s/%s", dir, de->d_name));
	}
	FreeDir(d);
	/* Capture's names sort in time order */
	list_sort(entries, compare_paths);

	foreach(lc, entries)
	{
		char	   *path = lfirst(lc);
		struct stat st;
		FileRange	fr;
		size_t		len = strlen(path);
		KappaArchiveFile record;
		bool		overlap;

		CHECK_FOR_INTERRUPTS();
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
		{
			register_dir(stream, partition, path, rsinfo);
			continue;
		}
		if (len < 5 || strcmp(path + len - 5, ".avro") != 0)
			continue;
		memset(&fr, 0, sizeof(fr));
		kappa_archive_read_file(path, false, range_of, &fr);
		if (fr.records == 0)
			continue;			/* Capture writes empty files too */

		record.partition = partition;
		record.path = path;
		record.first_offset = fr.first;
		record.last_offset = fr.last;
		record.first_time = fr.first_time;
		record.last_time = fr.last_time;
		record.records = fr.records;
		record.closed = true;
		SPI_connect();
		overlap = !kappa_archive_files_register(stream->id, &record);
		SPI_finish();
		if (overlap)
		{
			ereport(NOTICE,
					(errmsg("skipping archive file \"%s\": offsets " INT64_FORMAT " to " INT64_FORMAT " of partition %d are recorded already",
							path, fr.first, fr.last, partition)));
			continue;
		}
		{
			Datum		out[5] = {Int32GetDatum(partition), CStringGetTextDatum(path),
			Int64GetDatum(fr.first), Int64GetDatum(fr.last), Int64GetDatum(fr.records)};
			bool		nulls[5] = {false, false, false, false, false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
		}
	}
}

/*
 * kappa_archive_register(stream, directory) records the Capture files under
 * directory/{partition}/ as the stream's history, and returns them.
 */
Datum
kappa_archive_register(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KappaStream *stream;
	char	   *dir = text_to_cstring(PG_GETARG_TEXT_PP(1));
	KappaCatalogAccess access;
	DIR		   *d;
	struct dirent *de;
	List	   *partitions = NIL;
	ListCell   *lc;

	kappa_require_preload();
	stream = kappa_stream_load_owned(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser or a member of pg_read_server_files to register archive files")));
	if (!is_absolute_path(dir))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("archive directory \"%s\" is not an absolute path", dir)));
	InitMaterializedSRF(fcinfo, 0);

	/* the hub's directory holds one directory per partition */
	d = AllocateDir(dir);
	while ((de = ReadDir(d, dir)) != NULL)
	{
		char	   *end;
		long		p = strtol(de->d_name, &end, 10);

		if (end == de->d_name || *end != '\0' || p < 0 || p > KAPPA_MAX_PARTITION)
			continue;
		partitions = lappend_int(partitions, (int) p);
	}
	FreeDir(d);
	if (partitions == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("archive directory \"%s\" has no partition directories", dir),
				 errhint("Give the hub's directory, {namespace}/{hub}, whose directories are named after partitions.")));

	kappa_catalog_enter(&access);
	foreach(lc, partitions)
		register_dir(stream, lfirst_int(lc), psprintf("%s/%d", dir, lfirst_int(lc)), rsinfo);
	kappa_catalog_leave(&access);
	/* a worker stopped at a gap these files may fill tries again */
	kappa_wake_launcher_on_commit();
	return (Datum) 0;
}
