/*-------------------------------------------------------------------------
 *
 * columns.h
 *	  Parsing and validation of a stream's column list and JSON paths.
 *
 * src/kappa_catalog/columns.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_COLUMNS_H
#define KAPPA_COLUMNS_H

#include "access/attnum.h"
#include "access/htup_details.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/* One column of a stream, as declared by kappa_create_stream. */
typedef struct KappaColumn
{
	char	   *name;			/* SQL name, folded as an identifier */
	char	   *json_key;		/* default path: the name as written */
	Oid			typid;
	int32		typmod;
	bool		not_null;		/* a message without it is a dead letter */
	List	   *paths;			/* char * dotted paths, alternatives in order */
	AttrNumber	attnum;			/* its attribute in the stream's relation */
} KappaColumn;

/* A stream is a relation of its columns plus the four metadata columns. */
#define KAPPA_MAX_COLUMNS (MaxHeapAttributeNumber - 4)

extern List *kappa_parse_columns(const char *spec);
extern char *kappa_parse_column_ref(const char *ref, const char *what);
extern KappaColumn *kappa_find_column(List *columns, const char *name);
extern void kappa_apply_paths(List *columns, Jsonb *paths);
extern List *kappa_add_paths(List *columns, List *added, Jsonb *paths);

#endif							/* KAPPA_COLUMNS_H */
