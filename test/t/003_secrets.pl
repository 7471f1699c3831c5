# Secrets never reach the server log: not from the stream's worker and
# librdkafka's most verbose debugging, not from the text of a failing
# statement that carried them, not from error messages.
use strict;
use warnings;

use lib 'test/lib';
use KappaTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = kappa_node('secrets', conf => "log_min_messages = debug2\nlog_min_error_statement = debug2\n");
my $key = 'S3cr3tKeyValue+/=';
my $password = 'HunterTwoPassword';
my $conn = "Endpoint=sb://kappa-test.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=$key;EntityPath=hub";

# An Event Hubs stream: its worker tries to connect (there is no network, so
# it fails and retries), with every librdkafka debug context on.
$node->safe_psql('postgres',
	"SELECT kappa_create_stream('hub', eventhubs => '$conn', columns => 'a text', options => '{\"debug\": \"all\"}')");
# A Kafka stream with a SASL password, likewise.
$node->safe_psql('postgres',
	"SELECT kappa_create_stream('sasl', brokers => '127.0.0.1:1', columns => 'a text', "
	  . "options => '{\"security.protocol\": \"sasl_plaintext\", \"sasl.mechanisms\": \"PLAIN\", "
	  . "\"sasl.username\": \"u\", \"sasl.password\": \"$password\", \"debug\": \"all\"}')");

ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM kappa_workers WHERE failures >= 1"),
	'both workers tried and failed to connect');
ok(log_contains($node, qr/kappa: librdkafka: /), 'librdkafka logged through the server log');

# Failing statements that carry the secrets.
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT kappa_create_stream('hub', eventhubs => '$conn', columns => 'a text')");
like($err, qr/stream "hub" already exists/, 'a duplicate stream fails');
($ret, $out, $err) = $node->psql('postgres',
	"SELECT kappa_create_stream('bad', eventhubs => '$conn', columns => 'a nosuchtype')");
like($err, qr/type "nosuchtype" does not exist/, 'a bad column type fails');
($ret, $out, $err) = $node->psql('postgres',
	"SELECT kappa_create_stream('bad2', brokers => '127.0.0.1:1', columns => 'a text', "
	  . "options => '{\"sasl.password\": \"$password\", \"fetch.max.bytes\": \"lots\"}')");
like($err, qr/invalid librdkafka setting "fetch.max.bytes"/, 'a bad option beside a password fails');
unlike($err, qr/\Q$password\E/, 'and the error does not show the password');

# The statements and errors were logged, but never a secret.
ok(log_contains($node, qr/stream "hub" already exists/), 'the errors were logged');
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$key\E/, 'the Event Hubs key is nowhere in the log');
unlike($log, qr/\Q$password\E/, 'the SASL password is nowhere in the log');

$node->stop;
done_testing();
