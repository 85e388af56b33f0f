//! Closed-loop remote-write load generator for benches/ingest_write.sh: the
//! same client, data and pacing for every receiver it is pointed at.
//!
//!     rwload --url URL[,URL...] [--writers 8] [--series 10000] [--batch 500]
//!            [--warmup 5] [--duration 20] [--step-ms 1000] [--start-ms MS]
//!            [--latencies FILE]
//!
//! The series: `--series` Prometheus-like label sets (100 per "target": node
//! exporter CPU, memory, filesystem, network and load gauges, HTTP request
//! counters and a latency histogram, process and Go gauges; 6 to 9 labels
//! each, with `job`, `instance`, `namespace`, `pod`, `cluster`), split into
//! `--writers` disjoint parts. Each writer is one thread with one keep-alive
//! HTTP/1.1 connection to `URL[i % URLs]` and acts like one Prometheus
//! scraping its targets every `--step-ms` of data time as fast as the
//! receiver answers: scrape k stamps every sample of the writer's series
//! with `start + k * step`, and sends them as remote write 1.0 requests
//! (protobuf + snappy, encoded with hearth-proto) of at most `--batch`
//! series x 1 sample, each request only after the previous one's answer.
//! Every series' samples therefore arrive in time order, whatever the
//! writers' relative speed.
//!
//! The first `--warmup` seconds are sent but not counted; then requests
//! started during the next `--duration` seconds are. A request counts as
//! acknowledged only with a 2xx answer; anything else (non-2xx, I/O error,
//! 30 s without an answer) is an error and the writer goes on with its next
//! request (on a new connection after an I/O error). Latency: from the
//! request's first byte written to the answer's last byte read.
//!
//! Prints one JSON object on stdout: counted requests, acknowledged samples,
//! samples/s (acknowledged samples over the time from the window's start to
//! the last counted answer), latency percentiles in ms, errors, the samples
//! acknowledged over the whole run (warm-up included), the data time range
//! written, and this process's CPU ticks (`/proc/self/stat` utime + stime).
//! With `--latencies FILE` the counted requests' latencies (microseconds,
//! one per line) are written there too.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use hearth_proto::remote_write::encode_write_request;

/// A metric family of the target template: its name, whether it is a
/// counter, and its own label dimensions (the family's series are their
/// cartesian product).
type Family = (
    &'static str,
    bool,
    &'static [(&'static str, &'static [&'static str])],
);

const HANDLERS: &[&str] = &["/api/v1/query", "/api/v1/write", "/metrics"];

/// One target's 100 series.
const FAMILIES: &[Family] = &[
    ("up", false, &[]),
    ("process_cpu_seconds_total", true, &[]),
    ("process_resident_memory_bytes", false, &[]),
    ("go_goroutines", false, &[]),
    ("go_memstats_heap_inuse_bytes", false, &[]),
    ("node_memory_MemAvailable_bytes", false, &[]),
    ("node_memory_MemTotal_bytes", false, &[]),
    ("node_load1", false, &[]),
    ("node_load5", false, &[]),
    ("node_load15", false, &[]),
    (
        "node_cpu_seconds_total",
        true,
        &[
            ("cpu", &["0", "1", "2", "3"]),
            (
                "mode",
                &[
                    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
                ],
            ),
        ],
    ),
    (
        "node_filesystem_avail_bytes",
        false,
        &[
            ("device", &["/dev/nvme0n1p1", "/dev/nvme1n1"]),
            ("fstype", &["ext4"]),
            ("mountpoint", &["/", "/var/lib/data"]),
        ],
    ),
    (
        "node_network_receive_bytes_total",
        true,
        &[("device", &["eth0", "eth1", "lo"])],
    ),
    (
        "node_network_transmit_bytes_total",
        true,
        &[("device", &["eth0", "eth1", "lo"])],
    ),
    (
        "http_requests_total",
        true,
        &[
            ("code", &["200", "404", "500"]),
            ("handler", HANDLERS),
            ("method", &["GET", "POST"]),
        ],
    ),
    (
        "http_request_duration_seconds_bucket",
        true,
        &[
            ("handler", HANDLERS),
            (
                "le",
                &["0.005", "0.025", "0.1", "0.5", "1", "2.5", "10", "+Inf"],
            ),
        ],
    ),
    (
        "http_request_duration_seconds_sum",
        true,
        &[("handler", HANDLERS)],
    ),
    (
        "http_request_duration_seconds_count",
        true,
        &[("handler", HANDLERS)],
    ),
];

