# Hostile privileges: two non-superuser kappa_admin members (alice, bob)
# and a plain role (carol) try to make kappa run their code with rights
# they do not have.  Every function they write records, in audit.trace,
# current_user, session_user, is_superuser and whether each of five
# attempts succeeded: ALTER ROLE <owner> SUPERUSER, CREATE ROLE evil_<owner>
# SUPERUSER, pg_read_file, SET ROLE <bootstrap superuser>, CREATE TEMP
# TABLE.  The code reaches kappa through a view's select list and WHERE
# (behind IMMUTABLE-declared wrappers, since kappa refuses volatile
# functions), a user aggregate's transition, combine and final functions,
# and a user cast to json (which to_jsonb calls in kappa_check and
# kappa_compare).  A stream column and group key of a domain whose CHECK
# calls them is there too; kappa decodes domains as their base type and
# does not evaluate that CHECK today, so it is not required to run, only
# held to the same rule if it does (a type with a user-written input
# function needs C, so a superuser).  For each path that runs the code
# (the worker, the rebuild after a crash, kappa_check, kappa_replay with
# and without a new query, kappa_feed and the cursor it reads,
# kappa_compare and kappa_promote; called by the owner, and by a
# superuser) the test asserts that the code ran, as the view's owner, not
# superuser, that every attempt was refused with 42501 and nothing was
# gained, and that the views are exact, against their queries as batch
# SQL.  Then: rights checked at
# creation (EXECUTE, USAGE), rights revoked later, pg_read_file's content
# never reaching an error text, views owned and managed by their
# non-superuser creators, other owners' dead letters, late events, errors,
# rows and versions hidden, other owners' streams and views refused, and
# Kafka keys as bytea through pg_dump (issue 10).
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('as:2', 'bs:1', 'pr:1', 'ks:1', 'fs:1');
my $b = $broker->{bootstrap};
my $node = kappa_node('privileges',
	conf => "kappa.flush_interval = '100ms'\nrestart_after_crash = on\nkappa.restart_backoff_max = '2s'\n");
my $dir = PostgreSQL::Test::Utils::tempdir();

# A file only the server may read (the roles have no EXECUTE on
# pg_read_file); its content must never reach an error text.
my $secret = 'kappa-secret-' . join('', map { ('a' .. 'z')[ int(rand(26)) ] } 1 .. 16);
my $secret_file = "$dir/secret.txt";
PostgreSQL::Test::Utils::append_to_file($secret_file, "$secret\n");
chmod 0644, $secret_file;

# ---------------------------------------------------------------------------
# Helpers

