//! The quality an encoded ladder actually reached: every frame of every video rendition
//! scored with VMAF against its source, the way the analysis scores its trials (the rendition
//! upscaled to the source's display size with Catmull-Rom), and set beside the analysis's
//! predictions.
//!
//! The source is decoded once; each rendition is decoded and scored on its own thread, fed the
//! source's pictures through a bounded channel, so memory does not grow with the title's
//! length and the renditions are scored in parallel.

use crate::{Analysis, LadderError, Pooled, Vmaf};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use reel_encoder::resize::{Filter, PlaneScaler};
use reel_encoder::{decode_pictures, demux, stall_limit, Event};
use reel_media::Picture;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// An encoded video rendition: its name (the ladder rung's) and its file.
#[derive(Debug, Clone)]
pub struct RenditionFile {
    pub name: String,
    pub path: PathBuf,
}

/// What a rendition measured against its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionQuality {
    /// Average kbit/s of the rendition's coded video samples.
    pub bitrate: f64,
    /// VMAF (vmaf_v0.6.1) of every frame, pooled.
    pub vmaf: Pooled,
    /// Frames scored: every frame of the title.
    pub frames: u64,
}

/// Pictures of the source a rendition's scorer may be behind by.
const REFERENCES_IN_FLIGHT: usize = 4;

/// Scores every frame of each of `renditions` against `source`, at the size the analysis
/// compares at ([`crate::display_size`]). `on_frame(n, total)` reports source frames decoded
/// so far, of about `total` (from the duration and frame rate). Renditions must have the
/// source's frames one for one (Reel's rungs keep the frame rate); any other count is an error
/// naming the file.
pub fn measure_renditions(
    source: &Path,
    renditions: &[RenditionFile],
    on_frame: &mut dyn FnMut(u64, u64),
) -> Result<Vec<RenditionQuality>, LadderError> {
    let info = reel_encoder::probe(source)?;
    let video = info.require_video()?;
    let display = crate::display_size(video);
    let total = (info.duration * video.frame_rate.as_f64()).round() as u64;
    let on_frame = &mut |n| on_frame(n, total);
    let stall = stall_limit();
    std::thread::scope(|scope| {
        let mut feeds = Vec::new();
        let mut scorers = Vec::new();
        for file in renditions {
            let (tx, rx) = bounded::<Arc<Picture>>(REFERENCES_IN_FLIGHT);
            feeds.push(Some(tx));
            scorers.push(scope.spawn(move || score_rendition(file, display, rx, stall)));
        }
        let fed = feed_references(source, display, renditions, &mut feeds, stall, on_frame);
        drop(feeds);
        let scored: Vec<Result<Scored, LadderError>> = scorers
            .into_iter()
            .map(|h| h.join().expect("a rendition's scorer panicked"))
            .collect();
        let fed = fed?;
        renditions
            .iter()
            .zip(scored)
            .map(|(file, s)| s?.measured(file, &fed))
            .collect()
    })
}

/// The source's pictures handed to the scorers.
struct Fed {
    frames: u64,
    /// The source was decoded to its end (not stopped because every scorer had ended).
    complete: bool,
}

/// Decodes the source at `display` and hands each picture to every scorer still running,
/// until the source ends or every scorer has.
fn feed_references(
    source: &Path,
    display: (u32, u32),
    renditions: &[RenditionFile],
    feeds: &mut [Option<Sender<Arc<Picture>>>],
    stall: Duration,
    on_frame: &mut dyn FnMut(u64),
) -> Result<Fed, LadderError> {
    let mut frames = 0u64;
    let mut complete = true;
    let mut stalled = None;
    decode_pictures(source, display, &[], &mut |_, _, picture| {
        let picture = Arc::new(picture);
        for (feed, file) in feeds.iter_mut().zip(renditions) {
            let Some(tx) = feed else { continue };
            match tx.send_timeout(picture.clone(), stall) {
                Ok(()) => {}
                // The scorer ended (its count is checked when it is joined).
                Err(SendTimeoutError::Disconnected(_)) => *feed = None,
                Err(SendTimeoutError::Timeout(_)) => {
                    stalled = Some(LadderError::Metric(format!(
                        "{}: measuring stalled: no frame scored for {} s at frame {frames}",
                        file.path.display(),
                        stall.as_secs()
                    )));
                    return false;
                }
            }
        }
        if feeds.iter().all(Option::is_none) {
            // This picture found no scorer: the renditions all ended before the source.
            complete = false;
            return false;
        }
        frames += 1;
        on_frame(frames);
        true
    })?;
    match stalled {
        Some(e) => Err(e),
        None => Ok(Fed { frames, complete }),
    }
}

