# The view-query compiler under random queries, two ways: 400 queries built
# by a seeded generator from fragments, some mutated (a token dropped,
# duplicated or swapped); then libFuzzer's mutations of the checked-in
# corpus (test/fuzz/corpus/view_query) through libpq, for a bounded time
# (test/fuzz/view_query_fuzz.c).  Each query must create a view or fail with
# a proper error: never crash the server, never raise an internal error
# (SQLSTATE XX000, elog), which would be a bug.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy ();

my $queries = 400;
my $node = kappa_node('fuzzviews', conf => "kappa.enabled = off\nlog_statement = none\nlog_min_messages = log\nlog_min_error_statement = panic\n");
$node->safe_psql('postgres', q{
	SELECT kappa_create_stream('fz', brokers => '127.0.0.1:9', topic => 'fz',
		columns => 'dev text, usr text, ts timestamptz NOT NULL, v numeric, f float8, n int, b bool, j jsonb',
		event_time => 'ts');
	CREATE TABLE other (dev text, x int);
});

srand(31);

# Each kind of fragment: mostly ones the compiler accepts, sometimes one it
# must refuse (one in ten).
sub pick
{
	my ($good, $bad) = @_;
	my @from = rand() < 0.1 ? @$bad : @$good;
	return $from[ int(rand(@from)) ];
}

my @aggs = (
	[ 'count(*)', 'count(v)', 'sum(v)', 'avg(f)', 'min(ts)', 'max(n)', 'stddev(f)', 'variance(v)',
		'bool_and(b)', 'bool_or(b)', 'corr(f, n)', 'count(DISTINCT usr)', 'array_agg(dev)',
		'array_agg(DISTINCT n)', 'kappa_first(v, ts)', 'kappa_last(dev, ts)',
		'kappa_approx_count_distinct(usr)', 'sum(v) FILTER (WHERE b)', 'sum(n) + 1', 'avg(v)::int',
		'min(f) * max(f)', 'max(j->>\'k\')', 'string_agg(dev, \',\')', 'string_agg(DISTINCT usr, \'|\')',
		'percentile_cont(0.5) WITHIN GROUP (ORDER BY f)', 'percentile_disc(0.9) WITHIN GROUP (ORDER BY n)',
		'sum(DISTINCT n)', 'avg(DISTINCT v)' ],
	[ 'string_agg(dev, usr)', 'percentile_cont(0.5) WITHIN GROUP (ORDER BY f DESC)', 'array_agg(v ORDER BY ts)',
		'mode() WITHIN GROUP (ORDER BY dev)', 'max(DISTINCT n)',
		'count(*) FILTER (WHERE f > random())', 'jsonb_agg(j)', 'rank() OVER ()',
		'sum(sum(v)) OVER ()', 'sum(nosuch)', 'v' ]);
my @keys = ([ 'dev', 'usr', 'lower(dev)', 'n % 7', 'b', 'dev || usr', 'j->>\'k\'' ],
	[ 'random()', 'now()', 'ts', 'nosuch' ]);
my @windows = ([ '', ", kappa_tumble(ts, '5 minutes') w", ", kappa_hop(ts, '10 minutes', '5 minutes') w",
		", kappa_session(ts, '30 minutes') w" ],
	[ ", kappa_tumble(ts, '0 minutes') w", ", kappa_hop(ts, '1 minute', '2 minutes') w",
		", kappa_tumble(f, '5 minutes') w", ", generate_series(1, 3) g", ' JOIN other USING (dev)' ]);
my @wheres = ([ '', '', ' WHERE v > 0', ' WHERE b AND n IS NOT NULL', ' WHERE ts > \'2026-01-01\'' ],
	[ ' WHERE dev IN (SELECT dev FROM other)', ' WHERE random() < 0.5', ' WHERE f / 0 > 1' ]);
my @tails = ([ '', '', '', ' HAVING count(*) > 1', ' ORDER BY count(*) DESC LIMIT 3',
		' HAVING count(*) > 1 ORDER BY 1 FETCH FIRST 2 ROWS WITH TIES' ], [ ' ORDER BY 1', ' LIMIT 10', ' OFFSET 1', ' FOR UPDATE' ]);

