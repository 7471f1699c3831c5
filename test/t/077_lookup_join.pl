# Lookup joins: views that join their stream with ordinary tables by key
# (JOIN and LEFT JOIN, a chain of two tables, a table column in WHERE and
# in GROUP BY, a table of another role's that the owner may read, a top 2
# with HAVING and string_agg over the joined rows).  Every
# event is joined with the tables as they were when it was processed: the
# oracle is the views' queries as batch SQL over the same events, each
# batch joined with a copy of the tables taken before it was produced.
# Between batches the tables change (rows updated, deleted, inserted), the
# server restarts, and a table loses its primary key and gains a second
# row for a key, so that events find two rows: those are rejected (21000,
# dead letters of each view) and the rest stay exact.  kappa_check reports
# exactly the rows that differ from a recomputation with the tables as
# they are now, and says why in a NOTICE; kappa_replay recomputes the view
# with them.  A table dropped, and a right revoked, fail the views that
# join them (42P01, 42501) while the others go on.  Refused: joins that
# may find several rows, RIGHT joins, tables beside the stream without
# JOIN, temporary tables, tables the owner may not read.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('tel:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('lookup', conf => "kappa.flush_interval = '100ms'\n");

$node->safe_psql('postgres', q{
	CREATE ROLE en LOGIN IN ROLE kappa_admin;
	GRANT CREATE ON SCHEMA public TO en;
	CREATE TABLE ev (batch int, p int, dev text, v int, ts timestamptz);
	CREATE TABLE devices_at (batch int, id text, site text, factor int);
	CREATE TABLE sites_at (batch int, name text, region text);
	GRANT SELECT ON ev, devices_at, sites_at TO en;
	-- a superuser's tables: one the owner may read, one it may not
	CREATE TABLE zones (id text PRIMARY KEY, zone text);
	INSERT INTO zones VALUES ('d0', 'z0'), ('d1', 'z1'), ('d2', 'z0');
	GRANT SELECT ON zones TO en;
	CREATE TABLE hidden (id text PRIMARY KEY, x int);
	SET ROLE en;
	CREATE TABLE devices (id text PRIMARY KEY, site text, factor int);
	CREATE TABLE sites (name text PRIMARY KEY, region text);
	INSERT INTO devices VALUES ('d0', 'north', 1), ('d1', 'north', 2), ('d2', 'south', 3),
		('d3', 'east', 4), ('d4', NULL, 5);
	INSERT INTO sites VALUES ('north', 'eu'), ('south', 'us');
});
$node->safe_psql('postgres', qq{SET ROLE en;
	SELECT kappa_create_stream('tel', topic => 'tel', brokers => '$b',
		columns => 'dev text, v int, ts timestamptz NOT NULL', event_time => 'ts',
		watermark => '1 hour', idle_timeout => '1 hour');});

