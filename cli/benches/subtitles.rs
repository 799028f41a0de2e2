//! Benchmark: what subtitles add to packaging a long title. Two things are packaged: a
//! realistic 2-hour title (three H.264 rungs from 720p at 3 Mbit/s down, and stereo AAC: about
//! 4.8 GB, made by repeating 30 s encoded at those rates), alone and with five languages of
//! 2,000 cues each (WebVTT, SubRip and TTML/IMSC1 sidecars, generated deterministically here);
//! and a small 2-hour video rendition (160x90), on which the text's own cost shows, alone,
//! with the five languages, and with them cut to the first hour (1,000 cues each). Rounds
//! alternate; the report gives the median wall time of each, what the subtitles add (seconds
//! and per cent of the same inputs without them), the spread between rounds of the run
//! without them (the noise floor), CPU time, the files written, and peak RSS (flat memory
//! means the 1-hour and 2-hour sets peak alike). The package goes to `/dev/shm` when there is
//! one: on these machines' virtual disks, creating and deleting tens of thousands of files
//! makes wall times swing 10x between identical runs, which would measure the disk.
//!
//! Run: `cargo bench -p reel-cli --bench subtitles` (ROUNDS=5 by default, HOURS=2).

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const LANGUAGES: [(&str, &str); 5] = [
    ("en", "vtt"),
    ("fr", "srt"),
    ("de", "ttml"),
    ("es", "vtt"),
    ("ja", "srt"),
];

fn stamp(ms: u64, separator: char) -> String {
    format!(
        "{:02}:{:02}:{:02}{separator}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// `cues` cues spread over `seconds`, each shown for 2.5 s, in `format`.
fn subtitle_file(format: &str, language: &str, cues: u64, seconds: u64) -> String {
    let step = seconds * 1000 / cues;
    let mut out = String::new();
    match format {
        "vtt" => out.push_str("WEBVTT\n\n"),
        "ttml" => {
            out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            let _ = writeln!(
                out,
                "<tt xmlns=\"http://www.w3.org/ns/ttml\" xml:lang=\"{language}\"><body><div>"
            );
        }
        _ => {}
    }
    for i in 0..cues {
        let (start, end) = (i * step + 500, i * step + 3000);
        let text = format!("Line {i} in {language}, with <i>some</i> words");
        match format {
            "vtt" => {
                let _ = writeln!(
                    out,
                    "{}\n{} --> {}\n{text}\n",
                    i + 1,
                    stamp(start, '.'),
                    stamp(end, '.')
                );
            }
            "srt" => {
                let _ = writeln!(
                    out,
                    "{}\n{} --> {}\n{text}\n",
                    i + 1,
                    stamp(start, ','),
                    stamp(end, ',')
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "<p begin=\"{}\" end=\"{}\">Line {i} in {language}, with <span \
                     xmlns:tts=\"http://www.w3.org/ns/ttml#styling\" tts:fontStyle=\"italic\">\
                     some</span> words</p>",
                    stamp(start, '.'),
                    stamp(end, '.')
                );
            }
        }
    }
    if format == "ttml" {
        out.push_str("</div></body></tt>\n");
    }
    out
}

fn files_in(dir: &Path) -> usize {
    let mut n = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

/// The rungs of the realistic title: (name, size, video kbit/s). With 128 kbit/s of AAC
/// that is about 4.8 GB for two hours, as a streaming service's top rungs are.
const TITLE_RUNGS: [(&str, &str, u32); 3] = [
    ("720p", "1280x720", 3000),
    ("480p", "854x480", 1500),
    ("360p", "640x360", 800),
];

/// A `seconds`-long rendition at `kbps`: 30 s of a busy test picture encoded at that rate
/// (a key frame every 2 s), repeated without re-encoding.
fn looped_rendition(dir: &Path, name: &str, size: &str, kbps: u32, seconds: u64) -> PathBuf {
    let clip = dir.join(format!("{name}-clip.mp4"));
    let rate = format!("{kbps}k");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size={size}:rate=25:duration=30,noise=alls=20:allf=t"
        ))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "50",
            "-keyint_min",
            "50",
        ])
        .args(["-sc_threshold", "0", "-pix_fmt", "yuv420p", "-b:v", &rate])
        .args(["-maxrate", &rate, "-bufsize", &rate])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(ok.success());
    repeated(&clip, &dir.join(format!("{name}.mp4")), seconds)
}

/// `clip` repeated without re-encoding to `seconds`, as `out`; the clip is removed.
fn repeated(clip: &Path, out: &Path, seconds: u64) -> PathBuf {
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-stream_loop", "-1", "-i"])
        .arg(clip)
        .args(["-c", "copy", "-t", &seconds.to_string()])
        .arg(out)
        .status()
        .unwrap();
    assert!(ok.success());
    let _ = std::fs::remove_file(clip);
    out.to_path_buf()
}

