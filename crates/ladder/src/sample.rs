//! The sampling plan: which parts of a title the trial encodes look at.
//!
//! A title is cut into shots (scene changes found by `av-scenechange` on small pictures), each
//! shot gets a complexity from its spatial and temporal activity, and a budget of sample
//! seconds is spread over the range of complexities: shots are sorted by complexity and split
//! into strata of equal running time, and each stratum is represented by a window in the
//! middle of its longest shot, weighted by the stratum's running time. A two-hour title is
//! thus looked at for a couple of minutes, with the hard and the easy shots in proportion.

use av_scenechange::{CpuFeatureLevel, Rational32, SceneChangeDetector, SceneDetectionSpeed};
use reel_media::Picture;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use v_frame::frame::Frame;
use v_frame::pixel::ChromaSampling;

const LOOKAHEAD: usize = 5;

/// Windows are not cut shorter than this to fit more shots in the budget.
pub const MIN_WINDOW_SECONDS: f64 = 1.0;

/// Finds scene changes in a stream of (small) pictures with `av-scenechange`'s fast detector.
pub struct SceneCuts {
    detector: SceneChangeDetector<u8>,
    queue: VecDeque<Arc<Frame<u8>>>,
    /// Frame number of `queue[0]`.
    base: usize,
    /// Next frame to decide on.
    next: usize,
    pushed: usize,
    cuts: Vec<usize>,
    size: (usize, usize),
}

impl SceneCuts {
    /// A detector for pictures of `width` x `height` at `frame_rate` frames a second;
    /// cuts closer than `min_gap` frames are not reported.
    pub fn new(width: u32, height: u32, frame_rate: (u32, u32), min_gap: usize) -> SceneCuts {
        let size = (width as usize, height as usize);
        SceneCuts {
            detector: SceneChangeDetector::new(
                size,
                8,
                Rational32::new(frame_rate.0 as i32, frame_rate.1.max(1) as i32),
                ChromaSampling::Cs420,
                LOOKAHEAD,
                SceneDetectionSpeed::Fast,
                min_gap,
                usize::MAX,
                CpuFeatureLevel::default(),
            ),
            queue: VecDeque::new(),
            base: 0,
            next: 0,
            pushed: 0,
            cuts: vec![0],
            size,
        }
    }

    /// Adds the next picture (of the size given to `new`).
    pub fn push(&mut self, p: &Picture) {
        let mut f =
            Frame::<u8>::new_with_padding(self.size.0, self.size.1, ChromaSampling::Cs420, 0);
        for (i, plane) in f.planes.iter_mut().enumerate() {
            let (w, _) = p.plane_size(i);
            plane.copy_from_raw_u8(&p.planes[i], w as usize, 1);
        }
        self.queue.push_back(Arc::new(f));
        self.pushed += 1;
        while self.pushed > self.next + LOOKAHEAD {
            self.step();
        }
    }

    fn step(&mut self) {
        let from = self.next.saturating_sub(1) - self.base;
        let set: Vec<&Arc<Frame<u8>>> = self.queue.iter().skip(from).take(LOOKAHEAD + 2).collect();
        if self.next > 0 && set.len() >= 2 {
            let last = *self.cuts.last().expect("frame 0 is a cut");
            if self.detector.analyze_next_frame(&set, self.next, last) {
                self.cuts.push(self.next);
            }
        }
        if self.next > 0 {
            self.queue.pop_front();
            self.base += 1;
        }
        self.next += 1;
    }

    /// Decides the last pictures and returns the first frame of every shot (always 0 first).
    pub fn finish(mut self) -> Vec<usize> {
        while self.next < self.pushed {
            self.step();
        }
        self.cuts
    }
}

/// Spatial and temporal activity of one (small) picture: the mean absolute horizontal plus
/// vertical luma gradient, and the mean absolute luma difference from the previous picture.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Activity {
    pub spatial: f64,
    pub temporal: f64,
}

