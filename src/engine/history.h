/*-------------------------------------------------------------------------
 *
 * history.h
 *	  Where each offset of a partition's history is held: the log, the
 *	  archive, or nowhere.
 *
 * src/engine/history.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_HISTORY_H
#define KAPPA_HISTORY_H

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

#include "engine/engine.h"
#include "kafka/kafka.h"
#include "kappa_catalog/stream.h"

/* Where a span of offsets is read from. */
typedef enum KappaSource
{
	KAPPA_FROM_LOG,
	KAPPA_FROM_ARCHIVE,
	KAPPA_FROM_NOWHERE			/* a gap: retention took it, no archive has it */
} KappaSource;

/* Offsets [from, to) of a partition, all read from one source. */
typedef struct KappaSpan
{
	int64		from;
	int64		to;
	KappaSource source;
} KappaSpan;

/* What kappa_history_read reads, and where it hands the messages. */
typedef struct KappaHistoryRead
{
	KappaStream *stream;
	int			nparts;
	const int64 *from;			/* per partition; KAPPA_OFFSET_NONE: none */
	const int64 *to;
	const int64 *log_start;		/* where each partition's log begins */
	bool		prefer_archive;
	KappaMessageCallback from_archive;
	KappaMessageCallback from_log;
	void	   *arg;
	const char *what;			/* "cannot replay v", for errors */
} KappaHistoryRead;

extern List *kappa_history_spans(KappaStream *stream, int32 partition, int64 from, int64 to,
								 int64 log_start, bool prefer_archive);
extern List *kappa_history_view_gaps(int32 view_id, int32 partition);
extern List *kappa_history_gaps(List *spans, List *known);
extern int64 kappa_history_count(List *gaps, int32 partition, StringInfo ranges);
extern void kappa_history_read(KappaConsumer *consumer, const KappaHistoryRead *read);

#endif							/* KAPPA_HISTORY_H */
