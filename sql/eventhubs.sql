--
-- eventhubs: an Event Hubs connection string becomes the Kafka settings
-- Event Hubs documents for its Kafka endpoint (port 9093, SASL_SSL, PLAIN,
-- user "$ConnectionString", the whole string as password), and its secret
-- never shows: not in kappa_streams, not in settings, not in errors.
--
\x on

SELECT kappa_create_stream('hub',
	eventhubs => 'Endpoint=sb://kappa-ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=c2VjcmV0+a2V5/w==;EntityPath=telemetry-hub',
	columns => 'deviceId text, temperature float8');

-- The topic comes from EntityPath; the key is masked.
SELECT name, topic, brokers, eventhubs, options FROM kappa_streams WHERE name = 'hub';
SELECT setting, value FROM kappa_stream_settings('hub') ORDER BY setting;

-- The owner (here a superuser) can read the secret row: the whole string.
SELECT settings->>'sasl.password' AS password FROM kappa.stream_secrets
JOIN kappa.streams USING (stream_id) WHERE name = 'hub';

-- An explicit topic wins over EntityPath; parts may come in any order and
-- any case, and the key may contain '=' and '/'.
SELECT kappa_create_stream('hub2', topic => 'other-hub',
	eventhubs => 'sharedaccesskey=k/e=y=;ENDPOINT=sb://ns2.servicebus.windows.net;SharedAccessKeyName=listen;EntityPath=ignored',
	columns => 'a text');
SELECT name, topic, brokers, eventhubs FROM kappa_streams WHERE name = 'hub2';

-- Without EntityPath the topic must be given.
SELECT kappa_create_stream('hub3', topic => 'hub-three',
	eventhubs => 'Endpoint=sb://ns3.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abc',
	columns => 'a text');
SELECT name, topic, brokers, eventhubs FROM kappa_streams WHERE name = 'hub3';

-- Malformed strings: each error names the missing part, never the secret.
SELECT * FROM expect_error($$SELECT kappa_create_stream('bad', columns => 'a text',
	eventhubs => 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;EntityPath=h')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('bad', columns => 'a text',
	eventhubs => 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=TOPSECRET;EntityPath=h')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('bad', columns => 'a text',
	eventhubs => 'SharedAccessKeyName=k;SharedAccessKey=TOPSECRET;EntityPath=h')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('bad', columns => 'a text',
	eventhubs => 'Endpoint=https://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('bad', columns => 'a text',
	eventhubs => 'Endpoint=sb://;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('bad', columns => 'a text',
	eventhubs => 'Endpoint=sb://ns.servicebus.windows.net/path;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('bad', columns => 'a text',
	eventhubs => 'TOPSECRET')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('bad', columns => 'a text',
	eventhubs => 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET')$$);
SELECT * FROM expect_error($$SELECT kappa_create_stream('bad', columns => 'a text',
	eventhubs => 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET;EntityPath=h',
	options => '{"sasl.password": 1, "fetch.wait.max.ms": "soon"}')$$);

\x off
-- A secret quoted in librdkafka's own complaint is masked too: here the
-- password also appears as the (invalid) value of another setting.
SELECT message, detail FROM expect_error($$SELECT kappa_create_stream('bad', brokers => '127.0.0.1:9092', columns => 'a text',
	options => '{"sasl.password": "plaintext-pigeon", "security.protocol": "plaintext-pigeon"}')$$);
SELECT message, detail FROM expect_error($$SELECT kappa_create_stream('bad', columns => 'a text',
	eventhubs => 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=K;EntityPath=h',
	options => '{"security.protocol": "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=K;EntityPath=h"}')$$);

SELECT name FROM kappa_streams ORDER BY name;
SELECT kappa_drop_stream('hub');
SELECT kappa_drop_stream('hub2');
SELECT kappa_drop_stream('hub3');
SELECT count(*) AS secrets_left FROM kappa.stream_secrets;