/// Activity of `p`, given the picture before it.
pub fn activity(p: &Picture, previous: Option<&Picture>) -> Activity {
    let (w, h) = (p.width as usize, p.height as usize);
    let y = p.luma();
    let mut grad = 0u64;
    for r in 0..h.saturating_sub(1) {
        for c in 0..w.saturating_sub(1) {
            let v = y[r * w + c] as i32;
            grad += ((v - y[r * w + c + 1] as i32).abs() + (v - y[(r + 1) * w + c] as i32).abs())
                as u64;
        }
    }
    let n = (w.saturating_sub(1) * h.saturating_sub(1)).max(1) as f64;
    let temporal = previous.map_or(0.0, |q| {
        y.iter()
            .zip(q.luma())
            .map(|(&a, &b)| (a as i32 - b as i32).unsigned_abs() as u64)
            .sum::<u64>() as f64
            / y.len().max(1) as f64
    });
    Activity {
        spatial: grad as f64 / n,
        temporal,
    }
}

/// A shot: frames `[first, end)`, its times and mean activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shot {
    pub first: u64,
    pub end: u64,
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub activity: Activity,
    /// `ln(1 + spatial) + 2 ln(1 + temporal)`: motion costs more bits than detail.
    pub complexity: f64,
}

impl Shot {
    pub fn seconds(&self) -> f64 {
        self.end_seconds - self.start_seconds
    }
}

/// Builds shots from per-frame times and activities and the cut list of [`SceneCuts`].
pub fn shots(
    times: &[f64],
    activity: &[Activity],
    cuts: &[usize],
    frame_seconds: f64,
) -> Vec<Shot> {
    let n = times.len();
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < n).collect();
    bounds.sort_unstable();
    bounds.dedup();
    if bounds.first() != Some(&0) {
        bounds.insert(0, 0);
    }
    bounds.push(n);
    bounds
        .windows(2)
        .filter(|b| b[1] > b[0])
        .map(|b| {
            let (a, e) = (b[0], b[1]);
            let len = (e - a) as f64;
            // The first frame of a shot differs from the previous shot's last: leave its
            // temporal activity out.
            let temporal = if e - a > 1 {
                activity[a + 1..e].iter().map(|x| x.temporal).sum::<f64>() / (len - 1.0)
            } else {
                0.0
            };
            let spatial = activity[a..e].iter().map(|x| x.spatial).sum::<f64>() / len;
            Shot {
                first: a as u64,
                end: e as u64,
                start_seconds: times[a],
                end_seconds: times[e - 1] + frame_seconds,
                activity: Activity { spatial, temporal },
                complexity: (1.0 + spatial).ln() + 2.0 * (1.0 + temporal).ln(),
            }
        })
        .collect()
}

/// How much of a title the analysis looks at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleOptions {
    /// Share of the title's running time to sample.
    pub fraction: f64,
    /// At least this many seconds (or the whole title when shorter).
    pub min_seconds: f64,
    /// At most this many seconds.
    pub max_seconds: f64,
    /// Length of one window.
    pub window_seconds: f64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            fraction: 0.1,
            min_seconds: 1.0,
            max_seconds: 120.0,
            window_seconds: 2.0,
        }
    }
}

/// A stretch of the title the trials encode, standing for `weight` seconds of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub start_seconds: f64,
    pub end_seconds: f64,
    /// Seconds of the title this window represents (the running time of its stratum).
    pub weight: f64,
    /// Index of the shot it lies in.
    pub shot: usize,
    /// Whether it starts on a key frame of the source (decoding it costs no frames before
    /// it).
    #[serde(default)]
    pub at_key_frame: bool,
}

/// What the scan saw of every frame: its time, its activity, and which frames are key frames
/// (indices, ascending).
#[derive(Debug, Clone, Default)]
pub struct FrameScan {
    pub times: Vec<f64>,
    pub activity: Vec<Activity>,
    pub key_frames: Vec<usize>,
}

