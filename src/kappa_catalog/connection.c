/*-------------------------------------------------------------------------
 *
 * connection.c
 *	  Validation of where a stream's events come from.
 *
 * A stream reads either from Kafka brokers, given as "host:port,..." , or
 * from Azure Event Hubs, given as the connection string the Azure portal
 * shows.  Event Hubs speaks Kafka on port 9093 with SASL PLAIN over TLS,
 * the user name "$ConnectionString" and the whole connection string as
 * password; kappa_parse_eventhubs turns the string into exactly those
 * librdkafka settings.
 *
 * The connection string and some librdkafka settings are secrets.  Error
 * messages here never quote them: a malformed connection string is
 * described by the part that is missing or wrong, never by its text.
 *
 * Statements that define streams carry secrets as literals, and Postgres
 * writes statement texts to the server log (log_statement, the STATEMENT
 * line of an error, bind parameters in a DETAIL).  kappa's emit_log_hook
 * therefore redacts, from every part of every report it sees, what it can
 * recognise as a secret: the value after "SharedAccessKey=" or "sig=", and
 * the quoted value that follows the quoted name of a secret librdkafka
 * setting, as in JSON ("sasl.password": "..."), escaped JSON, or a
 * jsonb_build_object call ('sasl.password', '...').  It hides the STATEMENT
 * line of an error when the statement holds such a secret, and of any
 * error raised while a call that was given secrets runs, until its
 * transaction ends (kappa_statement_has_secrets): secrets in forms it does
 * not recognise stay out of the log that way too.
 *
 * Lifetime: the hook is installed once per process, in _PG_init; the flag
 * that hides STATEMENT lines lives until the end of the transaction that
 * set it, and is cleared there, committed or aborted.
 *
 * src/kappa_catalog/connection.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "kappa_catalog/connection.h"

#define KAFKA_TOPIC_MAX 249
#define EVENTHUBS_KAFKA_PORT "9093"

/*
 * librdkafka settings that kappa sets itself, and would silently override:
 * a stream's consumer group is kappa-<stream> (docs/scaling.md), and where
 * a view starts reading is its own "start", its positions Postgres's.
 */
static const char *const kappa_managed_settings[] = {
	"bootstrap.servers", "metadata.broker.list", "enable.auto.commit",
	"enable.auto.offset.store", "enable.partition.eof", "log.queue",
	"group.id", "auto.offset.reset",
	NULL
};

/*
 * Settings no stream may set, whoever defines it: "internal." settings
 * change the whole server process (internal.termination.signal installs
 * librdkafka's own signal handler over Postgres's).
 */
static const char *const kappa_forbidden_prefixes[] = {"internal.", NULL};

/*
 * Settings that load code or run commands in the server: plugins, OpenSSL
 * engines and providers, and Kerberos, whose kinit command line is built
 * from sasl.kerberos.principal and sasl.kerberos.keytab.  Superusers only,
 * who could run commands anyway.
 */
static const char *const kappa_superuser_prefixes[] = {
	"plugin.", "ssl.engine.", "ssl.providers", "sasl.kerberos.", NULL
};

PG_FUNCTION_INFO_V1(kappa_redact);

static emit_log_hook_type prev_emit_log_hook = NULL;
static bool statement_has_secrets = false;

static void hide_secret_statement(ErrorData *edata);
static bool contains_ci(const char *text, const char *word);
static const char *quoted_start(const char *p, const char **quote);
static const char *quoted_end(const char *p, const char *quote);
static char *redact_secrets(const char *text);
static bool has_prefix(const char *name, const char *const *prefixes);
static void secrets_xact_callback(XactEvent event, void *arg);
static bool valid_host(const char *host, size_t len);
static bool valid_port(const char *port, size_t len);
static void broker_error(const char *entry);
static char *connstr_part(List *parts, const char *key);

