# shellcheck shell=bash
# bench/matrix.sh — the benchmark matrix of bench/run: several shapes of
# data, each measured against its own baselines, in the same run.
#
# Sourced by bench/run, whose helpers it uses (bench_psql, sql_value, calc,
# add, median, range, thousands, kappa_run, engine_run, run_raw,
# compare_view, kappa_enable, kappa_drop, view_sql) and whose RUN_*
# variables it sets, as locals, to point those at a shape's topic, messages
# and views.  bench/run calls matrix_topics (topics for the broker),
# matrix_prepare (generate, produce, copy the topics into messages tables),
# matrix_measure (REPEAT times, interleaved), matrix_summarise and
# matrix_report.
#
# Shapes (events generated in SQL with setseed: the same N gives the same
# events; bench.events's columns and JSON; keyed by deviceId):
#
#  dense         bench/run's shape: 500 devices, 100 users, events 50 ms
#                apart with +-30 s of disorder (about 12 events per device
#                and 5-minute window); 8 partitions; views a, b, c
#  sparse        500 devices, 100 users, events 250 ms apart (2 to 3 per
#                device and window), +-3 minutes of disorder; 8 partitions;
#                views a, s (30-minute sessions per user with
#                count(DISTINCT deviceId)), c
#  sparse_dedup  the sparse events with about 2% of them produced again
#                (same eventId and payload, 1 to 50 messages after the
#                original, so in the same partition), cut to N messages;
#                dedup_key eventId; views a, s, c.  The batch side keeps
#                the first of each eventId (DISTINCT ON)
#  hop           the dense events (same topic); one view h: per device,
#                1-hour windows every 5 minutes (kappa_hop), count and avg
#  running_100k  deviceId drawn from 100,000 devices; one view c (running
#                per device): about N * 0.63 groups for N = 100,000
#  dense_100p    the dense events on 100 partitions; views a, b, c
#
# Per shape and repetition: raw consume of its topic (bench/raw_consume);
# kappa end to end (a new stream on the topic with the shape's views, timed
# as kappa_run times); the engine alone (kappa_feed of an exact copy of the
# topic, read back with kcat, with kappa.enabled off); plain Postgres (COPY
# of the events as CSV, then the views' queries as batch SQL into tables).
# At the last repetition, each view of both kappa streams is compared with
# its batch table.  And a flush step: the running_100k messages fed to a
# new stream (view c) with kappa_feed in chunks of 10,000, each chunk one
# flush of about 10,000 changed groups, whose flush times give p50/p95.
# With KAPPA_BENCH_PERF=1, one more end-to-end run of sparse_dedup under
# perf record (bench/run's perf_start and perf_finish).  The matrix runs
# with flushes by count only (matrix_flush_settings), so that no run ends
# waiting for kappa.flush_interval.
#
# Environment (read by bench/run too):
#	KAPPA_BENCH_MATRIX          1 (default): run the matrix; 0: skip it
#	KAPPA_BENCH_MATRIX_EVENTS   messages per topic, N (default 100000; the
#	                            broker keeps 5 MiB per partition: with 8
#	                            partitions about 150,000 fit, and the run
#	                            stops if anything was dropped; above
#	                            100,000 it must be even)
#	KAPPA_BENCH_MATRIX_SHAPES   shapes to measure (default: all six, in the
#	                            order above)
#	KAPPA_BENCH_MATRIX_OPTIONS  librdkafka settings of the matrix's streams
#	                            (default: KAPPA_BENCH_OPTIONS, kappa's own)
#	KAPPA_BENCH_ONLY=matrix     set up, then run the matrix only

# R is bench/run's associative array of results (shellcheck takes R[key]=
# for arrays of its own); the RUN_* locals are read by bench/run's functions.
# shellcheck disable=SC2154,SC2034

MATRIX=${KAPPA_BENCH_MATRIX:-1}
MATRIX_EVENTS=${KAPPA_BENCH_MATRIX_EVENTS:-100000}
read -ra MATRIX_SHAPES <<<"${KAPPA_BENCH_MATRIX_SHAPES:-dense sparse sparse_dedup hop running_100k dense_100p}"
MATRIX_OPTIONS=${KAPPA_BENCH_MATRIX_OPTIONS:-${KAPPA_BENCH_OPTIONS:-"{}"}}
MATRIX_FLUSH_CHUNK=10000		# messages per kappa_feed of the flush step

# Per shape: its data set, topic, views (letters of matrix_view_sql) and
# more arguments of kappa_create_stream.
declare -A MX_DATA=([dense]=dense [sparse]=sparse [sparse_dedup]=sparse_dedup
	[hop]=dense [running_100k]=running [dense_100p]=dense)
declare -A MX_TOPIC=([dense]=mx_dense [sparse]=mx_sparse [sparse_dedup]=mx_sparse_dedup
	[hop]=mx_dense [running_100k]=mx_running [dense_100p]=mx_dense100)
