#!/usr/bin/env python3
"""One million series: Hearth standalone vs Prometheus 2.42, in one run.

    million_series.py --hearth BIN --prometheus BIN --workdir DIR
                      [--series N] [--samples S] [--batch B] [--settle SEC]
                      [--clients C] [--pidfile FILE]

(benches/million_series.sh builds Hearth, installs what is missing and calls
this with a fresh temp dir.)

1. Pre-encodes ONCE N distinct series (default 1,000,000) with S samples each
   (default 10, 15 s apart, ending ~20 min before generation, i.e. within the
   last hour) into remote-write 1.0 requests (protobuf + snappy block) of B
   series each (default 2,000), stored in WORKDIR/batches.bin.
   Series: {__name__="bench_metric_<i % 1000>", instance="10.<a>.<b>.<c>:9100",
   job="bench"} with the instance from i // 1000: 1000 metric names x 1000
   instances. Values are counters (k * (1 + i % 97)).
2. For each server in turn (one at a time, Hearth first): start it on an empty
   dir, send every request with the same client (C threads, one
   requests.Session each), settle SEC seconds, read VmRSS / VmHWM from
   /proc/PID/status, SIGKILL it, restart it on the same dir and time from
   spawn to the first `GET /-/ready` == 200 (WAL replay), then check that the
   data is all there through /api/v1/series and /api/v1/label/<n>/values
   (and count_over_time through /api/v1/query on Prometheus, which has PromQL).
3. Prints a table: metric, Hearth, Prometheus, ratio Hearth/Prometheus; and a
   JSON line with every figure.

Only loopback and WORKDIR are used. Every process started is SIGKILLed on exit
(its pid is also appended to --pidfile so the shell wrapper's trap can kill it).
"""
import argparse
import atexit
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import requests
import snappy

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.environ.get("PROMRW_DIR", os.path.join(HERE, "..", "..", "shared", "tools"))
sys.path.insert(0, TOOLS)
try:  # the shared encoder's helpers (protobuf varint / fields)
    from promrw import _bytes_field, _field, _varint  # noqa: E402
except ImportError:  # a copy, so that the bench runs without ../shared
    def _varint(n):
        out = bytearray()
        n &= (1 << 64) - 1
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out.append(b | 0x80)
            else:
                out.append(b)
                return bytes(out)

    def _field(num, wire, payload):
        return _varint((num << 3) | wire) + payload

    def _bytes_field(num, data):
        return _field(num, 2, _varint(len(data)) + data)


NAMES = 1000
RATES = 97
STEP_MS = 15_000

PROCS = []  # live subprocess.Popen objects
PIDFILE = None


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def labels_of(i):
    inst = i // NAMES
    return [
        ("__name__", "bench_metric_%d" % (i % NAMES)),
        ("instance", "10.%d.%d.%d:9100" % (inst >> 16 & 255, inst >> 8 & 255, inst & 255)),
        ("job", "bench"),
    ]


def generate(path, n_series, n_samples, batch, end_ms):
    """Writes the requests (u32 series, u32 length, body)* and returns stats."""
    start_ms = end_ms - (n_samples - 1) * STEP_MS
    # Samples differ only by rate: pre-encode the RATES possible sample blocks.
    sample_blobs = []
    for r in range(RATES):
        b = bytearray()
        for k in range(n_samples):
            s = _field(1, 1, struct.pack("<d", float(k * (r + 1)))) + _field(2, 0, _varint(start_ms + k * STEP_MS))
            b += _bytes_field(2, s)
        sample_blobs.append(bytes(b))
    # Labels: names/values precomputed per distinct string.
    name_lab = [_bytes_field(1, _bytes_field(1, b"__name__") + _bytes_field(2, ("bench_metric_%d" % m).encode()))
                for m in range(NAMES)]
    job_lab = _bytes_field(1, _bytes_field(1, b"job") + _bytes_field(2, b"bench"))
    raw_total = comp_total = requests_n = 0
    with open(path, "wb") as f:
        for lo in range(0, n_series, batch):
            hi = min(n_series, lo + batch)
            out = bytearray()
            for i in range(lo, hi):
                inst = i // NAMES
                inst_s = ("10.%d.%d.%d:9100" % (inst >> 16 & 255, inst >> 8 & 255, inst & 255)).encode()
                ts = (name_lab[i % NAMES]
                      + _bytes_field(1, _bytes_field(1, b"instance") + _bytes_field(2, inst_s))
                      + job_lab + sample_blobs[i % RATES])
                out += _bytes_field(1, ts)
            body = snappy.compress(bytes(out))
            f.write(struct.pack("<II", hi - lo, len(body)))
            f.write(body)
            raw_total += len(out)
            comp_total += len(body)
            requests_n += 1
    return {"requests": requests_n, "raw_bytes": raw_total, "snappy_bytes": comp_total,
            "start_ms": start_ms, "end_ms": end_ms}