/* A host name or IPv4 address: letters, digits, '.', '-' and '_'. */
static bool
valid_host(const char *host, size_t len)
{
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(isalnum((unsigned char) host[i]) || host[i] == '.' ||
			  host[i] == '-' || host[i] == '_'))
			return false;
	return true;
}

/* A port number between 1 and 65535. */
static bool
valid_port(const char *port, size_t len)
{
	int			n = 0;

	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (!isdigit((unsigned char) port[i]))
			return false;
		n = n * 10 + (port[i] - '0');
	}
	return n >= 1 && n <= 65535;
}

static void
broker_error(const char *entry)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid broker address \"%s\"", entry),
			 errdetail("Brokers are host:port pairs separated by commas, such as \"kafka1:9092,kafka2:9092\"; an IPv6 address is written in brackets, as \"[::1]:9092\"."),
			 errhint("For Azure Event Hubs, give the connection string as eventhubs instead.")));
}

/*
 * Check a broker list, "host:port[,host:port...]".  librdkafka would accept
 * almost anything and fail later at connect time; a stream definition
 * should fail now, with the entry that is wrong.
 */
void
kappa_validate_brokers(const char *brokers)
{
	const char *p = brokers;

	if (*brokers == '\0')
		broker_error(brokers);
	for (;;)
	{
		const char *end = strchr(p, ',');
		size_t		len = end ? (size_t) (end - p) : strlen(p);
		char	   *entry = pnstrdup(p, len);
		char	   *colon;
		bool		ok;

		if (entry[0] == '[')
		{
			char	   *close = strchr(entry, ']');

			ok = close != NULL && close > entry + 1 && close[1] == ':' &&
				valid_port(close + 2, strlen(close + 2));
			for (char *h = entry + 1; ok && h < close; h++)
				ok = isxdigit((unsigned char) *h) || *h == ':' || *h == '.';
		}
		else
		{
			colon = strchr(entry, ':');
			ok = colon != NULL &&
				valid_host(entry, colon - entry) &&
				valid_port(colon + 1, strlen(colon + 1));
		}
		if (!ok)
			broker_error(entry);
		if (end == NULL)
			break;
		p = end + 1;
	}
}

/*
 * Check a topic name by Kafka's rules (which Event Hubs' hub names also
 * satisfy), so a typo is an error now rather than a worker failing later.
 */
void
kappa_validate_topic(const char *topic)
{
	size_t		len = strlen(topic);
	bool		ok = len > 0 && len <= KAFKA_TOPIC_MAX &&
		strcmp(topic, ".") != 0 && strcmp(topic, "..") != 0;

	for (size_t i = 0; ok && i < len; i++)
		ok = isalnum((unsigned char) topic[i]) || topic[i] == '.' ||
			topic[i] == '_' || topic[i] == '-';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid topic name \"%s\"", topic),
				 errdetail("Topic names are 1 to %d characters among letters, digits, '.', '_' and '-'.",
						   KAFKA_TOPIC_MAX)));
}

/* The value of key in a parsed connection string (case-insensitive), or NULL. */
static char *
connstr_part(List *parts, const char *key)
{
	ListCell   *lc;

	foreach(lc, parts)
	{
		KappaSetting *part = lfirst(lc);

		if (pg_strcasecmp(part->name, key) == 0)
			return part->value;
	}
	return NULL;
}

/*
 * Parse an Event Hubs connection string,
 * "Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=N;
 * SharedAccessKey=K[;EntityPath=HUB]", into the Kafka settings Event Hubs
 * documents for its Kafka endpoint.
 */
