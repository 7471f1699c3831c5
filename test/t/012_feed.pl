# kappa_feed runs messages from a table through a stream's engine exactly
# as its worker would, and hands over to the worker without a gap or a
# double count: the first part of every partition is fed from a table while
# the worker is stopped, the worker then consumes the rest from the broker,
# and every view equals its query as batch SQL over all the events.  Feeding
# the same messages again changes nothing (positions), and a feed while the
# worker runs is refused.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('fd:4');
my $node = kappa_node('feed',
	conf => "kappa.enabled = off\nkappa.flush_interval = '200ms'\nkappa.flush_events = 5000\n");
my $b = $broker->{bootstrap};
my $n = 20_000;
my $head = 3_000;    # offsets fed from the table, per partition

# Events i = 0 .. n-1 go to partition i % 4 at offset i / 4.  Event times
# are a second apart with up to 20 s of disorder (the watermark is a
# minute: nothing is late); devices are active in turns, so sessions end.
# Every 997th message cannot be decoded.
$node->safe_psql('postgres', qq{
	CREATE TABLE msgs (partition int, "offset" bigint, payload text);
	CREATE SCHEMA batch;
	CREATE TABLE batch.ev (i int, dev text, ts timestamptz, v int);
	INSERT INTO batch.ev
	SELECT i, 'd' || ((i / 600) % 5 * 3 + i % 3),
		timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s' + ((i * 7919) % 41 - 20) * interval '1 s',
		(i * 31) % 101
	FROM generate_series(0, $n - 1) i WHERE i % 997 <> 996;
	INSERT INTO msgs
	SELECT i % 4, i / 4,
		CASE WHEN i % 997 = 996 THEN '["broken"'
		ELSE json_build_object('i', i, 'dev', 'd' || ((i / 600) % 5 * 3 + i % 3),
			'ts', timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s' + ((i * 7919) % 41 - 20) * interval '1 s',
			'v', (i * 31) % 101)::text END
	FROM generate_series(0, $n - 1) i;
	CREATE TABLE head AS SELECT * FROM msgs WHERE "offset" < $head;
});

my %queries = (
	tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s, max(v) AS mx
		FROM ev, kappa_tumble(ts, '5 minutes') w GROUP BY dev, w.window_start, w.window_end},
	hop => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, avg(v) AS a
		FROM ev, kappa_hop(ts, '10 minutes', '5 minutes') w GROUP BY dev, w.window_start, w.window_end},
	running => q{SELECT dev, count(*) AS n, sum(v) AS s, min(ts) AS first_ts FROM ev GROUP BY dev},
);
my $sessions_oracle = q{
	WITH o AS (
		SELECT dev, ts, v,
			CASE WHEN ts - lag(ts) OVER (PARTITION BY dev ORDER BY ts) < interval '2 minutes'
				THEN 0 ELSE 1 END AS brk
		FROM EVENTS),
	g AS (SELECT dev, ts, v, sum(brk) OVER (PARTITION BY dev ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
	SELECT dev, min(ts) AS window_start, max(ts) + interval '2 minutes' AS window_end,
		count(*) AS n, sum(v) AS s
	FROM g GROUP BY dev, sid};

$node->safe_psql('postgres',
	"SELECT kappa_create_stream('ev', topic => 'fd', brokers => '$b', "
	  . "columns => 'dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '1 minute')");
foreach my $name (sort keys %queries)
{
	$node->safe_psql('postgres', "SELECT kappa_create_view('$name', \$q\$$queries{$name}\$q\$)");
}
$node->safe_psql('postgres', q{SELECT kappa_create_view('sessions', $q$
	SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
	FROM ev, kappa_session(ts, '2 minutes') w GROUP BY dev, w.window_start, w.window_end $q$)});

# Every view against its oracle over the events of the messages in TABLE.
sub check_views
{
	my ($table, $label) = @_;
	my $events = "(SELECT * FROM batch.ev WHERE i IN (SELECT (payload::json->>'i')::int FROM $table "
	  . "WHERE payload NOT LIKE '[%'))";
	is($node->safe_psql('postgres', "SELECT count(*) FROM $events x"),
		$node->safe_psql('postgres', "SELECT count(*) FROM $table WHERE payload NOT LIKE '[%'"),
		"$label: the oracle's events are those of the messages");
	foreach my $name (sort keys %queries)
	{
		(my $q = $queries{$name}) =~ s/FROM ev\b/FROM $events ev/;
		my ($extra, $missing, $rows) = split m{/}, $node->safe_psql('postgres', qq{
			SELECT (SELECT count(*) FROM (SELECT * FROM $name EXCEPT ALL ($q)) a)
				|| '/' || (SELECT count(*) FROM (($q) EXCEPT ALL SELECT * FROM $name) b)
				|| '/' || (SELECT count(*) FROM $name)});
		ok($rows > 0 && $extra == 0 && $missing == 0,
			"$label: view $name equals its batch query ($rows rows; $extra extra, $missing missing)");
	}
	(my $q = $sessions_oracle) =~ s/EVENTS/$events ev/;
	my ($extra, $missing, $rows) = split m{/}, $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM sessions EXCEPT ALL ($q)) a)
			|| '/' || (SELECT count(*) FROM (($q) EXCEPT ALL SELECT * FROM sessions) b)
			|| '/' || (SELECT count(*) FROM sessions)});
	ok($rows > 1 && $extra == 0 && $missing == 0,
		"$label: session view equals gaps-and-islands ($rows sessions; $extra extra, $missing missing)");
	return;
}