declare -A MX_VIEWS=([dense]="a b c" [sparse]="a s c" [sparse_dedup]="a s c"
	[hop]="h" [running_100k]="c" [dense_100p]="a b c")
declare -A MX_ARGS=([sparse_dedup]=", dedup_key => 'eventId'")
# Per topic: its partitions and data set.
declare -A MX_PARTITIONS=([mx_dense]=8 [mx_sparse]=8 [mx_sparse_dedup]=8
	[mx_running]=8 [mx_dense100]=100)
declare -A MX_TOPIC_DATA=([mx_dense]=dense [mx_sparse]=sparse
	[mx_sparse_dedup]=sparse_dedup [mx_running]=running [mx_dense100]=dense)
# Per view letter: the name of its view (after the stream's) and batch table.
declare -A MX_VIEW_NAME=([a]=device_5min [b]=user_sessions [s]=user_devices
	[c]=device_running [h]=device_hop)

MX_COLS='eventId, deviceId, userId, eventType, eventTimestamp, temperature, humidity, pressure'
MX_TABLE=()				# lines of the matrix table

# True if the matrix is to run.
matrix_wanted()
{
	[ "$MATRIX" = 1 ]
}

# Refuse matrix settings that are not what they should be.
matrix_check_settings()
{
	local shape

	case $MATRIX in
	0 | 1) ;;
	*) kappa_die "KAPPA_BENCH_MATRIX must be 0 or 1, not '$MATRIX'" ;;
	esac
	case $MATRIX_EVENTS in
	'' | *[!0-9]*) kappa_die "KAPPA_BENCH_MATRIX_EVENTS must be a whole number, not '$MATRIX_EVENTS'" ;;
	esac
	[ "$MATRIX_EVENTS" -ge 1000 ] || kappa_die "KAPPA_BENCH_MATRIX_EVENTS must be at least 1000"
	# flushes of N / k events each (matrix_flush_settings)
	[ $((MATRIX_EVENTS % ((MATRIX_EVENTS + 99999) / 100000))) -eq 0 ] ||
		kappa_die "KAPPA_BENCH_MATRIX_EVENTS must be a multiple of $(((MATRIX_EVENTS + 99999) / 100000))"
	case ${KAPPA_BENCH_ONLY:-} in
	'' | matrix) ;;
	*) kappa_die "KAPPA_BENCH_ONLY may only be 'matrix', not '$KAPPA_BENCH_ONLY'" ;;
	esac
	if [ "${KAPPA_BENCH_ONLY:-}" = matrix ] && [ "$MATRIX" != 1 ]; then
		kappa_die "KAPPA_BENCH_ONLY=matrix with KAPPA_BENCH_MATRIX=0 would measure nothing"
	fi
	for shape in "${MATRIX_SHAPES[@]}"; do
		[ -n "${MX_DATA[$shape]:-}" ] || kappa_die "unknown shape '$shape' in KAPPA_BENCH_MATRIX_SHAPES"
	done
}

# Print the topics the broker needs for the matrix, as "name:partitions".
matrix_topics()
{
	local topic

	matrix_wanted || return 0
	for topic in "${!MX_PARTITIONS[@]}"; do
		printf '%s:%s\n' "$topic" "${MX_PARTITIONS[$topic]}"
	done | sort
}

# The topics and data sets the chosen shapes use, sorted, one a line.
matrix_used_topics()
{
	local shape

	for shape in "${MATRIX_SHAPES[@]}"; do
		printf '%s\n' "${MX_TOPIC[$shape]}"
	done | sort -u
}
matrix_used_data()
{
	local topic

	for topic in $(matrix_used_topics); do
		printf '%s\n' "${MX_TOPIC_DATA[$topic]}"
	done | sort -u
}

# SQL inserting N events into mx.ev_DATA: SEED, SPACING_MS between events,
# DISORDER_S either way, DEVICES devices named with DIGITS digits.  100
# users; in each 20-minute block 20 are active, a set that moves on by 7
# users a block, so that users have sessions and gaps of over 30 minutes.
matrix_generate_sql()
{
	local data=$1 n=$2 seed=$3 spacing_ms=$4 disorder_s=$5 devices=$6 digits=$7
	local block=$((1200000 / spacing_ms))

	cat <<SQL
SELECT setseed($seed) \\gset
CREATE TABLE mx.ev_$data AS
SELECT i::bigint AS seq, md5('$data' || i)::uuid::text AS eventId,
	'device_' || lpad(floor(random() * $devices)::int::text, $digits, '0') AS deviceId,
	'user_' || lpad((((i / $block) * 7 + floor(random() * 20)::int) % 100)::text, 3, '0') AS userId,
	CASE WHEN r < 0.90 THEN 'reading' WHEN r < 0.97 THEN 'alert' ELSE 'heartbeat' END AS eventType,
	date_trunc('milliseconds', timestamptz '2026-03-01 00:00:00+00' + i * interval '$spacing_ms ms'
		+ (random() * $((2 * disorder_s)) - $disorder_s) * interval '1 s') AS eventTimestamp,
	round((15 + random() * 20)::numeric, 1)::float8 AS temperature,
	round((30 + random() * 40)::numeric, 1)::float8 AS humidity,
	round((980 + random() * 50)::numeric, 1)::float8 AS pressure
FROM (SELECT i, random() AS r FROM generate_series(0, $n - 1) i) g;
SQL
}

