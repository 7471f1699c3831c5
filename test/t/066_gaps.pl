# History gaps are never silent.  A server whose workers are off while
# retention deletes what they had not read finds, when they come back:
#  - a stream with an archive that holds the missing offsets (Capture files
#    of another server, registered): it reads them from there, loses none;
#  - a stream with on_gap => 'skip': it counts the lost offsets, records
#    them, marks its views incomplete, and goes on;
#  - a stream with the default on_gap ('stop'): it stops, in state failed,
#    with the range recorded, until kappa_accept_gap.
# Then replays and checks take every offset from wherever it is held, the
# archive before, between or after log ranges, with
# kappa.replay_prefer_archive on and off, and name a gap with a hint
# unless accept_gaps says to go on without it.  One partition: an event's
# offset is its number, so every oracle is a hand computation.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('g:1');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $archive = "$dir/archive";
mkdir $archive or die $!;

# The server whose archive holds everything, in small files.
my $arch = kappa_node('arch',
	conf => "kappa.flush_interval = '50ms'\nkappa.flush_events = 500\nkappa.archive_roll_size = 64\n");
$arch->safe_psql('postgres', qq{
	SELECT kappa_create_stream('a', topic => 'g', brokers => '$b', columns => 'v int, pad text',
		archive => '$archive')});

my $node = kappa_node('gaps', conf => "kappa.flush_interval = '100ms'\n");
$node->safe_psql('postgres', qq{
	SELECT kappa_create_stream('fill', topic => 'g', brokers => '$b', columns => 'v int, pad text');
	SELECT kappa_create_stream('skip', topic => 'g', brokers => '$b', columns => 'v int, pad text',
		on_gap => 'skip');
	SELECT kappa_create_stream('halt', topic => 'g', brokers => '$b', columns => 'v int, pad text');
	SELECT kappa_create_view('n_fill', 'SELECT count(*) AS n, sum(v) AS s FROM fill');
	SELECT kappa_create_view('n_skip', 'SELECT count(*) AS n, sum(v) AS s FROM skip');
	SELECT kappa_create_view('n_halt', 'SELECT count(*) AS n, sum(v) AS s FROM halt');
});

# Events numbered from..to, about 250 bytes each: offset = number.
my $pad = 'x' x 230;
sub produce
{
	my ($from, $to) = @_;
	my $file = "$dir/m$from.txt";
	open my $fh, '>', $file or die $!;
	print $fh qq({"v": $_, "pad": "$pad"}\n) foreach $from .. $to;
	close $fh;
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'g', '-p', '0', '-l', $file ]) or die "kcat failed";
	return;
}

# Where the log begins, from the broker (not from kappa).
sub log_start
{
	my $out;
	IPC::Run::run([ 'kcat', '-Q', '-b', $b, '-t', 'g:0:-2' ], '>', \$out) or die "kcat -Q failed";
	$out =~ /offset (\d+)/ or die "unexpected kcat -Q output: $out";
	return $1;
}

# n|sum of the events numbered in [lo, hi), less those in [glo, ghi).
sub count_sum
{
	my ($lo, $hi, $glo, $ghi) = @_;
	my ($n, $s) = (0, 0);
	for my $i ($lo .. $hi - 1)
	{
		next if defined $glo && $i >= $glo && $i < $ghi;
		$n++;
		$s += $i;
	}
	return "$n|$s";
}

sub wait_for { my ($n, $stream) = @_; return $n->safe_psql('postgres', "SELECT kappa_wait('$stream', '90 seconds')"); }

produce(0, 1_999);
is(wait_for($arch, 'a'), 't', 'the archiving server read the first events');
is(wait_for($node, $_), 't', "stream $_ read the first events") foreach qw(fill skip halt);

# The workers go off; retention deletes what they have not read.
$node->safe_psql('postgres', q{ALTER SYSTEM SET kappa.enabled = off; SELECT pg_reload_conf()});
ok(wait_until(sub {
	$node->safe_psql('postgres', q{SELECT bool_and(state = 'disabled') FROM kappa_workers}) eq 't' }, 60),
	'the workers are off');
