--
-- aggfuncs: kappa's combinable aggregates (src/agg/aggfuncs.c) against
-- independent oracles in plain SQL, serially, through the combine +
-- serialize/deserialize path (partitionwise and parallel aggregation), and
-- as window aggregates (whose final functions run again and again on the
-- same state).
--
--   kappa_count_distinct(x)        count(DISTINCT x)
--   kappa_collect_set(x)           array_agg(DISTINCT x ORDER BY x) FILTER (WHERE x IS NOT NULL)
--   kappa_collect_list(x)          array_agg(x ORDER BY x)
--   kappa_first(v, ts)             (array_agg(v ORDER BY ts, v) FILTER (WHERE ts IS NOT NULL))[1]
--   kappa_last(v, ts)              (array_agg(v ORDER BY ts DESC, v) FILTER (WHERE ts IS NOT NULL))[1]
--   kappa_approx_count_distinct(x) count(DISTINCT x), exactly below 1537, else within 2%
--   kappa_sum_distinct(x)          sum(DISTINCT x), its type and value
--   kappa_avg_distinct(x)          avg(DISTINCT x), its type and value
--   kappa_string_agg(x, d)         string_agg(x, d ORDER BY x)
--   kappa_string_agg_distinct(x, d) string_agg(DISTINCT x, d ORDER BY x)
--   kappa_percentile_cont(x, f)    percentile_cont(f) WITHIN GROUP (ORDER BY x)
--   kappa_percentile_disc(x, f)    percentile_disc(f) WITHIN GROUP (ORDER BY x)
--
CREATE SCHEMA kd_aggs;
SET search_path = kd_aggs, public;

-- Every aggregate can be combined, serialized, and its final function
-- leaves the state alone.
SELECT a.aggfnoid::regprocedure AS aggregate, a.aggtranstype::regtype AS state,
	a.aggcombinefn::regproc AS combine, a.aggserialfn::regproc AS serialize,
	a.aggdeserialfn::regproc AS deserialize, a.aggfinalfn::regproc AS final,
	a.aggfinalextra AS extra, a.aggfinalmodify AS modify, p.proparallel AS parallel
FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
WHERE p.proname LIKE 'kappa\_%'
ORDER BY 1::text;

-- Small cases, by eye.
SELECT kappa_count_distinct(x), count(DISTINCT x),
	kappa_collect_set(x), kappa_collect_list(x),
	kappa_approx_count_distinct(x)
FROM (VALUES (3), (1), (NULL), (3), (2), (NULL)) v(x);
SELECT kappa_collect_set(x), kappa_collect_list(x)
FROM (VALUES ('b' COLLATE "C"), ('B'), ('a'), (NULL), ('b')) v(x);
SELECT kappa_first(v, ts) AS first, kappa_last(v, ts) AS last
FROM (VALUES (5, '2026-01-01 00:00+00'::timestamptz), (3, '2026-01-01 00:00+00'),
	(NULL, '2026-01-01 00:00+00'), (9, '2026-01-01 00:05+00'), (7, '2026-01-01 00:05+00'),
	(0, NULL)) v(v, ts);
-- null values are candidates, larger than any value in a tie
SELECT kappa_first(v, ts) AS first, kappa_last(v, ts) AS last
FROM (VALUES (NULL::int, '2026-01-01 00:00+00'::timestamptz), (4, '2026-01-01 00:01+00'),
	(NULL, '2026-01-01 00:02+00')) v(v, ts);

-- Empty input: 0 for the counts, NULL for the others; all-null input.
SELECT kappa_count_distinct(x), kappa_collect_set(x), kappa_collect_list(x),
	kappa_first(x, now()), kappa_last(x, now()), kappa_approx_count_distinct(x)
FROM (SELECT 1 WHERE false) v(x);
SELECT kappa_count_distinct(x), kappa_collect_set(x), kappa_collect_list(x),
	kappa_first(x, NULL), kappa_last(x, NULL), kappa_approx_count_distinct(x)
FROM (VALUES (NULL::text), (NULL)) v(x);
SELECT k, kappa_count_distinct(x), kappa_collect_list(x)
FROM (SELECT 1, 2 WHERE false) v(k, x) GROUP BY k;

-- Of values that the type's order calls equal, the result keeps the one
-- with the smallest binary image, whatever the order of the input.
SELECT kappa_collect_set(x) FROM (VALUES (1.00), (1.0), (1), (2.5)) v(x);
SELECT kappa_collect_set(x) FROM (VALUES (2.5), (1), (1.0), (1.00)) v(x);
SELECT kappa_collect_list(x) FROM (VALUES (1.0), (1), (1.00)) v(x);
SELECT kappa_collect_list(x) FROM (VALUES (1.00), (1), (1.0)) v(x);
SELECT kappa_first(x, '2026-01-01') FROM (VALUES (1.0), (1), (1.00)) v(x);
SELECT kappa_first(x, '2026-01-01') FROM (VALUES (1.00), (1.0), (1)) v(x);

