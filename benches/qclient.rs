//! Timing HTTP client for benches/query_latency.py: std only, built with
//! `rustc -O`.
//!
//!     qclient
//!
//! Reads requests from stdin, one per line: `HOST:PORT PATH`. Sends each as
//! an HTTP/1.1 GET (`Accept-Encoding: gzip`) on a keep-alive connection kept
//! per address, reads the whole response, and writes to stdout one line
//! `STATUS NANOS ENCODING LENGTH` (NANOS from the request's first byte
//! written to the body's last byte read; ENCODING the Content-Encoding or
//! `-`) followed by the LENGTH body bytes as received (still compressed).
//! A Python client spends about 0.15 ms of its own per request, which is
//! half of a small query's time; this one spends a few microseconds.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

struct Response {
    status: u16,
    encoding: String,
    body: Vec<u8>,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn read_line(r: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("connection closed"));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn get(r: &mut BufReader<TcpStream>, host: &str, path: &str) -> io::Result<Response> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hearth-bench-qclient\r\n\
         Accept-Encoding: gzip\r\nAccept: application/json\r\n\r\n"
    );
    r.get_mut().write_all(head.as_bytes())?;
    let status_line = read_line(r)?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut encoding = "-".to_string();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-encoding" => encoding = value.to_string(),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size_line = read_line(r)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers, then the empty line.
                while !read_line(r)?.is_empty() {}
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            read_line(r)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        return Err(bad("response without length"));
    }
    Ok(Response {
        status,
        encoding,
        body,
    })
}

fn connect(addr: &str) -> io::Result<BufReader<TcpStream>> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    Ok(BufReader::with_capacity(1 << 16, s))
}

fn main() -> io::Result<()> {
    let mut conns: HashMap<String, BufReader<TcpStream>> = HashMap::new();
    let stdin = io::stdin();
    let mut out = io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        let Some((addr, path)) = line.split_once(' ') else {
            continue;
        };
        let mut attempt = 0;
        let (res, nanos) = loop {
            if !conns.contains_key(addr) {
                conns.insert(addr.to_string(), connect(addr)?);
            }
            let r = conns.get_mut(addr).expect("just inserted");
            let t0 = Instant::now();
            match get(r, addr, path) {
                Ok(res) => break (res, t0.elapsed().as_nanos()),
                // A keep-alive connection the server closed: once more on a
                // new one.
                Err(e) if attempt == 0 => {
                    conns.remove(addr);
                    attempt += 1;
                    let _ = e;
                }
                Err(e) => return Err(e),
            }
        };
        writeln!(
            out,
            "{} {} {} {}",
            res.status,
            nanos,
            res.encoding,
            res.body.len()
        )?;
        out.write_all(&res.body)?;
        out.flush()?;
    }
    Ok(())
}
