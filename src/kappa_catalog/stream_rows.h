/*-------------------------------------------------------------------------
 *
 * stream_rows.h
 *	  A stream's catalog rows (kappa.streams, stream_columns,
 *	  stream_secrets), one statement each, for the SQL functions that
 *	  create, alter, drop and list streams.
 *
 * src/kappa_catalog/stream_rows.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_STREAM_ROWS_H
#define KAPPA_STREAM_ROWS_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#include "kappa_catalog/columns.h"

/* A stream the launcher finds in the catalog (kappa_streams_of_origin). */
typedef struct KappaStreamRevision
{
	int32		stream_id;
	char	   *name;
	int32		revision;
} KappaStreamRevision;

extern void kappa_stream_columns_insert(int32 stream_id, const KappaColumn *col, bool not_null);
/* Returns how many rows it updated: 1, unless the column is gone. */
extern uint64 kappa_stream_columns_set_paths(int32 stream_id, AttrNumber attnum, List *paths);
extern void kappa_stream_secrets_insert(int32 stream_id, Oid owner, Jsonb *settings);
extern void kappa_stream_secrets_delete(int32 stream_id);
/* The watermark as text, the row locked FOR UPDATE; NULL if it is gone. */
extern char *kappa_streams_lock(int32 stream_id);
/* A NULL argument keeps the setting; the revision goes up by one. */
extern void kappa_streams_update(int32 stream_id, Interval *watermark,
								 Interval *idle_timeout, Jsonb *options);
extern void kappa_streams_delete(int32 stream_id);
extern List *kappa_streams_ids(void);
extern List *kappa_streams_of_origin(const char *origin);

#endif							/* KAPPA_STREAM_ROWS_H */
