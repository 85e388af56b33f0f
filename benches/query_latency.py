"""PromQL query latency, Hearth against Prometheus, on the same data (see query_latency.sh).

Pushes promrw.py's demo data set (3 h at 5 s, 708 series, ending at --end) into
both servers by remote write, then for each query of the list (lines starting
with '!' or '#' skipped): an instant query at END-30m and a range query over
[END-2h, END] at step 60s, by HTTP GET on one keep-alive session per server.
One warm-up per server, then --runs timed runs per server, alternating the two
servers (H P, then P H, ...) so that both share the machine's noise; only one
server receives a query at any time. Reports client-side wall-clock medians
(request sent to body read) and Hearth / Prometheus ratios as Markdown.

The timed GETs go through qclient (benches/qclient.rs, built by
query_latency.sh; --qclient), a std-only Rust client on one keep-alive
connection per server that times each request itself: Python clients add
0.15 ms (http.client) to 0.5 ms (requests) of their own to every call, most
of a small query's time, which would hide the servers' own differences.
"""
import argparse
import datetime
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.parse

import requests


class Response:
    """What a timed GET returns: status, headers, the (decompressed) body."""

    def __init__(self, status, headers, content):
        self.status_code = status
        self.headers = headers
        self.content = content

    def json(self):
        return json.loads(self.content)


class QClient:
    """The qclient process: one GET per call, timed by qclient itself."""

    def __init__(self, path):
        self.p = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def get(self, base, path, params):
        addr = urllib.parse.urlsplit(base).netloc
        self.p.stdin.write(("%s %s?%s\n" % (addr, path, urllib.parse.urlencode(params))).encode())
        self.p.stdin.flush()
        head = self.p.stdout.readline().split()
        if len(head) != 4:
            raise RuntimeError("qclient failed (see its stderr)")
        status, nanos, encoding, length = int(head[0]), int(head[1]), head[2].decode(), int(head[3])
        body = self.p.stdout.read(length)
        headers = {"Content-Encoding": encoding} if encoding != "-" else {}
        return status, nanos / 1e9, headers, body


class Conn:
    """A server as seen through the shared qclient."""

    def __init__(self, client, base):
        self.client, self.base = client, base

    def get(self, path, params):
        return self.client.get(self.base, path, params)