const JOBS: &[&str] = &["node", "api-server", "ingress-nginx", "kafka", "postgres"];
const NAMESPACES: &[&str] = &["default", "monitoring", "payments", "search"];

/// One series of the data set: its sorted labels and how its value moves.
struct SeriesDef {
    labels: Vec<Label>,
    counter: bool,
    /// Increase per scrape (counters) or level (gauges).
    scale: f64,
}

/// The first `n` series of the data set (targets of 100 series each).
fn data_set(n: usize) -> Vec<SeriesDef> {
    let mut out = Vec::with_capacity(n);
    let mut target = 0usize;
    while out.len() < n {
        let job = JOBS[target % JOBS.len()];
        let instance = format!(
            "10.{}.{}.{}:9100",
            target / 62500,
            target / 250 % 250,
            target % 250
        );
        let namespace = NAMESPACES[target / JOBS.len() % NAMESPACES.len()];
        let pod = format!("{job}-{:08x}-{:05x}", mix(target as u64) as u32, target);
        let common = [
            ("cluster", "prod-eu-1"),
            ("instance", instance.as_str()),
            ("job", job),
            ("namespace", namespace),
            ("pod", pod.as_str()),
        ];
        for &(name, counter, dims) in FAMILIES {
            let combos: usize = dims.iter().map(|(_, vs)| vs.len()).product();
            for c in 0..combos {
                let mut labels: Vec<(&str, &str)> = vec![("__name__", name)];
                labels.extend_from_slice(&common);
                let mut rest = c;
                for &(dim, values) in dims {
                    labels.push((dim, values[rest % values.len()]));
                    rest /= values.len();
                }
                labels.sort_by(|a, b| a.0.cmp(b.0));
                let id = out.len() as u64;
                out.push(SeriesDef {
                    labels: labels
                        .iter()
                        .map(|(n, v)| Label {
                            name: n.to_string(),
                            value: v.to_string(),
                        })
                        .collect(),
                    counter,
                    scale: (mix(id) % 1000) as f64 + 1.0,
                });
                if out.len() == n {
                    return out;
                }
            }
        }
        target += 1;
    }
    out
}

/// splitmix64: a cheap deterministic hash for label values and values.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The value of series `id` (defined by `def`) at scrape `k`: counters
/// grow by a jittered step, gauges move around their level.
fn value(def: &SeriesDef, id: u64, k: u64) -> f64 {
    let jitter = (mix(id ^ (k << 20)) % 100) as f64;
    if def.counter {
        (k as f64) * def.scale + jitter
    } else {
        def.scale * 1000.0 + jitter
    }
}

struct Options {
    urls: Vec<String>,
    writers: usize,
    series: usize,
    batch: usize,
    warmup: Duration,
    duration: Duration,
    step_ms: i64,
    start_ms: i64,
    latencies: Option<String>,
}

fn usage(msg: &str) -> ! {
    eprintln!("rwload: {msg}");
    eprintln!(
        "usage: rwload --url URL[,URL...] [--writers 8] [--series 10000] [--batch 500] \
         [--warmup 5] [--duration 20] [--step-ms 1000] [--start-ms MS] [--latencies FILE]"
    );
    std::process::exit(2);
}

fn parse_options() -> Options {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64;
    let mut o = Options {
        urls: Vec::new(),
        writers: 8,
        series: 10_000,
        batch: 500,
        warmup: Duration::from_secs(5),
        duration: Duration::from_secs(20),
        step_ms: 1000,
        // An hour ago on a whole second: room for an hour of data time
        // before it reaches the present.
        start_ms: (now_ms / 1000 - 3600) * 1000,
        latencies: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let Some(v) = args.get(i + 1) else {
            usage(&format!("{flag} needs a value"))
        };
        let num = |v: &str| -> f64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: {v:?} is not a number")))
        };
        match flag {
            "--url" => o.urls = v.split(',').map(str::to_string).collect(),
            "--writers" => o.writers = num(v) as usize,
            "--series" => o.series = num(v) as usize,
            "--batch" => o.batch = num(v) as usize,
            "--warmup" => o.warmup = Duration::from_secs_f64(num(v)),
            "--duration" => o.duration = Duration::from_secs_f64(num(v)),
            "--step-ms" => o.step_ms = num(v) as i64,
            "--start-ms" => o.start_ms = num(v) as i64,
            "--latencies" => o.latencies = Some(v.clone()),
            _ => usage(&format!("unknown flag {flag}")),
        }
        i += 2;
    }
    if o.urls.is_empty() {
        usage("--url is required");
    }
    if o.writers == 0 || o.batch == 0 || o.series < o.writers {
        usage("--writers and --batch must be positive, --series at least --writers");
    }
    o
}

