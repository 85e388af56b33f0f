//! s3s-fs, the S3 server tests use: found on the PATH or in
//! `~/.cargo/bin`, else installed with `cargo install` (about 3 minutes,
//! once).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "hearth";
pub const SECRET_KEY: &str = "hearth-secret";
pub const BUCKET: &str = "hearth";

/// The s3s-fs binary, installed when missing.
pub fn find_s3s_fs() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("s3s-fs"))
            .find(|f| f.is_file())
    });
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|d| d.join("bin").join("s3s-fs"));
    if let Some(p) = on_path {
        return p;
    }
    if let Some(p) = cargo_bin.as_ref().filter(|p| p.is_file()) {
        return p.clone();
    }
    eprintln!(
        "s3s-fs not found: running `cargo install s3s-fs --version 0.14.1 --features binary \
         --locked` (about 3 minutes, once)"
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "install",
            "s3s-fs",
            "--version",
            "0.14.1",
            "--features",
            "binary",
            "--locked",
        ])
        .status()
        .expect("run cargo install s3s-fs");
    assert!(status.success(), "cargo install s3s-fs failed");
    let p = cargo_bin.expect("CARGO_HOME or HOME is set");
    assert!(p.is_file(), "s3s-fs not at {} after install", p.display());
    p
}

/// An s3s-fs process on a fixed port and data directory; killed on drop.
pub struct S3sFs {
    bin: PathBuf,
    port: u16,
    data: PathBuf,
    child: Option<Child>,
}

impl S3sFs {
    pub fn start(bin: PathBuf, data: PathBuf) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::create_dir_all(data.join(BUCKET)).unwrap();
        let mut s = Self {
            bin,
            port,
            data,
            child: None,
        };
        s.restart();
        s
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The Thanos objstore configuration (`type: S3`) of this server's
    /// bucket.
    pub fn objstore_yaml(&self) -> String {
        format!(
            "type: S3\nconfig:\n  bucket: {BUCKET}\n  endpoint: 127.0.0.1:{}\n  \
             access_key: {ACCESS_KEY}\n  secret_key: {SECRET_KEY}\n  insecure: true\n  \
             region: us-east-1\n  part_size: 5242880\n",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the bucket's objects (`<data>/<bucket>/...`).
    pub fn bucket_dir(&self) -> PathBuf {
        self.data.join(BUCKET)
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        self.stop();
    }
}
