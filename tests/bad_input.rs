//! Bad input: one clear error naming the file, a non-zero exit, no panic, and no output file
//! that looks complete.

mod common;
use common::*;
use std::path::Path;

fn assert_fails_cleanly(args: &[&str], file: &Path, expect: &str, out: Option<&Path>) {
    let o = reel(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "reel {args:?} succeeded");
    assert_eq!(o.status.code(), Some(1), "exit code for {args:?}: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains(&file.display().to_string()),
        "error does not name {}: {err}",
        file.display()
    );
    assert!(
        err.to_lowercase().contains(expect),
        "expected '{expect}' in: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    if let Some(out) = out {
        let left: Vec<_> = std::fs::read_dir(out)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

fn encode_args<'a>(file: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "encode",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("nope.mp4");
    let out = dir.path().join("out");
    assert_fails_cleanly(&encode_args(&f, &out), &f, "no such file", Some(&out));
    assert_fails_cleanly(&["probe", f.to_str().unwrap()], &f, "no such file", None);
}

#[test]
fn not_media() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.mp4");
    std::fs::write(&f, "these are not frames\n".repeat(100)).unwrap();
    let out = dir.path().join("out");
    assert_fails_cleanly(&encode_args(&f, &out), &f, "not a media file", Some(&out));
    assert_fails_cleanly(
        &["demux", f.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &f,
        "not a media file",
        Some(&out),
    );
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read(fixture("tiny_180p25.mp4")).unwrap();
    let f = dir.path().join("cut.mp4");
    std::fs::write(&f, &src[..src.len() / 2]).unwrap();
    let out = dir.path().join("out");
    let o = reel(&encode_args(&f, &out));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a truncated file must fail");
    assert!(
        err.contains(&f.display().to_string()) && !err.contains("panicked"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn no_video() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("audio_only.m4a");
    let out = dir.path().join("out");
    assert_fails_cleanly(&encode_args(&f, &out), &f, "no video stream", Some(&out));
}

#[test]
fn unsupported_codec() {
    // The tiny fixture with its video sample entry renamed to a code no decoder knows.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("tiny_180p25.mp4")).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"avc1")
        .expect("avc1 sample entry");
    bytes[at..at + 4].copy_from_slice(b"zzz9");
    let f = dir.path().join("unknown.mp4");
    std::fs::write(&f, &bytes).unwrap();
    let out = dir.path().join("out");
    assert_fails_cleanly(&encode_args(&f, &out), &f, "unsupported", Some(&out));

    // Demux takes only H.264/AV1/AAC/Opus: an FFV1-only file is refused by name.
    let ffv1 = dir.path().join("ffv1.mkv");
    let st = tool(
        "gst-launch-1.0",
        &[
            "-q",
            "videotestsrc",
            "num-buffers=5",
            "!",
            "avenc_ffv1",
            "!",
            "matroskamux",
            "!",
            "filesink",
            &format!("location={}", ffv1.display()),
        ],
    );
    assert!(st.status.success());
    assert_fails_cleanly(
        &[
            "demux",
            ffv1.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &ffv1,
        "unsupported",
        Some(&out),
    );
}

#[test]
fn bad_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let ladder = dir.path().join("l.toml");
    std::fs::write(&ladder, "[[rung]]\ncodec = \"h264\"\nheight = 360\n").unwrap();
    let src = fixture("tiny_180p25.mp4");
    let o = reel(&[
        "encode",
        src.to_str().unwrap(),
        "--ladder",
        ladder.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("bitrate") && !err.contains("panicked"),
        "{err}"
    );
}

/// A decode that stops delivering frames, with neither an error nor an end of stream (the
/// fault is injected: `REEL_FAULT_STALL_AFTER_FRAMES`, see crates/encoder/src/fault.rs),
/// ends within the stall bound with one error naming the file and the stage, and leaves
/// nothing behind, for `reel encode` and for `reel run`.
#[test]
fn a_stalled_decode_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture("tiny_180p25.mp4");
    let stalled = |args: &[&str]| {
        let started = std::time::Instant::now();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_reel"))
            .args(args)
            .env("REEL_FAULT_STALL_AFTER_FRAMES", "10")
            .env("REEL_STALL_SECONDS", "3")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            started.elapsed().as_secs() < 60,
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert!(err.contains(&f.display().to_string()), "{err}");
        assert!(err.contains("encoding stalled: no frame for 3 s"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    let out = dir.path().join("out");
    stalled(&encode_args(&f, &out));
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");

    let job = dir.path().join("job.toml");
    let published = dir.path().join("published");
    std::fs::write(
        &job,
        format!(
            "ladder = \"h264\"\nwork_dir = {:?}\n[title]\nid = \"stall\"\nsource = {:?}\n[destination]\nurl = \"file://{}\"\n",
            dir.path().join("work").display().to_string(),
            f.display().to_string(),
            published.display()
        ),
    )
    .unwrap();
    stalled(&["run", job.to_str().unwrap()]);
    assert!(!published.join("manifest.mpd").exists());
}
