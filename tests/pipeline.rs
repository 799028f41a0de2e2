//! `reel run`: a job from the fixture to a published, encrypted title that shaka-player plays
//! with ClearKey in headless Chromium, from a local folder and from a real S3-compatible server
//! (s3s-fs); re-runs that do nothing; runs killed at random points and run again.

mod common;

use common::{fixture, play_with};
use reel_drm::read_cpix;
use reel_publish::{ObjectStore, S3Options, S3Store};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../crates/publish/tests/support/s3_server.rs"]
mod s3_server;
use s3_server::{free_port, S3Server, ACCESS, SECRET};

fn reel_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reel"))
        .arg("run")
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .output()
        .expect("running reel run")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "reel run failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A small ladder: three H.264 rungs at low sizes, so runs take seconds.
const LADDER: &str = r#"
keyframe_interval = 2.0
[[rung]]
codec = "h264"
height = 360
bitrate = 600
[[rung]]
codec = "h264"
height = 270
bitrate = 350
[[rung]]
codec = "h264"
height = 180
bitrate = 180
[audio]
codec = "aac"
bitrate = 96
"#;

/// Writes a job for the 720p fixture into `dir` and returns its path.
fn job(dir: &Path, ladder: &str, destination: &str) -> PathBuf {
    job_for(dir, &fixture("mezz_720p25.mp4"), ladder, destination)
}

