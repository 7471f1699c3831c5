# kappa_retry_dead_letters (issue 15): dead letters decoded again with the
# stream's definition as it is now, and applied to their views once.
#
# alice, a kappa_admin member who is not superuser, owns stream rs (2
# partitions, dedup on id, keep_late, a column of the domain posdom, whose
# CHECK (VALUE > 0) rejects some events) and four views: a running one, a
# tumbling one (lateness), one dividing by v (v = 0 fails it: a dead letter
# of that view alone), and one calling slow(v), which sleeps on v = 777 (so
# that a retry can be caught in the middle).  Phase 1: good events, then per
# partition messages that are no JSON, events posdom rejects (on time, late,
# a copy of a good event's id, one with v = 0).  A retry while posdom still
# rejects applies nothing and keeps every letter, with the domain's reason;
# bob (kappa_admin, not the owner) and carol (not kappa_admin) get 42501.
# After ALTER DOMAIN drops the CHECK, a retry applies exactly the letters
# that decode now: the late ones counted late and kept in kappa.late_events,
# the copy a duplicate, the v = 0 one rejected by the dividing view alone (a
# new dead letter of that view); the others stay, with their reasons.  A
# second retry applies nothing.  Phase 2: more letters; a retry is killed
# in the middle (kill -9 of the worker, then of the postmaster): nothing of
# it stays, the rebuilt views still leave the letters out; then a retry
# applies each once.  Oracles: each view's query as batch SQL over exactly
# the events that should count, computed from what the test produced; the
# counts of kappa_stats and kappa.dead_letters by hand.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('retry:2');
my $b = $broker->{bootstrap};
my $node = kappa_node('retry',
	conf => "kappa.flush_interval = '100ms'\nrestart_after_crash = on\n");
my $dir = PostgreSQL::Test::Utils::tempdir();
my $su = sub { $node->safe_psql('postgres', $_[0]) };

# Run SQL as ROLE; returns (SQLSTATE of the first error or '', stdout).
sub run_as
{
	my ($role, $sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role ]);
	return ('', $out) if $rc == 0;
	my ($code) = $err =~ /ERROR:\s+([0-9A-Z]{5}):/;
	diag "as $role: $err";
	return ($code // "rc$rc", $out);
}

# Output of SQL run by alice, or "ERROR <SQLSTATE>".
sub alice
{
	my ($code, $out) = run_as('alice', $_[0]);
	return $code eq '' ? $out : "ERROR $code";
}

$su->(q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE carol LOGIN;
	GRANT kappa_admin TO alice, bob;
	CREATE SCHEMA alice AUTHORIZATION alice;
	CREATE DOMAIN public.posdom AS int CONSTRAINT posdom_positive CHECK (VALUE > 0);
	-- sleeps on v = 777: a retry that applies such an event can be caught
	CREATE FUNCTION public.slow(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
	BEGIN
		IF v = 777 THEN
			PERFORM pg_catalog.pg_sleep(3);
		END IF;
		RETURN v;
	END $f$;
	CREATE SCHEMA batch;
	-- every event produced: kind says what the stream makes of it
	CREATE TABLE batch.ev (id int, p int, dev text, v int, q int, ts timestamptz,
		kind text, phase int);
});

my %views = (
	v_run => q{SELECT dev, count(*) AS n, sum(v) AS s, sum(q) AS sq FROM rs GROUP BY dev},
	v_tumble => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM rs, kappa_tumble(ts, '1 minute') w GROUP BY dev, w.window_start, w.window_end},
	v_div => q{SELECT dev, count(*) AS n, sum(100 / v) AS s FROM rs GROUP BY dev},
	v_slow => q{SELECT dev, count(*) AS n, sum(public.slow(v)) AS s FROM rs GROUP BY dev},
);
my @view_names = sort keys %views;
is((run_as('alice', qq{
	SELECT kappa_create_stream('rs', topic => 'retry', brokers => '$b',
		columns => 'id int NOT NULL, dev text, v int, q public.posdom, ts timestamptz NOT NULL',
		event_time => 'ts', watermark => '10 minutes', dedup_key => 'id', keep_late => true);
	} . join('', map { "SELECT kappa_create_view('alice.$_', \$q\$$views{$_}\$q\$);\n" } @view_names)
	))[0], '', 'alice (not superuser) creates stream rs and four views');
my %view_id = map { $_ => $su->("SELECT view_id FROM kappa.views WHERE view_name = '$_'") } @view_names;

# The pid of rs's worker; '' while there is none, or the server is down.
my $worker_pid = sub {
	my ($rc, $out) = $node->psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'rs'");
	return $rc == 0 ? $out : '';
};
ok(wait_until(sub { $worker_pid->() =~ /^\d+$/ }, 30), 'the worker of rs runs');

