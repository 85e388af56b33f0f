#!/usr/bin/env bash
# Scrape benchmark, Hearth against Prometheus 2.42 (Debian's), in one run:
# parsing and appending a 100,000-series text-format 0.0.4 exposition, both
# servers scraping the same static file (3 variants in rotation, so that the
# values move) from one std-only Rust server (benches/scrape_exporter.rs),
# with the same prometheus.yml (scrape_interval = scrape_timeout = 5s, one
# static target). Compares scrape_duration_seconds (median, max over the
# window) and process CPU seconds per million samples scraped; VmRSS too.
# Target: Hearth <= 0.5x Prometheus. Prints Markdown. About 3 minutes
# (plus `cargo build --release -p hearth` when it is not up to date).
#
#   benches/scrape_bench.sh
#
# Sequential, not simultaneous: on a 2-core machine two servers scraping at
# the same time steal CPU from each other whenever their scrapes overlap (and
# where they fall depends on each one's hashed scrape offset), which inflates
# scrape_duration_seconds by an amount that changes from run to run and
# mixes the two CPU figures' noise. So each server runs alone, on an empty
# data dir, for the same warm-up and the same window (DURATION / INTERVAL
# whole scrapes, ends placed between two scrapes), the other one stopped. The
# price is that machine load from elsewhere is not shared equally: the report
# prints the load averages of each window (ORDER=prometheus,hearth swaps).
#
# Knobs (environment): DURATION (60) seconds measured per server; WARMUP (15)
# seconds before; INTERVAL (5) scrape interval = timeout; SERIES (100000);
# FAMILIES (200); VARIANTS (3); ORDER (hearth,prometheus); HEARTH (a prebuilt
# binary: no cargo build); PROMETHEUS (/usr/bin/prometheus); KEEP=1 keeps the
# temporary directory (the exposition files, logs, data dirs). Loopback only;
# one temporary directory; every process started here is killed by its id at
# exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/benches"
export PYTHONDONTWRITEBYTECODE=1
PROMETHEUS=${PROMETHEUS:-/usr/bin/prometheus}

log() { echo "[scrape_bench $(date -u +%H:%M:%S)] $*" >&2; }

if [ ! -x "$PROMETHEUS" ]; then
    log "installing Debian's prometheus"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
    # The package may start a service on :9090; this bench never uses it.
fi
command -v python3 >/dev/null || {
    log "installing python3"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null
}
command -v rustc >/dev/null || { echo "rustc is needed (to build benches/scrape_exporter.rs)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/hearth-scrape.XXXXXX)
PIDFILE="$TMP/pids"
: >"$PIDFILE"
PY_PID=
cleanup() {
    # Only what this run started: the driver, then the pids it recorded.
    if [ -n "$PY_PID" ]; then kill "$PY_PID" 2>/dev/null && wait "$PY_PID" 2>/dev/null || true; fi
    while read -r pid; do
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done <"$PIDFILE"
    if [ "${KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${HEARTH:-}" ]; then
    log "using the prebuilt $HEARTH"
else
    log "building hearth (cargo build --release -p hearth)"
    (cd "$ROOT" && cargo build --release -q -p hearth)
    HEARTH="$ROOT/target/release/hearth"
fi
rustc --edition 2021 -O "$BENCH/scrape_exporter.rs" -o "$TMP/scrape_exporter"

log "workdir $TMP; $("$PROMETHEUS" --version 2>&1 | head -1); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$BENCH/scrape_bench.py" \
    --hearth "$HEARTH" --prometheus "$PROMETHEUS" --exporter "$TMP/scrape_exporter" \
    --workdir "$TMP" --pidfile "$PIDFILE" --root "$ROOT" \
    --series "${SERIES:-100000}" --families "${FAMILIES:-200}" --variants "${VARIANTS:-3}" \
    --interval "${INTERVAL:-5}" --warmup "${WARMUP:-15}" --duration "${DURATION:-60}" \
    --order "${ORDER:-hearth,prometheus}" &
PY_PID=$!
rc=0
wait "$PY_PID" || rc=$?
PY_PID=
if [ "$rc" != 0 ]; then
    for f in "$TMP"/hearth.log "$TMP"/prometheus.log; do
        [ -f "$f" ] && { echo "--- last lines of $(basename "$f")" >&2; tail -n 15 "$f" >&2; }
    done
fi
exit "$rc"
