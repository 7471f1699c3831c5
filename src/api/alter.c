/*-------------------------------------------------------------------------
 *
 * alter.c
 *	  kappa_alter_stream: add columns and JSON paths to a stream, change
 *	  its watermark, idle timeout and librdkafka options, keeping its
 *	  positions and its views.
 *
 * What a stream's views have computed depends on its definition, so only
 * changes that leave every existing view's meaning alone are allowed:
 *
 * - a column is added at the end of the stream's relation,
 *   kappa.stream_<id>, after the metadata columns (ALTER TABLE ... ADD
 *   COLUMN), so that the attributes the views' stored plans refer to never
 *   move; kappa.stream_columns records each column's attribute, and the
 *   engine and the decoder lay the event row out by it.  A new column is
 *   nullable: NOT NULL would make dead letters of messages that views have
 *   applied, when they are read again (a rebuild, a replay);
 * - a path given for an existing column is appended to its alternatives,
 *   so a message that one of its paths reads decodes as before; only
 *   those that none of them read change.  Not for the event time or the
 *   dedup key, which decide whether and where a message counts at all;
 * - the watermark and idle timeout, and the librdkafka options (a key
 *   whose value is JSON null is removed), apply from the worker's next
 *   start.
 *
 * Everything else (a column's type, the topic, brokers, event time, dedup
 * key, partitions) is refused, with a hint to create a new stream.
 *
 * How a change reaches the worker: the call bumps kappa.streams.revision
 * and wakes the launcher at commit; the launcher stops the stream's
 * workers and starts them again at once (launcher.c).  A worker keeps
 * nothing but what its flushes committed, so the new worker reads on from
 * the stored positions, and whatever the old one had read but not flushed
 * is read again and decoded with the new definition.  Until then, a worker
 * loads no view created since the change (engine_views.c), since such a
 * view may read a column its engine does not have.
 *
 * What would take a replay to apply to the past is said in a NOTICE that
 * names the views concerned: events already applied keep the values and
 * the lateness they had.
 *
 * Rights: only the stream's owner (a member of the owning role) or a
 * superuser may alter it, as kappa_drop_stream.  Column types resolve on
 * the caller's search_path, as in kappa_create_stream; the catalog and
 * the stream's relation are written as kappa's catalog (catalog.c), with
 * constant SQL and $n parameters, and quoted names.
 *
 * Locking: the stream's row in kappa.streams is locked (FOR UPDATE) before
 * its definition is read again and checked, so concurrent calls apply one
 * after the other; ALTER TABLE locks the stream's relation against
 * kappa_create_view analysing a query over it meanwhile.
 *
 * src/api/alter.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "api/args.h"
#include "engine/compile.h"
#include "engine/portable.h"
#include "kafka/kafka.h"
#include "kappa_catalog/catalog.h"
#include "kappa_catalog/columns.h"
#include "kappa_catalog/connection.h"
#include "kappa_catalog/stream.h"
#include "kappa_catalog/stream_rows.h"
#include "kappa_catalog/view_plan.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kappa_alter_stream);

#define ALTER_HINT "Drop and create the stream (kappa_drop_stream, kappa_create_stream), or create a second stream over the same topic for the views that need the new definition."

/* A view of the stream, and what its stored plan reads. */
typedef struct AlterView
{
	char	   *name;			/* qualified, quoted */
	bool		known;			/* its plan could be read here */
	bool		windowed;
	Bitmapset  *attnums;		/* stream attributes it reads; 0: the row */
} AlterView;

/* What collect_vars gathers from a view's query. */
typedef struct VarContext
{
	int			stream_rti;
	Bitmapset  *attnums;
} VarContext;

static KappaStream *lock_stream(const char *name, char **watermark_text);
static List *check_added_columns(KappaStream *s, const char *spec);
static void check_changed_paths(KappaStream *s, List *changed);
static void merge_options(KappaStream *s, Jsonb *options);
static void write_changes(KappaStream *s, List *added, List *changed, Interval *watermark,
						  Interval *idle_timeout, bool options_given);
static List *stream_views(int32 stream_id);
static bool collect_vars(Node *node, VarContext *context);
static char *view_list(List *views);
static void report_replays(KappaStream *s, List *added, List *changed,
						   const char *old_watermark, Interval *watermark, int64 old_watermark_us);

/*
 * kappa_alter_stream(name, add_columns, add_paths, watermark, idle_timeout,
 * options) changes a stream; NULL leaves a part as it is.
 */