# Generate the data sets in SQL, write each as kcat input and CSV; produce
# them to their topics and check that the broker kept every message; copy
# each topic back into a messages table (mx.msg_TOPIC) for kappa_feed.
matrix_prepare()
{
	local data topic t0 t1

	kappa_log "matrix: generating $(thousands "$MATRIX_EVENTS") events per data set in SQL"
	t0=$(now_s)
	{
		printf 'CREATE SCHEMA mx;\n'
		for data in $(matrix_used_data); do
			case $data in
			dense) matrix_generate_sql dense "$MATRIX_EVENTS" 0.2026 50 30 500 3 ;;
			sparse | sparse_dedup) ;;
			running) matrix_generate_sql running "$MATRIX_EVENTS" 0.2028 50 30 100000 6 ;;
			esac
		done
		if matrix_used_data | grep -qx 'sparse\|sparse_dedup'; then
			matrix_generate_sql sparse "$MATRIX_EVENTS" 0.2027 250 180 500 3
		fi
		if matrix_used_data | grep -qx sparse_dedup; then
			# about 2% of the events again, 1 to 50 messages after their
			# original (so in the same partition, within the watermark);
			# the first N messages of that (a duplicate never precedes its
			# original, so none is cut from it)
			cat <<SQL
SELECT setseed(0.2029) \\gset
CREATE TABLE mx.ev_sparse_dedup AS
SELECT * FROM (
	SELECT row_number() OVER (ORDER BY pos, eventId) - 1 AS seq, $MX_COLS
	FROM (SELECT seq::numeric AS pos, $MX_COLS FROM mx.ev_sparse
		UNION ALL
		SELECT seq + 1 + floor(random() * 50) + 0.5, $MX_COLS FROM mx.ev_sparse
		WHERE random() < 0.02) d) n
WHERE seq < $MATRIX_EVENTS;
SQL
		fi
		for data in $(matrix_used_data); do
			cat <<SQL
CREATE VIEW mx.pl_$data AS
SELECT seq, deviceId, format('{"eventId": "%s", "deviceId": "%s", "userId": "%s", "eventType": "%s", '
		'"eventTimestamp": "%s", "data": {"temperature": %s, "humidity": %s, "pressure": %s}}',
		eventId, deviceId, userId, eventType,
		to_char(eventTimestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
		temperature, humidity, pressure) AS payload
FROM mx.ev_$data;
COPY (SELECT deviceId || '|' || payload FROM mx.pl_$data ORDER BY seq) TO '$WORK/mx_$data.kcat';
COPY (SELECT $MX_COLS FROM mx.ev_$data ORDER BY seq) TO '$WORK/mx_$data.csv' (FORMAT csv);
SQL
		done
	} | bench_psql
	t1=$(now_s)
	R[mx_gen_s]=$(calc '%.1f' "$t1 - $t0")
	for data in $(matrix_used_data); do
		R[mx_n_$data]=$(sql_value "SELECT count(*) FROM mx.ev_$data")
		R[mx_payload_$data]=$(sql_value "SELECT round(avg(octet_length(payload)))::int FROM mx.pl_$data")
	done
	R[mx_dups]=$(sql_value "SELECT CASE WHEN to_regclass('mx.ev_sparse_dedup') IS NULL THEN 0
		ELSE (SELECT count(*) - count(DISTINCT eventId) FROM mx.ev_sparse_dedup) END")
	for topic in $(matrix_used_topics); do
		matrix_produce "$topic"
		matrix_copy_topic "$topic"
	done
}

