//! `analyze`: from a source file to a per-title [`Ladder`], through a sampling plan, trial
//! encodes at every candidate resolution and quality, VMAF at the display resolution, the
//! convex hull and rung selection.

use crate::hull::{convex_hull, interpolate_curves, select_rungs, Constraints, TrialPoint};
use crate::metrics::{psnr, ssim_luma, Pooled};
use crate::sample::{
    activity, plan_windows, shots, Activity, SampleOptions, SceneCuts, Shot, Window,
};
use crate::LadderError;
use rayon::prelude::*;
use reel_encoder::{
    decode_pictures, even, probe, scale_pictures, trial_encode, AudioSpec, Ladder, Rung, TrialSpec,
};
use reel_media::{Codec, Picture, Rational};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How far above the quality ceiling a height's trial must score before its costlier CRFs
/// are skipped.
const CEILING_MARGIN: f64 = 1.0;

/// VMAF points a rung's prediction must clear the quality floor by.
const FLOOR_MARGIN: f64 = 3.0;

/// Points interpolated per gap between neighbouring trials of one resolution, plus one.
const INTERPOLATION_STEPS: usize = 4;

/// Candidate heights (16:9 names; widths follow the source's aspect ratio).
pub const CANDIDATE_HEIGHTS: [u32; 7] = [1080, 720, 540, 432, 360, 270, 234];

/// What the analysis tries and what the ladder may contain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnalyzeOptions {
    /// Codec of the trials and of the ladder. H.264 (x264) only for now.
    pub codec: Codec,
    /// Candidate heights; those above the source are skipped.
    pub heights: Vec<u32>,
    /// x264 CRFs tried at every height (when the rungs are CRF).
    pub qualities: Vec<u32>,
    /// Target bitrates tried at every height, in bits per pixel per frame (when the rungs
    /// target a bitrate): kbit/s = bpp x width x height x frame rate / 1000.
    pub bits_per_pixel: Vec<f64>,
    /// x264 preset of the trials (1 placebo ... 10 ultrafast).
    pub trial_speed: u8,
    /// x264 preset the ladder's rungs are encoded with.
    pub speed: u8,
    pub constraints: Constraints,
    pub sample: SampleOptions,
    /// VMAF's spatial features (and PSNR/SSIM) on every n-th frame of a window.
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
            codec: Codec::H264,
            heights: CANDIDATE_HEIGHTS.to_vec(),
            qualities: vec![16, 22, 28, 34, 40],
            bits_per_pixel: vec![0.008, 0.02, 0.05, 0.12, 0.3, 0.75],
            trial_speed: 8,
            speed: 8,
            constraints: Constraints::default(),
            sample: SampleOptions::default(),
            metric_subsample: 4,
            rate_control: RungRateControl::Bitrate,
            keyframe_interval: 2.0,
            audio: Some(AudioSpec {
                codec: Codec::Aac,
                bitrate: 128,
                max_channels: 2,
            }),
        }
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
}

/// One trial encode's measured rate and quality, over all windows (weighted).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    pub width: u32,
    pub height: u32,
    /// The x264 CRF, or the target bitrate in kbit/s (see `options.rate_control`).
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
}

/// A rung of the result with what the trials predict for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChosenRung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// The x264 CRF or the target bitrate (kbit/s) of the trials it comes from (interpolated
    /// and rounded).
    pub setting: u32,
    pub predicted_bitrate: f64,
    pub predicted_vmaf: f64,
    /// The prediction is interpolated between two trials of this resolution (the CRF is
    /// rounded to x264's whole steps).
    pub interpolated: bool,
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
    /// Trials not run: a cheaper setting of the same height already passed the quality ceiling.
    pub skipped_trials: Vec<SkippedTrial>,
    pub hull: Vec<TrialPoint>,
    pub rungs: Vec<ChosenRung>,
    /// The ladder to encode: per-title rungs, or the fixed ladder when `fallback` says why.
    pub ladder: Ladder,
    /// Why the per-title analysis was not used, when it was not.
    pub fallback: Option<String>,
    /// Wall-clock seconds the analysis took.
    pub seconds: f64,
}

/// Progress of an analysis, for a caller to show.
#[derive(Debug, Clone)]
pub enum AnalyzeEvent {
    /// Scanning the whole title for shots: frames so far.
    Scanning { frames: u64 },
    /// Trials to run in total, once the plan is known.
    Planned { trials: usize },
    /// One more trial on one window done.
    TrialDone,
}