def wait_ready(url, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if requests.get(url + "/-/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit("%s not ready after %ds" % (url, timeout))


def load_queries(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or line.startswith("!"):
                continue
            out.append(line)
    return out


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def timed_get(conn, path, params):
    """Times one GET (request sent to compressed body read); decompresses after."""
    status, dt, headers, body = conn.get(path, params)
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    if status != 200:
        raise RuntimeError("%s %s -> %d %s" % (path, params, status, body[:300]))
    return dt, Response(status, headers, body)


def result_size(r):
    data = r.json()["data"]
    res = data["result"]
    if data["resultType"] in ("scalar", "string"):
        return 1, 1
    if data["resultType"] == "vector":
        return len(res), len(res)
    return len(res), sum(len(s.get("values", [])) + len(s.get("histograms", [])) for s in res)


def fmt_ms(s):
    return "%.2f" % (s * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hearth", required=True)
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--end", type=int, required=True)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--hearth-pid", type=int, default=0)
    ap.add_argument("--prometheus-pid", type=int, default=0)
    ap.add_argument("--root", default=".")
    ap.add_argument("--no-push", action="store_true")
    ap.add_argument("--hearth-version", default="")
    ap.add_argument("--qclient", required=True, help="the built benches/qclient.rs")
    a = ap.parse_args()

    if a.end % 3600:
        raise SystemExit("--end must be hour-aligned")
    sys.path.insert(0, os.environ.get("PROMRW_DIR", os.path.join(a.root, "..", "shared", "tools")))
    import promrw

    servers = [("Hearth", a.hearth.rstrip("/"), a.hearth_pid),
               ("Prometheus", a.prometheus.rstrip("/"), a.prometheus_pid)]
    for _, url, _ in servers:
        wait_ready(url)

    t_start = time.time()
    if not a.no_push:
        start_ms = (a.end - 3 * 3600) * 1000
        data, times = promrw.demo_dataset(start_ms)
        nsamples = sum(len(s) for _, s in data)
        print("pushing %d series, %d samples to both servers ..." % (len(data), nsamples), file=sys.stderr)
        t0 = time.time()
        promrw.push_time_ordered([url + "/api/v1/write" for _, url, _ in servers], data, times)
        print("pushed in %.1f s" % (time.time() - t0), file=sys.stderr)

    queries = load_queries(a.queries)
    t_inst = a.end - 1800
    r_start, r_end, step = a.end - 7200, a.end, 60

    client = QClient(a.qclient)
    sessions = {name: Conn(client, url) for name, url, _ in servers}
    # Sanity: both hold the same data.
    check = {}
    encoding = {}
    for name, url, _ in servers:
        _, r = timed_get(sessions[name], "/api/v1/query",
                         {"query": "count({__name__=~\".+\"})", "time": a.end})
        c1 = r.json()["data"]["result"]
        encoding[name] = r.headers.get("Content-Encoding", "none")
        _, r = timed_get(sessions[name], "/api/v1/query",
                         {"query": "sum(count_over_time(demo_api_request_duration_seconds_bucket[3h]))",
                          "time": a.end})
        c2 = r.json()["data"]["result"]
        check[name] = (c1[0]["value"][1] if c1 else "0", c2[0]["value"][1] if c2 else "0")
    print("data check (series at END, histogram bucket samples in [END-3h, END]): %s" % check, file=sys.stderr)

    load_before = " ".join(open("/proc/loadavg").read().split()[:3])
    cpu0 = {name: cpu_seconds(pid) for name, _, pid in servers if pid}
    t_meas = time.time()
    rows = []  # (query, kind, h_med, p_med, h_size, p_size)
    for qi, q in enumerate(queries):
        for kind in ("instant", "range"):
            if kind == "instant":
                path, params = "/api/v1/query", {"query": q, "time": t_inst}
            else:
                path, params = "/api/v1/query_range", {"query": q, "start": r_start, "end": r_end, "step": step}
            samples = {name: [] for name, _, _ in servers}
            sizes = {}
            for name, url, _ in servers:  # warm-up
                _, r = timed_get(sessions[name], path, params)
                sizes[name] = result_size(r)
            for i in range(a.runs):
                order = servers if i % 2 == 0 else servers[::-1]
                for name, url, _ in order:
                    dt, _ = timed_get(sessions[name], path, params)
                    samples[name].append(dt)
            h = statistics.median(samples["Hearth"])
            p = statistics.median(samples["Prometheus"])
            rows.append((q, kind, h, p, sizes["Hearth"], sizes["Prometheus"]))
        print("[%d/%d] %s" % (qi + 1, len(queries), q), file=sys.stderr)
    meas_s = time.time() - t_meas
    cpu1 = {name: cpu_seconds(pid) for name, _, pid in servers if pid}

    # ---- report ----------------------------------------------------------
    try:
        rev = subprocess.run(["git", "-C", a.root, "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        rev = "?"
    try:
        pv = subprocess.run(["/usr/bin/prometheus", "--version"], capture_output=True, text=True)
        pver = (pv.stdout or pv.stderr).splitlines()[0]
    except (OSError, IndexError):
        pver = "?"
    end_iso = datetime.datetime.fromtimestamp(a.end, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print("Run %s on %s (%d cores, load average before the queries %s, after %s); %s; hearth: %s (tree %s)."
          % (now, platform.node(), os.cpu_count(), load_before, " ".join(open("/proc/loadavg").read().split()[:3]),
             pver, a.hearth_version or "?", rev))
    print()
    print("Data: promrw.py demo data set, 708 series, 3 h at 5 s ending %s (END), pushed by remote write "
          "into both. Data check (series at END, bucket samples in the 3 h): %s." % (end_iso, check))
    print("Instant: at END-30m. Range: [END-2h, END], step 60s (121 steps). Median of %d timed GETs "
          "per server after one warm-up, servers alternating; client-side wall time (request written to body read, "
          "measured by qclient, a Rust client on one keep-alive connection per server), Accept-Encoding gzip (response Content-Encoding: %s)." % (a.runs, encoding))
    print()
    print("| # | query | instant H ms | instant P ms | instant H/P | range H ms | range P ms | range H/P | series H/P |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    by_q = {}
    for q, kind, h, p, hs, ps in rows:
        by_q.setdefault(q, {})[kind] = (h, p, hs, ps)
    mismatches = []
    for i, q in enumerate(queries):
        ins, rng = by_q[q]["instant"], by_q[q]["range"]
        ser = "%d/%d, %d/%d" % (ins[2][0], ins[3][0], rng[2][0], rng[3][0])
        if ins[2] != ins[3] or rng[2] != rng[3]:
            ser += " (differs)"
            mismatches.append(q)
        qs = q.replace("|", "\\|")
        print("| %d | `%s` | %s | %s | %.2f | %s | %s | %.2f | %s |" % (
            i + 1, qs, fmt_ms(ins[0]), fmt_ms(ins[1]), ins[0] / ins[1],
            fmt_ms(rng[0]), fmt_ms(rng[1]), rng[0] / rng[1], ser))
    print()
    ratios = {k: [h / p for _, kind, h, p, _, _ in rows if kind == k] for k in ("instant", "range")}
    ratios["all"] = ratios["instant"] + ratios["range"]
    print("| ratios Hearth / Prometheus | n | median | geo. mean | max | above 1x |")
    print("|---|---:|---:|---:|---:|---:|")
    for k in ("instant", "range", "all"):
        rs = ratios[k]
        gm = statistics.geometric_mean(rs)
        print("| %s | %d | **%.2f** | %.2f | **%.2f** | %d |" % (k, len(rs), statistics.median(rs), gm, max(rs),
                                                              sum(1 for r in rs if r > 1)))
    print()
    tot = {k: (sum(r[2] for r in rows if r[1] == k), sum(r[3] for r in rows if r[1] == k))
           for k in ("instant", "range")}
    print("Sum of medians: instant %.1f ms vs %.1f ms, range %.1f ms vs %.1f ms (Hearth vs Prometheus)."
          % (tot["instant"][0] * 1e3, tot["instant"][1] * 1e3, tot["range"][0] * 1e3, tot["range"][1] * 1e3))
    if cpu0:
        print("Server CPU during the measurements (%.0f s, warm-ups included): Hearth %.1f s, Prometheus %.1f s."
              % (meas_s, cpu1["Hearth"] - cpu0["Hearth"], cpu1["Prometheus"] - cpu0["Prometheus"]))
    worst = sorted(rows, key=lambda r: r[2] / r[3], reverse=True)[:8]
    print()
    print("Slowest for Hearth relative to Prometheus:")
    print()
    for q, kind, h, p, _, _ in worst:
        print("- %.2fx %s `%s` (%s vs %s ms)" % (h / p, kind, q, fmt_ms(h), fmt_ms(p)))
    if mismatches:
        print()
        print("WARNING: result series counts differ for: %s" % "; ".join("`%s`" % m for m in mismatches))
    print()
    print("Total %.0f s (push included)." % (time.time() - t_start))


if __name__ == "__main__":
    main()