# Produce TOPIC's data set with kcat, keyed by deviceId; die unless the
# broker kept every message.
matrix_produce()
{
	local topic=$1 data=${MX_TOPIC_DATA[$1]} low high kept=0 dropped=0 largest=0 n

	n=${R[mx_n_$data]}
	kappa_log "matrix: producing $(thousands "$n") events to topic $topic"
	timeout -k 10 "$RUN_TIMEOUT" kcat -P -b "$KAPPA_BROKER" -t "$topic" -K '|' \
		-l "$WORK/mx_$data.kcat" || kappa_die "kcat could not produce to topic $topic"
	"$RAW" -b "$KAPPA_BROKER" -t "$topic" -w >"$WORK/mx_$topic.watermarks" ||
		kappa_die "could not read the watermarks of topic $topic"
	while read -r _ low high; do
		kept=$((kept + high - low))
		dropped=$((dropped + low))
		[ $((high - low)) -le "$largest" ] || largest=$((high - low))
	done <"$WORK/mx_$topic.watermarks"
	R[mx_largest_$topic]=$largest
	if [ "$dropped" -ne 0 ] || [ "$kept" -ne "$n" ]; then
		kappa_die "the broker kept $kept of $n events of topic $topic ($dropped dropped: it keeps 5 MiB per partition); lower KAPPA_BENCH_MATRIX_EVENTS"
	fi
}

# Read TOPIC back with kcat into table mx.msg_TOPIC (partition, "offset",
# payload bytea): kappa_feed then gets exactly the messages of the log.
matrix_copy_topic()
{
	local topic=$1 n

	n=${R[mx_n_${MX_TOPIC_DATA[$topic]}]}
	timeout -k 10 "$RUN_TIMEOUT" kcat -C -b "$KAPPA_BROKER" -t "$topic" -o beginning -e -q \
		-f '%p\t%o\t%s\n' >"$WORK/mx_$topic.msgs" || kappa_die "kcat -C of topic $topic failed"
	bench_psql <<SQL
CREATE TEMP TABLE m (partition int, "offset" bigint, payload text);
\\copy m FROM '$WORK/mx_$topic.msgs'
CREATE TABLE mx.msg_$topic AS SELECT partition, "offset", convert_to(payload, 'UTF8') AS payload FROM m;
VACUUM ANALYZE mx.msg_$topic;
SQL
	[ "$(sql_value "SELECT count(*) FROM mx.msg_$topic")" -eq "$n" ] ||
		kappa_die "kcat -C read $(sql_value "SELECT count(*) FROM mx.msg_$topic") messages of topic $topic, not $n"
}

# SQL creating view WHICH of stream STREAM: a, b and c are bench/run's
# (view_sql); s are 30-minute sessions per user counting distinct devices;
# h hopping windows per device, 1 hour every 5 minutes.
matrix_view_sql()
{
	local stream=$1 which=$2

	case $which in
	s) sed "s/STREAM/$stream/g" <<'SQL' ;;
SELECT kappa_create_view('STREAM_user_devices', $v$
	SELECT userId, w.window_start, w.window_end, count(*) AS eventCount,
		count(DISTINCT deviceId) AS devices,
		min(eventTimestamp) AS firstEvent, max(eventTimestamp) AS lastEvent
	FROM STREAM, kappa_session(eventTimestamp, '30 minutes') w
	GROUP BY userId, w.window_start, w.window_end $v$);
SQL
	h) sed "s/STREAM/$stream/g" <<'SQL' ;;
SELECT kappa_create_view('STREAM_device_hop', $v$
	SELECT deviceId, w.window_start, w.window_end, count(*) AS eventCount,
		avg(temperature) AS avgTemp
	FROM STREAM, kappa_hop(eventTimestamp, '1 hour', '5 minutes') w
	GROUP BY deviceId, w.window_start, w.window_end $v$);
SQL
	*) view_sql "$stream" "$which" ;;
	esac
}

# The batch SQL of views VIEWS (letters) over table SRC, into tables of
# schema DST named as MX_VIEW_NAME says.
matrix_batch_sql()
{
	local src=$1 dst=$2 views=$3 v

	for v in $views; do
		case $v in
		a) cat <<SQL ;;
CREATE TABLE $dst.device_5min AS
SELECT deviceId, date_bin('5 minutes', eventTimestamp, timestamptz '1970-01-01 00:00:00+00') AS window_start,
	date_bin('5 minutes', eventTimestamp, timestamptz '1970-01-01 00:00:00+00') + interval '5 minutes' AS window_end,
	count(*) AS eventCount, avg(temperature) AS avgTemp, max(temperature) AS maxTemp,
	min(temperature) AS minTemp, stddev(temperature) AS stddevTemp,
	avg(humidity) AS avgHumidity, avg(pressure) AS avgPressure
FROM $src GROUP BY 1, 2, 3;
SQL
		b | s)
			# sessions: gaps and islands; s also counts distinct devices
			cat <<SQL
CREATE TABLE $dst.${MX_VIEW_NAME[$v]} AS
WITH o AS (
	SELECT userId, deviceId, eventTimestamp,
		CASE WHEN eventTimestamp - lag(eventTimestamp) OVER (PARTITION BY userId ORDER BY eventTimestamp)
			< interval '30 minutes' THEN 0 ELSE 1 END AS brk
	FROM $src),
g AS (
	SELECT userId, deviceId, eventTimestamp,
		sum(brk) OVER (PARTITION BY userId ORDER BY eventTimestamp ROWS UNBOUNDED PRECEDING) AS sid
	FROM o)
