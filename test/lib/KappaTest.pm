# test/lib/KappaTest.pm
#
# Helpers for kappa's TAP tests: a PostgreSQL::Test::Cluster node with
# kappa preloaded, a private kappa-broker (so that a test may stop it, or
# use a topic nobody else writes), and bounded waits on real conditions.

package KappaTest;

use strict;
use warnings;

use Exporter 'import';
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(kappa_node start_broker stop_broker broker_control wait_until log_contains);

# A new node with kappa preloaded and its launcher in database postgres.
# Options: conf => extra postgresql.conf lines, preload => 0 to leave kappa
# out, extension => 0 to skip CREATE EXTENSION, init => a hash of options
# for PostgreSQL::Test::Cluster's init (e.g. allows_streaming => 1).
sub kappa_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	my $preload = $opts{preload} // 1;

	$node->init(%{ $opts{init} // {} });
	$node->append_conf('postgresql.conf',
		($preload ? "shared_preload_libraries = 'kappa'\n" : '')
		  . "kappa.database = 'postgres'\n"
		  . "max_worker_processes = 16\n"
		  . ($opts{conf} // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION kappa')
	  if $preload && ($opts{extension} // 1);
	return $node;
}

# Every broker start_broker started, for the END block below.
my @started_brokers;

# Start a private kappa-broker with the given topics ("name:partitions");
# returns a handle whose {bootstrap} is the broker list.  An optional hash
# reference first gives options: brokers => N, and control => 1 for the
# fault controls (see broker_control).
sub start_broker
{
	my (@topics) = @_;
	my $opts = ref $topics[0] eq 'HASH' ? shift @topics : {};
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $port_file = "$dir/broker.addr";
	my $control_file = "$dir/control.addr";
	# built by make in tools/ (make install does not install it)
	my $bin = $ENV{KAPPA_BROKER_BIN} // 'tools/kappa-broker';
	my @cmd = ($bin, (map { ('--topic', $_) } @topics),
		'--port-file', $port_file, '--quiet',
		($opts->{brokers} ? ('--brokers', $opts->{brokers}) : ()),
		($opts->{control} ? ('--control-file', $control_file) : ()));
	my $h = IPC::Run::start(\@cmd, '>', "$dir/broker.out", '2>', "$dir/broker.err");

	wait_until(sub { -s $port_file || !$h->pumpable }, 20)
	  or die "kappa-broker did not start";
	die "kappa-broker exited: " . slurp_file("$dir/broker.err") unless -s $port_file;
	my $bootstrap = slurp_file($port_file);
	chomp $bootstrap;
	my $control;
	if ($opts->{control})
	{
		$control = slurp_file($control_file);
		chomp $control;
	}
	my $broker = { handle => $h, bootstrap => $bootstrap, dir => $dir, control => $control };
	push @started_brokers, $broker;
	return $broker;
}

# Send one fault command to a broker started with control => 1 (see
# tools/broker_control.c: down N, up N, rtt N MS, errors APIKEY COUNT
# ERRCODE, leader TOPIC PARTITION N); dies unless it answers "ok".
sub broker_control
{
	my ($broker, $command) = @_;
	my $socket = IO::Socket::INET->new(PeerAddr => $broker->{control}, Proto => 'tcp', Timeout => 10)
	  or die "cannot reach the broker's control port: $!";
	print $socket "$command\n";
	my $answer = <$socket> // '';
	close $socket;
	chomp $answer;
	die "broker control \"$command\": $answer" unless $answer eq 'ok';
	return;
}

# Stop a broker started by start_broker.
sub stop_broker
{
	my ($broker) = @_;
	return unless $broker->{handle}->pumpable;
	$broker->{handle}->signal('TERM');
	$broker->{handle}->finish;
	return;
}

# Brokers a test started and did not stop (it forgot, or died first) are
# stopped when it exits, so that none outlives its test.
END
{
	my $status = $?;
	foreach my $broker (@started_brokers)
	{
		eval { stop_broker($broker); };
	}
	$? = $status;
}

# Poll a condition every 50 ms until it holds or timeout seconds pass;
# returns whether it held.
sub wait_until
{
	my ($condition, $timeout) = @_;
	my $deadline = time() + $timeout;
	while (time() < $deadline)
	{
		return 1 if $condition->();
		usleep(50_000);
	}
	return $condition->() ? 1 : 0;
}

# Whether the node's server log, from byte offset on, matches the pattern.
sub log_contains
{
	my ($node, $pattern, $offset) = @_;
	my $log = slurp_file($node->logfile, $offset // 0);
	return $log =~ $pattern;
}

1;
