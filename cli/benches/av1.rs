//! Benchmark: Reel's two AV1 encoders, and Reel against ffmpeg with the same encoder, on a
//! 4-rung ladder (720p/480p/360p/240p, key frame every 2 s), all in one run:
//!
//! 1. **Peer.** `reel encode` with SVT-AV1 against ffmpeg `split=4` + libsvtav1 at the same
//!    preset and CRF and the library's default 32-frame mini-GOPs (ffmpeg 5.1 asks for 16
//!    unless told otherwise), alternated, `ROUNDS` rounds: best against best, and the median
//!    of the rounds' ratios, as single runs here swing by 15%: wall time, CPU, peak RSS, and
//!    each rung's coded video bytes (packet sizes by ffprobe, so container overhead is left
//!    out; the 720p rung, unscaled in both, has the same packets when the settings match).
//! 2. **SVT-AV1 against rav1e.** Reel encodes the ladder with SVT-AV1 preset 10 at four CRFs
//!    and with rav1e speed 10 at four quantizers; every rung is scored with VMAF (libvmaf,
//!    every frame, scaled to the source size) and the BD-rate of SVT-AV1 against rav1e is
//!    given per rung (piecewise, over the overlapping VMAF range; negative = fewer bits),
//!    with the summed wall times.
//! 3. **Presets.** SVT-AV1 presets 8, 10 and 12 at CRF 40: wall time, bitrate, VMAF.
//! 4. **Frames per second per core** of one-rung encodes at 720p and 1080p for each encoder
//!    (frames over user+system CPU seconds of the whole `reel encode`, decode and scaling
//!    included). The 1080p input is the fixture scaled up by ffmpeg (cached).
//!
//! Run: `cargo bench -p reel-cli --bench av1 [-- INPUT]` (default: the 720p fixture).
//! `ROUNDS` (default 5) sets the peer rounds.

mod support;

use reel_ladder::bd_rate_piecewise;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{reference_frames, timing, vmaf, Timing};

const HEIGHTS: [u32; 4] = [720, 480, 360, 240];
/// The peer comparison's settings (issue 20's table).
const PRESET: u8 = 10;
const CRF: u32 = 40;

/// An encoder setting for every rung of the ladder.
#[derive(Clone, Copy)]
enum Setting {
    Svt { preset: u8, crf: u32 },
    Rav1e { speed: u8, quantizer: u32 },
}

impl Setting {
    fn rung(self, height: u32) -> String {
        match self {
            Setting::Svt { preset, crf } => format!(
                "[[rung]]\ncodec = \"av1\"\nencoder = \"svt-av1\"\nheight = {height}\n\
                 crf = {crf}\npreset = {preset}\n"
            ),
            Setting::Rav1e { speed, quantizer } => format!(
                "[[rung]]\ncodec = \"av1\"\nencoder = \"rav1e\"\nheight = {height}\n\
                 quality = {quantizer}\nspeed = {speed}\n"
            ),
        }
    }

    fn label(self) -> String {
        match self {
            Setting::Svt { preset, crf } => format!("svt-av1 preset {preset} crf {crf}"),
            Setting::Rav1e { speed, quantizer } => format!("rav1e speed {speed} q {quantizer}"),
        }
    }
}

/// One rung of an encode: name, size, bitrate, file.
struct Rendition {
    height: u32,
    kbps: f64,
    path: PathBuf,
}

/// `reel encode` of `heights` at `setting` into `out`; the timing and the renditions.
fn reel_encode(
    reel: &Path,
    input: &Path,
    setting: Setting,
    heights: &[u32],
    out: &Path,
) -> (Timing, Vec<Rendition>) {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out).unwrap();
    let ladder = out.with_extension("toml");
    let mut toml = String::from("keyframe_interval = 2.0\n");
    for &h in heights {
        toml += &setting.rung(h);
    }
    std::fs::write(&ladder, toml).unwrap();
    let t = timing(
        "reel encode",
        Command::new(reel)
            .arg("encode")
            .arg(input)
            .arg("--ladder")
            .arg(&ladder)
            .arg("--out")
            .arg(out)
            .arg("--json")
            .env("SVT_LOG", "1"),
    );
    let tracks: Value = serde_json::from_str(&t.stdout).unwrap();
    let renditions = tracks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["height"].is_null())
        .map(|t| Rendition {
            height: t["height"].as_u64().unwrap() as u32,
            kbps: t["kbps"].as_f64().unwrap(),
            path: PathBuf::from(t["path"].as_str().unwrap()),
        })
        .collect();
    (t, renditions)
}

