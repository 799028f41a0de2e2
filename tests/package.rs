//! End-to-end: `reel package` on renditions `reel encode` made, judged by ffprobe/ffmpeg, the
//! mp4box.js parser, the dash-mpd and m3u8-rs parsers, and real players in headless Chromium.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const H264: &str = r#"
keyframe_interval = 2.0
[[rung]]
codec = "h264"
height = 720
bitrate = 2500
[[rung]]
codec = "h264"
height = 480
bitrate = 1000
[[rung]]
codec = "h264"
height = 240
bitrate = 300
[audio]
codec = "aac"
bitrate = 128
"#;

const AV1: &str = r#"
keyframe_interval = 2.0
[[rung]]
codec = "av1"
encoder = "svt-av1"
height = 480
crf = 40
[[rung]]
codec = "av1"
encoder = "rav1e"
height = 240
quality = 120
[audio]
codec = "opus"
bitrate = 96
"#;

/// The encoded H.264 + AAC ladder, made once per test binary.
fn h264_renditions() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| encode("h264", H264))
}

fn av1_renditions() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| encode("av1", AV1))
}

fn package(renditions: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut inputs: Vec<String> = std::fs::read_dir(renditions.join("enc"))
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    inputs.sort();
    let mut args = vec!["package"];
    args.extend(inputs.iter().map(String::as_str));
    args.extend(["--out", out.to_str().unwrap(), "--json"]);
    args.extend(extra);
    serde_json::from_str(&reel_ok(&args)).unwrap()
}

/// Checks every file of a segment-per-file package: parsers, decoding, alignment.
fn check_segment_files(out: &Path, video_frames: u64) {
    let mpd_text = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    let mpd = dash_mpd_core::parse(&mpd_text).expect("MPD parses");
    assert_eq!(mpd.mpdtype.as_deref(), Some("static"));
    let duration = mpd.mediaPresentationDuration.unwrap().as_secs_f64();
    assert!(
        duration >= 5.0,
        "mediaPresentationDuration {duration} must not be shorter than the media"
    );
    let mut video_starts: Option<Vec<(u64, u64)>> = None;
    let mut all_files = Vec::new();
    for set in &mpd.periods[0].adaptations {
        for rep in &set.representations {
            let st = rep.SegmentTemplate.as_ref().expect("SegmentTemplate");
            let init = out.join(st.initialization.as_ref().unwrap());
            let media = st.media.as_ref().unwrap();
            let mut segs = Vec::new();
            let mut n = st.startNumber.unwrap_or(1);
            let mut timeline = Vec::new();
            for s in &st.SegmentTimeline.as_ref().unwrap().segments {
                let mut t = s.t.unwrap();
                for _ in 0..=s.r.unwrap_or(0) {
                    timeline.push((t, s.d));
                    let f = out.join(media.replace("$Number$", &n.to_string()));
                    assert!(
                        f.exists(),
                        "MPD points at {} which was not written",
                        f.display()
                    );
                    segs.push(f);
                    t += s.d;
                    n += 1;
                }
            }
            // Init + segments concatenated decode cleanly, with every frame.
            let joined = out.join(format!("{}.joined.mp4", rep.id.as_ref().unwrap()));
            let mut bytes = std::fs::read(&init).unwrap();
            for s in &segs {
                bytes.extend(std::fs::read(s).unwrap());
            }
            std::fs::write(&joined, bytes).unwrap();
            let errors = ffmpeg_decode_errors(&joined);
            assert!(errors.is_empty(), "{}: {errors}", joined.display());
            let ts = st.timescale.unwrap();
            if set.contentType.as_deref() == Some("video") {
                assert_eq!(
                    num(&ffprobe_stream(&joined), "nb_read_frames") as u64,
                    video_frames,
                    "{}",
                    joined.display()
                );
                // Peak bandwidth is what the real segments need.
                let peak = segs
                    .iter()
                    .zip(&timeline)
                    .map(|(f, (_, d))| {
                        (std::fs::metadata(f).unwrap().len() as f64 * 8.0 / (*d as f64 / ts as f64))
                            .ceil() as u64
                    })
                    .max()
                    .unwrap();
                assert_eq!(rep.bandwidth, Some(peak));
                let starts: Vec<(u64, u64)> = timeline.iter().map(|&(t, _)| (t, ts)).collect();
                match &video_starts {
                    None => video_starts = Some(starts),
                    Some(v) => {
                        assert_eq!(v, &starts, "video segments must line up across renditions")
                    }
                }
            } else {
                // Audio segment boundaries within one audio frame of the video's.
                let v = video_starts
                    .as_ref()
                    .expect("video adaptation set comes first");
                for (&(t, _), &(vt, vts)) in timeline.iter().zip(v) {
                    let diff = (t as f64 / ts as f64 - vt as f64 / vts as f64).abs();
                    assert!(
                        diff <= 1024.0 / 48000.0,
                        "audio segment at {t}/{ts} vs video {vt}/{vts}"
                    );
                }
            }
            all_files.push(init);
            all_files.extend(segs);
        }
    }
    // mp4box.js parses every init and media segment.
    let args: Vec<&str> = all_files.iter().map(|p| p.to_str().unwrap()).collect();
    let (ok, lines, err) = node("mp4check.mjs", &args);
    assert!(ok, "mp4box.js: {lines:?} {err}");
    assert_eq!(lines.len(), all_files.len());
    // HLS: every playlist parses and every URI it names exists.
    check_hls(out);
}

