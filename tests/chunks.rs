//! Chunked encoding (`reel run` cuts the video into work units): the stitched renditions have
//! every frame once, key frames where a whole-title encode has them and no visible seam at
//! the joins (per-frame VMAF, libvmaf); a run killed mid-encode resumes without encoding a
//! finished unit again; a unit that fails every time fails the title, naming the chunk.

mod common;

use common::{ffmpeg_decode_errors, ffprobe_stream, keyframe_times, play, tool};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Two H.264 rungs and an AV1 one, 2-s key frames, AAC.
const LADDER: &str = r#"
keyframe_interval = 2.0
[[rung]]
codec = "h264"
height = 360
bitrate = 700
[[rung]]
codec = "h264"
height = 180
bitrate = 250
[[rung]]
codec = "av1"
encoder = "svt-av1"
height = 144
crf = 40
[audio]
codec = "aac"
bitrate = 96
"#;

const SECONDS: u32 = 12;
const FPS: u32 = 25;

/// A 12-s 640x360 source with motion everywhere and a steady difficulty (a test card that
/// scrolls, with film-like noise) and a tone, its key frames every 37 frames, so that no chunk
/// starts on one of the source's key frames.
fn source(dir: &Path) -> PathBuf {
    let path = dir.join("zoom.mp4");
    let video = format!(
        "testsrc2=size=640x360:rate={FPS},scroll=horizontal=0.003:vertical=0.002,\
         noise=alls=6:allf=t,format=yuv420p"
    );
    common::h264_with_tone(&path, &video, SECONDS, 16);
    path
}

/// A job for `source`, chunks of `chunk` seconds, published to `out/` in `dir`.
fn job(dir: &Path, source: &Path, chunk: f64) -> PathBuf {
    common::chunked_job(dir, "zoom", source, LADDER, chunk)
}

fn run(job: &Path, env: &[(&str, &str)]) -> (Output, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_reel"))
        .args(["run", job.to_str().unwrap(), "--json"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out, events)
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// Per-frame VMAF (libvmaf) of `rendition` against `source`, both decoded at 640x360.
fn vmaf_per_frame(rendition: &Path, source: &Path) -> Vec<f64> {
    let size = (640, 360);
    let mut reference = Vec::new();
    reel_encoder::decode_pictures(source, size, &[], &mut |_, _, p| {
        reference.push(p);
        true
    })
    .unwrap();
    let mut vmaf = reel_ladder::Vmaf::new(size.0, size.1, 1).unwrap();
    let mut i = 0;
    reel_encoder::decode_pictures(rendition, size, &[], &mut |_, _, p| {
        vmaf.push(&reference[i], &p).unwrap();
        i += 1;
        true
    })
    .unwrap();
    assert_eq!(i, reference.len(), "frames in {}", rendition.display());
    vmaf.finish().unwrap().into_iter().map(|(_, s)| s).collect()
}

#[test]
fn chunks_join_with_every_frame_once_key_frames_in_place_and_no_seam() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path());
    let job_file = job(dir.path(), &source, 4.0);
    let (out, events) = run(&job_file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The audio and three chunks of 4 s (two segments each).
    let planned = of_kind(&events, "unit_planned");
    assert_eq!(planned[0]["counts"]["total"], 4, "{planned:?}");
    let done: Vec<&str> = of_kind(&events, "unit_done")
        .iter()
        .map(|e| e["unit"].as_str().unwrap())
        .collect();
    assert_eq!(done.len(), 4, "{done:?}");
    assert!(
        done.contains(&"chunk 1 (frames 100..200, 4.0-8.0 s)"),
        "{done:?}"
    );

    let renditions = dir.path().join("work/renditions");
    let frames = u64::from(SECONDS * FPS);
    for name in ["360p", "180p", "144p"] {
        let file = renditions.join(format!("{name}.mp4"));
        let stream = ffprobe_stream(&file);
        assert_eq!(
            stream["nb_read_frames"],
            frames.to_string(),
            "{name}: {stream}"
        );
        let keys = keyframe_times(&file);
        let first = keys[0];
        let spacing: Vec<f64> = keys
            .iter()
            .map(|k| ((k - first) * 1000.0).round())
            .collect();
        assert_eq!(
            spacing,
            [0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10000.0],
            "{name}: key frames every 2 s and nowhere else: {keys:?}"
        );
        assert_eq!(ffmpeg_decode_errors(&file), "", "{name}");
    }
    // The audio, encoded whole, lasts the title.
    let audio = ffprobe_stream(&renditions.join("audio.mp4"));
    let seconds: f64 = audio["duration"].as_str().unwrap().parse().unwrap();
    assert!((seconds - f64::from(SECONDS)).abs() < 0.05, "{audio}");

    // No visible seam. Per-frame VMAF (libvmaf) of the 360p rung: over the second around
    // each join (12 frames either side), the mean is not below the rung's mean by more than
    // the rung's own frame-to-frame spread (standard deviation of its per-frame scores), nor
    // below the same second of the title encoded as one unit by more than that spread. (Per
    // frame, a sixth of any encode's frames lie a spread below its mean: the second's mean is
    // what a seam would pull down.)
    let scores = vmaf_per_frame(&renditions.join("360p.mp4"), &source);
    let whole_dir = dir.path().join("whole");
    std::fs::create_dir_all(&whole_dir).unwrap();
    let whole_job = job(&whole_dir, &source, 3600.0);
    let (out, _) = run(&whole_job, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whole = vmaf_per_frame(&whole_dir.join("work/renditions/360p.mp4"), &source);
    let mean_of = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mean = mean_of(&scores);
    let spread =
        (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / scores.len() as f64).sqrt();
    for join in [100usize, 200] {
        let window = join - 12..join + 13;
        let (here, there) = (
            mean_of(&scores[window.clone()]),
            mean_of(&whole[window.clone()]),
        );
        eprintln!(
            "join at frame {join}: the second around it {here:.2} (one unit: {there:.2}); \
             rung mean {mean:.2}, spread {spread:.2}; frames {:.1?}",
            &scores[window]
        );
        assert!(
            here >= mean - spread,
            "a seam at frame {join}: {here:.2} < {mean:.2} - {spread:.2}"
        );
        assert!(
            here >= there - spread,
            "a seam at frame {join}: {here:.2} < {there:.2} - {spread:.2}"
        );
    }

    // The stitched title plays to the end.
    let published = dir.path().join("out");
    // dash.js keeps to one adaptation set, and its default choice (the lowest start-up
    // delay) is the one whose cheapest rung is cheapest: the AV1 rung's own (SVT-AV1 at CRF
    // 40 at 144p is a fraction of the 250-kbit/s H.264 rung).
    play(&published, "manifest.mpd", &["shaka"], 3);
    play(&published, "manifest.mpd", &["dashjs"], 1);
    play(&published, "master.m3u8", &["hlsjs"], 3);
}

#[test]
fn a_killed_run_resumes_without_encoding_a_finished_unit_again() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path());
    let job = job(dir.path(), &source, 2.0);
    let killed = common::run_and_kill_after(
        &job,
        3,
        |v| v["event"] == "unit_done",
        Duration::from_secs(300),
    );
    assert!(killed, "the run ended before it could be killed");
    let (out, events) = run(&job, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let planned = of_kind(&events, "unit_planned");
    let counts = &planned[0]["counts"];
    assert_eq!(counts["total"], 7, "audio and six chunks: {counts}");
    assert!(counts["reused"].as_u64().unwrap() >= 3, "{counts}");
    let encoded = of_kind(&events, "unit_done").len() as u64;
    assert_eq!(encoded + counts["reused"].as_u64().unwrap(), 7, "{counts}");
    // The journal of every unit finished: none twice.
    let journal = std::fs::read_to_string(dir.path().join("work/units/units.jsonl")).unwrap();
    let mut keys: Vec<String> = journal
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let all = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), all, "a unit was encoded twice:\n{journal}");
    assert_eq!(all, 7, "{journal}");
    // The units' folders go once their renditions are recorded.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("work/units"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let stream = ffprobe_stream(&dir.path().join("work/renditions/360p.mp4"));
    assert_eq!(stream["nb_read_frames"], (SECONDS * FPS).to_string());
}