# Run SQL in a session of its own as ROLE (undef: the bootstrap superuser).
# Returns (SQLSTATE of the first error or '', stdout).
sub run_as
{
	my ($role, $sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ defined $role ? ('-U', $role) : () ]);
	return ('', $out) if $rc == 0;
	my ($code) = $err =~ /ERROR:\s+([0-9A-Z]{5}):/;
	note "as " . ($role // 'superuser') . ": $err";
	return ($code // "rc$rc", $out);
}

# The output of SQL run as ROLE, or "ERROR <SQLSTATE>" (so that a refusal
# fails the comparison it feeds instead of stopping the test).
sub query_as
{
	my ($role, $sql) = @_;
	my ($code, $out) = run_as($role, $sql);
	return $code eq '' ? $out : "ERROR $code";
}

# The SQLSTATE of SQL run as ROLE: '' when it succeeds.
sub sqlstate_as
{
	my ($role, $sql) = @_;
	my ($code) = run_as($role, $sql);
	return $code;
}

my $su = sub { $node->safe_psql('postgres', $_[0]) };

# Undo whatever a hostile function gained, and empty the trace.
sub reset_trace
{
	$su->(q{
		ALTER ROLE alice NOSUPERUSER; ALTER ROLE bob NOSUPERUSER;
		DROP ROLE IF EXISTS evil_alice; DROP ROLE IF EXISTS evil_bob;
		TRUNCATE audit.trace});
	return;
}

# Nothing gained: alice and bob are not superusers, no evil role exists.
sub nothing_gained
{
	my ($label) = @_;
	is($su->(q{SELECT string_agg(rolname || '=' || rolsuper, ',' ORDER BY rolname) FROM pg_roles
			WHERE rolname IN ('alice', 'bob') OR rolname LIKE 'evil%'}),
		'alice=false,bob=false', "$label: alice and bob are not superuser, no role evil_* exists");
	return;
}

# The trace since the last reset, for the path LABEL: the code ran (rows
# from a backend of type BACKEND, with each of the labels LABELS), every
# row ran as its function's owner, not superuser, and every attempt was
# refused with 42501; then nothing was gained.  Resets the trace.
sub check_trace
{
	my ($label, %opt) = @_;
	my $backend = $opt{backend};
	my $ran = $su->(qq{SELECT count(*) FROM audit.trace WHERE backend_type = '$backend'});
	if ($opt{may_be_empty})
	{
		note "$label: $ran traced calls from a $backend";
	}
	else
	{
		ok($ran > 0, "$label: the user code ran in a $backend ($ran traced calls)");
	}
	foreach my $l (@{ $opt{labels} // [] })
	{
		my ($owner, $what) = split /:/, $l;
		is($su->(qq{SELECT count(*) > 0 FROM audit.trace
				WHERE backend_type = '$backend' AND owner_ = '$owner' AND label LIKE '$what%'}),
			't', "$label: $owner\'s $what code ran in a $backend");
	}
	my $rows = sub {
		my ($cond) = @_;
		return $su->(qq{SELECT coalesce(string_agg(DISTINCT format('%s %s in %s as %s (session %s, is_superuser %s, rolsuper %s): %s %s %s %s %s',
				owner_, label, backend_type, current_user_, session_user_, is_superuser, effective_super,
				alter_role, create_role, read_file, set_role, temp_table), '; '), '')
			FROM audit.trace WHERE $cond});
	};
	is($rows->('current_user_ <> owner_'), '', "$label: current_user is the owner of the code");
	# is_superuser reports the session user, as under REFRESH MATERIALIZED
	# VIEW: on in a worker (whose session is the bootstrap superuser's) and
	# in a superuser's session, off in the owner's own session
	is($rows->(q{is_superuser IS DISTINCT FROM (SELECT CASE WHEN r.rolsuper THEN 'on' ELSE 'off' END
			FROM pg_roles r WHERE r.rolname = session_user_)}),
		'', "$label: is_superuser is the session user's, not the code's");
	is($rows->('effective_super'), '', "$label: current_user is not a superuser role");
	# kappa_feed's cursor is the caller's own query, run as the caller in
	# her own session (not a security-restricted operation): there, and
	# only there, she may create a temporary table, as in any query of hers
	is($rows->(q{(alter_role, create_role, read_file, set_role) IS DISTINCT FROM ('42501', '42501', '42501', '42501')
			OR temp_table IS DISTINCT FROM CASE WHEN label = 'feed-cursor' THEN 'ok' ELSE '42501' END}),
		'', "$label: ALTER ROLE, CREATE ROLE, pg_read_file, SET ROLE, CREATE TEMP TABLE all refused (42501)");
	nothing_gained($label);
	reset_trace();
	return;
}

# Whether the view's rows, read by ROLE as SELECT COLUMNS, equal the batch
# query ORACLE (both as ROLE).
sub check_exact
{
	my ($role, $relation, $columns, $oracle, $label) = @_;
	my $r = query_as($role, qq{
		SELECT (SELECT count(*) FROM (SELECT $columns FROM $relation EXCEPT ALL ($oracle)) a)
			|| '/' || (SELECT count(*) FROM (($oracle) EXCEPT ALL SELECT $columns FROM $relation) b)
			|| '/' || (SELECT count(*) FROM $relation)});
	my ($extra, $missing, $rows) = $r =~ m{^(\d+)/(\d+)/(\d+)$} ? ($1, $2, $3) : ('?', '?', 0);
	ok($rows > 0 && $extra eq '0' && $missing eq '0',
		"$label: $relation read by $role equals its batch query ($rows rows; $extra extra, $missing missing)"
		  . ($r =~ /^ERROR/ ? " [$r]" : ''));
	return;
}

sub view_id
{
	my ($schema, $name) = @_;
	return $su->(qq{SELECT view_id FROM kappa.views WHERE schema_name = '$schema' AND view_name = '$name'});
}

# ---------------------------------------------------------------------------
# Roles, schemas, the trace, the events

$su->(qq{
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN;
	GRANT kappa_admin TO alice, bob;
	CREATE SCHEMA alice AUTHORIZATION alice;
	CREATE SCHEMA bob AUTHORIZATION bob;
	CREATE SCHEMA carol AUTHORIZATION carol;
	CREATE SCHEMA audit;
	GRANT USAGE ON SCHEMA audit TO PUBLIC;
	CREATE TABLE audit.trace (
		id bigint GENERATED ALWAYS AS IDENTITY, owner_ name, label text,
		current_user_ name, session_user_ name, is_superuser text, effective_super boolean,
		backend_type text, alter_role text, create_role text, read_file text, set_role text,
		temp_table text, at timestamptz DEFAULT clock_timestamp());
	GRANT INSERT ON audit.trace TO PUBLIC;
	-- the test's own instrument: which kind of backend runs the code
	-- (pg_stat_activity hides it from a current_user that is not the
	-- session's, as in a worker running a view as its owner)
	CREATE FUNCTION audit.backend_type() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
		SET search_path = pg_catalog
		AS 'SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()';

	-- the events of alice's stream: 40 in time order, then one an hour
	-- late (applied by running views, late for windowed ones)
	CREATE SCHEMA batch;
	GRANT USAGE ON SCHEMA batch TO PUBLIC;
	CREATE TABLE batch.ev AS
	SELECT i, 'd' || (i % 4) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '10 s' AS ts,
		(i * 7) % 13 AS v,
		CASE WHEN i % 3 = 0 THEN 'angry' ELSE 'calm' END AS mood,
		't' || (i % 3) AS tag
	FROM generate_series(0, 39) i;
	INSERT INTO batch.ev VALUES (40, 'd0', '2025-12-31 23:00:00+00', 5, 'calm', 't1');
	ALTER TABLE batch.ev ADD COLUMN payload text;
	UPDATE batch.ev SET payload = json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v,
		'mood', mood, 'tag', tag)::text;
	-- bob's
	CREATE TABLE batch.bev AS
	SELECT i, 'b' || (i % 2) AS dev, i * 3 AS v FROM generate_series(0, 9) i;
	GRANT SELECT ON batch.ev, batch.bev TO PUBLIC;
});

# Each owner's hostile function: VOLATILE, tries five ways to gain rights,
# each in a block of its own, and records who it ran as.  SET ROLE and
# CREATE TEMP TABLE are rolled back at once if they succeed, so that they
# cannot change what the caller does next.  Each is wrapped by an
# IMMUTABLE-declared function, which kappa accepts in a view.
sub hostile_functions
{
	my ($o) = @_;
	return qq{
	CREATE FUNCTION $o.hostile(label text) RETURNS int LANGUAGE plpgsql VOLATILE AS \$f\$
	DECLARE
		cu name := current_user;
		su name := session_user;
		guc text := current_setting('is_superuser');
		eff boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
		bt text := audit.backend_type();
		r_alter text; r_create text; r_read text; r_set text; r_temp text;
	BEGIN
		BEGIN
			EXECUTE 'ALTER ROLE $o SUPERUSER';
			r_alter := 'ok';
		EXCEPTION WHEN OTHERS THEN r_alter := SQLSTATE;
		END;
		BEGIN
			EXECUTE 'CREATE ROLE evil_$o SUPERUSER';
			r_create := 'ok';
		EXCEPTION WHEN OTHERS THEN r_create := SQLSTATE;
		END;
		BEGIN
			PERFORM pg_read_file('/etc/hostname');
			r_read := 'ok';
		EXCEPTION WHEN OTHERS THEN r_read := SQLSTATE;
		END;
		BEGIN
			EXECUTE format('SET ROLE %I', (SELECT rolname FROM pg_roles WHERE oid = 10));
			r_set := 'ok';
			RAISE SQLSTATE 'KP001';
		EXCEPTION WHEN OTHERS THEN r_set := coalesce(r_set, SQLSTATE);
		END;
		BEGIN
			EXECUTE 'CREATE TEMP TABLE hostile_tmp (x int)';
			r_temp := 'ok';
			RAISE SQLSTATE 'KP001';
		EXCEPTION WHEN OTHERS THEN r_temp := coalesce(r_temp, SQLSTATE);
		END;
		INSERT INTO audit.trace (owner_, label, current_user_, session_user_, is_superuser,
			effective_super, backend_type, alter_role, create_role, read_file, set_role, temp_table)
		VALUES ('$o', label, cu, su, guc, eff, bt, r_alter, r_create, r_read, r_set, r_temp);
		RETURN 1;
	END \$f\$;
	-- the wrapper; arg makes calls depend on the event, so that they are
	-- not folded into a constant when the view is planned
	CREATE FUNCTION $o.imm(label text, arg text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS \$f\$
	BEGIN
		RETURN $o.hostile(label);
	END \$f\$;
	};
}

# alice's code: the hostile functions, an aggregate whose support functions
# call them, an enum with a cast to json that does, a domain whose CHECK
# does, a reader of the secret file.
is(sqlstate_as('alice', hostile_functions('alice') . qq{
	CREATE FUNCTION alice.tsum_trans(s bigint, x int) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT AS \$f\$
	BEGIN PERFORM alice.hostile('agg-trans'); RETURN s + x; END \$f\$;
	CREATE FUNCTION alice.tsum_combine(a bigint, b bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT AS \$f\$
	BEGIN PERFORM alice.hostile('agg-combine'); RETURN a + b; END \$f\$;
	CREATE FUNCTION alice.tsum_final(s bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT AS \$f\$
	BEGIN PERFORM alice.hostile('agg-final'); RETURN s; END \$f\$;
	CREATE AGGREGATE alice.tsum(int) (SFUNC = alice.tsum_trans, STYPE = bigint,
		COMBINEFUNC = alice.tsum_combine, FINALFUNC = alice.tsum_final, INITCOND = '0');
	-- the same with a transition function declared VOLATILE
	CREATE FUNCTION alice.vsum_trans(s bigint, x int) RETURNS bigint LANGUAGE plpgsql VOLATILE STRICT AS \$f\$
	BEGIN PERFORM alice.hostile('vagg-trans'); RETURN s + x; END \$f\$;
	CREATE AGGREGATE alice.vsum(int) (SFUNC = alice.vsum_trans, STYPE = bigint,
		COMBINEFUNC = alice.tsum_combine, INITCOND = '0');

	CREATE TYPE alice.mood AS ENUM ('calm', 'angry');
	CREATE FUNCTION alice.mood_json(m alice.mood) RETURNS json LANGUAGE plpgsql IMMUTABLE AS \$f\$
	BEGIN PERFORM alice.hostile('cast'); RETURN to_json(m::text); END \$f\$;
	CREATE CAST (alice.mood AS json) WITH FUNCTION alice.mood_json(alice.mood);
	-- (to_jsonb looks for a cast to json for types that are not built in)
	CREATE DOMAIN alice.tag AS text CHECK (alice.imm('domain', VALUE) = 1);

	CREATE FUNCTION alice.read_secret(arg text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS \$f\$
	BEGIN RETURN pg_read_file('$secret_file')::int; END \$f\$;
	GRANT USAGE ON SCHEMA alice TO PUBLIC;
	}), '', 'alice (not superuser) defines her functions, aggregate, enum, cast and domain');
is(sqlstate_as('bob', hostile_functions('bob') . q{
	GRANT USAGE ON SCHEMA bob TO PUBLIC;
	-- functions, an operator, aggregates and a type alice may not use
	CREATE FUNCTION bob.noexec(arg text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RETURN 1; END $f$;
	REVOKE EXECUTE ON FUNCTION bob.noexec(text) FROM PUBLIC;
	CREATE FUNCTION bob.noexec_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RETURN a = b; END $f$;
	REVOKE EXECUTE ON FUNCTION bob.noexec_eq(text, text) FROM PUBLIC;
	CREATE OPERATOR bob.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = bob.noexec_eq);
	CREATE FUNCTION bob.bsum_trans(s bigint, x int) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT AS $f$ BEGIN RETURN s + x; END $f$;
	CREATE FUNCTION bob.bsum_combine(a bigint, b bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT AS $f$ BEGIN RETURN a + b; END $f$;
	CREATE AGGREGATE bob.bsum(int) (SFUNC = bob.bsum_trans, STYPE = bigint, COMBINEFUNC = bob.bsum_combine, INITCOND = '0');
	CREATE AGGREGATE bob.bsum_closed(int) (SFUNC = bob.bsum_trans, STYPE = bigint, COMBINEFUNC = bob.bsum_combine, INITCOND = '0');
	REVOKE EXECUTE ON FUNCTION bob.bsum_trans(bigint, int) FROM PUBLIC;
	REVOKE EXECUTE ON FUNCTION bob.bsum_closed(int) FROM PUBLIC;
	CREATE TYPE bob.lvl AS ENUM ('d0', 'd1', 'd2', 'd3');
	REVOKE USAGE ON TYPE bob.lvl FROM PUBLIC;
	-- a function alice may use, until bob revokes it
	CREATE FUNCTION bob.shared(arg text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RETURN 1; END $f$;
	REVOKE EXECUTE ON FUNCTION bob.shared(text) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION bob.shared(text) TO alice;
	CREATE TABLE bob.private_msgs (partition int, "offset" bigint, payload text);
	INSERT INTO bob.private_msgs VALUES (0, 0, '{"dev": "x", "ts": "2026-01-01T00:00:00Z", "v": 1}');
	}), '', 'bob (not superuser) defines his');
is(query_as('alice', 'SELECT has_function_privilege(\'pg_read_file(text)\', \'EXECUTE\')'), 'f',
	'alice has no EXECUTE on pg_read_file');

# ---------------------------------------------------------------------------
# alice's and bob's streams and views

is(sqlstate_as('alice', qq{
	SELECT kappa_create_stream('as', topic => 'as', brokers => '$b', keep_late => true,
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int, mood alice.mood, tag alice.tag',
		event_time => 'ts', watermark => '1 minute');
	SELECT kappa_create_stream('ks', topic => 'ks', brokers => '$b', columns => 'v int');
	SELECT kappa_create_stream('pr', topic => 'pr', brokers => '$b', columns => 'dev text, v int');
	-- a stream whose worker cannot reach its brokers: its last_error
	SELECT kappa_create_stream('dead', brokers => '127.0.0.1:1', columns => 'a text');
	}), '', 'alice creates her streams');
is(sqlstate_as('bob', qq{
	SELECT kappa_create_stream('bs', topic => 'bs', brokers => '$b', columns => 'dev text, v int');
	}), '', 'bob creates his');

# Refused at creation.  A volatile function anywhere in a view: 0A000.
is(sqlstate_as('alice', q{SELECT kappa_create_view('alice.v_vol',
		$q$SELECT dev, count(*) AS n, alice.hostile(dev) AS h FROM "as" GROUP BY dev$q$)}),
	'0A000', 'a volatile function in the select list is refused (0A000)');
is(sqlstate_as('alice', q{SELECT kappa_create_view('alice.v_volw',
		$q$SELECT dev, count(*) AS n FROM "as" WHERE alice.hostile(dev) = 1 GROUP BY dev$q$)}),
	'0A000', 'a volatile function in WHERE is refused (0A000)');
# A function, operator, aggregate, aggregate support function or type the
# owner may not use: 42501.
my %refused = (
	'a function without EXECUTE' => q{SELECT dev, count(*) AS n, bob.noexec(dev) AS x FROM "as" GROUP BY dev},
	'an operator whose function has no EXECUTE' =>
	  q{SELECT dev, count(*) AS n FROM "as" WHERE dev OPERATOR(bob.===) 'd0' GROUP BY dev},
	'an aggregate without EXECUTE' => q{SELECT dev, bob.bsum_closed(v) AS t FROM "as" GROUP BY dev},
	'a type without USAGE' => q{SELECT dev, count(*) AS n FROM "as" WHERE dev::bob.lvl IS NOT NULL GROUP BY dev},
);
my $k = 0;
foreach my $what (sort keys %refused)
{
	$k++;
	is(sqlstate_as('alice', "SELECT kappa_create_view('alice.v_refused$k', \$q\$$refused{$what}\$q\$)"),
		'42501', "a view using $what is refused (42501)");
}
# An aggregate alice may execute, whose transition function she may not:
# as in Postgres (nodeAgg.c), an aggregate's support functions are checked
# against the aggregate's owner, who vouches for them; bob has EXECUTE.
is(sqlstate_as('alice', q{SELECT kappa_create_view('alice.v_bsum',
		$q$SELECT dev, bob.bsum(v) AS t FROM "as" GROUP BY dev$q$)}),
	'', 'an aggregate whose support function only its owner may execute is accepted, as in Postgres');
is(sqlstate_as('alice', q{SELECT kappa_drop_view('alice.v_bsum')}), '', 'and dropped');
# pg_read_file, which alice may not execute, read as an int (its error
# would quote the file): refused.  It is also volatile, so either refusal
# (42501, or 0A000 for the volatility) keeps the file unread.
like(sqlstate_as('alice', qq{SELECT kappa_create_view('alice.v_readfile',
		\$q\$SELECT dev, count(*) AS n, pg_read_file('$secret_file')::int AS x FROM pr GROUP BY dev\$q\$)}),
	qr/^(42501|0A000)$/, 'pg_read_file without EXECUTE in a view is refused (42501; 0A000 for its volatility)');
# A user aggregate whose transition function is VOLATILE: refused as
# volatile, or else accepted and run as its owner like the others.
my $vagg = sqlstate_as('alice', q{SELECT kappa_create_view('alice.v_vagg',
		$q$SELECT dev, alice.vsum(v) AS t FROM "as" GROUP BY dev$q$)});
like($vagg, qr/^(0A000|)$/,
	'a user aggregate with a VOLATILE transition function is refused (0A000) or accepted (then traced below)');
# What was wrongly accepted above goes again, before any event arrives.
foreach my $v ($su->(q{SELECT format('%I.%I', schema_name, view_name) FROM kappa.views
		WHERE view_name IN ('v_vol', 'v_volw', 'v_readfile') OR view_name LIKE 'v\_refused%'}) =~ /(\S+)/g)
{
	$su->("SELECT kappa_drop_view('$v')");
}

# The views whose code is traced.
my %aq = (
	v_sel => q{SELECT dev, count(*) AS n, sum(v) AS s, alice.imm('select', dev || count(*)) AS h
		FROM "as" GROUP BY dev},
	v_where => q{SELECT dev, count(*) AS n, sum(v) AS s FROM "as" WHERE alice.imm('where', dev || v) = 1 GROUP BY dev},
	v_agg => q{SELECT dev, alice.tsum(v) AS t, count(*) AS n FROM "as" GROUP BY dev},
	v_types => q{SELECT mood, tag, count(*) AS n, alice.imm('types', tag || count(*)) AS h
		FROM "as" GROUP BY mood, tag},
	v_win => q{SELECT dev, w.window_start, w.window_end, count(*) AS n
		FROM "as", kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end},
);
foreach my $name (sort keys %aq)
{
	is(sqlstate_as('alice', "SELECT kappa_create_view('alice.$name', \$q\$$aq{$name}\$q\$)"), '',
		"alice creates view alice.$name");
}
is(sqlstate_as('alice', q{SELECT kappa_create_view('alice.v_key',
		$q$SELECT kafka_key AS k, count(*) AS n, sum(v) AS s FROM ks GROUP BY kafka_key$q$)}),
	'', 'alice creates view alice.v_key');
is(sqlstate_as('bob', q{SELECT kappa_create_view('bob.v_sel',
		$q$SELECT dev, count(*) AS n, sum(v) AS s, bob.imm('select', dev || count(*)) AS h FROM bs GROUP BY dev$q$)}),
	'', 'bob creates view bob.v_sel');
is(sqlstate_as('bob', q{SELECT kappa_create_view('bob.v_theft', $q$SELECT count(*) AS n FROM "as"$q$)}),
	'42501', 'bob cannot create a view over alice\'s stream (42501)');

# The oracles, over the same events.
my %oracle = (
	v_sel => [ 'dev, n, s', 'SELECT dev, count(*), sum(v) FROM batch.ev GROUP BY dev' ],
	v_where => [ 'dev, n, s', 'SELECT dev, count(*), sum(v) FROM batch.ev GROUP BY dev' ],
	v_agg => [ 'dev, t, n', 'SELECT dev, sum(v), count(*) FROM batch.ev GROUP BY dev' ],
	v_types => [ 'mood::text, tag::text, n', 'SELECT mood, tag, count(*) FROM batch.ev GROUP BY mood, tag' ],
);
sub check_alice_views
{
	my ($label) = @_;
	foreach my $name (sort keys %oracle)
	{
		check_exact('alice', "alice.$name", $oracle{$name}[0], $oracle{$name}[1], $label);
	}
	is(query_as('alice', q{SELECT (SELECT count(*) FROM alice.v_sel WHERE h IS DISTINCT FROM 1)
			+ (SELECT count(*) FROM alice.v_types WHERE h IS DISTINCT FROM 1)}), '0',
		"$label: the traced select-list columns are what the wrapper returns");
	return;
}

# ---------------------------------------------------------------------------
# The worker

reset_trace();
is(query_as('alice', q{SELECT count(*) FROM (SELECT * FROM batch.ev ORDER BY i) e,
		LATERAL kappa_produce('as', e.payload, e.dev) p}), '41', 'alice produces her 41 events');
is(query_as('alice', q{SELECT count(*) FROM kappa_produce('as', '["broken"', 'd1')}), '1',
	'and a message that cannot be decoded');
is(query_as('alice', q{SELECT count(*) FROM kappa_produce('ks', convert_to('{"v": 1}', 'UTF8'), '\xfffe'::bytea) p1,
		kappa_produce('ks', convert_to('{"v": 2}', 'UTF8'), '\xfffe'::bytea) p2,
		kappa_produce('ks', convert_to('{"v": 5}', 'UTF8'), convert_to('abc', 'UTF8')) p3}),
	'1', 'and three messages to ks, two with a key that is not UTF-8');
is(query_as('bob', q{SELECT count(*) FROM (SELECT * FROM batch.bev ORDER BY i) e,
		LATERAL kappa_produce('bs', json_build_object('dev', e.dev, 'v', e.v)::text, e.dev) p}),
	'10', 'bob produces his 10 events');
is(query_as('bob', q|SELECT count(*) FROM kappa_produce('bs', '{"dev": ', 'b0')|), '1',
	'and a message that cannot be decoded');
foreach my $s ([ 'alice', 'as' ], [ 'alice', 'ks' ], [ 'bob', 'bs' ])
{
	is(query_as($s->[0], "SELECT kappa_wait('$s->[1]', '60 seconds')"), 't',
		"$s->[0]'s worker consumed stream $s->[1]");
}
check_trace('the worker',
	backend => 'kappa worker',
	labels => [ 'alice:select', 'alice:where', 'alice:agg-trans', 'alice:agg-final', 'alice:types', 'bob:select' ]);
check_alice_views('worker');
check_exact('bob', 'bob.v_sel', 'dev, n, s', 'SELECT dev, count(*), sum(v) FROM batch.bev GROUP BY dev', 'worker');
if ($vagg eq '')
{
	check_exact('alice', 'alice.v_vagg', 'dev, t', 'SELECT dev, sum(v) FROM batch.ev GROUP BY dev', 'worker');
}

# ---------------------------------------------------------------------------
# Views belong to their creators

reset_trace();
is($su->(q{SELECT string_agg(name || ' ' || owner, ', ' ORDER BY name) FROM kappa_views
		WHERE name IN ('alice.v_sel', 'alice.v_key', 'bob.v_sel')}),
	'alice.v_key alice, alice.v_sel alice, bob.v_sel bob', 'kappa_views.owner is the creator');
my $sel_id = view_id('alice', 'v_sel');
is($su->(qq{SELECT string_agg(c.oid::regclass || ' ' || c.relowner::regrole, ', ' ORDER BY c.oid::regclass::text)
		FROM pg_class c WHERE c.oid IN ('alice.v_sel'::regclass, 'kappa.view_$sel_id'::regclass)}),
	"alice.v_sel alice, kappa.view_$sel_id alice",
	'the user-facing view and its rows table are owned by the creator');
nothing_gained('before reading');
is(query_as('alice', 'SELECT count(*) FROM alice.v_sel'), '4', 'alice reads her view');
is(sqlstate_as('bob', 'SELECT * FROM alice.v_sel'), '42501', 'bob cannot read it (42501)');
is(sqlstate_as('bob', "SELECT * FROM kappa.view_$sel_id"), '42501', 'nor the rows table behind it (42501)');
is(sqlstate_as('carol', 'SELECT * FROM alice.v_sel'), '42501', 'nor can carol, without a grant (42501)');
is(sqlstate_as('alice', 'GRANT SELECT ON alice.v_sel TO carol'), '', 'alice grants SELECT on it to carol');
is(query_as('carol', 'SELECT sum(n) FROM alice.v_sel'), '41', 'carol reads it');
is(sqlstate_as('bob', 'SELECT * FROM alice.v_sel'), '42501', 'bob still cannot (42501)');

# ---------------------------------------------------------------------------
# Other owners' data: hidden

my $as_id = $su->(q{SELECT stream_id FROM kappa.streams WHERE name = 'as'});
my $bs_id = $su->(q{SELECT stream_id FROM kappa.streams WHERE name = 'bs'});
my $win_id = view_id('alice', 'v_win');
is($su->(qq{SELECT count(*) FROM kappa.dead_letters WHERE stream_id = $as_id}) . '/'
	  . $su->(qq{SELECT count(*) FROM kappa.late_events WHERE view_id = $win_id}),
	'1/1', 'alice\'s stream has a dead letter and a late event (seen by a superuser)');
is(query_as('alice', qq{SELECT (SELECT count(*) FROM kappa.dead_letters WHERE stream_id = $as_id) || '/'
		|| (SELECT count(*) FROM kappa.late_events WHERE view_id = $win_id)}),
	'1/1', 'alice sees her dead letter and late event');
is(query_as('bob', qq{SELECT (SELECT count(*) FROM kappa.dead_letters WHERE stream_id = $as_id) || '/'
		|| (SELECT count(*) FROM kappa.late_events WHERE view_id = $win_id)}),
	'0/0', 'bob sees neither (row level security: no rows, no error)');
is(query_as('bob', q{SELECT string_agg(DISTINCT stream_id::text, ',') FROM kappa.dead_letters}), $bs_id,
	'bob sees only his own stream\'s dead letters');
is(query_as('alice', q{SELECT string_agg(DISTINCT stream_id::text, ',') FROM kappa.dead_letters}), $as_id,
	'alice only her own');
is(sqlstate_as('carol', 'SELECT count(*) FROM kappa.dead_letters'), '42501', 'carol cannot read dead letters (42501)');

# Others' streams and views: refused.
nothing_gained('before the refusals');
my %bob_refused = (
	'kappa_produce' => q{SELECT kappa_produce('as', '{}')},
	'kappa_produce (bytea)' => q{SELECT kappa_produce('as', '\x00'::bytea, '\x00'::bytea)},
	'kappa_peek' => q{SELECT * FROM kappa_peek('as', 1)},
	'kappa_drop_stream' => q{SELECT kappa_drop_stream('as', true)},
	'kappa_drop_view' => q{SELECT kappa_drop_view('alice.v_sel')},
	'kappa_replay' => q{SELECT * FROM kappa_replay('alice.v_sel')},
	'kappa_replay with a new query' => q{SELECT * FROM kappa_replay('alice.v_sel', query => $q$SELECT dev, count(*) AS n FROM "as" GROUP BY dev$q$)},
	'kappa_check' => q{SELECT * FROM kappa_check('alice.v_sel')},
	'kappa_wait' => q{SELECT kappa_wait('as', '1 second')},
);
foreach my $what (sort keys %bob_refused)
{
	is(sqlstate_as('bob', $bob_refused{$what}), '42501', "bob: $what on alice's stream or view is refused (42501)");
}
my %carol_refused = (
	'kappa_create_stream' => qq{SELECT kappa_create_stream('cs', brokers => '$b', columns => 'a text')},
	'kappa_create_view' => q{SELECT kappa_create_view('carol.v', $q$SELECT count(*) AS n FROM "as"$q$)},
	'kappa_drop_stream' => q{SELECT kappa_drop_stream('as')},
	'kappa_drop_view' => q{SELECT kappa_drop_view('alice.v_sel')},
	'kappa_produce' => q{SELECT kappa_produce('as', '{}')},
	'kappa_peek' => q{SELECT * FROM kappa_peek('as', 1)},
	'kappa_wait' => q{SELECT kappa_wait('as', '1 second')},
	'kappa_feed' => q{SELECT * FROM kappa_feed('as', 'bob.private_msgs')},
	'kappa_check' => q{SELECT * FROM kappa_check('alice.v_sel')},
	'kappa_replay' => q{SELECT * FROM kappa_replay('alice.v_sel')},
	'kappa_compare' => q{SELECT * FROM kappa_compare('alice.v_sel', 1, 2)},
	'kappa_promote' => q{SELECT kappa_promote('alice.v_sel', 2)},
);
foreach my $what (sort keys %carol_refused)
{
	is(sqlstate_as('carol', $carol_refused{$what}), '42501', "carol (not kappa_admin): $what is refused (42501)");
}
is($su->(q{SELECT count(*) FROM kappa_streams WHERE name = 'as'}) . '/' . $su->("SELECT sum(n) FROM kappa.view_$sel_id"),
	'1/41', 'alice\'s stream and view are still there, unchanged');
nothing_gained('after the refusals');
check_trace('the refusals', backend => 'client backend', may_be_empty => 1);

# ---------------------------------------------------------------------------
# Kafka keys are bytes

my $key_id = view_id('alice', 'v_key');
is($su->(q{SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'alice.v_key'::regclass AND attname = 'k'}), 'bytea', 'kafka_key is bytea');
is(query_as(undef, qq{SELECT string_agg(encode(k, 'hex') || ' ' || n || ' ' || s, ', ' ORDER BY k) FROM kappa.view_$key_id}),
	'616263 1 5, fffe 2 3', 'a key that is not UTF-8 arrives as its bytes');

# ---------------------------------------------------------------------------
# kappa_check: the view's code and to_jsonb's cast, as the owner

reset_trace();
foreach my $name (qw(v_sel v_where v_agg v_types))
{
	is(query_as('alice', "SELECT count(*) FROM kappa_check('alice.$name')"), '0',
		"kappa_check by alice finds no difference in alice.$name");
}
is(query_as('bob', "SELECT count(*) FROM kappa_check('bob.v_sel')"), '0',
	'kappa_check by bob finds no difference in bob.v_sel');
check_trace('kappa_check',
	backend => 'client backend',
	labels => [ 'alice:select', 'alice:where', 'alice:agg-trans', 'alice:cast', 'bob:select' ]);

# A superuser who checks or replays alice's views runs alice's code with
# alice's rights, not his own (as REFRESH MATERIALIZED VIEW does).
foreach my $name (qw(v_sel v_types))
{
	is(query_as(undef, "SELECT count(*) FROM kappa_check('alice.$name')"), '0',
		"kappa_check by a superuser finds no difference in alice.$name");
}
check_trace('kappa_check by a superuser', backend => 'client backend', labels => [ 'alice:select', 'alice:cast' ]);
is(sqlstate_as(undef, q{SELECT * FROM kappa_replay('alice.v_where')}), '', 'a superuser replays alice.v_where');
check_trace('kappa_replay by a superuser', backend => 'client backend', labels => [ 'alice:where' ]);
is(query_as(undef, q{SELECT owner FROM kappa_views WHERE name = 'alice.v_where'}), 'alice',
	'the view replayed by a superuser is still alice\'s');

# ---------------------------------------------------------------------------
# kappa_replay, with the view's query and with a new one

reset_trace();
is(sqlstate_as('alice', q{SELECT * FROM kappa_replay('alice.v_agg')}), '', 'alice replays alice.v_agg');
check_trace('kappa_replay',
	backend => 'client backend', labels => [ 'alice:agg-trans', 'alice:agg-final' ]);
is(sqlstate_as('alice', q{SELECT * FROM kappa_replay('alice.v_sel', query => $q$
		SELECT dev, count(*) AS n, sum(v) AS s, alice.imm('replay-query', dev || sum(v)) AS h
		FROM "as" GROUP BY dev $q$)}), '', 'alice replays alice.v_sel with a new query');
check_trace('kappa_replay with a new query',
	backend => 'client backend', labels => [ 'alice:replay-query' ]);
is(query_as('alice', q{SELECT kappa_wait('as', '60 seconds')}), 't', 'the worker goes on after the replays');
check_trace('the worker after the replays', backend => 'kappa worker', may_be_empty => 1);
check_alice_views('replayed');

# ---------------------------------------------------------------------------
# Versions: kappa_replay(swap => false), kappa_compare, kappa_promote, by
# alice, then by a superuser (alice's code still runs as alice)

# The current version of alice.v_types and the one beside it ('' if none).
sub versions
{
	my $r = query_as(undef, q{SELECT coalesce(max(version) FILTER (WHERE current), 0) || '/'
			|| coalesce(max(version) FILTER (WHERE NOT current), 0)
		FROM kappa_views WHERE version_of = 'alice.v_types'});
	return $r =~ m{^(\d+)/(\d+)$} ? ($1, $2) : (0, 0);
}

foreach my $caller ('alice', undef)
{
	my $who = $caller // 'a superuser';
	reset_trace();
	is(sqlstate_as($caller, q{SELECT * FROM kappa_replay('alice.v_types', swap => false)}), '',
		"$who builds a new version of alice.v_types beside it");
	check_trace("kappa_replay(swap => false) by $who", backend => 'client backend', labels => [ 'alice:types' ]);
	my ($cur, $new) = versions();
	ok($new > $cur, "version $new is beside version $cur");
	is(query_as('alice', q{SELECT kappa_wait('as', '60 seconds')}), 't', 'the worker keeps both versions');
	check_trace("the worker with two versions ($who)", backend => 'kappa worker', may_be_empty => 1);
	check_exact('alice', qq{alice."v_types\@v$new"}, $oracle{v_types}[0], $oracle{v_types}[1], "version $new");
	is($su->(qq{SELECT owner FROM kappa_views WHERE name = 'alice."v_types\@v$new"'}), 'alice',
		"version $new is alice's");
	is(sqlstate_as('bob', qq{SELECT * FROM alice."v_types\@v$new"}), '42501',
		"bob cannot read version $new (42501)");
	is(sqlstate_as('bob', "SELECT count(*) FROM kappa_compare('alice.v_types', $cur, $new)"), '42501',
		'bob: kappa_compare on alice\'s view is refused (42501)');
	is(sqlstate_as('bob', "SELECT kappa_promote('alice.v_types', $new)"), '42501',
		'bob: kappa_promote on alice\'s view is refused (42501)');
	reset_trace();
	is(query_as($caller, "SELECT count(*) FROM kappa_compare('alice.v_types', $cur, $new)"), '0',
		"kappa_compare by $who: the versions are equal");
	check_trace("kappa_compare by $who", backend => 'client backend', labels => [ 'alice:cast' ]);
	is(sqlstate_as($caller, "SELECT kappa_promote('alice.v_types', $new)"), '', "$who promotes version $new");
	check_trace("kappa_promote by $who", backend => 'client backend', may_be_empty => 1);
	is($su->(q{SELECT string_agg(name || ' v' || version || ' ' || owner, ', ') FROM kappa_views
			WHERE version_of = 'alice.v_types'}), "alice.v_types v$new alice", 'the promoted version is alice\'s, alone');
	check_exact('alice', 'alice.v_types', $oracle{v_types}[0], $oracle{v_types}[1], "promoted by $who");
}

# ---------------------------------------------------------------------------
# Crash: the views are rebuilt from the log, by the worker, as the owner

reset_trace();
my $pid = $su->(q{SELECT pid FROM kappa_workers WHERE stream = 'as'});
like($pid, qr/^\d+$/, 'the worker of stream as runs');
my $log_offset = -s $node->logfile;
kill 'KILL', $pid if $pid =~ /^\d+$/;
ok( wait_until(
		sub {
			return query_as(undef, "SELECT count(*) FROM kappa_workers WHERE stream = 'as' "
				  . 'AND pid IS NOT NULL AND pid <> ' . ($pid || 0)) eq '1';
		},
		60),
	'after a kill -9 of the worker, the server reinitialized and the worker is back');
foreach my $s ([ 'alice', 'as' ], [ 'bob', 'bs' ])
{
	is(query_as($s->[0], "SELECT kappa_wait('$s->[1]', '60 seconds')"), 't', "stream $s->[1] consumed again");
}
ok(log_contains($node, qr/lost its state to crash recovery or a failover; rebuilding it/, $log_offset),
	'the worker rebuilt the views from the log');
check_trace('crash rebuild',
	backend => 'kappa worker',
	# alice.v_sel runs the query kappa_replay gave it above ('replay-query')
	labels => [ 'alice:replay-query', 'alice:where', 'alice:agg-trans', 'alice:agg-final', 'alice:types',
		'bob:select' ]);
check_alice_views('rebuilt');
check_exact('bob', 'bob.v_sel', 'dev, n, s', 'SELECT dev, count(*), sum(v) FROM batch.bev GROUP BY dev', 'rebuilt');

# ---------------------------------------------------------------------------
# Errors: never the secret file's content; only the SQLSTATE for others

is(sqlstate_as('alice', q{
	SELECT kappa_create_view('alice.v_pr_secret',
		$q$SELECT dev, count(*) AS n FROM pr WHERE alice.read_secret(dev) > 0 GROUP BY dev$q$);
	SELECT kappa_create_view('alice.v_pr_revoked',
		$q$SELECT dev, count(*) AS n FROM pr WHERE bob.shared(dev) = 1 GROUP BY dev$q$);
	SELECT kappa_create_view('alice.v_pr_ok', $q$SELECT dev, count(*) AS n, sum(v) AS s FROM pr GROUP BY dev$q$);
	}), '', 'alice creates three views over pr: one reads the secret file, one uses bob\'s function');
is(sqlstate_as('bob', q{REVOKE EXECUTE ON FUNCTION bob.shared(text) FROM alice}), '',
	'bob revokes alice\'s right to his function');
# The worker may have prepared the view before the REVOKE: a worker that
# starts after it must not run the view with rights alice no longer has.
my $pr_pid = $su->(q{SELECT pid FROM kappa_workers WHERE stream = 'pr'});
$su->("SELECT pg_terminate_backend($pr_pid)") if $pr_pid =~ /^\d+$/;
ok( wait_until(
		sub {
			query_as(undef, "SELECT count(*) FROM kappa_workers WHERE stream = 'pr' AND pid IS NOT NULL AND pid <> "
				  . ($pr_pid || 0)) eq '1';
		},
		60),
	'the worker of pr starts again after the REVOKE');
my $pr_failures = query_as(undef, q{SELECT coalesce(max(failures), 0) FROM kappa_workers WHERE stream = 'pr'});
is(query_as('alice', q{SELECT count(*) FROM generate_series(1, 3) i,
		LATERAL kappa_produce('pr', json_build_object('dev', 'p' || (i % 2), 'v', i)::text) p}),
	'3', 'alice produces three events to pr');
ok( wait_until(
		sub {
			query_as(undef, qq{SELECT (SELECT count(*) FROM kappa_views
					WHERE name IN ('alice.v_pr_secret', 'alice.v_pr_revoked') AND status <> 'live') = 2
				OR (SELECT max(failures) FROM kappa_workers WHERE stream = 'pr') > $pr_failures}) eq 't';
		},
		60),
	'the worker of pr has met the views\' errors');
is($su->(q{SELECT string_agg(name || ' ' || status, ', ' ORDER BY name) FROM kappa_views WHERE stream = 'pr'}),
	'alice.v_pr_ok live, alice.v_pr_revoked failed, alice.v_pr_secret failed',
	'both views that met a permission error failed (pg_read_file as alice; a revoked right), not the third');
ok( wait_until(sub { query_as('alice', 'SELECT sum(n) FROM alice.v_pr_ok') eq '3' }, 30),
	'the stream and its other view go on');
is(query_as('alice', q{SELECT string_agg(name || ' ' || (status_detail LIKE 'SQLSTATE %'), ', ' ORDER BY name)
		FROM kappa_views WHERE stream = 'pr' AND status_detail IS NOT NULL}),
	'alice.v_pr_revoked false, alice.v_pr_secret false', 'alice sees the errors in full');
is(query_as('bob', q{SELECT string_agg(name || ' ' || status_detail, ', ' ORDER BY name)
		FROM kappa_views WHERE stream = 'pr' AND status_detail IS NOT NULL}),
	'alice.v_pr_revoked SQLSTATE 42501, alice.v_pr_secret SQLSTATE 42501', 'bob sees only their SQLSTATE');
is(query_as('bob', q{SELECT count(*) FROM kappa_stats WHERE stream = 'pr'
		AND last_error IS NOT NULL AND last_error !~ '^SQLSTATE [0-9A-Z]{5}$'}),
	'0', 'and in kappa_stats, only SQLSTATEs');

# The stream that cannot reach its brokers.
ok(wait_until(sub { query_as(undef, q{SELECT max(failures) > 0 FROM kappa_workers WHERE stream = 'dead'}) eq 't' }, 60),
	'the worker of stream dead failed');
my $dead_state = query_as(undef, q{SELECT last_sqlstate FROM kappa_workers WHERE stream = 'dead' AND last_sqlstate IS NOT NULL LIMIT 1});
like($dead_state, qr/^[0-9A-Z]{5}$/, "kappa_workers.last_sqlstate is a SQLSTATE ($dead_state)");
foreach my $role (undef, 'alice')
{
	is(query_as($role, q{SELECT count(*) FROM kappa_workers WHERE stream = 'dead'
			AND last_error IS NOT NULL AND last_error NOT LIKE 'SQLSTATE %'}) > 0 ? 'full' : 'masked',
		'full', ($role // 'a superuser') . ' sees the worker\'s last_error in full');
}
foreach my $role ('bob', 'carol')
{
	is(query_as($role, q{SELECT string_agg(DISTINCT last_error || ' ' || last_sqlstate, ', ') FROM kappa_workers
			WHERE stream = 'dead' AND last_error IS NOT NULL}),
		"SQLSTATE $dead_state $dead_state", "$role sees only its SQLSTATE, and last_sqlstate");
}
# Nobody sees the secret file's content anywhere.
foreach my $role (undef, 'alice', 'bob', 'carol')
{
	is(query_as($role, qq{SELECT (SELECT count(*) FROM kappa_workers WHERE last_error LIKE '%$secret%')
			+ (SELECT count(*) FROM kappa_stats WHERE last_error LIKE '%$secret%')
			+ (SELECT count(*) FROM kappa_views WHERE status_detail LIKE '%$secret%')}),
		'0', 'no error text holds the secret file\'s content, for ' . ($role // 'a superuser'));
}
nothing_gained('the secret file');
reset_trace();

# ---------------------------------------------------------------------------
# kappa_feed: the cursor and the views' code run as the caller

$su->(q{ALTER SYSTEM SET kappa.enabled = off; SELECT pg_reload_conf()});
ok(wait_until(sub { query_as(undef, q{SELECT count(*) FROM kappa_workers WHERE pid IS NOT NULL}) eq '0' }, 60),
	'the workers are stopped for kappa_feed');
reset_trace();
is(sqlstate_as('alice', qq{
	SELECT kappa_create_stream('fs', topic => 'fs', brokers => '$b',
		columns => 'dev text, ts timestamptz NOT NULL, v int', event_time => 'ts');
	SELECT kappa_create_view('alice.v_feed', \$q\$SELECT dev, count(*) AS n, sum(v) AS s,
		alice.imm('feed-select', dev || count(*)) AS h
		FROM fs WHERE alice.imm('feed-where', dev || v) = 1 GROUP BY dev\$q\$);
	CREATE TABLE alice.msgs AS
	SELECT 0 AS partition, i::bigint AS "offset",
		json_build_object('dev', 'f' || (i % 3), 'ts', timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s',
			'v', i)::text AS payload
	FROM generate_series(0, 19) i;
	-- the cursor kappa_feed reads calls alice's code too
	CREATE VIEW alice.msgs_hostile AS SELECT * FROM alice.msgs WHERE alice.hostile('feed-cursor') = 1;
	}), '', 'alice creates stream fs, a view, and her messages');
is(sqlstate_as('bob', q{SELECT * FROM kappa_feed('fs', 'bob.private_msgs')}), '42501',
	'bob: kappa_feed on alice\'s stream is refused (42501)');
is(sqlstate_as('alice', q{SELECT * FROM kappa_feed('fs', 'bob.private_msgs')}), '42501',
	'alice: kappa_feed from bob\'s table, which she may not read, is refused (42501)');
is(query_as('alice', q{SELECT messages_read FROM kappa_feed('fs', 'alice.msgs_hostile')}), '20',
	'alice feeds her messages');
check_trace('kappa_feed',
	backend => 'client backend', labels => [ 'alice:feed-cursor', 'alice:feed-select', 'alice:feed-where' ]);
check_exact('alice', 'alice.v_feed', 'dev, n, s',
	q{SELECT payload::json->>'dev', count(*), sum((payload::json->>'v')::int) FROM alice.msgs GROUP BY 1}, 'fed');
$su->(q{ALTER SYSTEM RESET kappa.enabled; SELECT pg_reload_conf()});
is(sqlstate_as('alice', q{SELECT kappa_drop_stream('fs', true)}), '', 'alice drops stream fs and its view');

# ---------------------------------------------------------------------------
# The owner drops her views and streams; the database dumps and restores

is(query_as('alice', q{SELECT kappa_wait('as', '60 seconds')}), 't', 'the workers are back');
check_trace('the worker after the feed', backend => 'kappa worker', may_be_empty => 1);
$sel_id = view_id('alice', 'v_sel');
is(sqlstate_as('alice', q{SELECT kappa_drop_view('alice.v_sel')}), '', 'alice drops her view alice.v_sel');
is($su->(q{SELECT count(*) FROM kappa_views WHERE name = 'alice.v_sel'}) . '/'
	  . $su->(qq{SELECT count(*) FROM pg_class WHERE relname IN ('v_sel', 'view_$sel_id')
			AND relnamespace IN ('alice'::regnamespace, 'kappa'::regnamespace)}),
	'0/0', 'it is gone, with its rows table');
is(sqlstate_as('alice', q{SELECT kappa_drop_stream('as', true); SELECT kappa_drop_stream('pr', true);
		SELECT kappa_drop_stream('dead')}), '', 'alice drops her streams as, pr, dead with their views');
# (Had that failed, the dump would hold rows of alice's domain, whose CHECK
# runs alice's code as whoever restores them: Postgres's rule, not kappa's.)
query_as(undef, q{SELECT kappa_drop_stream(name, true) FROM kappa.streams WHERE name IN ('as', 'pr', 'dead', 'fs')});

my $dump = "$dir/dump.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ], 'pg_dump of the database');
$su->('CREATE DATABASE restored');
my ($rc, $out, $err) = $node->psql('restored', "\\set VERBOSITY verbose\n\\i $dump");
is($rc, 0, 'the dump restores into another database without an error');
note $err if $rc != 0;
($rc, $out, $err) = $node->psql('restored', qq{SELECT string_agg(encode(k, 'hex') || ' ' || n, ', ' ORDER BY k) FROM kappa.view_$key_id});
is($out,
	'616263 1, fffe 2', 'the non-UTF-8 key round-trips');
nothing_gained('the end');

$node->stop;
stop_broker($broker);
done_testing();
