/*-------------------------------------------------------------------------
 *
 * subxact.c
 *	  Internal subtransactions that leave the caller where it was.
 *
 * kappa isolates what may fail for a reason of its own (a view's flush or
 * load, a replay's or a feed's events since their last flush, a payload
 * kappa.decode is asked about) in internal subtransactions, as PL/pgSQL's
 * exception blocks do.  In Postgres 15, BeginInternalSubTransaction,
 * ReleaseCurrentSubTransaction and RollbackAndReleaseCurrentSubTransaction
 * leave the current memory context and resource owner to the caller to
 * put back; these wrappers do it, every time, so that nothing the caller
 * allocates afterwards lands in a subtransaction's memory, which its
 * rollback frees.
 *
 * An error caught in a subtransaction must end it before it is raised
 * again: a subtransaction left open behind an error leaves the session's
 * transaction aborted (every later statement fails with 25P02).  So the
 * pattern is: kappa_subxact_begin; PG_TRY the work, then
 * kappa_subxact_commit; PG_CATCH kappa_subxact_abort, which copies the
 * error and rolls back, then decide, and ReThrowError if it is not ours.
 *
 * src/subxact.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"

#include "subxact.h"

/* Begin an internal subtransaction, staying in the caller's memory. */
void
kappa_subxact_begin(KappaSubxact *sub)
{
	sub->cxt = CurrentMemoryContext;
	sub->owner = CurrentResourceOwner;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(sub->cxt);
}

/* Commit it, back in the caller's memory and resource owner. */
void
kappa_subxact_commit(KappaSubxact *sub)
{
	ReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sub->cxt);
	CurrentResourceOwner = sub->owner;
}

/*
 * In PG_CATCH: copy the error (into the caller's memory), roll the
 * subtransaction back, and come back to the caller's memory and resource
 * owner.  Returns the error, for the caller to judge or raise again.
 */
ErrorData *
kappa_subxact_abort(KappaSubxact *sub)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(sub->cxt);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(sub->cxt);
	CurrentResourceOwner = sub->owner;
	return edata;
}
