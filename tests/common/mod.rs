//! Helpers shared by the end-to-end tests: fixtures, the `reel` binary, ffprobe/ffmpeg.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fixture from `fixtures/out/`, made by `fixtures/make.sh` on first use.
pub fn fixture(name: &str) -> PathBuf {
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        let status = Command::new("bash")
            .arg(root().join("fixtures/make.sh"))
            .status()
            .expect("running fixtures/make.sh");
        assert!(status.success(), "fixtures/make.sh failed");
    });
    let p = root().join("fixtures/out").join(name);
    assert!(p.exists(), "fixture {name} missing");
    p
}

pub fn reel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(args)
        .output()
        .expect("running reel")
}

pub fn reel_ok(args: &[&str]) -> String {
    let out = reel(args);
    assert!(
        out.status.success(),
        "reel {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn tool(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"))
}

/// Makes `path`: a mono 48-kHz WAV of a steady `hz` tone, `seconds` long (WAV has no language
/// tag), or, for `.m4a`/`.mp4`, the same as AAC.
pub fn tone_file(path: &Path, hz: f64, seconds: u32) {
    let tone = format!("sine=frequency={hz}:sample_rate=48000:duration={seconds}");
    let mut args = vec!["-v", "error", "-y", "-f", "lavfi", "-i", &tone];
    if path.extension().is_some_and(|e| e != "wav") {
        args.extend(["-c:a", "aac"]);
    }
    args.push(path.to_str().unwrap());
    let o = tool("ffmpeg", &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Makes `path`: `seconds` of the lavfi `video` graph as H.264 (CRF `crf`, key frames every
/// 37 frames, so that no chunk of a whole number of 2-s segments starts on one) with a 330-Hz
/// tone as AAC.
pub fn h264_with_tone(path: &Path, video: &str, seconds: u32, crf: u32) {
    let out = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            video,
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:sample_rate=48000",
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            &crf.to_string(),
            "-g",
            "37",
            "-c:a",
            "aac",
            "-shortest",
            path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a job into `dir` (made if missing): `ladder_toml` as `ladder.toml`, title `id` from
/// `source`, chunks of `chunk_seconds`, 2-s segments, its work folder `dir/work`, published
/// to `dir/out`. Returns the job file's path.
pub fn chunked_job(
    dir: &Path,
    id: &str,
    source: &Path,
    ladder_toml: &str,
    chunk_seconds: f64,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ladder.toml"), ladder_toml).unwrap();
    let text = format!(
        r#"
ladder = "ladder.toml"
work_dir = "work"
[title]
id = "{id}"
source = "{}"
[encode]
chunk_duration = {chunk_seconds}
[packaging]
segment_duration = 2
[destination]
url = "file://out"
"#,
        source.display()
    );
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// ffprobe's JSON for the first stream of `file`, with frames counted.
pub fn ffprobe_stream(file: &Path) -> Value {
    ffprobe_first(file, &[])
}

/// ffprobe's first stream of `kind` (`v` or `a`) in `file` (frames counted).
pub fn ffprobe_stream_of(file: &Path, kind: &str) -> Value {
    ffprobe_first(file, &["-select_streams", &format!("{kind}:0")])
}

fn ffprobe_first(file: &Path, select: &[&str]) -> Value {
    let mut args = vec!["-v", "error", "-count_frames", "-show_streams"];
    args.extend(select);
    args.extend(["-of", "json", file.to_str().unwrap()]);
    let out = tool("ffprobe", &args);
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"][0].clone()
}

/// Presentation times (seconds) of the key frames ffprobe sees in `file`.
pub fn keyframe_times(file: &Path) -> Vec<f64> {
    let out = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
            file.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut times: Vec<f64> = text
        .lines()
        .filter(|l| l.contains('K'))
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// Decodes `file` fully with ffmpeg; returns stderr (empty when there were no errors).
pub fn ffmpeg_decode_errors(file: &Path) -> String {
    let out = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            file.to_str().unwrap(),
            "-f",
            "null",
            "-",
        ],
    );
    assert!(
        out.status.success(),
        "ffmpeg could not decode {}",
        file.display()
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// PSNR (average, dB) of `rendition` against `source` scaled to the rendition's size with
/// lanczos, frames paired by position.
pub fn psnr(rendition: &Path, source: &Path, width: u64, height: u64) -> f64 {
    psnr_with(
        rendition,
        source,
        &format!(
            "[0:v]setpts=PTS-STARTPTS[d];[1:v]setpts=PTS-STARTPTS,scale={width}:{height}:flags=lanczos[r];[d][r]psnr"
        ),
    )
}

/// ffmpeg's average PSNR of `rendition` (input 0) against `source` (input 1) through the
/// filter graph `filter`, which ends in `psnr`; 100 for identical pictures.
pub fn psnr_with(rendition: &Path, source: &Path, filter: &str) -> f64 {
    let out = tool(
        "ffmpeg",
        &[
            "-v",
            "info",
            "-nostats",
            "-i",
            rendition.to_str().unwrap(),
            "-i",
            source.to_str().unwrap(),
            "-lavfi",
            filter,
            "-f",
            "null",
            "-",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let avg = err
        .lines()
        .find_map(|l| l.split("average:").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no PSNR in ffmpeg output: {err}"));
    if avg == "inf" {
        100.0
    } else {
        avg.parse().unwrap()
    }
}

pub fn num(v: &Value, key: &str) -> f64 {
    match &v[key] {
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        Value::Number(n) => n.as_f64().unwrap(),
        _ => f64::NAN,
    }
}

/// Runs `reel` and kills it after `secs` seconds (a hang is a failure, not a stuck CI run).
pub fn reel_within(secs: u64, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running reel");
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() >= secs {
            let _ = child.kill();
            panic!("reel {args:?} did not finish within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// Encodes the 720p fixture with a ladder (TOML text) into a fresh folder under the build's
/// own temporary folder (callers keep it in a static, which is never dropped: a folder in
/// `/tmp` named by the process was left behind by every run); the renditions are in its
/// `enc` subfolder.
pub fn encode(name: &str, ladder_toml: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("encode-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ladder = dir.join("ladder.toml");
    std::fs::write(&ladder, ladder_toml).unwrap();
    let src = fixture("mezz_720p25.mp4");
    reel_ok(&[
        "encode",
        src.to_str().unwrap(),
        "--ladder",
        ladder.to_str().unwrap(),
        "--out",
        dir.join("enc").to_str().unwrap(),
        "--json",
    ]);
    dir
}

/// Runs a script of `tests/players` with node; returns success, its JSON lines and stderr.
/// One at a time in a test binary: players in Chromium run against timing bounds, and several
/// browsers at once on two cores made them miss (shaka-player once showed no cue in 4 s).
pub fn node(script: &str, args: &[&str]) -> (bool, Vec<Value>, String) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = root().join("tests/players");
    let o = std::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("node (installed by scripts/setup.sh)");
    let lines = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        o.status.success(),
        lines,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Plays `manifest` with `players` in headless Chromium; every run must end, visit every
/// video rendition, decode frames and report no error.
pub fn play(out: &Path, manifest: &str, players: &[&str], renditions: usize) {
    play_with(out, manifest, players, renditions, &[]);
}

/// [`play`] with more harness arguments (e.g. `--clearkey KID:KEY --drm license`); returns the
/// players' results.
pub fn play_with(
    out: &Path,
    manifest: &str,
    players: &[&str],
    renditions: usize,
    extra: &[&str],
) -> Vec<Value> {
    let mut args = vec!["--root", out.to_str().unwrap(), "--manifest", manifest];
    args.extend(extra);
    for p in players {
        args.extend(["--player", p]);
    }
    let (_, results, err) = node("play.mjs", &args);
    assert_eq!(results.len(), players.len(), "player harness: {err}");
    for r in &results {
        eprintln!("{r}");
        assert_eq!(
            r["errors"],
            Value::Array(vec![]),
            "{} on {manifest}: {r}",
            r["player"]
        );
        assert_eq!(
            r["ended"], true,
            "{} on {manifest} did not play to the end: {r}",
            r["player"]
        );
        assert_eq!(r["visited"].as_array().unwrap().len(), renditions, "{r}");
        assert!(r["decodedFrames"].as_u64().unwrap() > 0, "{r}");
    }
    results
}

/// Runs `reel run JOB --json` and SIGKILLs it (no clean-up) right after the `k`-th event that
/// `counts` picks out of its JSON stream, or after `within`, whichever comes first. Returns
/// whether it was killed before it finished.
pub fn run_and_kill_after(
    job: &Path,
    k: usize,
    counts: fn(&Value) -> bool,
    within: std::time::Duration,
) -> bool {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["run", job.to_str().unwrap(), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut seen = 0;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if counts(&v) {
                seen += 1;
                if seen == k {
                    let _ = tx.send(());
                    return;
                }
            }
        }
    });
    let _ = rx.recv_timeout(within);
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    !finished
}
