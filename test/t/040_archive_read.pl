# kappa_archive_read reads Event Hubs Capture files written by others:
# Azure's own Capture output (test/fixtures/eventhubs-capture), and files in
# Capture's schema written by Python's Avro library (deflate, many blocks,
# null property values, null bodies).  The oracle is python3-avro reading
# the same files.  Bad files (missing, truncated, corrupt, another schema)
# are clear errors naming the file.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Copy;
use Cwd qw(abs_path);

my $node = kappa_node('archive', conf => "kappa.enabled = off\n");
my $dir = PostgreSQL::Test::Utils::tempdir();
my $fixtures = abs_path('test/fixtures/eventhubs-capture');

# The independent reader and writer: Python's avro library.
my $python = "$dir/avro_tool.py";
open my $fh, '>', $python or die $!;
print $fh <<'PY';
import json, sys, random
import avro.schema, avro.datafile, avro.io

def hexify(v):
    return "\\x" + v.hex() if isinstance(v, bytes) else v

if sys.argv[1] == "read":
    with open(sys.argv[2], "rb") as f:
        for r in avro.datafile.DataFileReader(f, avro.io.DatumReader()):
            body = r["Body"]
            print(json.dumps({
                "sequence_number": r["SequenceNumber"], "offset": r["Offset"],
                "enqueued_time_utc": r["EnqueuedTimeUtc"],
                "system_properties": {k: hexify(v) for k, v in r["SystemProperties"].items()},
                "properties": {k: hexify(v) for k, v in r["Properties"].items()},
                "body": None if body is None else body.hex()}))
elif sys.argv[1] == "write":
    schema = avro.schema.parse(json.dumps({
        "type": "record", "name": "EventData", "namespace": "Microsoft.ServiceBus.Messaging",
        "fields": [
            {"name": "SequenceNumber", "type": "long"},
            {"name": "Offset", "type": "string"},
            {"name": "EnqueuedTimeUtc", "type": "string"},
            {"name": "SystemProperties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
            {"name": "Properties", "type": {"type": "map", "values": ["long", "double", "string", "bytes", "null"]}},
            {"name": "Body", "type": ["null", "bytes"]}]}))
    rnd = random.Random(40)
    with open(sys.argv[2], "wb") as f:
        w = avro.datafile.DataFileWriter(f, avro.io.DatumWriter(), schema, codec="deflate")
        for i in range(2000):
            w.append({
                "SequenceNumber": 1000 + i, "Offset": str(4096 * i),
                "EnqueuedTimeUtc": "3/%d/2026 %d:%02d:%02d %s" % (1 + i % 28, 1 + i % 12, i % 60, (7 * i) % 60, "AM" if i % 2 else "PM"),
                "SystemProperties": {"x-opt-sequence-number": 1000 + i, "x-opt-partition-key": "k%d" % (i % 7)}
                    if i % 3 else {"x-opt-enqueued-time": 1767225600000 + 1000 * i},
                "Properties": {"n": i, "d": i / 8, "s": "é\"%d\\" % i, "b": bytes([i % 256, 0, 255]), "z": None},
                "Body": None if i % 50 == 0 else json.dumps({"i": i, "text": "x" * rnd.randint(0, 300)}).encode()})
            if i % 100 == 99:
                w.sync()    # end the block: many blocks in one file
        w.close()
elif sys.argv[1] == "write-other":
    schema = avro.schema.parse('{"type": "record", "name": "Other", "fields": [{"name": "a", "type": "int"}]}')
    with open(sys.argv[2], "wb") as f:
        w = avro.datafile.DataFileWriter(f, avro.io.DatumWriter(), schema)
        w.append({"a": 1})
        w.close()
PY
close $fh;

sub python
{
	my (@args) = @_;
	my ($out, $err);
	IPC::Run::run([ '/usr/bin/python3', $python, @args ], '>', \$out, '2>', \$err) or die "python3 @args: $err";
	return $out;
}

# Compare kappa's reading of FILE with Python's.
sub same_as_python
{
	my ($file, $label) = @_;
	my $lines = python('read', $file);
	my $count = () = $lines =~ /\n/g;
	open my $out, '>', "$dir/python.jsonl" or die $!;
	print $out $lines;
	close $out;
	my $result = $node->safe_psql('postgres', qq{
		CREATE TEMP TABLE py (j jsonb);
		COPY py FROM '$dir/python.jsonl' WITH (FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x03', ESCAPE E'\\x01');
		CREATE TEMP TABLE k AS SELECT jsonb_build_object('sequence_number', sequence_number, 'offset', "offset",
			'enqueued_time_utc', enqueued_time_utc, 'system_properties', system_properties,
			'properties', properties, 'body', encode(body, 'hex')) AS j
		FROM kappa_archive_read('$file');
		SELECT (SELECT count(*) FROM k) || '/' || (SELECT count(*) FROM (SELECT j FROM k EXCEPT ALL SELECT j FROM py) a)
			|| '/' || (SELECT count(*) FROM (SELECT j FROM py EXCEPT ALL SELECT j FROM k) b)});
	is($result, "$count/0/0", "$label: kappa reads what Python reads ($count records)");
	return;
}

same_as_python("$fixtures/p9--2022-12-09--16-50-12.avro", 'Azure Capture, 1 event');
same_as_python("$fixtures/p9--2022-12-09--17-10-12.avro", 'Azure Capture, 20 events');
same_as_python("$fixtures/empty.avro", 'Azure Capture, empty');
python('write', "$dir/python.avro");
same_as_python("$dir/python.avro", 'written by Python (deflate, many blocks)');

# The enqueued time: x-opt-enqueued-time when present, else EnqueuedTimeUtc.
is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM kappa_archive_read('$fixtures/p9--2022-12-09--17-10-12.avro')
		WHERE enqueued_time = to_timestamp((system_properties->>'x-opt-enqueued-time')::bigint / 1000.0)}),
	'20', 'enqueued_time is x-opt-enqueued-time, to the millisecond');
