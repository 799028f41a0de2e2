//! A real S3-compatible server for tests: `s3s-fs` (crates.io, an S3 server over a folder),
//! started on 127.0.0.1 and killed on drop. `scripts/setup.sh` installs it; `REEL_S3_SERVER`
//! may name the binary. Shared by the publish, pipeline and services tests (`#[path]`).
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The credentials every test server accepts.
pub const ACCESS: &str = "reel-test-access";
pub const SECRET: &str = "reel-test-secret-key";

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("REEL_S3_SERVER") {
        return PathBuf::from(p);
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from(home).join(".cargo/bin")])
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.exists())
        .expect("s3s-fs not found: run scripts/setup.sh (cargo install s3s-fs --features binary)")
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running s3s-fs over `root`; killed on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl S3Server {
    /// Starts the server on `port` and waits until it listens.
    pub fn start(root: &Path, port: u16) -> S3Server {
        std::fs::create_dir_all(root).unwrap();
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS, "--secret-key", SECRET])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        S3Server { child, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
