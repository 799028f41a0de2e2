//! A real NATS server with JetStream for tests and benchmarks: Debian's `nats-server`
//! (`scripts/setup.sh` installs it), on 127.0.0.1 with its data in a folder of the caller's,
//! killed on drop. Shared by the distributed tests and the NATS benchmarks (`#[path]`).
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    /// Configuration lines beside the listen address and JetStream's folder (TLS,
    /// authorization), written to `dir/nats.conf`.
    extra: String,
}

impl NatsServer {
    /// Starts a server on a free port with its data in `dir`, and waits until it listens.
    pub fn start(dir: &Path) -> NatsServer {
        Self::start_with(dir, "")
    }

    /// Starts a server whose configuration also has `extra` (e.g. a `tls { }` block, an
    /// `authorization { }` block).
    pub fn start_with(dir: &Path, extra: &str) -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(dir, port, extra)
    }

    fn start_on(dir: &Path, port: u16, extra: &str) -> NatsServer {
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
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("nats.log")).unwrap())
            .spawn()
            .expect("nats-server (scripts/setup.sh installs Debian's nats-server)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {port}: {}",
                std::fs::read_to_string(dir.join("nats.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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
        *self = NatsServer::start_on(&self.dir, self.port, &self.extra.clone());
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
