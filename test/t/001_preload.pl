# Without shared_preload_libraries kappa refuses clearly, with a hint; with
# it, the extension installs and its launcher runs.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = kappa_node('no_preload', preload => 0);

# Before CREATE EXTENSION the functions simply do not exist.
my ($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a int')");
isnt($ret, 0, 'calling kappa before CREATE EXTENSION fails');
like($err, qr/ERROR:  42883: function kappa_create_stream\(unknown, brokers => unknown, columns => unknown\) does not exist/,
	'with undefined_function');

# CREATE EXTENSION without the preloaded library fails with the hint.
($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nCREATE EXTENSION kappa");
isnt($ret, 0, 'CREATE EXTENSION fails without shared_preload_libraries');
like($err, qr/ERROR:  55000: kappa must be loaded via "shared_preload_libraries"/,
	'with object_not_in_prerequisite_state');
like($err, qr/HINT:  Add kappa to shared_preload_libraries in postgresql.conf and restart the server\./,
	'and a hint saying what to do');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'kappa'"),
	'0', 'nothing was installed');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_namespace WHERE nspname = 'kappa'"),
	'0', 'not even the schema');

# Preloading, the same statement succeeds and the launcher runs.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'kappa'\n");
$node->restart;
$node->safe_psql('postgres', 'CREATE EXTENSION kappa');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kappa launcher'"),
	'the launcher runs once preloaded');
ok(log_contains($node, qr/kappa launcher started in database "postgres"/),
	'and says so in the log');

# Installed, then the preload is taken away: every function refuses, with
# the same hint, rather than act without its launcher.
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$node->restart;
foreach my $call (
	"SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a int')",
	"SELECT kappa_drop_stream('s')",
	"SELECT kappa_produce('s', 'x')",
	"SELECT * FROM kappa_peek('s', 1)",
	"SELECT * FROM kappa_workers")
{
	($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$call");
	like($err, qr/ERROR:  55000: kappa must be loaded via "shared_preload_libraries".*HINT:  Add kappa/s,
		"without the preload, '$call' fails with the hint");
}
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'kappa'\n");
$node->restart;

# The launcher waits for a database that does not exist yet, restarting
# at the postmaster's pace rather than in a tight loop.
my $other = kappa_node('missing_db', conf => "kappa.database = 'later'\n", extension => 0);
ok( wait_until(sub { log_contains($other, qr/database "later" does not exist/) }, 30),
	'a launcher whose database is missing reports it');
$other->safe_psql('postgres', 'CREATE DATABASE later');
ok( $other->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kappa launcher' AND datname = 'later'"),
	'and starts once the database exists');
my $failures = () = slurp_file($other->logfile) =~ /database "later" does not exist/g;
cmp_ok($failures, '<=', 4, "it tried only a few times ($failures), not in a loop");

$other->stop;
$node->stop;
done_testing();
