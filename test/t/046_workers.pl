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
# another, must still cover every offset once.  A second stream
# deduplicates by id: duplicates produced after its partitions moved must
# be found by the worker that has them now.  A third stream checks that
# the workers finalize windows together: once idle partitions let one
# worker finalize a window, no worker applies a late event to it.  Last,
# kappa_alter_stream restarts both workers, and a view over the column it
# added comes out exact.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 60_000;
my $broker = start_broker('wk:8', 'dd:4', 'fin:4');
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

# Produce the lines a query returns to a topic with kcat (and kcat's
# options: -K '|' for "key|payload" lines, -p N for a partition).
sub kcat_produce
{
	my ($topic, $query, $tag, @options) = @_;
	my $file = "$dir/$topic-$tag.txt";
	$node->safe_psql('postgres', "COPY ($query) TO '$file'");
	return unless -s $file;
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', $topic, @options, '-l', $file ])
	  or die "kcat could not produce to $topic";
}

# Produce the events with ids in (from, to], keyed by device.
sub produce
{
	my ($from, $to) = @_;
	kcat_produce('wk',
		"SELECT dev || '|' || json_build_object('id', id, 'dev', dev, 'usr', usr, 'ts', ts, 'v', v)::text "
		  . "FROM batch.ev WHERE id > $from AND id <= $to ORDER BY id",
		$to, '-K', '|');
}

# Every view equals its oracle over the events produced so far.
sub check_views
{
	my ($upto, $when) = @_;

	is($node->safe_psql('postgres', "SELECT kappa_wait('ev', '180 seconds')"), 't',
		"$when: the workers consumed every event");
	is($node->safe_psql('postgres', "SELECT sum(consumed) FROM kappa_stats WHERE stream = 'ev' AND view IS NULL"),
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

# The dedup stream: ids 1..2000 now; later, after its partitions moved, the
# same ids again (every one a duplicate) and 2001..3000.
$node->safe_psql('postgres', q{
	CREATE TABLE batch.dd AS
	SELECT 'id' || i AS id, 'd' || (i % 20) AS dev, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s' AS ts,
		(i * 7) % 50 AS v
	FROM generate_series(1, 3000) i;
	SELECT kappa_create_stream('dd', topic => 'dd', brokers => '} . $b . q{',
		columns => 'id text, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts',
		watermark => '1 hour', dedup_key => 'id');
	SELECT kappa_create_view('dd_total', 'SELECT dev, count(*) AS n, sum(v) AS s FROM dd GROUP BY dev');
});
sub produce_dd
{
	my ($where, $tag) = @_;
	kcat_produce('dd',
		"SELECT dev || '|' || json_build_object('id', id, 'dev', dev, 'ts', ts, 'v', v)::text "
		  . "FROM batch.dd WHERE $where ORDER BY ts",
		$tag, '-K', '|');
}
produce_dd("ts <= '2026-01-01 00:33:20+00'", 'first');
is($node->safe_psql('postgres', "SELECT kappa_wait('dd', '120 seconds')"), 't',
	'the dedup stream consumed its first 2000 events');
produce(0, 20_000);
check_views(20_000, 'two workers');
is($node->safe_psql('postgres',
		"SELECT count(DISTINCT partition) FROM kappa_stats WHERE stream = 'ev' AND view IS NULL AND consumed > 0"),
	'8', 'every partition was consumed');

# A view created while both workers run reads their partitions again
# from its start (each worker seeks the partitions the group gave it).
$queries{by_dev} = q{SELECT dev, count(*) AS n, sum(v) AS s FROM ev GROUP BY dev};
$node->safe_psql('postgres', "SELECT kappa_create_view('by_dev', \$q\$$queries{by_dev}\$q\$)");

# Stop worker 1: its partitions move to worker 0 while events arrive, and
# come back once the launcher has restarted it.
my $pid = $node->safe_psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'ev' AND worker = 1");
my $dd_pid = $node->safe_psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'dd' AND worker = 1");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid), pg_terminate_backend($dd_pid)");
produce(20_000, 40_000);
ok($node->poll_query_until('postgres',
		"SELECT pid IS NOT NULL AND pid <> $pid FROM kappa_workers WHERE stream = 'ev' AND worker = 1"),
	'the launcher restarted the stopped worker');
ok(both_consume(), 'the restarted worker got partitions back');
check_views(40_000, 'after a worker stopped and came back');

# The dedup stream's partitions moved as well (its worker 1 was stopped
# too, and came back): the duplicates are dropped by whoever has them now.
ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = 2 AND bool_and(partitions > 0) AND bool_and(pid <> $dd_pid)
		FROM kappa_workers WHERE stream = 'dd' AND state = 'running'}),
	'the dedup stream has two workers again');
