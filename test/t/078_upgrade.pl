# Upgrade from 0.1, as contrib tests its old versions: a node with the new
# library preloaded and CREATE EXTENSION kappa VERSION '0.1'.  At 0.1 the
# launcher says once, with the hint, that the catalog is older than the
# library and starts no worker, and kappa's functions (which are 0.2's C
# code behind 0.1's SQL declarations) refuse with the same hint (55000).
# A stream and a view in 0.1 form are written by SQL against the 0.1
# catalog, as 0.1's kappa_create_stream and kappa_create_view wrote them
# (the view's plan is the node string Postgres's analyser makes of its
# query, taken from the same view in another database and bound to this
# one's stream relation: SQL cannot analyse a query); events, duplicates
# among them, are produced while the catalog is at 0.1, with a 0.1 dead
# letter and 0.1 dedup keys in the catalog, and a second view whose
# stream relation is gone (dropped by hand: 0.1 had no event trigger),
# which the update must pass over with a warning and its worker mark
# failed, alone.  An update rolled back leaves
# 0.1 (the functions refuse again in the same session).  With the
# launcher's naptime an hour, ALTER EXTENSION kappa UPDATE then migrates
# the rows (checked in its transaction), its commit wakes the launcher,
# the worker starts, analyses the view's definition again, and the view
# equals its query as batch SQL over every event, those of 0.1 included,
# and after more events too; kappa_check agrees.
# Last, the upgraded catalog is compared with a fresh CREATE EXTENSION
# kappa in another database of the node: every member object's definition
# (tables, columns, defaults, constraints, indexes, policies, triggers,
# views, functions and aggregates with their attributes, grants and
# comments, the event trigger, the schema, the config_dump entries) must
# be equal; the only difference allowed is the order of the columns that
# ALTER TABLE appended, and it is checked to be exactly that.  A dump of
# the upgraded database restores into a new one with every row.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('ev:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('up', extension => 0,
	conf => "kappa.flush_interval = '100ms'\nkappa.launcher_naptime = '200ms'\n");

my $hint = qr/kappa's catalog is at version 0\.1 and its library at 0\.2/;

# alice, a kappa_admin member, in two databases: postgres (the launcher's,
# at 0.1) and fresh (0.2, where the same stream and view are created, to
# take the view's plan from, and to compare catalogs with).
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION kappa');
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN IN ROLE kappa_admin;
	GRANT CREATE ON SCHEMA public TO alice;
});
$node->safe_psql('fresh', qq{
	GRANT CREATE ON SCHEMA public TO alice;
	SET ROLE alice;
	SELECT kappa_create_stream('ev', topic => 'ev', brokers => '$b',
		columns => 'id text NOT NULL, k text, ts timestamptz NOT NULL, v int',
		event_time => 'ts', watermark => '1 hour', dedup_key => 'id');
	SELECT kappa_create_view('by_k', 'SELECT k, count(*) AS n, sum(v) AS s FROM ev GROUP BY k');
});

my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{CREATE EXTENSION kappa VERSION '0.1'});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'kappa'}),
	'0.1', 'the catalog is at 0.1');
ok(wait_until(sub { log_contains($node, qr/LOG:  $hint\n.*\n.*HINT:  Run ALTER EXTENSION kappa UPDATE\./, $log_offset) }, 60),
	'the launcher logs that the catalog is older than the library, with the hint');

# kappa's functions that use its catalog refuse, with the hint (those of
# shared memory alone, as kappa_workers, answer)
foreach my $sql (
	qq{SET ROLE alice; SELECT kappa_create_stream('ev2', topic => 'ev', brokers => '$b', columns => 'id text')},
	q{SET ROLE alice; SELECT kappa_create_view('v2', 'SELECT count(*) FROM ev')},
	q{SET ROLE alice; SELECT * FROM kappa_wait('ev')},
	q{SET ROLE alice; SELECT * FROM kappa_produce('ev', '{}')},
	q{SET ROLE alice; SELECT * FROM kappa.decode('ev', 'x')})
{
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	like($err, qr/ERROR:  55000: $hint.*HINT:  Run ALTER EXTENSION kappa UPDATE\./s,
		"refused at 0.1 with the hint: $sql");
}