fn check_hls(out: &Path) {
    let master = std::fs::read(out.join("master.m3u8")).unwrap();
    let m3u8_rs::Playlist::MasterPlaylist(master) =
        m3u8_rs::parse_playlist_res(&master).expect("master parses")
    else {
        panic!("master.m3u8 is not a master playlist")
    };
    assert!(master.independent_segments);
    let mut uris: Vec<String> = master.variants.iter().map(|v| v.uri.clone()).collect();
    uris.extend(master.alternatives.iter().filter_map(|a| a.uri.clone()));
    assert!(
        master.variants.iter().any(|v| v.is_i_frame),
        "I-frame playlists listed"
    );
    for v in master.variants.iter().filter(|v| !v.is_i_frame) {
        assert!(v.average_bandwidth.unwrap() <= v.bandwidth);
        assert!(
            v.codecs.as_ref().unwrap().contains(','),
            "video and audio codecs: {:?}",
            v.codecs
        );
        assert_eq!(v.audio.as_deref(), Some("audio"));
    }
    for uri in uris {
        let path = out.join(&uri);
        let bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("{uri} missing"));
        let m3u8_rs::Playlist::MediaPlaylist(pl) = m3u8_rs::parse_playlist_res(&bytes).unwrap()
        else {
            panic!("{uri} is not a media playlist")
        };
        assert!(pl.end_list);
        let max = pl
            .segments
            .iter()
            .map(|s| s.duration)
            .fold(0.0f32, f32::max);
        assert_eq!(
            pl.target_duration,
            max.ceil() as u64,
            "{uri}: TARGETDURATION is the ceiling of the longest segment"
        );
        let base = path.parent().unwrap();
        for s in &pl.segments {
            let f = base.join(&s.uri);
            assert!(
                f.exists(),
                "{uri} names {} which was not written",
                f.display()
            );
            if let Some(br) = &s.byte_range {
                let len = std::fs::metadata(&f).unwrap().len();
                assert!(
                    br.offset.unwrap_or(0) + br.length <= len,
                    "{uri}: byte range past the end of {}",
                    s.uri
                );
            }
        }
        assert!(pl.segments[0].map.is_some(), "{uri}: EXT-X-MAP");
    }
}

fn check_single_file(out: &Path, video_frames: u64) {
    let mpd =
        dash_mpd_core::parse(&std::fs::read_to_string(out.join("manifest.mpd")).unwrap()).unwrap();
    let mut files = Vec::new();
    for set in &mpd.periods[0].adaptations {
        for rep in &set.representations {
            let base = &rep.BaseURL[0].base;
            let f = out.join(base);
            let sb = rep.SegmentBase.as_ref().expect("SegmentBase");
            let (a, b) = sb.indexRange.as_ref().unwrap().split_once('-').unwrap();
            let bytes = std::fs::read(&f).unwrap();
            let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
            assert_eq!(
                &bytes[a + 4..a + 8],
                b"sidx",
                "indexRange points at the sidx"
            );
            assert_eq!(
                u32::from_be_bytes(bytes[a..a + 4].try_into().unwrap()) as usize,
                b - a + 1
            );
            let errors = ffmpeg_decode_errors(&f);
            assert!(errors.is_empty(), "{base}: {errors}");
            if set.contentType.as_deref() == Some("video") {
                assert_eq!(
                    num(&ffprobe_stream(&f), "nb_read_frames") as u64,
                    video_frames
                );
            }
            files.push(f);
        }
    }
    let args: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let (ok, lines, err) = node("mp4check.mjs", &args);
    assert!(ok, "mp4box.js: {lines:?} {err}");
    check_hls(out);
}