def load_batches(path):
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off < len(data):
        n, ln = struct.unpack_from("<II", data, off)
        off += 8
        out.append((n, data[off:off + ln]))
        off += ln
    return out


HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "hearth-bench-million-series",
}


def send_all(url, batches, clients):
    """Posts every batch (each exactly once), `clients` threads; returns (secs, errors)."""
    nxt = [0]
    lock = threading.Lock()
    errors = []
    lat = []

    def worker():
        s = requests.Session()
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(batches) or len(errors) > 20:
                return
            t0 = time.monotonic()
            try:
                r = s.post(url, data=batches[i][1], headers=HEADERS, timeout=300)
                if r.status_code // 100 != 2:
                    errors.append("batch %d: HTTP %d %s" % (i, r.status_code, r.text[:300]))
            except Exception as e:  # noqa: BLE001
                errors.append("batch %d: %r" % (i, e))
            with lock:
                lat.append(time.monotonic() - t0)
                if len(lat) % 100 == 0:
                    log("  %d/%d requests" % (len(lat), len(batches)))

    t0 = time.monotonic()
    ths = [threading.Thread(target=worker) for _ in range(clients)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    lat.sort()
    p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan"))
    return time.monotonic() - t0, errors, {"p50_s": p(0.5), "p99_s": p(0.99), "max_s": lat[-1] if lat else None}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def spawn(argv, logpath):
    f = open(logpath, "ab")
    f.write(("\n==== %s %s\n" % (time.strftime("%H:%M:%S"), " ".join(argv))).encode())
    f.flush()
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    f.close()
    PROCS.append(p)
    if PIDFILE:
        with open(PIDFILE, "a") as pf:
            pf.write("%d\n" % p.pid)
    return p


def kill9(p):
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    if p in PROCS:
        PROCS.remove(p)


@atexit.register
def _cleanup():
    for p in list(PROCS):
        try:
            kill9(p)
        except Exception:  # noqa: BLE001
            pass


def wait_ready(p, base, timeout):
    """Seconds from now until GET /-/ready == 200, polling every 10 ms."""
    t0 = time.monotonic()
    s = requests.Session()
    while time.monotonic() - t0 < timeout:
        if p.poll() is not None:
            raise RuntimeError("process exited with %s before ready" % p.returncode)
        try:
            if s.get(base + "/-/ready", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except requests.RequestException:
            pass
        time.sleep(0.01)
    raise RuntimeError("not ready after %ds" % timeout)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0]) * (1024 if k != "Threads" else 1)
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for fn in files:
            try:
                total += os.lstat(os.path.join(root, fn)).st_size
            except OSError:
                pass
    return total


