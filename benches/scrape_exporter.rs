//! Static exposition server for benches/scrape_bench.sh: std only, built with
//! `rustc --edition 2021 -O`.
//!
//!     scrape_exporter FILE [FILE ...]
//!
//! Reads every FILE into memory (the variants of one exposition: the same
//! series with other values), listens on 127.0.0.1 on a free port and prints
//! that port on stdout (one line). Every GET, whatever its path, is answered
//! `200` with the next variant in rotation (request 0 gets FILE 1, request 1
//! FILE 2, ...), `Content-Type: text/plain; version=0.0.4; charset=utf-8`,
//! `Content-Length`, no compression (the `Accept-Encoding: gzip` of the
//! scrapers is ignored, the same for both). HTTP/1.1 keep-alive, one thread
//! per connection; `Connection: close` or HTTP/1.0 closes after the answer.
//!
//! One line per answered request on stderr:
//! `served UNIX_MS PEER VARIANT BYTES MICROS` (MICROS: from the end of the
//! request head to the last byte handed to the socket), so that the bench can
//! count the scrapes each server made.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n";

fn serve(stream: TcpStream, bodies: Arc<Vec<Vec<u8>>>, next: Arc<AtomicUsize>) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let _ = stream.set_nodelay(true);
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        // Request line.
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let request = line.trim_end().to_string();
        if request.is_empty() {
            continue;
        }
        let mut close = request.ends_with("HTTP/1.0");
        let mut body_len = 0usize;
        // Headers.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim().to_ascii_lowercase();
                if name == "connection" {
                    if value == "close" {
                        close = true;
                    } else if value == "keep-alive" {
                        close = false;
                    }
                } else if name == "content-length" {
                    body_len = value.parse().unwrap_or(0);
                }
            }
        }
        if body_len > 0 {
            let mut skip = vec![0u8; body_len];
            if std::io::Read::read_exact(&mut reader, &mut skip).is_err() {
                return;
            }
        }
        let t0 = Instant::now();
        let variant = next.fetch_add(1, Ordering::Relaxed) % bodies.len();
        let body = &bodies[variant];
        let head = format!(
            "{HEAD}Content-Length: {}\r\nConnection: {}\r\n\r\n",
            body.len(),
            if close { "close" } else { "keep-alive" }
        );
        let is_head = request.starts_with("HEAD ");
        let ok = writer.write_all(head.as_bytes()).is_ok()
            && (is_head || writer.write_all(body).is_ok())
            && writer.flush().is_ok();
        let micros = t0.elapsed().as_micros();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        eprintln!(
            "served {now_ms} {peer} {variant} {} {micros}",
            if is_head { 0 } else { body.len() }
        );
        if !ok || close {
            return;
        }
    }
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: scrape_exporter FILE [FILE ...]");
        std::process::exit(2);
    }
    let bodies: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).unwrap_or_else(|e| panic!("read {f}: {e}")))
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    println!("{port}");
    std::io::stdout().flush().expect("stdout");
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                let (b, n) = (bodies.clone(), next.clone());
                std::thread::spawn(move || serve(s, b, n));
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}