-- numeric's own hash ignores the sign; the approximation does not.
SELECT count(DISTINCT x), kappa_count_distinct(x), kappa_approx_count_distinct(x)
FROM (VALUES ('NaN'::numeric), ('Infinity'), ('-Infinity'), (0), (-0.0), (1), (-1),
	(1.00), (-2.5), (2.5)) v(x);

-- Types without a hash opclass whose btree equality is binary equality
-- (money, bit) are hashed by their binary image.
SELECT count(DISTINCT m), kappa_count_distinct(m), kappa_collect_set(m),
	kappa_approx_count_distinct(m)
FROM (VALUES ('$1.00'::money), ('$2'), ('$1'), (NULL), ('-$1')) v(m);
SELECT count(DISTINCT b), kappa_count_distinct(b), kappa_collect_set(b),
	kappa_approx_count_distinct(b)
FROM (VALUES (B'101'), (B'1010'), (B'101'), (B'0')) v(b);

-- Types the aggregates cannot take fail at the first call, clearly.
SELECT kappa_count_distinct(p) FROM (VALUES (point '(1,2)')) v(p);
SELECT kappa_collect_set(x) FROM (VALUES ('a'::tsvector)) v(x);
SELECT kappa_collect_list(j) FROM (VALUES ('{}'::json)) v(j);
SELECT kappa_first(j, now()) FROM (VALUES ('{}'::json)) v(j);
SELECT kappa_approx_count_distinct(p) FROM (VALUES (point '(1,2)')) v(p);

-- A table of events over several types, with duplicates, nulls and
-- ties in time; partitioned, so that partitionwise aggregation can make
-- partial states below.
CREATE TABLE ev (
	id int, k int,
	i int, t text COLLATE "C", n numeric, ts timestamptz, u uuid,
	at timestamptz) PARTITION BY RANGE (id);
CREATE TABLE ev1 PARTITION OF ev FOR VALUES FROM (MINVALUE) TO (1200);
CREATE TABLE ev2 PARTITION OF ev FOR VALUES FROM (1200) TO (2500);
CREATE TABLE ev3 PARTITION OF ev FOR VALUES FROM (2500) TO (3700);
CREATE TABLE ev4 PARTITION OF ev FOR VALUES FROM (3700) TO (MAXVALUE);
INSERT INTO ev
SELECT id, id % 13,
	CASE WHEN id % 11 = 0 THEN NULL ELSE (id * 7919) % 600 - 300 END,
	CASE WHEN id % 17 = 0 THEN NULL ELSE 'v' || (id * 31) % 250 || CASE WHEN id % 3 = 0 THEN 'Z' ELSE 'a' END END,
	CASE WHEN id % 19 = 0 THEN NULL ELSE ((id * 13) % 700 - 350) / 8.0 END,
	CASE WHEN id % 23 = 0 THEN NULL ELSE '2026-01-01 00:00+00'::timestamptz + ((id * 17) % 500) * interval '1 second' END,
	CASE WHEN id % 29 = 0 THEN NULL ELSE md5(((id * 3) % 400)::text)::uuid END,
	CASE WHEN id % 31 = 0 THEN NULL ELSE '2026-01-01 00:00+00'::timestamptz + ((id * 7) % 40) * interval '1 minute' END
FROM generate_series(1, 5000) id;
-- groups with only nulls, and a group with no time at all
INSERT INTO ev VALUES (5001, 100, NULL, NULL, NULL, NULL, NULL, '2026-01-01'),
	(5002, 100, NULL, NULL, NULL, NULL, NULL, '2026-01-02'),
	(5003, 101, 1, 'x', 1, '2026-01-01', NULL, NULL);
ANALYZE ev;

-- The oracles, per group.
CREATE TABLE ev_oracle AS
SELECT k,
	count(DISTINCT i) AS cd_i, count(DISTINCT t) AS cd_t, count(DISTINCT n) AS cd_n,
	count(DISTINCT ts) AS cd_ts, count(DISTINCT u) AS cd_u,
	array_agg(DISTINCT i ORDER BY i) FILTER (WHERE i IS NOT NULL) AS cs_i,
	array_agg(DISTINCT t ORDER BY t) FILTER (WHERE t IS NOT NULL) AS cs_t,
	array_agg(DISTINCT n ORDER BY n) FILTER (WHERE n IS NOT NULL) AS cs_n,
	array_agg(DISTINCT ts ORDER BY ts) FILTER (WHERE ts IS NOT NULL) AS cs_ts,
	array_agg(DISTINCT u ORDER BY u) FILTER (WHERE u IS NOT NULL) AS cs_u,
	array_agg(i ORDER BY i) AS cl_i, array_agg(t ORDER BY t) AS cl_t,
	array_agg(n ORDER BY n) AS cl_n, array_agg(ts ORDER BY ts) AS cl_ts,
	array_agg(u ORDER BY u) AS cl_u,
	(array_agg(i ORDER BY at, i) FILTER (WHERE at IS NOT NULL))[1] AS f_i,
	(array_agg(t ORDER BY at, t) FILTER (WHERE at IS NOT NULL))[1] AS f_t,
	(array_agg(n ORDER BY at, n) FILTER (WHERE at IS NOT NULL))[1] AS f_n,
	(array_agg(ts ORDER BY at, ts) FILTER (WHERE at IS NOT NULL))[1] AS f_ts,
	(array_agg(u ORDER BY at, u) FILTER (WHERE at IS NOT NULL))[1] AS f_u,
	(array_agg(i ORDER BY at DESC, i) FILTER (WHERE at IS NOT NULL))[1] AS l_i,
	(array_agg(t ORDER BY at DESC, t) FILTER (WHERE at IS NOT NULL))[1] AS l_t,
	(array_agg(n ORDER BY at DESC, n) FILTER (WHERE at IS NOT NULL))[1] AS l_n,
	(array_agg(ts ORDER BY at DESC, ts) FILTER (WHERE at IS NOT NULL))[1] AS l_ts,
	(array_agg(u ORDER BY at DESC, u) FILTER (WHERE at IS NOT NULL))[1] AS l_u