/// Fault injection (`REEL_FAULT_STALL_AFTER_FRAMES`): a decoder that hangs in every attempt of
/// every unit, as no real input does on demand. The title fails after the last attempt with
/// an error naming the chunk, well within the stall bound of each attempt.
#[test]
fn a_unit_that_fails_every_time_fails_the_title_naming_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path());
    let job = job(dir.path(), &source, 4.0);
    let started = std::time::Instant::now();
    let (out, events) = run(
        &job,
        &[
            ("REEL_FAULT_STALL_AFTER_FRAMES", "10"),
            ("REEL_STALL_SECONDS", "2"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let failed = of_kind(&events, "failed");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(error.contains("zoom.mp4"), "{error}");
    assert!(
        error.contains("chunk ") && error.contains("failed after 3 attempts"),
        "{error}"
    );
    assert!(!of_kind(&events, "unit_retrying").is_empty(), "{events:?}");
    assert!(!dir.path().join("out/manifest.mpd").exists());
}

/// A transport stream's timestamps start at 1.4 s, not 0: chunks decoded after a seek must
/// land on the same frames as the title encoded as one unit (whose decode never seeks). Every
/// frame of the chunked rendition is compared with the same frame of the one-unit rendition
/// (PSNR, ffmpeg): the scrolling card moves every frame, so a chunk off by even one frame
/// scores far below the rest.
#[test]
fn chunks_of_a_transport_stream_land_on_the_whole_titles_frames() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = source(dir.path());
    let ts = dir.path().join("zoom.ts");
    let out = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-i",
            mp4.to_str().unwrap(),
            "-t",
            "8",
            "-c",
            "copy",
            ts.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendition = |name: &str, chunk: f64| -> PathBuf {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let (out, _) = run(&job(&d, &ts, chunk), &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        d.join("work/renditions/360p.mp4")
    };
    let (chunked, whole) = (rendition("chunked", 2.0), rendition("whole", 3600.0));
    let frames = |f: &Path| {
        ffprobe_stream(f)["nb_read_frames"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        frames(&chunked),
        frames(&whole),
        "frames, chunked and whole"
    );
    let stats = dir.path().join("psnr.txt");
    let out = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            chunked.to_str().unwrap(),
            "-i",
            whole.to_str().unwrap(),
            "-lavfi",
            &format!("[0:v][1:v]psnr=stats_file={}", stats.display()),
            "-f",
            "null",
            "-",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let psnr: Vec<f64> = std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("psnr_avg:"))
        })
        .map(|v| v.parse().unwrap_or(100.0))
        .collect();
    assert!(psnr.len() >= 200, "frames compared: {}", psnr.len());
    let worst = psnr.iter().copied().fold(f64::INFINITY, f64::min);
    eprintln!("chunked against one unit, per frame: worst {worst:.1} dB");
    assert!(worst > 28.0, "a frame out of place: {psnr:.1?}");
}
