# The aggregates users reach for, in views: string_agg (plain, DISTINCT,
# text and bytea), sum(DISTINCT x) and avg(DISTINCT x) over integers,
# numeric and float8, and percentile_cont / percentile_disc WITHIN GROUP
# (ORDER BY x), with one fraction or an array of them, over float8,
# interval, integers, numeric and text.  kappa runs them
# as its own combinable aggregates, and each view equals its query run as
# batch SQL with the order kappa documents made explicit (string_agg(x, d
# ORDER BY x)), compared with EXCEPT both ways: a running view per key and
# a session view whose sessions merge when later events fill their gaps
# (so the combine functions run), over 4 partitions with events out of
# order, nulls and duplicates, in three rounds with a cluster restart
# before the third (so the stored states are deserialized).  The views
# belong to a kappa_admin member that is not superuser; kappa_replay (of
# the stored query, and of the query given again) rebuilds them equal to
# the batch query; kappa_check finds nothing to correct; and the forms
# kappa cannot run are refused with
# SQLSTATE 0A000 (or 22003 for a fraction out of range) and a hint.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('a:4');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('aggs', conf => "kappa.flush_interval = '100ms'\n");

$node->safe_psql('postgres', q{
	CREATE ROLE ag LOGIN IN ROLE kappa_admin;
	GRANT CREATE ON SCHEMA public TO ag;
	CREATE TABLE ev (p int, id int, k int, i int, s text, n numeric, f float8, ts timestamptz);
	GRANT SELECT ON ev TO PUBLIC;
});

# Each view, and its batch query over ev.
my %q = (
	per_key => q{SELECT k, count(*) AS c,
			string_agg(s, ',') AS sa, string_agg(DISTINCT s, ' | ') AS sd,
			string_agg(convert_to(s, 'UTF8'), '\x2c'::bytea) AS sb,
			sum(DISTINCT i) AS si, avg(DISTINCT i) AS ai, sum(DISTINCT n) AS sn, avg(DISTINCT n) AS an,
			sum(DISTINCT f) AS sf, avg(DISTINCT f) AS af,
			percentile_cont(0.5) WITHIN GROUP (ORDER BY f) AS p50,
			percentile_cont(0.9) WITHIN GROUP (ORDER BY ts - timestamptz '2026-03-01 00:00+00') AS p90,
			percentile_disc(0.25) WITHIN GROUP (ORDER BY s) AS pd_s,
			percentile_disc(0.8) WITHIN GROUP (ORDER BY i) AS pd_i,
			percentile_cont(ARRAY[0.1, 0.5, 0.99]) WITHIN GROUP (ORDER BY n::float8) AS pca
		FROM a GROUP BY k},
	visits => q{SELECT k, w.window_start, w.window_end, count(*) AS c,
			string_agg(s, ';' ORDER BY s) AS sa, string_agg(DISTINCT s, ';') AS sd,
			sum(DISTINCT i) AS si, avg(DISTINCT n) AS an, avg(DISTINCT f) AS af,
			percentile_cont(0.75) WITHIN GROUP (ORDER BY f) AS pc,
			percentile_disc(0.5) WITHIN GROUP (ORDER BY n) AS pd,
			percentile_disc(ARRAY[0.25, 0.75]) WITHIN GROUP (ORDER BY s) AS pda
		FROM a, kappa_session(ts, '2 minutes') w GROUP BY k, w.window_start, w.window_end},
);
my %batch = (
	per_key => q{SELECT k, count(*) AS c,
			string_agg(s, ',' ORDER BY s) AS sa, string_agg(DISTINCT s, ' | ' ORDER BY s) AS sd,
			string_agg(convert_to(s, 'UTF8'), '\x2c'::bytea ORDER BY convert_to(s, 'UTF8')) AS sb,
			sum(DISTINCT i) AS si, avg(DISTINCT i) AS ai, sum(DISTINCT n) AS sn, avg(DISTINCT n) AS an,
			sum(DISTINCT f) AS sf, avg(DISTINCT f) AS af,
			percentile_cont(0.5) WITHIN GROUP (ORDER BY f) AS p50,
			percentile_cont(0.9) WITHIN GROUP (ORDER BY ts - timestamptz '2026-03-01 00:00+00') AS p90,
			percentile_disc(0.25) WITHIN GROUP (ORDER BY s) AS pd_s,
			percentile_disc(0.8) WITHIN GROUP (ORDER BY i) AS pd_i,
			percentile_cont(ARRAY[0.1, 0.5, 0.99]) WITHIN GROUP (ORDER BY n::float8) AS pca
		FROM ev GROUP BY k},
	visits => q{WITH o AS (
			SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY k ORDER BY ts, id)
				< interval '2 minutes' THEN 0 ELSE 1 END AS brk FROM ev),
		g AS (SELECT *, sum(brk) OVER (PARTITION BY k ORDER BY ts, id) AS sid FROM o)
		SELECT k, min(ts) AS window_start, max(ts) + interval '2 minutes' AS window_end, count(*) AS c,
			string_agg(s, ';' ORDER BY s) AS sa, string_agg(DISTINCT s, ';' ORDER BY s) AS sd,
			sum(DISTINCT i) AS si, avg(DISTINCT n) AS an, avg(DISTINCT f) AS af,
			percentile_cont(0.75) WITHIN GROUP (ORDER BY f) AS pc,
			percentile_disc(0.5) WITHIN GROUP (ORDER BY n) AS pd,
			percentile_disc(ARRAY[0.25, 0.75]) WITHIN GROUP (ORDER BY s) AS pda
		FROM g GROUP BY k, sid},
);

