# HAVING and top N (ORDER BY ... LIMIT) in kappa views, applied when the
# view is read.  The rows table keeps every group, exactly; the user-facing
# view shows the groups HAVING accepts and, of those, the top N of each
# window (of all groups in a view without windows).  LIMIT n keeps n groups
# per window, ties broken by the GROUP BY columns in ascending order; FETCH
# FIRST n ROWS WITH TIES keeps every group that ties with the n-th.
#
# After every round of events, each view equals its query as batch SQL
# over a table of the same events, with the per-window top N written as a
# window function (row_number for LIMIT, rank for WITH TIES), compared
# with EXCEPT both ways; the data has ties at the cut, and a group that
# HAVING rejects in one round passes it in the next.  The views belong to
# a kappa_admin member (not a superuser), and a plain role granted SELECT
# reads them.  kappa_check compares the stored groups (all of them);
# kappa_replay (with the same query, with a new one, and beside the
# current version, then promoted) keeps the user-facing view filtering.
# What stays unsupported is refused with SQLSTATE 0A000 and a hint.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('h:2', 'f:1', 'fs:1');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('having', conf => "kappa.flush_interval = '100ms'\n");

$node->safe_psql('postgres', q{
	CREATE ROLE hv LOGIN IN ROLE kappa_admin;
	CREATE ROLE reader LOGIN;
	GRANT CREATE ON SCHEMA public TO hv;
	CREATE TABLE ev (p int, k text, i int, ts timestamptz);
	GRANT SELECT ON ev TO PUBLIC;
	-- the SQLSTATE and hint of a statement's error, or 'ok'
	CREATE FUNCTION try(q text) RETURNS text LANGUAGE plpgsql AS $$
	DECLARE s text; h text;
	BEGIN
		EXECUTE q;
		RETURN 'ok';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, h = PG_EXCEPTION_HINT;
		RETURN s || ': ' || h;
	END $$;
});

my $tumble = q{date_bin('1 minute', ts, timestamptz '2000-01-01')};
my %q = (
	# HAVING over an aggregate that is not in the select list
	busy => q{SELECT k, w.window_start, w.window_end, sum(i) AS s
		FROM h, kappa_tumble(ts, '1 minute') w
		GROUP BY k, w.window_start, w.window_end HAVING count(*) > 3},
	# the top 3 groups of each window by count: LIMIT, ties broken by k
	top3 => q{SELECT k, w.window_start, count(*) AS n
		FROM h, kappa_tumble(ts, '1 minute') w
		GROUP BY k, w.window_start ORDER BY count(*) DESC LIMIT 3},
	# the same with ties kept
	top3t => q{SELECT k, w.window_start, count(*) AS n
		FROM h, kappa_tumble(ts, '1 minute') w
		GROUP BY k, w.window_start ORDER BY count(*) DESC FETCH FIRST 3 ROWS WITH TIES},
	# hopping windows: HAVING, and ORDER BY a hidden aggregate and a shown one
	hopping => q{SELECT k, w.window_start, w.window_end, max(i) AS top
		FROM h, kappa_hop(ts, '2 minutes', '1 minute') w
		GROUP BY k, w.window_start, w.window_end HAVING min(i) % 2 = 0
		ORDER BY count(*) DESC, max(i) LIMIT 2},
	# no windows: the global top 2
	leaders => q{SELECT k, sum(i) AS total, count(*) AS n FROM h GROUP BY k
		HAVING count(*) > 1 ORDER BY n DESC LIMIT 2},
);
my %batch = (
	busy => qq{SELECT k, $tumble AS window_start, $tumble + interval '1 minute' AS window_end, sum(i) AS s
		FROM ev GROUP BY 1, 2, 3 HAVING count(*) > 3},
	top3 => qq{SELECT k, window_start, n FROM (
			SELECT k, $tumble AS window_start, count(*) AS n,
				row_number() OVER (PARTITION BY $tumble ORDER BY count(*) DESC, k) AS rn
			FROM ev GROUP BY 1, 2) x WHERE rn <= 3},
	top3t => qq{SELECT k, window_start, n FROM (
			SELECT k, $tumble AS window_start, count(*) AS n,
				rank() OVER (PARTITION BY $tumble ORDER BY count(*) DESC) AS rn
			FROM ev GROUP BY 1, 2) x WHERE rn <= 3},
	hopping => qq{WITH g AS (
			SELECT k, s.ws AS window_start, s.ws + interval '2 minutes' AS window_end,
				max(i) AS top, count(*) AS n, min(i) AS low
			FROM ev, LATERAL (SELECT $tumble - h * interval '1 minute' AS ws
				FROM generate_series(0, 1) h) s
			GROUP BY 1, 2, 3)
		SELECT k, window_start, window_end, top FROM (
			SELECT *, row_number() OVER (PARTITION BY window_start ORDER BY n DESC, top, k) AS rn
			FROM g WHERE low % 2 = 0) x WHERE rn <= 2},
	# the view's own query, with LIMIT's tie-break written out
	leaders => q{SELECT k, sum(i) AS total, count(*) AS n FROM ev GROUP BY k
		HAVING count(*) > 1 ORDER BY n DESC, k LIMIT 2},
);

