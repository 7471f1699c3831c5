# A view's start: from the earliest message (the default), or from a
# timestamp, in which case it applies exactly the messages whose broker
# timestamp is at or after it, counting the others as filtered.  The oracle
# is the broker's own timestamps, read back with kappa_peek.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('st:2');
my $node = kappa_node('start', conf => "kappa.flush_interval = '200ms'\n");
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();

$node->safe_psql('postgres',
	"SELECT kappa_create_stream('s', topic => 'st', brokers => '$b', columns => 'k text, v int, batch int')");

# Two batches, each by its own kcat process, so that their timestamps
# differ; 60 messages per partition per batch.
foreach my $batch (1, 2)
{
	foreach my $p (0, 1)
	{
		my $file = "$dir/b$batch-p$p.txt";
		open my $fh, '>', $file or die $!;
		printf $fh qq({"k": "k%d", "v": %d, "batch": %d}\n), $_ % 7, $_, $batch foreach 1 .. 60;
		close $fh;
		IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'st', '-p', $p, '-l', $file ])
		  or die "kcat failed";
	}
}

# What the brokers hold, with their timestamps; the start is the earliest
# timestamp of the second batch.
$node->safe_psql('postgres', q{
	CREATE TABLE held AS SELECT partition, "offset", "timestamp", payload::json AS j FROM kappa_peek('s', 10000);
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM held'), '240', 'kappa_peek read back every message');
my $start = $node->safe_psql('postgres',
	q{SELECT min("timestamp") FROM held WHERE (j->>'batch')::int = 2});
ok($node->safe_psql('postgres', qq{SELECT count(*) FROM held WHERE "timestamp" < '$start'}) > 0,
	'some messages are stamped before the start');

my $q = q{SELECT k, count(*) AS n, sum(v) AS s FROM s GROUP BY k};
$node->safe_psql('postgres', qq{
	SELECT kappa_create_view('from_start', \$q\$$q\$q\$, '{"start": "$start"}');
	SELECT kappa_create_view('from_earliest', \$q\$$q\$q\$);
	SELECT kappa_create_view('from_future', \$q\$$q\$q\$, '{"start": "2100-01-01 00:00:00+00"}');
});
is($node->safe_psql('postgres', "SELECT kappa_wait('s', '60 seconds')"), 't', 'every view caught up');

my $oracle = q{SELECT j->>'k' AS k, count(*) AS n, sum((j->>'v')::int) AS s FROM held WHERE WHERE_CLAUSE GROUP BY 1};
foreach my $case ([ 'from_start', qq{"timestamp" >= '$start'} ], [ 'from_earliest', 'true' ])
{
	(my $o = $oracle) =~ s/WHERE_CLAUSE/$case->[1]/;
	my ($extra, $missing, $rows) = split m{/}, $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $case->[0] EXCEPT ALL ($o)) a)
			|| '/' || (SELECT count(*) FROM (($o) EXCEPT ALL SELECT * FROM $case->[0]) b)
			|| '/' || (SELECT count(*) FROM $case->[0])});
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"$case->[0] equals the messages stamped from its start ($rows rows; $extra extra, $missing missing)");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM from_future'), '0', 'a view starting in the future is empty');

# Messages before the start are read and counted as filtered, so the
# counts reconcile and kappa_wait could return.
is($node->safe_psql('postgres', q{
		SELECT view, sum(filtered), sum(delivered) FROM kappa_stats WHERE view IS NOT NULL GROUP BY 1 ORDER BY 1}),
	join("\n",
		'public.from_earliest|0|240',
		'public.from_future|240|0',
		'public.from_start|'
		  . $node->safe_psql('postgres', qq{SELECT count(*) FROM held WHERE "timestamp" < '$start'}) . '|'
		  . $node->safe_psql('postgres', qq{SELECT count(*) FROM held WHERE "timestamp" >= '$start'})),
	'filtered (before the start) and delivered per view');

# The start is stored as an instant in UTC, whatever the session's zone
# and however it was written.
$node->safe_psql('postgres', qq{
	SET TimeZone = 'Asia/Kolkata';
	SELECT kappa_create_view('from_local', \$q\$$q\$q\$, '{"start": "2026-03-01 05:30:00"}');
});
is($node->safe_psql('postgres', q{SELECT options->>'start' FROM kappa.views WHERE view_name = 'from_local'}),
	'2026-03-01 00:00:00+00', 'a start is stored in UTC');

# Starts that are not one.
my @bad = (
	[ '{"start": "soon"}', qr/22007: invalid input syntax for type timestamp with time zone: "soon"/ ],
	[ '{"start": "infinity"}', qr/22023: invalid start option of a view/ ],
	[ '{"start": 5}', qr/22023: invalid start option of a view/ ],
);
foreach my $case (@bad)
{
	my ($rc, $out, $err) = $node->psql('postgres', qq{\\set VERBOSITY verbose
		SELECT kappa_create_view('bad_start', \$q\$$q\$q\$, '$case->[0]')});
	like($err, $case->[1], "start $case->[0] is refused");
}

stop_broker($broker);
done_testing();