KappaEventHubs *
kappa_parse_eventhubs(const char *connstr)
{
	KappaEventHubs *eh = palloc0(sizeof(KappaEventHubs));
	List	   *parts = NIL;
	char	   *copy = pstrdup(connstr);
	char	   *endpoint;
	char	   *key_name;
	const char *host;
	size_t		host_len;
	StringInfoData buf;
	static const char *const required[] = {"Endpoint", "SharedAccessKeyName", "SharedAccessKey"};

	/* key=value pairs separated by ';'; a value may itself contain '=' */
	for (char *tok = strtok(copy, ";"); tok; tok = strtok(NULL, ";"))
	{
		char	   *eq;

		while (isspace((unsigned char) *tok))
			tok++;
		if (*tok == '\0')
			continue;
		eq = strchr(tok, '=');
		if (eq == NULL || eq == tok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("malformed Event Hubs connection string"),
					 errdetail("Each part must be Key=Value, separated by semicolons."),
					 errhint("Copy the connection string from the Event Hubs namespace's \"Shared access policies\" in the Azure portal.")));
		*eq = '\0';
		parts = lappend(parts, kappa_make_setting(tok, eq + 1));
	}

	for (size_t i = 0; i < lengthof(required); i++)
	{
		char	   *value = connstr_part(parts, required[i]);

		if (value == NULL || *value == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("malformed Event Hubs connection string"),
					 errdetail("The connection string has no %s part.", required[i]),
					 errhint("Copy the connection string from the Event Hubs namespace's \"Shared access policies\" in the Azure portal.")));
	}

	endpoint = connstr_part(parts, "Endpoint");
	if (pg_strncasecmp(endpoint, "sb://", 5) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed Event Hubs connection string"),
				 errdetail("The Endpoint part must start with \"sb://\", as in \"Endpoint=sb://NAMESPACE.servicebus.windows.net/\".")));
	host = endpoint + 5;
	host_len = strcspn(host, "/:");
	if (!valid_host(host, host_len) || (host[host_len] != '\0' && strcmp(host + host_len, "/") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed Event Hubs connection string"),
				 errdetail("The Endpoint part must name a host, as in \"Endpoint=sb://NAMESPACE.servicebus.windows.net/\".")));

	eh->bootstrap = psprintf("%.*s:%s", (int) host_len, host, EVENTHUBS_KAFKA_PORT);
	eh->entity_path = connstr_part(parts, "EntityPath");
	if (eh->entity_path && *eh->entity_path == '\0')
		eh->entity_path = NULL;

	key_name = connstr_part(parts, "SharedAccessKeyName");
	initStringInfo(&buf);
	appendStringInfo(&buf, "Endpoint=sb://%.*s/;SharedAccessKeyName=%s;SharedAccessKey=%s",
					 (int) host_len, host, key_name, KAPPA_SECRET_MASK);
	if (eh->entity_path)
		appendStringInfo(&buf, ";EntityPath=%s", eh->entity_path);
	eh->masked = buf.data;

	eh->settings = list_make4(kappa_make_setting("security.protocol", "SASL_SSL"),
							  kappa_make_setting("sasl.mechanisms", "PLAIN"),
							  kappa_make_setting("sasl.username", "$ConnectionString"),
							  kappa_make_setting("sasl.password", connstr));
	return eh;
}

/*
 * Whether a librdkafka setting holds a secret: passwords, client secrets,
 * private keys and OAUTHBEARER configuration.  Such values are stored apart
 * from the stream, readable only by its owner, and shown masked.
 */
bool
kappa_setting_is_secret(const char *name)
{
	return strstr(name, "password") != NULL ||
		strstr(name, "secret") != NULL ||
		strcmp(name, "ssl.key.pem") == 0 ||
		strcmp(name, "ssl_key") == 0 ||
		strcmp(name, "sasl.oauthbearer.config") == 0;
}

