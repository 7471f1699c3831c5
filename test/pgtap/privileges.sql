-- Who may do what: kappa_admin defines streams, owners drop them, nobody
-- else reads secrets, and every admin function is closed to PUBLIC.
BEGIN;
SELECT plan(44);

CREATE ROLE kappa_tap_alice LOGIN;
CREATE ROLE kappa_tap_bob LOGIN;
CREATE ROLE kappa_tap_mallory LOGIN;
GRANT kappa_admin TO kappa_tap_alice, kappa_tap_bob;

-- Closed to PUBLIC: only kappa_admin (and superusers) may call these.
SELECT ok(NOT has_function_privilege('kappa_tap_mallory', p.oid, 'EXECUTE'),
		  format('%s is not executable by an ordinary role', p.oid::regprocedure))
FROM pg_proc p
WHERE p.proname IN ('kappa_create_stream', 'kappa_alter_stream', 'kappa_drop_stream', 'kappa_produce', 'kappa_peek',
					 'kappa_feed', 'kappa_check', 'kappa_archive_read', 'kappa_replay',
					 'kappa_archive_register', 'kappa_compare', 'kappa_promote',
					 'kappa_retry_dead_letters')
ORDER BY p.oid::regprocedure::text;

SET ROLE kappa_tap_mallory;
SELECT throws_ok(
	$$SELECT kappa_create_stream('m1', brokers => '127.0.0.1:9092', columns => 'a text')$$,
	'42501', 'permission denied for function kappa_create_stream',
	'an ordinary role cannot create a stream');
RESET ROLE;

-- A member of kappa_admin can, and becomes the owner.
SET ROLE kappa_tap_alice;
SELECT lives_ok(
	$$SELECT kappa_create_stream('alice_s', brokers => '127.0.0.1:9092', columns => 'a text',
		options => '{"sasl.password": "alice-secret", "sasl.username": "alice"}')$$,
	'a kappa_admin member can create a stream');
SELECT is((SELECT owner::text FROM kappa_streams WHERE name = 'alice_s'), 'kappa_tap_alice',
		  'the creating role owns the stream');
-- The owner reads her own raw secret row.
SELECT is((SELECT settings->>'sasl.password' FROM kappa.stream_secrets s
		   JOIN kappa.streams USING (stream_id) WHERE name = 'alice_s'),
		  'alice-secret', 'the owner can read the raw secret row');
RESET ROLE;

-- Another admin sees the stream, but masked, and not the secret row.
SET ROLE kappa_tap_bob;
SELECT is((SELECT options->>'sasl.password' FROM kappa_streams WHERE name = 'alice_s'),
		  '********', 'kappa_streams masks secrets for other roles');
SELECT is((SELECT options->>'sasl.username' FROM kappa_streams WHERE name = 'alice_s'),
		  'alice', 'non-secret settings are shown');
SELECT is((SELECT count(*) FROM kappa.stream_secrets)::int, 0,
		  'another admin cannot read the secret row');
SELECT is((SELECT value FROM kappa_stream_settings('alice_s') WHERE setting = 'sasl.password'),
		  '********', 'kappa_stream_settings masks secrets');
SELECT throws_ok($$SELECT kappa_drop_stream('alice_s')$$,
	'42501', 'must be owner of stream "alice_s"',
	'another admin cannot drop the stream');
SELECT throws_ok($$SELECT kappa_alter_stream('alice_s', options => '{"sasl.password": "bob-secret"}')$$,
	'42501', 'must be owner of stream "alice_s"',
	'another admin cannot alter the stream');
SELECT throws_ok($$SELECT kappa_produce('alice_s', 'x')$$,
	'42501', 'must be owner of stream "alice_s"',
	'another admin cannot produce with the owner''s credentials');
SELECT throws_ok($$SELECT * FROM kappa_peek('alice_s', 1)$$,
	'42501', 'must be owner of stream "alice_s"',
	'another admin cannot read the topic with the owner''s credentials');
SELECT throws_ok($$SELECT * FROM kappa_feed('alice_s', 'pg_class')$$,
	'42501', 'must be owner of stream "alice_s"',
	'another admin cannot feed the stream''s views');

