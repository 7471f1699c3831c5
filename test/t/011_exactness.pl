# Late events, duplicates and undecodable messages are counted exactly,
# dead letters keep the raw bytes, sessions merge when an event bridges
# them, and finalized windows leave state.  Every expectation below is
# worked out by hand from DESIGN §1b (per-partition watermarks), from
# messages produced to fixed partitions in a fixed order.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('late:2');
my $node = kappa_node('exact', conf => "kappa.flush_interval = '200ms'\n");
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();

# Watermark 1 minute; 1-minute tumbling windows; 5-minute sessions.
$node->safe_psql('postgres', qq{
	SELECT kappa_create_stream('lt', topic => 'late', brokers => '$b',
		columns => 'id text NOT NULL, dev text, ts timestamptz NOT NULL, v int',
		event_time => 'ts', watermark => '1 minute', dedup_key => 'id', keep_late => true);
	SELECT kappa_create_view('tum', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM lt, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('ses', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM lt, kappa_session(ts, '5 minutes') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('run', \$q\$SELECT dev, count(*) AS n, sum(v) AS s FROM lt GROUP BY dev\$q\$);
});

sub ev
{
	my ($id, $dev, $time, $v) = @_;
	return qq({"id": "$id", "dev": "$dev", "ts": "2026-01-01T$time", "v": $v});
}

# Partition 0, in this order (watermark = latest time - 1 minute):
#   a1 10:00:10                       on time everywhere
#   a2 10:05:00                       on time; watermark now 10:04:00
#   a3 10:01:30  late for tum (its window ends 10:02 <= 10:04), on time for ses
#   a2 again     a duplicate (dedup_key id): dropped, counted
#   a4 10:04:30  on time (window ends 10:05 > 10:04)
#   four messages that cannot be decoded
my @p0 = (ev('a1', 'a', '10:00:10Z', 1), ev('a2', 'a', '10:05:00Z', 2),
	ev('a3', 'a', '10:01:30Z', 4), ev('a2', 'a', '10:05:01Z', 100),
	ev('a4', 'a', '10:04:30Z', 8));
my @bad = ('not json at all', '{"id": "a5", "dev": "a", "v": 1}',
	'{"id": "a6", "dev": "a", "ts": "2026-01-01T10:06:00Z", "v": "abc"}',
	"{\"id\": \"a7\", \"dev\": \"\xff\xfe\", \"ts\": \"2026-01-01T10:06:00Z\", \"v\": 1}");
# Partition 1:
#   b1 10:00:00, b2 10:20:00 (watermark 10:19)
#   b3 10:10:00  late for tum and ses (10:11 and 10:15 <= 10:19)
#   b4 10:18:00  late for tum (10:19 <= 10:19), joins b2's session in ses
#   c1 10:30:00, c2 10:38:00: two sessions of c (watermark then 10:37)
#   c3 10:34:00  bridges them into one (10:39 > 10:37); late for tum
my @p1 = (ev('b1', 'b', '10:00:00Z', 16), ev('b2', 'b', '10:20:00Z', 32),
	ev('b3', 'b', '10:10:00Z', 64), ev('b4', 'b', '10:18:00Z', 128),
	ev('c1', 'c', '10:30:00Z', 1), ev('c2', 'c', '10:38:00Z', 2),
	ev('c3', 'c', '10:34:00Z', 4));

foreach my $p ([ 0, [ @p0, @bad ] ], [ 1, \@p1 ])
{
	my $file = "$dir/p$p->[0].txt";
	open my $fh, '>:raw', $file or die $!;
	print $fh "$_\n" foreach @{ $p->[1] };
	close $fh;
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'late', '-p', $p->[0], '-l', $file ])
	  or die "kcat failed";
}
is($node->safe_psql('postgres', "SELECT kappa_wait('lt', '60 seconds')"), 't', 'all consumed');

# Counts, per stream and per view, against the hand computation.
is($node->safe_psql('postgres',
		"SELECT partition, consumed, dead_lettered FROM kappa_stats WHERE view IS NULL ORDER BY 1"),
	"0|9|4\n1|7|0", 'consumed and dead-lettered per partition');