SELECT userId, min(eventTimestamp) AS window_start, max(eventTimestamp) + interval '30 minutes' AS window_end,
	count(*) AS eventCount,$([ "$v" = s ] && printf ' count(DISTINCT deviceId) AS devices,')
	min(eventTimestamp) AS firstEvent, max(eventTimestamp) AS lastEvent
FROM g GROUP BY userId, sid;
SQL
			;;
		c) cat <<SQL ;;
CREATE TABLE $dst.device_running AS
SELECT deviceId, count(*) AS eventCount, avg(temperature) AS avgTemp
FROM $src GROUP BY deviceId;
SQL
		h) cat <<SQL ;;
CREATE TABLE $dst.device_hop AS
SELECT deviceId, s AS window_start, s + interval '1 hour' AS window_end,
	count(*) AS eventCount, avg(temperature) AS avgTemp
FROM (SELECT deviceId, temperature,
		date_bin('5 minutes', eventTimestamp, timestamptz '1970-01-01 00:00:00+00')
			- k * interval '5 minutes' AS s
	FROM $src, generate_series(0, 11) k) x
GROUP BY 1, 2, 3;
SQL
		*) kappa_die "matrix_batch_sql: unknown view $v" ;;
		esac
	done
}

# Plain Postgres for SHAPE, one repetition: COPY the shape's events (CSV)
# into a new table, then its views as batch SQL into tables of schema
# mxp_SHAPE (dedup first, for sparse_dedup, keeping the first of each
# eventId); timed by the server's clock.
matrix_plain()
{
	local shape=$1 data=${MX_DATA[$1]} dst=mxp_$1 src out=$WORK/mx_plain_$1.out t0 t1 t2
	local serial="" dedup=""

	src=$dst.events
	if [ -n "${MX_ARGS[$shape]:-}" ]; then
		serial=", n bigserial"
		dedup="CREATE TABLE $dst.events_d AS
SELECT DISTINCT ON (eventId) $MX_COLS FROM $dst.events ORDER BY eventId, n;"
		src=$dst.events_d
	fi
	bench_psql -At >"$out" <<SQL
DROP SCHEMA IF EXISTS $dst CASCADE;
CREATE SCHEMA $dst;
CREATE TABLE $dst.events (eventId text, deviceId text, userId text, eventType text,
	eventTimestamp timestamptz, temperature float8, humidity float8, pressure float8$serial);
CHECKPOINT;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
COPY $dst.events ($MX_COLS) FROM '$WORK/mx_$data.csv' (FORMAT csv);
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
$dedup
$(matrix_batch_sql "$src" "$dst" "${MX_VIEWS[$shape]}")
SELECT extract(epoch FROM clock_timestamp()) AS t2 \gset
\echo RESULT :t0 :t1 :t2
SQL
	read -r t0 t1 t2 < <(sed -n 's/^RESULT //p' "$out")
	add "mx_${shape}_copy_s" "$(calc '%.3f' "$t1 - $t0")"
	add "mx_${shape}_plain_s" "$(calc '%.3f' "$t2 - $t0")"
}

# Print "rows/extra/missing" of each view (letters VIEWS) of STREAM against
# the batch tables of SHAPE, as "a 42125/0/0 b ..."; count the views that
# differ in R[mx_bad].
matrix_check()
{
	local shape=$1 stream=$2 v name res out=""

	for v in ${MX_VIEWS[$shape]}; do
		name=${MX_VIEW_NAME[$v]}
		res=$(compare_view "${stream}_$name" "mxp_$shape.$name")
		case $res in
		*/0/0) ;;
		*) R[mx_bad]=$((${R[mx_bad]:-0} + 1)) ;;
		esac
		out+="${out:+ }$v $res"
	done
	printf '%s\n' "$out"
}

# One repetition of SHAPE: raw consume, plain Postgres, kappa end to end,
# the engine alone; at the LAST repetition, the views are checked.
matrix_shape()
{
	local shape=$1 last=$2
	local RUN_TOPIC=${MX_TOPIC[$1]} RUN_VIEW_SQL=matrix_view_sql
	local RUN_STREAM_ARGS=${MX_ARGS[$1]:-} RUN_EVENTS RUN_MESSAGES

	RUN_EVENTS=${R[mx_n_${MX_DATA[$shape]}]}
	RUN_MESSAGES=mx.msg_$RUN_TOPIC
	kappa_log "matrix: shape $shape (topic $RUN_TOPIC, views ${MX_VIEWS[$shape]})"
	run_raw
	add "mx_${shape}_raw_s" "${RAW_FIGURES[consume_s]}"
	matrix_plain "$shape"
	kappa_run "mx_$shape" "mx_$shape" "${MX_VIEWS[$shape]}" "$MATRIX_OPTIONS"
	[ "$last" = 0 ] || R[mx_${shape}_check]=$(matrix_check "$shape" "mx_$shape")
	kappa_drop "mx_$shape"
	kappa_enable off
	engine_run "mxe_$shape" "mxe_$shape" "${MX_VIEWS[$shape]}"
	[ "$last" = 0 ] || R[mxe_${shape}_check]=$(matrix_check "$shape" "mxe_$shape")
	kappa_drop "mxe_$shape"
	kappa_enable on
}