/// The fixed ladder (Apple's HLS authoring-spec rungs) trimmed to the source: rungs no taller
/// than it, or one rung at its height with the lowest bitrate when it is below them all.
pub fn fixed_ladder(source_height: u32) -> Ladder {
    let mut ladder = Ladder::builtin("fixed").expect("built in");
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

struct Accumulator {
    /// Sum of weight x bits/s.
    rate: f64,
    weight: f64,
    vmaf: Vec<(f64, f64)>,
    psnr: Vec<(f64, f64)>,
    ssim: Vec<(f64, f64)>,
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
    let info = probe(source)?;
    let video = info
        .video()
        .ok_or_else(|| reel_encoder::EncodeError::NoVideo {
            path: source.to_path_buf(),
        })?;
    let dar = video.display_aspect();
    let display_height = even(video.height as f64);
    let display_width = even(display_height as f64 * dar);
    let frame_rate = if video.frame_rate.num > 0 {
        video.frame_rate
    } else {
        Rational::new(25, 1)
    };
    let frame_seconds = frame_rate.den as f64 / frame_rate.num as f64;
    let mut analysis = Analysis {
        source: SourceSummary {
            path: source.to_path_buf(),
            width: video.width,
            height: video.height,
            display_width,
            display_height,
            frame_rate,
            duration: info.duration,
            frames: 0,
        },
        options: opts.clone(),
        shots: Vec::new(),
        windows: Vec::new(),
        sampled_seconds: 0.0,
        trials: Vec::new(),
        skipped_trials: Vec::new(),
        hull: Vec::new(),
        rungs: Vec::new(),
        ladder: fixed_ladder(display_height),
        fallback: None,
        seconds: 0.0,
    };
    analysis.ladder.keyframe_interval = opts.keyframe_interval;
    analysis.ladder.audio = opts.audio.clone();
    let finish = |mut a: Analysis, reason: Option<String>| {
        a.fallback = reason;
        a.seconds = started.elapsed().as_secs_f64();
        Ok(a)
    };
    if opts.codec != Codec::H264 {
        return Err(LadderError::Unsupported(format!(
            "per-title analysis trial-encodes H.264 only; {} is not analysed yet",
            opts.codec.name()
        )));
    }

    let heights: Vec<u32> = {
        let mut h: Vec<u32> = opts
            .heights
            .iter()
            .copied()
            .filter(|&h| h <= display_height && h <= opts.constraints.max_height)
            .map(|h| even(h as f64))
            .collect();
        h.sort_unstable_by(|a, b| b.cmp(a));
        h.dedup();
        h
    };
    if heights.is_empty() {
        let smallest = opts.heights.iter().min().copied().unwrap_or(0);
        return finish(
            analysis,
            Some(format!(
                "the source is {display_height} lines high, below the smallest candidate ({smallest})"
            )),
        );
    }

    // Pass 1: small pictures of the whole title for shots and activity.
    let small_w = even(256.0f64.min(display_width as f64));
    let small_h = even(small_w as f64 / dar);
    let mut cuts = SceneCuts::new(small_w, small_h, (frame_rate.num, frame_rate.den), 12);
    let mut times = Vec::new();
    let mut act: Vec<Activity> = Vec::new();
    let mut previous: Option<Picture> = None;
    let frames = decode_pictures(source, (small_w, small_h), &[], &mut |i, t, p| {
        act.push(activity(&p, previous.as_ref()));
        times.push(t);
        cuts.push(&p);
        previous = Some(p);
        if i % 250 == 0 {
            on_event(AnalyzeEvent::Scanning { frames: i });
        }
        true
    })?;
    analysis.source.frames = frames;
    let cuts = cuts.finish();
    let duration = frames as f64 * frame_seconds;
    if frames < 2 || act.iter().skip(1).all(|a| a.temporal == 0.0) {
        return finish(
            analysis,
            Some(format!(
                "a still picture ({frames} frame{}, no change between frames): nothing to analyse",
                if frames == 1 { "" } else { "s" }
            )),
        );
    }
    if duration + 1e-9 < opts.sample.window_seconds {
        return finish(
            analysis,
            Some(format!(
                "{duration:.2} s long, shorter than one {} s sample window",
                opts.sample.window_seconds
            )),
        );
    }
    analysis.shots = shots(&times, &act, &cuts, frame_seconds);
    analysis.windows = plan_windows(&analysis.shots, &opts.sample);
    analysis.sampled_seconds = analysis
        .windows
        .iter()
        .map(|w| w.end_seconds - w.start_seconds)
        .sum();
    drop((times, act));

    // Pass 2: the windows at display size, one window at a time, every trial on each.
    // (width, height, setting): CRFs, or target kbit/s from the bits-per-pixel grid.
    let by_bitrate = opts.rate_control == RungRateControl::Bitrate;
    let fps = frame_rate.num as f64 / frame_rate.den as f64;
    let grid: Vec<(u32, u32, u32)> = heights
        .iter()
        .flat_map(|&h| {
            let w = even(h as f64 * dar);
            let settings: Vec<u32> = if by_bitrate {
                let mut k: Vec<u32> = opts
                    .bits_per_pixel
                    .iter()
                    .map(|bpp| (bpp * w as f64 * h as f64 * fps / 1000.0).round().max(1.0) as u32)
                    .filter(|&kbps| kbps as f64 <= opts.constraints.max_bitrate * 1.5)
                    .collect();
                k.dedup();
                k
            } else {
                opts.qualities.clone()
            };
            settings.into_iter().map(move |q| (w, h, q))
        })
        .collect();
    let rate = |q: u32| {
        if by_bitrate {
            reel_encoder::RateControl::Bitrate(q)
        } else {
            reel_encoder::RateControl::Quality(q)
        }
    };
    on_event(AnalyzeEvent::Planned {
        trials: grid.len() * analysis.windows.len(),
    });
    let mut acc: Vec<Accumulator> = grid
        .iter()
        .map(|_| Accumulator {
            rate: 0.0,
            weight: 0.0,
            vmaf: Vec::new(),
            psnr: Vec::new(),
            ssim: Vec::new(),
        })
        .collect();
    let ranges: Vec<(f64, f64)> = analysis
        .windows
        .iter()
        .map(|w| {
            (
                w.start_seconds - frame_seconds / 2.0,
                w.end_seconds - frame_seconds / 2.0,
            )
        })
        .collect();
    let mut current: Option<usize> = None;
    let mut frames_in: Vec<Picture> = Vec::new();
    let mut failure: Option<LadderError> = None;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Each height's CRFs run from the cheapest up; once a trial of the first window is
    // CEILING_MARGIN above the quality ceiling, that height's costlier CRFs are skipped in
    // every window (they could only buy invisible quality).
    let chains: Vec<Vec<usize>> = heights
        .iter()
        .map(|&h| {
            let mut c: Vec<usize> = (0..grid.len()).filter(|&i| grid[i].1 == h).collect();
            // Cheapest first: the highest CRF, or the lowest bitrate.
            if by_bitrate {
                c.sort_by_key(|&a| grid[a].2);
            } else {
                c.sort_by(|&a, &b| grid[b].2.cmp(&grid[a].2));
            }
            c
        })
        .collect();
    let mut active = vec![true; grid.len()];
    let ceiling = opts.constraints.quality_ceiling;
    let run_window =
        |w: usize, refs: Vec<Picture>, acc: &mut Vec<Accumulator>, active: &mut Vec<bool>| {
            let window = &analysis.windows[w];
            let first = w == 0;
            let seconds = refs.len() as f64 * frame_seconds;
            let scaled: Vec<(u32, Vec<Picture>)> = heights
                .par_iter()
                .map(|&h| {
                    let size = (even(h as f64 * dar), h);
                    let s = if size == (display_width, display_height) {
                        refs.clone()
                    } else {
                        scale_pictures(&refs, size, frame_rate)?
                    };
                    Ok((h, s))
                })
                .collect::<Result<_, LadderError>>()?;
            let snapshot = active.clone();
            let per_chain: Vec<ChainResult> = chains
                .par_iter()
                .map_with(tx.clone(), |tx, chain| {
                    let mut done = Vec::new();
                    let mut skip = Vec::new();
                    for (k, &i) in chain.iter().enumerate() {
                        if !snapshot[i] {
                            continue;
                        }
                        let (w, h, q) = grid[i];
                        let input = &scaled.iter().find(|s| s.0 == h).expect("scaled").1;
                        let spec = TrialSpec {
                            codec: opts.codec,
                            width: w,
                            height: h,
                            rate: rate(q),
                            speed: opts.trial_speed,
                            frame_rate,
                            display: (display_width, display_height),
                        };
                        let r = trial_window(&refs, input, &spec, opts.metric_subsample)?;
                        let _ = tx.send(());
                        let mean = r.1.iter().map(|s| s.0).sum::<f64>() / r.1.len().max(1) as f64;
                        done.push((i, r));
                        if first && mean >= ceiling + CEILING_MARGIN {
                            skip.extend(chain[k + 1..].iter().copied());
                            break;
                        }
                    }
                    Ok((done, skip))
                })
                .collect::<Result<_, LadderError>>()?;
            for (done, skip) in per_chain {
                for i in skip {
                    active[i] = false;
                }
                for (i, (bytes, scores)) in done {
                    let a = &mut acc[i];
                    a.rate += window.weight * bytes as f64 * 8.0 / seconds;
                    a.weight += window.weight;
                    let per = window.weight / scores.len().max(1) as f64;
                    for (v, p, s) in scores {
                        a.vmaf.push((v, per));
                        a.psnr.push((p, per));
                        a.ssim.push((s, per));
                    }
                }
            }
            Ok::<(), LadderError>(())
        };
    let decoded = decode_pictures(
        source,
        (display_width, display_height),
        &ranges,
        &mut |_, t, p| {
            let w = ranges.iter().position(|&(a, b)| t >= a && t < b);
            if w != current {
                if let Some(done) = current {
                    let refs = std::mem::take(&mut frames_in);
                    if let Err(e) = run_window(done, refs, &mut acc, &mut active) {
                        failure = Some(e);
                        return false;
                    }
                    while rx.try_recv().is_ok() {
                        on_event(AnalyzeEvent::TrialDone);
                    }
                }
                current = w;
            }
            frames_in.push(p);
            true
        },
    );
    if let Err(e) = decoded {
        return Err(e.into());
    }
    if failure.is_none() {
        if let Some(done) = current {
            let refs = std::mem::take(&mut frames_in);
            if let Err(e) = run_window(done, refs, &mut acc, &mut active) {
                failure = Some(e);
            }
        }
    }
    while rx.try_recv().is_ok() {
        on_event(AnalyzeEvent::TrialDone);
    }
    if let Some(e) = failure {
        return match e {
            LadderError::Metric(m) => finish(analysis, Some(format!("quality metric failed: {m}"))),
            other => Err(other),
        };
    }

    for (i, (&(w, h, q), a)) in grid.iter().zip(&acc).enumerate() {
        if !active[i] {
            analysis.skipped_trials.push(SkippedTrial {
                height: h,
                setting: q,
            });
            continue;
        }
        let (Some(vmaf), Some(psnr_y), Some(ssim_y)) = (
            Pooled::weighted(&a.vmaf),
            Pooled::weighted(&a.psnr),
            Pooled::weighted(&a.ssim),
        ) else {
            return finish(
                analysis,
                Some(format!(
                    "no frame of the {h}p trial at setting {q} could be scored"
                )),
            );
        };
        analysis.trials.push(Trial {
            width: w,
            height: h,
            setting: q,
            bitrate: a.rate / a.weight / 1000.0,
            vmaf,
            psnr_y,
            ssim_y,
            frames_scored: a.vmaf.len(),
        });
    }
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
        return finish(
            analysis,
            Some(format!("no trial reaches the quality floor (VMAF {floor})")),
        );
    }
    analysis.hull = convex_hull(&useful);
    // Rungs keep a margin above the floor: a prediction from samples is a few points off.
    let mut selection = opts.constraints.clone();
    selection.quality_floor += FLOOR_MARGIN;
    let chosen = match select_rungs(&analysis.hull, &selection) {
        Ok(c) => c,
        Err(e) => return finish(analysis, Some(e.to_string())),
    };
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
            codec: opts.codec,
            height: r.height,
            width: Some(r.width),
            bitrate: (opts.rate_control == RungRateControl::Bitrate)
                .then(|| r.predicted_bitrate.round().max(1.0) as u32),
            quality: (opts.rate_control == RungRateControl::Crf).then_some(r.setting),
            speed: Some(opts.speed),
        })
        .collect();
    analysis.rungs = rungs;
    finish(analysis, None)
}

