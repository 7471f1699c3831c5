# shellcheck shell=bash
# scripts/lib.sh — shell helpers shared by scripts/test and scripts/demo.
#
# Source it from a bash script that has already done `set -euo pipefail`:
#
#	. "$KAPPA_ROOT/scripts/lib.sh"
#	kappa_ensure_deps; kappa_build_install
#	kappa_make_tmp                        # temp dir + cleanup trap
#	kappa_start_broker telemetry:8        # exports KAPPA_BROKER
#	kappa_start_cluster kappa_demo        # exports PGHOST PGPORT PGUSER PGDATABASE
#
# Running as root: initdb, pg_ctl and postgres refuse to run as root, so every
# command that starts or stops a server goes through kappa_run_unprivileged,
# which runs it as the system user $KAPPA_TEST_USER (default "kappa-test",
# created with useradd --system if missing).  Plain clients (psql, pg_regress
# against an existing server, pg_prove) connect with trust authentication as
# the database superuser "postgres" and may run as anyone.  When not root,
# everything runs as the invoking user.
#
# Everything started here is stopped by the EXIT trap that kappa_make_tmp
# installs; the temp dir is removed unless KAPPA_KEEP_TMP=1.  Waits are
# bounded polls on a real condition (kappa_wait_for).

# Settings a caller may override from the environment.
: "${PG_CONFIG:=pg_config}"
: "${KAPPA_TEST_USER:=kappa-test}"
: "${KAPPA_KEEP_TMP:=0}"
: "${KAPPA_BROKER_TIMEOUT:=20}"
: "${KAPPA_PG_START_TIMEOUT:=60}"

# useradd and runuser live in sbin, which a root PATH may lack (e.g. CI).
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH=$PATH:/usr/sbin:/sbin ;;
esac

# Where the repository is (this file lives in scripts/).
KAPPA_ROOT=${KAPPA_ROOT:-$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)}
KAPPA_PROG=${KAPPA_PROG:-$(basename -- "$0")}

# State filled in by the functions below (read by the cleanup trap).
KAPPA_TMP=""
KAPPA_RUN_USER=""
KAPPA_BROKER_PID=""
KAPPA_BROKER_LOG=""
KAPPA_PGDATA=""
KAPPA_PGLOG=""
KAPPA_PGDATA_ROOTS=()
KAPPA_EXIT_HOOKS=()

# Print a progress line.
kappa_log()
{
	printf '==> %s\n' "$*"
}

# Print a warning on stderr.
kappa_warn()
{
	printf '%s: warning: %s\n' "$KAPPA_PROG" "$*" >&2
}

# Print an error on stderr and exit (the EXIT trap cleans up).
kappa_die()
{
	printf '%s: error: %s\n' "$KAPPA_PROG" "$*" >&2
	exit 1
}

# Print the last N (default 50) lines of FILE under a header, if it has any.
kappa_print_tail()
{
	local file=$1 lines=${2:-50}

	[ -s "$file" ] || return 0
	printf -- '----- last %s lines of %s -----\n' "$lines" "$file"
	tail -n "$lines" -- "$file"
	printf -- '----- end of %s -----\n' "$file"
}

# kappa_wait_for SECONDS DESCRIPTION COMMAND [ARG...]
# Poll COMMAND until it succeeds; fail (status 1) after SECONDS.  The
# condition itself may call kappa_die to give up early.
kappa_wait_for()
{
	local timeout=$1 what=$2
	local deadline=$((SECONDS + timeout))

	shift 2
	until "$@"; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			printf '%s: timed out after %ss waiting for %s\n' \
				"$KAPPA_PROG" "$timeout" "$what" >&2
			return 1
		fi
		sleep 0.1	# poll interval, not synchronisation
	done
}

