# Several workers per stream (kappa.workers_per_stream = 2): the workers
# join the stream's consumer group, the brokers spread the 8 partitions
# over them, and they share each view's state.  Events are keyed by device,
# so a user's events are spread over every partition, and so over both
# workers: the hopping and session views (by user) only come out right if
# the workers combine their partial groups, and merge sessions that events
# read by different workers bridge.  Along the way one worker is stopped
# (its partitions move to the other, then back when it restarts), a view
# is created while both run, and one worker is killed (crash recovery
# empties the states; one worker rebuilds each view, under the view's
# lock).  Every view must equal its batch query over the same events, and
# every event must be consumed exactly once.  Both workers archive what
# they consume: each partition's files, written by one worker and then
# another, must still cover every offset once.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 60_000;
my $broker = start_broker('wk:8');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $archive = "$dir/archive";
mkdir $archive or die $!;
my $node = kappa_node('workers',
	conf => "kappa.flush_interval = '100ms'\nkappa.workers_per_stream = 2\nrestart_after_crash = on\n");

# Times 20 ms apart with up to 30 s of jitter either way: out of order in
# every partition, but never by more than the 2-minute watermark, so no
# event is late and the batch queries are exact oracles.
$node->safe_psql('postgres', qq{
	CREATE SCHEMA batch;
	CREATE TABLE batch.ev (id int, dev text, usr text, ts timestamptz, v numeric);
	SELECT setseed(0.46);
	INSERT INTO batch.ev
	SELECT i, 'd' || (random() * 299)::int, 'u' || (random() * 49)::int,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '20 ms' + (random() * 60 - 30) * interval '1 s',
		round((random() * 100)::numeric, 2)
	FROM generate_series(1, $n) i;
	SELECT kappa_create_stream('ev', topic => 'wk', brokers => '$b',
		columns => 'id int, dev text, usr text, ts timestamptz NOT NULL, v numeric',
		event_time => 'ts', watermark => '2 minutes', archive => '$archive');
});
my %queries = (
	tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s, avg(v) AS a,
		min(v) AS lo, max(v) AS hi
		FROM ev, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end},
	hop => q{SELECT usr, w.window_start, w.window_end, count(*) AS n, sum(v) AS s,
		count(DISTINCT dev) AS devs
		FROM ev, kappa_hop(ts, '4 minutes', '2 minutes') w GROUP BY usr, w.window_start, w.window_end},
	running => q{SELECT usr, count(*) AS n, sum(v) AS s, stddev(v) AS sd, kappa_first(dev, ts) AS first_dev,
		kappa_last(dev, ts) AS last_dev FROM ev GROUP BY usr},
);
foreach my $name (sort keys %queries)
{
	$node->safe_psql('postgres', "SELECT kappa_create_view('$name', \$q\$$queries{$name}\$q\$)");
}
$node->safe_psql('postgres', q{SELECT kappa_create_view('sessions', $q$
	SELECT usr, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
	FROM ev, kappa_session(ts, '3 seconds') w GROUP BY usr, w.window_start, w.window_end $q$)});
my $sessions_oracle = q{
	WITH o AS (
		SELECT usr, ts, v,
			CASE WHEN ts - lag(ts) OVER (PARTITION BY usr ORDER BY ts) < interval '3 seconds'
				THEN 0 ELSE 1 END AS brk
		FROM batch.ev WHERE id <= %d),
	g AS (SELECT usr, ts, v, sum(brk) OVER (PARTITION BY usr ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
	SELECT usr, min(ts) AS window_start, max(ts) + interval '3 seconds' AS window_end,
		count(*) AS n, sum(v) AS s
	FROM g GROUP BY usr, sid};

# Produce the events with ids in (from, to], keyed by device.
sub produce
{
	my ($from, $to) = @_;
	my $file = "$dir/events-$to.txt";
	$node->safe_psql('postgres',
		"COPY (SELECT dev || '|' || json_build_object('id', id, 'dev', dev, 'usr', usr, 'ts', ts, 'v', v)::text "
		  . "FROM batch.ev WHERE id > $from AND id <= $to ORDER BY id) TO '$file'");
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'wk', '-K', '|', '-l', $file ])
	  or die "kcat could not produce the events";
}

