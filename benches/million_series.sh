#!/usr/bin/env bash
# One million series through remote write: Hearth standalone vs Prometheus 2.42.
#
#   benches/million_series.sh [million_series.py options, e.g. --series 200000]
#
# Builds `hearth` (release), installs Debian's prometheus and python-snappy if
# missing, then runs benches/million_series.py in a fresh temp dir: the same
# pre-encoded remote-write 1.0 requests go to each server in turn; it reports
# VmRSS per series after the load, and the time from a restart after SIGKILL to
# `/-/ready` (WAL replay), with the ratio Hearth/Prometheus.
# Loopback only; every process started is killed on exit; the temp dir is
# removed unless KEEP=1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"
if [ ! -x "$PROMETHEUS" ]; then
    echo "installing Debian's prometheus" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
    # The package starts a service on :9090 on some systems; this bench never uses it.
fi
python3 -c 'import snappy, requests' 2>/dev/null || pip install -q python-snappy requests

cargo build --release -p hearth >&2
HEARTH="$ROOT/target/release/hearth"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/hearth-million.XXXXXX")"
PIDS="$WORK/pids"
: >"$PIDS"
cleanup() {
    # Kill only what this run started (pids recorded by million_series.py).
    if [ -n "${PY_PID:-}" ]; then kill -9 "$PY_PID" 2>/dev/null || true; fi
    while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$PIDS"
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "workdir $WORK; $("$PROMETHEUS" --version 2>&1 | head -1); $(nproc) cores" >&2
python3 "$ROOT/benches/million_series.py" --hearth "$HEARTH" --prometheus "$PROMETHEUS" \
    --workdir "$WORK" --pidfile "$PIDS" "$@" &
PY_PID=$!
rc=0
wait "$PY_PID" || rc=$?
PY_PID=
if [ "$rc" != 0 ]; then
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }; done
fi
exit "$rc"