# The stream and view in 0.1 form, as 0.1's functions wrote them: the rows
# of kappa.streams and stream_columns, the stream's relation (kafka_key
# text in 0.1), the view's row with its plan bound to this database's
# stream relation, its state marker, its rows table and its user-facing
# view, alice's.  0.1 recorded as the view's owner, and granted its rows
# table to, the role its catalog statements ran as, the bootstrap
# superuser, not the view's creator (so alice could not read her view).
my $stream_row = $node->safe_psql('fresh', q{
	SELECT to_jsonb(s) || jsonb_build_object('owner', s.owner::oid) FROM kappa.streams s});
my $columns = $node->safe_psql('fresh', q{
	SELECT jsonb_agg(to_jsonb(c) || jsonb_build_object('type', c.type::text) ORDER BY attnum)
	FROM kappa.stream_columns c});
$node->safe_psql('postgres', qq{
	INSERT INTO kappa.streams (stream_id, name, owner, topic, brokers, eventhubs, event_time, time_unit,
		watermark, idle_timeout, dedup_key, archive, options, keep_late, partitions, created_at)
	SELECT stream_id, name, owner, topic, brokers, eventhubs, event_time, time_unit,
		watermark, idle_timeout, dedup_key, archive, options, keep_late, partitions, created_at
	FROM jsonb_populate_record(NULL::kappa.streams, '$stream_row');
	SELECT setval('kappa.streams_stream_id_seq', 1);
	INSERT INTO kappa.stream_columns
	SELECT * FROM jsonb_populate_recordset(NULL::kappa.stream_columns, '$columns');
	CREATE TABLE kappa.stream_1 (id text, k text, ts timestamptz, v int4,
		kafka_partition int4, kafka_offset int8, kafka_timestamp timestamptz, kafka_key text);
});
my $fresh_relid = $node->safe_psql('fresh', q{SELECT 'kappa.stream_1'::regclass::oid});
my $relid = $node->safe_psql('postgres', q{SELECT 'kappa.stream_1'::regclass::oid});
my $plan = $node->safe_psql('fresh', q{SELECT plan FROM kappa.views});
is(scalar(() = $plan =~ /:relid $fresh_relid /g), 1, 'the plan reads the stream relation once');
$plan =~ s/:relid $fresh_relid /:relid $relid /;
my $view_row = $node->safe_psql('fresh', q{
	SELECT to_jsonb(v) || jsonb_build_object('owner', v.owner::oid) FROM kappa.views v});
$node->safe_psql('postgres', qq{
	INSERT INTO kappa.views (view_id, stream_id, schema_name, view_name, owner, query, plan, options, created_at)
	SELECT view_id, stream_id, schema_name, view_name, 10, query, \$p\$$plan\$p\$, options, created_at
	FROM jsonb_populate_record(NULL::kappa.views, '$view_row');
	SELECT setval('kappa.views_view_id_seq', 1);
	CREATE TABLE kappa.view_1 (k text, n int8, s int8);
	CREATE UNIQUE INDEX ON kappa.view_1 (k) NULLS NOT DISTINCT;
	GRANT SELECT ON kappa.view_1 TO CURRENT_USER;
	INSERT INTO kappa.view_state_marker VALUES (1);
	-- a view whose stream relation was dropped by hand (0.1 had no event
	-- trigger): its plan names a relation that is not there
	INSERT INTO kappa.views (view_id, stream_id, schema_name, view_name, owner, query, plan, options)
	SELECT 2, stream_id, schema_name, 'gone', 10, query, replace(plan, ':relid $relid ', ':relid 4000000000 '), options
	FROM kappa.views WHERE view_id = 1;
	SELECT setval('kappa.views_view_id_seq', 2);
	INSERT INTO kappa.view_state_marker VALUES (2);
	SET ROLE alice;
	CREATE VIEW public.by_k AS SELECT * FROM kappa.view_1;
	RESET ROLE;
	-- what a 0.1 worker would have left: a dead letter and dedup keys (of
	-- an offset and keys the events below never reach)
	INSERT INTO kappa.dead_letters (stream_id, partition, "offset", broker_time, key, payload, reason)
	VALUES (1, 0, 1000000, '2026-01-01 00:00:00+00', NULL, 'not json', 'invalid input syntax for type json');
	INSERT INTO kappa.view_dedup VALUES
		(1, 0, 'old-b', '2020-01-01 00:00:02+00'), (1, 0, 'old-a', '2020-01-01 00:00:01+00'),
		(1, 1, 'old-c', '2020-01-01 00:00:03+00');
});

