//! WAL compatibility with a real Prometheus 2.42 (Debian's `prometheus`
//! package), both ways:
//!
//! * Prometheus receives samples over remote write and is stopped; Hearth's
//!   `WalReader` finds the series and the exact sample bits in its `wal/`.
//! * Hearth writes a WAL (snappy, multi-page records, small segments);
//!   Prometheus replays it at startup and answers queries from it.
//!
//! These tests FAIL when `prometheus` is not installed (`apt-get install
//! prometheus`): they are the evidence of compatibility and must not be
//! skipped silently.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_model::{Labels, STALE_NAN_BITS};
use hearth_tsdb::wal::{
    checkpoint, Record, RefSample, RefSeries, Wal, WalOptions, WalReader, PAGE_SIZE,
};

fn prometheus_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("prometheus");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the `prometheus` binary (Prometheus 2.42, Debian package `prometheus`) is not in PATH; \
         install it with `apt-get install -y prometheus`: this compatibility test must not be skipped"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus server on a loopback port, killed when dropped.
struct Prometheus {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, data: &Path) -> Prometheus {
        let bin = prometheus_binary();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child: Some(child),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((status, _)) = p.request("GET", "/-/ready", &[], &[]) {
                if status == 200 {
                    return p;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after 60s:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.0 request (so the reply is neither chunked nor kept alive).
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut req = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        s.write_all(body)?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)?;
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let head = String::from_utf8_lossy(&resp[..split]);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        Ok((status, resp[split + 4..].to_vec()))
    }

