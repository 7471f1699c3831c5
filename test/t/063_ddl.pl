# Plain DDL on kappa's relations (issue 12, item 4).  Two kappa_admin
# members who are not superusers (alice, dora) define streams and views;
# then, by hand: DROP VIEW of a view with a version beside it, of a
# version alone, and by the owner of the view's schema, a DROP VIEW rolled
# back, DROP TABLE of a view's rows table (with and without CASCADE),
# ALTER TABLE ... DROP
# COLUMN on it and on a stream's relation, DROP SCHEMA ... CASCADE, DROP
# OWNED BY.  After each the test checks kappa.views and kappa_views
# exactly, that every view left has its relations and that nothing is left
# of a dropped one (rows tables, view_partitions, view_state, markers,
# marks, dedup keys, late events), that the views left still equal their
# queries as batch SQL over the events after more events and kappa_wait
# (the workers went on), and that a dropped view's name can be used
# again.  kappa_replay's swap and kappa_promote, which drop user-facing
# views of their own, still work.  Leftovers made with the event trigger
# suppressed (session_replication_role = replica, ALTER EVENT TRIGGER ...
# DISABLE) are removed by kappa_drop_view and kappa_drop_stream(cascade),
# which free the name.  No backend crashes; DROP EXTENSION still works,
# and a session that used the dropped catalog works on the new one.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('dd:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('ddl', conf => "kappa.flush_interval = '100ms'\n");

# ---------------------------------------------------------------------------
# Sessions: one psql each for the superuser, alice and dora.

sub session
{
	my ($role) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0,
		extra_params => [ defined $role ? ('-U', $role) : () ]);
	$s->query_safe('\set VERBOSITY verbose');
	return $s;
}

# Run SQL in a session: its output, the SQLSTATE of its first error (''
# if none), and its messages.  A lost connection ends the test.
sub run
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	BAIL_OUT("connection lost: $err")
	  if $err =~ /server closed the connection|connection to server was lost|no connection to the server/;
	my ($code) = $err =~ /ERROR:\s+([0-9A-Z]{5}):/;
	note "messages: $err" if $err ne '';
	return ($out, $code // '', $err);
}

# Run SQL that must succeed; its output.
sub run_ok
{
	my ($s, $sql, $label) = @_;
	my ($out, $code, $err) = run($s, $sql);
	is($code, '', "$label: no error") or diag($err);
	return $out;
}

my $startup = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
$node->safe_psql('postgres', qq{
	CREATE ROLE alice LOGIN; CREATE ROLE dora LOGIN;
	GRANT kappa_admin TO alice, dora;
	CREATE SCHEMA alice AUTHORIZATION alice;
	CREATE SCHEMA sx AUTHORIZATION alice;
	CREATE SCHEMA sy AUTHORIZATION alice;
	CREATE SCHEMA dora AUTHORIZATION dora;
	CREATE SCHEMA shared AUTHORIZATION dora;
	GRANT CREATE, USAGE ON SCHEMA shared TO alice;
	GRANT USAGE ON SCHEMA alice TO dora;
	CREATE TABLE ev AS SELECT i, 'd' || (i % 7) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s' AS ts, (i * 13) % 97 AS v
	FROM generate_series(0, 5999) i;
});
my $su = session(undef);
my $alice = session('alice');
my $dora = session('dora');

# The views' queries; FROM <stream> becomes the events produced so far.
my %q = (
	keep => q{SELECT dev, count(*) AS n, sum(v) AS s FROM dd GROUP BY dev},
	tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n
		FROM dd, kappa_tumble(ts, '5 minutes') w GROUP BY dev, w.window_start, w.window_end},
	tumble2 => q{SELECT dev, w.window_start, w.window_end, count(*) AS n
		FROM dd, kappa_tumble(ts, '5 minutes') w WHERE v <> 96 GROUP BY dev, w.window_start, w.window_end},
	fewer => q{SELECT dev, count(*) AS cnt FROM dd WHERE v <> 96 GROUP BY dev},
	odd => q{SELECT dev, max(v) AS hi FROM dd WHERE i % 2 = 1 GROUP BY dev},
	dora => q{SELECT dev, count(*) AS n FROM de GROUP BY dev},
	dora2 => q{SELECT dev, min(v) AS lo, max(i) AS last FROM de GROUP BY dev},
	z => q{SELECT dev, count(*) AS n FROM dz GROUP BY dev},
);

