//! `reel package`: demux every input and feed one packager, then write the manifests.

use anyhow::{bail, Context, Result};
use reel_encoder::Event;
use reel_packager::{PackageOptions, PackagedTrack, Packager};
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Packages `inputs` into `out`. Files with video go first, so that audio segments can follow
/// the video's boundaries as they come.
pub fn run(inputs: &[PathBuf], out: &Path, mut opts: PackageOptions) -> Result<Vec<PackagedTrack>> {
    let mut order = Vec::new();
    let mut longest: f64 = 0.0;
    for input in inputs {
        let (duration, has_video) = reel_encoder::summary(input)?;
        longest = longest.max(duration);
        order.push((!has_video, input.clone()));
    }
    order.sort_by_key(|(audio_only, _)| *audio_only);
    if longest > 0.0 {
        opts.expected_duration = Some(longest);
    }
    let mut packager = Packager::new(out, opts)?;
    let mut next_id = 1;
    for (audio_only, input) in &order {
        let mut named_main = false;
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "track".into());
        // Track ids are renumbered across inputs: (id in this input, id in the package).
        let mut ids: Vec<(u32, u32)> = Vec::new();
        let map = |ids: &[(u32, u32)], id: u32| -> Result<u32> {
            ids.iter()
                .find(|m| m.0 == id)
                .map(|m| m.1)
                .with_context(|| format!("{}: sample for an unannounced track", input.display()))
        };
        for event in reel_encoder::demux(input)? {
            match event? {
                Event::Track(mut info) => {
                    // The file's name for its main track (its video, or its audio in an
                    // audio-only file); the stream's kind and number for the others.
                    let main = if *audio_only {
                        info.kind() == reel_media::TrackKind::Audio
                    } else {
                        info.kind() == reel_media::TrackKind::Video
                    };
                    info.name = if main && !named_main {
                        named_main = true;
                        stem.clone()
                    } else {
                        format!("{stem}_{}", info.name)
                    };
                    ids.push((info.id, next_id));
                    info.id = next_id;
                    next_id += 1;
                    packager.add_track(info)?;
                }
                Event::Sample { track, sample } => {
                    packager
                        .push(map(&ids, track)?, sample)
                        .with_context(|| input.display().to_string())?;
                }
                Event::TrackEnd { track } => packager.end_track(map(&ids, track)?)?,
                Event::Notice(n) => eprintln!("note: {}: {n}", input.display()),
                Event::Progress(_) => {}
            }
        }
        if ids.is_empty() {
            bail!("{}: no track to package", input.display());
        }
    }
    let tracks = packager.finish()?;
    reel_packager::write_manifests(out, &tracks)?;
    Ok(tracks)
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
    let _ = writeln!(
        text,
        "{:<10} {:<16} {:>10} {:>9} {:>9} {:>12} {:>12}",
        "track", "codec", "size", "segments", "seconds", "peak kb/s", "avg kb/s"
    );
    for t in &r.tracks {
        let size = match (t.width, t.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            text,
            "{:<10} {:<16} {:>10} {:>9} {:>9.3} {:>12.1} {:>12.1}",
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
