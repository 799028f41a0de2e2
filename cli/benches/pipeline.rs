//! Benchmark: `reel run` end to end against the same work done step by step and against
//! ffmpeg in one process, same machine, same run.
//!
//! Per fixture (the README's 5-second 720p fixture and a 60-second 720p title with audio made
//! here with ffmpeg, cached in `target/bench-fixtures/`):
//! - `reel run`, fixed ladder (Apple's H.264 rungs trimmed to the source), cenc, published to a
//!   local folder; wall time and peak RSS (GNU time);
//! - the same as separate commands one after another: `reel encode --ladder fixed`,
//!   `reel package --encrypt cenc`, `reel publish` (sum of their times);
//! - ffmpeg 5.1 in one process: the same rungs (split + scale + libx264 veryfast CBR with the
//!   same VBV) and AAC, its DASH muxer with HLS playlists, cenc through the mp4 muxer's
//!   encryption options, 2-second segments;
//! - `reel run` with the per-title ladder (analysis included).
//!
//! `reel run` (fixed) and ffmpeg run alternately `REEL_BENCH_REPEAT` times (default 3); the
//! ratio is of their medians, and each pair's ratio is printed too.
//!
//! Run: `cargo bench -p reel-cli --bench pipeline`. Outputs in `target/bench-out/pipeline/`.

#[path = "support/mod.rs"]
mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{make_long, median, timed};

const KEY: &str = "00112233445566778899aabbccddeeff";
const KID: &str = "ffeeddccbbaa99887766554433221100";

/// The benchmark job: `ladder`, cenc, 2-s segments, published to `out`.
fn job(dir: &Path, source: &Path, ladder: &str, out: &Path) -> PathBuf {
    support::job(dir, source, ladder, "", out)
}

/// The fixed ladder's rungs for `source`, as `reel encode --dry-run` plans them.
fn fixed_rungs(reel: &Path, source: &Path) -> (Vec<(u32, u32, u32)>, u32) {
    let out = Command::new(reel)
        .args([
            "encode",
            source.to_str().unwrap(),
            "--ladder",
            "fixed",
            "--out",
            "/nonexistent",
            "--dry-run",
            "--json",
        ])
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rungs = plan["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["width"].as_u64().unwrap() as u32,
                r["height"].as_u64().unwrap() as u32,
                r["rate"]["bitrate"].as_u64().unwrap() as u32,
            )
        })
        .collect();
    (rungs, plan["keyframe_frames"].as_u64().unwrap() as u32)
}

