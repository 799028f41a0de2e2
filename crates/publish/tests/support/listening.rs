//! The port a test server listens on, read from its own log: the server binds the port it
//! is given (0 or -1: one the system picks), so no other test can take it between a free-port
//! probe and the server's bind, and no test talks by mistake to another test's server on a
//! port its own server failed to bind. Shared by `s3_server.rs`, `nats_server.rs` and the
//! `reel serve` tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Waits (at most 20 s) until `log` has a line with `marker` followed by `HOST:PORT` (or a
/// URL `http://HOST:PORT/`), and returns PORT. Panics with the log if the server exits
/// first or never says so.
pub fn port_from_log(child: &mut Child, log: &Path, marker: &str, server: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let port = text
            .lines()
            .filter_map(|l| l.split_once(marker).map(|(_, rest)| rest))
            .filter_map(|rest| rest.trim().rsplit_once(':'))
            .find_map(|(_, port)| port.trim().trim_end_matches('/').parse::<u16>().ok());
        if let Some(port) = port {
            return port;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{server} ended ({status}) before listening:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "{server} did not say it listens within 20 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
