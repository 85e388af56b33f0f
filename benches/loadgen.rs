//! Remote-write load client for benches/compare.sh: std only, built with
//! `rustc -O`.
//!
//!     loadgen BATCHES HOST:PORT PATH
//!
//! Reads the pre-encoded requests of benches/gen.py (u32 shard, u32 samples,
//! u32 length, body; little endian), starts one thread per shard, each with
//! its own keep-alive HTTP/1.1 connection, posting its shard's requests in
//! order (so every series' samples arrive in time order), each only after
//! the previous one was answered. Prints one JSON line: requests, samples,
//! non-2xx answers, seconds from the first request to the last answer,
//! samples/s.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

struct Req {
    samples: u64,
    body: Vec<u8>,
}

fn load(path: &str) -> BTreeMap<u32, Vec<Req>> {
    let data = std::fs::read(path).expect("read batches");
    let mut shards: BTreeMap<u32, Vec<Req>> = BTreeMap::new();
    let mut p = 0;
    let u32_at = |p: usize| u32::from_le_bytes(data[p..p + 4].try_into().unwrap());
    while p < data.len() {
        let (shard, samples, len) = (u32_at(p), u32_at(p + 4), u32_at(p + 8) as usize);
        p += 12;
        shards.entry(shard).or_default().push(Req {
            samples: samples as u64,
            body: data[p..p + len].to_vec(),
        });
        p += len;
    }
    shards
}

struct Conn {
    addr: String,
    r: Option<BufReader<TcpStream>>,
}

impl Conn {
    /// Posts one request; returns the status code.
    fn post(&mut self, path: &str, body: &[u8]) -> std::io::Result<u16> {
        if self.r.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_nodelay(true)?;
            self.r = Some(BufReader::with_capacity(1 << 16, s));
        }
        let r = self.r.as_mut().unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hearth-bench-loadgen\r\n\
             Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
             X-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let s = r.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut line = String::new();
        r.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut clen, mut chunked, mut close) = (0usize, false, false);
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("eof in headers"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            match k.as_str() {
                "content-length" => clen = v.parse().unwrap_or(0),
                "transfer-encoding" => chunked = v.contains("chunked"),
                "connection" => close = v == "close",
                _ => {}
            }
        }
        let mut sink = Vec::new();
        if chunked {
            loop {
                line.clear();
                r.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                sink.resize(n + 2, 0);
                r.read_exact(&mut sink)?;
                if n == 0 {
                    break;
                }
            }
        } else if status != 204 && status != 304 && status >= 200 {
            sink.resize(clen, 0);
            r.read_exact(&mut sink)?;
        }
        if status / 100 != 2 {
            eprintln!(
                "loadgen: status {status}: {}",
                String::from_utf8_lossy(&sink[..sink.len().min(300)])
            );
        }
        if close {
            self.r = None;
        }
        Ok(status)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: loadgen BATCHES HOST:PORT PATH");
        std::process::exit(2);
    }
    let shards = load(&args[1]);
    let addr = args[2].clone();
    let path = Arc::new(args[3].clone());
    let t0 = Instant::now();
    let handles: Vec<_> = shards
        .into_values()
        .map(|reqs| {
            let (addr, path) = (addr.clone(), path.clone());
            std::thread::spawn(move || {
                let mut c = Conn { addr, r: None };
                let (mut n, mut samples, mut bad) = (0u64, 0u64, 0u64);
                for q in &reqs {
                    let st = match c.post(&path, &q.body) {
                        Ok(st) => st,
                        Err(e) => {
                            // one retry on a fresh connection
                            eprintln!("loadgen: {e}; reconnecting");
                            c.r = None;
                            c.post(&path, &q.body).unwrap_or(0)
                        }
                    };
                    n += 1;
                    if st / 100 == 2 {
                        samples += q.samples;
                    } else {
                        bad += 1;
                    }
                }
                (n, samples, bad)
            })
        })
        .collect();
    let (mut n, mut samples, mut bad) = (0, 0, 0);
    for h in handles {
        let (a, b, c) = h.join().unwrap();
        n += a;
        samples += b;
        bad += c;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{{\"requests\": {n}, \"samples\": {samples}, \"errors\": {bad}, \"seconds\": {secs:.3}, \
         \"samples_per_s\": {:.0}}}",
        samples as f64 / secs
    );
}
