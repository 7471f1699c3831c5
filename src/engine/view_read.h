/*-------------------------------------------------------------------------
 *
 * view_read.h
 *	  How a view's rows are read: the user-facing view's query, and the
 *	  column that holds a row's window.
 *
 * src/engine/view_read.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_VIEW_READ_H
#define KAPPA_VIEW_READ_H

#include "engine/compile.h"

extern char *kappa_view_window_column(KappaViewSpec *spec, bool *is_end);
extern char *kappa_view_read_query(KappaViewSpec *spec, const char *rows_table);
extern char *kappa_view_read_definition(int32 view_id, int *nvisible);

#endif							/* KAPPA_VIEW_READ_H */