#[test]
fn h264_aac_segment_files_parse_decode_and_play() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pkg");
    let report = package(h264_renditions(), &out, &["--segment-duration", "2"]);
    assert_eq!(report["tracks"].as_array().unwrap().len(), 4);
    check_segment_files(&out, 125);
    play(&out, "manifest.mpd", &["shaka", "dashjs"], 3);
    play(&out, "master.m3u8", &["shaka", "hlsjs"], 3);
}

#[test]
fn h264_aac_single_file_parse_decode_and_play() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pkg");
    package(
        h264_renditions(),
        &out,
        &["--single-file", "--segment-duration", "2"],
    );
    check_single_file(&out, 125);
    play(&out, "manifest.mpd", &["shaka", "dashjs"], 3);
    play(&out, "master.m3u8", &["shaka", "hlsjs"], 3);
}

#[test]
fn av1_opus_both_modes_play() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pkg");
    package(av1_renditions(), &out, &[]);
    check_segment_files(&out, 125);
    play(&out, "manifest.mpd", &["shaka", "dashjs"], 2);
    play(&out, "master.m3u8", &["shaka", "hlsjs"], 2);
    let single = dir.path().join("single");
    package(av1_renditions(), &single, &["--single-file"]);
    check_single_file(&single, 125);
    play(&single, "manifest.mpd", &["shaka", "dashjs"], 2);
    play(&single, "master.m3u8", &["shaka", "hlsjs"], 2);
}

#[test]
fn misaligned_key_frames_are_refused_and_no_manifest_is_written() {
    let src = fixture("mezz_720p25.mp4");
    let dir = tempfile::tempdir().unwrap();
    for (name, interval) in [("a", "2.0"), ("b", "1.5")] {
        let ladder = dir.path().join(format!("{name}.toml"));
        std::fs::write(&ladder, format!("keyframe_interval = {interval}\n[[rung]]\nname = \"{name}\"\ncodec = \"h264\"\nheight = 180\nbitrate = 200\n")).unwrap();
        reel_ok(&[
            "encode",
            src.to_str().unwrap(),
            "--ladder",
            ladder.to_str().unwrap(),
            "--out",
            dir.path().join("enc").to_str().unwrap(),
        ]);
    }
    let out = dir.path().join("pkg");
    let enc = dir.path().join("enc");
    let o = reel(&[
        "package",
        enc.join("a.mp4").to_str().unwrap(),
        enc.join("b.mp4").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "misaligned renditions must fail");
    assert!(
        err.contains("key frames do not line up") && err.contains("4.560 s") && err.contains("b:"),
        "{err}"
    );
    assert!(!out.join("manifest.mpd").exists() && !out.join("master.m3u8").exists());
}

#[test]
fn mixed_frame_rates_in_one_switching_set_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ladder = dir.path().join("l.toml");
    std::fs::write(
        &ladder,
        "[[rung]]\ncodec = \"h264\"\nheight = 180\nbitrate = 200\n",
    )
    .unwrap();
    for (src, out) in [("tiny_180p25.mp4", "a"), ("odd_361p23976.mkv", "b")] {
        let src = fixture(src);
        reel_ok(&[
            "encode",
            src.to_str().unwrap(),
            "--ladder",
            ladder.to_str().unwrap(),
            "--out",
            dir.path().join(out).to_str().unwrap(),
        ]);
    }
    let out = dir.path().join("pkg");
    let a = dir.path().join("a/180p.mp4");
    let b = dir.path().join("b/180p.mp4");
    let o = reel(&[
        "package",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "mixed frame rates must fail");
    assert!(
        err.contains("frame rate") && err.contains("24000/1001") && !err.contains("panicked"),
        "{err}"
    );
    assert!(!out.join("manifest.mpd").exists() && !out.join("master.m3u8").exists());
}