produce_dd('true', 'again');
is($node->safe_psql('postgres', "SELECT kappa_wait('dd', '120 seconds')"), 't', 'the dedup stream consumed the rest');
is($node->safe_psql('postgres', q{
		SELECT sum(duplicate) || '/' || sum(applied) FROM kappa_stats WHERE view = 'public.dd_total'}),
	'2000/3000', 'after its partitions moved, each of the 2000 ids sent again was a duplicate');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM (
			(SELECT dev, count(*) AS n, sum(v) AS s FROM batch.dd GROUP BY dev)
			EXCEPT ALL SELECT dev, n, s FROM dd_total) x}),
	'0', 'and the view counts each id once');
my $log = slurp_file($node->logfile);
my $given = () = $log =~ /kappa worker \d of stream "ev" was given/g;
ok($given >= 4, "the group reassigned partitions ($given assignments)");

# Finalizing with idle partitions.  Stream fin: 10-second windows,
# watermark 10 s, idle after 5 s, late events kept.  Each partition first
# gets an event at 0:00 (so that none is idle for never having spoken),
# then partitions 0, 2 and 3 one event a second up to 1:00, partition 1 up
# to 0:30 (keys k0..k2 in every partition, so both workers share every
# window).  Once every partition is idle, the windows the largest
# partition watermark (0:50) has passed are final, and their states go
# once both workers have passed it.  Then partition 1 gets 0:31..0:45
# (late: their windows end by 0:50), and 0:55..0:58 (on time, into the
# open window 0:50..1:00).
$node->safe_psql('postgres', q{
	CREATE TABLE batch.fin AS
	SELECT i, p, 'k' || (i % 3) AS k, timestamptz '2026-01-01 00:00:00+00' + s * interval '1 s' AS ts, i % 10 AS v,
		CASE WHEN s = 0 THEN 'warm' WHEN p = 1 AND s BETWEEN 31 AND 45 THEN 'late'
			WHEN p = 1 AND s >= 55 THEN 'after' ELSE 'first' END AS phase
	FROM (SELECT row_number() OVER (ORDER BY p, s) AS i, p, s
		FROM generate_series(0, 3) p, generate_series(0, 60) s
		WHERE p <> 1 OR s <= 30 OR s BETWEEN 31 AND 45 OR s BETWEEN 55 AND 58) x;
	SELECT kappa_create_stream('fin', topic => 'fin', brokers => '} . $b . q{',
		columns => 'i int, k text, ts timestamptz NOT NULL, v int', event_time => 'ts',
		watermark => '10 seconds', idle_timeout => '5 seconds', keep_late => true);
	SELECT kappa_create_view('fin_w', $q$SELECT k, w.window_start, count(*) AS n, sum(v) AS s
		FROM fin, kappa_tumble(ts, '10 seconds') w GROUP BY k, w.window_start$q$);
});
sub produce_fin
{
	my ($phase) = @_;
	foreach my $p (0 .. 3)
	{
		kcat_produce('fin',
			"SELECT json_build_object('i', i, 'k', k, 'ts', ts, 'v', v)::text FROM batch.fin "
			  . "WHERE phase = '$phase' AND p = $p ORDER BY ts",
			"$phase-$p", '-p', $p);
	}
}
my $fin_oracle = q{SELECT k, w.window_start, count(*) AS n, sum(v) AS s
	FROM batch.fin, kappa_tumble(ts, '10 seconds') w WHERE phase IN (%s) GROUP BY k, w.window_start};
sub fin_diff
{
	my $oracle = sprintf($fin_oracle, shift);
	return $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM fin_w EXCEPT ALL ($oracle)) a)
			|| '/' || (SELECT count(*) FROM (($oracle) EXCEPT ALL SELECT * FROM fin_w) b)});
}
ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 2 AND bool_and(partitions = 2) FROM kappa_workers WHERE stream = 'fin' AND state = 'running'}),
	'stream fin: two workers with two partitions each');
