/*-------------------------------------------------------------------------
 *
 * view_state.c
 *	  A view's stored state: the aggregate states of its open groups
 *	  (kappa.view_state), the marker that says they survived
 *	  (kappa.view_state_marker), each worker's finalization mark
 *	  (kappa.view_marks) and the dedup keys within the watermark horizon
 *	  (kappa.view_dedup).
 *
 * A worker's flush writes them (engine/flush.c), in the transaction that
 * writes the view's rows and positions; loading a view reads them back
 * (engine/recovery.c).  The tables are unlogged: crash recovery and a
 * failover empty them, the marker row with them, and its absence is how
 * loading knows to rebuild the view from the log.  With several workers
 * per stream, each flush reads the stored groups it changes and combines
 * them with its own, under the view's state lock (kappa_view_lock_state),
 * which the caller holds.
 *
 * The flush writes every state with one statement, an INSERT of an array
 * of kappa.view_state rows: one statement and one array, however many
 * groups changed (a state is a bytea[] per group, which parallel arrays
 * of columns could not carry).  The rows are built as the view's owner,
 * who serializes the states, outside a catalog section, with the row
 * type's descriptor kept here: kappa_view_state_prepare, in a catalog
 * section before the flush builds any, reads it again when kappa's
 * catalog was replaced (kappa_catalog_generation), the table was (a new
 * relation: every statement is then prepared again) or its row type
 * changed (its type cache identifier, as after an ALTER EXTENSION ...
 * UPDATE that adds a column).
 *
 * Each function runs its constant statements (statement.c) in its
 * caller's catalog section and transaction; none opens one.  Those that
 * read return what they read in the current memory context: in a catalog
 * section, SPI's, gone once the section is left, as the rows it was read
 * from are.
 *
 * Lifetime: the row type's descriptor is a copy in TopMemoryContext, kept
 * for the backend's life and replaced when it changes.
 *
 * src/kappa_catalog/view_state.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "parser/parse_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "kappa_catalog/catalog.h"
#include "kappa_catalog/statement.h"
#include "kappa_catalog/view_state.h"

/*
 * kappa.view_state's row type and relation, for the catalog generation
 * row_generation, and a copy of its descriptor, as the type cache knew it
 * under row_desc_identifier (0: none yet).
 */
static uint64 row_generation = 0;
static Oid	row_type = InvalidOid;
static Oid	row_relid = InvalidOid;
static uint64 row_desc_identifier = 0;
static TupleDesc row_desc = NULL;

static Datum key_array(int n, bytea *const *group_keys);
static Datum start_array(int n, const TimestampTz *window_starts);
static int64 stored_states(KappaStoredState **states);


/*
 * Make sure the row type kappa_view_state_form_row builds with is
 * kappa.view_state's as it is now.  Cheap when nothing changed (a type
 * cache lookup).  In a catalog section, before rows are built.
 */
void
kappa_view_state_prepare(void)
{
	uint64		generation;
	Oid			relid;
	TypeCacheEntry *entry;
	TupleDesc	copy;
	MemoryContext old;

	kappa_catalog_check();

	/*
	 * A kappa.view_state dropped and created again in the same schema (an
	 * update script could) has a new row type, which the statements that
	 * take an array of it were prepared without: all are prepared again.
	 */
	relid = RangeVarGetRelid(makeRangeVar("kappa", "view_state", -1), NoLock, false);
	if (OidIsValid(row_relid) && relid != row_relid)
		kappa_catalog_replaced();
	generation = kappa_catalog_generation();
	if (generation != row_generation || !OidIsValid(row_type))
	{
		int32		typmod;

		parseTypeString("kappa.view_state", &row_type, &typmod, false);
		row_generation = generation;
		row_relid = relid;
		row_desc_identifier = 0;
	}
	entry = lookup_type_cache(row_type, TYPECACHE_TUPDESC);
	if (entry->tupDesc == NULL)
		elog(ERROR, "kappa.view_state has no row type");
	if (row_desc != NULL && entry->tupDesc_identifier == row_desc_identifier)
		return;

	old = MemoryContextSwitchTo(TopMemoryContext);
	copy = CreateTupleDescCopy(entry->tupDesc);
	MemoryContextSwitchTo(old);
	if (row_desc != NULL)
		FreeTupleDesc(row_desc);
	row_desc = copy;
	row_desc_identifier = entry->tupDesc_identifier;
}

