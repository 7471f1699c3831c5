# kappa_replay rebuilds a view from its stream's history: the archive for
# what the log no longer holds (the embedded broker keeps 5 MB per
# partition, and more was produced), the log for the rest.  Replays of
# tumble, hop, session and running views equal their queries as batch SQL
# over every event; a replay with a new query (a changed window, an added
# column) equals the new query's batch SQL; and after each swap the live
# worker goes on with the new version, without a gap or a double count.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $first = 44_000;    # over 5 MB per partition: retention drops the oldest
my $more = 4_000;
my $broker = start_broker('rp:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
mkdir "$dir/archive" or die $!;
my $node = kappa_node('replay', conf => "kappa.flush_interval = '100ms'\nkappa.flush_events = 5000\n");

$node->safe_psql('postgres', qq{
	CREATE SCHEMA batch;
	CREATE TABLE batch.ev AS
	SELECT i, 'd' || (i % 11) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s' + ((i * 37) % 101 - 50) * interval '100 ms' AS ts,
		(i * 13) % 97 AS v, repeat('p', 180) AS pad
	FROM generate_series(0, $first + $more + 999) i;
	SELECT kappa_create_stream('rp', topic => 'rp', brokers => '$b', archive => '$dir/archive',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '1 minute');
});
my %queries = (
	tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM EV, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end},
	hop => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, max(v) AS mx
		FROM EV, kappa_hop(ts, '2 minutes', '1 minute') w GROUP BY dev, w.window_start, w.window_end},
	sessions => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM EV, kappa_session(ts, '90 seconds') w GROUP BY dev, w.window_start, w.window_end},
	running => q{SELECT dev, count(*) AS n, sum(v) AS s, avg(v) AS a FROM EV GROUP BY dev},
);
foreach my $name (sort keys %queries)
{
	(my $q = $queries{$name}) =~ s/EV/rp/;
	$node->safe_psql('postgres', "SELECT kappa_create_view('$name', \$q\$$q\$q\$)");
}

# Produce events lo..hi keyed by device, then wait for them.
sub produce
{
	my ($lo, $hi) = @_;
	$node->safe_psql('postgres',
		"COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v, 'pad', pad)::text "
		  . "FROM batch.ev WHERE i BETWEEN $lo AND $hi ORDER BY i) TO '$dir/e$lo.txt'");
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'rp', '-K', '|', '-l', "$dir/e$lo.txt" ]) or die "kcat failed";
	is($node->safe_psql('postgres', "SELECT kappa_wait('rp', '120 seconds')"), 't', "events $lo to $hi consumed");
	return;
}
for (my $lo = 0; $lo < $first; $lo += 4_000)
{
	produce($lo, $lo + 3_999);
}
my $log_start = $node->safe_psql('postgres', q{
	SELECT min(first_offset) FROM kappa.archive_files});
my $retained;
IPC::Run::run([ 'kcat', '-Q', '-b', $b, '-t', 'rp:0:-2', '-t', 'rp:1:-2' ], '>', \$retained) or die "kcat -Q failed";
my @starts = $retained =~ /offset (\d+)/g;
ok((grep { $_ > 0 } @starts) >= 1, "retention deleted the oldest messages (log starts: @starts)");

# Sessions in batch SQL: gaps and islands (kappa_session is no batch function).
my $sessions_oracle = q{
	WITH o AS (
		SELECT dev, ts, v,
			CASE WHEN ts - lag(ts) OVER (PARTITION BY dev ORDER BY ts) < interval '90 seconds'
				THEN 0 ELSE 1 END AS brk
		FROM EV),
	g AS (SELECT dev, ts, v, sum(brk) OVER (PARTITION BY dev ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
	SELECT dev, min(ts) AS window_start, max(ts) + interval '90 seconds' AS window_end, count(*) AS n, sum(v) AS s
	FROM g GROUP BY dev, sid};

# A view against its batch query over events 0..upto.
sub check_view
{
	my ($name, $query, $upto, $label) = @_;
	$query = $sessions_oracle if $name eq 'sessions';
	(my $q = $query) =~ s/EV/(SELECT * FROM batch.ev WHERE i <= $upto) ev/;
	my ($extra, $missing, $rows) = split m{/}, $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $name EXCEPT ALL ($q)) a)
			|| '/' || (SELECT count(*) FROM (($q) EXCEPT ALL SELECT * FROM $name) b)
			|| '/' || (SELECT count(*) FROM $name)});
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"$label: $name equals its batch query ($rows rows; $extra extra, $missing missing)");
	return;
}