# True if process PID exists and is not a zombie.
kappa_pid_alive()
{
	local pid=$1 stat

	[ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
	stat=$(<"/proc/$pid/stat") || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# True once process PID has exited (for kappa_wait_for).
kappa_pid_gone()
{
	! kappa_pid_alive "$1"
}

# Run a command as root: directly when root, through sudo otherwise.
kappa_as_root()
{
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		kappa_die "need root (or sudo) to run: $*"
	fi
}

# (a) Install the Debian packages kappa needs (no-op when all are there).
kappa_ensure_deps()
{
	kappa_log "checking dependencies"
	bash "$KAPPA_ROOT/scripts/install-deps.sh"
	command -v "$PG_CONFIG" >/dev/null 2>&1 ||
		kappa_die "$PG_CONFIG not found after installing dependencies"
}

# The directory holding initdb, pg_ctl, postgres, psql and kappa-broker.
kappa_pg_bindir()
{
	"$PG_CONFIG" --bindir
}

# (b) Build the extension and kappa-broker, and install the extension.  In
# CI (CI=true), or with KAPPA_WERROR=1, every warning is an error.
kappa_build_install()
{
	local pg_config jobs
	local werror=()

	pg_config=$(command -v "$PG_CONFIG") || kappa_die "$PG_CONFIG not found"
	jobs=$(nproc 2>/dev/null || echo 2)
	if [ "${CI:-}" = true ] || [ "${KAPPA_WERROR:-}" = 1 ]; then
		werror=(COPT=-Werror)
	fi
	kappa_log "building (make -s ${werror[*]})"
	make -C "$KAPPA_ROOT" -s -j"$jobs" PG_CONFIG="$pg_config" "${werror[@]}"
	kappa_log "installing (make -s install)"
	kappa_as_root make -C "$KAPPA_ROOT" -s install PG_CONFIG="$pg_config"
}

# (c) Print a TCP port on 127.0.0.1 that is free right now.
kappa_free_port()
{
	perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
			LocalPort => 0, Proto => "tcp", Listen => 1, ReuseAddr => 1)
			or die "cannot bind a free port: $!\n";
		print $s->sockport, "\n";'
}

# When root, make sure $KAPPA_TEST_USER exists and set KAPPA_RUN_USER to it.
kappa_ensure_run_user()
{
	[ "$(id -u)" -eq 0 ] || return 0
	if ! id -u "$KAPPA_TEST_USER" >/dev/null 2>&1; then
		kappa_log "creating system user $KAPPA_TEST_USER (servers refuse to run as root)"
		useradd --system --user-group --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin \
			"$KAPPA_TEST_USER"
	fi
	KAPPA_RUN_USER=$KAPPA_TEST_USER
}

# Run a command as the unprivileged user when root, else as ourselves.  The
# environment is kept; HOME and TMPDIR point into the temp dir so the user
# can write there.
kappa_run_unprivileged()
{
	if [ -n "$KAPPA_RUN_USER" ]; then
		runuser -u "$KAPPA_RUN_USER" -- \
			env HOME="$KAPPA_TMP/home" TMPDIR="$KAPPA_TMP/tmp" "$@"
	else
		"$@"
	fi
}

# Hand files to the unprivileged user (no-op when not root).
kappa_chown_unprivileged()
{
	[ -z "$KAPPA_RUN_USER" ] || chown -R "$KAPPA_RUN_USER:" "$@"
}

# Print a directory holding the repository that the unprivileged user can
# read and write: the repository itself when not root, else a copy in
# $KAPPA_TMP/tree (a fresh clone may sit under root's 0700 home, and tests
# write next to their sources).
kappa_unprivileged_tree()
{
	local tree=$KAPPA_TMP/tree

	if [ -z "$KAPPA_RUN_USER" ]; then
		printf '%s\n' "$KAPPA_ROOT"
		return 0
	fi
	rm -rf -- "$tree"
	mkdir -p "$tree"
	tar -C "$KAPPA_ROOT" --exclude=./.git --exclude=./tmp_check \
		--exclude=./results -cf - . | tar -C "$tree" -xf -
	kappa_chown_unprivileged "$tree"
	printf '%s\n' "$tree"
}

# (e, f) Create the temp dir (KAPPA_TMP) and install the cleanup trap.
kappa_make_tmp()
{
	local base=${KAPPA_TMP_BASE:-${TMPDIR:-/tmp}}

	kappa_ensure_run_user
	KAPPA_TMP=$(mktemp -d "$base/kappa-test.XXXXXX")
	trap kappa_on_exit EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	mkdir -p "$KAPPA_TMP/home" "$KAPPA_TMP/tmp"
	kappa_chown_unprivileged "$KAPPA_TMP"
	if [ -n "$KAPPA_RUN_USER" ] &&
		! runuser -u "$KAPPA_RUN_USER" -- test -w "$KAPPA_TMP"; then
		kappa_die "$KAPPA_RUN_USER cannot write to $KAPPA_TMP; set KAPPA_TMP_BASE to a directory it can reach"
	fi
}

# Register FUNCTION to run at exit, with the exit status as $1, after
# everything is stopped and the temp dir removed (hooks run in order).
kappa_at_exit()
{
	KAPPA_EXIT_HOOKS+=("$1")
}

# Register a directory under which any postmaster still running at exit is
# stopped (e.g. TAP tests' tmp_check after a timeout).
kappa_watch_pgdata_under()
{
	KAPPA_PGDATA_ROOTS+=("$1")
}

# Print the address from a broker port file: "host:port[,...]" or a bare port.
kappa_broker_address()
{
	local file=$1 addr

	[ -s "$file" ] || return 1
	addr=$(head -n 1 -- "$file" | tr -d '[:space:]')
	case $addr in
	'') return 1 ;;
	*[!0-9]*) printf '%s\n' "$addr" ;;
	*) printf '127.0.0.1:%s\n' "$addr" ;;
	esac
}

