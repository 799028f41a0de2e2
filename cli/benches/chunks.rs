//! Benchmark: chunked `reel run` (the video in 30-s work units on the local pool) against the
//! same job as one unit for the whole title, same machine, same run; and the cost of a crash:
//! a run SIGKILLed about half way, then resumed, against an uninterrupted run.
//!
//! Fixture: the pipeline benchmark's 60-second 720p title with audio (fixed ladder, cenc,
//! published to a local folder). Modes alternate `REEL_BENCH_REPEAT` times (default 3);
//! ratios are of medians. `REEL_BENCH_BASELINE=/path/to/reel` adds an older build's `reel run`
//! (e.g. the last one before chunking) as a third mode.
//!
//! Run: `cargo bench -p reel-cli --bench chunks`. Outputs in `target/bench-out/chunks/`.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{make_long, median, timed};

/// The job: fixed ladder, cenc, 2-s segments, in a fresh `dir`; `encode` is the `[encode]`
/// table, or nothing.
fn job(dir: &Path, source: &Path, encode: &str) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    support::job(dir, source, "fixed", encode, &dir.join("out"))
}

/// Runs `reel run job` and SIGKILLs it after `after`; then runs it to the end. Returns the
/// killed run's time and the resumed run's.
fn killed_then_resumed(reel: &Path, job: &Path, after: Duration) -> (f64, f64) {
    let started = Instant::now();
    let mut child = Command::new(reel)
        .args(["run", job.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while started.elapsed() < after && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the kill"
    );
    let _ = child.kill();
    let _ = child.wait();
    let killed = started.elapsed().as_secs_f64();
    let (_, resumed, _) = timed(
        "resumed run",
        Command::new(reel).args(["run", job.to_str().unwrap(), "--json"]),
    );
    (killed, resumed)
}

fn main() {
    let root = support::root();
    let reel = support::release_reel(&root);
    let source = make_long(&root.join("target/bench-fixtures"));
    let base = root.join("target/bench-out/chunks");
    let repeat = support::repeat();
    let baseline = std::env::var("REEL_BENCH_BASELINE").ok().map(PathBuf::from);

    // The default: 30-s chunks, units at a time as the ladder's rungs fill the cores (one
    // here: six rungs on two cores).
    let mut modes: Vec<(&str, PathBuf, String)> = vec![
        ("chunked (30 s, default)", reel.clone(), String::new()),
        (
            "chunked (30 s, 2 workers)",
            reel.clone(),
            "[encode]\nworkers = 2".into(),
        ),
        (
            "one unit (whole title)",
            reel.clone(),
            "[encode]\nchunk_duration = 3600".into(),
        ),
    ];
    modes.push((
        "chunked (10 s, default)",
        reel.clone(),
        "[encode]\nchunk_duration = 10".into(),
    ));
    if let Some(b) = &baseline {
        modes.push(("baseline build", b.clone(), String::new()));
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for _ in 0..repeat {
        for (i, (label, binary, encode)) in modes.iter().enumerate() {
            let j = job(&base.join(format!("mode{i}")), &source, encode);
            let (_, t, _) = timed(
                label,
                Command::new(binary).args(["run", j.to_str().unwrap(), "--json"]),
            );
            times[i].push(t);
        }
    }
    let medians: Vec<f64> = times.iter().map(|t| median(t)).collect();
    println!("reel run, 60-s 720p title, fixed ladder, cenc ({repeat} runs each, medians):");
    for (i, (label, _, _)) in modes.iter().enumerate() {
        println!(
            "  {label:<28} {:>6.2} s  ({:.3}x one unit)  runs {:?}",
            medians[i],
            medians[i] / medians[2],
            times[i]
        );
    }
    if baseline.is_some() {
        println!(
            "  chunked / baseline build: {:.3}x",
            medians[0] / medians[4]
        );
    }

    // A crash half way: killed at half the chunked run's median, then resumed. What is lost
    // is the units in flight: half a unit per worker on average, so 30-s chunks on a 60-s
    // title lose about a quarter of it, 10-s chunks a twelfth.
    for (mode, encode) in [(0, ""), (3, "[encode]\nchunk_duration = 10")] {
        let mut totals = Vec::new();
        for _ in 0..repeat {
            let j = job(&base.join("killed"), &source, encode);
            let (killed, resumed) =
                killed_then_resumed(&reel, &j, Duration::from_secs_f64(medians[mode] / 2.0));
            println!(
                "  {}: killed after {killed:.2} s, resumed in {resumed:.2} s",
                modes[mode].0
            );
            totals.push(killed + resumed);
        }
        println!(
            "{}, killed half way and resumed: {:.2} s in all, {:.3}x an uninterrupted run",
            modes[mode].0,
            median(&totals),
            median(&totals) / medians[mode]
        );
    }
}
