//! `analyze`: from a source file to a per-title [`Ladder`], through a sampling plan, trial
//! encodes at every candidate resolution and quality, VMAF at the display resolution, the
//! convex hull and rung selection.

use crate::hull::{convex_hull, interpolate_curves, select_rungs, Constraints, TrialPoint};
use crate::metrics::{psnr, ssim_luma, Pooled};
use crate::sample::{
    activity, plan_windows, shots, Activity, FrameScan, SampleOptions, SceneCuts, Shot, Window,
};
use crate::search::{search, Ladderette, Measured, SearchLimits, SkipReason};
use crate::{LadderError, ReferenceMotion};
use rayon::prelude::*;
use reel_encoder::{
    decode_frames, decode_pictures, even, probe, scale_pictures, trial_encode, AudioSpec, Ladder,
    Rung, TrialSpec, VideoEncoder,
};
use reel_media::{Codec, Picture, Rational};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How far above the quality ceiling a height's trial must score before its costlier settings
/// are skipped.
const CEILING_MARGIN: f64 = 1.0;

/// VMAF points a taller height must lead a shorter one by, at the same bitrate, before the
/// shorter one's costlier settings are skipped.
const DOMINANCE_MARGIN: f64 = 1.0;

/// Settings expected to spend more than this many times the cheapest rate that reached the
/// ceiling are skipped.
const CEILING_RATE_SLACK: f64 = 1.25;

/// VMAF points a rung's prediction must clear the quality floor by.
const FLOOR_MARGIN: f64 = 3.0;

/// Points interpolated per gap between neighbouring trials of one resolution, plus one.
const INTERPOLATION_STEPS: usize = 4;

/// Candidate heights (16:9 names; widths follow the source's aspect ratio).
pub const CANDIDATE_HEIGHTS: [u32; 7] = [1080, 720, 540, 432, 360, 270, 234];

/// What the analysis tries and what the ladder may contain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnalyzeOptions {
    /// Encoder of the trials and of the ladder's rungs (x264 for H.264; SVT-AV1 or rav1e for
    /// AV1). Start from [`AnalyzeOptions::for_codec`] or [`AnalyzeOptions::for_encoder`] to
    /// get the encoder's settings grid and speeds.
    pub encoder: VideoEncoder,
    /// Candidate heights; those above the source are skipped.
    pub heights: Vec<u32>,
    /// Constant-quality settings tried at every height, on the encoder's scale: x264 or
    /// SVT-AV1 CRFs, or rav1e quantizers (0-255). Trials are constant-quality whatever the
    /// rungs are: a window encoded on its own to a bitrate target starts with x264's rate
    /// control unsettled and spends the target evenly over the window, where a rung's rate
    /// control has settled and gives hard stretches more than easy ones; such trials predicted
    /// real titles' low rungs 5 to 12 VMAF points low (issue 24). A bitrate rung is chosen at
    /// the bitrate the constant-quality trials pooled over the windows spend.
    pub qualities: Vec<u32>,
    /// Encoder speed of the trials on the encoder's scale: x264 preset (1 placebo ... 10
    /// ultrafast), SVT-AV1 preset (0 ... 13 fastest) or rav1e speed (0 ... 10 fastest).
    pub trial_speed: u8,
    /// Encoder speed the ladder's rungs are encoded with (as `trial_speed`).
    pub speed: u8,
    pub constraints: Constraints,
    pub sample: SampleOptions,
    /// VMAF's spatial features (and PSNR/SSIM) on one frame in n of a window, the middle one
    /// of each run of n. Keep n odd: the encoder's mini-GOPs are 4 frames (3 B-frames and a
    /// reference), and a stride of 4 scores one kind of frame only. Measured against scoring
    /// every frame on the bench titles (20 trials each): a stride of 5 reads 0.05 and 0.19
    /// points high on average (at most 1.1), a stride of 4 1.6 points (at most 5.1).
    pub metric_subsample: u32,
    /// How the ladder's rungs spend bits: the predicted bitrate as a target (as a fixed
    /// ladder's rungs do; the default) or the chosen CRF.
    pub rate_control: RungRateControl,
    /// Copied into the ladder.
    pub keyframe_interval: f64,
    pub audio: Option<AudioSpec>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            encoder: VideoEncoder::X264,
            heights: CANDIDATE_HEIGHTS.to_vec(),
            qualities: vec![16, 22, 28, 34, 40, 46],
            trial_speed: 8,
            speed: 8,
            constraints: Constraints::default(),
            sample: SampleOptions::default(),
            metric_subsample: 5,
            rate_control: RungRateControl::Bitrate,
            keyframe_interval: 2.0,
            audio: Some(AudioSpec {
                codec: Codec::Aac,
                bitrate: 128,
                max_channels: 2,
                surround: true,
            }),
        }
    }
}

impl AnalyzeOptions {
    /// The defaults for `codec` with its default encoder ([`VideoEncoder::default_for`]).
    ///
    /// ```
    /// use reel_ladder::AnalyzeOptions;
    /// use reel_media::Codec;
    /// let o = AnalyzeOptions::for_codec(Codec::Av1);
    /// assert_eq!((o.codec(), o.speed), (Codec::Av1, 10));
    /// ```
    pub fn for_codec(codec: Codec) -> AnalyzeOptions {
        VideoEncoder::default_for(codec)
            .map(AnalyzeOptions::for_encoder)
            .unwrap_or_default()
    }