/// A rendition's scores and coded size, before they are checked against the source.
struct Scored {
    scores: Vec<f64>,
    bytes: u64,
    seconds: f64,
}

impl Scored {
    fn measured(self, file: &RenditionFile, source: &Fed) -> Result<RenditionQuality, LadderError> {
        let frames = self.scores.len() as u64;
        if frames != source.frames || !source.complete {
            let more = if source.complete { "" } else { "more than " };
            return Err(LadderError::Metric(format!(
                "{}: {frames} frames where the source has {more}{}: a rendition is scored frame \
                 for frame against its source",
                file.path.display(),
                source.frames
            )));
        }
        let pairs: Vec<(f64, f64)> = self.scores.iter().map(|&s| (s, 1.0)).collect();
        let vmaf = Pooled::weighted(&pairs).ok_or_else(|| {
            LadderError::Metric(format!("{}: no frame scored", file.path.display()))
        })?;
        Ok(RenditionQuality {
            bitrate: if self.seconds > 0.0 {
                self.bytes as f64 * 8.0 / self.seconds / 1000.0
            } else {
                0.0
            },
            vmaf,
            frames,
        })
    }
}

/// Decodes one rendition and scores each of its frames against the next source picture.
fn score_rendition(
    file: &RenditionFile,
    display: (u32, u32),
    references: Receiver<Arc<Picture>>,
    stall: Duration,
) -> Result<Scored, LadderError> {
    let coded = coded_video(&file.path)?;
    let mut vmaf = SegmentedVmaf::new(display, FRAMES_PER_CONTEXT)?;
    let mut up = PlaneScaler::new(Filter::CatmullRom);
    let mut failed: Option<LadderError> = None;
    decode_pictures(&file.path, coded.size, &[], &mut |index, _, picture| {
        let reference = match references.recv_timeout(stall) {
            Ok(r) => r,
            Err(RecvTimeoutError::Disconnected) => {
                failed = Some(LadderError::Metric(format!(
                    "{}: more frames than the source (frame {index} has no source frame)",
                    file.path.display()
                )));
                return false;
            }
            Err(RecvTimeoutError::Timeout) => {
                failed = Some(LadderError::Metric(format!(
                    "{}: measuring stalled: no source frame for {} s at frame {index}",
                    file.path.display(),
                    stall.as_secs()
                )));
                return false;
            }
        };
        let scored = if coded.size == display {
            vmaf.push(reference, picture)
        } else {
            up.picture(&picture, display.0, display.1)
                .map_err(|e| LadderError::Metric(format!("{}: {e}", file.path.display())))
                .and_then(|d| vmaf.push(reference, d))
        };
        match scored {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(Scored {
        scores: vmaf.finish()?,
        bytes: coded.bytes,
        seconds: coded.seconds,
    })
}

/// Frames one libvmaf context scores before the next takes over.
const FRAMES_PER_CONTEXT: usize = 1024;

/// VMAF of a stream of any length in bounded memory. libvmaf keeps every frame's feature
/// scores until its context is closed (about 2.4 KB a frame: 430 MB a rung for a two-hour
/// title), so each context scores `span` frames and the next one takes over. A frame's score
/// depends on its neighbours through the motion feature (the frame before, and the one after
/// for `motion2`), so each context also reads the frame before its span (a primer) and the
/// frame after it (a lookahead), whose scores it drops: the scores are those of one context
/// reading the whole stream.
struct SegmentedVmaf {
    display: (u32, u32),
    span: usize,
    current: Vmaf,
    /// The current context began with a primer whose score is not kept.
    primed: bool,
    /// Frames read by the current context, primer included.
    read: usize,
    /// The last pair read, to prime the next context.
    last: Option<(Arc<Picture>, Picture)>,
    scores: Vec<f64>,
}

impl SegmentedVmaf {
    fn new(display: (u32, u32), span: usize) -> Result<SegmentedVmaf, LadderError> {
        Ok(SegmentedVmaf {
            display,
            span: span.max(1),
            current: Vmaf::with_threads(display.0, display.1, 1, 1)?,
            primed: false,
            read: 0,
            last: None,
            scores: Vec::new(),
        })
    }

    fn push(&mut self, reference: Arc<Picture>, distorted: Picture) -> Result<(), LadderError> {
        self.current.push(&reference, &distorted)?;
        self.read += 1;
        if self.read == usize::from(self.primed) + self.span + 1 {
            // This frame is the lookahead: close the span, then let a fresh context read the
            // span's last frame (its primer) and this one (the first of its span).
            let (primer_ref, primer_dist) = self.last.take().expect("a span has frames");
            let next = Vmaf::with_threads(self.display.0, self.display.1, 1, 1)?;
            let closed = std::mem::replace(&mut self.current, next);
            self.keep(closed, true)?;
            self.current.push(&primer_ref, &primer_dist)?;
            self.current.push(&reference, &distorted)?;
            self.primed = true;
            self.read = 2;
        }
        self.last = Some((reference, distorted));
        Ok(())
    }

    /// Keeps the scores of `context`'s span (without its primer, and without its lookahead
    /// when it had one).
    fn keep(&mut self, context: Vmaf, lookahead: bool) -> Result<(), LadderError> {
        let scores = context.finish()?;
        let end = scores.len() - usize::from(lookahead && !scores.is_empty());
        let start = usize::from(self.primed).min(end);
        self.scores.extend(scores[start..end].iter().map(|s| s.1));
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<f64>, LadderError> {
        let last = std::mem::replace(
            &mut self.current,
            Vmaf::with_threads(self.display.0, self.display.1, 1, 1)?,
        );
        self.keep(last, false)?;
        Ok(self.scores)
    }
}

/// A rendition's video track as its samples give it: picture size, coded bytes, duration.
struct CodedVideo {
    size: (u32, u32),
    bytes: u64,
    seconds: f64,
}

/// Reads the video track's samples (no decode) for its size and average bitrate.
fn coded_video(path: &Path) -> Result<CodedVideo, LadderError> {
    let mut video: Option<(u32, (u32, u32), u32)> = None; // track, size, timescale
    let (mut bytes, mut first, mut end) = (0u64, None::<i64>, 0i64);
    for event in demux(path)? {
        match event? {
            Event::Track(info) if video.is_none() => {
                if let Some(v) = info.video {
                    video = Some((info.id, (v.width, v.height), info.timescale));
                }
            }
            Event::Sample { track, sample } if video.is_some_and(|v| v.0 == track) => {
                bytes += sample.data.len() as u64;
                first = Some(first.map_or(sample.pts, |f| f.min(sample.pts)));
                end = end.max(sample.pts + i64::from(sample.duration));
            }
            _ => {}
        }
    }
    let (_, size, timescale) = video.ok_or_else(|| {
        LadderError::Metric(format!("{}: no video track to measure", path.display()))
    })?;
    Ok(CodedVideo {
        size,
        bytes,
        seconds: (end - first.unwrap_or(0)) as f64 / f64::from(timescale.max(1)),
    })
}

/// How far the analysis's predictions were from what the encoded rungs measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionError {
    /// Rungs with both a prediction and a measurement.
    pub rungs: usize,
    /// Mean absolute error, VMAF points.
    pub mean_absolute: f64,
    /// The largest error (measured minus predicted), sign kept.
    pub largest: f64,
}

impl PredictionError {
    /// The error over the measured `rungs`; `None` when none is.
    pub fn over(rungs: &[crate::ChosenRung]) -> Option<PredictionError> {
        let errors: Vec<f64> = rungs.iter().filter_map(|r| r.error()).collect();
        if errors.is_empty() {
            return None;
        }
        Some(PredictionError {
            rungs: errors.len(),
            mean_absolute: errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64,
            largest: errors
                .iter()
                .copied()
                .fold(0.0, |a: f64, e| if e.abs() > a.abs() { e } else { a }),
        })
    }
}

impl Analysis {
    /// Records what rung `name` measured (and the prediction error over the rungs measured so
    /// far); false when the analysis has no such rung.
    pub fn record_measured(&mut self, name: &str, measured: RenditionQuality) -> bool {
        let Some(rung) = self.rungs.iter_mut().find(|r| r.name == name) else {
            return false;
        };
        rung.measured = Some(measured);
        self.prediction_error = PredictionError::over(&self.rungs);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A moving picture: a gradient sliding `t` pixels, with a bright square.
    fn frame(t: u32) -> Picture {
        let mut p = Picture::filled(64, 64, 0, 128);
        for y in 0..64u32 {
            for x in 0..64u32 {
                let v = ((x * 3 + y + t * 5) % 200) as u8
                    + if (20..30).contains(&((x + t) % 64)) {
                        40
                    } else {
                        0
                    };
                p.planes[0][(y * 64 + x) as usize] = v;
            }
        }
        p
    }

    fn blurred(p: &Picture) -> Picture {
        let mut d = p.clone();
        for (i, v) in d.planes[0].iter_mut().enumerate() {
            let left = p.planes[0][i.saturating_sub(1)];
            *v = ((u16::from(*v) + u16::from(left)) / 2) as u8;
        }
        d
    }

    /// Spans of 4, 5 and 7 frames (primer and lookahead at every seam) give the scores of one
    /// context reading all 23 frames.
    #[test]
    fn segmented_scores_are_those_of_one_context() {
        let frames: Vec<Picture> = (0..23).map(frame).collect();
        let mut whole = Vmaf::with_threads(64, 64, 1, 1).unwrap();
        for f in &frames {
            whole.push(f, &blurred(f)).unwrap();
        }
        let whole: Vec<f64> = whole.finish().unwrap().into_iter().map(|s| s.1).collect();
        assert!(
            whole.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-6),
            "{whole:?}"
        );
        for span in [4, 5, 7, 23, 40] {
            let mut seg = SegmentedVmaf::new((64, 64), span).unwrap();
            for f in &frames {
                seg.push(Arc::new(f.clone()), blurred(f)).unwrap();
            }
            let seg = seg.finish().unwrap();
            assert_eq!(seg.len(), whole.len(), "span {span}");
            for (i, (a, b)) in seg.iter().zip(&whole).enumerate() {
                assert!((a - b).abs() < 1e-9, "span {span}, frame {i}: {a} vs {b}");
            }
        }
    }

    /// `testdata/analysis.json`: `reel analyze fixtures/out/noaudio_360p25.mp4 --heights 360,234
    /// --crfs 22,34 --report FILE` (two rungs), the source's path cut to its name.
    #[test]
    fn the_largest_error_keeps_its_sign() {
        let mut a: Analysis = serde_json::from_str(include_str!("testdata/analysis.json"))
            .expect("test analysis parses");
        assert_eq!(a.prediction_error, None);
        let m = |vmaf: f64| RenditionQuality {
            bitrate: 1000.0,
            vmaf: Pooled {
                mean: vmaf,
                harmonic_mean: vmaf,
                p5: vmaf,
                min: vmaf,
            },
            frames: 10,
        };
        let names: Vec<String> = a.rungs.iter().map(|r| r.name.clone()).collect();
        let predicted: Vec<f64> = a.rungs.iter().map(|r| r.predicted_vmaf).collect();
        assert!(a.record_measured(&names[0], m(predicted[0] + 1.0)));
        assert!(a.record_measured(&names[1], m(predicted[1] - 3.0)));
        assert!(!a.record_measured("no-such-rung", m(50.0)));
        let e = a.prediction_error.clone().unwrap();
        assert_eq!(e.rungs, 2);
        assert!((e.mean_absolute - 2.0).abs() < 1e-9);
        assert!((e.largest + 3.0).abs() < 1e-9);
    }
}
