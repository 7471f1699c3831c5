# kappa_alter_stream on streams whose views consume.  A column and paths
# are added while events flow: a view created afterwards over the new
# column equals its batch query over every event, and the old views still
# equal theirs (nothing lost or doubled), also for messages only the
# appended path reads.  A smaller watermark then makes late exactly the
# events a hand computation says.  librdkafka options are merged (a null
# removes a key), secrets stay in kappa.stream_secrets, masked for other
# roles.  The server is killed -9 right after an alter, with events read
# and not flushed: after recovery every view is exact again, and a view
# over the column added just before the crash too.  Non-owners get 42501;
# what cannot be done safely is refused with its SQLSTATE and changes
# nothing.  Last, a dump restored into another database keeps the altered
# definition (its relation, columns and paths).
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('alt:2', 'altwm:1', 'altop:1');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('alter',
	conf => "kappa.flush_interval = '200ms'\nkappa.flush_events = 700\nrestart_after_crash = on\n");

$node->safe_psql('postgres', qq{
	CREATE ROLE alice LOGIN IN ROLE kappa_admin;
	CREATE ROLE bob LOGIN IN ROLE kappa_admin;
	CREATE ROLE carol LOGIN;
	GRANT CREATE ON SCHEMA public TO alice;
	CREATE SCHEMA batch;
	-- event i: 10 devices, 4 regions, 200 ms apart with disorder well
	-- inside the watermark; w is in every payload, region under meta
	CREATE TABLE batch.ev AS
	SELECT i, 'd' || (i % 10) AS dev,
		timestamptz '2026-03-01 00:00:00+00' + i * interval '200 ms' + ((i * 37) % 41 - 20) * interval '200 ms' AS ts,
		(i * 13) % 97 AS v, 'r' || (i % 4) AS region, i % 5 AS w
	FROM generate_series(0, 14099) i;
	GRANT USAGE ON SCHEMA batch TO alice;
	-- a view calling it tells the test which events the worker applied,
	-- flushed or not
	CREATE FUNCTION public.seen(i int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS \$f\$
	BEGIN
		RAISE LOG 'kappa test saw event %', i;
		RETURN true;
	END \$f\$;
	GRANT SELECT ON batch.ev TO alice;
	SET ROLE alice;
	SELECT kappa_create_stream('al', topic => 'alt', brokers => '$b',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int',
		event_time => 'ts', watermark => '1 hour');
});

my %queries = (
	t1 => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM ev, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end},
	r1 => q{SELECT dev, count(*) AS n, sum(v) AS s, count(v) AS nv FROM ev GROUP BY dev},
);
foreach my $name (sort keys %queries)
{
	(my $q = $queries{$name}) =~ s/FROM ev\b/FROM al/;
	$node->safe_psql('postgres', "SET ROLE alice; SELECT kappa_create_view('$name', \$q\$$q\$q\$)");
}
# and its batch query, without the function
$node->safe_psql('postgres',
	"SET ROLE alice; SELECT kappa_create_view('sn', 'SELECT dev, count(*) AS n FROM al WHERE public.seen(i) GROUP BY dev')");
$queries{sn} = q{SELECT dev, count(*) AS n FROM ev GROUP BY dev};

# Produce events lo..hi, keyed by device; in chunk C (6000-7999) the even
# ones carry their v as "value", which only the path added later reads.
sub chunk_file
{
	my ($lo, $hi) = @_;
	my $file = "$dir/ev$lo.txt";
	$node->safe_psql('postgres', qq{
		COPY (SELECT dev || '|' || (jsonb_build_object('i', i, 'dev', dev, 'ts', ts, 'w', w,
					'meta', jsonb_build_object('region', region))
				|| CASE WHEN i BETWEEN 6000 AND 7999 AND i % 2 = 0
					THEN jsonb_build_object('value', v) ELSE jsonb_build_object('v', v) END)::text
			FROM batch.ev WHERE i BETWEEN $lo AND $hi ORDER BY i) TO '$file'});
	return $file;
}

sub produce
{
	my ($lo, $hi) = @_;
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'alt', '-K', '|', '-l', chunk_file($lo, $hi) ])
	  or die "kcat could not produce events $lo-$hi";
	return;
}