/// Writes a job for `source` into `dir` and returns its path.
fn job_for(dir: &Path, source: &Path, ladder: &str, destination: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ladder.toml"), LADDER).unwrap();
    let text = format!(
        r#"
ladder = "{ladder}"
work_dir = "work"

[title]
id = "fixture-title"
source = "{source}"
name = "Fixture"
[title.metadata]
genres = ["Test"]
year = 2026

[packaging]
segment_duration = 2

[encryption]
scheme = "cenc"
keys = "generate"
keys_out = "keys.cpix"
drm = ["clearkey", "widevine"]

[destination]
{destination}
"#,
        source = source.display()
    );
    let path = dir.join("job.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The ClearKey pairs (hex) from a CPIX file, for the player harness.
fn clearkeys(cpix: &Path) -> Vec<String> {
    let keys = read_cpix(cpix).unwrap();
    keys.keys()
        .iter()
        .map(|k| {
            let key: String = k.key.expose().iter().map(|b| format!("{b:02x}")).collect();
            format!("{}:{key}", k.kid.hex())
        })
        .collect()
}

fn play_title(folder: &Path, cpix: &Path, renditions: usize) {
    let mut args = Vec::new();
    for k in clearkeys(cpix) {
        args.push("--clearkey".to_string());
        args.push(k);
    }
    args.extend(["--drm".to_string(), "license".to_string()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let results = play_with(folder, "manifest.mpd", &["shaka"], renditions, &a);
    assert!(
        results[0]["licenses"].as_u64().unwrap() > 0,
        "{}",
        results[0]
    );
}

/// Every object a manifest names is present, and the title record names no key.
fn check_published(folder: &Path, cpix: &Path) -> Value {
    let record: Value =
        serde_json::from_slice(&std::fs::read(folder.join("title.json")).unwrap()).unwrap();
    for r in record["renditions"].as_array().unwrap() {
        assert!(folder.join(r["init"].as_str().unwrap()).is_file(), "{r}");
        let segs = r["segments"].as_u64().unwrap();
        assert!(segs >= 2, "{r}");
        for n in 1..=segs {
            let stem = r["name"].as_str().unwrap();
            assert!(
                folder.join(format!("{stem}/{n}.m4s")).is_file(),
                "{stem}/{n}"
            );
        }
        assert!(r["key_id"].as_str().unwrap().len() == 36, "{r}");
    }
    // No key anywhere in the published folder, the record or the manifests.
    let keys = read_cpix(cpix).unwrap();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            for k in keys.keys() {
                let key = k.key.expose();
                assert!(
                    !bytes.windows(16).any(|w| w == key),
                    "{} holds a key",
                    p.display()
                );
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                assert!(!String::from_utf8_lossy(&bytes).contains(&hex));
            }
        }
    }
    assert!(!folder.join("keys.cpix").exists());
    record
}

#[test]
fn the_job_publishes_a_protected_title_to_a_folder_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(
        dir.path(),
        "ladder.toml",
        "url = \"file://published/title\"",
    );
    let out = ok(&reel_run(&[job.to_str().unwrap(), "--json"]));
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for k in [
        "encode_planned",
        "encode_progress",
        "rendition_done",
        "uploaded",
        "summary",
    ] {
        assert!(kinds.contains(&k), "no {k} event: {kinds:?}");
    }
    // Manifests after every segment, the record last.
    let uploaded: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "uploaded")
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    let first_manifest = uploaded
        .iter()
        .position(|k| k.ends_with(".mpd") || k.ends_with(".m3u8"))
        .unwrap();
    assert!(uploaded[first_manifest..]
        .iter()
        .all(|k| !k.ends_with(".m4s")));
    assert_eq!(*uploaded.last().unwrap(), "title.json");
    // Segments went up while the encode was still running; nothing else did (init segments
    // are finished with their tracks, playlists and manifests after every segment).
    let encode_done = events
        .iter()
        .position(|e| e["event"] == "phase_done" && e["phase"] == "encode")
        .unwrap();
    let early: Vec<&str> = events[..encode_done]
        .iter()
        .filter(|e| e["event"] == "uploaded")
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert!(
        early.len() >= 2,
        "segments published during the encode: {early:?}"
    );
    assert!(early.iter().all(|k| k.ends_with(".m4s")), "{early:?}");
    let summary = &events.last().unwrap()["summary"];
    assert_eq!(
        summary["encoded"].as_array().unwrap().len(),
        4,
        "3 rungs + audio"
    );
    assert_eq!(summary["nothing_to_do"], false);

    let folder = dir.path().join("published/title");
    let cpix = dir.path().join("keys.cpix");
    let record = check_published(&folder, &cpix);
    assert_eq!(record["id"], "fixture-title");
    assert_eq!(record["metadata"]["year"], 2026);
    assert_eq!(record["encryption"], "cenc");
    assert_eq!(record["renditions"].as_array().unwrap().len(), 4);
    // Each rendition's size is what its folder holds (init and segments; playlists aside).
    for r in record["renditions"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let on_disk: u64 = reel_publish::files_under(&folder.join(name))
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.ends_with(".m3u8"))
            .map(|(_, p)| std::fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(r["bytes"].as_u64().unwrap(), on_disk, "{name}");
    }
    play_title(&folder, &cpix, 3);

    // The poster was taken from the encode's own decode (no second decode): it is the source's
    // frame at 30% (37 of 125), as ffmpeg decodes and scales it, and not its neighbours (the
    // fixture's time code changes every frame).
    let poster = std::fs::read(folder.join("poster.jpg")).unwrap();
    assert_eq!(
        poster,
        std::fs::read(dir.path().join("work/renditions/poster.jpg")).unwrap()
    );
    let grey = |input: &[&str]| {
        let out = Command::new("ffmpeg")
            .args(["-v", "error"])
            .args(input)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let poster_path = dir.path().join("poster-check.jpg");
    std::fs::write(&poster_path, &poster).unwrap();
    let ours = grey(&["-i", poster_path.to_str().unwrap()]);
    assert_eq!(ours.len(), 480 * 270);
    let source = fixture("mezz_720p25.mp4");
    let frame_diff = |n: u32| {
        let theirs = grey(&[
            "-i",
            source.to_str().unwrap(),
            "-vf",
            &format!("select=eq(n\\,{n}),scale=480:270:flags=lanczos"),
        ]);
        ours.iter()
            .zip(&theirs)
            .map(|(x, y)| x.abs_diff(*y) as f64)
            .sum::<f64>()
            / ours.len() as f64
    };
    let (before, at, after) = (frame_diff(36), frame_diff(37), frame_diff(38));
    assert!(
        // JPEG and two different scalers on a sharp test card leave about 4.5 levels.
        at < 6.0 && at * 2.0 < before && at * 2.0 < after,
        "mean differences from frames 36/37/38: {before:.2} {at:.2} {after:.2}"
    );

    // Again: nothing to do, and it says so; no file changes.
    let before = std::fs::metadata(folder.join("manifest.mpd"))
        .unwrap()
        .modified()
        .unwrap();
    let text = ok(&reel_run(&[job.to_str().unwrap()]));
    assert!(text.contains("nothing to do"), "{text}");
    let after = std::fs::metadata(folder.join("manifest.mpd"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("work/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["encodes"].as_array().unwrap().len(), 4);
    assert_eq!(state["runs"], 2);

    // The first run packaged the encoders' samples as they arrived. Packaging the finished
    // renditions (what a run does when only the title's metadata changed) gives the same
    // package: the same manifests and playlists byte for byte, every file the same size
    // (the media differ only in their random IVs).
    let listing = |dir: &Path| -> Vec<(String, u64)> {
        reel_publish::files_under(dir)
            .unwrap()
            .into_iter()
            .filter(|(k, _)| k != "title.json")
            .map(|(k, p)| (k, std::fs::metadata(p).unwrap().len()))
            .collect()
    };
    let texts = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        listing(dir)
            .into_iter()
            .filter(|(k, _)| k.ends_with(".mpd") || k.ends_with(".m3u8"))
            .map(|(k, _)| (k.clone(), std::fs::read(dir.join(&k)).unwrap()))
            .collect()
    };
    let streamed = (listing(&folder), texts(&folder));
    std::fs::write(
        &job,
        std::fs::read_to_string(&job)
            .unwrap()
            .replace("year = 2026", "year = 2027"),
    )
    .unwrap();
    let out = ok(&reel_run(&[job.to_str().unwrap(), "--json"]));
    let summary: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(summary["summary"]["encoded"].as_array().unwrap().len(), 0);
    assert_eq!(summary["summary"]["packaged"], true);
    let repackaged = (listing(&folder), texts(&folder));
    assert_eq!(streamed.0, repackaged.0, "file sizes");
    for ((k, a), (_, b)) in streamed.1.iter().zip(&repackaged.1) {
        assert!(
            a == b,
            "{k} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b)
        );
    }

    // reel publish: the packaged folder to another place, in tiers, with its own journal.
    let copy = dir.path().join("copy");
    let publish = |extra: &[&str]| {
        let mut args = vec![
            "publish".to_string(),
            dir.path().join("work/package").display().to_string(),
            "--to".into(),
            format!("file://{}", copy.display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = Command::new(env!("CARGO_BIN_EXE_reel"))
            .args(&args)
            .output()
            .unwrap();
        ok(&out)
    };
    let text = publish(&[]);
    assert!(text.contains("0 already there"), "{text}");
    let text = publish(&["--json"]);
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["uploaded"], 0);
    assert!(v["already_published"].as_u64().unwrap() > 20);
    check_published(&copy, &cpix);

    // --dry-run prints the plan and touches nothing.
    let text = ok(&reel_run(&[job.to_str().unwrap(), "--dry-run"]));
    assert!(
        text.contains("360p") && text.contains("already finished"),
        "{text}"
    );
}

/// A per-title AV1 job (`analysis.codec = "av1"`): SVT-AV1 trials choose the ladder, its
/// renditions are AV1, the title is published encrypted and plays to the end.
#[test]
fn a_per_title_av1_job_publishes_an_av1_title_that_plays() {
    let dir = tempfile::tempdir().unwrap();
    let path = job(dir.path(), "per-title", "url = \"file://out\"");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[analysis]\ncodec = \"av1\"\nmax_height = 360\n[quality]\nmeasure = true\n");
    std::fs::write(&path, text).unwrap();
    ok(&reel_run(&[path.to_str().unwrap()]));
    let folder = dir.path().join("out");
    let record = check_published(&folder, &dir.path().join("keys.cpix"));
    let video: Vec<&Value> = record["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "video")
        .collect();
    assert!(!video.is_empty());
    for r in &video {
        assert!(r["codec"].as_str().unwrap().starts_with("av01"), "{r}");
        assert!(r["height"].as_u64().unwrap() <= 360, "{r}");
        assert!(r["predicted_vmaf"].as_f64().is_some(), "{r}");
        let measured = r["measured_vmaf"].as_f64().unwrap_or_else(|| panic!("{r}"));
        assert!((20.0..=100.0).contains(&measured), "{r}");
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("work/analysis.json")).unwrap())
            .unwrap();
    assert_eq!(report["options"]["encoder"], "svt-av1");
    assert!(report["fallback"].is_null(), "{}", report["fallback"]);
    // `[quality] measure`: the published analysis has each rung's measurement and the error.
    let analysis = &record["analysis"];
    let error = &analysis["prediction_error"];
    assert_eq!(error["rungs"].as_u64(), Some(video.len() as u64), "{error}");
    for rung in analysis["rungs"].as_array().unwrap() {
        let r = video.iter().find(|r| r["name"] == rung["name"]).unwrap();
        assert_eq!(
            rung["measured"]["vmaf"]["mean"], r["measured_vmaf"],
            "{rung}"
        );
    }
    eprintln!("per-title AV1 prediction error: {error}");
    // A second run measures nothing again.
    let again = ok(&reel_run(&[path.to_str().unwrap(), "--json"]));
    let events: Vec<Value> = again
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "phase_skipped" && e["phase"] == "measure"),
        "{again}"
    );
    assert!(
        !events.iter().any(|e| e["event"] == "measure_progress"),
        "{again}"
    );
    // The player tells renditions apart by height.
    let mut heights: Vec<u64> = video
        .iter()
        .map(|r| r["height"].as_u64().unwrap())
        .collect();
    heights.dedup();
    play_title(&folder, &dir.path().join("keys.cpix"), heights.len());
}

#[test]
fn bad_jobs_fail_alone_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = job(
        &dir.path().join("good"),
        "ladder.toml",
        "url = \"file://out\"",
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[title]\nid = \"x\"\nsource = \"missing.mp4\"\n[destination]\nurl = \"file://o\"\n",
    )
    .unwrap();
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[title]\nid = \"x\"\nsorce = \"a.mp4\"\n").unwrap();
    let out = reel_run(&[
        bad.to_str().unwrap(),
        good.to_str().unwrap(),
        typo.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("missing.mp4"), "{err}");
    assert!(err.contains("typo.toml") && err.contains("sorce"), "{err}");
    assert!(text.contains("FAILED") && text.contains("ok "), "{text}");
    assert!(
        dir.path().join("good/out/title.json").is_file(),
        "the good job ran"
    );
}