# A large watermark: no window is final and no event late, so every event
# counts, as in the batch query.
$node->safe_psql('postgres', qq{
	SET ROLE ag;
	SELECT kappa_create_stream('a', topic => 'a', brokers => '$b',
		columns => 'id int, k int, i int, s text, n numeric, f float8, ts timestamptz NOT NULL',
		event_time => 'ts', watermark => '1 day', idle_timeout => '1 hour');
});
foreach my $v (sort keys %q)
{
	$node->safe_psql('postgres', qq{SET ROLE ag; SELECT kappa_create_view('$v', \$q\$$q{$v}\$q\$)});
}
is($node->safe_psql('postgres', q{SELECT string_agg(name || ' ' || owner::text, ', ' ORDER BY name) FROM kappa_views}),
	'public.per_key ag, public.visits ag', 'the views belong to ag');

# Events of round r: 240 over 4 partitions, 5 keys, each key's events 5
# minutes apart (separate sessions) over 4 hours, each round 100 seconds
# later than the one before, so that its events bridge the gaps and
# sessions merge; sent newest first; nulls in every column but the time,
# and duplicates.
my $round = 0;
sub produce
{
	$round++;
	$node->safe_psql('postgres', qq{
		INSERT INTO ev SELECT g % 4, $round * 1000 + g, g % 5,
			CASE WHEN g % 11 = 0 THEN NULL ELSE (g * 13 + $round) % 37 - 10 END,
			CASE WHEN g % 13 = 0 THEN NULL ELSE 'w' || (g * 17 + $round) % 23 END,
			CASE WHEN g % 7 = 0 THEN NULL ELSE round(((g * 31 + $round) % 50) / 4.0, 2) END,
			CASE WHEN g % 9 = 0 THEN NULL ELSE ((g * 29 + $round) % 41) / 7.0::float8 END,
			timestamptz '2026-03-01 00:00:00+00'
				+ ((g / 5) * 300 + ($round - 1) * 100 + (g * 37) % 30) * interval '1 second'
		FROM generate_series(0, 239) g});
	foreach my $p (0 .. 3)
	{
		my $file = "$dir/r$round-p$p.txt";
		$node->safe_psql('postgres', qq{
			COPY (SELECT json_build_object('id', id, 'k', k, 'i', i, 's', s, 'n', n, 'f', f, 'ts', ts)::text
				FROM ev WHERE p = $p AND id / 1000 = $round ORDER BY ts DESC, id) TO '$file'});
		IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'a', '-p', $p, '-l', $file ]) or die "kcat failed";
	}
	is($node->safe_psql('postgres', q{SELECT kappa_wait('a', '60 seconds')}), 't', "round $round consumed");
	return;
}