impl FrameScan {
    /// The complexity (as [`Shot::complexity`]) of frames `[a, e)` of a shot starting at
    /// frame `first`: the shot's first frame's temporal activity is left out.
    fn complexity(&self, first: usize, a: usize, e: usize) -> f64 {
        let spatial =
            self.activity[a..e].iter().map(|x| x.spatial).sum::<f64>() / (e - a).max(1) as f64;
        let from = a.max(first + 1);
        let temporal = if e > from {
            self.activity[from..e]
                .iter()
                .map(|x| x.temporal)
                .sum::<f64>()
                / (e - from) as f64
        } else {
            0.0
        };
        (1.0 + spatial).ln() + 2.0 * (1.0 + temporal).ln()
    }
}

/// Chooses windows over `shots` (in time order) within the budget of `opts`, for rungs with a
/// key frame every `key_interval` seconds.
///
/// A window starts where a rung has a key frame (a whole number of key-frame intervals from
/// the title's first frame), so that a trial codes the window's frames as a rung codes them:
/// its key frame where the rung's is, a scene cut inside the window coded as the rung codes
/// it (inside a GOP), not as a fresh start. Of the key-frame times whose window overlaps the
/// shot, the one covering most of the shot, then the one whose stretch's complexity is closest
/// to the shot's, then the one nearest the shot's middle. Windows that came out at the same
/// time are merged (their weights added). `at_key_frame` says whether a window also starts on
/// a key frame of the source (decoding it then costs no frames before it).
///
/// Windows used to start on the source's key frames instead, which on sources encoded with
/// scene-cut detection are the shots' first frames: the trials saw each shot start with a key
/// frame where the rungs see a P-frame (issue 24).
pub fn plan_windows(
    shots: &[Shot],
    opts: &SampleOptions,
    scan: &FrameScan,
    key_interval: f64,
) -> Vec<Window> {
    let duration: f64 = shots.iter().map(Shot::seconds).sum();
    if shots.is_empty() || duration <= 0.0 {
        return Vec::new();
    }
    let budget = (duration * opts.fraction)
        .max(opts.min_seconds)
        .min(opts.max_seconds)
        .min(duration);
    let mut window = opts.window_seconds.min(budget).max(1e-3);
    let mut count = ((budget / window).round() as usize).max(1);
    if count < shots.len() {
        // Shorter windows (down to one second) so that more shots are seen.
        let shorter = (budget / shots.len() as f64).max(MIN_WINDOW_SECONDS.min(window));
        if shorter < window {
            window = shorter;
            count = ((budget / window).round() as usize).max(1);
        }
    }
    let grid = KeyFrameGrid::new(shots, scan, key_interval);
    let placed = |i: usize, weight: f64| {
        let s = &shots[i];
        let middle = (s.start_seconds + s.end_seconds) / 2.0 - window / 2.0;
        let candidates = grid.starts_overlapping(s.start_seconds, s.end_seconds, window);
        let (k, start) = candidates
            .into_iter()
            .map(|(k, t)| {
                let end = (t + window).min(grid.end);
                let covered = end.min(s.end_seconds) - t.max(s.start_seconds);
                // Shortfall from the most of the shot a window can cover, in frames.
                let short = ((window.min(s.seconds()) - covered) / grid.frame_seconds).round();
                let complexity = grid.frame(k).map_or(0.0, |a| {
                    let e = scan.times.partition_point(|&x| x < end - 1e-6);
                    let a = a.max(s.first as usize);
                    if e > a && e <= scan.activity.len() {
                        (scan.complexity(s.first as usize, a, e) - s.complexity).abs()
                    } else {
                        0.0
                    }
                });
                ((short, complexity, (t - middle).abs()), (k, t))
            })
            .min_by(|a, b| {
                (a.0 .0.total_cmp(&b.0 .0))
                    .then(a.0 .1.total_cmp(&b.0 .1))
                    .then(a.0 .2.total_cmp(&b.0 .2))
            })
            .map(|(_, kt)| kt)
            .unwrap_or((0, grid.origin));
        Window {
            start_seconds: start,
            end_seconds: (start + window).min(grid.end),
            weight,
            shot: i,
            at_key_frame: grid
                .frame(k)
                .is_some_and(|f| scan.key_frames.binary_search(&f).is_ok()),
        }
    };
    let mut windows: Vec<Window> = if count >= shots.len() {
        // Every shot gets a window.
        (0..shots.len())
            .map(|i| placed(i, shots[i].seconds()))
            .collect()
    } else {
        // Strata of equal running time along the complexity order.
        let mut order: Vec<usize> = (0..shots.len()).collect();
        order.sort_by(|&a, &b| shots[a].complexity.total_cmp(&shots[b].complexity));
        let per = duration / count as f64;
        let mut strata: Vec<Vec<usize>> = vec![Vec::new()];
        let mut acc = 0.0;
        for &i in &order {
            if acc >= per * strata.len() as f64 && strata.len() < count {
                strata.push(Vec::new());
            }
            strata.last_mut().expect("one stratum").push(i);
            acc += shots[i].seconds();
        }
        strata
            .iter()
            .map(|s| placed(representative(shots, s, window), stratum_seconds(shots, s)))
            .collect()
    };
    windows.sort_by(|a, b| a.start_seconds.total_cmp(&b.start_seconds));
    windows.dedup_by(|later, kept| {
        let same = (later.start_seconds - kept.start_seconds).abs() < 1e-6;
        if same {
            kept.weight += later.weight;
        }
        same
    });
    windows
}

