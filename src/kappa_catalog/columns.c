/*-------------------------------------------------------------------------
 *
 * columns.c
 *	  Parsing and validation of a stream's column list and JSON paths.
 *
 * A stream's columns are given as text, "eventId text, temperature
 * float8, ...", and its JSON paths as a jsonb object.  Names follow SQL's
 * identifier rules, because views refer to the columns in plain SQL:
 * unquoted names fold to lower case and double quotes keep them as
 * written.  The JSON key a column reads by default is the name as written,
 * before folding, so "eventId text" reads the payload's "eventId" and is
 * called eventid in SQL.  Types are resolved by Postgres's own type-name
 * parser (parseTypeString), so the column list is never pasted into SQL.
 *
 * Everything here runs at kappa_create_stream time and reports problems
 * with ereport; nothing here is on the per-event path.
 *
 * src/kappa_catalog/columns.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/heap.h"
#include "catalog/pg_type.h"
#include "common/keywords.h"
#include "parser/parse_type.h"
#include "parser/scansup.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "kappa_catalog/columns.h"

/* Names a stream column may not have: the metadata columns of every stream. */
static const char *const kappa_reserved_columns[] = {
	"kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_key", NULL
};

static List *split_top_level(const char *spec);
static void column_error_context(void *arg);
static void trim_trailing_space(char *s);
static bool strip_not_null(char *type);
static const char *scan_identifier(const char *p, char **name, char **as_written,
								   const char *what);
static void check_column_name(const char *name, bool quoted, const char *what);
static void check_column_type(KappaColumn *col);
static List *parse_path_value(JsonbValue *value, const char *column);
static void check_path(const char *path, const char *column);

/*
 * Split a column list at commas that are outside parentheses and double
 * quotes, so that "amount numeric(10,2)" stays one item.
 */
static List *
split_top_level(const char *spec)
{
	List	   *items = NIL;
	StringInfoData item;
	int			depth = 0;
	bool		in_quotes = false;

	initStringInfo(&item);
	for (const char *p = spec; *p; p++)
	{
		if (*p == '"')
			in_quotes = !in_quotes;
		else if (!in_quotes && *p == '(')
			depth++;
		else if (!in_quotes && *p == ')')
		{
			if (--depth < 0)
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("malformed column list"),
						 errdetail("A closing parenthesis has no opening one."),
						 errhint("Columns are written as in CREATE TABLE: \"name type, name type, ...\".")));
		}
		else if (!in_quotes && depth == 0 && *p == ',')
		{
			items = lappend(items, pstrdup(item.data));
			resetStringInfo(&item);
			continue;
		}
		appendStringInfoChar(&item, *p);
	}
	if (in_quotes || depth != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("malformed column list"),
				 errdetail("%s", in_quotes ? "A double-quoted name is not closed." :
						   "An opening parenthesis is not closed."),
				 errhint("Columns are written as in CREATE TABLE: \"name type, name type, ...\".")));
	items = lappend(items, item.data);
	return items;
}

/*
 * Read one SQL identifier at p, quoted or not.  Sets *name to its folded
 * form and *as_written to its text before folding (without quotes), and
 * returns the position after it.
 */
static const char *
scan_identifier(const char *p, char **name, char **as_written, const char *what)
{
	StringInfoData buf;
	bool		quoted = (*p == '"');

	initStringInfo(&buf);
	if (quoted)
	{
		for (p++;; p++)
		{
			if (*p == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("unterminated quoted %s", what)));
			if (*p == '"')
			{
				if (p[1] != '"')
					break;
				p++;
			}
			appendStringInfoChar(&buf, *p);
		}
		p++;
		*name = pstrdup(buf.data);
	}
	else
	{
		if (!(isalpha((unsigned char) *p) || *p == '_' || IS_HIGHBIT_SET(*p)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("invalid %s \"%s\"", what, p),
					 errhint("Names start with a letter or an underscore; double-quote any other name.")));
		while (isalnum((unsigned char) *p) || *p == '_' || *p == '$' ||
			   IS_HIGHBIT_SET(*p))
			appendStringInfoChar(&buf, *p++);
		*name = downcase_identifier(buf.data, buf.len, false, false);
	}
	*as_written = buf.data;
	check_column_name(*name, quoted, what);
	return p;
}

/* Reject names that SQL could not use as a column of the stream. */
static void
check_column_name(const char *name, bool quoted, const char *what)
{
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("zero-length %s", what)));
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("%s \"%.*s...\" is too long", what, 20, name),
				 errdetail("Names are at most %d bytes long.", NAMEDATALEN - 1)));
	if (!quoted)
	{
		int			kw = ScanKeywordLookup(name, &ScanKeywords);

		if (kw >= 0 && ScanKeywordCategories[kw] == RESERVED_KEYWORD)
			ereport(ERROR,
					(errcode(ERRCODE_RESERVED_NAME),
					 errmsg("%s \"%s\" is a reserved word", what, name),
					 errhint("Double-quote the name (\"%s\") to use it as it is, or choose another.", name)));
	}
	if (SystemAttributeByName(name) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("%s \"%s\" conflicts with a system column name", what, name)));
	for (int i = 0; kappa_reserved_columns[i]; i++)
		if (strcmp(name, kappa_reserved_columns[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_RESERVED_NAME),
					 errmsg("%s \"%s\" is reserved by kappa", what, name),
					 errdetail("Every stream has the columns kafka_partition, kafka_offset, kafka_timestamp and kafka_key.")));
}