/*
 * A group's stored state as a row of kappa.view_state, for
 * kappa_view_state_write: its key, window and each aggregate's serialized
 * state (bytea[]).  In the current memory context; needs no catalog
 * section (the flush builds rows as the view's owner), but
 * kappa_view_state_prepare must have run in this flush.
 */
Datum
kappa_view_state_form_row(int32 view_id, bytea *group_key, TimestampTz window_start,
						  TimestampTz window_end, ArrayType *states)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (row_desc == NULL)
		elog(ERROR, "kappa.view_state's row type was not prepared");
	values[0] = Int32GetDatum(view_id);
	values[1] = PointerGetDatum(group_key);
	values[2] = TimestampTzGetDatum(window_start);
	values[3] = TimestampTzGetDatum(window_end);
	values[4] = PointerGetDatum(states);
	return HeapTupleGetDatum(heap_form_tuple(row_desc, values, nulls));
}

/*
 * Write rows of kappa_view_state_form_row (a List of their
 * HeapTupleHeaders), in one statement: inserted, or with upsert, each
 * replacing the stored state of its group and window start.  A plain
 * insert skips the speculative insertion of an upsert; it fails with a
 * unique violation if a row is there (the caller decides what then).  In
 * a catalog section.
 */
void
kappa_view_state_write(List *rows, bool upsert)
{
	static KappaStatement insert_rows =
		KAPPA_STATEMENT("INSERT INTO kappa.view_state SELECT * FROM unnest($1)",
						"kappa.view_state[]");
	static KappaStatement upsert_rows =
		KAPPA_STATEMENT("INSERT INTO kappa.view_state SELECT * FROM unnest($1) "
						"ON CONFLICT (view_id, group_key, window_start) DO UPDATE "
						"SET window_end = EXCLUDED.window_end, states = EXCLUDED.states",
						"kappa.view_state[]");
	int			n = list_length(rows);
	Datum	   *elems;
	Datum		array;
	ListCell   *lc;

	if (n == 0)
		return;
	if (row_desc == NULL)
		elog(ERROR, "kappa.view_state's row type was not prepared");
	elems = palloc(sizeof(Datum) * n);
	foreach(lc, rows)
		elems[foreach_current_index(lc)] = PointerGetDatum(lfirst(lc));
	array = PointerGetDatum(construct_array(elems, n, row_type, -1, false, TYPALIGN_DOUBLE));
	kappa_statement_run(upsert ? &upsert_rows : &insert_rows, &array, NULL, SPI_OK_INSERT, 0);
}

/*
 * Delete a view's stored states by group key and window start (the i-th
 * of each), in one statement.  In a catalog section.
 */
void
kappa_view_state_delete(int32 view_id, int n, bytea *const *group_keys,
						const TimestampTz *window_starts)
{
	/*
	 * Planned for the arrays of each run (so are the two reads below): a
	 * generic plan assumes a short array and probes the primary key once
	 * per group; for thousands of groups the plan that knows their number
	 * (a hash join) takes half the time.
	 */
	static KappaStatement delete_states =
		KAPPA_STATEMENT_PLANNED_EACH_RUN("DELETE FROM kappa.view_state s USING unnest($2, $3) AS d(k, w) "
						"WHERE s.view_id = $1 AND s.group_key = d.k AND s.window_start = d.w",
						"int4", "bytea[]", "timestamptz[]");
	Datum		values[3];

	if (n == 0)
		return;
	values[0] = Int32GetDatum(view_id);
	values[1] = key_array(n, group_keys);
	values[2] = start_array(n, window_starts);
	kappa_statement_run(&delete_states, values, NULL, SPI_OK_DELETE, 0);
}