/* Whether name starts with one of the prefixes. */
static bool
has_prefix(const char *name, const char *const *prefixes)
{
	for (int i = 0; prefixes[i]; i++)
		if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/*
 * Reject a librdkafka setting that kappa manages, or that the calling role
 * may not set: the stream's workers run with the server's rights, so a
 * setting that runs code or reads server files needs those rights already.
 */
void
kappa_validate_setting(const char *name)
{
	size_t		len = strlen(name);

	for (int i = 0; kappa_managed_settings[i]; i++)
		if (strcmp(name, kappa_managed_settings[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("librdkafka setting \"%s\" cannot be set in options", name),
					 errdetail("kappa sets it itself."),
					 strstr(name, "broker") ?
					 errhint("Give the brokers as the brokers argument.") :
					 strcmp(name, "auto.offset.reset") == 0 ?
					 errhint("Where a view starts reading is its \"start\" option (kappa_create_view).") : 0));
	if (len > 3 && strcmp(name + len - 3, "_cb") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("librdkafka setting \"%s\" cannot be set in options", name),
				 errdetail("Callbacks are kappa's own.")));
	if (has_prefix(name, kappa_forbidden_prefixes))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("librdkafka setting \"%s\" cannot be set in options", name),
				 errdetail("It would change how the whole database server process behaves.")));
	if (has_prefix(name, kappa_superuser_prefixes) && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser to set librdkafka setting \"%s\"", name),
				 errdetail("It can load code or run commands inside the database server.")));
	if (len > 9 && strcmp(name + len - 9, ".location") == 0 &&
		!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser or a member of pg_read_server_files to set librdkafka setting \"%s\"", name),
				 errdetail("It names a file that the database server would read.")));
}

/* A new setting, classified as secret or not by its name. */
KappaSetting *
kappa_make_setting(const char *name, const char *value)
{
	KappaSetting *s = palloc(sizeof(KappaSetting));

	s->name = pstrdup(name);
	s->value = pstrdup(value);
	s->secret = kappa_setting_is_secret(name);
	return s;
}

/*
 * The settings stored for a stream: the public object, in which secret
 * values are masked, with each secret value taken from the secret object.
 */
List *
kappa_settings_from_jsonb(Jsonb *public_settings, Jsonb *secret_settings)
{
	List	   *settings = NIL;
	JsonbIterator *it = JsonbIteratorInit(&public_settings->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		KappaSetting *setting;
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		setting = kappa_make_setting(name, pnstrdup(v.val.string.val, v.val.string.len));
		if (setting->secret)
		{
			JsonbValue *secret = NULL;

			if (secret_settings != NULL)
				secret = getKeyJsonValueFromContainer(&secret_settings->root,
													  name, strlen(name), NULL);
			if (secret == NULL || secret->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("cannot read the secret setting \"%s\" of the stream", name),
						 errdetail("Secret settings are readable only by the stream's owner.")));
			setting->value = pnstrdup(secret->val.string.val, secret->val.string.len);
		}
		settings = lappend(settings, setting);
	}
	return settings;
}

/* Install the hook that keeps secret-bearing statements out of the log. */
void
kappa_secrets_install_log_hook(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = hide_secret_statement;
	RegisterXactCallback(secrets_xact_callback, NULL);
}

/*
 * Say whether the running statement was given secrets; until the
 * transaction ends, its errors are logged without the statement text.
 */
void
kappa_statement_has_secrets(bool has)
{
	statement_has_secrets = has;
}