sub produce_in_background
{
	my ($lo, $hi) = @_;
	return IPC::Run::start([ 'kcat', '-P', '-b', $b, '-t', 'alt', '-K', '|', '-l', chunk_file($lo, $hi) ]);
}

sub consumed
{
	my ($stream) = @_;
	my ($rc, $out) = $node->psql('postgres',
		"SELECT coalesce(sum(consumed), 0) FROM kappa_stats WHERE view IS NULL AND stream = '$stream'");
	return $rc == 0 ? $out : undef;
}

sub worker_pid
{
	my ($stream) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(max(pid), 0) FROM kappa_workers WHERE stream = '$stream' AND state = 'running'");
}

# Wait until the stream's worker is a new one, running: the alter reached it.
sub wait_new_worker
{
	my ($stream, $old_pid, $what) = @_;
	ok(wait_until(sub { my $p = worker_pid($stream); $p != 0 && $p != $old_pid }, 60),
		"$what: the launcher restarted the worker of $stream");
	return;
}

# A view against its batch query over events 0..$upto-1: "extra/missing/rows".
sub compare
{
	my ($view, $q, $upto) = @_;
	$q =~ s/FROM ev\b/FROM (SELECT * FROM batch.ev WHERE i < $upto) ev/;
	return $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $view EXCEPT ALL ($q)) a)
			|| '/' || (SELECT count(*) FROM (($q) EXCEPT ALL SELECT * FROM $view) b)
			|| '/' || (SELECT count(*) FROM $view)});
}

sub check_views
{
	my ($upto, $what, %views) = @_;
	foreach my $name (sort keys %views)
	{
		my ($extra, $missing, $rows) = split m{/}, compare($name, $views{$name}, $upto);
		ok($rows > 0 && $extra == 0 && $missing == 0,
			"$what: view $name equals its batch query over $upto events ($rows rows; $extra extra, $missing missing)");
	}
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM (SELECT view, sum(delivered + filtered + duplicate) AS seen,
				sum(delivered) AS d, sum(applied) AS a
			FROM kappa_stats WHERE stream = 'al' AND view IS NOT NULL GROUP BY view) s
		WHERE seen <> $upto OR d <> a}),
		'0', "$what: every view of al saw each of the $upto events once and applied it");
	is($node->safe_psql('postgres',
			"SELECT sum(consumed) || '/' || sum(dead_lettered) FROM kappa_stats WHERE stream = 'al' AND view IS NULL"),
		"$upto/0", "$what: the stream consumed each event once");
	return;
}

# --- a column and paths added while events flow ---------------------------

produce(0, 2999);
is($node->safe_psql('postgres', "SELECT kappa_wait('al', '60 seconds')"), 't', 'first 3000 events consumed');

