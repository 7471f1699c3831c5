/*-------------------------------------------------------------------------
 *
 * archive_files.h
 *	  The archive's manifest: kappa.archive_files, the files that hold a
 *	  stream's history and the offsets each holds.
 *
 * src/kappa_catalog/archive_files.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_ARCHIVE_FILES_H
#define KAPPA_ARCHIVE_FILES_H

#include "datatype/timestamp.h"

/* A file of a stream's archive, as the manifest records it. */
typedef struct KappaArchiveFile
{
	int32		partition;
	const char *path;			/* kappa's own: relative to the stream's
								 * archive; registered: absolute */
	int64		first_offset;
	int64		last_offset;	/* the last offset recorded; any records
								 * after it in the file are not */
	TimestampTz first_time;
	TimestampTz last_time;
	int64		records;
	bool		closed;			/* nothing will be appended */
} KappaArchiveFile;

/* Called for each recorded range of offsets, [from, to), in offset order. */
typedef void (*KappaArchiveRangeCallback) (int64 from, int64 to, void *arg);

/* Called for each recorded file, with its last recorded offset, in offset order. */
typedef void (*KappaArchiveFileCallback) (const char *path, int64 last_offset, void *arg);

extern void kappa_archive_files_ends(int32 stream_id, int nparts, int64 *ends);
extern bool kappa_archive_files_has_path(int32 stream_id, const char *path);
extern void kappa_archive_files_store(int32 stream_id, const KappaArchiveFile *file);
extern void kappa_archive_files_close(int32 stream_id, const char *path);
extern bool kappa_archive_files_register(int32 stream_id, const KappaArchiveFile *file);
extern void kappa_archive_files_ranges(int32 stream_id, int32 partition, int64 from, int64 to,
									   KappaArchiveRangeCallback each, void *arg);
extern void kappa_archive_files_scan(int32 stream_id, int32 partition, int64 from,
									 KappaArchiveFileCallback each, void *arg);

#endif							/* KAPPA_ARCHIVE_FILES_H */
