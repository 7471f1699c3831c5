# A view's rows leave kappa through a Kafka sink, exactly once.  Events
# come in chunks while the server is killed with SIGKILL (twice, with
# sends in flight) and the broker goes down and up; at the end the sink
# topics, read as a read_committed consumer reads them (kcat), hold:
#  - for emit 'final': each final window's row once, equal to the view's
#    query as batch SQL over every event, numbered 1..N without a gap or a
#    repeat;
#  - for emit 'changes': changes numbered 1..M without a gap or a repeat,
#    whose last value per key is the view's row.
# Misuse is refused with its SQLSTATE.
use strict;
use warnings;

use JSON::PP;
use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker({ control => 1 }, 'sk:2', 'out:2', 'chg:2');
my $bootstrap = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('sink',
	conf => "kappa.flush_interval = '100ms'\nkappa.broker_timeout = '5s'\nrestart_after_crash = on\n");

$node->safe_psql('postgres', q{
	CREATE ROLE own LOGIN IN ROLE kappa_admin;
	CREATE ROLE other LOGIN IN ROLE kappa_admin;
	GRANT CREATE ON SCHEMA public TO own;
	CREATE TABLE ev (i int, dev text, ts timestamptz, v int);
});
my $per_min = q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
	FROM sk, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end};
$node->safe_psql('postgres', qq{
	SET ROLE own;
	SELECT kappa_create_stream('sk', topic => 'sk', brokers => '$bootstrap',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '1 minute');
	SELECT kappa_create_view('per_min', \$q\$$per_min\$q\$);
	SELECT kappa_create_view('tot', 'SELECT dev, count(*) AS n, sum(v) AS s FROM sk GROUP BY dev');
	SELECT kappa_create_sink('s_final', 'per_min', 'out');
	SELECT kappa_create_sink('s_chg', 'tot', 'chg', emit => 'changes');
	-- brokers nobody listens on: its errors are the sink's, not the stream's
	SELECT kappa_create_sink('s_dead', 'tot', 'dead', brokers => '127.0.0.1:1', emit => 'changes');
});

# Misuse.
sub sqlstate
{
	my ($sql, $role) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', ($role ? "SET ROLE $role; " : '') . $sql,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : "none ($err)";
}
is(sqlstate(q{SELECT kappa_create_sink('x', 'tot', 'x')}, 'own'), '22023', 'final rows of a view without windows: 22023');
is(sqlstate(q{SELECT kappa_create_sink('x', 'per_min', 'x', emit => 'all')}, 'own'), '22023', 'an unknown emit: 22023');
is(sqlstate(q{SELECT kappa_create_sink('x', 'per_min', 'x', eventhubs => 'Endpoint=sb://x/')}, 'own'), '0A000',
	'another Event Hubs namespace: 0A000');
is(sqlstate(q{SELECT kappa_create_sink('s_final', 'per_min', 'x')}, 'own'), '42710', 'a sink that exists: 42710');
is(sqlstate(q{SELECT kappa_create_sink('x', 'per_min', 'x')}, 'other'), '42501', 'a view of another owner: 42501');
is(sqlstate(q{SELECT kappa_drop_sink('s_final')}, 'other'), '42501', 'dropping another owner\'s sink: 42501');
is(sqlstate(q{SELECT kappa_create_sink('x', 'per_min', 'x', brokers => '127.0.0.1:1', options => '{"sasl.password": "p"}')}, 'own'),
	'0A000', 'a secret in a sink\'s options: 0A000 (not yet)');
is($node->safe_psql('postgres', q{SELECT string_agg(name || ' ' || emit, ', ' ORDER BY name) FROM kappa_sinks}),
	's_chg changes, s_dead changes, s_final final', 'kappa_sinks lists the three sinks');

# Events i in [lo, hi]: eight devices, a second apart, out of order
# within half a minute (less than the watermark).
sub produce
{
	my ($lo, $hi) = @_;
	my $file = "$dir/e$lo.txt";
	$node->safe_psql('postgres', qq{
		INSERT INTO ev SELECT i, 'd' || (i % 8),
			timestamptz '2026-05-01 00:00:00+00' + i * interval '1 second' - ((i * 37) % 30) * interval '1 second',
			(i * 7) % 11
		FROM generate_series($lo, $hi) i;
		COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text
			FROM ev WHERE i BETWEEN $lo AND $hi ORDER BY i) TO '$file'});
	IPC::Run::run([ 'kcat', '-P', '-b', $bootstrap, '-t', 'sk', '-K', '|', '-l', $file ]) or die "kcat failed";
	return;
}
sub wait_stream { return $node->safe_psql('postgres', q{SELECT kappa_wait('sk', '120 seconds')}); }
sub worker_pid { return $node->safe_psql('postgres', q{SELECT pid FROM kappa_workers WHERE stream = 'sk'}); }

