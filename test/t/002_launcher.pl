# The launcher's discipline: it notices streams created and dropped without
# a restart, starts exactly one worker per stream, follows kappa.enabled on
# SIGHUP, survives its own SIGTERM without leaving duplicates, and restarts
# failing workers with an exponential backoff instead of a crash loop.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('tap_a:3', 'tap_b:2');
my $node = kappa_node('launcher', conf => "kappa.launcher_naptime = '1h'\n");
my $b = $broker->{bootstrap};

sub workers
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(format('%s:%s:%s', stream, state, partitions), ',' ORDER BY stream) FROM kappa_workers");
}

sub worker_processes
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kappa worker'");
}

# Creating streams starts their workers at once: the launcher naps for an
# hour, so only the commit's wake-up can explain a prompt start.
my $offset = -s $node->logfile;
$node->safe_psql('postgres',
	"SELECT kappa_create_stream('a', brokers => '$b', topic => 'tap_a', columns => 'x int')");
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM kappa_workers WHERE state = 'running'"),
	'a worker runs for a new stream');
is(workers(), 'a:running:3', 'it reached the topic and its 3 partitions');
ok(log_contains($node, qr/kappa launcher: stream "a" created, starting its worker/, $offset),
	'the launcher logged the new stream');

$node->safe_psql('postgres',
	"SELECT kappa_create_stream('b', brokers => '$b', topic => 'tap_b', columns => 'x int')");
ok($node->poll_query_until('postgres', "SELECT count(*) = 2 FROM kappa_workers WHERE state = 'running'"),
	'a second stream gets its own worker');
is(workers(), 'a:running:3,b:running:2', 'both workers run');
is(worker_processes(), '2', 'exactly two worker processes');

# A rolled-back creation starts nothing.
$node->safe_psql('postgres',
	"BEGIN; SELECT kappa_create_stream('c', brokers => '$b', topic => 'tap_b', columns => 'x int'); ROLLBACK;");
$node->safe_psql('postgres', "SELECT kappa_drop_stream('a')");
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM kappa_workers"),
	'dropping a stream stops its worker');
is(workers(), 'b:running:2', 'only the remaining stream runs; the rolled-back one never did');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kappa worker'"),
	'and its process is gone');
ok(log_contains($node, qr/kappa launcher: stream "a" dropped, stopping its worker/, $offset),
	'the launcher logged the drop');

# SIGHUP: kappa.enabled = off stops every worker, on starts them again.
$node->safe_psql('postgres', "ALTER SYSTEM SET kappa.enabled = off");
$node->reload;
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'kappa worker'"),
	'kappa.enabled = off stops the workers');
is(workers(), 'b:disabled:', 'and kappa_workers says so');
ok(log_contains($node, qr/kappa is now disabled/, $offset), 'the launcher logged it');
$node->safe_psql('postgres', "ALTER SYSTEM RESET kappa.enabled");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM kappa_workers WHERE state = 'running'"),
	'kappa.enabled = on starts them again');

# SIGTERM to the launcher: it stops its workers as it goes, the postmaster
# restarts it, and it starts exactly one worker per stream again.
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kappa launcher'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kappa launcher' AND pid <> $launcher"),
	'the launcher comes back after SIGTERM');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM kappa_workers WHERE state = 'running'"),
	'and restarts the worker');
is(worker_processes(), '1', 'no duplicate worker is left behind');

# A worker that dies is restarted after a backoff and counted.
my $worker = $node->safe_psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'b'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($worker)");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM kappa_workers WHERE state = 'running' AND pid <> $worker AND failures = 1"),
	'a terminated worker is restarted, and the failure counted');

# A broker that cannot be reached: the worker fails, the error shows, and
# restarts back off 1 s, 2 s, 4 s instead of looping.
my $b_pid = $node->safe_psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'b'");
my $dead_port = PostgreSQL::Test::Cluster::get_free_port();
$offset = -s $node->logfile;
$node->safe_psql('postgres',
	"SELECT kappa_create_stream('dead', brokers => '127.0.0.1:$dead_port', columns => 'x int')");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM kappa_workers WHERE stream = 'dead' AND failures >= 3"),
	'the worker of an unreachable broker keeps failing');
my $row = $node->safe_psql('postgres',
	"SELECT state, last_error, next_start_at > last_error_at FROM kappa_workers WHERE stream = 'dead'");
like($row, qr/^(backoff|starting|connecting)\|could not reach the brokers for stream "dead"\|/,
	'kappa_workers shows the error');
my $log = slurp_file($node->logfile, $offset);
my @delays = $log =~ /kappa worker for stream "dead" exited; restarting it in (\d+) s/g;
is_deeply([ @delays[ 0 .. 2 ] ], [ 1, 2, 4 ], 'restarts back off exponentially');
is($node->safe_psql('postgres', "SELECT format('%s:%s', state, pid) FROM kappa_workers WHERE stream = 'b'"),
	"running:$b_pid", 'the other stream\'s worker runs on, untouched');

# Dropping the failing stream ends its retries.
$node->safe_psql('postgres', "SELECT kappa_drop_stream('dead')");
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM kappa_workers WHERE stream = 'dead'"),
	'dropping the failing stream ends its retries');

# A fast shutdown stops everything cleanly.
$node->stop('fast');
ok(!log_contains($node, qr/PANIC|TRAP|terminated by signal/), 'no crash anywhere');
stop_broker($broker);
done_testing();
