/*-------------------------------------------------------------------------
 *
 * retry.h
 *	  kappa_retry_dead_letters: dead letters decoded and applied again,
 *	  by the stream's worker at a flush.
 *
 * src/engine/retry.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_RETRY_H
#define KAPPA_RETRY_H

#include "engine/engine.h"
#include "kappa_catalog/stream.h"

extern bool kappa_retry_pending(int slot_index);
extern void kappa_retry_apply(int slot_index, KappaEngine *engine, KappaStream *stream,
							  KappaPoisons *poisons);
extern void kappa_retry_report(int slot_index);

#endif							/* KAPPA_RETRY_H */
