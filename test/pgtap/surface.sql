-- The SQL surface: every function is documented and declares what it
-- does; catalog tables are dumped by pg_dump; the views are readable.
BEGIN;
SELECT plan(17);

SELECT has_schema('kappa');
SELECT has_table('kappa', 'streams', 'kappa.streams exists');
SELECT has_table('kappa', 'stream_columns', 'kappa.stream_columns exists');
SELECT has_table('kappa', 'stream_secrets', 'kappa.stream_secrets exists');
SELECT has_view('kappa_streams');
SELECT has_view('kappa_workers');
SELECT has_role('kappa_admin');

SELECT is_empty($$
	SELECT p.oid::regprocedure::text FROM pg_proc p
	JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'kappa'
	WHERE obj_description(p.oid, 'pg_proc') IS NULL$$,
	'every function of the extension has a comment');

SELECT is_empty($$
	SELECT p.oid::regprocedure::text FROM pg_proc p
	JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'kappa'
	WHERE p.proname IN ('kappa_create_stream', 'kappa_alter_stream', 'kappa_drop_stream', 'kappa_produce', 'kappa_peek',
						'kappa_feed', 'kappa_accept_gap', 'kappa_log_ends', 'kappa_create_sink', 'kappa_drop_sink',
						'kappa_retry_dead_letters')
	  AND p.provolatile <> 'v'$$,
	'functions with side effects are VOLATILE');

SELECT is_empty($$
	SELECT p.oid::regprocedure::text FROM pg_proc p
	JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'kappa'
	WHERE p.prosecdef AND NOT EXISTS (
		SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')$$,
	'any SECURITY DEFINER function pins its search_path');

SELECT set_eq($$
	SELECT c.relname::text FROM pg_extension e, unnest(e.extconfig) t(oid)
	JOIN pg_class c ON c.oid = t.oid WHERE e.extname = 'kappa'$$,
	ARRAY['streams', 'streams_stream_id_seq', 'stream_columns', 'stream_secrets',
		  'views', 'views_view_id_seq', 'partitions', 'view_partitions', 'archive_files',
		  'dead_letters', 'late_events', 'gaps', 'view_gaps', 'sinks', 'sinks_sink_id_seq', 'sink_outbox', 'zz_dump_sentinel'],
	'pg_dump keeps the catalog and the workers'' positions, dead letters and manifest');

SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'kappa.stream_secrets'::regclass),
		  'row level security guards the secrets');

SELECT is((SELECT format('%s %s %s', evtevent, evtenabled, evtfoid::regproc)
		   FROM pg_event_trigger WHERE evtname = 'kappa_sql_drop'),
		  'sql_drop O kappa.ddl_sql_drop',
		  'the event trigger kappa_sql_drop follows plain DROPs of kappa''s relations');

-- kappa's aggregates, and those compile.c rewrites Postgres's into: a
-- view merges and stores partial states, so each one combines,
-- serializes and finalizes without changing its state.
SELECT set_eq($$
	SELECT a.aggfnoid::regprocedure::text FROM pg_aggregate a
	JOIN pg_depend d ON d.objid = a.aggfnoid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'kappa'$$,
	ARRAY['kappa_count_distinct(anyelement)', 'kappa_collect_set(anyelement)',
		  'kappa_collect_list(anyelement)', 'kappa_first(anyelement,timestamp with time zone)',
		  'kappa_last(anyelement,timestamp with time zone)', 'kappa_approx_count_distinct(anyelement)',
		  'kappa_sum_distinct(smallint)', 'kappa_sum_distinct(integer)', 'kappa_sum_distinct(bigint)',
		  'kappa_sum_distinct(numeric)', 'kappa_sum_distinct(real)', 'kappa_sum_distinct(double precision)',
		  'kappa_sum_distinct(money)', 'kappa_sum_distinct(interval)',
		  'kappa_avg_distinct(smallint)', 'kappa_avg_distinct(integer)', 'kappa_avg_distinct(bigint)',
		  'kappa_avg_distinct(numeric)', 'kappa_avg_distinct(real)', 'kappa_avg_distinct(double precision)',
		  'kappa_avg_distinct(interval)',
		  'kappa_string_agg(text,text)', 'kappa_string_agg(bytea,bytea)',
		  'kappa_string_agg_distinct(text,text)', 'kappa_string_agg_distinct(bytea,bytea)',
		  'kappa_percentile_cont(double precision,double precision)',
		  'kappa_percentile_cont(interval,double precision)',
		  'kappa_percentile_disc(anyelement,double precision)',
		  'kappa_percentile_cont(double precision,double precision[])',
		  'kappa_percentile_cont(interval,double precision[])',
		  'kappa_percentile_disc(anyelement,double precision[])'],
	'the extension''s aggregates');

SELECT is_empty($$
	SELECT a.aggfnoid::regprocedure::text FROM pg_aggregate a
	JOIN pg_depend d ON d.objid = a.aggfnoid AND d.deptype = 'e'
	JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'kappa'
	WHERE a.aggcombinefn = 0 OR a.aggfinalmodify <> 'r'
		OR (a.aggtranstype = 'internal'::regtype AND (a.aggserialfn = 0 OR a.aggdeserialfn = 0))$$,
	'every aggregate of the extension can run in a view: combine, serialize, read-only final');

SELECT function_returns('kappa_retry_dead_letters', ARRAY['text', 'timestamp with time zone',
		'timestamp with time zone', 'interval'], 'record',
	'kappa_retry_dead_letters(stream, since, until, timeout) returns (applied, late, still_dead)');

SELECT ok(NOT has_function_privilege('public', 'kappa_retry_dead_letters(text, timestamptz, timestamptz, interval)', 'EXECUTE')
		  AND has_function_privilege('kappa_admin', 'kappa_retry_dead_letters(text, timestamptz, timestamptz, interval)', 'EXECUTE'),
		  'kappa_retry_dead_letters is for kappa_admin members, not PUBLIC');

SELECT * FROM finish();
ROLLBACK;