FROM ev GROUP BY k;

-- The same with kappa's aggregates, as a view so that each way of running
-- it below is the same query.
CREATE VIEW ev_kappa AS
SELECT k,
	kappa_count_distinct(i) AS cd_i, kappa_count_distinct(t) AS cd_t,
	kappa_count_distinct(n) AS cd_n, kappa_count_distinct(ts) AS cd_ts,
	kappa_count_distinct(u) AS cd_u,
	kappa_collect_set(i) AS cs_i, kappa_collect_set(t) AS cs_t,
	kappa_collect_set(n) AS cs_n, kappa_collect_set(ts) AS cs_ts,
	kappa_collect_set(u) AS cs_u,
	kappa_collect_list(i) AS cl_i, kappa_collect_list(t) AS cl_t,
	kappa_collect_list(n) AS cl_n, kappa_collect_list(ts) AS cl_ts,
	kappa_collect_list(u) AS cl_u,
	kappa_first(i, at) AS f_i, kappa_first(t, at) AS f_t, kappa_first(n, at) AS f_n,
	kappa_first(ts, at) AS f_ts, kappa_first(u, at) AS f_u,
	kappa_last(i, at) AS l_i, kappa_last(t, at) AS l_t, kappa_last(n, at) AS l_n,
	kappa_last(ts, at) AS l_ts, kappa_last(u, at) AS l_u,
	kappa_approx_count_distinct(i) AS a_i, kappa_approx_count_distinct(t) AS a_t,
	kappa_approx_count_distinct(n) AS a_n, kappa_approx_count_distinct(ts) AS a_ts,
	kappa_approx_count_distinct(u) AS a_u
FROM ev GROUP BY k;

