--
-- produce: kappa_produce appends events to a stream's topic on the
-- embedded broker, kappa_peek reads them back, and broker trouble is a
-- clear error within kappa.broker_timeout, never a hang.
--
-- Offsets depend on what the topic held before (the broker outlives one
-- run), so the checks are relative: the oracle is what this test produced,
-- and each payload carries a nonce of this run.
--
\getenv broker KAPPA_BROKER
SELECT kappa_create_stream('regress', brokers => :'broker',
	columns => 'n int, word text');

-- Five events with one key land in one partition, at consecutive offsets.
-- (LATERAL: "(f()).*" would call the function once per output column.)
SELECT md5(random()::text) AS nonce \gset
CREATE TEMP TABLE produced AS
SELECT i, e.payload, p.partition, p."offset"
FROM generate_series(1, 5) i,
	LATERAL (SELECT format('{"n": %s, "run": "%s"}', i, :'nonce') AS payload) e,
	LATERAL kappa_produce('regress', e.payload, 'key-1') p;
SELECT count(DISTINCT partition) AS partitions,
	max("offset") - min("offset") AS offset_span,
	bool_and("offset" >= 0) AS offsets_valid
FROM produced;

-- kappa_peek returns exactly them: same partitions, offsets, keys, payloads.
SELECT d.i, p.partition = d.partition AND p."offset" = d."offset" AS same_place,
	p.key, p.raw = convert_to(d.payload, 'UTF8') AS same_bytes,
	p."timestamp" BETWEEN now() - interval '1 hour' AND clock_timestamp() AS recent
FROM kappa_peek('regress', 5) p JOIN produced d USING (payload)
ORDER BY d.i;
SELECT count(*) AS peeked FROM kappa_peek('regress', 5);

-- Another key may go to another partition, but the same key always to the
-- same one (librdkafka's default partitioner hashes the key).
SELECT count(DISTINCT partition) AS partitions_for_one_key
FROM (SELECT (kappa_produce('regress', 'x', 'key-2')).partition FROM generate_series(1, 3)) s;

-- Bytes that are not text are produced as they are; peek shows them raw.
SELECT (kappa_produce('regress', '\xff00fe'::bytea, '\x01'::bytea)).partition >= 0 AS produced_bytes;
SELECT payload IS NULL AS not_text, raw, key IS NULL AS key_not_text
FROM kappa_peek('regress', 1);

-- A null payload is a tombstone, and an empty one is an empty message.
SELECT (kappa_produce('regress', NULL::text, 'gone')).partition >= 0 AS produced_tombstone;
SELECT key, payload, raw FROM kappa_peek('regress', 1);
SELECT (kappa_produce('regress', '', 'empty')).partition >= 0 AS produced_empty;
SELECT key, payload, raw FROM kappa_peek('regress', 1);

-- Errors: unknown stream, bad n, an unreachable broker, a missing topic.
\x on
SELECT * FROM expect_error($$SELECT kappa_produce('nope', '{}')$$);
SELECT * FROM expect_error($$SELECT kappa_produce(NULL, '{}')$$);
SELECT * FROM expect_error($$SELECT * FROM kappa_peek('nope', 1)$$);
SELECT * FROM expect_error($$SELECT * FROM kappa_peek('regress', 0)$$);
SELECT * FROM expect_error($$SELECT * FROM kappa_peek('regress', 10001)$$);

SET kappa.broker_timeout = '3s';
SELECT kappa_create_stream('unreachable', brokers => '127.0.0.1:1', columns => 'a text');
SELECT code, message, hint FROM expect_error($$SELECT kappa_produce('unreachable', '{}')$$);
SELECT code, message, hint FROM expect_error($$SELECT * FROM kappa_peek('unreachable', 1)$$);

SELECT kappa_create_stream('no_topic', brokers => :'broker', topic => 'no-such-topic', columns => 'a text');
SELECT code, message, hint FROM expect_error($$SELECT kappa_produce('no_topic', '{}')$$);
SELECT code, message, hint FROM expect_error($$SELECT * FROM kappa_peek('no_topic', 1)$$);
\x off

-- Each failed within the timeout: no call took longer than it allows.
SELECT clock_timestamp() - statement_timestamp() < interval '3s' AS quick
FROM expect_error($$SELECT kappa_produce('unreachable', '{}')$$);
RESET kappa.broker_timeout;

SELECT kappa_drop_stream('no_topic');
SELECT kappa_drop_stream('unreachable');
SELECT kappa_drop_stream('regress');