/// A `seconds`-long stereo AAC rendition at 128 kbit/s, made the same way.
fn looped_audio(dir: &Path, seconds: u64) -> PathBuf {
    let clip = dir.join("audio-clip.m4a");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("anoisesrc=d=30:c=pink:r=48000,aformat=channel_layouts=stereo")
        .args(["-c:a", "aac", "-b:a", "128k"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(ok.success());
    repeated(&clip, &dir.join("audio.mp4"), seconds)
}

/// One bench case: what is packaged and with which subtitles.
struct Case<'a> {
    label: &'static str,
    inputs: &'a [PathBuf],
    subtitles: &'a [String],
}

fn main() {
    let root = support::root();
    let reel = support::release_reel(&root);
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let hours: u64 = std::env::var("HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let seconds = hours * 3600;
    let dir = tempfile::tempdir_in(root.join("target")).unwrap();
    let d = dir.path();
    let video = d.join("video.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=160x90:rate=25:duration={seconds}"))
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "50"])
        .args([
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&video)
        .status()
        .unwrap();
    assert!(made.success());
    let mut title: Vec<PathBuf> = TITLE_RUNGS
        .iter()
        .map(|(name, size, kbps)| looped_rendition(d, name, size, *kbps, seconds))
        .collect();
    title.push(looped_audio(d, seconds));
    let title_bytes: u64 = title
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let mut full = Vec::new();
    let mut half = Vec::new();
    for (language, format) in LANGUAGES {
        for (set, cues, span) in [
            (&mut full, 1000 * hours, seconds),
            (&mut half, 500 * hours, seconds / 2),
        ] {
            let name = format!("{language}-{cues}.{format}");
            std::fs::write(d.join(&name), subtitle_file(format, language, cues, span)).unwrap();
            set.push(format!("{language}={}", d.join(&name).display()));
        }
    }
    let shm = Path::new("/dev/shm");
    let out = if shm.is_dir() {
        shm.join(format!("reel-subtitles-bench-{}", std::process::id()))
    } else {
        d.join("out")
    };
    let run = |case: &Case| {
        let _ = std::fs::remove_dir_all(&out);
        let _ = Command::new("sync").status();
        let mut cmd = Command::new(&reel);
        cmd.arg("package")
            .args(case.inputs)
            .arg("--out")
            .arg(&out)
            .args(["--segment-duration", "2", "--json"]);
        for s in case.subtitles {
            cmd.args(["--subtitles", s]);
        }
        let t = support::timing("reel package", &mut cmd);
        (t.wall, t.rss_mb, t.cpu, files_in(&out))
    };
    let small = [video.clone()];
    let cases = [
        Case {
            label: "small video alone",
            inputs: &small,
            subtitles: &[],
        },
        Case {
            label: "small video + 5 languages, first half of the cues",
            inputs: &small,
            subtitles: &half,
        },
        Case {
            label: "small video + 5 languages, every cue",
            inputs: &small,
            subtitles: &full,
        },
        Case {
            label: "title alone",
            inputs: &title,
            subtitles: &[],
        },
        Case {
            label: "title + 5 languages, every cue",
            inputs: &title,
            subtitles: &full,
        },
    ];
    let mut results: Vec<Vec<(f64, f64, f64, usize)>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            results[i].push(run(case));
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    println!(
        "{hours} hours, 2-s segments, {} cues in each of 5 languages (WebVTT, SRT, TTML); \
         small video: one 160x90 H.264 rendition; title: {} ({:.1} GB) and stereo AAC \
         128 kbit/s; {rounds} alternated rounds",
        1000 * hours,
        TITLE_RUNGS
            .iter()
            .map(|(n, _, k)| format!("{n} at {:.1} Mbit/s", f64::from(*k) / 1000.0))
            .collect::<Vec<_>>()
            .join(", "),
        title_bytes as f64 / 1e9
    );
    println!("package folder: {}", out.display());
    println!("| run | wall (median) | added | spread of the run alone | CPU (median) | peak RSS | files |");
    println!("|---|---|---|---|---|---|---|");
    for (i, (case, r)) in cases.iter().zip(&results).enumerate() {
        // Each set of cases is measured against its own run without subtitles.
        let base = if i < 3 { 0 } else { 3 };
        let base_walls: Vec<f64> = results[base].iter().map(|x| x.0).collect();
        let base_median = support::median(&base_walls);
        let spread = base_walls.iter().cloned().fold(f64::MIN, f64::max)
            - base_walls.iter().cloned().fold(f64::MAX, f64::min);
        let wall = support::median(&r.iter().map(|x| x.0).collect::<Vec<_>>());
        let rss = r.iter().map(|x| x.1).fold(0.0, f64::max);
        let cpu = support::median(&r.iter().map(|x| x.2).collect::<Vec<_>>());
        println!(
            "| {} | {wall:.2} s | {:+.2} s ({:+.1}%) | {spread:.2} s | {cpu:.2} s | {rss:.0} MB | {} |",
            case.label,
            wall - base_median,
            (wall - base_median) / base_median * 100.0,
            r[0].3
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
