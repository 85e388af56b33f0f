#!/usr/bin/env bash
# Hearth against Prometheus 2.42 (Debian's prometheus/promtool), in one run:
#   1. storage: bytes per sample of `create-blocks-from openmetrics` on 24 h
#      of the demo data set of shared/tools/promrw.py;
#   2. ingest: remote-write samples/s, and resident memory per active series
#      after the load, with the same pre-encoded requests and the same client.
# Prints Markdown tables (the ones pasted in benches/README.md).
#
#   benches/compare.sh
#
# Knobs (environment): REPLICAS (28), POINTS (240), SHARDS (4), MAX_SAMPLES
# (2000) shape the ingest data (see gen.py); ROUNDS (2) ingest rounds per
# system (the summary takes each system's best); KEEP=1 keeps the temporary
# directory. Loopback only; everything lives in one temporary directory that
# is removed at the end; every process started here is killed by its id.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/benches"
export PROMRW_DIR="${PROMRW_DIR:-$ROOT/../shared/tools}"
REPLICAS=${REPLICAS:-28}
POINTS=${POINTS:-240}
SHARDS=${SHARDS:-4}
MAX_SAMPLES=${MAX_SAMPLES:-2000}
ROUNDS=${ROUNDS:-2}

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
bench_log_as compare

# ---- prerequisites ---------------------------------------------------------
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    log "installing Debian's prometheus"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
if ! python3 -c 'import snappy, requests' 2>/dev/null; then
    log "installing python-snappy and requests"
    python3 -m pip install -q python-snappy requests
fi
[ -f "$PROMRW_DIR/promrw.py" ] || { echo "no promrw.py in $PROMRW_DIR" >&2; exit 1; }

bench_tmp hearth-bench
RES="$TMP/results"
mkdir -p "$RES"

log "building hearth (cargo build --release -p hearth) and the load client"
(cd "$ROOT" && cargo build --release -q -p hearth)
HEARTH="$ROOT/target/release/hearth"
rustc --edition 2021 -O "$BENCH/loadgen.rs" -o "$TMP/loadgen"

T_START=$(date +%s)
python3 - "$RES/env.json" "$ROOT" <<'EOF'
import json, os, socket, subprocess, sys, datetime
prom = subprocess.run(["prometheus", "--version"], capture_output=True, text=True)
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "host": socket.gethostname(), "cores": os.cpu_count(),
    "loadavg": open("/proc/loadavg").read().split()[0],
    "prometheus": (prom.stdout + prom.stderr).splitlines()[0].strip(),
    "hearth": "hearth %s" % subprocess.run(["git", "-C", sys.argv[2], "describe", "--always", "--dirty"],
                                          capture_output=True, text=True).stdout.strip(),
}, open(sys.argv[1], "w"))
EOF

# ---- data ------------------------------------------------------------------
log "generating the data set (24 h OpenMetrics + remote-write requests)"
python3 "$BENCH/gen.py" "$TMP" --replicas "$REPLICAS" --points "$POINTS" \
    --shards "$SHARDS" --max-samples "$MAX_SAMPLES" > "$RES/gen.json"
cat "$RES/gen.json" >&2

# ---- 1. storage ------------------------------------------------------------
storage() { # name, command... (the command writes blocks into $TMP/blocks-name)
    local name=$1; shift
    log "storage: $name"
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$TMP/$name-backfill.log" 2>&1 || { cat "$TMP/$name-backfill.log" >&2; exit 1; }
    t1=$(date +%s.%N)
    python3 "$BENCH/report.py" blocks "$TMP/blocks-$name" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); d["seconds"]=float(sys.argv[2])-float(sys.argv[1]); print(json.dumps(d))' \
            "$t0" "$t1" > "$RES/storage_$name.json"
    cat "$RES/storage_$name.json" >&2
    rm -rf "$TMP/blocks-$name"
}
storage prometheus promtool tsdb create-blocks-from openmetrics "$TMP/data.om" "$TMP/blocks-prometheus"
storage hearth "$HEARTH" tools create-blocks-from openmetrics "$TMP/data.om" "$TMP/blocks-hearth"
rm -f "$TMP/data.om"

# ---- 2. ingest -------------------------------------------------------------
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

ingest() { # name, port, head-series metric, server command...
    local name=$1 port=$2 series_metric=$3; shift 3
    log "ingest: $name on 127.0.0.1:$port"
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    "$@" > "$TMP/$name-server.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    local ok=0
    for _ in $(seq 150); do
        if curl -sf -o /dev/null "http://127.0.0.1:$port/-/ready"; then ok=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    [ $ok = 1 ] || { echo "$name did not become ready" >&2; cat "$TMP/$name-server.log" >&2; exit 1; }
    sleep 1
    local idle
    idle=$(rss_kb "$pid")
    "$TMP/loadgen" "$TMP/batches.bin" "127.0.0.1:$port" /api/v1/write > "$TMP/$name-load.json"
    sleep 2
    local after series
    after=$(rss_kb "$pid")
    series=$(python3 "$BENCH/report.py" metric "http://127.0.0.1:$port/metrics" "$series_metric")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.update(rss_idle_kb=int(sys.argv[2]), rss_after_kb=int(sys.argv[3]), head_series=int(sys.argv[4]), loadavg=sys.argv[5]); print(json.dumps(d))' \
        "$TMP/$name-load.json" "$idle" "$after" "$series" "$load" > "$RES/ingest_$name.json"
    cat "$RES/ingest_$name.json" >&2
}
: > "$TMP/empty.yml"
run_hearth() {
    local port
    port=$(python3 "$BENCH/report.py" freeport)
    rm -rf "$TMP/hearth-data"
    ingest "hearth-$1" "$port" hearth_tsdb_head_series \
        "$HEARTH" standalone --config.file "$TMP/empty.yml" --storage.tsdb.path "$TMP/hearth-data" --web.listen-address "127.0.0.1:$port"
}
run_prometheus() {
    local port
    port=$(python3 "$BENCH/report.py" freeport)
    rm -rf "$TMP/prometheus-data"
    ingest "prometheus-$1" "$port" prometheus_tsdb_head_series \
        prometheus --config.file="$TMP/empty.yml" --storage.tsdb.path="$TMP/prometheus-data" \
        --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver
}
# Each server alone, on a fresh data directory, every round; the order
# alternates so that neither always runs first.
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then run_hearth "$r"; run_prometheus "$r"
    else run_prometheus "$r"; run_hearth "$r"; fi
done

log "done in $(( $(date +%s) - T_START )) s (after the build)"
echo
python3 "$BENCH/report.py" table "$RES"
