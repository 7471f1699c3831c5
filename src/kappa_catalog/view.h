/*-------------------------------------------------------------------------
 *
 * view.h
 *	  The view catalog: a view's names, rows table and catalog row.
 *
 * src/kappa_catalog/view.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_VIEW_H
#define KAPPA_VIEW_H

#include "nodes/pg_list.h"
#include "storage/lockdefs.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

/* A kappa view found by the name a caller gave (kappa_view_resolve_owned). */
typedef struct KappaViewRef
{
	char	   *schema;			/* as kappa.views spells them */
	char	   *relname;
	int32		view_id;
	Oid			owner;
	char	   *stream_name;
	bool		current;		/* not a version kept beside the view */
} KappaViewRef;

extern List *kappa_stream_view_names(int32 stream_id);
extern char *kappa_view_rows_table_name(int32 view_id);
extern char *kappa_view_rows_table(int32 view_id);
extern Oid	kappa_view_relation(const char *name, LOCKMODE lockmode, char **schema, char **relname);
extern void kappa_view_resolve_owned(const char *name, bool current_only, KappaViewRef *ref);
extern void kappa_drop_view_by_name(const char *name);
extern void kappa_view_forget(int32 view_id);
extern bool kappa_view_is_user_facing(Oid relid, int32 view_id);
extern bool kappa_view_row_exists(const char *schema, const char *relname);
extern char *kappa_canonical_time(TimestampTz ts);


#endif							/* KAPPA_VIEW_H */