-- Rows of one relation (kappa's results) that differ from the oracle:
-- each column that differs is named.  Arrays compare element by element
-- with the types' equality, nulls equal to nulls.
CREATE FUNCTION ev_diff(results regclass) RETURNS TABLE (k int, differs text)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format($q$
	SELECT k, concat_ws(' ',
		CASE WHEN r.cd_i IS NULL THEN 'missing' END,
		CASE WHEN r.cd_i IS DISTINCT FROM o.cd_i THEN 'cd_i' END,
		CASE WHEN r.cd_t IS DISTINCT FROM o.cd_t THEN 'cd_t' END,
		CASE WHEN r.cd_n IS DISTINCT FROM o.cd_n THEN 'cd_n' END,
		CASE WHEN r.cd_ts IS DISTINCT FROM o.cd_ts THEN 'cd_ts' END,
		CASE WHEN r.cd_u IS DISTINCT FROM o.cd_u THEN 'cd_u' END,
		CASE WHEN r.cs_i IS DISTINCT FROM o.cs_i THEN 'cs_i' END,
		CASE WHEN r.cs_t IS DISTINCT FROM o.cs_t THEN 'cs_t' END,
		CASE WHEN r.cs_n IS DISTINCT FROM o.cs_n THEN 'cs_n' END,
		CASE WHEN r.cs_ts IS DISTINCT FROM o.cs_ts THEN 'cs_ts' END,
		CASE WHEN r.cs_u IS DISTINCT FROM o.cs_u THEN 'cs_u' END,
		CASE WHEN r.cl_i IS DISTINCT FROM o.cl_i THEN 'cl_i' END,
		CASE WHEN r.cl_t IS DISTINCT FROM o.cl_t THEN 'cl_t' END,
		CASE WHEN r.cl_n IS DISTINCT FROM o.cl_n THEN 'cl_n' END,
		CASE WHEN r.cl_ts IS DISTINCT FROM o.cl_ts THEN 'cl_ts' END,
		CASE WHEN r.cl_u IS DISTINCT FROM o.cl_u THEN 'cl_u' END,
		CASE WHEN r.f_i IS DISTINCT FROM o.f_i THEN 'f_i' END,
		CASE WHEN r.f_t IS DISTINCT FROM o.f_t THEN 'f_t' END,
		CASE WHEN r.f_n IS DISTINCT FROM o.f_n THEN 'f_n' END,
		CASE WHEN r.f_ts IS DISTINCT FROM o.f_ts THEN 'f_ts' END,
		CASE WHEN r.f_u IS DISTINCT FROM o.f_u THEN 'f_u' END,
		CASE WHEN r.l_i IS DISTINCT FROM o.l_i THEN 'l_i' END,
		CASE WHEN r.l_t IS DISTINCT FROM o.l_t THEN 'l_t' END,
		CASE WHEN r.l_n IS DISTINCT FROM o.l_n THEN 'l_n' END,
		CASE WHEN r.l_ts IS DISTINCT FROM o.l_ts THEN 'l_ts' END,
		CASE WHEN r.l_u IS DISTINCT FROM o.l_u THEN 'l_u' END,
		-- fewer than 1537 distinct values: the approximation is exact
		CASE WHEN r.a_i IS DISTINCT FROM o.cd_i THEN 'a_i' END,
		CASE WHEN r.a_t IS DISTINCT FROM o.cd_t THEN 'a_t' END,
		CASE WHEN r.a_n IS DISTINCT FROM o.cd_n THEN 'a_n' END,
		CASE WHEN r.a_ts IS DISTINCT FROM o.cd_ts THEN 'a_ts' END,
		CASE WHEN r.a_u IS DISTINCT FROM o.cd_u THEN 'a_u' END)
	FROM ev_oracle o LEFT JOIN %s r USING (k)
	$q$, results);
END
$$;

-- The oracle itself: 15 groups, with nulls and ties.
SELECT count(*) AS groups, max(cd_i) AS most_i, max(cd_t) AS most_t, max(cd_n) AS most_n,
	max(cd_ts) AS most_ts, max(cd_u) AS most_u,
	count(*) FILTER (WHERE cs_i IS NULL) AS no_set,
	count(*) FILTER (WHERE f_i IS NULL) AS no_first
FROM ev_oracle;

-- Serially, as plain aggregation: no group differs.
SET max_parallel_workers_per_gather = 0;
CREATE TABLE ev_serial AS SELECT * FROM ev_kappa;
SELECT count(*) AS groups, count(*) FILTER (WHERE differs <> '') AS differing,
	string_agg(k || ': ' || differs, '; ' ORDER BY k) FILTER (WHERE differs <> '') AS what
FROM ev_diff('ev_serial');

-- Through combine, serialize and deserialize: partial aggregates per
-- partition, finalized together.
SET enable_partitionwise_aggregate = on;
SET enable_hashagg = off;
EXPLAIN (COSTS OFF) SELECT * FROM ev_kappa;
CREATE TABLE ev_partitionwise AS SELECT * FROM ev_kappa;
SELECT count(*) AS groups, count(*) FILTER (WHERE differs <> '') AS differing,
	string_agg(k || ': ' || differs, '; ' ORDER BY k) FILTER (WHERE differs <> '') AS what
FROM ev_diff('ev_partitionwise');
RESET enable_partitionwise_aggregate;
RESET enable_hashagg;

-- As window aggregates: the final functions run after every row on the
-- same growing state, which they must leave as it was.
SELECT id, kappa_count_distinct(x) OVER w AS cd, kappa_collect_set(x) OVER w AS cs,
	kappa_collect_list(x) OVER w AS cl, kappa_first(x, at) OVER w AS f,
	kappa_last(x, at) OVER w AS l, kappa_approx_count_distinct(x) OVER w AS a
FROM (VALUES (1, 'b', '2026-01-01 00:02+00'::timestamptz), (2, 'a', '2026-01-01 00:01+00'),
	(3, NULL, '2026-01-01 00:01+00'), (4, 'b', '2026-01-01 00:00+00'),
	(5, 'c', '2026-01-01 00:03+00')) v(id, x, at)
WINDOW w AS (ORDER BY id);
SELECT count(*) AS rows, bool_and(cd = c) AS count_distinct_ok, bool_and(cs = s) AS set_ok
FROM (SELECT id, kappa_count_distinct(t) OVER w AS cd, kappa_collect_set(t) OVER w AS cs,
		(SELECT count(DISTINCT e2.t) FROM ev e2 WHERE e2.id <= e.id AND e2.id <= 300) AS c,
		(SELECT array_agg(DISTINCT e2.t ORDER BY e2.t) FROM ev e2 WHERE e2.id <= e.id AND e2.id <= 300 AND e2.t IS NOT NULL) AS s
	FROM ev e WHERE id <= 300 WINDOW w AS (ORDER BY id)) x;

-- Parallel aggregation over 200,000 rows: partial states in the workers
-- (and the leader), serialized, deserialized and combined at the top.
CREATE TABLE big AS
SELECT id, id % 7 AS k, id % 100000 AS a,
	CASE WHEN id % 1000 = 0 THEN NULL ELSE 't' || (id * 7) % 30011 END AS t,
	(id % 977) / 4.0 AS n,
	'2026-01-01 00:00+00'::timestamptz + (id % 5003) * interval '1 second' AS ts,
	md5((id % 3001)::text)::uuid AS u,
	CASE WHEN id % 997 = 0 THEN NULL
		ELSE '2026-01-01 00:00+00'::timestamptz + (id % 101) * interval '1 minute' END AS at
FROM generate_series(1, 200000) id;
ALTER TABLE big ALTER COLUMN t TYPE text COLLATE "C";
ANALYZE big;

-- kappa's aggregates over all rows, and per group.
CREATE VIEW big_all AS
SELECT NULL::bigint AS k,
	kappa_count_distinct(a) AS cd_a, kappa_count_distinct(t) AS cd_t,
	kappa_collect_set(t) AS cs_t, kappa_collect_set(n) AS cs_n, kappa_collect_set(u) AS cs_u,
	kappa_collect_list(a) AS cl_a, kappa_collect_list(t) AS cl_t, kappa_collect_list(ts) AS cl_ts,
	kappa_first(t, at) AS f_t, kappa_first(u, at) AS f_u,
	kappa_last(n, at) AS l_n, kappa_last(ts, at) AS l_ts,
	kappa_approx_count_distinct(a) AS a_a, kappa_approx_count_distinct(t) AS a_t
FROM big;
CREATE VIEW big_by_k AS
SELECT k,
	kappa_count_distinct(a) AS cd_a, kappa_count_distinct(t) AS cd_t,
	kappa_collect_set(t) AS cs_t, kappa_collect_set(n) AS cs_n, kappa_collect_set(u) AS cs_u,
	kappa_collect_list(a) AS cl_a, kappa_collect_list(t) AS cl_t, kappa_collect_list(ts) AS cl_ts,
	kappa_first(t, at) AS f_t, kappa_first(u, at) AS f_u,
	kappa_last(n, at) AS l_n, kappa_last(ts, at) AS l_ts,
	kappa_approx_count_distinct(a) AS a_a, kappa_approx_count_distinct(t) AS a_t
FROM big GROUP BY k;

-- Serially first.
CREATE TABLE big_serial AS SELECT * FROM big_all UNION ALL SELECT * FROM big_by_k;

-- The serial results equal the oracles.
SELECT count(*) AS groups,
	bool_and(s.cd_a = o.cd_a AND s.cd_t = o.cd_t) AS count_distinct,
	bool_and(s.cs_t = o.cs_t AND s.cs_n = o.cs_n AND s.cs_u = o.cs_u) AS collect_set,
	bool_and(s.cl_a = o.cl_a AND s.cl_t = o.cl_t AND s.cl_ts = o.cl_ts) AS collect_list,
	bool_and(s.f_t = o.f_t AND s.f_u = o.f_u) AS first,
	bool_and(s.l_n = o.l_n AND s.l_ts = o.l_ts) AS last
FROM big_serial s JOIN (
	SELECT k, count(DISTINCT a) AS cd_a, count(DISTINCT t) AS cd_t,
		array_agg(DISTINCT t ORDER BY t) FILTER (WHERE t IS NOT NULL) AS cs_t,
		array_agg(DISTINCT n ORDER BY n) AS cs_n, array_agg(DISTINCT u ORDER BY u) AS cs_u,
		array_agg(a ORDER BY a) AS cl_a, array_agg(t ORDER BY t) AS cl_t,
		array_agg(ts ORDER BY ts) AS cl_ts,
		(array_agg(t ORDER BY at, t) FILTER (WHERE at IS NOT NULL))[1] AS f_t,
		(array_agg(u ORDER BY at, u) FILTER (WHERE at IS NOT NULL))[1] AS f_u,
		(array_agg(n ORDER BY at DESC, n) FILTER (WHERE at IS NOT NULL))[1] AS l_n,
		(array_agg(ts ORDER BY at DESC, ts) FILTER (WHERE at IS NOT NULL))[1] AS l_ts
	FROM big GROUP BY GROUPING SETS ((k), ())) o ON s.k IS NOT DISTINCT FROM o.k;

-- The approximation: 100,000 distinct values in all, within 2%; about
-- 14,300 per group, within 2% too.
SELECT k, cd_a, abs(a_a - cd_a) <= 0.02 * cd_a AS a_within_2pct,
	cd_t, abs(a_t - cd_t) <= 0.02 * cd_t AS t_within_2pct
FROM big_serial ORDER BY k;

-- In parallel (CREATE TABLE AS runs its query in parallel; INSERT does not).
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) CREATE TABLE big_parallel_all AS SELECT * FROM big_all;
CREATE TABLE big_parallel_all AS SELECT * FROM big_all;
EXPLAIN (COSTS OFF) CREATE TABLE big_parallel_by_k AS SELECT * FROM big_by_k;
CREATE TABLE big_parallel_by_k AS SELECT * FROM big_by_k;