produce_fin('warm');
is($node->safe_psql('postgres', "SELECT kappa_wait('fin', '60 seconds')"), 't', 'stream fin consumed an event per partition');
produce_fin('first');
is($node->safe_psql('postgres', "SELECT kappa_wait('fin', '60 seconds')"), 't', 'stream fin consumed its first events');
is(fin_diff(q{'warm', 'first'}), '0/0', 'its view equals the batch query');
ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM kappa.view_state s JOIN kappa.views v USING (view_id)
		WHERE v.view_name = 'fin_w' AND s.window_end <= '2026-01-01 00:00:50+00'}),
	'once every partition is idle, the states of windows ending by 0:50 go');
produce_fin('late');
produce_fin('after');
is($node->safe_psql('postgres', "SELECT kappa_wait('fin', '60 seconds')"), 't', 'stream fin consumed the rest');
is($node->safe_psql('postgres', q{
		SELECT string_agg(convert_from(l.payload, 'UTF8')::json->>'i', ',' ORDER BY l."offset")
		FROM kappa.late_events l JOIN kappa.views v USING (view_id) WHERE v.view_name = 'fin_w'}),
	$node->safe_psql('postgres', q{SELECT string_agg(i::text, ',' ORDER BY ts) FROM batch.fin WHERE phase = 'late'}),
	'the events of final windows were late, whichever worker read them');
is(fin_diff(q{'warm', 'first', 'after'}), '0/0',
	'the view holds every on-time event once, and no late one');

# Kill a worker: crash recovery empties the states of every view, and one
# of the two workers rebuilds each view from the log.
$pid = $node->safe_psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'ev' AND worker = 0");
kill 'KILL', $pid;
ok($node->poll_query_until('postgres', qq{
		SELECT (SELECT pid <> $pid FROM kappa_workers WHERE stream = 'ev' AND worker = 0)
			AND (SELECT count(*) = 7 FROM kappa.view_state_marker)}),
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
is($rebuilt, 7, 'each view was rebuilt once, by one of the workers');

# A view that writes only final rows cannot run under several workers,
# which finalize windows by deleting states another worker stored: it
# fails, with 0A000, and the other views go on.
$node->safe_psql('postgres', qq{SELECT kappa_create_view('tumble_final', \$q\$$queries{tumble}\$q\$,
	'{"emit": "final"}')});
ok($node->poll_query_until('postgres', q{
		SELECT status = 'failed' AND status_sqlstate = '0A000' FROM kappa.views WHERE view_name = 'tumble_final'}),
	'an emit-final view fails under two workers, with 0A000');

# kappa_alter_stream restarts both workers; they resume from their stored
# positions, and a view over the new column, shared by both, equals its
# batch query.
my %before = map { split /\|/ } split /\n/, $node->safe_psql('postgres',
	q{SELECT worker || '|' || pid FROM kappa_workers WHERE stream = 'ev'});
$node->safe_psql('postgres', q{SELECT kappa_alter_stream('ev', add_columns => 'tag text', add_paths => '{"tag": "usr"}')});
ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = 2 FROM kappa_workers WHERE stream = 'ev' AND state = 'running'
			AND pid <> CASE worker WHEN 0 THEN $before{0} ELSE $before{1} END}),
	'an alter restarts both workers of the stream');
ok(both_consume(), 'and both consume again');
$node->safe_psql('postgres', q{SELECT kappa_create_view('by_tag', 'SELECT tag, count(*) AS n, sum(v) AS s FROM ev GROUP BY tag')});
check_views($n, 'after an alter');
is($node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM (SELECT * FROM by_tag EXCEPT ALL SELECT usr, count(*), sum(v) FROM batch.ev GROUP BY usr) a)
			|| '/' || (SELECT count(*) FROM (SELECT usr, count(*), sum(v) FROM batch.ev GROUP BY usr EXCEPT ALL SELECT * FROM by_tag) b)}),
	'0/0', 'a view over the new column, kept by both workers, equals its batch query');

$node->stop;
stop_broker($broker);
done_testing();
