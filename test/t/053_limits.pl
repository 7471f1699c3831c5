# Limits that hold (issue 11), each against a hand computation:
# - an event time of infinity or -infinity is a dead letter of the stream
#   (22008) and moves no watermark: the events after it are on time;
# - times at both ends of Postgres's timestamp range: a view rejects an
#   event (22008) when a window holding it would start or end outside the
#   range (a tumble of 1 day, a hop of 10 days every day, a session of 30
#   days), a running view applies it; a rejected event moves no watermark
#   (the events after it are late or on time exactly as the accepted ones
#   say); every window bound in the views reads back;
# - dates whose field order is ambiguous are dead letters (22007); ISO
#   dates and dates with a month's name are read; a time without a zone
#   is UTC, whatever the server's TimeZone (America/New_York here) or the
#   session's (Asia/Tokyo, with DateStyle SQL, DMY) when calling
#   kappa.decode and kappa_replay;
# - kappa.decode gives the worker's verdict on every message of a hostile
#   corpus (025_hostile_input's kinds and the new ones): not ok exactly
#   when the worker dead-lettered it (view_id 0), with the same SQLSTATE
#   and reason.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('lim:2', 'dates:1', 'hc:1');
my $b = $broker->{bootstrap};
my $node = kappa_node('limits', conf => "kappa.flush_interval = '100ms'\ntimezone = 'America/New_York'\n");
my $su = sub { $node->safe_psql('postgres', $_[0]) };

is($su->('SHOW TimeZone'), 'America/New_York', 'the server\'s TimeZone is America/New_York');

# Whether a relation's rows equal the rows of a hand-written query (both
# ways, with multiplicity).
sub rows_equal
{
	my ($sql, $expected, $label) = @_;
	my $r = $su->(qq{SET TimeZone = 'Asia/Tokyo';
		SELECT (SELECT count(*) FROM (($sql) EXCEPT ALL ($expected)) a)
			|| '/' || (SELECT count(*) FROM (($expected) EXCEPT ALL ($sql)) b)
			|| '/' || (SELECT count(*) FROM ($sql) c)});
	my ($extra, $missing, $rows) = split m{/}, $r;
	ok($extra == 0 && $missing == 0, "$label ($rows rows; $extra extra, $missing missing)")
	  or diag($su->(qq{SET TimeZone = 'UTC'; SELECT 'extra: ' || a::text FROM (($sql) EXCEPT ALL ($expected)) a})
		  . "\n" . $su->(qq{SET TimeZone = 'UTC'; SELECT 'missing: ' || b::text FROM (($expected) EXCEPT ALL ($sql)) b}));
	return;
}

# ---------------------------------------------------------------------------
# Infinite event times and the ends of the timestamp range

# Two partitions, chosen explicitly with kcat (kappa_produce's partitioner
# picks by key).
my $dir = PostgreSQL::Test::Utils::tempdir();
sub kcat
{
	my ($topic, $p, @lines) = @_;
	my $file = "$dir/$topic-$p-" . int(rand(1e9)) . '.txt';
	open my $fh, '>', $file or die $!;
	print $fh "$_\n" foreach @lines;
	close $fh;
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', $topic, '-p', $p, '-l', $file ]) or die "kcat failed";
	return;
}