    /// The defaults for `encoder`: x264 as [`Default`]; for AV1, the encoder at speed 10 (as
    /// the built-in AV1 ladder encodes) for trials and rungs, constant-quality trials and
    /// rungs over the encoder's useful range (rav1e quantizers 50-230, SVT-AV1 CRFs 13-58,
    /// the same quantizer indices). AV1 trials do not target a bitrate: rav1e's rate control
    /// does not settle within a sample window (a 1-second window came out at the same size
    /// for targets 2.5x apart), so its trials would not predict its rungs.
    pub fn for_encoder(encoder: VideoEncoder) -> AnalyzeOptions {
        let base = AnalyzeOptions::default();
        let av1 = |qualities: Vec<u32>| AnalyzeOptions {
            encoder,
            qualities,
            trial_speed: 10,
            speed: 10,
            rate_control: RungRateControl::Crf,
            ..base.clone()
        };
        match encoder {
            VideoEncoder::Rav1e => av1(vec![50, 80, 110, 140, 170, 200, 230]),
            VideoEncoder::SvtAv1 => av1(vec![13, 20, 28, 35, 43, 50, 58]),
            VideoEncoder::X264 => base,
        }
    }

    /// The codec of the trials and the ladder.
    pub fn codec(&self) -> Codec {
        self.encoder.codec()
    }
}

/// How the chosen rungs are to be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RungRateControl {
    /// Target the predicted bitrate (x264 CBR with a VBV, as the fixed ladder is encoded):
    /// each rung's bandwidth is what the manifest says.
    Bitrate,
    /// Constant quality at the chosen CRF: the bitrate follows the content.
    Crf,
}

/// The source as the analysis saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceSummary {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    /// The size renditions are compared at: the source's height, square pixels.
    pub display_width: u32,
    pub display_height: u32,
    pub frame_rate: Rational,
    pub duration: f64,
    pub frames: u64,
    /// Key frames the scan found (windows start on them where they can).
    #[serde(default)]
    pub key_frames: u64,
}

/// One trial encode's measured rate and quality, over all windows (weighted).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    pub width: u32,
    pub height: u32,
    /// The constant-quality setting (x264 or SVT-AV1 CRF, rav1e quantizer).
    pub setting: u32,
    /// Measured kbit/s.
    pub bitrate: f64,
    pub vmaf: Pooled,
    pub psnr_y: Pooled,
    pub ssim_y: Pooled,
    /// Frames scored.
    pub frames_scored: usize,
}

impl Trial {
    /// The point the hull is built from: mean VMAF against bitrate.
    pub fn point(&self) -> TrialPoint {
        TrialPoint {
            width: self.width,
            height: self.height,
            setting: self.setting as f64,
            bitrate: self.bitrate,
            score: self.vmaf.mean,
            interpolated: false,
        }
    }
}

/// A trial of the grid that was not run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkippedTrial {
    pub height: u32,
    pub setting: u32,
    /// Why the search did not run it.
    pub reason: String,
}

/// A rung of the result with what the trials predict for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChosenRung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// The constant-quality setting of the trials it comes from (interpolated and rounded).
    pub setting: u32,
    pub predicted_bitrate: f64,
    pub predicted_vmaf: f64,
    /// The prediction is interpolated between two trials of this resolution (the CRF is
    /// rounded to x264's whole steps).
    pub interpolated: bool,
    /// What the encoded rung measured over the whole title, once it has been encoded and
    /// measured ([`crate::measure_renditions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<crate::RenditionQuality>,
}

impl ChosenRung {
    /// Measured minus predicted VMAF, once measured.
    pub fn error(&self) -> Option<f64> {
        self.measured
            .as_ref()
            .map(|m| m.vmaf.mean - self.predicted_vmaf)
    }
}

/// Everything the analysis found; serialised as the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    pub source: SourceSummary,
    pub options: AnalyzeOptions,
    pub shots: Vec<Shot>,
    pub windows: Vec<Window>,
    /// Seconds of the title encoded by each trial.
    pub sampled_seconds: f64,
    pub trials: Vec<Trial>,
    /// Grid entries the search did not run, each with its reason.
    pub skipped_trials: Vec<SkippedTrial>,
    pub hull: Vec<TrialPoint>,
    pub rungs: Vec<ChosenRung>,
    /// The ladder to encode: per-title rungs, or the fixed ladder when `fallback` says why.
    pub ladder: Ladder,
    /// Why the per-title analysis was not used, when it was not.
    pub fallback: Option<String>,
    /// Wall-clock seconds the analysis took.
    pub seconds: f64,
    /// Where they went.
    pub phases: Phases,
    /// How far the predictions were from the encoded rungs, once they are measured
    /// ([`Analysis::record_measured`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_error: Option<crate::PredictionError>,
}

