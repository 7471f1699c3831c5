# Backups: pg_dump while the worker streams, restored with psql (plain
# format) and with pg_restore (custom format) into a second cluster whose
# roles and objects have other OIDs.  The dump is taken in a snapshot the
# test exported, so what it holds is known exactly: the restored
# positions, counts, dead letters and archive manifest must equal what the
# source had in that snapshot.  The restored databases then go on from
# the dumped positions (the plain one restored while its launcher watches,
# so a worker could start halfway through the restore), rebuild their
# views' state from the log, and, after more events, every view equals its
# query run as batch SQL over all events.  The views are owned by a
# kappa_admin member and call a user-defined function and count(DISTINCT)
# (kappa_count_distinct), whose OIDs differ in the new cluster; the stream
# has a dedup key, so duplicates are told apart after the restore too.
# One view has HAVING and a top 3 (ORDER BY ... LIMIT), which its
# user-facing view applies when it is read: the dumped definition of that
# view filters and ranks the restored rows table the same way.
# Last, the custom-format copy is dumped and restored over itself
# (pg_restore --clean): the new extension renumbers kappa's own aggregates,
# and the plans are analysed again there too.  Only kappa.database has
# workers, so the two restored databases consume one after the other.
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
my $conf = "kappa.flush_interval = '100ms'\nkappa.archive_roll_size = 64kB\n";
my $src = kappa_node('src', conf => $conf);
mkdir "$dir/archive_src" or die $!;
mkdir "$dir/archive_plain" or die $!;
mkdir "$dir/archive_custom" or die $!;

# Roles, the user's function, the stream and three views, all alice's.
$src->safe_psql('postgres', qq{
	CREATE ROLE alice LOGIN IN ROLE kappa_admin, pg_write_server_files;
	GRANT CREATE ON SCHEMA public TO alice;
	SET ROLE alice;
	CREATE FUNCTION public.double_it(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT \$1 * 2';
	SELECT kappa_create_stream('ev', topic => 'ev', brokers => '$b',
		columns => 'id text NOT NULL, k text, ts timestamptz NOT NULL, v int',
		event_time => 'ts', watermark => '1 hour', dedup_key => 'id',
		archive => '$dir/archive_src');
});
my %queries = (
	tumbling => q{SELECT k, w.window_start, w.window_end, count(*) AS n, sum(public.double_it(v)) AS s
		FROM ev, kappa_tumble(ts, '1 minute') w GROUP BY k, w.window_start, w.window_end},
	by_key => q{SELECT k, count(DISTINCT v) AS d, max(v) AS mx FROM ev WHERE v % 3 <> 0 GROUP BY k},
	# HAVING and a global top 3, applied by the user-facing view (the
	# tie-break by the key written out, so that batch SQL is exact)
	leaders => q{SELECT k, count(*) AS n FROM ev GROUP BY k HAVING sum(v) > 100
		ORDER BY count(*) DESC, k LIMIT 3},
);
foreach my $name (sort keys %queries)
{
	$src->safe_psql('postgres',
		"SET ROLE alice; SELECT kappa_create_view('$name', \$q\$$queries{$name}\$q\$)");
}
$src->safe_psql('postgres', 'CREATE ROLE bob; SET ROLE alice; GRANT SELECT ON tumbling TO bob');

# The oracle: every event produced, once (the duplicates sent for the
# dedup key are not events), in a table of the source's.
$src->safe_psql('postgres', q{
	CREATE SCHEMA batch;
	CREATE TABLE batch.ev (i int, id text, k text, ts timestamptz, v int);
});

# Chunk c: events i in (c-1)*n+1 .. c*n, partition i % 2, every 40th sent
# twice; with bad, an undecodable message on partition 0 first.
my $per_chunk = 1500;
sub produce
{
	my ($c, $bad) = @_;
	my ($lo, $hi) = (($c - 1) * $per_chunk + 1, $c * $per_chunk);
	$src->safe_psql('postgres', qq{
		INSERT INTO batch.ev
		SELECT i, 'e' || i, 'k' || (i * 7919 % 13), timestamptz '2026-01-01 00:00:00+00' + i * interval '100 ms',
			i * 31 % 101
		FROM generate_series($lo, $hi) i});
	foreach my $p (0, 1)
	{
		my $lines = $src->safe_psql('postgres', qq{
			SELECT json_build_object('id', id, 'k', k, 'ts', ts, 'v', v)
			FROM batch.ev, generate_series(1, CASE WHEN i % 40 = 0 THEN 2 ELSE 1 END)
			WHERE i BETWEEN $lo AND $hi AND i % 2 = $p ORDER BY i});
		my $file = "$dir/c$c-p$p.txt";
		open my $fh, '>', $file or die $!;
		print $fh "this is not json\n" if $bad && $p == 0;
		print $fh "$lines\n";
		close $fh;
		IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'ev', '-p', $p, '-l', $file ]) or die "kcat failed";
	}
	return;
}