sub query
{
	my $window = pick(@windows);
	my @key = map { pick(@keys) } 1 .. int(rand(3));
	my @cols = (@key);
	push @cols, 'w.window_start', 'w.window_end' if $window =~ / w$/ && rand() < 0.95;
	my @group = @cols;
	push @cols, map { pick(@aggs) . " AS a$_" } 1 .. 1 + int(rand(3));
	my $q = 'SELECT ' . join(', ', @cols) . " FROM fz$window" . pick(@wheres)
	  . (@group ? ' GROUP BY ' . join(', ', @group) : '') . pick(@tails);
	return $q if rand() < 0.8;
	# mutate: drop, duplicate or swap a token
	my @t = split / /, $q;
	my $i = int(rand(@t));
	my $r = rand();
	if ($r < 0.33) { splice @t, $i, 1; }
	elsif ($r < 0.66) { splice @t, $i, 0, $t[$i]; }
	else { my $j = int(rand(@t)); @t[ $i, $j ] = @t[ $j, $i ]; }
	return join ' ', @t;
}

my ($created, $refused, $internal, %codes) = (0, 0, 0);
my @internal;
for my $i (1 .. $queries)
{
	my $q = query();
	(my $quoted = $q) =~ s/'/''/g;
	my ($rc, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT kappa_create_view('v$i', '$quoted')");
	if ($rc == 0)
	{
		$created++;
		$node->safe_psql('postgres', "SELECT kappa_drop_view('v$i')");
	}
	elsif ($err =~ /ERROR:  ([0-9A-Z]{5}):/)
	{
		$refused++;
		$codes{$1}++;
		if ($1 eq 'XX000')
		{
			$internal++;
			push @internal, "$q\n  $err";
		}
	}
	else
	{
		fail("query $i: no SQLSTATE in the error: $q\n$err");
		last;
	}
}
note "created $created views, refused $refused queries; SQLSTATEs: "
  . join(', ', map { "$_ x$codes{$_}" } sort keys %codes);
ok($created > 50 && $refused > 50, "the generator produced both valid and invalid queries ($created, $refused)");
is($internal, 0, 'no internal error (XX000)') or diag(join("\n", @internal[ 0 .. ($#internal < 4 ? $#internal : 4) ]));
# libFuzzer's mutations of the checked-in corpus, through libpq.
my $seconds = $ENV{KAPPA_FUZZ_SECONDS} // 20;
my $dir = PostgreSQL::Test::Utils::tempdir();
my $fuzzer = "$dir/view_query_fuzz";
ok( PostgreSQL::Test::Utils::system_log(
		'clang-14', '-g', '-O1', '-fsanitize=fuzzer', 'test/fuzz/view_query_fuzz.c',
		'-I' . `pg_config --includedir` =~ s/\s+$//r, '-L' . `pg_config --libdir` =~ s/\s+$//r,
		'-lpq', '-o', $fuzzer) == 0,
	'the view query fuzz target builds with clang');
mkdir "$dir/corpus" or die $!;
File::Copy::copy($_, "$dir/corpus/") or die $! foreach glob 'test/fuzz/corpus/view_query/*';
{
	local $ENV{KAPPA_FUZZ_CONNINFO} = $node->connstr('postgres');
	ok(PostgreSQL::Test::Utils::system_log($fuzzer, '-runs=0', "-artifact_prefix=$dir/", "$dir/corpus") == 0,
		'every corpus query is a view or a proper error');
	ok( PostgreSQL::Test::Utils::system_log(
			$fuzzer, "-max_total_time=$seconds", '-max_len=2048', '-keep_seed=1',
			'-cross_over_uniform_dist=1', "-artifact_prefix=$dir/", "$dir/corpus") == 0,
		"$seconds s of libFuzzer's mutations: no crash, no internal error");
}
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');
ok(!log_contains($node, qr/terminated by signal/), 'no backend crashed');
is($node->safe_psql('postgres', 'SELECT count(*) FROM kappa_views'), '0', 'every created view was dropped again');

done_testing();