Datum
kappa_alter_stream(PG_FUNCTION_ARGS)
{
	KappaStream *s;
	char	   *old_watermark = NULL;
	int64		old_watermark_us;
	List	   *added = NIL;
	List	   *changed = NIL;
	KappaArgs	args;
	char	   *name;
	char	   *add_columns;
	Jsonb	   *add_paths;
	Interval   *watermark;
	Interval   *idle_timeout;
	Jsonb	   *options;

	/* options may hold secrets: errors must not log the statement */
	kappa_statement_has_secrets(true);
	kappa_require_preload();

	kappa_args_init(&args, fcinfo);
	name = kappa_arg_text(&args, "name", NULL);
	add_columns = kappa_arg_text(&args, "add_columns", NULL);
	add_paths = kappa_arg_jsonb(&args, "add_paths");
	watermark = kappa_arg_interval(&args, "watermark");
	idle_timeout = kappa_arg_interval(&args, "idle_timeout");
	options = kappa_arg_jsonb(&args, "options");
	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name must not be null")));
	if (!add_columns && !add_paths && !watermark && !idle_timeout && !options)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nothing to alter"),
				 errhint("Give add_columns, add_paths, watermark, idle_timeout or options.")));

	s = lock_stream(name, &old_watermark);
	old_watermark_us = s->watermark_us;

	if (add_columns)
		added = check_added_columns(s, add_columns);
	if (add_paths)
	{
		changed = kappa_add_paths(s->columns, added, add_paths);
		check_changed_paths(s, changed);
	}
	if (watermark)
		s->watermark_us = kappa_interval_to_us(watermark, "watermark", true);
	if (idle_timeout)
		s->idle_timeout_us = kappa_interval_to_us(idle_timeout, "idle_timeout", false);
	if (options)
	{
		merge_options(s, options);
		kappa_kafka_check_settings(s);
	}

	write_changes(s, added, changed, watermark, idle_timeout, options != NULL);
	kappa_wake_launcher_on_commit();
	report_replays(s, added, changed, old_watermark, watermark, old_watermark_us);
	PG_RETURN_VOID();
}

/*
 * Load the stream for its owner, and lock its catalog row until the
 * transaction ends; then load it again, as the lock may have waited for
 * another call's changes.  Also returns the watermark as it was, as text.
 */
static KappaStream *
lock_stream(const char *name, char **watermark_text)
{
	KappaStream *s = kappa_stream_load_owned(name);
	char	   *text = kappa_streams_lock(s->id);

	if (text)
		s = kappa_stream_load_by_id(s->id);
	if (text == NULL || s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("stream \"%s\" does not exist", name),
				 errhint("The kappa_streams view lists the streams.")));
	*watermark_text = text;
	return s;
}

/*
 * Parse add_columns, refusing what would change an existing column or
 * make dead letters of messages views have applied, and give each new
 * column its attribute: after the stream relation's last one.
 */
static List *
check_added_columns(KappaStream *s, const char *spec)
{
	List	   *added = kappa_parse_columns(spec);
	AttrNumber	next = list_length(s->columns) + 4;
	ListCell   *lc;

	foreach(lc, added)
	{
		KappaColumn *col = lfirst(lc);
		KappaColumn *existing = kappa_find_column(s->columns, col->name);

		if (existing && (existing->typid != col->typid || existing->typmod != col->typmod))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot change the type of column \"%s\" of stream \"%s\"",
							col->name, s->name),
					 errdetail("The column is of type %s; the views' plans and stored states read it as such.",
							   format_type_with_typemod(existing->typid, existing->typmod)),
					 errhint("Drop and create the stream (kappa_drop_stream, kappa_create_stream), or add a column of another name with the new type.")));
		if (existing)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("column \"%s\" of stream \"%s\" already exists", col->name, s->name),
					 errhint("To read it from other JSON fields as well, give them in add_paths.")));
		if (col->not_null)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot add column \"%s\" to stream \"%s\" as NOT NULL", col->name, s->name),
					 errdetail("Messages without it would become dead letters, also those that views have applied when they are read again (a rebuild after a crash, a replay)."),
					 errhint("Add it without NOT NULL, and filter with WHERE %s IS NOT NULL in the views that need it.",
							 quote_identifier(col->name))));
		col->attnum = ++next;
	}
	if (list_length(s->columns) + list_length(added) > KAPPA_MAX_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("streams can have at most %d columns", KAPPA_MAX_COLUMNS)));
	return added;
}

/*
 * Refuse new paths for the event time and the dedup key: they decide
 * whether a message counts at all, and where, so messages dead-lettered
 * or deduplicated before would count when read again.
 */
