# kappa_stats and kappa_workers tell the truth: per view and partition the
# watermark and the time up to which windows are final; lag from the
# log's end while the workers are disabled, with no rate; an idle stream
# whose brokers were down goes back to running, its error cleared, when
# they answer again, without a message to say so.  Every figure is
# checked against a hand computation from the events produced.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker({ control => 1 }, 'm:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('monitoring', conf => "kappa.flush_interval = '100ms'\n");

$node->safe_psql('postgres', q{
	CREATE ROLE mon LOGIN IN ROLE kappa_admin;
	GRANT CREATE ON SCHEMA public TO mon;
});
$node->safe_psql('postgres', qq{
	SET ROLE mon;
	SELECT kappa_create_stream('m', topic => 'm', brokers => '$b',
		columns => 'i int, ts timestamptz NOT NULL', event_time => 'ts', watermark => '1 minute');
	SELECT kappa_create_view('per_min', \$q\$SELECT w.window_start, count(*) AS n
		FROM m, kappa_tumble(ts, '1 minute') w GROUP BY w.window_start\$q\$);
});

# Events i in [lo, hi] into one partition, i seconds after a base time.
my $base = '2026-03-01 00:00:00+00';
sub produce
{
	my ($partition, $lo, $hi) = @_;
	my $file = "$dir/p$partition-$lo.txt";
	$node->safe_psql('postgres', qq{
		COPY (SELECT json_build_object('i', i, 'ts', timestamptz '$base' + i * interval '1 second')::text
			FROM generate_series($lo, $hi) i ORDER BY i) TO '$file'});
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'm', '-p', $partition, '-l', $file ]) or die "kcat failed";
	return;
}
sub stat_sql { return $node->safe_psql('postgres', $_[0]); }

produce(0, 0, 599);
produce(1, 0, 299);
is(stat_sql(q{SELECT kappa_wait('m', '60 seconds')}), 't', 'consumed');

# Watermark per partition: its latest event time less the stream's
# watermark; windows are final up to the smallest of them.
is(stat_sql(q{SELECT string_agg(format('%s %s %s', partition, watermark, final_upto), ', ' ORDER BY partition)
	FROM kappa_stats WHERE view = 'public.per_min'}),
	stat_sql(qq{SELECT string_agg(format('%s %s %s', p, timestamptz '$base' + last * interval '1 second' - interval '1 minute',
			timestamptz '$base' + 299 * interval '1 second' - interval '1 minute'), ', ' ORDER BY p)
		FROM (VALUES (0, 599), (1, 299)) v(p, last)}),
	'kappa_stats: each partition\'s watermark, and final_upto, the least of them');
is(stat_sql(q{SELECT count(*) FROM per_min WHERE window_start + interval '1 minute' <=
		(SELECT min(final_upto) FROM kappa_stats WHERE view = 'public.per_min')}),
	'3', 'the windows final by then are the first three minutes');
is(stat_sql(q{SELECT string_agg(format('%s %s %s', partition, lag, events_per_s IS NOT NULL), ', ' ORDER BY partition)
	FROM kappa_stats WHERE stream = 'm' AND view IS NULL}),
	'0 0 t, 1 0 t', 'running: no lag, a rate');

# Disabled: the lag grows with what is produced, and there is no rate.
$node->safe_psql('postgres', q{ALTER SYSTEM SET kappa.enabled = off; SELECT pg_reload_conf()});
ok(wait_until(sub { stat_sql(q{SELECT state FROM kappa_workers WHERE stream = 'm'}) eq 'disabled' }, 60),
	'the worker is disabled');
produce(0, 600, 649);
produce(1, 300, 319);
is(stat_sql(q{SELECT string_agg(format('%s %s %s %s %s', partition, end_offset, lag, lag_seconds > 0, events_per_s IS NULL), ', ' ORDER BY partition)
	FROM kappa_stats WHERE stream = 'm' AND view IS NULL}),
	'0 650 50 t t, 1 320 20 t t', 'disabled: lag from the log\'s end, in events and seconds; no rate');
is(stat_sql(q{SELECT string_agg(format('%s %s', partition, lag), ', ' ORDER BY partition)
	FROM kappa_stats WHERE view = 'public.per_min'}),
	'0 50, 1 20', 'and each view\'s lag');