/// When the audio is the only unfinished rendition (its file lost), the next run encodes the
/// audio alone, without decoding the video, and the title is complete again.
#[test]
fn an_unfinished_audio_rendition_is_encoded_alone() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), "ladder.toml", "url = \"file://published\"");
    ok(&reel_run(&[job.to_str().unwrap()]));
    std::fs::remove_file(dir.path().join("work/renditions/audio.mp4")).unwrap();
    let out = ok(&reel_run(&[job.to_str().unwrap(), "--json"]));
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &events.last().unwrap()["summary"];
    assert_eq!(
        summary["encoded"],
        serde_json::json!(["audio"]),
        "{summary}"
    );
    assert_eq!(summary["reused"].as_array().unwrap().len(), 3, "{summary}");
    // Video progress comes from the video encoders: none ran.
    assert!(
        !events.iter().any(|e| e["event"] == "encode_progress"),
        "the video was encoded again"
    );
    assert!(dir.path().join("work/renditions/audio.mp4").is_file());
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("work/state.json")).unwrap())
            .unwrap();
    let encodes: Vec<&str> = state["encodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rendition"].as_str().unwrap())
        .collect();
    assert_eq!(encodes.iter().filter(|r| **r == "audio").count(), 2);
    assert_eq!(encodes.len(), 5, "{encodes:?}");
    check_published(&dir.path().join("published"), &dir.path().join("keys.cpix"));
}