/*
 * Delete the stored states of a view's windows that ended at or before
 * upto, whichever worker wrote them.  In a catalog section.
 */
void
kappa_view_state_delete_finalized(int32 view_id, TimestampTz upto)
{
	static KappaStatement delete_finalized =
		KAPPA_STATEMENT("DELETE FROM kappa.view_state WHERE view_id = $1 AND window_end <= $2",
						"int4", "timestamptz");
	Datum		values[2] = {Int32GetDatum(view_id), TimestampTzGetDatum(upto)};

	kappa_statement_run(&delete_finalized, values, NULL, SPI_OK_DELETE, 0);
}

/*
 * All of a view's stored groups: sets *states to an array of them, and
 * returns how many.  In a catalog section.
 */
int64
kappa_view_state_read(int32 view_id, KappaStoredState **states)
{
	static KappaStatement read_all =
		KAPPA_STATEMENT("SELECT group_key, window_start, window_end, states FROM kappa.view_state "
						"WHERE view_id = $1",
						"int4");
	Datum		value = Int32GetDatum(view_id);

	kappa_statement_run(&read_all, &value, NULL, SPI_OK_SELECT, 0);
	return stored_states(states);
}

/*
 * A view's stored groups of the given keys and window starts (the i-th
 * of each), as kappa_view_state_read returns them.  In a catalog section.
 */
int64
kappa_view_state_read_groups(int32 view_id, int n, bytea *const *group_keys,
							 const TimestampTz *window_starts, KappaStoredState **states)
{
	static KappaStatement read_groups =
		KAPPA_STATEMENT_PLANNED_EACH_RUN("SELECT s.group_key, s.window_start, s.window_end, s.states "
						"FROM kappa.view_state s JOIN unnest($2, $3) AS d(k, w) "
						"ON s.group_key = d.k AND s.window_start = d.w WHERE s.view_id = $1",
						"int4", "bytea[]", "timestamptz[]");
	Datum		values[3];

	values[0] = Int32GetDatum(view_id);
	values[1] = key_array(n, group_keys);
	values[2] = start_array(n, window_starts);
	kappa_statement_run(&read_groups, values, NULL, SPI_OK_SELECT, 0);
	return stored_states(states);
}

/*
 * A view's stored groups of the given keys, in every window (a session
 * view's, whose sessions may merge), as kappa_view_state_read returns
 * them.  In a catalog section.
 */
int64
kappa_view_state_read_keys(int32 view_id, int n, bytea *const *group_keys,
						   KappaStoredState **states)
{
	static KappaStatement read_keys =
		KAPPA_STATEMENT_PLANNED_EACH_RUN("SELECT group_key, window_start, window_end, states FROM kappa.view_state "
						"WHERE view_id = $1 AND group_key = ANY ($2)",
						"int4", "bytea[]");
	Datum		values[2];

	values[0] = Int32GetDatum(view_id);
	values[1] = key_array(n, group_keys);
	kappa_statement_run(&read_keys, values, NULL, SPI_OK_SELECT, 0);
	return stored_states(states);
}

/*
 * Whether a view's state marker is there: if not, crash recovery or a
 * failover emptied the unlogged state tables.  In a catalog section.
 */
bool
kappa_view_state_marker_exists(int32 view_id)
{
	static KappaStatement marker =
		KAPPA_STATEMENT("SELECT 1 FROM kappa.view_state_marker WHERE view_id = $1", "int4");
	Datum		value = Int32GetDatum(view_id);

	return kappa_statement_run(&marker, &value, NULL, SPI_OK_SELECT, 0) > 0;
}

/*
 * A view's state marker: its state tables hold what it stored (a new
 * view, or one rebuilt).  In a catalog section.
 */