-- Identical to the serial results, the approximation included.
SELECT count(*) AS groups,
	bool_and(p.cd_a = s.cd_a AND p.cd_t = s.cd_t) AS count_distinct,
	bool_and(p.cs_t = s.cs_t AND p.cs_n = s.cs_n AND p.cs_u = s.cs_u) AS collect_set,
	bool_and(p.cl_a = s.cl_a AND p.cl_t = s.cl_t AND p.cl_ts = s.cl_ts) AS collect_list,
	bool_and(p.f_t = s.f_t AND p.f_u = s.f_u) AS first,
	bool_and(p.l_n = s.l_n AND p.l_ts = s.l_ts) AS last,
	bool_and(p.a_a = s.a_a AND p.a_t = s.a_t) AS approx_identical
FROM (SELECT * FROM big_parallel_all UNION ALL SELECT * FROM big_parallel_by_k) p
JOIN big_serial s ON p.k IS NOT DISTINCT FROM s.k;

-- The events table, in parallel too.
EXPLAIN (COSTS OFF) CREATE TABLE ev_parallel AS SELECT * FROM ev_kappa;
CREATE TABLE ev_parallel AS SELECT * FROM ev_kappa;
SELECT count(*) AS groups, count(*) FILTER (WHERE differs <> '') AS differing,
	string_agg(k || ': ' || differs, '; ' ORDER BY k) FILTER (WHERE differs <> '') AS what
