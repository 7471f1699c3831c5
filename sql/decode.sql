--
-- decode: what a stream's worker makes of a payload (kappa.decode): typed
-- columns, or the reason it would be dead-lettered.
--
-- Oracles: Postgres's own input functions and casts (s::float8::text,
-- s::timestamptz, jsonb), to_timestamp(), and values worked out by hand.
-- No broker is contacted: decoding needs only the stream's definition.
--
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, MDY';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;
\set VERBOSITY terse

-- d(stream, payload): decode a payload given as text (its UTF-8 bytes).
CREATE FUNCTION d(stream text, payload text,
	OUT ok boolean, OUT reason text, OUT "values" jsonb)
LANGUAGE sql AS $$
	SELECT ok, reason, "values" FROM kappa.decode(stream, convert_to(payload, 'UTF8'))
$$;

-- The demo's stream.
SELECT kappa_create_stream('dec_telemetry', brokers => '127.0.0.1:9092',
	columns => 'eventId text NOT NULL, deviceId text NOT NULL, userId text,
	            eventType text, eventTimestamp timestamptz NOT NULL,
	            temperature float8, humidity float8, pressure float8,
	            metadata jsonb',
	paths => '{"temperature": ["data.temperature", "data.temp"],
	           "humidity": "data.humidity", "pressure": "data.pressure"}',
	event_time => 'eventTimestamp');

-- A normal event: every column, in its type's output form.
SELECT ok, reason, jsonb_pretty("values") FROM d('dec_telemetry',
	'{"eventId":"6f1c2a9e-8d4b-4f3a-9c1e-2b7d5e8a4f60","deviceId":"device_042",'
	'"userId":"user_017","eventType":"reading",'
	'"eventTimestamp":"2026-11-25T14:46:44.976Z",'
	'"data":{"temperature":23.5,"humidity":51.2,"pressure":1003.4},'
	'"metadata":{"firmware":"1.2"}}');

-- The values object is keyed by the columns' SQL names.
-- Paths: the first alternative present wins, even when it is null; a
-- missing optional field is null; keys elsewhere are ignored.
SELECT ok, reason, "values"->>'temperature' AS temperature
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":{"temp":19.25}}');
SELECT ok, reason, "values"->>'temperature' AS temperature
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":{"temp":19.25,"temperature":20}}');
SELECT ok, reason, "values"->>'temperature' AS temperature
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":{"temperature":null,"temp":19.25}}');
SELECT ok, reason, "values"
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"temperature":1,"other":{"data":{"temperature":2}},"list":[{"a":[1,2,{"b":null}]}]}');
-- ... a path through something that is not an object does not exist
SELECT ok, reason, "values"->>'temperature' AS temperature, "values"->>'humidity' AS humidity
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":[{"temperature":1}]}');
SELECT ok, reason, "values"->>'temperature' AS temperature
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":"temperature"}');

-- NOT NULL columns: missing (named by their first path) or null.
SELECT ok, reason, "values" FROM d('dec_telemetry',
	'{"eventId":"e","eventTimestamp":"2024-01-05T10:00:00Z"}');
SELECT ok, reason, "values" FROM d('dec_telemetry',
	'{"eventId":"e","deviceId":null,"eventTimestamp":"2024-01-05T10:00:00Z"}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d"}');
SELECT ok, reason FROM d('dec_telemetry', '{}');
-- JSON null in an optional column is SQL null
SELECT ok, reason, "values"->'userid' AS userid, "values"->'metadata' AS metadata
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"userId":null,"metadata":null}');

-- jsonb takes any JSON value whole: object, array, string, number.
SELECT "values"->>'metadata' AS metadata,
	("values"->>'metadata')::jsonb = '{"fw": {"v": [1, 2.50, "x"]}, "ok": true}'::jsonb AS same
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"metadata": {"fw" : {"v":[1,2.50,"x"]}, "ok":true} }');
SELECT m, (SELECT "values"->>'metadata' FROM d('dec_telemetry',
	'{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z","metadata":' || m || '}')) AS metadata
FROM unnest(ARRAY['[1, [2, []], {}]', '"text \"quoted\" \u00e9"', '12.50', 'true', '{}']) m;