# Condition for kappa_wait_for: the broker wrote its port file and accepts
# TCP connections on its first address; gives up at once if it died.
kappa_broker_ready()
{
	local portfile=$1 addr first host port

	if ! kappa_pid_alive "$KAPPA_BROKER_PID"; then
		kappa_die "kappa-broker exited before it was ready (log: $KAPPA_BROKER_LOG)"
	fi
	addr=$(kappa_broker_address "$portfile") || return 1
	first=${addr%%,*}
	host=${first%:*}
	port=${first##*:}
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null || return 1
	KAPPA_BROKER=$addr
}

# (d) kappa_start_broker TOPIC:PARTITIONS... [--OPTION=VALUE...]
# Start $(pg_config --bindir)/kappa-broker in the background with the given
# topics (arguments starting with "-" are passed on as they are), wait up to KAPPA_BROKER_TIMEOUT seconds for its port file, and
# export KAPPA_BROKER (the bootstrap address).  Its output goes to
# $KAPPA_TMP/broker.log.
kappa_start_broker()
{
	local bin portfile topic
	local args=()

	[ -n "$KAPPA_TMP" ] || kappa_die "kappa_start_broker: call kappa_make_tmp first"
	bin=$KAPPA_ROOT/tools/kappa-broker
	[ -x "$bin" ] || kappa_die "$bin not found: did 'make' run?"
	for topic in "$@"; do
		case $topic in
		-*) args+=("$topic") ;;
		*) args+=(--topic "$topic") ;;
		esac
	done
	portfile=$KAPPA_TMP/broker.addr
	KAPPA_BROKER_LOG=$KAPPA_TMP/broker.log
	rm -f -- "$portfile"
	kappa_log "starting kappa-broker ($*)"
	"$bin" "${args[@]}" --port-file "$portfile" --quiet \
		>"$KAPPA_BROKER_LOG" 2>&1 </dev/null &
	KAPPA_BROKER_PID=$!
	kappa_wait_for "$KAPPA_BROKER_TIMEOUT" "kappa-broker's port file $portfile" \
		kappa_broker_ready "$portfile" ||
		kappa_die "kappa-broker did not become ready (log: $KAPPA_BROKER_LOG)"
	export KAPPA_BROKER
	kappa_log "kappa-broker ready at $KAPPA_BROKER (pid $KAPPA_BROKER_PID)"
}

# (e) kappa_start_cluster DBNAME [CONFIG_LINE...]
# initdb a throwaway cluster in $KAPPA_TMP/pgdata (as the unprivileged user
# when root), configure it for kappa with kappa.database = DBNAME (extra
# postgresql.conf lines come last and win), start it on a random free port
# listening on 127.0.0.1 and on a socket in $KAPPA_TMP/sock, create DBNAME,
# and export PGHOST PGPORT PGUSER PGDATABASE.
kappa_start_cluster()
{
	local db=$1 bindir port line

	shift
	[ -n "$KAPPA_TMP" ] || kappa_die "kappa_start_cluster: call kappa_make_tmp first"
	bindir=$(kappa_pg_bindir)
	port=$(kappa_free_port)
	KAPPA_PGDATA=$KAPPA_TMP/pgdata
	KAPPA_PGLOG=$KAPPA_TMP/postgres.log
	mkdir -p "$KAPPA_TMP/sock"
	kappa_chown_unprivileged "$KAPPA_TMP/sock"

	kappa_log "creating a throwaway cluster in $KAPPA_PGDATA"
	if ! kappa_run_unprivileged "$bindir/initdb" -D "$KAPPA_PGDATA" \
		-U postgres --auth=trust --encoding=UTF8 --no-locale --no-sync \
		>"$KAPPA_TMP/initdb.log" 2>&1; then
		kappa_print_tail "$KAPPA_TMP/initdb.log" 30 >&2
		kappa_die "initdb failed"
	fi
	{
		printf '\n# added by scripts/lib.sh\n'
		printf "port = %s\n" "$port"
		printf "listen_addresses = '127.0.0.1'\n"
		printf "unix_socket_directories = '%s'\n" "$KAPPA_TMP/sock"
		printf "shared_preload_libraries = 'kappa'\n"
		printf "kappa.database = '%s'\n" "$db"
		printf "max_worker_processes = 16\n"
		printf "fsync = off\n"
		printf "log_line_prefix = '%%m [%%p] %%q%%a '\n"
		for line in "$@"; do
			printf '%s\n' "$line"
		done
	} >>"$KAPPA_PGDATA/postgresql.conf"

	# The database exists before the server starts, so that kappa's launcher
	# (which connects to it) starts at once instead of retrying 10 s later.
	if [ "$db" != postgres ]; then
		printf 'CREATE DATABASE "%s"\n' "$db" |
			kappa_run_unprivileged "$bindir/postgres" --single -D "$KAPPA_PGDATA" template1 \
			>>"$KAPPA_TMP/single-user.log" 2>&1 ||
			kappa_die "could not create database $db (log: $KAPPA_TMP/single-user.log)"
	fi

	kappa_log "starting postgres on port $port (log: $KAPPA_PGLOG)"
	if ! kappa_run_unprivileged "$bindir/pg_ctl" -D "$KAPPA_PGDATA" \
		-l "$KAPPA_PGLOG" -w -t "$KAPPA_PG_START_TIMEOUT" -s start </dev/null; then
		kappa_die "postgres did not start (log: $KAPPA_PGLOG)"
	fi

	export PGHOST=$KAPPA_TMP/sock PGPORT=$port PGUSER=postgres PGDATABASE=$db
	kappa_wait_for 10 "database $db" \
		"$bindir/psql" -X -q -At -d "$db" -c 'SELECT 1' -o /dev/null ||
		kappa_die "database $db is not reachable"
}