$node->safe_psql('postgres', qq{
	SET ROLE hv;
	SELECT kappa_create_stream('h', topic => 'h', brokers => '$b',
		columns => 'p int, k text, i int, ts timestamptz NOT NULL', event_time => 'ts',
		watermark => '1 hour');
});
foreach my $v (sort keys %q)
{
	$node->safe_psql('postgres', qq{SET ROLE hv;
		SELECT kappa_create_view('$v', \$q\$$q{$v}\$q\$);
		GRANT SELECT ON $v TO reader;});
}

# A stream of the same events whose windows become final (watermark 1
# second), with a top-N view and a sink of its final rows: the sink sends
# what the user-facing view shows of each final window.
$node->safe_psql('postgres', qq{
	SET ROLE hv;
	SELECT kappa_create_stream('hf', topic => 'f', brokers => '$b',
		columns => 'p int, k text, i int, ts timestamptz NOT NULL', event_time => 'ts',
		watermark => '1 second');
	SELECT kappa_create_view('ftop', \$q\$SELECT k, w.window_start, w.window_end, count(*) AS n
		FROM hf, kappa_tumble(ts, '1 minute') w
		GROUP BY k, w.window_start, w.window_end HAVING count(*) > 1
		ORDER BY count(*) DESC LIMIT 2\$q\$);
	SELECT kappa_create_sink('ftop_final', 'ftop', 'fs', emit => 'final');
});

# Round r: keys a..f, in minutes 2(r-1) .. 2(r-1)+5 (so that rounds add
# to each other's windows), 1 to 4 events per key and minute, which makes
# ties; spread over both partitions.
my $round = 0;
sub produce
{
	$round++;
	$node->safe_psql('postgres', qq{
		INSERT INTO ev
		SELECT n % 2, chr(97 + j), $round * 100000 + n,
			timestamptz '2026-04-01 00:00:00+00' + (2 * ($round - 1) + m) * interval '1 minute'
				+ ((n * 7) % 60) * interval '1 second'
		FROM (SELECT j, m, row_number() OVER (ORDER BY m, j, c) AS n
			FROM generate_series(0, 5) j, generate_series(0, 5) m,
				LATERAL generate_series(1, (j * 5 + m * 3 + $round) % 4 + 1) c) e});
	foreach my $p (0, 1)
	{
		my $file = "$dir/r$round-p$p.txt";
		$node->safe_psql('postgres', qq{
			COPY (SELECT json_build_object('p', p, 'k', k, 'i', i, 'ts', ts)::text FROM ev
				WHERE p = $p AND i / 100000 = $round ORDER BY i) TO '$file'});
		IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'h', '-p', $p, '-l', $file ]) or die "kcat failed";
	}
	my $file = "$dir/r$round-f.txt";
	$node->safe_psql('postgres', qq{
		COPY (SELECT json_build_object('p', p, 'k', k, 'i', i, 'ts', ts)::text FROM ev
			WHERE i / 100000 = $round ORDER BY ts, i) TO '$file'});
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'f', '-p', 0, '-l', $file ]) or die "kcat failed";
	is($node->safe_psql('postgres', q{SELECT kappa_wait('h', '60 seconds')}), 't', "round $round consumed");
	is($node->safe_psql('postgres', q{SELECT kappa_wait('hf', '60 seconds')}), 't', "round $round consumed by hf");
	return;
}