void
kappa_view_state_marker_insert(int32 view_id)
{
	static KappaStatement insert_marker =
		KAPPA_STATEMENT("INSERT INTO kappa.view_state_marker VALUES ($1)", "int4");
	Datum		value = Int32GetDatum(view_id);

	kappa_statement_run(&insert_marker, &value, NULL, SPI_OK_INSERT, 0);
}

/*
 * Store how far a worker of a shared view has finalized its windows;
 * never back.  In a catalog section.
 */
void
kappa_view_marks_store(int32 view_id, int32 worker, TimestampTz finalized_upto)
{
	static KappaStatement store_mark =
		KAPPA_STATEMENT("INSERT INTO kappa.view_marks AS m VALUES ($1, $2, $3) "
						"ON CONFLICT (view_id, worker) DO UPDATE "
						"SET finalized_upto = greatest(m.finalized_upto, EXCLUDED.finalized_upto)",
						"int4", "int4", "timestamptz");
	Datum		values[3] = {Int32GetDatum(view_id), Int32GetDatum(worker),
	TimestampTzGetDatum(finalized_upto)};

	kappa_statement_run(&store_mark, values, NULL, SPI_OK_INSERT, 0);
}

/*
 * The marks of a shared view's workers 0 .. nworkers - 1: whether each
 * stored one, the lowest and the highest (DT_NOBEGIN if none).  In a
 * catalog section.
 */
void
kappa_view_marks_read(int32 view_id, int32 nworkers, bool *all_workers, TimestampTz *lowest,
					  TimestampTz *highest)
{
	static KappaStatement read_marks =
		KAPPA_STATEMENT("SELECT count(*) = $2, min(finalized_upto), max(finalized_upto) "
						"FROM kappa.view_marks WHERE view_id = $1 AND worker < $2",
						"int4", "int4");
	Datum		values[2] = {Int32GetDatum(view_id), Int32GetDatum(nworkers)};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	kappa_statement_run(&read_marks, values, NULL, SPI_OK_SELECT, 0);
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*all_workers = DatumGetBool(SPI_getbinval(row, desc, 1, &isnull));
	d = SPI_getbinval(row, desc, 2, &isnull);
	*lowest = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
	d = SPI_getbinval(row, desc, 3, &isnull);
	*highest = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
}

/*
 * The furthest any worker of a view has finalized (DT_NOBEGIN if none
 * stored a mark).  In a catalog section.
 */
TimestampTz
kappa_view_marks_furthest(int32 view_id)
{
	static KappaStatement furthest =
		KAPPA_STATEMENT("SELECT max(finalized_upto) FROM kappa.view_marks WHERE view_id = $1",
						"int4");
	Datum		value = Int32GetDatum(view_id);
	bool		isnull;
	Datum		d;

	kappa_statement_run(&furthest, &value, NULL, SPI_OK_SELECT, 0);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
}

/*
 * Store the dedup keys a flush saw first in a view's partition, with
 * their event times (the i-th of each), as one segment whose newest time
 * is newest.  In a catalog section.
 */