def check(base, n_series, n_samples, promql):
    """Checks after the restart that every series (and, with PromQL, every sample) is back."""
    s = requests.Session()
    res = {}
    problems = []
    n_inst = (n_series + NAMES - 1) // NAMES
    n_names = min(NAMES, n_series)

    def get(path, params):
        t0 = time.monotonic()
        r = s.get(base + path, params=params, timeout=600)
        dt = time.monotonic() - t0
        if r.status_code != 200:
            problems.append("%s %s: HTTP %d %s" % (path, params, r.status_code, r.text[:200]))
            return None, dt
        return r.json()["data"], dt

    d, _ = get("/api/v1/labels", {})
    res["labels"] = d
    if d is not None and sorted(d) != ["__name__", "instance", "job"]:
        problems.append("labels: %r" % d)
    for name, want in (("__name__", n_names), ("instance", n_inst), ("job", 1)):
        d, _ = get("/api/v1/label/%s/values" % name, {})
        res["values_" + name] = None if d is None else len(d)
        if d is not None and len(d) != want:
            problems.append("label %s: %d values, want %d" % (name, len(d), want))
    # One metric name across every instance, one instance across every metric.
    want_m = len([i for i in range(7, n_series, NAMES)])
    d, _ = get("/api/v1/series", {"match[]": '{__name__="bench_metric_7"}'})
    res["series_bench_metric_7"] = None if d is None else len(d)
    if d is not None:
        if len(d) != want_m:
            problems.append("series bench_metric_7: %d, want %d" % (len(d), want_m))
        wrong = [x for x in d if x.get("__name__") != "bench_metric_7"]
        if wrong:
            problems.append("series bench_metric_7: %d results with another name, e.g. %s" % (len(wrong), wrong[0]))
    inst0 = dict(labels_of(0))["instance"]
    want_i = min(NAMES, n_series)
    d, _ = get("/api/v1/series", {"match[]": '{instance="%s"}' % inst0})
    res["series_instance0"] = None if d is None else len(d)
    if d is not None and len(d) != want_i:
        problems.append("series %s: %d, want %d" % (inst0, len(d), want_i))
    # Every series at once (1 M series of JSON): also times a big /api/v1/series.
    d, dt = get("/api/v1/series", {"match[]": '{job="bench"}'})
    res["series_all"] = None if d is None else len(d)
    res["series_all_secs"] = round(dt, 2)
    if d is not None:
        if len(d) != n_series:
            problems.append("series {job=bench}: %d, want %d" % (len(d), n_series))
        distinct = len({(x.get("__name__"), x.get("instance")) for x in d})
        if distinct != len(d):
            problems.append("series {job=bench}: %d results but %d distinct label sets" % (len(d), distinct))
    if promql:
        # Sample count (only Prometheus has PromQL): every series has n_samples.
        # One query per metric name (count_over_time drops the name, so one
        # query over every name would hold duplicate label sets).
        now = "%.3f" % time.time()
        full = samples = 0
        for m in range(n_names):
            q = 'count(count_over_time(bench_metric_%d[2h]) == %d) or vector(0)' % (m, n_samples)
            d, _ = get("/api/v1/query", {"query": q, "time": now})
            full += int(float(d["result"][0]["value"][1])) if d and d["result"] else 0
            q = 'sum(count_over_time(bench_metric_%d[2h]))' % m
            d, _ = get("/api/v1/query", {"query": q, "time": now})
            samples += int(float(d["result"][0]["value"][1])) if d and d["result"] else 0
        res["series_with_all_samples"] = full
        res["samples"] = samples
        if full != n_series:
            problems.append("series with %d samples: %d, want %d" % (n_samples, full, n_series))
        if samples != n_series * n_samples:
            problems.append("samples: %d, want %d" % (samples, n_series * n_samples))
    return res, problems


