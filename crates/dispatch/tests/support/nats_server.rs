//! A real NATS server with JetStream for tests and benchmarks: Debian's `nats-server`
//! (`scripts/setup.sh` installs it), on 127.0.0.1 with its data in a folder of the caller's,
//! killed on drop. Shared by the distributed tests and the NATS benchmarks (`#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[path = "../../../publish/tests/support/listening.rs"]
mod listening;

pub struct NatsServer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    /// Configuration lines beside the listen address and JetStream's folder (TLS,
    /// authorization), written to `dir/nats.conf`.
    extra: String,
}

impl NatsServer {
    /// Starts a server on a port the system picks, with its data in `dir`, and waits until it
    /// listens.
    pub fn start(dir: &Path) -> NatsServer {
        Self::start_with(dir, "")
    }

    /// Starts a server whose configuration also has `extra` (e.g. a `tls { }` block, an
    /// `authorization { }` block).
    pub fn start_with(dir: &Path, extra: &str) -> NatsServer {
        Self::start_on(dir, -1, extra)
    }

    /// Starts a server on `port` (-1: one the system picks); panics, with the server's log,
    /// if it cannot have that port.
    fn start_on(dir: &Path, port: i32, extra: &str) -> NatsServer {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\n{extra}\n",
                dir.join("js").display()
            ),
        )
        .unwrap();
        let log = dir.join("nats.log");
        let mut child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("nats-server (scripts/setup.sh installs Debian's nats-server)");
        let port = listening::port_from_log(
            &mut child,
            &log,
            "Listening for client connections on",
            "nats-server",
        );
        NatsServer {
            child,
            port,
            dir: dir.to_path_buf(),
            extra: extra.to_string(),
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM), waits `down`, starts it again on the same port and data.
    pub fn restart(&mut self, down: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::thread::sleep(down);
        *self = NatsServer::start_on(&self.dir, i32::from(self.port), &self.extra.clone());
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
