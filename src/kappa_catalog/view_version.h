/*-------------------------------------------------------------------------
 *
 * view_version.h
 *	  The versions of a view in kappa.views that kappa_replay builds,
 *	  keeps beside the current one, swaps in and promotes.
 *
 * src/kappa_catalog/view_version.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_VIEW_VERSION_H
#define KAPPA_VIEW_VERSION_H

#include "utils/jsonb.h"

/* What a replay starts from: the old version's query, plan and options. */
extern void kappa_views_replay_source(int32 view_id, char **query, char **plan,
									  Jsonb **options);
extern int32 kappa_views_stream_id(int32 view_id);
/* Lock both versions' rows FOR UPDATE, in view-id order. */
extern void kappa_views_lock_versions(int32 view_id_a, int32 view_id_b);
/* Delete the old version's row; the new one takes its name and goes live. */
extern void kappa_views_swap(int32 old_id, int32 new_id, const char *relname);
extern int32 kappa_views_next_version(const char *schema, const char *base_name);
extern void kappa_views_record_version(int32 view_id, const char *view_name,
									   const char *base_name, int32 version);
/* A version's id and name; a negative version: the current one. */
extern bool kappa_views_find_version(const char *schema, const char *base_name, int32 version,
									 int32 *view_id, char **view_name);
extern void kappa_views_promote(int32 view_id);

#endif							/* KAPPA_VIEW_VERSION_H */
