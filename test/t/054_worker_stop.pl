# A worker told to stop between two flushes exits, though it holds every
# message it read since its last flush (it keeps them to apply again
# without seeking, should a flush fail).  librdkafka's destroy waits until
# the process gives back every message it holds, so a worker that exited
# holding some would never end: its stream would stay stopped and the
# server could not shut down.  Flushes here come an hour apart, so the
# worker holds all it read; an IMMUTABLE function in the view's WHERE
# logs each event the worker applies, which tells the test when the worker
# has read them all.  The worker is stopped three ways: kappa.enabled =
# off (the launcher terminates it), pg_terminate_backend, and a fast
# shutdown of the server.  Each time it must be gone within 30 s, nothing
# flushed.  Then, with flushes as usual, the view equals its batch query
# over every event produced: nothing read and dropped by a stop is lost.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('stop:2');
my $b = $broker->{bootstrap};
my $node = kappa_node('stop', conf => "kappa.flush_interval = '1h'\nkappa.restart_backoff_max = 1\n");
my $su = sub { $node->safe_psql('postgres', $_[0]) };

$su->(qq{
	CREATE TABLE produced (id int PRIMARY KEY, dev text, v int);
	CREATE FUNCTION seen(id int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS \$f\$
	BEGIN
		RAISE LOG 'kappa test saw event %', id;
		RETURN true;
	END \$f\$;
	SELECT kappa_create_stream('st', topic => 'stop', brokers => '$b',
		columns => 'id int NOT NULL, dev text, v int');
	SELECT kappa_create_view('per_dev',
		'SELECT dev, count(*) AS n, sum(v) AS s FROM st WHERE seen(id) GROUP BY dev');
});

# Produce events (from, to] and wait until the worker has applied the
# last of them, by the log line its view's function writes.
sub produce_and_wait_seen
{
	my ($from, $to) = @_;
	my $offset = -s $node->logfile;
	$su->(qq{
		INSERT INTO produced SELECT i, 'd' || (i % 7), i % 100 FROM generate_series($from + 1, $to) i;
		SELECT count(kappa_produce('st', json_build_object('id', id, 'dev', dev, 'v', v)::text,
			key => id::text))
		FROM produced WHERE id > $from;
	});
	# one partition's events come in order, the other's may come first
	my $seen = wait_until(sub {
		my $log = slurp_file($node->logfile, $offset);
		my %ids = map { $_ => 1 } ($log =~ /kappa test saw event (\d+)/g);
		return !grep { !$ids{$_} } ($from + 1 .. $to);
	}, 60);
	ok($seen, "the worker applied events $from..$to");
	return;
}

sub worker_pid
{
	return $su->("SELECT coalesce(pid, 0) FROM kappa_workers WHERE stream = 'st'");
}

# The process is gone (not merely stopped being a worker of kappa's).
sub gone_within
{
	my ($pid, $seconds) = @_;
	return wait_until(sub { !kill(0, $pid) }, $seconds);
}

sub nothing_flushed
{
	my ($what) = @_;
	is($su->('SELECT count(*) FROM per_dev'), '0', "$what: nothing was flushed, so the worker held every message");
	return;
}

# 1. kappa.enabled = off: the launcher terminates the worker and waits.
wait_until(sub { worker_pid() != 0 }, 30) or die 'the worker did not start';
produce_and_wait_seen(0, 400);
my $pid = worker_pid();
$su->("ALTER SYSTEM SET kappa.enabled = off; SELECT pg_reload_conf();");
ok(gone_within($pid, 30), 'kappa.enabled = off: the worker holding messages exited');
ok(wait_until(sub { $su->("SELECT state FROM kappa_workers WHERE stream = 'st'") eq 'disabled' }, 30),
	'and the launcher reports it disabled');
nothing_flushed('kappa.enabled = off');

# 2. pg_terminate_backend: the worker dies (FATAL) holding messages.
$su->("ALTER SYSTEM RESET kappa.enabled; SELECT pg_reload_conf();");
produce_and_wait_seen(400, 700);
$pid = worker_pid();
$su->("SELECT pg_terminate_backend($pid)");
ok(gone_within($pid, 30), 'pg_terminate_backend: the worker holding messages exited');
nothing_flushed('pg_terminate_backend');

# 3. A fast shutdown, which waits for every background worker.
ok(wait_until(sub { worker_pid() != 0 && worker_pid() != $pid }, 30), 'the launcher started the worker again');
produce_and_wait_seen(700, 900);
$pid = worker_pid();
$node->stop('fast');
ok(!kill(0, $pid), 'a fast shutdown ended the worker holding messages');

# Flushes as usual: every event is applied once.
$node->append_conf('postgresql.conf', "kappa.flush_interval = '100ms'\n");
$node->start;
$su->("SELECT kappa_wait('st', '60 seconds')");
is($su->('SELECT dev, n, s FROM per_dev ORDER BY dev'),
	$su->('SELECT dev, count(*), sum(v) FROM produced GROUP BY dev ORDER BY dev'),
	'the view equals its batch query over every event produced');

$node->stop;
stop_broker($broker);
done_testing();