/// The coded video bytes of `file`: the sum of its video packets' sizes, by ffprobe.
fn video_bytes(file: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries"])
        .args(["packet=size", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<u64>().ok())
        .sum()
}

/// Whether two files' video packets are the same bytes (ffmpeg's framemd5 of the stream copy).
fn files_equal_video(a: &Path, b: &Path) -> bool {
    let hashes = |file: &Path| {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(file)
            .args(["-map", "0:v", "-c", "copy", "-f", "framemd5", "-"])
            .output()
            .unwrap();
        assert!(out.status.success(), "ffmpeg framemd5 {}", file.display());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
            .collect::<Vec<_>>()
    };
    hashes(a) == hashes(b)
}

fn frames_of(file: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap()
}

fn size_of(input: &Path) -> (u32, u32) {
    let info = reel_encoder::probe(input).unwrap();
    let v = info.video().unwrap();
    (v.width, v.height)
}

/// ffmpeg `split=4` + libsvtav1 at the peer settings; the output files, top rung first.
fn ffmpeg_command(input: &Path, dir: &Path, size: (u32, u32)) -> (Command, Vec<PathBuf>) {
    let even =
        |h: u32| ((f64::from(size.0) * f64::from(h) / f64::from(size.1) / 2.0).round()) as u32 * 2;
    let mut graph = String::from("[0:v]split=4[o0][b][c][d]");
    for (i, (label, &h)) in ["b", "c", "d"].iter().zip(&HEIGHTS[1..]).enumerate() {
        graph += &format!(";[{label}]scale={}:{h}:flags=lanczos[o{}]", even(h), i + 1);
    }
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-nostdin", "-i"])
        .arg(input)
        .args(["-an", "-filter_complex", &graph])
        .env("SVT_LOG", "1");
    let outs: Vec<PathBuf> = (0..4)
        .map(|i| dir.join(format!("ffmpeg-{i}.mp4")))
        .collect();
    for (i, out) in outs.iter().enumerate() {
        cmd.args(["-map", &format!("[o{i}]"), "-c:v", "libsvtav1"])
            .args(["-preset", &PRESET.to_string(), "-crf", &CRF.to_string()])
            .args(["-g", "50"])
            // ffmpeg 5.1's wrapper sets 4 hierarchical levels (16-frame mini-GOPs) where the
            // library's default, which Reel and later ffmpeg keep, is 5 (32 frames).
            .args(["-svtav1-params", "hierarchical-levels=5"])
            .arg(out);
    }
    (cmd, outs)
}

fn print_timing(what: &str, t: &Timing) {
    println!(
        "  {what:<34} wall {:6.2} s  cpu {:6.2} s ({:3.0}% of 2 cores)  peak RSS {:6.0} MB",
        t.wall,
        t.cpu,
        50.0 * t.cpu / t.wall,
        t.rss_mb
    );
}

fn peer(reel: &Path, input: &Path, work: &Path) {
    println!("1. Reel + SVT-AV1 against ffmpeg split=4 + libsvtav1 (preset {PRESET}, CRF {CRF}, key frame every 50 frames)");
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let setting = Setting::Svt {
        preset: PRESET,
        crf: CRF,
    };
    let (mut best_ff, mut best_reel): (Option<Timing>, Option<Timing>) = (None, None);
    let mut ratios = Vec::new();
    let mut files = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (mut cmd, outs) = ffmpeg_command(input, work, size_of(input));
        let f = timing("ffmpeg", &mut cmd);
        let (r, renditions) = reel_encode(reel, input, setting, &HEIGHTS, &work.join("peer"));
        print_timing(&format!("round {round}: ffmpeg + libsvtav1"), &f);
        print_timing(&format!("round {round}: reel encode"), &r);
        ratios.push(r.wall / f.wall);
        files = (
            outs,
            renditions.into_iter().map(|r| r.path).collect::<Vec<_>>(),
        );
        if best_ff.as_ref().is_none_or(|b| f.wall < b.wall) {
            best_ff = Some(f);
        }
        if best_reel.as_ref().is_none_or(|b| r.wall < b.wall) {
            best_reel = Some(r);
        }
    }
    let (f, r) = (best_ff.unwrap(), best_reel.unwrap());
    for ((h, ff), ours) in HEIGHTS.iter().zip(&files.0).zip(&files.1) {
        let (a, b) = (video_bytes(ff), video_bytes(ours));
        let same = if a == b && files_equal_video(ff, ours) {
            "  identical video samples"
        } else {
            ""
        };
        println!(
            "  {h}p video bytes: ffmpeg {a:>9}  reel {b:>9}  ({:+.2}%){same}",
            100.0 * (b as f64 / a as f64 - 1.0)
        );
    }
    println!(
        "  result: reel/ffmpeg wall-time ratio {:.2} (best of {rounds} against best), median of the rounds' ratios {:.2}; CPU reel {:.1} s, ffmpeg {:.1} s (best rounds)",
        r.wall / f.wall,
        support::median(&ratios),
        r.cpu,
        f.cpu
    );
}

/// One rung of an encode, scored.
struct Point {
    height: u32,
    kbps: f64,
    vmaf: f64,
}

/// One encoder setting's encode of the ladder: its wall time and its scored rungs.
struct Curve {
    wall: f64,
    points: Vec<Point>,
}

/// VMAF of every rendition of an encode.
fn scored(renditions: &[Rendition], reference: &Path, size: (u32, u32)) -> Vec<Point> {
    renditions
        .iter()
        .map(|r| Point {
            height: r.height,
            kbps: r.kbps,
            vmaf: vmaf(reference, &r.path, size),
        })
        .collect()
}