# The views' contents, and their queries as batch SQL over the oracle.
sub view_text
{
	my ($node, $db, $name) = @_;
	return $node->safe_psql($db, "SELECT string_agg(r::text, E'\\n' ORDER BY r::text) FROM $name r");
}
sub batch_text
{
	my ($name) = @_;
	return $src->safe_psql('postgres',
		"SET search_path = batch, public; SELECT string_agg(r::text, E'\\n' ORDER BY r::text) FROM ($queries{$name}) r");
}

produce(1, 1);
is($src->safe_psql('postgres', "SELECT kappa_wait('ev', '60 seconds')"), 't', 'source: first chunk consumed');

# The second chunk is produced and the dump taken at once, in a snapshot
# exported by a session that reads the state the dump will hold.
produce(2, 0);
my $session = $src->background_psql('postgres');
$session->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
my $snapshot = $session->query_safe('SELECT pg_export_snapshot()');
my %state_queries = (
	partitions => 'SELECT stream_id, partition, next_offset, consumed, dead_lettered FROM kappa.partitions',
	view_partitions => 'SELECT view_id, partition, next_offset, first_offset, filtered, duplicate, '
	  . 'delivered, applied, late, rejected FROM kappa.view_partitions',
	archive_files => 'SELECT stream_id, partition, path, first_offset, last_offset, records, closed '
	  . 'FROM kappa.archive_files',
	dead_letters => 'SELECT stream_id, partition, "offset", payload, reason, view_id, sqlstate FROM kappa.dead_letters',
	late_events => 'SELECT view_id, partition, "offset" FROM kappa.late_events',
	views => 'SELECT view_id, stream_id, schema_name, view_name, owner::text, query, options, status, version '
	  . 'FROM kappa.views',
	rows_tumbling => 'SELECT * FROM public.tumbling',
	rows_by_key => 'SELECT * FROM public.by_key',
);
my %at_dump;
foreach my $t (sort keys %state_queries)
{
	$at_dump{$t} = $session->query_safe(
		"SELECT count(*) || E'\\n' || coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '') "
		  . "FROM ($state_queries{$t}) r");
}
my $plain = "$dir/dump.sql";
my $custom = "$dir/dump.custom";
$src->command_ok([ 'pg_dump', '-d', $src->connstr('postgres'), "--snapshot=$snapshot", '-f', $plain ],
	'plain dump while the worker streams');
$src->command_ok(
	[ 'pg_dump', '-d', $src->connstr('postgres'), "--snapshot=$snapshot", '-Fc', '-f', $custom ],
	'custom dump in the same snapshot');
$session->query_safe('COMMIT');
$session->quit;
like($at_dump{partitions}, qr/^2\n/, 'the dump holds both partitions\' positions');
like($at_dump{dead_letters}, qr/^1\n/, 'the dump holds the dead letter');
unlike($at_dump{archive_files}, qr/^0\n/, 'the dump holds archive files');

# The second cluster: other roles first, so alice has another OID; roles
# are the cluster's, not the dump's (pg_dumpall --globals-only).
my $dst = kappa_node('dst', conf => $conf, extension => 0);
$dst->safe_psql('postgres', q{
	CREATE ROLE padding;
	CREATE FUNCTION public.padding() RETURNS int LANGUAGE sql AS 'SELECT 1';
	CREATE ROLE kappa_admin NOLOGIN;
	CREATE ROLE alice LOGIN IN ROLE kappa_admin, pg_write_server_files;
	CREATE ROLE bob;
	CREATE DATABASE custom;
});
isnt($dst->safe_psql('postgres', q{SELECT 'alice'::regrole::oid}),
	$src->safe_psql('postgres', q{SELECT 'alice'::regrole::oid}), 'alice has another OID in the new cluster');