# Every view equals its oracle over the events produced so far.
sub check_views
{
	my ($upto, $when) = @_;

	is($node->safe_psql('postgres', "SELECT kappa_wait('ev', '180 seconds')"), 't',
		"$when: the workers consumed every event");
	is($node->safe_psql('postgres', 'SELECT sum(consumed) FROM kappa_stats WHERE view IS NULL'),
		$upto, "$when: the stream consumed each of the $upto events once");
	foreach my $name (sort keys %queries)
	{
		my ($extra, $missing, $rows) = split m{/}, $node->safe_psql('postgres', qq{
			CREATE TEMP VIEW ev AS SELECT * FROM batch.ev WHERE id <= $upto;
			SELECT (SELECT count(*) FROM (SELECT * FROM public.$name EXCEPT ALL ($queries{$name})) a)
				|| '/' || (SELECT count(*) FROM (($queries{$name}) EXCEPT ALL SELECT * FROM public.$name) b)
				|| '/' || (SELECT count(*) FROM public.$name)});
		ok($rows > 0 && $extra == 0 && $missing == 0,
			"$when: view $name equals its batch query ($rows rows; $extra extra, $missing missing)");
	}
	my $oracle = sprintf($sessions_oracle, $upto);
	my ($extra, $missing, $rows) = split m{/}, $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM sessions EXCEPT ALL ($oracle)) a)
			|| '/' || (SELECT count(*) FROM (($oracle) EXCEPT ALL SELECT * FROM sessions) b)
			|| '/' || (SELECT count(*) FROM sessions)});
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"$when: session view equals gaps-and-islands ($rows sessions; $extra extra, $missing missing)");
}

# Both workers run, and the group gave each some of the 8 partitions.
sub both_consume
{
	return $node->poll_query_until('postgres', q{
		SELECT count(*) = 2 AND bool_and(partitions > 0) AND sum(partitions) = 8
		FROM kappa_workers WHERE stream = 'ev' AND state = 'running'});
}

ok(both_consume(), 'two workers share the 8 partitions');
produce(0, 20_000);
check_views(20_000, 'two workers');
is($node->safe_psql('postgres',
		"SELECT count(DISTINCT partition) FROM kappa_stats WHERE view IS NULL AND consumed > 0"),
	'8', 'every partition was consumed');

# A view created while both workers run reads their partitions again
# from its start (each worker seeks the partitions the group gave it).
$queries{by_dev} = q{SELECT dev, count(*) AS n, sum(v) AS s FROM ev GROUP BY dev};
$node->safe_psql('postgres', "SELECT kappa_create_view('by_dev', \$q\$$queries{by_dev}\$q\$)");

# Stop worker 1: its partitions move to worker 0 while events arrive, and
# come back once the launcher has restarted it.
my $pid = $node->safe_psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'ev' AND worker = 1");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
produce(20_000, 40_000);
ok($node->poll_query_until('postgres',
		"SELECT pid IS NOT NULL AND pid <> $pid FROM kappa_workers WHERE stream = 'ev' AND worker = 1"),
	'the launcher restarted the stopped worker');
ok(both_consume(), 'the restarted worker got partitions back');
check_views(40_000, 'after a worker stopped and came back');
my $log = slurp_file($node->logfile);
my $given = () = $log =~ /kappa worker \d of stream "ev" was given/g;
ok($given >= 4, "the group reassigned partitions ($given assignments)");

# Kill a worker: crash recovery empties the states of every view, and one
# of the two workers rebuilds each view from the log.
$pid = $node->safe_psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'ev' AND worker = 0");
kill 'KILL', $pid;
ok($node->poll_query_until('postgres', qq{
		SELECT (SELECT pid <> $pid FROM kappa_workers WHERE stream = 'ev' AND worker = 0)
			AND (SELECT count(*) = 5 FROM kappa.view_state_marker)}),
	'after the crash every view was rebuilt');
produce(40_000, $n);
ok(both_consume(), 'both workers run again');
check_views($n, 'after a crash');
# The archive: per partition, files from offset 0 to the end, each going on
# where the previous one ended, whichever worker wrote it.
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM (
			SELECT first_offset,
				lag(last_offset) OVER (PARTITION BY partition ORDER BY first_offset) AS prev_last
			FROM kappa.archive_files) r
		WHERE first_offset <> coalesce(prev_last + 1, 0)}),
	'0', 'the archive files of each partition continue where the previous one ended');
is($node->safe_psql('postgres', q{
		SELECT sum(records) || '/' || sum(last_offset + 1) FROM (SELECT partition, sum(records) AS records,
			max(last_offset) AS last_offset FROM kappa.archive_files GROUP BY partition) x}),
	"$n/$n", 'and hold every message once');

my $rebuilt = () = slurp_file($node->logfile) =~ /lost its state to crash recovery or a failover; rebuilding/g;
is($rebuilt, 5, 'each view was rebuilt once, by one of the workers');

$node->stop;
stop_broker($broker);
done_testing();