fn main() {
    let root = support::root();
    let input = support::input_or_fixture(&root);
    let reel = support::release_reel(&root);
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    println!("input: {}", input.display());

    peer(&reel, &input, work);

    println!("2. SVT-AV1 (preset 10) against rav1e (speed 10), VMAF every frame of every rung");
    let size = size_of(&input);
    let reference = work.join("reference.yuv");
    reference_frames(&input, size, &reference);
    let mut curves: Vec<Curve> = Vec::new();
    let svt: Vec<Setting> = [28, 34, 40, 46]
        .map(|crf| Setting::Svt { preset: 10, crf })
        .into();
    let rav1e: Vec<Setting> = [70, 100, 130, 160]
        .map(|quantizer| Setting::Rav1e {
            speed: 10,
            quantizer,
        })
        .into();
    for setting in svt.iter().chain(&rav1e) {
        let (t, renditions) = reel_encode(&reel, &input, *setting, &HEIGHTS, &work.join("curve"));
        let points = scored(&renditions, &reference, size);
        print!("  {:<26} wall {:6.2} s ", setting.label(), t.wall);
        for p in &points {
            print!(" {}p {:6.0} kbit/s VMAF {:5.2} ", p.height, p.kbps, p.vmaf);
        }
        println!();
        curves.push(Curve {
            wall: t.wall,
            points,
        });
    }
    let (svt_curves, rav1e_curves) = curves.split_at(svt.len());
    let per_rung = |curves: &[Curve], h: u32| -> Vec<(f64, f64)> {
        curves
            .iter()
            .flat_map(|c| {
                c.points
                    .iter()
                    .filter(|p| p.height == h)
                    .map(|p| (p.kbps, p.vmaf))
            })
            .collect()
    };
    let mut bds = Vec::new();
    for h in HEIGHTS {
        let bd = bd_rate_piecewise(&per_rung(rav1e_curves, h), &per_rung(svt_curves, h));
        match bd {
            Some(bd) => {
                println!("  {h}p BD-rate svt-av1 vs rav1e: {bd:+.1}%");
                bds.push(bd);
            }
            None => println!("  {h}p BD-rate: the VMAF ranges do not overlap"),
        }
    }
    let wall = |c: &[Curve]| c.iter().map(|c| c.wall).sum::<f64>();
    println!(
        "  result: BD-rate (VMAF) svt-av1 vs rav1e, mean over rungs {:+.1}%; wall time rav1e/svt-av1 {:.2}x ({:.1} s against {:.1} s for the four points)",
        bds.iter().sum::<f64>() / bds.len().max(1) as f64,
        wall(rav1e_curves) / wall(svt_curves),
        wall(rav1e_curves),
        wall(svt_curves)
    );

    println!("3. SVT-AV1 presets at CRF 40");
    for preset in [8, 10, 12] {
        let setting = Setting::Svt { preset, crf: 40 };
        let (t, renditions) = reel_encode(&reel, &input, setting, &HEIGHTS, &work.join("preset"));
        let points = scored(&renditions, &reference, size);
        let kbps: f64 = points.iter().map(|p| p.kbps).sum();
        let mean_vmaf = points.iter().map(|p| p.vmaf).sum::<f64>() / points.len() as f64;
        println!(
            "  preset {preset:>2}: wall {:6.2} s  ladder {kbps:6.0} kbit/s  mean VMAF {mean_vmaf:5.2}  720p {:6.0} kbit/s VMAF {:5.2}",
            t.wall, points[0].kbps, points[0].vmaf
        );
    }
    let _ = std::fs::remove_file(&reference);

    println!("4. Frames per second per core (one rung; decode and scaling included)");
    let input_1080 = root.join("target/bench-fixtures/upscaled_1080p25.mp4");
    if !input_1080.exists() {
        std::fs::create_dir_all(input_1080.parent().unwrap()).unwrap();
        let tmp = input_1080.with_extension("tmp.mp4");
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-nostdin", "-i"])
            .arg(&input)
            .args([
                "-an",
                "-vf",
                "scale=1920:1080:flags=lanczos",
                "-c:v",
                "libx264",
            ])
            .args(["-crf", "14", "-preset", "faster", "-pix_fmt", "yuv420p"])
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::rename(&tmp, &input_1080).unwrap();
    }
    for (source, height) in [(&input, 720), (&input_1080, 1080)] {
        for setting in [
            Setting::Svt {
                preset: 10,
                crf: 40,
            },
            Setting::Rav1e {
                speed: 10,
                quantizer: 110,
            },
        ] {
            let (t, renditions) = reel_encode(&reel, source, setting, &[height], &work.join("fps"));
            let frames = frames_of(&renditions[0].path) as f64;
            println!(
                "  {height}p {:<26} {:6.1} frames/s per core  ({:5.1} frames/s wall, {:.0}% of 2 cores)",
                setting.label(),
                frames / t.cpu,
                frames / t.wall,
                50.0 * t.cpu / t.wall
            );
        }
    }
}
