#!/usr/bin/env python3
"""Data for benches/compare.sh, from the deterministic demo data set of
shared/tools/promrw.py (imported, not copied).

    gen.py OUTDIR [--replicas R] [--points P] [--shards S] [--max-samples N]

writes, from ONE generation of the data set (708 series, 24 h at 15 s,
starting 2026-01-01T00:00:00Z):

* OUTDIR/data.om: OpenMetrics text, every series with all its samples in
  time order, timestamps in seconds, ending with `# EOF`. Stale markers
  (NaN with a payload) cannot be written in OpenMetrics text and are left out.
* OUTDIR/batches.bin: remote-write 1.0 requests (protobuf + snappy), ready to
  post: the first P points of every series, replicated R times (replica r
  moves the instance port by 3*r, as promrw's `scale` does), the series split
  into S shards (series i goes to shard i % S), each shard's requests in time
  order with at most N samples each (one sample per series per request, as a
  scraping Prometheus sends). Stale markers are kept. Record format, little
  endian: u32 shard, u32 samples, u32 length, then the body.
* prints a JSON summary on stdout.
"""
import argparse
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.environ.get("PROMRW_DIR", os.path.join(HERE, "..", "..", "shared", "tools"))
sys.path.insert(0, TOOLS)
import promrw  # noqa: E402
import snappy  # noqa: E402

START_MS = 1767225600000  # 2026-01-01T00:00:00Z, on a 2 h block boundary
HOURS = 24
STEP_S = 15


def fmt_labels(labels):
    name = labels["__name__"]
    rest = ",".join('%s="%s"' % (k, str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
                    for k, v in sorted(labels.items()) if k != "__name__")
    return "%s{%s}" % (name, rest) if rest else name


def is_stale(v):
    return v != v and struct.pack("<d", v) == struct.pack("<Q", 0x7FF0000000000002)


def write_openmetrics(path, data):
    n = 0
    # Group by metric name (OpenMetrics wants a family's samples together);
    # within a family, series after series, each in time order.
    order = sorted(range(len(data)), key=lambda i: data[i][0]["__name__"])
    with open(path, "w", buffering=1 << 20) as f:
        for i in order:
            labels, samples = data[i]
            prefix = fmt_labels(labels) + " "
            lines = []
            for t, v in samples:
                if is_stale(v):
                    continue
                lines.append("%s%r %d.%03d\n" % (prefix, float(v), t // 1000, t % 1000))
            n += len(lines)
            f.write("".join(lines))
        f.write("# EOF\n")
    return n


def write_batches(path, data, replicas, points, shards, max_samples):
    end_ms = START_MS + points * STEP_S * 1000
    series = []
    for r in range(replicas):
        for labels, samples in data:
            lab = dict(labels)
            host, port = lab["instance"].rsplit(":", 1)
            lab["instance"] = "%s:%d" % (host, int(port) + 3 * r)
            enc = bytearray()
            for name in sorted(lab):
                enc += promrw._bytes_field(1, promrw._bytes_field(1, name.encode())
                                           + promrw._bytes_field(2, str(lab[name]).encode()))
            # sample i of every series of the data set is at times[i], or absent
            pts = [(t, v) for t, v in samples if t < end_ms]
            series.append((bytes(enc), pts))
    times = [START_MS + 1234 + i * STEP_S * 1000 for i in range(points)]
    n_req = n_samples = 0
    with open(path, "wb", buffering=1 << 20) as f:
        for s in range(shards):
            mine = [series[i] for i in range(s, len(series), shards)]
            pos = [0] * len(mine)
            body, cnt = [], 0

            def flush():
                nonlocal body, cnt, n_req, n_samples
                if cnt:
                    raw = snappy.compress(b"".join(body))
                    f.write(struct.pack("<III", s, cnt, len(raw)))
                    f.write(raw)
                    n_req += 1
                    n_samples += cnt
                body, cnt = [], 0

            for t in times:
                for j, (lab, pts) in enumerate(mine):
                    p = pos[j]
                    if p < len(pts) and pts[p][0] == t:
                        v = pts[p][1]
                        smp = b"\x09" + struct.pack("<d", v) + b"\x10" + promrw._varint(t)
                        ts = lab + b"\x12" + promrw._varint(len(smp)) + smp
                        body.append(b"\x0a" + promrw._varint(len(ts)) + ts)
                        cnt += 1
                        pos[j] = p + 1
                        if cnt >= max_samples:
                            flush()
            flush()
    return len(series), n_req, n_samples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--replicas", type=int, default=28)
    ap.add_argument("--points", type=int, default=240)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--max-samples", type=int, default=2000)
    a = ap.parse_args()
    data, _ = promrw.demo_dataset(START_MS, hours=HOURS, step_s=STEP_S)
    om_samples = write_openmetrics(os.path.join(a.outdir, "data.om"), data)
    n_series, n_req, n_samples = write_batches(os.path.join(a.outdir, "batches.bin"), data,
                                               a.replicas, a.points, a.shards, a.max_samples)
    json.dump({"om_series": len(data), "om_samples": om_samples,
               "om_bytes": os.path.getsize(os.path.join(a.outdir, "data.om")),
               "rw_series": n_series, "rw_requests": n_req, "rw_samples": n_samples,
               "rw_bytes": os.path.getsize(os.path.join(a.outdir, "batches.bin")),
               "rw_shards": a.shards, "rw_points": a.points, "rw_replicas": a.replicas,
               "rw_max_samples": a.max_samples}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
