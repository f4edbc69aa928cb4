# shellcheck shell=bash
#
# Shared start/stop/status logic for the local DynamoDB emulators used by the
# tests (scripts/dynamodb-local and scripts/dynalite). This file is sourced,
# not run. The sourcing script sets:
#
#   SERVER_NAME           short name used in messages and file names
#   SERVER_MATCH          text that must appear in the server's command line;
#                         it guards against signalling a reused pid
#   SERVER_STATE_DEFAULT  state directory used when neither --state-dir nor the
#                         script's environment variable names one
#
# and defines:
#
#   server_fetch              make sure the server is installed (idempotent)
#   server_command PORT DB    fill the SERVER_CMD array and SERVER_CWD for a
#                             server listening on PORT; DB is a persistence
#                             directory, or empty for an in-memory server
#   server_path               print the directory the server is installed in
#   server_usage              print the script's usage text

set -euo pipefail

# shellcheck disable=SC2034 # used by the sourcing scripts
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034 # used by the sourcing scripts
CACHE_ROOT=${DYNAMOSTORE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dynamostore}

log() { printf '%s: %s\n' "$SERVER_NAME" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

need() {
	command -v "$1" >/dev/null 2>&1 || die "'$1' is required but was not found in PATH${2:+ ($2)}"
}

# alive PID: true while PID runs. A zombie counts as gone: once the starting
# script has exited, a stopped server is reaped by init, which can take a
# while.
alive() {
	local stat
	kill -0 "$1" 2>/dev/null || return 1
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	[[ ${stat:0:1} != Z ]]
}

# proc_matches PID: true when PID is alive and its command line contains
# SERVER_MATCH, i.e. it is still the process this script started.
proc_matches() {
	local pid=$1 cmdline
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	alive "$pid" || return 1
	[[ -r /proc/$pid/cmdline ]] || return 0 # no procfs: trust the pid
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$SERVER_MATCH"* ]]
}

# free_port prints a TCP port that is free on all interfaces right now.
free_port() {
	if command -v node >/dev/null 2>&1; then
		node -e 'const s=require("net").createServer();s.listen(0,()=>{console.log(s.address().port);s.close();});'
		return
	fi
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket;s=socket.socket();s.bind(("",0));print(s.getsockname()[1]);s.close()'
		return
	fi
	local port i
	for ((i = 0; i < 100; i++)); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "could not find a free port"
}

# http_answers URL: true when something at URL answers HTTP at all (any
# status code counts).
http_answers() {
	local url=$1
	if command -v curl >/dev/null 2>&1; then
		curl -s -o /dev/null --max-time 2 -X POST -H 'Content-Type: application/x-amz-json-1.0' "$url" 2>/dev/null
		return
	fi
	node -e '
		const req = require("http").request(process.argv[1], {method: "POST", timeout: 2000}, (res) => {
			res.resume(); process.exit(0);
		});
		req.on("error", () => process.exit(1));
		req.on("timeout", () => { req.destroy(); process.exit(1); });
		req.end();
	' "$url" 2>/dev/null
}

state_file() { printf '%s/%s' "$STATE_DIR" "$1"; }

# running_pid prints the pid recorded in the state directory when that
# process is still our server; otherwise it prints nothing and fails.
running_pid() {
	local f pid
	f=$(state_file pid)
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	proc_matches "$pid" || return 1
	echo "$pid"
}

# kill_pid PID: TERM, wait up to 15s, then KILL; waits for the exit.
kill_pid() {
	local pid=$1 i
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 150; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	log "pid $pid did not exit after SIGTERM; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	die "pid $pid is still running after SIGKILL"
}

stop_watcher() {
	local f pid cmdline
	f=$(state_file watch.pid)
	[[ -f $f ]] || return 0
	pid=$(<"$f")
	rm -f "$f"
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	if [[ -r /proc/$pid/cmdline ]]; then
		cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 0
		[[ $cmdline == *"$SERVER_NAME-watch"* ]] || return 0
	fi
	kill "$pid" 2>/dev/null || true
}

clear_state() {
	rm -f "$(state_file pid)" "$(state_file endpoint)" "$(state_file port)" "$(state_file watch.pid)"
}

# start_watcher OWNER SERVER: a detached helper that stops SERVER once OWNER
# exits, so a test binary that dies without cleaning up leaves nothing behind.
# It then removes the state files, as cmd_stop does.
start_watcher() {
	local owner=$1 server=$2
	bash -c '
		owner=$1 server=$2 match=$3 state=$4
		while kill -0 "$owner" 2>/dev/null && kill -0 "$server" 2>/dev/null; do
			sleep 1
		done
		if kill -0 "$server" 2>/dev/null; then
			if [[ ! -r /proc/$server/cmdline ]] || tr "\0" " " <"/proc/$server/cmdline" | grep -qF -- "$match"; then
				kill "$server" 2>/dev/null
				for ((i = 0; i < 150; i++)); do
					kill -0 "$server" 2>/dev/null || break
					sleep 0.1
				done
			fi
		fi
		if [[ $(cat "$state/pid" 2>/dev/null) == "$server" ]]; then
			rm -f "$state/pid" "$state/endpoint" "$state/port" "$state/watch.pid" "$state/server.log"
			rmdir "$state" 2>/dev/null
		fi
	' "$SERVER_NAME-watch" "$owner" "$server" "$SERVER_MATCH" "$STATE_DIR" </dev/null >/dev/null 2>&1 &
	echo $! >"$(state_file watch.pid)"
}

cmd_start() {
	local db_path=$1 watch_pid=$2 timeout=$3 fixed_port=$4
	local pid endpoint port deadline logf
	if pid=$(running_pid); then
		endpoint=$(<"$(state_file endpoint)")
		log "already running (pid $pid) at $endpoint; state in $STATE_DIR"
		echo "$endpoint"
		return 0
	fi
	clear_state
	server_fetch
	mkdir -p "$STATE_DIR"
	if [[ -n $db_path ]]; then
		mkdir -p "$db_path"
		db_path=$(cd "$db_path" && pwd)
	fi
	logf=$(state_file server.log)
	for _ in 1 2 3; do
		port=${fixed_port:-$(free_port)}
		endpoint="http://127.0.0.1:$port"
		server_command "$port" "$db_path"
		log "starting on port $port (log: $logf)"
		printf '== %s: %s (cwd %s)\n' "$(date '+%F %T')" "${SERVER_CMD[*]}" "$SERVER_CWD" >>"$logf"
		(cd "$SERVER_CWD" && exec "${SERVER_CMD[@]}") </dev/null >>"$logf" 2>&1 &
		pid=$!
		echo "$pid" >"$(state_file pid)"
		deadline=$((SECONDS + timeout))
		while ((SECONDS < deadline)); do
			if ! alive "$pid"; then
				break
			fi
			if http_answers "$endpoint/"; then
				echo "$endpoint" >"$(state_file endpoint)"
				echo "$port" >"$(state_file port)"
				if [[ -n $watch_pid ]]; then
					start_watcher "$watch_pid" "$pid"
				fi
				log "ready at $endpoint (pid $pid)"
				echo "$endpoint"
				return 0
			fi
			sleep 0.2
		done
		if alive "$pid"; then
			kill_pid "$pid" || true
			clear_state
			log "server did not answer at $endpoint within ${timeout}s; last lines of $logf:"
			tail -n 30 "$logf" >&2 || true
			exit 1
		fi
		wait "$pid" 2>/dev/null || true
		clear_state
		if [[ -n $fixed_port ]] || ! grep -qiE 'address already in use|EADDRINUSE|BindException' "$logf"; then
			break
		fi
		log "port $port was taken before the server could bind it; retrying"
	done
	log "server exited before it answered; last lines of $logf:"
	tail -n 30 "$logf" >&2 || true
	exit 1
}

cmd_stop() {
	local f pid
	stop_watcher
	f=$(state_file pid)
	if [[ -f $f ]]; then
		pid=$(<"$f")
		if proc_matches "$pid"; then
			log "stopping pid $pid"
			kill_pid "$pid"
		fi
	fi
	clear_state
	rm -f "$(state_file server.log)"
	rmdir "$STATE_DIR" 2>/dev/null || true
}

cmd_status() {
	local pid
	if pid=$(running_pid); then
		echo "running pid=$pid endpoint=$(<"$(state_file endpoint)") state=$STATE_DIR"
		return 0
	fi
	echo "not running (state=$STATE_DIR)"
	return 1
}

# server_main ARGS...: parse the common command line and dispatch.
server_main() {
	local cmd="" db_path="" watch_pid="" timeout=${LOCAL_SERVER_START_TIMEOUT:-120} fixed_port=""
	STATE_DIR=$SERVER_STATE_DEFAULT
	while (($#)); do
		case $1 in
		--state-dir) STATE_DIR=${2:?--state-dir needs a value}; shift 2 ;;
		--state-dir=*) STATE_DIR=${1#*=}; shift ;;
		--db-path) db_path=${2:?--db-path needs a value}; shift 2 ;;
		--db-path=*) db_path=${1#*=}; shift ;;
		--watch-pid) watch_pid=${2:?--watch-pid needs a value}; shift 2 ;;
		--watch-pid=*) watch_pid=${1#*=}; shift ;;
		--timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
		--timeout=*) timeout=${1#*=}; shift ;;
		--port) fixed_port=${2:?--port needs a value}; shift 2 ;;
		--port=*) fixed_port=${1#*=}; shift ;;
		-h | --help | help) server_usage; return 0 ;;
		-*) server_usage >&2; die "unknown option $1" ;;
		*)
			[[ -z $cmd ]] || { server_usage >&2; die "unexpected argument $1"; }
			cmd=$1
			shift
			;;
		esac
	done
	[[ -n $cmd ]] || { server_usage >&2; exit 2; }
	[[ $timeout =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
	[[ -z $watch_pid || $watch_pid =~ ^[0-9]+$ ]] || die "--watch-pid must be a pid"
	[[ -z $fixed_port || $fixed_port =~ ^[0-9]+$ ]] || die "--port must be a number"
	mkdir -p "$(dirname "$STATE_DIR")"
	STATE_DIR=$(cd "$(dirname "$STATE_DIR")" && pwd)/$(basename "$STATE_DIR")
	case $cmd in
	start) cmd_start "$db_path" "$watch_pid" "$timeout" "$fixed_port" ;;
	stop) cmd_stop ;;
	status) cmd_status ;;
	fetch) server_fetch ;;
	path)
		server_fetch
		server_path
		;;
	*)
		server_usage >&2
		die "unknown command $cmd"
		;;
	esac
}
