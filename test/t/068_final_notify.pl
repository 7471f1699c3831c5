# What is final is known and pushed.  kappa_final_until(view) says up to
# when a view's windows are final: the rows of windows that end by then
# equal the batch query over every event, and stay as they are when late
# events come.  A view with {"notify": channel} NOTIFYs the channel at the
# flushes that finalize windows or change rows; the payloads name the view,
# its final_until, and the groups finalized, which add up to the final
# rows.  A view with {"retention": interval} keeps the rows of windows that
# ended less than that before kappa_final_until, live, replayed and
# checked alike.  Checked against hand computations over the events
# produced.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('f:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('final', conf => "kappa.flush_interval = '100ms'\n");

$node->safe_psql('postgres', q{
	CREATE ROLE fin LOGIN IN ROLE kappa_admin;
	GRANT CREATE ON SCHEMA public TO fin;
	CREATE TABLE ev (p int, i int, ts timestamptz);
	GRANT SELECT ON ev TO PUBLIC;
});
my $base = '2026-03-01 00:00:00+00';
my %q = (
	per_min => q{SELECT w.window_start, w.window_end, count(*) AS n, sum(i) AS s
		FROM f, kappa_tumble(ts, '1 minute') w GROUP BY w.window_start, w.window_end},
	visits => q{SELECT p, w.window_start, w.window_end, count(*) AS n
		FROM f, kappa_session(ts, '2 minutes') w GROUP BY p, w.window_start, w.window_end},
	total => q{SELECT count(*) AS n FROM f},
	kept => q{SELECT w.window_start AS starts, count(*) AS n FROM f, kappa_tumble(ts, '1 minute') w
		GROUP BY w.window_start},
	kept_visits => q{SELECT p, w.window_start, w.window_end, count(*) AS n
		FROM f, kappa_session(ts, '2 minutes') w GROUP BY p, w.window_start, w.window_end},
);
$node->safe_psql('postgres', qq{
	SET ROLE fin;
	SELECT kappa_create_stream('f', topic => 'f', brokers => '$b',
		columns => 'p int, i int, ts timestamptz NOT NULL', event_time => 'ts', watermark => '1 minute');
	SELECT kappa_create_view('per_min', \$q\$$q{per_min}\$q\$, '{"notify": "readings"}');
	SELECT kappa_create_view('visits', \$q\$$q{visits}\$q\$, '{"notify": "readings"}');
	SELECT kappa_create_view('total', \$q\$$q{total}\$q\$);
	SELECT kappa_create_view('kept', \$q\$$q{kept}\$q\$, '{"retention": "3 minutes"}');
	SELECT kappa_create_view('kept_visits', \$q\$$q{kept_visits}\$q\$, '{"retention": "4 minutes"}');
});

# The listener, as a plain role: LISTEN needs no right.
my $listener = $node->background_psql('postgres', on_error_stop => 0);
$listener->query_safe('LISTEN readings');

# Events into one partition: i seconds after the base time, the times
# given, with gaps of 5 minutes after every 100th event (sessions).
sub produce
{
	my ($partition, $lo, $hi) = @_;
	my $file = "$dir/p$partition-$lo.txt";
	$node->safe_psql('postgres', qq{
		INSERT INTO ev SELECT $partition, i, timestamptz '$base' + (i + (i / 100) * 300) * interval '1 second'
			FROM generate_series($lo, $hi) i;
		COPY (SELECT json_build_object('p', p, 'i', i, 'ts', ts)::text FROM ev
			WHERE p = $partition AND i BETWEEN $lo AND $hi ORDER BY i) TO '$file'});
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'f', '-p', $partition, '-l', $file ]) or die "kcat failed";
	return;
}

produce(0, 0, 499);
produce(1, 0, 249);
is($node->safe_psql('postgres', q{SELECT kappa_wait('f', '60 seconds')}), 't', 'consumed');

# final_until: the least partition's watermark (its latest event time less
# a minute); for sessions, less their gap too.
my $last1 = $node->safe_psql('postgres', q{SELECT max(ts) FROM ev WHERE p = 1});
is($node->safe_psql('postgres', q{SET ROLE fin; SELECT kappa_final_until('per_min')}),
	$node->safe_psql('postgres', qq{SELECT timestamptz '$last1' - interval '1 minute'}),
	'kappa_final_until: the least partition\'s watermark');
is($node->safe_psql('postgres', q{SELECT kappa_final_until('public.visits')}),
	$node->safe_psql('postgres', qq{SELECT timestamptz '$last1' - interval '1 minute' - interval '2 minutes'}),
	'for sessions, less the gap');
