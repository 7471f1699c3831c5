/*-------------------------------------------------------------------------
 *
 * window.c
 *	  Event-time windows: tumbling, hopping and session windows.
 *
 * Windows are aligned to the Unix epoch, as date_bin(size, ts, epoch)
 * aligns them: a tumbling window of size s that holds ts starts at
 * epoch + floor((ts - epoch) / s) * s, and ends s later.  A hopping window
 * of size s starts every slide; an event belongs to every such window
 * with start <= ts < start + s.  Session windows depend on the other
 * events of their key, so they are formed in state.c; here they only have
 * a gap.
 *
 * kappa_tumble and kappa_hop are also ordinary set-returning SQL functions,
 * so that a view's query, run as batch SQL over a table of the same
 * events, gives the same windows.  kappa_session has no batch meaning and
 * says so.
 *
 * src/engine/window.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "engine/window.h"

PG_FUNCTION_INFO_V1(kappa_tumble);
PG_FUNCTION_INFO_V1(kappa_hop);
PG_FUNCTION_INFO_V1(kappa_session);

/* Microseconds from the Unix epoch to Postgres's epoch (2000-01-01). */
#define UNIX_EPOCH_US ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

static int64 floor_div(int64 a, int64 b);
static int64 floor_mod(int64 a, int64 b);
static void return_windows(FunctionCallInfo fcinfo, const KappaWindow *window);

/* a mod b, from 0 to b - 1 (b > 0). */
static int64
floor_mod(int64 a, int64 b)
{
	int64		r = a % b;

	return r < 0 ? r + b : r;
}

/* a / b rounded towards minus infinity (b > 0). */
static int64
floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	return (a % b != 0 && a < 0) ? q - 1 : q;
}

/*
 * A window size as microseconds: positive, and without months, which have
 * no fixed length.
 */
int64
kappa_window_interval_us(Interval *iv, const char *what)
{
	int64		us = iv->time + (int64) iv->day * USECS_PER_DAY;

	if (iv->month != 0 || iv->day < 0 || iv->day > 100000 || us <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("window %s must be positive and given in days or smaller units", what)));
	return us;
}

/*
 * The start of every tumbling or hopping window that holds ts, earliest
 * first, into starts[] (room for KAPPA_MAX_HOPS); returns how many, or -1
 * when a bound of one of them would lie outside Postgres's timestamp
 * range (which holds ts, but not always the windows around it).
 */
int
kappa_window_assign(const KappaWindow *window, TimestampTz ts, TimestampTz *starts)
{
	int64		step = (window->kind == KAPPA_WINDOW_TUMBLE) ? window->size : window->slide;
	int64		first;
	int64		last;
	int64		end;
	int			n = 0;

	Assert(window->kind == KAPPA_WINDOW_TUMBLE || window->kind == KAPPA_WINDOW_HOP);
	if (TIMESTAMP_NOT_FINITE(ts) || !IS_VALID_TIMESTAMP(ts))
		return -1;

	/*
	 * The latest window start at or before ts, aligned to the Unix epoch:
	 * ts less (ts - epoch) mod step, computed without ts - epoch, which
	 * overflows near the ends of the range.
	 */
	last = ts - (floor_mod(ts, step) + floor_mod(UNIX_EPOCH_US, step)) % step;
	if (pg_add_s64_overflow(last, window->size, &end))
		return -1;
	/* hop: back while a window still holds ts */
	first = last - floor_div(window->size - 1, step) * step;
	while (first + window->size <= ts)
		first += step;
	if (!IS_VALID_TIMESTAMP(first) || !IS_VALID_TIMESTAMP(end))
		return -1;
	for (int64 s = first; s <= last; s += step)
		starts[n++] = s;
	return n;
}

/* Return the given windows of the ts argument as the function's rows. */
static void
return_windows(FunctionCallInfo fcinfo, const KappaWindow *window)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz starts[KAPPA_MAX_HOPS];
	int			n;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (PG_ARGISNULL(0))
		return;
	n = kappa_window_assign(window, PG_GETARG_TIMESTAMPTZ(0), starts);
	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("the windows of timestamp \"%s\" are out of range",
						timestamptz_to_str(PG_GETARG_TIMESTAMPTZ(0))),
				 errdetail("A window that holds it would start or end outside the range of timestamp with time zone.")));
	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = TimestampTzGetDatum(starts[i]);
		values[1] = TimestampTzGetDatum(starts[i] + window->size);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* kappa_tumble(ts, size): the tumbling window that holds ts. */
Datum
kappa_tumble(PG_FUNCTION_ARGS)
{
	KappaWindow window = {.kind = KAPPA_WINDOW_TUMBLE};

	window.size = kappa_window_interval_us(PG_GETARG_INTERVAL_P(1), "size");
	return_windows(fcinfo, &window);
	return (Datum) 0;
}

/* kappa_hop(ts, size, slide): every hopping window that holds ts. */
Datum
kappa_hop(PG_FUNCTION_ARGS)
{
	KappaWindow window = {.kind = KAPPA_WINDOW_HOP};

	window.size = kappa_window_interval_us(PG_GETARG_INTERVAL_P(1), "size");
	window.slide = kappa_window_interval_us(PG_GETARG_INTERVAL_P(2), "slide");
	if (window.size / window.slide >= KAPPA_MAX_HOPS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a hopping window's size may be at most %d times its slide",
						KAPPA_MAX_HOPS - 1)));
	return_windows(fcinfo, &window);
	return (Datum) 0;
}

/* kappa_session(ts, gap): only meaningful in a view. */
Datum
kappa_session(PG_FUNCTION_ARGS)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("kappa_session can only be used in a kappa view"),
			 errdetail("A session window depends on the other events of its key, which a row-by-row function cannot see."),
			 errhint("In batch SQL, find sessions with a gaps-and-islands query over the events ordered by time.")));
	PG_RETURN_NULL();
}