void
kappa_view_dedup_store(int32 view_id, int32 partition, TimestampTz newest, int n,
					   const char *const *keys, const TimestampTz *event_times)
{
	static KappaStatement store_segment =
		KAPPA_STATEMENT("INSERT INTO kappa.view_dedup VALUES ($1, $2, $3, $4, $5)",
						"int4", "int4", "timestamptz", "text[]", "timestamptz[]");
	Datum	   *key_datums = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *time_datums = palloc(sizeof(Datum) * Max(n, 1));
	Datum		values[5];

	for (int i = 0; i < n; i++)
	{
		key_datums[i] = CStringGetTextDatum(keys[i]);
		time_datums[i] = TimestampTzGetDatum(event_times[i]);
	}
	values[0] = Int32GetDatum(view_id);
	values[1] = Int32GetDatum(partition);
	values[2] = TimestampTzGetDatum(newest);
	values[3] = PointerGetDatum(construct_array(key_datums, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_array(time_datums, n, TIMESTAMPTZOID, sizeof(TimestampTz),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	kappa_statement_run(&store_segment, values, NULL, SPI_OK_INSERT, 0);
}

/*
 * Delete a view partition's segments whose keys have all left the
 * horizon (their newest time is before it).  In a catalog section.
 */
void
kappa_view_dedup_prune(int32 view_id, int32 partition, TimestampTz horizon)
{
	static KappaStatement prune =
		KAPPA_STATEMENT("DELETE FROM kappa.view_dedup "
						"WHERE view_id = $1 AND partition = $2 AND newest < $3",
						"int4", "int4", "timestamptz");
	Datum		values[3] = {Int32GetDatum(view_id), Int32GetDatum(partition),
	TimestampTzGetDatum(horizon)};

	kappa_statement_run(&prune, values, NULL, SPI_OK_DELETE, 0);
}

/*
 * Call callback with each dedup key a view stored, its partition and
 * event time; a key in two segments comes twice.  The key lives only
 * during the call.  In a catalog section.
 */
void
kappa_view_dedup_load(int32 view_id, KappaDedupKeyCallback callback, void *arg)
{
	static KappaStatement load =
		KAPPA_STATEMENT("SELECT d.partition, u.k, u.t FROM kappa.view_dedup d, "
						"unnest(d.keys, d.event_times) AS u(k, t) WHERE d.view_id = $1",
						"int4");
	Datum		value = Int32GetDatum(view_id);
	uint64		n;

	n = kappa_statement_run(&load, &value, NULL, SPI_OK_SELECT, 0);
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		partition = DatumGetInt32(SPI_getbinval(row, desc, 1, &isnull));
		TimestampTz time = DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &isnull));
		char	   *key = SPI_getvalue(row, desc, 2);

		callback(arg, partition, key, time);
		pfree(key);
	}
}

/* Delete a view's dedup keys (a rebuild starts over).  In a catalog section. */
void
kappa_view_dedup_forget(int32 view_id)
{
	static KappaStatement forget =
		KAPPA_STATEMENT("DELETE FROM kappa.view_dedup WHERE view_id = $1", "int4");
	Datum		value = Int32GetDatum(view_id);

	kappa_statement_run(&forget, &value, NULL, SPI_OK_DELETE, 0);
}

/* Group keys as a bytea[]. */
static Datum
key_array(int n, bytea *const *group_keys)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = PointerGetDatum(group_keys[i]);
	return PointerGetDatum(construct_array(elems, n, BYTEAOID, -1, false, TYPALIGN_INT));
}

/* Window starts as a timestamptz[]. */
static Datum
start_array(int n, const TimestampTz *window_starts)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		elems[i] = TimestampTzGetDatum(window_starts[i]);
	return PointerGetDatum(construct_array(elems, n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

/*
 * The rows a read of kappa.view_state left in SPI_tuptable (group_key,
 * window_start, window_end, states), as an array of KappaStoredState in
 * the current memory context; the keys and states point into the rows,
 * detoasted where they were toasted.
 */
static int64
stored_states(KappaStoredState **states)
{
	uint64		n = SPI_processed;
	/* as many as SPI read, which may be more than palloc's 1 GB allows */
	KappaStoredState *out = palloc_extended(sizeof(KappaStoredState) * Max(n, 1),
											MCXT_ALLOC_HUGE);

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		out[i].group_key = DatumGetByteaPP(SPI_getbinval(row, desc, 1, &isnull));
		out[i].window_start = DatumGetTimestampTz(SPI_getbinval(row, desc, 2, &isnull));
		out[i].window_end = DatumGetTimestampTz(SPI_getbinval(row, desc, 3, &isnull));
		out[i].states = DatumGetArrayTypeP(SPI_getbinval(row, desc, 4, &isnull));
	}
	*states = out;
	return (int64) n;
}