# ---------------------------------------------------------------------------
# Producing

my $t0 = 1772323200;    # 2026-03-01 00:00:00 UTC

sub iso
{
	my ($s) = @_;
	my @t = gmtime($s);
	return sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ', $t[5] + 1900, $t[4] + 1, @t[ 3, 2, 1, 0 ]);
}

# Produce events (hashes: id p dev v q ts kind) in order, per partition;
# kind 'nojson' sends its raw text instead.  The events are recorded in
# batch.ev with their kind.
sub produce
{
	my ($phase, @events) = @_;
	my (%lines, @rows);
	foreach my $e (@events)
	{
		if ($e->{kind} eq 'nojson')
		{
			push @{ $lines{ $e->{p} } }, $e->{raw};
			next;
		}
		my $ts = iso($e->{ts});
		push @{ $lines{ $e->{p} } },
		  qq({"id": $e->{id}, "dev": "$e->{dev}", "v": $e->{v}, "q": $e->{q}, "ts": "$ts"});
		push @rows, "($e->{id}, $e->{p}, '$e->{dev}', $e->{v}, $e->{q}, '$ts', '$e->{kind}', $phase)";
	}
	$su->('INSERT INTO batch.ev VALUES ' . join(', ', @rows));
	foreach my $p (sort keys %lines)
	{
		my $file = "$dir/phase$phase-$p.txt";
		open my $fh, '>', $file or die $!;
		print $fh "$_\n" foreach @{ $lines{$p} };
		close $fh;
		IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'retry', '-p', $p, '-l', $file ])
		  or die "kcat failed";
	}
	return;
}

# Phase 1, per partition: 200 good events 3 s apart (v = 0 on every 50th:
# v_div rejects those), then the poison: two messages that are no JSON,
# three events posdom rejects near the end (on time), two an hour early
# (late: behind the watermark in the log and at any retry), a copy of a
# good event's id (a duplicate once decoded), and one with v = 0.
my @phase1;
foreach my $p (0, 1)
{
	my $base = $p * 100000;
	foreach my $i (0 .. 199)
	{
		push @phase1, { id => $base + $i, p => $p, dev => 'd' . ($i % 5),
			v => ($i % 50 == 17 ? 0 : 1 + ($i * 7) % 50), q => 1 + $i % 9,
			ts => $t0 + 3 * $i, kind => ($i % 50 == 17 ? 'zero' : 'good') };
	}
	push @phase1, { p => $p, kind => 'nojson', raw => '{"id": 5, "dev": "d1", "v": ' },
	  { p => $p, kind => 'nojson', raw => 'not json at all' };
	foreach my $k (0 .. 2)
	{
		push @phase1, { id => $base + 500 + $k, p => $p, dev => "d$k", v => 5 + $k, q => -1 - $k,
			ts => $t0 + 3 * (190 - $k), kind => 'ontime' };
	}
	foreach my $k (0 .. 1)
	{
		push @phase1, { id => $base + 600 + $k, p => $p, dev => "d$k", v => 11, q => -7,
			ts => $t0 - 3600 + 60 * $k, kind => 'late' };
	}
	my ($twin) = grep { ($_->{id} // -1) == $base + 195 } @phase1;
	push @phase1, { %$twin, q => -3, kind => 'copy' },
	  { id => $base + 700, p => $p, dev => 'd4', v => 0, q => -2, ts => $t0 + 3 * 185,
		kind => 'zerodomain' };
}
produce(1, @phase1);
is(alice("SELECT kappa_wait('rs', '60 seconds')"), 't', 'phase 1 consumed');

# Whether each view equals its query as batch SQL over the events whose
# kind is in kinds (the copies never count: they are duplicates), for
# v_div less those with v = 0, for v_tumble less the late ones.
sub check_views
{
	my ($label, @kinds) = @_;
	my $in = join(', ', map { "'$_'" } @kinds);
	foreach my $v (@view_names)
	{
		my $where = "kind IN ($in)";
		$where .= ' AND v <> 0' if $v eq 'v_div';
		$where .= q{ AND kind <> 'late'} if $v eq 'v_tumble';
		my $oracle = $views{$v} =~ s/\bFROM rs\b/FROM (SELECT * FROM batch.ev WHERE $where) rs/r;
		my ($extra, $missing, $rows) = split m{/}, $su->(qq{
			SELECT (SELECT count(*) FROM (SELECT * FROM alice.$v EXCEPT ALL ($oracle)) a)
				|| '/' || (SELECT count(*) FROM (($oracle) EXCEPT ALL SELECT * FROM alice.$v) b)
				|| '/' || (SELECT count(*) FROM alice.$v)});
		ok($rows > 0 && $extra == 0 && $missing == 0,
			"$label: alice.$v equals its query over the events that count ($rows rows; $extra extra, $missing missing)");
	}
	return;
}

# Whether view v (alice.v) equals query (over rs) as batch SQL over the
# events batch.ev's where clause picks.
sub check_oracle
{
	my ($v, $query, $where, $label) = @_;
	my $oracle = $query =~ s/\bFROM rs\b/FROM (SELECT * FROM batch.ev WHERE $where) rs/r;
	my ($extra, $missing, $rows) = split m{/}, $su->(qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM alice.$v EXCEPT ALL ($oracle)) a)
			|| '/' || (SELECT count(*) FROM (($oracle) EXCEPT ALL SELECT * FROM alice.$v) b)
			|| '/' || (SELECT count(*) FROM alice.$v)});
	ok($extra == 0 && $missing == 0,
		"$label: alice.$v equals its query over the events that count ($rows rows; $extra extra, $missing missing)");
	return;
}

