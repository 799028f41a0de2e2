//! Which trials are worth running: an adaptive search over each height's settings on one
//! window (the most complex one), instead of the whole grid.
//!
//! Each height starts in the middle of its settings (the cheaper middle of an even count) and walks down (cheaper) until a trial
//! scores below the quality floor, then up (costlier) until one of:
//! - it scores at least the quality ceiling plus a margin (more bits buy invisible quality);
//! - a taller height already does better at the same bitrate (the point is off the hull, and
//!   costlier settings of the shorter height lose by more: the taller one pulls away with rate);
//! - it would spend more than the cheapest trial of any height that reached the ceiling (no rung
//!   is ever chosen above that).
//!
//! Heights are worked on concurrently, tallest first, by as many workers as there are cores;
//! the steps of one height are sequential since each depends on the last result. Decisions use
//! whatever taller heights have measured so far, so a slow taller height only means less
//! pruning, never a wrong ladder.

use std::sync::{Condvar, Mutex};

/// A trial's measured rate (bits/s) and mean VMAF.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub rate: f64,
    pub vmaf: f64,
}

/// Why a grid entry was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A cheaper setting of this height already passed the quality ceiling.
    AboveCeiling,
    /// A costlier setting would be beaten by a taller height at the same bitrate.
    Dominated,
    /// A costlier setting would spend more than the cheapest trial that reached the ceiling.
    AboveCeilingRate,
    /// A cheaper setting of this height already scored below the quality floor.
    BelowFloor,
    /// Its bitrate is more than one rung step under the ladder's minimum: it could not be a
    /// rung, only stretch the curve under the minimum.
    BelowMinBitrate,
}

impl SkipReason {
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::AboveCeiling => "a cheaper setting of this height passed the ceiling",
            SkipReason::Dominated => "a taller height scores higher at this bitrate",
            SkipReason::AboveCeilingRate => {
                "costlier than the cheapest trial that passed the ceiling"
            }
            SkipReason::BelowFloor => "a costlier setting of this height scored below the floor",
            SkipReason::BelowMinBitrate => "more than a rung step below the minimum bitrate",
        }
    }
}

/// The thresholds the search works with.
#[derive(Debug, Clone, Copy)]
pub struct SearchLimits {
    pub floor: f64,
    /// The quality ceiling plus the margin a trial must clear it by.
    pub ceiling: f64,
    /// VMAF points a taller height must lead by before a shorter one stops climbing.
    pub dominance_margin: f64,
    /// A costlier step is skipped when it would spend this many times the cheapest rate that
    /// reached the ceiling.
    pub rate_slack: f64,
    /// A cheaper step whose rate is known in advance (bits/s) and below this is not taken:
    /// the ladder's minimum bitrate over its step ratio.
    pub min_rate: f64,
}

/// One height's settings, cheapest first, with the bitrate each targets when known in
/// advance (a CBR target, in bits/s) or `None` (a CRF).
#[derive(Debug, Clone)]
pub struct Ladderette {
    pub settings: Vec<(usize, Option<f64>)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Start,
    Down(usize),
    Up(usize),
    Done,
}

struct HeightState {
    step: Step,
    /// Where the upward walk resumes after the downward one (None: no upward walk).
    up_from: Option<usize>,
    busy: bool,
    /// Results by position in the height's settings.
    results: Vec<Option<Measured>>,
    skipped: Vec<Option<SkipReason>>,
}

impl HeightState {
    /// The measured curve, by rate.
    fn curve(&self) -> Vec<Measured> {
        let mut c: Vec<Measured> = self.results.iter().flatten().copied().collect();
        c.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        c
    }
}

/// Quality of a measured curve at `rate`: linear between its points, its best point beyond
/// its top (more bits do not lower quality), `None` below its cheapest point.
fn quality_at(curve: &[Measured], rate: f64) -> Option<f64> {
    let first = curve.first()?;
    if rate < first.rate {
        return None;
    }
    for pair in curve.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if rate <= b.rate {
            let t = if b.rate > a.rate {
                (rate - a.rate) / (b.rate - a.rate)
            } else {
                1.0
            };
            return Some(a.vmaf + t * (b.vmaf - a.vmaf));
        }
    }
    curve.iter().map(|m| m.vmaf).max_by(f64::total_cmp)
}

/// What the search found: per height, per setting position, the result or why it was skipped.
#[derive(Debug, Clone)]
pub struct SearchOutcome {
    pub results: Vec<Vec<Option<Measured>>>,
    pub skipped: Vec<Vec<Option<SkipReason>>>,
}

struct Shared {
    heights: Vec<HeightState>,
    failed: bool,
}

