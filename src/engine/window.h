/*-------------------------------------------------------------------------
 *
 * window.h
 *	  Event-time windows: tumbling, hopping and session windows.
 *
 * src/engine/window.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_WINDOW_H
#define KAPPA_WINDOW_H

#include "datatype/timestamp.h"

typedef enum KappaWindowKind
{
	KAPPA_WINDOW_NONE,			/* a running aggregate: one row per key */
	KAPPA_WINDOW_TUMBLE,
	KAPPA_WINDOW_HOP,
	KAPPA_WINDOW_SESSION
} KappaWindowKind;

/* A view's window: its kind and sizes, in microseconds. */
typedef struct KappaWindow
{
	KappaWindowKind kind;
	int64		size;			/* tumble, hop: window length */
	int64		slide;			/* hop: distance between window starts */
	int64		gap;			/* session: inactivity that ends a session */
} KappaWindow;

/* The most windows one event can fall in: hop size / slide. */
#define KAPPA_MAX_HOPS 1000

extern int	kappa_window_assign(const KappaWindow *window, TimestampTz ts,
								TimestampTz *starts);
extern int64 kappa_window_interval_us(Interval *iv, const char *what);

#endif							/* KAPPA_WINDOW_H */
