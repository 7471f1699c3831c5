/*-------------------------------------------------------------------------
 *
 * check.c
 *	  kappa_check: recompute a view from the log and report what differs.
 *
 * A view is a function of the log: the messages of each partition from the
 * first offset the view read there up to its committed position.
 * kappa_check reads exactly those messages again, in the calling backend,
 * runs them through the same engine (engine.c) set up to recompute only
 * this view into a scratch table (kappa_engine_create_scratch), and
 * compares that with the view's rows as they were committed together with
 * those positions.  It returns the rows that differ: 'missing' (the log
 * says the view should have it) and 'extra' (the view has it, the log does
 * not).  The tests use the same check; users can audit a view with it.
 *
 * Consistency: the positions and the view's rows are read under one
 * snapshot, so a flush of the worker in between cannot make them disagree.
 * Floating-point columns are compared to 12 significant digits
 * (extra_float_digits = -3): sums in another order of partitions may
 * differ in their last bits.  What the log no longer holds (retention) is
 * read from the stream's archive; without one, the check cannot be made
 * and says so.
 *
 * Rights (catalog.c): only the view's owner (or a member of the owning
 * role) may check it, and the stream's owner, whose credentials read the
 * log.  The recomputation runs the view's code as its owner, writes the
 * scratch table (created by kappa, then given to the owner) as the owner,
 * and both sides are turned into jsonb (to_jsonb calls the columns' casts
 * and output functions) as the owner too.  Events the view rejected, and
 * messages its stream dead-lettered, are known from kappa.dead_letters:
 * the recomputation rejects them likewise; an event that fails now and
 * was applied then is an error of the check.
 *
 * src/api/check.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "archive/archive.h"
#include "engine/engine.h"
#include "engine/history.h"
#include "guc.h"
#include "kafka/kafka.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/positions.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/view.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kappa_check);

/* A row's text and how many times each side has it. */
typedef struct CheckRow
{
	char	   *text;			/* the hash key: the row as jsonb text */
	int64		view_count;
	int64		log_count;
} CheckRow;

static uint32 row_hash(const void *key, Size keysize);
static int	row_match(const void *a, const void *b, Size keysize);
static void read_positions(int32 view_id, int nparts, int64 *first, int64 *stop);
static void count_rows(HTAB *rows, MemoryContext keep, Oid owner, const char *sql,
					   bool from_view);
static void check_message(const KappaMessage *m, void *arg);
static void recompute(KappaStream *stream, int32 view_id, const char *scratch,
					  const int64 *low, bool accept_gaps,
					  int nparts, int64 *first, int64 *stop, char **joined);

/* The first offset and committed position of a view in each partition. */
static void
read_positions(int32 view_id, int nparts, int64 *first, int64 *stop)
{
	ListCell   *lc;

	for (int p = 0; p < nparts; p++)
		first[p] = stop[p] = KAPPA_OFFSET_NONE;
	foreach(lc, kappa_positions_view_spans_in_snapshot(view_id))
	{
		KappaPosition *pos = lfirst(lc);
		int32		p = pos->partition;

		if (p < 0 || p >= nparts)
			continue;
		first[p] = pos->first_offset;
		stop[p] = pos->next_offset;
		if (stop[p] <= first[p])
			first[p] = stop[p] = KAPPA_OFFSET_NONE;	/* nothing read there */
	}
}

/* The rows' hash table is keyed by a pointer to the row's text. */
static uint32
row_hash(const void *key, Size keysize)
{
	const char *text = *(const char *const *) key;

	return hash_bytes((const unsigned char *) text, strlen(text));
}

static int
row_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * Count the rows a query returns (one text column) on one side; the texts
 * are kept in keep.  The query turns a view's rows into text, calling its
 * columns' casts and output functions: it runs as the view's owner.
 */
