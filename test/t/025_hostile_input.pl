# Hostile input: empty, oversized and deeply nested messages, huge numbers,
# NaN, NUL characters, invalid UTF-8, wrong JSON types, duplicate keys and
# tombstones.  Each is applied as Postgres's input functions read it, or
# dead-lettered with its exact bytes; the worker never dies; and its memory
# does not grow with the number of hostile messages it has seen (the
# worker's memory contexts, logged by pg_log_backend_memory_contexts).
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $broker = start_broker('hostile:1');
my $b = $broker->{bootstrap};
# A 1 MB limit: the embedded broker keeps only 5 MB per partition, so
# the default 10 MB limit cannot be reached through it.
my $node = kappa_node('hostile', conf => "kappa.flush_interval = '100ms'\nkappa.max_payload = '1MB'\n");

$node->safe_psql('postgres', qq{
	SELECT kappa_create_stream('h', topic => 'hostile', brokers => '$b',
		columns => 'id text, n numeric, f float8, i int, b bool',
		options => '{"message.max.bytes": "4000000"}');
	SELECT kappa_create_view('total', 'SELECT count(*) AS n, sum(i) AS s, count(f) AS floats FROM h');
});

# Each case: a name, the payload as SQL (bytea), and the value of i it
# yields if applied, or 'dead'.  i null counts in n, not in s.
my @cases = (
	[ 'plain', q{convert_to('{"i": 1}', 'UTF8')}, 1 ],
	[ 'duplicate key: the last wins', q{convert_to('{"i": 1, "i": 2}', 'UTF8')}, 2 ],
	[ 'a number as a string', q{convert_to('{"i": "7"}', 'UTF8')}, 7 ],
	[ 'a huge numeric', q{convert_to('{"n": 1e400}', 'UTF8')}, 'null' ],
	[ 'NaN as a string', q{convert_to('{"f": "NaN", "i": 3}', 'UTF8')}, 3 ],
	[ 'a bool as yes', q{convert_to('{"b": "yes", "i": 4}', 'UTF8')}, 4 ],
	[ 'nested 60 deep, not a column', q{convert_to(repeat('{"x": ', 60) || '1' || repeat('}', 60), 'UTF8')}, 'null' ],
	[ 'a string of 1 MB less 1 kB', q{convert_to('{"id": "' || repeat('x', 1047552) || '", "i": 6}', 'UTF8')}, 6 ],
	[ 'empty', q{''::bytea}, 'dead' ],
	[ 'tombstone', q{NULL::bytea}, 'dead' ],
	[ 'NaN bare', q{convert_to('{"f": NaN}', 'UTF8')}, 'dead' ],
	[ 'invalid UTF-8', q{'\x7b226964223a2022fffe222c202269223a20317d'::bytea}, 'dead' ],
	[ 'a raw NUL byte', q{'\x7b226964223a20226100622c202269223a20317d'::bytea}, 'dead' ],
	[ 'an escaped NUL', q{convert_to('{"id": "a\u0000b", "i": 1}', 'UTF8')}, 'dead' ],
	[ 'wrong type: string', q{convert_to('{"i": "abc"}', 'UTF8')}, 'dead' ],
	[ 'wrong type: array', q{convert_to('{"i": [1]}', 'UTF8')}, 'dead' ],
	[ 'int out of range', q{convert_to('{"i": 99999999999}', 'UTF8')}, 'dead' ],
	[ 'float out of range', q{convert_to('{"f": 1e400}', 'UTF8')}, 'dead' ],
	[ 'nested 100 deep', q{convert_to(repeat('[', 100) || repeat(']', 100), 'UTF8')}, 'dead' ],
	[ 'not an object', q{convert_to('[1]', 'UTF8')}, 'dead' ],
	[ 'trailing garbage', q{convert_to('{"i": 1} x', 'UTF8')}, 'dead' ],
	[ 'over the limit (2 MB)', q{convert_to('{"id": "' || repeat('x', 2097152) || '"}', 'UTF8')}, 'dead' ],
);
my $worker_pid = sub { $node->safe_psql('postgres', "SELECT pid FROM kappa_workers WHERE stream = 'h'") };
ok(wait_until(sub { $worker_pid->() ne '' }, 30), 'the worker runs');
my $pid = $worker_pid->();