{
	my ($rc, $out, $err) = $node->psql('postgres', 'SET ROLE alice; SELECT * FROM by_k');
	like($err, qr/permission denied for table view_1/, 'at 0.1, alice cannot read her view');
}

# The oracle: every event once; every 40th is sent twice (the dedup key
# drops the copy).  Chunk c: events (c-1)*n+1 .. c*n, partition i % 2.
$node->safe_psql('postgres', q{CREATE TABLE public.batch_ev (i int, id text, k text, ts timestamptz, v int)});
my $per_chunk = 800;
sub produce
{
	my ($c) = @_;
	my ($lo, $hi) = (($c - 1) * $per_chunk + 1, $c * $per_chunk);
	$node->safe_psql('postgres', qq{
		INSERT INTO public.batch_ev
		SELECT i, 'e' || i, 'k' || (i * 7919 % 13), timestamptz '2026-01-01 00:00:00+00' + i * interval '100 ms',
			i * 31 % 101
		FROM generate_series($lo, $hi) i});
	foreach my $p (0, 1)
	{
		my $lines = $node->safe_psql('postgres', qq{
			SELECT json_build_object('id', id, 'k', k, 'ts', ts, 'v', v)
			FROM public.batch_ev, generate_series(1, CASE WHEN i % 40 = 0 THEN 2 ELSE 1 END)
			WHERE i BETWEEN $lo AND $hi AND i % 2 = $p ORDER BY i});
		my $file = "$dir/c$c-p$p.txt";
		open my $fh, '>', $file or die $!;
		print $fh "$lines\n";
		close $fh;
		IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'ev', '-p', $p, '-l', $file ]) or die "kcat failed";
	}
	return;
}
produce(1);

# Still no worker, and no position: nothing ran against the 0.1 catalog.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kappa worker'}), '0', 'no worker at 0.1');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa_workers}), '0', 'kappa_workers shows none');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.partitions}), '0', 'no position at 0.1');

# An update rolled back leaves 0.1, in the same session too.
{
	my ($rc, $out, $err) = $node->psql('postgres', q{
		BEGIN;
		ALTER EXTENSION kappa UPDATE;
		SELECT count(*) > 0 FROM kappa_stream_settings('ev');
		ROLLBACK;
		SELECT count(*) > 0 FROM kappa_stream_settings('ev');});
	is($out, 't', 'at 0.2 in the update\'s transaction, kappa_stream_settings runs');
	like($err, qr/ERROR:  $hint/, 'after the rollback, it refuses again');
	is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'kappa'}), '0.1',
		'the catalog is at 0.1 again');
}

# The launcher naps for an hour from now on: what starts the worker below
# is the update's commit, which wakes it.
$node->safe_psql('postgres', q{ALTER SYSTEM SET kappa.launcher_naptime = '1h'; SELECT pg_reload_conf()});
ok(wait_until(sub { $node->safe_psql('postgres', 'SHOW kappa.launcher_naptime') eq '1h' }, 30),
	'the launcher naps for an hour');

