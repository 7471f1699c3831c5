/*-------------------------------------------------------------------------
 *
 * ddl.h
 *	  Plain DDL on kappa's relations: the sql_drop event trigger, and
 *	  kappa's own DROPs that it lets through.
 *
 * src/kappa_catalog/ddl.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_DDL_H
#define KAPPA_DDL_H

extern int	kappa_ddl_own_execute(const char *sql);

#endif							/* KAPPA_DDL_H */