produce(2_000 + 10_000 * $_, 11_999 + 10_000 * $_) foreach 0 .. 2;
my $total = 32_000;
my $start = log_start();
ok($start > 2_000, "retention deleted the first $start events, 2000 and more of them unread");
is(wait_for($arch, 'a'), 't', 'the archiving server read everything');

# Monitoring tells the truth while the workers are off: lag from the log's end.
is($node->safe_psql('postgres', q{
	SELECT string_agg(format('%s %s %s %s %s %s', stream, end_offset, lag, lag_seconds > 0,
		events_per_s IS NULL, worker_state), ', ' ORDER BY stream)
	FROM kappa_stats WHERE view IS NULL}),
	join(', ', map { "$_ $total " . ($total - 2_000) . ' t t disabled' } qw(fill halt skip)),
	'kappa_stats: lag from the log\'s end while the workers are disabled, no rate');
is($node->safe_psql('postgres', q{
	SELECT string_agg(format('%s %s', view, lag), ', ' ORDER BY view) FROM kappa_stats WHERE view IS NOT NULL}),
	join(', ', map { "public.n_$_ " . ($total - 2_000) } qw(fill halt skip)),
	'kappa_stats: each view\'s lag too');

# The other server's archive, as Capture files for stream fill.
$arch->stop;
my $registered = $node->safe_psql('postgres',
	qq{SELECT count(*) > 1, min(first_offset), max(last_offset), sum(records) FROM kappa_archive_register('fill', '$archive/a/g')});
is($registered, 't|0|' . ($total - 1) . "|$total", 'the archive holds every offset, in several files');

my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{ALTER SYSTEM RESET kappa.enabled; SELECT pg_reload_conf()});

# fill: the archive had what the log lost.
is(wait_for($node, 'fill'), 't', 'stream fill caught up');
is($node->safe_psql('postgres', 'SELECT n, s FROM n_fill'), count_sum(0, $total),
	'fill read the lost offsets from the archive: every event');
is($node->safe_psql('postgres', q{SELECT lost FROM kappa_stats WHERE stream = 'fill' AND view IS NULL}), '0',
	'fill lost nothing');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.gaps g JOIN kappa.streams s USING (stream_id) WHERE s.name = 'fill'}),
	'0', 'fill has no gap');
ok(log_contains($node, qr/stream "fill": the log of partition 0 begins at offset $start; reading offsets 2000 to ${\($start - 1)} from the archive/, $log_offset),
	'the server log says fill read the archive');

# skip: counted, recorded, views marked, on it goes.
is(wait_for($node, 'skip'), 't', 'stream skip caught up');
my $lost = $start - 2_000;
is($node->safe_psql('postgres', 'SELECT n, s FROM n_skip'), count_sum(0, $total, 2_000, $start),
	'skip has every event but the lost ones');
is($node->safe_psql('postgres', q{SELECT lost, consumed FROM kappa_stats WHERE stream = 'skip' AND view IS NULL}),
	"$lost|" . ($total - $lost), 'kappa_stats counts the lost offsets exactly');
is($node->safe_psql('postgres', q{SELECT partition, from_offset, to_offset, accepted FROM kappa.gaps g JOIN kappa.streams s USING (stream_id) WHERE s.name = 'skip'}),
	"0|2000|$start|t", 'kappa.gaps records the range, accepted');
is($node->safe_psql('postgres', q{SELECT status, gaps FROM kappa_views WHERE name = 'public.n_skip'}),
	'incomplete|partition 0: offsets 2000-' . ($start - 1), 'kappa_views marks the view incomplete, with the range');
is($node->safe_psql('postgres', q{SELECT lost, view_status FROM kappa_stats WHERE view = 'public.n_skip'}),
	"$lost|incomplete", 'kappa_stats shows what the view misses');
ok(log_contains($node, qr/WARNING:  kappa stream "skip" skipped lost offsets 2000 to ${\($start - 1)} of partition 0/, $log_offset),
	'the server log warns with the range');

# halt: stopped at the gap, until someone decides.
ok(wait_until(sub {
	$node->safe_psql('postgres', q{SELECT state FROM kappa_workers WHERE stream = 'halt'}) eq 'failed' }, 60),
	'stream halt stopped at the gap');
