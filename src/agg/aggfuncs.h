/*-------------------------------------------------------------------------
 *
 * aggfuncs.h
 *	  kappa's own combinable aggregates: kappa_count_distinct,
 *	  kappa_collect_set, kappa_collect_list, kappa_first, kappa_last,
 *	  kappa_approx_count_distinct, kappa_sum_distinct, kappa_avg_distinct,
 *	  kappa_string_agg, kappa_string_agg_distinct, kappa_percentile_cont
 *	  and kappa_percentile_disc.
 *
 * The aggregates themselves are SQL objects (sql/kappa--0.1.sql); this
 * header only lets other C code ask, before a view is created, whether one
 * of them can take an argument of a given type.
 *
 * src/agg/aggfuncs.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_AGGFUNCS_H
#define KAPPA_AGGFUNCS_H

/*
 * Raise the error that the kappa aggregate named aggname (for example
 * "kappa_collect_list") would raise at its first call with an argument of
 * type argtype, if it would; no-op for other names and for usable types.
 */
extern void kappa_aggfunc_check_type(const char *aggname, Oid argtype);

#endif							/* KAPPA_AGGFUNCS_H */
