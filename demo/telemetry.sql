-- demo/telemetry.sql: the demo's stream and its simulated IoT producer.
--
-- The events follow the seed document's schema: eventId, deviceId, userId,
-- eventType, eventTimestamp, temperature, humidity, pressure, metadata.
-- Readings are nested under "data", as many devices send them, and older
-- firmware says "temp": the stream's paths read both.
--
-- psql variable: broker (the bootstrap address).

CREATE EXTENSION IF NOT EXISTS kappa;

SELECT kappa_create_stream(
	name       => 'telemetry',
	topic      => 'telemetry',
	brokers    => :'broker',
	columns    => 'eventId text, deviceId text, userId text, eventType text,
	               eventTimestamp timestamptz, temperature float8,
	               humidity float8, pressure float8, metadata jsonb',
	paths      => '{"temperature": ["data.temperature", "data.temp"],
	                "humidity": "data.humidity", "pressure": "data.pressure"}',
	event_time => 'eventTimestamp',
	watermark  => '10 minutes',
	dedup_key  => 'eventId'
);

-- Produce n simulated events from 500 devices and 100 users, keyed by
-- device (so each device's events stay in order in one partition), with
-- event times up to a few seconds out of order.  Returns how many events
-- went to each partition.
CREATE FUNCTION demo_produce(n int)
RETURNS TABLE (partition int, events bigint)
LANGUAGE sql AS $$
	WITH events AS (
		SELECT format('device_%s', lpad((random() * 499)::int::text, 3, '0')) AS device,
			g
		FROM generate_series(1, n) g
	)
	SELECT p.partition, count(*)
	FROM events e,
		LATERAL (SELECT jsonb_build_object(
			'eventId', gen_random_uuid(),
			'deviceId', e.device,
			'userId', format('user_%s', lpad((random() * 99)::int::text, 3, '0')),
			'eventType', (ARRAY['reading', 'reading', 'reading', 'alert', 'heartbeat'])[1 + (random() * 4)::int],
			'eventTimestamp', to_char((clock_timestamp() - random() * interval '5 seconds') AT TIME ZONE 'UTC',
									  'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
			'data', CASE WHEN random() < 0.1
				THEN jsonb_build_object('temp', round((15 + random() * 15)::numeric, 2))
				ELSE jsonb_build_object('temperature', round((15 + random() * 15)::numeric, 2),
										'humidity', round((30 + random() * 40)::numeric, 1),
										'pressure', round((990 + random() * 40)::numeric, 1))
				END,
			'metadata', jsonb_build_object('firmware', '1.' || (random() * 3)::int)) AS payload) j,
		LATERAL kappa_produce('telemetry', j.payload::text, e.device) p
	GROUP BY p.partition
	ORDER BY p.partition
$$;

-- The seed's three views, kept live by the stream's worker, and a fourth
-- that enriches events from a table.

-- 1. Five-minute tumbling metrics per device.
SELECT kappa_create_view('device_metrics', $$
	SELECT deviceId, w.window_start, w.window_end,
		count(*) AS eventCount,
		round(avg(temperature)::numeric, 2) AS avgTemp,
		max(temperature) AS maxTemp, min(temperature) AS minTemp,
		round(stddev(temperature)::numeric, 2) AS stddevTemp,
		round(avg(humidity)::numeric, 1) AS avgHumidity,
		round(avg(pressure)::numeric, 1) AS avgPressure,
		array_agg(DISTINCT eventType) AS eventTypes
	FROM telemetry, kappa_tumble(eventTimestamp, '5 minutes') w
	GROUP BY deviceId, w.window_start, w.window_end $$);

-- 2. Thirty-minute sessions per user.
SELECT kappa_create_view('user_sessions', $$
	SELECT userId, w.window_start AS sessionStart, w.window_end AS sessionEnd,
		count(*) AS sessionEvents,
		count(DISTINCT deviceId) AS devicesUsed,
		kappa_first(eventType, eventTimestamp) AS firstEvent,
		kappa_last(eventType, eventTimestamp) AS lastEvent
	FROM telemetry, kappa_session(eventTimestamp, '30 minutes') w
	GROUP BY userId, w.window_start, w.window_end $$);

-- 3. Running totals per device.
SELECT kappa_create_view('device_totals', $$
	SELECT deviceId, count(*) AS totalEvents,
		kappa_approx_count_distinct(userId) AS uniqueUsers,
		round(avg(temperature)::numeric, 2) AS lifetimeAvgTemp
	FROM telemetry
	GROUP BY deviceId $$);

-- 4. Enrichment: each event's device looked up in an ordinary table (by
-- its primary key) when the event is processed, and metrics per site.
CREATE TABLE devices (
	device_id text PRIMARY KEY,
	site text NOT NULL,
	model text NOT NULL
);
INSERT INTO devices
SELECT format('device_%s', lpad(i::text, 3, '0')),
	(ARRAY['plant-north', 'plant-south', 'warehouse', 'lab'])[1 + i % 4],
	(ARRAY['TX-100', 'TX-200'])[1 + i % 2]
FROM generate_series(0, 499) i;

SELECT kappa_create_view('site_metrics', $$
	SELECT d.site, w.window_start, w.window_end,
		count(*) AS events,
		count(DISTINCT t.deviceId) AS devices,
		round(avg(t.temperature)::numeric, 2) AS avgTemp
	FROM telemetry t
	JOIN devices d ON d.device_id = t.deviceId,
	kappa_tumble(t.eventTimestamp, '5 minutes') w
	GROUP BY d.site, w.window_start, w.window_end $$);