my $kcat = produce_in_background(3000, 5999);
ok(wait_until(sub { (consumed('al') // 0) > 3300 }, 60), 'the worker consumes the second burst');
my $pid = worker_pid('al');
my ($rc, $out, $err) = $node->psql('postgres', q{SET ROLE alice;
	SELECT kappa_alter_stream('al', add_columns => 'region text',
		add_paths => '{"region": "meta.region", "v": "value"}')});
is($rc, 0, 'alter: add column region and an alternative path for v, while events flow');
like($err, qr/NOTICE:  stream "al" has new columns: region/, 'the NOTICE names the new column');
like($err, qr/NOTICE:  the new paths of stream "al" apply .*; views public\.r1, public\.t1 already applied earlier messages without them/,
	'the NOTICE names the views that read the column whose paths changed');
$kcat->finish or die 'kcat failed';
wait_new_worker('al', $pid, 'add_columns');
is($node->safe_psql('postgres', "SELECT kappa_wait('al', '60 seconds')"), 't', 'second burst consumed');
is($node->safe_psql('postgres', q{SELECT columns || ' ' || paths::text FROM kappa_streams WHERE name = 'al'}),
	'i integer, dev text, ts timestamp with time zone NOT NULL, v integer, region text '
	  . '{"i": ["i"], "v": ["v", "value"], "ts": ["ts"], "dev": ["dev"], "region": ["meta.region"]}',
	'kappa_streams shows the new column and paths');
is($node->safe_psql('postgres', q{SELECT string_agg(attname || ':' || attnum, ',' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = (SELECT format('kappa.stream_%s', stream_id)::regclass FROM kappa.streams WHERE name = 'al')
		AND attnum > 0}),
	'i:1,dev:2,ts:3,v:4,kafka_partition:5,kafka_offset:6,kafka_timestamp:7,kafka_key:8,region:9',
	'the new column is added at the end of the stream relation; nothing moved');

my %new_views = (
	g2 => q{SELECT region, count(*) AS n, sum(v) AS s, count(DISTINCT dev) AS devs FROM ev GROUP BY region},
);
$node->safe_psql('postgres',
	"SET ROLE alice; SELECT kappa_create_view('g2', \$q\$" . ($new_views{g2} =~ s/FROM ev\b/FROM al/r) . "\$q\$)");
is($node->safe_psql('postgres', "SELECT kappa_wait('al', '60 seconds')"), 't', 'view g2 caught up');

# events the old paths do not read: only the appended path gives their v
produce(6000, 7999);
is($node->safe_psql('postgres', "SELECT kappa_wait('al', '60 seconds')"), 't', 'third chunk consumed');
check_views(8000, 'after add_columns', %queries, %new_views);
foreach my $name ('g2', sort keys %queries)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kappa_check('$name')"), '0',
		"kappa_check finds view $name equal to its log");
}

# --- options -----------------------------------------------------------------

$node->safe_psql('postgres', qq{SET ROLE alice;
	SELECT kappa_create_stream('op', topic => 'altop', brokers => '$b', columns => 'a int',
		options => '{"fetch.wait.max.ms": 300, "client.id": "first"}')});
$pid = worker_pid('op');
ok(wait_until(sub { ($pid = worker_pid('op')) != 0 }, 60), 'stream op runs');
$node->safe_psql('postgres', q{SET ROLE alice;
	SELECT kappa_alter_stream('op', options => '{"fetch.wait.max.ms": 250, "client.id": null, "sasl.password": "s3cret-pw", "queued.min.messages": "2000"}')});
wait_new_worker('op', $pid, 'options');
my $settings = q{SELECT string_agg(setting || '=' || value, ',' ORDER BY setting)
	FROM kappa_stream_settings('op') WHERE setting <> 'bootstrap.servers'};
is($node->safe_psql('postgres', "SET ROLE alice; $settings"),
	'fetch.wait.max.ms=250,queued.min.messages=2000,sasl.password=********',
	'options merged: one changed, one removed by null, two added; the secret masked for its owner too');
is($node->safe_psql('postgres', "SET ROLE bob; $settings"),
	'fetch.wait.max.ms=250,queued.min.messages=2000,sasl.password=********', 'and for another role');
is($node->safe_psql('postgres', q{SET ROLE bob; SELECT options::text FROM kappa_streams WHERE name = 'op'}),
	'{"sasl.password": "********", "fetch.wait.max.ms": "250", "queued.min.messages": "2000"}',
	'kappa_streams shows the options, the secret masked');
is($node->safe_psql('postgres', q{SET ROLE bob; SELECT count(*) FROM kappa.stream_secrets}), '0',
	'another kappa_admin member sees no secret');
is($node->safe_psql('postgres', q{SET ROLE alice; SELECT settings->>'sasl.password' FROM kappa.stream_secrets s
		JOIN kappa.streams USING (stream_id) WHERE name = 'op'}),
	's3cret-pw', 'the owner reads her secret in kappa.stream_secrets');
$node->safe_psql('postgres', q{SET ROLE alice; SELECT kappa_alter_stream('op', options => '{"sasl.password": null}')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.stream_secrets s JOIN kappa.streams USING (stream_id) WHERE name = 'op'})
	  . '/' . $node->safe_psql('postgres', "SET ROLE alice; $settings"),
	'0/fetch.wait.max.ms=250,queued.min.messages=2000', 'a null removes the secret, from kappa.stream_secrets too');

# --- refusals ------------------------------------------------------------------

my $revision = $node->safe_psql('postgres', q{SELECT string_agg(revision::text, ',' ORDER BY name) FROM kappa.streams});
my $relation = $node->safe_psql('postgres', q{SELECT count(*) FROM pg_attribute a JOIN kappa.streams s
	ON a.attrelid = format('kappa.stream_%s', s.stream_id)::regclass WHERE a.attnum > 0});
my @refused = (
	[ 'bob', q{'al', watermark => '1 minute'}, '42501', 'another kappa_admin member may not alter alice\'s stream' ],
	[ 'carol', q{'al', watermark => '1 minute'}, '42501', 'a role outside kappa_admin may not call it' ],
	[ 'alice', q{'al', add_columns => 'v text'}, '0A000', 'changing a column\'s type' ],
	[ 'alice', q{'al', add_columns => 'v int'}, '42701', 'adding a column that exists' ],
	[ 'alice', q{'al', add_columns => 'z int NOT NULL'}, '0A000', 'adding a NOT NULL column' ],
	[ 'alice', q{'al', add_columns => 'kafka_key text'}, '42939', 'adding a metadata column\'s name' ],
	[ 'alice', q{'al', add_columns => 'z int[]'}, '0A000', 'adding a column of an array type' ],
	[ 'alice', q{'al', add_columns => 'z'}, '42601', 'a malformed column list' ],
	[ 'alice', q{'al', add_paths => '{"ts": "time"}'}, '0A000', 'new paths for the event time column' ],
	[ 'alice', q{'al', add_paths => '{"nope": "x"}'}, '42703', 'paths for a column the stream lacks' ],
	[ 'alice', q{'al', add_paths => '{"v": "value"}'}, '42710', 'a path the column already reads' ],
	[ 'alice', q{'al', add_paths => '{"v": "a..b"}'}, '22023', 'a malformed path' ],
	[ 'alice', q{'al', add_paths => '["v"]'}, '22023', 'add_paths not an object' ],
	[ 'alice', q{'al', watermark => '1 month'}, '22023', 'a watermark in months' ],
	[ 'alice', q{'al', watermark => '-1 minute'}, '22023', 'a negative watermark' ],
	[ 'alice', q{'al', idle_timeout => '0 seconds'}, '22023', 'a zero idle_timeout' ],
	[ 'alice', q{'al', options => '{"bootstrap.servers": "elsewhere:9092"}'}, '22023', 'changing the brokers through options' ],
	[ 'alice', q{'al', options => '{"group.id": "other"}'}, '22023', 'a setting kappa manages' ],
	[ 'alice', q{'al', options => '{"fetch.wait.max.ms": "soon"}'}, '22023', 'a value librdkafka rejects' ],
	[ 'alice', q{'al', options => '{"no.such.setting": 1}'}, '22023', 'a setting librdkafka does not know' ],
	[ 'alice', q{'al', options => '{"plugin.library.paths": "x"}'}, '42501', 'a setting that loads code, as a non-superuser' ],
	[ 'alice', q{'al'}, '22023', 'nothing to alter' ],
	[ 'alice', q{NULL, watermark => '1 minute'}, '22004', 'a null name' ],
	[ 'alice', q{'nosuch', watermark => '1 minute'}, '42704', 'a stream that does not exist' ],
);
foreach my $case (@refused)
{
	my ($role, $args, $sqlstate, $what) = @$case;
	my ($rc2, $out2, $err2) = $node->psql('postgres',
		"SET ROLE $role;\n"
		  . "\\set VERBOSITY verbose\nSELECT kappa_alter_stream($args)");
	like($err2, qr/ERROR:  $sqlstate:/, "refused with $sqlstate: $what");
}
like(($node->psql('postgres', q{SET ROLE alice; SELECT kappa_alter_stream('al', add_columns => 'v real')}))[2],
	qr/HINT:  Drop and create the stream \(kappa_drop_stream, kappa_create_stream\), or add a column of another name/, 'a type change is refused with a hint to create the stream again');
is($node->safe_psql('postgres', q{SELECT string_agg(revision::text, ',' ORDER BY name) FROM kappa.streams}), $revision,
	'no refused call changed a stream');

# several calls in one transaction, and one rolled back
$node->safe_psql('postgres', q{SET ROLE alice; BEGIN;
	SELECT kappa_alter_stream('op', add_columns => 'x1 int');
	SELECT kappa_alter_stream('op', add_columns => 'x2 text', add_paths => '{"x2": "deep.x2"}');
	COMMIT;
	BEGIN; SELECT kappa_alter_stream('al', add_columns => 'gone int'); ROLLBACK;});
is($node->safe_psql('postgres', q{SELECT string_agg(c.name || ':' || c.attnum || ':' || a.attnum, ',' ORDER BY c.attnum)
		FROM kappa.stream_columns c JOIN kappa.streams s USING (stream_id)
		JOIN pg_attribute a ON a.attrelid = format('kappa.stream_%s', s.stream_id)::regclass AND a.attname = c.name
		WHERE s.name = 'op'}),
	'a:1:1,x1:6:6,x2:7:7', 'two alters in one transaction add two columns, each at the relation\'s end');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.stream_columns c JOIN kappa.streams s USING (stream_id)
		WHERE s.name = 'al' AND c.name = 'gone'})
	  . '/' . $node->safe_psql('postgres', q{SELECT count(*) FROM pg_attribute a JOIN kappa.streams s
		ON a.attrelid = format('kappa.stream_%s', s.stream_id)::regclass WHERE a.attnum > 0}),
	'0/' . ($relation + 2), 'an alter rolled back leaves neither a column nor an attribute');
