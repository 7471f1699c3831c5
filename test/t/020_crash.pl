# Exactly once through crashes: events arrive in 20 chunks, and after each
# the server is killed at a different moment (kill -9 of the postmaster, or
# of the stream's worker, which makes the postmaster reinitialize): before
# the worker has read the chunk, while it reads and flushes (every 50 ms or
# 500 events), at a random instant, or once everything is committed.  Crash
# recovery empties the unlogged state; the worker notices and rebuilds.  In
# the end every view equals its query as batch SQL over all the events, and
# the counts reconcile: nothing lost, nothing counted twice.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $chunks = 20;
my $per_chunk = 1000;
my $n = $chunks * $per_chunk;

my $broker = start_broker('crash:4');
my $node = kappa_node('crash',
	conf => "kappa.flush_interval = '50ms'\nkappa.flush_events = 500\nrestart_after_crash = on\n");
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();

# Event i: device active in turns (so sessions end), 100 ms apart with up
# to 5 s of disorder (the watermark is a minute: nothing is late).
$node->safe_psql('postgres', qq{
	CREATE SCHEMA batch;
	CREATE TABLE batch.ev AS
	SELECT i, 'd' || ((i / 2000) % 4 * 5 + i % 5) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '100 ms' + ((i * 37) % 101 - 50) * interval '100 ms' AS ts,
		(i * 13) % 97 AS v
	FROM generate_series(0, $n - 1) i;
	SELECT kappa_create_stream('cr', topic => 'crash', brokers => '$b',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '1 minute');
});
my %queries = (
	tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM ev, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end},
	hop => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, max(v) AS mx
		FROM ev, kappa_hop(ts, '2 minutes', '1 minute') w GROUP BY dev, w.window_start, w.window_end},
	running => q{SELECT dev, count(*) AS n, sum(v) AS s, avg(v) AS a FROM ev GROUP BY dev},
);
foreach my $name (sort keys %queries)
{
	(my $q = $queries{$name}) =~ s/FROM ev\b/FROM cr/;
	$node->safe_psql('postgres', "SELECT kappa_create_view('$name', \$q\$$q\$q\$)");
}
$node->safe_psql('postgres', q{SELECT kappa_create_view('sessions', $q$
	SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
	FROM cr, kappa_session(ts, '2 minutes') w GROUP BY dev, w.window_start, w.window_end $q$)});

# Produce chunk k (events k*per_chunk ..), keyed by device.
sub produce_chunk
{
	my ($k) = @_;
	my $file = "$dir/chunk$k.txt";
	my ($lo, $hi) = ($k * $per_chunk, ($k + 1) * $per_chunk - 1);
	$node->safe_psql('postgres',
		"COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text "
		  . "FROM batch.ev WHERE i BETWEEN $lo AND $hi ORDER BY i) TO '$file'");
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'crash', '-K', '|', '-l', $file ])
	  or die "kcat could not produce chunk $k";
	return;
}

# Events the stream has committed as consumed; undef while the server is down.
sub consumed
{
	my ($rc, $out) = $node->psql('postgres',
		'SELECT coalesce(sum(consumed), 0) FROM kappa_stats WHERE view IS NULL');
	return $rc == 0 ? $out : undef;
}

# The server accepts connections (after a restart or a reinitialization).
sub server_up
{
	my ($rc) = $node->psql('postgres', 'SELECT 1');
	return $rc == 0;
}

# Whether a process of the old server (its title starts with the cluster
# name) is still alive.
sub old_processes_alive
{
	foreach my $cmdline (glob '/proc/[0-9]*/cmdline')
	{
		open my $fh, '<', $cmdline or next;
		my $title = <$fh> // '';
		close $fh;
		return 1 if $title =~ /^postgres: crash: /;
	}
	return 0;
}

# Start the server again after a kill -9 of the postmaster, once the old
# backends (the stream's worker among them) have noticed that it died and
# left shared memory.
sub restart_after_kill
{
	my ($postmaster) = @_;
	ok(wait_until(sub { !kill(0, $postmaster) && !old_processes_alive() }, 60),
		'every process of the killed server exits by itself');
	$node->start;
	return;
}

srand(20261125);
my $log_offset = -s $node->logfile;
my @moments = ('before the worker reads', 'midway through the chunk', 'at a random instant',
	'once all is committed');
