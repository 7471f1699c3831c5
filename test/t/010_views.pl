# Views equal their own query run as batch SQL over a table of the same
# events: 100,000 events with out-of-order timestamps on 8 partitions,
# through tumbling, hopping, running and session views.  The oracle is
# Postgres itself (the batch query; for sessions, a gaps-and-islands
# query), over exactly the events that were produced.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('events:8');
my $node = kappa_node('views', conf => "kappa.flush_interval = '200ms'\n");
my $b = $broker->{bootstrap};
my $n = 100_000;

# The events, generated once, deterministically: 500 devices, 100 users,
# times 10 ms apart with up to 40 s of jitter either way (out of order
# within each partition); values are numeric, so sums are exact whatever
# the order of addition.
$node->safe_psql('postgres', qq{
	CREATE SCHEMA batch;
	CREATE TABLE batch.ev (id text, dev text, usr text, kind text, ts timestamptz, v numeric, f float8);
	SELECT setseed(0.42);
	INSERT INTO batch.ev
	SELECT 'e' || i, 'd' || (random() * 499)::int, 'u' || (random() * 99)::int,
		(ARRAY['reading', 'alert', 'heartbeat'])[1 + (random() * 2)::int],
		timestamptz '2026-01-01 00:00:00+00' + i * interval '10 ms' + (random() * 80 - 40) * interval '1 s',
		round((random() * 100)::numeric, 2), random() * 100
	FROM generate_series(1, $n) i;
});

my %queries = (
	tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s, avg(v) AS a,
		min(f) AS lo, max(f) AS hi, stddev(v) AS sd, count(*) FILTER (WHERE kind = 'alert') AS alerts
		FROM ev, kappa_tumble(ts, '5 minutes') w WHERE kind <> 'heartbeat'
		GROUP BY dev, w.window_start, w.window_end},
	hop => q{SELECT usr, w.window_start, w.window_end, count(*) AS n, sum(v) AS s, max(v) AS mx,
		bool_or(f > 99) AS any_high
		FROM ev, kappa_hop(ts, '10 minutes', '5 minutes') w GROUP BY usr, w.window_start, w.window_end},
	running => q{SELECT dev, count(*) AS n, sum(v) AS s, avg(v) AS a, variance(v) AS var,
		min(ts) AS first_ts, max(ts) AS last_ts FROM ev GROUP BY dev},
	total => q{SELECT count(*) AS n, sum(v) AS s, count(*) FILTER (WHERE v > 50) AS big FROM ev},
	by_kind => q{SELECT upper(kind) AS k, count(*) AS n, sum(v) AS s FROM ev WHERE v < 90 GROUP BY upper(kind)},
	hll_users => q{SELECT dev, hll_cardinality(hll_add_agg(hll_hash_text(usr)))::int8 AS users, count(*) AS n
		FROM ev GROUP BY dev},
	kinds => q{SELECT dev, count(DISTINCT usr) AS users, kappa_approx_count_distinct(usr) AS approx_users,
		array_agg(DISTINCT kind) AS kinds, kappa_first(kind, ts) AS first_kind, kappa_last(kind, ts) AS last_kind,
		kappa_first(v, ts) AS first_v FROM ev GROUP BY dev},
);

# Extension aggregates go through the same generic path as built-in ones.
$node->safe_psql('postgres', 'CREATE EXTENSION hll; CREATE EXTENSION tdigest');

$node->safe_psql('postgres',
	"SELECT kappa_create_stream('ev', topic => 'events', brokers => '$b', "
	  . "columns => 'id text, dev text, usr text, kind text, ts timestamptz NOT NULL, v numeric, f float8', "
	  . "event_time => 'ts', watermark => '1 hour')");
foreach my $name (sort keys %queries)
{
	$node->safe_psql('postgres', "SELECT kappa_create_view('$name', \$q\$$queries{$name}\$q\$)");
}
$node->safe_psql('postgres', q{SELECT kappa_create_view('sessions', $q$
	SELECT usr, w.window_start, w.window_end, count(*) AS n, sum(v) AS s, max(ts) AS last_ts
	FROM ev, kappa_session(ts, '2 minutes') w GROUP BY usr, w.window_start, w.window_end $q$)});

# t-digest is approximate, and its result depends on the order it sees the
# values in: the view keeps each kind's digest, and the medians read from
# them must be close to the exact ones, not equal.
$node->safe_psql('postgres', q{SELECT kappa_create_view('digests', $q$
	SELECT kind, tdigest(f, 100) AS digest, count(*) AS n FROM ev GROUP BY kind $q$)});

