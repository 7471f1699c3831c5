/*-------------------------------------------------------------------------
 *
 * args.c
 *	  A SQL function's arguments read by the names its SQL definition
 *	  gives them.
 *
 * A function with many arguments, such as kappa_create_stream, reads
 * each by the name its SQL definition gives it (pg_proc.proargnames),
 * not by its position: the C code then says which argument it means, and
 * it serves every definition the extension's scripts have had, where an
 * argument a script does not declare yet (the SQL definition of an older
 * version, before ALTER EXTENSION ... UPDATE) reads as its default.  The
 * names are looked up once per call.
 *
 * src/api/args.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "api/args.h"

/* Read the argument names of the function being called. */
void
kappa_args_init(KappaArgs *args, FunctionCallInfo fcinfo)
{
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	Oid		   *types;
	char	  **names;
	char	   *modes;
	int			n;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	n = get_func_arg_info(tuple, &types, &names, &modes);
	ReleaseSysCache(tuple);
	if (names == NULL)
		elog(ERROR, "function %u has no argument names", fn_oid);

	/* the input arguments, in the order the call passes them */
	args->fcinfo = fcinfo;
	args->names = palloc(sizeof(char *) * Max(n, 1));
	args->nargs = 0;
	for (int i = 0; i < n; i++)
	{
		if (modes == NULL || modes[i] == PROARGMODE_IN ||
			modes[i] == PROARGMODE_INOUT || modes[i] == PROARGMODE_VARIADIC)
			args->names[args->nargs++] = names[i];
	}
	args->nargs = Min(args->nargs, fcinfo->nargs);
}

/* The position of an input argument, or -1 if the definition lacks it. */
static int
arg_position(KappaArgs *args, const char *name)
{
	for (int i = 0; i < args->nargs; i++)
	{
		if (args->names[i] && strcmp(args->names[i], name) == 0)
			return i;
	}
	return -1;
}

/* Whether the argument is given as null (an absent one is not). */
bool
kappa_arg_isnull(KappaArgs *args, const char *name)
{
	int			i = arg_position(args, name);

	return i >= 0 && args->fcinfo->args[i].isnull;
}

/* A text argument as a C string; absent if null or not declared. */
char *
kappa_arg_text(KappaArgs *args, const char *name, char *absent)
{
	int			i = arg_position(args, name);

	if (i < 0 || args->fcinfo->args[i].isnull)
		return absent;
	return text_to_cstring(DatumGetTextPP(args->fcinfo->args[i].value));
}

/* A boolean argument; absent if null or not declared. */
bool
kappa_arg_bool(KappaArgs *args, const char *name, bool absent)
{
	int			i = arg_position(args, name);

	if (i < 0 || args->fcinfo->args[i].isnull)
		return absent;
	return DatumGetBool(args->fcinfo->args[i].value);
}

/* An interval argument; NULL if null or not declared. */
Interval *
kappa_arg_interval(KappaArgs *args, const char *name)
{
	int			i = arg_position(args, name);

	if (i < 0 || args->fcinfo->args[i].isnull)
		return NULL;
	return DatumGetIntervalP(args->fcinfo->args[i].value);
}

/* A jsonb argument; NULL if null or not declared. */
Jsonb *
kappa_arg_jsonb(KappaArgs *args, const char *name)
{
	int			i = arg_position(args, name);

	if (i < 0 || args->fcinfo->args[i].isnull)
		return NULL;
	return DatumGetJsonbP(args->fcinfo->args[i].value);
}
