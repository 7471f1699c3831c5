# Poison messages never stop a stream (issue 11).  One stream with columns
# of many types, among them types whose input functions raise errors
# outside class 22 (regclass: 42P01, tsquery: 42601, a domain's CHECK:
# 23514) or are no pure parsers (an enum), and eight views on it: two
# plain ones that see every decodable event (one grouped by the regclass
# and the enum), one whose WHERE divides by zero
# (tumbling windows), one whose aggregate argument overflows smallint, one
# calling an IMMUTABLE plpgsql function that raises SQLSTATE KP123, one
# grouping by a key that is sometimes over 2,000 bytes, one with a column
# named u, one selecting current_user (a column of type name).  Poison of
# every kind is interleaved with 4,000 good events on 4 partitions.  The
# oracle is computed here, in Perl, from what the test produced: every
# view equals its own query run as batch SQL over exactly the events it
# should have applied (every decodable event but those it rejects);
# kappa.dead_letters is exactly the expected set (partition, offset, view,
# SQLSTATE, payload bytes), with the key reasons; the counts reconcile
# (per stream consumed = decoded + dead-lettered, per view delivered =
# applied + late + rejected, rejected = its dead letters); the worker never
# restarted.  Then kappa_replay of the dividing view decides the same, and
# kappa_check finds nothing on any view.
use strict;
use warnings;
use utf8;

use lib 'test/lib';
use KappaTest;
use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('poison:4');
my $b = $broker->{bootstrap};
# (restart_after_crash: a crash is then a failure of the checks that
# follow, the worker's pid among them, rather than the end of the run)
my $node = kappa_node('poison', conf => "kappa.flush_interval = '200ms'\nrestart_after_crash = on\n");
my $dir = PostgreSQL::Test::Utils::tempdir();
my $su = sub { $node->safe_psql('postgres', $_[0]) };

# ---------------------------------------------------------------------------
# The stream and its views

$su->(qq{
	CREATE TYPE mood AS ENUM ('calm', 'angry');
	CREATE DOMAIN posint AS int CHECK (VALUE > 0);
	CREATE FUNCTION kp_check(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS \$f\$
	BEGIN
		IF v = 13 THEN
			RAISE EXCEPTION 'unlucky %', v USING ERRCODE = 'KP123';
		END IF;
		RETURN v;
	END \$f\$;
	SELECT kappa_create_stream('ps', topic => 'poison', brokers => '$b',
		columns => 'id int NOT NULL, dev text, k text, v int, f float8, ts timestamptz NOT NULL,
			rc regclass, q tsquery, m mood, pos posint, note text',
		event_time => 'ts', watermark => '1000 days');
});

# Each view's query, over "ps"; the batch oracle runs the same text with
# ps replaced by a table of the events the view should have applied.
my %views = (
	v_all => q{SELECT dev, count(*) AS n, sum(v) AS s, max(f) AS fmax, min(ts) AS t0, max(ts) AS t1,
		count(rc) AS nrc, count(q) AS nq, count(m) AS nm, sum(pos) AS spos, max(note) AS note
		FROM ps GROUP BY dev},
	v_types => q{SELECT rc, m, count(*) AS n, sum(pos) AS spos FROM ps GROUP BY rc, m},
	v_div => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM ps, kappa_tumble(ts, '1 hour') w WHERE 100 / v > 0
		GROUP BY dev, w.window_start, w.window_end},
	v_i2 => q{SELECT dev, count(*) AS n, sum(v::int2) AS s2 FROM ps GROUP BY dev},
	v_raise => q{SELECT dev, count(*) AS n, sum(kp_check(v)) AS s FROM ps GROUP BY dev},
	v_key => q{SELECT k, count(*) AS n, sum(v) AS s FROM ps GROUP BY k},
	v_u => q{SELECT dev, count(*) AS u FROM ps GROUP BY dev},
	v_who => q{SELECT dev, current_user AS who, count(*) AS n FROM ps GROUP BY dev},
);
my @view_names = sort keys %views;
foreach my $v (@view_names)
{
	$su->("SELECT kappa_create_view('$v', \$q\$$views{$v}\$q\$)");
}
my %view_id = map { $_ => $su->("SELECT view_id FROM kappa.views WHERE view_name = '$_'") } @view_names;

