//! Work units: one chunk of the video for every rung from one decode, or the title's audio;
//! named by a hash of everything that decides their bytes.

use crate::error::{io_error, UnitError};
use crate::store::{UnitOutput, UnitPictures, UnitRecord, UnitStore};
use reel_encoder::{EncodePlan, Event, FrameRange};
use reel_packager::{FragmentPolicy, FragmentedMp4File};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Bump when what a unit's files hold changes in a way its plan does not show.
const UNIT_FORMAT: u32 = 2;

/// What one unit encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum UnitWork {
    /// The title's audio renditions, whole: encoded once, so audio has no joins.
    Audio,
    /// Frames `range` of the video, for every rung, from one decode.
    Video { chunk: u32, range: FrameRange },
}

/// A unit of a title: its work, its content address and the plan its encoder runs.
#[derive(Debug, Clone)]
pub struct Unit {
    pub work: UnitWork,
    /// Hex SHA-256 (128 bits) of the source's identity, the work, the plan's settings and the
    /// encoders' versions: the name of its outputs.
    pub key: String,
    /// The source's identity: its SHA-256, hex.
    pub source: String,
    pub plan: EncodePlan,
}

impl UnitWork {
    /// The work as people name it: `audio`, or `chunk 3 (frames 2250..3000, 90.0-120.0 s)`
    /// at `frame_rate`.
    pub fn name(&self, frame_rate: reel_media::Rational) -> String {
        match *self {
            UnitWork::Audio => "audio".into(),
            UnitWork::Video { chunk, range } => {
                let fps = frame_rate.as_f64().max(1e-9);
                format!(
                    "chunk {chunk} (frames {}..{}, {:.1}-{:.1} s)",
                    range.start,
                    range.end,
                    range.start as f64 / fps,
                    range.end as f64 / fps
                )
            }
        }
    }

    /// Frames encoded per rung (0 for audio).
    pub fn frames(&self) -> u64 {
        match self {
            UnitWork::Audio => 0,
            UnitWork::Video { range, .. } => range.len(),
        }
    }
}

impl Unit {
    /// The unit as people name it: `audio`, `audio (audio_deu_dub)` for another audio
    /// track than the main one, or `chunk 3 (frames 2250..3000, 90.0-120.0 s)`.
    pub fn name(&self) -> String {
        match (self.work, self.plan.audio.first()) {
            (UnitWork::Audio, Some(a)) if a.stream != 0 || a.role != Default::default() => {
                format!("audio ({})", a.name)
            }
            _ => self.work.name(self.plan.frame_rate),
        }
    }

    /// Frames this unit encodes per rung (0 for audio).
    pub fn frames(&self) -> u64 {
        self.work.frames()
    }
}

/// The units of `plan` cut at `chunks`: the audio first (when the plan has audio), then one
/// unit per chunk (when it has rungs). `source_id` identifies the source's content.
pub fn title_units(
    plan: &EncodePlan,
    chunks: &[FrameRange],
    source_id: &str,
) -> Result<Vec<Unit>, UnitError> {
    let mut units = Vec::new();
    if !plan.audio.is_empty() {
        units.push(audio_unit(plan.audio_only(), source_id)?);
    }
    if let (false, Some(first)) = (plan.rungs.is_empty(), chunks.first()) {
        // Every chunk has the same rungs, so the same encoders: asked of GStreamer once.
        let encoders = plan.for_range(*first).encoders()?;
        for (i, range) in chunks.iter().enumerate() {
            let work = UnitWork::Video {
                chunk: i as u32,
                range: *range,
            };
            units.push(Unit::new(
                work,
                plan.for_range(*range),
                source_id,
                &encoders,
            ));
        }
    }
    Ok(units)
}

/// The unit encoding `plan`'s audio renditions, whole ([`EncodePlan::audio_only`] or
/// [`EncodePlan::audio_input`]), from the file whose SHA-256 is `source_id`.
pub fn audio_unit(plan: EncodePlan, source_id: &str) -> Result<Unit, UnitError> {
    let encoders = plan.encoders()?;
    Ok(Unit::new(UnitWork::Audio, plan, source_id, &encoders))
}

