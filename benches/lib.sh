# Sourced by the benchmark scripts (after they set ROOT): their log lines,
# and a scratch directory with the processes they start, both cleaned up on
# exit (KEEP=1 keeps the directory).

# bench_log_as NAME: log lines "[NAME hh:mm:ss] ..." on stderr.
bench_log_as() {
    BENCH_NAME="$1"
    log() { echo "[$BENCH_NAME $(date -u +%H:%M:%S)] $*" >&2; }
}

# bench_tmp PREFIX: TMP=/tmp/PREFIX.XXXXXX and PIDS=(); on exit every pid in
# PIDS is stopped and TMP removed.
bench_tmp() {
    TMP=$(mktemp -d "/tmp/$1.XXXXXX")
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
