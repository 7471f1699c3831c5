/* kappa--0.2.sql: stream-backed materialized views, version 0.2 */

\echo Use "CREATE EXTENSION kappa" to load this file. \quit

-- Fail at once, with a hint, on a server that did not preload the library.
CREATE FUNCTION kappa_assert_preloaded() RETURNS void
	LANGUAGE C VOLATILE STRICT
	AS 'MODULE_PATHNAME', 'kappa_assert_preloaded';
SELECT kappa_assert_preloaded();
DROP FUNCTION kappa_assert_preloaded();

-- Who may define streams: a stream opens network connections and, with an
-- archive, writes files, so this is not for every role.  Roles are shared
-- by all databases, so the role may exist already.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'kappa_admin') THEN
		CREATE ROLE kappa_admin NOLOGIN;
	END IF;
END
$$;

CREATE SCHEMA kappa;
REVOKE ALL ON SCHEMA kappa FROM PUBLIC;
GRANT USAGE ON SCHEMA kappa TO PUBLIC;

-- BEGIN kappa dump and restore (1 of 2)
-- Which database wrote a stored plan or consumed a stream: the cluster's
-- system identifier, the database's OID, the extension's OID and the
-- catalog version.  A dump restored elsewhere (or into the same database
-- after DROP EXTENSION), or a pg_upgrade, changes it.
CREATE FUNCTION kappa.origin() RETURNS text
	LANGUAGE C STABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_origin';
COMMENT ON FUNCTION kappa.origin()
	IS 'this database as kappa tells databases apart: system identifier/database OID/extension OID/catalog version';
-- END kappa dump and restore (1 of 2)

-- One row per stream.  Secret librdkafka settings are masked in options;
-- their values are in kappa.stream_secrets.
CREATE TABLE kappa.streams (
	stream_id serial PRIMARY KEY,
	name text NOT NULL UNIQUE,
	-- regrole: a dump names the role, so it survives a restore elsewhere
	owner regrole NOT NULL,
	topic text NOT NULL,
	brokers text NOT NULL,
	eventhubs text,
	event_time name,
	time_unit text NOT NULL CHECK (time_unit IN ('s', 'ms', 'us')),
	watermark interval NOT NULL,
	idle_timeout interval NOT NULL,
	dedup_key name,
	archive text,
	options jsonb NOT NULL,
	keep_late boolean NOT NULL DEFAULT false,
	-- the partitions this server consumes, ascending; null: all of them
	partitions int[],
	-- when the log no longer holds offsets the stream has not read, and no
	-- archive has them: stop (until kappa_accept_gap) or skip them
	on_gap text NOT NULL DEFAULT 'stop' CHECK (on_gap IN ('stop', 'skip')),
	created_at timestamptz NOT NULL DEFAULT now(),
	-- the database (kappa.origin()) whose workers consume the stream: a
	-- restored stream waits until its whole dump is restored, then becomes
	-- this database's (see kappa.zz_dump_sentinel)
	origin text NOT NULL DEFAULT kappa.origin(),
	-- kappa_alter_stream calls so far; the launcher restarts the stream's
	-- workers when it changes, so that they run the new definition
	revision int NOT NULL DEFAULT 0,
	altered_at timestamptz
);
COMMENT ON TABLE kappa.streams IS 'kappa streams; use the kappa_streams view';

CREATE TABLE kappa.stream_columns (
	stream_id int NOT NULL REFERENCES kappa.streams ON DELETE CASCADE,
	attnum int2 NOT NULL,
	name name NOT NULL,
	type regtype NOT NULL,
	typmod int4 NOT NULL,
	not_null boolean NOT NULL,
	paths text[] NOT NULL,
	PRIMARY KEY (stream_id, attnum),
	UNIQUE (stream_id, name)
);
COMMENT ON TABLE kappa.stream_columns IS 'columns of kappa streams and the JSON paths they read';

-- Secret settings (SASL passwords, the Event Hubs connection string):
-- readable only by the stream's owner (and superusers).
CREATE TABLE kappa.stream_secrets (
	stream_id int PRIMARY KEY REFERENCES kappa.streams ON DELETE CASCADE,
	owner regrole NOT NULL,
	settings jsonb NOT NULL
);
COMMENT ON TABLE kappa.stream_secrets IS 'secret librdkafka settings of kappa streams, readable by each stream''s owner';
ALTER TABLE kappa.stream_secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY stream_owner ON kappa.stream_secrets
	USING (pg_catalog.pg_has_role(owner, 'USAGE'));

-- Where each stream's worker is, per partition: the next offset to read
-- and what it has counted.  Written in the same transaction as the views.
CREATE TABLE kappa.partitions (
	stream_id int NOT NULL REFERENCES kappa.streams ON DELETE CASCADE,
	partition int NOT NULL,
	next_offset bigint NOT NULL,
	end_offset bigint,
	consumed bigint NOT NULL DEFAULT 0,
	dead_lettered bigint NOT NULL DEFAULT 0,
	last_event_at timestamptz,
	-- when the worker last consumed a message here, and last flushed it
	-- (with several workers per stream, each flush of the partition's
	-- worker, which tells the others that it is alive)
	last_message_at timestamptz,
	flushed_at timestamptz,
	flush_ms float8,
	events_per_s float8,
	-- offsets the stream skipped because neither the log nor the archive
	-- held them any more (kappa.gaps says which)
	lost bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (stream_id, partition)
);

