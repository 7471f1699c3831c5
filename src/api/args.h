/*-------------------------------------------------------------------------
 *
 * args.h
 *	  A SQL function's arguments read by the names its SQL definition
 *	  gives them.
 *
 * src/api/args.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_ARGS_H
#define KAPPA_ARGS_H

#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

typedef struct KappaArgs
{
	FunctionCallInfo fcinfo;
	int			nargs;
	char	  **names;			/* as the SQL definition declares them */
} KappaArgs;

extern void kappa_args_init(KappaArgs *args, FunctionCallInfo fcinfo);
extern bool kappa_arg_isnull(KappaArgs *args, const char *name);
extern char *kappa_arg_text(KappaArgs *args, const char *name, char *absent);
extern bool kappa_arg_bool(KappaArgs *args, const char *name, bool absent);
extern Interval *kappa_arg_interval(KappaArgs *args, const char *name);
extern Jsonb *kappa_arg_jsonb(KappaArgs *args, const char *name);

#endif							/* KAPPA_ARGS_H */