/// Wall-clock seconds of each phase of an analysis.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Phases {
    /// Decoding the whole title small for shots and activity.
    pub scan: f64,
    /// Decoding the probe window and scaling it to every height.
    pub probe_decode: f64,
    /// The settings search on the probe window.
    pub search: f64,
    /// The kept settings on the other windows (decode included).
    pub other_windows: f64,
}

/// Progress of an analysis, for a caller to show.
#[derive(Debug, Clone)]
pub enum AnalyzeEvent {
    /// Scanning the whole title for shots: frames so far.
    Scanning { frames: u64 },
    /// Trials to run in the next phase: at most this many on the probe window (the search
    /// skips some), then exactly this many on the other windows.
    Planned { trials: usize },
    /// One more trial on one window done.
    TrialDone,
}

/// The fixed ladder (Apple's HLS authoring-spec rungs) trimmed to the source: rungs no taller
/// than it, or one rung at its height with the lowest bitrate when it is below them all.
pub fn fixed_ladder(source_height: u32) -> Ladder {
    trimmed(Ladder::builtin("fixed").expect("built in"), source_height)
}

/// The ladder an analysis for `codec` falls back to: the fixed (H.264) ladder, or for AV1 the
/// built-in AV1 ladder, trimmed to the source.
fn fallback_ladder(codec: Codec, source_height: u32) -> Ladder {
    match codec {
        Codec::Av1 => trimmed(Ladder::builtin("av1").expect("built in"), source_height),
        _ => fixed_ladder(source_height),
    }
}

/// `ladder` without rungs taller than the source (one rung at its height when none is left).
fn trimmed(mut ladder: Ladder, source_height: u32) -> Ladder {
    let lowest = ladder.rungs.last().cloned().expect("fixed has rungs");
    ladder.rungs.retain(|r| r.height <= source_height);
    if ladder.rungs.is_empty() {
        let h = even(source_height as f64);
        ladder.rungs.push(Rung {
            name: format!("{h}p"),
            height: h,
            ..lowest
        });
    }
    ladder
}

/// What one analysis step decides when the per-title ladder cannot be made: the fixed
/// ladder stands in (with the reason), or the analysis fails.
enum Stop {
    Fallback(String),
    Error(LadderError),
}

impl From<LadderError> for Stop {
    fn from(e: LadderError) -> Self {
        Stop::Error(e)
    }
}

impl From<reel_encoder::EncodeError> for Stop {
    fn from(e: reel_encoder::EncodeError) -> Self {
        Stop::Error(e.into())
    }
}

/// A failed quality metric makes the analysis fall back; other errors fail it.
fn metric_fallback(e: LadderError) -> Stop {
    match e {
        LadderError::Metric(m) => Stop::Fallback(format!("quality metric failed: {m}")),
        other => Stop::Error(other),
    }
}

/// The source's picture as the analysis compares it: upright, square pixels.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// Display aspect ratio.
    dar: f64,
    display_width: u32,
    display_height: u32,
    frame_rate: Rational,
    /// Seconds per frame.
    frame_seconds: f64,
}

impl Geometry {
    fn fps(&self) -> f64 {
        self.frame_rate.as_f64()
    }

    /// The width of a picture `height` lines high at the source's aspect ratio.
    fn width_at(&self, height: u32) -> u32 {
        even(height as f64 * self.dar)
    }
}

/// One entry of the trial grid: a size and a constant-quality setting (x264 or SVT-AV1 CRF,
/// rav1e quantizer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GridPoint {
    width: u32,
    height: u32,
    setting: u32,
}

/// The trials the analysis may run, and how each height's are ordered for the search.
struct TrialGrid {
    points: Vec<GridPoint>,
    /// Each height's grid indices, cheapest first: the highest CRF first.
    chains: Vec<Vec<usize>>,
    heights: Vec<u32>,
    /// kbit/s the rungs may spend (the constraints' and the device level's).
    max_bitrate: f64,
}

/// One trial on one window: its coded bytes (the key frame's counted at the rungs' key-frame
/// share, see [`trial_window`]) and the scores of its scored frames.
struct TrialScore {
    bytes: f64,
    frames: Vec<FrameScore>,
}

struct FrameScore {
    vmaf: f64,
    psnr_y: f64,
    ssim_y: f64,
}

impl TrialScore {
    fn mean_vmaf(&self) -> f64 {
        self.frames.iter().map(|f| f.vmaf).sum::<f64>() / self.frames.len().max(1) as f64
    }
}

/// One grid point's windows so far, weighted by each window's share of the title.
#[derive(Default)]
struct Accumulator {
    /// Sum of weight x bits/s.
    rate: f64,
    weight: f64,
    vmaf: Vec<(f64, f64)>,
    psnr: Vec<(f64, f64)>,
    ssim: Vec<(f64, f64)>,
}

impl Accumulator {
    fn add(&mut self, window: &Window, seconds: f64, score: TrialScore) {
        self.rate += window.weight * score.bytes * 8.0 / seconds;
        self.weight += window.weight;
        let per = window.weight / score.frames.len().max(1) as f64;
        for f in score.frames {
            self.vmaf.push((f.vmaf, per));
            self.psnr.push((f.psnr_y, per));
            self.ssim.push((f.ssim_y, per));
        }
    }
}