/// Memory does not grow with the title's length: the same job (three H.264 rungs, AAC, cenc,
/// packaged and published as it encodes; 4-s chunks on one worker) on 120 s and on 360 s of
/// the same kind of 360p source peaks at the same resident size (GNU time's maximum RSS).
/// One worker: with two, the peak is when two units' encoders are at their largest at once,
/// which depends on timing (the same 120-s run peaked at 159 MB and at 222 MB), and would
/// hide a growth of a few MB; with one, the same run gives the same peak within 2 MB.
/// (A chunked run's peak settles within its first minute or so of title, 15-20 MB above a
/// 10-s title's: freed frames of units that overlapped leave holes in glibc's heaps, which
/// the pool trims after every unit; measured 250, 266 and 265 MB at 40, 120 and 240 s.)
#[test]
fn peak_memory_does_not_grow_with_the_title() {
    let dir = tempfile::tempdir().unwrap();
    let peak = |seconds: u32| -> f64 {
        let source = dir.path().join(format!("src{seconds}.mp4"));
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=640x360:rate=25:duration={seconds}"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency=440:sample_rate=48000:duration={seconds}"
            ))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "50",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ])
            .arg(&source)
            .status()
            .unwrap();
        assert!(st.success());
        let job = job_for(
            &dir.path().join(format!("job{seconds}")),
            &source,
            "ladder.toml",
            "url = \"file://published\"",
        );
        let mut text = std::fs::read_to_string(&job).unwrap();
        // A tile every second: both titles fill a whole sprite (10x10 tiles, the one sprite
        // buffer the run holds, 17 MB of RGB at 3200x1800), so any growth is the title's.
        text.push_str("\n[encode]\nchunk_duration = 4\nworkers = 1\n[thumbnails]\ninterval = 1\n");
        std::fs::write(&job, text).unwrap();
        let stats = dir.path().join(format!("time{seconds}"));
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&stats)
            .arg(env!("CARGO_BIN_EXE_reel"))
            .args(["run", job.to_str().unwrap()])
            .output()
            .unwrap();
        ok(&out);
        let kb: f64 = std::fs::read_to_string(&stats)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        kb / 1024.0
    };
    let (short, long) = (peak(120), peak(360));
    eprintln!("peak RSS {short:.0} MB for 120 s, {long:.0} MB for 360 s");
    // The 360-s title's encoded media are about 54 MB, 36 MB more than the 120-s one's:
    // keeping them (or any per-frame state) in memory would show. Measured here: 153 and 153
    // MB in the test build; 154-156 and 159-160 MB in runs by hand, a growth of at most
    // about 75 KB per 4-s unit, not found yet.
    assert!(
        long < short + 10.0,
        "peak RSS {short:.0} MB for 120 s, {long:.0} MB for 360 s"
    );
}

