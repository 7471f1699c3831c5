/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  The boundary between kappa's own rights and its users': statements
 *	  against kappa's catalog, user code as its owner, fixed settings.
 *
 * src/kappa_catalog/catalog.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_CATALOG_H
#define KAPPA_CATALOG_H

#include "nodes/nodes.h"
#include "utils/elog.h"

/* What kappa_catalog_enter changed, for kappa_catalog_leave to restore. */
typedef struct KappaCatalogAccess
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} KappaCatalogAccess;

/*
 * What kappa_owner_enter changed, and the settings it found, which user
 * code must leave as they were.
 */
typedef struct KappaOwnerAccess
{
	Oid			save_userid;
	int			save_sec_context;
	const char *search_path;
	const void *timezone;
	int			date_style;
	int			date_order;
	int			interval_style;
} KappaOwnerAccess;

extern void kappa_catalog_enter(KappaCatalogAccess *access);
extern void kappa_catalog_leave(KappaCatalogAccess *access);
extern void kappa_catalog_exec(const char *sql, int expected);
extern void kappa_catalog_check(void);

extern void kappa_owner_enter(KappaOwnerAccess *access, Oid owner);
extern void kappa_owner_leave(KappaOwnerAccess *access);

extern int	kappa_settings_enter(void);
extern void kappa_settings_leave(int nestlevel);
extern void kappa_settings_fix(void);

extern char *kappa_catalog_version(void);
extern const char *kappa_library_version(void);
extern bool kappa_catalog_is_current(char **version);
extern void kappa_require_current_catalog(void);
extern char *kappa_catalog_version_hint(const char *version);

extern bool kappa_error_is_transient(int sqlerrcode);
extern char *kappa_error_text(ErrorData *edata);

#endif							/* KAPPA_CATALOG_H */
