//! What the end-to-end benchmarks share: timing a command, and the 60-second title.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd` under GNU time; returns (stdout, wall seconds, peak RSS in MB).
pub fn timed(label: &str, cmd: &mut Command) -> (String, f64, f64) {
    let t = timing(label, cmd);
    (t.stdout, t.wall, t.rss_mb)
}

/// What GNU time saw of one command.
pub struct Timing {
    pub stdout: String,
    pub wall: f64,
    /// User plus system CPU seconds.
    pub cpu: f64,
    pub rss_mb: f64,
}

/// Runs `cmd` under GNU time.
pub fn timing(label: &str, cmd: &mut Command) -> Timing {
    let stats = std::env::temp_dir().join(format!("reel-bench-time-{}", std::process::id()));
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%e %M %U %S", "-o"])
        .arg(&stats)
        .arg(program)
        .args(args);
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    let out = wrapped.output().unwrap_or_else(|e| panic!("{label}: {e}"));
    assert!(
        out.status.success(),
        "{label} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&stats).unwrap();
    let _ = std::fs::remove_file(&stats);
    let f: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    Timing {
        stdout: String::from_utf8(out.stdout).unwrap(),
        wall: f[0],
        cpu: f[2] + f[3],
        rss_mb: f[1] / 1024.0,
    }
}

/// The bench's input: the first argument that is not an option, else the 720p fixture (made
/// by `fixtures/make.sh` if missing).
pub fn input_or_fixture(root: &Path) -> PathBuf {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let st = Command::new("bash")
                .arg(root.join("fixtures/make.sh"))
                .status()
                .unwrap();
            assert!(st.success());
            root.join("fixtures/out/mezz_720p25.mp4")
        })
}

/// Decodes `source` once to raw I420 frames of `size` in `path` (the reference every rung is
/// scored against).
pub fn reference_frames(source: &Path, size: (u32, u32), path: &Path) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    reel_encoder::decode_pictures(source, size, &[], &mut |_, _, p| {
        for plane in &p.planes {
            out.write_all(plane).unwrap();
        }
        true
    })
    .unwrap();
    out.flush().unwrap();
}

/// Mean VMAF of `rendition` (decoded and scaled to `size`) against the raw reference frames,
/// every frame, libvmaf on two threads. One GStreamer pipeline at a time: two `decode_pictures`
/// pipelines running at once in one process have stalled here (not yet understood).
pub fn vmaf(reference: &Path, rendition: &Path, size: (u32, u32)) -> f64 {
    use std::io::Read;
    let mut file = std::io::BufReader::new(std::fs::File::open(reference).unwrap());
    let mut v = reel_ladder::Vmaf::with_threads(size.0, size.1, 1, 2).unwrap();
    let mut read_frame = || {
        let mut r = reel_media::Picture::filled(size.0, size.1, 0, 0);
        for plane in r.planes.iter_mut() {
            file.read_exact(plane).ok()?;
        }
        Some(r)
    };
    reel_encoder::decode_pictures(rendition, size, &[], &mut |_, _, d| match read_frame() {
        Some(r) => {
            v.push(&r, &d).unwrap();
            true
        }
        None => false,
    })
    .unwrap();
    let s = v.finish().unwrap();
    s.iter().map(|x| x.1).sum::<f64>() / s.len() as f64
}

/// VMAF of every frame of a rendition, with the rendition brought to the reference's size
/// two ways: bicubic (Catmull-Rom, how the per-title analysis scores its trials) and Lanczos-3.
pub struct FrameScores {
    pub bicubic: Vec<f64>,
    pub lanczos: Vec<f64>,
}

/// Scores every frame of `rendition` (decoded at its own size, then scaled up both ways)
/// against the raw reference frames of `size`, libvmaf on one thread per convention.
pub fn vmaf_frames(reference: &Path, rendition: &Path, size: (u32, u32)) -> FrameScores {
    use reel_encoder::resize::{Filter, PlaneScaler};
    use std::io::Read;
    let coded = {
        let info = reel_encoder::probe(rendition).unwrap();
        let v = info.video().unwrap();
        (v.width, v.height)
    };
    let mut file = std::io::BufReader::new(std::fs::File::open(reference).unwrap());
    let mut bicubic = reel_ladder::Vmaf::with_threads(size.0, size.1, 1, 1).unwrap();
    let mut lanczos = reel_ladder::Vmaf::with_threads(size.0, size.1, 1, 1).unwrap();
    let mut up_bicubic = PlaneScaler::new(Filter::CatmullRom);
    let mut up_lanczos = PlaneScaler::new(Filter::Lanczos3);
    let mut read_frame = || {
        let mut r = reel_media::Picture::filled(size.0, size.1, 0, 0);
        for plane in r.planes.iter_mut() {
            file.read_exact(plane).ok()?;
        }
        Some(r)
    };
    reel_encoder::decode_pictures(rendition, coded, &[], &mut |_, _, d| match read_frame() {
        Some(r) => {
            if coded == size {
                bicubic.push(&r, &d).unwrap();
                lanczos.push(&r, &d).unwrap();
            } else {
                let b = up_bicubic.picture(&d, size.0, size.1).unwrap();
                let l = up_lanczos.picture(&d, size.0, size.1).unwrap();
                bicubic.push(&r, &b).unwrap();
                lanczos.push(&r, &l).unwrap();
            }
            true
        }
        None => false,
    })
    .unwrap();
    let scores = |v: reel_ladder::Vmaf| v.finish().unwrap().into_iter().map(|x| x.1).collect();
    FrameScores {
        bicubic: scores(bicubic),
        lanczos: scores(lanczos),
    }
}

/// The 60-second 720p title with audio (cached in `dir`).
pub fn make_long(dir: &Path) -> PathBuf {
    let path = dir.join("long_720p25_60s.mp4");
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(".long.tmp.mp4");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=1280x720:r=25:d=60,noise=alls=3:allf=t:all_seed=7",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:r=48000:d=60",
        ])
        .args([
            "-c:v",
            "libx264",
            "-crf",
            "16",
            "-preset",
            "faster",
            "-x264-params",
            "threads=1",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "192k", "-ac", "2",
        ])
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// The middle value of `v` (the upper one of an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs per mode: `REEL_BENCH_REPEAT`, 3 by default, at least 1.
pub fn repeat() -> usize {
    std::env::var("REEL_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// The workspace's root folder.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the release `reel` and returns its path.
pub fn release_reel(root: &Path) -> PathBuf {
    let st = Command::new("cargo")
        .args(["build", "--release", "-p", "reel-cli"])
        .current_dir(root)
        .status()
        .unwrap();
    assert!(st.success());
    root.join("target/release/reel")
}

/// A benchmark job in `dir`: `ladder`, `extra` (more TOML tables, e.g. `[encode]`, or
/// nothing), cenc with generated keys, 2-s segments, published to the folder `out`.
pub fn job(dir: &Path, source: &Path, ladder: &str, extra: &str, out: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        r#"ladder = "{ladder}"
work_dir = "work"
[title]
id = "bench"
source = "{}"
{extra}
[packaging]
segment_duration = 2
[encryption]
scheme = "cenc"
keys_out = "keys.cpix"
[destination]
url = "file://{}"
"#,
        source.display(),
        out.display()
    );
    let p = dir.join("job.toml");
    std::fs::write(&p, text).unwrap();
    p
}