// --- S3 -----------------------------------------------------------------------------------

/// The test server's bucket `media` under `prefix`, as the tests read it back.
fn test_store(endpoint: &str, prefix: &str) -> S3Store {
    S3Store::new(
        "media",
        prefix,
        &S3Options {
            endpoint: Some(endpoint.to_string()),
            path_style: true,
            access_key_id: Some(ACCESS.into()),
            secret_access_key: Some(SECRET.into()),
            ..S3Options::default()
        },
    )
    .unwrap()
}

#[test]
fn the_job_publishes_to_s3_and_the_title_read_back_plays() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"));
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let job = job(
        dir.path(),
        "ladder.toml",
        &format!(
            "url = \"s3://media/titles/fixture\"\nendpoint = \"{endpoint}\"\ncreate_bucket = true"
        ),
    );
    let text = ok(&reel_run(&[job.to_str().unwrap()]));
    assert!(
        text.contains(&format!("{endpoint}/media/titles/fixture/manifest.mpd")),
        "{text}"
    );
    let store = test_store(&endpoint, "titles/fixture");
    // Read everything back into a folder, with the headers every object went up with.
    let back = dir.path().join("back");
    let keys = store.list("").unwrap();
    assert!(keys.len() > 20, "{keys:?}");
    for key in &keys {
        let head = store.head(key).unwrap().unwrap();
        let ct = head.content_type.unwrap_or_default();
        let cc = head.cache_control.unwrap_or_default();
        match key.rsplit('.').next().unwrap() {
            "mpd" => assert_eq!(ct, "application/dash+xml"),
            "m3u8" => assert_eq!(ct, "application/vnd.apple.mpegurl"),
            "json" => assert_eq!((ct.as_str(), cc.as_str()), ("application/json", "no-cache")),
            // The poster and the thumbnail sprites.
            "jpg" => {
                assert!(
                    key == "poster.jpg" || key.starts_with("thumbnails/"),
                    "{key}"
                );
                assert_eq!(ct, "image/jpeg", "{key}");
            }
            "vtt" => assert_eq!(ct, "text/vtt", "{key}"),
            _ if key.starts_with("audio/") => assert_eq!(ct, "audio/mp4", "{key}"),
            _ => assert_eq!(
                (ct.as_str(), cc.as_str()),
                ("video/mp4", reel_publish::CACHE_IMMUTABLE),
                "{key}"
            ),
        }
        assert!(head.sha256.is_some(), "{key}");
        let p = back.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, store.get(key).unwrap().unwrap()).unwrap();
    }
    let cpix = dir.path().join("keys.cpix");
    check_published(&back, &cpix);
    play_title(&back, &cpix, 3);
    // A second run sends nothing.
    let text = ok(&reel_run(&[job.to_str().unwrap()]));
    assert!(text.contains("nothing to do"), "{text}");
}

