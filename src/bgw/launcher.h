/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The kappa launcher: one background worker that starts, stops and
 *	  restarts a worker per stream.
 *
 * src/bgw/launcher.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_LAUNCHER_H
#define KAPPA_LAUNCHER_H

#include "fmgr.h"

extern void kappa_launcher_register(void);
extern PGDLLEXPORT void kappa_launcher_main(Datum main_arg);

#endif							/* KAPPA_LAUNCHER_H */
