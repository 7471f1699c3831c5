# The call sequences that crashed the server or broke a session in 0.1
# (issue 11), each run as it was reported: several documented calls in
# one psql session, so that what one call leaves in the backend (memory
# contexts, plans, caches, an aborted subtransaction) meets the next.
# The session walk (050) finds such sequences at random; this test keeps
# the known ones, deterministically:
#
#  - kappa_replay twice; kappa_replay then kappa_check; kappa_replay with a
#    new query then psql's \d of the view;
#  - kappa_check on a stream with a dedup_key whose history is split
#    between the archive and the log (retention cut the log);
#  - a kappa_replay cancelled by statement_timeout while it reads, then
#    kappa_replay, kappa_check and kappa_wait in the same session;
#  - a replay kept beside its view (swap => false) of a view whose columns
#    are named a and b and which has no key columns: kappa_compare finds
#    no difference; kappa_drop_stream with cascade drops the view and its
#    version.
#
# After each sequence the backend is the same (its pid), the server did
# not crash, and the views equal their queries as batch SQL over the
# events produced, duplicates removed.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 52_000;        # over 5 MB per partition: retention drops the oldest
my $dups = 2_000;      # ids produced twice, the second copy right after
my $broker = start_broker('seq:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
mkdir "$dir/archive" or die $!;
my $node = kappa_node('seq', conf => "kappa.flush_interval = '100ms'\nkappa.flush_events = 5000\n");
my $su = sub { $node->safe_psql('postgres', $_[0]) };

$su->(qq{
	CREATE SCHEMA batch;
	CREATE TABLE batch.ev AS
	SELECT i, 'd' || (i % 13) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '100 ms' + ((i * 37) % 101 - 50) * interval '10 ms' AS ts,
		(i * 13) % 97 AS v, repeat('p', 180) AS pad
	FROM generate_series(1, $n) i;
	-- the messages in the order produced: the duplicates after their originals
	CREATE TABLE batch.sent AS
	SELECT i, dev, ts, v, pad, i AS seq FROM batch.ev
	UNION ALL SELECT i, dev, ts, v, pad, i + 0.5 FROM batch.ev WHERE i % ($n / $dups) = 0;
	CREATE FUNCTION public.slow_ok(i int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS \$f\$
	BEGIN
		IF current_setting('seq_test.slow', true) = 'on' THEN
			PERFORM pg_catalog.pg_sleep(0.005);
		END IF;
		RETURN true;
	END \$f\$;
	SELECT kappa_create_stream('sq', topic => 'seq', brokers => '$b', archive => '$dir/archive',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts',
		watermark => '1 day', dedup_key => 'i');
});
my %queries = (
	tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM EV, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end},
	running => q{SELECT dev, count(*) AS n, sum(v) AS s FROM EV GROUP BY dev},
	slow => q{SELECT dev, count(*) AS n FROM EV WHERE slow_ok(i) GROUP BY dev},
	tot => q{SELECT count(*) AS a, sum(v) AS b FROM EV},
);
foreach my $name (sort keys %queries)
{
	(my $q = $queries{$name}) =~ s/EV/sq/;
	$su->("SELECT kappa_create_view('$name', \$q\$$q\$q\$)");
}

# Produce every message, keyed by id (so a duplicate goes to its
# original's partition), 4,000 ids at a time, waiting for the worker each
# time: a worker that fell behind retention would lose messages (issue 12).
my $consumed = 1;
for (my $lo = 0; $lo < $n; $lo += 4_000)
{
	$su->("COPY (SELECT i || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v, 'pad', pad)::text "
		  . "FROM batch.sent WHERE i > $lo AND i <= $lo + 4000 ORDER BY seq) TO '$dir/sent$lo.txt'");
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'seq', '-K', '|', '-l', "$dir/sent$lo.txt" ])
	  or die "kcat failed";
	$consumed &&= $su->("SELECT kappa_wait('sq', '120 seconds')") eq 't';
}
ok($consumed, 'every message consumed');
my $retained;
IPC::Run::run([ 'kcat', '-Q', '-b', $b, '-t', 'seq:0:-2', '-t', 'seq:1:-2' ], '>', \$retained)
  or die "kcat -Q failed";
my @starts = $retained =~ /offset (\d+)/g;
is(scalar(grep { $_ > 0 } @starts), 2, "retention cut the log of both partitions (log starts: @starts)");
is($su->("SELECT sum(duplicate) FROM kappa_stats WHERE view = 'public.running'"), $dups,
	'every duplicate was dropped as one');

# Each view equals its query as batch SQL over the events, once each.
sub views_exact
{
	my ($what, @names) = @_;
	foreach my $name (@names)
	{
		(my $q = $queries{$name}) =~ s/EV/batch.ev/;
		my $cols = $name eq 'tot' ? 'a, b' : $name eq 'tumble' ? 'dev, window_start, window_end, n, s'
		  : $name eq 'running' ? 'dev, n, s' : 'dev, n';
		is($su->("SELECT count(*) FROM ((SELECT $cols FROM $name EXCEPT ALL SELECT $cols FROM ($q) q)
			UNION ALL (SELECT $cols FROM ($q) q EXCEPT ALL SELECT $cols FROM $name)) d"),
			'0', "$what: $name equals its batch query");
	}
	return;
}