is($node->safe_psql('postgres', q{SELECT kappa_final_until('total') IS NULL}), 't', 'null for a view without windows');
is($node->safe_psql('postgres', q{SELECT DISTINCT final_upto = kappa_final_until('per_min') FROM kappa_stats WHERE view = 'public.per_min'}),
	't', 'kappa_stats shows the same per partition');

# The final rows are the batch query's, over every event.
sub final_rows
{
	my ($view, $batch) = @_;
	my $until = $node->safe_psql('postgres', "SELECT kappa_final_until('$view')");
	return (
		$node->safe_psql('postgres', "SELECT count(*), string_agg(r::text, ',' ORDER BY r::text) FROM $view r WHERE window_end <= '$until'"),
		$node->safe_psql('postgres', "SELECT count(*), string_agg(r::text, ',' ORDER BY r::text) FROM ($batch) r WHERE window_end <= '$until'"));
}
my ($view_rows, $batch_rows) = final_rows('per_min', $q{per_min} =~ s/\bFROM f\b/FROM ev f/r);
is($view_rows, $batch_rows, 'per_min: the rows of final windows equal batch SQL');
like($view_rows, qr/^[1-9]/, '... and there are some');
# sessions in batch SQL: gaps and islands (a gap of 2 minutes or more)
my ($visit_rows, $visit_batch) = final_rows('visits', q{
	WITH o AS (SELECT p, ts, CASE WHEN ts - lag(ts) OVER (PARTITION BY p ORDER BY ts) < interval '2 minutes'
			THEN 0 ELSE 1 END AS brk FROM ev),
	g AS (SELECT p, ts, sum(brk) OVER (PARTITION BY p ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
	SELECT p, min(ts) AS window_start, max(ts) + interval '2 minutes' AS window_end, count(*) AS n
	FROM g GROUP BY p, sid});
is($visit_rows, $visit_batch, 'visits: the final sessions equal batch SQL');

# Late events into final windows change nothing that is final.
my $final_before = $node->safe_psql('postgres', q{SELECT kappa_final_until('per_min')});
my $rows_before = $node->safe_psql('postgres', "SELECT string_agg(r::text, ',' ORDER BY r::text) FROM per_min r WHERE window_end <= '$final_before'");
$node->safe_psql('postgres', qq{COPY (SELECT json_build_object('p', 1, 'i', -1, 'ts', timestamptz '$base' + interval '5 seconds')::text) TO '$dir/late.txt'});
IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'f', '-p', '1', '-l', "$dir/late.txt" ]) or die "kcat failed";
is($node->safe_psql('postgres', q{SELECT kappa_wait('f', '60 seconds')}), 't', 'a late event consumed');
is($node->safe_psql('postgres', q{SELECT sum(late) FROM kappa_stats WHERE view = 'public.per_min'}), '1', 'counted late');
is($node->safe_psql('postgres', "SELECT string_agg(r::text, ',' ORDER BY r::text) FROM per_min r WHERE window_end <= '$final_before'"),
	$rows_before, 'the final rows did not change');

# The notifications: one payload per flush that finalized or changed
# something; the groups finalized add up to the final rows.
my $heard = $listener->query('SELECT 1');
my @payloads = $heard =~ /Asynchronous notification "readings" with payload "(\{.*?\})" received/g;
ok(@payloads > 0, 'the listener heard the channel (' . scalar(@payloads) . ' notifications)');
my %finalized;
my %last_until;
foreach my $p (@payloads)
{
	my ($view) = $p =~ /"view": "([^"]+)"/;
	my ($until) = $p =~ /"final_until": (null|"[^"]*")/;
	my ($changed) = $p =~ /"changed": (\d+)/;
	my ($fin) = $p =~ /"finalized": (\d+)/;
	die "unexpected payload $p" unless defined $view && defined $until && defined $changed && defined $fin;
	$finalized{$view} += $fin;
	$last_until{$view} = $until;
}
is(join(' ', sort keys %finalized), 'public.per_min public.visits', 'only the views with the option notify');
foreach my $v ('per_min', 'visits')
{
	my $until = $node->safe_psql('postgres', "SELECT kappa_final_until('$v')");
	is($last_until{"public.$v"}, qq{"$until"}, "$v: the last payload's final_until is kappa_final_until");
	is($finalized{"public.$v"}, $node->safe_psql('postgres', "SELECT count(*) FROM $v WHERE window_end <= '$until'"),
		"$v: the groups finalized add up to its final rows");
}

