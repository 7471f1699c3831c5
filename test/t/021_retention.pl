# A crash empties a view's state, and the worker rebuilds it by reading the
# log again from where the view began.  When retention has deleted that
# part of the log, rebuilding would give wrong numbers: the view is marked
# needs_replay instead, said so in kappa_views, kappa_stats and the server
# log, and left alone.  A view that began after the retention point is
# rebuilt exactly.  The embedded broker keeps about 5 MB per partition.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('ret:1');
my $node = kappa_node('retention', conf => "kappa.flush_interval = '100ms'\n");
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();

$node->safe_psql('postgres', qq{
	SELECT kappa_create_stream('rt', topic => 'ret', brokers => '$b', columns => 'v int, pad text');
	SELECT kappa_create_view('early', 'SELECT count(*) AS n, sum(v) AS s FROM rt');
});

# Produce messages numbered from..to, about 250 bytes each, and wait
# until the worker has committed them.
my $pad = 'x' x 230;
sub produce
{
	my ($from, $to) = @_;
	my $file = "$dir/m$from.txt";
	open my $fh, '>', $file or die $!;
	print $fh qq({"v": $_, "pad": "$pad"}\n) foreach $from .. $to;
	close $fh;
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'ret', '-p', '0', '-l', $file ]) or die "kcat failed";
	is($node->safe_psql('postgres', "SELECT kappa_wait('rt', '60 seconds')"), 't',
		"messages $from to $to consumed");
	return;
}

# Where the log begins, from the broker (not from kappa).
sub log_start
{
	my $out;
	IPC::Run::run([ 'kcat', '-Q', '-b', $b, '-t', 'ret:0:-2' ], '>', \$out) or die "kcat -Q failed";
	$out =~ /offset (\d+)/ or die "unexpected kcat -Q output: $out";
	return $1;
}

produce(1, 10_000);
produce(10_001, 25_000);
my $start = log_start();
ok($start > 0, "retention deleted the first $start messages");

# A view begun now reads from where the log begins.
$node->safe_psql('postgres', q{SELECT kappa_create_view('late', 'SELECT count(*) AS n, sum(v) AS s FROM rt')});
is($node->safe_psql('postgres', "SELECT kappa_wait('rt', '60 seconds')"), 't', 'the late view caught up');
my $sum_from = sub { my ($lo, $hi) = @_; return ($lo + $hi) * ($hi - $lo + 1) / 2; };
is($node->safe_psql('postgres', 'SELECT n, s FROM early'), '25000|' . $sum_from->(1, 25_000),
	'the early view has every message (it read them before retention)');
is($node->safe_psql('postgres', 'SELECT n, s FROM late'),
	(25_000 - $start) . '|' . $sum_from->($start + 1, 25_000),
	'the late view has the messages the log still held');

# Crash: the states are gone.  The worker rebuilds the late view before
# anything more is produced: producing moves the embedded broker's log
# start by a whole segment at a time, and where its segments end depends
# on how kcat batched the messages, so a later start could otherwise
# overtake the late view's first offset as well.
my $log_offset = -s $node->logfile;
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', "SELECT kappa_wait('rt', '60 seconds')"), 't',
	'the worker is back, and the late view rebuilt');
is(log_start(), $start, 'the log still begins where it did before the crash');
produce(25_001, 25_100);

is($node->safe_psql('postgres', q{SELECT status FROM kappa_views WHERE name = 'public.early'}),
	'needs_replay', 'the early view is marked as needing a replay');
like($node->safe_psql('postgres', q{SELECT status_detail FROM kappa_views WHERE name = 'public.early'}),
	qr/partition 0 of the log now begins at offset $start, after offset 0 where the view began/,
	'kappa_views says why');
is($node->safe_psql('postgres', q{SELECT DISTINCT view_status FROM kappa_stats WHERE view = 'public.early'}),
	'needs_replay', 'kappa_stats shows it');
ok(log_contains($node, qr/WARNING:  kappa view public\.early needs a replay and is not kept current/, $log_offset),
	'the server log says so');
is($node->safe_psql('postgres', 'SELECT n, s FROM early'), '25000|' . $sum_from->(1, 25_000),
	'the early view was left as it was, not rebuilt from a partial log');

is($node->safe_psql('postgres', q{SELECT status FROM kappa_views WHERE name = 'public.late'}),
	'live', 'the late view is live');
ok(log_contains($node, qr/kappa view public\.late lost its state to crash recovery or a failover; rebuilding it from the log/, $log_offset),
	'the late view was rebuilt');
is($node->safe_psql('postgres', 'SELECT n, s FROM late'),
	(25_100 - $start) . '|' . $sum_from->($start + 1, 25_100),
	'the late view, rebuilt from where it began, is exact');

stop_broker($broker);
done_testing();
