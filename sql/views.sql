--
-- views: defining and dropping views, and every shape a view may not
-- have, refused at create time with the construct named.
--
SELECT kappa_create_stream('vs', brokers => '127.0.0.1:9092',
	columns => 'dev text, usr text, kind text, ts timestamptz NOT NULL, v numeric, f float8',
	event_time => 'ts');

-- A view is a relation: its columns are the select list's, with its types.
SELECT kappa_create_view('vs_metrics', $$
	SELECT dev, w.window_start, w.window_end, count(*) AS n, avg(v) AS a, max(f) AS hi
	FROM vs, kappa_tumble(ts, '5 minutes') w
	WHERE kind <> 'heartbeat'
	GROUP BY dev, w.window_start, w.window_end $$);
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'vs_metrics'::regclass AND attnum > 0 ORDER BY attnum;
SELECT name, stream, options FROM kappa_views;
SELECT count(*) AS rows_yet FROM vs_metrics;

-- Schema-qualified names and options.
CREATE SCHEMA dash;
SELECT kappa_create_view('dash.per_user', $$ SELECT usr, count(*) AS n FROM vs GROUP BY usr $$,
	'{"start": "latest"}');
SELECT name, options FROM kappa_views ORDER BY name;

-- The same query runs as batch SQL over a table of the same columns.
CREATE SCHEMA batch;
CREATE TABLE batch.vs (dev text, usr text, kind text, ts timestamptz, v numeric, f float8);
INSERT INTO batch.vs VALUES ('d1', 'u1', 'reading', '2026-01-01 00:01:00+00', 1, 1),
	('d1', 'u1', 'reading', '2026-01-01 00:07:00+00', 3, 5), ('d2', 'u2', 'heartbeat', '2026-01-01 00:02:00+00', 9, 9);
SET search_path = batch, public;
SELECT dev, w.window_start, w.window_end, count(*) AS n, avg(v) AS a, max(f) AS hi
	FROM vs, kappa_tumble(ts, '5 minutes') w
	WHERE kind <> 'heartbeat'
	GROUP BY dev, w.window_start, w.window_end ORDER BY 1, 2;
SELECT w.* FROM kappa_hop('2026-01-01 00:07:00+00', '10 minutes', '5 minutes') w;
RESET search_path;