# Produce every event, keyed by device, with kcat.
my $file = PostgreSQL::Test::Utils::tempdir() . '/events.txt';
$node->safe_psql('postgres',
	"COPY (SELECT dev || '|' || json_build_object('id', id, 'dev', dev, 'usr', usr, 'kind', kind, "
	  . "'ts', ts, 'v', v, 'f', f)::text FROM batch.ev ORDER BY id) TO '$file'");
IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'events', '-K', '|', '-l', $file ])
  or die "kcat could not produce the events";

is($node->safe_psql('postgres', "SELECT kappa_wait('ev', '180 seconds')"), 't',
	'the worker consumed every event');

# The stream's own count, and every view's, reconcile.
is($node->safe_psql('postgres',
		"SELECT sum(consumed), sum(dead_lettered) FROM kappa_stats WHERE view IS NULL"),
	"$n|0", "the stream consumed all $n events, none dead-lettered");
is($node->safe_psql('postgres',
		"SELECT count(*) FROM (SELECT view, sum(delivered + filtered + duplicate) AS seen, "
		  . "sum(delivered) AS d, sum(applied + late) AS al FROM kappa_stats WHERE view IS NOT NULL "
		  . "GROUP BY view) s WHERE seen <> $n OR d <> al"),
	'0', 'every view saw every event, and delivered = applied + late');

# Each view equals its query as batch SQL over the same events.
foreach my $name (sort keys %queries)
{
	my $diff = $node->safe_psql('postgres', qq{
		SET search_path = batch, public;
		SELECT (SELECT count(*) FROM (SELECT * FROM public.$name EXCEPT ALL ($queries{$name})) a)
			|| '/' || (SELECT count(*) FROM (($queries{$name}) EXCEPT ALL SELECT * FROM public.$name) b)
			|| '/' || (SELECT count(*) FROM public.$name)});
	my ($extra, $missing, $rows) = split m{/}, $diff;
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"view $name equals its batch query ($rows rows; $extra extra, $missing missing)");
}

# Sessions: equal to gaps-and-islands over the same events.
my $sessions_oracle = q{
	WITH o AS (
		SELECT usr, ts, v,
			CASE WHEN ts - lag(ts) OVER (PARTITION BY usr ORDER BY ts) < interval '2 minutes'
				THEN 0 ELSE 1 END AS brk
		FROM batch.ev),
	g AS (SELECT usr, ts, v, sum(brk) OVER (PARTITION BY usr ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
	SELECT usr, min(ts) AS window_start, max(ts) + interval '2 minutes' AS window_end,
		count(*) AS n, sum(v) AS s, max(ts) AS last_ts
	FROM g GROUP BY usr, sid};
my $diff = $node->safe_psql('postgres', qq{
	SELECT (SELECT count(*) FROM (SELECT * FROM sessions EXCEPT ALL ($sessions_oracle)) a)
		|| '/' || (SELECT count(*) FROM (($sessions_oracle) EXCEPT ALL SELECT * FROM sessions) b)
		|| '/' || (SELECT count(*) FROM sessions)});
my ($extra, $missing, $rows) = split m{/}, $diff;
ok($rows > 0 && $extra == 0 && $missing == 0,
	"session view equals gaps-and-islands ($rows sessions; $extra extra, $missing missing)");

is($node->safe_psql('postgres', q{
		SELECT count(*)
		FROM (SELECT kind, tdigest_percentile(digest, 0.5) AS median, sum(n) AS n FROM digests GROUP BY kind) m
		JOIN (SELECT kind, percentile_cont(0.5) WITHIN GROUP (ORDER BY f) AS exact, count(*) AS n
			FROM batch.ev GROUP BY kind) b USING (kind)
		WHERE m.n = b.n AND abs(m.median - b.exact) < 0.5}),
	'3', 't-digest medians (from the tdigest extension) are within 0.5 of the exact ones on 0..100');

# Views behave as relations: joins, index lookups by key, GRANT.
is($node->safe_psql('postgres',
		"SELECT count(*) FROM running r JOIN tumble t USING (dev) WHERE r.dev = 'd7'"),
	$node->safe_psql('postgres', "SELECT count(*) FROM tumble WHERE dev = 'd7'"),
	'a view joins like a table');
like($node->safe_psql('postgres',
		"SET enable_seqscan = off; EXPLAIN SELECT * FROM running WHERE dev = 'd7'"),
	qr/Index Scan/, 'lookups by key use the unique index');

$node->stop;
stop_broker($broker);
done_testing();
