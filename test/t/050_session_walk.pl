# The session walk (issue 11): a seeded random walk over kappa's whole SQL
# API in one long-lived session, and, for most of the run, a second
# session walking concurrently.  Every call of a session happens in the
# same backend (the walk checks its pid), so what one call leaves behind
# (memory, caches, locks, GUCs, relcache entries) meets the next.
#
# Each step chooses an operation whose preconditions hold in a model of
# what exists (streams, views, versions, what was produced to which
# topic), runs it, and checks the outcome: success, or an error whose
# SQLSTATE is in the documented set for that call (%ALLOW, from
# docs/reference.md); where the model knows the answer (a probe of an
# unknown object, a privilege, a bad argument), exactly that SQLSTATE.
# kappa_check must find no difference whenever it runs.  Streams are also
# altered (kappa_alter_stream) in ways that change no view's result, which
# restarts their workers in the middle of the other calls.  At the end every
# stream is waited for, and every view and version equals its query run as
# batch SQL over a table of everything produced (the oracle, walk.ev), and
# kappa_check finds nothing; the server log shows no crash, TRAP or heap
# corruption.
#
# KAPPA_WALK_SEED (default 11) chooses the walk; KAPPA_WALK_STEPS (300)
# the steps per session; KAPPA_WALK_SECOND_SESSION=0 leaves the second
# session out (then a seed gives nearly the same run each time);
# KAPPA_WALK_STEP_TIMEOUT (60 s) bounds one statement and
# KAPPA_WALK_WAIT_TIMEOUT (60 s) is kappa_wait's; KAPPA_WALK_SKIP leaves
# operations out (see choose()); KAPPA_WALK_CONF adds postgresql.conf
# lines.  The seed is printed first, and every statement goes to
# tmp_check/log/050_session_walk_trace.sql.  scripts/valgrind-walk runs this
# walk with the server under valgrind.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use Cwd qw(abs_path);
use File::Copy qw(copy);
use File::Find qw(find);
use File::Path qw(make_path);
use IPC::Run;
use POSIX qw(strftime);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $seed = $ENV{KAPPA_WALK_SEED} // 11;
my $steps = $ENV{KAPPA_WALK_STEPS} // 300;
my $second = $ENV{KAPPA_WALK_SECOND_SESSION} // 1;
my $step_timeout = $ENV{KAPPA_WALK_STEP_TIMEOUT} // 60;
my $wait_seconds = $ENV{KAPPA_WALK_WAIT_TIMEOUT} // 60;    # kappa_wait's timeout
my $max_failures = 25;
# Operations to leave out, to isolate a failure: e.g. "feed,cancel"
# (names as in choose(): create_stream, alter_stream, drop_stream, create_view, drop_view,
# produce, wait, flood, replay, check, compare, promote, feed, peek, decode,
# archive_read, register, catalog, select, probe, cancel, peer).
my %skip = map { $_ => 1 } split /[,\s]+/, $ENV{KAPPA_WALK_SKIP} // '';
diag("session walk: seed $seed (KAPPA_WALK_SEED), $steps steps per session, "
	  . ($second ? 'two sessions' : 'one session'));
srand($seed);
my $started = Time::HiRes::time();

# Documented SQLSTATEs per call (docs/reference.md).  57014 is added for
# the replay that the other session cancels; 42P01 for relations the
# other session may drop meanwhile.
my @create_view_errors = qw(42P07 42601 42704 42703 42883 42804 0A000 42P17 42803 42501 22007 22023);
my %ALLOW = (
	create_stream => [qw(42602 42622 42939 42601 42704 0A000 42701 42703 42804 22004 22023 42501 22015 42710 55000)],
	alter_stream => [qw(42704 42501)],
	drop_stream => [qw(42704 42501 2BP01)],    # 2BP01: views depend on it (not in reference.md)
	create_view => [@create_view_errors],
	drop_view => [qw(42704 42809 42501)],
	wait => [qw(42704 42501 08006)],
	produce => [qw(42704 42501 08006 54000)],
	peek => [qw(42704 42501 08006 54000 22023)],
	settings => [qw(42704)],
	decode => [qw(42704)],
	feed => [qw(55006 42703 42804 42501 42P01 42704)],
	check => [qw(42704 42809 55000 08006 42501 40001)],
	replay => [qw(55000 22023 42809 42501 42704 08006 40001), @create_view_errors],
	compare => [qw(42704 42809 42501)],
	promote => [qw(42704 42809 42501)],
	archive_read => [qw(58P01 XX001 22023 42501)],
	archive_register => [qw(42704 42501 22023)],
	catalog => [],
	select => [qw(42501)],
	set => [],
	admin => [],
	cancel => [],
);

# ---------------------------------------------------------------------------
# The server, the broker, and the oracle's table.

