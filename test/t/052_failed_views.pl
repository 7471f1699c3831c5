# A view that cannot go on fails alone (issue 11).  alice, a kappa_admin
# member who is not superuser, owns a stream and four views on it.  One
# view calls a function whose EXECUTE right the superuser revokes from her
# while the worker runs: that view goes to status failed with the 42501
# error, keeps the rows it had, and the other views go on, exact; after a
# GRANT, kappa_replay brings it back, live and exact.  alice adds a CHECK
# constraint to the rows table of another view that its next rows break:
# that view fails (23514), the others go on, and kappa_drop_view removes
# it.  The worker never restarts for any of that.  Then the memory limit:
# with kappa.max_state_memory at 1 MB, a stream whose running view holds
# 100,000 groups stops in worker state failed, naming the view, and stays
# stopped (no restart loop, with a launcher that looks every second and a
# backoff of a second at most); raising the limit and reloading starts it
# again, and its views come out exact.  Oracles: each view's query as
# batch SQL over the events the test produced.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('fv:2', 'mem:2');
my $b = $broker->{bootstrap};
my $node = kappa_node('failed',
	conf => "kappa.flush_interval = '100ms'\nkappa.launcher_naptime = '1s'\nkappa.restart_backoff_max = '1s'\n");
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
	GRANT kappa_admin TO alice;
	CREATE SCHEMA alice AUTHORIZATION alice;
	-- the superuser's function, which alice may use until it is revoked
	CREATE FUNCTION public.shared_fn(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
		$f$ BEGIN RETURN v * 2; END $f$;
	REVOKE EXECUTE ON FUNCTION public.shared_fn(int) FROM PUBLIC;
	GRANT EXECUTE ON FUNCTION public.shared_fn(int) TO alice;
	CREATE TABLE batch_ev (batch text, p int, dev text, v int, ts timestamptz);
});

my %views = (
	fv_fn => q{SELECT dev, count(*) AS n, sum(public.shared_fn(v)) AS s FROM fv GROUP BY dev},
	fv_ok => q{SELECT dev, count(*) AS n, sum(v) AS s FROM fv GROUP BY dev},
	fv_chk => q{SELECT dev, count(*) AS n FROM fv GROUP BY dev},
	fv_win => q{SELECT w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM fv, kappa_tumble(ts, '1 minute') w GROUP BY w.window_start, w.window_end},
);
is((run_as('alice', qq{
	SELECT kappa_create_stream('fv', topic => 'fv', brokers => '$b',
		columns => 'dev text, v int, ts timestamptz NOT NULL', event_time => 'ts', watermark => '1000 days');
	} . join('', map { "SELECT kappa_create_view('alice.$_', \$q\$$views{$_}\$q\$);\n" } sort keys %views)
	))[0], '', 'alice (not superuser) creates stream fv and four views');
my %view_id = map { $_ => $su->("SELECT view_id FROM kappa.views WHERE view_name = '$_'") } keys %views;

my $worker = sub {
	my ($stream) = @_;
	return $su->("SELECT coalesce(state, '') || '|' || coalesce(pid::text, '') || '|' || failures
		FROM kappa_workers WHERE stream = '$stream'");
};
ok(wait_until(sub { $worker->('fv') =~ /^running\|\d+\|0$/ }, 30), 'the worker of fv runs');
my $fv_worker = $worker->('fv');

# A batch of events: 2 partitions, 5 devices, times a second apart.
my $seq = 0;
sub produce_batch
{
	my ($batch, $n) = @_;
	my (%lines, @rows);
	foreach (1 .. $n)
	{
		$seq++;
		my $p = $seq % 2;
		my $dev = 'd' . ($seq % 5);
		my $v = ($seq * 37) % 101;
		my @t = gmtime(1767225600 + $seq);    # 2026-01-01 00:00:00 UTC onwards
		my $ts = sprintf('%04d-%02d-%02dT%02d:%02d:%02dZ', $t[5] + 1900, $t[4] + 1, @t[ 3, 2, 1, 0 ]);
		push @{ $lines{$p} }, qq({"dev": "$dev", "v": $v, "ts": "$ts"});
		push @rows, "('$batch', $p, '$dev', $v, '$ts')";
	}
	$su->('INSERT INTO batch_ev VALUES ' . join(', ', @rows));
	foreach my $p (sort keys %lines)
	{
		my $file = "$dir/$batch-$p.txt";
		open my $fh, '>', $file or die $!;
		print $fh "$_\n" foreach @{ $lines{$p} };
		close $fh;
		IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'fv', '-p', $p, '-l', $file ]) or die "kcat failed";
	}
	return;
}