# The query of a view, over its stream.
sub query_of
{
	my ($name, $stream) = @_;
	(my $sql = $q{$name}) =~ s/\bFROM (dd|de|dz)\b/FROM $stream/;
	return $sql;
}

my $produced = -1;

# Produce events up to i = $hi, and wait until the streams consumed them.
sub produce
{
	my ($hi, @streams) = @_;
	my $lo = $produced + 1;
	run_ok($su, "COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text "
		  . "FROM ev WHERE i BETWEEN $lo AND $hi ORDER BY i) TO '$dir/e$lo.txt'", "events $lo to $hi written");
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'dd', '-K', '|', '-l', "$dir/e$lo.txt" ]) or die "kcat failed";
	$produced = $hi;
	foreach my $stream (@streams)
	{
		is((run($su, "SELECT kappa_wait('$stream', '60 seconds')"))[0], 't', "events $lo to $hi consumed by $stream");
	}
	return;
}

# Whether a view's rows equal its query as batch SQL over the events
# produced so far.
sub check_view
{
	my ($relation, $query, $label) = @_;
	(my $batch = $q{$query}) =~ s/\bFROM (dd|de|dz)\b/FROM (SELECT * FROM ev WHERE i <= $produced) $1/;
	my ($r) = run($su, qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $relation EXCEPT ALL ($batch)) a)
			|| '/' || (SELECT count(*) FROM (($batch) EXCEPT ALL SELECT * FROM $relation) b)
			|| '/' || (SELECT count(*) FROM $relation)});
	my ($extra, $missing, $rows) = $r =~ m{^(\d+)/(\d+)/(\d+)$} ? ($1, $2, $3) : ('?', '?', 0);
	ok($rows > 0 && $extra eq '0' && $missing eq '0',
		"$label: $relation equals its batch query up to event $produced ($rows rows; $extra extra, $missing missing)");
	return;
}

# kappa.views exactly (schema.name, and the base of a version), kappa_views
# the same, and the catalog consistent: every view has its rows table and
# its user-facing view, every rows table and every row of kappa's per-view
# tables belongs to a view, and (with $waited) every live view has its
# positions.
sub catalog_is
{
	my ($expected, $label, %opt) = @_;
	is((run($su, q{SELECT string_agg(schema_name || '.' || view_name
			|| coalesce(' of ' || base_name, ''), ', ' ORDER BY schema_name, view_name) FROM kappa.views}))[0],
		$expected, "$label: kappa.views");
	is((run($su, q{SELECT (SELECT count(*) FROM kappa_views) || '/' || (SELECT count(*) FROM kappa.views)}))[0] =~ m{^(\d+)/\1$} ? 'same' : 'differ',
		'same', "$label: kappa_views lists the same views");
	my $leftover = $opt{leftover} // '';
	is((run($su, qq{
		SELECT concat_ws(' ',
			(SELECT string_agg('no relations: ' || schema_name || '.' || view_name, ' ' ORDER BY view_id)
				FROM kappa.views v
				WHERE to_regclass(format('%I.%I', schema_name, view_name)) IS NULL
					OR to_regclass('kappa.view_' || view_id) IS NULL),
			(SELECT string_agg('stray table: ' || relname, ' ' ORDER BY relname) FROM pg_class c
				WHERE relnamespace = 'kappa'::regnamespace AND relname ~ '^view_[0-9]+\$'
					AND NOT EXISTS (SELECT FROM kappa.views v WHERE 'view_' || v.view_id = c.relname)),
			(SELECT string_agg(DISTINCT 'stray ' || t || ': ' || id, ' ') FROM (
				SELECT 'partitions' t, view_id id FROM kappa.view_partitions
				UNION ALL SELECT 'state', view_id FROM kappa.view_state
				UNION ALL SELECT 'marker', view_id FROM kappa.view_state_marker
				UNION ALL SELECT 'marks', view_id FROM kappa.view_marks
				UNION ALL SELECT 'dedup', view_id FROM kappa.view_dedup
				UNION ALL SELECT 'late', view_id FROM kappa.late_events) x
				WHERE id NOT IN (SELECT view_id FROM kappa.views)),
			CASE WHEN ${\ ($opt{waited} ? 'true' : 'false')} THEN
				(SELECT string_agg('no positions: ' || view_name, ' ' ORDER BY view_id) FROM kappa.views v
					WHERE status = 'live' AND NOT EXISTS (SELECT FROM kappa.view_partitions p WHERE p.view_id = v.view_id))
			END)}))[0],
		$leftover, "$label: every view has its relations and positions, nothing is left of dropped ones"
		  . ($leftover ne '' ? " but the leftover" : ''));
	return;
}