# The views, and their batch queries over ev joined with the tables as
# they were before each batch (devices_at, sites_at; zones never changes).
# Events that find two rows of devices (ambiguous) are rejected by the
# views that join devices.
my %q = (
	per_site => q{SELECT d.site, w.window_start, count(*) AS n, sum(e.v * d.factor) AS s
		FROM tel e JOIN devices d ON d.id = e.dev, kappa_tumble(e.ts, '1 minute') w
		GROUP BY d.site, w.window_start},
	per_dev => q{SELECT e.dev, d.site, s.region, count(*) AS n, max(e.v) AS top
		FROM tel e LEFT JOIN devices d ON d.id = e.dev LEFT JOIN sites s ON s.name = d.site
		GROUP BY e.dev, d.site, s.region},
	by_region => q{SELECT s.region, count(*) AS n, sum(e.v) AS total
		FROM tel e JOIN devices d ON d.id = lower(e.dev) JOIN sites s ON s.name = d.site
		WHERE d.factor > 1 GROUP BY s.region},
	by_zone => q{SELECT z.zone, count(*) AS n FROM tel e JOIN zones z ON z.id = e.dev GROUP BY z.zone},
	top_sites => q{SELECT d.site, count(*) AS n, string_agg(DISTINCT e.dev, ',') AS devs
		FROM tel e JOIN devices d ON d.id = e.dev GROUP BY d.site
		HAVING max(d.factor) > 1 ORDER BY count(*) DESC LIMIT 2},
);
sub ok_ev
{
	my ($key) = @_;
	return qq{(SELECT * FROM ev e WHERE NOT EXISTS (SELECT FROM devices_at x
		WHERE x.batch = e.batch AND x.id = $key GROUP BY x.id HAVING count(*) > 1))};
}
my $ok_ev = ok_ev('e.dev');
my $ok_ev_lower = ok_ev('lower(e.dev)');
my %batch = (
	per_site => qq{SELECT d.site, date_bin('1 minute', e.ts, timestamptz '2000-01-01') AS window_start,
			count(*) AS n, sum(e.v * d.factor) AS s
		FROM $ok_ev e JOIN devices_at d ON d.batch = e.batch AND d.id = e.dev GROUP BY 1, 2},
	per_dev => qq{SELECT e.dev, d.site, s.region, count(*) AS n, max(e.v) AS top
		FROM $ok_ev e LEFT JOIN devices_at d ON d.batch = e.batch AND d.id = e.dev
		LEFT JOIN sites_at s ON s.batch = e.batch AND s.name = d.site GROUP BY 1, 2, 3},
	by_region => qq{SELECT s.region, count(*) AS n, sum(e.v) AS total
		FROM $ok_ev_lower e JOIN devices_at d ON d.batch = e.batch AND d.id = lower(e.dev)
		JOIN sites_at s ON s.batch = e.batch AND s.name = d.site
		WHERE d.factor > 1 GROUP BY 1},
	by_zone => q{SELECT z.zone, count(*) AS n FROM ev e JOIN zones z ON z.id = e.dev GROUP BY 1},
	top_sites => qq{SELECT site, n, devs FROM (
			SELECT d.site, count(*) AS n, string_agg(DISTINCT e.dev, ',' ORDER BY e.dev) AS devs,
				row_number() OVER (ORDER BY count(*) DESC, d.site) AS r
			FROM $ok_ev e JOIN devices_at d ON d.batch = e.batch AND d.id = e.dev
			GROUP BY d.site HAVING max(d.factor) > 1) x WHERE r <= 2},
);
foreach my $v (sort keys %q)
{
	$node->safe_psql('postgres', qq{SET ROLE en; SELECT kappa_create_view('$v', \$q\$$q{$v}\$q\$)});
}

# A batch: the tables as they are now, then 150 events per partition, of
# devices d0..d6 (d5 and d6 unknown at first, some in upper case), up to a
# minute out of order.
my $batch = 0;
my $sites_gone = 0;
sub produce
{
	$batch++;
	$node->safe_psql('postgres', qq{INSERT INTO devices_at SELECT $batch, * FROM devices});
	$node->safe_psql('postgres', qq{INSERT INTO sites_at SELECT $batch, * FROM sites})
	  unless $sites_gone;
	foreach my $p (0, 1)
	{
		my $file = "$dir/b$batch-p$p.txt";
		$node->safe_psql('postgres', qq{
			INSERT INTO ev SELECT $batch, $p,
				CASE WHEN i % 11 = 0 THEN 'D' ELSE 'd' END || ((i * 3 + $p) % 7),
				$batch * 1000 + i,
				timestamptz '2026-04-01 00:00:00+00' + ($batch * 600 + i * 3 + ((i * 37) % 60)) * interval '1 second'
			FROM generate_series(0, 149) i;
			COPY (SELECT json_build_object('dev', dev, 'v', v, 'ts', ts)::text FROM ev
				WHERE p = $p AND batch = $batch ORDER BY v) TO '$file'});
		IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'tel', '-p', $p, '-l', $file ]) or die "kcat failed";
	}
	is($node->safe_psql('postgres', q{SELECT kappa_wait('tel', '60 seconds')}), 't', "batch $batch consumed");
	return;
}

# A view against its batch query, both ways.
sub check_view
{
	my ($v, $what) = @_;
	my $cmp = $node->safe_psql('postgres', qq{
		WITH b AS ($batch{$v}), l AS (SELECT * FROM $v)
		SELECT (SELECT count(*) FROM l), (SELECT count(*) FROM b),
			(SELECT count(*) FROM (SELECT * FROM l EXCEPT ALL SELECT * FROM b) d),
			(SELECT count(*) FROM (SELECT * FROM b EXCEPT ALL SELECT * FROM l) d)});
	my ($rows, $expected, @diff) = split /\|/, $cmp;
	cmp_ok($expected, '>', 0, "$what: $v has rows");
	is("$rows|@diff", "$expected|0 0", "$what: $v equals its batch query (rows, extra, missing)");
	return;
}