/// The S3 server is down while the title encodes: the segments published during the encode
/// fail (a notice says so), the publish step fails naming the store, nothing is anywhere. With
/// the server up, the next run encodes nothing, publishes everything, and the title read back
/// is complete.
#[test]
fn s3_down_during_the_encode_then_back_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    // s3s-fs keeps a bucket as a folder: the bucket exists, the server does not run yet.
    std::fs::create_dir_all(root.join("media")).unwrap();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let job = job(
        dir.path(),
        "ladder.toml",
        &format!("url = \"s3://media/down\"\nendpoint = \"{endpoint}\""),
    );
    let out = reel_run(&[job.to_str().unwrap(), "--json"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("publishing segments during the encode stopped"),
        "{text}"
    );
    let error: Value = serde_json::from_str(
        text.lines()
            .find(|l| l.starts_with("{\"error\""))
            .unwrap_or_else(|| panic!("no error event: {text}")),
    )
    .unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("s3://media/down"),
        "{error}"
    );
    assert!(
        text.lines().any(|l| l.contains("\"rendition_done\"")),
        "the encode finished: {text}"
    );

    let server = S3Server::start_on(&root, port);
    let out = ok(&reel_run(&[job.to_str().unwrap(), "--json"]));
    let summary: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let summary = &summary["summary"];
    assert_eq!(summary["encoded"].as_array().unwrap().len(), 0, "{summary}");
    assert!(summary["uploaded"].as_u64().unwrap() > 20, "{summary}");
    let store = test_store(&server.endpoint(), "down");
    let back = dir.path().join("back");
    for key in store.list("").unwrap() {
        let p = back.join(&key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, store.get(&key).unwrap().unwrap()).unwrap();
    }
    check_published(&back, &dir.path().join("keys.cpix"));
}