/// What the settings search on the probe window decided.
struct Searched {
    /// The probe window: the window of the most complex shot, which the search ran on.
    probe: usize,
    /// Grid indices run (on the probe window, so on every window).
    active: Vec<bool>,
    /// Per chain and position, why the search skipped a setting.
    skipped: Vec<Vec<Option<SkipReason>>>,
}

/// Analyses `source` and returns the per-title ladder with everything measured on the way.
///
/// Bad input that still has a usable video stream (too short, a still picture, smaller than
/// every candidate, a metric that cannot be computed, constraints nothing meets) gives the
/// fixed ladder, trimmed, with `fallback` saying why; a file that cannot be read is an error.
pub fn analyze(
    source: &Path,
    opts: &AnalyzeOptions,
    on_event: &mut dyn FnMut(AnalyzeEvent),
) -> Result<Analysis, LadderError> {
    let started = Instant::now();
    let (mut analysis, geometry) = start(source, opts)?;
    let outcome = (|| {
        let level = device_level(opts)?;
        let heights = candidate_heights(&geometry, opts, level.as_ref())?;
        scan_title(&mut analysis, source, &geometry, opts, started, on_event)?;
        let grid = TrialGrid::new(heights, &geometry, opts, level.as_ref());
        let mut acc: Vec<Accumulator> =
            grid.points.iter().map(|_| Accumulator::default()).collect();
        let searched = probe_window(
            &mut analysis,
            source,
            &geometry,
            opts,
            &grid,
            &mut acc,
            on_event,
        )?;
        other_windows(
            &mut analysis,
            source,
            &geometry,
            opts,
            &grid,
            &searched,
            &mut acc,
            on_event,
        )?;
        pool_trials(&mut analysis, &grid, &searched, &acc)?;
        choose_rungs(&mut analysis, opts, grid.max_bitrate)
    })();
    analysis.seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => Ok(analysis),
        Err(Stop::Fallback(why)) => {
            analysis.fallback = Some(why);
            Ok(analysis)
        }
        Err(Stop::Error(e)) => Err(e),
    }
}

/// The size renditions of `video` are compared with it at: upright, square pixels, the
/// source's height (even).
pub fn display_size(video: &reel_encoder::VideoStream) -> (u32, u32) {
    let height = even(video.upright_height() as f64);
    (even(height as f64 * video.display_aspect()), height)
}

/// Probes the source and checks the options: the analysis so far (the fallback ladder in
/// place) and the geometry trials are compared at.
fn start(source: &Path, opts: &AnalyzeOptions) -> Result<(Analysis, Geometry), LadderError> {
    let info = probe(source)?;
    let video = info.require_video()?;
    if let Some(detail) = video.unsupported() {
        return Err(reel_encoder::EncodeError::Unsupported {
            path: source.to_path_buf(),
            detail,
        }
        .into());
    }
    let (display_width, display_height) = display_size(video);
    let frame_rate = if video.frame_rate.num > 0 {
        video.frame_rate
    } else {
        Rational::new(25, 1)
    };
    let geometry = Geometry {
        dar: video.display_aspect(),
        display_width,
        display_height,
        frame_rate,
        frame_seconds: frame_rate.den as f64 / frame_rate.num as f64,
    };
    let mut ladder = fallback_ladder(opts.codec(), display_height);
    ladder.keyframe_interval = opts.keyframe_interval;
    ladder.audio = opts.audio.clone();
    let analysis = Analysis {
        source: SourceSummary {
            path: source.to_path_buf(),
            width: video.width,
            height: video.height,
            display_width: geometry.display_width,
            display_height,
            frame_rate,
            duration: info.duration,
            frames: 0,
            key_frames: 0,
        },
        options: opts.clone(),
        shots: Vec::new(),
        windows: Vec::new(),
        sampled_seconds: 0.0,
        trials: Vec::new(),
        skipped_trials: Vec::new(),
        hull: Vec::new(),
        rungs: Vec::new(),
        ladder,
        fallback: None,
        seconds: 0.0,
        phases: Phases::default(),
        prediction_error: None,
    };
    if opts.codec() == Codec::Av1 && opts.rate_control == RungRateControl::Bitrate {
        return Err(LadderError::Unsupported(
            "AV1 ladders are analysed with constant-quantizer trials and rungs (rate control \
             crf): rav1e's bitrate control does not settle within a sample window"
                .into(),
        ));
    }
    if !matches!(opts.codec(), Codec::H264 | Codec::Av1) {
        return Err(LadderError::Unsupported(format!(
            "per-title analysis trial-encodes video (H.264 or AV1), not {}",
            opts.codec().name()
        )));
    }
    Ok((analysis, geometry))
}

fn device_level(opts: &AnalyzeOptions) -> Result<Option<crate::device::Level>, Stop> {
    let Some(name) = &opts.constraints.level else {
        return Ok(None);
    };
    crate::device::Level::parse(opts.codec(), name)
        .map(Some)
        .map_err(|e| Stop::Error(LadderError::Unsupported(format!("constraints.level: {e}"))))
}