/*
 * Accept only types whose values a JSON scalar can spell: base types, enums
 * and domains over them.
 */
static void
check_column_type(KappaColumn *col)
{
	Oid			base = getBaseType(col->typid);
	char		typtype = get_typtype(base);

	if ((typtype != TYPTYPE_BASE && typtype != TYPTYPE_ENUM) ||
		type_is_array(base) || base == UNKNOWNOID)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("type %s of column \"%s\" is not supported in a stream",
						format_type_be(col->typid), col->name),
				 errdetail("Stream columns must be of a scalar base type, an enum, or a domain over one."),
				 errhint("Declare the column as jsonb to keep a nested value whole.")));
}

/* Remove the white space at the end of s, as in "a text , b int". */
static void
trim_trailing_space(char *s)
{
	for (char *end = s + strlen(s) - 1; end >= s && scanner_isspace(*end); end--)
		*end = '\0';
}

/*
 * Remove a trailing NOT NULL from a column's type, as CREATE TABLE allows
 * it there, and say whether there was one.
 */
static bool
strip_not_null(char *type)
{
	size_t		len = strlen(type);
	char	   *not;

	if (len < 8 || pg_strcasecmp(type + len - 4, "null") != 0 ||
		!scanner_isspace(type[len - 5]))
		return false;
	type[len - 5] = '\0';
	trim_trailing_space(type);
	len = strlen(type);
	not = type + len - 3;
	if (len < 4 || pg_strcasecmp(not, "not") != 0 || !scanner_isspace(not[-1]))
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("malformed column list"),
				 errdetail("A column's type may be followed by NOT NULL and nothing else."),
				 errhint("Columns are written as in CREATE TABLE: \"name type [NOT NULL], ...\".")));
	*not = '\0';
	trim_trailing_space(type);
	return true;
}

/* Say which column's type an error of Postgres's type parser is about. */
static void
column_error_context(void *arg)
{
	errcontext("type of column \"%s\" in the stream's column list", (const char *) arg);
}

/*
 * Parse a column list such as "eventId text, temperature float8" into a
 * list of KappaColumn, each reading its own name from the payload.
 */
List *
kappa_parse_columns(const char *spec)
{
	List	   *columns = NIL;
	int			position = 0;
	ListCell   *lc;

	foreach(lc, split_top_level(spec))
	{
		char	   *item = lfirst(lc);
		KappaColumn *col = palloc0(sizeof(KappaColumn));
		const char *p = item;
		char	   *type;

		position++;
		while (scanner_isspace(*p))
			p++;
		if (*p == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("malformed column list"),
					 errdetail("Column %d is empty.", position),
					 errhint("Columns are written as in CREATE TABLE: \"name type, name type, ...\".")));

		p = scan_identifier(p, &col->name, &col->json_key, "column name");
		if (!scanner_isspace(*p))
			ereport(ERROR,
					(errcode(ERRCODE_SYNTAX_ERROR),
					 errmsg("malformed column list"),
					 errdetail("Column \"%s\" has no type.", col->name),
					 errhint("Columns are written as in CREATE TABLE: \"name type, name type, ...\".")));
		type = pstrdup(p);
		trim_trailing_space(type);
		col->not_null = strip_not_null(type);

		{
			ErrorContextCallback errcallback;

			errcallback.callback = column_error_context;
			errcallback.arg = col->name;
			errcallback.previous = error_context_stack;
			error_context_stack = &errcallback;
			parseTypeString(type, &col->typid, &col->typmod, false);
			error_context_stack = errcallback.previous;
		}
		check_column_type(col);

		if (kappa_find_column(columns, col->name) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("column \"%s\" specified more than once", col->name)));
		if (position > KAPPA_MAX_COLUMNS)
			ereport(ERROR,
					(errcode(ERRCODE_TOO_MANY_COLUMNS),
					 errmsg("streams can have at most %d columns",
							KAPPA_MAX_COLUMNS)));
		col->paths = list_make1(col->json_key);
		col->attnum = position;
		columns = lappend(columns, col);
	}
	return columns;
}

/*
 * Resolve a reference to a column, such as the event_time or dedup_key
 * option, following the same identifier rules as the column list.
 */
char *
kappa_parse_column_ref(const char *ref, const char *what)
{
	char	   *name;
	char	   *as_written;
	const char *rest;

	rest = scan_identifier(ref, &name, &as_written, what);
	if (*rest != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid %s \"%s\"", what, ref),
				 errhint("Give the name of one column of the stream.")));
	return name;
}

/* The column called name (its SQL name), or NULL. */
KappaColumn *
kappa_find_column(List *columns, const char *name)
{
	ListCell   *lc;

	foreach(lc, columns)
	{
		KappaColumn *col = lfirst(lc);

		if (strcmp(col->name, name) == 0)
			return col;
	}
	return NULL;
}

