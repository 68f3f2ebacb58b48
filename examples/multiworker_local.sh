#!/usr/bin/env bash
# Multi-worker training on one machine: NUM_WORKERS `keras-dae train
# --strategy multiworker` processes on 127.0.0.1, each told the cluster and
# its own index through TF_CONFIG, all with the same arguments. Worker 0 is
# the chief: it writes the run directory (--out); the others only keep a
# backup beside it while training (RUN/backup-worker-1, ...), removed at the end.
#
#   examples/multiworker_local.sh --out runs/mw --root data/synthetic --is-wav \
#       --num-bins 256 --epochs 2 --steps-per-epoch 5
#
# NUM_WORKERS (default 2) sets the number of workers; KERAS_DAE the command
# (default: keras-dae on PATH). The chief's output goes to the terminal, the
# other workers' to files in a temporary directory this script names. If a
# worker fails or you press Ctrl-C, all of them are stopped.
#
# On a cluster, run the same command on every machine with TF_CONFIG naming
# every machine's host:port and that machine's own index (see the README).
set -euo pipefail

NUM_WORKERS=${NUM_WORKERS:-2}
KERAS_DAE=${KERAS_DAE:-keras-dae}
PYTHON=${PYTHON:-python3}
if [ "$#" -eq 0 ]; then
    sed -n '2,17s/^# \{0,1\}//p' "$0" >&2
    exit 2
fi

# Free ports, chosen by the OS.
read -r -a PORTS <<< "$("$PYTHON" - "$NUM_WORKERS" <<'EOF'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
EOF
)"
WORKERS=""
for port in "${PORTS[@]}"; do
    WORKERS="${WORKERS:+$WORKERS, }\"127.0.0.1:$port\""
done
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/keras-dae-workers.XXXXXX")

PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap 'stop_all; exit 130' INT TERM

for ((index = 0; index < NUM_WORKERS; index++)); do
    export TF_CONFIG="{\"cluster\": {\"worker\": [$WORKERS]}, \"task\": {\"type\": \"worker\", \"index\": $index}}"
    if [ "$index" -eq 0 ]; then
        "$KERAS_DAE" train --strategy multiworker "$@" &
    else
        "$KERAS_DAE" train --strategy multiworker "$@" > "$LOGS/worker-$index.log" 2>&1 &
    fi
    PIDS+=("$!")
done
unset TF_CONFIG
echo "started $NUM_WORKERS workers on 127.0.0.1 (ports ${PORTS[*]}); logs of workers 1+ in $LOGS" >&2

status=0
for index in "${!PIDS[@]}"; do
    if ! wait "${PIDS[$index]}"; then
        echo "worker $index failed$([ "$index" -gt 0 ] && echo "; see $LOGS/worker-$index.log")" >&2
        status=1
        stop_all
    fi
done
exit "$status"
