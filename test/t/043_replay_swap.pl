# Replay under load: three clients read a view without pause while it is
# replayed and swapped four times (the same query, then a new one with an
# added column).  No read fails, and every read sees a whole version: the
# counts of all its windows add up to every event, never fewer.  A replay
# cancelled half-way (statement_timeout) leaves the live view as it was,
# and a kill -9 of the server during a replay too; a new replay then
# succeeds.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 30_000;
my $broker = start_broker('sw:4');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('swap', conf => "kappa.flush_interval = '100ms'\nkappa.flush_events = 5000\n");

$node->safe_psql('postgres', qq{
	CREATE TABLE ev AS
	SELECT i, 'd' || (i % 17) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s' AS ts, (i * 13) % 97 AS v
	FROM generate_series(0, $n - 1) i;
	COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text FROM ev ORDER BY i)
		TO '$dir/events.txt';
	SELECT kappa_create_stream('sw', topic => 'sw', brokers => '$b',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '1 minute');
	SELECT kappa_create_view('tumble', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM sw, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	CREATE UNLOGGED TABLE reads (reader int, total bigint, at timestamptz DEFAULT clock_timestamp());
	CREATE UNLOGGED TABLE stop_reading ();
	-- a reader: one query per transaction, until told to stop (or 120 s)
	CREATE PROCEDURE reader(r int) LANGUAGE plpgsql AS \$p\$
	DECLARE
		deadline timestamptz := clock_timestamp() + interval '120 seconds';
		t bigint;
	BEGIN
		WHILE clock_timestamp() < deadline AND NOT EXISTS (SELECT FROM stop_reading) LOOP
			SELECT sum(n) INTO t FROM tumble;
			INSERT INTO reads (reader, total) VALUES (r, t);
			COMMIT;
		END LOOP;
	END \$p\$;
});
IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'sw', '-K', '|', '-l', "$dir/events.txt" ]) or die "kcat failed";
is($node->safe_psql('postgres', "SELECT kappa_wait('sw', '60 seconds')"), 't', 'consumed');
is($node->safe_psql('postgres', 'SELECT sum(n) FROM tumble'), $n, 'the view counts every event');

# Three readers, each its own psql, each stopping at the first error.
my @readers;
foreach my $r (1 .. 3)
{
	my ($out, $err) = ('', '');
	push @readers, {
		out => \$out, err => \$err,
		h => IPC::Run::start([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
				'-c', "CALL reader($r)" ], '>', \$out, '2>', \$err) };
}
ok(wait_until(sub { $node->safe_psql('postgres', 'SELECT count(DISTINCT reader) FROM reads') eq '3' }, 30),
	'the readers are reading');

my $new_query = q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s, max(v) AS mx
	FROM sw, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end};
foreach my $round (1 .. 4)
{
	my $query = $round == 4 ? ", query => \$q\$$new_query\$q\$" : '';
	my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM reads');
	$node->safe_psql('postgres', "SELECT * FROM kappa_replay('tumble'$query)");
	ok(wait_until(sub { $node->safe_psql('postgres', 'SELECT count(*) FROM reads') > $before + 30 }, 30),
		"replay $round swapped while the readers kept reading");
}
$node->safe_psql('postgres', 'INSERT INTO stop_reading DEFAULT VALUES');
foreach my $r (@readers)
{
	ok($r->{h}->finish && ${ $r->{err} } eq '', 'a reader never saw an error') or diag(${ $r->{err} });
}
is($node->safe_psql('postgres', qq{SELECT count(*) FILTER (WHERE total IS DISTINCT FROM $n) || '/' || count(*) FROM reads}),
	'0/' . $node->safe_psql('postgres', 'SELECT count(*) FROM reads'),
	'every read saw a whole version: its windows count every event');
is($node->safe_psql('postgres', 'SELECT count(mx) > 0 FROM tumble'), 't', 'the view now has the new column');

# Progress: a replay held at its swap by a reader's lock shows in
# kappa_replays, with all its events done; it goes once the replay ends.
my ($lin, $lout, $lerr) = ("BEGIN;\nLOCK TABLE tumble IN ACCESS SHARE MODE;\nSELECT 'locked';\n", '', '');
my $locker = IPC::Run::start([ 'psql', '-X', '-At', '-d', $node->connstr('postgres') ],
	'<', \$lin, '>', \$lout, '2>', \$lerr);
$locker->pump until $lout =~ /locked/;
my ($pout, $perr) = ('', '');
my $held = IPC::Run::start([ 'psql', '-X', '-At', '-d', $node->connstr('postgres'),
		'-c', "SELECT log_events FROM kappa_replay('tumble')" ], '>', \$pout, '2>', \$perr);
ok(wait_until(sub { $node->safe_psql('postgres',
			q{SELECT phase FROM kappa_replays WHERE view = 'tumble'}) eq 'swap' }, 60),
	'kappa_replays shows the replay at its swap');
is($node->safe_psql('postgres', q{
		SELECT partitions_done || '/' || partitions_total || ' ' || events_done || '/' || events_total
		FROM kappa_replays WHERE view = 'tumble'}),
	"4/4 $n/$n", 'with every partition and event done');
$lin .= "COMMIT;\n";
$locker->finish;
$held->finish;
is($pout, "$n\n", 'the replay then finished');
is($node->safe_psql('postgres', 'SELECT count(*) FROM kappa_replays'), '0', 'and left kappa_replays');

# A replay cancelled half-way leaves the live view as it was.
my $live = $node->safe_psql('postgres', 'SELECT sum(n), sum(s), count(*) FROM tumble');
my ($rc, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '30ms'; SELECT * FROM kappa_replay('tumble')");
like($err, qr/canceling statement due to statement timeout/, 'a replay is cancelled');
is($node->safe_psql('postgres', 'SELECT sum(n), sum(s), count(*) FROM tumble'), $live, 'the live view is untouched');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.views WHERE status <> 'live'}), '0',
	'no half-built version is left');
is($node->safe_psql('postgres', 'SELECT count(*) FROM kappa_replays'), '0', 'nor a row in kappa_replays');

# A kill -9 during a replay: afterwards the live view is whole, and a new
# replay succeeds.
my ($rout, $rerr) = ('', '');
my $replay = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres'),
		'-c', "SELECT * FROM kappa_replay('tumble')" ], '>', \$rout, '2>', \$rerr);
wait_until(sub { $node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%kappa_replay%' AND pid <> pg_backend_pid()}) eq '1' }, 30);
$node->stop('immediate');
$replay->finish;
$node->start;
is($node->safe_psql('postgres', "SELECT kappa_wait('sw', '60 seconds')"), 't', 'consumed after the crash');
is($node->safe_psql('postgres', 'SELECT sum(n) FROM tumble'), $n, 'the live view is whole after a crash during a replay');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.views WHERE status <> 'live'}), '0',
	'no half-built version survives the crash');
$node->safe_psql('postgres', "SELECT * FROM kappa_replay('tumble')");
is($node->safe_psql('postgres', 'SELECT sum(n), sum(s), count(*) FROM tumble'), $live, 'a new replay succeeds and equals the live view');

stop_broker($broker);
done_testing();