is($node->safe_psql('postgres', q{
		SELECT view, partition, duplicate, filtered, delivered, applied, late FROM kappa_stats
		WHERE view IS NOT NULL ORDER BY 1, 2}),
	join("\n",
		'public.run|0|1|0|4|4|0', 'public.run|1|0|0|7|7|0',
		'public.ses|0|1|0|4|4|0', 'public.ses|1|0|0|7|6|1',
		'public.tum|0|1|0|4|3|1', 'public.tum|1|0|0|7|4|3'),
	'duplicates, deliveries, applied and late events per view and partition');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM (SELECT view, sum(delivered) d, sum(applied) a, sum(late) l,
			sum(duplicate + filtered + delivered) seen FROM kappa_stats WHERE view IS NOT NULL GROUP BY view) s
		WHERE d <> a + l OR seen <> 12}),
	'0', 'per view: delivered = applied + late, and 12 = 16 consumed - 4 dead letters');

# The views' rows.
is($node->safe_psql('postgres', "SELECT dev, to_char(window_start, 'HH24:MI'), n, s FROM tum ORDER BY 1, 2"),
	join("\n", 'a|10:00|1|1', 'a|10:04|1|8', 'a|10:05|1|2', 'b|10:00|1|16', 'b|10:20|1|32',
		'c|10:30|1|1', 'c|10:38|1|2'),
	'tumbling windows hold exactly the on-time events');
is($node->safe_psql('postgres',
		"SELECT dev, to_char(window_start, 'HH24:MI:SS'), to_char(window_end, 'HH24:MI:SS'), n, s FROM ses ORDER BY 1, 2"),
	join("\n", 'a|10:00:10|10:10:00|4|15', 'b|10:00:00|10:05:00|1|16', 'b|10:18:00|10:25:00|2|160',
		'c|10:30:00|10:43:00|3|7'),
	'sessions, including the one a late-arriving event bridged');
is($node->safe_psql('postgres', "SELECT dev, n, s FROM run ORDER BY 1"),
	"a|4|15\nb|4|240\nc|3|7", 'a running view counts every delivered event');

# Dead letters keep the bytes that were produced, and say why.
my $dead = $node->safe_psql('postgres',
	"SELECT count(*), count(*) FILTER (WHERE reason <> ''), "
	  . "bool_and(payload IS NOT NULL) FROM kappa.dead_letters WHERE partition = 0");
is($dead, '4|4|t', 'four dead letters, each with a reason');
is($node->safe_psql('postgres',
		"SELECT encode(payload, 'hex') FROM kappa.dead_letters WHERE partition = 0 ORDER BY \"offset\" DESC LIMIT 1"),
	unpack('H*', $bad[3]), 'the invalid UTF-8 is kept byte for byte');
like($node->safe_psql('postgres',
		"SELECT string_agg(reason, ' / ' ORDER BY \"offset\") FROM kappa.dead_letters"),
	qr/^invalid JSON.* \/ missing field "ts" \/ field "v": .*integer.* \/ .*UTF-8/,
	'the reasons name the problem');

# The stream keeps its late events: one row per view that found it late.
is($node->safe_psql('postgres', q{
		SELECT string_agg(format('%s:%s:%s', v.view_name, l.partition, convert_from(l.payload, 'UTF8')::json->>'id'),
			',' ORDER BY v.view_name, l.partition, l."offset")
		FROM kappa.late_events l JOIN kappa.views v USING (view_id)}),
	'ses:1:b3,tum:0:a3,tum:1:b3,tum:1:b4,tum:1:c3',
	'late events are kept, per view, with their bytes');

# Finalized windows keep their rows but not their state: every partition's
# watermark (10:04 and 10:37) has passed 10:01, so the two 10:00 windows
# are final; five tumbling groups remain open.
is($node->safe_psql('postgres', "SELECT max(state_rows) FROM kappa_stats WHERE view = 'public.tum'"),
	'5', 'state is kept for open windows only');

# A view dropped while the worker runs goes away; one created later reads
# the log from its start and reaches the same rows as the old one.
$node->safe_psql('postgres', "SELECT kappa_drop_view('run')");
$node->safe_psql('postgres',
	"SELECT kappa_create_view('run2', \$q\$SELECT dev, count(*) AS n, sum(v) AS s FROM lt GROUP BY dev\$q\$)");
is($node->safe_psql('postgres', "SELECT kappa_wait('lt', '60 seconds')"), 't', 'the new view caught up');
is($node->safe_psql('postgres', "SELECT dev, n, s FROM run2 ORDER BY 1"),
	"a|4|15\nb|4|240\nc|3|7", 'a view created later equals the one it replaces');
is($node->safe_psql('postgres', "SELECT sum(consumed) FROM kappa_stats WHERE view IS NULL"),
	'16', 'reading again for the new view does not count messages twice');

$node->stop;
stop_broker($broker);
done_testing();