# Retention: the rows of windows that ended more than the retention before
# kappa_final_until are gone; the others are the batch query's.
sub kept_rows
{
	my ($view, $column, $retention, $batch) = @_;
	my $cutoff = $node->safe_psql('postgres', "SELECT kappa_final_until('$view') - interval '$retention'");
	return (
		$node->safe_psql('postgres', "SELECT count(*), string_agg(r::text, ',' ORDER BY r::text) FROM $view r"),
		$node->safe_psql('postgres', "SELECT count(*), string_agg(r::text, ',' ORDER BY r::text) FROM ($batch) r WHERE $column >= '$cutoff'"),
		$node->safe_psql('postgres', "SELECT count(*) FROM ($batch) r WHERE $column < '$cutoff'"));
}
my $kept_batch = $q{kept} =~ s/\bFROM f\b/FROM ev f/r;
my ($kept_view, $kept_oracle, $gone) = kept_rows('kept', "starts + interval '1 minute'", '3 minutes', $kept_batch);
is($kept_view, $kept_oracle, 'kept: exactly the rows of windows within the retention, as batch SQL');
ok($gone > 0, "... and $gone older windows' rows are gone");
my $sessions_batch = q{
	WITH o AS (SELECT p, ts, CASE WHEN ts - lag(ts) OVER (PARTITION BY p ORDER BY ts) < interval '2 minutes'
			THEN 0 ELSE 1 END AS brk FROM ev),
	g AS (SELECT p, ts, sum(brk) OVER (PARTITION BY p ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
	SELECT p, min(ts) AS window_start, max(ts) + interval '2 minutes' AS window_end, count(*) AS n
	FROM g GROUP BY p, sid};
my ($kv_view, $kv_oracle, $kv_gone) = kept_rows('kept_visits', 'window_end', '4 minutes', $sessions_batch);
is($kv_view, $kv_oracle, 'kept_visits: the sessions within the retention, as gaps and islands');
ok($kv_gone > 0, "... and $kv_gone older sessions are gone");
is($node->safe_psql('postgres', q{SET ROLE fin; SELECT count(*) FROM kappa_check('kept')}), '0',
	'kappa_check agrees with what retention keeps');
$node->safe_psql('postgres', q{SET ROLE fin; SELECT kappa_replay('kept')});
is($node->safe_psql('postgres', "SELECT count(*), string_agg(r::text, ',' ORDER BY r::text) FROM kept r"), $kept_view,
	'a replay rebuilds only what retention keeps');

# Bad options and names.
my ($rc, $out, $err) = $node->psql('postgres', q{SELECT kappa_create_view('bad', 'SELECT count(*) FROM f', '{"notify": ""}')});
like($err, qr/invalid notify option of a view/, 'an empty channel is refused');
($rc, $out, $err) = $node->psql('postgres', q{SELECT kappa_create_view('bad', 'SELECT count(*) FROM f', '{"notify": 5}')});
like($err, qr/invalid notify option of a view/, 'a channel that is not a string is refused');
($rc, $out, $err) = $node->psql('postgres', q{SELECT kappa_create_view('bad', 'SELECT count(*) FROM f', '{"retention": "1 day"}')});
like($err, qr/a view without windows cannot have a retention/, 'retention on a view without windows is refused');
($rc, $out, $err) = $node->psql('postgres', q{SELECT kappa_create_view('bad', $$SELECT w.window_start, count(*) FROM f, kappa_session(ts, '1 minute') w GROUP BY w.window_start$$, '{"retention": "1 day"}')});
like($err, qr/a view with a retention must select its window's end/, 'a session view without its end is refused');
($rc, $out, $err) = $node->psql('postgres', q{SELECT kappa_create_view('bad', $$SELECT w.window_start, count(*) FROM f, kappa_tumble(ts, '1 minute') w GROUP BY 1$$, '{"retention": "1 month"}')});
like($err, qr/invalid retention option of a view: "1 month"/, 'a retention in months is refused');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa_views WHERE name = 'public.bad'}), '0', 'nothing was created');
($rc, $out, $err) = $node->psql('postgres', q{SELECT kappa_final_until('nope')}, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/42P01: relation "nope" does not exist/, 'kappa_final_until of no relation: 42P01');
($rc, $out, $err) = $node->psql('postgres', q{SELECT kappa_final_until('ev')}, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/42809: "ev" is not a kappa view/, 'of a table: 42809');

$listener->quit;
$node->stop;
stop_broker($broker);
done_testing();