static void
count_rows(HTAB *rows, MemoryContext keep, Oid owner, const char *sql, bool from_view)
{
	KappaOwnerAccess access;

	/*
	 * The view's rows under the snapshot the positions were read with
	 * (read-only SPI keeps the active one); the recomputed rows under a new
	 * one, which sees them.
	 */
	kappa_owner_enter(&access, owner);
	SPI_connect();
	if (SPI_execute(sql, from_view, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read rows to compare");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *text = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		CheckRow   *row;
		bool		found;

		row = hash_search(rows, &text, HASH_ENTER, &found);
		if (!found)
		{
			row->text = MemoryContextStrdup(keep, text);
			row->view_count = row->log_count = 0;
		}
		if (from_view)
			row->view_count++;
		else
			row->log_count++;
	}
	SPI_finish();
	kappa_owner_leave(&access);
}

/* A message read back (archive or log), through the recomputation. */
static void
check_message(const KappaMessage *m, void *arg)
{
	KappaEngine *engine = arg;

	CHECK_FOR_INTERRUPTS();
	kappa_engine_process(engine, m);
	if (kappa_engine_pending(engine) >= kappa_flush_events)
		kappa_engine_flush(engine);
}

/*
 * Read the view's messages, first[p] to stop[p] in every partition, from
 * the log, and from the archive where the log no longer has them, and run
 * them through a scratch engine that writes the view's rows into scratch.
 */
static void
recompute(KappaStream *stream, int32 view_id, const char *scratch,
		  const int64 *low, bool accept_gaps, int nparts,
		  int64 *first, int64 *stop, char **joined)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "kappa check",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	KappaConsumer *consumer;
	KappaEngine *engine;
	KappaPoisons *poisons = kappa_poisons_create();
	int			consumer_parts;
	KappaHistoryRead read;
	StringInfoData missing;
	int64		lost = 0;

	/* what the view rejected, and its stream dead-lettered, it rejects again */
	kappa_poisons_load(poisons, stream->id, 0);
	kappa_poisons_load(poisons, stream->id, view_id);
	engine = kappa_engine_create_scratch(stream, nparts, view_id, scratch, first, poisons);
	if (engine == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the view was dropped during the check")));
	*joined = kappa_engine_joined_tables(engine);
	if (*joined)
		*joined = MemoryContextStrdup(old, *joined);
	/*
	 * What the view read, from wherever it is held now; offsets held
	 * nowhere that the view never saw either (kappa.view_gaps) do not
	 * matter, others are an error unless accept_gaps.
	 */
	initStringInfo(&missing);
	for (int p = 0; p < nparts; p++)
	{
		List	   *spans;

		if (first[p] == KAPPA_OFFSET_NONE)
			continue;
		spans = kappa_history_spans(stream, p, first[p], stop[p], low[p], kappa_replay_prefer_archive);
		lost += kappa_history_count(kappa_history_gaps(spans, kappa_history_view_gaps(view_id, p)),
									p, &missing);
	}
	if (lost > 0 && !accept_gaps)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot check the view: neither the log nor the archive holds " INT64_FORMAT " offsets it read",
						lost),
				 errdetail("Missing: %s.", missing.data),
				 errhint("Register the Capture files that hold them with kappa_archive_register, or check without them with kappa_check(..., accept_gaps => true), which then reports the rows they made as extra.")));

	read.stream = stream;
	read.nparts = nparts;
	read.from = first;
	read.to = stop;
	read.log_start = low;
	read.prefer_archive = kappa_replay_prefer_archive;
	read.from_archive = check_message;
	read.from_log = check_message;
	read.arg = engine;
	read.what = "cannot check the view";
	consumer = kappa_consumer_open(stream, &consumer_parts, false);
	PG_TRY();
	{
		kappa_history_read(consumer, &read);
		kappa_engine_flush(engine);
	}
	PG_FINALLY();
	{
		kappa_consumer_close(consumer);
	}
	PG_END_TRY();
	kappa_engine_destroy(engine);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * kappa_check(view) returns the rows in which the view differs from its
 * recomputation from the log: (side, row), side 'missing' or 'extra'.  No
 * rows: the view is exactly what its messages make.
 */
