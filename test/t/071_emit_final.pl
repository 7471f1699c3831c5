# A view with {"emit": "final"} writes a window's row once, when the window
# is final, and never a partial one.  After every round of events, its rows
# are exactly the batch query's rows of the windows that end by
# kappa_final_until (tumbling, hopping and session windows, with events out
# of order and sessions that merge), the same as the rows of the same query
# without the option; a trigger on its rows table counts every write, and
# each row was inserted once and never updated or deleted, and a changes
# sink sends one message per final window.  A clean
# restart between rounds keeps the open windows' states and still writes
# each row once; kappa_check and kappa_replay agree.  With dedup, a
# retention, a message its type rejects and events the view's code fails
# on (division by zero), the final rows are still the batch query's over
# the distinct events it can apply.  The option is refused on a view
# without windows and with a value other than "updates" or "final"
# (SQLSTATE 22023).
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('e:2', 'd:1');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('emit', conf => "kappa.flush_interval = '100ms'\n");

$node->safe_psql('postgres', q{
	CREATE ROLE em LOGIN IN ROLE kappa_admin;
	GRANT CREATE ON SCHEMA public TO em;
	CREATE TABLE ev (p int, k int, i int, ts timestamptz);
	GRANT SELECT ON ev TO PUBLIC;
});

# Each view, and its batch query over ev with the end of its windows (the
# window_end column, or for sessions the last event plus the gap).
my %q = (
	per_min => q{SELECT k, w.window_start, w.window_end, count(*) AS n, sum(i) AS s
		FROM e, kappa_tumble(ts, '1 minute') w GROUP BY k, w.window_start, w.window_end},
	hopping => q{SELECT k, w.window_start, w.window_end, count(*) AS n, max(i) AS top
		FROM e, kappa_hop(ts, '3 minutes', '1 minute') w GROUP BY k, w.window_start, w.window_end},
	visits => q{SELECT k, w.window_start, w.window_end, count(*) AS n, min(i) AS first_i
		FROM e, kappa_session(ts, '2 minutes') w GROUP BY k, w.window_start, w.window_end},
);
my %batch = (
	per_min => q{SELECT k, date_bin('1 minute', ts, timestamptz '2000-01-01') AS window_start,
			date_bin('1 minute', ts, timestamptz '2000-01-01') + interval '1 minute' AS window_end,
			count(*) AS n, sum(i) AS s
		FROM ev GROUP BY 1, 2, 3},
	hopping => q{SELECT k, s.window_start, s.window_start + interval '3 minutes' AS window_end,
			count(*) AS n, max(i) AS top
		FROM ev, LATERAL (SELECT date_bin('1 minute', ts, timestamptz '2000-01-01') - h * interval '1 minute'
			AS window_start FROM generate_series(0, 2) h) s
		GROUP BY 1, 2, 3},
	visits => q{WITH o AS (
			SELECT k, i, ts, CASE WHEN ts - lag(ts) OVER (PARTITION BY k ORDER BY ts, i)
				< interval '2 minutes' THEN 0 ELSE 1 END AS brk FROM ev),
		g AS (SELECT k, i, ts, sum(brk) OVER (PARTITION BY k ORDER BY ts, i) AS sid FROM o)
		SELECT k, min(ts) AS window_start, max(ts) + interval '2 minutes' AS window_end,
			count(*) AS n, min(i) AS first_i
		FROM g GROUP BY k, sid},
);

$node->safe_psql('postgres', qq{
	SET ROLE em;
	SELECT kappa_create_stream('e', topic => 'e', brokers => '$b',
		columns => 'p int, k int, i int, ts timestamptz NOT NULL', event_time => 'ts',
		watermark => '2 minutes', idle_timeout => '1 hour');
});
foreach my $v (sort keys %q)
{
	$node->safe_psql('postgres', qq{
		SET ROLE em;
		SELECT kappa_create_view('$v', \$q\$$q{$v}\$q\$, '{"emit": "final"}');
		SELECT kappa_create_view('${v}_updates', \$q\$$q{$v}\$q\$);
	});
}
# A changes sink on the emit-final tumbling view: one message per window.
$node->safe_psql('postgres', q{SET ROLE em; SELECT kappa_create_sink('pm_changes', 'per_min', 'pmc', emit => 'changes')});

