/*-------------------------------------------------------------------------
 *
 * produce.h
 *	  SQL functions that talk to a stream's brokers: kappa_produce and
 *	  kappa_peek.
 *
 * src/api/produce.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_PRODUCE_H
#define KAPPA_PRODUCE_H

/* Largest n kappa_peek accepts: it reads up to n messages per partition. */
#define KAPPA_PEEK_MAX 10000

#endif							/* KAPPA_PRODUCE_H */