/// Runs the search. `heights` are tallest first; `run(height, position)` runs one trial and
/// returns its measurement. Runs on `workers` threads. The first error stops the search.
pub fn search<E: Send>(
    heights: &[Ladderette],
    limits: SearchLimits,
    workers: usize,
    run: &(dyn Fn(usize, usize) -> Result<Measured, E> + Sync),
) -> Result<SearchOutcome, E> {
    let shared = Mutex::new(Shared {
        heights: heights
            .iter()
            .map(|l| HeightState {
                step: if l.settings.is_empty() {
                    Step::Done
                } else {
                    Step::Start
                },
                up_from: None,
                busy: false,
                results: vec![None; l.settings.len()],
                skipped: vec![None; l.settings.len()],
            })
            .collect(),
        failed: false,
    });
    let wake = Condvar::new();
    let first_error: Mutex<Option<E>> = Mutex::new(None);

    let worker = || loop {
        // Pick the tallest height with a step to run.
        let job = {
            let mut s = shared.lock().expect("search state");
            loop {
                if s.failed {
                    return;
                }
                if let Some(job) = next_job(&mut s, heights, limits) {
                    break job;
                }
                if s.heights.iter().all(|h| h.step == Step::Done) {
                    wake.notify_all();
                    return;
                }
                s = wake.wait(s).expect("search state");
            }
        };
        let (h, pos) = job;
        let result = run(h, pos);
        let mut s = shared.lock().expect("search state");
        match result {
            Ok(m) => {
                s.heights[h].results[pos] = Some(m);
                s.heights[h].busy = false;
                advance(&mut s, h, pos, m, heights, limits);
            }
            Err(e) => {
                s.failed = true;
                first_error.lock().expect("error slot").get_or_insert(e);
            }
        }
        wake.notify_all();
    };
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(worker);
        }
    });
    if let Some(e) = first_error.into_inner().expect("error slot") {
        return Err(e);
    }
    let s = shared.into_inner().expect("search state");
    Ok(SearchOutcome {
        results: s.heights.iter().map(|h| h.results.clone()).collect(),
        skipped: s.heights.iter().map(|h| h.skipped.clone()).collect(),
    })
}

/// The cheapest rate of any trial that reached the ceiling.
fn ceiling_rate(s: &Shared, limits: SearchLimits) -> Option<f64> {
    s.heights
        .iter()
        .flat_map(|h| h.results.iter().flatten())
        .filter(|m| m.vmaf >= limits.ceiling)
        .map(|m| m.rate)
        .min_by(f64::total_cmp)
}

// The index walks two parallel slices, one of them borrowed mutably inside the loop.
#[allow(clippy::needless_range_loop)]
fn next_job(
    s: &mut Shared,
    heights: &[Ladderette],
    limits: SearchLimits,
) -> Option<(usize, usize)> {
    let cap = ceiling_rate(s, limits).map(|r| r * limits.rate_slack);
    for h in 0..s.heights.len() {
        loop {
            let st = &s.heights[h];
            if st.busy {
                break;
            }
            let n = heights[h].settings.len();
            let pos = match st.step {
                Step::Done => break,
                Step::Start => (n - 1) / 2,
                Step::Down(p) | Step::Up(p) => p,
            };
            // A downward step under the lowest useful rate ends the walk down.
            if let (Step::Down(p), Some(rate)) = (st.step, heights[h].settings[pos].1) {
                if rate < limits.min_rate {
                    let st = &mut s.heights[h];
                    mark_below(st, p, SkipReason::BelowMinBitrate);
                    st.step = st.up_from.map_or(Step::Done, Step::Up);
                    continue;
                }
            }
            // An upward step (or the start) that would spend more than the ceiling's rate.
            let climbing = !matches!(st.step, Step::Down(_));
            let known_rate = heights[h].settings[pos].1.or_else(|| {
                // A CRF's rate is not known in advance: the height's costliest result so far
                // is a lower bound for any costlier setting.
                st.curve().last().map(|m| m.rate).filter(|_| climbing)
            });
            if let (true, Some(cap), Some(rate)) = (climbing, cap, known_rate) {
                if rate > cap {
                    let st = &mut s.heights[h];
                    if st.step == Step::Start {
                        // Even the middle is too costly: walk down only.
                        st.up_from = None;
                        st.step = if pos > 0 {
                            Step::Down(pos - 1)
                        } else {
                            Step::Done
                        };
                        mark_rest(st, pos, n, SkipReason::AboveCeilingRate);
                        if pos > 0 {
                            continue;
                        }
                        break;
                    }
                    mark_rest(st, pos, n, SkipReason::AboveCeilingRate);
                    st.step = Step::Done;
                    break;
                }
            }
            s.heights[h].busy = true;
            return Some((h, pos));
        }
    }
    None
}

