--
-- stream_errors: every way kappa_create_stream and kappa_drop_stream refuse
-- bad input, with the exact SQLSTATE, message, detail and hint.  Nothing
-- here may leave a row behind, and no injected statement may run.
--
\getenv broker KAPPA_BROKER
\x on

CREATE TABLE y (i int);

-- stream names
SELECT * FROM expect_error($$SELECT kappa_create_stream('x; DROP TABLE y', brokers => '127.0.0.1:9092', columns => 'a int')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('x''; DROP TABLE y; --', brokers => '127.0.0.1:9092', columns => 'a int')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('"quoted"', brokers => '127.0.0.1:9092', columns => 'a int')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('Telemetry', brokers => '127.0.0.1:9092', columns => 'a int')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('', brokers => '127.0.0.1:9092', columns => 'a int')$$);
SELECT * FROM expect_error(format($$SELECT kappa_create_stream(%L, brokers => '127.0.0.1:9092', columns => 'a int')$$, repeat('n', 64)));
SELECT * FROM expect_error($$SELECT kappa_create_stream(NULL, brokers => '127.0.0.1:9092', columns => 'a int')$$);

-- column lists
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => '')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a int,, b text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a int, a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a int, "A" text, A text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a nosuchtype')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a int[]')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a record')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a int4range')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a pg_class')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'select int')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'xmin int')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'kafka_offset int8')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => '1a int')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => '"" int')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => '"open int')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a numeric(10,2')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a int); DROP TABLE y; --')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a int; DROP TABLE y')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text DEFAULT 1')$$);
SELECT * FROM expect_error(format($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => %L)$$, repeat('c', 64) || ' int'));

-- event_time, dedup_key, time_unit, intervals, archive
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', event_time => 'a')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', event_time => 'b')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a timestamptz', event_time => 'a b')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', dedup_key => 'nope')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', time_unit => 'ns')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', watermark => '-1 second')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', watermark => '1 month')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', watermark => '2147483647 days')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', idle_timeout => '0')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', archive => 'relative/dir')$$);

-- paths
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', paths => '["a"]')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', paths => '{"b": "x"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', paths => '{"a": 1}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', paths => '{"a": []}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', paths => '{"a": ["x", 2]}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', paths => '{"a": "data..x"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', paths => '{"a": ".x"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', paths => '{"a": {"x": 1}}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', paths => 'not json')$$);

-- brokers, eventhubs, topics
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', eventhubs => 'Endpoint=sb://n.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=h', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => 'localhost', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => 'localhost:0', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => 'localhost:65536', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => 'a:1,,b:2', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => 'PLAINTEXT://a:9092', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => 'a:9092; DROP TABLE y', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '[::1:9092', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', topic => 'bad topic', columns => 'a text')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', topic => '..', columns => 'a text')$$);
SELECT * FROM expect_error(format($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', topic => %L, columns => 'a text')$$, repeat('t', 250)));

-- librdkafka options: checked by librdkafka itself, and by kappa's rules
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', options => '{"no.such.property": "1"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', options => '{"fetch.max.bytes": "lots"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', options => '{"security.protocol": "carrier-pigeon"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', options => '{"security.protocol": "sasl_plaintext", "sasl.mechanisms": "NOPE", "sasl.password": "hunter2"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', options => '{"bootstrap.servers": "evil:9092"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', options => '{"internal.termination.signal": "15"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', options => '{"enable.auto.commit": "true"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', options => '{"dr_msg_cb": "x"}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', options => '{"fetch.max.bytes": null}')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('s', brokers => '127.0.0.1:9092', columns => 'a text', options => '[1]')$$);

-- duplicates, and dropping what is not there
SELECT kappa_create_stream('dup', brokers => :'broker', columns => 'a text');
SELECT * FROM expect_error($$SELECT kappa_create_stream('dup', brokers => '127.0.0.1:9092', columns => 'b int')$$);
SELECT kappa_drop_stream('dup');
SELECT * FROM expect_error($$SELECT kappa_drop_stream('dup')$$);
SELECT * FROM expect_error($$SELECT kappa_drop_stream('x; DROP TABLE y')$$);

\x off
-- Nothing was created, and the injected statements never ran.
SELECT count(*) AS streams FROM kappa.streams;
SELECT count(*) AS columns FROM kappa.stream_columns;
SELECT count(*) AS secrets FROM kappa.stream_secrets;
SELECT count(*) AS y_rows FROM y;
DROP TABLE y;
