#!/usr/bin/env python3
"""Scrape benchmark: Hearth standalone vs Prometheus 2.42 scraping the same
static 100,000-series exposition (text format 0.0.4), in one run.

    scrape_bench.py --hearth BIN --prometheus BIN --exporter BIN --workdir DIR
                    [--series 100000] [--families 200] [--variants 3]
                    [--interval 5] [--warmup 15] [--duration 60]
                    [--order hearth,prometheus] [--pidfile FILE]

(benches/scrape_bench.sh builds Hearth and the exporter, installs what is
missing and calls this with a fresh temp dir.)

1. Generates ONCE, deterministically (seed 61), an exposition of --series
   series in --families metric families (# HELP and # TYPE each; about 45 %
   counters, 35 % gauges, 20 % classic histograms with 8 or 11 finite
   buckets, _sum and _count), 3 to 8 labels per family (namespace, pod,
   handler, method, code, node, cpu, mode, topic, partition, grpc_method, ...,
   with realistic values), integer and float values (counters, byte counts,
   ratios, timestamps, 1e-05-style small floats), no timestamps, no job or
   instance labels. --variants files of the same series are written (the
   values move on: counters grow, gauges change), served in rotation by
   benches/scrape_exporter.rs so that every scrape appends new values.
2. For each server in turn, alone on the machine (the other is not running):
   start it on an empty dir with the same prometheus.yml (one job "bench",
   one static target, scrape_interval = scrape_timeout = --interval), wait
   --warmup seconds (and at least two scrapes), then measure a window of
   exactly round(--duration / --interval) scrape intervals whose two ends
   fall half-way between two scrapes (the scrape phase is read from the
   timestamps of scrape_duration_seconds), so that the window holds whole
   scrapes only. Process CPU (utime + stime of /proc/PID/stat) at both ends,
   VmRSS / VmHWM at the end; then, through the query API at the window's
   end: the raw samples of scrape_duration_seconds, scrape_samples_scraped
   and up of job "bench" in the window (an instant query of a range selector,
   `metric{job="bench"}[W]`, which returns every scrape exactly once; a
   query_range at some step would repeat or skip scrapes), and
   count({job="bench",__name__!~"up|scrape_.+"}) (the stored series, the 5
   report series excluded). Then SIGTERM (SIGKILL after 20 s).
3. Prints a Markdown report: the data, one row per server, ratios
   Hearth / Prometheus, whether the target (<= 0.5x) is met. Fails (exit 1,
   after the report) when a server did not scrape every series on every
   scrape of the window, or did not store them all, or a scrape failed.

Only loopback and --workdir are used. Every process started here is killed by
its pid (also appended to --pidfile, for the shell wrapper's trap).
"""
import argparse
import atexit
import datetime
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PROCS = []
PIDFILE = None
SEED = 61