/// The heights to try, tallest first: the candidates up to the source and the constraints,
/// the source's own height between two candidates, none the devices' level refuses.
fn candidate_heights(
    g: &Geometry,
    opts: &AnalyzeOptions,
    level: Option<&crate::device::Level>,
) -> Result<Vec<u32>, Stop> {
    let max_height = opts.constraints.max_height;
    let mut heights: Vec<u32> = opts
        .heights
        .iter()
        .copied()
        .filter(|&h| h <= g.display_height && h <= max_height)
        .map(|h| even(h as f64))
        .collect();
    // A source between two candidates is also tried at its own height, as ladders get a rung
    // of it (one below every candidate falls back to the fixed ladder, below).
    if !heights.is_empty()
        && g.display_height <= max_height
        && reel_encoder::needs_own_height(opts.heights.iter().copied(), g.display_height)
    {
        heights.push(even(g.display_height as f64));
    }
    heights.sort_unstable_by(|a, b| b.cmp(a));
    heights.dedup();
    let fps = g.fps();
    let (heights, beyond_level): (Vec<u32>, Vec<u32>) = heights
        .into_iter()
        .partition(|&h| level.is_none_or(|l| l.admits(g.width_at(h), h, fps)));
    if let (true, Some(l)) = (heights.is_empty() && !beyond_level.is_empty(), level) {
        return Err(Stop::Fallback(format!(
            "no candidate height fits {} level {} at {fps:.3} frames/s (the smallest tried: {} lines)",
            opts.codec().name(),
            l.name,
            beyond_level.iter().min().copied().unwrap_or(0)
        )));
    }
    if heights.is_empty() {
        let smallest = opts.heights.iter().min().copied().unwrap_or(0);
        return Err(Stop::Fallback(format!(
            "the source is {} lines high, below the smallest candidate ({smallest})",
            g.display_height
        )));
    }
    Ok(heights)
}

/// Pass 1: small pictures of the whole title for shots and activity, then the sample windows.
fn scan_title(
    analysis: &mut Analysis,
    source: &Path,
    g: &Geometry,
    opts: &AnalyzeOptions,
    started: Instant,
    on_event: &mut dyn FnMut(AnalyzeEvent),
) -> Result<(), Stop> {
    let small_w = even(256.0f64.min(g.display_width as f64));
    let small_h = even(small_w as f64 / g.dar);
    let mut cuts = SceneCuts::new(small_w, small_h, (g.frame_rate.num, g.frame_rate.den), 12);
    let mut times = Vec::new();
    let mut act: Vec<Activity> = Vec::new();
    let mut previous: Option<Picture> = None;
    let mut key_frames = Vec::new();
    let frames = decode_frames(source, (small_w, small_h), &[], &mut |f| {
        let p = f.picture;
        if f.key_frame {
            key_frames.push(times.len());
        }
        act.push(activity(&p, previous.as_ref()));
        times.push(f.seconds);
        cuts.push(&p);
        previous = Some(p);
        if f.index % 250 == 0 {
            on_event(AnalyzeEvent::Scanning { frames: f.index });
        }
        true
    })?;
    analysis.source.key_frames = key_frames.len() as u64;
    analysis.source.frames = frames;
    let cuts = cuts.finish();
    analysis.phases.scan = started.elapsed().as_secs_f64();
    let duration = frames as f64 * g.frame_seconds;
    if frames < 2 || act.iter().skip(1).all(|a| a.temporal == 0.0) {
        return Err(Stop::Fallback(format!(
            "a still picture ({frames} frame{}, no change between frames): nothing to analyse",
            if frames == 1 { "" } else { "s" }
        )));
    }
    if duration + 1e-9 < opts.sample.window_seconds {
        return Err(Stop::Fallback(format!(
            "{duration:.2} s long, shorter than one {} s sample window",
            opts.sample.window_seconds
        )));
    }
    analysis.shots = shots(&times, &act, &cuts, g.frame_seconds);
    let scan = FrameScan {
        times,
        activity: act,
        key_frames,
    };
    analysis.windows = plan_windows(&analysis.shots, &opts.sample, &scan, opts.keyframe_interval);
    analysis.sampled_seconds = analysis
        .windows
        .iter()
        .map(|w| w.end_seconds - w.start_seconds)
        .sum();
    if analysis.windows.is_empty() {
        return Err(Stop::Fallback("no sample window could be planned".into()));
    }
    Ok(())
}

impl TrialGrid {
    /// Every height with every constant-quality setting.
    fn new(
        heights: Vec<u32>,
        g: &Geometry,
        opts: &AnalyzeOptions,
        level: Option<&crate::device::Level>,
    ) -> Self {
        let max_bitrate = level.map_or(opts.constraints.max_bitrate, |l| {
            opts.constraints.max_bitrate.min(l.max_kbps())
        });
        let points: Vec<GridPoint> = heights
            .iter()
            .flat_map(|&height| {
                let width = g.width_at(height);
                opts.qualities.iter().map(move |&setting| GridPoint {
                    width,
                    height,
                    setting,
                })
            })
            .collect();
        let chains = heights
            .iter()
            .map(|&h| {
                let mut c: Vec<usize> = (0..points.len())
                    .filter(|&i| points[i].height == h)
                    .collect();
                c.sort_by(|&a, &b| points[b].setting.cmp(&points[a].setting));
                c
            })
            .collect();
        TrialGrid {
            points,
            chains,
            heights,
            max_bitrate,
        }
    }