\x on
-- Shapes a view cannot have.
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs GROUP BY dev ORDER BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs GROUP BY dev LIMIT 5')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs GROUP BY dev ORDER BY n DESC LIMIT 2 OFFSET 1')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs GROUP BY dev ORDER BY n DESC LIMIT 0')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, w.window_start, count(*) AS n FROM vs, kappa_session(ts, ''5 minutes'') w GROUP BY dev, w.window_start ORDER BY n DESC LIMIT 3')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS kappa_rank FROM vs GROUP BY dev ORDER BY 2 LIMIT 1')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT vs.dev, count(*) AS n FROM vs JOIN pg_class c ON true GROUP BY vs.dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT vs.dev, count(*) AS n FROM vs, pg_class c GROUP BY vs.dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM (SELECT * FROM vs) s GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs WHERE dev IN (SELECT relname FROM pg_class) GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n, rank() OVER () AS r FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs GROUP BY dev HAVING count(*) > random()')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT DISTINCT dev FROM vs')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev FROM vs')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'WITH x AS (SELECT 1) SELECT dev, count(*) AS n FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs GROUP BY dev UNION SELECT dev, 1 FROM vs')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT (random() * 10)::int AS k, count(*) AS n FROM vs GROUP BY 1')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs WHERE random() < 0.5 GROUP BY dev')$$);
-- Aggregates kappa cannot combine, or not in that form: each refusal
-- names what to use instead.
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, json_agg(usr) AS s FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, string_agg(usr, dev) AS s FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, string_agg(usr, '','' ORDER BY usr DESC) AS s FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, string_agg(usr, '','' ORDER BY ts) AS s FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, array_agg(v ORDER BY v NULLS FIRST) AS s FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, percentile_cont(0.5) WITHIN GROUP (ORDER BY v DESC) AS p FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, percentile_disc(ARRAY[0.5, 1.5]) WITHIN GROUP (ORDER BY v) AS p FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, usr, percentile_disc(length(usr) / 100.0) WITHIN GROUP (ORDER BY v) AS p FROM vs GROUP BY dev, usr')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, percentile_cont(1.5) WITHIN GROUP (ORDER BY f) AS p FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, mode() WITHIN GROUP (ORDER BY usr) AS m FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, rank(''u1'') WITHIN GROUP (ORDER BY usr) AS r FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, max(DISTINCT v) AS u FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, sum(DISTINCT f ORDER BY f DESC) AS u FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, kappa_percentile_disc(usr, 2) AS p FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, percentile_disc(0.5) WITHIN GROUP (ORDER BY point(f, f)) AS p FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, array_agg(DISTINCT point(1, 2)) AS u FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) FROM vs GROUP BY dev, 2')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT count(*) AS n FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs, kappa_tumble(ts, ''5 minutes'') w GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, w.window_start, count(*) AS n FROM vs, kappa_tumble(ts, ts - ts) w GROUP BY dev, w.window_start')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, w.window_start, count(*) AS n FROM vs, kappa_tumble(ts, now() - now()) w GROUP BY dev, w.window_start')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, w.window_start, count(*) AS n FROM vs, kappa_tumble(ts, ''1 month'') w GROUP BY dev, w.window_start')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, w.window_start, count(*) AS n FROM vs, kappa_hop(ts, ''1 day'', ''1 second'') w GROUP BY dev, w.window_start')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, w.g, count(*) AS n FROM vs, generate_series(1, 2) w(g) GROUP BY dev, w.g')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM nosuch GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM public.vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT nosuch, count(*) AS n FROM vs GROUP BY nosuch')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs GROUP BY dev; DROP TABLE batch.vs')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'DELETE FROM batch.vs')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('vs_metrics', 'SELECT dev, count(*) AS n FROM vs GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs GROUP BY dev', '{"start": true}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs GROUP BY dev', '{"strat": "latest"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_view('e', 'SELECT dev, count(*) AS n FROM vs WHERE ts < now() GROUP BY dev')$$);
SELECT * FROM expect_error($$SELECT kappa_drop_view('batch.vs')$$);
SELECT * FROM expect_error($$SELECT kappa_drop_view('nosuch')$$);
SELECT * FROM expect_error($$SELECT kappa_drop_stream('vs')$$);
SELECT * FROM expect_error($$SELECT kappa_session('2026-01-01', '5 minutes')$$);
\x off

-- What kappa runs instead of string_agg, sum(DISTINCT), avg(DISTINCT) and
-- the percentiles: the same result types, and the stored query names
-- kappa's combinable aggregates.
SELECT kappa_create_view('vs_aggs', $$
	SELECT dev, string_agg(usr, ', ') AS s, string_agg(usr, ', ' ORDER BY usr) AS so,
		string_agg(DISTINCT usr, '|') AS sd, string_agg(convert_to(usr, 'UTF8'), '\x00'::bytea) AS sb,
		sum(DISTINCT v) AS sv, avg(DISTINCT v) AS av, sum(DISTINCT length(usr)) AS si,
		avg(DISTINCT length(usr)::int8) AS ai, sum(DISTINCT f) AS sf, avg(DISTINCT f::float4) AS af,
		sum(DISTINCT ts - '2026-01-01') AS siv,
		percentile_cont(0.5) WITHIN GROUP (ORDER BY f) AS p50,
		percentile_cont(0.9) WITHIN GROUP (ORDER BY ts - '2026-01-01') AS p90,
		percentile_disc(0.25) WITHIN GROUP (ORDER BY v) AS pd,
		percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY f) AS pca,
		percentile_disc(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY usr) AS pda,
		array_agg(v ORDER BY v) AS l, count(DISTINCT usr ORDER BY usr) AS cd
	FROM vs GROUP BY dev $$);
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'vs_aggs'::regclass AND attnum > 0 ORDER BY attnum;
SELECT regexp_replace(definition, 'stream_[0-9]+', 'stream_N') AS definition FROM kappa.views WHERE view_name = 'vs_aggs';
SELECT kappa_drop_view('vs_aggs');

-- Nothing was left behind by the errors; the injected DROP never ran.
SELECT count(*) AS views FROM kappa.views;
SELECT count(*) AS batch_rows FROM batch.vs;

SELECT kappa_drop_view('dash.per_user');
SELECT kappa_drop_stream('vs', cascade => true);
SELECT count(*) AS views_left FROM kappa.views;
SELECT count(*) AS tables_left FROM pg_class WHERE relnamespace = 'kappa'::regnamespace AND relname ~ '^(view|stream)_[0-9]';
DROP SCHEMA dash, batch CASCADE;