def run_server(kind, argv_fn, data_dir, logpath, batches, args):
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    argv = argv_fn(data_dir, "127.0.0.1:%d" % port)
    r = {"argv": " ".join(argv)}
    log("%s: start %s" % (kind, r["argv"]))
    p = spawn(argv, logpath)
    r["start_ready_s"] = wait_ready(p, base, 120)
    time.sleep(1)
    r["rss_empty"] = proc_status(p.pid)["VmRSS"]
    log("%s: ready in %.2fs, RSS %.1f MiB; sending %d requests" %
        (kind, r["start_ready_s"], r["rss_empty"] / 2**20, len(batches)))
    cpu0 = cpu_seconds(p.pid)
    secs, errors, lat = send_all(base + "/api/v1/write", batches, args.clients)
    r["ingest_s"] = secs
    r["ingest_cpu_s"] = cpu_seconds(p.pid) - cpu0
    r["ingest_latency"] = lat
    r["ingest_errors"] = errors[:5]
    r["ingest_error_count"] = len(errors)
    log("%s: sent in %.1fs (%d errors) %s" % (kind, secs, len(errors), errors[:2]))
    if p.poll() is not None:
        raise RuntimeError("%s died during ingestion (exit %s), see %s" % (kind, p.returncode, logpath))
    time.sleep(args.settle)
    st = proc_status(p.pid)
    r["rss"] = st["VmRSS"]
    r["hwm"] = st["VmHWM"]
    r["rss_anon"] = st.get("RssAnon")
    r["threads"] = st.get("Threads")
    try:
        m = requests.get(base + "/metrics", timeout=30).text
        r["metrics_head_series"] = [ln for ln in m.splitlines()
                                    if ln.startswith(("prometheus_tsdb_head_series ", "hearth_tsdb_head_series"))]
    except requests.RequestException:
        pass
    gauge_problems = []
    for ln in r.get("metrics_head_series", []):
        v = float(ln.split()[-1])
        if v != args.series:
            gauge_problems.append("/metrics %s, want %d" % (ln, args.series))
    log("%s: after %ss settle VmRSS %.1f MiB (%.0f B/series), VmHWM %.1f MiB" %
        (kind, args.settle, r["rss"] / 2**20, r["rss"] / args.series, r["hwm"] / 2**20))
    # Before the kill: is everything that was acknowledged queryable?
    res, problems = check(base, args.series, args.samples, promql=False)
    r["check_before_kill"] = res
    r["problems_before_kill"] = gauge_problems + problems
    log("%s: check before kill %s problems=%s" % (kind, json.dumps(res), r["problems_before_kill"]))
    kill9(p)
    r["wal_bytes"] = du(os.path.join(data_dir, "wal"))
    r["dir_bytes"] = du(data_dir)
    log("%s: SIGKILLed; WAL %.1f MiB; restarting" % (kind, r["wal_bytes"] / 2**20))
    p = spawn(argv, logpath)
    cpu0 = 0.0
    r["replay_ready_s"] = wait_ready(p, base, 900)
    r["replay_cpu_s"] = cpu_seconds(p.pid) - cpu0
    st = proc_status(p.pid)
    r["rss_after_replay"] = st["VmRSS"]
    r["hwm_replay"] = st["VmHWM"]
    log("%s: ready after restart in %.2fs (cpu %.1fs), VmRSS %.1f MiB, VmHWM %.1f MiB" %
        (kind, r["replay_ready_s"], r["replay_cpu_s"], r["rss_after_replay"] / 2**20, r["hwm_replay"] / 2**20))
    res, problems = check(base, args.series, args.samples, promql=(kind == "prometheus"))
    r["check"] = res
    r["problems"] = problems
    log("%s: check %s problems=%s" % (kind, json.dumps(res), problems))
    if p.poll() is not None:
        r["problems"].append("exited %s after the checks" % p.returncode)
    kill9(p)
    return r


def main():
    global PIDFILE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hearth", required=True)
    ap.add_argument("--prometheus", default="/usr/bin/prometheus")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--series", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--pidfile")
    ap.add_argument("--only", choices=["hearth", "prometheus"], help="run one server only (debugging)")
    args = ap.parse_args()
    PIDFILE = args.pidfile
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_all = time.monotonic()
    wd = args.workdir
    os.makedirs(wd, exist_ok=True)

    bpath = os.path.join(wd, "batches.bin")
    end_ms = (int(time.time() * 1000) - 20 * 60 * 1000) // STEP_MS * STEP_MS
    t0 = time.monotonic()
    gen = generate(bpath, args.series, args.samples, args.batch, end_ms)
    gen["secs"] = time.monotonic() - t0
    log("generated %d series x %d samples in %d requests (%.1f MiB protobuf, %.1f MiB snappy) in %.1fs" %
        (args.series, args.samples, gen["requests"], gen["raw_bytes"] / 2**20, gen["snappy_bytes"] / 2**20, gen["secs"]))
    batches = load_batches(bpath)

    cfg = os.path.join(wd, "empty.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1m\nscrape_configs: []\n")

    servers = {
        "hearth": lambda d, addr: [args.hearth, "standalone", "--config.file=" + cfg,
                                   "--storage.tsdb.path", d, "--web.listen-address", addr],
        "prometheus": lambda d, addr: [args.prometheus, "--config.file=" + cfg, "--storage.tsdb.path", d,
                                       "--web.listen-address", addr, "--web.enable-remote-write-receiver"],
    }
    results = {"series": args.series, "samples_per_series": args.samples, "batch": args.batch,
               "clients": args.clients, "generate": gen}
    for kind in ("hearth", "prometheus"):
        if args.only and kind != args.only:
            continue
        d = os.path.join(wd, kind + "-data")
        try:
            results[kind] = run_server(kind, servers[kind], d, os.path.join(wd, kind + ".log"), batches, args)
        except Exception as e:  # noqa: BLE001
            log("%s FAILED: %r (log: %s)" % (kind, e, os.path.join(wd, kind + ".log")))
            results[kind] = {"failed": repr(e)}
        finally:
            for p in list(PROCS):
                kill9(p)
    results["total_s"] = time.monotonic() - t_all
    report(results, args)
    return 0 if all(not results.get(k, {}).get("failed") and not results.get(k, {}).get("problems")
                    and not results.get(k, {}).get("problems_before_kill")
                    for k in ("hearth", "prometheus") if k in results) else 1


