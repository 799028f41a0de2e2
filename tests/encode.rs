//! End-to-end: `reel encode` on the fixtures, judged by ffprobe and ffmpeg.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

struct Rendition {
    name: &'static str,
    width: u64,
    height: u64,
}

/// Runs `reel encode` and returns its JSON summary.
fn encode(source: &Path, ladder: &str, out: &Path) -> Vec<Value> {
    let text = reel_ok(&[
        "encode",
        source.to_str().unwrap(),
        "--ladder",
        ladder,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    serde_json::from_str(&text).unwrap()
}

/// The checks every ladder must pass: codec, size, square pixels, frame count, aligned key
/// frames, clean decode, sane PSNR, audio as long as video.
fn check_ladder(
    source: &Path,
    out: &Path,
    codec: &str,
    rungs: &[Rendition],
    frames: u64,
    min_psnr: &[f64],
    audio_codec: Option<&str>,
) {
    let mut first_keys: Option<Vec<f64>> = None;
    let mut video_duration = 0.0;
    for (r, &floor) in rungs.iter().zip(min_psnr) {
        let file = out.join(format!("{}.mp4", r.name));
        let s = ffprobe_stream(&file);
        assert_eq!(s["codec_name"], codec, "{}", r.name);
        assert_eq!(
            (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()),
            (r.width, r.height),
            "{}",
            r.name
        );
        let sar = s["sample_aspect_ratio"].as_str().unwrap_or("1:1");
        assert_eq!(sar, "1:1", "{}: pixels must be square", r.name);
        assert_eq!(
            num(&s, "nb_read_frames") as u64,
            frames,
            "{}: frame count",
            r.name
        );
        video_duration = num(&s, "duration");
        // mehd (version 1) declares the duration in the movie timescale (ms).
        let bytes = std::fs::read(&file).unwrap();
        let at = bytes.windows(4).position(|w| w == b"mehd").expect("mehd") + 8;
        let mehd = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
        assert_eq!(
            mehd,
            (video_duration * 1000.0).ceil() as u64,
            "{}: mehd",
            r.name
        );
        let keys = keyframe_times(&file);
        assert!(keys.len() >= 2, "{}: key frames {keys:?}", r.name);
        match &first_keys {
            None => first_keys = Some(keys),
            Some(k) => assert_eq!(&keys, k, "{}: key frames differ from the top rung", r.name),
        }
        let errors = ffmpeg_decode_errors(&file);
        assert!(errors.is_empty(), "{}: decode errors: {errors}", r.name);
        let p = psnr(&file, source, r.width, r.height);
        eprintln!("{} {}x{}: PSNR {p:.2} dB", r.name, r.width, r.height);
        assert!(
            p >= floor && p < 99.0,
            "{}: PSNR {p:.2} dB is not above {floor}",
            r.name
        );
    }
    if let Some(ac) = audio_codec {
        let s = ffprobe_stream(&out.join("audio.mp4"));
        assert_eq!(s["codec_name"], ac);
        assert_eq!(s["sample_rate"], "48000");
        assert_eq!(s["channels"], 2);
        let d = num(&s, "duration");
        // Every sample of the source's audio, no more, no fewer: AAC adds its encoder's
        // priming (1024 samples, not yet signalled with an edit list); ffprobe removes Opus's
        // pre-skip itself.
        let source_audio = ffprobe_stream_of(source, "a");
        let priming = if ac == "aac" { 1024.0 / 48000.0 } else { 0.0 };
        let expected = num(&source_audio, "duration") + priming;
        assert!(
            (d - expected).abs() <= 0.001,
            "audio {d} s, the source's audio and priming {expected} s (video {video_duration} s)"
        );
        let errors = ffmpeg_decode_errors(&out.join("audio.mp4"));
        assert!(errors.is_empty(), "audio decode errors: {errors}");
    }
}

#[test]
fn h264_ladder_on_720p_fixture() {
    let src = fixture("mezz_720p25.mp4");
    let dir = tempfile::tempdir().unwrap();
    let summary = encode(&src, "h264", dir.path());
    assert_eq!(
        summary.len(),
        5,
        "4 rungs (1080p dropped) + audio: {summary:?}"
    );
    let codecs: Vec<&str> = summary
        .iter()
        .map(|t| t["codec"].as_str().unwrap())
        .collect();
    assert!(
        codecs.contains(&"avc1.64001f") && codecs.contains(&"mp4a.40.2"),
        "{codecs:?}"
    );
    check_ladder(
        &src,
        dir.path(),
        "h264",
        &[
            Rendition {
                name: "720p",
                width: 1280,
                height: 720,
            },
            Rendition {
                name: "480p",
                width: 854,
                height: 480,
            },
            Rendition {
                name: "360p",
                width: 640,
                height: 360,
            },
            Rendition {
                name: "240p",
                width: 426,
                height: 240,
            },
        ],
        125,
        &[30.0, 28.0, 26.0, 24.0],
        Some("aac"),
    );
    // Bitrates land near their targets (x264 ABR on a 5 s clip: within 30%).
    for (name, target) in [
        ("720p", 3000.0),
        ("480p", 1200.0),
        ("360p", 700.0),
        ("240p", 350.0),
    ] {
        let t = summary.iter().find(|t| t["name"] == name).unwrap();
        let kbps = t["kbps"].as_f64().unwrap();
        assert!(
            (kbps / target - 1.0).abs() < 0.3,
            "{name}: {kbps} kbit/s for {target}"
        );
    }
}

/// Both AV1 encoders in one ladder, from one decode: SVT-AV1 at a CRF (480p), rav1e at a
/// quantizer (360p), and the default encoder (SVT-AV1) at a bitrate (240p). Key frames,
/// frame counts and quality are checked by ffprobe/ffmpeg for every rung alike.
#[test]
fn av1_ladder_on_720p_fixture() {
    let src = fixture("mezz_720p25.mp4");
    let dir = tempfile::tempdir().unwrap();
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(
        &ladder,
        r#"
keyframe_interval = 2.0
[[rung]]
codec = "av1"
encoder = "svt-av1"
height = 480
crf = 35
preset = 10
[[rung]]
codec = "av1"
encoder = "rav1e"
height = 360
quality = 100
speed = 10
[[rung]]
codec = "av1"
height = 240
bitrate = 400
speed = 10
[audio]
codec = "opus"
bitrate = 96
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let summary = encode(&src, ladder.to_str().unwrap(), &out);
    assert_eq!(summary.len(), 4);
    let top = summary.iter().find(|t| t["name"] == "480p").unwrap();
    // The fixture is tagged BT.709 primaries with the sRGB transfer (13): the codec string
    // names its colour, and the chroma sample position (left, 1).
    assert_eq!(top["codec"], "av01.0.04M.08.0.111.01.13.01.0");
    check_ladder(
        &src,
        &out,
        "av1",
        &[
            Rendition {
                name: "480p",
                width: 854,
                height: 480,
            },
            Rendition {
                name: "360p",
                width: 640,
                height: 360,
            },
            Rendition {
                name: "240p",
                width: 426,
                height: 240,
            },
        ],
        125,
        &[30.0, 28.0, 24.0],
        Some("opus"),
    );
}

#[test]
fn odd_sized_23976_source_keeps_its_frame_rate() {
    let src = fixture("odd_361p23976.mkv");
    let dir = tempfile::tempdir().unwrap();
    let summary = encode(&src, "h264", dir.path());
    let names: Vec<&str> = summary
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "360p, 240p and audio: {names:?}");
    for (name, w, h) in [("360p", 640, 360), ("240p", 426, 240)] {
        let s = ffprobe_stream(&dir.path().join(format!("{name}.mp4")));
        assert_eq!(s["r_frame_rate"], "24000/1001");
        assert_eq!(
            (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()),
            (w, h)
        );
        assert_eq!(num(&s, "nb_read_frames") as u64, 72);
    }
    // Opus source audio re-encoded to AAC at 48 kHz.
    let a = ffprobe_stream(&dir.path().join("audio.mp4"));
    assert_eq!(a["codec_name"], "aac");
}

#[test]
fn source_without_audio_gives_video_only() {
    let src = fixture("noaudio_360p25.mp4");
    let dir = tempfile::tempdir().unwrap();
    let summary = encode(&src, "h264", dir.path());
    assert_eq!(summary.len(), 2, "{summary:?}");
    assert!(!dir.path().join("audio.mp4").exists());
    assert_eq!(
        num(
            &ffprobe_stream(&dir.path().join("240p.mp4")),
            "nb_read_frames"
        ) as u64,
        75
    );
}

#[test]
fn demux_round_trips_encoded_files_without_reencoding() {
    let src = fixture("tiny_180p25.mp4");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demux");
    let text = reel_ok(&[
        "demux",
        src.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let summary: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(summary.len(), 2, "{summary:?}");
    let video = summary.iter().find(|t| t["width"] == 320).unwrap();
    let vfile = Path::new(video["path"].as_str().unwrap());
    let s = ffprobe_stream(vfile);
    assert_eq!(s["codec_name"], "h264");
    assert_eq!(num(&s, "nb_read_frames") as u64, 50);
    // Same compressed bytes as the source: identical decoded frames.
    let md5 = |f: &Path| {
        let o = tool(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-i",
                f.to_str().unwrap(),
                "-map",
                "0:v",
                "-f",
                "md5",
                "-",
            ],
        );
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(md5(vfile), md5(&src));
    let audio = summary.iter().find(|t| t["codec"] == "mp4a.40.2").unwrap();
    let a = ffprobe_stream(Path::new(audio["path"].as_str().unwrap()));
    assert_eq!(num(&a, "nb_read_frames") as u64, 95);

    // The same streams in MPEG-TS (Annex B H.264, ADTS AAC) come out the same.
    let ts = dir.path().join("tiny.ts");
    let o = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            src.to_str().unwrap(),
            "-c",
            "copy",
            "-f",
            "mpegts",
            ts.to_str().unwrap(),
        ],
    );
    assert!(o.status.success());
    let text = reel_ok(&[
        "demux",
        ts.to_str().unwrap(),
        "--out",
        dir.path().join("dts").to_str().unwrap(),
        "--json",
    ]);
    let summary: Vec<Value> = serde_json::from_str(&text).unwrap();
    let v = summary.iter().find(|t| t["width"] == 320).unwrap();
    assert_eq!(md5(Path::new(v["path"].as_str().unwrap())), md5(&src));
    assert!(
        summary
            .iter()
            .any(|t| t["codec"] == "mp4a.40.2" && t["samples"] == 95),
        "{summary:?}"
    );

    // An AV1 file we encoded demuxes back to AV1 with its av1C.
    let enc = dir.path().join("enc");
    let ladder = dir.path().join("l.json");
    std::fs::write(
        &ladder,
        r#"{"rung":[{"codec":"av1","height":180,"crf":40}]}"#,
    )
    .unwrap();
    encode(&src, ladder.to_str().unwrap(), &enc);
    let text = reel_ok(&[
        "demux",
        enc.join("180p.mp4").to_str().unwrap(),
        "--out",
        dir.path().join("d2").to_str().unwrap(),
        "--json",
    ]);
    let summary: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(summary[0]["codec"], "av01.0.00M.08.0.111.01.13.06.0");
    let s = ffprobe_stream(Path::new(summary[0]["path"].as_str().unwrap()));
    assert_eq!(num(&s, "nb_read_frames") as u64, 50);
}

#[test]
fn probe_reports_streams() {
    let src = fixture("odd_361p23976.mkv");
    let text = reel_ok(&["probe", src.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["container"].as_str().unwrap().contains("Matroska"), "{v}");
    let video = &v["streams"][0];
    assert_eq!(video["type"], "video");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(641), Some(361))
    );
    assert_eq!(video["frame_rate"]["num"], 24000);
    assert_eq!(video["frame_rate"]["den"], 1001);
    let audio = &v["streams"][1];
    assert_eq!(audio["type"], "audio");
    assert_eq!(audio["sample_rate"], 48000);
    assert_eq!(audio["channels"], 2);
    assert!((v["duration"].as_f64().unwrap() - 3.003).abs() < 0.05);
    let human = reel_ok(&["probe", src.to_str().unwrap()]);
    assert!(
        human.contains("641x361") && human.contains("24000/1001"),
        "{human}"
    );
}

#[test]
fn mixed_av1_and_h264_ladder_with_audio_does_not_stall() {
    // x264's look-ahead needs dozens of frames before its first output; a sink that prerolled
    // on another branch must not stop the shared decoder from feeding it.
    let src = fixture("tiny_180p25.mp4");
    let dir = tempfile::tempdir().unwrap();
    let ladder = dir.path().join("l.toml");
    std::fs::write(
        &ladder,
        "[[rung]]\ncodec = \"h264\"\nheight = 180\nbitrate = 300\n[[rung]]\ncodec = \"av1\"\nheight = 180\ncrf = 40\n[[rung]]\ncodec = \"av1\"\nencoder = \"rav1e\"\nheight = 90\nquality = 150\n[audio]\ncodec = \"aac\"\nbitrate = 96\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = reel_within(
        120,
        &[
            "encode",
            src.to_str().unwrap(),
            "--ladder",
            ladder.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = summary
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["180p", "180p_av1", "90p", "audio"]);
    for n in ["180p", "180p_av1", "90p"] {
        assert_eq!(
            num(
                &ffprobe_stream(&out.join(format!("{n}.mp4"))),
                "nb_read_frames"
            ) as u64,
            50,
            "{n}"
        );
    }
}
