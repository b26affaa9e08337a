#!/usr/bin/env bash
# Starts (or stops) the two emulators the GCP engines are tested against:
#   - the Firestore emulator, from the gcloud SDK (needs Java 17);
#   - the Cloud Tasks emulator, github.com/aertje/cloud-tasks-emulator v1.2.0,
#     downloaded from the Go module proxy and built from the module cache.
#
#   scripts/emulators.sh start   # prints the exports to eval
#   scripts/emulators.sh stop
#
# Used by .ci/run; developers can run it by hand:
#   eval "$(scripts/emulators.sh start)" && make test
set -euo pipefail

STATE_DIR="${EMULATOR_STATE_DIR:-${TMPDIR:-/tmp}/eventrelay-emulators}"
FIRESTORE_ADDR="${FIRESTORE_ADDR:-127.0.0.1:8765}"
CLOUD_TASKS_ADDR="${CLOUD_TASKS_ADDR:-127.0.0.1:8123}"
CLOUD_TASKS_EMULATOR_VERSION=v1.2.0
# The emulator serves an OpenID issuer for the OIDC tokens it puts on tasks.
CLOUD_TASKS_OIDC_ADDR="${CLOUD_TASKS_OIDC_ADDR:-127.0.0.1:8980}"

log() { echo "emulators: $*" >&2; }

wait_for() { # name url-or-hostport seconds
	local name=$1 target=$2 secs=$3 i
	for ((i = 0; i < secs * 10; i++)); do
		if [[ $target == http* ]]; then
			curl -fsS -o /dev/null "$target" 2>/dev/null && return 0
		else
			(exec 3<>"/dev/tcp/${target%:*}/${target#*:}") 2>/dev/null && return 0
		fi
		sleep 0.1
	done
	log "$name not ready after ${secs}s; its log:"
	tail -n 40 "$STATE_DIR/$name.log" >&2 || true
	return 1
}

build_cloud_tasks() {
	local bin="$STATE_DIR/cloud-tasks-emulator-$CLOUD_TASKS_EMULATOR_VERSION"
	if [[ ! -x $bin ]]; then
		log "building cloud-tasks-emulator $CLOUD_TASKS_EMULATOR_VERSION from the module cache"
		local dir src
		dir=$(cd "$STATE_DIR" && GOFLAGS=-mod=mod go mod download -json "github.com/aertje/cloud-tasks-emulator@$CLOUD_TASKS_EMULATOR_VERSION" |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		[[ -d $dir ]] || { log "module download failed"; return 1; }
		src=$(mktemp -d)
		cp -r "$dir/." "$src" && chmod -R u+w "$src"
		(cd "$src" && go build -trimpath -o "$bin" .)
		rm -rf "$src"
	fi
	echo "$bin"
}

start() {
	mkdir -p "$STATE_DIR"
	stop_quiet
	if command -v gcloud >/dev/null 2>&1; then
		log "starting the Firestore emulator on $FIRESTORE_ADDR"
		# setsid: the emulator is a tree of processes (gcloud -> java); stop
		# kills the whole group.
		setsid gcloud emulators firestore start --host-port="$FIRESTORE_ADDR" --quiet \
			>"$STATE_DIR/firestore.log" 2>&1 </dev/null &
		echo $! >"$STATE_DIR/firestore.pid"
	else
		log "gcloud not found: no Firestore emulator"
	fi

	local bin
	bin=$(build_cloud_tasks)
	log "starting the Cloud Tasks emulator on $CLOUD_TASKS_ADDR"
	setsid "$bin" -host "${CLOUD_TASKS_ADDR%:*}" -port "${CLOUD_TASKS_ADDR#*:}" \
		-openid-issuer "http://$CLOUD_TASKS_OIDC_ADDR" -hard-reset-on-purge-queue \
		>"$STATE_DIR/cloudtasks.log" 2>&1 </dev/null &
	echo $! >"$STATE_DIR/cloudtasks.pid"

	wait_for cloudtasks "$CLOUD_TASKS_ADDR" 60
	echo "export CLOUD_TASKS_EMULATOR_HOST=$CLOUD_TASKS_ADDR"
	echo "export CLOUD_TASKS_EMULATOR_OIDC_ISSUER=http://$CLOUD_TASKS_OIDC_ADDR"
	if [[ -f $STATE_DIR/firestore.pid ]]; then
		wait_for firestore "http://$FIRESTORE_ADDR" 120
		echo "export FIRESTORE_EMULATOR_HOST=$FIRESTORE_ADDR"
	fi
	log "ready"
}

stop_quiet() {
	local f pid
	for f in "$STATE_DIR"/*.pid; do
		[[ -f $f ]] || continue
		pid=$(cat "$f")
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$pid" 2>/dev/null || true
		rm -f "$f"
	done
}

stop() {
	mkdir -p "$STATE_DIR"
	stop_quiet
	log "stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