# Stop the throwaway cluster (fast, nothing to keep).
kappa_stop_cluster()
{
	[ -n "$KAPPA_PGDATA" ] && [ -f "$KAPPA_PGDATA/postmaster.pid" ] || return 0
	kappa_run_unprivileged "$(kappa_pg_bindir)/pg_ctl" -D "$KAPPA_PGDATA" \
		-m immediate -w -t 30 -s stop </dev/null || true
}

# Stop any postmaster left running under the watched directories.
kappa_stop_leftover_clusters()
{
	local root pidfile

	for root in "${KAPPA_PGDATA_ROOTS[@]}"; do
		[ -d "$root" ] || continue
		while IFS= read -r pidfile; do
			kappa_warn "stopping leftover postmaster in ${pidfile%/*}"
			kappa_run_unprivileged "$(kappa_pg_bindir)/pg_ctl" -D "${pidfile%/*}" \
				-m immediate -w -t 30 -s stop </dev/null || true
		done < <(find "$root" -name postmaster.pid -type f 2>/dev/null)
	done
}

# Stop the broker: TERM, a bounded wait, then KILL.
kappa_stop_broker()
{
	local pid=$KAPPA_BROKER_PID

	[ -n "$pid" ] || return 0
	KAPPA_BROKER_PID=""
	if kappa_pid_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		if ! kappa_wait_for 10 "kappa-broker (pid $pid) to exit" \
			kappa_pid_gone "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
}

# (f) The EXIT trap: stop everything, remove the temp dir, then run the
# hooks (so that what they print comes last), and exit with the status.
kappa_on_exit()
{
	local rc=$? hook

	set +e
	trap - HUP INT TERM
	kappa_stop_leftover_clusters
	kappa_stop_cluster
	kappa_stop_broker
	if [ "$rc" -ne 0 ]; then
		if [ -n "$KAPPA_PGLOG" ]; then
			printf 'server log: %s\n' "$KAPPA_PGLOG"
			kappa_print_tail "$KAPPA_PGLOG" "${KAPPA_LOG_TAIL_LINES:-80}"
		fi
		[ -z "$KAPPA_BROKER_LOG" ] || kappa_print_tail "$KAPPA_BROKER_LOG" 20
	fi
	if [ -n "$KAPPA_TMP" ] && [ -d "$KAPPA_TMP" ]; then
		if [ "$KAPPA_KEEP_TMP" = 1 ]; then
			printf 'kept %s (KAPPA_KEEP_TMP=1)\n' "$KAPPA_TMP"
		else
			[ "$rc" -eq 0 ] ||
				printf 'removing %s (set KAPPA_KEEP_TMP=1 to keep it)\n' "$KAPPA_TMP"
			rm -rf -- "$KAPPA_TMP"
		fi
	fi
	for hook in "${KAPPA_EXIT_HOOKS[@]}"; do
		"$hook" "$rc"
	done
	exit "$rc"
}
