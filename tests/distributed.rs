//! `reel run --nats` with `reel worker` processes: a real nats-server (JetStream on, in a
//! temporary folder), real worker processes, a local folder or a real S3-compatible server
//! (s3s-fs) as the shared store. The distributed title is byte for byte the local one and
//! plays; and the faults: a worker SIGKILLed mid-unit, the coordinator SIGKILLed and started
//! again, nats-server restarted mid-job, a unit that fails every attempt, the object store
//! gone while a unit encodes.
// Both server harnesses read their port with the same small `listening.rs`, each its own copy.
#![allow(clippy::duplicate_mod)]

mod common;

use common::play;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../crates/publish/tests/support/s3_server.rs"]
mod s3_server;
use s3_server::{S3Server, ACCESS, SECRET};

#[path = "../crates/dispatch/tests/support/nats_server.rs"]
mod nats_server;
use nats_server::NatsServer;

/// Two H.264 rungs and an AV1 one (both encoders must give the same bytes anywhere), AAC.
const LADDER: &str = r#"
keyframe_interval = 2.0
[[rung]]
codec = "h264"
height = 720
bitrate = 2000
[[rung]]
codec = "h264"
height = 360
bitrate = 600
[[rung]]
codec = "av1"
encoder = "svt-av1"
height = 144
crf = 40
[audio]
codec = "aac"
bitrate = 96
"#;

/// Chunks of this many seconds: 12 s of source make two chunks and the audio, three units.
const CHUNK_SECONDS: u32 = 6;

// --- the processes ------------------------------------------------------------------------

/// A `reel worker --json`, its log in `dir/NAME.jsonl`; killed on drop.
struct Worker {
    child: Child,
    log: PathBuf,
    err: PathBuf,
}

impl Worker {
    fn start(dir: &Path, name: &str, nats: &str, store: &Store, env: &[(&str, &str)]) -> Worker {
        Worker::start_with(dir, name, nats, store, env, 1)
    }

    /// A worker encoding `units` units at a time.
    fn start_with(
        dir: &Path,
        name: &str,
        nats: &str,
        store: &Store,
        env: &[(&str, &str)],
        units: u32,
    ) -> Worker {
        let log = dir.join(format!("{name}.jsonl"));
        let err = dir.join(format!("{name}.err"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reel"));
        cmd.args(["worker", "--json", "--nats", nats, "--name", name])
            .args(["--units", &units.to_string(), "--work"])
            .arg(dir.join(format!("{name}-work")))
            .args(store.args())
            .envs(store.env())
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        Worker {
            child: cmd.spawn().unwrap(),
            log,
            err,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What it logged: one line per unit it handled.
    fn units(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == "unit")
            .collect()
    }
}

impl Drop for Worker {
    /// Stops the worker; when a test fails, shows what it said (its folder goes with the test).
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let tail = |p: &Path| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            };
            eprintln!(
                "--- worker {}: stdout\n{}\n--- stderr\n{}",
                self.log.display(),
                tail(&self.log),
                tail(&self.err)
            );
        }
    }
}

/// The store coordinator and workers share.
enum Store {
    Folder(PathBuf),
    S3 { endpoint: String },
}

impl Store {
    fn args(&self) -> Vec<String> {
        match self {
            Store::Folder(p) => vec!["--store".into(), p.display().to_string()],
            Store::S3 { endpoint } => vec![
                "--store".into(),
                "s3://units/work".into(),
                "--store-endpoint".into(),
                endpoint.clone(),
            ],
        }
    }

    fn env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ]
    }
}

/// An s3s-fs server with a `units` bucket, and the store at `s3://units/work` on it.
fn s3_store(dir: &Path) -> (S3Server, Store) {
    let root = dir.join("s3");
    std::fs::create_dir_all(root.join("units")).unwrap();
    let server = S3Server::start(&root);
    let store = Store::S3 {
        endpoint: server.endpoint(),
    };
    (server, store)
}

/// A coordinator: `reel run JOB --json --nats URL --store ...`, its events read as they come.
struct Coordinator {
    child: Child,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
    /// Its standard error, shown when the run fails.
    err: PathBuf,
}

