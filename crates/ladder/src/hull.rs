//! The rate-quality convex hull and rung selection.

use crate::{LadderError, Result};
use serde::{Deserialize, Serialize};

/// One trial encode: a resolution, the encoder setting used (quantizer or CRF), the bitrate it
/// gave (kbit/s) and its quality score (VMAF, or another metric on the same scale).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrialPoint {
    pub width: u32,
    pub height: u32,
    pub setting: f64,
    pub bitrate: f64,
    pub score: f64,
    /// True for a point interpolated between two measured trials of one resolution.
    #[serde(default)]
    pub interpolated: bool,
}

/// Each resolution's rate-quality curve made denser: its measured points that improve on every
/// cheaper one, and `steps - 1` points between each neighbouring pair, interpolated linearly
/// in (log bitrate, score, setting). Encoding at an interpolated setting lands near the
/// interpolated point, so the hull built from these has rungs between the trial settings
/// instead of only at them.
pub fn interpolate_curves(points: &[TrialPoint], steps: usize) -> Vec<TrialPoint> {
    let mut sizes: Vec<(u32, u32)> = points.iter().map(|p| (p.width, p.height)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut out = Vec::new();
    for size in sizes {
        let mut curve: Vec<TrialPoint> = points
            .iter()
            .copied()
            .filter(|p| (p.width, p.height) == size && p.bitrate > 0.0 && p.score.is_finite())
            .collect();
        curve.sort_by(|a, b| a.bitrate.total_cmp(&b.bitrate));
        let mut kept: Vec<TrialPoint> = Vec::new();
        for p in curve {
            if kept.last().is_none_or(|l| p.score > l.score) {
                kept.push(p);
            }
        }
        for (i, p) in kept.iter().enumerate() {
            out.push(*p);
            if let Some(q) = kept.get(i + 1) {
                for k in 1..steps.max(1) {
                    let f = k as f64 / steps as f64;
                    out.push(TrialPoint {
                        width: p.width,
                        height: p.height,
                        setting: p.setting + f * (q.setting - p.setting),
                        bitrate: (p.bitrate.ln() + f * (q.bitrate.ln() - p.bitrate.ln())).exp(),
                        score: p.score + f * (q.score - p.score),
                        interpolated: true,
                    });
                }
            }
        }
    }
    out
}

/// The upper convex hull of the points in the (bitrate, score) plane, from the lowest bitrate
/// up: the best quality reachable at each bitrate by any resolution, with points that a mix of
/// two others would beat removed. The plane is linear in bitrate because that is how mixing
/// works: playing encode A for a share of the time and B for the rest costs and scores the
/// weighted means of the two (a log-bitrate hull would let one very cheap, very poor point
/// hide every useful point above it).
pub fn convex_hull(points: &[TrialPoint]) -> Vec<TrialPoint> {
    let mut pts: Vec<TrialPoint> = points
        .iter()
        .copied()
        .filter(|p| p.bitrate > 0.0 && p.bitrate.is_finite() && p.score.is_finite())
        .collect();
    pts.sort_by(|a, b| {
        a.bitrate
            .total_cmp(&b.bitrate)
            .then(b.score.total_cmp(&a.score))
    });
    let x = |p: &TrialPoint| p.bitrate;
    // Andrew's monotone chain, upper half: keep right turns only.
    let mut hull: Vec<TrialPoint> = Vec::new();
    for p in pts {
        // A point no better than one at a lower bitrate is never on the useful hull.
        if hull.last().is_some_and(|l| p.score <= l.score) {
            continue;
        }
        while hull.len() >= 2 {
            let (a, b) = (hull[hull.len() - 2], hull[hull.len() - 1]);
            let cross =
                (x(&b) - x(&a)) * (p.score - a.score) - (b.score - a.score) * (x(&p) - x(&a));
            // Strictly below the chord only: points on it (as interpolated ones are) stay.
            if cross > 1e-9 {
                hull.pop();
            } else {
                break;
            }
        }
        hull.push(p);
    }
    hull
}

/// What a ladder may contain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Constraints {
    /// At most this many rungs.
    pub max_rungs: usize,
    /// Each rung's bitrate is at least this many times the next lower one's.
    pub step_ratio: f64,
    /// kbit/s bounds for any rung.
    pub min_bitrate: f64,
    pub max_bitrate: f64,
    /// No rung needs to be better than this: the top rung is the cheapest hull point at or
    /// above it (or the best below it).
    pub quality_ceiling: f64,
    /// No rung below this quality.
    pub quality_floor: f64,
    /// Tallest allowed rung.
    pub max_height: u32,
    /// The devices' decoder level for the ladder's codec (`3.1`, `4.0`, ...; see
    /// [`crate::device::Level`]): rungs it does not admit are not chosen and the bitrate is
    /// capped at its limit. Applied by the analysis, which knows the codec and frame rate.
    #[serde(default)]
    pub level: Option<String>,
}