foreach my $name (sort keys %queries)
{
	my ($archive_events, $log_events) = split /\|/,
	  $node->safe_psql('postgres', "SELECT archive_events, log_events FROM kappa_replay('$name')");
	ok($archive_events > 0 && $log_events > 0,
		"$name replayed from the archive ($archive_events events) and the log ($log_events)");
	is($archive_events + $log_events, $first, "$name replayed every event once");
	check_view($name, $queries{$name}, $first - 1, 'replayed');
}

# New logic: a changed window and an added column.
my $new_tumble = q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s, avg(v) AS a
	FROM EV, kappa_tumble(ts, '5 minutes') w GROUP BY dev, w.window_start, w.window_end};
(my $q = $new_tumble) =~ s/EV/rp/;
$node->safe_psql('postgres', "SELECT * FROM kappa_replay('tumble', query => \$q\$$q\$q\$)");
check_view('tumble', $new_tumble, $first - 1, 'replayed with a new query');
$queries{tumble} = $new_tumble;

# The live path goes on with the new versions: more events, no gap.
produce($first, $first + $more - 1);
foreach my $name (sort keys %queries)
{
	check_view($name, $queries{$name}, $first + $more - 1, 'live after the swap');
}
# kappa_check reads what retention cut from the archive, like replay.
foreach my $name (sort keys %queries)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kappa_check('$name')"), '0',
		"kappa_check, from archive and log, finds $name exact");
}

# A crash takes every view's state; the log no longer holds their start,
# so the worker rebuilds them from the archive and the log.
my $log_offset = -s $node->logfile;
$node->stop('immediate');
$node->start;
# (the rebuild first: events produced during it would let retention cut
# the log past where it reads, a gap issue 12 deals with)
is($node->safe_psql('postgres', "SELECT kappa_wait('rp', '120 seconds')"), 't', 'the views were rebuilt');
produce($first + $more, $first + $more + 999);
ok(log_contains($node, qr/reading offsets 0 to \d+ of partition \d+ from the archive/, $log_offset),
	'after the crash, the worker read the cut history from the archive');
foreach my $name (sort keys %queries)
{
	check_view($name, $queries{$name}, $first + $more + 999, 'rebuilt from archive and log after a crash');
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa_views WHERE status <> 'live'}), '0',
	'no view needs a replay: the archive had what the log lacked');
my ($rc, $out, $err);
is($node->safe_psql('postgres', q{SELECT count(*), count(*) FILTER (WHERE status = 'live') FROM kappa_views}),
	'4|4', 'four live views, no version left behind');

# What cannot be replayed.
# since/until bound the event time of the new version, for good.
$node->safe_psql('postgres', q{SELECT * FROM kappa_replay('running',
	since => '2026-01-01 02:00:00+00', until => '2026-01-01 05:00:00+00')});
my $bounded = q{SELECT dev, count(*) AS n, sum(v) AS s, avg(v) AS a FROM EV
	WHERE ts >= '2026-01-01 02:00:00+00' AND ts < '2026-01-01 05:00:00+00' GROUP BY dev};
check_view('running', $bounded, $first + $more + 999, 'replayed with since and until');
like($node->safe_psql('postgres', q{SELECT options::text FROM kappa_views WHERE name = 'public.running'}),
	qr/"since": "2026-01-01 02:00:00\+00", "until": "2026-01-01 05:00:00\+00"/, 'the bounds are kept in UTC');
($rc, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT * FROM kappa_replay('running', since => now(), until => now() - interval '1 hour')");
like($err, qr/22023: until must be later than since/, 'bounds the wrong way round are refused (22023)');
($rc, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT * FROM kappa_replay('running', query => 'SELECT count(*) AS n FROM nosuch')");
like($err, qr/42704: stream "nosuch" does not exist/, 'a new query over no stream is an error (42704)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM kappa_views'), '4', 'and leaves nothing behind');

stop_broker($broker);
done_testing();