/// Marks positions `from..n` that have no result as skipped for `why`.
fn mark_rest(st: &mut HeightState, from: usize, n: usize, why: SkipReason) {
    for p in from..n {
        if st.results[p].is_none() && st.skipped[p].is_none() {
            st.skipped[p] = Some(why);
        }
    }
}

/// Marks positions `0..=to` that have no result as skipped for `why`.
fn mark_below(st: &mut HeightState, to: usize, why: SkipReason) {
    for p in 0..=to {
        if st.results[p].is_none() && st.skipped[p].is_none() {
            st.skipped[p] = Some(why);
        }
    }
}

/// Whether a taller height's measured curve beats `m` by the margin.
fn dominated(s: &Shared, h: usize, m: Measured, limits: SearchLimits) -> bool {
    s.heights[..h].iter().any(|taller| {
        quality_at(&taller.curve(), m.rate).is_some_and(|q| q >= m.vmaf + limits.dominance_margin)
    })
}

fn advance(
    s: &mut Shared,
    h: usize,
    pos: usize,
    m: Measured,
    heights: &[Ladderette],
    limits: SearchLimits,
) {
    let n = heights[h].settings.len();
    let off_hull = dominated(s, h, m, limits);
    let st = &mut s.heights[h];
    let up = pos + 1 < n;
    let down = pos > 0;
    let stop_up = if m.vmaf >= limits.ceiling {
        Some(SkipReason::AboveCeiling)
    } else if off_hull {
        Some(SkipReason::Dominated)
    } else {
        None
    };
    match st.step {
        Step::Start => {
            match stop_up {
                Some(why) if up => mark_rest(st, pos + 1, n, why),
                _ => {}
            }
            st.up_from = (stop_up.is_none() && up).then_some(pos + 1);
            if m.vmaf < limits.floor {
                if down {
                    mark_below(st, pos - 1, SkipReason::BelowFloor);
                }
                st.step = st.up_from.map_or(Step::Done, Step::Up);
            } else if down {
                st.step = Step::Down(pos - 1);
            } else {
                st.step = st.up_from.map_or(Step::Done, Step::Up);
            }
        }
        Step::Down(_) => {
            if m.vmaf < limits.floor || !down {
                if down {
                    mark_below(st, pos - 1, SkipReason::BelowFloor);
                }
                st.step = st.up_from.map_or(Step::Done, Step::Up);
            } else {
                st.step = Step::Down(pos - 1);
            }
        }
        Step::Up(_) => {
            if let Some(why) = stop_up {
                if up {
                    mark_rest(st, pos + 1, n, why);
                }
                st.step = Step::Done;
            } else if up {
                st.step = Step::Up(pos + 1);
            } else {
                st.step = Step::Done;
            }
        }
        Step::Done => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SearchLimits = SearchLimits {
        floor: 30.0,
        ceiling: 96.0,
        dominance_margin: 1.0,
        rate_slack: 1.25,
        min_rate: 0.0,
    };

    /// A synthetic title: quality rises with bits per pixel and saturates lower for shorter
    /// heights (detail lost to downscaling), so shorter heights win at low rates only.
    fn model(height: f64, rate: f64) -> Measured {
        let px = height * height * 16.0 / 9.0;
        let bpp = rate / (px * 25.0);
        let cap = 108.0 - 8000.0 / height;
        let v = (cap * (1.0 - (-bpp * 30.0).exp())).clamp(0.0, 100.0);
        Measured { rate, vmaf: v }
    }

    fn grid(heights: &[f64]) -> Vec<Ladderette> {
        heights
            .iter()
            .map(|&h| Ladderette {
                settings: [0.008, 0.02, 0.05, 0.12, 0.3, 0.75]
                    .iter()
                    .enumerate()
                    .map(|(i, bpp)| (i, Some(bpp * h * h * 16.0 / 9.0 * 25.0)))
                    .collect(),
            })
            .collect()
    }

    fn hull_of(points: &[(f64, Measured)], floor: f64) -> Vec<crate::TrialPoint> {
        let p: Vec<crate::TrialPoint> = points
            .iter()
            .map(|&(h, m)| crate::TrialPoint {
                width: (h * 16.0 / 9.0) as u32,
                height: h as u32,
                setting: 0.0,
                bitrate: m.rate / 1000.0,
                score: m.vmaf,
                interpolated: false,
            })
            .collect();
        let dense: Vec<_> = crate::interpolate_curves(&p, 4)
            .into_iter()
            .filter(|p| p.score >= floor)
            .collect();
        crate::convex_hull(&dense)
    }

    fn hull_quality(hull: &[crate::TrialPoint], kbps: f64) -> f64 {
        let c: Vec<Measured> = hull
            .iter()
            .map(|p| Measured {
                rate: p.bitrate,
                vmaf: p.score,
            })
            .collect();
        quality_at(&c, kbps).unwrap_or(0.0)
    }

    /// How much is pruned depends on the order results arrive in (a slow taller height
    /// means less pruning), so the count is checked with one worker, where the order is
    /// fixed; the hull must hold for any order, so it is checked with several.
    #[test]
    fn prunes_without_changing_the_hull() {
        for workers in [1, 2, 4] {
            prunes_without_changing_the_hull_with(workers);
        }
    }

    #[allow(clippy::needless_range_loop)]
    fn prunes_without_changing_the_hull_with(workers: usize) {
        let hs = [720.0, 540.0, 432.0, 360.0, 270.0, 234.0];
        let g = grid(&hs);
        let run = |h: usize, p: usize| Ok::<_, ()>(model(hs[h], g[h].settings[p].1.unwrap()));
        let out = search(&g, LIMITS, workers, &run).unwrap();
        let mut searched = Vec::new();
        let mut full = Vec::new();
        for h in 0..hs.len() {
            for p in 0..6 {
                let r = out.results[h][p];
                let s = out.skipped[h][p];
                assert!(
                    r.is_some() ^ s.is_some(),
                    "height {h} setting {p}: {r:?} {s:?}"
                );
                searched.extend(r.map(|m| (hs[h], m)));
                full.push((hs[h], run(h, p).unwrap()));
            }
            assert!(
                out.results[h][2].is_some(),
                "every height measures its middle"
            );
        }
        assert!(
            workers > 1 || searched.len() <= full.len() * 5 / 6,
            "{} of {} run",
            searched.len(),
            full.len()
        );
        // The hull below the ceiling is what the full grid gives, within a VMAF point.
        let (a, b) = (
            hull_of(&searched, LIMITS.floor),
            hull_of(&full, LIMITS.floor),
        );
        let top = b
            .iter()
            .find(|p| p.score >= LIMITS.ceiling)
            .map_or(b.last().unwrap().bitrate, |p| p.bitrate);
        let mut kbps = b[0].bitrate;
        while kbps <= top {
            let (qa, qb) = (hull_quality(&a, kbps), hull_quality(&b, kbps));
            assert!(
                (qa - qb).abs() < 1.0,
                "{workers} workers, at {kbps:.0} kbit/s: {qa:.2} vs {qb:.2}"
            );
            kbps *= 1.1;
        }
    }

    #[test]
    fn no_walk_down_below_the_minimum_rate() {
        let hs = [720.0, 360.0, 234.0];
        let g = grid(&hs);
        let run = |h: usize, p: usize| Ok::<_, ()>(model(hs[h], g[h].settings[p].1.unwrap()));
        let limits = SearchLimits {
            min_rate: 100_000.0,
            ..LIMITS
        };
        let out = search(&g, limits, 2, &run).unwrap();
        for h in 0..hs.len() {
            for p in 0..6 {
                let rate = g[h].settings[p].1.unwrap();
                // Only a height's starting (middle) setting may lie under the minimum.
                if out.results[h][p].is_some() && p != 2 {
                    assert!(rate >= limits.min_rate, "{}p setting {p}: {rate}", hs[h]);
                }
            }
        }
        // 234p's two cheapest settings (about 19 and 49 kbit/s) are skipped for the minimum.
        assert_eq!(out.skipped[2][0], Some(SkipReason::BelowMinBitrate));
        assert_eq!(out.skipped[2][1], Some(SkipReason::BelowMinBitrate));
        // Without the limit the walk down reaches them.
        let all = search(&g, LIMITS, 2, &run).unwrap();
        assert!(all.results[2][1].is_some());
    }

    #[test]
    fn single_worker_and_errors() {
        let hs = [360.0];
        let g = grid(&hs);
        let run = |h: usize, p: usize| Ok::<_, ()>(model(hs[h], g[h].settings[p].1.unwrap()));
        let one = search(&g, LIMITS, 1, &run).unwrap();
        assert!(one.results[0].iter().filter(|r| r.is_some()).count() >= 3);
        let fail = |_: usize, p: usize| {
            if p == 3 {
                Err("boom")
            } else {
                Ok(model(360.0, 1.0))
            }
        };
        assert_eq!(search(&g, LIMITS, 2, &fail).unwrap_err(), "boom");
    }

    #[test]
    fn quality_between_and_beyond_points() {
        let c = [
            Measured {
                rate: 100.0,
                vmaf: 50.0,
            },
            Measured {
                rate: 300.0,
                vmaf: 70.0,
            },
        ];
        assert_eq!(quality_at(&c, 50.0), None);
        assert_eq!(quality_at(&c, 200.0), Some(60.0));
        assert_eq!(quality_at(&c, 900.0), Some(70.0));
    }
}