# A view (read as role) against its batch query: counts, and EXCEPT both ways.
sub same
{
	my ($v, $role, $what) = @_;
	is($node->safe_psql('postgres', qq{SET ROLE $role;
		WITH l AS (SELECT * FROM $v), b AS ($batch{$v})
		SELECT (SELECT count(*) FROM l) = (SELECT count(*) FROM b),
			(SELECT count(*) FROM (SELECT * FROM l EXCEPT SELECT * FROM b) d),
			(SELECT count(*) FROM (SELECT * FROM b EXCEPT SELECT * FROM l) d),
			(SELECT count(*) FROM l) > 0}),
		't|0|0|t', "$v equals its batch query ($what)");
	return;
}

# The stored groups of a view (its rows table, every group).
sub stored
{
	my ($v) = @_;
	return $node->safe_psql('postgres', "SELECT rows_table FROM kappa_views WHERE name = 'public.$v'");
}

produce();
same($_, 'hv', 'round 1') foreach sort keys %q;
same('busy', 'reader', 'round 1, read by a plain role');

# The data has ties at the cut: windows whose 3rd and 4th groups have the
# same count.  LIMIT keeps 3 of them (the first by k), WITH TIES all.
my $tied = qq{SELECT count(*) FROM (
	SELECT ws, n, rank() OVER (PARTITION BY ws ORDER BY n DESC) AS r,
		row_number() OVER (PARTITION BY ws ORDER BY n DESC, k) AS rn
	FROM (SELECT k, $tumble AS ws, count(*) AS n FROM ev GROUP BY 1, 2) g) x
	WHERE rn = 4 AND r <= 3};
ok($node->safe_psql('postgres', $tied) > 0, 'some windows tie at the third place');
is($node->safe_psql('postgres', q{SET ROLE hv;
	SELECT count(*) FILTER (WHERE c > 3), count(*) FILTER (WHERE c = 3) > 0
	FROM (SELECT window_start, count(*) AS c FROM top3 GROUP BY 1) x}),
	'0|t', 'LIMIT 3 keeps three groups of a window, never more');
is($node->safe_psql('postgres', q{SET ROLE hv;
	SELECT count(*) > 0 FROM (SELECT window_start FROM top3t GROUP BY 1 HAVING count(*) > 3) x}),
	't', 'WITH TIES keeps the groups that tie with the third');
is($node->safe_psql('postgres', qq{SET ROLE hv;
	WITH g AS (SELECT k, $tumble AS window_start, count(*) AS n FROM ev GROUP BY 1, 2)
	SELECT count(*) FROM top3 a JOIN g x USING (window_start)
	WHERE (x.n > a.n OR (x.n = a.n AND x.k < a.k))
		AND NOT EXISTS (SELECT FROM top3 c WHERE c.window_start = x.window_start AND c.k = x.k)}),
	'0', 'no group left out ranks before one kept: ties are broken by the key');

# The rows table keeps the groups HAVING rejects; the user-facing view
# shows the select list only.
my $busy_rows = stored('busy');
ok($node->safe_psql('postgres', "SELECT count(*) FROM $busy_rows")
	  > $node->safe_psql('postgres', 'SELECT count(*) FROM busy'),
	'the rows table keeps the groups HAVING rejects');
is($node->safe_psql('postgres', q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = 'busy'::regclass AND attnum > 0}),
	'k,window_start,window_end,s', 'the user-facing view shows the select list');
is($node->safe_psql('postgres', qq{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = '${\ stored('hopping')}'::regclass AND attnum > 0}),
	'k,window_start,window_end,top,kappa_order_1,kappa_having',
	'the rows table holds the hidden ORDER BY and HAVING columns');