static void
check_changed_paths(KappaStream *s, List *changed)
{
	ListCell   *lc;

	foreach(lc, changed)
	{
		KappaColumn *col = lfirst(lc);
		const char *role = NULL;

		if (s->event_time && strcmp(col->name, s->event_time) == 0)
			role = "event time";
		else if (s->dedup_key && strcmp(col->name, s->dedup_key) == 0)
			role = "dedup key";
		if (role)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot add paths to column \"%s\" of stream \"%s\": it is the stream's %s",
							col->name, s->name, role),
					 errdetail("Which messages count, and where, would change for messages already applied when they are read again."),
					 errhint("%s", ALTER_HINT)));
	}
}

/*
 * Merge options into the stream's librdkafka settings: a key with a
 * string, number or boolean sets it (checked as kappa_create_stream checks
 * it), a key with JSON null removes it.
 */
static void
merge_options(KappaStream *s, Jsonb *options)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object of librdkafka settings"),
				 errhint("For example: {\"fetch.max.bytes\": \"52428800\"}; a key whose value is null removes that setting.")));

	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *name;
		bool		found = false;
		ListCell   *lc;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (v.type == jbvNull)
		{
			foreach(lc, s->settings)
			{
				if (strcmp(((KappaSetting *) lfirst(lc))->name, name) == 0)
					s->settings = foreach_delete_current(s->settings, lc);
			}
			continue;
		}
		{
			KappaSetting *setting = kappa_make_setting(name, kappa_option_value(name, &v));

			kappa_validate_setting(name);
			foreach(lc, s->settings)
			{
				if (strcmp(((KappaSetting *) lfirst(lc))->name, name) == 0)
				{
					lfirst(lc) = setting;
					found = true;
				}
			}
			if (!found)
				s->settings = lappend(s->settings, setting);
		}
	}
}

/*
 * Write the checked changes: kappa.streams (with a new revision, which
 * makes the launcher restart the stream's workers), the secrets, the
 * columns and their paths, and the stream's relation.
 */
static void
write_changes(KappaStream *s, List *added, List *changed, Interval *watermark,
			  Interval *idle_timeout, bool options_given)
{
	Jsonb	   *pub = NULL;
	Jsonb	   *sec = NULL;
	char	   *relname = kappa_stream_relation_name(s->id);
	KappaCatalogAccess access;
	ListCell   *lc;

	if (options_given)
		kappa_settings_to_jsonb(s->settings, &pub, &sec);

	kappa_catalog_enter(&access);
	kappa_streams_update(s->id, watermark, idle_timeout, pub);

	if (options_given)
	{
		kappa_stream_secrets_delete(s->id);
		if (sec != NULL)
			kappa_stream_secrets_insert(s->id, s->owner, sec);
	}

	foreach(lc, changed)
	{
		KappaColumn *col = lfirst(lc);

		if (kappa_stream_columns_set_paths(s->id, col->attnum, col->paths) != 1)
			elog(ERROR, "could not update the paths of column \"%s\"", col->name);
	}

	foreach(lc, added)
	{
		KappaColumn *col = lfirst(lc);
		AttrNumber	attnum;

		kappa_stream_columns_insert(s->id, col, false);

		kappa_catalog_exec(psprintf("ALTER TABLE kappa.%s ADD COLUMN %s %s",
									quote_identifier(relname), quote_identifier(col->name),
									format_type_extended(col->typid, col->typmod,
														 FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY)),
						   SPI_OK_UTILITY);
		/* the views' plans and the event row rely on it */
		attnum = get_attnum(get_relname_relid(relname, get_namespace_oid("kappa", false)), col->name);
		if (attnum != col->attnum)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("relation kappa.%s of stream \"%s\" was changed by hand", relname, s->name),
					 errdetail("Column \"%s\" became its attribute %d, not %d.", col->name, attnum, col->attnum),
					 errhint("%s", ALTER_HINT)));
	}
	kappa_catalog_leave(&access);
}

/*
 * The views of a stream (every version), with what their stored plans
 * read.  A plan another database wrote (a restored dump not loaded yet)
 * is not read here: such a view counts as reading everything.
 */