impl Unit {
    /// The unit doing `work` of `plan` (already cut to the work: [`EncodePlan::for_range`] or
    /// [`EncodePlan::audio_only`]), on the source whose SHA-256 is `source_id`, with these
    /// encoders (name, version): its key follows from them all. A worker elsewhere builds
    /// the unit again from the same parts and its own encoders, so a key it does not
    /// reproduce means its encoders differ.
    pub fn new(
        work: UnitWork,
        plan: EncodePlan,
        source_id: &str,
        encoders: &[(String, String)],
    ) -> Unit {
        use sha2::Digest;
        let what = serde_json::json!({
            "format": UNIT_FORMAT,
            "source": source_id,
            "work": work,
            "frame_rate": [plan.frame_rate.num, plan.frame_rate.den],
            "timescale": plan.timescale,
            "frame_duration": plan.frame_duration,
            "keyframe_frames": plan.keyframe_frames,
            "rungs": plan.rungs,
            "audio": plan.audio,
            "thumbnails": plan.thumbnails,
            "encoders": encoders,
        });
        let digest = sha2::Sha256::digest(what.to_string().as_bytes());
        Unit {
            work,
            key: hex::encode(&digest[..16]),
            source: source_id.to_string(),
            plan,
        }
    }
}

/// A chunk's lead-in in its encoders' output: samples before the chunk's start are dropped,
/// the rest moved back by the lead-in, and each track must then start with a sync sample.
struct LeadIn {
    ticks: i64,
    started: Vec<u32>,
}

impl LeadIn {
    fn of(unit: &Unit) -> Self {
        let frames = match unit.work {
            UnitWork::Video { range, .. } => range.lead_in,
            UnitWork::Audio => 0,
        };
        LeadIn {
            ticks: frames as i64 * i64::from(unit.plan.frame_duration),
            started: Vec::new(),
        }
    }

    fn keep(
        &mut self,
        track: u32,
        mut sample: reel_media::EncodedSample,
    ) -> Result<Option<reel_media::EncodedSample>, String> {
        if self.ticks == 0 {
            return Ok(Some(sample));
        }
        // AV1 rungs never see the lead-in: their samples start at the chunk's start.
        if sample.pts < self.ticks - i64::from(sample.duration / 2) {
            return Ok(None);
        }
        if !self.started.contains(&track) {
            if !sample.sync {
                return Err(format!(
                    "track {track} has no key frame at the chunk's start (pts {})",
                    sample.pts
                ));
            }
            self.started.push(track);
        }
        sample.pts -= self.ticks;
        sample.dts -= self.ticks;
        Ok(Some(sample))
    }
}

/// Encodes `unit` into `store`: every track into its own fragmented MP4 in a temporary
/// folder, which becomes the unit's folder (with its record) only when every track is
/// complete. Progress, notices and stills go to `on_event`. Stops early once `halted` says so.
pub fn run_unit(
    unit: &Unit,
    store: &UnitStore,
    halted: &dyn Fn() -> bool,
    on_event: &mut dyn FnMut(Event),
) -> Result<UnitRecord, UnitError> {
    let started = Instant::now();
    let tmp = store.begin(&unit.key)?;
    let mut writers: Vec<(u32, String, FragmentedMp4File)> = Vec::new();
    let mut outputs: Vec<UnitOutput> = Vec::new();
    let mut lead_in = LeadIn::of(unit);
    let mut thumbnails = PictureFile::new(tmp.join(UnitPictures::THUMBNAILS));
    let mut still = PictureFile::new(tmp.join(UnitPictures::STILL));
    for event in unit.plan.clone().start()? {
        if halted() {
            return Err(UnitError::Cancelled);
        }
        let event = match event? {
            Event::Sample { track, sample } => match lead_in.keep(track, sample) {
                Ok(Some(sample)) => Event::Sample { track, sample },
                Ok(None) => continue,
                Err(detail) => {
                    return Err(UnitError::Stitch {
                        path: unit.plan.source.path.clone(),
                        detail: format!("{}: {detail}", unit.name()),
                    })
                }
            },
            other => other,
        };
        match event {
            Event::Track(info) => {
                let file = format!("{}.mp4", reel_packager::safe_file_name(&info.name));
                let (id, name) = (info.id, info.name.clone());
                let writer =
                    FragmentedMp4File::create(&tmp.join(&file), info, FragmentPolicy::default())?;
                writers.push((id, name, writer));
            }
            Event::Sample { track, sample } => {
                let Some(w) = writers.iter_mut().find(|w| w.0 == track) else {
                    return Err(UnitError::Stitch {
                        path: unit.plan.source.path.clone(),
                        detail: format!("{}: a sample for unannounced track {track}", unit.name()),
                    });
                };
                w.2.push(sample)?;
            }
            Event::TrackEnd { track } => {
                let Some(i) = writers.iter().position(|w| w.0 == track) else {
                    continue;
                };
                let (track, name, writer) = writers.swap_remove(i);
                let file = format!("{}.mp4", reel_packager::safe_file_name(&name));
                let samples = writer.finish()?;
                let path = tmp.join(&file);
                let bytes = std::fs::metadata(&path)
                    .map_err(crate::error::io_error(&path))?
                    .len();
                outputs.push(UnitOutput {
                    track,
                    name,
                    file,
                    bytes,
                    samples,
                });
            }
            // Kept with the unit, so that they come back from a worker anywhere and with a
            // unit reused by a later run; the stitcher hands them over.
            Event::Thumbnail { frame, picture } => thumbnails.push(frame, &picture)?,
            Event::Still { frame, picture } => still.push(frame, &picture)?,
            other => on_event(other),
        }
    }
    if let Some((_, name, _)) = writers.first() {
        return Err(UnitError::Stitch {
            path: unit.plan.source.path.clone(),
            detail: format!(
                "{}: the encoder stopped before track {name} ended",
                unit.name()
            ),
        });
    }
    outputs.sort_by_key(|o| o.track);
    let record = UnitRecord {
        key: unit.key.clone(),
        unit: unit.name(),
        work: unit.work,
        outputs,
        thumbnails: thumbnails.finish()?,
        still: still.finish()?,
        seconds: started.elapsed().as_secs_f64(),
    };
    store.commit(tmp, &record)?;
    Ok(record)
}