is($node->safe_psql('postgres', q{SET ROLE alice;
		SELECT ok || ' ' || "values"::text FROM kappa.decode('op', '{"a": 1, "x1": 2, "deep": {"x2": "y"}}')}),
	'true {"a": "1", "x1": "2", "x2": "y"}', 'kappa.decode reads the added columns, at their places');
$node->safe_psql('postgres', q{SET ROLE alice; SELECT kappa_alter_stream('op', add_paths => '{"A": "alt.a"}')});
is($node->safe_psql('postgres', q{SET ROLE alice;
		SELECT "values"::text || ' ' || (SELECT "values"->>'a' FROM kappa.decode('op', '{"a": 1, "alt": {"a": 2}}'))
		FROM kappa.decode('op', '{"alt": {"a": 9}, "x1": 2}')}),
	'{"a": "9", "x1": "2", "x2": null} 1', 'a path appended to column a (named "A", which folds to it) reads only where "a" is absent');
is($node->safe_psql('postgres', q{SET ROLE alice;
		SELECT ok || '/' || sqlstate FROM kappa.decode('op', '{"a": 1, "x1": "many"}')}),
	'false/22P02', 'a field the new column\'s type rejects makes the message a dead letter, as at creation');

# --- a kill -9 right after an alter, with events read and not flushed -------

