/* kappa--0.1--0.2.sql: update a kappa 0.1 catalog to 0.2 */

\echo Use "ALTER EXTENSION kappa UPDATE TO '0.2'" to load this file. \quit

-- What it does, in the order it must: the objects that read columns whose
-- type changes, and the functions whose arguments or result columns change
-- (CREATE OR REPLACE cannot change those), are dropped first and created
-- again as in kappa--0.2.sql, with their grants; the rest is added.  New
-- objects are copied verbatim from kappa--0.2.sql.  The one difference
-- from a fresh 0.2 catalog: new columns of kappa.streams, kappa.views and
-- kappa.view_partitions come after the old ones (ALTER TABLE appends),
-- where kappa--0.2.sql has some of them in the middle; kappa names every
-- column it reads or writes, and pg_dump too.
--
-- Data: every row is kept.  Owners become regrole, and a view's owner is
-- the role that created it (0.1 recorded the superuser); each stream's origin
-- is this database's; dead letters of 0.1 get SQLSTATE 22000 (data
-- exception: 0.1 did not record one); each view gets the portable
-- definition 0.1 did not store, and its plan is marked as of another
-- origin, so that its worker analyses the definition again with 0.2's
-- rules before it runs it (a view 0.2 refuses is marked failed, with the
-- reason); each partition's dedup keys become one segment.  Views keep
-- their stored states and positions: the workers go on where 0.1's
-- stopped.

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

-- The views over tables and functions that change; created again below.
DROP VIEW kappa_stats, kappa_workers, kappa_views, kappa_streams;
-- a policy over a column whose type changes
DROP POLICY stream_owner ON kappa.stream_secrets;

-- kappa.streams: regrole owners, on_gap, origin, revision, altered_at
ALTER TABLE kappa.streams
	ALTER owner TYPE regrole,
	ADD on_gap text NOT NULL DEFAULT 'stop' CHECK (on_gap IN ('stop', 'skip')),
	ADD origin text NOT NULL DEFAULT kappa.origin(),
	ADD revision int NOT NULL DEFAULT 0,
	ADD altered_at timestamptz;

-- kappa.stream_columns.attnum: the column's attribute number in the
-- stream's relation kappa.stream_<id>, as kappa_alter_stream keeps it (in
-- 0.1 they were the same numbers, 1 to n; taken from the relation all the
-- same).  Through negative numbers: the primary key is checked row by row.
UPDATE kappa.stream_columns c SET attnum = -a.attnum
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = pg_catalog.to_regclass(pg_catalog.format('kappa.%I', 'stream_' || c.stream_id))
	AND a.attname = c.name AND NOT a.attisdropped;
UPDATE kappa.stream_columns SET attnum = -attnum WHERE attnum < 0;

-- The streams' relations: kafka_key is bytea, as a message's key is
DO $$
DECLARE
	s record;
BEGIN
	FOR s IN SELECT stream_id FROM kappa.streams
		WHERE pg_catalog.to_regclass(pg_catalog.format('kappa.%I', 'stream_' || stream_id)) IS NOT NULL
		ORDER BY stream_id LOOP
		EXECUTE pg_catalog.format('ALTER TABLE kappa.%I ALTER kafka_key TYPE bytea USING pg_catalog.convert_to(kafka_key, ''UTF8'')',
			'stream_' || s.stream_id);
	END LOOP;
END
$$;

ALTER TABLE kappa.stream_secrets ALTER owner TYPE regrole;
CREATE POLICY stream_owner ON kappa.stream_secrets
	USING (pg_catalog.pg_has_role(owner, 'USAGE'));

ALTER TABLE kappa.partitions ADD lost bigint NOT NULL DEFAULT 0;

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

-- Dead letters of views too (view_id), each with its SQLSTATE
ALTER TABLE kappa.dead_letters
	ADD view_id int NOT NULL DEFAULT 0,
	ADD sqlstate text;
UPDATE kappa.dead_letters SET sqlstate = '22000';
ALTER TABLE kappa.dead_letters
	ALTER sqlstate SET NOT NULL,
	DROP CONSTRAINT dead_letters_pkey,
	ADD PRIMARY KEY (stream_id, partition, "offset", view_id);

-- kappa.views: regrole owners, plan_origin, definition, failed and
-- incomplete views
ALTER TABLE kappa.views
	ALTER owner TYPE regrole,
	ADD plan_origin text,
	ADD definition text,
	ADD status_sqlstate text,
	DROP CONSTRAINT views_status_check,
	ADD CONSTRAINT views_status_check
		CHECK (status IN ('live', 'incomplete', 'needs_replay', 'replaying', 'failed'));
-- The owner of a view is the role that created it, which owns its
-- user-facing view: 0.1 recorded the role its catalog statements ran as
-- (the bootstrap superuser) instead.  0.2 runs the view's code as its
-- owner, and makes the owner the owner of the rows table.
UPDATE kappa.views v SET owner = c.relowner::pg_catalog.regrole
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = v.schema_name AND c.relname = v.view_name AND c.relkind = 'v';
CREATE FUNCTION kappa.upgrade_views() RETURNS void
	LANGUAGE C VOLATILE STRICT
	AS 'MODULE_PATHNAME', 'kappa_upgrade_views';