produce(0, 1_999);
is(wait_stream(), 't', 'chunk 0 consumed');

# SIGKILL right after a chunk is produced: flushes and sends in flight.
produce(2_000, 3_999);
ok(wait_until(sub { $node->safe_psql('postgres', q{SELECT sum(sent) > 0 FROM kappa_sinks}) eq 't' }, 60),
	'the sinks have sent something');
my $pid = worker_pid();
ok(kill('KILL', $pid), "SIGKILL to the worker ($pid), with chunk 1 being read");
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM kappa_workers WHERE pid IS NOT NULL AND state = 'running'})
  or die 'the worker did not come back';
is(wait_stream(), 't', 'chunk 1 consumed after the crash');

# The broker goes away while a chunk is sent, and comes back.
produce(4_000, 5_999);
broker_control($broker, 'down 1');
ok(wait_until(sub { $node->safe_psql('postgres', q{SELECT state FROM kappa_workers WHERE stream = 'sk'}) eq 'stalled' }, 60),
	'the broker is down: the worker stalls');
broker_control($broker, 'up 1');
is(wait_stream(), 't', 'chunk 2 consumed after the broker came back');

produce(6_000, 7_999);
$pid = worker_pid();
ok(kill('KILL', $pid), "SIGKILL again ($pid)");
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM kappa_workers WHERE pid IS NOT NULL AND state = 'running'})
  or die 'the worker did not come back';

# An event hours later in each partition makes every window before it final.
produce(8_000, 8_000);
$node->safe_psql('postgres', qq{
	INSERT INTO ev SELECT 100000 + p, 'late' || p, timestamptz '2026-05-01 04:00:00+00', 0 FROM generate_series(0, 1) p;
	COPY (SELECT json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text FROM ev WHERE i = 100000) TO '$dir/f0.txt';
	COPY (SELECT json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text FROM ev WHERE i = 100001) TO '$dir/f1.txt'});
IPC::Run::run([ 'kcat', '-P', '-b', $bootstrap, '-t', 'sk', '-p', $_, '-l', "$dir/f$_.txt" ]) or die "kcat failed" foreach 0 .. 1;
is(wait_stream(), 't', 'everything consumed');
ok(wait_until(sub { $node->safe_psql('postgres', q{SELECT bool_and(pending = 0 AND last_error IS NULL) FROM kappa_sinks WHERE name <> 's_dead'}) eq 't' }, 120),
	'the sinks sent everything');
is($node->safe_psql('postgres', q{SELECT sent = 0 AND pending > 0 AND last_error IS NOT NULL FROM kappa_sinks WHERE name = 's_dead'}), 't',
	'the sink whose brokers do not answer holds its rows, with its error, and the stream went on');

# A crash between Kafka's commit and Postgres's, made by hand: the last
# five rows sent are recorded as not sent, with stand-ins in the outbox.
# A new worker (a new producer) must learn from the topic that they were
# sent, and send none of them again.
$node->safe_psql('postgres', q{ALTER SYSTEM SET kappa.enabled = off; SELECT pg_reload_conf()});
ok(wait_until(sub { $node->safe_psql('postgres', q{SELECT state FROM kappa_workers WHERE stream = 'sk'}) eq 'disabled' }, 60),
	'the worker is stopped');
my $log_offset = -s $node->logfile;
my $sent_before = $node->safe_psql('postgres', q{
	UPDATE kappa.sinks SET sent_seq = sent_seq - 5 WHERE name = 's_final';
	INSERT INTO kappa.sink_outbox SELECT sink_id, seq, '{}', format('{"kappa": {"sink": "s_final", "seq": %s}, "row": {"stand_in": true}}', seq)
		FROM kappa.sinks, generate_series(sent_seq + 1, sent_seq + 5) seq WHERE name = 's_final';
	SELECT sent_seq + 5 FROM kappa.sinks WHERE name = 's_final'});
$node->safe_psql('postgres', q{ALTER SYSTEM RESET kappa.enabled; SELECT pg_reload_conf()});
ok(wait_until(sub { $node->safe_psql('postgres', q{SELECT sent FROM kappa_sinks WHERE name = 's_final'}) eq $sent_before }, 60),
	'the sink is back where it was');
ok(log_contains($node, qr/kappa sink "s_final": its topic holds rows up to seq $sent_before, 5 more than recorded as sent/, $log_offset),
	'it learned so from the topic');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.sink_outbox o JOIN kappa.sinks k USING (sink_id) WHERE k.name = 's_final'}), '0',
	'and dropped the stand-ins unsent');

