# Broker faults, through kappa-broker's fault controls on a three-broker
# cluster: every broker down (the worker stalls, kappa_workers and
# kappa_stats show it and the error, and it resumes by itself), failing
# fetch requests, partition leaders moving, a slow broker.  Events keep
# coming between faults; in the end every view equals its batch query and
# every event counted once.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $per_chunk = 2000;
my $chunks = 5;
my $n = $per_chunk * $chunks;
my $broker = start_broker({ brokers => 3, control => 1 }, 'bf:4');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('faults', conf => "kappa.flush_interval = '100ms'\n");

$node->safe_psql('postgres', qq{
	CREATE SCHEMA batch;
	CREATE TABLE batch.ev AS
	SELECT i, 'd' || (i % 11) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '300 ms' + ((i * 37) % 101 - 50) * interval '100 ms' AS ts,
		(i * 13) % 97 AS v
	FROM generate_series(0, $n - 1) i;
	SELECT kappa_create_stream('bf', topic => 'bf', brokers => '$b',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '1 minute');
	SELECT kappa_create_view('tumble', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM bf, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('running', 'SELECT dev, count(*) AS n, sum(v) AS s FROM bf GROUP BY dev');
});

# Produce chunk k, keyed by device, and wait until it is committed.
sub produce_and_wait
{
	my ($k, $label) = @_;
	my $file = "$dir/c$k.txt";
	my ($lo, $hi) = ($k * $per_chunk, ($k + 1) * $per_chunk - 1);
	$node->safe_psql('postgres',
		"COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text "
		  . "FROM batch.ev WHERE i BETWEEN $lo AND $hi ORDER BY i) TO '$file'");
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'bf', '-K', '|', '-l', $file ]) or die "kcat failed";
	is($node->safe_psql('postgres', "SELECT kappa_wait('bf', '120 seconds')"), 't', "chunk $k consumed $label");
	return;
}

sub worker_state
{
	return $node->safe_psql('postgres', "SELECT state FROM kappa_workers WHERE stream = 'bf'");
}

produce_and_wait(0, 'before any fault');

# Every broker down: the worker stalls, says so, and waits.
broker_control($broker, "down $_") foreach 1 .. 3;
ok(wait_until(sub { worker_state() eq 'stalled' }, 60), 'with every broker down, the worker is stalled');
isnt($node->safe_psql('postgres', "SELECT last_error FROM kappa_workers WHERE stream = 'bf'"), '',
	'kappa_workers shows the error');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM kappa_stats WHERE stream = 'bf' AND view IS NULL AND worker_state = 'stalled' AND last_error IS NOT NULL"),
	'4', 'kappa_stats shows the stall and the error on every partition');
ok(kill(0, $node->safe_psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'bf'")),
	'the worker waits, it does not exit');
broker_control($broker, "up $_") foreach 1 .. 3;
produce_and_wait(1, 'after the brokers came back');
ok(wait_until(sub { worker_state() eq 'running' }, 60), 'the worker is running again');

# Fetches fail for a while (not leader, timed out), then work again.
broker_control($broker, 'errors 1 10 6');
broker_control($broker, 'errors 1 10 7');
produce_and_wait(2, 'while fetches failed');

# Every partition's leader moves to another broker.
broker_control($broker, "leader bf $_ " . (($_ % 3) + 1)) foreach 0 .. 3;
produce_and_wait(3, 'after the leaders moved');

# A slow broker: every answer 300 ms late.
broker_control($broker, "rtt $_ 300") foreach 1 .. 3;
produce_and_wait(4, 'from slow brokers');
broker_control($broker, "rtt $_ 0") foreach 1 .. 3;

is($node->safe_psql('postgres',
		'SELECT sum(consumed), sum(dead_lettered) FROM kappa_stats WHERE view IS NULL'),
	"$n|0", "the stream counted each of the $n events once");
is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM (SELECT view, sum(delivered + filtered + duplicate) AS seen,
			sum(delivered) AS d, sum(applied + late) AS al
			FROM kappa_stats WHERE view IS NOT NULL GROUP BY view) s
		WHERE seen <> $n OR d <> al}),
	'0', 'every view saw every event once, and delivered = applied + late');
my %queries = (
	tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM batch.ev, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end},
	running => q{SELECT dev, count(*) AS n, sum(v) AS s FROM batch.ev GROUP BY dev},
);
foreach my $name (sort keys %queries)
{
	my ($extra, $missing, $rows) = split m{/}, $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $name EXCEPT ALL ($queries{$name})) a)
			|| '/' || (SELECT count(*) FROM (($queries{$name}) EXCEPT ALL SELECT * FROM $name) b)
			|| '/' || (SELECT count(*) FROM $name)});
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"view $name equals its batch query ($rows rows; $extra extra, $missing missing)");
}

stop_broker($broker);
done_testing();
