/*-------------------------------------------------------------------------
 *
 * view_status.h
 *	  A view's status in kappa.views (live, incomplete, needs_replay,
 *	  failed, replaying), as the engine sets and reads it.
 *
 * src/kappa_catalog/view_status.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_VIEW_STATUS_H
#define KAPPA_VIEW_STATUS_H

/* A live view misses offsets (a gap): it becomes incomplete. */
extern void kappa_views_mark_incomplete(int32 view_id);
extern void kappa_views_mark_needs_replay(int32 view_id, const char *detail);
/* Returns the view's qualified name, or NULL if it is gone. */
extern char *kappa_views_mark_failed(int32 view_id, const char *detail, const char *sqlstate);
extern bool kappa_views_any_replaying(int32 stream_id);

#endif							/* KAPPA_VIEW_STATUS_H */
