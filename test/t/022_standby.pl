# Failover the Postgres way: a streaming-replication standby runs no kappa
# worker while it is in recovery (it must never write); when the primary
# is killed mid-stream and the standby promoted, its launcher and worker
# start, find no state (unlogged tables are not replicated), rebuild the
# views from the log, and go on from the committed positions: every view
# equals its batch query over all the events.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 12_000;
my $broker = start_broker('fo:4');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $primary = kappa_node('primary', init => { allows_streaming => 1 },
	conf => "kappa.flush_interval = '50ms'\nkappa.flush_events = 500\n");

$primary->safe_psql('postgres', qq{
	CREATE SCHEMA batch;
	CREATE TABLE batch.ev AS
	SELECT i, 'd' || (i % 7) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '200 ms' + ((i * 37) % 101 - 50) * interval '100 ms' AS ts,
		(i * 13) % 97 AS v
	FROM generate_series(0, $n - 1) i;
	SELECT kappa_create_stream('fo', topic => 'fo', brokers => '$b',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '1 minute');
	SELECT kappa_create_view('tumble', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM fo, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('running', 'SELECT dev, count(*) AS n, sum(v) AS s FROM fo GROUP BY dev');
});

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

# Produce events lo..hi, keyed by device.
sub produce
{
	my ($lo, $hi) = @_;
	my $file = "$dir/e$lo.txt";
	$primary->safe_psql('postgres',
		"COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text "
		  . "FROM batch.ev WHERE i BETWEEN $lo AND $hi ORDER BY i) TO '$file'");
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'fo', '-K', '|', '-l', $file ]) or die "kcat failed";
	return;
}

produce(0, 5_999);
is($primary->safe_psql('postgres', "SELECT kappa_wait('fo', '60 seconds')"), 't', 'the primary consumed the first half');
$primary->wait_for_catchup($standby);

# The standby replays the primary's commits but runs no worker.
is($standby->safe_psql('postgres', 'SELECT sum(n) FROM running'), '6000',
	'the standby has the view rows the primary committed');
is($standby->safe_psql('postgres', 'SELECT count(pid) FROM kappa_workers'), '0',
	'no kappa worker runs on the standby');
ok(!log_contains($standby, qr/kappa launcher started/), 'no kappa launcher started on the standby');

# The primary dies while it consumes the second half.
produce(6_000, $n - 1);
wait_until(sub { $primary->safe_psql('postgres', 'SELECT sum(n) FROM running') > 6000 }, 30);
$primary->stop('immediate');

$standby->promote;
ok(wait_until(sub { log_contains($standby, qr/kappa launcher started/) }, 60),
	'the promoted standby starts the kappa launcher');
is($standby->safe_psql('postgres', "SELECT kappa_wait('fo', '120 seconds')"), 't',
	'the promoted server consumed the rest');

is($standby->safe_psql('postgres',
		'SELECT sum(consumed), sum(dead_lettered) FROM kappa_stats WHERE view IS NULL'),
	"$n|0", 'the stream counted every event once across the failover');
my %queries = (
	tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM batch.ev, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end},
	running => q{SELECT dev, count(*) AS n, sum(v) AS s FROM batch.ev GROUP BY dev},
);
foreach my $name (sort keys %queries)
{
	my ($extra, $missing, $rows) = split m{/}, $standby->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $name EXCEPT ALL ($queries{$name})) a)
			|| '/' || (SELECT count(*) FROM (($queries{$name}) EXCEPT ALL SELECT * FROM $name) b)
			|| '/' || (SELECT count(*) FROM $name)});
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"after failover, view $name equals its batch query ($rows rows; $extra extra, $missing missing)");
}

stop_broker($broker);
done_testing();
