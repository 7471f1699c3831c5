/* kappa--0.1.sql: stream-backed materialized views, first version */

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

-- One row per stream.  Secret librdkafka settings are masked in options;
-- their values are in kappa.stream_secrets.
CREATE TABLE kappa.streams (
	stream_id serial PRIMARY KEY,
	name text NOT NULL UNIQUE,
	owner oid NOT NULL,
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
	created_at timestamptz NOT NULL DEFAULT now()
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
	owner oid NOT NULL,
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
	PRIMARY KEY (stream_id, partition)
);

-- Messages that could not be decoded, with their bytes and the reason.
CREATE TABLE kappa.dead_letters (
	stream_id int NOT NULL REFERENCES kappa.streams ON DELETE CASCADE,
	partition int NOT NULL,
	"offset" bigint NOT NULL,
	broker_time timestamptz,
	key bytea,
	payload bytea,
	reason text NOT NULL,
	PRIMARY KEY (stream_id, partition, "offset")
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
	owner oid NOT NULL,
	query text NOT NULL,
	plan text NOT NULL,
	options jsonb NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	-- live; needs_replay: its state was lost and the log no longer holds
	-- what rebuilding it needs (status_detail says why); replaying: a new
	-- version being built by kappa_replay, not yet visible
	status text NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'needs_replay', 'replaying')),
	status_detail text,
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
	-- the first offset the view read here: a rebuild starts from it, and
	-- needs the log to still hold it
	first_offset bigint,
	PRIMARY KEY (view_id, partition)
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
-- them from the log.
CREATE UNLOGGED TABLE kappa.view_dedup (
	view_id int NOT NULL,
	partition int NOT NULL,
	dedup_key text NOT NULL,
	event_time timestamptz NOT NULL,
	PRIMARY KEY (view_id, partition, dedup_key)
);

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
REVOKE ALL ON kappa.archive_files FROM PUBLIC;
REVOKE ALL ON kappa.partitions, kappa.dead_letters, kappa.late_events, kappa.views, kappa.view_partitions,
	kappa.view_state, kappa.view_state_marker, kappa.view_dedup FROM PUBLIC;
-- the markers say which views have their state (kappa_wait reads them)
GRANT SELECT ON kappa.partitions, kappa.views, kappa.view_partitions, kappa.view_state_marker TO PUBLIC;
GRANT SELECT ON kappa.dead_letters, kappa.late_events, kappa.archive_files TO kappa_admin;
GRANT SELECT ON kappa.streams, kappa.stream_columns TO PUBLIC;
GRANT SELECT ON kappa.stream_secrets TO kappa_admin;

-- pg_dump keeps the definitions (it runs as a role that can read them).
SELECT pg_catalog.pg_extension_config_dump('kappa.streams', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.streams_stream_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.stream_columns', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.stream_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.views', '');
SELECT pg_catalog.pg_extension_config_dump('kappa.views_view_id_seq', '');

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
	partitions text DEFAULT NULL)
RETURNS void
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_create_stream';
COMMENT ON FUNCTION kappa_create_stream(text, text, text, text, jsonb, text, interval, text, text, jsonb, text, text, interval, boolean, text)
	IS 'define a stream: where its events come from and what they look like';

CREATE FUNCTION kappa_drop_stream(name text, "cascade" boolean DEFAULT false)
RETURNS void
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_drop_stream';
COMMENT ON FUNCTION kappa_drop_stream(text, boolean)
	IS 'remove a stream (and, with cascade, its views)';

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

CREATE FUNCTION kappa.redact(text) RETURNS text
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_redact';
COMMENT ON FUNCTION kappa.redact(text)
	IS 'the text with every secret kappa recognises masked, as kappa writes it to the server log';

CREATE FUNCTION kappa.decode(stream text, payload bytea,
	OUT ok boolean, OUT reason text, OUT "values" jsonb)
RETURNS record
	LANGUAGE C STABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'kappa_decode_payload';
COMMENT ON FUNCTION kappa.decode(text, bytea)
	IS 'what a stream''s worker makes of a payload: its columns, or why it would be dead-lettered';

CREATE FUNCTION kappa_wait(stream text, timeout interval DEFAULT '30 seconds')
RETURNS boolean
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_wait';
COMMENT ON FUNCTION kappa_wait(text, interval)
	IS 'wait until the stream and its views have committed every message its topic held at the call; false on timeout';

CREATE FUNCTION kappa_feed(stream text, messages regclass,
	OUT messages_read bigint, OUT engine_seconds float8, OUT flush_seconds float8)
RETURNS record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_feed';
COMMENT ON FUNCTION kappa_feed(text, regclass)
	IS 'run the messages of a table (partition, offset, payload[, key][, timestamp]) through the stream''s views as its worker would, while the worker is stopped';

CREATE FUNCTION kappa_check(view text, OUT side text, OUT "row" jsonb)
RETURNS SETOF record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_check';
COMMENT ON FUNCTION kappa_check(text)
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
	OUT archive_events bigint, OUT log_events bigint, OUT seconds float8)