sub view_id
{
	my ($schema, $name) = @_;
	return (run($su, qq{SELECT view_id FROM kappa.views WHERE schema_name = '$schema' AND view_name = '$name'}))[0];
}

# ---------------------------------------------------------------------------
# Streams and views, as alice and dora

my $cols = q{columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts'};
run_ok($alice, "SELECT kappa_create_stream('dd', topic => 'dd', brokers => '$b', $cols)", 'alice creates stream dd');
run_ok($dora, "SELECT kappa_create_stream('de', topic => 'dd', brokers => '$b', $cols)", 'dora creates stream de');
my %views = (
	'alice.keep' => 'keep', 'alice.v1' => 'tumble', 'alice.v2' => 'keep', 'alice.v5' => 'odd',
	'sx.v3' => 'tumble', 'sx.v4' => 'odd');
foreach my $v (sort keys %views)
{
	run_ok($alice, "SELECT kappa_create_view('$v', \$q\$$q{$views{$v}}\$q\$)", "alice creates $v");
}
run_ok($dora, "SELECT kappa_create_view('dora.dv1', \$q\$$q{dora}\$q\$)", 'dora creates dora.dv1');
run_ok($dora, "SELECT kappa_create_view('dora.dv2', \$q\$$q{dora2}\$q\$)", 'dora creates dora.dv2');
produce(999, 'dd', 'de');
check_view($_, $views{$_}, 'created') foreach sort keys %views;
check_view('dora.dv1', 'dora', 'created');
check_view('dora.dv2', 'dora2', 'created');

# A version of v1 beside it (kappa_replay, swap => false).
run_ok($alice, "SELECT archive_events + log_events FROM kappa_replay('alice.v1', query => \$q\$$q{tumble2}\$q\$, swap => false)",
	'alice replays v1 with a new query beside it');
check_view('alice."v1@v2"', 'tumble2', 'the version beside v1');
catalog_is('alice.keep, alice.v1, alice.v1@v2 of v1, alice.v2, alice.v5, dora.dv1, dora.dv2, sx.v3, sx.v4',
	'created', waited => 1);

# ---------------------------------------------------------------------------
# A DROP that does not happen changes nothing: another role's is refused
# by Postgres, and one rolled back is undone with the trigger's work.

my ($out, $code, $err) = run($dora, 'DROP VIEW alice.keep');
is($code, '42501', 'dora may not drop alice\'s view');
run_ok($alice, 'BEGIN; DROP VIEW alice.keep', 'alice drops alice.keep in a transaction');
is((run($alice, q{SELECT count(*) FROM kappa.views WHERE view_name = 'keep'}))[0], '0',
	'... which removes it from kappa.views');
run_ok($alice, 'ROLLBACK', '... and rolls back');
catalog_is('alice.keep, alice.v1, alice.v1@v2 of v1, alice.v2, alice.v5, dora.dv1, dora.dv2, sx.v3, sx.v4',
	'after the refused and the rolled-back DROP');

# ---------------------------------------------------------------------------
# DROP VIEW of the user-facing view, as its owner: the view goes, with the
# version beside it

my $v1 = view_id('alice', 'v1');
my $v1b = view_id('alice', 'v1@v2');
run_ok($alice, 'DROP VIEW alice.v1', 'alice drops alice.v1 with DROP VIEW');
catalog_is('alice.keep, alice.v2, alice.v5, dora.dv1, dora.dv2, sx.v3, sx.v4', 'DROP VIEW');
is((run($su, qq{SELECT count(*) FROM pg_class WHERE relname IN ('v1', 'v1\@v2', 'view_$v1', 'view_$v1b')}))[0], '0',
	'DROP VIEW: the version beside it and both rows tables are gone');
($out, $code, $err) = run($alice, q{SELECT kappa_drop_view('alice.v1')});
is($code, '42704', 'DROP VIEW: kappa_drop_view finds no such view afterwards');
produce(1999, 'dd', 'de');
delete $views{'alice.v1'};
check_view($_, $views{$_}, 'after DROP VIEW') foreach sort keys %views;
catalog_is('alice.keep, alice.v2, alice.v5, dora.dv1, dora.dv2, sx.v3, sx.v4', 'DROP VIEW, after more events', waited => 1);

# The name is free again, for a view of another shape.
run_ok($alice, "SELECT kappa_create_view('alice.v1', \$q\$$q{odd}\$q\$)", 'alice creates alice.v1 again');
$views{'alice.v1'} = 'odd';

# DROP VIEW of a version's own name drops that version only.
run_ok($alice, q{SELECT archive_events + log_events FROM kappa_replay('alice.v5', swap => false)},
	'alice replays v5 beside it');
my $v5b = view_id('alice', 'v5@v2');
run_ok($alice, 'DROP VIEW alice."v5@v2"', 'alice drops the version with DROP VIEW');
is((run($su, qq{SELECT count(*) FROM pg_class WHERE relname = 'view_$v5b'}))[0], '0', '... and its rows table goes');

# The owner of a schema may drop a view of another role's in it, and so
# the kappa view: Postgres lets her destroy it.
run_ok($alice, "SELECT kappa_create_view('shared.a1', \$q\$$q{keep}\$q\$)", 'alice creates shared.a1 in dora\'s schema');
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, dora.dv1, dora.dv2, shared.a1, sx.v3, sx.v4', 'shared.a1 created');
run_ok($dora, 'DROP VIEW shared.a1', 'dora, owner of the schema, drops alice\'s shared.a1');
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, dora.dv1, dora.dv2, sx.v3, sx.v4', 'DROP VIEW by the schema\'s owner');