# Flushes an hour apart from now on: the worker applies what it reads,
# and commits none of it.
$node->safe_psql('postgres', q{ALTER SYSTEM SET kappa.flush_interval = '1h'});
$node->safe_psql('postgres', q{ALTER SYSTEM SET kappa.flush_events = 1000000});
$node->reload;
my $log_offset = -s $node->logfile;
$kcat = produce_in_background(8000, 13999);
ok(wait_until(sub {
		my %ids = map { $_ => 1 } (slurp_file($node->logfile, $log_offset) =~ /kappa test saw event (\d+)/g);
		return !grep { !$ids{$_} } (8000 .. 13999);
	}, 60), 'the worker applied the fourth burst');
$kcat->finish or die 'kcat failed';
is(consumed('al'), '8000', 'and committed none of it');
($rc, $out, $err) = $node->psql('postgres', q{SET ROLE alice;
	SELECT kappa_alter_stream('al', add_columns => 'w int', options => '{"fetch.wait.max.ms": 100}')});
is($rc, 0, 'alter: add column w, with 6000 events read and not flushed');
my $postmaster = $node->{_pid};
$node->kill9;
ok(wait_until(sub { !kill(0, $postmaster) && !old_processes_alive() }, 60),
	'every process of the killed server exits by itself');
$node->start;
$node->safe_psql('postgres', q{ALTER SYSTEM RESET kappa.flush_interval});
$node->safe_psql('postgres', q{ALTER SYSTEM RESET kappa.flush_events});
$node->reload;
is($node->safe_psql('postgres', "SELECT kappa_wait('al', '180 seconds')"), 't',
	'after the crash, the worker consumed everything');
ok(log_contains($node, qr/kappa view public\.r1 lost its state to crash recovery or a failover; rebuilding it/, $log_offset),
	'crash recovery took the views\' state, and the worker rebuilt them with the new definition');
is($node->safe_psql('postgres', q{SELECT string_agg(setting || '=' || value, ',') FROM kappa_stream_settings('al')
		WHERE setting = 'fetch.wait.max.ms'}), 'fetch.wait.max.ms=100', 'the options changed too');