/*
 * Apply a paths object, {"column": "a.b"} or {"column": ["a.b", "a.c"]},
 * replacing the default path of each column it names.  A key matches a
 * column by its name as written in the column list or by its SQL name.
 */
void
kappa_apply_paths(List *columns, Jsonb *paths)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(paths))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("paths must be a JSON object"),
				 errhint("Map column names to a path or a list of alternative paths, as in {\"temperature\": [\"data.temperature\", \"data.temp\"]}.")));

	it = JsonbIteratorInit(&paths->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		KappaColumn *col = NULL;
		ListCell   *lc;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		foreach(lc, columns)
		{
			KappaColumn *c = lfirst(lc);

			if (strcmp(c->json_key, key) == 0 || strcmp(c->name, key) == 0)
			{
				col = c;
				break;
			}
		}
		if (col == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("paths names column \"%s\", which the stream does not have", key)));

		/* skipNested = true: an array or object value comes whole */
		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		col->paths = parse_path_value(&v, col->name);
	}
}

/* The list of paths a paths-object value spells. */
static List *
parse_path_value(JsonbValue *value, const char *column)
{
	List	   *result = NIL;

	if (value->type == jbvString)
	{
		char	   *path = pnstrdup(value->val.string.val, value->val.string.len);

		check_path(path, column);
		return list_make1(path);
	}
	if (value->type == jbvBinary && JsonContainerIsArray(value->val.binary.data))
	{
		JsonbIterator *it = JsonbIteratorInit(value->val.binary.data);
		JsonbValue	elem;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		{
			char	   *path;

			if (tok != WJB_ELEM)
				continue;
			if (elem.type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("paths of column \"%s\" must be strings", column)));
			path = pnstrdup(elem.val.string.val, elem.val.string.len);
			check_path(path, column);
			result = lappend(result, path);
		}
		if (result != NIL)
			return result;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("malformed paths for column \"%s\"", column),
			 errdetail("A column's paths are a string or a non-empty array of strings."),
			 errhint("Write {\"%s\": \"data.value\"} or {\"%s\": [\"data.value\", \"value\"]}.",
					 column, column)));
	return NIL;					/* keep compiler quiet */
}

/* A path is dot-separated non-empty keys, such as "data.temperature". */
static void
check_path(const char *path, const char *column)
{
	bool		segment_empty = true;

	for (const char *p = path;; p++)
	{
		if (*p == '.' || *p == '\0')
		{
			if (segment_empty)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("malformed path \"%s\" for column \"%s\"", path, column),
						 errdetail("A path is a list of keys separated by dots, none of them empty, such as \"data.temperature\".")));
			if (*p == '\0')
				break;
			segment_empty = true;
		}
		else
			segment_empty = false;
	}
}

/*
 * kappa_alter_stream's paths: {"column": "a.b"} or {"column": ["a.b", ...]}.
 * A key naming a column of added (the columns the same call adds, matched
 * as kappa_apply_paths does) replaces that column's default path; a key
 * naming one of the stream's columns appends the paths to that column's
 * alternatives, after those it has, so that a message one of its paths
 * reads is read as before.  Returns the stream's columns whose paths
 * changed.
 */
List *
kappa_add_paths(List *columns, List *added, Jsonb *paths)
{
	List	   *changed = NIL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(paths))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("add_paths must be a JSON object"),
				 errhint("Map column names to a path or a list of alternative paths, as in {\"temperature\": \"data.temp\"}.")));

	it = JsonbIteratorInit(&paths->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		KappaColumn *col = NULL;
		bool		is_new = false;
		List	   *given;
		ListCell   *lc;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		foreach(lc, added)
		{
			KappaColumn *c = lfirst(lc);

			if (strcmp(c->json_key, key) == 0 || strcmp(c->name, key) == 0)
			{
				col = c;
				is_new = true;
				break;
			}
		}
		if (col == NULL)
			col = kappa_find_column(columns, key);
		/* "deviceId" for the column deviceid, as in the column list */
		if (col == NULL)
			col = kappa_find_column(columns, downcase_identifier(key, strlen(key), false, false));
		if (col == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("add_paths names column \"%s\", which the stream does not have", key),
					 errhint("A key of add_paths is a column of the stream (its SQL name) or one that add_columns adds.")));

		tok = JsonbIteratorNext(&it, &v, true);
		Assert(tok == WJB_VALUE);
		given = parse_path_value(&v, col->name);
		if (is_new)
		{
			col->paths = given;
			continue;
		}
		foreach(lc, given)
		{
			char	   *path = lfirst(lc);
			ListCell   *pc;

			foreach(pc, col->paths)
			{
				if (strcmp(lfirst(pc), path) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_OBJECT),
							 errmsg("column \"%s\" already reads path \"%s\"", col->name, path),
							 errhint("kappa_streams shows each column's paths.")));
			}
			col->paths = lappend(col->paths, path);
		}
		changed = list_append_unique_ptr(changed, col);
	}
	return changed;
}
