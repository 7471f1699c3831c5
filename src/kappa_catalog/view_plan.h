/*-------------------------------------------------------------------------
 *
 * view_plan.h
 *	  A view's row in kappa.views as written when it is defined and read
 *	  when it is run: its query, stored plan, portable definition, owner
 *	  and options.
 *
 * src/kappa_catalog/view_plan.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_VIEW_PLAN_H
#define KAPPA_VIEW_PLAN_H

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/* What an engine needs of a view to run it (kappa_views_running). */
typedef struct KappaViewDefinition
{
	int32		view_id;
	Oid			owner;
	char	   *name;			/* qualified, quoted */
	char	   *plan;
	char	   *start;
	char	   *since;			/* or NULL */
	char	   *until;			/* or NULL */
	char	   *notify;			/* the notify option's channel, or NULL */
	char	   *retention;		/* the retention option, or NULL */
	char	   *emit;			/* the emit option, or NULL */
} KappaViewDefinition;

/* A view whose stored plan another database wrote (kappa_views_foreign). */
typedef struct KappaViewForeign
{
	char	   *definition;
	char	   *name;			/* qualified, quoted */
	int32		stream_id;
	Oid			owner;
} KappaViewForeign;

/* A view's stored plan, for kappa.upgrade_views (kappa_views_all_plans). */
typedef struct KappaViewPlan
{
	int32		view_id;
	char	   *plan;
	Oid			owner;
	char	   *name;			/* qualified, quoted */
} KappaViewPlan;

/*
 * Called for each view kappa_views_running finds, in view-id order, in the
 * catalog section and in the memory context given: whether the caller
 * wants its definition.  It must run no SPI statement: the rows it is
 * called for are in SPI_tuptable.
 */
typedef bool (*KappaViewWanted) (int32 view_id, void *arg);

extern int32 kappa_views_insert(int32 stream_id, const char *schema, const char *relname,
								Oid owner, const char *query_text, const char *plan,
								Jsonb *options, const char *status, const char *origin,
								const char *definition);
extern List *kappa_views_running(int32 stream_id, int32 only_view,
								 KappaViewWanted wanted, void *arg, MemoryContext cxt);
extern bool kappa_views_definition(int32 view_id, KappaViewDefinition *def, MemoryContext cxt);
extern char *kappa_views_plan(int32 view_id, Oid *owner, bool in_snapshot);
extern bool kappa_views_foreign(int32 view_id, const char *origin, KappaViewForeign *view);
extern void kappa_views_store_plan(int32 view_id, const char *plan, const char *origin);
extern List *kappa_views_all_plans(void);
extern void kappa_views_set_definition(int32 view_id, const char *definition);
extern void kappa_views_plans_of_stream(int32 stream_id, const char *origin,
										List **names, List **plans);

#endif							/* KAPPA_VIEW_PLAN_H */