-- Offsets a stream's worker found gone: retention deleted them before the
-- worker read them, and no archive holds them.  Until accepted (by the
-- stream's on_gap = 'skip', or kappa_accept_gap) the worker stops there.
CREATE TABLE kappa.gaps (
	stream_id int NOT NULL REFERENCES kappa.streams ON DELETE CASCADE,
	partition int NOT NULL,
	from_offset bigint NOT NULL,
	to_offset bigint NOT NULL,		-- exclusive
	found_at timestamptz NOT NULL DEFAULT now(),
	accepted boolean NOT NULL DEFAULT false,
	PRIMARY KEY (stream_id, partition, from_offset)
);

-- Messages that could not be decoded (view_id 0), and events a view
-- rejected because evaluating them failed (view_id: that view), with their
-- bytes, the reason and its SQLSTATE.  Each stream's rows are visible to
-- its owner only (row level security below).
CREATE TABLE kappa.dead_letters (
	stream_id int NOT NULL REFERENCES kappa.streams ON DELETE CASCADE,
	partition int NOT NULL,
	"offset" bigint NOT NULL,
	broker_time timestamptz,
	key bytea,
	payload bytea,
	reason text NOT NULL,
	view_id int NOT NULL DEFAULT 0,
	sqlstate text NOT NULL,
	PRIMARY KEY (stream_id, partition, "offset", view_id)
);

-- Late events of streams created with keep_late: per view that found the
-- event late, the message's place and bytes.
CREATE TABLE kappa.late_events (
	view_id int NOT NULL,
	partition int NOT NULL,
	"offset" bigint NOT NULL,
	event_time timestamptz,
	payload bytea,
	PRIMARY KEY (view_id, partition, "offset")
);

-- One row per view; its rows live in kappa.view_<view_id>, and the
-- user-facing name is a view over that table.
CREATE TABLE kappa.views (
	view_id serial PRIMARY KEY,
	stream_id int NOT NULL REFERENCES kappa.streams,
	schema_name name NOT NULL,
	view_name name NOT NULL,
	owner regrole NOT NULL,
	query text NOT NULL,
	-- the analysed query as a node string, bound to this database's
	-- objects by OID; plan_origin says which database (kappa.origin())
	-- wrote it, and definition is the same query deparsed with every name
	-- qualified, from which another database rebuilds the plan
	plan text NOT NULL,
	plan_origin text NOT NULL,
	definition text NOT NULL,
	options jsonb NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	-- live; incomplete: live, but missing offsets that were lost
	-- (kappa.view_gaps says which); needs_replay: its state was lost and
	-- the log no longer holds what rebuilding it needs (status_detail says
	-- why); replaying: a new version being built by kappa_replay, not yet
	-- visible; failed: it cannot go on (status_detail holds the error,
	-- status_sqlstate its code)
	status text NOT NULL DEFAULT 'live'
		CHECK (status IN ('live', 'incomplete', 'needs_replay', 'replaying', 'failed')),
	status_detail text,
	status_sqlstate text,
	-- versions side by side (kappa_replay(..., swap => false)): a version
	-- other than the current one is named base_name@vN and has its base
	-- name here; the current one has none
	base_name name,
	version int NOT NULL DEFAULT 1,
	UNIQUE (schema_name, view_name)
);

-- Each view's own position and watermark per partition, and its counts.
CREATE TABLE kappa.view_partitions (
	view_id int NOT NULL REFERENCES kappa.views ON DELETE CASCADE,
	partition int NOT NULL,
	next_offset bigint NOT NULL,
	max_event_time timestamptz,
	filtered bigint NOT NULL DEFAULT 0,
	duplicate bigint NOT NULL DEFAULT 0,
	delivered bigint NOT NULL DEFAULT 0,
	applied bigint NOT NULL DEFAULT 0,
	late bigint NOT NULL DEFAULT 0,
	-- events whose evaluation failed, kept in kappa.dead_letters
	rejected bigint NOT NULL DEFAULT 0,
	-- the first offset the view read here: a rebuild starts from it, and
	-- needs the log to still hold it
	first_offset bigint,
	-- windows that end at or before this time are final (the same in
	-- every partition of the view: what all of them passed)
	final_upto timestamptz,
	PRIMARY KEY (view_id, partition)
);

-- The offsets a view never saw because they were lost (kappa.gaps), or a
-- replay went on without (kappa_replay(..., accept_gaps => true)).
CREATE TABLE kappa.view_gaps (
	view_id int NOT NULL REFERENCES kappa.views ON DELETE CASCADE,
	partition int NOT NULL,
	from_offset bigint NOT NULL,
	to_offset bigint NOT NULL,		-- exclusive
	PRIMARY KEY (view_id, partition, from_offset)
);

-- Sinks: a view's final (or changed) rows sent to a Kafka topic, exactly
-- once.  A sink follows its view by name, through replays.  The rows to
-- send are written to kappa.sink_outbox in the flush that makes them
-- final (or changes them), numbered by seq; the stream's worker sends
-- them in Kafka transactions, each message carrying its seq, and after a
-- crash learns from the topic what was committed there (sink.c).
CREATE TABLE kappa.sinks (
	sink_id serial PRIMARY KEY,
	name text NOT NULL UNIQUE,
	owner regrole NOT NULL,
	schema_name name NOT NULL,
	view_name name NOT NULL,
	topic text NOT NULL,
	-- other brokers than the stream's, with their (non-secret) settings;
	-- null: the stream's own brokers and settings
	brokers text,
	options jsonb NOT NULL DEFAULT '{}',
	emit text NOT NULL CHECK (emit IN ('final', 'changes')),
	-- the last seq given to a row, and the last one Kafka committed
	next_seq bigint NOT NULL DEFAULT 0,
	sent_seq bigint NOT NULL DEFAULT 0,
	-- emit final: the rows of windows ending up to here are in the outbox
	final_upto timestamptz,
	last_sent_at timestamptz,
	last_error text,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE kappa.sink_outbox (
	sink_id int NOT NULL REFERENCES kappa.sinks ON DELETE CASCADE,
	seq bigint NOT NULL,
	key text NOT NULL,
	value text NOT NULL,
	PRIMARY KEY (sink_id, seq)
);

-- The partial aggregates of every open group, as of the last flush.
-- Unlogged: fast, and emptied by crash recovery, which the marker shows.
CREATE UNLOGGED TABLE kappa.view_state (
	view_id int NOT NULL,
	group_key bytea NOT NULL,
	window_start timestamptz NOT NULL,
	window_end timestamptz NOT NULL,
	states bytea[] NOT NULL,
	PRIMARY KEY (view_id, group_key, window_start)
);
CREATE UNLOGGED TABLE kappa.view_state_marker (
	view_id int PRIMARY KEY
);
-- With several workers per stream, how far each has finalized each view:
-- a stored state is deleted only once every worker treats its window as
-- final, so that none can still apply an event to it.  Lost with the states.
CREATE UNLOGGED TABLE kappa.view_marks (
	view_id int NOT NULL,
	worker int NOT NULL,
	finalized_upto timestamptz NOT NULL,
	PRIMARY KEY (view_id, worker)
);
-- The dedup keys each view has seen per partition within the watermark
-- horizon, as of the last flush; lost with the states, and rebuilt with
-- them from the log.  A row per flush and partition (a segment): the keys
-- that flush saw first, with their event times, and the newest of those
-- times.  A segment goes once all its keys have left the horizon; loading
-- skips the keys of a segment that already did.
CREATE UNLOGGED TABLE kappa.view_dedup (
	view_id int NOT NULL,
	partition int NOT NULL,
	newest timestamptz NOT NULL,
	keys text[] NOT NULL,
	event_times timestamptz[] NOT NULL
);
CREATE INDEX view_dedup_horizon ON kappa.view_dedup (view_id, partition, newest);
-- the keys are random: compressing them costs more than it saves
ALTER TABLE kappa.view_dedup ALTER keys SET STORAGE EXTERNAL,
	ALTER event_times SET STORAGE EXTERNAL;

-- The files of each stream's archive, and what they hold: written in the
-- transaction that commits the messages' positions, after the file is
-- fsync'd.  Records of a file beyond last_offset are to be ignored.
CREATE TABLE kappa.archive_files (
	stream_id int NOT NULL REFERENCES kappa.streams ON DELETE CASCADE,
	partition int NOT NULL,
	path text NOT NULL,			-- relative to the stream's archive directory
	first_offset bigint NOT NULL,
	last_offset bigint NOT NULL,
	first_time timestamptz NOT NULL,
	last_time timestamptz NOT NULL,
	records bigint NOT NULL,
	closed boolean NOT NULL,
	PRIMARY KEY (stream_id, path)
);
CREATE INDEX ON kappa.archive_files (stream_id, partition, first_offset);

REVOKE ALL ON kappa.streams, kappa.stream_columns, kappa.stream_secrets FROM PUBLIC;
REVOKE ALL ON kappa.archive_files, kappa.gaps, kappa.view_gaps FROM PUBLIC;
REVOKE ALL ON kappa.sinks, kappa.sink_outbox FROM PUBLIC;
REVOKE ALL ON kappa.partitions, kappa.dead_letters, kappa.late_events, kappa.views, kappa.view_partitions,
	kappa.view_state, kappa.view_state_marker, kappa.view_dedup FROM PUBLIC;
-- the markers say which views have their state (kappa_wait reads them);
-- a failed view's error may quote data, so only kappa_views shows it, and
-- only to the view's owner
GRANT SELECT ON kappa.partitions, kappa.view_partitions, kappa.view_state_marker,
	kappa.gaps, kappa.view_gaps TO PUBLIC;
GRANT SELECT (view_id, stream_id, schema_name, view_name, owner, query, plan, plan_origin, definition, options, created_at,
	status, status_sqlstate, base_name, version) ON kappa.views TO PUBLIC;
GRANT SELECT ON kappa.dead_letters, kappa.late_events, kappa.archive_files TO kappa_admin;

-- Payloads are the stream owner's data: each role sees the dead letters and
-- late events of the streams it owns (or is a member of the owner of).
ALTER TABLE kappa.dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY stream_owner ON kappa.dead_letters
	USING (EXISTS (SELECT FROM kappa.streams s
		WHERE s.stream_id = dead_letters.stream_id AND pg_catalog.pg_has_role(s.owner, 'USAGE')));
ALTER TABLE kappa.late_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY stream_owner ON kappa.late_events
	USING (EXISTS (SELECT FROM kappa.views v JOIN kappa.streams s USING (stream_id)
		WHERE v.view_id = late_events.view_id AND pg_catalog.pg_has_role(s.owner, 'USAGE')));
GRANT SELECT ON kappa.streams, kappa.stream_columns TO PUBLIC;
GRANT SELECT ON kappa.stream_secrets TO kappa_admin;

-- BEGIN kappa dump and restore (2 of 2)
-- pg_dump keeps the definitions and what the workers have done: positions,
-- counts, dead letters, late events, the archive's manifest (it runs as a
-- role that can read them).  Not the unlogged states, markers and dedup
-- keys: a restored view has no marker, so its worker rebuilds its state
-- from the log, as after a crash.
SELECT pg_catalog.pg_extension_config_dump('kappa.streams', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.streams_stream_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.stream_columns', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.stream_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.views', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.views_view_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.partitions', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.view_partitions', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.archive_files', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.late_events', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.gaps', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.view_gaps', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.sinks', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.sinks_sink_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.sink_outbox', '');

-- The end of a dump's kappa data.  A restore that is not one transaction
-- makes streams visible before their positions: their workers must not
-- start then, or their writes would collide with the rows still to come.
-- So a stream consumes only in the database of its origin, and the
-- launcher adopts restored streams once this table holds their origin.
-- pg_dump loads a configuration table's data after that of the tables it
-- references, so the references below (never set) make this table's row
-- come after every other table's; its name makes it sort after the rows
-- tables kappa.view_<id>, which are not configuration tables.  Each
-- database holds the row of its own origin.
CREATE TABLE kappa.zz_dump_sentinel (
	origin text NOT NULL,
	stream_id int,
	view_id int,
	partition int,
	attnum int2,
	"offset" bigint,
	path text,
	from_offset bigint,
	sink_id int,
	seq bigint,
	CHECK (stream_id IS NULL AND view_id IS NULL AND partition IS NULL AND attnum IS NULL
		AND "offset" IS NULL AND path IS NULL AND from_offset IS NULL AND sink_id IS NULL
		AND seq IS NULL),
	FOREIGN KEY (stream_id, attnum) REFERENCES kappa.stream_columns,
	FOREIGN KEY (stream_id) REFERENCES kappa.stream_secrets,
	FOREIGN KEY (stream_id, partition) REFERENCES kappa.partitions,
	FOREIGN KEY (stream_id, partition, "offset", view_id) REFERENCES kappa.dead_letters,
	FOREIGN KEY (view_id, partition, "offset") REFERENCES kappa.late_events,
	FOREIGN KEY (view_id, partition) REFERENCES kappa.view_partitions,
	FOREIGN KEY (stream_id, path) REFERENCES kappa.archive_files,
	FOREIGN KEY (stream_id, partition, from_offset) REFERENCES kappa.gaps,
	FOREIGN KEY (view_id, partition, from_offset) REFERENCES kappa.view_gaps,
	FOREIGN KEY (sink_id, seq) REFERENCES kappa.sink_outbox
);
COMMENT ON TABLE kappa.zz_dump_sentinel
	IS 'the origin of this database''s kappa data; restored last, it tells the launcher a restore is complete';
REVOKE ALL ON kappa.zz_dump_sentinel FROM PUBLIC;
INSERT INTO kappa.zz_dump_sentinel (origin) VALUES (kappa.origin());
SELECT pg_catalog.pg_extension_config_dump('kappa.zz_dump_sentinel', '');
-- END kappa dump and restore (2 of 2)

CREATE FUNCTION kappa_create_stream(
	name text,
	topic text DEFAULT NULL,
	brokers text DEFAULT NULL,
	columns text DEFAULT NULL,
	paths jsonb DEFAULT NULL,
	event_time text DEFAULT NULL,
	watermark interval DEFAULT '1 minute',
	dedup_key text DEFAULT NULL,
	archive text DEFAULT NULL,
	options jsonb DEFAULT '{}',
	eventhubs text DEFAULT NULL,
	time_unit text DEFAULT 'ms',
	idle_timeout interval DEFAULT '30 seconds',
	keep_late boolean DEFAULT false,
	partitions text DEFAULT NULL,
	on_gap text DEFAULT 'stop')
RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_create_stream';
COMMENT ON FUNCTION kappa_create_stream(text, text, text, text, jsonb, text, interval, text, text, jsonb, text, text, interval, boolean, text, text)
	IS 'define a stream: where its events come from and what they look like';

CREATE FUNCTION kappa_drop_stream(name text, "cascade" boolean DEFAULT false)
RETURNS void
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_drop_stream';
COMMENT ON FUNCTION kappa_drop_stream(text, boolean)
	IS 'remove a stream (and, with cascade, its views)';

-- BEGIN kappa_alter_stream
CREATE FUNCTION kappa_alter_stream(
	name text,
	add_columns text DEFAULT NULL,
	add_paths jsonb DEFAULT NULL,
	watermark interval DEFAULT NULL,
	idle_timeout interval DEFAULT NULL,
	options jsonb DEFAULT NULL)
RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_alter_stream';
COMMENT ON FUNCTION kappa_alter_stream(text, text, jsonb, interval, interval, jsonb)
	IS 'add columns and paths to a stream, change its watermark, idle timeout or librdkafka options; its worker restarts from its stored positions';
REVOKE ALL ON FUNCTION kappa_alter_stream(text, text, jsonb, interval, interval, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kappa_alter_stream(text, text, jsonb, interval, interval, jsonb) TO kappa_admin;
-- END kappa_alter_stream

CREATE FUNCTION kappa_accept_gap(stream text)
RETURNS bigint
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_accept_gap';
COMMENT ON FUNCTION kappa_accept_gap(text)
	IS 'accept the loss of the offsets a stream''s worker stopped at (kappa.gaps): it counts them as lost and goes on';

CREATE FUNCTION kappa_stream_settings(stream text,
	OUT setting text, OUT value text)
RETURNS SETOF record
	LANGUAGE C STABLE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_stream_settings';
COMMENT ON FUNCTION kappa_stream_settings(text)
	IS 'librdkafka settings a stream''s workers use, secrets masked';

CREATE FUNCTION kappa_produce(stream text, payload text, key text DEFAULT NULL,
	OUT partition int, OUT "offset" bigint)
RETURNS record
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_produce';
COMMENT ON FUNCTION kappa_produce(text, text, text)
	IS 'append one event to a stream''s topic; returns its partition and offset';

CREATE FUNCTION kappa_produce(stream text, payload bytea, key bytea DEFAULT NULL,
	OUT partition int, OUT "offset" bigint)
RETURNS record
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_produce';
COMMENT ON FUNCTION kappa_produce(text, bytea, bytea)
	IS 'append one event of arbitrary bytes to a stream''s topic; returns its partition and offset';

CREATE FUNCTION kappa_peek(stream text, n int DEFAULT 10,
	OUT partition int, OUT "offset" bigint, OUT "timestamp" timestamptz,
	OUT key text, OUT payload text, OUT raw bytea)
RETURNS SETOF record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_peek';
COMMENT ON FUNCTION kappa_peek(text, int)
	IS 'the newest n messages of a stream''s topic, oldest first';

-- Windows, used laterally in a view's FROM.  Tumble and hop also work in
-- batch SQL, so that a view's query doubles as its batch equivalent.
CREATE FUNCTION kappa_tumble(ts timestamptz, size interval,
	OUT window_start timestamptz, OUT window_end timestamptz)
RETURNS SETOF record
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1
	AS 'MODULE_PATHNAME', 'kappa_tumble';
COMMENT ON FUNCTION kappa_tumble(timestamptz, interval)
	IS 'the tumbling window, aligned to the Unix epoch, that holds ts';

CREATE FUNCTION kappa_hop(ts timestamptz, size interval, slide interval,
	OUT window_start timestamptz, OUT window_end timestamptz)
RETURNS SETOF record
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 2
	AS 'MODULE_PATHNAME', 'kappa_hop';
COMMENT ON FUNCTION kappa_hop(timestamptz, interval, interval)
	IS 'every hopping window of the given size, starting every slide, that holds ts';

CREATE FUNCTION kappa_session(ts timestamptz, gap interval,
	OUT window_start timestamptz, OUT window_end timestamptz)
RETURNS SETOF record
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 1
	AS 'MODULE_PATHNAME', 'kappa_session';
COMMENT ON FUNCTION kappa_session(timestamptz, interval)
	IS 'session windows per key, closed by a gap of inactivity; only in kappa views';

CREATE FUNCTION kappa_create_view(name text, query text, options jsonb DEFAULT '{}')
RETURNS void
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_create_view';
COMMENT ON FUNCTION kappa_create_view(text, text, jsonb)
	IS 'define a view: one SELECT over one stream, kept current by the stream''s worker';

CREATE FUNCTION kappa_drop_view(name text)
RETURNS void
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_drop_view';
COMMENT ON FUNCTION kappa_drop_view(text)
	IS 'remove a view';

-- Up to when a view's windows are final: a window that ends at or before
-- it no longer changes, in any partition.  Resolved on the caller's
-- search_path, like the view's name in a query; null for a view without
-- windows, or before any window is final.
CREATE FUNCTION kappa_final_until(view text) RETURNS timestamptz
	LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
	AS $$
DECLARE
	rel regclass := pg_catalog.to_regclass(view);
	kappa_view int;
BEGIN
	IF rel IS NULL THEN
		RAISE EXCEPTION 'relation "%" does not exist', view USING ERRCODE = '42P01';
	END IF;
	SELECT v.view_id INTO kappa_view
	FROM pg_catalog.pg_class c
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	JOIN kappa.views v ON v.schema_name = n.nspname AND v.view_name = c.relname
	WHERE c.oid = rel;
	IF kappa_view IS NULL THEN
		RAISE EXCEPTION '"%" is not a kappa view', view USING ERRCODE = '42809',
			HINT = 'kappa_views lists the kappa views.';
	END IF;
	RETURN (SELECT pg_catalog.max(vp.final_upto) FROM kappa.view_partitions vp
		WHERE vp.view_id = kappa_view);
END
$$;
COMMENT ON FUNCTION kappa_final_until(text)
	IS 'the time up to which a view''s windows are final: rows with window_end at or before it no longer change';

CREATE FUNCTION kappa_create_sink(name text, view text, topic text, brokers text DEFAULT NULL,
	eventhubs text DEFAULT NULL, emit text DEFAULT 'final', options jsonb DEFAULT '{}')
RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_create_sink';
COMMENT ON FUNCTION kappa_create_sink(text, text, text, text, text, text, jsonb)
	IS 'send a view''s final (or changed) rows to a Kafka topic, exactly once';

CREATE FUNCTION kappa_drop_sink(name text)
RETURNS void
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_drop_sink';
COMMENT ON FUNCTION kappa_drop_sink(text)
	IS 'remove a sink; what it has not sent is not sent';

CREATE FUNCTION kappa.redact(text) RETURNS text
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_redact';
COMMENT ON FUNCTION kappa.redact(text)
	IS 'the text with every secret kappa recognises masked, as kappa writes it to the server log';

CREATE FUNCTION kappa.decode(stream text, payload bytea,
	OUT ok boolean, OUT reason text, OUT "values" jsonb, OUT sqlstate text)
RETURNS record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_decode_payload';
COMMENT ON FUNCTION kappa.decode(text, bytea)
	IS 'what a stream''s worker makes of a payload: its columns, or why it would be dead-lettered, with the SQLSTATE';

CREATE FUNCTION kappa_wait(stream text, timeout interval DEFAULT '30 seconds')
RETURNS boolean
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_wait';
COMMENT ON FUNCTION kappa_wait(text, interval)
	IS 'wait until the stream and its views have committed every message its topic held at the call; false on timeout';

CREATE FUNCTION kappa_feed(stream text, messages regclass,
	OUT messages_read bigint, OUT engine_seconds float8, OUT flush_seconds float8,
	OUT phases jsonb)
RETURNS record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_feed';
COMMENT ON FUNCTION kappa_feed(text, regclass)
	IS 'run the messages of a table (partition, offset, payload[, key][, timestamp]) through the stream''s views as its worker would, while the worker is stopped';

CREATE FUNCTION kappa_check(view text, accept_gaps boolean DEFAULT false,
	OUT side text, OUT "row" jsonb)
RETURNS SETOF record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_check';
COMMENT ON FUNCTION kappa_check(text, boolean)
	IS 'recompute a view from the log and return the rows that differ (missing from the view, or extra in it)';

CREATE FUNCTION kappa_archive_read(path text,
	OUT sequence_number bigint, OUT "offset" text, OUT enqueued_time timestamptz,
	OUT enqueued_time_utc text, OUT system_properties jsonb, OUT properties jsonb,
	OUT body bytea)
RETURNS SETOF record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_archive_read';
COMMENT ON FUNCTION kappa_archive_read(text)
	IS 'the records of an Event Hubs Capture (Avro) file, written by Azure or by kappa''s archive';
REVOKE ALL ON FUNCTION kappa_archive_read(text) FROM PUBLIC;

CREATE FUNCTION kappa_archive_register(stream text, directory text,
	OUT partition int, OUT path text, OUT first_offset bigint, OUT last_offset bigint,
	OUT records bigint)
RETURNS SETOF record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_archive_register';
COMMENT ON FUNCTION kappa_archive_register(text, text)
	IS 'record the Event Hubs Capture files under a hub''s directory as the stream''s history';
REVOKE ALL ON FUNCTION kappa_archive_register(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kappa_archive_register(text, text) TO kappa_admin;
GRANT EXECUTE ON FUNCTION kappa_archive_read(text) TO pg_read_server_files;

CREATE FUNCTION kappa_replay(view text, since timestamptz DEFAULT NULL,
	until timestamptz DEFAULT NULL, query text DEFAULT NULL, swap boolean DEFAULT true,
	accept_gaps boolean DEFAULT false,
	OUT archive_events bigint, OUT log_events bigint, OUT seconds float8)
RETURNS record
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_replay';
COMMENT ON FUNCTION kappa_replay(text, timestamptz, timestamptz, text, boolean, boolean)
	IS 'rebuild a view (or a new query for it) from its stream''s archive and log, and swap it in (or keep it beside, as a new version)';

CREATE FUNCTION kappa_compare(view text, version_a int, version_b int,
	OUT key jsonb, OUT a jsonb, OUT b jsonb)
RETURNS SETOF record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_compare';
COMMENT ON FUNCTION kappa_compare(text, int, int)
	IS 'the rows in which two versions of a view differ: their key, and each version''s row';

CREATE FUNCTION kappa_promote(view text, version int)
RETURNS void
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_promote';
COMMENT ON FUNCTION kappa_promote(text, int)
	IS 'make a version of a view the current one, in one transaction; the former current version goes';

CREATE FUNCTION kappa_replay_status(
	OUT view text, OUT pid int, OUT phase text, OUT partitions_done int, OUT partitions_total int,
	OUT events_done bigint, OUT events_total bigint, OUT started_at timestamptz)
RETURNS SETOF record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_replay_status';
COMMENT ON FUNCTION kappa_replay_status()
	IS 'progress of the replays running now, from shared memory';

CREATE VIEW kappa_replays AS
SELECT view, pid, phase, partitions_done, partitions_total, events_done, events_total,
	round(events_done / greatest(extract(epoch FROM clock_timestamp() - started_at), 0.001))::bigint
		AS events_per_s,
	CASE WHEN events_done > 0 AND events_done < events_total
		THEN (clock_timestamp() - started_at) * ((events_total - events_done)::float8 / events_done)
		END AS eta,
	started_at
FROM kappa_replay_status();
COMMENT ON VIEW kappa_replays IS 'kappa_replay calls running now, and how far they are';
GRANT SELECT ON kappa_replays TO PUBLIC;

CREATE FUNCTION kappa_worker_status(
	OUT stream_id int, OUT stream text, OUT state text, OUT pid int,
	OUT partitions int, OUT failures int, OUT started_at timestamptz,
	OUT last_error text, OUT last_error_at timestamptz,
	OUT next_start_at timestamptz, OUT worker int, OUT last_sqlstate text)
RETURNS SETOF record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_worker_status';
COMMENT ON FUNCTION kappa_worker_status()
	IS 'state of each stream''s worker, from shared memory';

REVOKE ALL ON FUNCTION kappa_create_stream(text, text, text, text, jsonb, text, interval, text, text, jsonb, text, text, interval, boolean, text, text),
	kappa_drop_stream(text, boolean),
	kappa_accept_gap(text),
	kappa_create_sink(text, text, text, text, text, text, jsonb),
	kappa_drop_sink(text),
	kappa_create_view(text, text, jsonb),
	kappa_drop_view(text),
	kappa_produce(text, text, text),
	kappa_produce(text, bytea, bytea),
	kappa_peek(text, int),
	kappa_wait(text, interval),
	kappa_feed(text, regclass),
	kappa_check(text, boolean),
	kappa_replay(text, timestamptz, timestamptz, text, boolean, boolean),
	kappa_compare(text, int, int),
	kappa_promote(text, int)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kappa_create_stream(text, text, text, text, jsonb, text, interval, text, text, jsonb, text, text, interval, boolean, text, text),
	kappa_drop_stream(text, boolean),
	kappa_accept_gap(text),
	kappa_create_sink(text, text, text, text, text, text, jsonb),
	kappa_drop_sink(text),
	kappa_create_view(text, text, jsonb),
	kappa_drop_view(text),
	kappa_produce(text, text, text),
	kappa_produce(text, bytea, bytea),
	kappa_peek(text, int),
	kappa_wait(text, interval),
	kappa_feed(text, regclass),
	kappa_check(text, boolean),
	kappa_replay(text, timestamptz, timestamptz, text, boolean, boolean),
	kappa_compare(text, int, int),
	kappa_promote(text, int)
	TO kappa_admin;

-- What streams there are; secrets masked, so every role may look.
CREATE VIEW kappa_streams AS
SELECT s.name,
	s.owner::regrole AS owner,
	s.topic,
	s.brokers,
	s.eventhubs,
	(SELECT string_agg(format('%I %s%s', c.name, format_type(c.type, c.typmod),
				CASE WHEN c.not_null THEN ' NOT NULL' ELSE '' END), ', '
			ORDER BY c.attnum)
		FROM kappa.stream_columns c WHERE c.stream_id = s.stream_id) AS columns,
	(SELECT jsonb_object_agg(c.name, to_jsonb(c.paths))
		FROM kappa.stream_columns c WHERE c.stream_id = s.stream_id) AS paths,
	s.event_time,
	s.time_unit,
	s.watermark,
	s.idle_timeout,
	s.dedup_key,
	s.archive,
	s.options,
	s.keep_late,
	s.created_at,
	s.partitions,
	s.altered_at
FROM kappa.streams s;
COMMENT ON VIEW kappa_streams IS 'kappa streams, secrets masked';
GRANT SELECT ON kappa_streams TO PUBLIC;

CREATE VIEW kappa_views AS
SELECT format('%I.%I', v.schema_name, v.view_name) AS name,
	s.name AS stream,
	v.owner::regrole AS owner,
	v.query,
	v.options,
	v.created_at,
	v.status,
	CASE WHEN v.status = 'failed' AND NOT pg_catalog.pg_has_role(v.owner, 'USAGE')
		THEN 'SQLSTATE ' || v.status_sqlstate ELSE v.status_detail END AS status_detail,
	v.version,
	v.base_name IS NULL AS current,
	format('%I.%I', v.schema_name, coalesce(v.base_name, v.view_name)) AS version_of,
	(SELECT string_agg(format('partition %s: offsets %s-%s', g.partition, g.from_offset, g.to_offset - 1),
			', ' ORDER BY g.partition, g.from_offset)
		FROM kappa.view_gaps g WHERE g.view_id = v.view_id) AS gaps,
	-- the table that holds the version's rows: what a publication publishes
	pg_catalog.to_regclass(format('kappa.%I', 'view_' || v.view_id)) AS rows_table
FROM kappa.views v JOIN kappa.streams s USING (stream_id);
COMMENT ON VIEW kappa_views IS 'kappa views and the streams they read';
GRANT SELECT ON kappa_views TO PUBLIC;

CREATE FUNCTION kappa_log_ends(OUT stream_id int, OUT partition int,
	OUT log_start bigint, OUT log_end bigint)
RETURNS SETOF record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_log_ends';
COMMENT ON FUNCTION kappa_log_ends()
	IS 'where each stream''s log begins and ends now, asked of its brokers (those that answer within a second; answers kept a second)';

-- Live figures per stream and partition (view is null), and per view and
-- partition.  Consumed = ok + dead_lettered for a stream; for a view,
-- what it read = duplicate + filtered + delivered, and delivered =
-- applied + late + rejected.  The log's start and end are asked of the
-- brokers (kappa_log_ends), so that lag is true while the worker is
-- stopped, disabled or failing; if they do not answer, the end the worker
-- saw last stands in (end_checked_at says when that was).
CREATE VIEW kappa_stats AS
WITH ends AS MATERIALIZED (SELECT * FROM kappa_log_ends())
SELECT s.name AS stream,
	NULL::text AS view,
	k.partition,
	k.next_offset AS committed_offset,
	coalesce(e.log_end, k.end_offset) AS end_offset,
	greatest(coalesce(e.log_end, k.end_offset) - k.next_offset, 0) AS lag,
	CASE WHEN coalesce(e.log_end, k.end_offset) > k.next_offset
		THEN extract(epoch FROM now() - k.last_event_at) ELSE 0 END AS lag_seconds,
	-- the rate of a worker that is not running is not known; one that
	-- flushed nothing for 10 s read nothing
	CASE WHEN ws.state IS DISTINCT FROM 'running' THEN NULL
		WHEN k.flushed_at < now() - interval '10 seconds' THEN 0
		ELSE k.events_per_s END AS events_per_s,
	k.consumed,
	k.dead_lettered,
	NULL::bigint AS duplicate,
	NULL::bigint AS filtered,
	NULL::bigint AS delivered,
	NULL::bigint AS applied,
	NULL::bigint AS late,
	NULL::bigint AS rejected,
	k.flushed_at AS last_flush_at,
	k.flush_ms AS last_flush_ms,
	NULL::bigint AS state_rows,
	NULL::bigint AS state_bytes,
	ws.state AS worker_state,
	ws.last_error,
	NULL::text AS view_status,
	k.lost,
	e.log_start,
	CASE WHEN e.log_end IS NULL THEN k.flushed_at ELSE now() END AS end_checked_at,
	NULL::timestamptz AS watermark,
	NULL::timestamptz AS final_upto
FROM kappa.partitions k JOIN kappa.streams s USING (stream_id)
LEFT JOIN ends e ON e.stream_id = k.stream_id AND e.partition = k.partition
LEFT JOIN LATERAL (SELECT w.state, w.last_error FROM kappa_worker_status() w
	WHERE w.stream_id = k.stream_id
	ORDER BY w.last_error IS NULL, w.worker LIMIT 1) ws ON true
UNION ALL
SELECT s.name,
	format('%I.%I', v.schema_name, v.view_name),
	vp.partition,
	vp.next_offset,
	coalesce(e.log_end, k.end_offset),
	greatest(coalesce(e.log_end, k.end_offset) - vp.next_offset, 0),
	NULL,
	NULL,
	NULL,
	NULL,
	vp.duplicate,
	vp.filtered,
	vp.delivered,
	vp.applied,
	vp.late,
	vp.rejected,
	k.flushed_at,
	k.flush_ms,
	st.rows,
	st.bytes,
	NULL,
	CASE WHEN v.status = 'failed' AND NOT pg_catalog.pg_has_role(v.owner, 'USAGE')
		THEN 'SQLSTATE ' || v.status_sqlstate ELSE v.status_detail END,
	v.status,
	(SELECT coalesce(sum(g.to_offset - g.from_offset), 0)::bigint FROM kappa.view_gaps g
		WHERE g.view_id = v.view_id AND g.partition = vp.partition),
	e.log_start,
	CASE WHEN e.log_end IS NULL THEN k.flushed_at ELSE now() END,
	vp.max_event_time - s.watermark,
	vp.final_upto
FROM kappa.view_partitions vp
JOIN kappa.views v USING (view_id)
JOIN kappa.streams s USING (stream_id)
LEFT JOIN kappa.partitions k ON k.stream_id = v.stream_id AND k.partition = vp.partition
LEFT JOIN ends e ON e.stream_id = v.stream_id AND e.partition = vp.partition
LEFT JOIN LATERAL (SELECT count(*) AS rows,
		sum(pg_column_size(x.group_key) + pg_column_size(x.states)) AS bytes
	FROM kappa.view_state x WHERE x.view_id = v.view_id) st ON true;
COMMENT ON VIEW kappa_stats IS 'kappa''s live figures per stream, view and partition';
GRANT SELECT ON kappa_stats TO PUBLIC;

CREATE VIEW kappa_sinks AS
SELECT k.name,
	format('%I.%I', k.schema_name, k.view_name) AS view,
	k.owner,
	k.topic,
	coalesce(k.brokers, s.brokers) AS brokers,
	k.emit,
	k.sent_seq AS sent,
	k.next_seq - k.sent_seq AS pending,
	k.final_upto,
	k.last_sent_at,
	CASE WHEN pg_catalog.pg_has_role(k.owner, 'USAGE') THEN k.last_error
		WHEN k.last_error IS NOT NULL THEN 'an error (shown to the sink''s owner)' END AS last_error,
	k.created_at
FROM kappa.sinks k
LEFT JOIN kappa.views v ON v.schema_name = k.schema_name AND v.view_name = k.view_name
LEFT JOIN kappa.streams s ON s.stream_id = v.stream_id;
COMMENT ON VIEW kappa_sinks IS 'kappa sinks: where each sends, how far it is, and its last error';
GRANT SELECT ON kappa_sinks TO PUBLIC;

CREATE VIEW kappa_workers AS
SELECT stream, worker, state, pid, partitions, failures, started_at,
	last_error, last_sqlstate, last_error_at, next_start_at
FROM kappa_worker_status();
COMMENT ON VIEW kappa_workers IS 'state of each stream''s background worker';
GRANT SELECT ON kappa_workers TO PUBLIC;

-- BEGIN kappa ddl
-- Plain DDL on kappa's relations (src/kappa_catalog/ddl.c).  Dropping a view's
-- user-facing view (DROP VIEW, DROP SCHEMA ... CASCADE, DROP OWNED BY)
-- drops the kappa view, as kappa_drop_view does; DROP OWNED BY also drops
-- the views whose rows tables it drops.  Dropping a rows table
-- kappa.view_<id> any other way, a column of it, or a stream's relation
-- kappa.stream_<id> is refused, with a hint naming kappa_drop_view or
-- kappa_drop_stream.  kappa's own DROPs pass.
CREATE FUNCTION kappa.ddl_sql_drop() RETURNS event_trigger
	LANGUAGE C
	AS 'MODULE_PATHNAME', 'kappa_ddl_sql_drop';
COMMENT ON FUNCTION kappa.ddl_sql_drop() IS
	'function of the event trigger kappa_sql_drop: keeps kappa''s catalog in line with plain DROPs';
REVOKE ALL ON FUNCTION kappa.ddl_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER kappa_sql_drop ON sql_drop
	EXECUTE FUNCTION kappa.ddl_sql_drop();
COMMENT ON EVENT TRIGGER kappa_sql_drop IS
	'drops a kappa view whose user-facing view a plain DROP removed; refuses DROPs of kappa''s own relations';
-- END kappa ddl

-- BEGIN kappa aggregates
-- Aggregates Postgres 15 cannot combine, as combinable aggregates (C code in
-- src/agg/aggfuncs.c).  Each result depends only on the multiset of inputs, never
-- on their order or on how partial states were split and merged, so a view
-- equals the same query run as batch SQL, serial or parallel.  States are
-- internal, serialized to bytea with the element type's send function; the
-- final functions leave the state as it was (kappa calls them at every flush).
-- Support functions live in schema kappa; the aggregates in the extension's.

CREATE FUNCTION kappa.count_distinct_trans(internal, anyelement) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_count_distinct_trans';
COMMENT ON FUNCTION kappa.count_distinct_trans(internal, anyelement) IS
	'transition function of kappa_count_distinct: adds a non-null value to the set';

CREATE FUNCTION kappa.count_distinct_final(internal) RETURNS bigint
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_count_distinct_final';
COMMENT ON FUNCTION kappa.count_distinct_final(internal) IS
	'final function of kappa_count_distinct: the size of the set';

CREATE FUNCTION kappa.collect_set_trans(internal, anyelement) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_collect_set_trans';
COMMENT ON FUNCTION kappa.collect_set_trans(internal, anyelement) IS
	'transition function of kappa_collect_set: adds a non-null value to the set';

CREATE FUNCTION kappa.collect_set_final(internal, anyelement) RETURNS anyarray
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_collect_set_final';
COMMENT ON FUNCTION kappa.collect_set_final(internal, anyelement) IS
	'final function of kappa_collect_set: the set as a sorted array';

CREATE FUNCTION kappa.set_combine(internal, internal) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_set_combine';
COMMENT ON FUNCTION kappa.set_combine(internal, internal) IS
	'combine function of kappa_count_distinct and kappa_collect_set: the union of two sets';

CREATE FUNCTION kappa.set_serialize(internal) RETURNS bytea
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_set_serialize';
COMMENT ON FUNCTION kappa.set_serialize(internal) IS
	'serialize function of kappa_count_distinct and kappa_collect_set';

CREATE FUNCTION kappa.set_deserialize(bytea, internal) RETURNS internal
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_set_deserialize';
COMMENT ON FUNCTION kappa.set_deserialize(bytea, internal) IS
	'deserialize function of kappa_count_distinct and kappa_collect_set';

CREATE FUNCTION kappa.collect_list_trans(internal, anyelement) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_collect_list_trans';
COMMENT ON FUNCTION kappa.collect_list_trans(internal, anyelement) IS
	'transition function of kappa_collect_list: appends a value or null';

CREATE FUNCTION kappa.collect_list_combine(internal, internal) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_collect_list_combine';
COMMENT ON FUNCTION kappa.collect_list_combine(internal, internal) IS
	'combine function of kappa_collect_list: both lists of values';

CREATE FUNCTION kappa.collect_list_serialize(internal) RETURNS bytea
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_collect_list_serialize';
COMMENT ON FUNCTION kappa.collect_list_serialize(internal) IS
	'serialize function of kappa_collect_list';

CREATE FUNCTION kappa.collect_list_deserialize(bytea, internal) RETURNS internal
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_collect_list_deserialize';
COMMENT ON FUNCTION kappa.collect_list_deserialize(bytea, internal) IS
	'deserialize function of kappa_collect_list';

CREATE FUNCTION kappa.collect_list_final(internal, anyelement) RETURNS anyarray
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_collect_list_final';
COMMENT ON FUNCTION kappa.collect_list_final(internal, anyelement) IS
	'final function of kappa_collect_list: every value, sorted, nulls last';

CREATE FUNCTION kappa.first_trans(internal, anyelement, timestamptz) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_first_trans';
COMMENT ON FUNCTION kappa.first_trans(internal, anyelement, timestamptz) IS
	'transition function of kappa_first: keeps the value with the smallest time';

CREATE FUNCTION kappa.last_trans(internal, anyelement, timestamptz) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_last_trans';
COMMENT ON FUNCTION kappa.last_trans(internal, anyelement, timestamptz) IS
	'transition function of kappa_last: keeps the value with the largest time';

CREATE FUNCTION kappa.pick_combine(internal, internal) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_pick_combine';
COMMENT ON FUNCTION kappa.pick_combine(internal, internal) IS
	'combine function of kappa_first and kappa_last: the better of two candidates';

CREATE FUNCTION kappa.pick_serialize(internal) RETURNS bytea
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_pick_serialize';
COMMENT ON FUNCTION kappa.pick_serialize(internal) IS
	'serialize function of kappa_first and kappa_last';

CREATE FUNCTION kappa.pick_deserialize(bytea, internal) RETURNS internal
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_pick_deserialize';
COMMENT ON FUNCTION kappa.pick_deserialize(bytea, internal) IS
	'deserialize function of kappa_first and kappa_last';

CREATE FUNCTION kappa.pick_final(internal, anyelement, timestamptz) RETURNS anyelement
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_pick_final';
COMMENT ON FUNCTION kappa.pick_final(internal, anyelement, timestamptz) IS
	'final function of kappa_first and kappa_last: the chosen value';

CREATE FUNCTION kappa.approx_count_distinct_trans(internal, anyelement) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_approx_trans';
COMMENT ON FUNCTION kappa.approx_count_distinct_trans(internal, anyelement) IS
	'transition function of kappa_approx_count_distinct: adds a non-null value''s 64-bit hash';

CREATE FUNCTION kappa.approx_count_distinct_combine(internal, internal) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_approx_combine';
COMMENT ON FUNCTION kappa.approx_count_distinct_combine(internal, internal) IS
	'combine function of kappa_approx_count_distinct: the union (register-wise maximum)';

CREATE FUNCTION kappa.approx_count_distinct_serialize(internal) RETURNS bytea
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_approx_serialize';
COMMENT ON FUNCTION kappa.approx_count_distinct_serialize(internal) IS
	'serialize function of kappa_approx_count_distinct';

CREATE FUNCTION kappa.approx_count_distinct_deserialize(bytea, internal) RETURNS internal
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_approx_deserialize';
COMMENT ON FUNCTION kappa.approx_count_distinct_deserialize(bytea, internal) IS
	'deserialize function of kappa_approx_count_distinct';

CREATE FUNCTION kappa.approx_count_distinct_final(internal) RETURNS bigint
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_approx_final';
COMMENT ON FUNCTION kappa.approx_count_distinct_final(internal) IS
	'final function of kappa_approx_count_distinct: the estimate';

CREATE AGGREGATE kappa_count_distinct(anyelement) (
	SFUNC = kappa.count_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.count_distinct_final, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_count_distinct(anyelement) IS
	'number of distinct non-null values, as count(DISTINCT x), but combinable; 0 for no rows';

CREATE AGGREGATE kappa_collect_set(anyelement) (
	SFUNC = kappa.collect_set_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.collect_set_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_collect_set(anyelement) IS
	'distinct non-null values sorted by the type''s default order, as array_agg(DISTINCT x ORDER BY x) FILTER (WHERE x IS NOT NULL), but combinable; NULL if none';

CREATE AGGREGATE kappa_collect_list(anyelement) (
	SFUNC = kappa.collect_list_trans, STYPE = internal,
	COMBINEFUNC = kappa.collect_list_combine,
	SERIALFUNC = kappa.collect_list_serialize, DESERIALFUNC = kappa.collect_list_deserialize,
	FINALFUNC = kappa.collect_list_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_collect_list(anyelement) IS
	'every value, nulls included, sorted by the type''s default order with nulls last: array_agg(x ORDER BY x), but combinable; NULL for no rows';

CREATE AGGREGATE kappa_first(value anyelement, ts timestamptz) (
	SFUNC = kappa.first_trans, STYPE = internal,
	COMBINEFUNC = kappa.pick_combine,
	SERIALFUNC = kappa.pick_serialize, DESERIALFUNC = kappa.pick_deserialize,
	FINALFUNC = kappa.pick_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_first(anyelement, timestamptz) IS
	'the value with the smallest ts (rows with a null ts ignored; ties go to the smaller value, null last): (array_agg(value ORDER BY ts, value) FILTER (WHERE ts IS NOT NULL))[1]';

CREATE AGGREGATE kappa_last(value anyelement, ts timestamptz) (
	SFUNC = kappa.last_trans, STYPE = internal,
	COMBINEFUNC = kappa.pick_combine,
	SERIALFUNC = kappa.pick_serialize, DESERIALFUNC = kappa.pick_deserialize,
	FINALFUNC = kappa.pick_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_last(anyelement, timestamptz) IS
	'the value with the largest ts (rows with a null ts ignored; ties go to the smaller value, null last): (array_agg(value ORDER BY ts DESC, value) FILTER (WHERE ts IS NOT NULL))[1]';

CREATE AGGREGATE kappa_approx_count_distinct(anyelement) (
	SFUNC = kappa.approx_count_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.approx_count_distinct_combine,
	SERIALFUNC = kappa.approx_count_distinct_serialize,
	DESERIALFUNC = kappa.approx_count_distinct_deserialize,
	FINALFUNC = kappa.approx_count_distinct_final, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_approx_count_distinct(anyelement) IS
	'approximate number of distinct non-null values: exact up to 1536, then HyperLogLog with 2^14 registers (standard error 0.81%, within 2.5% for 99.7% of inputs); deterministic; 0 for no rows';

-- sum(DISTINCT x) and avg(DISTINCT x), string_agg and the percentiles, as
-- combinable aggregates (src/agg/aggfuncs.c, src/agg/aggfuncs_bag.c); compile.c
-- rewrites a view's sum(DISTINCT x), avg(DISTINCT x), string_agg(x, d),
-- string_agg(DISTINCT x, d) and percentile_cont/percentile_disc(f) WITHIN
-- GROUP (ORDER BY x) into them.  kappa_sum_distinct and kappa_avg_distinct
-- keep a distinct set, with kappa.set_* as combine and (de)serialize
-- functions, and compute Postgres's sum and avg of its values in ascending
-- order, with Postgres's result types (one aggregate per input type).  The
-- others keep every non-null value with the delimiter or fraction, which
-- must be the same in every row, and sort at the end.

CREATE FUNCTION kappa.sum_distinct_trans(internal, anyelement) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_sum_distinct_trans';
COMMENT ON FUNCTION kappa.sum_distinct_trans(internal, anyelement) IS
	'transition function of kappa_sum_distinct: adds a non-null value to the set';

CREATE FUNCTION kappa.avg_distinct_trans(internal, anyelement) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_avg_distinct_trans';
COMMENT ON FUNCTION kappa.avg_distinct_trans(internal, anyelement) IS
	'transition function of kappa_avg_distinct: adds a non-null value to the set';

CREATE FUNCTION kappa.sum_distinct_final(internal, smallint) RETURNS bigint
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_sum_distinct_final';
COMMENT ON FUNCTION kappa.sum_distinct_final(internal, smallint) IS
	'final function of kappa_sum_distinct(smallint): sum(DISTINCT x) of the set';

CREATE FUNCTION kappa.sum_distinct_final(internal, integer) RETURNS bigint
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_sum_distinct_final';
COMMENT ON FUNCTION kappa.sum_distinct_final(internal, integer) IS
	'final function of kappa_sum_distinct(integer): sum(DISTINCT x) of the set';

CREATE FUNCTION kappa.sum_distinct_final(internal, bigint) RETURNS numeric
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_sum_distinct_final';
COMMENT ON FUNCTION kappa.sum_distinct_final(internal, bigint) IS
	'final function of kappa_sum_distinct(bigint): sum(DISTINCT x) of the set';

CREATE FUNCTION kappa.sum_distinct_final(internal, numeric) RETURNS numeric
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_sum_distinct_final';
COMMENT ON FUNCTION kappa.sum_distinct_final(internal, numeric) IS
	'final function of kappa_sum_distinct(numeric): sum(DISTINCT x) of the set';

CREATE FUNCTION kappa.sum_distinct_final(internal, real) RETURNS real
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_sum_distinct_final';
COMMENT ON FUNCTION kappa.sum_distinct_final(internal, real) IS
	'final function of kappa_sum_distinct(real): sum(DISTINCT x) of the set';

CREATE FUNCTION kappa.sum_distinct_final(internal, double precision) RETURNS double precision
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_sum_distinct_final';
COMMENT ON FUNCTION kappa.sum_distinct_final(internal, double precision) IS
	'final function of kappa_sum_distinct(double precision): sum(DISTINCT x) of the set';

CREATE FUNCTION kappa.sum_distinct_final(internal, money) RETURNS money
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_sum_distinct_final';
COMMENT ON FUNCTION kappa.sum_distinct_final(internal, money) IS
	'final function of kappa_sum_distinct(money): sum(DISTINCT x) of the set';

CREATE FUNCTION kappa.sum_distinct_final(internal, interval) RETURNS interval
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_sum_distinct_final';
COMMENT ON FUNCTION kappa.sum_distinct_final(internal, interval) IS
	'final function of kappa_sum_distinct(interval): sum(DISTINCT x) of the set';

CREATE FUNCTION kappa.avg_distinct_final(internal, smallint) RETURNS numeric
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_avg_distinct_final';
COMMENT ON FUNCTION kappa.avg_distinct_final(internal, smallint) IS
	'final function of kappa_avg_distinct(smallint): avg(DISTINCT x) of the set';

CREATE FUNCTION kappa.avg_distinct_final(internal, integer) RETURNS numeric
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_avg_distinct_final';
COMMENT ON FUNCTION kappa.avg_distinct_final(internal, integer) IS
	'final function of kappa_avg_distinct(integer): avg(DISTINCT x) of the set';

CREATE FUNCTION kappa.avg_distinct_final(internal, bigint) RETURNS numeric
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_avg_distinct_final';
COMMENT ON FUNCTION kappa.avg_distinct_final(internal, bigint) IS
	'final function of kappa_avg_distinct(bigint): avg(DISTINCT x) of the set';

CREATE FUNCTION kappa.avg_distinct_final(internal, numeric) RETURNS numeric
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_avg_distinct_final';
COMMENT ON FUNCTION kappa.avg_distinct_final(internal, numeric) IS
	'final function of kappa_avg_distinct(numeric): avg(DISTINCT x) of the set';

CREATE FUNCTION kappa.avg_distinct_final(internal, real) RETURNS double precision
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_avg_distinct_final';
COMMENT ON FUNCTION kappa.avg_distinct_final(internal, real) IS
	'final function of kappa_avg_distinct(real): avg(DISTINCT x) of the set';

CREATE FUNCTION kappa.avg_distinct_final(internal, double precision) RETURNS double precision
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_avg_distinct_final';
COMMENT ON FUNCTION kappa.avg_distinct_final(internal, double precision) IS
	'final function of kappa_avg_distinct(double precision): avg(DISTINCT x) of the set';

CREATE FUNCTION kappa.avg_distinct_final(internal, interval) RETURNS interval
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_avg_distinct_final';
COMMENT ON FUNCTION kappa.avg_distinct_final(internal, interval) IS
	'final function of kappa_avg_distinct(interval): avg(DISTINCT x) of the set';

CREATE FUNCTION kappa.string_agg_trans(internal, text, text) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_string_agg_trans';
COMMENT ON FUNCTION kappa.string_agg_trans(internal, text, text) IS
	'transition function of kappa_string_agg: keeps a non-null value; the delimiter must not change';

CREATE FUNCTION kappa.string_agg_trans(internal, bytea, bytea) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_string_agg_trans';
COMMENT ON FUNCTION kappa.string_agg_trans(internal, bytea, bytea) IS
	'transition function of kappa_string_agg: keeps a non-null value; the delimiter must not change';

CREATE FUNCTION kappa.string_agg_distinct_trans(internal, text, text) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_string_agg_distinct_trans';
COMMENT ON FUNCTION kappa.string_agg_distinct_trans(internal, text, text) IS
	'transition function of kappa_string_agg_distinct: keeps a non-null value (duplicates dropped); the delimiter must not change';

CREATE FUNCTION kappa.string_agg_distinct_trans(internal, bytea, bytea) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_string_agg_distinct_trans';
COMMENT ON FUNCTION kappa.string_agg_distinct_trans(internal, bytea, bytea) IS
	'transition function of kappa_string_agg_distinct: keeps a non-null value (duplicates dropped); the delimiter must not change';

CREATE FUNCTION kappa.string_agg_final(internal, text, text) RETURNS text
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_string_agg_final';
COMMENT ON FUNCTION kappa.string_agg_final(internal, text, text) IS
	'final function of kappa_string_agg and kappa_string_agg_distinct: the values sorted, joined by the delimiter';

CREATE FUNCTION kappa.string_agg_final(internal, bytea, bytea) RETURNS bytea
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_string_agg_final';
COMMENT ON FUNCTION kappa.string_agg_final(internal, bytea, bytea) IS
	'final function of kappa_string_agg and kappa_string_agg_distinct: the values sorted, joined by the delimiter';

CREATE FUNCTION kappa.percentile_cont_trans(internal, double precision, double precision) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_cont_trans';
COMMENT ON FUNCTION kappa.percentile_cont_trans(internal, double precision, double precision) IS
	'transition function of kappa_percentile_cont: keeps a non-null value; the fraction must not change';

CREATE FUNCTION kappa.percentile_cont_trans(internal, interval, double precision) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_cont_trans';
COMMENT ON FUNCTION kappa.percentile_cont_trans(internal, interval, double precision) IS
	'transition function of kappa_percentile_cont: keeps a non-null value; the fraction must not change';

CREATE FUNCTION kappa.percentile_disc_trans(internal, anyelement, double precision) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_disc_trans';
COMMENT ON FUNCTION kappa.percentile_disc_trans(internal, anyelement, double precision) IS
	'transition function of kappa_percentile_disc: keeps a non-null value; the fraction must not change';

CREATE FUNCTION kappa.percentile_cont_final(internal, double precision, double precision) RETURNS double precision
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_cont_final';
COMMENT ON FUNCTION kappa.percentile_cont_final(internal, double precision, double precision) IS
	'final function of kappa_percentile_cont: the interpolated percentile of the sorted values';

CREATE FUNCTION kappa.percentile_cont_final(internal, interval, double precision) RETURNS interval
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_cont_final';
COMMENT ON FUNCTION kappa.percentile_cont_final(internal, interval, double precision) IS
	'final function of kappa_percentile_cont: the interpolated percentile of the sorted values';

CREATE FUNCTION kappa.percentile_disc_final(internal, anyelement, double precision) RETURNS anyelement
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_disc_final';
COMMENT ON FUNCTION kappa.percentile_disc_final(internal, anyelement, double precision) IS
	'final function of kappa_percentile_disc: the first sorted value at or past the fraction';

CREATE FUNCTION kappa.percentile_cont_trans(internal, double precision, double precision[]) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_cont_multi_trans';
COMMENT ON FUNCTION kappa.percentile_cont_trans(internal, double precision, double precision[]) IS
	'transition function of kappa_percentile_cont with an array of fractions: keeps a non-null value; the fractions must not change';

CREATE FUNCTION kappa.percentile_cont_trans(internal, interval, double precision[]) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_cont_multi_trans';
COMMENT ON FUNCTION kappa.percentile_cont_trans(internal, interval, double precision[]) IS
	'transition function of kappa_percentile_cont with an array of fractions: keeps a non-null value; the fractions must not change';

CREATE FUNCTION kappa.percentile_disc_trans(internal, anyelement, double precision[]) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_disc_multi_trans';
COMMENT ON FUNCTION kappa.percentile_disc_trans(internal, anyelement, double precision[]) IS
	'transition function of kappa_percentile_disc with an array of fractions: keeps a non-null value; the fractions must not change';

CREATE FUNCTION kappa.percentile_cont_final(internal, double precision, double precision[]) RETURNS double precision[]
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_cont_multi_final';
COMMENT ON FUNCTION kappa.percentile_cont_final(internal, double precision, double precision[]) IS
	'final function of kappa_percentile_cont with an array of fractions: the interpolated percentiles, in the array''s shape';

CREATE FUNCTION kappa.percentile_cont_final(internal, interval, double precision[]) RETURNS interval[]
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_cont_multi_final';
COMMENT ON FUNCTION kappa.percentile_cont_final(internal, interval, double precision[]) IS
	'final function of kappa_percentile_cont with an array of fractions: the interpolated percentiles, in the array''s shape';

CREATE FUNCTION kappa.percentile_disc_final(internal, anyelement, double precision[]) RETURNS anyarray
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_percentile_disc_multi_final';
COMMENT ON FUNCTION kappa.percentile_disc_final(internal, anyelement, double precision[]) IS
	'final function of kappa_percentile_disc with an array of fractions: the percentiles, in the array''s shape';

CREATE FUNCTION kappa.bag_combine(internal, internal) RETURNS internal
	LANGUAGE C IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_bag_combine';
COMMENT ON FUNCTION kappa.bag_combine(internal, internal) IS
	'combine function of kappa_string_agg, kappa_string_agg_distinct, kappa_percentile_cont and kappa_percentile_disc: both bags of values';

CREATE FUNCTION kappa.bag_serialize(internal) RETURNS bytea
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_bag_serialize';
COMMENT ON FUNCTION kappa.bag_serialize(internal) IS
	'serialize function of kappa_string_agg, kappa_string_agg_distinct, kappa_percentile_cont and kappa_percentile_disc';

CREATE FUNCTION kappa.bag_deserialize(bytea, internal) RETURNS internal
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_bag_deserialize';
COMMENT ON FUNCTION kappa.bag_deserialize(bytea, internal) IS
	'deserialize function of kappa_string_agg, kappa_string_agg_distinct, kappa_percentile_cont and kappa_percentile_disc';

CREATE AGGREGATE kappa_sum_distinct(smallint) (
	SFUNC = kappa.sum_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.sum_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_sum_distinct(smallint) IS
	'sum(DISTINCT x) over smallint, giving bigint, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_sum_distinct(integer) (
	SFUNC = kappa.sum_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.sum_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_sum_distinct(integer) IS
	'sum(DISTINCT x) over integer, giving bigint, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_sum_distinct(bigint) (
	SFUNC = kappa.sum_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.sum_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_sum_distinct(bigint) IS
	'sum(DISTINCT x) over bigint, giving numeric, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_sum_distinct(numeric) (
	SFUNC = kappa.sum_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.sum_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_sum_distinct(numeric) IS
	'sum(DISTINCT x) over numeric, giving numeric, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_sum_distinct(real) (
	SFUNC = kappa.sum_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.sum_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_sum_distinct(real) IS
	'sum(DISTINCT x) over real, giving real, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_sum_distinct(double precision) (
	SFUNC = kappa.sum_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.sum_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_sum_distinct(double precision) IS
	'sum(DISTINCT x) over double precision, giving double precision, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_sum_distinct(money) (
	SFUNC = kappa.sum_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.sum_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_sum_distinct(money) IS
	'sum(DISTINCT x) over money, giving money, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_sum_distinct(interval) (
	SFUNC = kappa.sum_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.sum_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_sum_distinct(interval) IS
	'sum(DISTINCT x) over interval, giving interval, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_avg_distinct(smallint) (
	SFUNC = kappa.avg_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.avg_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_avg_distinct(smallint) IS
	'avg(DISTINCT x) over smallint, giving numeric, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_avg_distinct(integer) (
	SFUNC = kappa.avg_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.avg_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_avg_distinct(integer) IS
	'avg(DISTINCT x) over integer, giving numeric, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_avg_distinct(bigint) (
	SFUNC = kappa.avg_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.avg_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_avg_distinct(bigint) IS
	'avg(DISTINCT x) over bigint, giving numeric, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_avg_distinct(numeric) (
	SFUNC = kappa.avg_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.avg_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_avg_distinct(numeric) IS
	'avg(DISTINCT x) over numeric, giving numeric, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_avg_distinct(real) (
	SFUNC = kappa.avg_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.avg_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_avg_distinct(real) IS
	'avg(DISTINCT x) over real, giving double precision, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_avg_distinct(double precision) (
	SFUNC = kappa.avg_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.avg_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_avg_distinct(double precision) IS
	'avg(DISTINCT x) over double precision, giving double precision, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_avg_distinct(interval) (
	SFUNC = kappa.avg_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.set_combine,
	SERIALFUNC = kappa.set_serialize, DESERIALFUNC = kappa.set_deserialize,
	FINALFUNC = kappa.avg_distinct_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_avg_distinct(interval) IS
	'avg(DISTINCT x) over interval, giving interval, but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_string_agg(value text, delimiter text) (
	SFUNC = kappa.string_agg_trans, STYPE = internal,
	COMBINEFUNC = kappa.bag_combine,
	SERIALFUNC = kappa.bag_serialize, DESERIALFUNC = kappa.bag_deserialize,
	FINALFUNC = kappa.string_agg_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_string_agg(text, text) IS
	'the non-null values sorted by the type''s default order, joined by the delimiter (which must be the same in every row): string_agg(value, delimiter ORDER BY value), but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_string_agg_distinct(value text, delimiter text) (
	SFUNC = kappa.string_agg_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.bag_combine,
	SERIALFUNC = kappa.bag_serialize, DESERIALFUNC = kappa.bag_deserialize,
	FINALFUNC = kappa.string_agg_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_string_agg_distinct(text, text) IS
	'the distinct non-null values sorted by the type''s default order, joined by the delimiter (which must be the same in every row): string_agg(DISTINCT value, delimiter ORDER BY value), but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_string_agg(value bytea, delimiter bytea) (
	SFUNC = kappa.string_agg_trans, STYPE = internal,
	COMBINEFUNC = kappa.bag_combine,
	SERIALFUNC = kappa.bag_serialize, DESERIALFUNC = kappa.bag_deserialize,
	FINALFUNC = kappa.string_agg_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_string_agg(bytea, bytea) IS
	'the non-null values sorted by the type''s default order, joined by the delimiter (which must be the same in every row): string_agg(value, delimiter ORDER BY value), but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_string_agg_distinct(value bytea, delimiter bytea) (
	SFUNC = kappa.string_agg_distinct_trans, STYPE = internal,
	COMBINEFUNC = kappa.bag_combine,
	SERIALFUNC = kappa.bag_serialize, DESERIALFUNC = kappa.bag_deserialize,
	FINALFUNC = kappa.string_agg_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_string_agg_distinct(bytea, bytea) IS
	'the distinct non-null values sorted by the type''s default order, joined by the delimiter (which must be the same in every row): string_agg(DISTINCT value, delimiter ORDER BY value), but combinable; NULL for no non-null value';

CREATE AGGREGATE kappa_percentile_cont(value double precision, fraction double precision) (
	SFUNC = kappa.percentile_cont_trans, STYPE = internal,
	COMBINEFUNC = kappa.bag_combine,
	SERIALFUNC = kappa.bag_serialize, DESERIALFUNC = kappa.bag_deserialize,
	FINALFUNC = kappa.percentile_cont_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_percentile_cont(double precision, double precision) IS
	'exact continuous percentile (the fraction must be the same in every row): percentile_cont(fraction) WITHIN GROUP (ORDER BY value), but combinable; keeps every value';

CREATE AGGREGATE kappa_percentile_cont(value interval, fraction double precision) (
	SFUNC = kappa.percentile_cont_trans, STYPE = internal,
	COMBINEFUNC = kappa.bag_combine,
	SERIALFUNC = kappa.bag_serialize, DESERIALFUNC = kappa.bag_deserialize,
	FINALFUNC = kappa.percentile_cont_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_percentile_cont(interval, double precision) IS
	'exact continuous percentile (the fraction must be the same in every row): percentile_cont(fraction) WITHIN GROUP (ORDER BY value), but combinable; keeps every value';

CREATE AGGREGATE kappa_percentile_disc(value anyelement, fraction double precision) (
	SFUNC = kappa.percentile_disc_trans, STYPE = internal,
	COMBINEFUNC = kappa.bag_combine,
	SERIALFUNC = kappa.bag_serialize, DESERIALFUNC = kappa.bag_deserialize,
	FINALFUNC = kappa.percentile_disc_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_percentile_disc(anyelement, double precision) IS
	'exact discrete percentile (the fraction must be the same in every row): percentile_disc(fraction) WITHIN GROUP (ORDER BY value), but combinable; keeps every value';

CREATE AGGREGATE kappa_percentile_cont(value double precision, fractions double precision[]) (
	SFUNC = kappa.percentile_cont_trans, STYPE = internal,
	COMBINEFUNC = kappa.bag_combine,
	SERIALFUNC = kappa.bag_serialize, DESERIALFUNC = kappa.bag_deserialize,
	FINALFUNC = kappa.percentile_cont_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_percentile_cont(double precision, double precision[]) IS
	'exact continuous percentiles, one per fraction (the array must be the same in every row): percentile_cont(fractions) WITHIN GROUP (ORDER BY value), but combinable; keeps every value';

CREATE AGGREGATE kappa_percentile_cont(value interval, fractions double precision[]) (
	SFUNC = kappa.percentile_cont_trans, STYPE = internal,
	COMBINEFUNC = kappa.bag_combine,
	SERIALFUNC = kappa.bag_serialize, DESERIALFUNC = kappa.bag_deserialize,
	FINALFUNC = kappa.percentile_cont_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_percentile_cont(interval, double precision[]) IS
	'exact continuous percentiles, one per fraction (the array must be the same in every row): percentile_cont(fractions) WITHIN GROUP (ORDER BY value), but combinable; keeps every value';

CREATE AGGREGATE kappa_percentile_disc(value anyelement, fractions double precision[]) (
	SFUNC = kappa.percentile_disc_trans, STYPE = internal,
	COMBINEFUNC = kappa.bag_combine,
	SERIALFUNC = kappa.bag_serialize, DESERIALFUNC = kappa.bag_deserialize,
	FINALFUNC = kappa.percentile_disc_final, FINALFUNC_EXTRA, FINALFUNC_MODIFY = READ_ONLY,
	PARALLEL = SAFE);
COMMENT ON AGGREGATE kappa_percentile_disc(anyelement, double precision[]) IS
	'exact discrete percentiles, one per fraction (the array must be the same in every row): percentile_disc(fractions) WITHIN GROUP (ORDER BY value), but combinable; keeps every value';
-- END kappa aggregates

-- BEGIN kappa retry dead letters
-- Dead letters decoded again with the stream's definition as it is now,
-- and applied to their views by the stream's worker, each once (retry.c).
CREATE FUNCTION kappa_retry_dead_letters(stream text, since timestamptz DEFAULT NULL,
	until timestamptz DEFAULT NULL, timeout interval DEFAULT '30 seconds',
	OUT applied bigint, OUT late bigint, OUT still_dead bigint)
RETURNS record
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_retry_dead_letters';
COMMENT ON FUNCTION kappa_retry_dead_letters(text, timestamptz, timestamptz, interval)
	IS 'decode a stream''s dead letters (broker time in [since, until)) again and apply those that decode now to their views, once; those that fail again stay';
REVOKE ALL ON FUNCTION kappa_retry_dead_letters(text, timestamptz, timestamptz, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kappa_retry_dead_letters(text, timestamptz, timestamptz, interval) TO kappa_admin;
-- END kappa retry dead letters
