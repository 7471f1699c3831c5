/*-------------------------------------------------------------------------
 *
 * view.h
 *	  The view catalog: kappa_create_view and kappa_drop_view.
 *
 * src/view.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_VIEW_H
#define KAPPA_VIEW_H

#include "nodes/pg_list.h"

extern List *kappa_stream_view_names(int32 stream_id);
extern void kappa_drop_view_by_name(const char *name);

#endif							/* KAPPA_VIEW_H */