/// Where the rungs' key frames fall: every `key_interval` seconds from the title's first frame
/// (frame numbers from the scan where it has frame times).
struct KeyFrameGrid<'a> {
    scan: &'a FrameScan,
    origin: f64,
    end: f64,
    frame_seconds: f64,
    /// Frames from one key frame to the next.
    gop_frames: usize,
}

impl<'a> KeyFrameGrid<'a> {
    fn new(shots: &[Shot], scan: &'a FrameScan, key_interval: f64) -> KeyFrameGrid<'a> {
        let first = &shots[0];
        let last = shots.last().expect("shots");
        let frames = (last.end - first.first).max(1) as f64;
        let frame_seconds = (last.end_seconds - first.start_seconds) / frames;
        KeyFrameGrid {
            scan,
            origin: scan.times.first().copied().unwrap_or(first.start_seconds),
            end: last.end_seconds,
            frame_seconds,
            gop_frames: ((key_interval / frame_seconds).round() as usize).max(1),
        }
    }

    /// The frame number of the `k`-th key frame, if the scan has frame times.
    fn frame(&self, k: usize) -> Option<usize> {
        let f = k * self.gop_frames;
        (f < self.scan.times.len()).then_some(f)
    }

    /// The time of the `k`-th key frame.
    fn time(&self, k: usize) -> f64 {
        self.frame(k).map_or(
            self.origin + (k * self.gop_frames) as f64 * self.frame_seconds,
            |f| self.scan.times[f],
        )
    }

    /// The key frames (number and time) a window of `len` seconds starting on overlaps
    /// `[from, to)` from.
    fn starts_overlapping(&self, from: f64, to: f64, len: f64) -> Vec<(usize, f64)> {
        let gop = self.gop_frames as f64 * self.frame_seconds;
        let first = (((from - len - self.origin) / gop).floor().max(0.0)) as usize;
        (first..)
            .map(|k| (k, self.time(k)))
            .take_while(|&(_, t)| t < to - 1e-6 && t < self.end - 1e-6)
            .filter(|&(_, t)| t + len > from + 1e-6)
            .collect()
    }
}

/// Running time of the shots `stratum`.
fn stratum_seconds(shots: &[Shot], stratum: &[usize]) -> f64 {
    stratum.iter().map(|&i| shots[i].seconds()).sum()
}

/// The shot that stands for `stratum`: of those that hold a whole window (all of them if none
/// does), the one whose complexity is nearest the stratum's mean (weighted by running time),
/// the longer on a tie. (The longest shot stood for its stratum before, wherever its
/// complexity lay in the stratum.)
fn representative(shots: &[Shot], stratum: &[usize], window: f64) -> usize {
    let seconds = stratum_seconds(shots, stratum);
    let mean = stratum
        .iter()
        .map(|&i| shots[i].complexity * shots[i].seconds())
        .sum::<f64>()
        / seconds.max(f64::MIN_POSITIVE);
    let holds_window = |i: usize| shots[i].seconds() + 1e-6 >= window;
    let any_holds = stratum.iter().any(|&i| holds_window(i));
    *stratum
        .iter()
        .filter(|&&i| !any_holds || holds_window(i))
        .min_by(|&&a, &&b| {
            let (da, db) = (
                (shots[a].complexity - mean).abs(),
                (shots[b].complexity - mean).abs(),
            );
            da.total_cmp(&db)
                .then(shots[b].seconds().total_cmp(&shots[a].seconds()))
        })
        .expect("strata are not empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shot(a: f64, b: f64, complexity: f64) -> Shot {
        Shot {
            first: (a * 25.0) as u64,
            end: (b * 25.0) as u64,
            start_seconds: a,
            end_seconds: b,
            activity: Activity::default(),
            complexity,
        }
    }

    #[test]
    fn a_short_title_is_sampled_per_shot_and_weighted_by_shot_length() {
        let shots = vec![shot(0.0, 1.0, 1.0), shot(1.0, 4.0, 5.0)];
        // A 2 s budget and 2 s windows: windows shrink to 1 s so that both shots are seen.
        let opts = SampleOptions {
            min_seconds: 2.0,
            ..SampleOptions::default()
        };
        let w = plan_windows(&shots, &opts, &FrameScan::default(), 2.0);
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].start_seconds, w[0].end_seconds, w[0].weight),
            (0.0, 1.0, 1.0)
        );
        assert_eq!(
            (w[1].start_seconds, w[1].end_seconds, w[1].weight),
            (2.0, 3.0, 3.0)
        );
    }

    #[test]
    fn a_long_title_is_sampled_within_budget_across_complexities() {
        // 2 hours of 10-second shots whose complexity rises and falls.
        let shots: Vec<Shot> = (0..720)
            .map(|i| {
                shot(
                    i as f64 * 10.0,
                    i as f64 * 10.0 + 10.0,
                    ((i * 37) % 100) as f64,
                )
            })
            .collect();
        let w = plan_windows(
            &shots,
            &SampleOptions::default(),
            &FrameScan::default(),
            2.0,
        );
        let sampled: f64 = w.iter().map(|w| w.end_seconds - w.start_seconds).sum();
        assert!((sampled - 120.0).abs() < 1e-6, "{sampled}");
        assert_eq!(
            w.len(),
            120,
            "one-second windows so that more shots are seen"
        );
        let weight: f64 = w.iter().map(|w| w.weight).sum();
        assert!((weight - 7200.0).abs() < 1e-6);
        let cx: Vec<f64> = w.iter().map(|w| shots[w.shot].complexity).collect();
        let (lo, hi) = cx
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &c| (a.min(c), b.max(c)));
        assert!(
            lo < 5.0 && hi > 95.0,
            "strata span the complexities: {lo} {hi}"
        );
        assert!(w.windows(2).all(|p| p[0].end_seconds <= p[1].start_seconds));
    }

    #[test]
    fn windows_start_where_rungs_have_key_frames_in_a_stretch_like_the_shot() {
        // One 12-second shot at 25 fps; rungs have a key frame every 2 s; its first 4 s are
        // calm and the rest busy: the shot's complexity is nearer the busy part's, so the
        // window starts on a rung key frame in it.
        let times: Vec<f64> = (0..300).map(|i| i as f64 / 25.0).collect();
        let activity: Vec<Activity> = (0..300)
            .map(|i| Activity {
                spatial: if i < 100 { 1.0 } else { 20.0 },
                temporal: if i < 100 { 0.5 } else { 6.0 },
            })
            .collect();
        let mut s = shots(&times, &activity, &[0], 0.04);
        let mut scan = FrameScan {
            times,
            activity,
            key_frames: (0..300).step_by(50).collect(),
        };
        let opts = SampleOptions {
            min_seconds: 2.0,
            ..SampleOptions::default()
        };
        let w = plan_windows(&s, &opts, &scan, 2.0);
        assert_eq!(w.len(), 1);
        assert!(w[0].at_key_frame, "the source's key frames are the rungs'");
        assert!((w[0].end_seconds - w[0].start_seconds - 2.0).abs() < 1e-9);
        // Among equally fitting key frames, the one nearest the middle (5 s): 4 s or 6 s.
        assert!([4.0, 6.0].contains(&w[0].start_seconds), "{w:?}");
        // The source's key frames elsewhere (scene-cut key frames, say) do not move it.
        scan.key_frames = vec![0, 37, 111, 222];
        let w = plan_windows(&s, &opts, &scan, 2.0);
        assert!([4.0, 6.0].contains(&w[0].start_seconds), "{w:?}");
        assert!(!w[0].at_key_frame);
        // A title of one shot from 0.48 s to 2.28 s (a 1.8-second window): no rung key
        // frame in it; the window from the one at 0 s covers most of it (1.32 s, against
        // 0.28 s from the one at 2 s).
        s[0].first = 12;
        s[0].start_seconds = 0.48;
        s[0].end_seconds = 2.28;
        s[0].end = 57;
        let w = plan_windows(&s, &opts, &scan, 2.0);
        assert_eq!(w[0].start_seconds, 0.0, "{w:?}");
        assert!((w[0].end_seconds - 1.8).abs() < 1e-9, "{w:?}");
        assert!(w[0].at_key_frame);
        // A shot from 0.48 s to 2.88 s: from 0 s a window covers 1.52 s of it; with a key
        // frame every second, the one from 1 s covers 1.88 s.
        s[0].end_seconds = 2.88;
        s[0].end = 72;
        let w = plan_windows(&s, &opts, &scan, 2.0);
        assert_eq!(w[0].start_seconds, 0.0, "{w:?}");
        let w = plan_windows(&s, &opts, &scan, 1.0);
        assert_eq!(w[0].start_seconds, 1.0, "{w:?}");
    }

    #[test]
    fn windows_in_one_gop_are_merged() {
        // Two 1-second shots in the same 4-second GOP, each its own window: one window,
        // standing for both.
        let shots = vec![shot(0.0, 1.0, 1.0), shot(1.0, 2.0, 5.0)];
        let opts = SampleOptions {
            min_seconds: 2.0,
            ..SampleOptions::default()
        };
        let w = plan_windows(&shots, &opts, &FrameScan::default(), 4.0);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].start_seconds, w[0].weight), (0.0, 2.0));
    }

    #[test]
    fn scene_cut_found_between_two_different_pictures() {
        let mut d = SceneCuts::new(64, 36, (25, 1), 0);
        for i in 0..40 {
            let y = if i < 20 { 30 } else { 220 };
            let mut p = Picture::filled(64, 36, y, 128);
            // A little texture so that the frames are not all flat.
            for (k, v) in p.planes[0].iter_mut().enumerate() {
                *v = v.wrapping_add((k % 7) as u8);
            }
            d.push(&p);
        }
        assert_eq!(d.finish(), vec![0, 20]);
    }

    #[test]
    fn activity_of_flat_and_changing_pictures() {
        let a = Picture::filled(8, 8, 10, 128);
        let b = Picture::filled(8, 8, 30, 128);
        assert_eq!(activity(&a, None), Activity::default());
        assert_eq!(activity(&b, Some(&a)).temporal, 20.0);
    }
}
