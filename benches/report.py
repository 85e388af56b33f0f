#!/usr/bin/env python3
"""Helpers for benches/compare.sh.

    report.py blocks DIR            JSON: blocks, samples, series, chunks/index bytes of a data dir
    report.py metric URL NAME       the value of one metric (no labels) on a /metrics page
    report.py freeport              a free TCP port on 127.0.0.1
    report.py table RESULTS_DIR     the Markdown tables of a run
"""
import glob
import json
import os
import socket
import sys
import urllib.request


def blocks(d):
    out = {"blocks": 0, "samples": 0, "series_max": 0, "chunks_bytes": 0, "index_bytes": 0}
    for meta in sorted(glob.glob(os.path.join(d, "*", "meta.json"))):
        b = os.path.dirname(meta)
        st = json.load(open(meta))["stats"]
        out["blocks"] += 1
        out["samples"] += st["numSamples"]
        out["series_max"] = max(out["series_max"], st["numSeries"])
        out["chunks_bytes"] += sum(os.path.getsize(f) for f in glob.glob(os.path.join(b, "chunks", "*")))
        out["index_bytes"] += os.path.getsize(os.path.join(b, "index"))
    return out


def metric(url, name):
    for line in urllib.request.urlopen(url, timeout=10).read().decode().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == name:
            return float(parts[1])
    raise SystemExit("metric %s not found at %s" % (name, url))


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def table(d):
    def load(name):
        return json.load(open(os.path.join(d, name + ".json")))

    env, gen = load("env"), load("gen")
    p = print
    p("Run %s on %s (%s cores, load average before the run %s); %s; %s." % (
        env["date"], env["host"], env["cores"], env["loadavg"], env["prometheus"], env["hearth"]))
    p()
    p("### 1. Storage: `create-blocks-from openmetrics`, %d series, 24 h at 15 s (%d samples, %.0f MB of OpenMetrics)"
      % (gen["om_series"], gen["om_samples"], gen["om_bytes"] / 1e6))
    p()
    p("| | blocks | samples (meta.json) | chunks/ bytes | index bytes | bytes/sample | backfill time |")
    p("|---|---:|---:|---:|---:|---:|---:|")
    bps = {}
    for who in ("prometheus", "hearth"):
        s = load("storage_" + who)
        bps[who] = (s["chunks_bytes"] + s["index_bytes"]) / s["samples"]
        p("| %s | %d | %d | %d | %d | %.4f | %.1f s |" % (
            who.capitalize(), s["blocks"], s["samples"], s["chunks_bytes"], s["index_bytes"], bps[who], s["seconds"]))
    p()
    p("Hearth / Prometheus bytes per sample: **%.4f**." % (bps["hearth"] / bps["prometheus"]))
    p()
    p("### 2. Ingest: remote write 1.0, %d series x %d points = %d samples in %d requests (<= %d samples each), %d connections"
      % (gen["rw_series"], gen["rw_points"], gen["rw_samples"], gen["rw_requests"], gen["rw_max_samples"],
         gen["rw_shards"]))
    p()
    p("| | round | samples/s | seconds | non-2xx | head series | RSS idle | RSS after load | RSS after / active series | load average before |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    sps, mps, warn = {}, {}, []
    for who in ("prometheus", "hearth"):
        for f in sorted(glob.glob(os.path.join(d, "ingest_%s-*.json" % who))):
            r = json.load(open(f))
            rnd = f.rsplit("-", 1)[1][:-5]
            per = r["rss_after_kb"] * 1024 / gen["rw_series"]
            sps.setdefault(who, []).append(r["samples_per_s"] if not r["errors"] else 0)
            mps.setdefault(who, []).append(per)
            p("| %s | %s | %.0f | %.2f | %d | %d | %.1f MiB | %.1f MiB | %.0f bytes | %s |" % (
                who.capitalize(), rnd, r["samples_per_s"], r["seconds"], r["errors"], r["head_series"],
                r["rss_idle_kb"] / 1024, r["rss_after_kb"] / 1024, per, r["loadavg"]))
            if r["head_series"] != gen["rw_series"] or r["errors"]:
                warn.append("%s round %s: %d head series after %d series were acknowledged, %d non-2xx answers" % (
                    who.capitalize(), rnd, r["head_series"], gen["rw_series"], r["errors"]))
    best = {w: max(v) for w, v in sps.items()}
    mem = {w: sum(v) / len(v) for w, v in mps.items()}
    p()
    p("Best round: Prometheus %.0f samples/s, Hearth %.0f samples/s; Hearth / Prometheus: **%.2f**." % (
        best["prometheus"], best["hearth"], best["hearth"] / best["prometheus"]))
    p("RSS after load per active series (%d written; mean of rounds): Prometheus %.0f bytes, Hearth %.0f bytes; "
      "Hearth / Prometheus: **%.2f**." % (gen["rw_series"], mem["prometheus"], mem["hearth"], mem["hearth"] / mem["prometheus"]))
    for w in warn:
        p()
        p("**WARNING**: " + w + ".")


def main():
    cmd = sys.argv[1]
    if cmd == "blocks":
        json.dump(blocks(sys.argv[2]), sys.stdout)
        print()
    elif cmd == "metric":
        v = metric(sys.argv[2], sys.argv[3])
        print(int(v) if v == int(v) else v)
    elif cmd == "freeport":
        print(freeport())
    elif cmd == "table":
        table(sys.argv[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