is($node->safe_psql('postgres', qq{
		SET TimeZone = 'UTC';
		SELECT count(*) FROM kappa_archive_read('$dir/python.avro')
		WHERE NOT system_properties ? 'x-opt-enqueued-time'
		  AND enqueued_time = to_timestamp(enqueued_time_utc, 'FMMM/FMDD/YYYY FMHH12:MI:SS AM')}),
	'1333', 'otherwise EnqueuedTimeUtc, Capture\'s "M/D/YYYY h:mm:ss AM" in UTC');

# Bad files.
my $size = -s "$dir/python.avro";
copy("$dir/python.avro", "$dir/truncated.avro") or die $!;
truncate("$dir/truncated.avro", int($size / 2)) or die $!;
copy("$dir/python.avro", "$dir/corrupt.avro") or die $!;
open my $c, '+<:raw', "$dir/corrupt.avro" or die $!;
seek($c, int($size / 3), 0);
print $c "\xff" x 64;
close $c;
python('write-other', "$dir/other.avro");
open my $t, '>', "$dir/text.avro" or die $!;
print $t "not avro at all\n";
close $t;
my @bad = (
	[ "$dir/nosuch.avro", qr/58P01: could not open archive file ".*nosuch\.avro": No such file/, 'a missing file' ],
	[ "$dir/text.avro", qr/XX001: could not read archive file ".*text\.avro": not an Avro container file/, 'not Avro' ],
	[ "$dir/truncated.avro", qr/XX001: could not read archive file ".*truncated\.avro": record \d+ is corrupt or cut short/, 'a truncated file' ],
	[ "$dir/corrupt.avro", qr/XX001: could not read archive file ".*corrupt\.avro"/, 'a corrupt block' ],
	[ "$dir/other.avro", qr/XX001: archive file ".*other\.avro" does not hold Capture records/, 'another schema' ],
	[ 'relative.avro', qr/22023: archive file "relative\.avro" is not an absolute path/, 'a relative path' ],
);
foreach my $case (@bad)
{
	my ($rc, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT count(*) FROM kappa_archive_read('$case->[0]')");
	like($err, $case->[1], "$case->[2] is a clear error naming the file");
}
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'and the server is up');

done_testing();
