//! Shared helpers of the integration tests: start `hearth` on a free
//! loopback port, remote-write to it, dump its storage.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

pub fn hearth_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hearth"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A running `hearth standalone`, killed when dropped.
pub struct Standalone {
    pub child: Child,
    pub port: u16,
    pub data: PathBuf,
}

impl Standalone {
    /// Starts a server on `data`. Unless `extra` names a `--config.file`,
    /// it gets one without scrape jobs, so that only what a test writes is
    /// stored (without one the server would scrape itself).
    pub fn start(data: &Path, extra: &[&str]) -> Standalone {
        let port = free_port();
        let log = std::fs::File::create(data.with_extension(format!("{port}.log")))
            .expect("create log file");
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if !extra.iter().any(|a| a.starts_with("--config.file")) {
            let config = data.with_extension("empty.yml");
            std::fs::write(&config, "scrape_configs: []\n").expect("write empty config");
            args.push(format!("--config.file={}", config.display()));
        }
        Self::spawn(data, port, log, &args)
    }

    /// Starts a server on `data` with exactly the flags in `extra`.
    pub fn start_exact(data: &Path, extra: &[&str]) -> Standalone {
        Self::start_on(data, free_port(), extra)
    }

    /// [`Self::start_exact`] on a given port (for configurations that
    /// scrape the server itself).
    pub fn start_on(data: &Path, port: u16, extra: &[&str]) -> Standalone {
        let log = std::fs::File::create(data.with_extension(format!("{port}.log")))
            .expect("create log file");
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn(data, port, log, &args)
    }

    fn spawn(data: &Path, port: u16, log: std::fs::File, args: &[String]) -> Standalone {
        let child = Command::new(hearth_bin())
            .arg("standalone")
            .arg("--storage.tsdb.path")
            .arg(data)
            .arg("--web.listen-address")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start hearth standalone");
        let s = Standalone {
            child,
            port,
            data: data.to_path_buf(),
        };
        s.wait_ready();
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::blocking::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = client
                .get(self.url("/-/ready"))
                .timeout(Duration::from_secs(1))
                .send()
            {
                if r.status().is_success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "hearth standalone on port {} did not become ready",
            self.port
        );
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: a graceful stop.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("hearth did not stop on SIGTERM");
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| Sample {
                timestamp: t,
                value: v,
            })
            .collect(),
        ..Default::default()
    }
}

pub fn write_body(ts: Vec<TimeSeries>) -> Vec<u8> {
    hearth_proto::remote_write::encode_write_request(&WriteRequest {
        timeseries: ts,
        ..Default::default()
    })
}

/// Posts a raw remote-write body; returns the status and body text.
pub fn post_write(
    client: &reqwest::blocking::Client,
    url: &str,
    body: Vec<u8>,
) -> reqwest::Result<(u16, String)> {
    let r = client
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()?;
    let status = r.status().as_u16();
    Ok((status, r.text().unwrap_or_default()))
}

/// One sample as `hearth tools tsdb dump` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dumped {
    pub labels: String,
    pub t: i64,
    pub bits: u64,
}

/// Runs `hearth tools tsdb dump DIR` and parses its lines
/// `{labels} <value-bits-hex> <timestamp>`.
pub fn dump(data: &Path) -> Vec<Dumped> {
    let out = Command::new(hearth_bin())
        .args(["tools", "tsdb", "dump", "--format", "bits"])
        .arg(data)
        .output()
        .expect("run hearth tools tsdb dump");
    assert!(
        out.status.success(),
        "dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 dump")
        .lines()
        .map(|l| {
            let (labels, rest) = l.rsplit_once("} ").expect("dump line has labels");
            let mut parts = rest.split(' ');
            let bits = u64::from_str_radix(parts.next().expect("bits"), 16).expect("hex bits");
            let t = parts
                .next()
                .expect("timestamp")
                .parse()
                .expect("integer timestamp");
            Dumped {
                labels: format!("{labels}}}"),
                t,
                bits,
            }
        })
        .collect()
}

/// A running Prometheus 2.42 (Debian's `prometheus`) with its remote-write
/// receiver on, killed when dropped.
pub struct Prometheus {
    child: Child,
    pub port: u16,
}

impl Prometheus {
    /// Starts it on a free loopback port with its data under `dir`.
    pub fn start(dir: &Path) -> Prometheus {
        std::fs::create_dir_all(dir).expect("create the Prometheus dir");
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1h\n").expect("write prometheus.yml");
        Self::start_with_config(dir, &config)
    }

    /// Starts it with the configuration file `config`, data under `dir`.
    pub fn start_with_config(dir: &Path, config: &Path) -> Prometheus {
        Self::start_with_flags(dir, config, &[])
    }

    /// [`Self::start_with_config`] with extra command-line flags.
    pub fn start_with_flags(dir: &Path, config: &Path, extra: &[&str]) -> Prometheus {
        std::fs::create_dir_all(dir).expect("create the Prometheus dir");
        let ok = Command::new("prometheus")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "prometheus (Debian package `prometheus`) is required: run scripts/test, which installs it");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("prometheus.log")).expect("create prometheus.log"),
            )
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, port };
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(p.url("/-/ready")).send() {
                if r.status().is_success() {
                    return p;
                }
            }
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// SIGKILL and wait.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The path of an installed program, or a panic naming its package.
pub fn binary(path: &str, package: &str) -> &'static str {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: apt-get install {package} (scripts/test installs it)"
    );
    Box::leak(path.to_string().into_boxed_str())
}

/// Starts `bin` with `args`, its stderr into `log` (or discarded).
pub fn spawn(bin: &Path, args: &[String], log: Option<&Path>) -> Proc {
    let stderr = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).expect("create log file")),
        None => Stdio::null(),
    };
    Proc(
        Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display())),
    )
}

/// Waits until `url` answers 2xx (60 s at most).
pub fn wait_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = reqwest::blocking::Client::new();
    while Instant::now() < deadline {
        if client
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not answer");
}

/// Seconds since the epoch.
pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after the epoch")
        .as_secs_f64()
}
