--
-- streams: defining, showing and dropping streams.
--
\getenv broker KAPPA_BROKER
\set VERBOSITY terse

-- The design's own example, with every option.
SELECT kappa_create_stream(
	name       => 'telemetry',
	topic      => 'telemetry',
	brokers    => :'broker',
	columns    => 'eventId text, deviceId text, userId text, eventType text,
	               eventTimestamp timestamptz, temperature float8,
	               humidity float8, pressure float8',
	paths      => '{"temperature": ["data.temperature", "data.temp"]}',
	event_time => 'eventTimestamp',
	watermark  => '10 minutes',
	dedup_key  => 'eventId',
	archive    => '/var/lib/kappa/archive',
	options    => '{"fetch.max.bytes": "52428800", "fetch.wait.max.ms": 100, "check.crcs": true}'
);

-- Column names fold as SQL identifiers; the JSON key is the name as written.
SELECT name, topic, brokers = :'broker' AS brokers_ok, eventhubs, columns,
	event_time, time_unit, watermark, idle_timeout, dedup_key, archive, options
FROM kappa_streams WHERE name = 'telemetry';
SELECT key, value FROM kappa_streams, jsonb_each(paths)
WHERE name = 'telemetry' ORDER BY key;

-- The catalog keeps one row per column, in order, with its type.
SELECT c.attnum, c.name, c.type, c.typmod, c.paths
FROM kappa.stream_columns c JOIN kappa.streams s USING (stream_id)
WHERE s.name = 'telemetry' ORDER BY c.attnum;

-- Minimal: the topic defaults to the stream's name, the event time to the
-- broker's timestamp.  Quoted names keep their case; typmods are kept.
SELECT kappa_create_stream('orders', brokers => '127.0.0.1:9092,kafka-2.example.com:9093,[::1]:9094',
	columns => '"orderId" text, amount numeric(12,2), "Placed At" timestamp, ok bool, n int8, tags jsonb, id uuid',
	time_unit => 's', watermark => '0', idle_timeout => '5 minutes');
SELECT name, topic, brokers, columns, event_time, time_unit, watermark, idle_timeout, options
FROM kappa_streams WHERE name = 'orders';
SELECT key, value FROM kappa_streams, jsonb_each(paths)
WHERE name = 'orders' ORDER BY key;

-- Paths may be given by a column's SQL name or by its name as written,
-- as one path or as alternatives; event_time may be quoted.
SELECT kappa_create_stream('nested', brokers => '127.0.0.1:9092', topic => 'nested.v2_x-y',
	columns => '"Ts" timestamptz, v float4, "Kind" text',
	paths => '{"v": "payload.reading.value", "Kind": ["meta.kind", "kind"], "Ts": "meta.ts"}',
	event_time => '"Ts"', time_unit => 'us');
SELECT name, topic, columns, event_time, time_unit FROM kappa_streams WHERE name = 'nested';
SELECT key, value FROM kappa_streams, jsonb_each(paths)
WHERE name = 'nested' ORDER BY key;

-- Domains and enums over scalars are accepted.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN celsius AS float8 CHECK (VALUE > -273.15);
SELECT kappa_create_stream('typed', brokers => '127.0.0.1:9092',
	columns => 'm mood, t celsius, d date, i interval, a inet');
SELECT columns FROM kappa_streams WHERE name = 'typed';

-- The settings a worker will use: what kappa derives, then the options.
SELECT setting, value FROM kappa_stream_settings('telemetry')
WHERE setting <> 'bootstrap.servers' ORDER BY setting;

SELECT name FROM kappa_streams ORDER BY name;

-- Dropping removes every catalog row of the stream.
SELECT kappa_drop_stream('typed');
SELECT kappa_drop_stream('nested');
SELECT kappa_drop_stream('orders');
SELECT name FROM kappa_streams ORDER BY name;
SELECT count(*) AS orphan_columns FROM kappa.stream_columns c
WHERE NOT EXISTS (SELECT FROM kappa.streams s WHERE s.stream_id = c.stream_id);

-- A dropped name can be used again; the stream gets a new identity.
SELECT stream_id AS old_id FROM kappa.streams WHERE name = 'telemetry' \gset
SELECT kappa_drop_stream('telemetry');
SELECT kappa_create_stream('telemetry', brokers => :'broker', columns => 'eventId text');
SELECT stream_id > :old_id AS new_identity FROM kappa.streams WHERE name = 'telemetry';
SELECT kappa_drop_stream('telemetry');
DROP TYPE mood;
DROP DOMAIN celsius;