static List *
stream_views(int32 stream_id)
{
	List	   *views = NIL;
	List	   *names;
	List	   *plans;
	ListCell   *lc;
	ListCell   *pc;

	kappa_views_plans_of_stream(stream_id, kappa_origin_text(), &names, &plans);
	foreach(lc, names)
	{
		AlterView  *view = palloc0(sizeof(AlterView));

		view->name = lfirst(lc);
		views = lappend(views, view);
	}

	forboth(lc, views, pc, plans)
	{
		AlterView  *view = lfirst(lc);
		char	   *plan = lfirst(pc);
		Query	   *query;
		VarContext	context = {0, NULL};
		ListCell   *rc;

		if (plan == NULL)
			continue;
		query = (Query *) stringToNode(plan);
		if (!IsA(query, Query))
			continue;
		foreach(rc, query->rtable)
		{
			RangeTblEntry *rte = lfirst(rc);

			if (rte->rtekind == RTE_RELATION && context.stream_rti == 0)
				context.stream_rti = foreach_current_index(rc) + 1;
			if (rte->rtekind == RTE_FUNCTION)
				view->windowed = true;
		}
		(void) query_tree_walker(query, collect_vars, &context, 0);
		view->attnums = context.attnums;
		view->known = true;
	}
	return views;
}

/* Gather the stream's attributes a view's query reads. */
static bool
collect_vars(Node *node, VarContext *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varlevelsup == 0 && (int) var->varno == context->stream_rti && var->varattno >= 0)
			context->attnums = bms_add_member(context->attnums, var->varattno);
		return false;
	}
	return expression_tree_walker(node, collect_vars, (void *) context);
}

/* Names of views, "a, b", for a message. */
static char *
view_list(List *views)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, views)
		appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", ((AlterView *) lfirst(lc))->name);
	return buf.data;
}

/*
 * Say, in NOTICEs that name the views concerned, what the changes do not
 * apply to: the events views have already applied.
 */
static void
report_replays(KappaStream *s, List *added, List *changed,
			   const char *old_watermark, Interval *watermark, int64 old_watermark_us)
{
	List	   *views = stream_views(s->id);
	ListCell   *lc;

	if (added != NIL)
	{
		StringInfoData names;

		initStringInfo(&names);
		foreach(lc, added)
			appendStringInfo(&names, "%s%s", names.len ? ", " : "",
							 quote_identifier(((KappaColumn *) lfirst(lc))->name));
		ereport(NOTICE,
				(errmsg("stream \"%s\" has new columns: %s", s->name, names.data),
				 errdetail("Existing views do not read them. A view created from now on can, and reads them from its start; they are null in messages that lack them. A message whose field a new column's type rejects becomes a dead letter for every view, also when a rebuild or replay reads it again."),
				 errhint("To use them in an existing view, create the view again.")));
	}

	if (changed != NIL)
	{
		List	   *reading = NIL;
		Bitmapset  *attnums = NULL;
		StringInfoData names;

		initStringInfo(&names);
		foreach(lc, changed)
		{
			KappaColumn *col = lfirst(lc);

			attnums = bms_add_member(attnums, col->attnum);
			appendStringInfo(&names, "%s%s", names.len ? ", " : "", quote_identifier(col->name));
		}
		foreach(lc, views)
		{
			AlterView  *view = lfirst(lc);

			if (!view->known || bms_is_member(0, view->attnums) || bms_overlap(view->attnums, attnums))
				reading = lappend(reading, view);
		}
		if (reading != NIL)
			ereport(NOTICE,
					(errmsg("the new paths of stream \"%s\" apply to messages its worker reads from its next start on; views %s already applied earlier messages without them",
							s->name, view_list(reading)),
					 errdetail("Columns %s read by those views are null or absent in messages that only the new paths read, for the events applied before.", names.data),
					 errhint("Replay the views (kappa_replay) to read every message with the new paths.")));
	}

	if (watermark != NULL && s->watermark_us != old_watermark_us)
	{
		List	   *concerned = NIL;

		/* windows decide lateness; dedup keys are kept as long as the watermark says */
		foreach(lc, views)
		{
			AlterView  *view = lfirst(lc);

			if (!view->known || view->windowed || s->dedup_key != NULL)
				concerned = lappend(concerned, view);
		}
		if (concerned != NIL)
			ereport(NOTICE,
					(errmsg("the watermark of stream \"%s\" changes from %s to %s from its worker's next start on; views %s keep what the old watermark decided for the events they already applied",
							s->name, old_watermark,
							DatumGetCString(DirectFunctionCall1(interval_out, PointerGetDatum(watermark))),
							view_list(concerned)),
					 errdetail("Which events are late%s follows the new watermark only for events read from then on.",
							   s->dedup_key ? ", and how long dedup keys are remembered," : ""),
					 errhint("Replay the views (kappa_replay) to apply the new watermark to every event.")));
	}
}
