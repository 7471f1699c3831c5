/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  The boundary between kappa's own rights and its users': statements
 *	  against kappa's catalog, user code as its owner, fixed settings.
 *
 * kappa runs two kinds of code with two kinds of rights, and this file is
 * the only place that switches between them:
 *
 * - kappa's own statements against its catalog (the tables of schema
 *   kappa: streams, views, positions, states, dead letters, the archive's
 *   manifest) run between kappa_catalog_enter and kappa_catalog_leave, as
 *   the bootstrap superuser (the tables' owner), with search_path pinned to
 *   pg_catalog, inside SPI.  They are constant text with $n parameters and
 *   quoted identifiers, and they evaluate no user code: their columns are
 *   of built-in types, and a view's states and keys are stored as bytea.
 *
 * - Everything a user wrote or chose runs between kappa_owner_enter and
 *   kappa_owner_leave, as the owner of the view (or, for the input
 *   functions of a stream's columns, of the stream), in a security-
 *   restricted operation, as REFRESH MATERIALIZED VIEW runs a matview's
 *   query: a view's WHERE, keys and select list, its aggregates' support
 *   functions, the hash and equality functions of its keys, statements on
 *   its rows table (which the owner owns, so its triggers, policies and
 *   index functions run as the owner too), and the casts and output
 *   functions kappa_check and kappa_compare call.  Such a section is cheap
 *   (two assignments), so the engine enters one per event and view.
 *
 * Owner sections nest inside catalog sections (a stored state is read as
 * the catalog, then deserialized as its owner), never the reverse: no
 * catalog statement runs while user code may have changed a setting.  User
 * code must leave search_path, TimeZone, DateStyle and IntervalStyle as it
 * found them (kappa_owner_leave raises an error otherwise, which rolls the
 * change back): a view's results do not depend on who runs it, and one
 * owner's code cannot steer another's name lookups.
 *
 * Fixed settings: streams are decoded and views evaluated with TimeZone
 * UTC, DateStyle ISO, YMD and IntervalStyle postgres, whoever runs them (a
 * worker fixes them for its life, a SQL function for its call), so a time
 * without a zone is UTC and a replay computes what the worker computed.
 *
 * Errors: an error leaves both kinds of section without their leave
 * function; (sub)transaction abort restores the user, the security context
 * and the settings, as for any error in Postgres.
 *
 * Versions: the library reads and writes the catalog of its own version
 * (KAPPA_LIBRARY_VERSION).  Between the installation of a new version's
 * files (and a restart) and ALTER EXTENSION kappa UPDATE, the catalog is
 * older: kappa_require_current_catalog makes every SQL function refuse,
 * with a hint to update, and the launcher starts no worker until the
 * update has committed.
 *
 * Lifetime: the only state is the copy of search_path's text that
 * kappa_owner_leave compares with, for the process's life.
 *
 * src/kappa_catalog/catalog.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "kappa_catalog/catalog.h"

/*
 * The version of kappa's SQL objects (pg_extension.extversion) that this
 * library reads and writes: kappa.control's default_version.
 */
#define KAPPA_LIBRARY_VERSION "0.2"

static bool catalog_version_older(const char *version);

/* The search_path of catalog statements, and of user code in kappa. */
#define CATALOG_SEARCH_PATH "pg_catalog, pg_temp"

/* The settings kappa evaluates streams and views with; see the banner. */
static const struct
{
	const char *name;
	const char *value;
}			fixed_settings[] =
{
	{"search_path", CATALOG_SEARCH_PATH},
	{"TimeZone", "UTC"},
	{"DateStyle", "ISO, YMD"},
	{"IntervalStyle", "postgres"},
};

/*
 * The text of search_path as last seen by kappa_owner_enter: after user
 * code changed the setting, the string its old pointer points to may be
 * freed, so the comparison in kappa_owner_leave needs a copy.
 */
static const char *seen_search_path = NULL;
static char seen_search_path_text[1024];

/*
 * Start running kappa's own statements against its catalog: as the
 * bootstrap superuser, with a search_path no caller can change, inside
 * SPI.
 */
void
kappa_catalog_enter(KappaCatalogAccess *access)
{
	/*
	 * A SQL function against a catalog of another version refuses here;
	 * workers start only on a current one.
	 */
	if (!IsBackgroundWorker)
		kappa_require_current_catalog();
	GetUserIdAndSecContext(&access->save_userid, &access->save_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   access->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	access->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", CATALOG_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	SPI_connect();
}

/* Stop running catalog statements, restoring the caller's user and settings. */
void
kappa_catalog_leave(KappaCatalogAccess *access)
{
	SPI_finish();
	AtEOXact_GUC(false, access->save_nestlevel);
	SetUserIdAndSecContext(access->save_userid, access->save_sec_context);
}

/*
 * Refuse to run a catalog statement outside a catalog section, or inside
 * an owner section within one: the check that keeps the boundary honest.
 */
void
kappa_catalog_check(void)
{
	if (GetUserId() != BOOTSTRAP_SUPERUSERID ||
		strcmp(namespace_search_path, CATALOG_SEARCH_PATH) != 0)
		elog(ERROR, "kappa catalog statement outside a catalog section");
}

/*
 * Run one statement of kappa's own, built from constants and quoted
 * identifiers only, between kappa_catalog_enter and kappa_catalog_leave.
 */
void
kappa_catalog_exec(const char *sql, int expected)
{
	int			rc;

	kappa_catalog_check();
	rc = SPI_execute(sql, false, 0);
	if (rc != expected)
		elog(ERROR, "kappa statement failed (%s): %s", SPI_result_code_string(rc), sql);
}

/*
 * Start running user code as owner, in a security-restricted operation,
 * noting the settings it must leave alone.  Cheap enough for every event.
 */
void
kappa_owner_enter(KappaOwnerAccess *access, Oid owner)
{
	GetUserIdAndSecContext(&access->save_userid, &access->save_sec_context);
	SetUserIdAndSecContext(owner,
						   access->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (namespace_search_path != seen_search_path)
	{
		strlcpy(seen_search_path_text, namespace_search_path, sizeof(seen_search_path_text));
		seen_search_path = namespace_search_path;
	}
	access->search_path = namespace_search_path;
	access->timezone = session_timezone;
	access->date_style = DateStyle;
	access->date_order = DateOrder;
	access->interval_style = IntervalStyle;
}

/*
 * Stop running user code: back to the caller's user, after checking that
 * the code left the settings kappa relies on as they were.  A changed
 * setting is an error of the code that changed it; its rollback restores
 * the setting.
 */
void
kappa_owner_leave(KappaOwnerAccess *access)
{
	const char *changed = NULL;

	/* a setting set again is a new string, even with the same text */
	if (namespace_search_path != access->search_path &&
		strncmp(namespace_search_path, seen_search_path_text,
				sizeof(seen_search_path_text) - 1) != 0)
		changed = "search_path";
	else if ((const void *) session_timezone != access->timezone)
		changed = "TimeZone";
	else if (DateStyle != access->date_style || DateOrder != access->date_order)
		changed = "DateStyle";
	else if (IntervalStyle != access->interval_style)
		changed = "IntervalStyle";
	if (changed)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("code run by a kappa view changed setting \"%s\"", changed),
				 errdetail("kappa evaluates every view with the same settings, whoever runs it."),
				 errhint("Attach the setting to the function instead: CREATE FUNCTION ... SET %s = ...", changed)));
	SetUserIdAndSecContext(access->save_userid, access->save_sec_context);
}

/*
 * Fix the settings kappa evaluates streams and views with, for a SQL
 * function's call: returns the GUC nest level to pass to
 * kappa_settings_leave, which restores the caller's.
 */
int
kappa_settings_enter(void)
{
	int			nestlevel = NewGUCNestLevel();

	for (int i = 0; i < (int) lengthof(fixed_settings); i++)
		(void) set_config_option(fixed_settings[i].name, fixed_settings[i].value,
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

/* Restore the settings kappa_settings_enter changed. */
void
kappa_settings_leave(int nestlevel)
{
	AtEOXact_GUC(false, nestlevel);
}

/* Fix the same settings for the life of a background worker. */
void
kappa_settings_fix(void)
{
	for (int i = 0; i < (int) lengthof(fixed_settings); i++)
		SetConfigOption(fixed_settings[i].name, fixed_settings[i].value,
						PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * Whether an error is about the server rather than the data or the view
 * that met it: connection and transaction trouble, lack of resources,
 * operator intervention, system and internal errors.  Such an error is
 * retried (a worker backs off and starts again); any other error is the
 * event's (dead-lettered) or the view's (failed).
 */
bool
kappa_error_is_transient(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_CONNECTION_EXCEPTION:
		case ERRCODE_INVALID_TRANSACTION_STATE:
		case ERRCODE_TRANSACTION_ROLLBACK:
		case ERRCODE_INSUFFICIENT_RESOURCES:
		case ERRCODE_OPERATOR_INTERVENTION:
		case ERRCODE_SYSTEM_ERROR:
		case ERRCODE_CONFIG_FILE_ERROR:
		case ERRCODE_INTERNAL_ERROR:
			return true;
		default:
			return false;
	}
}

/* An error as kappa records it: its message, and its detail if any. */
char *
kappa_error_text(ErrorData *edata)
{
	if (edata->detail)
		return psprintf("%s (%s)", edata->message, edata->detail);
	return pstrdup(edata->message ? edata->message : "unknown error");
}

/*
 * The installed version of kappa's catalog (pg_extension.extversion), in
 * the caller's memory context; NULL before CREATE EXTENSION kappa.  One
 * index scan: SQL functions call this at each catalog section.
 */
char *
kappa_catalog_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("kappa"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		datum = heap_getattr(tuple, Anum_pg_extension_extversion,
										 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(datum));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/* The version of kappa's catalog this library reads and writes. */
const char *
kappa_library_version(void)
{
	return KAPPA_LIBRARY_VERSION;
}

/*
 * Whether version (major.minor) is older than the library's: a catalog
 * that ALTER EXTENSION kappa UPDATE brings up to date.
 */
static bool
catalog_version_older(const char *version)
{
	int			major,
				minor,
				lib_major,
				lib_minor;

	if (sscanf(version, "%d.%d", &major, &minor) != 2 ||
		sscanf(KAPPA_LIBRARY_VERSION, "%d.%d", &lib_major, &lib_minor) != 2)
		return false;
	return major < lib_major || (major == lib_major && minor < lib_minor);
}

/*
 * Whether kappa's catalog is of the library's version (or not there
 * yet); if not, *version says which it is.  In a transaction.
 */
bool
kappa_catalog_is_current(char **version)
{
	char	   *installed = kappa_catalog_version();

	*version = installed;
	return installed == NULL || strcmp(installed, KAPPA_LIBRARY_VERSION) == 0;
}

/*
 * Refuse to run a SQL function of kappa against a catalog of another
 * version: after the files of a new version are installed and the server
 * restarted, the SQL objects stay those of the old version until ALTER
 * EXTENSION kappa UPDATE, and the library's functions would read and
 * write tables, columns and arguments that are not there.  Called by
 * kappa_require_preload and, in backends, kappa_catalog_enter, so by
 * every SQL-callable function of kappa's that touches its catalog.  Install
 * and update scripts pass: they run the old and the new objects by design.
 * Nothing is cached: an update may still roll back.
 */
void
kappa_require_current_catalog(void)
{
	char	   *version;

	if (creating_extension || !IsTransactionState() || kappa_catalog_is_current(&version))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("kappa's catalog is at version %s and its library at %s",
					version, KAPPA_LIBRARY_VERSION),
			 errdetail("The library reads and writes only the catalog of its own version; streams do not run until the versions agree."),
			 errhint("%s", kappa_catalog_version_hint(version))));
}

/*
 * What to do about a catalog of another version: update an older one; for
 * a newer one, install the library of its version.
 */
char *
kappa_catalog_version_hint(const char *version)
{
	if (catalog_version_older(version))
		return pstrdup("Run ALTER EXTENSION kappa UPDATE.");
	return psprintf("Install the files of kappa %s and restart the server.", version);
}