$node->safe_psql('postgres', 'CREATE TABLE produced (name text, "offset" bigint, payload bytea)');
foreach my $case (@cases)
{
	$node->safe_psql('postgres', qq{
		INSERT INTO produced SELECT \$n\$$case->[0]\$n\$, "offset", p
		FROM (SELECT $case->[1] AS p) x, kappa_produce('h', x.p)});
}
is($node->safe_psql('postgres', "SELECT kappa_wait('h', '60 seconds')"), 't', 'every message consumed');
is($worker_pid->(), $pid, 'the worker did not die');

my @applied = grep { $_->[2] ne 'dead' } @cases;
my @dead = grep { $_->[2] eq 'dead' } @cases;
my $sum = 0;
$sum += $_->[2] foreach grep { $_->[2] =~ /^\d+$/ } @applied;
is($node->safe_psql('postgres', 'SELECT n, s, floats FROM total'), scalar(@applied) . "|$sum|1",
	'the view has exactly the applied messages');
is($node->safe_psql('postgres', 'SELECT sum(consumed), sum(dead_lettered) FROM kappa_stats WHERE view IS NULL'),
	scalar(@cases) . '|' . scalar(@dead), 'consumed and dead-lettered reconcile');
my $dead_names = join ',', sort map { $_->[0] } @dead;
is($node->safe_psql('postgres', q{
		SELECT string_agg(p.name, ',' ORDER BY p.name) FROM kappa.dead_letters d
		JOIN produced p ON p."offset" = d."offset" AND p.payload IS NOT DISTINCT FROM d.payload}),
	$dead_names, 'the dead letters are exactly the bad messages, with their bytes');

# Memory: the worker's contexts after the warm-up, and after ten times as
# many messages.  Returns the grand total and the context lines, so that a
# failure can say which context grew.
sub worker_memory
{
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my ($total, $log);
	wait_until(sub {
		$log = slurp_file($node->logfile, $offset);
		($total) = $log =~ /\[$pid\] LOG:\s+Grand total: (\d+) bytes/;
		return defined $total;
	}, 30) or die "the worker did not log its memory contexts";
	my @contexts = $log =~ /\[$pid\] LOG:\s+level: \d+; (.*)/g;
	return ($total, \@contexts);
}
my @small = grep { $_->[0] !~ /MB/ } @cases;    # the big ones go in once
my $round = join ', ', map { "($_->[1])" } @small;
my $applied_per_round = grep { $_->[2] ne 'dead' } @small;
sub rounds
{
	my ($n) = @_;
	$node->safe_psql('postgres', qq{
		SELECT count(kappa_produce('h', p)) FROM generate_series(1, $n) g, (VALUES $round) v(p)});
	is($node->safe_psql('postgres', "SELECT kappa_wait('h', '60 seconds')"), 't',
		"$n rounds of hostile messages consumed");
	return;
}
# Warm-up: contexts and caches reach their working size.  Ten rounds, each
# waited for, so that every kind of write has been flushed ten times
# whatever the machine's speed (plans are cached, and a cached plan turns
# generic after its fifth use).
rounds(3) for 1 .. 10;
my ($before, $contexts_before) = worker_memory();
rounds(300);
my ($after, $contexts_after) = worker_memory();
is($worker_pid->(), $pid, 'the worker still did not die');
cmp_ok($after - $before, '<', 128 * 1024,
	"the worker's memory did not grow with "
	  . (300 * scalar(@small)) . " more messages ($before bytes, then $after)")
  or do
{
	my %was = map { $_ => 1 } @$contexts_before;
	diag "contexts that changed:\n", map { "  $_\n" } grep { !$was{$_} } @$contexts_after;
};
is($node->safe_psql('postgres', 'SELECT n FROM total'), scalar(@applied) + 330 * $applied_per_round,
	'and it applied them all');

stop_broker($broker);
done_testing();