# The update, and what it made of the 0.1 rows, seen in its transaction.
my ($update_rc, $migrated, $update_err) = $node->psql('postgres', q{
	BEGIN;
	ALTER EXTENSION kappa UPDATE;
	SELECT extversion FROM pg_extension WHERE extname = 'kappa';
	SELECT owner::text, origin = kappa.origin(), revision, on_gap, altered_at IS NULL FROM kappa.streams;
	SELECT string_agg(name || '=' || attnum, ',' ORDER BY attnum) FROM kappa.stream_columns;
	SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'kappa.stream_1'::regclass AND attname = 'kafka_key';
	SELECT view_name, CASE owner::oid WHEN 10 THEN 'superuser' ELSE owner::text END, plan_origin, definition <> '' AND definition LIKE '%kappa.stream_1 ev%', status,
		status_sqlstate IS NULL FROM kappa.views ORDER BY view_id;
	SELECT relowner::regrole, relreplident, relacl FROM pg_class WHERE oid = 'kappa.view_1'::regclass;
	SELECT view_id, sqlstate, reason FROM kappa.dead_letters;
	SELECT view_id, partition, newest, keys, event_times FROM kappa.view_dedup ORDER BY partition;
	SELECT count(*) FROM kappa.zz_dump_sentinel WHERE origin = kappa.origin();
	COMMIT;
});
is($migrated, join("\n",
	'0.2',
	'alice|t|0|stop|t',
	'id=1,k=2,ts=3,v=4',
	'bytea',
	'by_k|alice|kappa 0.1|t|live|t',
	'gone|superuser|kappa 0.1|f|live|t',
	'alice|f|{alice=arwdDxt/alice}',
	'0|22000|invalid input syntax for type json',
	'1|0|2020-01-01 00:00:02+00|{old-a,old-b}|{"2020-01-01 00:00:01+00","2020-01-01 00:00:02+00"}',
	'1|1|2020-01-01 00:00:03+00|{old-c}|{"2020-01-01 00:00:03+00"}',
	'1'), 'the update migrates the 0.1 rows');
is($update_rc, 0, 'the update commits');
like($update_err, qr/WARNING:  kappa view public\.gone: its plan could not be deparsed: could not open relation/,
	'a plan that no longer deparses does not stop the update');