    /// Runs grid point `i` on a window: `refs` at display size, `input` at the point's size.
    fn run(
        &self,
        i: usize,
        g: &Geometry,
        opts: &AnalyzeOptions,
        refs: &[Picture],
        motion: &ReferenceMotion,
        input: &[Picture],
    ) -> Result<TrialScore, LadderError> {
        let p = self.points[i];
        let spec = TrialSpec {
            encoder: opts.encoder,
            width: p.width,
            height: p.height,
            rate: reel_encoder::RateControl::Quality(p.setting),
            speed: opts.trial_speed,
            frame_rate: g.frame_rate,
            display: (g.display_width, g.display_height),
            score_every: opts.metric_subsample.max(1),
            gop: Some(reel_encoder::keyframe_frames(opts.keyframe_interval, g.frame_rate) as u32),
        };
        let key_frames = input.len() as f64 / (opts.keyframe_interval * g.fps()).max(1.0);
        trial_window(refs, motion, input, &spec, key_frames)
    }
}

/// A window's frames at every height in `heights`.
fn scale_to(
    refs: &[Picture],
    heights: &[u32],
    g: &Geometry,
) -> Result<Vec<(u32, Vec<Picture>)>, LadderError> {
    heights
        .par_iter()
        .map(|&h| {
            let size = (g.width_at(h), h);
            let s = if size == (g.display_width, g.display_height) {
                refs.to_vec()
            } else {
                scale_pictures(refs, size, g.frame_rate)?
            };
            Ok((h, s))
        })
        .collect()
}

/// The windows' decode ranges, half a frame early so that each starts on its first frame.
fn decode_ranges(analysis: &Analysis, g: &Geometry) -> Vec<(f64, f64)> {
    analysis
        .windows
        .iter()
        .map(|w| {
            (
                w.start_seconds - g.frame_seconds / 2.0,
                w.end_seconds - g.frame_seconds / 2.0,
            )
        })
        .collect()
}

/// Pass 2: the probe, the window of the most complex shot, at display size; the search
/// decides on it which settings are worth running at each height.
fn probe_window(
    analysis: &mut Analysis,
    source: &Path,
    g: &Geometry,
    opts: &AnalyzeOptions,
    grid: &TrialGrid,
    acc: &mut [Accumulator],
    on_event: &mut dyn FnMut(AnalyzeEvent),
) -> Result<Searched, Stop> {
    let probe = most_complex_window(analysis);
    on_event(AnalyzeEvent::Planned {
        trials: grid.points.len(),
    });
    let phase = Instant::now();
    let mut refs: Vec<Picture> = Vec::new();
    decode_pictures(
        source,
        (g.display_width, g.display_height),
        &decode_ranges(analysis, g)[probe..=probe],
        &mut |_, _, p| {
            refs.push(p);
            true
        },
    )?;
    if refs.is_empty() {
        return Err(Stop::Fallback(format!(
            "no frame decoded in the sample window at {:.2} s",
            analysis.windows[probe].start_seconds
        )));
    }
    let frames = refs.len();
    let seconds = frames as f64 * g.frame_seconds;
    let scaled = scale_to(&refs, &grid.heights, g)?;
    let motion = ReferenceMotion::compute(&refs)?;
    analysis.phases.probe_decode = phase.elapsed().as_secs_f64();
    let phase = Instant::now();
    let ladderettes: Vec<Ladderette> = grid
        .chains
        .iter()
        .map(|c| Ladderette {
            settings: c.iter().map(|&i| (i, None)).collect(),
        })
        .collect();
    let limits = SearchLimits {
        floor: opts.constraints.quality_floor,
        ceiling: opts.constraints.quality_ceiling + CEILING_MARGIN,
        dominance_margin: DOMINANCE_MARGIN,
        rate_slack: CEILING_RATE_SLACK,
        min_rate: opts.constraints.min_bitrate * 1000.0 / opts.constraints.step_ratio.max(1.0),
    };
    let results = std::sync::Mutex::new(Vec::new());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let searched = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let tx = tx;
            search(
                &ladderettes,
                limits,
                rayon::current_num_threads(),
                &|h, pos| {
                    let i = grid.chains[h][pos];
                    let score = grid.run(i, g, opts, &refs, &motion, &scaled[h].1)?;
                    let _ = tx.send(());
                    let measured = Measured {
                        rate: score.bytes * 8.0 / seconds,
                        vmaf: score.mean_vmaf(),
                    };
                    results.lock().expect("probe results").push((i, score));
                    Ok::<_, LadderError>(measured)
                },
            )
        });
        for () in rx.iter() {
            on_event(AnalyzeEvent::TrialDone);
        }
        worker.join().expect("search thread")
    });
    let outcome = searched.map_err(metric_fallback)?;
    analysis.phases.search = phase.elapsed().as_secs_f64();
    let mut active = vec![false; grid.points.len()];
    for (i, score) in results.into_inner().expect("probe results") {
        active[i] = true;
        acc[i].add(&analysis.windows[probe], seconds, score);
    }
    Ok(Searched {
        probe,
        active,
        skipped: outcome.skipped,
    })
}