Datum
kappa_check(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	KappaStream *stream;
	KappaCatalogAccess access;
	KappaViewRef ref;
	int32		view_id;
	Oid			owner;
	char	   *rows_table;
	char	   *scratch;
	int			nparts;
	int64	   *low;
	int64	   *high;
	int64	   *first;
	int64	   *stop;
	HASHCTL		ctl;
	HTAB	   *rows;
	HASH_SEQ_STATUS seq;
	CheckRow   *row;
	int			save_nestlevel;
	char	   *joined = NULL;
	bool		differ = false;
	MemoryContext keep = CurrentMemoryContext;

	kappa_require_preload();
	InitMaterializedSRF(fcinfo, 0);
	kappa_view_resolve_owned(name, false, &ref);
	view_id = ref.view_id;
	owner = ref.owner;

	/* reading the log uses the stream owner's credentials */
	stream = kappa_stream_load_owned(ref.stream_name);
	kappa_kafka_watermarks(stream, &nparts, &low, &high);
	first = palloc(sizeof(int64) * Max(nparts, 1));
	stop = palloc(sizeof(int64) * Max(nparts, 1));
	rows_table = kappa_view_rows_table(view_id);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(CheckRow);
	ctl.hash = row_hash;
	ctl.match = row_match;
	ctl.hcxt = CurrentMemoryContext;
	rows = hash_create("kappa check rows", 1024, &ctl, HASH_ELEM | HASH_FUNCTION |
					   HASH_COMPARE | HASH_CONTEXT);

	/* kappa's settings, and floats compared to 12 digits */
	save_nestlevel = kappa_settings_enter();
	(void) set_config_option("extra_float_digits", "-3", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	/* the positions and the view's rows, under one snapshot */
	PushActiveSnapshot(GetTransactionSnapshot());
	kappa_catalog_enter(&access);
	read_positions(view_id, nparts, first, stop);
	kappa_catalog_leave(&access);
	count_rows(rows, keep, owner, psprintf("SELECT to_jsonb(r)::text FROM %s r", rows_table), true);
	PopActiveSnapshot();

	/*
	 * The recomputation, into a scratch table shaped as the view's, given
	 * to the view's owner, dropped at the end (or with the transaction, on
	 * an error).  Not a temporary table: kappa's catalog access is a
	 * security-restricted operation.
	 */
	scratch = psprintf("kappa.%s", quote_identifier(psprintf("check_%d_%d", view_id, MyProcPid)));
	kappa_catalog_enter(&access);
	kappa_catalog_exec(psprintf("CREATE UNLOGGED TABLE %s (LIKE %s INCLUDING INDEXES)",
								scratch, rows_table), SPI_OK_UTILITY);
	kappa_catalog_exec(psprintf("ALTER TABLE %s OWNER TO %s", scratch,
								quote_identifier(GetUserNameFromId(owner, false))),
					   SPI_OK_UTILITY);
	kappa_catalog_leave(&access);
	recompute(stream, view_id, scratch, low,
			  PG_NARGS() > 1 && !PG_ARGISNULL(1) && PG_GETARG_BOOL(1), nparts, first, stop,
			  &joined);
	CommandCounterIncrement();
	count_rows(rows, keep, owner, psprintf("SELECT to_jsonb(r)::text FROM %s r", scratch), false);
	kappa_catalog_enter(&access);
	kappa_catalog_exec(psprintf("DROP TABLE %s", scratch), SPI_OK_UTILITY);
	kappa_catalog_leave(&access);
	kappa_settings_leave(save_nestlevel);

	hash_seq_init(&seq, rows);
	while ((row = hash_seq_search(&seq)) != NULL)
	{
		differ |= (row->view_count != row->log_count);
		for (int64 i = row->view_count; i < row->log_count; i++)
		{
			Datum		out[2] = {CStringGetTextDatum("missing"),
			DirectFunctionCall1(jsonb_in, CStringGetDatum(row->text))};
			bool		nulls[2] = {false, false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
		}
		for (int64 i = row->log_count; i < row->view_count; i++)
		{
			Datum		out[2] = {CStringGetTextDatum("extra"),
			DirectFunctionCall1(jsonb_in, CStringGetDatum(row->text))};
			bool		nulls[2] = {false, false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
		}
	}

	/*
	 * A lookup join reads its tables as they are when an event is
	 * processed, so the recomputation used them as they are now.
	 */
	if (differ && joined != NULL)
		ereport(NOTICE,
				(errmsg("kappa view %s joins %s, which the check read as they are now",
						name, joined),
				 errdetail("Rows computed before those tables changed differ from the recomputation where they depend on the changed rows."),
				 errhint("kappa_replay recomputes the view with the tables as they are now.")));
	return (Datum) 0;
}
