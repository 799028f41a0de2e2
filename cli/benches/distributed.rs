//! Benchmark: `reel run --nats` with two `reel worker` processes on this machine (nats-server
//! with JetStream, a folder as the shared store) against the local pool of two workers, same
//! machine, same run: the protocol's cost only, since both use the same two cores. And a
//! worker's peak memory on a 10-s title against a 120-s one.
//!
//! Fixture: the pipeline benchmark's 60-second 720p title with audio (fixed ladder, cenc,
//! 30-s chunks, published to a local folder), cut to 10 s and looped to 120 s for the memory
//! comparison. Modes alternate `REEL_BENCH_REPEAT` times (default 3); ratios are of medians.
//!
//! Run: `cargo bench -p reel-cli --bench distributed`. Outputs in
//! `target/bench-out/distributed/`.

#[path = "support/mod.rs"]
mod support;

#[path = "../../crates/dispatch/tests/support/nats_server.rs"]
mod nats_server;

use nats_server::NatsServer;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{make_long, median, timed};

/// nats-server and `workers` workers (each under GNU time, for its peak memory), over a fresh
/// store in `dir`. `stop` ends them and returns each worker's peak RSS in MB.
struct Cluster {
    nats: NatsServer,
    workers: Vec<(Child, PathBuf)>,
    store: PathBuf,
}

impl Cluster {
    fn start(reel: &Path, dir: &Path, workers: usize) -> Cluster {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let nats = NatsServer::start(&dir.join("nats"));
        let url = nats.url();
        let store = dir.join("store");
        let workers = (0..workers)
            .map(|i| {
                let stats = dir.join(format!("w{i}.time"));
                let child = Command::new("/usr/bin/time")
                    .args(["-f", "%M", "-o"])
                    .arg(&stats)
                    .arg(reel)
                    .args(["worker", "--json", "--nats", &url, "--name"])
                    .arg(format!("w{i}"))
                    .arg("--store")
                    .arg(&store)
                    .arg("--work")
                    .arg(dir.join(format!("w{i}")))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                (child, stats)
            })
            .collect();
        // The workers connect and make the stream before the run starts the clock.
        std::thread::sleep(Duration::from_millis(500));
        Cluster {
            nats,
            workers,
            store,
        }
    }

    /// `reel run JOB --json` coordinated through this cluster.
    fn run(&self, reel: &Path, job: &Path) -> Command {
        let mut cmd = Command::new(reel);
        cmd.args([
            "run",
            job.to_str().unwrap(),
            "--json",
            "--nats",
            &self.nats.url(),
        ])
        .arg("--store")
        .arg(&self.store);
        cmd
    }

    /// Stops the workers (SIGINT: they finish and exit) and the server; the workers' peaks.
    fn stop(mut self) -> Vec<f64> {
        let mut peaks = Vec::new();
        for (child, stats) in &mut self.workers {
            // SIGINT to the worker itself (GNU time ignores it while it waits).
            let time = child.id();
            let worker = std::fs::read_to_string(format!("/proc/{time}/task/{time}/children"))
                .unwrap_or_default();
            for pid in worker.split_whitespace() {
                let _ = Command::new("kill").args(["-INT", pid]).status();
            }
            let _ = child.wait();
            let kb: f64 = std::fs::read_to_string(stats)
                .unwrap_or_default()
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(0.0);
            peaks.push(kb / 1024.0);
        }
        peaks
    }
}

/// The fixture cut to `seconds` (looped when longer), stream copy.
fn title_of(source: &Path, seconds: u32) -> PathBuf {
    let path = source.with_file_name(format!("long_720p25_{seconds}s.mp4"));
    if !path.exists() {
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y", "-stream_loop", "-1", "-i"])
            .arg(source)
            .args(["-t", &seconds.to_string(), "-c", "copy"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success());
    }
    path
}

fn job(dir: &Path, source: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    support::job(
        dir,
        source,
        "fixed",
        "[encode]\nchunk_duration = 30\nworkers = 2",
        &dir.join("out"),
    )
}

fn main() {
    let root = support::root();
    let reel = support::release_reel(&root);
    let source = make_long(&root.join("target/bench-fixtures"));
    let base = root.join("target/bench-out/distributed");
    let repeat = support::repeat();

    let (mut local, mut nats) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        let j = job(&base.join("local"), &source);
        let (_, t, _) = timed(
            "local pool",
            Command::new(&reel).args(["run", j.to_str().unwrap(), "--json"]),
        );
        local.push(t);

        let cluster = Cluster::start(&reel, &base.join("cluster"), 2);
        let j = job(&base.join("nats"), &source);
        let (_, t, _) = timed("through NATS", &mut cluster.run(&reel, &j));
        cluster.stop();
        nats.push(t);
    }
    println!(
        "reel run, 60-s 720p title, fixed ladder, cenc, 30-s chunks ({repeat} runs each, medians):"
    );
    println!(
        "  local pool (2 workers)          {:>6.2} s  runs {local:?}",
        median(&local)
    );
    println!(
        "  coordinator + 2 workers (NATS)  {:>6.2} s  runs {nats:?}  ({:.3}x local)",
        median(&nats),
        median(&nats) / median(&local)
    );

    // A worker's peak memory: one worker, a 10-s title and a 120-s one.
    for seconds in [10, 120] {
        let title = title_of(&source, seconds);
        let cluster = Cluster::start(&reel, &base.join("memory"), 1);
        let j = job(&base.join(format!("memory{seconds}")), &title);
        timed("memory run", &mut cluster.run(&reel, &j));
        let peaks = cluster.stop();
        println!(
            "  worker peak RSS, {seconds:>3}-s title: {:.0} MB",
            peaks[0]
        );
    }
}
