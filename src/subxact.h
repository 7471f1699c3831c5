/*-------------------------------------------------------------------------
 *
 * subxact.h
 *	  Internal subtransactions that leave the caller where it was.
 *
 * src/subxact.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_SUBXACT_H
#define KAPPA_SUBXACT_H

#include "utils/resowner.h"

/* The caller's memory context and resource owner, to come back to. */
typedef struct KappaSubxact
{
	MemoryContext cxt;
	ResourceOwner owner;
} KappaSubxact;

extern void kappa_subxact_begin(KappaSubxact *sub);
extern void kappa_subxact_commit(KappaSubxact *sub);
extern ErrorData *kappa_subxact_abort(KappaSubxact *sub);

#endif							/* KAPPA_SUBXACT_H */