-- Numbers as strings and strings as numbers; booleans to text.
SELECT ok, reason, "values"->>'temperature' AS temperature, "values"->>'eventtype' AS eventtype,
	"values"->>'userid' AS userid
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":{"temperature":"21.5"},"eventType":1.50e3,"userId":true}');
-- but no container into a scalar, no boolean into a number
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":{"temperature":{"c":21.5}}}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":{"temperature":[21.5]}}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":{"temperature":true}}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":{"id":1},"deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z"}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":true}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":{"temperature":"abc"}}');

-- Duplicate keys: the last one wins, as in jsonb, at every level.
SELECT "values"->>'deviceid' AS deviceid,
	'{"deviceId":"d1","deviceId":"d2"}'::jsonb->>'deviceId' AS jsonb_says
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d1","eventTimestamp":"2024-01-05T10:00:00Z","deviceId":"d2"}');
SELECT "values"->>'temperature' AS temperature, "values"->>'humidity' AS humidity
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":{"temperature":1,"humidity":2},"data":{"humidity":3}}');
SELECT "values"->>'temperature' AS temperature
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"data":{"temperature":1},"data":5}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"deviceId":null}');

-- Escapes, in keys too; a lone surrogate is invalid JSON, \u0000 cannot be
-- text (but is fine where nobody reads it).
SELECT ok, reason, "values"->>'userid' = E'a\nb"c\\/\u00e9\t\U0001F600' AS same, "values"->>'userid' AS userid
FROM d('dec_telemetry', '{"eventId":"e","\u0064eviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"userId":"a\nb\"c\\\/\u00e9\t\ud83d\ude00"}');
SELECT ok, reason, "values"->>'userid' AS userid
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"userId":"ümlaut 😀 \u00FC\uD83D\uDE00"}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"userId":"\ud83d"}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"other":"x\ude00y"}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"other":"\ud83d\u0041"}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"userId":"a\u0000b"}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"other":"a\u0000b"}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"metadata":{"k":"a\u0000b"}}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"other":"\x41"}');
SELECT ok, reason FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"other":"\u12G4"}');
SELECT ok, reason FROM d('dec_telemetry', E'{"eventId":"e","deviceId":"d\tx","eventTimestamp":"2024-01-05T10:00:00Z"}');

