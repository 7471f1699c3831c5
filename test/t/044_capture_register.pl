# Capture files written elsewhere as a stream's history: python3-avro writes
# the first part of each partition in Event Hubs Capture's schema and
# layout ({namespace}/{hub}/{partition}/YYYY/MM/DD/HH/mm/ss.avro, empty
# files included), kappa_archive_register records them, and a replay that
# prefers the archive reads that part from those files and the rest from
# the log: the view equals its batch query over every event.  Registering
# the directory again records nothing twice.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $n = 1_200;
my $broker = start_broker('cap:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $hub = "$dir/capture/ns/cap";
my $node = kappa_node('capture', conf => "kappa.flush_interval = '100ms'\n");

$node->safe_psql('postgres', qq{
	SELECT kappa_create_stream('cap', topic => 'cap', brokers => '$b', columns => 'dev text, v int');
	SELECT kappa_create_view('total', 'SELECT dev, count(*) AS n, sum(v) AS s FROM cap GROUP BY dev');
	CREATE TABLE ev AS SELECT i, 'd' || (i % 5) AS dev, (i * 7) % 101 AS v FROM generate_series(0, $n - 1) i;
	COPY (SELECT dev || '|' || json_build_object('dev', dev, 'v', v)::text FROM ev ORDER BY i) TO '$dir/events.txt';
});
IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'cap', '-K', '|', '-l', "$dir/events.txt" ]) or die "kcat failed";
is($node->safe_psql('postgres', "SELECT kappa_wait('cap', '60 seconds')"), 't', 'consumed');

# What the broker holds, to write the first 200 messages of each partition
# as Capture would have, in two files per partition and an empty one.
$node->safe_psql('postgres', qq{
	COPY (SELECT partition, "offset", extract(epoch FROM "timestamp") * 1000, key, encode(raw, 'hex')
		FROM kappa_peek('cap', 10000) WHERE "offset" < 200 ORDER BY partition, "offset") TO '$dir/held.tsv'});
open my $fh, '>', "$dir/write_capture.py" or die $!;
print $fh <<'PY';
import json, os, sys, datetime
import avro.schema, avro.datafile, avro.io
schema = avro.schema.parse(json.dumps({
    "type": "record", "name": "EventData", "namespace": "Microsoft.ServiceBus.Messaging",
    "fields": [
        {"name": "SequenceNumber", "type": "long"}, {"name": "Offset", "type": "string"},
        {"name": "EnqueuedTimeUtc", "type": "string"},
        {"name": "SystemProperties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
        {"name": "Properties", "type": {"type": "map", "values": ["long", "double", "string", "bytes", "null"]}},
        {"name": "Body", "type": ["null", "bytes"]}]}))
hub, held = sys.argv[1], sys.argv[2]
rows = {}
for line in open(held):
    p, off, ms, key, body = line.rstrip("\n").split("\t")
    rows.setdefault(int(p), []).append((int(off), int(float(ms)), key, bytes.fromhex(body)))
def write(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        w = avro.datafile.DataFileWriter(f, avro.io.DatumWriter(), schema, codec="deflate")
        for off, ms, key, body in records:
            t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
            w.append({"SequenceNumber": off, "Offset": str(off * 512),
                      "EnqueuedTimeUtc": "%d/%d/%d %d:%02d:%02d %s" % (t.month, t.day, t.year,
                          (t.hour % 12) or 12, t.minute, t.second, "AM" if t.hour < 12 else "PM"),
                      "SystemProperties": {"x-opt-enqueued-time": ms, "x-opt-sequence-number": off,
                                           "x-opt-partition-key": key},
                      "Properties": {"origin": "python", "none": None},
                      "Body": body})
        w.close()
for p, records in rows.items():
    half = len(records) // 2
    write("%s/%d/2026/01/01/00/00/00.avro" % (hub, p), records[:half])
    write("%s/%d/2026/01/01/00/05/00.avro" % (hub, p), records[half:])
    write("%s/%d/2026/01/01/00/10/00.avro" % (hub, p), [])
PY
close $fh;
my $err;
IPC::Run::run([ '/usr/bin/python3', "$dir/write_capture.py", $hub, "$dir/held.tsv" ], '2>', \$err)
  or die "python3: $err";

is($node->safe_psql('postgres', qq{
		SELECT count(*), sum(records), min(first_offset), max(last_offset)
		FROM kappa_archive_register('cap', '$hub')}),
	'4|400|0|199', 'the four non-empty Capture files are registered, offsets 0 to 199 of each partition');
is($node->safe_psql('postgres', qq{SELECT count(*) FROM kappa_archive_register('cap', '$hub')}), '0',
	'registering the directory again records nothing twice');

my ($archive, $log) = split /\|/, $node->safe_psql('postgres', q{
	SET kappa.replay_prefer_archive = on;
	SELECT archive_events, log_events FROM kappa_replay('total')});
is($archive, 400, 'the replay read the first 200 messages of each partition from the Capture files');
is($archive + $log, $n, 'and the rest from the log');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM (SELECT * FROM total EXCEPT ALL
			SELECT dev, count(*), sum(v) FROM ev GROUP BY dev) x}) . '/'
	  . $node->safe_psql('postgres', 'SELECT count(*) FROM total'),
	'0/5', 'the replayed view equals its batch query');

my ($rc, $out);
($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT * FROM kappa_archive_register('cap', '$dir')");
like($err, qr/22023: archive directory ".*" has no partition directories/, 'a directory without partitions is refused');

stop_broker($broker);
done_testing();