# ---------------------------------------------------------------------------
# The rows table, and columns of kappa's relations: refused

my $v2 = view_id('alice', 'v2');
my $dd = (run($su, q{SELECT stream_id FROM kappa.streams WHERE name = 'dd'}))[0];
($out, $code, $err) = run($alice, "DROP TABLE kappa.view_$v2 CASCADE");
is($code, '2BP01', 'DROP TABLE kappa.view_N CASCADE by the owner is refused');
like($err, qr/cannot drop table kappa\.view_$v2 because kappa view alice\.v2 uses it/, '... naming the view');
like($err, qr/HINT:\s+Use kappa_drop_view\('alice\.v2'\) to drop the view\./, '... with a hint naming kappa_drop_view');
($out, $code) = run($alice, "DROP TABLE kappa.view_$v2");
is($code, '2BP01', 'DROP TABLE kappa.view_N without CASCADE is refused (the user-facing view depends on it)');
($out, $code, $err) = run($alice, "ALTER TABLE kappa.view_$v2 DROP COLUMN s CASCADE");
is($code, '2BP01', 'dropping a column of a rows table (with CASCADE) is refused');
like($err, qr/cannot drop table column kappa\.view_$v2\.s because kappa view alice\.v2 uses it/, '... naming the column and the view');
($out, $code, $err) = run($su, "DROP TABLE kappa.stream_$dd");
is($code, '2BP01', 'DROP TABLE of a stream\'s relation, by a superuser, is refused');
like($err, qr/cannot drop table kappa\.stream_$dd because kappa stream "dd" uses it.*HINT:\s+Use kappa_drop_stream\('dd'\) to drop the stream\./s,
	'... naming the stream, with a hint naming kappa_drop_stream');