RETURNS record
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_replay';
COMMENT ON FUNCTION kappa_replay(text, timestamptz, timestamptz, text, boolean)
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
	OUT next_start_at timestamptz, OUT worker int)
RETURNS SETOF record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_worker_status';
COMMENT ON FUNCTION kappa_worker_status()
	IS 'state of each stream''s worker, from shared memory';

REVOKE ALL ON FUNCTION kappa_create_stream(text, text, text, text, jsonb, text, interval, text, text, jsonb, text, text, interval, boolean, text),
	kappa_drop_stream(text, boolean),
	kappa_create_view(text, text, jsonb),
	kappa_drop_view(text),
	kappa_produce(text, text, text),
	kappa_produce(text, bytea, bytea),
	kappa_peek(text, int),
	kappa_wait(text, interval),
	kappa_feed(text, regclass),
	kappa_check(text),
	kappa_replay(text, timestamptz, timestamptz, text, boolean),
	kappa_compare(text, int, int),
	kappa_promote(text, int)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kappa_create_stream(text, text, text, text, jsonb, text, interval, text, text, jsonb, text, text, interval, boolean, text),
	kappa_drop_stream(text, boolean),
	kappa_create_view(text, text, jsonb),
	kappa_drop_view(text),
	kappa_produce(text, text, text),
	kappa_produce(text, bytea, bytea),
	kappa_peek(text, int),
	kappa_wait(text, interval),
	kappa_feed(text, regclass),
	kappa_check(text),
	kappa_replay(text, timestamptz, timestamptz, text, boolean),
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
	s.partitions
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
	v.status_detail,
	v.version,
	v.base_name IS NULL AS current,
	format('%I.%I', v.schema_name, coalesce(v.base_name, v.view_name)) AS version_of
FROM kappa.views v JOIN kappa.streams s USING (stream_id);
COMMENT ON VIEW kappa_views IS 'kappa views and the streams they read';
GRANT SELECT ON kappa_views TO PUBLIC;

-- Live figures per stream and partition (view is null), and per view and
-- partition.  Consumed = ok + dead_lettered for a stream; for a view,
-- what it read = duplicate + filtered + delivered, and delivered =
-- applied + late.
CREATE VIEW kappa_stats AS
SELECT s.name AS stream,
	NULL::text AS view,
	k.partition,
	k.next_offset AS committed_offset,
	k.end_offset,
	greatest(k.end_offset - k.next_offset, 0) AS lag,
	CASE WHEN k.end_offset > k.next_offset
		THEN extract(epoch FROM now() - k.last_event_at) ELSE 0 END AS lag_seconds,
	k.events_per_s,
	k.consumed,
	k.dead_lettered,
	NULL::bigint AS duplicate,
	NULL::bigint AS filtered,
	NULL::bigint AS delivered,
	NULL::bigint AS applied,
	NULL::bigint AS late,
	k.flushed_at AS last_flush_at,
	k.flush_ms AS last_flush_ms,
	NULL::bigint AS state_rows,
	NULL::bigint AS state_bytes,
	ws.state AS worker_state,
	ws.last_error,
	NULL::text AS view_status
FROM kappa.partitions k JOIN kappa.streams s USING (stream_id)
LEFT JOIN LATERAL (SELECT w.state, w.last_error FROM kappa_worker_status() w
	WHERE w.stream_id = k.stream_id
	ORDER BY w.last_error IS NULL, w.worker LIMIT 1) ws ON true
UNION ALL
SELECT s.name,
	format('%I.%I', v.schema_name, v.view_name),
	vp.partition,
	vp.next_offset,
	k.end_offset,
	greatest(k.end_offset - vp.next_offset, 0),
	NULL,
	NULL,
	NULL,
	NULL,
	vp.duplicate,
	vp.filtered,
	vp.delivered,
	vp.applied,
	vp.late,
	k.flushed_at,
	k.flush_ms,
	st.rows,
	st.bytes,
	NULL,
	v.status_detail,
	v.status
FROM kappa.view_partitions vp
JOIN kappa.views v USING (view_id)
JOIN kappa.streams s USING (stream_id)
LEFT JOIN kappa.partitions k ON k.stream_id = v.stream_id AND k.partition = vp.partition
LEFT JOIN LATERAL (SELECT count(*) AS rows,
		sum(pg_column_size(x.group_key) + pg_column_size(x.states)) AS bytes
	FROM kappa.view_state x WHERE x.view_id = v.view_id) st ON true;
COMMENT ON VIEW kappa_stats IS 'kappa''s live figures per stream, view and partition';
GRANT SELECT ON kappa_stats TO PUBLIC;

CREATE VIEW kappa_workers AS
SELECT stream, worker, state, pid, partitions, failures, started_at,
	last_error, last_error_at, next_start_at
FROM kappa_worker_status();
COMMENT ON VIEW kappa_workers IS 'state of each stream''s background worker';
GRANT SELECT ON kappa_workers TO PUBLIC;

-- BEGIN kappa aggregates
-- Aggregates Postgres 15 cannot combine, as combinable aggregates (C code in
-- src/aggfuncs.c).  Each result depends only on the multiset of inputs, never
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
-- END kappa aggregates
