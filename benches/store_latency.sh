#!/usr/bin/env bash
# PromQL latency through `hearth query` -> `hearth store` (the data only in
# the bucket) against Prometheus 2.42 answering from its own disk, in one run,
# and the store gateway's resident memory per block and per million series.
#
#   benches/store_latency.sh
#
# Data: promrw.py's demo data set (3 h at 5 s, 708 series) ending at END
# (hour-aligned, two hours before now: every sample is then older than the
# head's span) is remote-written into Prometheus and into a loader `hearth
# standalone` that ships 1 h blocks to a FILESYSTEM bucket; the loader also
# gets one filler series running an hour past END, so that its head cuts
# blocks up to END. The loader stops; `hearth store` serves the bucket and
# `hearth query` has it as its only endpoint. Then query_latency.py measures
# the dev query list on both (instant at END-30m, range [END-2h, END] step
# 60 s; medians of RUNS timed GETs, servers alternating; the filler series is
# excluded from no query, it adds at most one series to `{__name__=~".+"}`).
#
# Memory: a second bucket of MEM_SERIES series (default 200,000) with a
# sample every 5 min over 2 h, shipped as 1 h blocks; `hearth store` serves it;
# its VmRSS after the initial sync and after a query touching every series
# (`count({__name__="mem_series"})` over the 2 h), divided by blocks and by
# millions of series.
#
# Knobs: RUNS (7), QUERIES (shared/tools/dev-queries.txt), HEARTH (prebuilt
# binary), MEM_SERIES (200000; 0 skips the memory part), KEEP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/benches"
export PYTHONDONTWRITEBYTECODE=1
export PROMRW_DIR="${PROMRW_DIR:-$ROOT/../shared/tools}"
QUERIES=${QUERIES:-$PROMRW_DIR/dev-queries.txt}
RUNS=${RUNS:-7}
MEM_SERIES=${MEM_SERIES:-200000}
END=$(( $(date +%s) / 3600 * 3600 - 7200 ))

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
bench_log_as store_latency

command -v prometheus >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
}
python3 -c 'import snappy, requests' 2>/dev/null || python3 -m pip install -q python-snappy requests

bench_tmp hearth-storelat

if [ -z "${HEARTH:-}" ]; then
    log "building hearth (cargo build --release -p hearth)"
    (cd "$ROOT" && cargo build --release -q -p hearth)
    HEARTH="$ROOT/target/release/hearth"
fi
rustc --edition 2021 -O "$BENCH/qclient.rs" -o "$TMP/qclient"
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
    for _ in $(seq 600); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
    echo "$1 not ready" >&2; exit 1
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# Loads a data set (python snippet on stdin gets URLS) into a loader that
# ships 1 h blocks to bucket $1, then waits until the blocks up to $2 (ms)
# are in the bucket and stops the loader.
load_bucket() {
    local bucket=$1 until_ms=$2 extra_urls=$3 port
    port=$(freeport)
    mkdir -p "$bucket" "$bucket.data"
    printf 'type: FILESYSTEM\nconfig:\n  directory: %s\n' "$bucket" > "$bucket.yml"
    printf 'global:\n  external_labels:\n    bench: store\nscrape_configs: []\n' > "$bucket.cfg"
    "$HEARTH" standalone --config.file "$bucket.cfg" --storage.tsdb.path "$bucket.data" \
        --web.listen-address "127.0.0.1:$port" --objstore.config-file "$bucket.yml" \
        --storage.tsdb.min-block-duration 1h --storage.tsdb.compaction-interval 1s \
        --storage.tsdb.retention.time 0 >"$bucket.log" 2>&1 &
    local pid=$!
    wait_ready "http://127.0.0.1:$port/-/ready"
    URLS="http://127.0.0.1:$port/api/v1/write $extra_urls" python3 - || { kill $pid; exit 1; }
    # The filler: one series from the data's end to an hour past it, so the
    # head cuts every block up to the end.
    URL="http://127.0.0.1:$port/api/v1/write" UNTIL="$until_ms" python3 - <<'EOF'
import os, sys
sys.path.insert(0, os.environ["PROMRW_DIR"])
import promrw
u = int(os.environ["UNTIL"])
samples = [(u + i * 60_000, float(i)) for i in range(62)]
code, text = promrw.push(os.environ["URL"], [({"__name__": "bench_filler"}, samples)])
assert code // 100 == 2, (code, text)
EOF
    for _ in $(seq 600); do
        if python3 - "$bucket" "$until_ms" <<'EOF'
import json, os, sys
bucket, until = sys.argv[1], int(sys.argv[2])
maxt = [json.load(open(os.path.join(bucket, d, "meta.json")))["maxTime"]
        for d in os.listdir(bucket) if os.path.exists(os.path.join(bucket, d, "meta.json"))]
sys.exit(0 if maxt and max(maxt) >= until else 1)
EOF
        then break; fi
        sleep 1
    done
    kill $pid; wait $pid 2>/dev/null || true
    log "bucket $bucket: $(ls "$bucket" | wc -l) blocks"
}

