#!/usr/bin/env bash
# Remote-write ingestion, Hearth's replicated ingesters against Prometheus
# 2.42 (Debian's) as a remote-write receiver, in one run, with the same load
# generator and the same data.
#
#   benches/ingest_write.sh
#
# What is measured: acknowledged samples per second and the write latency
# (p50, p99, max) of remote write 1.0 requests, as seen by a closed-loop
# client; errors; the servers' CPU seconds per million acknowledged samples
# and resident memory after the load; and, as a check, the samples and
# series each system then answers for with PromQL
# (`sum(count_over_time(...))`, `count(last_over_time(...))`) against the
# samples it acknowledged.
#
# Against what:
# - Hearth: 3 `hearth ingest` processes (node ids 1, 2, 3) on this machine,
#   4 shards, replication factor 3 (every shard on all three; a write is
#   acknowledged with 204 once a quorum of 2 committed it in raft). Writer i
#   posts to ingester i % 3, as a load balancer in front of them would; an
#   ingester forwards the shards it does not lead to their leaders.
# - Prometheus 2.42 (`/usr/bin/prometheus --web.enable-remote-write-receiver`,
#   a configuration without scrape jobs, its own empty TSDB directory): one
#   node, no replication; every writer posts to it.
#
# Data and load (benches/rwload.rs, built here with cargo): SERIES (10,000)
# Prometheus-like series, 100 per target (node exporter CPU, memory,
# filesystem, network, load; HTTP request counters and a latency histogram;
# process and Go gauges; 6 to 9 labels: job, instance, namespace, pod,
# cluster and the family's own), split over WRITERS (8) threads that each
# own their series. Each writer, on one keep-alive HTTP/1.1 connection, sends
# "scrapes" of its series one data-second apart (timestamps start an hour
# ago and advance 1 s per scrape, as fast as the receiver answers: a 1 s
# scrape cadence compressed in time), as requests of at most BATCH (500)
# series x 1 sample, protobuf + snappy, each after the previous answer. The
# first WARMUP (5) seconds are not counted; then DURATION (20) seconds are.
# Only 2xx answers count as acknowledged.
#
# Each system runs alone on fresh temporary directories, ROUNDS (2) times in
# the order H P P H ..., and the table pools the rounds (samples/s = all
# acknowledged samples over all measured seconds; latency percentiles over
# all counted requests). The machine's cores (2 where the latest figures
# were taken) are shared by everything: Hearth's three ingesters and the
# load generator compete for them, as do Prometheus and the load generator;
# the report names the core count and load averages. Server CPU is read
# from /proc (utime + stime of every server process over the whole load,
# warm-up included, per million samples acknowledged in it). About 2.5
# minutes, plus the release build when it is not up to date (1.5 minutes
# after a commit touching the ingester, on 2 cores).
#
# Timestamps are in the past until the load has written an hour of data
# time (about 36 M samples at 10,000 series), and Hearth refuses samples
# more than 10 minutes in the future: keep SERIES x scrapes below that.
#
# Knobs (environment): WRITERS (8), SERIES (10000), BATCH (500), DURATION
# (20), WARMUP (5), ROUNDS (2), SHARDS (4); HEARTH and RWLOAD (prebuilt
# binaries: no cargo build); CARGO_TARGET_DIR (the repo's target/); OUT
# (benches/ingest_write.latest.md); PERF=1 adds one Hearth round, not in the
# table, that records `perf record --call-graph dwarf` on the ingester
# leading the most shards for PERF_SECONDS (8) under load and prints the top
# of its report, self and inclusive (about 2 more minutes, most of it perf
# report's unwinding; perf.data is kept with KEEP=1). KEEP=1 keeps the
# temporary directory. Loopback only; every process started here is killed by its id
# at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/benches"
export PYTHONDONTWRITEBYTECODE=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WRITERS=${WRITERS:-8}
SERIES=${SERIES:-10000}
BATCH=${BATCH:-500}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-2}
SHARDS=${SHARDS:-4}
NODES=3
PERF=${PERF:-0}
PERF_SECONDS=${PERF_SECONDS:-8}
OUT=${OUT:-$BENCH/ingest_write.latest.md}
PROMETHEUS=/usr/bin/prometheus

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
bench_log_as ingest_write

