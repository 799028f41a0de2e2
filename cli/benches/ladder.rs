//! Benchmark: a 4-rung AV1 ladder (720p/480p/360p/240p, rav1e speed 10, quantizer 100, key
//! frame every 2 s) encoded by Reel and by ffmpeg (`split=4` + librav1e, same settings) from
//! the same input in the same run. Reports wall time, CPU utilisation (user+sys over wall, out
//! of 2 cores) and peak RSS, and Reel's wall-time ratio against ffmpeg.
//!
//! Run: `cargo bench -p reel-cli --bench ladder [-- INPUT]` (default: the 720p fixture).
//! Uses GNU time (`/usr/bin/time`) for CPU and peak RSS of each whole process.

mod support;

use std::path::Path;
use std::process::Command;

struct Run {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
}

fn timed(label: &str, cmd: &[&str]) -> Run {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("BENCH %e %U %S %M")
        .args(cmd)
        .output()
        .expect("running /usr/bin/time (Debian package `time`)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{label} failed: {err}");
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with("BENCH "))
        .expect("GNU time output");
    let f: Vec<f64> = line[6..]
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    Run {
        wall: f[0],
        cpu: f[1] + f[2],
        rss_mb: f[3] / 1024.0,
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let input = support::input_or_fixture(&root);
    let reel = root.join("target/release/reel");
    let st = Command::new("cargo")
        .args(["build", "--release", "-p", "reel-cli"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(st.success());
    let dir = tempfile::tempdir().unwrap();
    let ladder = dir.path().join("ladder.toml");
    let mut toml = String::from("keyframe_interval = 2.0\n");
    for h in [720, 480, 360, 240] {
        toml += &format!(
            "[[rung]]\ncodec = \"av1\"\nencoder = \"rav1e\"\nheight = {h}\nquality = 100\nspeed = 10\n"
        );
    }
    std::fs::write(&ladder, toml).unwrap();

    let i = input.to_str().unwrap();
    let d = dir.path();
    let o = |n: &str| d.join(n).to_str().unwrap().to_string();
    let filter = "[0:v]split=4[a][b][c][d];[b]scale=854:480:flags=lanczos[o2];\
                  [c]scale=640:360:flags=lanczos[o3];[d]scale=426:240:flags=lanczos[o4]";
    let enc = [
        "-c:v",
        "librav1e",
        "-speed",
        "10",
        "-qp",
        "100",
        "-g",
        "50",
        "-keyint_min",
        "50",
    ];
    let outs = [o("f1.mp4"), o("f2.mp4"), o("f3.mp4"), o("f4.mp4")];
    let mut ff: Vec<&str> = vec![
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-i",
        i,
        "-an",
        "-filter_complex",
        filter,
    ];
    for (map, out) in ["[a]", "[o2]", "[o3]", "[o4]"].iter().zip(&outs) {
        ff.extend(["-map", map]);
        ff.extend(enc);
        ff.push(out);
    }
    let reel_out = o("reel");
    let reel_cmd = [
        reel.to_str().unwrap(),
        "encode",
        i,
        "--ladder",
        ladder.to_str().unwrap(),
        "--out",
        &reel_out,
        "--json",
    ];

    println!("input: {}", input.display());
    // Alternate the two so that drift on the machine hits both alike; keep each one's best.
    let mut best_ff: Option<Run> = None;
    let mut best_reel: Option<Run> = None;
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    for round in 1..=rounds {
        let f = timed("ffmpeg", &ff);
        let r = timed("reel", &reel_cmd);
        for (name, run) in [("ffmpeg split=4 librav1e", &f), ("reel encode", &r)] {
            println!(
                "round {round}: {name:<24} wall {:7.2} s  cpu {:7.2} s  ({:5.1}% of 2 cores)  peak RSS {:7.1} MB",
                run.wall,
                run.cpu,
                100.0 * run.cpu / run.wall / 2.0,
                run.rss_mb
            );
        }
        if best_ff.as_ref().is_none_or(|b| f.wall < b.wall) {
            best_ff = Some(f);
        }
        if best_reel.as_ref().is_none_or(|b| r.wall < b.wall) {
            best_reel = Some(r);
        }
    }
    let (f, r) = (best_ff.unwrap(), best_reel.unwrap());
    println!(
        "result: reel/ffmpeg wall-time ratio {:.2} (best of {rounds}); reel CPU {:.0}% of 2 cores, ffmpeg {:.0}%; peak RSS reel {:.0} MB, ffmpeg {:.0} MB",
        r.wall / f.wall,
        100.0 * r.cpu / r.wall / 2.0,
        100.0 * f.cpu / f.wall / 2.0,
        r.rss_mb,
        f.rss_mb
    );
}