# Custom format, into a database no launcher serves (yet): the restored
# catalog is exactly the snapshot's.
$dst->command_ok([ 'pg_restore', '-d', $dst->connstr('custom'), '--exit-on-error', $custom ],
	'pg_restore of the custom dump');
foreach my $t (sort keys %state_queries)
{
	is($dst->safe_psql('custom',
			"SELECT count(*) || E'\\n' || coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '') "
			  . "FROM ($state_queries{$t}) r"),
		$at_dump{$t}, "custom restore: $t as in the dump's snapshot");
}
is($dst->safe_psql('custom', q{SELECT owner::text, owner::oid = 'alice'::regrole::oid FROM kappa.streams}),
	'alice|t', 'the stream\'s owner is the new cluster\'s alice');
is($dst->safe_psql('custom', q{SELECT count(*) FROM kappa.views WHERE plan_origin <> kappa.origin()}),
	'3', 'the restored plans are marked as another database\'s');
is($dst->safe_psql('custom', q{
		SELECT string_agg(format('%s %s', c.oid::regclass, pg_get_userbyid(c.relowner)), ', ' ORDER BY c.relname)
		FROM pg_class c WHERE c.relname IN ('tumbling', 'by_key', 'leaders')
		   OR c.oid IN (SELECT format('kappa.view_%s', view_id)::regclass FROM kappa.views)}),
	'by_key alice, leaders alice, tumbling alice, kappa.view_1 alice, kappa.view_2 alice, kappa.view_3 alice',
	'the user-facing views and rows tables are alice\'s');
is($dst->safe_psql('custom', q{SELECT has_table_privilege('bob', 'tumbling', 'SELECT'),
		has_table_privilege('bob', 'by_key', 'SELECT')}),
	't|f', 'and alice\'s grant came back');

# Plain format, into the launcher's database while it watches, in two
# parts, as a slow restore would be seen: all but the dump's last data (its
# sentinel row), then that.  Its archive goes elsewhere (the source still
# writes its own).
my $sql = slurp_file($plain);
my $n_replaced = ($sql =~ s{\Q$dir/archive_src\E}{$dir/archive_plain}g);
is($n_replaced, 1, 'the dump names the archive directory once');
my $sentinel = ($sql =~ s{^(COPY kappa\.zz_dump_sentinel .*?^\\\.\n)}{}ms) ? $1 : '';
like($sentinel, qr/^COPY kappa\.zz_dump_sentinel/, 'the dump holds the sentinel');
my $indexes = '';
$indexes .= $1 while ($sql =~ s{^(CREATE UNIQUE INDEX \S+ ON kappa\.view_\d+ .*\n)}{}m);
is(scalar(() = $indexes =~ /^CREATE/mg), 3, 'the dump holds the three rows tables\' unique indexes');
sub restore_plain
{
	my ($part, $what) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $dst->connstr('postgres') ],
		'<', \$part, '>', \$stdout, '2>', \$stderr);
	is($?, 0, "$what restores without error");
	is($stderr, '', "$what restores without a message");
	return;
}
restore_plain($sql, 'the plain dump but its sentinel');

# The launcher, woken by a new stream (which it starts), leaves the
# restored one alone: no worker, positions as dumped.
$dst->safe_psql('postgres', qq{SET ROLE alice;
	SELECT kappa_create_stream('probe', topic => 'ev', brokers => '$b', columns => 'id text')});
ok(wait_until(sub { $dst->safe_psql('postgres',
	q{SELECT count(*) FROM kappa_workers WHERE stream = 'probe' AND pid IS NOT NULL}) eq '1' }, 60),
	'the launcher started the new stream\'s worker');
is($dst->safe_psql('postgres', q{SELECT count(*) FROM kappa_workers WHERE stream = 'ev'}), '0',
	'but none for the stream whose restore is not complete');
ok(log_contains($dst, qr/kappa stream "ev" comes from a dump whose restore is not complete: its workers wait/),
	'and says so');
