/*-------------------------------------------------------------------------
 *
 * connection.h
 *	  Where a stream's events come from: broker lists, Event Hubs
 *	  connection strings, topic names and librdkafka settings.
 *
 * src/kappa_catalog/connection.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KAPPA_CONNECTION_H
#define KAPPA_CONNECTION_H

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/* One librdkafka setting.  Secret values are never shown or logged. */
typedef struct KappaSetting
{
	char	   *name;
	char	   *value;
	bool		secret;
} KappaSetting;

/* What an Event Hubs connection string says. */
typedef struct KappaEventHubs
{
	char	   *bootstrap;		/* NAMESPACE.servicebus.windows.net:9093 */
	char	   *entity_path;	/* the hub, or NULL */
	char	   *masked;			/* the string with its key replaced */
	List	   *settings;		/* KappaSetting: SASL_SSL / PLAIN */
} KappaEventHubs;

#define KAPPA_SECRET_MASK "********"

extern void kappa_validate_brokers(const char *brokers);
extern KappaEventHubs *kappa_parse_eventhubs(const char *connstr);
extern void kappa_validate_topic(const char *topic);
extern bool kappa_setting_is_secret(const char *name);
extern void kappa_validate_setting(const char *name);
extern KappaSetting *kappa_make_setting(const char *name, const char *value);
extern void kappa_secrets_install_log_hook(void);
extern void kappa_statement_has_secrets(bool has);
extern List *kappa_settings_from_jsonb(Jsonb *public_settings,
									   Jsonb *secret_settings);

#endif							/* KAPPA_CONNECTION_H */