-- Settings that run code or read server files, and archives, need the
-- rights the stream's worker would use them with.
SELECT throws_ok($$SELECT kappa_create_stream('bad', brokers => '127.0.0.1:9092', columns => 'a text',
	options => '{"security.protocol": "sasl_plaintext", "sasl.mechanisms": "GSSAPI", "sasl.kerberos.principal": "x; id > /tmp/pwned #"}')$$,
	'42501', 'must be superuser to set librdkafka setting "sasl.kerberos.principal"',
	'a non-superuser cannot set Kerberos settings (kinit runs a command line built from them)');
SELECT throws_ok($$SELECT kappa_create_stream('bad', brokers => '127.0.0.1:9092', columns => 'a text',
	options => '{"plugin.library.paths": "/tmp/evil.so"}')$$,
	'42501', 'must be superuser to set librdkafka setting "plugin.library.paths"',
	'a non-superuser cannot load plugins');
SELECT throws_ok($$SELECT kappa_create_stream('bad', brokers => '127.0.0.1:9092', columns => 'a text',
	options => '{"ssl.engine.location": "/tmp/evil.so"}')$$,
	'42501', 'must be superuser to set librdkafka setting "ssl.engine.location"',
	'a non-superuser cannot load OpenSSL engines');
SELECT throws_ok($$SELECT kappa_create_stream('bad', brokers => '127.0.0.1:9092', columns => 'a text',
	options => '{"ssl.ca.location": "/etc/shadow"}')$$,
	'42501', 'must be superuser or a member of pg_read_server_files to set librdkafka setting "ssl.ca.location"',
	'a non-superuser cannot make the server read its files');
SELECT throws_ok($$SELECT kappa_create_stream('bad', brokers => '127.0.0.1:9092', columns => 'a text',
	archive => '/tmp/anywhere')$$,
	'42501', 'must be superuser or a member of pg_write_server_files to archive a stream',
	'a non-superuser cannot make the server write files');
SELECT is((SELECT count(*) FROM kappa_streams WHERE name = 'bad')::int, 0, 'none of those was created');
SELECT throws_ok($$DELETE FROM kappa.streams$$, '42501', NULL,
	'the catalog cannot be written directly');
SELECT throws_ok($$INSERT INTO kappa.stream_secrets VALUES (1, 1, '{}')$$, '42501', NULL,
	'the secrets table cannot be written directly');
RESET ROLE;

-- An ordinary role sees definitions, never secrets.
SET ROLE kappa_tap_mallory;
SELECT is((SELECT count(*) FROM kappa_streams WHERE name = 'alice_s')::int, 1,
		  'every role can list streams');
SELECT throws_ok($$SELECT * FROM kappa.stream_secrets$$, '42501', NULL,
	'an ordinary role cannot read the secrets table at all');
SELECT is((SELECT count(*) FROM kappa_workers)::int >= 0, true,
		  'every role can read kappa_workers');
RESET ROLE;

-- The owner can drop; so can a superuser.
SET ROLE kappa_tap_alice;
SELECT lives_ok($$SELECT kappa_drop_stream('alice_s')$$, 'the owner can drop her stream');
RESET ROLE;
SET ROLE kappa_tap_bob;
SELECT lives_ok($$SELECT kappa_create_stream('bob_s', brokers => '127.0.0.1:9092', columns => 'a text')$$,
	'bob creates a stream');
RESET ROLE;
SELECT lives_ok($$SELECT kappa_drop_stream('bob_s')$$, 'a superuser can drop any stream');
SELECT is((SELECT count(*) FROM kappa.stream_secrets)::int, 0, 'dropping removes the secrets');

-- Types in a column list resolve on the caller's search_path, as in
-- CREATE TABLE, although the catalog is written as the superuser.
CREATE SCHEMA kappa_tap_types;
CREATE TYPE kappa_tap_types.level AS ENUM ('low', 'high');
GRANT USAGE ON SCHEMA kappa_tap_types TO kappa_tap_alice;
SET ROLE kappa_tap_alice;
SET search_path = kappa_tap_types, public;
SELECT lives_ok($$SELECT kappa_create_stream('typed_s', brokers => '127.0.0.1:9092', columns => 'l level')$$,
	'a type on the caller''s search_path resolves');
RESET search_path;
SELECT is((SELECT columns FROM kappa_streams WHERE name = 'typed_s'), 'l kappa_tap_types.level',
		  'and is stored by its identity');
SELECT kappa_drop_stream('typed_s');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
