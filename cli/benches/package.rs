//! Benchmark: packaging a large already-encoded H.264 + AAC MP4 (the 720p fixture looped with
//! `ffmpeg -stream_loop -c copy`) with Reel, Shaka Packager (npm `shaka-packager`) and ffmpeg's
//! DASH muxer (stream copy), clear and encrypted (`cenc`, `cbcs`; Shaka Packager with raw
//! keys), next to a plain `cp` of the same file and `openssl speed` for AES-128-CTR/CBC, all
//! in the same run. Reports MB/s of input and peak RSS of each (best of RUNS runs, default 3),
//! and Reel's RSS on half the input (flat RSS means memory does not grow with the title).
//!
//! Run: `cargo bench -p reel-cli --bench package` (LOOPS=270 makes about 400 MB).

use std::path::Path;
use std::process::Command;

fn timed(label: &str, cmd: &[&str]) -> (f64, f64) {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("BENCH %e %M")
        .args(cmd)
        .output()
        .expect("running /usr/bin/time");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{label} failed: {err}");
    let line = err.lines().rev().find(|l| l.starts_with("BENCH ")).unwrap();
    let f: Vec<f64> = line[6..]
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (f[0], f[1] / 1024.0)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(Command::new("bash")
        .arg(root.join("fixtures/make.sh"))
        .status()
        .unwrap()
        .success());
    assert!(Command::new("cargo")
        .args(["build", "--release", "-p", "reel-cli"])
        .current_dir(&root)
        .status()
        .unwrap()
        .success());
    let reel = root.join("target/release/reel");
    let shaka = root.join("tests/players/node_modules/shaka-packager/bin/packager-linux-x64");
    assert!(
        shaka.exists(),
        "run scripts/setup.sh (npm ci in tests/players) first"
    );
    let loops: u32 = std::env::var("LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(270);
    let dir = tempfile::tempdir_in(root.join("target")).unwrap();
    let d = dir.path();
    let src = root.join("fixtures/out/mezz_720p25.mp4");
    let big = d.join("big.mp4");
    let half = d.join("half.mp4");
    for (path, n) in [(&big, loops), (&half, loops / 2)] {
        let st = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-stream_loop",
                &(n - 1).to_string(),
                "-i",
            ])
            .arg(&src)
            .args(["-c", "copy"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let mb = std::fs::metadata(&big).unwrap().len() as f64 / 1e6;
    let b = big.to_str().unwrap();
    // Every tool writes into `out/`, emptied before each run: nobody overwrites (and so
    // first truncates) an earlier run's files.
    let out_dir = d.join("out");
    let p = |n: &str| out_dir.join(n).to_str().unwrap().to_string();
    let fresh = || {
        let _ = std::fs::remove_dir_all(&out_dir);
        std::fs::create_dir_all(&out_dir).unwrap();
        // Flush the previous run's dirty pages first, or they slow down whoever runs next.
        let _ = Command::new("sync").status();
    };
    let _ = Command::new("cat")
        .arg(&big)
        .stdout(std::process::Stdio::null())
        .status();
    println!("input: {mb:.0} MB ({loops} loops of the 720p fixture)");
    let runs: Vec<(&str, Vec<String>)> = vec![
        ("cp", vec!["cp".into(), b.into(), p("copy.mp4")]),
        (
            "reel package --single-file",
            vec![
                reel.to_str().unwrap().into(),
                "package".into(),
                b.into(),
                "--out".into(),
                p("reel_single"),
                "--single-file".into(),
                "--json".into(),
            ],
        ),
        (
            "reel package (segment files)",
            vec![
                reel.to_str().unwrap().into(),
                "package".into(),
                b.into(),
                "--out".into(),
                p("reel_segments"),
                "--json".into(),
            ],
        ),
        (
            "reel package --single-file cenc",
            vec![
                reel.to_str().unwrap().into(),
                "package".into(),
                b.into(),
                "--out".into(),
                p("reel_single"),
                "--single-file".into(),
                "--encrypt".into(),
                "cenc".into(),
                "--key".into(),
                KEY.into(),
                "--json".into(),
            ],
        ),
        (
            "reel package --single-file cbcs",
            vec![
                reel.to_str().unwrap().into(),
                "package".into(),
                b.into(),
                "--out".into(),
                p("reel_single"),
                "--single-file".into(),
                "--encrypt".into(),
                "cbcs".into(),
                "--key".into(),
                KEY.into(),
                "--json".into(),
            ],
        ),
        shaka_run(&shaka, b, &p, Some("cenc")),
        shaka_run(&shaka, b, &p, Some("cbcs")),
        (
            "shaka-packager single-file DASH",
            vec![
                shaka.to_str().unwrap().into(),
                format!("in={b},stream=video,output={}", p("shaka_v.mp4")),
                format!("in={b},stream=audio,output={}", p("shaka_a.mp4")),
                "--mpd_output".into(),
                p("shaka.mpd"),
                "--quiet".into(),
            ],
        ),
        (
            "ffmpeg -f dash (stream copy)",
            vec![
                "ffmpeg".into(),
                "-v".into(),
                "error".into(),
                "-y".into(),
                "-i".into(),
                b.into(),
                "-map".into(),
                "0".into(),
                "-c".into(),
                "copy".into(),
                "-f".into(),
                "dash".into(),
                "-single_file".into(),
                "1".into(),
                p("ff.mpd"),
            ],
        ),
    ];
    let repeats: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut cp_time = 0.0;
    for (label, cmd) in &runs {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let (mut wall, mut rss) = (f64::MAX, 0.0f64);
        for _ in 0..repeats {
            fresh();
            let (w, r) = timed(label, &args);
            wall = wall.min(w);
            rss = rss.max(r);
        }
        if *label == "cp" {
            cp_time = wall;
        }
        println!(
            "{label:<34} {wall:7.2} s  {:8.0} MB/s  {:5.2}x cp time  peak RSS {rss:6.1} MB",
            mb / wall,
            wall / cp_time
        );
    }
    fresh();
    let (_, rss_half) = timed(
        "reel half",
        &[
            reel.to_str().unwrap(),
            "package",
            half.to_str().unwrap(),
            "--out",
            &p("reel_half"),
            "--single-file",
            "--json",
        ],
    );
    println!("reel peak RSS on half the input: {rss_half:.1} MB");
    let (_, rss_half_enc) = timed(
        "reel half cenc",
        &[
            reel.to_str().unwrap(),
            "package",
            half.to_str().unwrap(),
            "--out",
            &p("reel_half_cenc"),
            "--single-file",
            "--encrypt",
            "cenc",
            "--key",
            KEY,
            "--json",
        ],
    );
    println!("reel cenc peak RSS on half the input: {rss_half_enc:.1} MB");
    for cipher in ["aes-128-ctr", "aes-128-cbc"] {
        let out = Command::new("openssl")
            .args(["speed", "-evp", cipher, "-seconds", "2", "-bytes", "16384"])
            .output()
            .expect("openssl");
        let text = String::from_utf8_lossy(&out.stdout);
        // The last line: "<cipher> <1000s of bytes per second>k".
        let rate = text
            .lines()
            .rev()
            .find(|l| l.to_ascii_lowercase().starts_with(cipher))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.trim_end_matches('k').parse::<f64>().ok())
            .map(|k| k * 1000.0 / 1e6);
        match rate {
            Some(r) => {
                println!("openssl speed -evp {cipher} (16 KiB blocks, one core): {r:8.0} MB/s")
            }
            None => println!("openssl speed -evp {cipher}: no figure in its output"),
        }
    }
}

const KEY: &str = "8c8e1d6c2a4b4f6e9d3a7b5c1e2f3a4b:6a3f9c1e8b2d4f7a5c0e1b3d9f8a7c6e";

/// Shaka Packager making the same single-file DASH output, clear or with a raw key.
fn shaka_run(
    shaka: &Path,
    input: &str,
    p: &dyn Fn(&str) -> String,
    scheme: Option<&str>,
) -> (&'static str, Vec<String>) {
    let label = match scheme {
        Some("cenc") => "shaka-packager single-file cenc",
        Some(_) => "shaka-packager single-file cbcs",
        None => "shaka-packager single-file DASH",
    };
    let tag = scheme.unwrap_or("clear");
    let mut cmd = vec![
        shaka.to_str().unwrap().to_string(),
        format!(
            "in={input},stream=video,output={}",
            p(&format!("shaka_{tag}_v.mp4"))
        ),
        format!(
            "in={input},stream=audio,output={}",
            p(&format!("shaka_{tag}_a.mp4"))
        ),
        "--mpd_output".into(),
        p(&format!("shaka_{tag}.mpd")),
        "--quiet".into(),
    ];
    if let Some(s) = scheme {
        let (kid, key) = KEY.split_once(':').unwrap();
        cmd.extend([
            "--enable_raw_key_encryption".into(),
            "--keys".into(),
            format!("key_id={kid}:key={key}"),
            "--protection_scheme".into(),
            s.into(),
            "--clear_lead".into(),
            "0".into(),
        ]);
    }
    (label, cmd)
}