$new_views{wv} = q{SELECT dev, count(w) AS nw, sum(w) AS sw, sum(v) AS s FROM ev GROUP BY dev};
$node->safe_psql('postgres',
	"SET ROLE alice; SELECT kappa_create_view('wv', \$q\$" . ($new_views{wv} =~ s/FROM ev\b/FROM al/r) . "\$q\$)");
is($node->safe_psql('postgres', "SELECT kappa_wait('al', '60 seconds')"), 't', 'view wv caught up');
check_views(14000, 'after the crash', %queries, %new_views);
foreach my $name (sort keys %queries, sort keys %new_views)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kappa_check('$name')"), '0',
		"after the crash, kappa_check finds view $name equal to its log");
}

# A view over a new column created in the alter's own transaction: the
# worker running when it commits has no such column, and must leave the
# view to the worker started in its place.  The launcher is stopped
# (SIGSTOP) meanwhile, so the old worker goes on for a while, and flushes
# new events with the view in the catalog.
$pid = worker_pid('al');
my $launcher = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kappa launcher'});
ok($launcher > 0 && kill('STOP', $launcher), 'the launcher is stopped');
$node->safe_psql('postgres', q{SET ROLE alice; BEGIN;
	SELECT kappa_alter_stream('al', add_columns => 'dev2 text', add_paths => '{"dev2": "dev"}');
	SELECT kappa_create_view('d2', 'SELECT dev2, count(*) AS n, sum(w) AS sw FROM al GROUP BY dev2');
	COMMIT;});