FROM ev_diff('ev_parallel');

-- The approximation is exact for small sets, per group of 1 to 99
-- distinct values, serially and in parallel.
CREATE TABLE small AS
SELECT g, (g * 1000 + x) % (g * 37 + 1) AS v, 'w' || x % g AS w
FROM generate_series(1, 99) g, generate_series(1, 300) x;
ANALYZE small;
SELECT count(*) AS groups,
	bool_and(kappa_approx_count_distinct = count) AS exact
FROM (SELECT g, kappa_approx_count_distinct(w), count(DISTINCT w) FROM small GROUP BY g) x;
SELECT bool_and(a = c) AS exact_parallel FROM (
	SELECT g, kappa_approx_count_distinct(v) AS a, kappa_count_distinct(v) AS c
	FROM small GROUP BY g) x;

-- sum(DISTINCT), avg(DISTINCT), string_agg and the percentiles.
-- Small cases, by eye, with Postgres's own beside them.
SELECT kappa_sum_distinct(x), sum(DISTINCT x), kappa_avg_distinct(x), avg(DISTINCT x)
FROM (VALUES (3), (1), (NULL), (3), (2), (NULL)) v(x);
SELECT kappa_string_agg(x, ', '), string_agg(x, ', ' ORDER BY x),
	kappa_string_agg_distinct(x, ', '), string_agg(DISTINCT x, ', ' ORDER BY x),
	kappa_string_agg(x, NULL), kappa_string_agg(convert_to(x, 'UTF8'), '\x00'::bytea)
FROM (VALUES ('b' COLLATE "C"), ('B'), ('a'), (NULL), ('b')) v(x);
SELECT kappa_percentile_cont(x, 0.5) AS cont, percentile_cont(0.5) WITHIN GROUP (ORDER BY x),
	kappa_percentile_disc(x, 0.5) AS disc, percentile_disc(0.5) WITHIN GROUP (ORDER BY x),
	kappa_percentile_cont(x, NULL::float8) AS null_fraction
FROM (VALUES (4.0), (1), (NULL), (10), (4.0)) v(x);
-- of values the type's order calls equal (numeric 4.0 and 4), the one
-- with the smallest binary image is taken, whatever the input order;
-- Postgres's own takes either
SELECT kappa_percentile_disc(x, 0.5), kappa_sum_distinct(x) FROM (VALUES (4.0), (1), (4)) v(x);
SELECT kappa_percentile_disc(x, 0.5), kappa_sum_distinct(x) FROM (VALUES (4), (1), (4.0)) v(x);
SELECT kappa_percentile_cont(x, 0.3), percentile_cont(0.3) WITHIN GROUP (ORDER BY x)
FROM (VALUES (interval '1 day'), ('2 hours'), ('7 minutes'), (NULL)) v(x);
-- arrays of fractions: an array of the same shape, nulls where the
-- fractions are
SELECT kappa_percentile_cont(x, ARRAY[0.5, NULL, 0.9]),
	percentile_cont(ARRAY[0.5, NULL, 0.9]) WITHIN GROUP (ORDER BY x),
	kappa_percentile_disc(x, '[0:1][1:2]={{0,0.3},{0.6,1}}'::float8[]),
	percentile_disc('[0:1][1:2]={{0,0.3},{0.6,1}}'::float8[]) WITHIN GROUP (ORDER BY x),
	kappa_percentile_cont(x, '{}'::float8[]), kappa_percentile_cont(x, NULL::float8[])
FROM (VALUES (1.0::float8), (5), (2), (NULL), (8)) v(x);
SELECT kappa_percentile_cont(x, ARRAY[0.5, 0.25]), percentile_cont(ARRAY[0.5, 0.25]) WITHIN GROUP (ORDER BY x)
FROM (VALUES (interval '1 day'), ('2 hours')) v(x);
-- no rows, only nulls: NULL, as Postgres's
SELECT kappa_sum_distinct(x), kappa_avg_distinct(x), kappa_string_agg(x::text, ','),
	kappa_string_agg_distinct(x::text, ','), kappa_percentile_cont(x, 0.5),
	kappa_percentile_disc(x, 0.5)