# Counts per partition, against the messages table.
sub check_counts
{
	my ($table, $label) = @_;
	is($node->safe_psql('postgres',
			"SELECT partition, consumed, dead_lettered FROM kappa_stats WHERE view IS NULL ORDER BY 1"),
		$node->safe_psql('postgres',
			"SELECT partition, count(*), count(*) FILTER (WHERE payload LIKE '[%') FROM $table "
			  . "GROUP BY 1 ORDER BY 1"),
		"$label: consumed and dead-lettered per partition");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM kappa_stats WHERE view IS NOT NULL AND delivered <> applied + late"),
		'0', "$label: delivered = applied + late for every view and partition");
	return;
}

# 1. Feed the head of each partition.
my $fed = $node->safe_psql('postgres', "SELECT messages_read FROM kappa_feed('ev', 'head')");
is($fed, 4 * $head, 'kappa_feed read every message of the table');
check_views('head', 'fed');
check_counts('head', 'fed');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM kappa.dead_letters d JOIN head h
			ON d.partition = h.partition AND d."offset" = h."offset" AND d.payload = convert_to(h.payload, 'UTF8')}),
	$node->safe_psql('postgres', q{SELECT count(*) FROM head WHERE payload LIKE '[%'}),
	'dead letters hold the raw bytes at their partition and offset');

# 2. The same messages again: every one is below the stored positions.
my $before = $node->safe_psql('postgres', 'SELECT sum(n), sum(s) FROM tumble');
$node->safe_psql('postgres', "SELECT kappa_feed('ev', 'head')");
is($node->safe_psql('postgres', 'SELECT sum(n), sum(s) FROM tumble'), $before,
	'feeding the same messages again changes no view');
check_counts('head', 'fed twice');

# 3. Bad tables are refused, naming the column.
my ($rc, $out, $err) = $node->psql('postgres',
	q{CREATE TEMP TABLE nopart ("offset" bigint, payload text); SELECT kappa_feed('ev', 'nopart')},
	on_error_stop => 1);
like($err, qr/table "nopart" has no column "partition"/, 'a table without partition is refused');
($rc, $out, $err) = $node->psql('postgres',
	q{\set VERBOSITY verbose
	CREATE TEMP TABLE wrong (partition int, "offset" int, payload text); SELECT kappa_feed('ev', 'wrong')});
like($err, qr/42804: column "offset" of table "wrong" has type integer/, 'a wrongly typed offset is refused (42804)');

# 4. The worker takes over from the fed positions: it reads the whole
# topic from the broker, and applies only what was not fed.
my $dir = PostgreSQL::Test::Utils::tempdir();
foreach my $p (0 .. 3)
{
	my $file = "$dir/p$p.txt";
	$node->safe_psql('postgres',
		"COPY (SELECT payload FROM msgs WHERE partition = $p ORDER BY \"offset\") TO '$file'");
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'fd', '-p', $p, '-l', $file ])
	  or die "kcat failed";
}
$node->safe_psql('postgres', 'ALTER SYSTEM SET kappa.enabled = on; SELECT pg_reload_conf()');
is($node->safe_psql('postgres', "SELECT kappa_wait('ev', '120 seconds')"), 't',
	'the worker consumed the rest of the topic');
check_views('msgs', 'fed, then consumed');
check_counts('msgs', 'fed, then consumed');

# 5. While the worker runs, a feed is refused.
($rc, $out, $err) = $node->psql('postgres',
	q{\set VERBOSITY verbose
	SELECT kappa_feed('ev', 'head')});
like($err, qr/55006: stream "ev" is being consumed by its worker/,
	'a feed while the worker runs is refused (55006)');

stop_broker($broker);
done_testing();
