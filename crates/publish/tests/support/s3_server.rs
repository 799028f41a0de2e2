//! A real S3-compatible server for tests: `s3s-fs` (crates.io, an S3 server over a folder),
//! started on 127.0.0.1 and killed on drop. `scripts/setup.sh` installs it; `REEL_S3_SERVER`
//! may name the binary. Shared by the publish, pipeline and services tests (`#[path]`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[path = "listening.rs"]
mod listening;

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

/// A port nothing listens on now (for a store that is down: nothing must answer there).
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
    /// Starts the server on a port the system picks and waits until it listens.
    pub fn start(root: &Path) -> S3Server {
        S3Server::start_on(root, 0)
    }

    /// Starts the server on `port` (0: one the system picks) and waits until it listens;
    /// panics, with the server's log, if it cannot have that port.
    pub fn start_on(root: &Path, port: u16) -> S3Server {
        std::fs::create_dir_all(root).unwrap();
        // s3s-fs logs to standard output.
        let log = root.with_extension("log");
        let mut child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS, "--secret-key", SECRET])
            .arg(root)
            .env("RUST_LOG", "s3s_fs=info")
            .env("NO_COLOR", "1")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let port = listening::port_from_log(&mut child, &log, "server is running at", "s3s-fs");
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