/// `http://host:port/path` as (`host:port`, `/path`).
fn split_url(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| usage(&format!("{url}: only http:// URLs")));
    match rest.split_once('/') {
        Some((addr, path)) => (addr.to_string(), format!("/{path}")),
        None => (rest.to_string(), "/".to_string()),
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// One keep-alive HTTP/1.1 connection, opened on first use.
struct Conn {
    addr: String,
    path: String,
    r: Option<BufReader<TcpStream>>,
}

impl Conn {
    /// Posts one remote-write body; gives the status and (for non-2xx) the
    /// start of the answer's body.
    fn post(&mut self, body: &[u8]) -> io::Result<(u16, String)> {
        if self.r.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.r = Some(BufReader::with_capacity(1 << 16, s));
        }
        let r = self.r.as_mut().expect("connected above");
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hearth-bench-rwload\r\n\
             Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
             X-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {}\r\n\r\n",
            self.path,
            self.addr,
            body.len()
        );
        let s = r.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed before the answer".into()));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Err(bad("connection closed in the headers".into()));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.parse::<usize>().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut answer = Vec::new();
        if status == 204 || status == 304 || status < 200 {
            // No body.
        } else if chunked {
            loop {
                line.clear();
                r.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
                let start = answer.len();
                answer.resize(start + n + 2, 0);
                r.read_exact(&mut answer[start..])?;
                answer.truncate(start + n);
                if n == 0 {
                    break;
                }
            }
        } else if let Some(n) = length {
            answer.resize(n, 0);
            r.read_exact(&mut answer)?;
        } else {
            r.read_to_end(&mut answer)?;
            close = true;
        }
        if close {
            self.r = None;
        }
        let text = if status / 100 == 2 {
            String::new()
        } else {
            String::from_utf8_lossy(&answer[..answer.len().min(300)]).into_owned()
        };
        Ok((status, text))
    }
}

/// What one writer measured.
#[derive(Default)]
struct WriterResult {
    /// Latencies (µs) of the counted, acknowledged requests.
    latencies_us: Vec<u32>,
    requests: u64,
    samples: u64,
    errors: u64,
    all_samples: u64,
    last_answer: Option<Instant>,
    max_ts: i64,
}