is($node->safe_psql('postgres', q{SET ROLE mon; SELECT sum(lag) FROM kappa_stats WHERE stream = 'm' AND view IS NULL}),
	'70', 'a kappa_admin member sees the same');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET kappa.enabled; SELECT pg_reload_conf()});
is(stat_sql(q{SELECT kappa_wait('m', '60 seconds')}), 't', 'enabled again, the worker caught up');
is(stat_sql(q{SELECT sum(lag) FROM kappa_stats WHERE stream = 'm'}), '0', 'no lag left');

# The brokers go away while the stream is idle: stalled, with the error.
broker_control($broker, 'down 1');
ok(wait_until(sub { stat_sql(q{SELECT state FROM kappa_workers WHERE stream = 'm'}) eq 'stalled' }, 60),
	'with the broker down, the idle worker is stalled');
is(stat_sql(q{SELECT last_sqlstate, last_error IS NOT NULL FROM kappa_workers WHERE stream = 'm'}), '08000|t',
	'kappa_workers shows the error');
is(stat_sql(q{SELECT count(*) FROM kappa_stats WHERE stream = 'm' AND view IS NULL
	AND worker_state = 'stalled' AND last_error IS NOT NULL AND events_per_s IS NULL AND end_checked_at < now()}),
	'2', 'kappa_stats: stalled, the error, no rate, and an end as of the last flush');

# They come back; nothing is produced, yet the worker finds out.
broker_control($broker, 'up 1');
ok(wait_until(sub { stat_sql(q{SELECT state FROM kappa_workers WHERE stream = 'm'}) eq 'running' }, 60),
	'the brokers answer: the idle worker is running again, without a message');
is(stat_sql(q{SELECT last_error IS NULL, last_sqlstate IS NULL, last_error_at IS NOT NULL FROM kappa_workers WHERE stream = 'm'}),
	't|t|t', 'running clears the error; when it happened stays');
is(stat_sql(q{SELECT count(*) FROM kappa_stats WHERE stream = 'm' AND last_error IS NOT NULL}), '0',
	'kappa_stats shows no error either');

produce(0, 650, 659);
is(stat_sql(q{SELECT kappa_wait('m', '60 seconds')}), 't', 'the stream goes on');
is(stat_sql(q{SELECT sum(n) FROM per_min}), 660 + 320, 'every event counted once');

# The postgres_exporter queries of the docs, each run and its numbers checked.
my %queries;
{
	my ($name, $in_query);
	open my $fh, '<', 'docs/monitoring/postgres_exporter.yaml' or die $!;
	while (my $line = <$fh>)
	{
		if ($line =~ /^(\w+):\s*$/) { $name = $1; $in_query = 0; next; }
		if ($line =~ /^  query: \|\s*$/) { $in_query = 1; next; }
		if ($in_query && $line =~ /^    (.*)$/) { $queries{$name} .= "$1\n"; next; }
		$in_query = 0;
	}
	close $fh;
}
is(join(' ', sort keys %queries), 'kappa_stream kappa_view kappa_worker', 'the exporter file has its three queries');
is($node->safe_psql('postgres', "SET ROLE mon; SELECT string_agg(concat_ws(' ', stream, partition, lag, lag_seconds, consumed, dead_lettered, lost, running), ', ' ORDER BY partition) FROM ($queries{kappa_stream}) q"),
	'm 0 0 0 660 0 0 1, m 1 0 0 320 0 0 1', 'kappa_stream: per partition, what was produced, as a kappa_admin member');
is($node->safe_psql('postgres', "SET ROLE mon; SELECT string_agg(concat_ws(' ', view, partition, lag, late, rejected, duplicate, lost, state_rows > 0, final_age_seconds > 0, kept_current), ', ' ORDER BY partition) FROM ($queries{kappa_view}) q"),
	'public.per_min 0 0 0 0 0 0 t t 1, public.per_min 1 0 0 0 0 0 t t 1', 'kappa_view: per view and partition');
is($node->safe_psql('postgres', "SET ROLE mon; SELECT string_agg(concat_ws(' ', stream, worker, state, failures, has_error), ', ') FROM ($queries{kappa_worker}) q"),
	'm 0 running 0 0', 'kappa_worker: the worker');

stop_broker($broker);
done_testing();