# Whether view v (as alice reads it) equals its query as batch SQL over
# the events of the given batches.
sub check_view
{
	my ($v, $batches, $label) = @_;
	my $in = join(', ', map { "'$_'" } @$batches);
	my $oracle = $views{$v} =~ s/\bFROM fv\b/FROM (SELECT * FROM batch_ev WHERE batch IN ($in)) fv/r;
	my $r = $su->(qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM alice.$v EXCEPT ALL ($oracle)) a)
			|| '/' || (SELECT count(*) FROM (($oracle) EXCEPT ALL SELECT * FROM alice.$v) b)
			|| '/' || (SELECT count(*) FROM alice.$v)});
	my ($extra, $missing, $rows) = split m{/}, $r;
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"$label: alice.$v equals its query over batches @$batches ($rows rows; $extra extra, $missing missing)");
	return;
}

sub status
{
	return $su->(q{SELECT string_agg(name || ' ' || status, ', ' ORDER BY name) FROM kappa_views WHERE stream = 'fv'});
}

produce_batch('A', 400);
is(alice("SELECT kappa_wait('fv', '60 seconds')"), 't', 'batch A consumed');
check_view($_, ['A'], 'batch A') foreach sort keys %views;

# ---------------------------------------------------------------------------
# A right revoked while the worker runs: that view fails, alone

$su->('REVOKE EXECUTE ON FUNCTION public.shared_fn(int) FROM alice');
produce_batch('B', 400);
ok(wait_until(sub { $su->(q{SELECT status FROM kappa_views WHERE name = 'alice.fv_fn'}) eq 'failed' }, 60),
	'the view that lost its right failed');
is(alice("SELECT kappa_wait('fv', '60 seconds')"), 't', 'batch B consumed by the other views');
is(status(), 'alice.fv_chk live, alice.fv_fn failed, alice.fv_ok live, alice.fv_win live',
	'only that view failed');
like(alice(q{SELECT status_detail FROM kappa_views WHERE name = 'alice.fv_fn'}),
	qr/^permission denied for function public\.shared_fn\(integer\)/, 'alice sees the permission error in status_detail');
is($su->("SELECT status_sqlstate FROM kappa.views WHERE view_id = $view_id{fv_fn}"), '42501',
	'its SQLSTATE is 42501');
like($su->(q{SELECT view_status || ' ' || last_error FROM kappa_stats WHERE view = 'alice.fv_fn' LIMIT 1}),
	qr/^failed permission denied for function public\.shared_fn\(integer\)/, 'kappa_stats says why the view is not live');
check_view('fv_fn', ['A'], 'failed');
check_view($_, [ 'A', 'B' ], 'batch B') foreach qw(fv_ok fv_chk fv_win);
is($worker->('fv'), $fv_worker, 'the worker did not restart (same pid, no failure)');
ok(log_contains($node, qr/WARNING:  kappa view alice\.fv_fn failed and is not kept current/),
	'the server log says the view failed');

# GRANT, then kappa_replay brings it back.
$su->('GRANT EXECUTE ON FUNCTION public.shared_fn(int) TO alice');
is(alice(q{SELECT count(*) FROM kappa_replay('alice.fv_fn')}), '1', 'alice replays alice.fv_fn after the GRANT');
is(status(), 'alice.fv_chk live, alice.fv_fn live, alice.fv_ok live, alice.fv_win live', 'the view is live again');
$view_id{fv_fn} = $su->("SELECT view_id FROM kappa.views WHERE view_name = 'fv_fn'");
check_view('fv_fn', [ 'A', 'B' ], 'replayed');
produce_batch('C', 400);
is(alice("SELECT kappa_wait('fv', '60 seconds')"), 't', 'batch C consumed');
check_view($_, [ 'A', 'B', 'C' ], 'batch C') foreach sort keys %views;
is($worker->('fv'), $fv_worker, 'the worker did not restart');

# ---------------------------------------------------------------------------
# A rows table that refuses a row: that view fails, alone, and is dropped

my $max_n = $su->('SELECT max(n) FROM alice.fv_chk');
is(alice("ALTER TABLE kappa.view_$view_id{fv_chk} ADD CONSTRAINT no_more CHECK (n <= $max_n); SELECT 1"), '1',
	"alice adds a CHECK (n <= $max_n) to the rows table of her view alice.fv_chk");
produce_batch('D', 400);
ok(wait_until(sub { $su->(q{SELECT status FROM kappa_views WHERE name = 'alice.fv_chk'}) eq 'failed' }, 60),
	'the view whose table refuses its rows failed');
is(alice("SELECT kappa_wait('fv', '60 seconds')"), 't', 'batch D consumed by the other views');
is(status(), 'alice.fv_chk failed, alice.fv_fn live, alice.fv_ok live, alice.fv_win live', 'only that view failed');
like(alice(q{SELECT status_detail FROM kappa_views WHERE name = 'alice.fv_chk'}),
	qr/violates check constraint "no_more"/, 'alice sees the constraint\'s error in status_detail');
is($su->("SELECT status_sqlstate FROM kappa.views WHERE view_id = $view_id{fv_chk}"), '23514',
	'its SQLSTATE is 23514');