/// `reel publish` SIGKILLed while a large object goes up in parts leaves a multipart upload
/// open on the server (S3 keeps it, and bills its parts, until someone aborts it). The next
/// publish aborts it from the record kept beside the journal, then publishes everything.
#[test]
fn a_multipart_upload_left_open_by_a_kill_is_aborted_by_the_next_publish() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("s3");
    std::fs::create_dir_all(root.join("media")).unwrap();
    let server = S3Server::start(&root);
    // 160 MiB: twenty 8-MiB parts, long enough to be caught in the middle.
    let folder = dir.path().join("title");
    std::fs::create_dir_all(&folder).unwrap();
    let mut bytes = vec![0u8; 160 << 20];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(folder.join("video.mp4"), &bytes).unwrap();
    drop(bytes);
    let publish = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_reel"));
        c.arg("publish")
            .arg(&folder)
            .args(["--to", "s3://media/big", "--endpoint", &server.endpoint()])
            .env("AWS_ACCESS_KEY_ID", ACCESS)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    // s3s-fs keeps an upload in progress as `.upload-<id>.json` and its parts as
    // `.upload_id-<id>.part-N` in its root.
    let in_progress = || -> Vec<String> {
        std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".upload"))
            .collect()
    };
    let mut child = publish().spawn().unwrap();
    let started = Instant::now();
    while !in_progress().iter().any(|n| n.contains(".part-")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the publish ended before its upload could be caught"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!in_progress().is_empty(), "an upload was left open");
    let ledger = dir.path().join("title.published.multipart.jsonl");
    assert!(std::fs::read_to_string(&ledger)
        .unwrap()
        .contains("upload_id"));

    let st = publish().status().unwrap();
    assert!(st.success());
    assert_eq!(
        in_progress(),
        Vec::<String>::new(),
        "left open on the server"
    );
    let head = test_store(&server.endpoint(), "big")
        .head("video.mp4")
        .unwrap()
        .unwrap();
    assert_eq!(head.size, 160 << 20);
    // The record holds only the second publish's upload, started and ended.
    let entries: Vec<Value> = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["upload_id"], entries[1]["upload_id"]);
    assert_eq!(entries[1]["ended"], true);
}

// --- kills ----------------------------------------------------------------------------------

/// A small deterministic generator for the kill points.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Events after which a kill leaves the work folder in a different state.
const MILESTONES: [&str; 6] = [
    "phase_started",
    "rendition_done",
    "phase_done",
    "uploaded",
    "tier_done",
    "publish_planned",
];

/// Runs the job and SIGKILLs it right after its `k`-th milestone event or after `ms`
/// milliseconds, whichever comes first; whether it was killed before it finished.
fn run_and_kill(job: &Path, k: usize, ms: u64) -> bool {
    common::run_and_kill_after(
        job,
        k,
        |v| MILESTONES.iter().any(|m| v["event"] == *m),
        Duration::from_millis(ms),
    )
}

/// Kills `reel run` (SIGKILL: no clean-up) at random points — after a random milestone event
/// (a phase starting, a rendition finished, an object uploaded) or at a random time — several
/// seeds, up to three kills each, then runs it to the end: the title is always complete and
/// plays, and no rendition that a run finished is ever encoded again.
#[test]
fn killed_runs_resume_to_a_complete_title_without_encoding_a_finished_rendition_twice() {
    // One uninterrupted run: its length and its milestone count scale the kill points.
    let dir = tempfile::tempdir().unwrap();
    let reference = job(
        &dir.path().join("reference"),
        "ladder.toml",
        "url = \"file://out\"",
    );
    let t = Instant::now();
    let out = ok(&reel_run(&[reference.to_str().unwrap(), "--json"]));
    let full = t.elapsed().as_millis() as u64;
    let milestones = out
        .lines()
        .filter(|l| {
            MILESTONES
                .iter()
                .any(|m| l.contains(&format!("\"event\":\"{m}\"")))
        })
        .count();
    assert!(milestones > 10, "{out}");
    let mut played = 0;
    let (mut total_kills, mut kept) = (0, 0);
    for seed0 in [7u64, 1234, 99991, 4242, 31337] {
        let mut seed = seed0;
        let case = dir.path().join(format!("seed-{seed0}"));
        let job = job(&case, "ladder.toml", "url = \"file://out\"");
        let mut kills = 0;
        for _ in 0..3 {
            let killed = if next(&mut seed).is_multiple_of(2) {
                let k = (next(&mut seed) % milestones as u64) as usize + 1;
                run_and_kill(&job, k, full * 4)
            } else {
                run_and_kill(&job, usize::MAX, next(&mut seed) % full.max(1))
            };
            if !killed {
                break;
            }
            kills += 1;
        }
        // Run to the end.
        ok(&reel_run(&[job.to_str().unwrap()]));
        let state: Value =
            serde_json::from_slice(&std::fs::read(case.join("work/state.json")).unwrap()).unwrap();
        let mut names: Vec<&str> = state["encodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["rendition"].as_str().unwrap())
            .collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(
            before,
            names.len(),
            "seed {seed0}: a rendition was encoded twice: {state}"
        );
        assert_eq!(names.len(), 4, "seed {seed0}: {state}");
        let runs = state["runs"].as_u64().unwrap();
        let finished_by_earlier = state["encodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["run"].as_u64().unwrap() < runs)
            .count();
        eprintln!(
            "seed {seed0}: {kills} kills, {runs} runs, {finished_by_earlier} renditions finished by killed runs and kept"
        );
        total_kills += kills;
        kept += finished_by_earlier;
        let folder = case.join("out");
        let cpix = case.join("keys.cpix");
        check_published(&folder, &cpix);
        // Nothing half-written is left in the published folder.
        let mut stack = vec![folder.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                assert!(!name.contains("reel-tmp"), "left behind: {}", p.display());
                if p.is_dir() {
                    stack.push(p);
                }
            }
        }
        if played < 2 {
            play_title(&folder, &cpix, 3);
            played += 1;
        }
    }
    assert!(
        total_kills >= 5,
        "the kill points missed the runs: {total_kills} kills"
    );
    assert!(
        kept >= 1,
        "no killed run left a finished rendition to resume from"
    );
}

/// Ctrl-C (SIGINT) stops at a safe point with a message; the next run finishes the title.
#[test]
fn ctrl_c_stops_cleanly_and_the_next_run_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let job = job(dir.path(), "ladder.toml", "url = \"file://out\"");
    let child = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["run", job.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let pid = child.id().to_string();
    let st = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert!(err.contains("stopped on request"), "{err}");
    }
    ok(&reel_run(&[job.to_str().unwrap()]));
    check_published(&dir.path().join("out"), &dir.path().join("keys.cpix"));
}