# The dead letters: view (0 or name) and SQLSTATE, with how many.
sub letters
{
	return $su->(q{
		SELECT string_agg(format('%s %s %s', w, sqlstate, n), ', ' ORDER BY w, sqlstate) FROM (
			SELECT coalesce(v.view_name::text, '0') AS w, d.sqlstate, count(*) AS n
			FROM kappa.dead_letters d LEFT JOIN kappa.views v USING (view_id)
			GROUP BY 1, 2) s});
}

check_views('phase 1, before any retry', 'good', 'zero');
is(letters(), "0 22P02 4, 0 23514 14, v_div 22012 8",
	'phase 1: 4 messages no JSON, 14 events posdom rejects, 8 events v_div cannot divide by');

# ---------------------------------------------------------------------------
# Who may retry, and what a retry does while posdom still rejects

is((run_as('bob', q{SELECT * FROM kappa_retry_dead_letters('rs')}))[0], '42501',
	'bob, a kappa_admin member who does not own rs, may not retry its dead letters');
is((run_as('carol', q{SELECT * FROM kappa_retry_dead_letters('rs')}))[0], '42501',
	'carol, no kappa_admin member, may not call kappa_retry_dead_letters');
is((run_as('alice', q{SELECT * FROM kappa_retry_dead_letters('nosuch')}))[0], '42704',
	'a stream that does not exist: 42704');
is((run_as('alice', q{SELECT * FROM kappa_retry_dead_letters('rs', since => '2026-01-02', until => '2026-01-01')}))[0],
	'22023', 'since after until: 22023');
is(alice(q{SELECT * FROM kappa_retry_dead_letters('rs', until => '2000-01-01')}), '0|0|0',
	'letters whose broker time is outside [since, until) are not retried');

is(alice(q{SELECT applied, late, still_dead FROM kappa_retry_dead_letters('rs')}), '0|0|26',
	'while posdom rejects, a retry applies nothing: all 26 letters are still dead');
is(letters(), "0 22P02 4, 0 23514 14, v_div 22012 8", 'every letter stays, with its SQLSTATE');
like($su->(q{SELECT string_agg(DISTINCT reason, ' / ') FROM kappa.dead_letters WHERE sqlstate = '23514'}),
	qr/posdom/, 'the reason names the domain');
is($su->(qq{SELECT string_agg(DISTINCT reason, ' / ') FROM kappa.dead_letters WHERE view_id = $view_id{v_div}}),
	'division by zero', 'v_div\'s letters keep their reason');
check_views('after a retry that applied nothing', 'good', 'zero');

# ---------------------------------------------------------------------------
# The definition accepts them now

$su->('ALTER DOMAIN public.posdom DROP CONSTRAINT posdom_positive');

# Two views created now, after the letters, while the definition would
# accept them: v_early reads every partition from its start and meets the
# letters' offsets, which stay dead for it until the retry; v_late starts
# at the log's end, after them, and never gets them.
my $q_run = $views{v_run};
is((run_as('alice', qq{
	SELECT kappa_create_view('alice.v_early', \$q\$$q_run\$q\$);
	SELECT kappa_create_view('alice.v_late', \$q\$$q_run\$q\$, '{"start": "latest"}');
	}))[0], '', 'alice creates v_early (from the start) and v_late (from the end) after the letters');
is(alice("SELECT kappa_wait('rs', '60 seconds')"), 't', 'v_early caught up');
check_oracle('v_early', $q_run, q{kind IN ('good', 'zero')},
	'before the retry, a view created after the fix still leaves the letters out');