($out, $code) = run($su, "ALTER TABLE kappa.stream_$dd DROP COLUMN v");
is($code, '2BP01', 'dropping a column of a stream\'s relation is refused');
($out, $code) = run($su, "DROP TABLE kappa.stream_$dd CASCADE");
is($code, '2BP01', '... also with CASCADE');
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, dora.dv1, dora.dv2, sx.v3, sx.v4', 'refused DROPs');

# The relation of a stream without views (pg_restore --clean drops the
# views first): the stream goes with it, as kappa_drop_stream drops it.
run_ok($su, qq{SELECT kappa_create_stream('dnone', topic => 'dnone', brokers => '$b', columns => 'v int')},
	'a stream without views');
my $dnone = (run($su, q{SELECT stream_id FROM kappa.streams WHERE name = 'dnone'}))[0];
run_ok($su, "DROP TABLE kappa.stream_$dnone", 'DROP TABLE of the relation of a stream without views');
is((run($su, qq{SELECT (SELECT count(*) FROM kappa.streams WHERE stream_id = $dnone)
		+ (SELECT count(*) FROM kappa.stream_columns WHERE stream_id = $dnone)
		+ (SELECT count(*) FROM kappa_streams WHERE name = 'dnone')}))[0], '0',
	'... drops the stream from kappa\'s catalog');
run_ok($su, qq{SELECT kappa_create_stream('dnone', topic => 'dnone', brokers => '$b', columns => 'v int')},
	'... and its name can be used again');
run_ok($su, q{SELECT kappa_drop_stream('dnone')}, '... and dropped again');

# kappa's own DROPs pass: a version of v2 with other columns beside it,
# promoted (its own name dropped, the user-facing view created again).
run_ok($alice, "SELECT archive_events + log_events FROM kappa_replay('alice.v2', query => \$q\$$q{fewer}\$q\$, swap => false)",
	'alice replays v2 with other columns beside it');
run_ok($alice, q{GRANT SELECT ON alice.v2 TO dora}, 'alice grants SELECT on v2 to dora');
run_ok($alice, q{SELECT kappa_promote('alice.v2', 2)}, 'alice promotes version 2 of v2');
$views{'alice.v2'} = 'fewer';
is((run($su, q{SELECT string_agg(name || ' v' || version || ' ' || current, ', ') FROM kappa_views WHERE version_of = 'alice.v2'}))[0],
	'alice.v2 v2 true', 'promoted: one version left, current');
is((run($dora, q{SELECT count(*) > 0 FROM alice.v2}))[0], 't', 'promoted: dora may still read it');
produce(2999, 'dd', 'de');
check_view($_, $views{$_}, 'after the refused DROPs and the promotion') foreach sort keys %views;
check_view('dora.dv1', 'dora', 'after the refused DROPs and the promotion');
check_view('dora.dv2', 'dora2', 'after the refused DROPs and the promotion');
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, dora.dv1, dora.dv2, sx.v3, sx.v4', 'after the promotion',
	waited => 1);

# ---------------------------------------------------------------------------
# DROP SCHEMA ... CASCADE, as the schema's owner: its views go

