# A view's rows leave kappa by logical replication: its rows table (shown
# by kappa_views.rows_table, with REPLICA IDENTITY FULL) is published, and
# a second cluster, without kappa, subscribes.  Inserts and updates of
# open windows arrive; after a replay, the documented steps (publish the
# new version's table, create it on the subscriber, refresh) bring the new
# version over.  The subscriber's rows equal the view's query as batch
# SQL over every event, at each step.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('lr:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $pub = kappa_node('publisher', init => { allows_streaming => 'logical' },
	conf => "kappa.flush_interval = '100ms'\n");
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->start;

my $query = q{SELECT dev, w.window_start, count(*) AS n, sum(v) AS s
	FROM lr, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start};
$pub->safe_psql('postgres', q{
	CREATE ROLE ana LOGIN IN ROLE kappa_admin;
	GRANT CREATE ON SCHEMA public TO ana;
	CREATE TABLE ev (i int, dev text, ts timestamptz, v int);
});
$pub->safe_psql('postgres', qq{
	SET ROLE ana;
	SELECT kappa_create_stream('lr', topic => 'lr', brokers => '$b',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '10 minutes');
	SELECT kappa_create_view('per_min', \$q\$$query\$q\$);
});

# Events i in [lo, hi]: ten devices, out of order within a few minutes.
sub produce
{
	my ($lo, $hi) = @_;
	my $file = "$dir/e$lo.txt";
	$pub->safe_psql('postgres', qq{
		INSERT INTO ev SELECT i, 'd' || (i % 10),
			timestamptz '2026-04-01 00:00:00+00' + i * interval '1 second' - ((i * 37) % 240) * interval '1 second',
			(i * 7) % 13
		FROM generate_series($lo, $hi) i;
		COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text
			FROM ev WHERE i BETWEEN $lo AND $hi ORDER BY i) TO '$file'});
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'lr', '-K', '|', '-l', $file ]) or die "kcat failed";
	is($pub->safe_psql('postgres', q{SELECT kappa_wait('lr', '60 seconds')}), 't', "events $lo to $hi consumed");
	return;
}

my $batch = $query =~ s/\bFROM lr\b/FROM ev lr/r;
sub batch_rows
{
	return $pub->safe_psql('postgres', "SELECT count(*), string_agg(format('%s %s %s %s', dev, window_start, n, s), ',' ORDER BY dev, window_start) FROM ($batch) r");
}
sub sub_rows
{
	my ($table) = @_;
	return $sub->safe_psql('postgres', "SELECT count(*), string_agg(format('%s %s %s %s', dev, window_start, n, s), ',' ORDER BY dev, window_start) FROM $table");
}

# Until the subscriber has the oracle's rows, within a minute: its apply
# worker commits the flushes' transactions in order, so it either reaches
# them or the test fails.
sub arrived
{
	my ($table) = @_;
	my $want = batch_rows();
	return wait_until(sub { sub_rows($table) eq $want }, 60);
}
sub synced
{
	return wait_until(sub {
		$sub->safe_psql('postgres', q{SELECT bool_and(srsubstate = 'r') FROM pg_subscription_rel}) eq 't' }, 60);
}

# The rows table, as kappa_views shows it, created alike on the subscriber.
sub rows_table { return $pub->safe_psql('postgres', q{SELECT rows_table FROM kappa_views WHERE name = 'public.per_min'}); }
sub create_on_subscriber
{
	my ($table) = @_;
	my $columns = $pub->safe_psql('postgres', qq{
		SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = '$table'::regclass AND attnum > 0 AND NOT attisdropped});
	$sub->safe_psql('postgres', "CREATE SCHEMA IF NOT EXISTS kappa; CREATE TABLE $table ($columns)");
	return;
}

my $table = rows_table();
like($table, qr/^kappa\.view_\d+$/, "kappa_views names the rows table ($table)");
is($pub->safe_psql('postgres', "SELECT relreplident FROM pg_class WHERE oid = '$table'::regclass"), 'f',
	'it has REPLICA IDENTITY FULL');
$pub->safe_psql('postgres', "CREATE PUBLICATION kv FOR TABLE $table");
create_on_subscriber($table);
my $connstr = $pub->connstr('postgres') =~ s/'/''/gr;
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION ks CONNECTION '$connstr' PUBLICATION kv");
ok(synced(), 'the subscription is ready');

produce(0, 1_999);
ok(arrived($table), 'the subscriber has the view\'s rows');
is(sub_rows($table), batch_rows(), '... equal to batch SQL');

# Late-enough events update windows that are open: updates replicate.
produce(2_000, 3_999);
ok(arrived($table), 'updates of open windows replicate');
is(sub_rows($table), batch_rows(), '... equal to batch SQL');
cmp_ok($pub->safe_psql('postgres', q{
		SELECT count(*) FROM (SELECT dev, kappa_tumble.window_start FROM ev, kappa_tumble(ts, '1 minute')
			GROUP BY 1, 2 HAVING min(i) < 2000 AND max(i) >= 2000) w}), '>', 0,
	'... some windows got events from both chunks, so rows were updated');

# A replay swaps in a new rows table: publish it, create it on the
# subscriber, refresh the subscription (which copies it), and read it.
$pub->safe_psql('postgres', q{SET ROLE ana; SELECT kappa_replay('per_min')});
my $new_table = rows_table();
isnt($new_table, $table, "the replay swapped in $new_table");
$pub->safe_psql('postgres', "ALTER PUBLICATION kv SET TABLE $new_table");
create_on_subscriber($new_table);
$sub->safe_psql('postgres', 'ALTER SUBSCRIPTION ks REFRESH PUBLICATION');
ok(synced(), 'the refreshed subscription is ready');
is(sub_rows($new_table), batch_rows(), 'the new version\'s rows arrived whole, equal to batch SQL');
produce(4_000, 5_999);
ok(arrived($new_table), 'and the rows that change after it');
is(sub_rows($new_table), batch_rows(), '... equal to batch SQL');

$sub->stop;
$pub->stop;
stop_broker($broker);
done_testing();
