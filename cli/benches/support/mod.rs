//! What the end-to-end benchmarks share: timing a command, and the 60-second title.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd` under GNU time; returns (stdout, wall seconds, peak RSS in MB).
pub fn timed(label: &str, cmd: &mut Command) -> (String, f64, f64) {
    let stats = std::env::temp_dir().join(format!("reel-bench-time-{}", std::process::id()));
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%e %M", "-o"])
        .arg(&stats)
        .arg(program)
        .args(args);
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    let out = wrapped.output().unwrap_or_else(|e| panic!("{label}: {e}"));
    assert!(
        out.status.success(),
        "{label} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&stats).unwrap();
    let _ = std::fs::remove_file(&stats);
    let mut it = text.split_whitespace();
    let secs: f64 = it.next().unwrap().parse().unwrap();
    let kb: f64 = it.next().unwrap().parse().unwrap();
    (String::from_utf8(out.stdout).unwrap(), secs, kb / 1024.0)
}

/// The 60-second 720p title with audio (cached in `dir`).
pub fn make_long(dir: &Path) -> PathBuf {
    let path = dir.join("long_720p25_60s.mp4");
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(".long.tmp.mp4");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=1280x720:r=25:d=60,noise=alls=3:allf=t:all_seed=7",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:r=48000:d=60",
        ])
        .args([
            "-c:v",
            "libx264",
            "-crf",
            "16",
            "-preset",
            "faster",
            "-x264-params",
            "threads=1",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", "-ac", "2",
        ])
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// The middle value of `v` (the upper one of an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs per mode: `REEL_BENCH_REPEAT`, 3 by default, at least 1.
pub fn repeat() -> usize {
    std::env::var("REEL_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// The workspace's root folder.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the release `reel` and returns its path.
pub fn release_reel(root: &Path) -> PathBuf {
    let st = Command::new("cargo")
        .args(["build", "--release", "-p", "reel-cli"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(st.success());
    root.join("target/release/reel")
}

/// A benchmark job in `dir`: `ladder`, `extra` (more TOML tables, e.g. `[encode]`, or
/// nothing), cenc with generated keys, 2-s segments, published to the folder `out`.
pub fn job(dir: &Path, source: &Path, ladder: &str, extra: &str, out: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        r#"ladder = "{ladder}"
work_dir = "work"
[title]
id = "bench"
source = "{}"
{extra}
[packaging]
segment_duration = 2
[encryption]
scheme = "cenc"
keys_out = "keys.cpix"
[destination]
url = "file://{}"
"#,
        source.display(),
        out.display()
    );
    let p = dir.join("job.toml");
    std::fs::write(&p, text).unwrap();
    p
}