SELECT kappa.upgrade_views();
DROP FUNCTION kappa.upgrade_views();
-- no origin is 'kappa 0.1': each view's worker makes the plan its own again
UPDATE kappa.views SET plan_origin = 'kappa 0.1';
ALTER TABLE kappa.views
	ALTER plan_origin SET NOT NULL,
	ALTER definition SET NOT NULL;

-- Each view's rows table: its owner's, with the replica identity logical
-- replication needs (as kappa_create_view makes it in 0.2)
DO $$
DECLARE
	v record;
BEGIN
	-- (a rows table dropped by hand in 0.1, which had no event trigger,
	-- is the view's worker's to report)
	FOR v IN SELECT view_id, owner FROM kappa.views
		WHERE pg_catalog.to_regclass(pg_catalog.format('kappa.%I', 'view_' || view_id)) IS NOT NULL
		ORDER BY view_id LOOP
		EXECUTE pg_catalog.format('ALTER TABLE kappa.%I REPLICA IDENTITY FULL', 'view_' || v.view_id);
		EXECUTE pg_catalog.format('ALTER TABLE kappa.%I OWNER TO %s', 'view_' || v.view_id, v.owner);
	END LOOP;
END
$$;

ALTER TABLE kappa.view_partitions
	ADD rejected bigint NOT NULL DEFAULT 0,
	ADD final_upto timestamptz;

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

-- Dedup keys: a row per key in 0.1, a segment per flush and partition in
-- 0.2.  Each partition's keys become one segment, so a worker loads the
-- same keys with the same times.
ALTER TABLE kappa.view_dedup RENAME TO view_dedup_0_1;
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
INSERT INTO kappa.view_dedup (view_id, partition, newest, keys, event_times)
SELECT view_id, partition, pg_catalog.max(event_time),
	pg_catalog.array_agg(dedup_key ORDER BY event_time, dedup_key),
	pg_catalog.array_agg(event_time ORDER BY event_time, dedup_key)
FROM kappa.view_dedup_0_1
GROUP BY view_id, partition;
DROP TABLE kappa.view_dedup_0_1;

REVOKE ALL ON kappa.gaps, kappa.view_gaps FROM PUBLIC;
REVOKE ALL ON kappa.sinks, kappa.sink_outbox FROM PUBLIC;
REVOKE ALL ON kappa.view_dedup FROM PUBLIC;
-- a failed view's error may quote data, so only kappa_views shows it, and
-- only to the view's owner
REVOKE SELECT ON kappa.views FROM PUBLIC;
GRANT SELECT ON kappa.gaps, kappa.view_gaps TO PUBLIC;
GRANT SELECT (view_id, stream_id, schema_name, view_name, owner, query, plan, plan_origin, definition, options, created_at,
	status, status_sqlstate, base_name, version) ON kappa.views TO PUBLIC;

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

-- BEGIN kappa dump and restore (2 of 2)
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

-- Functions whose arguments, result columns or attributes change: dropped
-- and created again, with the grants of kappa--0.2.sql.
DROP FUNCTION kappa_create_stream(text, text, text, text, jsonb, text, interval, text, text, jsonb, text, text, interval, boolean, text);
DROP FUNCTION kappa.decode(text, bytea);
DROP FUNCTION kappa_feed(text, regclass);
DROP FUNCTION kappa_check(text);
DROP FUNCTION kappa_replay(text, timestamptz, timestamptz, text, boolean);
DROP FUNCTION kappa_worker_status();

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

CREATE FUNCTION kappa.decode(stream text, payload bytea,
	OUT ok boolean, OUT reason text, OUT "values" jsonb, OUT sqlstate text)
RETURNS record
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_decode_payload';
COMMENT ON FUNCTION kappa.decode(text, bytea)
	IS 'what a stream''s worker makes of a payload: its columns, or why it would be dead-lettered, with the SQLSTATE';

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

CREATE FUNCTION kappa_replay(view text, since timestamptz DEFAULT NULL,
	until timestamptz DEFAULT NULL, query text DEFAULT NULL, swap boolean DEFAULT true,
	accept_gaps boolean DEFAULT false,
	OUT archive_events bigint, OUT log_events bigint, OUT seconds float8)
RETURNS record
	LANGUAGE C VOLATILE PARALLEL UNSAFE
	AS 'MODULE_PATHNAME', 'kappa_replay';
COMMENT ON FUNCTION kappa_replay(text, timestamptz, timestamptz, text, boolean, boolean)
	IS 'rebuild a view (or a new query for it) from its stream''s archive and log, and swap it in (or keep it beside, as a new version)';

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
	kappa_accept_gap(text),
	kappa_create_sink(text, text, text, text, text, text, jsonb),
	kappa_drop_sink(text),
	kappa_feed(text, regclass),
	kappa_check(text, boolean),
	kappa_replay(text, timestamptz, timestamptz, text, boolean, boolean)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kappa_create_stream(text, text, text, text, jsonb, text, interval, text, text, jsonb, text, text, interval, boolean, text, text),
	kappa_accept_gap(text),
	kappa_create_sink(text, text, text, text, text, text, jsonb),
	kappa_drop_sink(text),
	kappa_feed(text, regclass),
	kappa_check(text, boolean),
	kappa_replay(text, timestamptz, timestamptz, text, boolean, boolean)
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

-- BEGIN kappa aggregates (new in 0.2)
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