/// Pictures as they come from a unit's decode, written to one file of raw pictures.
struct PictureFile {
    path: std::path::PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    frames: Vec<u64>,
    size: (u32, u32),
}

impl PictureFile {
    fn new(path: std::path::PathBuf) -> Self {
        PictureFile {
            path,
            out: None,
            frames: Vec::new(),
            size: (0, 0),
        }
    }

    fn push(&mut self, frame: u64, picture: &reel_media::Picture) -> Result<(), UnitError> {
        use std::io::Write;
        if self.out.is_none() {
            let file = std::fs::File::create(&self.path).map_err(io_error(&self.path))?;
            self.out = Some(std::io::BufWriter::new(file));
            self.size = (picture.width, picture.height);
        }
        if (picture.width, picture.height) != self.size {
            return Err(UnitError::Stitch {
                path: self.path.clone(),
                detail: format!(
                    "picture of frame {frame} is {}x{}, the first was {}x{}",
                    picture.width, picture.height, self.size.0, self.size.1
                ),
            });
        }
        let out = self.out.as_mut().expect("opened above");
        for plane in &picture.planes {
            out.write_all(plane).map_err(io_error(&self.path))?;
        }
        self.frames.push(frame);
        Ok(())
    }

    /// The record of what was written (`None` when the decode gave none).
    fn finish(self) -> Result<Option<UnitPictures>, UnitError> {
        let Some(out) = self.out else {
            return Ok(None);
        };
        out.into_inner()
            .map_err(|e| e.into_error())
            .map_err(io_error(&self.path))?;
        let bytes = std::fs::metadata(&self.path)
            .map_err(io_error(&self.path))?
            .len();
        let file = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Some(UnitPictures {
            file,
            bytes,
            frames: self.frames,
            width: self.size.0,
            height: self.size.1,
        }))
    }
}

/// The pictures of a finished unit, read back from `path` with their frames; an error names
/// the file when its size does not match its record.
pub(crate) fn read_pictures(
    path: &std::path::Path,
    record: &UnitPictures,
) -> Result<Vec<(u64, reel_media::Picture)>, UnitError> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let blank = reel_media::Picture::filled(record.width, record.height, 0, 0);
    let picture_bytes: usize = blank.planes.iter().map(Vec::len).sum();
    if picture_bytes == 0 || bytes.len() != picture_bytes * record.frames.len() {
        return Err(UnitError::Stitch {
            path: path.to_path_buf(),
            detail: format!(
                "{} bytes for {} pictures of {}x{}",
                bytes.len(),
                record.frames.len(),
                record.width,
                record.height
            ),
        });
    }
    let mut pictures = Vec::with_capacity(record.frames.len());
    for (chunk, &frame) in bytes.chunks_exact(picture_bytes).zip(&record.frames) {
        let mut picture = blank.clone();
        let mut at = 0;
        for plane in &mut picture.planes {
            let len = plane.len();
            plane.copy_from_slice(&chunk[at..at + len]);
            at += len;
        }
        pictures.push((frame, picture));
    }
    Ok(pictures)
}
