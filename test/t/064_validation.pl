# Validation at definition time (issue 12): a view's options with a key
# kappa does not know, a stream's options that librdkafka does not know or
# rejects, or that kappa sets itself, and a view that would not give the
# same result when replayed from the log (volatile functions, the clock,
# the session) are refused, with their SQLSTATE and a message that names
# the key or function and lists what is valid; nothing is left in the
# catalog.  What stays allowed (stable functions that depend only on
# settings, which kappa pins: to_char, date_trunc on timestamptz, its text
# output; CURRENT_USER, which is the view's owner wherever it runs) works,
# and the views equal their queries as batch SQL over the same events.
# Event data that Postgres would read as of the current transaction
# ("now", "today" in a date or time column) is a dead letter (22007), not
# a time that differs between the worker and a replay.
# Views whose names are 63 bytes (NAMEDATALEN - 1, ASCII and multibyte)
# are replayed, swapped in and kept beside.  Everything runs as ana, a
# non-superuser member of kappa_admin, several calls per session.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('vt:2', 'rt:1');
my $b = $broker->{bootstrap};
my $node = kappa_node('validation', conf => "kappa.flush_interval = '100ms'\n");

$node->safe_psql('postgres', q{
	CREATE ROLE ana LOGIN;
	GRANT kappa_admin TO ana;
	CREATE SCHEMA ana AUTHORIZATION ana;
	-- run a statement; its SQLSTATE, message, detail and hint (00000 if it succeeds)
	CREATE FUNCTION public.try(statement text,
		OUT code text, OUT message text, OUT detail text, OUT hint text)
	LANGUAGE plpgsql AS $$
	BEGIN
		EXECUTE statement;
		code := '00000';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
			detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	END $$;
});

# Run SQL as ana in one session; its output (psql dies on an error).
sub as_ana
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', 'ana' ]);
}

# The events, in a table (the batch oracle), produced to the topic.
as_ana(q{
	CREATE TABLE ana.ev AS
		SELECT 'k' || (i % 5) AS k, i AS v,
			timestamptz '2026-01-01 00:00:00+00' + i * interval '37 seconds' AS ts
		FROM generate_series(1, 300) i;
	SELECT kappa_create_stream('s', topic => 'vt', brokers => '} . $b . q{',
		columns => 'k text, v int, ts timestamptz', event_time => 'ts');
	SELECT count(*) FROM ana.ev e, LATERAL kappa_produce('s', row_to_json(e)::text, e.k) p;
});

# The catalog as a string: streams and views, to show nothing was added.
my $catalog_sql = q{SELECT (SELECT string_agg(name, ',' ORDER BY name) FROM kappa_streams)
	|| ' / ' || coalesce((SELECT string_agg(name, ',' ORDER BY name) FROM kappa_views), '')
	|| ' / ' || (SELECT count(*) FROM pg_class WHERE relnamespace = 'ana'::regnamespace)};
my $catalog_before = as_ana($catalog_sql);
is($catalog_before, 's /  / 1', 'one stream, no view, one table (ana.ev) before the refusals');

# ---------------------------------------------------------------------------
# Refused, all in one session: [statement, SQLSTATE, message, detail, hint]
# (undef: not checked; a regexp: matched).

my $cv = sub { my ($q, $o) = @_; $q =~ s/'/''/g; return "SELECT kappa_create_view('r', '$q'" . (defined $o ? ", '$o')" : ')') };
my $cs = sub { return "SELECT kappa_create_stream('r', topic => 'vt', brokers => '$b', columns => 'k text', options => '$_[0]')" };
my $count = 'SELECT k, count(*) AS n FROM s';
my $replay_hint = q{A kappa view must give the same result when it is replayed from the stream's log, so it may depend on the event alone. For the time, use the event's time column (or kafka_timestamp), not the clock.};
my $volatile = 'It is volatile: it may give another result each time it is called.';
my $clock = 'It reads the time of the current transaction or statement.';
my $session = 'Its result depends on the session that runs it.';
my $start_hint = 'A view starts from {"start": "earliest"} (the default), {"start": "latest"} or {"start": "<timestamptz>"}, notifies a channel with {"notify": "<channel>"}, keeps final windows for {"retention": "<interval>"}, and writes rows only of final windows with {"emit": "final"}.';
my $rdkafka_hint = qr/^See the librdkafka CONFIGURATION page for version [0-9.]+\.$/;