is($dst->safe_psql('postgres',
		"SELECT count(*) || E'\\n' || coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '') "
		  . "FROM ($state_queries{partitions}) r WHERE stream_id = 1"),
	$at_dump{partitions}, 'its positions are the dumped ones');

# Then the sentinel: the stream is adopted (the probe's drop wakes the
# launcher), but a restore creates indexes after all data, and a view
# whose rows table has no unique index yet waits for it, without failing.
my $log_offset = -s $dst->logfile;
restore_plain($sentinel, 'the sentinel');
$dst->safe_psql('postgres', q{SET ROLE alice; SELECT kappa_drop_stream('probe')});
ok(wait_until(sub { log_contains($dst, qr/kappa view public\.\w+ is not completely restored yet/, $log_offset) }, 60),
	'the worker, started before the indexes, waits for them');
is($dst->safe_psql('postgres', q{SELECT string_agg(status, ',') FROM kappa.views}), 'live,live,live',
	'the views are not failed for it');
restore_plain($indexes, 'the indexes');

# More events after the dump, the source's included.
produce(3, 0);
is($src->safe_psql('postgres', "SELECT kappa_wait('ev', '60 seconds')"), 't', 'source: all consumed');
is($dst->safe_psql('postgres', "SELECT kappa_wait('ev', '120 seconds')"), 't', 'plain restore: all consumed');
my $messages_p0 = 1 + $src->safe_psql('postgres',
	q{SELECT sum(CASE WHEN i % 40 = 0 THEN 2 ELSE 1 END) FROM batch.ev WHERE i % 2 = 0});
my $messages_p1 = $src->safe_psql('postgres',
	q{SELECT sum(CASE WHEN i % 40 = 0 THEN 2 ELSE 1 END) FROM batch.ev WHERE i % 2 = 1});
my $dead_letter = $src->safe_psql('postgres',
	q{SELECT partition, "offset", payload, reason, sqlstate FROM kappa.dead_letters});
like($dead_letter, qr/^0\|0\|/, 'source: the undecodable message is the dead letter');
foreach my $node ([ $src, 'source' ], [ $dst, 'plain restore' ])
{
	my ($n, $what) = @$node;
	is($n->safe_psql('postgres',
			'SELECT partition, next_offset, consumed, dead_lettered FROM kappa.partitions ORDER BY 1'),
		"0|$messages_p0|$messages_p0|1\n1|$messages_p1|$messages_p1|0",
		"$what: positions and counts of every message, the dead letter once");
	is($n->safe_psql('postgres', 'SELECT partition, "offset", payload, reason, sqlstate FROM kappa.dead_letters'),
		$dead_letter, "$what: the one dead letter");
	foreach my $name (sort keys %queries)
	{
		is(view_text($n, 'postgres', $name), batch_text($name), "$what: $name equals its batch query");
	}
}
is($dst->safe_psql('postgres',
		q{SELECT count(*) FROM kappa.views WHERE plan_origin = kappa.origin() AND status = 'live'}),
	'3', 'plain restore: every plan rebuilt here, every view live');
is($dst->safe_psql('postgres', q{SELECT origin = kappa.origin() FROM kappa.streams}),
	't', 'plain restore: the stream was adopted');
is($dst->safe_psql('postgres', q{SELECT count(*), bool_and(origin = kappa.origin()) FROM kappa.zz_dump_sentinel}),
	'1|t', 'plain restore: the sentinel holds this database\'s origin alone');
is($dst->safe_psql('postgres',
		q{SELECT partition, duplicate FROM kappa.view_partitions v JOIN kappa.views USING (view_id)
		  WHERE view_name = 'tumbling' ORDER BY 1}),
	"0|" . $src->safe_psql('postgres', 'SELECT count(*) FROM batch.ev WHERE i % 40 = 0') . "\n1|0",
	'plain restore: every duplicate told apart, those before the dump too');
ok(log_contains($dst, qr/kappa view public\.tumbling: plan rebuilt from its definition/),
	'the plan was rebuilt from the definition');

# kappa_replay of a restored view, which no worker has loaded, analyses
# its definition again too.
is($dst->safe_psql('custom', q{SET ROLE alice; SELECT log_events > 0 FROM kappa_replay('by_key')}), 't',
	'custom restore: kappa_replay runs before any worker loaded the view');
