# Scale-out by partition ownership: two servers share one topic keyed by
# device, each consuming its own partitions (partitions => '0-1' and
# '2,3'), with views grouped by device.  A device's events all land in one
# partition, so each device's rows live on exactly one server, and the
# union of the two servers' views (through postgres_fdw, as
# docs/scaling.md shows) equals the batch query over all the events.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 8_000;
my $broker = start_broker('kp:4');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $conf = "kappa.flush_interval = '100ms'\n";
my $one = kappa_node('one', conf => $conf);
my $two = kappa_node('two', conf => $conf);

my $views = q{
	SELECT kappa_create_view('running', 'SELECT dev, count(*) AS n, sum(v) AS s FROM kp GROUP BY dev');
	SELECT kappa_create_view('tumble', $q$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM kp, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end$q$);
};
foreach my $node ([ $one, '0-1' ], [ $two, '2,3' ])
{
	$node->[0]->safe_psql('postgres', qq{
		SELECT kappa_create_stream('kp', topic => 'kp', brokers => '$b', partitions => '$node->[1]',
			columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '1 minute');
		$views});
}

$one->safe_psql('postgres', qq{
	CREATE SCHEMA batch;
	CREATE TABLE batch.ev AS
	SELECT i, 'd' || (i % 23) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '250 ms' + ((i * 37) % 101 - 50) * interval '100 ms' AS ts,
		(i * 13) % 97 AS v
	FROM generate_series(0, $n - 1) i;
	COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text
		FROM batch.ev ORDER BY i) TO '$dir/events.txt';
});
IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'kp', '-K', '|', '-l', "$dir/events.txt" ]) or die "kcat failed";

is($one->safe_psql('postgres', "SELECT kappa_wait('kp', '60 seconds')"), 't', 'server one consumed its partitions');
is($two->safe_psql('postgres', "SELECT kappa_wait('kp', '60 seconds')"), 't', 'server two consumed its partitions');
is($one->safe_psql('postgres', 'SELECT string_agg(DISTINCT partition::text, \',\') FROM kappa_stats'), '0,1',
	'server one consumed partitions 0 and 1 only');
is($two->safe_psql('postgres', 'SELECT string_agg(DISTINCT partition::text, \',\') FROM kappa_stats'), '2,3',
	'server two consumed partitions 2 and 3 only');
my $consumed_one = $one->safe_psql('postgres', 'SELECT sum(consumed) FROM kappa_stats WHERE view IS NULL');
my $consumed_two = $two->safe_psql('postgres', 'SELECT sum(consumed) FROM kappa_stats WHERE view IS NULL');
ok($consumed_one > 0 && $consumed_two > 0, "both servers consumed events ($consumed_one and $consumed_two)");
is($consumed_one + $consumed_two, $n, 'together they consumed every event once');

# Server one sees server two's views as foreign tables, and the union is
# the whole view.
my $two_port = $two->port;
my $two_host = $two->host;
$one->safe_psql('postgres', qq{
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER two FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$two_host', port '$two_port', dbname 'postgres');
	CREATE USER MAPPING FOR CURRENT_USER SERVER two;
	CREATE SCHEMA two;
	IMPORT FOREIGN SCHEMA public LIMIT TO (running, tumble) FROM SERVER two INTO two;
	CREATE VIEW all_running AS SELECT * FROM public.running UNION ALL SELECT * FROM two.running;
	CREATE VIEW all_tumble AS SELECT * FROM public.tumble UNION ALL SELECT * FROM two.tumble;
});
is($one->safe_psql('postgres', 'SELECT count(*) FROM public.running JOIN two.running USING (dev)'), '0',
	'no device has rows on both servers');
my %oracle = (
	all_running => q{SELECT dev, count(*) AS n, sum(v) AS s FROM batch.ev GROUP BY dev},
	all_tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM batch.ev, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end},
);
foreach my $name (sort keys %oracle)
{
	my ($extra, $missing, $rows) = split m{/}, $one->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $name EXCEPT ALL ($oracle{$name})) a)
			|| '/' || (SELECT count(*) FROM (($oracle{$name}) EXCEPT ALL SELECT * FROM $name) b)
			|| '/' || (SELECT count(*) FROM $name)});
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"$name, the union of both servers, equals the batch query ($rows rows; $extra extra, $missing missing)");
}

# Lists that are not partitions.
foreach my $bad ('3-1', 'x', '1,,2', '-1', '100000')
{
	my ($rc, $out, $err) = $one->psql('postgres', qq{\\set VERBOSITY verbose
		SELECT kappa_create_stream('bad', topic => 'kp', brokers => '$b', columns => 'i int', partitions => '$bad')});
	like($err, qr/22023: invalid partitions "\Q$bad\E"/, "partitions '$bad' is refused");
}

stop_broker($broker);
done_testing();