# Groups HAVING rejects now, which the next round's events make pass.
$node->safe_psql('postgres', qq{CREATE TABLE below AS
	SELECT k, $tumble AS window_start FROM ev GROUP BY 1, 2 HAVING count(*) <= 3});
produce();
same($_, 'hv', 'round 2') foreach sort keys %q;
is($node->safe_psql('postgres', qq{
	SELECT count(*) > 0, count(*) = count(b.k) FROM below
	JOIN (SELECT k, $tumble AS window_start FROM ev GROUP BY 1, 2 HAVING count(*) > 3) n USING (k, window_start)
	LEFT JOIN busy b USING (k, window_start)}),
	't|t', 'groups that cross the HAVING threshold appear in the view');

# kappa_check compares the stored groups, all of them, with the log.
foreach my $v (sort keys %q)
{
	is($node->safe_psql('postgres', "SET ROLE hv; SELECT count(*) FROM kappa_check('$v')"), '0',
		"kappa_check('$v') finds no difference");
}

# Replays: the same query, a new one (LIMIT 2), one without ORDER BY and
# LIMIT, and a version kept beside and then promoted.
$node->safe_psql('postgres', q{SET ROLE hv; SELECT kappa_replay('busy')});
same('busy', 'hv', 'replayed');
same('busy', 'reader', 'replayed, read by a plain role');
like($node->safe_psql('postgres', q{SELECT pg_get_viewdef('busy')}), qr/kappa_having/,
	'the replayed view still filters by HAVING');

$q{top3} =~ s/LIMIT 3/LIMIT 2/;
$batch{top3} =~ s/rn <= 3/rn <= 2/;
$node->safe_psql('postgres', qq{SET ROLE hv; SELECT kappa_replay('top3', query => \$q\$$q{top3}\$q\$)});
same('top3', 'hv', 'replayed with LIMIT 2');
same('top3', 'reader', 'replayed with LIMIT 2, read by a plain role');

$q{leaders} = q{SELECT k, sum(i) AS total, count(*) AS n FROM h GROUP BY k};
$batch{leaders} = q{SELECT k, sum(i) AS total, count(*) AS n FROM ev GROUP BY k};
$node->safe_psql('postgres', qq{SET ROLE hv; SELECT kappa_replay('leaders', query => \$q\$$q{leaders}\$q\$)});
same('leaders', 'hv', 'replayed without HAVING and LIMIT');

$node->safe_psql('postgres', q{SET ROLE hv; SELECT kappa_replay('top3t', swap => false)});
is($node->safe_psql('postgres', q{SET ROLE hv;
	SELECT count(*) FROM (SELECT * FROM top3t EXCEPT SELECT * FROM "top3t@v2") a}), '0',
	'the version beside reads the same groups');
$node->safe_psql('postgres', q{SET ROLE hv; SELECT kappa_promote('top3t', 2)});
same('top3t', 'reader', 'promoted');

# More events after the replays: the new versions go on.
produce();
same($_, 'hv', 'round 3') foreach sort keys %q;
same($_, 'reader', 'round 3, read by a plain role') foreach qw(busy top3 top3t);
foreach my $v (sort keys %q)
{
	is($node->safe_psql('postgres', "SET ROLE hv; SELECT count(*) FROM kappa_check('$v')"), '0',
		"kappa_check('$v') after round 3");
}