# The flush step, one repetition: a new stream with view c (running per
# device) fed the running_100k messages with kappa_feed in chunks of
# MATRIX_FLUSH_CHUNK (kappa.enabled off), each chunk ending in one flush
# of as many changed groups as it has distinct devices.  Records each
# flush's milliseconds.
matrix_flush_step()
{
	local k n chunks ms out=$WORK/mx_flush.out

	chunks=$((R[mx_n_running] / MATRIX_FLUSH_CHUNK))
	[ "$chunks" -ge 1 ] || return 0
	if [ -z "${R[mx_flush_groups]:-}" ]; then
		# chunk k: the k-th MATRIX_FLUSH_CHUNK messages in (offset,
		# partition) order, so contiguous per partition and after chunk
		# k - 1 there, as kappa_feed needs
		bench_psql <<SQL
CREATE TABLE mx.flush_chunks AS
SELECT (row_number() OVER (ORDER BY "offset", partition) - 1) / $MATRIX_FLUSH_CHUNK AS chunk,
	partition, "offset", payload
FROM mx.msg_mx_running;
SQL
		for k in $(seq 0 $((chunks - 1))); do
			bench_psql -c "CREATE TABLE mx.flush_chunk_$k AS
				SELECT partition, \"offset\", payload FROM mx.flush_chunks WHERE chunk = $k"
		done
		R[mx_flush_groups]=$(sql_value "SELECT round(avg(n))::int FROM (
			SELECT count(DISTINCT convert_from(payload, 'UTF8')::jsonb ->> 'deviceId') AS n
			FROM mx.flush_chunks WHERE chunk < $chunks GROUP BY chunk) x")
	fi
	kappa_log "matrix: flush step, $chunks flushes of $MATRIX_FLUSH_CHUNK events (view c, running_100k)"
	kappa_enable off
	bench_psql -At >"$out" <<SQL
SELECT kappa_create_stream('mxf', topic => 'mx_running', brokers => '$KAPPA_BROKER',
	columns => '$COLUMNS', paths => '$PATHS',
	event_time => 'eventTimestamp', watermark => '10 minutes');
$(matrix_view_sql mxf c)
$(for k in $(seq 0 $((chunks - 1))); do
		printf "SELECT 'RESULT', messages_read, flush_seconds FROM kappa_feed('mxf', 'mx.flush_chunk_%s');\n" "$k"
	done)
SQL
	while IFS='|' read -r _ n ms; do
		[ "$n" -eq "$MATRIX_FLUSH_CHUNK" ] || kappa_die "a flush-step kappa_feed read $n messages, not $MATRIX_FLUSH_CHUNK"
		add mx_flush_ms "$(calc '%.2f' "$ms * 1000")"
	done < <(grep '^RESULT|' "$out")
	kappa_drop mxf
	kappa_enable on
}

# The flush settings of the matrix, to measure catch-up throughput: flushes
# every N / k events (k = ceil(N / 100,000), so at most kappa's default
# kappa.flush_events), none by time (kappa.flush_interval 1 hour), so that
# the last flush comes with the last message and no run waits for a flush
# interval at its end; kappa_feed flushes the same way.  RESET: back to the
# defaults.
matrix_flush_settings()
{
	local k

	if [ "$1" = RESET ]; then
		sql_value "ALTER SYSTEM RESET kappa.flush_events" >/dev/null
		sql_value "ALTER SYSTEM RESET kappa.flush_interval" >/dev/null
	else
		k=$(((MATRIX_EVENTS + 99999) / 100000))
		R[mx_flush_events]=$((MATRIX_EVENTS / k))
		sql_value "ALTER SYSTEM SET kappa.flush_events = ${R[mx_flush_events]}" >/dev/null
		sql_value "ALTER SYSTEM SET kappa.flush_interval = '1h'" >/dev/null
	fi
	sql_value "SELECT pg_reload_conf()" >/dev/null
}

# REPEAT repetitions of every shape, interleaved; then the flush step.
matrix_measure()
{
	local rep shape

	matrix_flush_settings SET
	for rep in $(seq 1 "$REPEAT"); do
		kappa_log "matrix: repetition $rep of $REPEAT"
		for shape in "${MATRIX_SHAPES[@]}"; do
			matrix_shape "$shape" "$([ "$rep" -eq "$REPEAT" ] && echo 1 || echo 0)"
		done
		if printf '%s\n' "${MATRIX_SHAPES[@]}" | grep -qx running_100k; then
			matrix_flush_step
		fi
	done
	matrix_profile
	matrix_flush_settings RESET
}

