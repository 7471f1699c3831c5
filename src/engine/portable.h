/*-------------------------------------------------------------------------
 *
 * portable.h
 *	  Views that survive pg_dump and pg_upgrade: a stored plan's origin,
 *	  and the portable definition another database rebuilds it from.
 *
 * src/engine/portable.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_PORTABLE_H
#define KAPPA_PORTABLE_H

#include "nodes/parsenodes.h"

extern char *kappa_origin_text(void);
extern char *kappa_view_definition(Query *query, Oid owner);
extern char *kappa_view_localize(int32 view_id);

#endif							/* KAPPA_PORTABLE_H */
