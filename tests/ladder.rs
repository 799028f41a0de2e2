//! Per-title analysis end to end: `reel analyze` on an easy and a hard fixture, the ladder it
//! writes fed to `reel encode`, the bad-input fallbacks, and the quality metrics checked
//! against independent tools (ffmpeg's psnr/ssim filters; VMAF against vmaf-torch).

mod common;

use common::{fixture, keyframe_times, reel, reel_ok, tool};
use reel_encoder::{decode_frames, decode_pictures, trial_encode, TrialSpec};
use reel_media::{Picture, Rational};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reel-ladder-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `reel analyze` with a report, both plots and a ladder file; returns the report.
fn analyze(name: &str, dir: &Path, extra: &[&str]) -> Value {
    let src = fixture(name);
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let mut args = vec![
        "analyze".to_string(),
        src.to_str().unwrap().into(),
        "--report".into(),
        p("report.json"),
        "--plot".into(),
        p("hull.svg"),
        "--plot".into(),
        p("hull.png"),
        "--ladder-out".into(),
        p("ladder.toml"),
        "--json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = reel_ok(&args);
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(printed, report, "--json prints the report");
    report
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// Checks what every per-title ladder must be; returns the top rung's bitrate.
fn check_ladder(name: &str, r: &Value) -> f64 {
    assert!(
        r["fallback"].is_null(),
        "{name}: fell back: {}",
        r["fallback"]
    );
    let trials = r["trials"].as_array().unwrap();
    let skipped = r["skipped_trials"].as_array().unwrap();
    // 540p source: 540, 432, 360, 270, 234 lines x the CRFs (or quantizers), whatever the
    // rungs are; the search runs each height's middle setting and walks from there, skipping
    // with a reason.
    let per_height = r["options"]["qualities"].as_array().unwrap().len();
    assert_eq!(trials.len() + skipped.len(), 5 * per_height, "{name}");
    assert!(trials.len() >= 5 * 2, "{name}: every height is tried");
    for height in [540, 432, 360, 270, 234] {
        let n = trials.iter().filter(|t| t["height"] == height).count();
        assert!(n >= 1, "{name}: no trial at {height}p");
    }
    for s in skipped {
        assert!(!s["reason"].as_str().unwrap().is_empty(), "{name}: {s}");
    }
    for t in trials {
        assert!(f(&t["bitrate"]) > 0.0);
        let v = f(&t["vmaf"]["mean"]);
        assert!((0.0..=100.0).contains(&v), "{name}: VMAF {v}");
        assert!(f(&t["vmaf"]["p5"]) <= v + 1e-9 && f(&t["vmaf"]["harmonic_mean"]) <= v + 1e-9);
        assert!(f(&t["psnr_y"]["mean"]) > 10.0 && f(&t["ssim_y"]["mean"]) > 0.1);
    }
    let hull = r["hull"].as_array().unwrap();
    let rungs = r["rungs"].as_array().unwrap();
    assert!(!rungs.is_empty());
    let floor = f(&r["options"]["constraints"]["quality_floor"]);
    for (i, rung) in rungs.iter().enumerate() {
        let (b, q) = (f(&rung["predicted_bitrate"]), f(&rung["predicted_vmaf"]));
        assert!(
            hull.iter().any(|p| f(&p["bitrate"]) == b
                && f(&p["score"]) == q
                && p["height"] == rung["height"]),
            "{name}: rung {i} ({b} kbit/s, VMAF {q}) is not a hull point"
        );
        assert!(
            q >= floor + 3.0,
            "{name}: rung {i} within the 3-point margin over the floor"
        );
        if let Some(next) = rungs.get(i + 1) {
            assert!(
                f(&next["predicted_bitrate"]) * 1.5 <= b + 1e-9,
                "{name}: step ratio"
            );
            assert!(
                f(&next["predicted_vmaf"]) < q,
                "{name}: quality falls down the ladder"
            );
            assert!(
                next["height"].as_u64() <= rung["height"].as_u64(),
                "{name}: heights do not grow down the ladder"
            );
        }
    }
    // The hull is concave in (rate, score), rises with the bitrate, and starts at the floor.
    assert!(hull.iter().all(|p| f(&p["score"]) >= floor));
    for w in hull.windows(3) {
        let x = |p: &Value| f(&p["bitrate"]);
        let y = |p: &Value| f(&p["score"]);
        let cross = (x(&w[1]) - x(&w[0])) * (y(&w[2]) - y(&w[0]))
            - (y(&w[1]) - y(&w[0])) * (x(&w[2]) - x(&w[0]));
        assert!(cross <= 1e-6, "{name}: hull not concave");
        assert!(y(&w[1]) > y(&w[0]) && x(&w[1]) > x(&w[0]));
    }
    // The top rung is the cheapest hull point at the quality ceiling, or the best below it.
    let ceiling = f(&r["options"]["constraints"]["quality_ceiling"]);
    let top = &rungs[0];
    let want = hull
        .iter()
        .find(|p| f(&p["score"]) >= ceiling)
        .unwrap_or_else(|| hull.last().unwrap());
    assert_eq!(f(&top["predicted_bitrate"]), f(&want["bitrate"]), "{name}");
    f(&top["predicted_bitrate"])
}

fn check_plots(dir: &Path) {
    let svg = std::fs::read_to_string(dir.join("hull.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.contains("<svg"),
        "an SVG document"
    );
    for label in [
        "convex hull",
        "chosen rungs",
        "540p",
        "234p",
        "bitrate (kbit/s",
    ] {
        assert!(svg.contains(label), "SVG lacks '{label}'");
    }
    let png = std::fs::read(dir.join("hull.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let be = |o: usize| u32::from_be_bytes(png[o..o + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (1000, 640), "PNG size");
    assert!(png.len() > 20_000, "the PNG has content");
}

#[test]
fn easy_and_hard_titles_get_ladders_that_fit_them() {
    let easy_dir = temp("easy");
    let hard_dir = temp("hard");
    let easy = analyze("easy_540p25.mp4", &easy_dir, &[]);
    let hard = analyze("hard_540p25.mp4", &hard_dir, &[]);
    let easy_top = check_ladder("easy", &easy);
    let hard_top = check_ladder("hard", &hard);
    // (About 545 and 1,870 kbit/s with constant-quality trials; the bitrate-targeting
    // trials before them read the hard title's low quality lower still and put its top
    // higher.)
    assert!(
        easy_top * 3.0 < hard_top,
        "the easy title tops out at {easy_top:.0} kbit/s, the hard one at {hard_top:.0}"
    );
    // The same bitrate buys far less quality on the hard title: some 540p trial of the easy
    // title spends no more than one of the hard title's and scores 30 points more.
    let at_540 = |r: &Value| -> Vec<(f64, f64)> {
        r["trials"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["height"] == 540)
            .map(|t| (f(&t["bitrate"]), f(&t["vmaf"]["mean"])))
            .collect()
    };
    let (easy_540, hard_540) = (at_540(&easy), at_540(&hard));
    let gap = easy_540
        .iter()
        .flat_map(|e| {
            hard_540
                .iter()
                .filter(|h| e.0 <= h.0)
                .map(move |h| e.1 - h.1)
        })
        .fold(f64::MIN, f64::max);
    assert!(
        gap > 30.0,
        "at 540p, easy {easy_540:?} against hard {hard_540:?} (kbit/s, VMAF)"
    );
    // With CRF rungs (the other rate control), the ceiling still costs the hard title far more.
    let crf_dir = temp("easy-crf");
    let easy_crf = analyze("easy_540p25.mp4", &crf_dir, &["--rate-control", "crf"]);
    let easy_crf_top = check_ladder("easy (crf)", &easy_crf);
    assert!(
        easy_crf_top * 3.0 < hard_top,
        "{easy_crf_top:.0} and {hard_top:.0} kbit/s"
    );
    // Shots: the easy title is one shot; the hard one two, cut at its 50th frame. Its 4 s are
    // sampled for the minimum 1 s: one window (in its longest shot, starting on a key frame)
    // standing for the whole title.
    assert_eq!(easy["shots"].as_array().unwrap().len(), 1);
    let shots = hard["shots"].as_array().unwrap();
    assert_eq!(shots.len(), 2, "{shots:?}");
    assert!((48..=52).contains(&shots[1]["first"].as_u64().unwrap()));
    let windows = hard["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 1);
    let weight: f64 = windows.iter().map(|w| f(&w["weight"])).sum();
    assert!(
        (weight - 4.0).abs() < 0.05,
        "windows stand for the whole title: {weight}"
    );
    assert!((f(&hard["sampled_seconds"]) - 1.0).abs() < 1e-9);
    check_plots(&easy_dir);
    check_plots(&hard_dir);

    // The ladder file is what `reel encode` takes: same rungs, and the predicted bitrate as
    // the target (the default) or the chosen CRF (`--rate-control crf`).
    for (name, dir, report) in [
        ("hard_540p25.mp4", &hard_dir, &hard),
        ("easy_540p25.mp4", &crf_dir, &easy_crf),
    ] {
        let plan: Value = serde_json::from_str(&reel_ok(&[
            "encode",
            fixture(name).to_str().unwrap(),
            "--ladder",
            dir.join("ladder.toml").to_str().unwrap(),
            "--out",
            dir.join("enc").to_str().unwrap(),
            "--dry-run",
            "--json",
        ]))
        .unwrap();
        let planned = plan["rungs"].as_array().unwrap();
        let chosen = report["rungs"].as_array().unwrap();
        assert_eq!(planned.len(), chosen.len());
        for (p, c) in planned.iter().zip(chosen) {
            assert_eq!(p["height"], c["height"]);
            assert_eq!(p["width"], c["width"]);
            if name.starts_with("easy") {
                assert_eq!(p["rate"]["quality"], c["setting"], "{p}");
            } else {
                let want = f(&c["predicted_bitrate"]).round();
                assert_eq!(p["rate"]["bitrate"].as_f64(), Some(want), "{p}");
            }
        }
    }
    for d in [&easy_dir, &hard_dir, &crf_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Encodes `name` with `reel encode --ladder LADDER` into `out`; checks that the video tracks
/// are the rungs (by height) and that each lands within `lo..hi` times its predicted bitrate.
/// Returns the video tracks of the encode's summary.
fn encode_near_predictions(
    name: &str,
    ladder: &str,
    out: &Path,
    rungs: &[Value],
    (lo, hi): (f64, f64),
) -> Vec<Value> {
    let stdout = reel_ok(&[
        "encode",
        fixture(name).to_str().unwrap(),
        "--ladder",
        ladder,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let tracks: Value = serde_json::from_str(&stdout).unwrap();
    let video: Vec<Value> = tracks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["height"].is_null())
        .cloned()
        .collect();
    assert_eq!(video.len(), rungs.len(), "{tracks}");
    for (t, r) in video.iter().zip(rungs) {
        assert_eq!(t["height"], r["height"]);
        let actual = f(&t["kbps"]);
        let predicted = f(&r["predicted_bitrate"]);
        assert!(
            actual > predicted * lo && actual < predicted * hi,
            "{}: {actual:.0} kbit/s encoded, {predicted:.0} predicted",
            r["name"]
        );
    }
    video
}

#[test]
fn per_title_encode_lands_near_its_predictions() {
    let dir = temp("encode");
    let report = analyze("easy_540p25.mp4", &dir, &[]);
    // The rungs target the predicted bitrates (from a 1-second sample of the 6-second title);
    // x264's CBR lands near them (below when the content needs fewer bits). The encode takes
    // this analysis's ladder file: `--ladder per-title` would analyse again, and a second
    // analysis can name a rung 1 kbit/s apart (`540p-544k` for `540p-545k`), which `reel
    // measure` could then not match to this report.
    let ladder = dir.join("ladder.toml");
    let video = encode_near_predictions(
        "easy_540p25.mp4",
        ladder.to_str().unwrap(),
        &dir.join("enc"),
        report["rungs"].as_array().unwrap(),
        (0.6, 1.6),
    );
    measured_beside_predictions(&dir, &video);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `reel measure` on the encode in `dir/enc` with the analysis in `dir/report.json`: every
/// frame of every rung scored, the error beside each prediction, and the smallest rung's score
/// reproduced from ffmpeg's decode of both files (scored here with libvmaf, upscaled with
/// Catmull-Rom as the analysis upscales). A rendition cut short is refused, by name.
fn measured_beside_predictions(dir: &Path, video: &[Value]) {
    let src = fixture("easy_540p25.mp4");
    let (src_s, enc) = (src.to_str().unwrap(), dir.join("enc"));
    let (report_out, plot) = (dir.join("measured.json"), dir.join("measured.svg"));
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let stdout = reel_ok(&[
        "measure",
        src_s,
        &p(&enc),
        "--analysis",
        &p(&dir.join("report.json")),
        "--report",
        &p(&report_out),
        "--plot",
        &p(&plot),
        "--json",
    ]);
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    let measured = printed["renditions"].as_array().unwrap();
    assert_eq!(measured.len(), video.len(), "{printed}");
    let source_frames = frame_count(&src);
    assert_eq!(source_frames, 150);
    for m in measured {
        let t = video.iter().find(|t| t["name"] == m["name"]).unwrap();
        assert_eq!(m["frames"].as_u64(), Some(source_frames), "{m}");
        let (mean, predicted) = (f(&m["vmaf"]["mean"]), f(&m["predicted_vmaf"]));
        assert!((20.0..=100.0).contains(&mean), "{m}");
        assert!((f(&m["error"]) - (mean - predicted)).abs() < 1e-9, "{m}");
        let kbps = f(&t["kbps"]);
        assert!(
            (f(&m["bitrate"]) / kbps - 1.0).abs() < 0.01,
            "{m} vs {kbps} kbit/s"
        );
    }
    let analysis: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_out).unwrap()).unwrap();
    let rungs = analysis["rungs"].as_array().unwrap();
    assert!(rungs.iter().all(|r| r["measured"]["vmaf"]["mean"].is_f64()));
    let errors: Vec<f64> = measured.iter().map(|m| f(&m["error"])).collect();
    let mae = errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64;
    assert!((f(&analysis["prediction_error"]["mean_absolute"]) - mae).abs() < 1e-9);
    assert_eq!(printed["prediction_error"], analysis["prediction_error"]);
    eprintln!(
        "prediction error on easy_540p25: {}",
        analysis["prediction_error"]
    );
    assert!(std::fs::read_to_string(&plot)
        .unwrap()
        .contains("encoded rungs, measured"));

    // The smallest rung, decoded by ffmpeg, scored here.
    let smallest = measured
        .iter()
        .min_by_key(|m| video.iter().find(|t| t["name"] == m["name"]).unwrap()["height"].as_u64())
        .unwrap();
    let rung = Path::new(smallest["path"].as_str().unwrap());
    let size = |t: &Value| {
        (
            t["width"].as_u64().unwrap() as u32,
            t["height"].as_u64().unwrap() as u32,
        )
    };
    let coded = size(
        video
            .iter()
            .find(|t| t["name"] == smallest["name"])
            .unwrap(),
    );
    let references = ffmpeg_frames(&src, (960, 540));
    let distorted = ffmpeg_frames(rung, coded);
    assert_eq!(references.len(), distorted.len());
    let mut up = reel_encoder::resize::PlaneScaler::new(reel_encoder::resize::Filter::CatmullRom);
    let mut vmaf = reel_ladder::Vmaf::new(960, 540, 1).unwrap();
    for (r, d) in references.iter().zip(&distorted) {
        let d = if coded == (960, 540) {
            d.clone()
        } else {
            up.picture(d, 960, 540).unwrap()
        };
        vmaf.push(r, &d).unwrap();
    }
    let scores: Vec<f64> = vmaf.finish().unwrap().into_iter().map(|s| s.1).collect();
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    assert!(
        (mean - f(&smallest["vmaf"]["mean"])).abs() < 1e-6,
        "{}: reel measure {} vs {mean} from ffmpeg's decode",
        smallest["name"],
        smallest["vmaf"]["mean"]
    );

    // A rendition cut short: refused, by name.
    let short = dir.join("cut_short.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(rung)
        .args(["-c", "copy", "-frames:v", "100"])
        .arg(&short)
        .status()
        .unwrap();
    assert!(status.success());
    let out = reel(&["measure", src_s, &p(&short)]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cut_short.mp4") && stderr.contains("100 frames where the source has"),
        "{stderr}"
    );
}

/// Frames of `path` as ffprobe counts them (decoding).
fn frame_count(path: &Path) -> u64 {
    let out = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Every frame of `path` decoded by ffmpeg as 8-bit 4:2:0 at its own `size`.
fn ffmpeg_frames(path: &Path, (w, h): (u32, u32)) -> Vec<Picture> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args([
            "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frame = (w * h * 3 / 2) as usize;
    assert_eq!(
        out.stdout.len() % frame,
        0,
        "{}: not whole frames",
        path.display()
    );
    out.stdout
        .chunks(frame)
        .map(|mut bytes| {
            let mut p = Picture::filled(w, h, 0, 0);
            for plane in p.planes.iter_mut() {
                let (this, rest) = bytes.split_at(plane.len());
                plane.copy_from_slice(this);
                bytes = rest;
            }
            p
        })
        .collect()
}

#[test]
fn bad_sources_fall_back_to_the_trimmed_fixed_ladder_and_say_why() {
    for (name, height, why) in [
        ("still_360.png", 360, "still picture"),
        (
            "short_360p25.mp4",
            360,
            "shorter than one 2 s sample window",
        ),
        ("tiny_180p25.mp4", 180, "below the smallest candidate (234)"),
    ] {
        let dir = temp(name);
        let src = fixture(name);
        let report = dir.join("report.json");
        let plot = dir.join("hull.svg");
        let out = reel(&[
            "analyze",
            src.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(src.to_str().unwrap()) && stderr.contains(why),
            "{name}: {stderr}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("fallback: fixed ladder"));
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert!(
            r["fallback"].as_str().unwrap().contains(why),
            "{name}: {}",
            r["fallback"]
        );
        let rungs = r["ladder"]["rung"].as_array().unwrap();
        assert!(!rungs.is_empty());
        assert!(rungs
            .iter()
            .all(|x| x["height"].as_u64().unwrap() <= height));
        assert!(
            rungs.iter().all(|x| x["bitrate"].as_u64().is_some()),
            "fixed bitrates"
        );
        assert!(std::fs::read_to_string(&plot)
            .unwrap()
            .contains("fixed ladder used"));
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Not a video at all: an error naming the file, no report written.
    let dir = temp("audio");
    let report = dir.join("report.json");
    let out = reel(&[
        "analyze",
        fixture("audio_only.m4a").to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("audio_only.m4a") && stderr.contains("no video"),
        "{stderr}"
    );
    assert!(!report.exists());
    // Nonsense options are refused before any work.
    let err = analyze_refused(&["--crfs", "60"]);
    assert!(err.contains("x264's CRF range 0-50"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `reel analyze` of the easy fixture with `options` fails; its error output.
fn analyze_refused(options: &[&str]) -> String {
    let source = fixture("easy_540p25.mp4");
    let mut args = vec!["analyze", source.to_str().unwrap()];
    args.extend_from_slice(options);
    let out = reel(&args);
    assert!(!out.status.success(), "{options:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The analysis's own reference/distorted pair: 25 frames of the 720p fixture, and the same
/// frames through a 640x360 CRF 30 x264 trial scaled back to 1280x720.
fn metric_pair() -> (Vec<Picture>, Vec<Picture>) {
    let mut refs = Vec::new();
    decode_pictures(
        &fixture("mezz_720p25.mp4"),
        (1280, 720),
        &[],
        &mut |_, _, p| {
            refs.push(p);
            refs.len() < 25
        },
    )
    .unwrap();
    assert_eq!(refs.len(), 25);
    let spec = TrialSpec {
        encoder: reel_encoder::VideoEncoder::X264,
        width: 640,
        height: 360,
        rate: reel_encoder::RateControl::Quality(30),
        speed: 8,
        frame_rate: Rational::new(25, 1),
        display: (1280, 720),
        score_every: 1,
        gop: None,
    };
    let mut dist = Vec::new();
    trial_encode(&refs, &spec, &mut |_, p| dist.push(p)).unwrap();
    (refs, dist)
}

fn write_yuv(path: &Path, frames: &[Picture]) {
    let mut bytes = Vec::new();
    for p in frames {
        for plane in &p.planes {
            bytes.extend_from_slice(plane);
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// VMAF agrees with an independent implementation: vmaf-torch 1.1.0 (PyPI; a PyTorch
/// re-implementation of VMAF, validated by its authors against libvmaf) computed
/// `VMAF_TORCH_MEAN` on exactly this pair (`scripts/vmaf_torch_reference.py` says how). PSNR and SSIM
/// agree with ffmpeg's `psnr` and `ssim` filters, run here.
#[test]
fn metrics_agree_with_independent_tools() {
    let (refs, dist) = metric_pair();
    let dir = temp("metrics");
    let (rp, dp) = (dir.join("ref.yuv"), dir.join("dist.yuv"));
    write_yuv(&rp, &refs);
    write_yuv(&dp, &dist);
    if let Ok(keep) = std::env::var("REEL_KEEP_METRIC_PAIR") {
        std::fs::copy(&rp, Path::new(&keep).join("ref.yuv")).unwrap();
        std::fs::copy(&dp, Path::new(&keep).join("dist.yuv")).unwrap();
    }

    let mut vmaf = reel_ladder::Vmaf::new(1280, 720, 1).unwrap();
    for (r, d) in refs.iter().zip(&dist) {
        vmaf.push(r, d).unwrap();
    }
    let scores: Vec<f64> = vmaf.finish().unwrap().into_iter().map(|s| s.1).collect();
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    eprintln!(
        "libvmaf vmaf_v0.6.1 mean over {} frames: {mean:.6}",
        scores.len()
    );
    assert!(
        (mean - VMAF_TORCH_MEAN).abs() < VMAF_TOLERANCE,
        "libvmaf {mean:.4} vs vmaf-torch {VMAF_TORCH_MEAN:.4}"
    );
    // The analysis's path: motion computed once from the reference, imported per trial.
    let motion = reel_ladder::ReferenceMotion::compute(&refs).unwrap();
    let mut shared = reel_ladder::Vmaf::with_motion(1280, 720, motion).unwrap();
    for (i, (r, d)) in refs.iter().zip(&dist).enumerate() {
        shared.push_at(i as u32, r, d).unwrap();
    }
    let shared: Vec<f64> = shared.finish().unwrap().into_iter().map(|s| s.1).collect();
    assert_eq!(shared.len(), scores.len());
    for (a, b) in scores.iter().zip(&shared) {
        assert!((a - b).abs() < 1e-9, "shared motion: {b} vs {a}");
    }

    // ffmpeg: psnr and ssim of dist against ref, luma averages over the frames.
    let raw = |p: &Path| {
        vec![
            "-f".to_string(),
            "rawvideo".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
            "-s".into(),
            "1280x720".into(),
            "-r".into(),
            "25".into(),
            "-i".into(),
            p.to_str().unwrap().into(),
        ]
    };
    let mut args: Vec<String> = vec!["-v".into(), "info".into(), "-nostats".into()];
    args.extend(raw(&dp));
    args.extend(raw(&rp));
    args.extend(
        [
            "-lavfi",
            "[0:v]split[a][b];[1:v]split[c][d];[a][c]psnr;[b][d]ssim",
            "-f",
            "null",
            "-",
        ]
        .map(String::from),
    );
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tool("ffmpeg", &a);
    let err = String::from_utf8_lossy(&out.stderr);
    let field = |tag: &str, key: &str| -> f64 {
        let line = err
            .lines()
            .find(|l| l.contains(tag))
            .unwrap_or_else(|| panic!("{err}"));
        line.split(key)
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let ff_psnr_y = field("PSNR y:", "y:");
    let ff_ssim_y = field("SSIM Y:", "Y:");
    // ffmpeg's PSNR line averages per-frame PSNR; so do we here.
    let ours_psnr: f64 = refs
        .iter()
        .zip(&dist)
        .map(|(r, d)| reel_ladder::psnr(r, d).y)
        .sum::<f64>()
        / refs.len() as f64;
    let ours_ssim: f64 = refs
        .iter()
        .zip(&dist)
        .map(|(r, d)| reel_ladder::ssim(r, d).y)
        .sum::<f64>()
        / refs.len() as f64;
    eprintln!("PSNR-Y ours {ours_psnr:.4} ffmpeg {ff_psnr_y:.4}; SSIM-Y ours {ours_ssim:.5} ffmpeg {ff_ssim_y:.5}");
    assert!(
        (ours_psnr - ff_psnr_y).abs() < 0.01,
        "PSNR {ours_psnr} vs {ff_psnr_y}"
    );
    assert!(
        (ours_ssim - ff_ssim_y).abs() < 0.001,
        "SSIM {ours_ssim} vs {ff_ssim_y}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// vmaf-torch 1.1.0's mean VMAF (vmaf_v0.6.1) of `metric_pair()`, computed on 2026-12-07 with
/// torch 2.15.0 by `scripts/vmaf_torch_reference.py` (libvmaf 2.3.1 here gave 72.845757). To
/// be recomputed whenever the pair changes: the fixture's pictures or the x264 trial settings.
const VMAF_TORCH_MEAN: f64 = 72.846345;
/// The two implementations differ in floating-point detail, not in the metric.
const VMAF_TOLERANCE: f64 = 0.05;

/// The key frames `decode_frames` reports are the coded stream's (ffprobe, by frame order), a
/// range that starts on one decodes nothing before it, and the analysis starts its windows on
/// them.
#[test]
fn key_frames_are_found_and_windows_start_on_them() {
    let src = fixture("mezz_720p25.mp4");
    // By frame order: the fixture is 25 frames a second from its first frame (ffprobe's
    // packet times start at 0, GStreamer's frame times at the B-frame delay).
    let want: Vec<usize> = keyframe_times(&src)
        .iter()
        .map(|t| (t * 25.0).round() as usize)
        .collect();
    let mut got = Vec::new();
    let mut times = Vec::new();
    decode_frames(&src, (320, 180), &[], &mut |f| {
        if f.key_frame {
            got.push(f.index as usize);
        }
        times.push(f.seconds);
        true
    })
    .unwrap();
    assert_eq!(times.len(), 125);
    assert_eq!(got, want, "key frames by frame order");
    assert!(
        got.len() >= 3,
        "the fixture has a key frame every 2 s: {got:?}"
    );

    // A range starting on the last key frame, more than the seek gap (3 s) in: the decoder
    // starts there, not at the key frame before (an accurate seek a second early did).
    let k = *got.last().unwrap();
    let (a, b) = (times[k], times[k] + 0.5);
    let mut delivered = Vec::new();
    let decoded = decode_frames(&src, (320, 180), &[(a, b)], &mut |f| {
        delivered.push((f.seconds, f.key_frame));
        true
    })
    .unwrap();
    let in_range = times.iter().filter(|&&t| t >= a && t < b).count();
    assert_eq!(delivered.len(), in_range);
    assert_eq!(
        delivered[0],
        (a, true),
        "the range's first frame, a key frame"
    );
    assert!(
        decoded as usize <= in_range + 2,
        "{decoded} frames decoded for {in_range} in the range"
    );

    // The analysis's window starts on a key frame and says so.
    let dir = temp("key-frames");
    let report = analyze("mezz_720p25.mp4", &dir, &[]);
    assert_eq!(
        report["source"]["key_frames"].as_u64(),
        Some(got.len() as u64)
    );
    for w in report["windows"].as_array().unwrap() {
        assert_eq!(w["at_key_frame"], true, "{w}");
        let start = f(&w["start_seconds"]);
        assert!(got.iter().any(|&i| (times[i] - start).abs() < 1e-9), "{w}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// AV1 ladders: SVT-AV1 trials at constant CRFs, a ladder of AV1 CRF rungs that `reel encode`
/// takes, landing near the predicted bitrates; a bitrate-targeting AV1 analysis is refused
/// with the reason.
#[test]
fn av1_ladders_come_from_svt_av1_trials() {
    let dir = temp("av1");
    let r = analyze("easy_540p25.mp4", &dir, &["--codec", "av1"]);
    check_ladder("easy (av1)", &r);
    // SVT-AV1, the AV1 default, runs the trials as it encodes the rungs.
    assert_eq!(r["options"]["encoder"], "svt-av1");
    assert_eq!(r["options"]["rate_control"], "crf");
    let rungs = r["rungs"].as_array().unwrap();
    let ladder = std::fs::read_to_string(dir.join("ladder.toml")).unwrap();
    assert_eq!(
        ladder.matches("codec = \"av1\"").count(),
        rungs.len(),
        "{ladder}"
    );
    assert_eq!(
        ladder.matches("quality = ").count(),
        rungs.len(),
        "{ladder}"
    );
    // Constant quantizers chosen on a 1-second sample of the 6-second title.
    let video = encode_near_predictions(
        "easy_540p25.mp4",
        dir.join("ladder.toml").to_str().unwrap(),
        &dir.join("enc"),
        rungs,
        (0.5, 2.0),
    );
    for t in &video {
        assert!(t["codec"].as_str().unwrap().starts_with("av01"), "{t}");
    }
    let err = analyze_refused(&["--codec", "av1", "--rate-control", "bitrate"]);
    assert!(err.contains("--rate-control crf"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A device level bounds the ladder: H.264 level 3 admits 432p at 25 fps but not 540p, so no
/// rung is taller; level 1 admits no candidate (the fallback says so); an unknown level is
/// refused with the levels there are.
#[test]
fn device_levels_bound_the_ladder() {
    let dir = temp("level");
    let r = analyze("easy_540p25.mp4", &dir, &["--level", "3"]);
    assert!(r["fallback"].is_null(), "{}", r["fallback"]);
    assert_eq!(r["options"]["constraints"]["level"], "3");
    let trials = r["trials"].as_array().unwrap();
    assert!(trials.iter().all(|t| t["height"].as_u64().unwrap() <= 432));
    assert!(trials.iter().any(|t| t["height"] == 432));
    let rungs = r["rungs"].as_array().unwrap();
    assert!(!rungs.is_empty());
    assert!(rungs.iter().all(|x| x["height"].as_u64().unwrap() <= 432));

    let r = analyze("easy_540p25.mp4", &dir, &["--level", "1"]);
    let why = r["fallback"].as_str().unwrap();
    assert!(why.contains("level 1"), "{why}");

    let err = analyze_refused(&["--level", "3.3"]);
    assert!(err.contains("3.3") && err.contains("3.1"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