FROM (VALUES (NULL::float8), (NULL)) v(x);
-- integer sums past int8 (sum(int8) is numeric)
SELECT kappa_sum_distinct(x), sum(DISTINCT x), kappa_avg_distinct(x), avg(DISTINCT x)
FROM (VALUES (9223372036854775807), (9223372036854775806), (-3),
	(-9223372036854775807), ('-9223372036854775808'::int8)) v(x);
-- NaN and infinities as Postgres's sum and avg
SELECT kappa_sum_distinct(x), sum(DISTINCT x), kappa_avg_distinct(x), avg(DISTINCT x)
FROM (VALUES ('Infinity'::numeric), (1), ('-Infinity')) v(x);
SELECT kappa_sum_distinct(x), sum(DISTINCT x), kappa_avg_distinct(x), avg(DISTINCT x)
FROM (VALUES ('Infinity'::float8), (1), ('NaN')) v(x);
-- Postgres's errors: float overflow, and the delimiter and fraction
-- change between rows; fractions out of range
SELECT kappa_sum_distinct(x) FROM (VALUES (1e308::float8), (1.5e308)) v(x);
SELECT kappa_avg_distinct(x) FROM (VALUES (1e300::float8), (1.5e300)) v(x);
SELECT kappa_string_agg(x, d) FROM (VALUES ('a', ','), ('b', ';')) v(x, d);
SELECT kappa_percentile_disc(x, f) FROM (VALUES (1, 0.5), (2, 0.6)) v(x, f);
SELECT kappa_percentile_cont(x, 1.5) FROM (VALUES (1.0)) v(x);
SELECT kappa_percentile_disc(x, 'NaN'::float8) FROM (VALUES (1.0)) v(x);
SELECT kappa_percentile_disc(x, ARRAY[0.5, -0.5]) FROM (VALUES (1.0)) v(x);
SELECT kappa_percentile_disc(x, ARRAY[f]) FROM (VALUES (1, 0.5), (2, 0.6)) v(x, f);
SELECT kappa_percentile_disc(j, 0.5) FROM (VALUES ('{}'::json)) v(j);

-- Over the events table, per group, against Postgres's own.
CREATE TABLE ev_more_oracle AS
SELECT k,
	sum(DISTINCT i) AS s_i, avg(DISTINCT i) AS a_i, sum(DISTINCT i::int2) AS s_i2,
	avg(DISTINCT i::int2) AS a_i2, sum(DISTINCT i::int8 * 30000000000000000) AS s_i8,
	avg(DISTINCT i::int8 * 30000000000000000) AS a_i8, sum(DISTINCT n) AS s_n, avg(DISTINCT n) AS a_n,
	sum(DISTINCT i / 7.0::float8) AS s_f8, avg(DISTINCT i / 7.0::float8) AS a_f8,
	sum(DISTINCT i / 3.0::float4) AS s_f4, avg(DISTINCT i / 3.0::float4) AS a_f4,
	sum(DISTINCT i::numeric::money) AS s_m,
	sum(DISTINCT ts - '2026-01-01 00:00+00') AS s_iv, avg(DISTINCT ts - '2026-01-01 00:00+00') AS a_iv,
	string_agg(t, ',' ORDER BY t) AS sa_t, string_agg(DISTINCT t, ', ' ORDER BY t) AS sd_t,
	string_agg(convert_to(t, 'UTF8'), '\x00'::bytea ORDER BY convert_to(t, 'UTF8')) AS sa_b,
	percentile_cont(0.37) WITHIN GROUP (ORDER BY n::float8) AS pc_n,
	percentile_cont(0.5) WITHIN GROUP (ORDER BY ts - '2026-01-01 00:00+00') AS pc_iv,
	percentile_disc(0.9) WITHIN GROUP (ORDER BY t) AS pd_t,
	percentile_disc(0) WITHIN GROUP (ORDER BY u) AS pd_u,
	percentile_disc(1) WITHIN GROUP (ORDER BY ts) AS pd_ts,
	percentile_cont(ARRAY[0, 0.1, 0.5, NULL, 1]) WITHIN GROUP (ORDER BY i::float8) AS pca_i,
	percentile_disc(ARRAY[0.2, 0.7]) WITHIN GROUP (ORDER BY n) AS pda_n