check_oracle('v_late', $q_run, 'false', 'a view starting at the end has nothing yet');

is(alice(q{SELECT applied, late, still_dead FROM kappa_retry_dead_letters('rs')}), '14|4|12',
	'after ALTER DOMAIN: 14 letters applied (4 of them late for v_tumble), 12 still dead (no JSON, v_div)');
is(letters(), "0 22P02 4, v_div 22012 10",
	'left: the messages that are no JSON, and v_div\'s letters, two of them new (decoded now, v = 0)');
check_views('after the retry', 'good', 'zero', 'ontime', 'late', 'zerodomain');
check_oracle('v_early', $q_run, q{kind IN ('good', 'zero', 'ontime', 'late', 'zerodomain')},
	'after the retry, the view created from the start got each letter once');
check_oracle('v_late', $q_run, 'false', 'the view that started after the letters got none');
is($su->(qq{SELECT count(*) FROM kappa.late_events WHERE view_id = $view_id{v_tumble}}), '4',
	'the 4 late ones are kept in kappa.late_events (keep_late), for v_tumble');

# kappa_stats: per view, what it counted reconciles with the letters
sub counts
{
	return $su->(q{
		SELECT string_agg(format('%s %s/%s/%s/%s/%s', split_part(view, '.', 2), sum_d, sum_a, sum_l, sum_r, sum_dup), ', '
			ORDER BY view) FROM (
			SELECT view, sum(delivered) AS sum_d, sum(applied) AS sum_a, sum(late) AS sum_l,
				sum(rejected) AS sum_r, sum(duplicate) AS sum_dup
			FROM kappa_stats WHERE stream = 'rs' AND view IS NOT NULL
				AND view NOT IN ('alice.v_early', 'alice.v_late') GROUP BY view) s});
}
# delivered/applied/late/rejected/duplicate: 400 good, 12 decoded now (2 copies are duplicates)
is(counts(), 'v_div 412/402/0/10/2, v_run 412/412/0/0/2, v_slow 412/412/0/0/2, v_tumble 412/408/4/0/2',
	'kappa_stats: every view counted each event once, v_div rejecting 10, v_tumble finding 4 late');
is($su->(q{SELECT sum(dead_lettered) FROM kappa_stats WHERE stream = 'rs' AND view IS NULL}), '4',
	'the stream counts the 4 letters it still cannot decode');

is(alice(q{SELECT applied, late, still_dead FROM kappa_retry_dead_letters('rs')}), '0|0|14',
	'a second retry applies nothing');
check_views('after a second retry', 'good', 'zero', 'ontime', 'late', 'zerodomain');

# ---------------------------------------------------------------------------
# Phase 2: a retry killed in the middle, then done

$su->('ALTER DOMAIN public.posdom ADD CONSTRAINT posdom_positive CHECK (VALUE > 0)');
my @phase2;
foreach my $p (0, 1)
{
	my $base = $p * 100000 + 1000;
	foreach my $j (0 .. 99)
	{
		push @phase2, { id => $base + $j, p => $p, dev => 'd' . ($j % 5), v => 1 + $j % 30,
			q => 2, ts => $t0 + 600 + 3 * $j, kind => 'good' };
	}
	push @phase2, { id => $base + 200, p => $p, dev => 'd2', v => 777, q => -9,
		ts => $t0 + 600 + 3 * 90, kind => 'slow' },
	  { id => $base + 201, p => $p, dev => 'd3', v => 8, q => -4,
		ts => $t0 + 600 + 3 * 91, kind => 'ontime2' };
}
produce(2, @phase2);
is(alice("SELECT kappa_wait('rs', '60 seconds')"), 't', 'phase 2 consumed');
is(letters(), "0 22P02 4, 0 23514 4, v_div 22012 10", 'phase 2: 4 more events posdom rejects');
$su->('ALTER DOMAIN public.posdom DROP CONSTRAINT posdom_positive');

# Start a retry in the background (as alice), and wait until the worker
# sleeps in slow(777): it is in the middle of applying the letters.
sub retry_in_background
{
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-At', '-d', $node->connstr('postgres'), '-U', 'alice',
			'-c', q{SELECT * FROM kappa_retry_dead_letters('rs', timeout => '120 seconds')} ],
		'>', \$out, '2>', \$err);
	my $pid = $worker_pid->();
	ok(wait_until(sub { $su->("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND wait_event = 'PgSleep'") eq '1' }, 60),
		'the worker is in the middle of the retry (asleep in slow(777))');
	return ($h, $pid);
}