run_ok($alice, 'DROP SCHEMA sx CASCADE', 'alice drops schema sx with CASCADE');
delete @views{ 'sx.v3', 'sx.v4' };
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, dora.dv1, dora.dv2', 'DROP SCHEMA');
produce(3499, 'dd', 'de');
check_view($_, $views{$_}, 'after DROP SCHEMA') foreach sort keys %views;
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, dora.dv1, dora.dv2', 'DROP SCHEMA, after more events', waited => 1);
run_ok($su, 'CREATE SCHEMA sx AUTHORIZATION alice', 'schema sx again');
run_ok($alice, "SELECT kappa_create_view('sx.v3', \$q\$$q{keep}\$q\$)", 'alice creates sx.v3 again');
$views{'sx.v3'} = 'keep';

# ---------------------------------------------------------------------------
# DROP OWNED BY, as the role itself: its views go (user-facing views and
# rows tables), its stream stays

run_ok($dora, 'DROP OWNED BY dora', 'dora drops everything she owns');
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, sx.v3', 'DROP OWNED');
is((run($su, q{SELECT string_agg(name, ',' ORDER BY name) FROM kappa.streams}))[0], 'dd,de', 'DROP OWNED: the streams stay');
produce(3999, 'dd', 'de');
check_view($_, $views{$_}, 'after DROP OWNED') foreach sort keys %views;
run_ok($su, 'CREATE SCHEMA dora AUTHORIZATION dora', 'schema dora again');
run_ok($dora, "SELECT kappa_create_view('dora.dv1', \$q\$$q{dora2}\$q\$)", 'dora creates dora.dv1 again, of another shape');

# ---------------------------------------------------------------------------
# Leftovers, made with the event trigger suppressed

# session_replication_role = replica: the user-facing view goes, the rest stays.
run_ok($su, 'SET session_replication_role = replica; DROP VIEW alice.v5; RESET session_replication_role',
	'DROP VIEW alice.v5 with session_replication_role = replica');
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, dora.dv1, sx.v3', 'leftover of v5',
	leftover => 'no relations: alice.v5');
($out, $code, $err) = run($alice, "SELECT kappa_create_view('alice.v5', \$q\$$q{keep}\$q\$)");
is($code, '42P07', 'a leftover\'s name is taken');
like($err, qr/kappa view "v5" already exists.*HINT:\s+Remove what is left of it with kappa_drop_view\('alice\.v5'\)\./s,
	'... with a hint naming kappa_drop_view');
my $v5 = view_id('alice', 'v5');
($out, $code) = run($dora, q{SELECT kappa_drop_view('alice.v5')});
is($code, '42501', 'another role may not drop the leftover');
run_ok($alice, q{SELECT kappa_drop_view('v5')}, 'kappa_drop_view removes the leftover, found through the search path');
is((run($su, qq{SELECT count(*) FROM pg_class WHERE relname = 'view_$v5'}))[0], '0', '... with its rows table');
delete $views{'alice.v5'};
catalog_is('alice.keep, alice.v1, alice.v2, dora.dv1, sx.v3', 'leftover of v5 dropped');
run_ok($alice, "SELECT kappa_create_view('alice.v5', \$q\$$q{keep}\$q\$)", 'alice creates alice.v5 again');
$views{'alice.v5'} = 'keep';

# The event trigger disabled: a rows table dropped with its view, and a
# schema with its view; on a stream of their own, which goes with them.
run_ok($alice, "SELECT kappa_create_stream('dz', topic => 'dd', brokers => '$b', $cols)", 'alice creates stream dz');
run_ok($alice, "SELECT kappa_create_view('alice.z1', \$q\$$q{z}\$q\$)", 'alice creates alice.z1');
run_ok($alice, "SELECT kappa_create_view('sy.z2', \$q\$$q{z}\$q\$)", 'alice creates sy.z2');
run_ok($alice, "SELECT kappa_create_view('sy.z3', \$q\$$q{z}\$q\$)", 'alice creates sy.z3');
my $z1 = view_id('alice', 'z1');
run_ok($su, "ALTER EVENT TRIGGER kappa_sql_drop DISABLE; DROP TABLE kappa.view_$z1 CASCADE; DROP SCHEMA sy CASCADE; "
	  . 'ALTER EVENT TRIGGER kappa_sql_drop ENABLE', 'rows table of z1 and schema sy dropped with the event trigger disabled');
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, alice.z1, dora.dv1, sx.v3, sy.z2, sy.z3', 'leftovers of z1, z2, z3',
	leftover => 'no relations: alice.z1 no relations: sy.z2 no relations: sy.z3');