static void
hide_secret_statement(ErrorData *edata)
{
	if (statement_has_secrets ||
		(debug_query_string != NULL &&
		 redact_secrets(debug_query_string) != debug_query_string))
		edata->hide_stmt = true;
	if (edata->message)
		edata->message = redact_secrets(edata->message);
	if (edata->detail)
		edata->detail = redact_secrets(edata->detail);
	if (edata->detail_log)
		edata->detail_log = redact_secrets(edata->detail_log);
	if (edata->hint)
		edata->hint = redact_secrets(edata->hint);
	if (edata->context)
		edata->context = redact_secrets(edata->context);
	if (edata->internalquery)
		edata->internalquery = redact_secrets(edata->internalquery);
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* Whether text contains word, ignoring case. */
static bool
contains_ci(const char *text, const char *word)
{
	size_t		len = strlen(word);

	for (const char *p = text; *p; p++)
		if (pg_strncasecmp(p, word, len) == 0)
			return true;
	return false;
}

/*
 * If p starts a quoted string ("...", '...' or \"...\"), the position of
 * its first character, with its closing quote in *quote; else NULL.
 */
static const char *
quoted_start(const char *p, const char **quote)
{
	if (*p == '"' || *p == '\'')
	{
		*quote = *p == '"' ? "\"" : "'";
		return p + 1;
	}
	if (p[0] == '\\' && p[1] == '"')
	{
		*quote = "\\\"";
		return p + 2;
	}
	return NULL;
}

/* The end of a quoted string's content, at its closing quote or at NUL. */
static const char *
quoted_end(const char *p, const char *quote)
{
	size_t		qlen = strlen(quote);

	while (*p && strncmp(p, quote, qlen) != 0)
		p += (*p == '\\' && p[1] && qlen == 1) ? 2 : 1;
	return p;
}

/*
 * text with every recognisable secret replaced by the mask, or text itself
 * when there is none.  Runs for every report, so it first checks cheaply
 * whether there can be anything to do.
 */
static char *
redact_secrets(const char *text)
{
	StringInfoData buf;
	const char *p = text;
	bool		changed = false;

	if (!contains_ci(text, "SharedAccess") && !contains_ci(text, "sig=") &&
		strstr(text, "password") == NULL && strstr(text, "secret") == NULL &&
		strstr(text, "ssl.key.pem") == NULL && strstr(text, "ssl_key") == NULL &&
		strstr(text, "oauthbearer.config") == NULL)
		return (char *) text;

	initStringInfo(&buf);
	while (*p)
	{
		const char *value = NULL;
		const char *quote;
		const char *name;

		/* Event Hubs keys and SAS signatures: up to ';', '&', a quote or space */
		if (pg_strncasecmp(p, "SharedAccessKey=", 16) == 0)
			value = p + 16;
		else if (pg_strncasecmp(p, "sig=", 4) == 0)
			value = p + 4;
		if (value != NULL)
		{
			appendBinaryStringInfo(&buf, p, value - p);
			p = value;
			while (*p && *p != ';' && *p != '&' && *p != '\'' && *p != '"' &&
				   *p != '\\' && !isspace((unsigned char) *p))
				p++;
			appendStringInfoString(&buf, KAPPA_SECRET_MASK);
			changed = true;
			continue;
		}

		/* "secret.setting" : "VALUE", or 'secret.setting', 'VALUE' */
		if ((name = quoted_start(p, &quote)) != NULL)
		{
			const char *close = quoted_end(name, quote);
			const char *q = close + strlen(quote);
			const char *vquote;
			const char *vstart;
			char	   *setting;
			bool		secret;

			if (*close == '\0')
			{
				appendStringInfoString(&buf, p);
				break;
			}
			setting = pnstrdup(name, close - name);
			secret = kappa_setting_is_secret(setting);
			pfree(setting);
			while (isspace((unsigned char) *q))
				q++;
			if (secret && (*q == ':' || *q == ','))
			{
				q++;
				while (isspace((unsigned char) *q))
					q++;
				if ((vstart = quoted_start(q, &vquote)) != NULL)
				{
					appendBinaryStringInfo(&buf, p, vstart - p);
					appendStringInfoString(&buf, KAPPA_SECRET_MASK);
					p = quoted_end(vstart, vquote);
					changed = true;
					continue;
				}
			}
			/*
			 * Not a secret's name: copy the opening quote only and scan on
			 * inside, where a connection string may hold a key.
			 */
			appendBinaryStringInfo(&buf, p, name - p);
			p = name;
			continue;
		}
		appendStringInfoChar(&buf, *p++);
	}
	return changed ? buf.data : (char *) text;
}

/*
 * kappa.redact(text) shows what the log hook makes of a text: for tests,
 * and for anyone who wants to log a statement the way kappa would.
 */
Datum
kappa_redact(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(redact_secrets(text_to_cstring(PG_GETARG_TEXT_PP(0)))));
}

/* Errors are reported before the abort, so the flag can end with it. */
static void
secrets_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		statement_has_secrets = false;
}
