#!/usr/bin/env bash
# PromQL query latency, Hearth against Prometheus 2.42 (Debian's), in one run:
# the dev query list (shared/tools/dev-queries.txt, lines starting with '!' or
# '#' skipped) over promrw.py's demo data set (3 h at 5 s, 708 series), pushed
# by remote write into both servers; per query an instant query at END-30m and
# a range query over [END-2h, END] at step 60s, median of RUNS timed GETs per
# server after one warm-up, the two servers alternating. Prints Markdown.
#
#   benches/query_latency.sh
#
# Knobs (environment): RUNS (7) timed runs per query, kind and server; END
# (epoch seconds, hour-aligned; default the current hour) the data set's end;
# QUERIES (shared/tools/dev-queries.txt); HEARTH (a prebuilt binary: no
# cargo build); KEEP=1 keeps the temporary directory. Loopback only; one
# temporary directory; every process started here is killed by its id at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/benches"
export PYTHONDONTWRITEBYTECODE=1
export PROMRW_DIR="${PROMRW_DIR:-$ROOT/../shared/tools}"
QUERIES=${QUERIES:-$PROMRW_DIR/dev-queries.txt}
RUNS=${RUNS:-7}
END=${END:-$(( $(date +%s) / 3600 * 3600 ))}

# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"
bench_log_as query_latency

if ! command -v prometheus >/dev/null; then
    log "installing Debian's prometheus"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
if ! python3 -c 'import snappy, requests' 2>/dev/null; then
    log "installing python-snappy and requests"
    python3 -m pip install -q python-snappy requests
fi
[ -f "$PROMRW_DIR/promrw.py" ] || { echo "no promrw.py in $PROMRW_DIR" >&2; exit 1; }

bench_tmp hearth-qlat

if [ -n "${HEARTH:-}" ]; then
    log "using the prebuilt $HEARTH"
else
    log "building hearth (cargo build --release -p hearth)"
    (cd "$ROOT" && cargo build --release -q -p hearth)
    HEARTH="$ROOT/target/release/hearth"
fi

rustc --edition 2021 -O "$BENCH/qclient.rs" -o "$TMP/qclient"

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HPORT=$(freeport)
PPORT=$(freeport)
while [ "$PPORT" = "$HPORT" ]; do PPORT=$(freeport); done

mkdir -p "$TMP/hearth" "$TMP/prom"
echo "scrape_configs: []" > "$TMP/empty.yml"
"$HEARTH" standalone --config.file "$TMP/empty.yml" --storage.tsdb.path "$TMP/hearth" \
    --web.listen-address "127.0.0.1:$HPORT" >"$TMP/hearth.log" 2>&1 &
PIDS+=($!)
HPID=$!
/usr/bin/prometheus --config.file="$TMP/empty.yml" --storage.tsdb.path="$TMP/prom" \
    --web.listen-address="127.0.0.1:$PPORT" --web.enable-remote-write-receiver \
    >"$TMP/prom.log" 2>&1 &
PIDS+=($!)
PPID_=$!

log "hearth pid $HPID on :$HPORT, prometheus pid $PPID_ on :$PPORT, END=$END ($(date -u -d @"$END" +%FT%TZ))"
python3 "$BENCH/query_latency.py" \
    --hearth "http://127.0.0.1:$HPORT" --prometheus "http://127.0.0.1:$PPORT" \
    --queries "$QUERIES" --end "$END" --runs "$RUNS" \
    --hearth-pid "$HPID" --prometheus-pid "$PPID_" --root "$ROOT" --qclient "$TMP/qclient" \
    --hearth-version "$("$HEARTH" --version 2>/dev/null | head -1 || true)"