if [ ! -x "$PROMETHEUS" ]; then
    log "installing Debian's prometheus"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
command -v python3 >/dev/null || { echo "python3 is needed (ports, the report)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

bench_tmp hearth-ingest-write

# What the figures are of: the commit and the files that differed from it
# when the binaries were built (or the prebuilt binary's path).
COMMIT=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
CHANGED=$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null | awk '{print $2}' | paste -sd, - || true)
if [ -n "${HEARTH:-}" ]; then
    BUILT="prebuilt $HEARTH (tree at $COMMIT)"
else
    BUILT="built from $COMMIT${CHANGED:+ (uncommitted: $CHANGED)}"
fi
if [ -n "${HEARTH:-}" ] && [ -n "${RWLOAD:-}" ]; then
    log "using the prebuilt $HEARTH and $RWLOAD"
else
    log "building hearth and rwload (cargo build --release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release -q -p hearth -p hearth-benches --bin hearth --bin rwload)
    HEARTH=${HEARTH:-$CARGO_TARGET_DIR/release/hearth}
    RWLOAD=${RWLOAD:-$CARGO_TARGET_DIR/release/rwload}
fi

# Copies: a build elsewhere in the same target directory cannot swap the
# binary between two rounds.
cp "$HEARTH" "$TMP/hearth"; HEARTH="$TMP/hearth"
cp "$RWLOAD" "$TMP/rwload"; RWLOAD="$TMP/rwload"