# A view's rows against its batch query, both ways.
sub check_view
{
	my ($v) = @_;
	my $cmp = $node->safe_psql('postgres', qq{SET ROLE ag;
		WITH b AS ($batch{$v}), l AS (SELECT * FROM $v)
		SELECT (SELECT count(*) FROM l), (SELECT count(*) FROM b),
			(SELECT count(*) FROM (SELECT * FROM l EXCEPT SELECT * FROM b) d),
			(SELECT count(*) FROM (SELECT * FROM b EXCEPT SELECT * FROM l) d)});
	my ($rows, $expected, @diff) = split /\|/, $cmp;
	cmp_ok($expected, '>', 0, "round $round: $v has rows");
	is("$rows|@diff", "$expected|0 0", "round $round: $v equals its batch query ($expected rows; extra, missing)");
	return;
}

# Sessions of the events of some rounds alone, by the batch query.
sub batch_sessions
{
	my ($rounds) = @_;
	(my $query = $batch{visits}) =~ s/FROM ev\)/FROM ev WHERE id \/ 1000 IN ($rounds))/;
	return $node->safe_psql('postgres', "SELECT count(*) FROM ($query) x");
}

produce();
check_view($_) for sort keys %q;
produce();
check_view($_) for sort keys %q;
my $sessions = $node->safe_psql('postgres', 'SELECT count(*) FROM visits');
cmp_ok($sessions, '<', batch_sessions('1') + batch_sessions('2'), 'sessions merged in round 2');

# The data has what the test is about: nulls, duplicates, several values.
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE s IS NULL) > 0 AND count(*) FILTER (WHERE i IS NULL) > 0
		AND count(*) FILTER (WHERE f IS NULL) > 0 AND count(*) FILTER (WHERE n IS NULL) > 0
		AND count(DISTINCT i) < count(i) AND count(DISTINCT s) < count(s) AND count(DISTINCT f) < count(f)
	FROM ev}), 't', 'the events have nulls and duplicates');

# A restart: the states come back from storage (deserialized) and go on.
$node->restart;
produce();
check_view($_) for sort keys %q;
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM visits'), '<', $sessions + batch_sessions('3'),
	'sessions merged after the restart');

# kappa_replay rebuilds each view from the log, from the stored query
# (visits) and from the query given again as text (per_key): the same
# rows as the batch query.
$node->safe_psql('postgres', q{SET ROLE ag; SELECT * FROM kappa_replay('visits')});
$node->safe_psql('postgres', qq{SET ROLE ag; SELECT * FROM kappa_replay('per_key', query => \$q\$$q{per_key}\$q\$)});
check_view($_) for sort keys %q;

# kappa_check recomputes each view from the log: nothing differs.
foreach my $v (sort keys %q)
{
	is($node->safe_psql('postgres', "SET ROLE ag; SELECT count(*) FROM kappa_check('$v')"), '0',
		"kappa_check finds no difference in $v");
}

# What kappa cannot run is refused, with the SQLSTATE and a hint that
# names what to use instead.
my %refused = (
	q{string_agg(s, k::text) AS x} => [ '0A000', 'Write the delimiter as a literal' ],
	q{string_agg(s, ',' ORDER BY ts) AS x} => [ '0A000', 'kappa_first(x, time)' ],
	q{percentile_cont(0.5) WITHIN GROUP (ORDER BY f DESC) AS x} => [ '0A000', 'tdigest' ],
	q{percentile_disc(ARRAY[0.5, 2]) WITHIN GROUP (ORDER BY f) AS x} => [ '22003', undef ],
	q{percentile_disc(1.5) WITHIN GROUP (ORDER BY f) AS x} => [ '22003', undef ],
	q{mode() WITHIN GROUP (ORDER BY s) AS x} => [ '0A000', 'count(*) per value' ],
	q{max(DISTINCT i) AS x} => [ '0A000', 'array_agg(DISTINCT x)' ],
	q{json_agg(s) AS x} => [ '0A000', 'array_agg(x)' ],
);
foreach my $select (sort keys %refused)
{
	my ($code, $hint) = @{ $refused{$select} };
	my ($ret, $out, $err) = $node->psql('postgres', qq{
		SET ROLE ag;
		\\set VERBOSITY verbose
		SELECT kappa_create_view('refused', \$q\$SELECT k, $select FROM a GROUP BY k\$q\$)});
	like($err, qr/ERROR:  $code:/, "$select: refused with $code");
	like($err, qr/HINT:  .*\Q$hint\E/, "$select: the hint names what to use") if defined $hint;
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa_views}), '2', 'no refused view was created');

$node->stop;
stop_broker($broker);
done_testing();
