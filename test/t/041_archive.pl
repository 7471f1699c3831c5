# A stream's archive: every consumed message in Event Hubs Capture's format
# under Capture's layout, deflate-compressed here, with kappa.archive_files
# recording each file's offsets.  The postmaster is killed while the worker
# consumes and archives; afterwards the manifest's ranges cover every
# offset of every partition exactly once, and the files, read by an
# independent reader (python3-avro) within those ranges, hold exactly the
# messages produced, each once.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $chunks = 6;
my $per_chunk = 1500;
my $broker = start_broker('ar:3');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $archive = "$dir/archive";
mkdir $archive or die $!;
my $node = kappa_node('archive',
	conf => "kappa.flush_interval = '50ms'\nkappa.flush_events = 400\nkappa.archive_deflate = on\n"
	  . "kappa.archive_roll_size = 64kB\n");

$node->safe_psql('postgres', qq{
	SELECT kappa_create_stream('ar', topic => 'ar', brokers => '$b', columns => 'i int, k text',
		archive => '$archive');
	SELECT kappa_create_view('total', 'SELECT count(*) AS n, sum(i) AS s FROM ar');
});

# Chunk c: messages i = c*per_chunk .., keyed (so spread over partitions),
# every 97th a tombstone-like null payload is not possible with kcat -l, so
# every message has a body.
sub produce
{
	my ($c) = @_;
	my $file = "$dir/c$c.txt";
	open my $fh, '>', $file or die $!;
	printf $fh qq(key%d|{"i": %d, "k": "%s"}\n), $_ % 13, $_, 'x' x ($_ % 50)
	  foreach $c * $per_chunk .. ($c + 1) * $per_chunk - 1;
	close $fh;
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'ar', '-K', '|', '-l', $file ]) or die "kcat failed";
	return;
}

sub old_processes_alive
{
	foreach my $cmdline (glob '/proc/[0-9]*/cmdline')
	{
		open my $fh, '<', $cmdline or next;
		my $title = <$fh> // '';
		close $fh;
		return 1 if $title =~ /^postgres: archive: /;
	}
	return 0;
}

for my $c (0 .. $chunks - 1)
{
	produce($c);
	next if $c % 2 == 0;
	# kill the postmaster while the worker is still consuming this chunk
	wait_until(sub {
		my ($rc, $out) = $node->psql('postgres', 'SELECT coalesce(sum(consumed), 0) FROM kappa_stats WHERE view IS NULL');
		return $rc == 0 && $out > $c * $per_chunk;
	}, 30);
	my $postmaster = $node->{_pid};
	$node->kill9;
	wait_until(sub { !kill(0, $postmaster) && !old_processes_alive() }, 60) or die "old server still alive";
	$node->start;
}
my $n = $chunks * $per_chunk;
is($node->safe_psql('postgres', "SELECT kappa_wait('ar', '120 seconds')"), 't', 'everything consumed');
is($node->safe_psql('postgres', 'SELECT n, s FROM total'), "$n|" . ($n - 1) * $n / 2, 'the view counted each message once');

# The manifest: per partition, ranges from 0 to the end, no gap, no overlap.
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM (
			SELECT partition, first_offset,
				lag(last_offset) OVER (PARTITION BY partition ORDER BY first_offset) AS prev_last
			FROM kappa.archive_files) r
		WHERE first_offset <> coalesce(prev_last + 1, 0)}),
	'0', 'each partition\'s files continue exactly where the previous one ended');
is($node->safe_psql('postgres', q{
		SELECT sum(last_offset + 1) FROM (SELECT partition, max(last_offset) AS last_offset
			FROM kappa.archive_files GROUP BY partition) x}),
	$n, 'and together reach every message');
is($node->safe_psql('postgres', q{SELECT sum(records) FROM kappa.archive_files}), $n,
	'the manifest counts each message once');
ok($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.archive_files}) > 3,
	'files were rolled (' . $node->safe_psql('postgres', 'SELECT count(*) FROM kappa.archive_files') . ' files)');
like($node->safe_psql('postgres', q{SELECT path FROM kappa.archive_files ORDER BY path LIMIT 1}),
	qr{^ar/ar/\d+/\d{4}/\d\d/\d\d/\d\d/\d\d/\d\d(-\d+)?\.avro$}, 'paths follow Capture\'s layout');

# An independent reader: python3-avro, over the manifest's ranges.
$node->safe_psql('postgres',
	"COPY (SELECT partition, path, first_offset, last_offset FROM kappa.archive_files) TO '$dir/manifest.tsv'");
my $python = "$dir/read_archive.py";
open my $fh, '>', $python or die $!;
print $fh <<'PY';
import sys, json
import avro.datafile, avro.io
root, manifest = sys.argv[1], sys.argv[2]
codecs = set()
for line in open(manifest):
    partition, path, first, last = line.rstrip("\n").split("\t")
    with open(root + "/" + path, "rb") as f:
        reader = avro.datafile.DataFileReader(f, avro.io.DatumReader())
        codecs.add(reader.get_meta("avro.codec").decode())
        for r in reader:
            if int(first) <= r["SequenceNumber"] <= int(last):
                print("%s\t%d\t%s\t%s" % (partition, r["SequenceNumber"],
                    r["SystemProperties"].get("x-opt-partition-key"), r["Body"].decode()))
print("codecs\t" + ",".join(sorted(codecs)), file=sys.stderr)
PY
close $fh;
my ($out, $err);
IPC::Run::run([ '/usr/bin/python3', $python, $archive, "$dir/manifest.tsv" ], '>', "$dir/archived.tsv", '2>', \$err)
  or die "python3: $err";
like($err, qr/codecs\tdeflate/, 'the files are deflate-compressed');
is($node->safe_psql('postgres', qq{
		CREATE TEMP TABLE archived (partition int, seq bigint, k text, body text);
		COPY archived FROM '$dir/archived.tsv';
		SELECT count(*), count(DISTINCT (partition, seq)), count(DISTINCT (body::json->>'i')),
			min((body::json->>'i')::int), max((body::json->>'i')::int),
			count(*) FILTER (WHERE k <> 'key' || ((body::json->>'i')::int % 13)) FROM archived}),
	"$n|$n|$n|0|" . ($n - 1) . '|0', 'the archive holds every message once, with its key');

# kappa reads its own files as it reads Azure's.
my $first = $node->safe_psql('postgres', q{SELECT path FROM kappa.archive_files ORDER BY partition, first_offset LIMIT 1});
is($node->safe_psql('postgres', qq{
		SELECT min(sequence_number), count(*) FILTER (WHERE body IS NULL),
			bool_and(enqueued_time = to_timestamp((system_properties->>'x-opt-enqueued-time')::bigint / 1000.0))
		FROM kappa_archive_read('$archive/$first')}),
	'0|0|t', 'kappa_archive_read reads kappa\'s own archive');

stop_broker($broker);
done_testing();