# The worker starts once the update commits, and the view takes in every
# event, those produced at 0.1 first.
ok(wait_until(sub { $node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kappa worker'}) eq '1' }, 60),
	'the worker starts when the update commits');
sub check_view
{
	my ($what) = @_;
	is($node->safe_psql('postgres', q{SET ROLE alice; SELECT kappa_wait('ev', '60 s')}), 't', "kappa_wait: $what");
	is($node->safe_psql('postgres', q{SET ROLE alice; SELECT string_agg(r::text, ',' ORDER BY r::text) FROM by_k r}),
		$node->safe_psql('postgres', q{
			SELECT string_agg(r::text, ',' ORDER BY r::text)
			FROM (SELECT k, count(*) AS n, sum(v) AS s FROM public.batch_ev GROUP BY k) r}),
		"by_k equals its query as batch SQL: $what");
	return;
}
check_view('the events of 0.1');
is($node->safe_psql('postgres', q{SELECT plan_origin = kappa.origin(), status FROM kappa.views WHERE view_id = 1}), 't|live',
	'the worker analysed the view again: its plan is this database\'s');
ok(wait_until(sub { $node->safe_psql('postgres', q{SELECT status FROM kappa.views WHERE view_id = 2}) eq 'failed' }, 60),
	'the view without a definition is failed, alone');
produce(2);
check_view('the events of 0.1 and 0.2');
is($node->safe_psql('postgres', q{SELECT sum(duplicate) FROM kappa.view_partitions WHERE view_id = 1}), 2 * $per_chunk / 40,
	'each copy is a duplicate');
is($node->safe_psql('postgres', q{SET ROLE alice; SELECT count(*) FROM kappa_check('by_k')}), '0',
	'kappa_check finds no difference');

# The upgraded catalog against a fresh one: every member object of the
# extension, with its definition, one line each (test/lib/kappa_catalog.sql).
# Columns are listed by name there; their order after.
my $catalog_sql = slurp_file('test/lib/kappa_catalog.sql');
my $upgraded = $node->safe_psql('postgres', $catalog_sql);
my $fresh = $node->safe_psql('fresh', $catalog_sql);
cmp_ok(scalar(split /\n/, $fresh), '>', 1000, 'the fresh catalog has its objects listed');
my @only_upgraded = grep { my $l = $_; !grep { $_ eq $l } split /\n/, $fresh } split /\n/, $upgraded;
my @only_fresh = grep { my $l = $_; !grep { $_ eq $l } split /\n/, $upgraded } split /\n/, $fresh;
is(join("\n", @only_upgraded), '', 'nothing in the upgraded catalog that a fresh one lacks');
is(join("\n", @only_fresh), '', 'nothing in a fresh catalog that the upgraded one lacks');
is(scalar(split /\n/, $upgraded), scalar(split /\n/, $fresh), 'as many lines in both: no object twice');

# Column order: ALTER TABLE appends, so the columns kappa--0.2.sql has in
# the middle of three tables come last after the update; nowhere else.
my $order_sql = q{
	SELECT c.oid::regclass || ': ' || string_agg(a.attname, ',' ORDER BY a.attnum)
	FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
	JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	WHERE c.relkind IN ('r', 'v', 'u', 'p') OR c.relpersistence = 'u'
	GROUP BY c.oid ORDER BY 1};
my %fresh_order = map { split /: /, $_, 2 } split /\n/, $node->safe_psql('fresh', $order_sql);
my %upgraded_order = map { split /: /, $_, 2 } split /\n/, $node->safe_psql('postgres', $order_sql);
is(join(',', sort keys %upgraded_order), join(',', sort keys %fresh_order), 'the same tables and views');
my %appended = (
	'kappa.streams' => 'stream_id,name,owner,topic,brokers,eventhubs,event_time,time_unit,watermark,idle_timeout,'
	  . 'dedup_key,archive,options,keep_late,partitions,created_at,on_gap,origin,revision,altered_at',
	'kappa.views' => 'view_id,stream_id,schema_name,view_name,owner,query,plan,options,created_at,status,'
	  . 'status_detail,base_name,version,plan_origin,definition,status_sqlstate',
	'kappa.view_partitions' => 'view_id,partition,next_offset,max_event_time,filtered,duplicate,delivered,'
	  . 'applied,late,first_offset,rejected,final_upto');
foreach my $rel (sort keys %fresh_order)
{
	is($upgraded_order{$rel}, $appended{$rel} // $fresh_order{$rel},
		$appended{$rel} ? "$rel: the new columns come last" : "$rel: the columns in the same order");
}

# A dump of the upgraded database restores into a new one (whose kappa
# tables have the columns in kappa--0.2.sql's order) with every row.
my $dump = "$dir/upgraded.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump of the upgraded database');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'the dump restores');
foreach my $table (qw(streams stream_columns views view_partitions partitions dead_letters))
{
	my $rows = qq{SELECT string_agg(r::text, E'\n' ORDER BY r::text)
		FROM (SELECT to_jsonb(t) - 'plan' - 'plan_origin' - 'origin' AS r FROM kappa.$table t) x};
	is($node->safe_psql('restored', $rows), $node->safe_psql('postgres', $rows), "restored kappa.$table");
}

# The launcher said it once, however many times it looked.
my @said = (slurp_file($node->logfile, $log_offset) =~ /LOG:  $hint/g);
is(scalar(@said), 1, 'the launcher logged the version difference once');

$node->stop;
stop_broker($broker);
done_testing();