like($node->safe_psql('postgres', q{SELECT last_sqlstate || ' ' || last_error FROM kappa_workers WHERE stream = 'halt'}),
	qr/^55000 offsets 2000 to ${\($start - 1)} of partition 0 are lost/, 'kappa_workers says why');
is($node->safe_psql('postgres', q{SELECT from_offset, to_offset, accepted FROM kappa.gaps g JOIN kappa.streams s USING (stream_id) WHERE s.name = 'halt'}),
	"2000|$start|f", 'kappa.gaps records the range, not accepted');
is($node->safe_psql('postgres', 'SELECT n, s FROM n_halt'), count_sum(0, 2_000), 'the view kept what it had');
is($node->safe_psql('postgres', q{SELECT lost, committed_offset FROM kappa_stats WHERE stream = 'halt' AND view IS NULL}),
	'0|2000', 'nothing counted lost yet, and the position has not moved');
is($node->safe_psql('postgres', q{SELECT status FROM kappa_views WHERE name = 'public.n_halt'}), 'live',
	'the view is not marked before the loss is accepted');
ok(log_contains($node, qr/WARNING:  kappa stream "halt" stopped: offsets 2000 to ${\($start - 1)} of partition 0 are lost.*\n.*DETAIL: .*\n.*HINT:  Register the Capture files that hold them with kappa_archive_register, or accept the loss with SELECT kappa_accept_gap\('halt'\)/, $log_offset),
	'the server log says what to do');

is($node->safe_psql('postgres', q{SELECT kappa_accept_gap('halt')}), $lost, 'kappa_accept_gap accepts the lost offsets');
is(wait_for($node, 'halt'), 't', 'stream halt goes on');
is($node->safe_psql('postgres', 'SELECT n, s FROM n_halt'), count_sum(0, $total, 2_000, $start),
	'halt has every event but the lost ones');
is($node->safe_psql('postgres', q{SELECT k.lost, w.state, w.last_error IS NULL FROM kappa_stats k JOIN kappa_workers w USING (stream) WHERE stream = 'halt' AND view IS NULL}),
	"$lost|running|t", 'counted lost; running, and the error cleared');
is($node->safe_psql('postgres', q{SELECT status, gaps FROM kappa_views WHERE name = 'public.n_halt'}),
	'incomplete|partition 0: offsets 2000-' . ($start - 1), 'the view is marked incomplete');
is($node->safe_psql('postgres', q{SELECT kappa_accept_gap('halt')}), '0', 'nothing more to accept');

# Checks: what the view never saw is no error; what it saw and no one holds is.
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa_check('n_fill')}), '0', 'fill checks out, from archive and log');
my ($rc, $out, $err) = $node->psql('postgres', q{SELECT * FROM kappa_check('n_skip')}, on_error_stop => 1);
like($err, qr/ERROR:  cannot check the view: neither the log nor the archive holds 2000 offsets it read\nDETAIL:  Missing: partition 0: offsets 0-1999\.\nHINT:  .*accept_gaps => true/,
	'a check names the offsets the view read that no one holds');
my @recount = split /\|/, count_sum($start, $total);
my @viewcount = split /\|/, count_sum(0, $total, 2_000, $start);
is($node->safe_psql('postgres', q{SELECT string_agg(side || ' ' || ("row"->>'n') || ' ' || ("row"->>'s'), ', ' ORDER BY side) FROM kappa_check('n_skip', accept_gaps => true)}),
	"extra $viewcount[0] $viewcount[1], missing $recount[0] $recount[1]",
	'with accept_gaps, the check goes on without them, and says how the view differs');

# Replays from any mix.  fill's log holds [start, total), the archive all.
sub replay
{
	my ($view, $args, $prefer) = @_;
	return $node->safe_psql('postgres', qq{SET kappa.replay_prefer_archive = $prefer;
		SELECT archive_events, log_events FROM kappa_replay('$view'$args)});
}
is(replay('n_fill', '', 'off'), "$start|" . ($total - $start), 'replay, log preferred: the archive only before the log');
is($node->safe_psql('postgres', 'SELECT n, s FROM n_fill'), count_sum(0, $total), 'the replayed view has every event');
is(replay('n_fill', '', 'on'), "$total|0", 'replay, archive preferred: all from the archive');
is($node->safe_psql('postgres', 'SELECT n, s FROM n_fill'), count_sum(0, $total), 'the same view');