# Every write into each emit-final view's rows table, counted by a trigger
# (the rows tables are kappa's; a superuser may watch them).
$node->safe_psql('postgres', q{
	CREATE TABLE writes (view text, op text, k int, window_start timestamptz);
	CREATE FUNCTION note_write() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.writes VALUES (TG_ARGV[0], TG_OP,
			CASE WHEN TG_OP = 'DELETE' THEN OLD.k ELSE NEW.k END,
			CASE WHEN TG_OP = 'DELETE' THEN OLD.window_start ELSE NEW.window_start END);
		RETURN NULL;
	END $$;
	GRANT INSERT ON writes TO PUBLIC;
	DO $$
	DECLARE v record;
	BEGIN
		FOR v IN SELECT split_part(name, '.', 2) AS view_name, rows_table FROM kappa_views WHERE name IN ('public.per_min', 'public.hopping', 'public.visits') LOOP
			EXECUTE format('CREATE TRIGGER note AFTER INSERT OR UPDATE OR DELETE ON %s '
				'FOR EACH ROW EXECUTE FUNCTION public.note_write(%L)', v.rows_table, v.view_name);
		END LOOP;
	END $$;
});

# Events of round r into both partitions: keys 0..4, times moving on by 4
# minutes a round, up to 50 s out of order, and every key silent for a
# while in some rounds, so that sessions end, start and merge.
my $round = 0;
sub produce
{
	$round++;
	foreach my $p (0, 1)
	{
		my $file = "$dir/r$round-p$p.txt";
		$node->safe_psql('postgres', qq{
			INSERT INTO ev SELECT $p, (i * 7 + $p) % 5, $round * 1000 + i,
				timestamptz '2026-03-01 00:00:00+00' + ($round * 240 + i * 2 + ((i * 37) % 100) - 50) * interval '1 second'
			FROM generate_series(0, 119) i
			WHERE NOT ((i * 7 + $p) % 5 = $round % 5 AND i > 30);
			COPY (SELECT json_build_object('p', p, 'k', k, 'i', i, 'ts', ts)::text FROM ev
				WHERE p = $p AND i / 1000 = $round ORDER BY i) TO '$file'});
		IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'e', '-p', $p, '-l', $file ]) or die "kcat failed";
	}
	is($node->safe_psql('postgres', q{SELECT kappa_wait('e', '60 seconds')}), 't', "round $round consumed");
	return;
}

# The view's rows, the batch query's rows of final windows, and the rows of
# the updates view of final windows, compared both ways.
sub check_final
{
	my ($v) = @_;
	my $until = $node->safe_psql('postgres', "SET ROLE em; SELECT kappa_final_until('$v')");
	my $final = $until eq '' ? 'false' : "window_end <= '$until'";
	my $cmp = $node->safe_psql('postgres', qq{SET ROLE em;
		WITH b AS (SELECT * FROM ($batch{$v}) x WHERE $final),
		l AS (SELECT * FROM $v),
		u AS (SELECT * FROM ${v}_updates WHERE $final)
		SELECT (SELECT count(*) FROM l), (SELECT count(*) FROM b),
			(SELECT count(*) FROM (SELECT * FROM l EXCEPT SELECT * FROM b) d),
			(SELECT count(*) FROM (SELECT * FROM b EXCEPT SELECT * FROM l) d),
			(SELECT count(*) FROM (SELECT * FROM u EXCEPT SELECT * FROM l) d),
			(SELECT count(*) FROM (SELECT * FROM l EXCEPT SELECT * FROM u) d)});
	my ($rows, $expected, @diff) = split /\|/, $cmp;
	cmp_ok($expected, '>', 0, "round $round: $v has final windows");
	is("$rows|@diff", "$expected|0 0 0 0",
		"round $round: $v holds exactly the $expected final windows (extra, missing, vs updates)");
	return;
}

sub check_writes
{
	is($node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE op <> 'INSERT'),
			(SELECT count(*) FROM (SELECT view, k, window_start FROM writes GROUP BY 1, 2, 3 HAVING count(*) > 1) d)
		FROM writes}), '0|0', "round $round: every final row was inserted once, never updated or deleted");
	return;
}

produce() for 1 .. 3;
check_final($_) for sort keys %q;
check_writes();
my $some = $node->safe_psql('postgres', q{SELECT count(*) > 20 FROM writes});
is($some, 't', 'windows became final and were written');
is($node->safe_psql('postgres', q{SET ROLE em;
	SELECT count(*) FILTER (WHERE window_end > kappa_final_until('per_min')) FROM per_min_updates}) > 0 ? 't' : 'f',
	't', 'the updates view holds open windows, which the final view does not');