def report(res, args):
    h, p = res.get("hearth", {}), res.get("prometheus", {})
    n = args.series
    rows = []

    def row(name, key, fmt, scale=1.0):
        hv, pv = h.get(key), p.get(key)
        hs = fmt % (hv / scale) if isinstance(hv, (int, float)) else "-"
        ps = fmt % (pv / scale) if isinstance(pv, (int, float)) else "-"
        ratio = "%.2f" % (hv / pv) if isinstance(hv, (int, float)) and isinstance(pv, (int, float)) and pv else "-"
        rows.append((name, hs, ps, ratio))

    row("VmRSS after load (MiB)", "rss", "%.1f", 2**20)
    row("VmRSS / series (bytes)", "rss", "%.0f", n)
    row("VmHWM during load (MiB)", "hwm", "%.1f", 2**20)
    row("VmRSS empty (MiB)", "rss_empty", "%.1f", 2**20)
    row("ingest wall time (s)", "ingest_s", "%.1f")
    row("ingest server CPU (s)", "ingest_cpu_s", "%.1f")
    row("WAL on disk (MiB)", "wal_bytes", "%.1f", 2**20)
    row("restart -> /-/ready 200 (s)", "replay_ready_s", "%.2f")
    row("replay CPU (s)", "replay_cpu_s", "%.1f")
    row("VmRSS after replay (MiB)", "rss_after_replay", "%.1f", 2**20)
    row("VmHWM during replay (MiB)", "hwm_replay", "%.1f", 2**20)
    w0 = max(len(r[0]) for r in rows)
    print()
    print("%d series x %d samples, %d series/request, %d client threads, settle %gs; whole run %.0fs" %
          (n, args.samples, args.batch, args.clients, args.settle, res["total_s"]))
    print("| %-*s | %10s | %10s | %16s |" % (w0, "metric", "Hearth", "Prometheus", "Hearth/Prometheus"))
    print("|%s|%s|%s|%s|" % ("-" * (w0 + 2), "-" * 12, "-" * 12, "-" * 19))
    for r in rows:
        print("| %-*s | %10s | %10s | %17s |" % (w0, r[0], r[1], r[2], r[3]))
    for k, v in (("hearth", h), ("prometheus", p)):
        if v.get("failed"):
            print("%s FAILED: %s" % (k, v["failed"]))
        if v.get("ingest_error_count"):
            print("%s: %d ingest errors, e.g. %s" % (k, v["ingest_error_count"], v["ingest_errors"][:2]))
        if "check_before_kill" in v:
            print("%s after load, before kill: %s%s" % (
                k, "OK " if not v["problems_before_kill"] else "PROBLEMS %s " % v["problems_before_kill"],
                json.dumps(v["check_before_kill"])))
        if "check" in v:
            print("%s after restart: %s%s" % (k, "OK " if not v["problems"] else "PROBLEMS %s " % v["problems"],
                                               json.dumps(v["check"])))
    print("JSON " + json.dumps(res, default=str))


if __name__ == "__main__":
    sys.exit(main())