my @topics_a = ('wa1:1', 'wa2:2', 'wa3:4');
my @topics_b = ('wb1:2', 'wb2:3');
my $broker = start_broker(@topics_a, @topics_b, 'wcap:1');
# the broker goes even if the test dies half-way
END { eval { $broker->{handle}->kill_kill if $broker && $broker->{handle}->pumpable; }; }
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $fixtures = abs_path('test/fixtures/eventhubs-capture');
my $node = kappa_node('walk',
	conf => "kappa.flush_interval = '100ms'\nkappa.flush_events = 2000\n"
	  . "kappa.archive_roll_size = '1MB'\nkappa.archive_roll_interval = '3s'\n"
	  . "kappa.launcher_naptime = '1s'\nlog_min_messages = warning\n"
	  . ($ENV{KAPPA_WALK_CONF} // ''));
$node->safe_psql('postgres', q{
	CREATE ROLE walk_admin LOGIN IN ROLE kappa_admin;
	CREATE ROLE walk_nobody LOGIN;
	CREATE SCHEMA walk;
	-- every message produced, with where it landed: the oracle's events
	CREATE TABLE walk.ev (topic text NOT NULL, partition int NOT NULL, "offset" bigint NOT NULL,
		id text, dev text, usr text, ts timestamptz, v numeric, temp float8,
		payload text, key text, good boolean NOT NULL, batch int NOT NULL,
		PRIMARY KEY (topic, partition, "offset"));
	CREATE TABLE walk.plain (x int);
	CREATE TABLE walk.nothing (partition int, "offset" bigint, payload text);
});

my %topics;
foreach my $t (@topics_a, @topics_b, 'wcap:1')
{
	my ($name, $parts) = split /:/, $t;
	$topics{$name} = { name => $name, parts => $parts, seq => 0, msgs => 0, good => [], flooded => 0 };
}

# The model of each session: its streams (with their views and versions),
# its topics, and the counters that name new objects.
my %S = (
	a => { topics => [ map { (split /:/)[0] } @topics_a ], streams => {}, dropped => [],
		nstream => 0, nview => 0, nfeed => 0, nreg => 0, nextra => 0 },
	b => { topics => [ map { (split /:/)[0] } @topics_b ], streams => {}, dropped => [],
		nstream => 0, nview => 0, nfeed => 0, nreg => 0, nextra => 0 },
);
my $capture_stream_made = 0;
my %archives_used;    # "directory/stream" of every archive so far

# Views: templates over %S (the stream), each also a batch query over the
# oracle's events.  Sums are over numeric, floats only in max/min, so the
# batch results are exact whatever the order; nothing is ever late (the
# watermark is a day, event times span six hours).
my $session_oracle = q{
	WITH o AS (SELECT usr, ts, v,
			CASE WHEN ts - lag(ts) OVER (PARTITION BY usr ORDER BY ts) < interval '10 minutes' THEN 0 ELSE 1 END AS brk
		FROM %S),
	g AS (SELECT usr, ts, v, sum(brk) OVER (PARTITION BY usr ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM o)
	SELECT usr, min(ts) AS window_start, max(ts) + interval '10 minutes' AS window_end, count(*) AS n, sum(v) AS s
	FROM g GROUP BY usr, sid};
my %TPL = (
	tumble => { q => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s, max(temp) AS hi
		FROM %S, kappa_tumble(ts, '30 minutes') w GROUP BY dev, w.window_start, w.window_end} },
	tumble_h => { q => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s, avg(v) AS a
		FROM %S, kappa_tumble(ts, '1 hour') w GROUP BY dev, w.window_start, w.window_end} },
	hop => { q => q{SELECT usr, w.window_start, w.window_end, count(*) AS n, max(v) AS mx
		FROM %S, kappa_hop(ts, '1 hour', '20 minutes') w GROUP BY usr, w.window_start, w.window_end} },
	running => { q => q{SELECT dev, count(*) AS n, sum(v) AS s, min(ts) AS first_ts, max(ts) AS last_ts
		FROM %S GROUP BY dev} },
	running_f => { q => q{SELECT dev, count(*) AS n, sum(v) AS s, avg(v) AS a FROM %S WHERE v > 20 GROUP BY dev} },
	total => { q => q{SELECT count(*) AS n, sum(v) AS s, count(*) FILTER (WHERE temp > 20) AS warm FROM %S},
		global => 1 },
	distinct => { q => q{SELECT dev, count(DISTINCT usr) AS users, array_agg(DISTINCT usr) AS us, min(temp) AS lo
		FROM %S GROUP BY dev} },
	session => { q => q{SELECT usr, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM %S, kappa_session(ts, '10 minutes') w GROUP BY usr, w.window_start, w.window_end},
		oracle => $session_oracle },
);
my @tpl_names = sort keys %TPL;

# ---------------------------------------------------------------------------
# Small helpers.

sub pick { return $_[ int(rand(@_)) ]; }
sub chance { return rand() < $_[0]; }
sub lit { my ($s) = @_; return 'NULL' unless defined $s; $s =~ s/'/''/g; return "'$s'"; }
sub ident_view { my ($name) = @_; return $name =~ /^[a-z_][a-z0-9_]*$/ ? $name : '"' . $name . '"'; }

my $base_epoch = 1767225600;    # 2026-01-01 00:00:00 UTC
sub iso_ms
{
	my ($ms) = @_;
	return strftime('%Y-%m-%dT%H:%M:%S', gmtime($base_epoch + int($ms / 1000))) . sprintf('.%03dZ', $ms % 1000);
}

# A view's query text over a stream, or its batch query over the oracle.
sub view_query { my ($tpl, $stream) = @_; (my $q = $TPL{$tpl}{q}) =~ s/%S/$stream/g; return $q; }

sub oracle_events
{
	my ($st, $view, $spec) = @_;
	my $topic = lit($st->{topic});
	my $low = '';
	if ($view->{lows})
	{
		my @w = map { "WHEN $_ THEN $view->{lows}{$_}" } sort keys %{ $view->{lows} };
		$low = @w ? " AND e.\"offset\" >= CASE e.partition " . join(' ', @w) . " ELSE 0 END" : '';
	}
	(my $dlow = $low) =~ s/e\./d./g;
	my $bounds = (defined $spec->{since} ? " AND e.ts >= '$spec->{since}'" : '')
	  . (defined $spec->{until} ? " AND e.ts < '$spec->{until}'" : '');
	my $dedup = $st->{dedup}
	  ? " AND NOT EXISTS (SELECT FROM walk.ev d WHERE d.topic = e.topic AND d.partition = e.partition"
	  . " AND d.id = e.id AND d.good AND d.\"offset\" < e.\"offset\"$dlow)"
	  : '';
	return "(SELECT e.id, e.dev, e.usr, e.ts, e.v, e.temp FROM walk.ev e WHERE e.topic = $topic AND e.good"
	  . "$low$bounds$dedup) AS $st->{name}";
}

sub oracle_query
{
	my ($st, $view, $spec) = @_;
	my $events = oracle_events($st, $view, $spec);
	my $t = $TPL{ $spec->{tpl} };
	(my $q = $t->{oracle} // $t->{q}) =~ s/%S/$events/g;
	$q = "SELECT * FROM ($q) g WHERE n > 0" if $t->{global};
	return $q;
}

# Messages of the topic a view's history holds (what a replay reads).
sub history_count_sql
{
	my ($st, $view) = @_;
	my $low = '';
	if ($view->{lows})
	{
		my @w = map { "WHEN $_ THEN $view->{lows}{$_}" } sort keys %{ $view->{lows} };
		$low = " AND \"offset\" >= CASE partition " . join(' ', @w) . " ELSE 0 END" if @w;
	}
	return "SELECT count(*) FROM walk.ev WHERE topic = " . lit($st->{topic}) . $low;
}

# The earliest offset the broker still holds, per partition of a topic.
sub log_starts
{
	my ($topic) = @_;
	my %low;
	foreach my $p (0 .. $topics{$topic}{parts} - 1)
	{
		my ($out, $err) = ('', '');
		IPC::Run::run([ 'kcat', '-Q', '-b', $b, '-t', "$topic:$p:-2" ], '>', \$out, '2>', \$err)
		  or die "kcat -Q failed: $err";
		$out =~ /offset (\d+)/ or die "kcat -Q said: $out";
		$low{$p} = $1;
	}
	return \%low;
}

# ---------------------------------------------------------------------------
# Sessions: one psql each (PostgreSQL::Test::Cluster's background_psql),
# fed one action at a time; an action's end is seen by markers echoed on
# stdout and stderr after it.  Errors are read, with their SQLSTATE, from
# stderr (VERBOSITY verbose).

my @history;      # every action, interleaved: "tick session: sql => outcome"
my @failures;
my $stop = 0;     # a crash or a hang: the walk cannot go on
my $calls = 0;
my %outcomes;     # "call outcome" => count, for the summary

# Every statement sent, by session and tick, to replay a failure by hand.
my $trace_file = "$PostgreSQL::Test::Utils::log_path/050_session_walk_trace.sql";
open my $trace, '>', $trace_file or die "$trace_file: $!";
$trace->autoflush(1);
diag("the walk's statements go to $trace_file");

my %sess;
$sess{a} = WalkSession->new($node, 'a', $step_timeout);
$sess{b} = WalkSession->new($node, 'b', $step_timeout) if $second;

sub record_failure
{
	my ($label, $msg) = @_;
	push @failures, $msg;
	my @last = @history > 20 ? @history[ -20 .. -1 ] : @history;
	my $report = "walk failure (seed $seed, session $label): $msg\nlast steps:\n  " . join("\n  ", @last);
	if (@failures <= $max_failures) { fail($msg); diag($report); }
	return;
}

sub crash_report
{
	# the postmaster logs the end of the process a moment after the client sees it
	wait_until(sub { slurp_file($node->logfile) =~ /terminated by signal|exited with exit code [1-9]/ }, 10);
	my $log = slurp_file($node->logfile);
	my @lines = grep { /terminated by signal|TRAP:|double free|corrupted|Failed process was running|PANIC/ }
	  split /\n/, $log;
	@lines = @lines[ -10 .. -1 ] if @lines > 10;
	return join("\n", @lines);
}

# Run queued actions on every session until all queues are empty.  An
# action: { sql => text or sub, call => key of %ALLOW, expect => 'ok' or a
# SQLSTATE (or undef: any allowed outcome), allow_extra => [...],
# ready => sub (wait for another session), check => sub ($r) returning
# nothing, 'again' (resend, bounded by {tries}), or more actions to run
# first }.
my %queue = (a => [], b => []);
my $tick = 0;

sub run_queues
{
	my %current;
	while (!$stop)
	{
		my $active = 0;
		foreach my $l (sort keys %queue)
		{
			my $s = $sess{$l} or next;
			if ($s->{busy})
			{
				$active = 1;
				next unless $s->poll;
				finish_action($l, $current{$l}, $s->{result});
				last if $stop;
			}
			next if $s->{busy};
			my $q = $queue{$l};
			next unless @$q;
			$active = 1;
			my $act = $q->[0];
			if ($act->{ready} && !$act->{ready}->())
			{
				$act->{ready_deadline} //= Time::HiRes::time() + $step_timeout;
				if (Time::HiRes::time() > $act->{ready_deadline})
				{
					record_failure($l, "session $l waited ${step_timeout}s for another session's step");
					$stop = 1;
				}
				next;
			}
			shift @$q;
			my $sql = ref $act->{sql} ? $act->{sql}->() : $act->{sql};
			if (!defined $sql)    # nothing to do after all
			{
				next;
			}
			$act->{sent_sql} = $sql;
			$current{$l} = $act;
			print $trace "-- [$tick] session $l\n$sql\n";
			$s->send($sql);
		}
		last unless $active;
		usleep(1000);
	}
	return;
}

sub short { my ($s) = @_; $s =~ s/\s+/ /g; return length($s) > 220 ? substr($s, 0, 220) . '...' : $s; }

sub finish_action
{
	my ($l, $act, $r) = @_;
	$calls++;
	my $outcome = $r->{status} ne 'done' ? uc $r->{status}
	  : @{ $r->{codes} } ? $r->{codes}[0] : 'ok';
	$outcome = 'CRASH' if $r->{crash};
	push @history, sprintf('[%d] %s: %s => %s%s', $tick, $l, short($act->{sent_sql}), $outcome,
		$outcome =~ /^[0-9A-Z]{5}$/ && $r->{err} =~ /ERROR:\s+\w{5}: ([^\n]*)/ ? " ($1)" : '');
	$outcomes{ ($act->{call} // '?') . " $outcome" }++;
	if ($outcome eq 'CRASH' || $outcome eq 'DEAD')
	{
		record_failure($l, "the backend of session $l died during: " . short($act->{sent_sql})
			  . "\nserver log:\n" . crash_report());
		$stop = 1;
		return;
	}
	if ($outcome eq 'TIMEOUT')
	{
		record_failure($l, "no answer within ${step_timeout}s to: " . short($act->{sent_sql}));
		$stop = 1;
		return;
	}
	if ($r->{err} =~ /\b(PANIC|FATAL):/)
	{
		record_failure($l, "$1 from: " . short($act->{sent_sql}) . "\n$r->{err}");
	}
	my @allowed = (@{ $ALLOW{ $act->{call} } // [] }, @{ $act->{allow_extra} // [] });
	foreach my $code (@{ $r->{codes} })
	{
		next if grep { $_ eq $code } @allowed;
		record_failure($l, "SQLSTATE $code is not documented for $act->{call}: " . short($act->{sent_sql})
			  . "\n$r->{err}");
		last;
	}
	my $documented = $outcome eq 'ok' || grep { $_ eq $outcome } @allowed;
	if (defined $act->{expect} && $outcome ne $act->{expect} && $documented)
	{
		record_failure($l, "expected $act->{expect}, got $outcome: " . short($act->{sent_sql}) . "\n$r->{err}");
	}
	if ($act->{check})
	{
		my @more = $act->{check}->($r, $outcome);
		if (@more == 1 && !ref $more[0] && defined $more[0] && $more[0] eq 'again')
		{
			$act->{tries} //= 0;
			if (++$act->{tries} < ($act->{max_tries} // 200))
			{
				unshift @{ $queue{$l} }, $act;
				usleep(50_000);    # the poll interval of a bounded wait on a condition
			}
			else
			{
				record_failure($l, "condition never held after $act->{tries} tries: " . short($act->{sent_sql}));
			}
		}
		elsif (@more && ref $more[0])
		{
			unshift @{ $queue{$l} }, @more;
		}
	}
	return;
}

sub q_add { my ($l, @acts) = @_; push @{ $queue{$l} }, @acts; return; }

# One line of a tuples-only, unaligned result, or all of them.
sub rows { my ($r) = @_; return grep { length } split /\n/, $r->{out}; }
sub value { my ($r) = @_; my @rows = rows($r); return $rows[0] // ''; }

sub check_value
{
	my ($l, $what, $got, $want) = @_;
	record_failure($l, "$what: got '$got', expected '$want'") unless $got eq $want;
	return;
}

# ---------------------------------------------------------------------------
# Operations.  Each queues the actions of one step of session $l.

sub streams_of { my ($l) = @_; return map { $S{$l}{streams}{$_} } sort keys %{ $S{$l}{streams} }; }
sub views_of
{
	my ($l) = @_;
	return map { my $st = $_; map { $st->{views}{$_} } sort keys %{ $st->{views} } } grep { !$_->{capture} } streams_of($l);
}
sub user_streams { my ($l) = @_; return grep { !$_->{capture} } streams_of($l); }

sub op_create_stream
{
	my ($l) = @_;
	my $m = $S{$l};
	my $name;
	if (@{ $m->{dropped} } && chance(0.3))
	{
		$name = pick(@{ $m->{dropped} });    # a name used before, perhaps with the same archive
	}
	else
	{
		$name = "${l}_s" . ++$m->{nstream};
	}
	my $topic = pick(@{ $m->{topics} });
	my $archive = chance(0.6) ? (chance(0.5) ? "$dir/archive_$l" : "$dir/archive_${l}_$name" . int(rand(1000))) : undef;
	my $dedup = chance(0.4);
	my $st = { name => $name, topic => $topic, archive => $archive, dedup => $dedup, views => {},
		# an archive directory this stream's name used before holds older files
		archive_reused => $archive && $archives_used{"$archive/$name"} };
	my $sql = "SELECT kappa_create_stream(" . lit($name) . ", topic => " . lit($topic) . ", brokers => '$b', "
	  . "columns => 'id text, dev text, usr text, ts timestamptz NOT NULL, v numeric, temp float8', "
	  . "event_time => 'ts', watermark => '1 day'"
	  . ($dedup ? ", dedup_key => 'id'" : '')
	  . ($archive ? ", archive => " . lit($archive) : '') . ");";
	q_add($l, { sql => $sql, call => 'create_stream', expect => 'ok', check => sub {
		my ($r, $o) = @_;
		return unless $o eq 'ok';
		$m->{streams}{$name} = $st;
		$m->{dropped} = [ grep { $_ ne $name } @{ $m->{dropped} } ];
		$archives_used{"$archive/$name"} = 1 if $archive;
		return;
	} });
	return;
}

sub op_capture_stream
{
	my ($l) = @_;
	my $name = "${l}_cap";
	$capture_stream_made = 1;
	q_add($l, { sql => "SELECT kappa_create_stream('$name', topic => 'wcap', brokers => '$b', columns => 'x text');",
		call => 'create_stream', expect => 'ok', check => sub {
			$S{$l}{streams}{$name} = { name => $name, topic => 'wcap', capture => 1, views => {}, registered => 0 };
			return;
		} });
	return;
}

sub op_drop_stream
{
	my ($l) = @_;
	my $st = pick(streams_of($l));
	my $has_views = %{ $st->{views} } ? 1 : 0;
	my $cascade = chance(0.7);
	q_add($l, { sql => "SELECT kappa_drop_stream(" . lit($st->{name}) . ($cascade ? ', cascade => true' : '') . ");",
		call => 'drop_stream', expect => ($has_views && !$cascade ? '2BP01' : 'ok'), check => sub {
			my ($r, $o) = @_;
			return unless $o eq 'ok';
			delete $S{$l}{streams}{ $st->{name} };
			push @{ $S{$l}{dropped} }, $st->{name} unless $st->{capture};
			return;
		} });
	return;
}

# Alter a stream in ways that change no view's result: its idle timeout,
# a librdkafka option, or a column (and path) no view reads.  Each restarts
# the stream's worker, in the middle of whatever the sessions do.
sub op_alter_stream
{
	my ($l) = @_;
	my $m = $S{$l};
	my $st = pick(user_streams($l));
	my $what = int(rand(3));
	my $args = $what == 0 ? "idle_timeout => '" . pick('20 seconds', '30 seconds', '1 minute') . "'"
	  : $what == 1 ? "options => '{\"fetch.wait.max.ms\": " . pick(100, 200, 500) . "}'"
	  : "add_columns => 'extra" . ++$m->{nextra} . " text', add_paths => '{\"extra$m->{nextra}\": \"meta.x\"}'";
	q_add($l, { sql => "SELECT kappa_alter_stream(" . lit($st->{name}) . ", $args);",
		call => 'alter_stream', expect => 'ok' });
	return;
}

sub op_create_view
{
	my ($l) = @_;
	my $st = pick(user_streams($l));
	my $name = "${l}_v" . ++$S{$l}{nview};
	my $tpl = pick(@tpl_names);
	my $opts = chance(0.2) ? ", options => '{\"start\": \"earliest\"}'"
	  : chance(0.2) ? ", options => '{\"start\": \"2020-01-01 00:00:00+00\"}'" : '';
	my $view = { name => $name, stream => $st->{name}, spec => { tpl => $tpl }, versions => {} };
	# where the log begins now: the view begins there (retention may have cut it)
	$view->{lows} = log_starts($st->{topic}) if $topics{ $st->{topic} }{flooded};
	q_add($l, { sql => "SELECT kappa_create_view('$name', \$q\$" . view_query($tpl, $st->{name}) . "\$q\$$opts);",
		call => 'create_view', expect => 'ok', check => sub {
			my ($r, $o) = @_;
			return unless $o eq 'ok';
			$st->{views}{$name} = $view;
			return;
		} });
	# on a cut log, wait for the worker to begin the view before anything
	# more is produced (which would move the log's start again)
	q_add($l, op_wait_action($l, $st)) if $view->{lows};
	return;
}

sub op_drop_view
{
	my ($l) = @_;
	my $view = pick(views_of($l));
	my $st = $S{$l}{streams}{ $view->{stream} };
	q_add($l, { sql => "SELECT kappa_drop_view('$view->{name}');", call => 'drop_view', expect => 'ok', check => sub {
		my ($r, $o) = @_;
		delete $st->{views}{ $view->{name} } if $o eq 'ok';
		return;
	} });
	return;
}

# Events: JSON like the other tests' (device, user, event time, value,
# temperature), keyed by id; some with the time in epoch milliseconds,
# some without v.
sub new_event
{
	my ($topic) = @_;
	my $t = $topics{$topic};
	my $id = "$topic-" . ++$t->{seq};
	my $ms = int(rand(6 * 3600 * 1000));
	my %e = (id => $id, dev => 'd' . int(rand(6)), usr => 'u' . int(rand(5)), ts => iso_ms($ms),
		v => chance(0.1) ? undef : sprintf('%.2f', rand(100)), temp => sprintf('%.1f', rand(40) - 5));
	my $json_ts = chance(0.2) ? $base_epoch * 1000 + $ms : "\"$e{ts}\"";
	$e{payload} = "{\"id\":\"$id\",\"dev\":\"$e{dev}\",\"usr\":\"$e{usr}\",\"ts\":$json_ts"
	  . (defined $e{v} ? ",\"v\":$e{v}" : '') . ",\"temp\":$e{temp}}";
	$e{key} = $id;
	$e{good} = 1;
	return \%e;
}

my @bad_payloads = ('["broken"', '{"id":"bad1","ts":"not a time","dev":"d1"}', '{"id":"bad2","dev":"d1"}',
	'{"id":"bad3","ts":"2026-01-01T00:00:00Z","v":"abc"}', 'not json', '{"id":"bad4","ts":"2026-01-01T01:00:00Z","temp":"warm"}');

my $batches = 0;
sub produce_sql
{
	my ($st, @events) = @_;
	my $batch = ++$batches;
	my @values = map {
		"(" . join(', ', lit($_->{id}), lit($_->{dev}), lit($_->{usr}),
			(defined $_->{ts} ? lit($_->{ts}) . '::timestamptz' : 'NULL::timestamptz'),
			(defined $_->{v} ? "$_->{v}::numeric" : 'NULL::numeric'),
			(defined $_->{temp} ? "$_->{temp}::float8" : 'NULL::float8'),
			lit($_->{payload}), lit($_->{key}), $_->{good} ? 'true' : 'false') . ")"
	} @events;
	return "WITH src(id, dev, usr, ts, v, temp, payload, key, good) AS (VALUES " . join(",\n", @values) . "),\n"
	  . "ins AS (INSERT INTO walk.ev SELECT " . lit($st->{topic}) . ", k.partition, k.\"offset\", s.id, s.dev, s.usr, "
	  . "s.ts, s.v, s.temp, s.payload, s.key, s.good, $batch FROM src s, LATERAL kappa_produce(" . lit($st->{name})
	  . ", s.payload, s.key) k RETURNING 1)\nSELECT count(*) FROM ins;";
}

sub produce_action
{
	my ($l, $st, @events) = @_;
	my $t = $topics{ $st->{topic} };
	return { sql => produce_sql($st, @events), call => 'produce', expect => 'ok', check => sub {
		my ($r, $o) = @_;
		return unless $o eq 'ok';
		check_value($l, "kappa_produce of " . scalar(@events) . " messages", value($r), scalar(@events));
		$t->{msgs} += @events;
		push @{ $t->{good} }, grep { $_->{good} } @events;
		return;
	} };
}

sub op_produce
{
	my ($l) = @_;
	my $st = pick(user_streams($l));
	my $t = $topics{ $st->{topic} };
	my @events = map { new_event($st->{topic}) } 1 .. 1 + int(rand(25));
	if (chance(0.3))    # some that cannot be decoded: dead letters
	{
		push @events, map { +{ payload => pick(@bad_payloads), key => "bad", good => 0 } } 1 .. 1 + int(rand(2));
	}
	if (@{ $t->{good} } && chance(0.4))    # the same messages again: duplicates
	{
		push @events, map { my $e = pick(@{ $t->{good} }); +{ %$e } } 1 .. 1 + int(rand(4));
	}
	q_add($l, produce_action($l, $st, @events));
	return;
}

sub op_wait_action
{
	my ($l, $st) = @_;
	return { sql => "SELECT kappa_wait(" . lit($st->{name}) . ", '$wait_seconds seconds');", call => 'wait',
		expect => 'ok', check => sub {
			my ($r, $o) = @_;
			return unless $o eq 'ok';
			check_value($l, "kappa_wait('$st->{name}')", value($r), 't');
			$st->{waited} = 1;
			return;
		} };
}

sub op_wait { my ($l) = @_; q_add($l, op_wait_action($l, pick(user_streams($l)))); return; }

# Enough big messages to one partition that the broker's retention (5 MiB
# per partition) cuts the log: the stream's history is then split between
# archive and log.  Every stream of the topic is waited for first, so that
# nothing is cut before it was consumed.
sub op_flood
{
	my ($l) = @_;
	my @cands = grep { $_->{archive} } user_streams($l);
	my $st = pick(@cands);
	my @same = grep { $_->{topic} eq $st->{topic} } user_streams($l);
	foreach my $chunk (1 .. 3)
	{
		q_add($l, map { op_wait_action($l, $_) } @same);
		my @events = map {
			my $e = new_event($st->{topic});
			$e->{key} = 'flood';
			$e->{flood} = 1;
			$e
		} 1 .. 24;
		my $sql = produce_sql($st, @events);
		# the padding is added by the server, not sent through psql
		$sql =~ s/LATERAL kappa_produce\(('[^']*'), s\.payload, s\.key\)/LATERAL kappa_produce($1, rtrim(s.payload, '}') || ',"pad":"' || repeat('p', 100000) || '"}', s.key)/;
		$sql =~ s/s\.payload, s\.key, s\.good, (\d+) FROM/rtrim(s.payload, '}') || ',"pad":"' || repeat('p', 100000) || '"}', s.key, s.good, $1 FROM/;
		my $act = produce_action($l, $st, @events);
		$act->{sql} = $sql;
		my $inner = $act->{check};
		$act->{check} = sub {
			my @r = $inner->(@_);
			$topics{ $st->{topic} }{flooded} = 1;
			# flood events are not re-sent as duplicates (too big)
			$topics{ $st->{topic} }{good} = [ grep { !$_->{flood} } @{ $topics{ $st->{topic} }{good} } ];
			return @r;
		};
		q_add($l, $act);
	}
	q_add($l, map { op_wait_action($l, $_) } @same);
	return;
}

# kappa_check must find no difference whenever it runs.
sub check_action
{
	my ($l, $name, $st, %o) = @_;
	my $no_history = !$st->{archive} && $topics{ $st->{topic} }{flooded};
	return { sql => "SELECT side, \"row\" FROM kappa_check(" . lit(ident_view($name)) . ");", call => 'check',
		expect => $o{expect} // ($no_history ? undef : 'ok'), allow_extra => $o{allow_extra}, check => sub {
			my ($r, $o) = @_;
			if ($o eq 'ok' && rows($r))
			{
				my @rows = rows($r);
				record_failure($l, "kappa_check('$name') found " . scalar(@rows) . " differences, e.g. $rows[0]");
			}
			return;
		} };
}

sub op_check
{
	my ($l) = @_;
	my $view = pick(views_of($l));
	my $st = $S{$l}{streams}{ $view->{stream} };
	my @names = ($view->{name}, map { "$view->{name}\@v$_" } sort keys %{ $view->{versions} });
	q_add($l, check_action($l, pick(@names), $st));
	return;
}

sub rand_time { my ($lo, $hi) = @_; return strftime('%Y-%m-%d %H:%M:%S+00', gmtime($base_epoch + $lo + int(rand($hi - $lo)))); }

sub op_replay
{
	my ($l, %opt) = @_;
	my $view = $opt{view} // pick(views_of($l));
	my $st = $S{$l}{streams}{ $view->{stream} };
	my $m = $S{$l};
	my (@args, $since, $until, $tpl, $expect);
	if (chance(0.3)) { $since = rand_time(0, 3 * 3600); push @args, "since => '$since'"; }
	if (chance(0.3)) { $until = rand_time(2 * 3600, 7 * 3600); push @args, "until => '$until'"; }
	$expect = 'ok';
	if (defined $since && defined $until && $until le $since) { $expect = '22023'; }
	if (chance(0.08))
	{
		$since = rand_time(3 * 3600, 4 * 3600);
		$until = rand_time(0, 3 * 3600 - 1);
		@args = ("since => '$since'", "until => '$until'");
		$expect = '22023';    # until not after since
	}
	if (chance(0.35))
	{
		$tpl = pick(@tpl_names);
		push @args, "query => \$q\$" . view_query($tpl, $st->{name}) . "\$q\$";
	}
	elsif (chance(0.06))
	{
		my @other = grep { $_->{name} ne $st->{name} } user_streams($l);
		my ($bad, $code) = @other && chance(0.5)
		  ? (view_query(pick(@tpl_names), $other[0]{name}), '22023')    # another stream's
		  : pick([ 'SELECT count(*) AS n FROM walk_nosuch', '42704' ], [ 'SELECT dev FROM ' . $st->{name}, '42P17' ],
			[ 'SELECT dev, count(* AS n FROM ' . $st->{name} . ' GROUP BY dev', '42601' ]);
		($bad, $code) = @$bad if ref $bad;
		push @args, "query => \$q\$$bad\$q\$";
		$expect = $code if $expect eq 'ok';
	}
	my $swap = $opt{cancel} || !chance(0.3);
	push @args, 'swap => false' unless $swap;
	push @args, 'swap => true' if $swap && chance(0.2);
	my $prefer = chance(0.5) ? 'on' : 'off';
	my $spec = { tpl => $tpl // $view->{spec}{tpl}, since => $since, until => $until };
	$expect = undef if $expect eq 'ok' && !$st->{archive} && $topics{ $st->{topic} }{flooded};    # 55000 possible
	my ($history, $before) = (undef, undef);
	q_add($l, { sql => "SET kappa.replay_prefer_archive = $prefer;", call => 'set', expect => 'ok' });
	q_add($l, { sql => history_count_sql($st, $view) . ";", call => 'admin', expect => 'ok',
		check => sub { $history = value($_[0]); return; } });
	q_add($l, { sql => "SELECT version FROM kappa_views WHERE version_of = " . lit("public.$view->{name}")
		  . " ORDER BY version;", call => 'catalog', expect => 'ok',
		check => sub { $before = join(',', rows($_[0])); return; } });
	my $act = { call => 'replay', expect => $opt{cancel} ? undef : $expect, allow_extra => $opt{cancel} ? ['57014'] : [],
		sql => "SELECT archive_events, log_events FROM kappa_replay(" . lit($view->{name})
		  . join('', map { ", $_" } @args) . ");",
		check => sub {
			my ($r, $o) = @_;
			return unless $o eq 'ok';
			my ($ae, $le) = split /\|/, value($r);
			check_value($l, "kappa_replay('$view->{name}') read every message of its history once",
				$ae + $le, $history);
			if ($prefer eq 'off' && !$topics{ $st->{topic} }{flooded} && $ae != 0)
			{
				record_failure($l, "kappa_replay('$view->{name}') read $ae messages from the archive, "
					  . "though the log holds them all and kappa.replay_prefer_archive is off");
			}
			if ($swap)
			{
				$view->{spec} = $spec;
				return;
			}
			# the new version, beside the current one
			return { sql => "SELECT version FROM kappa_views WHERE version_of = " . lit("public.$view->{name}")
				  . " AND NOT current ORDER BY version;", call => 'catalog', expect => 'ok', check => sub {
					my %old = map { $_ => 1 } split /,/, $before;
					my @new = grep { !$old{$_} && !$view->{versions}{$_} } rows($_[0]);
					if (@new != 1)
					{
						record_failure($l, "after kappa_replay('$view->{name}', swap => false): new versions "
							  . join(',', @new) . " (listed: " . join(',', rows($_[0])) . ")");
						return;
					}
					$view->{versions}{ $new[0] } = $spec;
					return;
				} };
		} };
	$act->{ready} = $opt{ready} if $opt{ready};
	q_add($l, $act);
	return $act;
}

sub op_compare
{
	my ($l) = @_;
	my @cands = grep { %{ $_->{versions} } } views_of($l);
	my $view = pick(@cands);
	my $current;
	q_add($l, { sql => "SELECT version FROM kappa_views WHERE name = " . lit("public.$view->{name}") . ";",
		call => 'catalog', expect => 'ok', check => sub { $current = value($_[0]); return; } });
	my @v = sort keys %{ $view->{versions} };
	my $x = pick(@v);
	my $same = chance(0.25);
	q_add($l, { sql => sub {
		my ($va, $vb) = $same ? ($x, $x) : chance(0.5) ? ($current, $x) : ($x, $current);
		return "SELECT count(*) FROM kappa_compare('$view->{name}', $va, $vb);";
	}, call => 'compare', expect => 'ok', check => sub {
		my ($r, $o) = @_;
		check_value($l, "kappa_compare of a version with itself", value($r), '0') if $same && $o eq 'ok';
		return;
	} });
	return;
}

sub op_promote
{
	my ($l) = @_;
	my @cands = grep { %{ $_->{versions} } } views_of($l);
	my $view = pick(@cands);
	my $n = pick(sort keys %{ $view->{versions} });
	q_add($l, { sql => "SELECT kappa_promote('$view->{name}', $n);", call => 'promote', expect => 'ok', check => sub {
		my ($r, $o) = @_;
		return unless $o eq 'ok';
		$view->{spec} = delete $view->{versions}{$n};
		return;
	} });
	return;
}

# kappa_feed: the workers stopped (kappa.enabled = off), messages produced
# to the broker and the first part of them fed from a table, then the
# workers again, which go on from where the feed stopped.
sub op_feed
{
	my ($l) = @_;
	my $st = pick(user_streams($l));
	my $table = "walk.feed_" . ++$S{$l}{nfeed};
	my @events = map { new_event($st->{topic}) } 1 .. 4 + int(rand(30));
	push @events, { payload => pick(@bad_payloads), key => 'bad', good => 0 } if chance(0.5);
	my $fed;
	q_add($l, op_wait_action($l, $st),
		{ sql => "ALTER SYSTEM SET kappa.enabled = off;", call => 'admin', expect => 'ok' },
		{ sql => "SELECT pg_reload_conf();", call => 'admin', expect => 'ok' },
		{ sql => "SELECT count(*) FROM kappa_workers WHERE state <> 'disabled' OR pid IS NOT NULL;", call => 'catalog',
			expect => 'ok', check => sub { return value($_[0]) eq '0' ? () : 'again'; } },
		produce_action($l, $st, @events));
	my $batch = $batches;
	# the first half of what each partition got, with the log's offsets
	# and timestamps (a view with a start instant skips messages without one)
	q_add($l,
		{ sql => "CREATE TABLE $table AS SELECT e.partition, e.\"offset\", e.payload, e.key, p.\"timestamp\" "
			  . "FROM walk.ev e JOIN kappa_peek(" . lit($st->{name}) . ", 10000) p USING (partition, \"offset\") "
			  . "WHERE e.topic = " . lit($st->{topic}) . " AND e.batch = $batch "
			  . "AND e.\"offset\" < (SELECT min(\"offset\") + (count(*) + 1) / 2 FROM walk.ev f "
			  . "WHERE f.batch = $batch AND f.partition = e.partition);",
			call => 'admin', expect => 'ok' },
		{ sql => "SELECT count(*) FROM $table;", call => 'admin', expect => 'ok', check => sub { $fed = value($_[0]); return; } },
		{ sql => "SELECT messages_read FROM kappa_feed(" . lit($st->{name}) . ", '$table');", call => 'feed',
			expect => 'ok', check => sub {
				my ($r, $o) = @_;
				check_value($l, "kappa_feed('$st->{name}') messages_read", value($r), $fed) if $o eq 'ok';
				return;
			} },
		{ sql => "SELECT messages_read FROM kappa_feed(" . lit($st->{name}) . ", '$table');", call => 'feed',
			expect => 'ok' },
		{ sql => "ALTER SYSTEM RESET kappa.enabled;", call => 'admin', expect => 'ok' },
		{ sql => "SELECT pg_reload_conf();", call => 'admin', expect => 'ok' },
		op_wait_action($l, $st));
	return;
}

sub op_peek
{
	my ($l) = @_;
	my $st = pick(user_streams($l));
	my $n = 1 + int(rand(40));
	my $t = $topics{ $st->{topic} };
	q_add($l, { sql => "SELECT count(*), count(payload) FROM kappa_peek(" . lit($st->{name}) . ", $n);",
		call => 'peek', expect => 'ok', check => sub {
			my ($r, $o) = @_;
			return unless $o eq 'ok';
			my ($c) = split /\|/, value($r);
			my $want = $t->{msgs} < $n ? $t->{msgs} : $n;
			check_value($l, "kappa_peek('$st->{name}', $n) count", $c, $want) unless $t->{flooded};
			return;
		} });
	return;
}

sub op_decode
{
	my ($l) = @_;
	my $st = pick(user_streams($l));
	my $good = chance(0.5);
	my $payload = $good ? new_event($st->{topic})->{payload} : pick(@bad_payloads);
	$topics{ $st->{topic} }{seq}--;    # (the id was not used)
	q_add($l, { sql => "SELECT ok, reason IS NULL FROM kappa.decode(" . lit($st->{name}) . ", convert_to("
		  . lit($payload) . ", 'UTF8'));", call => 'decode', expect => 'ok', check => sub {
			my ($r, $o) = @_;
			check_value($l, "kappa.decode('$st->{name}', $payload)", value($r), $good ? 't|t' : 'f|f') if $o eq 'ok';
			return;
		} });
	return;
}

sub op_archive_read
{
	my ($l) = @_;
	my @arch = grep { $_->{archive} } user_streams($l);
	if (!@arch || chance(0.3))
	{
		my ($file, $n) = @{ pick([ 'p9--2022-12-09--16-50-12.avro', 1 ], [ 'p9--2022-12-09--17-10-12.avro', 20 ],
			[ 'empty.avro', 0 ]) };
		q_add($l, { sql => "SELECT count(*), count(body) FROM kappa_archive_read('$fixtures/$file');",
			call => 'archive_read', expect => 'ok', check => sub {
				check_value($l, "kappa_archive_read($file)", value($_[0]), "$n|$n") if $_[1] eq 'ok';
				return;
			} });
		return;
	}
	my $st = pick(@arch);
	my $file;
	q_add($l, { sql => "SELECT f.path, f.first_offset, f.last_offset, f.records FROM kappa.archive_files f "
		  . "JOIN kappa.streams s USING (stream_id) WHERE s.name = " . lit($st->{name}) . " ORDER BY random() LIMIT 1;",
		call => 'catalog', expect => 'ok', check => sub {
			my ($path, $lo, $hi, $records) = split /\|/, value($_[0]);
			return unless defined $records;
			return { sql => "SELECT count(*) FILTER (WHERE sequence_number BETWEEN $lo AND $hi) FROM kappa_archive_read("
				  . lit("$st->{archive}/$path") . ");", call => 'archive_read', expect => 'ok', check => sub {
					check_value($l, "kappa_archive_read of $path: records from $lo to $hi", value($_[0]), $records)
					  if $_[1] eq 'ok';
					return;
				} };
		} });
	return;
}

sub copy_tree
{
	my ($from, $to) = @_;
	return 0 unless -d $from;
	my $n = 0;
	find({ no_chdir => 1, wanted => sub {
		return unless -f $_;
		(my $rel = $_) =~ s/^\Q$from\E//;
		(my $d = "$to$rel") =~ s{/[^/]*$}{};
		make_path($d);
		copy($_, "$to$rel") or die "copy $_: $!";
		$n++;
	} }, $from);
	return $n;
}

sub op_register
{
	my ($l) = @_;
	my $m = $S{$l};
	my ($cap) = grep { $_->{capture} } streams_of($l);
	my $reg = "$dir/register_${l}_" . ++$m->{nreg};
	if ($cap && chance(0.4))
	{
		# Azure's own Capture files, as one partition of a hub
		make_path("$reg/ns/hub/0/2022/12/09/16/50", "$reg/ns/hub/0/2022/12/09/17/10", "$reg/ns/hub/0/2022/12/09/17/20");
		copy("$fixtures/p9--2022-12-09--16-50-12.avro", "$reg/ns/hub/0/2022/12/09/16/50/12.avro");
		copy("$fixtures/p9--2022-12-09--17-10-12.avro", "$reg/ns/hub/0/2022/12/09/17/10/12.avro");
		copy("$fixtures/empty.avro", "$reg/ns/hub/0/2022/12/09/17/20/12.avro");
		my $want = $cap->{registered} ? '0|' : '2|21';
		q_add($l, { sql => "SELECT count(*), sum(records) FROM kappa_archive_register('$cap->{name}', '$reg/ns/hub');",
			call => 'archive_register', expect => 'ok', check => sub {
				my ($r, $o) = @_;
				return unless $o eq 'ok';
				check_value($l, "kappa_archive_register of the Capture fixtures", value($r), $want);
				$cap->{registered} = 1;
				return;
			} });
		return;
	}
	my @arch = grep { $_->{archive} } user_streams($l);
	if (!@arch || chance(0.15))
	{
		my ($path, $code) = @{ pick([ 'relative/dir', '22023' ], [ $dir, '22023' ]) };
		my $st = pick(user_streams($l));
		q_add($l, { sql => "SELECT count(*) FROM kappa_archive_register(" . lit($st->{name}) . ", " . lit($path) . ");",
			call => 'archive_register', expect => $code });
		return;
	}
	# kappa's own archive of a stream, copied elsewhere: registered on the
	# stream itself it adds nothing (every range is recorded); on another
	# stream of the same topic it gives that stream the same messages.
	my $st = pick(@arch);
	my @same = grep { $_->{topic} eq $st->{topic} } user_streams($l);
	my $target = pick(@same);
	q_add($l, op_wait_action($l, $st));
	q_add($l, { sql => sub {
		my $n = copy_tree("$st->{archive}/$st->{name}/$st->{topic}", "$reg/ns/$st->{topic}");
		return undef unless $n;
		return "SELECT count(*) FROM kappa_archive_register(" . lit($target->{name}) . ", '$reg/ns/$st->{topic}');";
	}, call => 'archive_register', expect => 'ok', check => sub {
		my ($r, $o) = @_;
		check_value($l, "kappa_archive_register of $st->{name}'s own archive on itself", value($r), '0')
		  if $o eq 'ok' && $target == $st && !$st->{archive_reused};
		return;
	} });
	return;
}

# Catalog queries, and what psql's \d sends.
sub op_catalog
{
	my ($l) = @_;
	my @views = views_of($l);
	my $m = $S{$l};
	my $k = int(rand(9));
	if ($k <= 2 && @views)
	{
		my $view = pick(@views);
		my @names = ($view->{name}, map { "\"$view->{name}\@v$_\"" } sort keys %{ $view->{versions} });
		my $cmd = pick('\d', '\d+', '\dv', '\d+') . ' ' . pick(@names);
		q_add($l, { sql => $cmd, call => 'catalog', expect => 'ok', check => sub {
			my ($r) = @_;
			record_failure($l, "$cmd: $r->{err}") if $r->{err} =~ /\S/;
			return;
		} });
		return;
	}
	if ($k == 3)
	{
		# kappa_views against the model: every view and version of this session
		my @want = sort map {
			my $v = $_;
			("public.$v->{name}", map { "public.\"$v->{name}\@v$_\"" } keys %{ $v->{versions} })
		} @views;
		q_add($l, { sql => "SELECT name || ' ' || status FROM kappa_views WHERE name LIKE 'public.${l}\\_%' "
			  . "OR name LIKE 'public.\"${l}\\_%' ORDER BY 1;", call => 'catalog', expect => 'ok', check => sub {
				check_value($l, "kappa_views", join(',', sort(rows($_[0]))), join(',', sort map { "$_ live" } @want));
				return;
			} });
		return;
	}
	my $st = pick(streams_of($l));
	my $sql = pick(
		'SELECT count(*) FROM kappa_stats;',
		'SELECT stream, worker, state, partitions FROM kappa_workers ORDER BY 1, 2;',
		'SELECT name, topic, archive, dedup_key FROM kappa_streams ORDER BY 1;',
		'SELECT view, phase FROM kappa_replays;',
		'SELECT count(*) FROM kappa.archive_files;',
		"SELECT setting, value FROM kappa_stream_settings(" . lit($st ? $st->{name} : 'x') . ");",
		'\dv',
		'\d kappa.views');
	q_add($l, { sql => $sql, call => $sql =~ /settings/ ? 'settings' : 'catalog',
		expect => ($st || $sql !~ /settings/) ? 'ok' : '42704', check => sub {
			my ($r) = @_;
			record_failure($l, "$sql: $r->{err}") if $sql =~ /^\\/ && $r->{err} =~ /\S/;
			return;
		} });
	return;
}

sub op_select
{
	my ($l) = @_;
	my $view = pick(views_of($l));
	my @names = ($view->{name}, map { "\"$view->{name}\@v$_\"" } sort keys %{ $view->{versions} });
	q_add($l, { sql => "SELECT count(*) FROM " . pick(@names) . ";", call => 'select', expect => 'ok' });
	return;
}

# Errors the model predicts exactly: unknown objects, wrong types, bad
# arguments, and privileges (roles that are not the owner).
sub op_probe
{
	my ($l) = @_;
	my @views = views_of($l);
	my @streams = user_streams($l);
	my $view = @views ? pick(@views)->{name} : undef;
	my $st = @streams ? pick(@streams)->{name} : undef;
	my @p = (
		[ "SELECT * FROM kappa_replay('${l}_nosuch');", 'replay', '42704' ],
		[ "SELECT * FROM kappa_check('${l}_nosuch');", 'check', '42704' ],
		[ "SELECT * FROM kappa_check('walk.plain');", 'check', '42809' ],
		[ "SELECT * FROM kappa_replay('walk.plain');", 'replay', '42809' ],
		[ "SELECT kappa_drop_stream('${l}_nosuch');", 'drop_stream', '42704' ],
		[ "SELECT kappa_wait('${l}_nosuch');", 'wait', '42704' ],
		[ "SELECT * FROM kappa_produce('${l}_nosuch', 'x');", 'produce', '42704' ],
		[ "SELECT * FROM kappa_peek('${l}_nosuch');", 'peek', '42704' ],
		[ "SELECT * FROM kappa.decode('${l}_nosuch', '\\x00');", 'decode', '42704' ],
		[ "SELECT kappa_drop_view('${l}_nosuch');", 'drop_view', '42704' ],
		[ "SELECT count(*) FROM kappa_archive_read('relative.avro');", 'archive_read', '22023' ],
		[ "SELECT count(*) FROM kappa_archive_read('$dir/nosuch.avro');", 'archive_read', '58P01' ],
		[ "SELECT count(*) FROM kappa_archive_read('$fixtures/README.md');", 'archive_read', 'XX001' ],
		[ "SELECT kappa_create_stream('Bad-Name', brokers => '$b', columns => 'x text');", 'create_stream', '42602' ],
		[ "SELECT kappa_create_stream('${l}_t', brokers => '$b', columns => 'x walk_nosuch_type');", 'create_stream', '42704' ],
		[ "SELECT kappa_create_stream('${l}_t', brokers => '$b', columns => 'x text', event_time => 'y');", 'create_stream', '42703' ],
		[ "SELECT kappa_create_stream('${l}_t', brokers => 'nohostport', columns => 'x text');", 'create_stream', '22023' ],
		[ "SET ROLE walk_nobody;\nSELECT kappa_create_stream('${l}_t', brokers => '$b', columns => 'x text');\nRESET ROLE;",
			'create_stream', '42501' ],
	);
	if ($st)
	{
		push @p,
		  [ "SELECT kappa_create_stream('$st', brokers => '$b', columns => 'x text');", 'create_stream', '42710' ],
		  [ "SELECT kappa_create_view('${l}_e', 'SELECT dev FROM $st');", 'create_view', '42P17' ],
		  [ "SELECT kappa_create_view('${l}_e', 'SELECT dev, count(*) AS n FROM $st GROUP BY dev ORDER BY n LIMIT 2 OFFSET 1');", 'create_view', '0A000' ],
		  [ "SELECT kappa_create_view('${l}_e', 'SELECT dev, count(*) AS n FROM $st WHERE random() < 2 GROUP BY dev');", 'create_view', '0A000' ],
		  [ "SELECT kappa_create_view('${l}_e', 'SELECT dev, count(* AS n FROM $st GROUP BY dev');", 'create_view', '42601' ],
		  [ "SELECT kappa_create_view('${l}_e', 'SELECT dev, count(*) AS n FROM walk_nosuch GROUP BY dev');", 'create_view', '42704' ],
		  [ "SELECT count(*) FROM kappa_peek('$st', 0);", 'peek', '22023' ],
		  [ "SET ROLE walk_admin;\nSELECT * FROM kappa_produce('$st', 'x');\nRESET ROLE;", 'produce', '42501' ],
		  [ "SET ROLE walk_admin;\nSELECT count(*) FROM kappa_peek('$st');\nRESET ROLE;", 'peek', '42501' ],
		  [ "SET ROLE walk_admin;\nSELECT kappa_wait('$st', '1 second');\nRESET ROLE;", 'wait', '42501' ],
		  [ "SET ROLE walk_admin;\nSELECT kappa_drop_stream('$st', cascade => true);\nRESET ROLE;", 'drop_stream', '42501' ],
		  [ "SET ROLE walk_admin;\nSELECT count(*) FROM kappa_archive_register('$st', '$dir');\nRESET ROLE;", 'archive_register', '42501' ];
		# only where the worker surely runs (the table is empty, in case)
		push @p, [ "SELECT messages_read FROM kappa_feed('$st', 'walk.nothing');", 'feed', '55006' ]
		  if $l eq 'a' && $S{$l}{streams}{$st}{waited};
	}
	if ($view)
	{
		push @p,
		  [ "SELECT kappa_create_view('$view', 'SELECT dev, count(*) AS n FROM $st GROUP BY dev');", 'create_view', '42P07' ],
		  [ "SELECT count(*) FROM kappa_compare('$view', 1, 99);", 'compare', '42704' ],
		  [ "SELECT kappa_promote('$view', 99);", 'promote', '42704' ],
		  [ "SELECT * FROM kappa_replay('$view', since => now(), until => now() - interval '1 hour');", 'replay', '22023' ],
		  [ "SET ROLE walk_admin;\nSELECT * FROM kappa_replay('$view');\nRESET ROLE;", 'replay', '42501' ],
		  [ "SET ROLE walk_admin;\nSELECT count(*) FROM kappa_check('$view');\nRESET ROLE;", 'check', '42501' ],
		  [ "SET ROLE walk_admin;\nSELECT count(*) FROM kappa_compare('$view', 1, 1);\nRESET ROLE;", 'compare', '42501' ],
		  [ "SET ROLE walk_admin;\nSELECT kappa_drop_view('$view');\nRESET ROLE;", 'drop_view', '42501' ],
		  [ "SET ROLE walk_nobody;\nSELECT count(*) FROM $view;\nRESET ROLE;", 'select', '42501' ];
	}
	my ($sql, $call, $code) = @{ pick(@p) };
	q_add($l, { sql => $sql, call => $call, expect => $code });
	return;
}

# Reads of the other session's objects, while it may be changing them.
sub op_peer
{
	my ($l, $peer) = @_;
	my @views = views_of($peer);
	return op_catalog($l) unless @views;
	my $view = pick(@views);
	my $st = $S{$peer}{streams}{ $view->{stream} } // { topic => 'none' };
	my @race = qw(42P01 42704 42809 55000 08006);
	my $k = int(rand(4));
	if ($k == 0)
	{
		q_add($l, { %{ check_action($l, $view->{name}, $st) }, expect => undef, allow_extra => \@race });
	}
	elsif ($k == 1)
	{
		q_add($l, { sql => "SELECT count(*) FROM $view->{name};", call => 'select', allow_extra => \@race });
	}
	elsif ($k == 2)
	{
		q_add($l, { sql => pick('\d ', '\d+ ') . $view->{name}, call => 'catalog', check => sub {
			my ($r) = @_;
			record_failure($l, "\\d $view->{name}: $r->{err}")
			  if $r->{err} =~ /\S/ && $r->{err} !~ /^Did not find any relation named/;
			return;
		} });
	}
	else
	{
		q_add($l, { sql => "SELECT count(*) FROM kappa_compare('$view->{name}', 1, 1);", call => 'compare',
			allow_extra => \@race });
	}
	return;
}

# A replay cancelled by the other session (pg_cancel_backend): either held
# at its swap by the other session's lock on the view, so that it must be
# cancelled, or at whatever point it has reached (then it may finish first).
sub op_cancel
{
	my ($victim, $canceller) = @_;
	my $view = pick(views_of($victim));
	my $pid = $sess{$victim}{pid};
	my $locked = chance(0.6);
	my %flag = (locked => !$locked);
	if ($locked)
	{
		q_add($canceller, { sql => "BEGIN;\nLOCK TABLE $view->{name} IN ACCESS SHARE MODE;", call => 'admin',
			expect => 'ok', check => sub { $flag{locked} = 1; return; } });
	}
	my $act = op_replay($victim, view => $view, cancel => 1, ready => sub { $flag{locked} });
	my $inner = $act->{check};
	$act->{check} = sub {
		my ($r, $o) = @_;
		$flag{done} = 1;
		record_failure($victim, "a replay held at its swap by a lock, and cancelled, ended with $o")
		  if $flag{at_swap} && $o ne '57014';
		return $inner->(@_);
	};
	# nothing more from the victim until the cancel was sent
	q_add($victim, { sql => sub { undef }, ready => sub { $flag{cancelled} } });
	my $polls = 0;
	q_add($canceller,
		{ sql => "SELECT phase FROM kappa_replays WHERE pid = $pid;", call => 'catalog', expect => 'ok',
			ready => sub { $flag{locked} }, max_tries => 20 * $step_timeout, check => sub {
				my ($r) = @_;
				my $phase = value($r);
				return if $flag{done};
				if ($locked)
				{
					return 'again' unless $phase eq 'swap';
					$flag{at_swap} = 1;
					return;
				}
				return 'again' if $phase eq '' && ++$polls < 40;
				return;
			} },
		{ sql => "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE pid = $pid AND state = 'active'"
			  . " AND query LIKE '%kappa_replay(%';", call => 'cancel', expect => 'ok',
			check => sub {
				my ($r) = @_;
				$flag{cancelled} = Time::HiRes::time();
				check_value($canceller, "pg_cancel_backend of the replay held at its swap", value($r), '1')
				  if $flag{at_swap};
				return;
			} });
	# the lock goes when the replay ended, or, if the cancel did not end
	# it, after a while (then the replay goes on, and the failure shows)
	q_add($canceller, { sql => "COMMIT;", call => 'admin', expect => 'ok',
		ready => sub { $flag{done} || $flag{cancelled} && Time::HiRes::time() > $flag{cancelled} + 10 } }) if $locked;
	return;
}

# ---------------------------------------------------------------------------
# Choosing a step.

sub choose
{
	my ($l, $can_cancel) = @_;
	my $m = $S{$l};
	my @streams = user_streams($l);
	my @views = views_of($l);
	my $with_versions = grep { %{ $_->{versions} } } @views;
	my $arch = grep { $_->{archive} } @streams;
	my @w = (
		[ 4 + (@streams ? 0 : 30), \&op_create_stream, @streams < 4 ],
		[ 1, \&op_capture_stream, $l eq 'a' && !$capture_stream_made ],
		[ 1, \&op_drop_stream, @streams >= 2 || (@streams && chance(0.2)) ],
		[ 2, \&op_alter_stream, scalar @streams ],
		[ 9 + (@views ? 0 : 10), \&op_create_view, @streams && @views < 8 ],
		[ 2, \&op_drop_view, @views >= 3 ],
		[ 18, \&op_produce, scalar @streams ],
		[ 5, \&op_wait, scalar @streams ],
		[ 2, \&op_flood, $l eq 'a' && $arch && @views ],
		[ 14, \&op_replay, scalar @views ],
		[ 8, \&op_check, scalar @views ],
		[ 3, \&op_compare, $with_versions ],
		[ 2, \&op_promote, $with_versions ],
		[ 2, \&op_feed, $l eq 'a' && @streams ],
		[ 3, \&op_peek, scalar @streams ],
		[ 3, \&op_decode, scalar @streams ],
		[ 2, \&op_archive_read, 1 ],
		[ 2, \&op_register, scalar @streams ],
		[ 7, \&op_catalog, 1 ],
		[ 3, \&op_select, scalar @views ],
		[ 6, \&op_probe, 1 ],
	);
	push @w, [ 3, 'cancel', $can_cancel && @views ];
	push @w, [ 6, 'peer', $l eq 'b' ];
	my %names = (\&op_create_stream => 'create_stream', \&op_capture_stream => 'register',
		\&op_drop_stream => 'drop_stream', \&op_alter_stream => 'alter_stream', \&op_create_view => 'create_view', \&op_drop_view => 'drop_view',
		\&op_produce => 'produce', \&op_wait => 'wait', \&op_flood => 'flood', \&op_replay => 'replay',
		\&op_check => 'check', \&op_compare => 'compare', \&op_promote => 'promote', \&op_feed => 'feed',
		\&op_peek => 'peek', \&op_decode => 'decode', \&op_archive_read => 'archive_read',
		\&op_register => 'register', \&op_catalog => 'catalog', \&op_select => 'select', \&op_probe => 'probe');
	@w = grep { $_->[2] && !$skip{ ref $_->[1] ? $names{ $_->[1] } : $_->[1] } } @w;
	my $total = 0;
	$total += $_->[0] foreach @w;
	my $x = rand($total);
	foreach my $c (@w)
	{
		return $c->[1] if ($x -= $c->[0]) < 0;
	}
	return $w[-1][1];
}

# ---------------------------------------------------------------------------
# The walk.

foreach my $l (sort keys %sess)
{
	my $s = $sess{$l};
	$s->send("\\set VERBOSITY verbose\n\\set SHOW_CONTEXT never\nSELECT pg_backend_pid();");
	1 until $s->poll;
	$s->{pid} = value($s->{result});
	die "session $l did not start: $s->{result}{err}" unless $s->{pid} =~ /^\d+$/;
}

my $b_start = int($steps / 5);
my %done = (a => 0, b => 0);
while (!$stop)
{
	my @acting = ('a');
	@acting = () if $done{a} >= $steps;
	push @acting, 'b' if $second && $tick >= $b_start && $done{b} < $steps;
	last unless @acting;
	my %busy;
	foreach my $l (@acting)
	{
		next if $busy{$l};
		my $peer = $l eq 'a' ? 'b' : 'a';
		my $peer_acting = grep { $_ eq $peer } @acting;
		my $op = choose($l, $l eq 'a' && $peer_acting && !$busy{$peer});
		if ($op eq 'cancel')
		{
			op_cancel($l, $peer);
			$busy{$peer} = 1;
			$done{$peer}++;
		}
		elsif ($op eq 'peer')
		{
			op_peer($l, $peer);
		}
		else
		{
			$op->($l);
		}
		$done{$l}++;
		# every few steps: still the same backend?
		if ($done{$l} % 8 == 0)
		{
			my $want = $sess{$l}{pid};
			q_add($l, { sql => 'SELECT pg_backend_pid();', call => 'admin', expect => 'ok', check => sub {
				check_value($l, "the backend of session $l", value($_[0]), $want);
				$stop = 1 if value($_[0]) ne $want;
				return;
			} });
		}
	}
	run_queues();
	$tick++;
	$stop = 1 if @failures > $max_failures;
}
my $walk_seconds = Time::HiRes::time() - $started;
diag(sprintf('session walk: %d calls in %d ticks, %.1f s', $calls, $tick, $walk_seconds));
diag("outcomes: " . join(', ', map { "$_ x$outcomes{$_}" } sort keys %outcomes));

# ---------------------------------------------------------------------------
# The end: every view and version equal to its batch query, and exact by
# kappa_check, in the walk's own session.

if (!$stop)
{
	ok(!@failures, "the walk ($calls calls) met only success and documented errors") if !@failures;
	# the workers may have been left disabled if a feed step failed half-way
	q_add('a', { sql => "ALTER SYSTEM RESET kappa.enabled;", call => 'admin', expect => 'ok' },
		{ sql => "SELECT pg_reload_conf();", call => 'admin', expect => 'ok' }) if $S{a}{nfeed};
	foreach my $l (sort keys %S)
	{
		foreach my $st (user_streams($l))
		{
			q_add('a', op_wait_action('a', $st));
			foreach my $view (map { $st->{views}{$_} } sort keys %{ $st->{views} })
			{
				my @all = ([ $view->{name}, $view->{spec} ],
					map { [ "$view->{name}\@v$_", $view->{versions}{$_} ] } sort keys %{ $view->{versions} });
				foreach my $v (@all)
				{
					my ($name, $spec) = @$v;
					my $rel = ident_view($name);
					my $q = oracle_query($st, $view, $spec);
					q_add('a', { sql => "SELECT (SELECT count(*) FROM (SELECT * FROM $rel EXCEPT ALL ($q)) x) || '/' || "
						  . "(SELECT count(*) FROM (($q) EXCEPT ALL SELECT * FROM $rel) y) || '/' || (SELECT count(*) FROM $rel);",
						call => 'select', expect => 'ok', check => sub {
							my ($r, $o) = @_;
							my ($extra, $missing, $n) = split m{/}, value($r);
							ok($o eq 'ok' && $extra eq '0' && $missing eq '0',
								"$name ($spec->{tpl}" . (defined $spec->{since} ? ", since $spec->{since}" : '')
								  . (defined $spec->{until} ? ", until $spec->{until}" : '')
								  . ") equals its batch query ($n rows; $extra extra, $missing missing)");
							return;
						} });
					q_add('a', check_action('a', $name, $st));
				}
			}
		}
	}
	run_queues();
}
ok(!@failures, 'no failure in the walk') or diag(scalar(@failures) . " failures (seed $seed); first: $failures[0]");

foreach my $l (sort keys %sess)
{
	my $s = $sess{$l};
	eval { $s->{bp}{stdin} .= "\\q\n"; $s->{bp}{run}->finish; } if !$s->{dead} && !$s->{busy};
	eval { $s->{bp}{run}->kill_kill; } if $s->{busy};
}
# After a crash the server may be down already (restart_after_crash is
# off in these tests).
my $pidfile = $node->data_dir . '/postmaster.pid';
$node->stop($stop ? 'immediate' : 'fast', fail_ok => 1) if -f $pidfile;
$node->{_pid} = undef unless -f $pidfile;    # so that the teardown does not stop it again
my $log = slurp_file($node->logfile);
# The postmaster's report of a process's end (signals 9 and 3 are a
# test's own), a PANIC, and what glibc or an assertion writes raw at the
# start of a line; not the same words inside a logged statement.
my @bad = grep {
	/ LOG:  .*\(PID \d+\) was terminated by signal (\d+)/ ? ($1 != 9 && $1 != 3)
	  : /^(TRAP:|double free|corrupted |free\(\)|malloc\(\)|munmap_chunk)/ || /^\S.* PANIC:  /
} split /\n/, $log;
ok(!@bad, 'the server log shows no crash, TRAP or heap corruption') or diag(join("\n", @bad[ 0 .. ($#bad < 9 ? $#bad : 9) ]));
diag(sprintf('session walk: seed %d, %.1f s in all', $seed, Time::HiRes::time() - $started));
stop_broker($broker);
done_testing();

# ---------------------------------------------------------------------------
package WalkSession;

use Time::HiRes qw();

# A psql of the node's (background_psql), each action followed by markers
# echoed to stdout and stderr, so that its end is known whatever it printed.
sub new
{
	my ($class, $node, $label, $timeout) = @_;
	my $bp = $node->background_psql('postgres', on_error_stop => 0, timeout => $timeout + 60);
	return bless { bp => $bp, label => $label, timeout => $timeout, n => 0, busy => 0, dead => 0 }, $class;
}

sub send
{
	my ($self, $sql) = @_;
	die "session $self->{label} is busy" if $self->{busy};
	my $marker = "<<walk $self->{label} " . ++$self->{n} . ">>";
	my $bp = $self->{bp};
	$bp->{stdout} = '';
	$bp->{stderr} = '';
	@$self{qw(marker busy result)} = ($marker, 1, undef);
	$self->{deadline} = Time::HiRes::time() + $self->{timeout};
	$bp->{timeout}->start($self->{timeout} + 60);    # IPC::Run's own, behind ours
	$bp->{stdin} .= "$sql\n\\echo '$marker'\n\\warn '$marker'\n";
	eval { $bp->{run}->pump_nb; 1 };
	return;
}

# Whether the action sent last has ended (then its result is in {result}).
sub poll
{
	my ($self) = @_;
	return 1 unless $self->{busy};
	my $bp = $self->{bp};
	my $alive = eval { $bp->{run}->pump_nb; 1 } && $bp->{run}->pumpable;
	my $m = $self->{marker};
	my $status;
	if ($bp->{stdout} =~ /\Q$m\E\n/ && $bp->{stderr} =~ /\Q$m\E\n/)
	{
		$status = 'done';
	}
	elsif (!$alive)
	{
		eval { $bp->{run}->finish; };
		$self->{dead} = 1;
		$status = 'dead';
	}
	elsif (Time::HiRes::time() > $self->{deadline})
	{
		$status = 'timeout';
	}
	else
	{
		return 0;
	}
	my ($out, $err) = ($bp->{stdout}, $bp->{stderr});
	$out =~ s/\Q$m\E\n//;
	$err =~ s/\Q$m\E\n//;
	my @codes = $err =~ /(?:ERROR|FATAL|PANIC):\s+([0-9A-Z]{5}):/g;
	my $crash = $err =~ /server closed the connection unexpectedly|connection to server was lost|terminating connection because of crash|no connection to the server/;
	$self->{dead} = 1 if $crash;
	$self->{result} = { status => $status, out => $out, err => $err, codes => \@codes, crash => $crash };
	$self->{busy} = 0;
	return 1;
}

1;