FROM ev GROUP BY k;
CREATE VIEW ev_more_kappa AS
SELECT k,
	kappa_sum_distinct(i) AS s_i, kappa_avg_distinct(i) AS a_i, kappa_sum_distinct(i::int2) AS s_i2,
	kappa_avg_distinct(i::int2) AS a_i2, kappa_sum_distinct(i::int8 * 30000000000000000) AS s_i8,
	kappa_avg_distinct(i::int8 * 30000000000000000) AS a_i8, kappa_sum_distinct(n) AS s_n,
	kappa_avg_distinct(n) AS a_n,
	kappa_sum_distinct(i / 7.0::float8) AS s_f8, kappa_avg_distinct(i / 7.0::float8) AS a_f8,
	kappa_sum_distinct(i / 3.0::float4) AS s_f4, kappa_avg_distinct(i / 3.0::float4) AS a_f4,
	kappa_sum_distinct(i::numeric::money) AS s_m,
	kappa_sum_distinct(ts - '2026-01-01 00:00+00') AS s_iv,
	kappa_avg_distinct(ts - '2026-01-01 00:00+00') AS a_iv,
	kappa_string_agg(t, ',') AS sa_t, kappa_string_agg_distinct(t, ', ') AS sd_t,
	kappa_string_agg(convert_to(t, 'UTF8'), '\x00'::bytea) AS sa_b,
	kappa_percentile_cont(n::float8, 0.37) AS pc_n,
	kappa_percentile_cont(ts - '2026-01-01 00:00+00', 0.5) AS pc_iv,
	kappa_percentile_disc(t, 0.9) AS pd_t, kappa_percentile_disc(u, 0) AS pd_u,
	kappa_percentile_disc(ts, 1) AS pd_ts,
	kappa_percentile_cont(i::float8, ARRAY[0, 0.1, 0.5, NULL, 1]) AS pca_i,
	kappa_percentile_disc(n, ARRAY[0.2, 0.7]) AS pda_n
FROM ev GROUP BY k;

-- The same column types as Postgres's own.
SELECT count(*) AS columns, count(*) FILTER (WHERE o.atttypid <> r.atttypid) AS other_types
FROM pg_attribute o JOIN pg_attribute r USING (attname)
WHERE o.attrelid = 'ev_more_oracle'::regclass AND r.attrelid = 'ev_more_kappa'::regclass
	AND o.attnum > 0;

-- Serially, partitionwise (combine, serialize, deserialize) and in
-- parallel: no row differs from the oracle, either way.
SET max_parallel_workers_per_gather = 0;
CREATE TABLE ev_more_serial AS SELECT * FROM ev_more_kappa;
SET enable_partitionwise_aggregate = on;
SET enable_hashagg = off;
EXPLAIN (COSTS OFF) SELECT * FROM ev_more_kappa;
CREATE TABLE ev_more_partitionwise AS SELECT * FROM ev_more_kappa;
RESET enable_partitionwise_aggregate;
RESET enable_hashagg;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) CREATE TABLE ev_more_parallel AS SELECT * FROM ev_more_kappa;
CREATE TABLE ev_more_parallel AS SELECT * FROM ev_more_kappa;
SELECT r.name, (SELECT count(*) FROM ev_more_oracle) AS groups,
	(SELECT count(*) FROM (SELECT * FROM ev_more_oracle EXCEPT SELECT * FROM ev_more_serial) x) AS serial_missing,
	(SELECT count(*) FROM (SELECT * FROM ev_more_serial EXCEPT SELECT * FROM ev_more_oracle) x) AS serial_extra,
	(SELECT count(*) FROM (SELECT * FROM ev_more_oracle EXCEPT SELECT * FROM ev_more_partitionwise) x) AS pw_missing,
	(SELECT count(*) FROM (SELECT * FROM ev_more_partitionwise EXCEPT SELECT * FROM ev_more_oracle) x) AS pw_extra,
	(SELECT count(*) FROM (SELECT * FROM ev_more_oracle EXCEPT SELECT * FROM ev_more_parallel) x) AS parallel_missing,
	(SELECT count(*) FROM (SELECT * FROM ev_more_parallel EXCEPT SELECT * FROM ev_more_oracle) x) AS parallel_extra
FROM (VALUES ('all')) r(name);
-- the oracle has nulls, duplicates and groups without values
SELECT count(*) FILTER (WHERE s_i IS NULL) AS no_sum, count(*) FILTER (WHERE sa_t IS NULL) AS no_string,
	max(cardinality(string_to_array(sa_t, ','))) > max(cardinality(string_to_array(sd_t, ', '))) AS duplicates_dropped
FROM ev_more_oracle;

-- As window aggregates: the final functions leave the state alone.
SELECT id, kappa_sum_distinct(x) OVER w AS s, kappa_avg_distinct(x) OVER w AS a,
	kappa_string_agg(x::text, '-') OVER w AS sa, kappa_string_agg_distinct(x::text, '-') OVER w AS sd,
	kappa_percentile_cont(x, 0.5) OVER w AS pc, kappa_percentile_disc(x, 0.5) OVER w AS pd
FROM (VALUES (1, 3.5), (2, 1), (3, NULL), (4, 3.5), (5, 8)) v(id, x)
WINDOW w AS (ORDER BY id);

-- kappa_string_agg_distinct drops duplicates as it goes: 200,000 rows
-- of 30 values, in parallel too.
SELECT kappa_string_agg_distinct(t, ',') = string_agg(DISTINCT t, ',' ORDER BY t) AS same,
	length(kappa_string_agg_distinct(t, ',')) AS len
FROM (SELECT 'v' || (id * 7) % 30 AS t FROM big) b;

RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA kd_aggs CASCADE;
RESET client_min_messages;