produce();
check_view($_, 'batch 1') for sort keys %q;
# an inner join's events without a row are filtered, a LEFT JOIN's are not
is($node->safe_psql('postgres', q{
	SELECT (SELECT sum(filtered) FROM kappa_stats WHERE view = 'public.per_site')
		= (SELECT count(*) FROM ev e WHERE NOT EXISTS (SELECT FROM devices d WHERE d.id = e.dev)),
		(SELECT sum(filtered) FROM kappa_stats WHERE view = 'public.per_dev')}),
	't|0', 'batch 1: events without a row are filtered by an inner join only');

# The tables change: each batch sees them as they are when it comes.
$node->safe_psql('postgres', q{SET ROLE en;
	UPDATE devices SET site = 'south' WHERE id = 'd1';
	DELETE FROM devices WHERE id = 'd0';
	INSERT INTO devices VALUES ('d5', 'east', 6);
	UPDATE sites SET region = 'apac' WHERE name = 'south';
	INSERT INTO sites VALUES ('east', 'asia');});
produce();
check_view($_, 'batch 2') for sort keys %q;

# kappa_check: the rows computed with the old tables differ from a
# recomputation with the tables as they are now, exactly those, and a
# NOTICE says why.
{
	my $now = $batch{per_dev};
	$now =~ s/devices_at d ON d\.batch = e\.batch AND/devices d ON/;
	$now =~ s/sites_at s ON s\.batch = e\.batch AND/sites s ON/;
	my ($ret, $out, $err) = $node->psql('postgres', qq{SET ROLE en;
		CREATE TEMP TABLE c AS SELECT * FROM kappa_check('per_dev');
		SELECT (SELECT count(*) FROM c WHERE side = 'missing')
			= (SELECT count(*) FROM (SELECT * FROM ($now) n EXCEPT ALL SELECT * FROM per_dev) d),
			(SELECT count(*) FROM c WHERE side = 'extra')
			= (SELECT count(*) FROM (SELECT * FROM per_dev EXCEPT ALL SELECT * FROM ($now) n) d),
			(SELECT count(*) > 0 FROM c)});
	is($out, 't|t|t', 'kappa_check reports exactly the rows the changed tables make differ')
	  or diag($err);
	like($err, qr/NOTICE:  kappa view per_dev joins public\.devices, public\.sites, which the check read as they are now/,
		'kappa_check says the view joins tables it read as they are now');
}

# A clean restart: open windows come back, lookups are prepared again.
$node->restart;
produce();
check_view($_, 'batch 3') for sort keys %q;

# devices loses its primary key and gets a second row for d2: the events of
# d2 (and D2) find two rows, and each view joining devices rejects them.
$node->safe_psql('postgres', q{SET ROLE en;
	ALTER TABLE devices DROP CONSTRAINT devices_pkey;
	INSERT INTO devices VALUES ('d2', 'west', 7);});
produce();
check_view($_, 'batch 4') for sort keys %q;
is($node->safe_psql('postgres', q{
	SELECT string_agg(format('%s:%s', v.view_name, n), ' ' ORDER BY v.view_name)
	FROM (SELECT view_id, count(*) AS n FROM kappa.dead_letters
		WHERE sqlstate = '21000' AND reason = 'more than one row of public.devices matches the event'
		GROUP BY view_id) d JOIN kappa.views v USING (view_id)}),
	join(' ', map { my $n = $node->safe_psql('postgres',
			$_ eq 'by_region' ? q{SELECT count(*) FROM ev WHERE batch = 4 AND lower(dev) = 'd2'}
			: q{SELECT count(*) FROM ev WHERE batch = 4 AND dev = 'd2'}); "$_:$n" }
		qw(by_region per_dev per_site top_sites)),
	'batch 4: each view joining devices rejected exactly the events that found two rows');
{
	my ($ret, $out, $err) = $node->psql('postgres', q{SET ROLE en;
		SELECT kappa_create_view('again', $$SELECT d.site, count(*) AS n FROM tel e JOIN devices d ON d.id = e.dev GROUP BY d.site$$)},
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/0A000: the join with public\.devices must find at most one row per event/,
		'a new view cannot join on columns no unique index covers (0A000)');
}
$node->safe_psql('postgres', q{SET ROLE en;
	DELETE FROM devices WHERE site = 'west';
	ALTER TABLE devices ADD PRIMARY KEY (id);});