sub old_processes_alive
{
	foreach my $cmdline (glob '/proc/[0-9]*/cmdline')
	{
		open my $fh, '<', $cmdline or next;
		my $title = <$fh> // '';
		close $fh;
		return 1 if $title =~ /^postgres: retry: /;
	}
	return 0;
}

# kill -9 of the worker: the postmaster reinitializes, crash recovery
# empties the unlogged state, and the worker rebuilds its views.
{
	my ($h, $pid) = retry_in_background();
	kill 'KILL', $pid;
	$h->finish;
	ok(wait_until(sub { my $now = $worker_pid->(); $now =~ /^\d+$/ && $now ne $pid }, 60),
		'after kill -9 of the worker mid-retry, the server reinitialized and the worker is back');
}
is(alice("SELECT kappa_wait('rs', '60 seconds')"), 't', 'the views are rebuilt');
is(letters(), "0 22P02 4, 0 23514 4, v_div 22012 10", 'the killed retry left every letter in place');
check_views('rebuilt after kill -9 of the worker mid-retry (the letters stay out)',
	'good', 'zero', 'ontime', 'late', 'zerodomain');

# kill -9 of the postmaster
{
	my ($h, $pid) = retry_in_background();
	my $postmaster = $node->{_pid};
	$node->kill9;
	$h->finish;
	ok(wait_until(sub { !kill(0, $postmaster) && !old_processes_alive() }, 60),
		'every process of the killed server exits by itself');
	$node->start;
	ok(wait_until(sub { $worker_pid->() =~ /^\d+$/ }, 60), 'the worker is back after the restart');
}
is(alice("SELECT kappa_wait('rs', '60 seconds')"), 't', 'the views are rebuilt again');
is(letters(), "0 22P02 4, 0 23514 4, v_div 22012 10", 'the second killed retry left every letter in place too');
check_views('rebuilt after kill -9 of the postmaster mid-retry', 'good', 'zero', 'ontime', 'late', 'zerodomain');
check_oracle('v_late', $q_run, q{phase = 2 AND kind = 'good'}, 'rebuilt after the crashes, v_late without the letters');

is(alice(q{SELECT applied, late, still_dead FROM kappa_retry_dead_letters('rs', timeout => '120 seconds')}),
	'4|0|14', 'a retry after the crashes applies the 4 letters of phase 2');
is(letters(), "0 22P02 4, v_div 22012 10", 'they are gone from kappa.dead_letters');
check_views('after the retry that followed the crashes', 'good', 'zero', 'ontime', 'late', 'zerodomain',
	'slow', 'ontime2');
check_oracle('v_early', $q_run, q{kind IN ('good', 'zero', 'ontime', 'late', 'zerodomain', 'slow', 'ontime2')},
	'after the crashes and the retry, v_early');
check_oracle('v_late', $q_run, q{phase = 2 AND kind IN ('good', 'slow', 'ontime2')},
	'after the crashes and the retry, v_late has phase 2 only, its letters once');
is(alice(q{SELECT applied, late, still_dead FROM kappa_retry_dead_letters('rs', timeout => '120 seconds')}),
	'0|0|14', 'and once more: nothing to apply');
is(counts(), 'v_div 616/606/0/10/2, v_run 616/616/0/0/2, v_slow 616/616/0/0/2, v_tumble 616/612/4/0/2',
	'kappa_stats after the crashes: each event counted once');
is($su->(q{SELECT sum(dead_lettered) FROM kappa_stats WHERE stream = 'rs' AND view IS NULL}), '4',
	'the stream still counts the 4 letters it cannot decode');

# every view, recomputed from the log by kappa_check, agrees
foreach my $v (@view_names, 'v_early', 'v_late')
{
	is($su->("SELECT count(*) FROM kappa_check('alice.$v')"), '0', "kappa_check finds alice.$v exact");
}

# Without a running worker there is nobody to apply them
$su->('ALTER SYSTEM SET kappa.enabled = off; SELECT pg_reload_conf()');
ok(wait_until(sub { $worker_pid->() eq '' }, 30), 'with kappa.enabled off, the worker stops');
is((run_as('alice', q{SELECT * FROM kappa_retry_dead_letters('rs')}))[0], '55000',
	'a stream without a running worker: 55000');
$su->('ALTER SYSTEM RESET kappa.enabled; SELECT pg_reload_conf()');
ok(wait_until(sub { $worker_pid->() =~ /^\d+$/ }, 30), 'the worker runs again');
is(alice(q{SELECT applied, late, still_dead FROM kappa_retry_dead_letters('rs')}), '0|0|14',
	'and a retry then finds what is left');

stop_broker($broker);
done_testing();
