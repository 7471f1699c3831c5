/*-------------------------------------------------------------------------
 *
 * create_view.h
 *	  Defining views: kappa_create_view, and kappa_replay's new versions.
 *
 * src/api/create_view.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_CREATE_VIEW_H
#define KAPPA_CREATE_VIEW_H

#include "utils/jsonb.h"

extern int32 kappa_view_define(const char *schema, const char *relname, const char *query_text,
							   const char *plan, Jsonb *options, const char *status, Oid owner);
extern int64 kappa_view_retention_us(Jsonb *options);
extern bool kappa_view_emit_final(Jsonb *options);
extern bool kappa_view_option_given(Jsonb *options, const char *key);

#endif							/* KAPPA_CREATE_VIEW_H */