impl Default for Constraints {
    fn default() -> Self {
        Self {
            max_rungs: 6,
            step_ratio: 1.5,
            min_bitrate: 100.0,
            max_bitrate: 20_000.0,
            quality_ceiling: 95.0,
            quality_floor: 30.0,
            max_height: 2160,
            level: None,
        }
    }
}

/// Picks rungs from the hull, top down: the top rung is the cheapest point reaching the
/// quality ceiling (or the best one under it); each next rung is the best hull point at most
/// `1 / step_ratio` of the rung above's bitrate, never taller than the rung above. Rungs are
/// returned from the highest bitrate down. When the whole hull costs less than the minimum
/// bitrate, the ladder is that top point alone.
pub fn select_rungs(hull: &[TrialPoint], c: &Constraints) -> Result<Vec<TrialPoint>> {
    if hull.is_empty() {
        return Err(LadderError::NoPoints);
    }
    let allowed: Vec<TrialPoint> = hull
        .iter()
        .copied()
        .filter(|p| {
            p.height <= c.max_height
                && p.bitrate >= c.min_bitrate
                && p.bitrate <= c.max_bitrate
                && p.score >= c.quality_floor
        })
        .collect();
    if allowed.is_empty() {
        // A title so easy that its whole hull costs less than the minimum bitrate: one rung,
        // the cheapest point reaching the ceiling (or the best), is the ladder. More rungs
        // would only go further under the minimum; none at all would leave the title to a
        // fixed ladder that spends several times the bits.
        let cheap: Vec<&TrialPoint> = hull
            .iter()
            .filter(|p| p.height <= c.max_height && p.score >= c.quality_floor)
            .collect();
        if !cheap.is_empty() && cheap.iter().all(|p| p.bitrate < c.min_bitrate) {
            let top = cheap
                .iter()
                .find(|p| p.score >= c.quality_ceiling)
                .or_else(|| cheap.last())
                .copied()
                .copied()
                .expect("not empty");
            return Ok(vec![top]);
        }
    }
    let top = allowed
        .iter()
        .find(|p| p.score >= c.quality_ceiling)
        .or_else(|| allowed.last())
        .copied()
        .ok_or_else(|| {
            LadderError::Unsatisfiable(format!(
                "{} hull points, none within {}-{} kbit/s, at most {} lines and at least score {}",
                hull.len(),
                c.min_bitrate,
                c.max_bitrate,
                c.max_height,
                c.quality_floor
            ))
        })?;
    let mut rungs = vec![top];
    while rungs.len() < c.max_rungs.max(1) {
        let above = *rungs.last().expect("one rung");
        let next = allowed
            .iter()
            .rev()
            .find(|p| p.bitrate * c.step_ratio <= above.bitrate && p.height <= above.height);
        match next {
            Some(p) => rungs.push(*p),
            None => break,
        }
    }
    Ok(rungs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(height: u32, bitrate: f64, score: f64) -> TrialPoint {
        TrialPoint {
            interpolated: false,
            width: height * 16 / 9,
            height,
            setting: 0.0,
            bitrate,
            score,
        }
    }

    #[test]
    fn hull_keeps_the_upper_envelope() {
        let pts = vec![
            p(360, 300.0, 60.0),
            p(360, 600.0, 73.0),
            p(360, 1200.0, 78.0),
            p(720, 600.0, 65.0),  // beaten by 360p at the same rate
            p(720, 1200.0, 84.0), // beats 360p
            p(720, 2400.0, 92.0),
            p(1080, 2400.0, 90.0), // beaten
            p(1080, 4800.0, 96.0),
            p(540, 1700.0, 85.0), // under the chord from 720p@1200 to 720p@2400
        ];
        let hull = convex_hull(&pts);
        let got: Vec<(u32, f64)> = hull.iter().map(|h| (h.height, h.bitrate)).collect();
        assert_eq!(
            got,
            vec![
                (360, 300.0),
                (360, 600.0),
                (720, 1200.0),
                (720, 2400.0),
                (1080, 4800.0)
            ]
        );
        // Monotonic and concave in (rate, score).
        for w in hull.windows(3) {
            let s1 = (w[1].score - w[0].score) / (w[1].bitrate - w[0].bitrate);
            let s2 = (w[2].score - w[1].score) / (w[2].bitrate - w[1].bitrate);
            assert!(s2 < s1);
        }
    }

    #[test]
    fn rungs_follow_the_constraints() {
        let mut pts = Vec::new();
        for (h, base) in [
            (234, 150.0),
            (360, 300.0),
            (540, 700.0),
            (720, 1200.0),
            (1080, 2500.0),
        ] {
            for k in 0..6 {
                let rate = base * 1.6f64.powi(k);
                let score = (100.0 - 2000.0 / (rate / base * h as f64 / 10.0)).min(99.0);
                pts.push(p(h, rate, score));
            }
        }
        let hull = convex_hull(&pts);
        let c = Constraints {
            max_rungs: 5,
            step_ratio: 1.7,
            ..Default::default()
        };
        let rungs = select_rungs(&hull, &c).unwrap();
        assert!(rungs.len() >= 3 && rungs.len() <= 5);
        for w in rungs.windows(2) {
            assert!(w[0].bitrate >= w[1].bitrate * 1.7);
            assert!(w[0].height >= w[1].height);
        }
        assert!(rungs.iter().all(|r| hull.contains(r)));
        // The top rung is the cheapest hull point at the ceiling.
        let first_at_ceiling = hull.iter().find(|h| h.score >= 95.0).unwrap();
        assert_eq!(rungs[0], *first_at_ceiling);
        // An easy title (high scores at low rates) tops out lower than a hard one.
        let easy: Vec<TrialPoint> = pts
            .iter()
            .map(|q| TrialPoint {
                interpolated: false,
                bitrate: q.bitrate / 4.0,
                ..*q
            })
            .collect();
        let easy_rungs = select_rungs(&convex_hull(&easy), &c).unwrap();
        assert!(easy_rungs[0].bitrate < rungs[0].bitrate);
    }

    #[test]
    fn a_hull_entirely_under_the_minimum_bitrate_is_one_rung() {
        // An easy title in AV1: VMAF 94 at 95 kbit/s, everything under the 100 kbit/s minimum.
        let hull = convex_hull(&[
            p(234, 30.0, 40.0),
            p(360, 45.0, 60.0),
            p(540, 60.0, 80.0),
            p(720, 78.0, 91.0),
            p(720, 95.0, 94.0),
        ]);
        let rungs = select_rungs(&hull, &Constraints::default()).unwrap();
        assert_eq!(rungs.len(), 1);
        assert_eq!((rungs[0].height, rungs[0].bitrate), (720, 95.0));
        // One that reaches the ceiling takes the cheapest such point.
        let hull = convex_hull(&[p(540, 60.0, 90.0), p(720, 80.0, 96.0), p(720, 99.0, 98.0)]);
        let rungs = select_rungs(&hull, &Constraints::default()).unwrap();
        assert_eq!((rungs[0].height, rungs[0].bitrate), (720, 80.0));
        assert_eq!(rungs.len(), 1);
        // Points both under and over the minimum: the minimum holds as before.
        let hull = convex_hull(&[p(360, 60.0, 70.0), p(720, 150.0, 90.0)]);
        let rungs = select_rungs(&hull, &Constraints::default()).unwrap();
        assert!(rungs.iter().all(|r| r.bitrate >= 100.0));
    }

    #[test]
    fn impossible_constraints_say_why() {
        let hull = convex_hull(&[p(360, 300.0, 20.0)]);
        let e = select_rungs(&hull, &Constraints::default()).unwrap_err();
        assert!(e.to_string().contains("at least score 30"), "{e}");
        assert!(matches!(
            select_rungs(&[], &Constraints::default()),
            Err(LadderError::NoPoints)
        ));
    }
}

#[cfg(test)]
mod interpolation {
    use super::*;

    fn t(h: u32, setting: f64, bitrate: f64, score: f64) -> TrialPoint {
        TrialPoint {
            width: h * 16 / 9,
            height: h,
            setting,
            bitrate,
            score,
            interpolated: false,
        }
    }

    #[test]
    fn curves_are_densified_between_measured_points_of_one_resolution() {
        let pts = [
            t(720, 30.0, 1000.0, 80.0),
            t(720, 20.0, 4000.0, 90.0),
            // Worse than a cheaper point of its curve: dropped.
            t(720, 25.0, 2000.0, 79.0),
            t(360, 30.0, 500.0, 70.0),
        ];
        let d = interpolate_curves(&pts, 4);
        let hd: Vec<&TrialPoint> = d.iter().filter(|p| p.height == 720).collect();
        assert_eq!(hd.len(), 5);
        let mid = hd[2];
        assert!(mid.interpolated);
        assert!(
            (mid.bitrate - 2000.0).abs() < 1e-9,
            "geometric midpoint: {}",
            mid.bitrate
        );
        assert!((mid.score - 85.0).abs() < 1e-12 && (mid.setting - 25.0).abs() < 1e-12);
        assert_eq!(d.iter().filter(|p| p.height == 360).count(), 1);
        assert!(!d.iter().any(|p| p.score == 79.0));
    }
}