run_ok($alice, q{SELECT kappa_drop_view('sy.z2')}, 'kappa_drop_view removes a leftover whose schema is gone');
($out, $code) = run($alice, q{SELECT kappa_drop_stream('dz')});
is($code, '2BP01', 'kappa_drop_stream without cascade still sees the leftovers');
run_ok($alice, q{SELECT kappa_drop_stream('dz', cascade => true)}, 'kappa_drop_stream(cascade) removes the leftovers');
is((run($su, q{SELECT string_agg(name, ',' ORDER BY name) FROM kappa.streams}))[0], 'dd,de', 'stream dz is gone');
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, dora.dv1, sx.v3', 'leftovers dropped with their stream');
run_ok($alice, "SELECT kappa_create_view('alice.z1', \$q\$$q{keep}\$q\$)", 'alice creates alice.z1 again, on dd');
$views{'alice.z1'} = 'keep';

produce(5999, 'dd', 'de');
check_view($_, $views{$_}, 'at the end') foreach sort keys %views;
check_view('dora.dv1', 'dora2', 'at the end');
catalog_is('alice.keep, alice.v1, alice.v2, alice.v5, alice.z1, dora.dv1, sx.v3', 'at the end', waited => 1);

# ---------------------------------------------------------------------------
# No backend crashed; everything can still be dropped, the extension too

is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $startup, 'the server did not restart');
ok(!log_contains($node, qr/terminated by signal|was terminated by exception/), 'no process was terminated by a signal');
run_ok($alice, q{SELECT kappa_drop_stream('dd', cascade => true)}, 'alice drops stream dd with its views');
run_ok($dora, q{SELECT kappa_drop_stream('de', cascade => true)}, 'dora drops stream de with her view');
catalog_is('', 'all dropped');
# In the superuser's one session, before and after the extension is
# dropped and created again: a stream and a view, waited for, replayed (a
# replay runs the engine and its flush in this backend, so the flush's
# statements, whose parameter is an array of kappa.view_state rows, are
# prepared here), each time equal to its batch query.  After the new
# CREATE EXTENSION, this backend's statements prepared for the dropped
# catalog are prepared again, for the new tables and types.
sub same_session_round
{
	my ($label) = @_;
	run_ok($su, "SELECT kappa_create_stream('dd', topic => 'dd', brokers => '$b', $cols)", "$label: a stream");
	run_ok($su, "SELECT kappa_create_view('public.again', \$q\$$q{keep}\$q\$)", "$label: a view");
	is((run($su, "SELECT kappa_wait('dd', '60 seconds')"))[0], 't', "$label: kappa_wait");
	check_view('public.again', 'keep', $label);
	is((run($su, "SELECT archive_events + log_events FROM kappa_replay('public.again')"))[0], $produced + 1,
		"$label: kappa_replay read every event");
	check_view('public.again', 'keep', "$label, replayed");
	run_ok($su, "SELECT kappa_drop_view('public.again')", "$label: the view dropped");
	run_ok($su, "SELECT kappa_drop_stream('dd')", "$label: the stream dropped");
	catalog_is('', "$label: all dropped");
	return;
}
same_session_round('the old catalog');
run_ok($su, 'DROP EXTENSION kappa', 'DROP EXTENSION works');
run_ok($su, 'CREATE EXTENSION kappa', 'CREATE EXTENSION works again');
same_session_round('the new catalog, same session');
$_->quit foreach ($alice, $dora, $su);

stop_broker($broker);
done_testing();