for my $k (0 .. $chunks - 1)
{
	my $moment = $moments[ $k % 4 ];
	my $target = $k == 0 ? 0 : $k * $per_chunk;

	produce_chunk($k);
	if ($moment eq 'midway through the chunk')
	{
		wait_until(sub { (consumed() // 0) >= $target + $per_chunk / 2 }, 30);
	}
	elsif ($moment eq 'at a random instant')
	{
		usleep(int(rand(250_000)));    # picks the moment; waits for nothing
	}
	elsif ($moment eq 'once all is committed')
	{
		$node->safe_psql('postgres', "SELECT kappa_wait('cr', '60 seconds')");
	}

	if ($k % 2 == 0)
	{
		note "chunk $k: kill -9 of the postmaster $moment";
		my $postmaster = $node->{_pid};
		$node->kill9;
		restart_after_kill($postmaster);
	}
	else
	{
		my $pid;
		wait_until(sub {
			$pid = $node->safe_psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'cr'");
			return $pid ne '';
		}, 30) or die "stream cr has no worker";
		note "chunk $k: kill -9 of the worker (pid $pid) $moment";
		kill 'KILL', $pid;
		ok(wait_until(sub { server_up() && $node->safe_psql('postgres',
				"SELECT count(*) FROM kappa_workers WHERE stream = 'cr' AND pid IS NOT NULL AND pid <> $pid") eq '1' }, 60),
			"chunk $k: the server reinitialized and the worker is back");
	}
}

is($node->safe_psql('postgres', "SELECT kappa_wait('cr', '180 seconds')"), 't',
	'after 20 crashes, the worker consumed everything');
ok(log_contains($node, qr/lost its state to crash recovery or a failover; rebuilding it/, $log_offset),
	'crash recovery took the state, and the worker noticed');

is($node->safe_psql('postgres',
		'SELECT sum(consumed), sum(dead_lettered) FROM kappa_stats WHERE view IS NULL'),
	"$n|0", "the stream counted each of the $n events once");
is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM (SELECT view, sum(delivered + filtered + duplicate) AS seen,
			sum(delivered) AS d, sum(applied + late) AS al, sum(late) AS late
			FROM kappa_stats WHERE view IS NOT NULL GROUP BY view) s
		WHERE seen <> $n OR d <> al OR late <> 0}),
	'0', 'every view saw every event once, applied it, and none was late');

foreach my $name (sort keys %queries)
{
	(my $q = $queries{$name}) =~ s/FROM ev\b/FROM batch.ev ev/;
	my ($extra, $missing, $rows) = split m{/}, $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $name EXCEPT ALL ($q)) a)
			|| '/' || (SELECT count(*) FROM (($q) EXCEPT ALL SELECT * FROM $name) b)
			|| '/' || (SELECT count(*) FROM $name)});
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"view $name equals its batch query ($rows rows; $extra extra, $missing missing)");
}
my $sessions_oracle = q{
	WITH o AS (
		SELECT dev, ts, v,
			CASE WHEN ts - lag(ts) OVER (PARTITION BY dev ORDER BY ts) < interval '2 minutes'
				THEN 0 ELSE 1 END AS brk
		FROM batch.ev),
	g AS (SELECT dev, ts, v, sum(brk) OVER (PARTITION BY dev ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
	SELECT dev, min(ts) AS window_start, max(ts) + interval '2 minutes' AS window_end,
		count(*) AS n, sum(v) AS s
	FROM g GROUP BY dev, sid};
my ($extra, $missing, $rows) = split m{/}, $node->safe_psql('postgres', qq{
	SELECT (SELECT count(*) FROM (SELECT * FROM sessions EXCEPT ALL ($sessions_oracle)) a)
		|| '/' || (SELECT count(*) FROM (($sessions_oracle) EXCEPT ALL SELECT * FROM sessions) b)
		|| '/' || (SELECT count(*) FROM sessions)});
ok($rows > 1 && $extra == 0 && $missing == 0,
	"session view equals gaps-and-islands ($rows sessions; $extra extra, $missing missing)");

# The audit users have: kappa_check recomputes each view from the log.
foreach my $name ((sort keys %queries), 'sessions')
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kappa_check('$name')"), '0',
		"kappa_check finds view $name equal to its log");
}

stop_broker($broker);
done_testing();