/// Runs one writer over its series `defs` (ids from `first_id`) until
/// `end`; counts what it started from `counted_from` on.
fn run_writer(
    url: &str,
    defs: &[SeriesDef],
    first_id: u64,
    o: &Options,
    counted_from: Instant,
    end: Instant,
) -> WriterResult {
    let (addr, path) = split_url(url);
    let mut conn = Conn {
        addr,
        path,
        r: None,
    };
    // One reusable request per batch of the writer's series; only the
    // samples change from scrape to scrape.
    let mut requests: Vec<WriteRequest> = defs
        .chunks(o.batch)
        .map(|chunk| WriteRequest {
            timeseries: chunk
                .iter()
                .map(|d| TimeSeries {
                    labels: d.labels.clone(),
                    samples: vec![Sample::default()],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    let mut out = WriterResult::default();
    let mut reported = 0;
    'scrapes: for k in 0u64.. {
        let ts = o.start_ms + k as i64 * o.step_ms;
        let mut id = first_id;
        for req in &mut requests {
            for (s, d) in req
                .timeseries
                .iter_mut()
                .zip(&defs[(id - first_id) as usize..])
            {
                s.samples[0] = Sample {
                    value: value(d, id, k),
                    timestamp: ts,
                };
                id += 1;
            }
            let body = encode_write_request(req);
            let started = Instant::now();
            if started >= end {
                break 'scrapes;
            }
            let n = req.timeseries.len() as u64;
            let counted = started >= counted_from;
            let result = conn.post(&body);
            let done = Instant::now();
            let ok = matches!(result, Ok((status, _)) if status / 100 == 2);
            if ok {
                out.all_samples += n;
                out.max_ts = ts;
            }
            if counted {
                out.requests += 1;
                out.last_answer = Some(done);
                if ok {
                    out.samples += n;
                    out.latencies_us
                        .push((done - started).as_micros().min(u32::MAX as u128) as u32);
                } else {
                    out.errors += 1;
                }
            }
            if !ok && reported < 5 {
                reported += 1;
                match &result {
                    Ok((status, text)) => eprintln!("rwload: {url}: status {status}: {text}"),
                    Err(e) => eprintln!("rwload: {url}: {e}"),
                }
            }
            if result.is_err() {
                conn.r = None;
            }
        }
    }
    out
}

/// The `p`-th percentile (nearest rank) of sorted `v`, in ms.
fn percentile_ms(v: &[u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1] as f64 / 1000.0
}

/// This process's CPU time in clock ticks (utime + stime).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th fields of the line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn main() {
    let o = Arc::new(parse_options());
    let defs = Arc::new(data_set(o.series));
    let per_writer = o.series / o.writers;
    let t0 = Instant::now();
    let counted_from = t0 + o.warmup;
    let end = counted_from + o.duration;
    let handles: Vec<_> = (0..o.writers)
        .map(|w| {
            let (o, defs) = (o.clone(), defs.clone());
            std::thread::spawn(move || {
                // The last writer takes the remainder.
                let first = w * per_writer;
                let last = if w + 1 == o.writers {
                    o.series
                } else {
                    first + per_writer
                };
                let url = &o.urls[w % o.urls.len()];
                run_writer(url, &defs[first..last], first as u64, &o, counted_from, end)
            })
        })
        .collect();
    let mut all = WriterResult::default();
    for h in handles {
        let r = h.join().expect("a writer thread panicked");
        all.latencies_us.extend(r.latencies_us);
        all.requests += r.requests;
        all.samples += r.samples;
        all.errors += r.errors;
        all.all_samples += r.all_samples;
        all.max_ts = all.max_ts.max(r.max_ts);
        all.last_answer = all.last_answer.max(r.last_answer);
    }
    let seconds = all
        .last_answer
        .map(|t| (t - counted_from).as_secs_f64())
        .unwrap_or(f64::NAN);
    all.latencies_us.sort_unstable();
    if let Some(path) = &o.latencies {
        let mut text = String::with_capacity(all.latencies_us.len() * 6);
        for l in &all.latencies_us {
            text.push_str(&l.to_string());
            text.push('\n');
        }
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("rwload: write {path}: {e}");
            std::process::exit(1);
        }
    }
    let mean_ms = if all.latencies_us.is_empty() {
        f64::NAN
    } else {
        all.latencies_us.iter().map(|&l| l as f64).sum::<f64>()
            / all.latencies_us.len() as f64
            / 1000.0
    };
    let json_num = |x: f64| {
        if x.is_finite() {
            format!("{x:.3}")
        } else {
            "null".to_string()
        }
    };
    println!(
        "{{\"writers\": {}, \"series\": {}, \"batch\": {}, \"warmup_s\": {}, \"duration_s\": {}, \
         \"requests\": {}, \"acked_requests\": {}, \"samples\": {}, \"seconds\": {}, \
         \"samples_per_s\": {}, \"p50_ms\": {}, \"p90_ms\": {}, \"p99_ms\": {}, \"max_ms\": {}, \
         \"mean_ms\": {}, \"errors\": {}, \"all_samples\": {}, \"min_ts_ms\": {}, \
         \"max_ts_ms\": {}, \"cpu_ticks\": {}}}",
        o.writers,
        o.series,
        o.batch,
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64(),
        all.requests,
        all.latencies_us.len(),
        all.samples,
        json_num(seconds),
        json_num(all.samples as f64 / seconds),
        json_num(percentile_ms(&all.latencies_us, 50.0)),
        json_num(percentile_ms(&all.latencies_us, 90.0)),
        json_num(percentile_ms(&all.latencies_us, 99.0)),
        json_num(percentile_ms(&all.latencies_us, 100.0)),
        json_num(mean_ms),
        all.errors,
        all.all_samples,
        o.start_ms,
        all.max_ts,
        cpu_ticks(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_have_100_distinct_sorted_series() {
        let defs = data_set(250);
        assert_eq!(defs.len(), 250);
        let key = |d: &SeriesDef| {
            d.labels
                .iter()
                .map(|l| format!("{}={:?}", l.name, l.value))
                .collect::<Vec<_>>()
                .join(",")
        };
        let distinct: std::collections::HashSet<String> = defs.iter().map(key).collect();
        assert_eq!(distinct.len(), 250);
        for d in &defs {
            assert!(d.labels.windows(2).all(|w| w[0].name < w[1].name));
        }
        // A new target (instance) every 100 series.
        let instance = |d: &SeriesDef| {
            d.labels
                .iter()
                .find(|l| l.name == "instance")
                .map(|l| l.value.clone())
        };
        assert_eq!(instance(&defs[0]), instance(&defs[99]));
        assert_ne!(instance(&defs[99]), instance(&defs[100]));
    }

    #[test]
    fn urls_split_into_address_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9090/api/v1/write"),
            ("127.0.0.1:9090".to_string(), "/api/v1/write".to_string())
        );
    }
}