    fn query(&self, query: &str, time_ms: i64) -> serde_json::Value {
        let q: String = query
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let path = format!(
            "/api/v1/query?query={q}&time={}.{:03}",
            time_ms / 1000,
            time_ms % 1000
        );
        let (status, body) = self.request("GET", &path, &[], &[]).unwrap();
        assert_eq!(status, 200, "{query}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// SIGTERM, so that Prometheus shuts down as in production; SIGKILL
    /// after 30 s.
    fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "prometheus did not stop after SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// A hand-written protobuf encoder for the remote-write `WriteRequest`.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A series to send: its label pairs and `(t, v)` samples.
type SentSeries<'a> = (Vec<(&'a str, &'a str)>, Vec<(i64, f64)>);

fn write_request(series: &[SentSeries<'_>]) -> Vec<u8> {
    let mut req = Vec::new();
    for (labels, samples) in series {
        let mut ts = Vec::new();
        for (name, value) in labels {
            let mut l = Vec::new();
            put_bytes_field(&mut l, 1, name.as_bytes());
            put_bytes_field(&mut l, 2, value.as_bytes());
            put_bytes_field(&mut ts, 1, &l);
        }
        for &(t, v) in samples {
            let mut s = Vec::new();
            s.push(1 << 3 | 1); // double value
            s.extend_from_slice(&v.to_bits().to_le_bytes());
            put_varint(&mut s, 2 << 3); // int64 timestamp
            put_varint(&mut s, t as u64);
            put_bytes_field(&mut ts, 2, &s);
        }
        put_bytes_field(&mut req, 1, &ts);
    }
    snap::raw::Encoder::new().compress_vec(&req).unwrap()
}

#[test]
fn hearth_reads_the_wal_of_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let prom = Prometheus::start(dir.path(), &data);

    let t0 = now_ms() - 60_000;
    let special = [
        0.0,
        -0.0,
        1.5,
        1e300,
        f64::INFINITY,
        f64::from_bits(STALE_NAN_BITS),
    ];
    let sent: Vec<SentSeries<'_>> = vec![
        (
            vec![
                ("__name__", "hearth_wal_probe"),
                ("instance", "a"),
                ("job", "test"),
            ],
            (0..20).map(|i| (t0 + i * 1000, i as f64 * 0.25)).collect(),
        ),
        (
            vec![
                ("__name__", "hearth_wal_probe"),
                ("instance", "b"),
                ("job", "test"),
            ],
            special
                .iter()
                .enumerate()
                .map(|(i, &v)| (t0 + i as i64 * 1000, v))
                .collect(),
        ),
    ];
    let body = write_request(&sent);
    let headers = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    let (status, resp) = prom
        .request("POST", "/api/v1/write", &headers, &body)
        .unwrap();
    assert!(
        status == 204 || status == 200,
        "remote write: {status} {}",
        String::from_utf8_lossy(&resp)
    );
    let log = prom.log_text();
    prom.stop();

    let mut reader = WalReader::open(data.join("wal")).unwrap();
    let mut series: HashMap<u64, Labels> = HashMap::new();
    let mut samples: Vec<RefSample> = Vec::new();
    while let Some(rec) = reader.next_record().unwrap() {
        match Record::decode(rec).unwrap() {
            Record::Series(s) => series.extend(s.into_iter().map(|s| (s.ref_, s.labels))),
            Record::Samples(s) => samples.extend(s),
            _ => {}
        }
    }
    assert_eq!(reader.torn_tail(), None);
    for (labels, want) in &sent {
        let labels = Labels::new(labels.iter().copied());
        let refs: Vec<u64> = series
            .iter()
            .filter(|(_, l)| **l == labels)
            .map(|(r, _)| *r)
            .collect();
        assert_eq!(
            refs.len(),
            1,
            "series {labels} in the prometheus wal (log:\n{log})"
        );
        let got: Vec<(i64, u64)> = samples
            .iter()
            .filter(|s| s.ref_ == refs[0])
            .map(|s| (s.t, s.v.to_bits()))
            .collect();
        let want: Vec<(i64, u64)> = want.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(got, want, "samples of {labels}");
    }
}

#[test]
fn prometheus_replays_a_wal_written_by_hearth() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let n_series = 3000u64;
    let n_samples = 13i64;
    let t_end = now_ms() - 1000;
    let t_start = t_end - (n_samples - 1) * 10_000;
    {
        // Small segments, snappy, and a series record far larger than a
        // page: segments cuts and multi-fragment records.
        let opts = WalOptions {
            segment_size: 2 * PAGE_SIZE as u64,
            compress: true,
            fsync_on_log: false,
        };
        let wal = Wal::open(data.join("wal"), opts).unwrap();
        let series: Vec<RefSeries> = (1..=n_series)
            .map(|r| {
                let noise = format!("{:016x}", r.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let i = r.to_string();
                RefSeries {
                    ref_: r,
                    labels: Labels::new([
                        ("__name__", "hearth_wal_test"),
                        ("i", i.as_str()),
                        ("noise", &noise),
                    ]),
                }
            })
            .collect();
        let rec = Record::Series(series).encode();
        assert!(snap::raw::Encoder::new().compress_vec(&rec).unwrap().len() > PAGE_SIZE);
        wal.log(&[&rec]).unwrap();
        for k in 0..n_samples {
            let t = t_start + k * 10_000;
            let samples: Vec<RefSample> = (1..=n_series)
                .map(|r| {
                    // Series 1 ends with a staleness marker.
                    let v = if r == 1 && k == n_samples - 1 {
                        f64::from_bits(STALE_NAN_BITS)
                    } else {
                        (r * 1000 + k as u64) as f64
                    };
                    RefSample { ref_: r, t, v }
                })
                .collect();
            wal.log(&[&Record::Samples(samples).encode()]).unwrap();
        }
        // Left open at the end, as after a crash: no padding of the last page.
    }
    {
        // Checkpoint the first segments (keeping everything), as the head
        // does on truncation: Prometheus reads the checkpoint first.
        let wal = Wal::open(data.join("wal"), WalOptions::default()).unwrap();
        let stats = checkpoint(&data.join("wal"), 0, 3, |_| true, t_start).unwrap();
        assert!(stats.total_samples > 0);
        assert_eq!(stats.dropped_samples + stats.dropped_series, 0);
        wal.truncate(4).unwrap();
    }

    let prom = Prometheus::start(dir.path(), &data);
    let value = |query: &str| -> f64 {
        let v = prom.query(query, t_end);
        let result = v["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: {v}"));
        assert_eq!(result.len(), 1, "{query}: {v}");
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(
        value("count(hearth_wal_test)"),
        (n_series - 1) as f64,
        "series 1 is stale at the end"
    );
    assert_eq!(
        value("count(count_over_time(hearth_wal_test[10m]))"),
        n_series as f64
    );
    assert_eq!(
        value(r#"count_over_time(hearth_wal_test{i="1"}[10m])"#),
        (n_samples - 1) as f64
    );
    assert_eq!(
        value(r#"count_over_time(hearth_wal_test{i="2999"}[10m])"#),
        n_samples as f64
    );
    assert_eq!(
        value(r#"hearth_wal_test{i="2999"}"#),
        (2999 * 1000 + n_samples as u64 - 1) as f64
    );
    let log = prom.log_text();
    prom.stop();
    assert!(
        log.contains("WAL checkpoint loaded"),
        "prometheus did not replay the checkpoint:\n{log}"
    );
    assert!(
        log.contains("WAL segment loaded"),
        "prometheus did not replay the wal:\n{log}"
    );
    for bad in ["orrupt", "epair", "level=error"] {
        assert!(
            !log.contains(bad),
            "prometheus log mentions {bad:?}:\n{log}"
        );
    }
}
