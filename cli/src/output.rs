//! Human-readable text and the per-track files of `encode` and `demux`.

use anyhow::Result;
use reel_encoder::{EncodePlan, MediaInfo, RateControl, StreamInfo};
use reel_media::{EncodedSample, TrackInfo};
use reel_packager::{FragmentPolicy, FragmentedMp4File};
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub fn describe(info: &MediaInfo) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", info.path.display());
    let _ = writeln!(
        s,
        "  container: {}, duration {:.3} s{}",
        info.container
            .as_deref()
            .unwrap_or("none (elementary stream)"),
        info.duration,
        if info.seekable { "" } else { ", not seekable" }
    );
    for st in &info.streams {
        match st {
            StreamInfo::Video(v) => {
                let _ = writeln!(
                    s,
                    "  #{} video: {} {}x{} @ {} fps ({:.3}), SAR {}, {}{}{}{}{}",
                    v.index,
                    v.codec,
                    v.width,
                    v.height,
                    v.frame_rate,
                    v.frame_rate.as_f64(),
                    v.pixel_aspect,
                    v.pixel_format.as_deref().unwrap_or("?"),
                    v.bit_depth.map(|d| format!(" {d}-bit")).unwrap_or_default(),
                    match (&v.color, v.colorimetry.as_deref()) {
                        (Some(c), _) => format!(
                            ", colour primaries {} transfer {} matrix {} {} range",
                            c.primaries,
                            c.transfer,
                            c.matrix,
                            if c.full_range { "full" } else { "limited" }
                        ),
                        (None, Some(c)) => format!(", colorimetry {c}"),
                        (None, None) => String::new(),
                    },
                    if v.interlaced { ", interlaced" } else { "" },
                    v.bitrate
                        .map(|b| format!(", {} kbit/s", b / 1000))
                        .unwrap_or_default(),
                );
            }
            StreamInfo::Audio(a) => {
                let _ = writeln!(
                    s,
                    "  #{} audio: {} {} Hz, {} ch{}{}",
                    a.index,
                    a.codec,
                    a.sample_rate,
                    a.channels,
                    a.language
                        .as_deref()
                        .map(|l| format!(", language {l}"))
                        .unwrap_or_default(),
                    a.bitrate
                        .map(|b| format!(", {} kbit/s", b / 1000))
                        .unwrap_or_default(),
                );
            }
            StreamInfo::Subtitle { index, language } => {
                let _ = writeln!(
                    s,
                    "  #{index} subtitles{}",
                    language
                        .as_deref()
                        .map(|l| format!(", language {l}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    s
}

pub fn describe_plan(plan: &EncodePlan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} frames at {} fps, key frame every {} frames",
        plan.source.path.display(),
        plan.frames_total,
        plan.frame_rate,
        plan.keyframe_frames
    );
    for r in &plan.rungs {
        let rate = match r.rate {
            RateControl::Bitrate(k) => format!("{k} kbit/s"),
            RateControl::Quality(q) => format!("quality {q}"),
        };
        let _ = writeln!(
            s,
            "  track {}: {} {} {}x{}, {rate}, speed {}",
            r.track_id,
            r.name,
            r.codec.name(),
            r.width,
            r.height,
            r.speed
        );
    }
    for a in &plan.audio {
        s.push_str(&describe_audio(a));
    }
    for n in &plan.notices {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

#[derive(Debug, Serialize)]
pub struct TrackSummary {
    pub track: u32,
    pub name: String,
    pub codec: String,
    pub path: PathBuf,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub samples: u64,
    pub duration: f64,
    pub bytes: u64,
    pub kbps: f64,
}

pub fn describe_tracks(tracks: &[TrackSummary]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<6} {:<8} {:<16} {:>10} {:>8} {:>9} {:>10}  file",
        "track", "name", "codec", "size", "samples", "seconds", "kbit/s"
    );
    for t in tracks {
        let size = match (t.width, t.height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "{:<6} {:<8} {:<16} {:>10} {:>8} {:>9.3} {:>10.1}  {}",
            t.track,
            t.name,
            t.codec,
            size,
            t.samples,
            t.duration,
            t.kbps,
            t.path.display()
        );
    }
    s
}

/// One output file being written, with the figures for the summary.
pub struct TrackWriter {
    file: FragmentedMp4File,
    path: PathBuf,
    bytes: u64,
    start: Option<i64>,
    end: i64,
}

impl TrackWriter {
    pub fn create(dir: &Path, info: TrackInfo) -> Result<Self> {
        let safe = reel_packager::safe_file_name(&info.name);
        let path = dir.join(format!("{safe}.mp4"));
        let file = FragmentedMp4File::create(&path, info, FragmentPolicy::default())?;
        Ok(Self {
            file,
            path,
            bytes: 0,
            start: None,
            end: 0,
        })
    }

    pub fn id(&self) -> u32 {
        self.file.track().id
    }

    pub fn push(&mut self, sample: EncodedSample) -> Result<()> {
        self.bytes += sample.data.len() as u64;
        self.start = Some(self.start.map_or(sample.pts, |s| s.min(sample.pts)));
        self.end = self.end.max(sample.pts + i64::from(sample.duration));
        self.file.push(sample)?;
        Ok(())
    }

    pub fn finish(self) -> Result<TrackSummary> {
        let info = self.file.track().clone();
        let samples = self.file.finish()?;
        let duration = (self.end - self.start.unwrap_or(0)) as f64 / f64::from(info.timescale);
        Ok(TrackSummary {
            track: info.id,
            name: info.name.clone(),
            codec: info.config.codec_string(),
            path: self.path,
            width: info.video.map(|v| v.width),
            height: info.video.map(|v| v.height),
            samples,
            duration,
            bytes: self.bytes,
            kbps: if duration > 0.0 {
                self.bytes as f64 * 8.0 / duration / 1000.0
            } else {
                0.0
            },
        })
    }
}

/// One line for an audio rendition: track, name, codec, rate, channels, language and role.
pub fn describe_audio(a: &reel_encoder::AudioPlan) -> String {
    format!(
        "  track {}: {} {} {} kbit/s, {} ch, {} Hz, {}, {}\n",
        a.track_id,
        a.name,
        a.codec.name(),
        a.bitrate_kbps,
        a.channels,
        a.sample_rate,
        a.language,
        a.role.name()
    )
}