my @refused = (
	# view options: unknown keys, listing the valid ones
	[ $cv->("$count GROUP BY k", '{"strat": "latest"}'), '22023',
		'unknown option "strat" of a kappa view', 'Valid keys: "start", "notify", "retention", "emit".', $start_hint ],
	[ $cv->("$count GROUP BY k", '{"start": "latest", "retension": "1 hour"}'), '22023',
		'unknown option "retension" of a kappa view', 'Valid keys: "start", "notify", "retention", "emit".', $start_hint ],
	[ $cv->("$count GROUP BY k", '{"since": "2026-01-01 00:00:00+00"}'), '22023',
		'unknown option "since" of a kappa view', 'Valid keys: "start", "notify", "retention", "emit".',
		'kappa_replay takes since and until as its arguments.' ],
	[ $cv->("$count GROUP BY k", '["start"]'), '22023', 'view options must be a JSON object', '',
		'Valid keys: "start", "notify", "retention", "emit".' ],
	[ $cv->("$count GROUP BY k", '{"start": 5}'), '22023', 'invalid start option of a view', undef, '' ],

	# stream options: librdkafka's own words, a hint, kappa's own settings
	[ $cs->('{"retention": "1 hour"}'), '22023', 'invalid librdkafka setting "retention"',
		'No such configuration property: "retention"',
		qr/^options holds librdkafka settings only: kappa's own are the arguments of kappa_create_stream, and a topic's retention is the brokers'\. See the librdkafka CONFIGURATION page for version [0-9.]+\.$/ ],
	[ $cs->('{"fetch.wait.max.ms": "soon"}'), '22023', 'invalid librdkafka setting "fetch.wait.max.ms"',
		'Invalid value for configuration property "fetch.wait.max.ms"', $rdkafka_hint ],
	[ $cs->('{"group.id": "mine"}'), '22023', 'librdkafka setting "group.id" cannot be set in options',
		'kappa sets it itself.', '' ],
	[ $cs->('{"auto.offset.reset": "latest"}'), '22023',
		'librdkafka setting "auto.offset.reset" cannot be set in options', 'kappa sets it itself.',
		'Where a view starts reading is its "start" option (kappa_create_view).' ],
	[ $cs->('{"fetch.max.bytes": {"value": 1}}'), '22023',
		'value of librdkafka setting "fetch.max.bytes" must be a string, number or boolean', '', '' ],
	[ $cs->('{"fetch.max.bytes": [1]}'), '22023',
		'value of librdkafka setting "fetch.max.bytes" must be a string, number or boolean', '', '' ],
	[ $cs->('{"fetch.max.bytes": null}'), '22023',
		'value of librdkafka setting "fetch.max.bytes" must be a string, number or boolean', '', '' ],
	# a secret with an invalid companion: the secret is in no part of the error
	[ $cs->('{"sasl.password": "val-hunter2-secret", "security.protocol": "val-hunter2-secret"}'), '22023',
		'invalid librdkafka setting "security.protocol"', qr/^(?!.*hunter2).*$/s, qr/^(?!.*hunter2).*$/s ],

	# views that a replay would not reproduce: 0A000, the function named
	[ $cv->('SELECT k, count(*) AS n, random() AS r FROM s GROUP BY k'), '0A000',
		'function random() cannot be used in the select list of a kappa view', $volatile, $replay_hint ],
	[ $cv->("$count WHERE ts < now() GROUP BY k"), '0A000',
		'function now() cannot be used in WHERE of a kappa view', $clock, $replay_hint ],
	[ $cv->("$count WHERE ts < transaction_timestamp() GROUP BY k"), '0A000',
		'function transaction_timestamp() cannot be used in WHERE of a kappa view', $clock, $replay_hint ],
	[ $cv->("$count WHERE ts < CURRENT_TIMESTAMP GROUP BY k"), '0A000',
		'CURRENT_TIMESTAMP cannot be used in WHERE of a kappa view',
		'It reads the time of the current transaction.', $replay_hint ],
	[ $cv->("$count WHERE ts::time < LOCALTIME(2) GROUP BY k"), '0A000',
		'LOCALTIME cannot be used in WHERE of a kappa view',
		'It reads the time of the current transaction.', $replay_hint ],
	[ $cv->("$count WHERE CURRENT_TIME IS NOT NULL GROUP BY k"), '0A000',
		'CURRENT_TIME cannot be used in WHERE of a kappa view',
		'It reads the time of the current transaction.', $replay_hint ],
	[ $cv->('SELECT k, ts::date = CURRENT_DATE AS today, count(*) AS n FROM s GROUP BY k, ts::date = CURRENT_DATE'),
		'0A000', 'CURRENT_DATE cannot be used in GROUP BY of a kappa view',
		'It reads the time of the current transaction.', $replay_hint ],
	[ $cv->('SELECT k, max(LOCALTIMESTAMP - ts::timestamp) AS lag FROM s GROUP BY k'), '0A000',
		'LOCALTIMESTAMP cannot be used in aggregate arguments of a kappa view',
		'It reads the time of the current transaction.', $replay_hint ],
	[ $cv->('SELECT k, max(clock_timestamp() - ts) AS lag FROM s GROUP BY k'), '0A000',
		'function clock_timestamp() cannot be used in aggregate arguments of a kappa view', $volatile,
		$replay_hint ],
	[ $cv->('SELECT k, count(*) FILTER (WHERE ts > statement_timestamp()) AS n FROM s GROUP BY k'), '0A000',
		'function statement_timestamp() cannot be used in aggregate filters of a kappa view', $clock,
		$replay_hint ],
	[ $cv->('SELECT k, max(age(ts)) AS a FROM s GROUP BY k'), '0A000',
		'function age(timestamp with time zone) cannot be used in aggregate arguments of a kappa view',
		$clock, $replay_hint ],
	[ $cv->('SELECT k, timeofday() AS t, count(*) AS n FROM s GROUP BY k'), '0A000',
		'function timeofday() cannot be used in the select list of a kappa view', $volatile, $replay_hint ],
	[ $cv->("SELECT k, max(nextval('ana.sq')) AS m FROM s GROUP BY k"), '0A000',
		'function nextval(regclass) cannot be used in aggregate arguments of a kappa view', $volatile,
		$replay_hint ],
	[ $cv->("SELECT w.window_start, count(*) AS n FROM s, kappa_tumble(now(), '5 minutes') w GROUP BY 1"),
		'0A000', q{function now() cannot be used in the window function's arguments of a kappa view},
		$clock, $replay_hint ],
	[ $cv->("SELECT w.window_start, count(*) AS n FROM s, kappa_tumble(ts, now() - now() + '5 minutes') w GROUP BY 1"),
		'0A000', q{function now() cannot be used in the window function's arguments of a kappa view},
		$clock, $replay_hint ],
	[ $cv->("$count WHERE k <> SESSION_USER::text GROUP BY k"), '0A000',
		'SESSION_USER cannot be used in WHERE of a kappa view',
		'Its result depends on the session that runs it: a view\'s worker and a replay run in different sessions.',
		$replay_hint ],
	[ $cv->("$count WHERE k <> CURRENT_SCHEMA GROUP BY k"), '0A000',
		'CURRENT_SCHEMA cannot be used in WHERE of a kappa view',
		'Its result depends on the search_path of the session that runs it.', $replay_hint ],
	[ $cv->("$count WHERE k <> current_setting('application_name') GROUP BY k"), '0A000',
		'function current_setting(text) cannot be used in WHERE of a kappa view', $session, $replay_hint ],
	# a STABLE SQL function that reads the clock: seen once inlined
	[ $cv->("$count WHERE ts < ana.my_now() GROUP BY k"), '0A000',
		'function now() cannot be used in WHERE of a kappa view', $clock, $replay_hint ],
);

my $session_sql = q{
	CREATE SEQUENCE ana.sq;
	CREATE FUNCTION ana.my_now() RETURNS timestamptz LANGUAGE sql STABLE AS 'SELECT now()';
};
# one line per statement: the four fields separated by \x1f, ended by \x1e
$session_sql .= 'SELECT concat_ws(chr(31), code, coalesce(message, \'\'), coalesce(detail, \'\'), coalesce(hint, \'\')) || chr(30) FROM try($stmt$'
  . $_->[0] . "\$stmt\$);\n"
  foreach @refused;
my @results = split /\x1e\n?/, as_ana($session_sql);
is(scalar @results, scalar @refused, 'one result per refused statement');
foreach my $i (0 .. $#refused)
{
	my ($sql, @want) = @{ $refused[$i] };
	my @got = split /\x1f/, ($results[$i] // ''), -1;
	$got[$_] //= '' foreach 0 .. 3;
	(my $label = $sql) =~ s/\s+/ /g;
	$label = substr($label, 0, 140);
	foreach my $f (0 .. 3)
	{
		next unless defined $want[$f];
		my $what = ('SQLSTATE', 'message', 'detail', 'hint')[$f];
		if (ref $want[$f] eq 'Regexp')
		{
			like($got[$f], $want[$f], "$what of: $label");
		}
		else
		{
			is($got[$f], $want[$f], "$what of: $label");
		}
	}
}

# Nothing created by the refused calls; the secret nowhere in the catalog.
is(as_ana($catalog_sql), 's /  / 2', 'the refusals left no stream, view or table (ana.sq and ana.my_now aside)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.streams WHERE options::text LIKE '%hunter2%'}),
	'0', 'the refused secret is stored nowhere');
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa.stream_secrets WHERE settings::text LIKE '%hunter2%'}),
	'0', 'the refused secret is not among the secrets either');

# ---------------------------------------------------------------------------
# Accepted: stable functions that depend only on pinned settings, and
# CURRENT_USER; and 63-byte names.

# (this file is not "use utf8": strings are bytes, as psql sees them)
my $long = 'l' x 62 . 'g';
my $wide = "\xc3\xa9" x 31 . 'w';	# "é" 31 times and "w": 63 bytes of UTF-8
is(length($long), 63, 'the ASCII name is 63 bytes');
is(length($wide), 63, 'the multibyte name is 63 bytes');
my $qwide = qq{"$wide"};

my %views = (
	hourly => q{SELECT to_char(ts, 'YYYY-MM-DD HH24') AS hour, k, count(*) AS n, sum(v) AS s FROM s GROUP BY 1, 2},
	trunc => q{SELECT date_trunc('hour', ts) AS h, count(*) AS n, max(ts::text) AS last, CURRENT_USER::text AS who
		FROM s WHERE ts >= '2026-01-01 01:00:00+00' GROUP BY 1},
	$long => q{SELECT k, count(*) AS n, sum(v) AS s FROM s GROUP BY k},
	$qwide => q{SELECT k, count(*) AS n, min(v) AS lo FROM s GROUP BY k},
);
my $create = '';
foreach my $name (sort keys %views)
{
	(my $q = $views{$name}) =~ s/'/''/g;
	(my $n = $name) =~ s/'/''/g;
	$create .= "SELECT kappa_create_view('$n', '$q', '{\"start\": \"earliest\"}');\n";
}
as_ana($create . "SELECT kappa_wait('s', '60 seconds');");

# The batch oracle, with the settings kappa pins for views.
sub equals_batch
{
	my ($relation, $query, $label) = @_;
	(my $batch = $query) =~ s/\bFROM s\b/FROM ana.ev s/;
	my ($extra, $missing, $rows) = split m{/}, as_ana(qq{
		SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD';
		SELECT (SELECT count(*) FROM (SELECT * FROM $relation EXCEPT ALL ($batch)) a)
			|| '/' || (SELECT count(*) FROM (($batch) EXCEPT ALL SELECT * FROM $relation) b)
			|| '/' || (SELECT count(*) FROM $relation)});
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"$label equals its query as batch SQL ($rows rows; $extra extra, $missing missing)");
	return;
}
equals_batch('ana.hourly', $views{hourly}, 'to_char(ts) view');
equals_batch('ana.trunc', $views{trunc}, 'date_trunc, ts::text and CURRENT_USER view');
is(as_ana('SELECT DISTINCT who FROM ana.trunc'), 'ana', 'CURRENT_USER is the view\'s owner in the worker');
equals_batch("ana.$long", $views{$long}, '63-byte view');
equals_batch("ana.$qwide", $views{$qwide}, '63-byte multibyte view');

# Replay, swapped in, then kept beside: several calls in one session.
foreach my $case ([ $long, $long ], [ $qwide, $wide ])
{
	my ($name, $raw) = @$case;
	(my $lit = $name) =~ s/'/''/g;
	my ($rc, $out, $err) = $node->psql('postgres', qq{
		SELECT archive_events + log_events FROM kappa_replay('$lit');
		SELECT archive_events + log_events FROM kappa_replay('$lit', swap => false);
		SELECT name, version, current, status FROM kappa_views WHERE version_of = 'ana.$lit' ORDER BY version;
	}, extra_params => [ '-U', 'ana' ]);
	is($rc, 0, "replays of $name succeeded") or diag $err;
	my @name_of = split /\n/, $out;
	is($name_of[0], '300', "the swapped replay of $name read the 300 events");
	is($name_of[1], '300', "the replay kept beside $name read the 300 events");
	my $current = $name;
	my ($beside) = $err =~ /NOTICE:  version 2 of \Q$raw\E runs beside the current one, as (\S+)/;
	ok(defined $beside, "the NOTICE says version 2 of $name runs beside the current one")
	  or diag $err;
	$beside //= 'none';
	is($name_of[2], "ana.$current|1|t|live", "the current version of $name is listed");
	is($name_of[3], "$beside|2|f|live", "version 2 of $name is listed in kappa_views as $beside");
	(my $bare = $beside) =~ s/^ana\.//;
	$bare =~ s/^"(.*)"$/$1/;
	ok(length($bare) <= 63 && $bare =~ /\@v2$/,
		"the version's name ends in \@v2 and fits NAMEDATALEN (" . length($bare) . ' bytes)');
	equals_batch("ana.$current", $views{$name}, "replayed $name");
	equals_batch($beside, $views{$name}, "version 2 of $name");
}

# ---------------------------------------------------------------------------
# Relative times in event data: never read, whatever the date/time type.

as_ana(q{
	SELECT kappa_create_stream('rt', topic => 'rt', brokers => '} . $b . q{',
		columns => 'k text, ts timestamptz, d date, t time, tz timetz, l timestamp', event_time => 'ts');
});
my @decode = (
	# [ payload, ok, reason, sqlstate ]
	[ '{"k": "a", "ts": "2026-01-01T10:00:00Z", "d": "November 5 2026", "t": "10:00", "tz": "10:00+02", "l": "2026-01-01 10:00"}',
		't', '', '' ],
	[ '{"k": "a", "ts": "now"}', 'f', 'field "ts": "now" in "now" depends on when the event is read', '22007' ],
	[ '{"k": "a", "ts": "2026-01-01T10:00:00Z", "d": "Today"}', 'f',
		'field "d": "today" in "Today" depends on when the event is read', '22007' ],
	[ '{"k": "a", "ts": "2026-01-01T10:00:00Z", "t": " NOW "}', 'f',
		'field "t": "now" in " NOW " depends on when the event is read', '22007' ],
	[ '{"k": "a", "ts": "2026-01-01T10:00:00Z", "tz": "now"}', 'f',
		'field "tz": "now" in "now" depends on when the event is read', '22007' ],
	[ '{"k": "a", "ts": "2026-01-01T10:00:00Z", "l": "tomorrow 10:00"}', 'f',
		'field "l": "tomorrow" in "tomorrow 10:00" depends on when the event is read', '22007' ],
	[ '{"k": "a", "ts": "yesterday allballs"}', 'f',
		'field "ts": "yesterday" in "yesterday allballs" depends on when the event is read', '22007' ],
	[ '{"k": "now", "ts": "epoch", "d": "2026-01-01"}', 't', '', '' ],
);
my $decode_sql = '';
$decode_sql .= "SELECT concat_ws('|', ok, coalesce(reason, ''), coalesce(sqlstate, '')) FROM kappa.decode('rt', convert_to(\$p\$$_->[0]\$p\$, 'UTF8'));\n"
  foreach @decode;
my @decoded = split /\n/, as_ana($decode_sql);
foreach my $i (0 .. $#decode)
{
	is($decoded[$i], join('|', @{ $decode[$i] }[ 1 .. 3 ]), "kappa.decode of $decode[$i][0]");
}

# End to end: the worker dead-letters them, the view counts the others.
as_ana(q{
	SELECT kappa_create_view('rt_count', 'SELECT k, count(*) AS n FROM rt GROUP BY k');
	SELECT count(*) FROM (VALUES ('{"k": "a", "ts": "2026-01-01T10:00:00Z"}'), ('{"k": "a", "ts": "now"}'),
		('{"k": "b", "ts": "today 10:00"}'), ('{"k": "b", "ts": "2026-01-01T11:00:00Z"}')) e(p),
		LATERAL kappa_produce('rt', e.p) x;
	SELECT kappa_wait('rt', '60 seconds');
});
is(as_ana('SELECT k, n FROM rt_count ORDER BY k'), "a|1\nb|1", 'the view counts the events with absolute times');
is(as_ana(q{SELECT convert_from(payload, 'UTF8'), sqlstate FROM kappa.dead_letters
		WHERE stream_id = (SELECT stream_id FROM kappa.streams WHERE name = 'rt') ORDER BY "offset"}),
	qq{{"k": "a", "ts": "now"}|22007\n{"k": "b", "ts": "today 10:00"}|22007},
	'the events with relative times are dead letters (22007)');

$node->stop;
stop_broker($broker);
done_testing();
