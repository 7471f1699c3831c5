/*-------------------------------------------------------------------------
 *
 * kappa.c
 *	  Entry point of the kappa extension: stream-backed materialized views.
 *
 * kappa must be loaded through shared_preload_libraries: _PG_init then
 * defines the settings, installs the log hook that keeps secrets out of the
 * server log, reserves shared memory and registers the launcher, a static
 * background worker that starts one worker per stream.  Loaded any other
 * way (CREATE EXTENSION in a server that did not preload it), it does
 * nothing at all, and every function fails with a hint to preload the
 * library; CREATE EXTENSION itself fails the same way, so the mistake shows
 * up at once.
 *
 * src/kappa.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "bgw/launcher.h"
#include "guc.h"
#include "kappa_catalog/connection.h"
#include "shmem.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(kappa_assert_preloaded);

void		_PG_init(void);

/* Module load callback. */
void
_PG_init(void)
{
	/*
	 * Loaded later, by CREATE EXTENSION in a server that did not preload
	 * it, the library must not even define its settings: some can only be
	 * defined by the postmaster.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	kappa_guc_define();
	kappa_secrets_install_log_hook();
	kappa_shmem_install_hooks();
	kappa_launcher_register();
}

/*
 * kappa.assert_preloaded() is called by the install script, so that
 * CREATE EXTENSION fails with a useful hint on a server that did not
 * preload the library.
 */
Datum
kappa_assert_preloaded(PG_FUNCTION_ARGS)
{
	kappa_require_preload();
	PG_RETURN_VOID();
}