/// Coded bytes of one trial on one window, and `(VMAF, PSNR-Y, SSIM-Y)` of its scored frames.
type WindowResult = (u64, Vec<(f64, f64, f64)>);

/// One height's trials on one window (by grid index) and the grid entries to skip from now on.
type ChainResult = (Vec<(usize, WindowResult)>, Vec<usize>);

/// Runs one trial on one window: returns the coded bytes and `(VMAF, PSNR-Y, SSIM-Y)` of the
/// scored frames.
fn trial_window(
    refs: &[Picture],
    input: &[Picture],
    spec: &TrialSpec,
    subsample: u32,
) -> Result<WindowResult, LadderError> {
    let k = subsample.max(1) as usize;
    let mut vmaf = crate::Vmaf::new(spec.display.0, spec.display.1, k as u32)?;
    let mut fidelity = Vec::new();
    let mut err: Option<LadderError> = None;
    let bytes = trial_encode(input, spec, &mut |i, decoded| {
        if err.is_some() {
            return;
        }
        let r = &refs[i];
        if i % k == 0 {
            fidelity.push((psnr(r, &decoded).y, ssim_luma(r, &decoded)));
        }
        if let Err(e) = vmaf.push(r, &decoded) {
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
    Ok((
        bytes.iter().sum(),
        scores
            .iter()
            .zip(fidelity)
            .map(|(v, (p, s))| (v.1, p, s))
            .collect(),
    ))
}
