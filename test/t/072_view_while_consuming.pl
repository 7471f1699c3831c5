# A view created while the worker is in the middle of a batch reads every
# message from its start.  The worker learns of new views at its flushes;
# with kappa.flush_events small, a flush comes in the middle of each batch
# it polls, and the messages of the batch after that flush must not reach
# the new view before those it has to read again from the start (it would
# take the first of them as its first offset, and never see the earlier
# ones).  Each round produces a burst of events, creates a view while the
# worker consumes it (in round 2 also replays a view, whose new version
# the worker takes over at a flush too), and checks every view against its
# batch query over all the events; and that every view saw every event
# once.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('busy:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('busy', conf => "kappa.flush_events = 50\nkappa.flush_interval = '50ms'\n");

$node->safe_psql('postgres', qq{
	CREATE TABLE ev (i int, k int, v int);
	SELECT kappa_create_stream('s', topic => 'busy', brokers => '$b', columns => 'i int, k int, v int');
	SELECT kappa_create_view('first', 'SELECT k, count(*) AS n, sum(v) AS s FROM s GROUP BY k');
});

my $per_round = 20_000;
foreach my $round (1 .. 4)
{
	my ($lo, $hi) = (($round - 1) * $per_round, $round * $per_round - 1);
	my $file = "$dir/round$round.txt";
	$node->safe_psql('postgres', qq{
		INSERT INTO ev SELECT i, i % 7, (i * 31) % 101 FROM generate_series($lo, $hi) i;
		COPY (SELECT json_build_object('i', i, 'k', k, 'v', v)::text FROM ev WHERE i BETWEEN $lo AND $hi ORDER BY i)
			TO '$file'});

	# produce in the background, and create the view while the worker reads
	my $kcat = IPC::Run::start([ 'kcat', '-P', '-b', $b, '-t', 'busy', '-l', $file ]);
	ok(wait_until(sub {
			$node->safe_psql('postgres', 'SELECT coalesce(sum(consumed), 0) FROM kappa_stats WHERE view IS NULL')
			  > $lo + 1000 }, 60),
		"round $round: the worker is consuming the burst");
	$node->safe_psql('postgres', "SELECT kappa_create_view('v$round', 'SELECT k, count(*) AS n, sum(v) AS s FROM s GROUP BY k')");
	# and in round 2 a new version of view first: kappa_replay swaps it
	# in during the burst, and the worker goes on with it from where the
	# replay stopped
	$node->safe_psql('postgres', "SELECT kappa_replay('first')") if $round == 2;
	$kcat->finish or die "kcat failed in round $round";
	is($node->safe_psql('postgres', "SELECT kappa_wait('s', '120 seconds')"), 't', "round $round: consumed");

	my $total = $round * $per_round;
	foreach my $v ('first', map { "v$_" } 1 .. $round)
	{
		is($node->safe_psql('postgres', qq{
			SELECT (SELECT count(*) FROM (SELECT * FROM $v EXCEPT SELECT k, count(*), sum(v) FROM ev GROUP BY k) a)
				|| '/' || (SELECT count(*) FROM (SELECT k, count(*), sum(v) FROM ev GROUP BY k EXCEPT SELECT * FROM $v) b)
				|| '/' || (SELECT sum(n) FROM $v)}),
			"0/0/$total", "round $round: view $v holds all $total events (extra/missing/count)");
	}
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM (SELECT view, sum(delivered + filtered + duplicate) AS seen
			FROM kappa_stats WHERE view IS NOT NULL GROUP BY view) x WHERE seen <> $total}),
		'0', "round $round: every view saw every event once");
}

stop_broker($broker);
done_testing();