serve_bucket() { # bucket → sets STORE_PID, QUERY_URL
    local grpc http qport
    grpc=$(freeport); http=$(freeport); qport=$(freeport)
    "$HEARTH" store --objstore.config-file "$1.yml" --data-dir "$1.store" \
        --grpc-address "127.0.0.1:$grpc" --http-address "127.0.0.1:$http" >"$1.store.log" 2>&1 &
    STORE_PID=$!; PIDS+=($STORE_PID)
    wait_ready "http://127.0.0.1:$http/-/ready"
    "$HEARTH" query --endpoint "127.0.0.1:$grpc" --http-address "127.0.0.1:$qport" \
        --store.refresh-interval 1s >"$1.query.log" 2>&1 &
    QUERY_PID=$!; PIDS+=($QUERY_PID)
    QUERY_URL="http://127.0.0.1:$qport"
    wait_ready "$QUERY_URL/-/ready"
    sleep 2
}

# ---- latency ----------------------------------------------------------------
PPORT=$(freeport)
mkdir -p "$TMP/prom"
echo "scrape_configs: []" > "$TMP/empty.yml"
/usr/bin/prometheus --config.file="$TMP/empty.yml" --storage.tsdb.path="$TMP/prom" \
    --web.listen-address="127.0.0.1:$PPORT" --web.enable-remote-write-receiver >"$TMP/prom.log" 2>&1 &
PPID_=$!; PIDS+=($PPID_)
wait_ready "http://127.0.0.1:$PPORT/-/ready"
log "loading the demo data set (END=$(date -u -d @"$END" +%FT%TZ)) into Prometheus and the bucket"
load_bucket "$TMP/bucket" $(( END * 1000 )) "http://127.0.0.1:$PPORT/api/v1/write" <<EOF
import os, sys
sys.path.insert(0, os.environ["PROMRW_DIR"])
import promrw
data, times = promrw.demo_dataset(($END - 3 * 3600) * 1000)
promrw.push_time_ordered(os.environ["URLS"].split(), data, times)
EOF
serve_bucket "$TMP/bucket"
python3 "$BENCH/query_latency.py" --no-push \
    --hearth "$QUERY_URL" --prometheus "http://127.0.0.1:$PPORT" \
    --queries "$QUERIES" --end "$END" --runs "$RUNS" \
    --hearth-pid "$STORE_PID" --prometheus-pid "$PPID_" --root "$ROOT" --qclient "$TMP/qclient" \
    --hearth-version "hearth query -> hearth store ($("$HEARTH" --version | head -1))"
kill "$STORE_PID" "$QUERY_PID" "$PPID_" 2>/dev/null || true

# ---- memory -----------------------------------------------------------------
[ "$MEM_SERIES" -gt 0 ] || exit 0
log "loading $MEM_SERIES series (2 h at 5 min) into a second bucket"
MEND=$(( END * 1000 ))
load_bucket "$TMP/mem" "$MEND" "" <<EOF
import os, sys
sys.path.insert(0, os.environ["PROMRW_DIR"])
import promrw
n, end = $MEM_SERIES, $MEND
urls = os.environ["URLS"].split()
for t in range(end - 7200_000, end, 300_000):
    for lo in range(0, n, 20000):
        batch = [({"__name__": "mem_series", "id": str(i), "group": str(i % 100)}, [(t, float(i))])
                 for i in range(lo, min(n, lo + 20000))]
        for u in urls:
            code, text = promrw.push(u, batch)
            assert code // 100 == 2, (code, text[:200])
EOF
serve_bucket "$TMP/mem"
BLOCKS=$(ls "$TMP/mem" | grep -c -v '\.')
SERIES_IN_BLOCKS=$(python3 -c "
import json, os, sys
b = sys.argv[1]
print(sum(json.load(open(os.path.join(b, d, 'meta.json')))['stats']['numSeries'] for d in os.listdir(b) if os.path.exists(os.path.join(b, d, 'meta.json'))))" "$TMP/mem")
RSS_SYNC=$(rss_kb "$STORE_PID")
curl -sf "$QUERY_URL/api/v1/query" --data-urlencode 'query=count(count_over_time(mem_series[2h]))' \
    --data-urlencode "time=$END" >"$TMP/mem.answer"
RSS_QUERY=$(rss_kb "$STORE_PID")
python3 - "$BLOCKS" "$SERIES_IN_BLOCKS" "$RSS_SYNC" "$RSS_QUERY" "$TMP/mem.answer" <<'EOF'
import json, sys
blocks, series, sync_kb, query_kb = map(int, sys.argv[1:5])
answer = json.load(open(sys.argv[5]))["data"]["result"]
print()
print("Store gateway memory: %d blocks holding %d series (sum over blocks; %s series counted by the query)."
      % (blocks, series, answer[0]["value"][1] if answer else "0"))
print()
print("| state | VmRSS MiB | per block MiB | per million series MiB |")
print("|---|---:|---:|---:|")
for name, kb in (("after the initial sync", sync_kb), ("after a query over every series", query_kb)):
    mib = kb / 1024
    print("| %s | %.1f | %.2f | %.1f |" % (name, mib, mib / blocks, mib / (series / 1e6)))
EOF
