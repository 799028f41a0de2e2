//! Benchmark: what subtitles add to packaging a long title. A 2-hour video rendition (a small
//! H.264 picture made with ffmpeg; the video's size does not matter to the text) is packaged
//! alone, with five languages of 2,000 cues each (WebVTT, SubRip and TTML/IMSC1 sidecars,
//! generated deterministically here), and with the same five languages cut to the first hour
//! (1,000 cues each). Rounds alternate; the report gives the median wall time of each, what
//! the subtitles add (seconds and per cent of the video-only run), the spread between rounds
//! of the video-only run (the noise floor), CPU time, the files written, and peak RSS (flat
//! memory means the 1-hour and 2-hour sets peak alike). The package goes to `/dev/shm` when
//! there is one: on these machines' virtual disks, creating and deleting tens of thousands of
//! files makes wall times swing 10x between identical runs, which would measure the disk.
//!
//! Run: `cargo bench -p reel-cli --bench subtitles` (ROUNDS=5 by default, HOURS=2).

mod support;

use std::fmt::Write as _;
use std::path::Path;
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
    let run = |subtitles: &[String]| {
        let _ = std::fs::remove_dir_all(&out);
        let _ = Command::new("sync").status();
        let mut cmd = Command::new(&reel);
        cmd.arg("package").arg(&video).arg("--out").arg(&out).args([
            "--segment-duration",
            "2",
            "--json",
        ]);
        for s in subtitles {
            cmd.args(["--subtitles", s]);
        }
        let t = support::timing("reel package", &mut cmd);
        (t.wall, t.rss_mb, t.cpu, files_in(&out))
    };
    let cases: [(&str, &[String]); 3] = [
        ("video alone", &[]),
        ("+ 5 languages, first half of the cues", &half),
        ("+ 5 languages, every cue", &full),
    ];
    let mut results: Vec<Vec<(f64, f64, f64, usize)>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for (i, (_, subs)) in cases.iter().enumerate() {
            results[i].push(run(subs));
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    println!(
        "{hours}-hour video rendition (160x90 H.264, 2-s segments), {} cues in each of 5 languages \
         (WebVTT, SRT, TTML); {rounds} alternated rounds",
        1000 * hours
    );
    let base: Vec<f64> = results[0].iter().map(|r| r.0).collect();
    let base_median = support::median(&base);
    let spread = base.iter().cloned().fold(f64::MIN, f64::max)
        - base.iter().cloned().fold(f64::MAX, f64::min);
    println!("package folder: {}", out.display());
    println!("| run | wall (median) | added | CPU (median) | peak RSS | files |");
    println!("|---|---|---|---|---|---|");
    for ((label, _), r) in cases.iter().zip(&results) {
        let wall = support::median(&r.iter().map(|x| x.0).collect::<Vec<_>>());
        let rss = r.iter().map(|x| x.1).fold(0.0, f64::max);
        let cpu = support::median(&r.iter().map(|x| x.2).collect::<Vec<_>>());
        println!(
            "| {label} | {wall:.2} s | {:+.2} s ({:+.1}%) | {cpu:.2} s | {rss:.0} MB | {} |",
            wall - base_median,
            (wall - base_median) / base_median * 100.0,
            r[0].3
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    println!("video-alone spread between rounds (noise floor): {spread:.2} s");
}