# With KAPPA_BENCH_PERF=1: one more end-to-end run of shape sparse_dedup
# (or the first shape measured) under perf record, as bench/run's step 6
# profiles the seed shape; its summary goes to MX_PERF_REPORT.
MX_PERF_REPORT=""
MX_PERF_SHAPE=""
matrix_profile()
{
	local saved=$PERF_REPORT shape=sparse_dedup
	local RUN_TOPIC RUN_VIEW_SQL=matrix_view_sql RUN_STREAM_ARGS RUN_EVENTS RUN_MESSAGES

	[ "$PERF" = 1 ] || return 0
	if ! command -v perf >/dev/null 2>&1; then
		kappa_warn "perf not found: no profile of the matrix"
		return 0
	fi
	printf '%s\n' "${MATRIX_SHAPES[@]}" | grep -qx "$shape" || shape=${MATRIX_SHAPES[0]}
	RUN_TOPIC=${MX_TOPIC[$shape]}
	RUN_STREAM_ARGS=${MX_ARGS[$shape]:-}
	RUN_EVENTS=${R[mx_n_${MX_DATA[$shape]}]}
	RUN_MESSAGES=mx.msg_$RUN_TOPIC
	kappa_log "matrix: profiling shape $shape end to end"
	kappa_run mxprof mxprof "${MX_VIEWS[$shape]}" "$MATRIX_OPTIONS" 1
	kappa_drop mxprof
	MX_PERF_REPORT=$PERF_REPORT
	MX_PERF_SHAPE=$shape
	PERF_REPORT=$saved
}

# Print the PCT-th percentile (nearest rank) of the numbers in R[KEY].
percentile()
{
	tr ' ' '\n' <<<"${R[$1]}" | sort -g | awk -v p="$2" '{ v[NR] = $1 }
		END { r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; printf "%.1f", v[r] }'
}

# The matrix's table (MX_TABLE) and the figures the targets need.
matrix_summarise()
{
	local shape n e2e raw eng plain flush_pct check ok

	for shape in "${MATRIX_SHAPES[@]}"; do
		n=${R[mx_n_${MX_DATA[$shape]}]}
		e2e=$(median "mx_${shape}_s")
		raw=$(median "mx_${shape}_raw_s")
		eng=$(median "mxe_${shape}_s")
		plain=$(median "mx_${shape}_plain_s")
		R[mx_${shape}_rate]=$(calc '%.0f' "$n / $e2e")
		R[mx_${shape}_vs_raw]=$(calc '%.2f' "$raw / $e2e")
		R[mx_${shape}_engine_rate]=$(calc '%.0f' "$n / $eng")
		flush_pct=$(calc '%.0f' "100 * $(median "mxe_${shape}_flush_s") / $eng")
		check="${R[mx_${shape}_check]} | ${R[mxe_${shape}_check]}"
		ok=ok
		case " ${R[mx_${shape}_check]} ${R[mxe_${shape}_check]}" in
		*/[1-9]* | */0/[1-9]*) ok=DIFFERS ;;
		esac
		MX_TABLE+=("$(printf '%-13s %7s %10s %5s %10s %6s %5s %11s %6s %6s  %s' "$shape" \
			"$(thousands "$n")" "$(thousands "${R[mx_${shape}_rate]}")" "${R[mx_${shape}_vs_raw]}" \
			"$(thousands "$(calc '%.0f' "$n / $raw")")" \
			"$(calc '%.2f' "$plain / $e2e")" "$(calc '%.2f' "$plain / $eng")" \
			"$(thousands "${R[mx_${shape}_engine_rate]}")" "$flush_pct%" \
			"${R[mx_${shape}_hwm_mb]}" "$ok")")
		MX_TABLE+=("$(printf '    e2e %s s (%s flushes, avg %s ms); engine %s s; raw %s s; COPY+batch %s s (COPY %s s)' \
			"$(range "mx_${shape}_s")" "${R[mx_${shape}_flushes]}" "${R[mx_${shape}_flush_avg_ms]}" \
			"$(range "mxe_${shape}_s")" "$(range "mx_${shape}_raw_s")" \
			"$(range "mx_${shape}_plain_s")" "$(median "mx_${shape}_copy_s")")")
		if [ -n "${R[mxe_${shape}_phases]:-}" ]; then
			MX_TABLE+=("    engine phases (share of engine + flush): ${R[mxe_${shape}_phases]}")
		fi
		MX_TABLE+=("    check (rows/extra/missing), e2e | engine: $check")
	done
	if [ -n "${R[mx_flush_ms]:-}" ]; then
		R[mx_flush_p50]=$(percentile mx_flush_ms 50)
		R[mx_flush_p95]=$(percentile mx_flush_ms 95)
		R[mx_flush_max]=$(percentile mx_flush_ms 100)
		R[mx_flush_n]=$(wc -w <<<"${R[mx_flush_ms]}")
	fi
}