# A clean restart: the open windows come back from their states, and are
# written once, when final.
$node->restart;
produce() for 4 .. 5;
check_final($_) for sort keys %q;
check_writes();

# The changes sink sent each final window once, as the view holds it: read
# read_committed from its topic, the messages' rows equal the view's rows.
ok(wait_until(sub { $node->safe_psql('postgres',
		q{SELECT pending = 0 AND sent > 0 AND last_error IS NULL FROM kappa_sinks WHERE name = 'pm_changes'}) eq 't' }, 60),
	'the changes sink sent everything');
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'kcat', '-C', '-b', $b, '-t', 'pmc', '-e', '-q', '-X', 'isolation.level=read_committed',
		'-f', "%s\n" ], '>', \$out, '2>', \$err) or die "kcat -C failed: $err";
	my $messages = join ',', map { "\$m\$$_\$m\$" } grep { $_ ne '' } split /\n/, $out;
	is($node->safe_psql('postgres', qq{SET ROLE em;
		WITH m AS (SELECT (x::jsonb)->'row' AS r FROM unnest(ARRAY[$messages]::text[]) x),
		sent AS (SELECT (r->>'k')::int AS k, (r->>'window_start')::timestamptz AS window_start,
			(r->>'window_end')::timestamptz AS window_end, (r->>'n')::bigint AS n, (r->>'s')::bigint AS s FROM m)
		SELECT (SELECT count(*) FROM sent), (SELECT count(DISTINCT (k, window_start)) FROM sent),
			(SELECT count(*) FROM (SELECT * FROM sent EXCEPT SELECT * FROM per_min) a),
			(SELECT count(*) FROM (SELECT * FROM per_min EXCEPT SELECT * FROM sent) b),
			(SELECT count(*) FROM per_min)}),
		join('|', ($node->safe_psql('postgres', 'SELECT count(*) FROM per_min')) x 2, 0, 0,
			$node->safe_psql('postgres', 'SELECT count(*) FROM per_min')),
		'the changes sink sent one message per final window, each the row the view holds');
}

# A row written into the rows table by someone else, for a window that is
# not final yet: the flush that finalizes the window finds it where it
# inserts without ON CONFLICT, says so in the log, and updates it instead;
# the view is still exact.
my $rows_table = $node->safe_psql('postgres', q{SELECT rows_table FROM kappa_views WHERE name = 'public.per_min'});
my $open = $node->safe_psql('postgres', q{
	SELECT date_bin('1 minute', max(ts), timestamptz '2000-01-01') FROM ev});
$node->safe_psql('postgres', qq{
	INSERT INTO $rows_table (k, window_start, window_end, n, s)
	VALUES (0, '$open', timestamptz '$open' + interval '1 minute', -1, -1)});
my $log_offset = -s $node->logfile;
produce() for 6 .. 7;
check_final($_) for sort keys %q;
is($node->safe_psql('postgres', qq{SELECT n > 0 FROM $rows_table WHERE k = 0 AND window_start = '$open'}), 't',
	'the row written by hand was overwritten by the final window');
like(slurp_file($node->logfile, $log_offset),
	qr/kappa view public\.per_min found rows it had not written in its table; it updates them/,
	'and the log says so');

# kappa_check agrees, and a replay gives the same final rows.
foreach my $v (sort keys %q)
{
	is($node->safe_psql('postgres', "SET ROLE em; SELECT count(*) FROM kappa_check('$v')"), '0',
		"kappa_check('$v') finds no difference");
}
$node->safe_psql('postgres', q{SET ROLE em; SELECT kappa_replay('visits')});
check_final('visits');