/// Pass 3: the other windows, decoded in one pass and run one at a time, each with the
/// settings the search kept.
#[allow(clippy::too_many_arguments)]
fn other_windows(
    analysis: &mut Analysis,
    source: &Path,
    g: &Geometry,
    opts: &AnalyzeOptions,
    grid: &TrialGrid,
    searched: &Searched,
    acc: &mut [Accumulator],
    on_event: &mut dyn FnMut(AnalyzeEvent),
) -> Result<(), Stop> {
    let phase = Instant::now();
    let active: Vec<usize> = (0..grid.points.len())
        .filter(|&i| searched.active[i])
        .collect();
    let active_heights: Vec<u32> = grid
        .heights
        .iter()
        .copied()
        .filter(|&h| active.iter().any(|&i| grid.points[i].height == h))
        .collect();
    let others: Vec<usize> = (0..analysis.windows.len())
        .filter(|&w| w != searched.probe)
        .collect();
    if others.is_empty() {
        analysis.phases.other_windows = phase.elapsed().as_secs_f64();
        return Ok(());
    }
    on_event(AnalyzeEvent::Planned {
        trials: active.len() * others.len(),
    });
    let ranges = decode_ranges(analysis, g);
    let other_ranges: Vec<(f64, f64)> = others.iter().map(|&w| ranges[w]).collect();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let run_window = |refs: &[Picture]| {
        let scaled = scale_to(refs, &active_heights, g)?;
        let motion = ReferenceMotion::compute(refs)?;
        active
            .par_iter()
            .map_with(tx.clone(), |tx, &i| {
                let input = &scaled
                    .iter()
                    .find(|s| s.0 == grid.points[i].height)
                    .expect("scaled")
                    .1;
                let score = grid.run(i, g, opts, refs, &motion, input)?;
                let _ = tx.send(());
                Ok((i, score))
            })
            .collect::<Result<Vec<_>, LadderError>>()
    };
    let windows = &analysis.windows;
    let mut finish_window = |w: usize, refs: Vec<Picture>, acc: &mut [Accumulator]| {
        let results = run_window(&refs);
        while rx.try_recv().is_ok() {
            on_event(AnalyzeEvent::TrialDone);
        }
        let seconds = refs.len() as f64 * g.frame_seconds;
        for (i, score) in results? {
            acc[i].add(&windows[w], seconds, score);
        }
        Ok::<(), LadderError>(())
    };
    let mut current: Option<usize> = None;
    let mut frames_in: Vec<Picture> = Vec::new();
    let mut failure: Option<LadderError> = None;
    decode_pictures(
        source,
        (g.display_width, g.display_height),
        &other_ranges,
        &mut |_, t, p| {
            let w = other_ranges
                .iter()
                .position(|&(a, b)| t >= a && t < b)
                .map(|k| others[k]);
            if w != current {
                if let Some(done) = current {
                    if let Err(e) = finish_window(done, std::mem::take(&mut frames_in), acc) {
                        failure = Some(e);
                        return false;
                    }
                }
                current = w;
            }
            frames_in.push(p);
            true
        },
    )?;
    if let (None, Some(done)) = (&failure, current) {
        if let Err(e) = finish_window(done, std::mem::take(&mut frames_in), acc) {
            failure = Some(e);
        }
    }
    analysis.phases.other_windows = phase.elapsed().as_secs_f64();
    match failure {
        Some(e) => Err(metric_fallback(e)),
        None => Ok(()),
    }
}

/// The probe window: the window of the most complex shot.
fn most_complex_window(analysis: &Analysis) -> usize {
    let complexity = |w: &Window| analysis.shots[w.shot].complexity;
    (0..analysis.windows.len())
        .max_by(|&a, &b| {
            complexity(&analysis.windows[a]).total_cmp(&complexity(&analysis.windows[b]))
        })
        .expect("windows")
}

/// Each grid point's windows pooled into a trial, or the search's reason for skipping it.
fn pool_trials(
    analysis: &mut Analysis,
    grid: &TrialGrid,
    searched: &Searched,
    acc: &[Accumulator],
) -> Result<(), Stop> {
    for (i, (p, a)) in grid.points.iter().zip(acc).enumerate() {
        let GridPoint {
            width,
            height,
            setting,
        } = *p;
        if !searched.active[i] {
            let reason = grid
                .chains
                .iter()
                .zip(&searched.skipped)
                .find_map(|(c, why)| c.iter().position(|&j| j == i).and_then(|p| why[p]))
                .map_or("not reached by the search", SkipReason::describe);
            analysis.skipped_trials.push(SkippedTrial {
                height,
                setting,
                reason: reason.to_string(),
            });
            continue;
        }
        let (Some(vmaf), Some(psnr_y), Some(ssim_y)) = (
            Pooled::weighted(&a.vmaf),
            Pooled::weighted(&a.psnr),
            Pooled::weighted(&a.ssim),
        ) else {
            return Err(Stop::Fallback(format!(
                "no frame of the {height}p trial at setting {setting} could be scored"
            )));
        };
        analysis.trials.push(Trial {
            width,
            height,
            setting,
            bitrate: a.rate / a.weight / 1000.0,
            vmaf,
            psnr_y,
            ssim_y,
            frames_scored: a.vmaf.len(),
        });
    }
    Ok(())
}