# Print TARGET_LABEL, the target, the measured figure and whether it is met:
# target_line LABEL TARGET MEASURED OP (ge or le).
target_line()
{
	local met

	if [ "$(calc '%d' "($3 $([ "$4" = ge ] && echo '>=' || echo '<=') $2) ? 1 : 0")" = 1 ]; then
		met=met
	else
		met="NOT met"
	fi
	printf '%-52s %12s %12s  %s\n' "$1" "$(thousands "$2")" "$(thousands "$3")" "$met"
}

# Print the matrix's part of the report, in markdown.
matrix_report()
{
	local line t d

	printf '### Matrix of shapes\n\n'
	printf 'N = %s messages per topic (sparse_dedup: %s of them duplicates), generated in\n' \
		"$(thousands "$MATRIX_EVENTS")" "$(thousands "${R[mx_dups]:-0}")"
	printf 'SQL in %s s; payloads of %s bytes on average; medians of %s runs.\n' \
		"${R[mx_gen_s]}" "$(for d in $(matrix_used_data); do printf '%s (%s), ' "${R[mx_payload_$d]}" "$d"; done |
			sed 's/, $//')" "$REPEAT"
	printf 'Stream options %s; kappa.flush_events %s, kappa.flush_interval 1h (flushes\n' \
		"$MATRIX_OPTIONS" "${R[mx_flush_events]}"
	printf 'by count only, the last with the last message). Largest partition (messages):\n%s.\n\n' \
		"$(for t in $(matrix_used_topics); do printf '%s %s; ' "$t" "$(thousands "${R[mx_largest_$t]}")"; done |
			sed 's/; $//')"
	printf '```\n'
	printf '%-13s %7s %10s %5s %10s %6s %5s %11s %6s %6s  %s\n' "" "" "e2e" "x" "raw" "e2e x" \
		"eng x" "engine" "flush" "VmHWM" ""
	printf '%-13s %7s %10s %5s %10s %6s %5s %11s %6s %6s  %s\n' shape events "events/s" raw \
		"events/s" plain plain "events/s" share MB check
	for line in "${MX_TABLE[@]}"; do
		printf '%s\n' "$line"
	done
	printf '```\n\n'
	printf 'Targets (the target and the measured figure):\n\n```\n'
	printf '%-52s %12s %12s\n' "" target measured
	if [ -n "${R[mx_sparse_dedup_rate]:-}" ]; then
		target_line "sparse_dedup, 3 views, end to end, events/s" 260530 "${R[mx_sparse_dedup_rate]}" ge
		target_line "sparse_dedup, end to end, x raw consume" 0.5 "${R[mx_sparse_dedup_vs_raw]}" ge
	fi
	if [ -n "${R[mx_dense_rate]:-}" ]; then
		target_line "dense, engine only, events/s" 1000000 "${R[mx_dense_engine_rate]}" ge
		target_line "dense, end to end, x raw consume" 0.7 "${R[mx_dense_vs_raw]}" ge
	fi
	if [ -n "${R[mx_flush_p95]:-}" ]; then
		target_line "flush of $(thousands "${R[mx_flush_groups]}") changed groups, p95 ms" 20 "${R[mx_flush_p95]}" le
	fi
	printf '```\n'
	if [ -n "${R[mx_flush_p95]:-}" ]; then
		printf '\nFlush step: %s flushes of %s events each (kappa_feed, view c of\n' \
			"${R[mx_flush_n]}" "$(thousands "$MATRIX_FLUSH_CHUNK")"
		printf 'running_100k; %s changed groups per flush on average): p50 %s ms, p95 %s ms,\n' \
			"$(thousands "${R[mx_flush_groups]}")" "${R[mx_flush_p50]}" "${R[mx_flush_p95]}"
		printf 'max %s ms.\n' "${R[mx_flush_max]}"
	fi
	if [ -n "$MX_PERF_REPORT" ]; then
		printf '\nperf record -F 499 --call-graph dwarf of the worker, one more end-to-end\n'
		# shellcheck disable=SC2016 # the backquotes are markdown's
		printf 'run of shape %s (%s s, flushes seen at %s):\n\n```\n%s\n```\n' \
			"$MX_PERF_SHAPE" "$(median mxprof_s)" "${R[mxprof_timeline]}" "$MX_PERF_REPORT"
	fi
	if [ "${R[mx_bad]:-0}" -ne 0 ]; then
		printf '\n**%s view(s) differ from their batch queries: see "check" above.**\n' "${R[mx_bad]}"
	fi
}