# Emit final with dedup and a retention, between poison: a message whose
# k no int accepts (a dead letter of the stream) and events whose v is 0
# (division by zero in the view: rejected by the view, the others go on).
$node->safe_psql('postgres', q{
	CREATE TABLE dsrc AS SELECT i, 'e' || (i % 1500) AS id, i % 4 AS k,
		CASE WHEN i % 97 = 0 THEN 0 ELSE i % 50 + 1 END AS v,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s' + ((i * 7) % 21 - 10) * interval '1 s' AS ts
	FROM generate_series(0, 1999) i;
	GRANT SELECT ON dsrc TO PUBLIC;
});
$node->safe_psql('postgres', qq{
	SET ROLE em;
	SELECT kappa_create_stream('d', topic => 'd', brokers => '$b',
		columns => 'id text, k int, v int, ts timestamptz NOT NULL', event_time => 'ts',
		watermark => '1 minute', idle_timeout => '1 hour', dedup_key => 'id');
	SELECT kappa_create_view('dq', \$q\$SELECT k, w.window_start, w.window_end, count(*) AS n, sum(100 / v) AS q
		FROM d, kappa_tumble(ts, '1 minute') w GROUP BY k, w.window_start, w.window_end\$q\$,
		'{"emit": "final", "retention": "10 minutes"}');
	SELECT count(kappa_produce('d', convert_to(json_build_object('id', id, 'k', k, 'v', v, 'ts', ts)::text, 'UTF8')))
	FROM (SELECT * FROM dsrc, generate_series(1, CASE WHEN i % 10 = 0 THEN 2 ELSE 1 END)
		WHERE i < 1000 ORDER BY i) x;
	SELECT kappa_produce('d', convert_to('{"id": "x", "k": "not an int", "v": 1, "ts": "2026-01-01 00:20:00+00"}', 'UTF8'));
	SELECT count(kappa_produce('d', convert_to(json_build_object('id', id, 'k', k, 'v', v, 'ts', ts)::text, 'UTF8')))
	FROM (SELECT * FROM dsrc, generate_series(1, CASE WHEN i % 10 = 0 THEN 2 ELSE 1 END)
		WHERE i >= 1000 ORDER BY i) x;
});
is($node->safe_psql('postgres', q{SELECT kappa_wait('d', '60 seconds')}), 't', 'the dedup stream consumed');
# Every tenth event is produced twice in a row: the second copy is a
# duplicate (its id within the minute's horizon).  Ids repeat 1,500 s
# apart, past the horizon, so such a repeat counts again.  The batch side:
# every event of dsrc once, without those whose v is 0; the final windows
# that retention keeps.
my $dq = $node->safe_psql('postgres', q{SET ROLE em;
	WITH b AS (SELECT k, date_bin('1 minute', ts, timestamptz '2000-01-01') AS window_start,
			date_bin('1 minute', ts, timestamptz '2000-01-01') + interval '1 minute' AS window_end,
			count(*) AS n, sum(100 / v) AS q
		FROM dsrc WHERE v <> 0 GROUP BY 1, 2, 3),
	f AS (SELECT * FROM b WHERE window_end <= kappa_final_until('dq')
		AND window_end >= kappa_final_until('dq') - interval '10 minutes')
	SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM dq),
		(SELECT count(*) FROM (SELECT * FROM dq EXCEPT SELECT * FROM f) x),
		(SELECT count(*) FROM (SELECT * FROM f EXCEPT SELECT * FROM dq) y),
		(SELECT sum(rejected) FROM kappa_stats WHERE view = 'public.dq'),
		(SELECT sum(duplicate) FROM kappa_stats WHERE view = 'public.dq'),
		(SELECT sum(dead_lettered) FROM kappa_stats WHERE stream = 'd' AND view IS NULL)});
my ($expected, $got, $extra, $missing, $rejected, $dups, $dead) = split /\|/, $dq;
cmp_ok($expected, '>', 5, 'the dedup stream has final windows that retention keeps');
is("$got|$extra|$missing", "$expected|0|0",
	'emit final with dedup, retention and poison: exactly the batch query\'s kept final windows');
is("$rejected|$dups|$dead", '21|200|1',
	'the events dividing by zero were rejected by the view, the 200 copies counted as duplicates, the bad message dead-lettered');

# Refused: no windows, and an unknown value.
my ($ret, $out, $err) = $node->psql('postgres', q{SET ROLE em;
	SELECT kappa_create_view('t', 'SELECT k, count(*) FROM e GROUP BY k', '{"emit": "final"}')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/22023: a view without windows cannot emit final rows/, 'a view without windows cannot emit final rows');
($ret, $out, $err) = $node->psql('postgres', qq{SET ROLE em;
	SELECT kappa_create_view('t', \$q\$$q{per_min}\$q\$, '{"emit": "once"}')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/22023: invalid emit option of a view/, 'emit takes "updates" or "final"');

stop_broker($broker);
done_testing();