is($dst->safe_psql('custom', q{SELECT count(*) FROM kappa.views WHERE plan_origin <> kappa.origin()}),
	'2', 'custom restore: the replayed view\'s plan is this database\'s');

# The custom restore consumes once the launcher serves its database.
$dst->safe_psql('custom', "UPDATE kappa.streams SET archive = '$dir/archive_custom'");
$dst->append_conf('postgresql.conf', "kappa.database = 'custom'\n");
$dst->restart;
is($dst->safe_psql('custom', "SELECT kappa_wait('ev', '120 seconds')"), 't', 'custom restore: all consumed');
is($dst->safe_psql('custom',
		'SELECT partition, next_offset, consumed, dead_lettered FROM kappa.partitions ORDER BY 1'),
	"0|$messages_p0|$messages_p0|1\n1|$messages_p1|$messages_p1|0",
	'custom restore: positions and counts of every message');
foreach my $name (sort keys %queries)
{
	is(view_text($dst, 'custom', $name), batch_text($name), "custom restore: $name equals its batch query");
}
cmp_ok($dst->safe_psql('custom', 'SELECT count(*) FROM kappa.archive_files'), '>',
	(split /\n/, $at_dump{archive_files})[0], 'custom restore: the archive manifest grew from the dumped one');

# Restored over itself (pg_restore --clean, with kappa disabled meanwhile):
# a new extension gives kappa's own aggregates new OIDs, and the origin
# changes with it, so the plans are analysed again here too.
my $again = "$dir/again.custom";
$dst->command_ok([ 'pg_dump', '-d', $dst->connstr('custom'), '-Fc', '-f', $again ],
	'dump of the restored database');
$dst->safe_psql('custom', "ALTER SYSTEM SET kappa.enabled = off");
$dst->safe_psql('custom', "SELECT pg_reload_conf()");
ok(wait_until(sub { $dst->safe_psql('custom', 'SELECT count(*) FROM kappa_workers WHERE pid IS NOT NULL') eq '0' }, 60),
	'kappa disabled: no worker runs');
my $origin_before = $dst->safe_psql('custom', 'SELECT kappa.origin()');
my $count_distinct_before = $dst->safe_psql('custom', q{SELECT 'kappa_count_distinct(anyelement)'::regprocedure::oid});
$dst->command_ok([ 'pg_restore', '-d', $dst->connstr('custom'), '--clean', '--if-exists', '--exit-on-error', $again ],
	'pg_restore --clean over the same database');
isnt($dst->safe_psql('custom', q{SELECT 'kappa_count_distinct(anyelement)'::regprocedure::oid}), $count_distinct_before,
	'kappa_count_distinct has another OID');
isnt($dst->safe_psql('custom', 'SELECT kappa.origin()'), $origin_before, 'and the origin changed');
produce(4, 0);
$log_offset = -s $dst->logfile;
$dst->safe_psql('custom', "ALTER SYSTEM SET kappa.enabled = on");
$dst->safe_psql('custom', "SELECT pg_reload_conf()");
is($src->safe_psql('postgres', "SELECT kappa_wait('ev', '60 seconds')"), 't', 'source: fourth chunk consumed');
is($dst->safe_psql('custom', "SELECT kappa_wait('ev', '120 seconds')"), 't', 'restored over itself: all consumed');
foreach my $name (sort keys %queries)
{
	is(view_text($dst, 'custom', $name), batch_text($name), "restored over itself: $name equals its batch query");
}
is($dst->safe_psql('custom',
		q{SELECT count(*) FROM kappa.views WHERE plan_origin = kappa.origin() AND status = 'live'}),
	'3', 'restored over itself: every view live');
ok(log_contains($dst, qr/kappa view public\.tumbling: plan rebuilt from its definition/, $log_offset)
	  && log_contains($dst, qr/kappa view public\.by_key: plan rebuilt from its definition/, $log_offset),
	'restored over itself: both plans rebuilt from their definitions');

# No backend crashed anywhere.
foreach my $n ($src, $dst)
{
	ok(!log_contains($n, qr/terminated by signal|server process .* was terminated/), $n->name . ': no crash');
}

$dst->stop;
$src->stop;
stop_broker($broker);
done_testing();