fn ffmpeg_cmd(source: &Path, rungs: &[(u32, u32, u32)], gop: u32, out: &Path) -> Command {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let n = rungs.len();
    let mut graph = format!("[0:v]split={n}");
    for i in 0..n {
        graph.push_str(&format!("[s{i}]"));
    }
    graph.push(';');
    for (i, (w, h, _)) in rungs.iter().enumerate() {
        graph.push_str(&format!("[s{i}]scale={w}:{h}:flags=lanczos[v{i}];"));
    }
    graph.pop();
    let mut c = Command::new("ffmpeg");
    c.args(["-v", "error", "-nostdin", "-y", "-i"]).arg(source);
    c.args(["-filter_complex", &graph]);
    for i in 0..n {
        c.args(["-map", &format!("[v{i}]")]);
    }
    c.args(["-map", "0:a?", "-c:v", "libx264", "-preset", "veryfast"]);
    for (i, (_, _, kbps)) in rungs.iter().enumerate() {
        c.args([
            &format!("-b:v:{i}"),
            &format!("{kbps}k"),
            &format!("-maxrate:v:{i}"),
            &format!("{kbps}k"),
            &format!("-bufsize:v:{i}"),
            &format!("{}k", kbps * 2),
        ]);
    }
    c.args([
        "-g",
        &gop.to_string(),
        "-keyint_min",
        &gop.to_string(),
        "-sc_threshold",
        "0",
    ]);
    c.args(["-c:a", "aac", "-b:a", "128k", "-ac", "2"]);
    c.args([
        "-f",
        "dash",
        "-seg_duration",
        "2",
        "-use_template",
        "1",
        "-use_timeline",
        "0",
    ]);
    c.args(["-hls_playlist", "1", "-format_options"]);
    c.arg(format!(
        "encryption_scheme=cenc-aes-ctr:encryption_key={KEY}:encryption_kid={KID}"
    ));
    c.arg(out.join("manifest.mpd"));
    c
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let root = support::root();
    let reel = support::release_reel(&root);
    let st = Command::new("bash")
        .arg(root.join("fixtures/make.sh"))
        .status()
        .unwrap();
    assert!(st.success());
    let fixtures = vec![
        root.join("fixtures/out/mezz_720p25.mp4"),
        make_long(&root.join("target/bench-fixtures")),
    ];
    let base = root.join("target/bench-out/pipeline");
    let repeat = support::repeat();
    let mut rows = Vec::new();
    for source in &fixtures {
        let name = source.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = base.join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let duration = reel_encoder::probe(source).unwrap().duration;

        // reel run (fixed ladder) and ffmpeg, alternated `repeat` times: medians, so that one
        // slow run on a shared machine does not decide the ratio.
        let (rungs, gop) = fixed_rungs(&reel, source);
        let (mut runs, mut ffmpegs) = (Vec::new(), Vec::new());
        let (mut rss_fixed, mut rss_ffmpeg) = (0.0f64, 0.0f64);
        for _ in 0..repeat {
            let _ = std::fs::remove_dir_all(dir.join("run-fixed"));
            let fixed_job = job(
                &dir.join("run-fixed"),
                source,
                "fixed",
                &dir.join("run-fixed/out"),
            );
            let (_, t, rss) = timed(
                "reel run fixed",
                Command::new(&reel).args(["run", fixed_job.to_str().unwrap(), "--json"]),
            );
            runs.push(t);
            rss_fixed = rss_fixed.max(rss);
            let (_, t, rss) = timed(
                "ffmpeg",
                &mut ffmpeg_cmd(source, &rungs, gop, &dir.join("ffmpeg")),
            );
            ffmpegs.push(t);
            rss_ffmpeg = rss_ffmpeg.max(rss);
        }
        let (run_fixed, t_ffmpeg) = (median(&runs), median(&ffmpegs));

        // The same, step by step.
        let steps = dir.join("steps");
        let (_, t_encode, _) = timed(
            "reel encode",
            Command::new(&reel)
                .args([
                    "encode",
                    source.to_str().unwrap(),
                    "--ladder",
                    "fixed",
                    "--json",
                    "--out",
                ])
                .arg(steps.join("renditions")),
        );
        let renditions: Vec<PathBuf> = std::fs::read_dir(steps.join("renditions"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
            .collect();
        let mut pkg = Command::new(&reel);
        pkg.arg("package")
            .args(&renditions)
            .arg("--out")
            .arg(steps.join("package"));
        pkg.args([
            "--segment-duration",
            "2",
            "--encrypt",
            "cenc",
            "--key",
            &format!("{KID}:{KEY}"),
            "--json",
        ]);
        let (_, t_package, _) = timed("reel package", &mut pkg);
        let (_, t_publish, _) = timed(
            "reel publish",
            Command::new(&reel)
                .arg("publish")
                .arg(steps.join("package"))
                .arg("--to")
                .arg(format!("file://{}", steps.join("published").display())),
        );
        let steps_total = t_encode + t_package + t_publish;

        // reel run, per-title ladder.
        let pt_job = job(
            &dir.join("run-per-title"),
            source,
            "per-title",
            &dir.join("run-per-title/out"),
        );
        let (out, run_pt, rss_pt) = timed(
            "reel run per-title",
            Command::new(&reel).args(["run", pt_job.to_str().unwrap(), "--json"]),
        );
        let summary: Value = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "summary")
            .unwrap();
        let phases = summary["summary"]["phase_seconds"].clone();

        println!(
            "\n{name}: {duration:.1} s, fixed ladder {} rungs + audio",
            rungs.len()
        );
        println!(
            "  reel run (fixed)          {run_fixed:7.2} s   peak RSS {rss_fixed:6.0} MB   runs {}",
            list(&runs)
        );
        println!(
            "  separate steps            {steps_total:7.2} s   (encode {t_encode:.2} + package {t_package:.2} + publish {t_publish:.2})"
        );
        println!(
            "  ffmpeg one process        {t_ffmpeg:7.2} s   peak RSS {rss_ffmpeg:6.0} MB   runs {}",
            list(&ffmpegs)
        );
        println!("  reel run (per-title)      {run_pt:7.2} s   peak RSS {rss_pt:6.0} MB   phases {phases}");
        println!(
            "  ratios: run/ffmpeg {:.2}x, run/steps {:.2}x, per-title run/ffmpeg {:.2}x",
            run_fixed / t_ffmpeg,
            run_fixed / steps_total,
            run_pt / t_ffmpeg
        );
        let pairs: Vec<f64> = runs.iter().zip(&ffmpegs).map(|(r, f)| r / f).collect();
        println!("  run/ffmpeg per pair: {}", list(&pairs));
        rows.push((name, run_fixed / t_ffmpeg, run_pt / t_ffmpeg, rss_fixed));
    }
    println!("\nsummary (targets: fixed <= 1.0x ffmpeg, per-title <= 1.5x):");
    for (name, f, p, rss) in rows {
        println!("  {name:<24} fixed {f:.2}x   per-title {p:.2}x   peak RSS {rss:.0} MB");
    }
}