# The final sink sent, once, each final window's rows as the user-facing
# view shows them: HAVING applied, at most 2 groups per window.
ok(wait_until(sub { $node->safe_psql('postgres',
		q{SELECT pending = 0 AND sent > 0 AND last_error IS NULL FROM kappa_sinks WHERE name = 'ftop_final'}) eq 't' }, 60),
	'the final sink sent everything');
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'kcat', '-C', '-b', $b, '-t', 'fs', '-e', '-q', '-X', 'isolation.level=read_committed',
		'-f', "%s\n" ], '>', \$out, '2>', \$err) or die "kcat -C failed: $err";
	my $messages = join ',', map { "\$m\$$_\$m\$" } grep { $_ ne '' } split /\n/, $out;
	is($node->safe_psql('postgres', qq{SET ROLE hv;
		WITH m AS (SELECT (x::jsonb)->'row' AS r FROM unnest(ARRAY[$messages]::text[]) x),
		sent AS (SELECT r->>'k' AS k, (r->>'window_start')::timestamptz AS window_start,
			(r->>'window_end')::timestamptz AS window_end, (r->>'n')::bigint AS n FROM m),
		v AS (SELECT * FROM ftop WHERE window_end <= kappa_final_until('ftop'))
		SELECT (SELECT count(*) FROM sent) = (SELECT count(DISTINCT (k, window_start)) FROM sent),
			(SELECT count(*) FROM (SELECT * FROM sent EXCEPT SELECT * FROM v) a),
			(SELECT count(*) FROM (SELECT * FROM v EXCEPT SELECT * FROM sent) b),
			(SELECT count(*) FROM v) > 0,
			(SELECT count(*) FROM (SELECT window_start FROM sent GROUP BY 1 HAVING count(*) > 2) c),
			(SELECT count(*) FROM sent WHERE n <= 1),
			(SELECT count(*) FROM m WHERE r ? 'kappa_having' OR r ? 'kappa_order_1')}),
		't|0|0|t|0|0|0', 'the final sink sent each final window once, as the view shows it');
}

# What stays unsupported: SQLSTATE and hint.
my %refused = (
	'OFFSET' => [ q{SELECT k, count(*) AS n FROM h GROUP BY k ORDER BY n DESC LIMIT 2 OFFSET 1}, '0A000' ],
	'ORDER BY alone' => [ q{SELECT k, count(*) AS n FROM h GROUP BY k ORDER BY n DESC}, '0A000' ],
	'LIMIT alone' => [ q{SELECT k, count(*) AS n FROM h GROUP BY k LIMIT 2}, '0A000' ],
	'LIMIT of sessions' => [ q{SELECT k, w.window_start, count(*) AS n FROM h, kappa_session(ts, '1 minute') w
		GROUP BY k, w.window_start ORDER BY n DESC LIMIT 2}, '0A000' ],
	'LIMIT 0' => [ q{SELECT k, count(*) AS n FROM h GROUP BY k ORDER BY n DESC LIMIT 0}, '2201W' ],
	'LIMIT ALL' => [ q{SELECT k, count(*) AS n FROM h GROUP BY k ORDER BY n DESC LIMIT ALL}, '2201W' ],
	'a reserved name' => [ q{SELECT k, count(*) AS kappa_rank FROM h GROUP BY k ORDER BY 2 LIMIT 1}, '42701' ],
);
foreach my $what (sort keys %refused)
{
	my ($query, $state) = @{ $refused{$what} };
	like($node->safe_psql('postgres', qq{SET ROLE hv;
		SELECT try(\$t\$SELECT kappa_create_view('x', \$q\$$query\$q\$)\$t\$)}),
		qr/^$state: \S/, "$what is refused with $state and a hint");
}

# The user-facing views, as kappa made them (in the test's log).
note("$_: " . $node->safe_psql('postgres', "SELECT pg_get_viewdef('$_')")) foreach qw(hopping top3t);

# Dropped with kappa_drop_view or a plain DROP VIEW (the event trigger),
# a view with hidden columns leaves nothing behind.
my ($busy_table, $top3_table) = (stored('busy'), stored('top3'));
$node->safe_psql('postgres', q{SET ROLE hv; SELECT kappa_drop_view('busy'); DROP VIEW top3});
is($node->safe_psql('postgres', qq{
	SELECT (SELECT count(*) FROM kappa.views WHERE view_name IN ('busy', 'top3')),
		to_regclass('$busy_table') IS NULL AND to_regclass('$top3_table') IS NULL}),
	'0|t', 'dropped views leave no catalog row and no rows table');

$node->stop;
stop_broker($broker);
done_testing();
