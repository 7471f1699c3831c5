/*-------------------------------------------------------------------------
 *
 * archive.h
 *	  A stream's history in Event Hubs Capture's format (Avro).
 *
 * src/archive/archive.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_ARCHIVE_H
#define KAPPA_ARCHIVE_H

#include "datatype/timestamp.h"

#include "kappa_catalog/stream.h"
#include "message.h"

/* One record of a Capture file, as read (in the current memory context). */
typedef struct ArchiveRecord
{
	int64		sequence_number;	/* the Kafka offset on Event Hubs */
	char	   *offset;			/* Capture's Offset: a byte position */
	char	   *enqueued_time_utc;	/* as written */
	TimestampTz enqueued_time;	/* x-opt-enqueued-time, or the above parsed */
	bool		has_enqueued_time;
	int64		enqueued_ms;	/* x-opt-enqueued-time, -1 if absent */
	char	   *system_properties;	/* JSON text, if asked for */
	char	   *properties;		/* JSON text, if asked for */
	char	   *body;			/* NULL for a null Body */
	size_t		body_len;
	char	   *key;			/* x-opt-partition-key's bytes, or NULL */
	size_t		key_len;
} ArchiveRecord;

typedef void (*ArchiveRecordCallback) (ArchiveRecord *record, void *arg);

extern void kappa_archive_read_file(const char *path, bool want_properties,
							  ArchiveRecordCallback emit, void *arg);

extern void kappa_archive_read_range(KappaStream *stream, int32 partition, int64 from, int64 to,
							   KappaMessageCallback emit, void *arg);

/* A stream's archive being written (archive_write.c). */
typedef struct KappaArchiveWriter KappaArchiveWriter;

extern KappaArchiveWriter *kappa_archive_writer_create(KappaStream *stream, int nparts);
extern void kappa_archive_writer_append(KappaArchiveWriter *w, const KappaMessage *m);
extern void kappa_archive_writer_flush(KappaArchiveWriter *w);
extern void kappa_archive_writer_adopt(KappaArchiveWriter *w, const bool *owned);
extern void kappa_archive_writer_reset(KappaArchiveWriter *w);
extern void kappa_archive_writer_break(KappaArchiveWriter *w, int32 partition);

#endif							/* KAPPA_ARCHIVE_H */
