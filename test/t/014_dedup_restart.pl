# Dedup keys survive a restart: a duplicate of a message consumed before
# the server restarted (cleanly) is still recognised and counted as a
# duplicate, not applied a second time.  A key seen last before the
# watermark horizon is forgotten, whenever flushes happen: the message is
# new, and its key, remembered again with the new time, still survives a
# restart.  Hand-computed expectations.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('dd:2');
my $node = kappa_node('dedup', conf => "kappa.flush_interval = '100ms'\n");
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();

$node->safe_psql('postgres', qq{
	SELECT kappa_create_stream('dd', topic => 'dd', brokers => '$b',
		columns => 'id text NOT NULL, ts timestamptz NOT NULL, v int',
		event_time => 'ts', watermark => '1 hour', dedup_key => 'id');
	SELECT kappa_create_view('total', 'SELECT count(*) AS n, sum(v) AS s FROM dd');
});

# Messages id k (k in the list), v = k, a second apart, to partition p.
sub produce
{
	my ($p, @ks) = @_;
	my $file = "$dir/p$p-$ks[0].txt";
	open my $fh, '>', $file or die $!;
	printf $fh qq({"id": "e%d", "ts": "2026-01-01T10:%02d:%02dZ", "v": %d}\n), $_, $_ / 60, $_ % 60, $_
	  foreach @ks;
	close $fh;
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'dd', '-p', $p, '-l', $file ]) or die "kcat failed";
	return;
}

produce(0, 1 .. 100);
produce(1, 101 .. 150);
is($node->safe_psql('postgres', "SELECT kappa_wait('dd', '60 seconds')"), 't', 'consumed');
is($node->safe_psql('postgres', 'SELECT n, s FROM total'), '150|' . (150 * 151 / 2), '150 distinct events');

$node->restart;

# Again: e1..e50 on partition 0 and e101..e120 on partition 1 (duplicates
# of messages consumed before the restart), and e151..e160 (new).
produce(0, 1 .. 50, 151 .. 160);
produce(1, 101 .. 120);
is($node->safe_psql('postgres', "SELECT kappa_wait('dd', '60 seconds')"), 't', 'consumed after the restart');
is($node->safe_psql('postgres', 'SELECT n, s FROM total'), '160|' . (160 * 161 / 2),
	'only the 10 new events were applied');
is($node->safe_psql('postgres',
		q{SELECT partition, duplicate, delivered FROM kappa_stats WHERE view = 'public.total' ORDER BY 1}),
	"0|50|110\n1|20|50", 'the 70 repeats were counted as duplicates, per partition');

# The horizon (1 hour): on partition 1, e101 (first seen at 10:01:41) at
# 12:00:00 is new, since the partition's latest time is then 12:00 and
# 10:01:41 is before 11:00; at 12:00:01 it is a duplicate again.  After a
# restart, the key is still known with its new time: e101 at 12:00:02 is
# a duplicate too, though the flushes pruned every key before 11:00.
sub produce_at
{
	my ($p, @events) = @_;
	my $file = "$dir/p$p-at-$events[0][1].txt";
	open my $fh, '>', $file or die $!;
	print $fh qq({"id": "$_->[0]", "ts": "2026-01-01T$_->[1]Z", "v": $_->[2]}\n) foreach @events;
	close $fh;
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'dd', '-p', $p, '-l', $file ]) or die "kcat failed";
	return;
}
produce_at(1, [ 'e101', '12:00:00', 1000 ], [ 'e101', '12:00:01', 2000 ]);
is($node->safe_psql('postgres', "SELECT kappa_wait('dd', '60 seconds')"), 't', 'consumed past the horizon');
is($node->safe_psql('postgres', 'SELECT n, s FROM total'), '161|' . (160 * 161 / 2 + 1000),
	'a key older than the horizon is new again, once');
$node->restart;
produce_at(1, [ 'e101', '12:00:02', 4000 ]);
is($node->safe_psql('postgres', "SELECT kappa_wait('dd', '60 seconds')"), 't', 'consumed after the second restart');
is($node->safe_psql('postgres', 'SELECT n, s FROM total'), '161|' . (160 * 161 / 2 + 1000),
	'the key came back with its new time: a duplicate');
is($node->safe_psql('postgres',
		q{SELECT partition, duplicate, delivered FROM kappa_stats WHERE view = 'public.total' ORDER BY 1}),
	"0|50|110\n1|22|51", 'duplicates and deliveries per partition');
is($node->safe_psql('postgres', "SELECT count(*) FROM kappa_check('total')"), '0',
	'kappa_check, reading the log again, decides the same');

stop_broker($broker);
done_testing();
