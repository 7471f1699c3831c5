# kappa_check recomputes a view from the log and reports the rows that
# differ: none for views the worker built (tumble, hop, session, running),
# and exactly the rows that were tampered with otherwise.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 6_000;
my $broker = start_broker('ck:4');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('check', conf => "kappa.flush_interval = '100ms'\nkappa.flush_events = 1000\n");

$node->safe_psql('postgres', qq{
	CREATE TABLE ev AS
	SELECT i, 'd' || (i % 9) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s' + ((i * 37) % 101 - 50) * interval '100 ms' AS ts,
		(i * 13) % 97 AS v, ((i * 7) % 1000) / 10.0 AS f
	FROM generate_series(0, $n - 1) i;
	COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v, 'f', f)::text
		FROM ev ORDER BY i) TO '$dir/events.txt';
	SELECT kappa_create_stream('ck', topic => 'ck', brokers => '$b',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int, f float8', event_time => 'ts', watermark => '1 minute');
	SELECT kappa_create_view('tumble', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s, avg(f) AS af
		FROM ck, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('hop', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, stddev(f) AS sd
		FROM ck, kappa_hop(ts, '2 minutes', '1 minute') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('sessions', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n
		FROM ck, kappa_session(ts, '30 seconds') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('running', 'SELECT dev, count(*) AS n, sum(v) AS s, avg(f) AS af FROM ck GROUP BY dev');
});
IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'ck', '-K', '|', '-l', "$dir/events.txt" ]) or die "kcat failed";
is($node->safe_psql('postgres', "SELECT kappa_wait('ck', '60 seconds')"), 't', 'consumed');

foreach my $view (qw(tumble hop sessions running))
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kappa_check('$view')"), '0',
		"kappa_check finds no difference in view $view");
}

# Tamper with two views' stored rows, behind kappa's back.
my $table = sub {
	my ($view) = @_;
	return 'kappa.view_' . $node->safe_psql('postgres', "SELECT view_id FROM kappa.views WHERE view_name = '$view'");
};
my $running = $table->('running');
my $tumble = $table->('tumble');
my $deleted = $node->safe_psql('postgres', "SELECT min(window_start) FROM $tumble WHERE dev = 'd5'");
$node->safe_psql('postgres', qq{
	UPDATE $running SET n = n + 1 WHERE dev = 'd3';
	DELETE FROM $tumble WHERE dev = 'd5' AND window_start = '$deleted';
});
my $d3 = $node->safe_psql('postgres', "SELECT count(*) FROM ev WHERE dev = 'd3'");
is($node->safe_psql('postgres', q{SELECT string_agg(side || ' ' || ("row"->>'dev') || ' ' || ("row"->>'n'), ', ' ORDER BY side)
		FROM kappa_check('running')}),
	'extra d3 ' . ($d3 + 1) . ", missing d3 $d3",
	'a changed row shows as the extra row in the view and the missing right one');
is($node->safe_psql('postgres', qq{SELECT side, "row"->>'dev', ("row"->>'window_start')::timestamptz = '$deleted'
		FROM kappa_check('tumble')}),
	'missing|d5|t', 'a deleted row shows as missing');

# Errors.
my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT * FROM kappa_check('ev')");
like($err, qr/42809: "ev" is not a kappa view/, 'a table is not a kappa view (42809)');
($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT * FROM kappa_check('nosuch')");
like($err, qr/42704: kappa view "nosuch" does not exist/, 'an unknown name (42704)');

stop_broker($broker);
done_testing();