#[test]
fn a_source_in_s3_is_copied_once_by_ranges_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3"));
    std::fs::create_dir_all(dir.path().join("s3/mezz")).unwrap();
    let endpoint = format!("http://127.0.0.1:{}", server.port);
    let fixture = fixture("mezz_720p25.mp4");
    let (sha256, size) = reel_publish::file_sha256(&fixture).unwrap();
    let mezz = S3Store::new(
        "mezz",
        "",
        &S3Options {
            endpoint: Some(endpoint.clone()),
            path_style: true,
            access_key_id: Some(ACCESS.into()),
            secret_access_key: Some(SECRET.into()),
            ..S3Options::default()
        },
    )
    .unwrap();
    let meta = reel_publish::ObjectMeta {
        content_type: "video/mp4".into(),
        cache_control: "private".into(),
        sha256,
        size,
    };
    mezz.put_file("in/mezz_720p25.mp4", &fixture, &meta)
        .unwrap();
    let out = dir.path().join("out");
    let job_at = |name: &str, key: &str| {
        let job = job_for(
            &dir.path().join(name),
            Path::new(&format!("s3://mezz/{key}")),
            "ladder.toml",
            &format!("url = \"file://{}\"", out.display()),
        );
        let mut text = std::fs::read_to_string(&job).unwrap();
        text.push_str(&format!("[title.source_s3]\nendpoint = \"{endpoint}\"\n"));
        std::fs::write(&job, text).unwrap();
        job
    };
    let job = job_at("job", "in/mezz_720p25.mp4");
    let copying = |text: &str| text.contains("copying the source s3://mezz/in/mezz_720p25.mp4");

    let first = ok(&reel_run(&[job.to_str().unwrap(), "--json"]));
    assert!(copying(&first), "{first}");
    assert!(out.join("manifest.mpd").is_file());
    let copy = dir.path().join("job/work/source/mezz_720p25.mp4");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&fixture).unwrap()
    );
    // The next run finds its copy and the title done: nothing is read again.
    let again = ok(&reel_run(&[job.to_str().unwrap(), "--json"]));
    assert!(!copying(&again), "{again}");

    let missing = job_at("missing", "in/none.mp4");
    let failed = reel_run(&[missing.to_str().unwrap()]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("s3://mezz/in/none.mp4") && err.contains("not found"),
        "{err}"
    );
    assert!(!dir.path().join("missing/work/source/none.mp4").exists());
}