-- Payloads that are not a JSON object, or not JSON, or not UTF-8.
CREATE TEMP TABLE bad_payloads (n serial, payload bytea);
INSERT INTO bad_payloads (payload) VALUES
	(''::bytea),
	(convert_to(E'  \n\t ', 'UTF8')),
	('\xff'::bytea),
	('\x7b2261223a22ff227d'::bytea),			-- {"a":"<ff>"}
	('\x7b2261223a22c0af227d'::bytea),			-- an overlong "/"
	('\x7b2261223a22eda080227d'::bytea),		-- a surrogate, UTF-8 encoded
	('\x7b7d00'::bytea),						-- {} and a NUL byte
	(convert_to('[{"eventId":"e"}]', 'UTF8')),
	(convert_to('"a string"', 'UTF8')),
	(convert_to(' 42 ', 'UTF8')),
	(convert_to('null', 'UTF8')),
	(convert_to('true', 'UTF8')),
	(convert_to('{"eventId":"e"', 'UTF8')),
	(convert_to('{"eventId":"e', 'UTF8')),
	(convert_to('{"eventId":', 'UTF8')),
	(convert_to('{"eventId"', 'UTF8')),
	(convert_to('{', 'UTF8')),
	(convert_to('{"a":"\', 'UTF8')),
	(convert_to('{"a":"\u12', 'UTF8')),
	(convert_to('{} x', 'UTF8')),
	(convert_to('{}{}', 'UTF8')),
	(convert_to('[1] x', 'UTF8')),
	(convert_to('{"a":1,}', 'UTF8')),
	(convert_to('{"a":[1,]}', 'UTF8')),
	(convert_to('{,}', 'UTF8')),
	(convert_to('{"a" 1}', 'UTF8')),
	(convert_to('{"a":1 "b":2}', 'UTF8')),
	(convert_to('{"a":[1 2]}', 'UTF8')),
	(convert_to('{"a":1]', 'UTF8')),
	(convert_to('{a:1}', 'UTF8')),
	(convert_to('{''a'':1}', 'UTF8')),
	(convert_to('{"a":NaN}', 'UTF8')),
	(convert_to('{"a":Infinity}', 'UTF8')),
	(convert_to('{"a":-Infinity}', 'UTF8')),
	(convert_to('{"a":01}', 'UTF8')),
	(convert_to('{"a":-}', 'UTF8')),
	(convert_to('{"a":1.}', 'UTF8')),
	(convert_to('{"a":.5}', 'UTF8')),
	(convert_to('{"a":1e}', 'UTF8')),
	(convert_to('{"a":1.5.2}', 'UTF8')),
	(convert_to('{"a":0x10}', 'UTF8')),
	(convert_to('{"a":+1}', 'UTF8')),
	(convert_to('{"a":tru}', 'UTF8')),
	(convert_to('{"a":nul}', 'UTF8')),
	(convert_to('{"a":truex}', 'UTF8')),
	(convert_to('{"a":True}', 'UTF8')),
	(convert_to('{/* c */}', 'UTF8')),
	(convert_to(E'{"a":"line\nbreak"}', 'UTF8')),
	(convert_to(E'\xEF\xBB\xBF{}', 'UTF8'));		-- a byte order mark
SELECT n, r.ok, r.reason FROM bad_payloads, kappa.decode('dec_telemetry', payload) r ORDER BY n;

-- The same, where the stream wants nothing at the bad spot: scanning
-- validates what it skips.
SELECT kappa_create_stream('dec_loose', brokers => '127.0.0.1:9092', columns => 'a text, b int4');
SELECT n, r.ok, r.reason FROM bad_payloads, kappa.decode('dec_loose', payload) r
WHERE n > 3 ORDER BY n;
SELECT ok, reason, "values" FROM d('dec_loose', E' \r\n\t{ "b" : -7 , "a" : "x" } \n');
SELECT ok, reason, "values" FROM d('dec_loose', '{"x":[{"y":[true,false,null,-0.5e-3,"\"]}"]}],"a":"A"}');

-- Thousands of payloads mutated at random: the decoder accepts a payload
-- as JSON exactly when jsonb_in does (then fails it on its fields, or not),
-- and says "not UTF-8" exactly when convert_from does, but for NUL bytes,
-- which are UTF-8 and no JSON.
CREATE FUNCTION jsonb_says(b bytea) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN CASE WHEN jsonb_typeof(convert_from(b, 'UTF8')::jsonb) = 'object' THEN 'object' ELSE 'not an object' END;
EXCEPTION
	WHEN character_not_in_repertoire THEN RETURN 'not UTF-8';
	WHEN invalid_text_representation THEN RETURN 'invalid';
END
$$;
SELECT setseed(0.75);
CREATE TEMP TABLE mutants AS
SELECT overlay(p placing decode(lpad(to_hex(CASE WHEN random() < 0.5 THEN (random() * 255)::int
		ELSE ascii(substr(' {}[]",:\/0123456789eE.-+tfnrua', (random() * 30)::int + 1, 1)) END), 2, '0'), 'hex')
	from (random() * length(p))::int + 1 for (random() * 2)::int) AS m
FROM (SELECT convert_to('{"eventId":"é1","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
		'"data":{"temperature":21.5,"humidity":[1,-2.5e3,{"x":null}]},"x":"\u00e9\n😀","userId":true}', 'UTF8') AS p) b,
	generate_series(1, 5000) i;
SELECT jsonb_says(m) AS jsonb_says,
	CASE WHEN r.reason LIKE 'payload is not valid UTF-8%' THEN 'not UTF-8'
		WHEN r.reason LIKE 'payload is %' THEN 'not an object'
		WHEN r.reason LIKE 'invalid JSON%' THEN 'invalid'
		ELSE 'object' END AS decoder_says,
	position('\x00'::bytea in m) > 0 AS nul, count(*)
FROM mutants, kappa.decode('dec_telemetry', m) r
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

-- Nesting: 64 levels are fine, 65 are too many, wherever they are.
SELECT ok, reason FROM d('dec_loose', '{"x":' || repeat('[', 63) || repeat(']', 63) || '}');
SELECT ok, reason FROM d('dec_loose', '{"x":' || repeat('[', 64) || repeat(']', 64) || '}');
SELECT ok, reason FROM d('dec_loose', repeat('{"a":', 64) || '1' || repeat('}', 64));
SELECT ok, reason FROM d('dec_loose', repeat('{"a":', 65) || '1' || repeat('}', 65));
SELECT ok, reason FROM d('dec_loose', '{"x":' || repeat('[', 100000));
SELECT ok, reason, length("values"->>'metadata') AS metadata_length
FROM d('dec_telemetry', '{"eventId":"e","deviceId":"d","eventTimestamp":"2024-01-05T10:00:00Z",'
	'"metadata":' || repeat('[', 63) || repeat(']', 63) || '}');

-- Size: kappa.max_payload (10 MB here) is the limit, as in the worker.
SHOW kappa.max_payload;
SELECT ok, reason FROM d('dec_loose', '{"a":"' || repeat('x', 10485760 - 8) || '"}');
SELECT ok, reason FROM d('dec_loose', '{"a":"' || repeat('x', 10485760 - 7) || '"}');

-- A wanted object may hold wanted keys; the last of duplicate keys wins
-- at every depth, as jsonb says.
SELECT kappa_create_stream('dec_nested', brokers => '127.0.0.1:9092',
	columns => 'data jsonb, t float8, deep text', paths => '{"t": "data.t", "deep": "a.b.c.d"}');
SELECT p, r.ok, r."values", r."values"->>'deep' IS NOT DISTINCT FROM p::jsonb #>> '{a,b,c,d}' AS deep_as_jsonb
FROM unnest(ARRAY['{"data":{"t":1,"u":[1]}}', '{"data":{"t":1},"data":{"u":2}}', '{"data":{"t":1,"t":2.5}}',
	'{"data":{"u":{"t":1}}}', '{"a":{"b":{"c":{"d":"x"}}}}', '{"a":{"b":{"c":{"d":"x"}},"b":{}}}',
	'{"a":{"b":{"c":{"d":"x","d":"y"}}}}', '{"a":{"b":{"c":{"d":"x"}}},"a":{"b":{"c":{"e":1}}}}',
	'{"a":{"b":[{"c":{"d":"x"}}]}}']) p,
	d('dec_nested', p) r;

-- Many columns: the top-level keys are found through a hash table.
SELECT kappa_create_stream('dec_wide', brokers => '127.0.0.1:9092',
	columns => (SELECT string_agg(format('c%s int4', i), ', ') FROM generate_series(1, 40) i),
	paths => '{"c40": ["deep.c40", "c40"]}');
SELECT ok, reason, (SELECT sum(value::int) FROM jsonb_each_text("values")) AS total,
	"values"->>'c1' AS c1, "values"->>'c39' AS c39, "values"->>'c40' AS c40
FROM d('dec_wide', (SELECT '{' || string_agg(format('"c%s": %s', i, i), ', ' ORDER BY i DESC) || ', "c41": 41}'
	FROM generate_series(1, 40) i));
SELECT ok, "values"->>'c40' AS c40, "values"->>'c7' AS c7
FROM d('dec_wide', '{"deep":{"c40":-40},"c40":40,"\u0063\u0037":7}');

-- Every kind of column type.
CREATE TYPE dec_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN dec_celsius AS float8 CHECK (VALUE > -273.15);
SELECT kappa_create_stream('dec_types', brokers => '127.0.0.1:9092',
	columns => 'i2 int2, i4 int4, i8 int8, n numeric, n2 numeric(5,2), f4 float4, f8 float8,
	            b bool, t text, v varchar(3), c char(3), ts timestamp, tz timestamptz,
	            j json, jb jsonb, u uuid, m dec_mood, cel dec_celsius, dt date, iv interval');

-- integers: the bounds exactly, and what int2in/int4in/int8in say
SELECT x, r.ok, r.reason, r."values"->>'i2' AS i2
FROM unnest(ARRAY['32767', '-32768', '32768', '-32769', '"12"', '" 12 "', '"+12"', '1.0', '1e2', '-0', '007']) x,
	d('dec_types', '{"i2":' || x || '}') r;
SELECT x, r.ok, r.reason, r."values"->>'i4' AS i4
FROM unnest(ARRAY['2147483647', '-2147483648', '2147483648', '-2147483649', '99999999999', '"abc"', '""', '1.5']) x,
	d('dec_types', '{"i4":' || x || '}') r;
SELECT x, r.ok, r.reason, r."values"->>'i8' AS i8
FROM unnest(ARRAY['9223372036854775807', '-9223372036854775808', '9223372036854775808',
	'-9223372036854775809', '123456789012345678', '"-9223372036854775808"', '100000000000000000000']) x,
	d('dec_types', '{"i8":' || x || '}') r;

-- numeric keeps every digit, as numeric_in does; typmods apply
SELECT x, r.ok, r.reason, r."values"->>'n' AS n, r."values"->>'n' = trim(both '"' from x)::numeric::text AS same
FROM unnest(ARRAY['123456789012345678901234567890.123456789012345678901234567890', '-0.000',
	'1e40', '"99.5"', '"NaN"', '"1e-3"']) x,
	d('dec_types', '{"n":' || x || '}') r;
SELECT x, r.ok, r.reason, r."values"->>'n2' AS n2
FROM unnest(ARRAY['123.456', '123.455', '1000', '"x"']) x,
	d('dec_types', '{"n2":' || x || '}') r;

-- floats: as float8in/float4in read them
SELECT x, r.ok, r.reason, r."values"->>'f8' AS f8,
	r."values"->>'f8' = trim(both '"' from x)::float8::text AS same
FROM unnest(ARRAY['21.5', '1e308', '-1.7976931348623157e308', '-0', '0.1', '1e-320', '4.9e-324',
	'123456789012345678901234567890', '"NaN"', '"Infinity"', '"-inf"', '" 2.5 "', '"1e2"']) x,
	d('dec_types', '{"f8":' || x || '}') r;
SELECT x, r.ok, r.reason FROM unnest(ARRAY['1e309', '-1e309', '1e-400', '"1e309"', '"abc"', '""']) x,
	d('dec_types', '{"f8":' || x || '}') r;
SELECT x, r.ok, r.reason, r."values"->>'f4' AS f4,
	r."values"->>'f4' = trim(both '"' from x)::float4::text AS same
FROM unnest(ARRAY['3.4e38', '1.5', '0.1', '-0', '1e-45', '"NaN"', '"-Infinity"']) x,
	d('dec_types', '{"f4":' || x || '}') r;
SELECT x, r.ok, r.reason FROM unnest(ARRAY['3.5e38', '-3.5e38', '1e-50', '"1e39"']) x,
	d('dec_types', '{"f4":' || x || '}') r;

-- and thousands of random numbers read as float8in and float4in read them
SELECT setseed(0.25);
CREATE TEMP TABLE floats AS
SELECT m || 'e' || ((random() * 60)::int - 30) AS x, m || 'e' || ((random() * 36)::int - 18) AS y
FROM (SELECT format('%s%s%s', CASE WHEN random() < 0.5 THEN '-' END,
		(random() * 10 ^ (random() * 17))::bigint,
		CASE WHEN random() < 0.6 THEN '.' || (random() * 10 ^ (random() * 9))::bigint END) AS m
	FROM generate_series(1, 5000)) g;
SELECT count(*) AS numbers,
	count(*) FILTER (WHERE r.ok AND r."values"->>'f8' = x::float8::text
		AND r."values"->>'f4' = y::float4::text) AS same
FROM floats, d('dec_types', format('{"f8": %s, "f4": %s}', x, y)) r;

-- booleans: true/false, or what boolin reads from a string
SELECT x, r.ok, r.reason, r."values"->>'b' AS b
FROM unnest(ARRAY['true', 'false', '"true"', '"yes"', '"off"', '" t "', '"maybe"', '1', '{}']) x,
	d('dec_types', '{"b":' || x || '}') r;

-- text, varchar(3), char(3): lengths count characters, as varcharin does
SELECT x, r.ok, r.reason, r."values"->>'t' AS t
FROM unnest(ARRAY['"plain"', '""', 'true', 'false', '12.50', '-1e-7', '[1]']) x,
	d('dec_types', '{"t":' || x || '}') r;
SELECT x, r.ok, r.reason, r."values"->>'v' AS v
FROM unnest(ARRAY['"abc"', '"ab"', '"héé"', '"😀😀😀"', '"abcd"', '"abc   "', '"h\u00e9\u00e9x"', '1234', '123', 'true', 'false']) x,
	d('dec_types', '{"v":' || x || '}') r;
SELECT x, r.ok, r.reason, r."values"->>'c' AS c
FROM unnest(ARRAY['"a"', '"abc"', '"abcd"', '"abc  "', '7', 'true']) x,
	d('dec_types', '{"c":' || x || '}') r;

-- other types: their input functions; a domain is decoded as its base
-- type, its constraint left to whoever stores the value
SELECT x, r.ok, r.reason, jsonb_strip_nulls(r."values") AS "values"
FROM unnest(ARRAY['{"u":"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}', '{"u":"not-a-uuid"}', '{"u":1}',
	'{"m":"happy"}', '{"m":"meh"}', '{"m":true}', '{"cel":-300}', '{"cel":"21.5"}',
	'{"dt":"2024-02-29"}', '{"dt":"2023-02-29"}', '{"iv":"1 day 02:00"}', '{"iv":"P1DT2H"}',
	'{"iv":3}', '{"u":null,"m":null}']) x,
	d('dec_types', x) r;
SELECT x, r.ok, r.reason, r."values"->>'j' AS j, r."values"->>'jb' AS jb
FROM unnest(ARRAY['{"j": {"b" : 1, "b":2}, "jb": {"b" : 1, "b":2}}', '{"j":"s","jb":"\u00e9"}',
	'{"j":1.50,"jb":1.50}', '{"j":[],"jb":false}']) x,
	d('dec_types', x) r;

-- Time: ISO 8601 strings, read exactly as timestamptz_in / timestamp_in
-- read them (the common forms without calling them).
SELECT s, r.ok, r."values"->>'tz' AS tz, r."values"->>'tz' = s::timestamptz::text AS same_tz,
	r."values"->>'ts' AS ts, r."values"->>'ts' = s::timestamp::text AS same_ts
FROM unnest(ARRAY['2026-11-25T14:46:44.976Z', '2024-01-05T10:00:00Z', '2024-01-05 10:00:00Z',
	'2024-01-05T10:00:00+02:00', '2024-01-05T10:00:00-05:30', '2024-01-05T10:00:00+0530',
	'2024-01-05T10:00:00+05', '2024-01-05T10:00:00.5Z', '2024-01-05T10:00:00.123456+01:00',
	'2024-01-05T23:59:59.999999-15:59', '2024-01-05T10:00:00.1234565Z', '2024-01-05T10:00:00.9999999Z',
	'2024-02-29T00:00:00Z', '2000-02-29T12:00:00Z', '0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z',
	'2024-01-05T10:00:00', '2024-01-05 10:00', '2024-01-05t10:00:00z', 'Jan 5 2024 10:00 UTC',
	'2024-01-05T24:00:00Z', '2024-01-05T23:59:60Z', '2024-01-05T10:00:00 +02:00', '20240105T100000Z']) s,
	d('dec_types', json_build_object('tz', s, 'ts', s)::text) r;
-- ... and thousands of random ones, in every fast form
CREATE TEMP TABLE times AS
SELECT to_char(t, 'YYYY-MM-DD') || CASE WHEN i % 7 = 0 THEN ' ' ELSE 'T' END || to_char(t, 'HH24:MI:SS') ||
	CASE i % 4 WHEN 0 THEN '' WHEN 1 THEN to_char(t, '.US') WHEN 2 THEN '.' || (i % 1000) ELSE '.5' END ||
	CASE i % 6 WHEN 0 THEN 'Z' WHEN 1 THEN '+05:30' WHEN 2 THEN '-0800' WHEN 3 THEN '+14' WHEN 4 THEN '-11:45' ELSE '+00:00' END AS s
FROM (SELECT i, timestamp '0001-01-01' + random() * (timestamp '9999-12-31' - timestamp '0001-01-01') AS t
	FROM generate_series(1, 3000) i) g;
SELECT count(*) AS times,
	count(*) FILTER (WHERE r.ok AND r."values"->>'tz' = s::timestamptz::text
		AND r."values"->>'ts' = s::timestamp::text) AS same
FROM times, d('dec_types', json_build_object('tz', s, 'ts', s)::text) r;

SELECT s, r.ok, r.reason
FROM unnest(ARRAY['2024-13-45T00:00:00Z', '2023-02-29T00:00:00Z', '2024-01-05T10:61:00Z',
	'2024-01-05T10:00:00+16:00', 'not a time', '']) s,
	d('dec_types', json_build_object('tz', s)::text) r;

-- ... escaped, it is left to timestamptz_in, which reads it all the same
SELECT ok, reason, "values"->>'tz' AS tz FROM d('dec_types', '{"tz":"2024-01-05T10:00:00\u005a"}');

-- Time: JSON numbers count the stream's time_unit since 1970-01-01 UTC,
-- exactly, rounded to the microsecond (halves away from zero).
SELECT kappa_create_stream('dec_s', brokers => '127.0.0.1:9092',
	columns => 'ts timestamptz NOT NULL, wall timestamp', event_time => 'ts', time_unit => 's');
SELECT kappa_create_stream('dec_ms', brokers => '127.0.0.1:9092',
	columns => 'ts timestamptz NOT NULL', event_time => 'ts', time_unit => 'ms');
SELECT kappa_create_stream('dec_us', brokers => '127.0.0.1:9092',
	columns => 'ts timestamptz NOT NULL', event_time => 'ts', time_unit => 'us');
SELECT x, r.ok, r.reason, r."values"->>'ts' AS ts,
	(r."values"->>'ts')::timestamptz = to_timestamp(x::float8) AS same_as_to_timestamp
FROM unnest(ARRAY['0', '1700000000', '1700000000.5', '1.7e9', '17E8', '-1', '-1.5', '-0',
	'1700000000.123456', '951782400', '-2208988800', '253402300799']) x,
	d('dec_s', '{"ts":' || x || '}') r;
SELECT x, r.ok, r.reason, r."values"->>'ts' AS ts
FROM unnest(ARRAY['1700000000.1234565', '1700000000.1234564999', '1700000000.0000005',
	'-1700000000.0000005', '0.0000004', '1e-7', '1e-6', '0.1e1',
	'1700000000.00000000000000000000000000000000000000000000000001',
	'0.00000000000000000000000000000000000000000000000001e50',
	'9224318015999', '9224318016000', '-210866803200', '-210866803201', '1e13', '1e400', '-1e400', '1e-400']) x,
	d('dec_s', '{"ts":' || x || '}') r;
-- (a string is never a count: timestamptz_in reads it, here as a date)
SELECT x, r.ok, r.reason, r."values"->>'ts' AS ts
FROM unnest(ARRAY['1700000000123', '1700000000123.456', '1700000000123.4565', '-1', '1.7e12', '"1700000000123"']) x,
	d('dec_ms', '{"ts":' || x || '}') r;
SELECT x, r.ok, r.reason, r."values"->>'ts' AS ts
FROM unnest(ARRAY['1700000000123456', '1', '1.0', '1.5', '1e3', '2.5e-1', '-9223372036854775808', '9223372036854775807']) x,
	d('dec_us', '{"ts":' || x || '}') r;
-- ... exactly as numeric arithmetic says, for thousands of random times
CREATE TEMP TABLE epochs AS
SELECT i, format('%s%s%s%s', CASE WHEN random() < 0.3 THEN '-' END, (random() * 2e9)::bigint,
	CASE WHEN i % 3 > 0 THEN '.' || lpad((random() * 1e9)::bigint::text, 1 + i % 9, '0') END,
	CASE WHEN i % 5 = 0 THEN 'e-' || (i % 4) END) AS x
FROM generate_series(1, 3000) i;
SELECT count(*) AS times,
	count(*) FILTER (WHERE r.ok AND (r."values"->>'ts')::timestamptz =
		'epoch'::timestamptz + (round(x::numeric * 1000000) || ' microseconds')::interval) AS same_s,
	count(*) FILTER (WHERE m.ok AND (m."values"->>'ts')::timestamptz =
		'epoch'::timestamptz + (round(x::numeric * 1000) || ' microseconds')::interval) AS same_ms
FROM epochs, d('dec_s', '{"ts":' || x || '}') r, d('dec_ms', '{"ts":' || x || '}') m;
-- a timestamp column takes the time in UTC
SELECT ok, reason, "values" FROM d('dec_s', '{"ts":1700000000,"wall":1700000000.25}');
SELECT ok, reason FROM d('dec_s', '{"ts":null}');
SELECT ok, reason FROM d('dec_s', '{"ts":"2024"}');

SELECT kappa_drop_stream(name, true) FROM kappa_streams WHERE name LIKE 'dec\_%' ORDER BY name;
DROP TYPE dec_mood;
DROP DOMAIN dec_celsius;
DROP FUNCTION d(text, text);
DROP FUNCTION jsonb_says(bytea);