impl Coordinator {
    fn start(job: &Path, nats: &str, store: &Store) -> Coordinator {
        Coordinator::start_with(job, nats, store, &[])
    }

    fn start_with(job: &Path, nats: &str, store: &Store, env: &[(&str, &str)]) -> Coordinator {
        let err = job.with_extension("err");
        let mut child = Command::new(env!("CARGO_BIN_EXE_reel"))
            .args(["run", job.to_str().unwrap(), "--json", "--nats", nats])
            .args(store.args())
            .envs(store.env())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Coordinator {
            child,
            events,
            seen: Vec::new(),
            err,
        }
    }

    /// Waits (at most `within`) for an event `pick` chooses; it, or `None` at the end.
    fn wait_for(&mut self, within: Duration, pick: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let v = self.events.recv_timeout(left).ok()?;
            self.seen.push(v.clone());
            if pick(&v) {
                return Some(v);
            }
        }
    }

    /// Waits for the end (at most `within`): the summary, or the error event.
    fn finish(mut self, within: Duration) -> (bool, Vec<Value>) {
        let end = self.wait_for(within, |v| {
            v["event"] == "summary" || v["event"] == "failed"
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if end.is_none() || Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let ok = end.as_ref().is_some_and(|v| v["event"] == "summary")
            && status.is_some_and(|s| s.success());
        if !ok {
            eprintln!(
                "--- coordinator's stderr\n{}",
                std::fs::read_to_string(&self.err).unwrap_or_default()
            );
        }
        (ok, self.seen)
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- the title ----------------------------------------------------------------------------

/// 12 s of 1280x720 with motion and noise, key frames every 37 frames, and a tone.
fn source(dir: &Path) -> PathBuf {
    let path = dir.join("source.mp4");
    let video = "testsrc2=size=1280x720:rate=25,noise=alls=5:allf=t,format=yuv420p";
    common::h264_with_tone(&path, video, 12, 20);
    path
}

/// A job for `source` in `dir` (its own work folder), published to `dir/out`.
fn job(dir: &Path, source: &Path) -> PathBuf {
    common::chunked_job(dir, "dist", source, LADDER, f64::from(CHUNK_SECONDS))
}

/// Adds to `job` an English audio description from a WAV file of its own (made in `dir`),
/// which the coordinator puts in the store for the workers beside the source.
fn with_description(job: &Path, dir: &Path) {
    let wav = dir.join("description.wav");
    if !wav.exists() {
        common::tone_file(&wav, 2500.0, 12);
    }
    let mut text = std::fs::read_to_string(job).unwrap();
    text.push_str(&format!(
        "[[audio]]\npath = \"{}\"\nlanguage = \"en\"\nrole = \"description\"\n",
        wav.display()
    ));
    std::fs::write(job, text).unwrap();
}

/// Every published file but the record (made at packaging time, with its time). The poster
/// is among them: it comes from the unit that holds its frame, wherever that unit ran.
fn media_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![out.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let name = p.strip_prefix(out).unwrap().display().to_string();
            if name != "title.json" {
                files.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

/// How many times each unit was encoded, over the workers' logs.
fn encodes(workers: &[&Worker]) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for w in workers {
        for u in w.units() {
            if u["outcome"] == "encoded" {
                *n.entry(u["key"].as_str().unwrap().to_string()).or_default() += 1;
            }
        }
    }
    n
}

/// The error of the run's `failed` event.
fn failure(events: &[Value]) -> &str {
    let failed = events
        .iter()
        .find(|v| v["event"] == "failed")
        .expect("no error");
    failed["error"].as_str().unwrap()
}

fn units_done(events: &[Value]) -> usize {
    events.iter().filter(|v| v["event"] == "unit_done").count()
}

const RUN_LIMIT: Duration = Duration::from_secs(240);

// --- the tests ----------------------------------------------------------------------------

#[test]
fn a_distributed_title_is_the_local_title_byte_for_byte_and_plays() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let nats = NatsServer::start(&dir.path().join("nats"));
    // An S3 store: the workers read the source by HTTP ranges from it (moov at the end).
    let (_s3, store) = s3_store(dir.path());
    // One worker with two lanes, one with one: every unit may run beside another.
    let workers = [
        Worker::start_with(dir.path(), "w1", &nats.url(), &store, &[], 2),
        Worker::start(dir.path(), "w2", &nats.url(), &store, &[]),
    ];
    let dist = job(&dir.path().join("dist"), &src);
    with_description(&dist, dir.path());
    let (ok, events) = Coordinator::start(&dist, &nats.url(), &store).finish(RUN_LIMIT);
    assert!(ok, "{events:?}");
    // The audio, the description and two chunks.
    assert_eq!(units_done(&events), 4, "{events:?}");
    let by_worker: Vec<&str> = events
        .iter()
        .filter(|v| v["event"] == "unit_done")
        .map(|v| v["worker"].as_str().unwrap())
        .collect();
    assert!(
        by_worker.iter().all(|w| *w == "w1" || *w == "w2"),
        "{by_worker:?}"
    );
    let counts = encodes(&workers.iter().collect::<Vec<_>>());
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");

    // The same job on this machine alone: the same bytes in every rendition.
    let local = job(&dir.path().join("local"), &src);
    with_description(&local, dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["run", local.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (a, b) = (
        media_files(&dir.path().join("dist/out")),
        media_files(&dir.path().join("local/out")),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let differ: Vec<&String> = a.keys().filter(|k| a[*k] != b[*k]).collect();
    assert!(
        differ.is_empty(),
        "distributed and local differ in {differ:?}"
    );
    assert!(a.keys().any(|k| k.starts_with("144p/")), "{:?}", a.keys());
    assert!(
        a.keys().any(|k| k.starts_with("audio_eng_description/")),
        "{:?}",
        a.keys()
    );

    // dash.js keeps to one adaptation set: the AV1 rung's own (as in tests/chunks.rs).
    let out = dir.path().join("dist/out");
    play(&out, "manifest.mpd", &["shaka"], 3);
    play(&out, "manifest.mpd", &["dashjs"], 1);
    play(&out, "master.m3u8", &["hlsjs"], 3);
}

#[test]
fn a_worker_killed_mid_unit_costs_that_unit_only() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let nats = NatsServer::start(&dir.path().join("nats"));
    let (_s3, store) = s3_store(dir.path());
    let mut victim = Worker::start(dir.path(), "victim", &nats.url(), &store, &[]);
    let mut coordinator = Coordinator::start(&job(dir.path(), &src), &nats.url(), &store);
    // The victim takes a unit alone; it dies in the middle of it.
    let started = coordinator
        .wait_for(Duration::from_secs(60), |v| {
            v["event"] == "unit_started" && v["worker"] == "victim"
        })
        .expect("the victim started no unit");
    victim.kill();
    let others = [
        Worker::start(dir.path(), "w1", &nats.url(), &store, &[]),
        Worker::start(dir.path(), "w2", &nats.url(), &store, &[]),
    ];
    let (ok, events) = coordinator.finish(RUN_LIMIT);
    assert!(ok, "{events:?}");
    assert!(
        victim.units().is_empty(),
        "the victim finished a unit: {:?}",
        victim.units()
    );
    let unit = started["unit"].as_str().unwrap();
    assert!(
        events.iter().any(|v| v["event"] == "unit_retrying"
            && v["unit"] == unit
            && v["error"]
                .as_str()
                .unwrap()
                .contains("victim stopped reporting")),
        "{events:?}"
    );
    // Every unit encoded once, the victim's by another worker after the ack wait.
    let counts = encodes(&others.iter().collect::<Vec<_>>());
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

#[test]
fn a_coordinator_killed_and_started_again_reuses_every_finished_unit() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let nats = NatsServer::start(&dir.path().join("nats"));
    let (_s3, store) = s3_store(dir.path());
    let workers = [
        Worker::start(dir.path(), "w1", &nats.url(), &store, &[]),
        Worker::start(dir.path(), "w2", &nats.url(), &store, &[]),
        Worker::start(dir.path(), "w3", &nats.url(), &store, &[]),
    ];
    let job = job(dir.path(), &src);
    let mut first = Coordinator::start(&job, &nats.url(), &store);
    first
        .wait_for(Duration::from_secs(120), |v| v["event"] == "unit_done")
        .expect("no unit finished");
    first.kill();
    let (ok, events) = Coordinator::start(&job, &nats.url(), &store).finish(RUN_LIMIT);
    assert!(ok, "{events:?}");
    let counts = encodes(&workers.iter().collect::<Vec<_>>());
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "a unit was encoded twice: {counts:?}"
    );
}

#[test]
fn the_job_completes_across_a_nats_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let mut nats = NatsServer::start(&dir.path().join("nats"));
    let store = Store::Folder(dir.path().join("store"));
    let _workers = [
        Worker::start(dir.path(), "w1", &nats.url(), &store, &[]),
        Worker::start(dir.path(), "w2", &nats.url(), &store, &[]),
    ];
    let mut coordinator = Coordinator::start(&job(dir.path(), &src), &nats.url(), &store);
    coordinator
        .wait_for(Duration::from_secs(60), |v| v["event"] == "unit_started")
        .expect("no unit started");
    nats.restart(Duration::from_secs(2));
    let (ok, events) = coordinator.finish(RUN_LIMIT);
    assert!(ok, "{events:?}");
    assert!(dir.path().join("out/manifest.mpd").exists());
}

/// Fault injection (`REEL_FAULT_STALL_AFTER_FRAMES` on the workers): every video unit's decode
/// hangs, each attempt ends at the stall bound, and the last ends the job.
#[test]
fn a_unit_that_fails_every_attempt_fails_the_job_naming_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let nats = NatsServer::start(&dir.path().join("nats"));
    let store = Store::Folder(dir.path().join("store"));
    let faulty = [
        ("REEL_FAULT_STALL_AFTER_FRAMES", "10"),
        ("REEL_STALL_SECONDS", "2"),
    ];
    let _workers = [
        Worker::start(dir.path(), "w1", &nats.url(), &store, &faulty),
        Worker::start(dir.path(), "w2", &nats.url(), &store, &faulty),
    ];
    let t = Instant::now();
    let (ok, events) = Coordinator::start(&job(dir.path(), &src), &nats.url(), &store)
        .finish(Duration::from_secs(120));
    assert!(!ok, "{events:?}");
    let error = failure(&events);
    assert!(
        error.contains("chunk ")
            && error.contains("after 3 attempts")
            && error.contains("source.mp4"),
        "{error}"
    );
    eprintln!("failed in {:.1} s: {error}", t.elapsed().as_secs_f64());
    assert!(!dir.path().join("out/manifest.mpd").exists());
}

#[test]
fn a_worker_that_loses_the_object_store_mid_unit_tries_again_and_the_job_completes() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let nats = NatsServer::start(&dir.path().join("nats"));
    let (s3, store) = s3_store(dir.path());
    let (s3_root, port) = (dir.path().join("s3"), s3.port);
    let workers = [Worker::start(dir.path(), "w1", &nats.url(), &store, &[])];
    let mut coordinator = Coordinator::start(&job(dir.path(), &src), &nats.url(), &store);
    coordinator
        .wait_for(Duration::from_secs(60), |v| v["event"] == "unit_started")
        .expect("no unit started");
    drop(s3);
    std::thread::sleep(Duration::from_secs(4));
    let _s3 = S3Server::start_on(&s3_root, port);
    let (ok, events) = coordinator.finish(RUN_LIMIT);
    assert!(ok, "{events:?}");
    let logs = workers[0].units();
    assert!(
        logs.iter().any(|u| u["outcome"] == "retrying"),
        "no attempt failed while the store was down: {logs:?}"
    );
    play(&dir.path().join("out"), "manifest.mpd", &["shaka"], 3);
}

#[test]
fn a_title_with_no_worker_running_fails_saying_so_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let nats = NatsServer::start(&dir.path().join("nats"));
    let store = Store::Folder(dir.path().join("store"));
    let t = Instant::now();
    let (ok, events) = Coordinator::start_with(
        &job(dir.path(), &src),
        &nats.url(),
        &store,
        &[("REEL_STALL_SECONDS", "3")],
    )
    .finish(Duration::from_secs(60));
    assert!(!ok, "{events:?}");
    let error = failure(&events);
    assert!(
        error.contains("no worker has taken a unit") && error.contains("reel worker --nats"),
        "{error}"
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

/// Two titles share one worker: the second one's units wait behind the first one's for longer
/// than its stall bound; it is told it waits, and completes.
#[test]
fn a_title_waiting_behind_another_in_the_queue_is_not_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats"));
    let store = Store::Folder(dir.path().join("store"));
    let first_src = source(dir.path());
    let second_src = dir.path().join("second.mp4");
    let video = "testsrc2=size=1280x720:rate=25,noise=alls=9:allf=t,format=yuv420p";
    common::h264_with_tone(&second_src, video, 12, 20);
    let _worker = Worker::start(dir.path(), "w1", &nats.url(), &store, &[]);
    let mut first =
        Coordinator::start(&job(&dir.path().join("a"), &first_src), &nats.url(), &store);
    first
        .wait_for(Duration::from_secs(60), |v| v["event"] == "unit_started")
        .expect("the first title never started");
    let (ok, events) = Coordinator::start_with(
        &job(&dir.path().join("b"), &second_src),
        &nats.url(),
        &store,
        &[("REEL_STALL_SECONDS", "2")],
    )
    .finish(RUN_LIMIT);
    assert!(ok, "{events:?}");
    assert!(
        events.iter().any(|v| v["event"] == "notice"
            && v["message"].as_str().unwrap_or("").starts_with("waiting: ")),
        "{events:?}"
    );
    let (ok, events) = first.finish(RUN_LIMIT);
    assert!(ok, "{events:?}");
}

/// A CA, and a certificate for 127.0.0.1 it signed, made with openssl in `dir`: (ca.pem,
/// server.pem, server.key).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=reel test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// A server that takes only TLS and one nkey user: the title runs with `--nats-ca` and
/// `--nats-nkey`; without the nkey a worker fails to connect, and says why without
/// printing a secret.
#[test]
fn a_title_runs_through_a_nats_server_that_requires_tls_and_an_nkey() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let (ca, cert, key) = tls_files(dir.path());
    let user = nkeys::KeyPair::new_user();
    let seed_file = dir.path().join("worker.nk");
    std::fs::write(&seed_file, user.seed().unwrap()).unwrap();
    let nats = NatsServer::start_with(
        &dir.path().join("nats"),
        &format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\nauthorization {{ users = [ {{ nkey: \"{}\" }} ] }}",
            cert.display(),
            key.display(),
            user.public_key()
        ),
    );
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let store = Store::Folder(dir.path().join("store"));
    let signed_in = [
        "--nats-ca",
        ca.to_str().unwrap(),
        "--nats-nkey",
        seed_file.to_str().unwrap(),
    ];
    let mut worker = Command::new(env!("CARGO_BIN_EXE_reel"));
    worker
        .args(["worker", "--json", "--name", "w1", "--nats", &url])
        .args(signed_in)
        .arg("--work")
        .arg(dir.path().join("w1-work"))
        .args(store.args())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut worker = KillOnDrop(worker.spawn().unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args([
            "run",
            job(dir.path(), &src).to_str().unwrap(),
            "--json",
            "--nats",
            &url,
        ])
        .args(signed_in)
        .args(store.args())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(dir.path().join("out/manifest.mpd").is_file());
    let _ = worker.0.kill();

    // The CA but no nkey: refused, within the connection bound, saying so.
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["worker", "--nats", &url, "--nats-ca", ca.to_str().unwrap()])
        .arg("--work")
        .arg(dir.path().join("refused-work"))
        .args(store.args())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("NATS at {url}: connecting")), "{err}");
    assert!(err.to_lowercase().contains("authoriz"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(40), "{:?}", t.elapsed());
    assert!(!err.contains(&user.seed().unwrap()), "{err}");
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