/// The convex hull of the trials (interpolated between settings) and the rungs on it.
fn choose_rungs(
    analysis: &mut Analysis,
    opts: &AnalyzeOptions,
    max_bitrate: f64,
) -> Result<(), Stop> {
    let points: Vec<TrialPoint> = analysis.trials.iter().map(Trial::point).collect();
    // The hull is taken over the useful range only: a point far below the quality floor (a
    // tiny picture at a high CRF scores near 0) would otherwise anchor a chord that hides every
    // point between it and the top.
    let floor = opts.constraints.quality_floor;
    let useful: Vec<TrialPoint> = interpolate_curves(&points, INTERPOLATION_STEPS)
        .into_iter()
        .filter(|p| p.score >= floor)
        .collect();
    if useful.is_empty() {
        return Err(Stop::Fallback(format!(
            "no trial reaches the quality floor (VMAF {floor})"
        )));
    }
    analysis.hull = convex_hull(&useful);
    // Rungs keep a margin above the floor: a prediction from samples is a few points off.
    let mut selection = opts.constraints.clone();
    selection.quality_floor += FLOOR_MARGIN;
    selection.max_bitrate = max_bitrate;
    let chosen =
        select_rungs(&analysis.hull, &selection).map_err(|e| Stop::Fallback(e.to_string()))?;
    let mut rungs: Vec<ChosenRung> = chosen
        .iter()
        .map(|p| ChosenRung {
            name: format!("{}p", p.height),
            width: p.width,
            height: p.height,
            setting: p.setting.round() as u32,
            interpolated: p.interpolated,
            predicted_bitrate: p.bitrate,
            predicted_vmaf: p.score,
            measured: None,
        })
        .collect();
    for i in 0..rungs.len() {
        if rungs.iter().filter(|r| r.height == rungs[i].height).count() > 1 {
            rungs[i].name = format!("{}p-{:.0}k", rungs[i].height, rungs[i].predicted_bitrate);
        }
    }
    analysis.ladder.rungs = rungs
        .iter()
        .map(|r| Rung {
            name: r.name.clone(),
            codec: opts.codec(),
            encoder: Some(opts.encoder),
            height: r.height,
            width: Some(r.width),
            bitrate: (opts.rate_control == RungRateControl::Bitrate)
                .then(|| r.predicted_bitrate.round().max(1.0) as u32),
            quality: (opts.rate_control == RungRateControl::Crf).then_some(r.setting),
            speed: Some(opts.speed),
        })
        .collect();
    analysis.rungs = rungs;
    Ok(())
}

/// Runs one trial on one window: the coded bytes and the VMAF, PSNR-Y and SSIM-Y of the
/// scored frames (every `spec.score_every`-th), VMAF's motion taken from `motion` (the
/// window's, computed once for all its trials).
///
/// The window starts with a key frame; a rung of the same length has `key_frames` of them
/// (window frames / key-frame interval frames). At a constant quality the key frame's size is
/// the content's, so its bytes count `key_frames` times: a 1-second window of a title with 2-s
/// key frames otherwise reads up to twice the rung's rate on calm content (an AV1 rung at
/// quantizer 50 was predicted 308 kbit/s and encoded 151).
fn trial_window(
    refs: &[Picture],
    motion: &ReferenceMotion,
    input: &[Picture],
    spec: &TrialSpec,
    key_frames: f64,
) -> Result<TrialScore, LadderError> {
    let mut vmaf = crate::Vmaf::with_motion(spec.display.0, spec.display.1, motion.clone())?;
    let mut fidelity = Vec::new();
    let mut err: Option<LadderError> = None;
    let bytes = trial_encode(input, spec, &mut |i, decoded| {
        if err.is_some() {
            return;
        }
        let r = &refs[i];
        fidelity.push((psnr(r, &decoded).y, ssim_luma(r, &decoded)));
        if let Err(e) = vmaf.push_at(i as u32, r, &decoded) {
            err = Some(e);
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    let scores = vmaf.finish()?;
    if scores.len() != fidelity.len() {
        return Err(LadderError::Metric(format!(
            "{} VMAF scores for {} frames",
            scores.len(),
            fidelity.len()
        )));
    }
    let rest: u64 = bytes.iter().skip(1).sum();
    let key = bytes.first().copied().unwrap_or(0) as f64;
    Ok(TrialScore {
        bytes: key * key_frames + rest as f64,
        frames: scores
            .iter()
            .zip(fidelity)
            .map(|(v, (psnr_y, ssim_y))| FrameScore {
                vmaf: v.1,
                psnr_y,
                ssim_y,
            })
            .collect(),
    })
}