# N distinct free loopback ports, one per line.
freeports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
EOF
}
wait_ready() {
    for _ in $(seq 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "$1 not ready after 60 s" >&2; exit 1
}
# utime + stime of the given pids, in clock ticks.
cpu_ticks() {
    local sum=0 p f
    for p in "$@"; do
        f=$(sed 's/.*) //' "/proc/$p/stat")
        sum=$(( sum + $(echo "$f" | awk '{print $12 + $13}') ))
    done
    echo "$sum"
}
rss_kb() {
    local sum=0 p
    for p in "$@"; do sum=$(( sum + $(awk '/VmRSS/ {print $2}' "/proc/$p/status") )); done
    echo "$sum"
}
stop() {
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
CLK_TCK=$(getconf CLK_TCK)

# What a system answers for after the load, with PromQL at data time AT
# over the last RANGE seconds: "SAMPLES SERIES" (or "null null"). Samples
# are counted per metric name: count_over_time drops the name, so one query
# over every name would collide on the other labels.
stored_counts() { # base_url at_s range_s
    python3 - "$@" <<'PY' || echo null null
import json, sys, urllib.parse, urllib.request
base, at, rng = sys.argv[1:4]
def get(path, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.load(r)["data"]
def value(query):
    result = get("/api/v1/query", query=query, time=at)["result"]
    return float(result[0]["value"][1]) if result else 0.0
try:
    names = get("/api/v1/label/__name__/values")
    samples = sum(value("sum(count_over_time(%s[%ss]))" % (n, rng)) for n in names)
    series = value('count(last_over_time({__name__=~".+"}[%ss]))' % rng)
    print("%d %d" % (samples, series))
except Exception as e:
    print("stored_counts %s: %s" % (base, e), file=sys.stderr)
    print("null null")
PY
}

# Runs rwload against URLS and appends one JSON line to results.jsonl.
# measure SYSTEM ROUND URLS QUERY_BASE PID...
measure() {
    local system=$1 round=$2 urls=$3 base=$4
    shift 4
    local name="$system-$round" load_before cpu0 cpu1 at range stored series rss
    load_before=$(loadavg)
    cpu0=$(cpu_ticks "$@")
    "$RWLOAD" --url "$urls" --writers "$WRITERS" --series "$SERIES" --batch "$BATCH" \
        --warmup "$WARMUP" --duration "$DURATION" --latencies "$TMP/$name.lat" \
        >"$TMP/$name.json" 2>"$TMP/$name.rwload.log"
    cpu1=$(cpu_ticks "$@")
    rss=$(rss_kb "$@")
    # The check: what the system answers for after the load.
    sleep 1
    read -r at range < <(python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(r["max_ts_ms"] / 1000 + 1, (r["max_ts_ms"] - r["min_ts_ms"]) // 1000 + 60)' "$TMP/$name.json")
    read -r stored series < <(stored_counts "$base" "$at" "$range")
    python3 - "$TMP/$name.json" "$system" "$round" "$cpu0" "$cpu1" "$CLK_TCK" "$rss" \
        "$stored" "$series" "$load_before" "$TMP/$name.lat" >>"$TMP/results.jsonl" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
system, rnd, cpu0, cpu1, tck, rss, stored, series, load, lat = sys.argv[2:12]
r.update(system=system, round=int(rnd), server_cpu_s=(int(cpu1) - int(cpu0)) / int(tck),
         rwload_cpu_s=r["cpu_ticks"] / int(tck), rss_mib=int(rss) / 1024,
         stored_samples=None if stored == "null" else int(stored),
         stored_series=None if series == "null" else int(series),
         load_before=load, latencies=lat)
print(json.dumps(r))
EOF
    python3 -c 'import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print("%s round %d: %.0f samples/s, p50 %.2f ms, p99 %.2f ms, max %.1f ms, %d errors, stored %s of %d acked samples, %s series"
      % (r["system"], r["round"], r["samples_per_s"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["errors"],
         r["stored_samples"], r["all_samples"], r["stored_series"]))' "$TMP/results.jsonl" >&2
    if [ -s "$TMP/$name.rwload.log" ]; then
        log "$name: the load generator reported:"; head -5 "$TMP/$name.rwload.log" >&2
    fi
}

run_prometheus() { # round
    local dir="$TMP/prometheus-$1" port pid
    port=$(freeports 1)
    mkdir -p "$dir"
    "$PROMETHEUS" --config.file="$TMP/empty.yml" --storage.tsdb.path="$dir/data" \
        --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver \
        >"$dir.log" 2>&1 &
    pid=$!; PIDS+=("$pid")
    wait_ready "http://127.0.0.1:$port/-/ready"
    log "prometheus round $1: pid $pid on :$port"
    measure prometheus "$1" "http://127.0.0.1:$port/api/v1/write" "http://127.0.0.1:$port" "$pid"
    stop "$pid"
    [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"
}

# Starts the three ingesters; sets NODE_PIDS, NODE_HTTP.
start_hearth() { # name
    local dir="$TMP/$1" ports peers id
    mapfile -t ports < <(freeports $(( 2 * NODES )))
    peers=""
    for id in $(seq "$NODES"); do
        peers+="${peers:+,}$id=127.0.0.1:${ports[$(( 2 * (id - 1) ))]}"
    done
    NODE_PIDS=(); NODE_HTTP=()
    mkdir -p "$dir"
    for id in $(seq "$NODES"); do
        local grpc=${ports[$(( 2 * (id - 1) ))]} http=${ports[$(( 2 * (id - 1) + 1 ))]}
        "$HEARTH" ingest --node-id "$id" --peers "$peers" \
            --grpc-address "127.0.0.1:$grpc" --http-address "127.0.0.1:$http" \
            --data-dir "$dir/node-$id" --shards "$SHARDS" --replication-factor "$NODES" \
            >"$dir/node-$id.log" 2>&1 &
        NODE_PIDS+=($!); PIDS+=($!)
        NODE_HTTP+=("http://127.0.0.1:$http")
    done
    for base in "${NODE_HTTP[@]}"; do wait_ready "$base/-/ready"; done
}

hearth_urls() {
    local u out=""
    for u in "${NODE_HTTP[@]}"; do out+="${out:+,}$u/api/v1/write"; done
    echo "$out"
}

run_hearth() { # round
    start_hearth "hearth-$1"
    log "hearth round $1: ingesters ${NODE_PIDS[*]} on ${NODE_HTTP[*]}"
    measure hearth "$1" "$(hearth_urls)" "${NODE_HTTP[0]}" "${NODE_PIDS[@]}"
    stop "${NODE_PIDS[@]}"
    [ "${KEEP:-0}" = 1 ] || rm -rf "$TMP/hearth-$1"
}

# One more Hearth round under `perf record -g`, outside the table.
run_perf() {
    command -v perf >/dev/null || {
        log "installing linux-perf"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
    }
    start_hearth hearth-perf
    # The ingester that leads the most shards.
    local best=0 most=-1 i n
    for i in "${!NODE_HTTP[@]}"; do
        n=$(curl -sf "${NODE_HTTP[$i]}/api/v1/ingest/status" \
            | python3 -c 'import json, sys; print(sum(s["role"] == "leader" for s in json.load(sys.stdin)["data"]["shards"]))')
        if [ "$n" -gt "$most" ]; then most=$n; best=$i; fi
    done
    local pid=${NODE_PIDS[$best]}
    log "perf round: recording ingester $(( best + 1 )) (pid $pid, leads $most shards) for $PERF_SECONDS s"
    "$RWLOAD" --url "$(hearth_urls)" --writers "$WRITERS" --series "$SERIES" --batch "$BATCH" \
        --warmup "$WARMUP" --duration "$DURATION" >"$TMP/perf.rwload.json" 2>/dev/null &
    local load=$!; PIDS+=("$load")
    sleep "$(( WARMUP + 2 ))"
    perf record -q -F 1000 --call-graph dwarf,32768 -p "$pid" -o "$TMP/perf.data" -- sleep "$PERF_SECONDS" >/dev/null 2>&1 || true
    wait "$load" || true
    stop "${NODE_PIDS[@]}"
    # Self time per function, and inclusive time of Hearth's own functions.
    perf report -i "$TMP/perf.data" --no-children --percent-limit 0.7 --stdio -g none \
        --sort dso,symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | sed -E 's/[[:space:]]+$//; s/[[:space:]]+-[[:space:]]+-$//' \
        >"$TMP/perf.txt" || true
    perf report -i "$TMP/perf.data" --children --percent-limit 3 --stdio -g none --sort symbol \
        2>/dev/null | grep -E 'hearth|prost' | sed -E 's/[[:space:]]+$//' >"$TMP/perf.children.txt" || true
    log "perf round: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f samples/s" % r["samples_per_s"])' "$TMP/perf.rwload.json"); ingester $(( best + 1 )), self time:"
    head -25 "$TMP/perf.txt" >&2
    log "inclusive time (children) of hearth and prost functions:"
    head -40 "$TMP/perf.children.txt" >&2
}

echo "scrape_configs: []" >"$TMP/empty.yml"
: >"$TMP/results.jsonl"
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(loadavg)
for round in $(seq "$ROUNDS"); do
    if [ $(( round % 2 )) = 1 ]; then
        run_hearth "$round"; run_prometheus "$round"
    else
        run_prometheus "$round"; run_hearth "$round"
    fi
done
[ "$PERF" = 1 ] && run_perf

[ -s "$TMP/results.jsonl" ] || exit 0
python3 - "$TMP/results.jsonl" "$OUT" <<EOF
import json, math, os, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out_path = sys.argv[2]

def pooled(system):
    rs = [r for r in rows if r["system"] == system]
    lat = []
    for r in rs:
        lat += [int(x) for x in open(r["latencies"]) if x.strip()]
    lat.sort()
    def pct(p):
        if not lat:
            return float("nan")
        return lat[min(len(lat), max(1, math.ceil(p / 100 * len(lat)))) - 1] / 1000
    samples = sum(r["samples"] for r in rs)
    seconds = sum(r["seconds"] for r in rs)
    all_samples = sum(r["all_samples"] for r in rs)
    return {
        "samples_per_s": samples / seconds if seconds else float("nan"),
        "p50": pct(50), "p99": pct(99), "max": pct(100),
        "requests": sum(r["requests"] for r in rs),
        "errors": sum(r["errors"] for r in rs),
        "cpu_per_m": sum(r["server_cpu_s"] for r in rs) / (all_samples / 1e6) if all_samples else float("nan"),
        "rwload_cpu_per_m": sum(r["rwload_cpu_s"] for r in rs) / (all_samples / 1e6) if all_samples else float("nan"),
        "rss": sum(r["rss_mib"] for r in rs) / len(rs) if rs else float("nan"),
    }

h, p = pooled("hearth"), pooled("prometheus")
def ratio(a, b):
    return "%.2f" % (a / b) if b and not math.isnan(a) and not math.isnan(b) else "-"

cpus = os.cpu_count()
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
prom_version = os.popen("$PROMETHEUS --version 2>&1 | head -1").read().strip()
lines = []
w = lines.append
w("Run $STARTED on $(hostname) (%d cores, %s; load average before the run $LOAD_START); hearth $BUILT; %s." % (cpus, model, prom_version))
w("")
w("Remote write 1.0, $WRITERS closed-loop writers (one keep-alive connection each), $SERIES series "
  "(each writer its own $(( SERIES / WRITERS ))), requests of <= $BATCH series x 1 sample, "
  "$WARMUP s warm-up then $DURATION s measured, $ROUNDS rounds per system (H P P H ...), pooled. "
  "Hearth: 3 \`hearth ingest\` processes, $SHARDS shards, replication factor 3 "
  "(acknowledged once a quorum of 2 committed), writer i posting to ingester i mod 3. "
  "Prometheus: one process, \`--web.enable-remote-write-receiver\`. "
  "All on this machine's %d cores: the three ingesters (or Prometheus) and the load generator share them." % cpus)
w("")
w("| | Prometheus 2.42 | Hearth RF=3 | Hearth / Prometheus |")
w("|---|---:|---:|---:|")
w("| **acknowledged samples/s** | %.0f | %.0f | **%s** |" % (p["samples_per_s"], h["samples_per_s"], ratio(h["samples_per_s"], p["samples_per_s"])))
w("| **p50 write latency (ms)** | %.2f | %.2f | **%s** |" % (p["p50"], h["p50"], ratio(h["p50"], p["p50"])))
w("| **p99 write latency (ms)** | %.2f | %.2f | **%s** |" % (p["p99"], h["p99"], ratio(h["p99"], p["p99"])))
w("| max write latency (ms) | %.1f | %.1f | %s |" % (p["max"], h["max"], ratio(h["max"], p["max"])))
w("| errors (non-2xx or no answer) / requests | %d / %d | %d / %d | - |" % (p["errors"], p["requests"], h["errors"], h["requests"]))
w("| server CPU s per million samples (all processes) | %.2f | %.2f | %s |" % (p["cpu_per_m"], h["cpu_per_m"], ratio(h["cpu_per_m"], p["cpu_per_m"])))
w("| load generator CPU s per million samples | %.2f | %.2f | - |" % (p["rwload_cpu_per_m"], h["rwload_cpu_per_m"]))
w("| server RSS after the load, MiB (sum of processes) | %.0f | %.0f | %s |" % (p["rss"], h["rss"], ratio(h["rss"], p["rss"])))
w("")
w("Per round (stored: what the system answers for afterwards with PromQL, against the samples it acknowledged, warm-up included):")
w("")
w("| system | round | samples/s | p50 ms | p90 ms | p99 ms | max ms | requests | errors | stored / acked samples | series | load average before |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
warn = []
for r in rows:
    stored = r["stored_samples"]
    w("| %s | %d | %.0f | %.2f | %.2f | %.2f | %.1f | %d | %d | %s / %d | %s | %s |" % (
        "Hearth RF=3" if r["system"] == "hearth" else "Prometheus", r["round"], r["samples_per_s"],
        r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"], r["requests"], r["errors"],
        "-" if stored is None else "%d" % stored, r["all_samples"],
        "-" if r["stored_series"] is None else "%d" % r["stored_series"], r["load_before"]))
    if stored is None or stored < r["all_samples"] or r["stored_series"] != $SERIES:
        warn.append("%s round %d: stored %s samples and %s series, acknowledged %d samples of $SERIES series"
                    % (r["system"], r["round"], stored, r["stored_series"], r["all_samples"]))
for x in warn:
    w("")
    w("WARNING: " + x)
text = "\n".join(lines) + "\n"
print(text)
with open(out_path, "w") as f:
    f.write("# Remote-write ingestion: Hearth RF=3 against Prometheus 2.42\n\n"
            "Written by \`benches/ingest_write.sh\` (see its header for what is measured).\n\n" + text)
EOF
log "wrote $OUT"
