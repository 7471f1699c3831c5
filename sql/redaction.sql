--
-- redaction: what kappa's log hook makes of texts that hold secrets.  The
-- oracle is written by hand: each secret becomes ********, nothing else
-- changes.
--
SELECT kappa.redact(t) FROM (VALUES
	-- Event Hubs connection strings, as literals, in any case
	($$SELECT kappa_create_stream('h', eventhubs => 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=abc+/def=;EntityPath=hub')$$),
	('endpoint=sb://ns/;sharedaccesskey=K3Y;entitypath=h'),
	('SharedAccessKey=at-the-end'),
	-- a shared access signature
	('SharedAccessSignature=SharedAccessSignature sr=ns&sig=S1GNATURE%3D&se=1&skn=Root'),
	-- JSON options, compact, spaced, escaped, and several at once
	($$options => '{"sasl.password": "hunter2", "sasl.username": "bob"}'$$),
	($${"sasl.password":"hunter2","ssl.key.password" : "k3y"}$$),
	($${\"sasl.password\": \"hunter2\"}$$),
	($${"sasl.oauthbearer.client.secret": "s3cret", "fetch.max.bytes": "100"}$$),
	-- an escaped quote inside a secret does not end it early
	($${"sasl.password": "a\"b", "x": "y"}$$),
	-- jsonb_build_object arguments
	($$jsonb_build_object('sasl.password', 'hunter2', 'debug', 'all')$$),
	-- a connection string inside a JSON value
	($${"note": "Endpoint=sb://x/;SharedAccessKey=IN-JSON;"}$$),
	-- an unterminated string at the end of the text
	($${"sasl.password": "unterminated$$),
	-- nothing secret: unchanged
	('fetch.max.bytes = 52428800, "debug": "all"'),
	('SharedAccessKeyName=Root;no key here')
) AS v(t);
