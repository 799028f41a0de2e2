//! `reel package`: demux every input and feed one packager, then write the manifests.

use anyhow::Result;
use reel_packager::{PackageOptions, PackagedTrack};
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Packages `inputs` into `out` (see `reel_pipeline::package_files`).
pub fn run(
    inputs: &[PathBuf],
    audio: &[reel_pipeline::AudioFile],
    subtitles: &[reel_pipeline::SubtitleInput],
    out: &Path,
    opts: PackageOptions,
) -> Result<Vec<PackagedTrack>> {
    Ok(reel_pipeline::package_files(
        inputs,
        audio,
        subtitles,
        None,
        out,
        opts,
        &mut |n| eprintln!("note: {n}"),
    )?)
}

#[derive(Serialize)]
struct TrackReport {
    name: String,
    codec: String,
    width: Option<u32>,
    height: Option<u32>,
    segments: usize,
    duration: f64,
    peak_bandwidth: u64,
    average_bandwidth: u64,
    init: String,
}

#[derive(Serialize)]
struct Report {
    dash: PathBuf,
    hls: PathBuf,
    tracks: Vec<TrackReport>,
}

pub fn report(out: &Path, tracks: &[PackagedTrack], json: bool) -> Result<()> {
    let r = Report {
        dash: out.join(reel_packager::DASH_MANIFEST),
        hls: out.join(reel_packager::HLS_MASTER),
        tracks: tracks
            .iter()
            .map(|t| TrackReport {
                name: t.stem.clone(),
                codec: t.info.config.codec_string(),
                width: t.info.video.map(|v| v.width),
                height: t.info.video.map(|v| v.height),
                segments: t.segments.len(),
                duration: t.duration_secs(),
                peak_bandwidth: t.peak_bandwidth(),
                average_bandwidth: t.average_bandwidth(),
                init: t.init_uri(),
            })
            .collect(),
    };
    if json {
        crate::emit(&format!("{}\n", serde_json::to_string_pretty(&r)?));
        return Ok(());
    }
    let mut text = String::new();
    // Text tracks have long names (`text_fr-CA_captions`): the column fits the longest.
    let w = r
        .tracks
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let _ = writeln!(
        text,
        "{:<w$} {:<16} {:>10} {:>9} {:>9} {:>12} {:>12}",
        "track", "codec", "size", "segments", "seconds", "peak kb/s", "avg kb/s"
    );
    for t in &r.tracks {
        let size = match (t.width, t.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            text,
            "{:<w$} {:<16} {:>10} {:>9} {:>9.3} {:>12.1} {:>12.1}",
            t.name,
            t.codec,
            size,
            t.segments,
            t.duration,
            t.peak_bandwidth as f64 / 1000.0,
            t.average_bandwidth as f64 / 1000.0
        );
    }
    let _ = writeln!(
        text,
        "DASH: {}\nHLS:  {}",
        r.dash.display(),
        r.hls.display()
    );
    crate::emit(&text);
    Ok(())
}