# A table dropped and a right revoked: the views that need them fail, the
# others go on exactly.
$node->safe_psql('postgres', q{REVOKE SELECT ON zones FROM en; SET ROLE en; DROP TABLE sites;});
$sites_gone = 1;
produce();
ok(wait_until(sub { $node->safe_psql('postgres', q{
		SELECT string_agg(name || ' ' || status, ', ' ORDER BY name) FROM kappa_views}) eq
		'public.by_region failed, public.by_zone failed, public.per_dev failed, public.per_site live, public.top_sites live' }, 60),
	'the views joining the dropped table and the revoked one failed, the other is live');
like($node->safe_psql('postgres', q{SELECT status_detail FROM kappa_views WHERE name = 'public.by_zone'}),
	qr/permission denied for table zones/, 'the revoked right is the failure of by_zone');
is($node->safe_psql('postgres', q{SELECT string_agg(status_sqlstate, ' ' ORDER BY view_name)
	FROM kappa.views WHERE status = 'failed'}), '42P01 42501 42P01',
	'the dropped table fails by_region and per_dev (42P01), the revoked right by_zone (42501)');
check_view($_, 'batch 5') for qw(per_site top_sites);

# kappa_replay joins every event with the table as it is now.
$node->safe_psql('postgres', q{SET ROLE en; SELECT * FROM kappa_replay('per_site')});
is($node->safe_psql('postgres', q{
	WITH b AS (SELECT d.site, date_bin('1 minute', e.ts, timestamptz '2000-01-01') AS window_start,
			count(*) AS n, sum(e.v * d.factor) AS s
		FROM ev e JOIN devices d ON d.id = e.dev GROUP BY 1, 2)
	SELECT (SELECT count(*) FROM (SELECT * FROM per_site EXCEPT ALL SELECT * FROM b) x),
		(SELECT count(*) FROM (SELECT * FROM b EXCEPT ALL SELECT * FROM per_site) x),
		(SELECT count(*) FROM per_site) > 0}), '0|0|t',
	'kappa_replay joined every event with the table as it is now');

# Refusals.
foreach my $case (
	[ q{SELECT h.x, count(*) AS n FROM tel e JOIN hidden h ON h.id = e.dev GROUP BY h.x},
		'42501', qr/permission denied for table hidden/ ],
	[ q{SELECT d.site, count(*) AS n FROM tel e JOIN devices d ON d.site = e.dev GROUP BY d.site},
		'0A000', qr/must find at most one row per event/ ],
	[ q{SELECT d.site, count(*) AS n FROM tel e RIGHT JOIN devices d ON d.id = e.dev GROUP BY d.site},
		'0A000', qr/RIGHT and FULL joins cannot be used/ ],
	[ q{SELECT d.site, count(*) AS n FROM tel e, devices d WHERE d.id = e.dev GROUP BY d.site},
		'0A000', qr/tables in FROM beside the stream cannot be used/ ],
	[ q{SELECT d.site, count(*) AS n FROM tel e JOIN devices d ON true GROUP BY d.site},
		'0A000', qr/must find at most one row per event/ ],
	[ q{SELECT count(d) AS n FROM tel e JOIN devices d ON d.id = e.dev},
		'0A000', qr/whole-row references and system columns of a joined table/ ],
	[ q{SELECT t.x, count(*) AS n FROM tel e JOIN tmp t ON t.id = e.dev GROUP BY t.x},
		'0A000', qr/cannot join temporary table/ ])
{
	my ($query, $state, $message) = @$case;
	my ($ret, $out, $err) = $node->psql('postgres', qq{SET ROLE en;
		CREATE TEMP TABLE tmp (id text PRIMARY KEY, x int);
		SELECT kappa_create_view('refused', \$q\$$query\$q\$)},
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/ERROR:  $state: /, "refused with $state: $query");
	like($err, $message, "and says why: $query");
}

$node->stop;
ok(!log_contains($node, qr/server process .* was terminated by signal/), 'no backend crashed');
stop_broker($broker);
done_testing();