# One session: the statements, with the backend's pid before and after.
sub session
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT 'pid ' || pg_backend_pid();\n$sql\nSELECT 'pid ' || pg_backend_pid();",
		on_error_stop => 0);
	my @pids = $out =~ /^pid (\d+)$/mg;
	return ($out, $err, @pids);
}

sub same_backend
{
	my ($what, @pids) = @_;
	ok(@pids == 2 && $pids[0] == $pids[1], "$what: one backend throughout (@pids)");
	return;
}

# kappa_replay twice, then kappa_check, in one session.
my ($out, $err, @pids) = session(q{
	SELECT 'replay ' || (archive_events + log_events) FROM kappa_replay('running');
	SELECT 'replay ' || (archive_events + log_events) FROM kappa_replay('running');
	SELECT 'replay ' || (archive_events + log_events) FROM kappa_replay('tumble');
	SELECT 'check ' || count(*) FROM kappa_check('tumble');
	SELECT 'check ' || count(*) FROM kappa_check('running');
});
same_backend('replay, replay, check', @pids);
is(join(',', $out =~ /^replay (\d+)$/mg), join(',', ($n + $dups) x 3),
	'each replay read every message, from archive and log') or diag($err);
is(join(',', $out =~ /^check (\d+)$/mg), '0,0', 'kappa_check after the replays finds nothing');
views_exact('after replay twice', 'running', 'tumble');

# kappa_replay with a new query, then psql's \d of the view.
$queries{running} = q{SELECT dev, count(*) AS n, sum(v) AS s, max(v) AS mx FROM EV GROUP BY dev};
(my $new_q = $queries{running}) =~ s/EV/sq/;
($out, $err, @pids) = session(qq{
	SELECT 'replayed' FROM kappa_replay('running', query => \$q\$$new_q\$q\$);
	\\d running
	SELECT 'check ' || count(*) FROM kappa_check('running');
});
same_backend('replay with a new query, \d', @pids);
like($out, qr/^\s*mx\s*\|\s*integer/m, '\d shows the new column') or diag($err);
like($out, qr/^check 0$/m, 'kappa_check of the new query finds nothing');
views_exact('after a replay with a new query', 'running');

# kappa_check on the dedup stream whose history is split.
is($su->("SELECT count(*) FROM kappa_check('tumble')"), '0',
	'kappa_check with dedup over archive and log finds nothing');

# A replay cancelled while it reads, then more calls in the session.
($out, $err, @pids) = session(q{
	SET seq_test.slow = on;
	SET statement_timeout = '1s';
	SELECT 'replayed' FROM kappa_replay('slow');
	RESET statement_timeout;
	RESET seq_test.slow;
	SELECT 'status ' || status FROM kappa_views WHERE name = 'public.slow';
	SELECT 'replay ' || (archive_events + log_events) FROM kappa_replay('slow');
	SELECT 'check ' || count(*) FROM kappa_check('slow');
	SELECT 'wait ' || kappa_wait('sq', '60 seconds');
});
same_backend('cancelled replay, replay, check, wait', @pids);
like($err, qr/canceling statement due to statement timeout/, 'the slow replay was cancelled');
unlike($err, qr/current transaction is aborted|25P02/, 'no call after it found its transaction aborted');
like($out, qr/^status live$/m, 'the view stayed live');
like($out, qr/^replay ${\($n + $dups)}$/m, 'the replay after the cancelled one read every message');
like($out, qr/^check 0$/m, 'and kappa_check finds nothing');
like($out, qr/^wait true$/m, 'kappa_wait in the same session');
views_exact('after a cancelled replay', 'slow', 'tot');

# A version beside a view without key columns, named a and b.
($out, $err, @pids) = session(q{
	SELECT 'replayed' FROM kappa_replay('tot', swap => false);
	SELECT 'versions ' || count(*) FROM kappa_views WHERE version_of = 'public.tot' AND name <> version_of;
	SELECT max(version) FILTER (WHERE current) AS cur, max(version) FILTER (WHERE NOT current) AS beside
		FROM kappa_views WHERE version_of = 'public.tot' \\gset
	SELECT 'compare ' || count(*) FROM kappa_compare('tot', :cur, :beside);
});
same_backend('replay beside, compare', @pids);
like($out, qr/^versions 1$/m, 'the replay kept a version beside the view') or diag($err);
like($out, qr/^compare 0$/m, 'kappa_compare finds no difference between the two rows');
($out, $err, @pids) = session(q{
	SELECT 'dropped' FROM kappa_drop_stream('sq', cascade => true);
	SELECT 'left ' || count(*) FROM kappa_views;
	SELECT 'relations ' || count(*) FROM pg_class WHERE relname IN ('tot', 'slow', 'running', 'tumble')
		OR relname LIKE 'tot@%' OR relname LIKE '%#replay%';
});
same_backend('drop_stream cascade', @pids);
like($out, qr/^dropped$/m, 'kappa_drop_stream with cascade dropped a stream with a kept version') or diag($err);
like($out, qr/^left 0$/m, 'no view or version is left');
like($out, qr/^relations 0$/m, 'nor any of their relations');

ok(!log_contains($node, qr/terminated by signal|double free|corrupted|TRAP:/), 'no crash in the server log');
$node->stop;
stop_broker($broker);
done_testing();
