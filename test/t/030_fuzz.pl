# The event decoder's JSON scanner (src/decode/json_scan.c) under libFuzzer, with
# AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer: first
# every input of the checked-in corpus (test/fuzz/corpus/json_scan), then
# new inputs for a bounded time.  Any crash, sanitizer report or leak
# fails the test, with the input that caused it in the test's log.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy;

my $seconds = $ENV{KAPPA_FUZZ_SECONDS} // 20;
my $dir = PostgreSQL::Test::Utils::tempdir();
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
chomp(my $includedir = `$pg_config --includedir-server`);
chomp(my $pkglibdir = `$pg_config --pkglibdir`);
my $fuzzer = "$dir/json_scan_fuzz";

ok( PostgreSQL::Test::Utils::system_log(
		'clang-14', '-g', '-O1', '-Wno-ignored-attributes',
		'-fsanitize=fuzzer,address,undefined', '-fno-sanitize-recover=undefined',
		'-Isrc', "-I$includedir",
		'test/fuzz/json_scan_fuzz.c', 'test/fuzz/pg_shim.c', 'src/decode/json_scan.c',
		"$pkglibdir/libpgcommon.a", "$pkglibdir/libpgport.a", '-o', $fuzzer) == 0,
	'the fuzz target builds with clang');

# libFuzzer adds what it finds to its first directory: work on a copy.
mkdir "$dir/corpus" or die $!;
copy($_, "$dir/corpus/") or die $! foreach glob 'test/fuzz/corpus/json_scan/*';
my @corpus = glob "$dir/corpus/*";
ok(@corpus > 0, scalar(@corpus) . ' corpus inputs');

ok(PostgreSQL::Test::Utils::system_log($fuzzer, '-runs=0', "-artifact_prefix=$dir/", "$dir/corpus") == 0,
	'every corpus input passes');
ok( PostgreSQL::Test::Utils::system_log(
		$fuzzer, "-max_total_time=$seconds", '-max_len=4096', '-rss_limit_mb=1024',
		"-artifact_prefix=$dir/", "$dir/corpus") == 0,
	"$seconds s of fuzzing find no crash, sanitizer report or leak");

done_testing();