check_view('fv_chk', [ 'A', 'B', 'C' ], 'failed');
check_view($_, [ 'A', 'B', 'C', 'D' ], 'batch D') foreach qw(fv_fn fv_ok fv_win);
is((run_as('alice', q{SELECT kappa_drop_view('alice.fv_chk')}))[0], '', 'alice drops the failed view');
is($su->(qq{SELECT count(*) FROM kappa.views WHERE view_id = $view_id{fv_chk}}) . '/'
	  . $su->(qq{SELECT count(*) FROM pg_class WHERE relname IN ('fv_chk', 'view_$view_id{fv_chk}')}),
	'0/0', 'it is gone, with its rows table');
delete $views{fv_chk};
produce_batch('E', 400);
is(alice("SELECT kappa_wait('fv', '60 seconds')"), 't', 'batch E consumed');
is(status(), 'alice.fv_fn live, alice.fv_ok live, alice.fv_win live', 'the other views are live');
check_view($_, [ 'A', 'B', 'C', 'D', 'E' ], 'batch E') foreach sort keys %views;
is($worker->('fv'), $fv_worker, 'the worker of fv never restarted');
is($su->(q{SELECT sum(consumed) || '/' || sum(dead_lettered) FROM kappa_stats WHERE stream = 'fv' AND view IS NULL}),
	'2000/0', 'stream fv consumed every event once');

# ---------------------------------------------------------------------------
# The memory limit stops a stream, and only raising it starts it again

$su->(q{ALTER SYSTEM SET kappa.max_state_memory = '1MB'; SELECT pg_reload_conf()});
$su->(qq{
	SELECT kappa_create_stream('mem', topic => 'mem', brokers => '$b', columns => 'key text, v int');
	SELECT kappa_create_view('big', 'SELECT key, count(*) AS n, sum(v) AS s FROM mem GROUP BY key');
	SELECT kappa_create_view('small', 'SELECT count(*) AS n, sum(v) AS s FROM mem');
});
# 120,000 events, 100,000 keys (20,000 of them twice)
foreach my $p (0, 1)
{
	my $file = "$dir/mem-$p.txt";
	open my $fh, '>', $file or die $!;
	for (my $i = $p; $i < 120000; $i += 2)
	{
		printf $fh qq({"key": "k%d", "v": %d}\n), $i % 100000, $i % 7;
	}
	close $fh;
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'mem', '-p', $p, '-l', $file ]) or die "kcat failed";
}
ok(wait_until(sub { $worker->('mem') =~ /^failed\|/ }, 120), 'the stream over kappa.max_state_memory stopped: failed');
my $failed = $worker->('mem');
like($su->(q{SELECT last_sqlstate || ' ' || last_error FROM kappa_workers WHERE stream = 'mem'}),
	qr/^53200 the open state of stream "mem" takes \d+ MB, more than kappa.max_state_memory \(1 MB\); view public\.big holds \d+ MB$/,
	'last_error names the view that holds the most (53200)');
# The launcher looks every second and would restart a broken worker after a
# second: a stream stopped for its memory must stay stopped.
ok(!wait_until(sub { $worker->('mem') ne $failed }, 5), "it is not started again ($failed for 5 seconds)");
my $stops = () = slurp_file($node->logfile) =~ /kappa stream "mem" stopped: its open state/g;
is($stops, 1, 'it stopped once');
is($worker->('fv'), $fv_worker, 'the other stream\'s worker goes on');

$su->(q{ALTER SYSTEM SET kappa.max_state_memory = '256MB'; SELECT pg_reload_conf()});
ok(wait_until(sub { $worker->('mem') =~ /^running\|\d+\|/ }, 60), 'raising the limit starts it again');
is($su->("SELECT kappa_wait('mem', '120 seconds')"), 't', 'and it consumes everything');
is($su->(q{SELECT count(*) || '/' || sum(n) || '/' || sum(s) || '/' || count(*) FILTER (WHERE n = 2) FROM big}),
	$su->(q{SELECT count(DISTINCT i % 100000) || '/' || count(*) || '/' || sum(i % 7) || '/'
		|| (SELECT count(*) FROM (SELECT i % 100000 FROM generate_series(0, 119999) i GROUP BY 1 HAVING count(*) = 2) x)
		FROM generate_series(0, 119999) i}),
	'view big: 100,000 keys, every event once');
is($su->(q{SELECT count(*) FROM big b FULL JOIN
		(SELECT 'k' || (i % 100000) AS key, count(*) AS n, sum(i % 7) AS s FROM generate_series(0, 119999) i GROUP BY 1) o
		USING (key) WHERE (b.n, b.s) IS DISTINCT FROM (o.n, o.s)}),
	'0', 'view big equals its query as batch SQL, row by row');
is($su->('SELECT n || \'/\' || s FROM small'),
	$su->('SELECT count(*) || \'/\' || sum(i % 7) FROM generate_series(0, 119999) i'), 'view small is exact');
is($su->(q{SELECT sum(consumed) || '/' || sum(dead_lettered) FROM kappa_stats WHERE stream = 'mem' AND view IS NULL}),
	'120000/0', 'stream mem consumed every event once');
is($worker->('fv'), $fv_worker, 'the worker of fv never restarted');

$node->stop;
stop_broker($broker);
done_testing();