# The topics, as a read_committed consumer reads them.
sub topic_values
{
	my ($topic) = @_;
	my ($out, $err);
	IPC::Run::run([ 'kcat', '-C', '-b', $bootstrap, '-t', $topic, '-e', '-q', '-X', 'isolation.level=read_committed',
		'-f', "%s\n" ], '>', \$out, '2>', \$err) or die "kcat -C failed: $err";
	return [ map { decode_json($_) } grep { length } split /\n/, $out ];
}
my $json = JSON::PP->new->canonical;

my $finals = topic_values('out');
my @seqs = sort { $a <=> $b } map { $_->{kappa}{seq} } @$finals;
is_deeply(\@seqs, [ 1 .. scalar(@seqs) ], 'final rows: seqs 1..' . scalar(@seqs) . ', no gap, no repeat');
is($node->safe_psql('postgres', q{SELECT sent FROM kappa_sinks WHERE name = 's_final'}), scalar(@seqs),
	'kappa_sinks counts them all sent');
my $until = $node->safe_psql('postgres', q{SELECT kappa_final_until('per_min')});
my %sent = map { my $r = $_->{row}; (join('|', $r->{dev}, $r->{window_start}) => join('|', $r->{window_end}, $r->{n}, $r->{s})) } @$finals;
is(scalar(keys %sent), scalar(@$finals), 'each window once');
my %batch = map { my @f = split /\|/; (join('|', $f[0], $f[1]) => join('|', @f[2 .. 4])) } split /\n/,
  $node->safe_psql('postgres', qq{
	SET TimeZone = 'UTC'; SET DateStyle = 'ISO';
	SELECT dev, to_json(window_start) #>> '{}', to_json(window_end) #>> '{}', n, s FROM (
		SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM ev, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end) b
	WHERE window_end <= '$until'});
is_deeply(\%sent, \%batch, 'the final rows sent equal batch SQL\'s final windows (' . scalar(keys %batch) . ')');
ok(scalar(keys %batch) > 100, 'and there are many');

my $changes = topic_values('chg');
my @cseqs = map { $_->{kappa}{seq} } @$changes;
is_deeply([ sort { $a <=> $b } @cseqs ], [ 1 .. scalar(@cseqs) ], 'changes: seqs 1..' . scalar(@cseqs) . ', no gap, no repeat');
my %last;
foreach my $c (sort { $a->{kappa}{seq} <=> $b->{kappa}{seq} } @$changes)
{
	$last{ $c->{row}{dev} } = join('|', $c->{row}{n}, $c->{row}{s});
}
my %tot = map { my @f = split /\|/; ($f[0] => "$f[1]|$f[2]") } split /\n/,
  $node->safe_psql('postgres', q{SELECT dev, count(*), sum(v) FROM ev GROUP BY dev});
is_deeply(\%last, \%tot, 'the last change of each key is the batch query\'s row');

$node->safe_psql('postgres', q{SET ROLE own; SELECT kappa_drop_sink('s_chg'); SELECT kappa_drop_sink('s_dead')});
is($node->safe_psql('postgres', q{SELECT string_agg(name, ',') FROM kappa_sinks}), 's_final', 'the owner drops sinks');

# A sink of the same name made again, to the same topic: the topic's
# messages of the first one are not the new one's, which sends everything.
my $windows = scalar(keys %batch);
$node->safe_psql('postgres', q{SET ROLE own; SELECT kappa_drop_sink('s_final'); SELECT kappa_create_sink('s_final', 'per_min', 'out')});
my $new_id = $node->safe_psql('postgres', q{SELECT sink_id FROM kappa.sinks WHERE name = 's_final'});
produce(8_001, 8_001);
is(wait_stream(), 't', 'one more event consumed');
ok(wait_until(sub { $node->safe_psql('postgres', q{SELECT pending = 0 AND sent >= } . $windows . q{ FROM kappa_sinks WHERE name = 's_final'}) eq 't' }, 120),
	'the new sink sent the final windows');
my @again = map { $_->{kappa}{seq} } grep { $_->{kappa}{sink_id} == $new_id } @{ topic_values('out') };
is_deeply([ sort { $a <=> $b } @again ], [ 1 .. scalar(@again) ], 'its own seqs, 1..' . scalar(@again) . ', no gap, no repeat');
cmp_ok(scalar(@again), '>=', $windows, 'every final window again, under the new sink\'s id');

$node->stop;
stop_broker($broker);
done_testing();
