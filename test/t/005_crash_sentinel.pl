# The crash sentinel (scripts/check-crash-logs), which scripts/test runs
# over every server log of the run, on fabricated logs: a crash a server
# reports (a signal other than the tests' own SIGKILL and SIGQUIT, glibc's
# heap checks, an assertion's TRAP) is found, named by file and line; the
# tests' own kills, and the same words in a statement, an error message or
# a statement's continuation line, are not.  No server is needed.
use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

# The script, from this file's place in the tree (test/t/ -> the root).
my $script = abs_path(dirname(__FILE__) . '/../..') . '/scripts/check-crash-logs';
ok(-x $script, 'scripts/check-crash-logs is there and executable');

# Fabricated logs live in this test's own temp dir (tmp_check/tmp_test_*),
# which scripts/test does not scan.
my $dir = PostgreSQL::Test::Utils::tempdir();
my $pre = '2026-01-01 00:00:00.000 UTC';

# Write a log file under $dir from its lines; returns its path.
sub write_log
{
	my ($name, @lines) = @_;
	my $path = "$dir/$name";
	open my $fh, '>', $path or die "could not write $path: $!";
	print $fh map { "$_\n" } @lines;
	close $fh or die "could not write $path: $!";
	return $path;
}

# Run the script on the paths; returns its exit status and its stdout.
sub sentinel
{
	my @paths = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $script, @paths ], '>', \$out, '2>', \$err);
	my $rc = $? >> 8;
	note "check-crash-logs: exit $rc\n$out$err";
	return ($rc, $out);
}

# A backend killed by SIGSEGV: reported, by file and line.
my $segv_line = "$pre [100] LOG:  server process (PID 4321) was terminated by signal 11: Segmentation fault";
my $segv = write_log('segv.log',
	"$pre [100] LOG:  database system is ready to accept connections",
	$segv_line,
	"$pre [100] DETAIL:  Failed process was running: SELECT kappa_wait('s')",
	"$pre [100] LOG:  terminating any other active server processes");
my ($rc, $out) = sentinel($segv);
is($rc, 1, 'signal 11: exit status 1');
is($out, "$segv:2: $segv_line\n", 'signal 11: the file, the line and its text');

# The tests' own kills: SIGKILL (020_crash, 046_workers) and SIGQUIT.
my $kills = write_log('kills.log',
	qq{$pre [100] LOG:  background worker "kappa worker" (PID 4322) was terminated by signal 9: Killed},
	"$pre [100] LOG:  server process (PID 4323) was terminated by signal 3: Quit",
	"$pre [100] LOG:  all server processes terminated; reinitializing");
($rc, $out) = sentinel($kills);
is($rc, 0, 'signals 9 and 3 only: exit status 0');
is($out, '', 'signals 9 and 3 only: nothing reported');

# A worker aborted by its own assertion (SIGABRT, after TRAP).
($rc, $out) = sentinel(write_log('abort.log',
	qq{$pre [100] LOG:  background worker "kappa worker" (PID 4324) was terminated by signal 6: Aborted}));
is($rc, 1, 'signal 6: exit status 1');

# glibc's heap check and an assertion, written raw to the server's stderr.
my $glibc = write_log('glibc.log',
	"$pre [101] LOG:  kappa worker for stream \"s\" started",
	'double free or corruption (out)',
	"$pre [100] LOG:  background worker \"kappa worker\" (PID 101) was terminated by signal 6: Aborted");
($rc, $out) = sentinel($glibc);
is($rc, 1, 'double free: exit status 1');
like($out, qr/^\Q$glibc\E:2: double free or corruption \(out\)$/m, 'double free: the file and the line');

my $trap = write_log('trap.log',
	"$pre [102] LOG:  statement: SELECT 1",
	'TRAP: FailedAssertion("hits > 0", File: "src/engine/engine.c", Line: 42, PID: 102)');
($rc, $out) = sentinel($trap);
is($rc, 1, 'TRAP: exit status 1');
is($out, qq{$trap:2: TRAP: FailedAssertion("hits > 0", File: "src/engine/engine.c", Line: 42, PID: 102)\n},
	'TRAP: the file, the line and its text');

# The same words where a client or a payload put them: in a logged
# statement, in an error message quoting a payload, on a statement's
# continuation line (ereport indents those with a tab), and a crash line
# quoted in a statement.
my $hostile = write_log('hostile.log',
	"$pre [103] psql ERROR:  invalid input syntax for type integer: \"corrupted\"",
	"$pre [103] psql STATEMENT:  SELECT 'corrupted'",
	"$pre [103] psql ERROR:  could not decode \"double free or corruption (out)\"",
	"$pre [103] psql STATEMENT:  SELECT kappa_produce('s', 'x",
	"\tTRAP: FailedAssertion(\"x\")",
	"\tdouble free or corruption (out)')",
	"$pre [103] psql LOG:  statement: SELECT 'server process (PID 1) was terminated by signal 11: Segmentation fault'",
	"$pre [103] psql STATEMENT:  SELECT 'x PANIC:  y'");
($rc, $out) = sentinel($hostile);
is($rc, 0, 'the words inside statements and messages: exit status 0');
is($out, '', 'the words inside statements and messages: nothing reported');

# A PANIC, whatever the message.
($rc, $out) = sentinel(write_log('panic.log', "$pre [104] PANIC:  could not write to file \"pg_wal/x\""));
is($rc, 1, 'PANIC: exit status 1');

# Several files: every hit of every file, the clean ones silent.
($rc, $out) = sentinel($kills, $segv, $trap);
is($rc, 1, 'several files: exit status 1');
is($out, "$segv:2: $segv_line\n" . qq{$trap:2: TRAP: FailedAssertion("hits > 0", File: "src/engine/engine.c", Line: 42, PID: 102)\n},
	'several files: each hit once, in order');

# A directory: its *.log files, but not a TAP test's own regress_log_*.
mkdir "$dir/tree" or die "mkdir: $!";
mkdir "$dir/tree/log" or die "mkdir: $!";
my $node_log = "$dir/tree/log/020_crash_crash.log";
write_log('tree/log/regress_log_020_crash', 'TRAP: quoted by a test', 'double free');
write_log('tree/log/020_crash_crash.log', "$pre [100] LOG:  checkpoint starting", $segv_line);
write_log('tree/notes.txt', 'double free');
($rc, $out) = sentinel("$dir/tree");
is($rc, 1, 'a directory: exit status 1');
is($out, "$node_log:2: $segv_line\n", 'a directory: the node log only');
unlink $node_log or die "unlink: $!";
($rc, $out) = sentinel("$dir/tree");
is($rc, 0, 'a directory without a server log to report: exit status 0');

# A path that is not there is an error, not a clean result.
($rc, $out) = sentinel("$dir/no-such.log");
is($rc, 2, 'a missing path: exit status 2');

done_testing();
