# Versions side by side: kappa_replay(..., swap => false) builds a new
# version of a view with a new query and leaves it live beside the current
# one, on the same stream; both stay equal to their own batch queries as
# events arrive; kappa_compare returns exactly the rows in which they
# differ; kappa_promote makes the new one current; and dropping the view
# drops its versions.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('vs:2');
my $b = $broker->{bootstrap};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $node = kappa_node('versions', conf => "kappa.flush_interval = '100ms'\n");

$node->safe_psql('postgres', qq{
	CREATE TABLE ev AS SELECT i, 'd' || (i % 7) AS dev,
		timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s' AS ts, (i * 13) % 97 AS v
	FROM generate_series(0, 9999) i;
	SELECT kappa_create_stream('vs', topic => 'vs', brokers => '$b',
		columns => 'i int, dev text, ts timestamptz NOT NULL, v int', event_time => 'ts', watermark => '1 minute');
	SELECT kappa_create_view('tumble', \$q\$SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM vs, kappa_tumble(ts, '5 minutes') w GROUP BY dev, w.window_start, w.window_end\$q\$);
});
my %q = (
	1 => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM EV, kappa_tumble(ts, '5 minutes') w GROUP BY dev, w.window_start, w.window_end},
	2 => q{SELECT dev, w.window_start, w.window_end, count(*) AS n, sum(v) AS s
		FROM EV, kappa_tumble(ts, '5 minutes') w WHERE v <> 96 GROUP BY dev, w.window_start, w.window_end},
);

sub produce
{
	my ($lo, $hi) = @_;
	$node->safe_psql('postgres', "COPY (SELECT dev || '|' || json_build_object('i', i, 'dev', dev, 'ts', ts, 'v', v)::text "
		  . "FROM ev WHERE i BETWEEN $lo AND $hi ORDER BY i) TO '$dir/e$lo.txt'");
	IPC::Run::run([ 'kcat', '-P', '-b', $b, '-t', 'vs', '-K', '|', '-l', "$dir/e$lo.txt" ]) or die "kcat failed";
	is($node->safe_psql('postgres', "SELECT kappa_wait('vs', '60 seconds')"), 't', "events $lo to $hi consumed");
	return;
}

sub check
{
	my ($relation, $version, $upto, $label) = @_;
	(my $query = $q{$version}) =~ s/EV/(SELECT * FROM ev WHERE i <= $upto) ev/;
	my ($extra, $missing, $rows) = split m{/}, $node->safe_psql('postgres', qq{
		SELECT (SELECT count(*) FROM (SELECT * FROM $relation EXCEPT ALL ($query)) a)
			|| '/' || (SELECT count(*) FROM (($query) EXCEPT ALL SELECT * FROM $relation) b)
			|| '/' || (SELECT count(*) FROM $relation)});
	ok($rows > 0 && $extra == 0 && $missing == 0,
		"$label: $relation equals version ${version}'s batch query ($rows rows; $extra extra, $missing missing)");
	return;
}

produce(0, 4999);
(my $v2 = $q{2}) =~ s/EV/vs/;
$node->safe_psql('postgres', "SELECT * FROM kappa_replay('tumble', query => \$q\$$v2\$q\$, swap => false)");
is($node->safe_psql('postgres', q{SELECT string_agg(name || ' v' || version || CASE WHEN current THEN ' current' ELSE '' END, ', ' ORDER BY version)
		FROM kappa_views WHERE version_of = 'public.tumble'}),
	'public.tumble v1 current, public."tumble@v2" v2', 'kappa_views lists both versions');
check('tumble', 1, 4999, 'beside a new version');
check('"tumble@v2"', 2, 4999, 'the new version');

produce(5000, 9999);
check('tumble', 1, 9999, 'both live');
check('"tumble@v2"', 2, 9999, 'both live');

# kappa_compare against the same comparison done on the batch results.
my $oracle = qq{
	WITH a AS ($q{1}), b AS ($q{2})
	SELECT count(*) FROM a FULL JOIN b USING (dev, window_start, window_end)
	WHERE a.n IS DISTINCT FROM b.n OR a.s IS DISTINCT FROM b.s};
$oracle =~ s/EV/ev/g;
my $differ = $node->safe_psql('postgres', $oracle);
ok($differ > 0, "the two versions differ in $differ windows");
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa_compare('tumble', 1, 2)}), $differ,
	'kappa_compare returns exactly those rows');
is($node->safe_psql('postgres', q{
		SELECT count(*) FROM kappa_compare('tumble', 1, 2)
		WHERE (a->>'n')::int <= (b->>'n')::int OR key->>'dev' <> a->>'dev'}),
	'0', 'with their key and each version\'s row (version 2 counts fewer: it leaves out v = 96)');

$node->safe_psql('postgres', q{SELECT kappa_promote('tumble', 2)});
check('tumble', 2, 9999, 'promoted');
is($node->safe_psql('postgres', q{SELECT name || ' v' || version || ' ' || current FROM kappa_views WHERE version_of = 'public.tumble'}),
	'public.tumble v2 true', 'only the promoted version is left, current');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname = 'tumble@v2'}), '0',
	'its versioned name is gone');

# Versions go with the view.
$node->safe_psql('postgres', "SELECT * FROM kappa_replay('tumble', swap => false)");
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa_views WHERE version_of = 'public.tumble'}), '2',
	'a new version beside it');
$node->safe_psql('postgres', q{SELECT kappa_drop_view('tumble')});
is($node->safe_psql('postgres', q{SELECT count(*) FROM kappa_views}) . '/'
	  . $node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname LIKE 'tumble%'}),
	'0/0', 'dropping the view drops its versions');

my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\nSELECT kappa_promote('ev', 2)");
like($err, qr/42809: "ev" is not the current version of a kappa view/, 'promoting a table is refused');

stop_broker($broker);
done_testing();