def log(*a):
    print("[scrape_bench %s]" % time.strftime("%H:%M:%S", time.gmtime()), *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The exposition
# ---------------------------------------------------------------------------

APPS = ["checkout", "payments", "cart", "search", "catalog", "auth", "gateway", "orders", "inventory",
        "shipping", "billing", "recommendation", "notification", "profile", "reviews", "pricing",
        "frontend", "ledger", "fraud-detector", "media", "session", "config", "scheduler", "reporting"]
REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1", "ap-northeast-1", "sa-east-1"]
ALNUM = "bcdfghjklmnpqrstvwxz2456789"


def _rand_id(rng, n):
    return "".join(rng.choice(ALNUM) for _ in range(n))


def _unique(rng, n, make):
    """n distinct values of make(rng, i)."""
    out, seen, i = [], set(), 0
    while len(out) < n:
        v = make(rng, i)
        if v in seen and i >= 4 * n:  # the maker ran out of distinct values
            v = "%s-%d" % (v, i)
        i += 1
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def _handlers(rng, i):
    base = ["/api/v1/users", "/api/v1/users/{id}", "/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/orders/{id}/items",
            "/api/v2/cart", "/api/v2/cart/{id}/checkout", "/api/v1/products", "/api/v1/products/{sku}",
            "/api/v1/search", "/api/v1/login", "/api/v1/logout", "/api/v1/session/refresh", "/healthz", "/readyz",
            "/metrics", "/api/v1/payments", "/api/v1/payments/{id}/capture", "/api/v1/invoices/{id}/pdf",
            "/graphql", "/api/v1/recommendations", "/static/*", "/", "/api/v1/inventory/{warehouse}/{sku}"]
    return base[i] if i < len(base) else "/api/v%d/%s/{id}" % (1 + i % 3, rng.choice(APPS).replace("-", "_") + "s")


LABELS = {
    # name: (natural cardinality, value maker)
    "namespace": (12, lambda r, i: (["default", "kube-system", "monitoring", "ingress-nginx", "payments", "checkout",
                                     "search", "auth", "logging", "data-pipeline", "batch", "istio-system"] + ["team-%d" % i])[min(i, 12)]),
    "cluster": (4, lambda r, i: "%s-%s-%d" % (r.choice(["prod", "prod", "staging"]), r.choice(["eu", "us", "ap"]), i + 1)),
    "region": (len(REGIONS), lambda r, i: REGIONS[i % len(REGIONS)] if i < len(REGIONS) else "%s-%d" % (r.choice(REGIONS)[:-2], i)),
    "zone": (12, lambda r, i: "%s%s" % (REGIONS[i // 3 % len(REGIONS)], "abc"[i % 3]) if i < 21 else "zone-%d" % i),
    "pod": (3000, lambda r, i: "%s-%s-%s" % (r.choice(APPS), _rand_id(r, 9 + r.randint(0, 1)), _rand_id(r, 5))),
    "container": (10, lambda r, i: (["app", "istio-proxy", "envoy", "worker", "nginx", "redis", "fluent-bit",
                                     "otel-collector", "migrations", "cron"] + ["sidecar-%d" % i])[min(i, 10)]),
    "service": (len(APPS), lambda r, i: APPS[i] if i < len(APPS) else "%s-v%d" % (r.choice(APPS), i)),
    "app": (len(APPS), lambda r, i: APPS[i] if i < len(APPS) else "%s-%s" % (r.choice(APPS), _rand_id(r, 4))),
    "handler": (40, _handlers),
    "method": (6, lambda r, i: (["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"] + ["X-%d" % i])[min(i, 6)]),
    "code": (14, lambda r, i: str([200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504][i % 16] + 1000 * (i // 16))),
    "status": (4, lambda r, i: (["success", "error", "timeout", "canceled"] + ["status_%d" % i])[min(i, 4)]),
    "node": (120, lambda r, i: "ip-10-%d-%d-%d.%s.compute.internal" % (r.randint(0, 31), r.randint(0, 255), r.randint(1, 254), r.choice(REGIONS))),
    "cpu": (32, lambda r, i: str(i)),
    "mode": (8, lambda r, i: (["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"] + ["mode%d" % i])[min(i, 8)]),
    "device": (10, lambda r, i: (["sda", "sdb", "nvme0n1", "nvme1n1", "eth0", "eth1", "lo", "dm-0", "xvda", "tmpfs"] + ["dev%d" % i])[min(i, 10)]),
    "mountpoint": (8, lambda r, i: (["/", "/boot", "/var/lib/docker", "/var/lib/kubelet", "/data", "/var/log", "/tmp", "/mnt/ssd"] + ["/mnt/vol%d" % i])[min(i, 8)]),
    "fstype": (5, lambda r, i: (["ext4", "xfs", "tmpfs", "overlay", "btrfs"] + ["fs%d" % i])[min(i, 5)]),
    "topic": (60, lambda r, i: "%s.%s.v%d" % (r.choice(APPS), r.choice(["events", "commands", "changelog", "dlq", "audit"]), r.randint(1, 3))),
    "partition": (24, lambda r, i: str(i)),
    "consumer_group": (15, lambda r, i: "%s-%s" % (r.choice(APPS), r.choice(["consumer", "indexer", "projector", "sink", "etl"]))),
    "db": (8, lambda r, i: (["orders", "users", "payments", "catalog", "analytics", "sessions", "ledger", "audit"] + ["db%d" % i])[min(i, 8)]),
    "table": (80, lambda r, i: "%s_%s" % (r.choice(["order", "user", "payment", "product", "invoice", "event", "sku", "address"]),
                                           r.choice(["items", "history", "index", "events", "snapshots", "archive", "v2", "log", "meta", "queue"]))),
    "operation": (8, lambda r, i: (["select", "insert", "update", "delete", "begin", "commit", "rollback", "upsert"] + ["op%d" % i])[min(i, 8)]),
    "grpc_service": (15, lambda r, i: "%s.v%d.%sService" % (r.choice(APPS).replace("-", ""), r.randint(1, 2), r.choice(APPS).title().replace("-", ""))),
    "grpc_method": (50, lambda r, i: r.choice(["Get", "List", "Create", "Update", "Delete", "Watch", "Stream", "Batch", "Search", "Sync"])
                    + r.choice(["Order", "User", "Item", "Payment", "Invoice", "Session", "Price", "Stock", "Review", "Profile"])
                    + r.choice(["", "s", "Status", "Details"])),
    "grpc_code": (17, lambda r, i: (["OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
                                     "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
                                     "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"] + ["Code%d" % i])[min(i, 17)]),
    "grpc_type": (4, lambda r, i: (["unary", "client_stream", "server_stream", "bidi_stream"] + ["t%d" % i])[min(i, 4)]),
    "queue": (30, lambda r, i: "%s-%s" % (r.choice(APPS), r.choice(["jobs", "emails", "webhooks", "exports", "retries", "priority"]))),
    "priority": (4, lambda r, i: (["critical", "high", "normal", "low"] + ["p%d" % i])[min(i, 4)]),
    "version": (10, lambda r, i: "v%d.%d.%d" % (1 + i // 5, r.randint(0, 30), r.randint(0, 12))),
    "shard": (64, lambda r, i: "%02d" % i),
    "cache": (6, lambda r, i: (["sessions", "products", "prices", "tokens", "config", "geo"] + ["c%d" % i])[min(i, 6)]),
    "result": (3, lambda r, i: (["hit", "miss", "stale"] + ["r%d" % i])[min(i, 3)]),
    "upstream": (40, lambda r, i: "%s.%s.svc.cluster.local:%d" % (r.choice(APPS), r.choice(["default", "payments", "checkout", "search"]), r.choice([80, 8080, 9000, 50051]))),
    "le": (0, None),
}

# Domains: prefixes and the label names their families draw from (first ones first).
DOMAINS = [
    (["http_server", "nginx_ingress_controller", "api_gateway", "envoy_http", "frontend_http"],
     ["namespace", "service", "handler", "method", "code", "pod", "region", "cluster"]),
    (["http_client", "envoy_cluster_upstream", "outbound_http"],
     ["namespace", "app", "upstream", "method", "code", "pod", "zone", "cluster"]),
    (["grpc_server", "grpc_client"],
     ["namespace", "grpc_service", "grpc_method", "grpc_code", "grpc_type", "pod", "region", "cluster"]),
    (["node", "node_disk", "node_network", "node_filesystem"],
     ["node", "device", "cpu", "mode", "mountpoint", "fstype", "zone", "cluster"]),
    (["container", "kube_pod", "kubelet_container"],
     ["namespace", "pod", "container", "node", "app", "zone", "cluster", "version"]),
    (["kafka_consumer", "kafka_producer", "kafka_topic"],
     ["topic", "partition", "consumer_group", "namespace", "pod", "region", "cluster", "version"]),
    (["db_client", "pg_stat", "mysql_query"],
     ["db", "operation", "table", "app", "namespace", "pod", "status", "cluster"]),
    (["jobs_worker", "queue", "celery_task"],
     ["queue", "priority", "status", "app", "namespace", "pod", "shard", "region"]),
    (["cache", "redis_client"],
     ["cache", "result", "operation", "app", "namespace", "pod", "shard", "zone"]),
]

COUNTER_NOUNS = [("requests_total", "int", "Total number of requests handled"),
                 ("errors_total", "int", "Total number of errors"),
                 ("retries_total", "int", "Total number of retried operations"),
                 ("bytes_sent_total", "int", "Total bytes sent"),
                 ("bytes_received_total", "int", "Total bytes received"),
                 ("cpu_seconds_total", "float", "Total CPU time spent in seconds"),
                 ("operations_total", "int", "Total number of operations"),
                 ("timeouts_total", "int", "Total number of timeouts"),
                 ("busy_seconds_total", "float", "Total time spent busy in seconds"),
                 ("messages_total", "int", "Total number of messages processed"),
                 ("dropped_total", "int", "Total number of dropped items"),
                 ("gc_pause_seconds_total", "float", "Total time spent in GC pauses")]
GAUGE_NOUNS = [("in_flight_requests", "small", "Requests currently being served"),
               ("connections_active", "small", "Currently open connections"),
               ("memory_bytes", "bytes", "Memory in use in bytes"),
               ("queue_length", "small", "Items waiting in the queue"),
               ("utilization_ratio", "ratio", "Utilization between 0 and 1"),
               ("last_success_timestamp_seconds", "ts", "Unix time of the last success"),
               ("temperature_celsius", "temp", "Temperature in degrees Celsius"),
               ("lag_seconds", "tiny", "Lag behind the head in seconds"),
               ("free_bytes", "bytes", "Free space in bytes"),
               ("threads", "small", "Number of threads"),
               ("info", "one", "Build and runtime information"),
               ("error_rate", "tiny", "Smoothed error rate per request")]
HISTOGRAM_NOUNS = [("request_duration_seconds", "lat", "Request latency in seconds"),
                   ("response_size_bytes", "size", "Response size in bytes"),
                   ("processing_duration_seconds", "lat", "Processing time in seconds"),
                   ("batch_size", "count", "Items per batch"),
                   ("wait_duration_seconds", "lat", "Time spent waiting in seconds"),
                   ("request_size_bytes", "size", "Request size in bytes")]
BUCKETS = {"lat": ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"],
           "size": ["100", "1000", "10000", "100000", "1e+06", "1e+07", "1e+08", "1e+09"],
           "count": ["1", "2", "5", "10", "20", "50", "100", "500"]}


def _fmt(v):
    """A float the way client libraries print it: integers without '.0', repr otherwise."""
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _plan(rng, series, families):
    """[(name, type, noun kind, help, label names, label sets, buckets)] adding up to exactly `series` series."""
    n_hist = families // 5
    n_gauge = families * 35 // 100
    n_counter = families - n_hist - n_gauge
    types = ["histogram"] * n_hist + ["gauge"] * n_gauge + ["counter"] * n_counter
    rng.shuffle(types)
    names, fams = set(), []
    for t in types:
        while True:
            prefixes, labels = rng.choice(DOMAINS)
            prefix = rng.choice(prefixes)
            noun = rng.choice({"counter": COUNTER_NOUNS, "gauge": GAUGE_NOUNS, "histogram": HISTOGRAM_NOUNS}[t])
            name = "%s_%s" % (prefix, noun[0])
            if name not in names:
                break
        names.add(name)
        k = rng.randint(3, 8)
        lnames = labels[:k]
        buckets = BUCKETS[noun[1]] if t == "histogram" else None
        per_set = len(buckets) + 3 if buckets else 1  # finite buckets, +Inf, _sum, _count
        weight = rng.lognormvariate(0, 1.3)
        fams.append([name, t, noun[1], noun[2], lnames, per_set, weight])
    total_w = sum(f[6] for f in fams)
    for f in fams:
        f.append(max(1, int(f[6] / total_w * series / f[5])))  # label sets
    # Exact total: adjust the largest counter or gauge family.
    used = sum(f[5] * f[7] for f in fams)
    flat = max((f for f in fams if f[5] == 1), key=lambda f: f[7])
    flat[7] += series - used
    if flat[7] < 1:
        raise SystemExit("cannot plan %d series in %d families" % (series, families))
    return fams


def _label_sets(rng, lnames, n):
    """n distinct label sets over lnames, values spread over every label."""
    sizes = [LABELS[l][0] for l in lnames]
    while math.prod(sizes) < n:
        i = max(range(len(sizes)), key=lambda j: sizes[j])
        sizes[i] *= 2
    values = [_unique(rng, s, LABELS[l][1]) for l, s in zip(lnames, sizes)]
    prod = math.prod(sizes)
    stride = rng.randrange(1, prod) if prod > 1 else 1
    while math.gcd(stride, prod) != 1:
        stride += 1
    offset = rng.randrange(prod)
    out = []
    for i in range(n):
        j = (offset + i * stride) % prod
        parts = []
        for l, s, vals in zip(lnames, sizes, values):
            parts.append('%s="%s"' % (l, vals[j % s]))
            j //= s
        out.append(parts)
    return out


def _values(rng, t, kind, nb, variants, interval):
    """Per variant, the values of one label set (a list of `nb + 2` for histograms)."""
    if t == "counter":
        base = 10 ** rng.uniform(0, 7)
        rate = base / 10 ** rng.uniform(3, 6) * interval
        if kind == "int":
            base, rate = int(base), max(0, int(rate))
            return [base + v * rate for v in range(variants)]
        return [round(base + v * rate, 3) for v in range(variants)]
    if t == "gauge":
        if kind == "small":
            return [rng.randint(0, 200) for _ in range(variants)]
        if kind == "bytes":
            b = rng.randint(10 ** 6, 6 * 10 ** 10)
            return [b + rng.randint(-10 ** 5, 10 ** 5) * 4096 for _ in range(variants)]
        if kind == "ratio":
            return [round(rng.random(), 4) for _ in range(variants)]
        if kind == "ts":
            t0 = 1.7636e9 + rng.uniform(0, 1e6)
            return [round(t0 + v * interval + rng.random(), 3) for v in range(variants)]
        if kind == "temp":
            return [round(rng.uniform(25, 85), 1) for _ in range(variants)]
        if kind == "tiny":
            return [rng.uniform(1e-6, 0.05) for _ in range(variants)]
        return [1] * variants
    # histogram: cumulative buckets, +Inf, sum, count
    count0 = int(10 ** rng.uniform(0, 6))
    rate = int(count0 / 10 ** rng.uniform(2, 4) * interval)
    cuts = sorted(rng.random() for _ in range(nb))
    cuts = [c ** 0.5 for c in cuts]
    mean = {"lat": rng.uniform(0.01, 0.8), "size": rng.uniform(500, 2e5), "count": rng.uniform(2, 60)}[kind]
    out = []
    for v in range(variants):
        c = count0 + v * rate
        row = [int(c * f) for f in cuts] + [c]
        s = c * mean
        out.append(row + [round(s, 6) if kind != "count" else int(s), c])
    return out


def generate(workdir, series, families, variants, interval):
    rng = random.Random(SEED)
    fams = _plan(rng, series, families)
    texts = [[] for _ in range(variants)]
    n_series, lab_counts, kinds = 0, [], {"counter": 0, "gauge": 0, "histogram": 0}
    for name, t, kind, help_, lnames, per_set, _, nsets in fams:
        kinds[t] += 1
        lab_counts.append(len(lnames))
        sets = _label_sets(rng, lnames, nsets)
        head = "# HELP %s %s.\n# TYPE %s %s\n" % (name, help_, name, t)
        for out in texts:
            out.append(head)
        buckets = BUCKETS[kind] + ["+Inf"] if t == "histogram" else None
        for parts in sets:
            labels = ",".join(parts)
            vals = _values(rng, t, kind, len(buckets) - 1 if buckets else 0, variants, interval)
            if buckets:
                for out, row in zip(texts, vals):
                    for le, b in zip(buckets, row):
                        out.append('%s_bucket{%s,le="%s"} %d\n' % (name, labels, le, b))
                    out.append("%s_sum{%s} %s\n" % (name, labels, _fmt(row[-2])))
                    out.append("%s_count{%s} %d\n" % (name, labels, row[-1]))
                n_series += len(buckets) + 2
            else:
                for out, v in zip(texts, vals):
                    out.append("%s{%s} %s\n" % (name, labels, _fmt(v)))
                n_series += 1
    assert n_series == series, (n_series, series)
    paths, sizes = [], []
    for i, out in enumerate(texts):
        p = os.path.join(workdir, "exposition.%d.prom" % i)
        data = "".join(out).encode()
        with open(p, "wb") as f:
            f.write(data)
        paths.append(p)
        sizes.append(len(data))
    lines = sum(1 for _ in open(paths[0], "rb"))
    return {"paths": paths, "sizes": sizes, "series": n_series, "families": len(fams), "kinds": kinds,
            "labels_min": min(lab_counts), "labels_max": max(lab_counts),
            "labels_mean": statistics.mean(lab_counts), "lines": lines,
            "biggest": max(f[5] * f[7] for f in fams), "smallest": min(f[5] * f[7] for f in fams)}


# ---------------------------------------------------------------------------
# Processes and the API
# ---------------------------------------------------------------------------

def start(cmd, logpath, **kw):
    f = open(logpath, "wb")
    p = subprocess.Popen(cmd, stdout=kw.pop("stdout", f), stderr=f, stdin=subprocess.DEVNULL, **kw)
    PROCS.append(p)
    if PIDFILE:
        with open(PIDFILE, "a") as pf:
            pf.write("%d\n" % p.pid)
    return p


def stop(p, timeout=20):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in PROCS:
        PROCS.remove(p)


@atexit.register
def _kill_all():
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()


def http_get(url, timeout=30):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(base, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit("%s exited with %s before being ready" % (base, proc.returncode))
        try:
            if http_get(base + "/-/ready", timeout=2)[0] == 200:
                return time.time() - t0
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("%s not ready after %d s" % (base, timeout))


def query(base, q, t):
    status, body = http_get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": "%.3f" % t}))
    if status != 200:
        raise SystemExit("%s: query %s -> %d %s" % (base, q, status, body[:300]))
    return json.loads(body)["data"]


def raw_samples(base, metric, t, window_s):
    """[(ts seconds, value)] of metric{job="bench"} in (t - window_s, t]."""
    data = query(base, '%s{job="bench"}[%dms]' % (metric, round(window_s * 1000)), t)
    out = []
    for s in data["result"]:
        out.extend((float(ts), float(v)) for ts, v in s["values"])
    return sorted(out)


def scalar_count(base, q, t):
    res = query(base, q, t)["result"]
    return int(float(res[0]["value"][1])) if res else 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def exporter_served(path, t0, t1):
    """(requests, median micros) the exporter answered in [t0, t1]."""
    n, micros = 0, []
    try:
        for line in open(path, errors="replace"):
            p = line.split()
            if len(p) == 6 and p[0] == "served" and t0 * 1000 <= int(p[1]) <= t1 * 1000:
                n += 1
                micros.append(int(p[5]))
    except OSError:
        pass
    return n, (statistics.median(micros) if micros else float("nan"))


def sleep_until(t):
    while True:
        d = t - time.time()
        if d <= 0:
            return
        time.sleep(min(d, 1.0))


def run_server(name, cmd, base, workdir, a, exporter_log):
    log("%s: starting (%s)" % (name, " ".join(cmd)))
    load_before = loadavg()
    proc = start(cmd, os.path.join(workdir, name.lower() + ".log"))
    ready_s = wait_ready(base, proc)
    t_ready = time.time()
    log("%s: ready in %.1f s, pid %d; warm-up %d s" % (name, ready_s, proc.pid, a.warmup))
    sleep_until(t_ready + a.warmup)
    # At least two scrapes before the window, to know the phase and skip the
    # first scrape (which creates every series).
    deadline = time.time() + 6 * a.interval
    while True:
        seen = raw_samples(base, "scrape_duration_seconds", time.time(), 6 * a.interval)
        if len(seen) >= 2:
            break
        if time.time() > deadline:
            raise SystemExit("%s: fewer than 2 scrapes of job bench after warm-up (see %s.log)" % (name, name.lower()))
        time.sleep(1)
    last_ts = seen[-1][0]
    n = max(1, round(a.duration / a.interval))
    t0 = last_ts + a.interval / 2
    while t0 < time.time() + 0.3:
        t0 += a.interval
    t1 = t0 + n * a.interval
    log("%s: window of %d scrapes, %s to %s UTC" % (name, n, time.strftime("%H:%M:%S", time.gmtime(t0)),
                                                    time.strftime("%H:%M:%S", time.gmtime(t1))))
    sleep_until(t0)
    cpu0, load0 = cpu_seconds(proc.pid), loadavg()
    sleep_until(t1)
    cpu1, load1 = cpu_seconds(proc.pid), loadavg()
    rss, hwm = status_kib(proc.pid, "VmRSS"), status_kib(proc.pid, "VmHWM")
    w = t1 - t0
    durs = raw_samples(base, "scrape_duration_seconds", t1, w)
    samples = raw_samples(base, "scrape_samples_scraped", t1, w)
    ups = raw_samples(base, "up", t1, w)
    stored = scalar_count(base, 'count({job="bench",__name__!~"up|scrape_.+"})', t1)
    stored_all = scalar_count(base, 'count({job="bench"})', t1)
    served, serve_us = exporter_served(exporter_log, t0, t1)
    last_error = ""
    try:
        st, body = http_get(base + "/api/v1/targets", timeout=5)
        if st == 200:
            for t in json.loads(body)["data"]["activeTargets"]:
                last_error = t.get("lastError", "") or last_error
    except (OSError, ValueError, KeyError):
        pass
    stop(proc)
    log("%s: %d scrapes, durations %s, samples %s, stored %d, cpu %.2f s" % (
        name, len(durs), ["%.3f" % d for _, d in durs], sorted(set(int(s) for _, s in samples)), stored, cpu1 - cpu0))
    return {"name": name, "ready_s": ready_s, "window": (t0, t1), "expected_scrapes": n,
            "durations": [d for _, d in durs], "samples": [s for _, s in samples], "up": [u for _, u in ups],
            "cpu": cpu1 - cpu0, "rss_kib": rss, "hwm_kib": hwm, "stored": stored, "stored_all": stored_all,
            "served": served, "serve_us": serve_us, "load_before": load_before, "load0": load0, "load1": load1,
            "last_error": last_error}


# ---------------------------------------------------------------------------

def main():
    global PIDFILE
    ap = argparse.ArgumentParser()
    ap.add_argument("--hearth", required=True)
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--exporter", required=True, help="the built benches/scrape_exporter.rs")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--pidfile")
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--families", type=int, default=200)
    ap.add_argument("--variants", type=int, default=3)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--warmup", type=float, default=15)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--order", default="hearth,prometheus")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    a = ap.parse_args()
    PIDFILE = a.pidfile
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_start = time.time()

    log("generating %d series in %d families, %d variants" % (a.series, a.families, a.variants))
    t = time.time()
    gen = generate(a.workdir, a.series, a.families, a.variants, a.interval)
    log("generated %d bytes x %d in %.1f s" % (gen["sizes"][0], a.variants, time.time() - t))

    exporter_log = os.path.join(a.workdir, "exporter.log")
    exp = start([a.exporter] + gen["paths"], exporter_log, stdout=subprocess.PIPE)
    port = int(exp.stdout.readline())
    target = "127.0.0.1:%d" % port
    log("exporter pid %d on %s" % (exp.pid, target))
    config = os.path.join(a.workdir, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n  scrape_interval: %ds\n  scrape_timeout: %ds\n"
                "scrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets: ['%s']\n"
                % (a.interval, a.interval, target))

    import socket

    def freeport():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        return p

    results = {}
    for which in [w.strip().lower() for w in a.order.split(",")]:
        port = freeport()
        base = "http://127.0.0.1:%d" % port
        data = os.path.join(a.workdir, which + "-data")
        os.makedirs(data)
        if which == "hearth":
            cmd = [a.hearth, "standalone", "--config.file=" + config, "--storage.tsdb.path=" + data,
                   "--web.listen-address=127.0.0.1:%d" % port]
            results["Hearth"] = run_server("Hearth", cmd, base, a.workdir, a, exporter_log)
        elif which == "prometheus":
            cmd = [a.prometheus, "--config.file=" + config, "--storage.tsdb.path=" + data,
                   "--web.listen-address=127.0.0.1:%d" % port]
            results["Prometheus"] = run_server("Prometheus", cmd, base, a.workdir, a, exporter_log)
        else:
            raise SystemExit("--order: hearth and/or prometheus, not %r" % which)
    stop(exp)

    # ---- report ----------------------------------------------------------
    def first_line(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
            return ((r.stdout or r.stderr).splitlines() or ["?"])[0]
        except OSError:
            return "?"

    rev = first_line(["git", "-C", a.root, "describe", "--always", "--dirty"])
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print("Run %s on %s (%d cores); %s; %s (tree %s)." % (
        now, platform.node(), os.cpu_count(), first_line([a.prometheus, "--version"]),
        first_line([a.hearth, "--version"]), rev))
    print()
    k = gen["kinds"]
    print("Data: one text-format 0.0.4 exposition, **%d series** (%d lines with HELP/TYPE, %.1f MB), %d metric "
          "families (%d counters, %d gauges, %d classic histograms with 8 or 11 buckets + `+Inf`, `_sum`, "
          "`_count`), %d to %d labels per family (mean %.1f; `le` not counted), %d to %d series per family; "
          "integer and float values; no timestamps. %d variants of the file (same series, values moved on) "
          "served in rotation by `scrape_exporter` (std-only Rust, from memory, keep-alive, Content-Length, "
          "no gzip), so that every scrape appends new values."
          % (gen["series"], gen["lines"], gen["sizes"][0] / 1e6, gen["families"], k["counter"], k["gauge"],
             k["histogram"], gen["labels_min"], gen["labels_max"], gen["labels_mean"], gen["smallest"],
             gen["biggest"], len(gen["paths"])))
    print()
    print("Method: the same prometheus.yml (`scrape_interval: %ds`, `scrape_timeout: %ds`, one static target, "
          "job `bench`) for both; the servers run **one after the other** (%s), each alone, on an empty data "
          "dir: %g s warm-up (the first scrape, which creates every series, is never measured), then a window "
          "of %d whole scrape intervals (%g s) whose ends fall half-way between two scrapes. "
          "`scrape_duration_seconds` and `scrape_samples_scraped` are the servers' own samples in the window; "
          "CPU is utime + stime of the process over the window (the scrapes plus whatever else the server "
          "does meanwhile); VmRSS at the end of the window."
          % (a.interval, a.interval, " then ".join(results), a.warmup, round(a.duration / a.interval),
             round(a.duration / a.interval) * a.interval))
    print()
    print("| | scrapes | samples / scrape | scrape_duration median | max | CPU in window | CPU s / M samples "
          "| VmRSS end | VmHWM | stored series | load avg (start; window start, end) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    rows = {}
    failures, warnings = [], []
    for name, r in results.items():
        n = len(r["durations"])
        total = sum(r["samples"])
        med = statistics.median(r["durations"]) if n else float("nan")
        mx = max(r["durations"]) if n else float("nan")
        cpm = r["cpu"] / total * 1e6 if total else float("nan")
        rows[name] = {"med": med, "max": mx, "cpm": cpm, "rss": r["rss_kib"]}
        spp = sorted(set(int(s) for s in r["samples"]))
        print("| %s | %d | %s | %.1f ms | %.1f ms | %.2f s | %.2f | %.1f MiB | %.1f MiB | %d | %s; %s, %s |" % (
            name, n, "/".join(str(s) for s in spp) or "-", med * 1e3, mx * 1e3, r["cpu"], cpm,
            r["rss_kib"] / 1024, r["hwm_kib"] / 1024, r["stored"], r["load_before"], r["load0"], r["load1"]))
        if n != r["expected_scrapes"]:
            failures.append("%s: %d scrapes in the window, expected %d" % (name, n, r["expected_scrapes"]))
        if any(int(s) != gen["series"] for s in r["samples"]) or not r["samples"]:
            failures.append("%s: scrape_samples_scraped %s, expected %d on every scrape" % (name, spp, gen["series"]))
        if any(u != 1 for u in r["up"]) or not r["up"]:
            failures.append("%s: up = %s in the window%s" % (name, sorted(set(r["up"])),
                                                               " (last error: %s)" % r["last_error"] if r["last_error"] else ""))
        if r["stored"] != gen["series"]:
            failures.append("%s: count({job=\"bench\"}) without the report series = %d, expected %d"
                            % (name, r["stored"], gen["series"]))
        if r["durations"] and mx > a.interval / 2:
            warnings.append("%s: a scrape took %.2f s, more than half the interval: the window's ends may "
                            "split a scrape, so the CPU figure is approximate" % (name, mx))
    print()
    if "Hearth" in rows and "Prometheus" in rows:
        h, p = rows["Hearth"], rows["Prometheus"]
        r_med, r_max, r_cpm, r_rss = h["med"] / p["med"], h["max"] / p["max"], h["cpm"] / p["cpm"], h["rss"] / p["rss"]

        def verdict(x):
            return "met" if x <= 0.5 else "**not met**"

        print("| Hearth / Prometheus | ratio | target <= 0.5x |")
        print("|---|---:|---|")
        print("| scrape_duration_seconds, median | **%.2f** | %s |" % (r_med, verdict(r_med)))
        print("| scrape_duration_seconds, max | %.2f | - |" % r_max)
        print("| CPU seconds per million samples | **%.2f** | %s |" % (r_cpm, verdict(r_cpm)))
        print("| VmRSS at the end | %.2f | - |" % r_rss)
        print()
    for name, r in results.items():
        print("- %s: exporter answered %d requests in the window (median %.1f ms to hand the body to the "
              "socket); ready %.1f s after start; `count({job=\"bench\"})` = %d (the series + 5 report series)."
              % (name, r["served"], r["serve_us"] / 1e3, r["ready_s"], r["stored_all"]))
    print("- What `scrape_duration_seconds` covers: Prometheus 2.42 stops its clock after parsing and "
          "`Append` of every sample, *before* `Commit` (WAL write and the samples' insertion into the head "
          "happen after the figure is taken); Hearth's covers the HTTP fetch, parsing and `Db::append` "
          "including its WAL write. CPU per million samples counts all of the work on both.")
    print()
    print("Total %.0f s." % (time.time() - t_start))
    for w in warnings:
        print()
        print("WARNING: %s" % w)
    if failures:
        print()
        for f in failures:
            print("FAILED: %s" % f)
        sys.exit(1)


if __name__ == "__main__":
    main()