my $worker_pid = sub { $su->("SELECT pid FROM kappa_workers WHERE stream = 'ps'") };
ok(wait_until(sub { $worker_pid->() =~ /^\d+$/ }, 30), 'the worker of stream ps runs');
my $pid = $worker_pid->();

# ---------------------------------------------------------------------------
# The events

srand(51);

# JSON text of a string (control characters escaped, NUL as \u0000).
sub jstr
{
	my ($s) = @_;
	$s =~ s/(["\\])/\\$1/g;
	$s =~ s/([\x00-\x1f])/sprintf('\u%04x', ord($1))/ge;
	return qq("$s");
}

# JSON object text from pairs of name and JSON value text, in order.
sub jobj
{
	my (@pairs) = @_;
	my @items;
	while (@pairs)
	{
		my ($name, $value) = splice(@pairs, 0, 2);
		push @items, jstr($name) . ': ' . $value;
	}
	return '{' . join(', ', @items) . '}';
}

# An event time in ms since the epoch, as an ISO 8601 UTC string.
sub iso_ms
{
	my ($ms) = @_;
	my @t = gmtime(int($ms / 1000));
	return sprintf('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ',
		$t[5] + 1900, $t[4] + 1, $t[3], $t[2], $t[1], $t[0], $ms % 1000);
}

# A time in another form the decoder reads (the oracle keeps iso_ms):
# ISO with Z, with an offset of +02, or a JSON number of ms.
sub ts_json
{
	my ($ms, $form) = @_;
	return $ms if $form == 1;
	if ($form == 2)
	{
		my @t = gmtime(int($ms / 1000) + 7200);
		return sprintf('"%04d-%02d-%02d %02d:%02d:%02d.%03d+02"',
			$t[5] + 1900, $t[4] + 1, $t[3], $t[2], $t[1], $t[0], $ms % 1000);
	}
	return jstr(iso_ms($ms));
}

my $t0 = 1772323200000;    # 2026-03-01 00:00:00 UTC, in ms
my $id = 0;
my @rc_names = ('pg_class', 'pg_type', 'pg_namespace');
my @queries = ('a & b', 'cat | dog', '!x');

# A good event: a hash of its columns (undef: absent from the payload).
sub good_event
{
	my (%over) = @_;
	my $e = {
		id => ++$id,
		dev => 'd' . ($id % 7),
		k => 'k' . ($id % 23),
		v => (rand() < 0.05 ? undef : (rand() < 0.1 ? -1 - int(rand(5)) : 1 + int(rand(400)))),
		f => (rand() < 0.1 ? undef : int(rand(8000)) / 8 - 500),
		ts => $t0 + int(rand(3 * 86400 * 1000)),
		rc => (rand() < 0.3 ? undef : $rc_names[ int(rand(3)) ]),
		q => (rand() < 0.3 ? undef : $queries[ int(rand(3)) ]),
		m => (rand() < 0.3 ? undef : (rand() < 0.5 ? 'calm' : 'angry')),
		pos => (rand() < 0.3 ? undef : 1 + int(rand(100))),
		note => (rand() < 0.5 ? undef : 'note ' . ('é' x int(rand(3))) . $id),
		ts_form => int(rand(3)),
		%over
	};
	# v = 13 rejected only by v_raise: chosen deliberately below
	$e->{v} = 14 if defined $e->{v} && $e->{v} == 13 && !$over{v};
	return $e;
}

# The payload of an event (UTF-8 bytes), with v as a number or a string;
# %raw replaces fields by JSON text of its own (undef: leaves one out).
sub payload_of
{
	my ($e, %raw) = @_;
	my @pairs = (id => $e->{id}, dev => jstr($e->{dev}), k => jstr($e->{k}));
	push @pairs, v => ($e->{id} % 5 == 0 ? jstr($e->{v}) : $e->{v}) if defined $e->{v};
	push @pairs, f => $e->{f} if defined $e->{f};
	push @pairs, ts => ts_json($e->{ts}, $e->{ts_form});
	foreach my $c (qw(rc q m note))
	{
		push @pairs, $c => jstr($e->{$c}) if defined $e->{$c};
	}
	push @pairs, pos => $e->{pos} if defined $e->{pos};
	my @out;
	while (@pairs)
	{
		my ($name, $value) = splice(@pairs, 0, 2);
		if (exists $raw{$name})
		{
			$value = delete $raw{$name};
			next unless defined $value;
		}
		push @out, $name, $value;
	}
	push @out, %raw;
	my $p = jobj(@out);
	utf8::encode($p);
	return $p;
}

# Messages the stream cannot decode: a good event with a field spoiled (or
# left out), or no JSON at all; with the SQLSTATE and, for most, the exact
# reason.
my @poison_kinds = (
	[ 'regclass naming no relation', { rc => '"no_such_table"' }, '42P01',
		'field "rc": relation "no_such_table" does not exist' ],
	[ 'tsquery that does not parse', { q => '"&&&"' }, '42601',
		'field "q": syntax error in tsquery: "&&&"' ],
	[ 'enum value that does not exist', { m => '"furious"' }, '22P02',
		'field "m": invalid input value for enum public.mood: "furious"' ],
	[ 'domain CHECK that fails', { pos => '-5' }, '23514',
		'field "pos": value for domain public.posint violates check constraint "posint_check"' ],
	[ 'int that is no number', { v => '"abc"' }, '22P02',
		'field "v": invalid input syntax for type integer: "abc"' ],
	[ 'int out of range', { v => '99999999999' }, '22003', undef ],
	[ 'float out of range', { f => '1e400' }, '22003', undef ],
	[ 'timestamptz that is no time', { ts => '"garbage"' }, '22007',
		'field "ts": invalid input syntax for type timestamp with time zone: "garbage"' ],
	[ 'infinite event time', { ts => '"infinity"' }, '22008', 'the event time is infinite' ],
	[ 'text with a NUL', { note => '"a\\u0000b"' }, '22P05', 'field "note" contains a NUL character' ],
	[ 'an array for an int', { v => '[1]' }, '22P02', undef ],
	[ 'missing id (NOT NULL)', { id => undef }, '22004', 'missing field "id"' ],
	[ 'not JSON', 'not JSON', '22P02', undef ],
);

# The messages of each partition, in order, and what is expected of them
# (the broker is this test's own: each partition's offsets start at 0).
my (%msgs, @dead0, %rejects, @good);
my %filtered = map { $_ => { map { $_ => 0 } 0 .. 3 } } @view_names;
my ($good_stored, %rejects_stored) = (0);

# Append messages to partition p: each a good event, or [kind, event].
sub add_messages
{
	my ($p, @items) = @_;
	foreach my $item (@items)
	{
		my ($kind, $e) = ref $item eq 'ARRAY' ? @$item : (undef, $item);
		my $o = scalar(@{ $msgs{$p} // [] });
		my $payload = !$kind ? payload_of($e)
		  : ref $kind->[1] ? payload_of($e, %{ $kind->[1] })
		  : "$kind->[1] " . payload_of($e);
		die "a payload holds a newline" if $payload =~ /\n/;
		push @{ $msgs{$p} }, $payload;
		my $md5 = md5_hex($payload);
		if ($kind)
		{
			push @dead0, { p => $p, o => $o, sqlstate => $kind->[2], reason => $kind->[3], md5 => $md5 };
			next;
		}
		@$e{qw(p o)} = ($p, $o);
		push @good, $e;
		my $v = $e->{v};
		my $reject = sub {
			push @{ $rejects{ $_[0] } }, { p => $p, o => $o, sqlstate => $_[1], reason => $_[2], md5 => $md5 };
		};
		if (defined $v && $v == 0)
		{
			$reject->('v_div', '22012', 'division by zero');
		}
		elsif (!defined $v || int(100 / $v) <= 0)
		{
			$filtered{v_div}{$p}++;    # 100 / v is null, negative or 0
		}
		$reject->('v_i2', '22003', 'smallint out of range') if defined $v && abs($v) > 32767;
		$reject->('v_raise', 'KP123', 'unlucky 13') if defined $v && $v == 13;
		# (its size as stored: the text and its 4-byte header)
		$reject->('v_key', '54000', 'the group key of ' . (length($e->{k}) + 4) . ' bytes exceeds the limit of 2000 bytes')
		  if length($e->{k}) > 2000;
	}
	return;
}

# The oracle's tables: the decodable events (as SQL literals), and the
# events each view should reject; stores what add_messages added since.
sub lit
{
	my ($x) = @_;
	return 'NULL' unless defined $x;
	$x =~ s/'/''/g;
	utf8::encode($x);
	return "'$x'";
}
$su->(q{CREATE TABLE batch_ev (p int, o bigint, id int NOT NULL, dev text, k text, v int, f float8,
	ts timestamptz NOT NULL, rc regclass, q tsquery, m mood, pos posint, note text);
	CREATE TABLE expected_rejects (view_name text, p int, o bigint)});
sub store_oracle
{
	while ($good_stored < @good)
	{
		my $last = $good_stored + 499 < $#good ? $good_stored + 499 : $#good;
		$su->('INSERT INTO batch_ev VALUES ' . join(",\n", map {
			my $e = $_;
			"($e->{p}, $e->{o}, $e->{id}, " . lit($e->{dev}) . ', ' . lit($e->{k}) . ', '
			  . ($e->{v} // 'NULL') . ', ' . ($e->{f} // 'NULL') . ', ' . lit(iso_ms($e->{ts})) . ', '
			  . join(', ', map { lit($e->{$_}) } qw(rc q m)) . ', ' . ($e->{pos} // 'NULL') . ', '
			  . lit($e->{note}) . ')'
		} @good[ $good_stored .. $last ]));
		$good_stored = $last + 1;
	}
	my @rows;
	foreach my $v (sort keys %rejects)
	{
		my $from = $rejects_stored{$v} // 0;
		push @rows, map { "('$v', $_->{p}, $_->{o})" } @{ $rejects{$v} }[ $from .. $#{ $rejects{$v} } ];
		$rejects_stored{$v} = scalar(@{ $rejects{$v} });
	}
	$su->('INSERT INTO expected_rejects VALUES ' . join(', ', @rows)) if @rows;
	return;
}

# Produce what add_messages added to each partition since the last call.
my %produced;
sub produce
{
	foreach my $p (0 .. 3)
	{
		my $from = $produced{$p} // 0;
		my @new = @{ $msgs{$p} }[ $from .. $#{ $msgs{$p} } ];
		next unless @new;
		my $file = "$dir/p$p-$from.txt";
		open my $fh, '>:raw', $file or die $!;
		print $fh "$_\n" foreach @new;
		close $fh;
		IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'poison', '-p', $p, '-l', $file ])
		  or die "kcat failed";
		$produced{$p} = scalar(@{ $msgs{$p} });
	}
	return;
}

my $long_key = 'L' x 12800;
foreach my $p (0 .. 3)
{
	my @list;
	push @list, good_event() foreach 1 .. 1000;
	# events some views reject: v = 0 (v_div: division by zero), v = 13
	# (v_raise: KP123), v = +-40000 (v_i2: smallint out of range; v_div
	# filters them, as 100 / 40000 = 0), keys of 12,800 and 2,100 bytes
	# (v_key: 54000); one with v = 0 and a long key, rejected by two
	# views; keys of 1,500 bytes are applied
	push @list, good_event(v => 0) foreach 1 .. 3;
	push @list, good_event(v => 13) foreach 1 .. 3;
	push @list, good_event(v => 40000), good_event(v => -40000);
	push @list, good_event(k => $long_key), good_event(k => 'M' x 2100), good_event(k => 'S' x 1500, v => 7);
	push @list, good_event(v => 0, k => $long_key);
	# messages that cannot be decoded: every kind, once or twice
	foreach my $kind (@poison_kinds)
	{
		push @list, [ $kind, good_event() ] foreach 1 .. 1 + ($p + length($kind->[0])) % 2;
	}
	# shuffled, but the first message is good
	my @rest = @list[ 1 .. $#list ];
	for (my $i = $#rest; $i > 0; $i--)
	{
		my $j = int(rand($i + 1));
		@rest[ $i, $j ] = @rest[ $j, $i ];
	}
	add_messages($p, $list[0], @rest);
}
note scalar(@good) . ' good events, ' . scalar(@dead0) . ' undecodable, rejects: '
  . join(', ', map { "$_ " . scalar(@{ $rejects{$_} }) } sort keys %rejects);
store_oracle();

# ---------------------------------------------------------------------------
# Produce, interleaved, on four partitions

produce();
is($su->("SELECT kappa_wait('ps', '120 seconds')"), 't', 'every message consumed');
is($su->(q{SELECT string_agg(partition || ':' || committed_offset, ' ' ORDER BY partition)
		FROM kappa_stats WHERE stream = 'ps' AND view IS NULL}),
	join(' ', map { "$_:" . scalar(@{ $msgs{$_} }) } 0 .. 3), 'the stream read every offset of each partition');

# ---------------------------------------------------------------------------
# Checks, after consumption and again after the replay

# Compare two lists of lines as sets (with multiplicity): the missing and
# extra ones are shown, ten at most.
sub same_lines
{
	my ($got, $expected, $label) = @_;
	my %count;
	$count{$_}++ foreach @$expected;
	$count{$_}-- foreach @$got;
	my @missing = sort grep { $count{$_} > 0 } keys %count;
	my @extra = sort grep { $count{$_} < 0 } keys %count;
	ok(!@missing && !@extra, "$label (" . scalar(@$expected) . ' expected)')
	  or diag('missing: ' . join(' ; ', @missing[ 0 .. ($#missing < 9 ? $#missing : 9) ])
		  . "\nextra: " . join(' ; ', @extra[ 0 .. ($#extra < 9 ? $#extra : 9) ]));
	return;
}

# The view equals its query as batch SQL over the events it should have
# applied: every decodable one but those it should reject.
sub check_view
{
	my ($v, $label) = @_;
	# (OFFSET 0: the view's WHERE must not see the events left out)
	my $events = qq{(SELECT * FROM batch_ev e WHERE NOT EXISTS (SELECT FROM expected_rejects r
		WHERE r.view_name = '$v' AND (r.p, r.o) = (e.p, e.o)) OFFSET 0) ps};
	my $oracle = $views{$v} =~ s/\bFROM ps\b/FROM $events/r;
	my $r = $su->(qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $v EXCEPT ALL ($oracle)) a)
			|| '/' || (SELECT count(*) FROM (($oracle) EXCEPT ALL SELECT * FROM $v) b)
			|| '/' || (SELECT count(*) FROM $v)});
	my ($extra, $missing, $rows) = split m{/}, $r;
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"$label: $v equals its query as batch SQL ($rows rows; $extra extra, $missing missing)")
	  or diag($su->(qq{SELECT 'extra: ' || a::text FROM (SELECT * FROM $v EXCEPT ALL ($oracle)) a LIMIT 3})
		  . "\n" . $su->(qq{SELECT 'missing: ' || b::text FROM (($oracle) EXCEPT ALL SELECT * FROM $v) b LIMIT 3}));
	return;
}

# The dead letters of a view (0: of the stream), as lines.
sub dead_letters
{
	my ($vid) = @_;
	return [ split /\n/, $su->(qq{SELECT partition || '|' || "offset" || '|' || sqlstate || '|' || md5(payload)
		FROM kappa.dead_letters WHERE view_id = $vid}) ];
}

sub check_all
{
	my ($label) = @_;
	check_view($_, $label) foreach @view_names;

	# the stream's dead letters: exactly the undecodable messages
	same_lines(dead_letters(0), [ map { "$_->{p}|$_->{o}|$_->{sqlstate}|$_->{md5}" } @dead0 ],
		"$label: the stream's dead letters are exactly the undecodable messages, with their SQLSTATEs and bytes");
	my %reason = map { ("$_->{p}|$_->{o}" => $_->{reason}) } grep { defined $_->{reason} } @dead0;
	same_lines(
		[ grep { my ($k) = /^(\d+\|\d+)\|/; exists $reason{$k} }
			split /\n/, $su->(q{SELECT partition || '|' || "offset" || '|' || reason
				FROM kappa.dead_letters WHERE view_id = 0}) ],
		[ map { "$_|$reason{$_}" } keys %reason ],
		"$label: their reasons name the field and the input function's error");

	# each view's dead letters: exactly the events it should reject
	foreach my $v (@view_names)
	{
		same_lines(dead_letters($view_id{$v}),
			[ map { "$_->{p}|$_->{o}|$_->{sqlstate}|$_->{md5}" } @{ $rejects{$v} // [] } ],
			"$label: $v rejected exactly the events it cannot apply, with their SQLSTATEs and bytes");
	}
	foreach my $v (sort keys %rejects)
	{
		same_lines(
			[ split /\n/, $su->(qq{SELECT partition || '|' || "offset" || '|' || reason
					FROM kappa.dead_letters WHERE view_id = $view_id{$v}}) ],
			[ map { "$_->{p}|$_->{o}|$_->{reason}" } @{ $rejects{$v} } ],
			"$label: $v gives the error's message as the reason");
	}

	# counts: per stream and partition, consumed = decoded + dead-lettered
	my (%consumed, %dead, %decoded);
	$consumed{$_} = scalar(@{ $msgs{$_} }) foreach 0 .. 3;
	$dead{ $_->{p} }++ foreach @dead0;
	$decoded{$_} = $consumed{$_} - ($dead{$_} // 0) foreach 0 .. 3;
	is($su->(q{SELECT string_agg(format('%s:%s=%s+%s', partition, consumed, consumed - dead_lettered, dead_lettered),
			' ' ORDER BY partition) FROM kappa_stats WHERE stream = 'ps' AND view IS NULL}),
		join(' ', map { "$_:$consumed{$_}=$decoded{$_}+" . ($dead{$_} // 0) } 0 .. 3),
		"$label: per partition, consumed = decoded + dead-lettered, as produced");
	# per view and partition: what it read = duplicate + filtered +
	# delivered, delivered = applied + late + rejected
	foreach my $v (@view_names)
	{
		my %rej;
		$rej{ $_->{p} }++ foreach @{ $rejects{$v} // [] };
		my $expected = join ' ', map {
			my $f = $filtered{$v}{$_};
			my $d = $decoded{$_} - $f;
			my $r = $rej{$_} // 0;
			"$_:0+$f+$d;$d=" . ($d - $r) . "+0+$r"
		} 0 .. 3;
		is($su->(qq{SELECT string_agg(format('%s:%s+%s+%s;%s=%s+%s+%s', partition, duplicate, filtered, delivered,
					delivered, applied, late, rejected), ' ' ORDER BY partition)
				FROM kappa_stats WHERE view = 'public.$v'}),
			$expected, "$label: $v counts duplicate+filtered+delivered and delivered = applied + late + rejected");
		is($su->(qq{SELECT (SELECT sum(rejected) FROM kappa_stats WHERE view = 'public.$v') = 
				(SELECT count(*) FROM kappa.dead_letters WHERE view_id = $view_id{$v})}),
			't', "$label: $v: rejected = its dead letters");
	}
	is($su->(q{SELECT string_agg(name || ' ' || status, ', ' ORDER BY name) FROM kappa_views WHERE stream = 'ps'}),
		join(', ', map { "public.$_ live" } @view_names), "$label: every view is live");
	is($su->(q{SELECT state || ' ' || pid || ' ' || failures FROM kappa_workers WHERE stream = 'ps'}),
		"running $pid 0", "$label: the worker never restarted (same pid, no failure)");
	return;
}

check_all('live');
note 'recoveries from an event that failed: '
  . (() = slurp_file($node->logfile) =~ /an event failed; going back to the last flush/g);

# ---------------------------------------------------------------------------
# kappa_replay decides as the worker did; kappa_check finds nothing

my ($rc, $out, $err) = $node->psql('postgres', q{SELECT log_events FROM kappa_replay('v_div')});
is($rc, 0, 'kappa_replay of v_div succeeds') or diag $err;
is($out, scalar(@good) + scalar(@dead0), 'the replay read every message of the log');
my $old_div = $view_id{v_div};
$view_id{v_div} = $su->("SELECT view_id FROM kappa.views WHERE view_name = 'v_div'");
isnt($view_id{v_div}, $old_div, 'the replay built a new version of v_div');
is($su->("SELECT kappa_wait('ps', '60 seconds')"), 't', 'the worker goes on after the replay');

# More of both after the replay: the worker goes on with the new version.
foreach my $p (0 .. 3)
{
	add_messages($p, good_event(v => 0), good_event(), [ $poison_kinds[0], good_event() ], good_event(v => 13),
		[ $poison_kinds[3], good_event() ], good_event(v => 40000, k => $long_key));
}
store_oracle();
produce();
is($su->("SELECT kappa_wait('ps', '60 seconds')"), 't', 'more poison after the replay consumed');
check_all('after the replay');

foreach my $v (@view_names)
{
	my ($rc, $out, $err) = $node->psql('postgres', "SELECT count(*) FROM kappa_check('$v')");
	is("$rc/$out", '0/0', "kappa_check finds no difference in $v") or diag $err;
}
is($worker_pid->(), $pid, 'the worker is still the one that started');

$node->stop;
stop_broker($broker);
done_testing();