# A hole in the archive where the log holds the offsets: archive, log, archive.
my ($mid_lo, $mid_hi) = split /\|/, $node->safe_psql('postgres', qq{
	WITH d AS (DELETE FROM kappa.archive_files a USING kappa.streams s
		WHERE s.stream_id = a.stream_id AND s.name = 'fill'
		AND a.first_offset >= $start + 3000 AND a.last_offset < $start + 6000
		RETURNING a.first_offset, a.last_offset)
	SELECT min(first_offset), max(last_offset) + 1 FROM d});
ok($mid_lo > $start && $mid_hi < $total, "the archive misses $mid_lo to $mid_hi, which the log holds");
is(replay('n_fill', '', 'on'), ($total - ($mid_hi - $mid_lo)) . '|' . ($mid_hi - $mid_lo),
	'archive preferred: the archive, then the log for the hole, then the archive again');
is($node->safe_psql('postgres', 'SELECT n, s FROM n_fill'), count_sum(0, $total), 'the same view');
is(replay('n_fill', '', 'off'), "$start|" . ($total - $start), 'log preferred: the hole does not matter');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa_check('n_fill')}), '0', 'the view checks out');

# A hole in the archive before the log begins: a gap.
my ($gap_lo, $gap_hi) = split /\|/, $node->safe_psql('postgres', qq{
	WITH d AS (DELETE FROM kappa.archive_files a USING kappa.streams s
		WHERE s.stream_id = a.stream_id AND s.name = 'fill'
		AND a.first_offset >= 500 AND a.last_offset < 1500
		RETURNING a.first_offset, a.last_offset)
	SELECT min(first_offset), max(last_offset) + 1 FROM d});
ok($gap_lo >= 500 && $gap_hi <= 1500 && $gap_hi > $gap_lo, "the archive misses $gap_lo to $gap_hi, the log too");
($rc, $out, $err) = $node->psql('postgres', q{SELECT * FROM kappa_replay('n_fill')}, on_error_stop => 1);
my $gap = $gap_hi - $gap_lo;
like($err, qr/ERROR:  cannot replay n_fill: neither the archive nor the log holds $gap offsets of its history\nDETAIL:  Missing: partition 0: offsets $gap_lo-${\($gap_hi - 1)}\.\nHINT:  Register the Capture files that hold them with kappa_archive_register, or replay without them with kappa_replay\(\.\.\., accept_gaps => true\)\./,
	'a replay names the gap, and says what to do');
is($node->safe_psql('postgres', 'SELECT n, s FROM n_fill'), count_sum(0, $total), 'the view was left as it was');
is(replay('n_fill', ', accept_gaps => true', 'on'),
	($total - $gap - ($mid_hi - $mid_lo)) . '|' . ($mid_hi - $mid_lo), 'with accept_gaps, it replays without them');
is($node->safe_psql('postgres', 'SELECT n, s FROM n_fill'), count_sum(0, $total, $gap_lo, $gap_hi),
	'the new version has every event but the gap');
is($node->safe_psql('postgres', q{SELECT status, gaps FROM kappa_views WHERE name = 'public.n_fill'}),
	"incomplete|partition 0: offsets $gap_lo-" . ($gap_hi - 1), 'and is marked incomplete');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa_check('n_fill')}), '0',
	'it checks out: the gap is one it never saw');

# The stream goes on after all this.
produce($total, $total + 99);
is(wait_for($node, $_), 't', "stream $_ read on") foreach qw(fill skip halt);
is($node->safe_psql('postgres', 'SELECT n FROM n_skip'), (split /\|/, count_sum(0, $total + 100, 2_000, $start))[0],
	'skip read on after the gap');
is($node->safe_psql('postgres', 'SELECT n FROM n_fill'), (split /\|/, count_sum(0, $total + 100, $gap_lo, $gap_hi))[0],
	'fill read on after its replay');

stop_broker($broker);
done_testing();