$su->(qq{
	SELECT kappa_create_stream('lim', topic => 'lim', brokers => '$b',
		columns => 'dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '1 minute');
	SELECT kappa_create_view('l_tum', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM lim, kappa_tumble(ts, '1 day') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('l_hop', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM lim, kappa_hop(ts, '10 days', '1 day') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('l_ses', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM lim, kappa_session(ts, '30 days') w GROUP BY dev, w.window_start, w.window_end\$q\$);
	SELECT kappa_create_view('l_run', \$q\$SELECT dev, count(*) AS n, sum(v) AS s, min(ts) AS t0, max(ts) AS t1
		FROM lim GROUP BY dev\$q\$);
});
my %vid = map { $_ => $su->("SELECT view_id FROM kappa.views WHERE view_name = '$_'") } qw(l_tum l_hop l_ses l_run);

# Partition 0 (device d), watermark = latest time - 1 minute:
#   0 2026-01-01 10:00:00   v 1
#   1 infinity              v 2   dead letter 22008
#   2 -infinity             v 4   dead letter 22008
#   3 2026-01-01 09:59:30   v 8   on time (had infinity moved the
#                                 watermark, everything after it were late)
#   4 2026-01-03 00:00:00   v 16  on time
kcat('lim', 0, map { qq({"dev": "d", "ts": "$_->[0]", "v": $_->[1]}) }
	[ '2026-01-01T10:00:00Z', 1 ], [ 'infinity', 2 ], [ '-infinity', 4 ],
	[ '2026-01-01T09:59:30Z', 8 ], [ '2026-01-03T00:00:00Z', 16 ]);

# Partition 1 (device e), at the ends of the range: timestamptz runs from
# 4714-11-24 00:00:00+00 BC to 294276-12-31 23:59:59.999999+00, so the
# day-aligned window bounds run from 4714-11-24 00:00 BC to 294276-12-31
# 00:00, and a session may end at 294276-12-31 23:59:59.999999.  Each
# event is A(ccepted), R(ejected: a window would leave the range) or
# L(ate: every window it falls in ended at or before the watermark, the
# latest time the view accepted from the partition less 1 minute):
#                                tumble 1 day   hop 10 d / 1 d     session 30 d   running
#   0 T0 4714-11-24 12:00 BC v32   A              R (starts 11-15)   A              A
#   1 T4 294276-11-15        v64   A              A                  A (to 12-15)   A
#   2 T3 294276-12-10        v128  A              A (ends <= 12-20)  R (01-09)      A
#   3 T2 294276-12-25        v256  A              R (ends 01-04)     R              A
#   4 T1 294276-12-31 12:00  v512  R (ends 01-01) R                  R              A
#   5 T7 294276-12-28        v1024 A: ends 12-29, after T2's watermark, before T1's
#                                                 R                  R              A
#   6 T8 294276-12-12        v2048 L (T7)         A: ends 12-13..12-22, after T3's
#                                                 watermark, before T2's
#                                                                    R              A
#   7 T5 294276-11-25        v4096 L              L (T8)             A: ends 12-25, after T4's
#                                                                    watermark, before T3's..T8's: joins T4
my @edge = ([ '4714-11-24T12:00:00Z BC', 32 ], [ '294276-11-15T00:00:00Z', 64 ], [ '294276-12-10T00:00:00Z', 128 ],
	[ '294276-12-25T00:00:00Z', 256 ], [ '294276-12-31T12:00:00Z', 512 ], [ '294276-12-28T00:00:00Z', 1024 ],
	[ '294276-12-12T00:00:00Z', 2048 ], [ '294276-11-25T00:00:00Z', 4096 ]);
kcat('lim', 1, map { qq({"dev": "e", "ts": "$_->[0]", "v": $_->[1]}) } @edge);
is($su->("SELECT kappa_wait('lim', '60 seconds')"), 't', 'stream lim consumed');

# The stream's dead letters: the two infinite times.
is($su->(q{SELECT string_agg(format('%s:%s %s %s', partition, "offset", sqlstate, reason), ', ' ORDER BY partition, "offset")
		FROM kappa.dead_letters WHERE view_id = 0}),
	'0:1 22008 the event time is infinite, 0:2 22008 the event time is infinite',
	'infinity and -infinity are dead letters (22008)');

# Each view's rejects, with the time in the reason (in UTC).
my @utc = ('4714-11-24 12:00:00+00 BC', '294276-11-15 00:00:00+00', '294276-12-10 00:00:00+00',
	'294276-12-25 00:00:00+00', '294276-12-31 12:00:00+00', '294276-12-28 00:00:00+00',
	'294276-12-12 00:00:00+00', '294276-11-25 00:00:00+00');
my %rejected = (l_tum => [4], l_hop => [ 0, 3, 4, 5 ], l_ses => [ 2, 3, 4, 5, 6 ], l_run => []);
foreach my $v (sort keys %rejected)
{
	is($su->(qq{SELECT coalesce(string_agg(format('%s:%s %s %s', partition, "offset", sqlstate, reason), ', '
			ORDER BY partition, "offset"), '') FROM kappa.dead_letters WHERE view_id = $vid{$v}}),
		join(', ', map { "1:$_ 22008 the windows of time $utc[$_] are out of range" } @{ $rejected{$v} }),
		"$v rejected exactly the events whose windows leave the range (22008)");
}

# Counts per view and partition: delivered = applied + late + rejected.
is($su->(q{SELECT string_agg(format('%s %s: %s=%s+%s+%s', view, partition, delivered, applied, late, rejected),
		', ' ORDER BY view, partition) FROM kappa_stats WHERE stream = 'lim' AND view IS NOT NULL}),
	join(', ', 'public.l_hop 0: 3=3+0+0', 'public.l_hop 1: 8=3+1+4', 'public.l_run 0: 3=3+0+0',
		'public.l_run 1: 8=8+0+0', 'public.l_ses 0: 3=3+0+0', 'public.l_ses 1: 8=3+0+5',
		'public.l_tum 0: 3=3+0+0', 'public.l_tum 1: 8=5+2+1'),
	'delivered = applied + late + rejected, per view and partition, as computed by hand');
is($su->(q{SELECT string_agg(format('%s: %s=%s+%s', partition, consumed, consumed - dead_lettered, dead_lettered), ', '
		ORDER BY partition) FROM kappa_stats WHERE stream = 'lim' AND view IS NULL}),
	'0: 5=3+2, 1: 8=8+0', 'consumed = decoded + dead-lettered');

# The watermarks' source: the latest time each view accepted per partition.
is($su->(q{SET TimeZone = 'UTC'; SELECT string_agg(format('%s %s %s', v.view_name, vp.partition, vp.max_event_time), ', '
		ORDER BY v.view_name, vp.partition) FROM kappa.view_partitions vp JOIN kappa.views v USING (view_id)
		WHERE v.view_name LIKE 'l\_%'}),
	join(', ', 'l_hop 0 2026-01-03 00:00:00+00', 'l_hop 1 294276-12-12 00:00:00+00',
		'l_run 0 2026-01-03 00:00:00+00', 'l_run 1 294276-12-31 12:00:00+00',
		'l_ses 0 2026-01-03 00:00:00+00', 'l_ses 1 294276-11-25 00:00:00+00',
		'l_tum 0 2026-01-03 00:00:00+00', 'l_tum 1 294276-12-28 00:00:00+00'),
	'neither an infinite time nor a rejected event moved a watermark');

# The views' rows, by hand.
rows_equal('SELECT dev, window_start, window_end, n, s FROM l_tum', q{
	VALUES ('d', timestamptz '2026-01-01 00:00+00', timestamptz '2026-01-02 00:00+00', 2::bigint, 9::bigint),
		('d', '2026-01-03 00:00+00', '2026-01-04 00:00+00', 1, 16),
		('e', '4714-11-24 00:00+00 BC', '4714-11-25 00:00+00 BC', 1, 32),
		('e', '294276-11-15 00:00+00', '294276-11-16 00:00+00', 1, 64),
		('e', '294276-12-10 00:00+00', '294276-12-11 00:00+00', 1, 128),
		('e', '294276-12-25 00:00+00', '294276-12-26 00:00+00', 1, 256),
		('e', '294276-12-28 00:00+00', '294276-12-29 00:00+00', 1, 1024)},
	'l_tum: the tumbling windows of the accepted, on-time events');
rows_equal('SELECT dev, window_start, window_end, n, s FROM l_hop', q{
	SELECT dev, s, s + interval '10 days', n::bigint, sum::bigint FROM (VALUES
		('d', '2025-12-23 00:00+00'::timestamptz, '2025-12-24 00:00+00'::timestamptz, 2, 9),
		('d', '2025-12-25 00:00+00', '2026-01-01 00:00+00', 3, 25),
		('d', '2026-01-02 00:00+00', '2026-01-03 00:00+00', 1, 16),
		('e', '294276-11-06 00:00+00', '294276-11-15 00:00+00', 1, 64),
		('e', '294276-12-01 00:00+00', '294276-12-02 00:00+00', 1, 128),
		('e', '294276-12-03 00:00+00', '294276-12-10 00:00+00', 2, 2176),
		('e', '294276-12-11 00:00+00', '294276-12-12 00:00+00', 1, 2048)) r(dev, a, z, n, sum),
		generate_series(a, z, interval '1 day') s},
	'l_hop: the hopping windows of the accepted, on-time events');
rows_equal('SELECT dev, window_start, window_end, n, s FROM l_ses', q{
	VALUES ('d', timestamptz '2026-01-01 09:59:30+00', timestamptz '2026-02-02 00:00+00', 3::bigint, 25::bigint),
		('e', '4714-11-24 12:00+00 BC', '4714-12-24 12:00+00 BC', 1, 32),
		('e', '294276-11-15 00:00+00', '294276-12-25 00:00+00', 2, 4160)},
	'l_ses: the sessions of the accepted, on-time events');
rows_equal('SELECT dev, n, s, t0, t1 FROM l_run', q{
	VALUES ('d', 3::bigint, 25::bigint, timestamptz '2026-01-01 09:59:30+00', timestamptz '2026-01-03 00:00+00'),
		('e', 8, 8160, '4714-11-24 12:00+00 BC', '294276-12-31 12:00+00')},
	'l_run: every decodable event');
foreach my $v (qw(l_tum l_hop l_ses))
{
	is($su->(qq{SELECT count(*) FROM $v WHERE window_start::text::timestamptz IS DISTINCT FROM window_start
			OR window_end::text::timestamptz IS DISTINCT FROM window_end
			OR NOT isfinite(window_start) OR NOT isfinite(window_end)}),
		'0', "$v: every window bound is a finite timestamp that reads back");
}
foreach my $v (qw(l_tum l_hop l_ses l_run))
{
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT count(*) FROM kappa_check('$v')");
	is("$rc/$out", '0/0', "kappa_check finds no difference in $v") or diag $err;
}

# ---------------------------------------------------------------------------
# Dates: ambiguous ones are dead letters; a time without a zone is UTC

$su->(qq{
	SELECT kappa_create_stream('dates', topic => 'dates', brokers => '$b',
		columns => 'note text, ts timestamptz NOT NULL, d date', event_time => 'ts');
	SELECT kappa_create_view('d_run', 'SELECT note, ts, d, count(*) AS n FROM dates GROUP BY note, ts, d');
});
# [note, ts, d, expected: [ts UTC, d] or [sqlstate, reason]]
my @dates = (
	[ 'iso, space, no zone', '2026-05-12 08:00', 'May 12 2026', [ '2026-05-12 08:00:00+00', '2026-05-12' ] ],
	[ 'iso, T, no zone', '2026-05-12T08:00:00', '2026-05-12', [ '2026-05-12 08:00:00+00', '2026-05-12' ] ],
	[ 'month name, no zone', 'May 12 2026 08:00', '2026/05/12', [ '2026-05-12 08:00:00+00', '2026-05-12' ] ],
	[ 'day-month name, no zone', '12-May-2026 08:00', '12 May 2026', [ '2026-05-12 08:00:00+00', '2026-05-12' ] ],
	[ 'iso, offset', '2026-05-12T08:00:00-04:00', '2026-05-12', [ '2026-05-12 12:00:00+00', '2026-05-12' ] ],
	[ 'ambiguous ts', '05/12/2026 08:00', '2026-05-12',
		[ '22007', 'field "ts": the order of the date\'s fields in "05/12/2026 08:00" is ambiguous' ] ],
	[ 'ambiguous d', '2026-05-12T08:00:00Z', '12/05/2026',
		[ '22007', 'field "d": the order of the date\'s fields in "12/05/2026" is ambiguous' ] ],
	[ 'ambiguous d with a time', '2026-05-12T08:00:00Z', '05/12/2026 08:00',
		[ '22007', 'field "d": the order of the date\'s fields in "05/12/2026 08:00" is ambiguous' ] ],
	[ 'ambiguous d with dots', '2026-05-12T08:00:00Z', '12.05.2026',
		[ '22007', 'field "d": the order of the date\'s fields in "12.05.2026" is ambiguous' ] ],
	[ 'ambiguous d, short', '2026-05-12T08:00:00Z', '5-12-26',
		[ '22007', 'field "d": the order of the date\'s fields in "5-12-26" is ambiguous' ] ],
);
my @date_payloads = map { qq({"note": "$_->[0]", "ts": "$_->[1]", "d": "$_->[2]"}) } @dates;
kcat('dates', 0, @date_payloads);
is($su->("SELECT kappa_wait('dates', '60 seconds')"), 't', 'stream dates consumed');
my @date_ok = grep { $_->[3][0] =~ /\+00$/ } @dates;
my @date_dead = grep { $_->[3][0] !~ /\+00$/ } @dates;
my $date_rows = join(",\n", map { "('$_->[0]', timestamptz '$_->[3][0]', date '$_->[3][1]', 1::bigint)" } @date_ok);
rows_equal('SELECT note, ts, d, n FROM d_run', "VALUES $date_rows",
	'd_run: the unambiguous dates, and times without a zone as UTC');
my $dstream = $su->(q{SELECT stream_id FROM kappa.streams WHERE name = 'dates'});
my $dead_expected = join("\n", map {
	my $i = $_;
	$dates[$i][3][0] =~ /\+00$/ ? () : ("$i|$dates[$i][3][0]|$dates[$i][3][1]")
} 0 .. $#dates);
is($su->(qq{SELECT string_agg(format('%s|%s|%s', "offset", sqlstate, reason), E'\\n' ORDER BY "offset")
		FROM kappa.dead_letters WHERE stream_id = $dstream AND view_id = 0}),
	$dead_expected, 'ambiguous dates are dead letters (22007), with the field and the text');

# kappa.decode, in a session of another TimeZone and DateStyle: the
# worker's settings, not the session's.
my $decode_expected = join("\n", map {
	$_->[3][0] =~ /\+00$/ ? "t|||$_->[3][0]|$_->[3][1]" : "f|$_->[3][0]|$_->[3][1]||"
} @dates);
my $decode_sql = join("\nUNION ALL ", map {
	my $x = $date_payloads[$_] =~ s/'/''/gr;
	qq{SELECT $_ AS i, d.* FROM kappa.decode('dates', convert_to('$x', 'UTF8')) d}
} 0 .. $#dates);
is($su->(qq{SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'SQL, DMY';
		SELECT string_agg(format('%s|%s|%s|%s|%s', ok, sqlstate, reason, "values"->>'ts', "values"->>'d'), E'\\n' ORDER BY i)
		FROM ($decode_sql) x}),
	$decode_expected, 'kappa.decode in Asia/Tokyo with DateStyle SQL, DMY: the same verdicts and values, in UTC');

# kappa_replay in such a session builds the same view.
$su->(q{SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'SQL, DMY'; SELECT * FROM kappa_replay('d_run')});
rows_equal('SELECT note, ts, d, n FROM d_run', "VALUES $date_rows",
	'd_run replayed in Asia/Tokyo with DateStyle SQL, DMY: the same rows');
is($su->(q{SELECT status FROM kappa_views WHERE name = 'public.d_run'}), 'live', 'd_run is live after the replay');
kcat('dates', 0, qq({"note": "after the replay", "ts": "2026-05-13T00:30:00", "d": "2026-05-13"}));
is($su->("SELECT kappa_wait('dates', '60 seconds')"), 't', 'stream dates consumed after the replay');
rows_equal('SELECT note, ts, d, n FROM d_run',
	"VALUES $date_rows, ('after the replay', timestamptz '2026-05-13 00:30:00+00', date '2026-05-13', 1::bigint)",
	'd_run: the worker goes on, and reads a time without a zone as UTC');

# ---------------------------------------------------------------------------
# kappa.decode gives the worker's verdict on a hostile corpus

$su->(qq{
	CREATE TYPE mood AS ENUM ('calm', 'angry');
	CREATE DOMAIN posint AS int CHECK (VALUE > 0);
	SELECT kappa_create_stream('hc', topic => 'hc', brokers => '$b',
		columns => 'id text, n numeric, f float8, i int, b bool, ts timestamptz NOT NULL, d date,
			rc regclass, q tsquery, m mood, pos posint',
		event_time => 'ts', options => '{"message.max.bytes": "4000000"}');
	SELECT kappa_create_view('hc_all', 'SELECT count(*) AS n, sum(i) AS s FROM hc');
});
# Each case: a name, the payload as SQL (bytea), and the expected verdict
# of the worker: ok, or the dead letter's SQLSTATE.  Objects get a valid
# event time unless the case is about it (TS: the text to insert).
my $TS = q{"ts": "2026-01-01T00:00:00Z", };
sub obj { my ($body) = @_; return "convert_to('{$TS$body}', 'UTF8')"; }
my @cases = (
	[ 'plain', obj('"i": 1'), 'ok' ],
	[ 'duplicate key: the last wins', obj('"i": 1, "i": 2'), 'ok' ],
	[ 'a number as a string', obj('"i": "7"'), 'ok' ],
	[ 'a huge numeric', obj('"n": 1e400'), 'ok' ],
	[ 'NaN as a string', obj('"f": "NaN", "i": 3'), 'ok' ],
	[ 'a bool as yes', obj('"b": "yes", "i": 4'), 'ok' ],
	[ 'nested 60 deep, not a column', q~convert_to('{"ts": "2026-01-01T00:00:00Z", "x": ' || repeat('{"x": ', 59) || '1' || repeat('}', 60), 'UTF8')~, 'ok' ],
	[ 'a string of 1 MB less 1 kB', q~convert_to('{"ts": "2026-01-01T00:00:00Z", "id": "' || repeat('x', 1047552) || '", "i": 6}', 'UTF8')~, 'ok' ],
	[ 'a string of 2 MB (under kappa.max_payload, 10MB)', q~convert_to('{"ts": "2026-01-01T00:00:00Z", "id": "' || repeat('x', 2097152) || '"}', 'UTF8')~, 'ok' ],
	[ 'an epoch time in ms', q~convert_to('{"ts": 1767225600000, "i": 5}', 'UTF8')~, 'ok' ],
	[ 'a time without a zone', q~convert_to('{"ts": "2026-01-01 00:00:00", "i": 5}', 'UTF8')~, 'ok' ],
	[ 'a date with a month name', obj('"d": "May 12 2026"'), 'ok' ],
	[ 'a relation that exists', obj('"rc": "pg_class"'), 'ok' ],
	[ 'a tsquery, an enum, a domain', obj('"q": "a & b", "m": "calm", "pos": 3'), 'ok' ],
	[ 'empty', q~''::bytea~, '22P02' ],
	[ 'white space only', q~convert_to('   ', 'UTF8')~, '22P02' ],
	[ 'NaN bare', obj('"f": NaN'), '22P02' ],
	[ 'invalid UTF-8', q~'\x7b226964223a2022fffe222c202269223a20317d'::bytea~, '22021' ],
	[ 'a raw NUL byte', q~'\x7b226964223a20226100622c202269223a20317d'::bytea~, '22P02' ],
	[ 'an escaped NUL', obj('"id": "a\u0000b", "i": 1'), '22P05' ],
	[ 'wrong type: string', obj('"i": "abc"'), '22P02' ],
	[ 'wrong type: array', obj('"i": [1]'), '22P02' ],
	[ 'wrong type: object for a date', obj('"d": {"y": 2026}'), '22P02' ],
	[ 'int out of range', obj('"i": 99999999999'), '22003' ],
	[ 'float out of range', obj('"f": 1e400'), '22003' ],
	[ 'nested 100 deep', q~convert_to(repeat('[', 100) || repeat(']', 100), 'UTF8')~, '54000' ],
	[ 'not an object', q~convert_to('[1]', 'UTF8')~, '22P02' ],
	[ 'trailing garbage', obj('"i": 1} x'), '22P02' ],
	[ 'a relation that does not exist', obj('"rc": "no_such_table"'), '42P01' ],
	[ 'a tsquery that does not parse', obj('"q": "&&&"'), '42601' ],
	[ 'an enum value that does not exist', obj('"m": "furious"'), '22P02' ],
	[ 'a domain CHECK that fails', obj('"pos": -5'), '23514' ],
	[ 'infinity', q~convert_to('{"ts": "infinity"}', 'UTF8')~, '22008' ],
	[ '-infinity', q~convert_to('{"ts": "-infinity"}', 'UTF8')~, '22008' ],
	[ 'a null event time', q~convert_to('{"ts": null}', 'UTF8')~, '22004' ],
	[ 'no event time', q~convert_to('{"i": 1}', 'UTF8')~, '22004' ],
	[ 'a time that is none', q~convert_to('{"ts": "soon"}', 'UTF8')~, '22007' ],
	[ 'an epoch time out of range', q~convert_to('{"ts": 1e30}', 'UTF8')~, '22008' ],
	[ 'an ambiguous event time', q~convert_to('{"ts": "01/02/2026 00:00"}', 'UTF8')~, '22007' ],
	[ 'an ambiguous date', obj('"d": "01/02/2026"'), '22007' ],
	[ 'a date out of range', obj('"d": "5874898-01-01"'), '22008' ],
);
$su->('CREATE TABLE produced (name text, "offset" bigint, payload bytea)');
foreach my $case (@cases)
{
	$su->(qq{INSERT INTO produced SELECT \$n\$$case->[0]\$n\$, "offset", x.p
		FROM (SELECT $case->[1] AS p) x, kappa_produce('hc', x.p)});
}
# and a tombstone: the worker dead-letters it; kappa.decode, being
# strict, gives no verdict on a null payload
$su->(q{INSERT INTO produced SELECT 'tombstone', "offset", NULL FROM kappa_produce('hc', NULL::bytea)});
is($su->("SELECT kappa_wait('hc', '60 seconds')"), 't', 'the corpus is consumed');

my $verdicts = q{
	SELECT p.name, dl.sqlstate AS worker, d.ok, d.sqlstate, d.reason, dl.reason AS worker_reason
	FROM produced p
	LEFT JOIN kappa.dead_letters dl ON dl.view_id = 0 AND dl."offset" = p."offset"
		AND dl.stream_id = (SELECT stream_id FROM kappa.streams WHERE name = 'hc')
	LEFT JOIN LATERAL kappa.decode('hc', p.payload) d ON true};
is($su->(qq{SELECT string_agg(name || ': ' || coalesce(worker, 'ok'), E'\\n' ORDER BY "offset") FROM ($verdicts) v
		JOIN produced USING (name)}),
	join("\n", (map { "$_->[0]: $_->[2]" } @cases), 'tombstone: 22004'),
	'the worker dead-lettered exactly the bad messages, with the expected SQLSTATEs');
is($su->(qq{SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'SQL, DMY';
		SELECT coalesce(string_agg(format('%s: worker %s %s, kappa.decode %s %s %s', name, coalesce(worker, 'ok'),
			worker_reason, CASE WHEN ok THEN 'ok' ELSE 'dead' END, sqlstate, reason), E'\\n'), '')
		FROM ($verdicts) v WHERE name <> 'tombstone'
			AND ((NOT ok) IS DISTINCT FROM (worker IS NOT NULL)
				OR sqlstate IS DISTINCT FROM worker OR reason IS DISTINCT FROM worker_reason)}),
	'', 'kappa.decode gives the worker\'s verdict on every message, with its SQLSTATE and reason');
is($su->(q{SELECT n FROM hc_all}), scalar(grep { $_->[2] eq 'ok' } @cases), 'the view has every decodable message');

$node->stop;
stop_broker($broker);
done_testing();