produce(14000, 14049);
ok(wait_until(sub { (consumed('al') // 0) == 14050 }, 60), 'the old worker flushed events after the alter');
is(worker_pid('al') . '/' . $node->safe_psql('postgres', q{SELECT status FROM kappa_views WHERE name = 'public.d2'})
	  . '/' . $node->safe_psql('postgres', q{SELECT count(*) FROM kappa.view_partitions p JOIN kappa.views v USING (view_id)
		WHERE v.view_name = 'd2'}),
	"$pid/live/0", 'the old worker did not load the view over the column it lacks');
kill 'CONT', $launcher;
wait_new_worker('al', $pid, 'alter and a view in one transaction');
is($node->safe_psql('postgres', "SELECT kappa_wait('al', '60 seconds')"), 't', 'view d2 caught up');
my ($extra, $missing, $rows) = split m{/}, compare('d2', q{SELECT dev AS dev2, count(*) AS n, sum(w) AS sw FROM ev GROUP BY dev}, 14050);
ok($rows == 10 && $extra == 0 && $missing == 0,
	"view d2, created with its column in one transaction, equals its batch query ($rows rows; $extra extra, $missing missing)");
check_views(14050, 'after the launcher came back', %queries, %new_views);
ok(log_contains($node, qr/kappa launcher: stream "al" altered, restarting its worker/),
	'the launcher says why it restarts the worker');

# --- the watermark ------------------------------------------------------------

# One partition, a view of 1-minute windows, keep_late: the watermark goes
# from 1 hour to 1 minute.  Events e1-e3 come before, e4-e6 after:
#   e1 12:00:00, e2 12:30:00 (latest: the watermark is 11:30 under 1 hour)
#   e3 12:10:00  window ends 12:11 > 11:30: on time
#   -- watermark 1 minute: it is now 12:29
#   e4 12:20:00  window ends 12:21 <= 12:29: late (on time under 1 hour)
#   e5 12:29:30  window ends 12:30 > 12:29: on time
#   e6 12:28:59  window ends 12:29 <= 12:29: late
$node->safe_psql('postgres', qq{SET ROLE alice;
	SELECT kappa_create_stream('wm', topic => 'altwm', brokers => '$b', columns => 'n int, ts timestamptz',
		event_time => 'ts', watermark => '1 hour', keep_late => true);
	SELECT kappa_create_view('wt', \$q\$SELECT w.window_start, w.window_end, count(*) AS n, sum(n) AS s
		FROM wm, kappa_tumble(ts, '1 minute') w GROUP BY w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('wr', 'SELECT count(*) AS n FROM wm');
	SELECT kappa_produce('wm', '{"n": 1, "ts": "2026-03-01 12:00:00Z"}');
	SELECT kappa_produce('wm', '{"n": 2, "ts": "2026-03-01 12:30:00Z"}');
	SELECT kappa_produce('wm', '{"n": 3, "ts": "2026-03-01 12:10:00Z"}');
	SELECT kappa_wait('wm', '60 seconds');});
$pid = worker_pid('wm');
($rc, $out, $err) = $node->psql('postgres', q{SET ROLE alice; SELECT kappa_alter_stream('wm', watermark => '1 minute')});
like($err, qr/NOTICE:  the watermark of stream "wm" changes from 01:00:00 to 00:01:00 from its worker's next start on; views public\.wt keep what the old watermark decided/,
	'the NOTICE names the windowed view, not the running one');
wait_new_worker('wm', $pid, 'watermark');
$node->safe_psql('postgres', q{SET ROLE alice;
	SELECT kappa_produce('wm', '{"n": 4, "ts": "2026-03-01 12:20:00Z"}');
	SELECT kappa_produce('wm', '{"n": 5, "ts": "2026-03-01 12:29:30Z"}');
	SELECT kappa_produce('wm', '{"n": 6, "ts": "2026-03-01 12:28:59Z"}');
	SELECT kappa_wait('wm', '60 seconds');});
is($node->safe_psql('postgres', q{SELECT view || ':' || applied || '/' || late FROM kappa_stats
		WHERE stream = 'wm' AND view IS NOT NULL ORDER BY view}),
	"public.wr:6/0\npublic.wt:4/2", 'the new watermark makes e4 and e6 late; the running view has nothing late');
is($node->safe_psql('postgres', q{SELECT string_agg(l."offset"::text, ',' ORDER BY l."offset")
		FROM kappa.late_events l JOIN kappa.views v USING (view_id) WHERE v.view_name = 'wt'}),
	'3,5', 'kappa.late_events holds e4 and e6 (offsets 3 and 5)');
is($node->safe_psql('postgres', q{SELECT string_agg(to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI') || '=' || s, ',' ORDER BY window_start) FROM wt}),
	'12:00=1,12:10=3,12:29=5,12:30=2', 'view wt holds the on-time events');
is($node->safe_psql('postgres', q{SELECT sum(late) FROM kappa.view_partitions p JOIN kappa.views v USING (view_id)
		WHERE v.view_name = 'wt'}), '2', 'kappa.view_partitions counts the two late events');

# --- dump and restore keep the new definition ---------------------------------

my $plain = "$dir/alter.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $plain ], 'pg_dump of the database');
$node->safe_psql('postgres', 'CREATE DATABASE copy');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('copy'), '-f', $plain ],
	'restored into another database');
my $definition = q{SELECT string_agg(format('%s|%s|%s|%s|%s|%s', name, columns, paths, watermark, idle_timeout, options), E'\n' ORDER BY name)
	FROM kappa_streams};
is($node->safe_psql('copy', $definition), $node->safe_psql('postgres', $definition),
	'the restored streams have the altered definitions');
my $attributes = q{SELECT string_agg(s.name || '.' || a.attname || ':' || a.attnum, ',' ORDER BY s.name, a.attnum)
	FROM kappa.streams s JOIN pg_attribute a ON a.attrelid = format('kappa.stream_%s', s.stream_id)::regclass
	WHERE a.attnum > 0};
is($node->safe_psql('copy', $attributes), $node->safe_psql('postgres', $attributes),
	'the restored stream relations have the same attributes, in the same places');
is($node->safe_psql('copy', q{SET ROLE alice;
		SELECT "values"->>'w' || '/' || ("values"->>'region') FROM kappa.decode('al', '{"i": 1, "dev": "d", "ts": "2026-03-01T00:00:00Z", "w": 7, "meta": {"region": "x"}}')}),
	'7/x', 'the restored stream decodes the added columns');

stop_broker($broker);
done_testing();

# Whether a process of the killed server (its title starts with the
# cluster's name) is still alive.
sub old_processes_alive
{
	foreach my $cmdline (glob '/proc/[0-9]*/cmdline')
	{
		open my $fh, '<', $cmdline or next;
		my $title = <$fh> // '';
		close $fh;
		return 1 if $title =~ /^postgres: alter: /;
	}
	return 0;
}
