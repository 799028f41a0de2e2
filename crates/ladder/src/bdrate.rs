//! Bjontegaard delta rate (VCEG-M33): the average bitrate difference between two
//! rate-quality curves over their overlapping quality range.

/// BD-rate of `test` against `reference`, in percent (negative: `test` needs fewer bits for
/// the same quality). Each curve is (bitrate, quality) points; log10(bitrate) is fitted as a
/// cubic polynomial of quality (a lower degree with fewer than four points) and integrated
/// over the quality range both curves cover. `None` when a curve has fewer than two points
/// or the ranges do not overlap.
///
/// ```
/// // Same quality at 80% of the bits: -20%.
/// let a = [(1000.0, 40.0), (2000.0, 50.0), (4000.0, 60.0), (8000.0, 70.0)];
/// let b: Vec<(f64, f64)> = a.iter().map(|&(r, q)| (r * 0.8, q)).collect();
/// let d = reel_ladder::bd_rate(&a, &b).unwrap();
/// assert!((d + 20.0).abs() < 1e-9);
/// ```
pub fn bd_rate(reference: &[(f64, f64)], test: &[(f64, f64)]) -> Option<f64> {
    let lo = min_q(reference)?.max(min_q(test)?);
    let hi = max_q(reference)?.min(max_q(test)?);
    // Also false for NaN bounds.
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let a = fit(reference)?;
    let b = fit(test)?;
    let avg = (integral(&b, lo, hi) - integral(&a, lo, hi)) / (hi - lo);
    Some((10f64.powf(avg) - 1.0) * 100.0)
}

/// BD-rate for ladders: each curve is first reduced to its envelope (a rung no better than a
/// cheaper one is dropped: a player would never pick it), then log10(bitrate) is interpolated
/// piecewise linearly in quality and averaged over the overlapping quality range. Unlike the
/// cubic fit of [`bd_rate`], it cannot swing on a few badly placed points (a fixed ladder's
/// rungs on content it does not suit). `None` as for [`bd_rate`].
///
/// ```
/// let a = [(1000.0, 40.0), (2000.0, 50.0), (4000.0, 60.0)];
/// let b: Vec<(f64, f64)> = a.iter().map(|&(r, q)| (r * 0.5, q)).collect();
/// let d = reel_ladder::bd_rate_piecewise(&a, &b).unwrap();
/// assert!((d + 50.0).abs() < 1e-9);
/// ```
pub fn bd_rate_piecewise(reference: &[(f64, f64)], test: &[(f64, f64)]) -> Option<f64> {
    let (a, b) = (envelope(reference)?, envelope(test)?);
    let lo = a[0].0.max(b[0].0);
    let hi = a.last()?.0.min(b.last()?.0);
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    // Both interpolants are piecewise linear: integrate exactly between all breakpoints.
    let mut xs: Vec<f64> = a
        .iter()
        .chain(&b)
        .map(|p| p.0)
        .filter(|&q| q > lo && q < hi)
        .collect();
    xs.extend([lo, hi]);
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let diff = |q: f64| interpolate(&b, q) - interpolate(&a, q);
    let area: f64 = xs
        .windows(2)
        .map(|w| (diff(w[0]) + diff(w[1])) / 2.0 * (w[1] - w[0]))
        .sum();
    Some((10f64.powf(area / (hi - lo)) - 1.0) * 100.0)
}

/// (quality, log10 rate) of the points that beat every cheaper point, by quality.
fn envelope(curve: &[(f64, f64)]) -> Option<Vec<(f64, f64)>> {
    let mut pts: Vec<(f64, f64)> = curve
        .iter()
        .copied()
        .filter(|p| p.0 > 0.0 && p.0.is_finite() && p.1.is_finite())
        .collect();
    pts.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut env: Vec<(f64, f64)> = Vec::new();
    for (r, q) in pts {
        if env.last().is_none_or(|l| q > l.0) {
            env.push((q, r.log10()));
        }
    }
    (env.len() >= 2).then_some(env)
}

fn interpolate(env: &[(f64, f64)], q: f64) -> f64 {
    let i = env.partition_point(|p| p.0 < q).clamp(1, env.len() - 1);
    let (a, b) = (env[i - 1], env[i]);
    a.1 + (q - a.0) / (b.0 - a.0) * (b.1 - a.1)
}

fn min_q(c: &[(f64, f64)]) -> Option<f64> {
    c.iter().map(|p| p.1).reduce(f64::min)
}

fn max_q(c: &[(f64, f64)]) -> Option<f64> {
    c.iter().map(|p| p.1).reduce(f64::max)
}

/// Least-squares polynomial coefficients (lowest power first) of log10(rate) in quality.
fn fit(curve: &[(f64, f64)]) -> Option<Vec<f64>> {
    let pts: Vec<(f64, f64)> = curve
        .iter()
        .filter(|p| p.0 > 0.0 && p.0.is_finite() && p.1.is_finite())
        .map(|&(r, q)| (q, r.log10()))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len().min(4); // unknowns: degree + 1
                              // Normal equations A c = y with A[i][j] = sum x^(i+j).
    let mut a = vec![vec![0.0f64; n + 1]; n];
    for &(x, y) in &pts {
        for (i, row) in a.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().take(n).enumerate() {
                *cell += x.powi((i + j) as i32);
            }
            row[n] += y * x.powi(i as i32);
        }
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..n {
        let pivot = (col..n).max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (cell, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *cell -= f * p;
                }
            }
        }
    }
    Some((0..n).map(|i| a[i][n] / a[i][i]).collect())
}

fn integral(c: &[f64], lo: f64, hi: f64) -> f64 {
    let at = |x: f64| {
        c.iter()
            .enumerate()
            .map(|(i, k)| k * x.powi(i as i32 + 1) / (i as f64 + 1.0))
            .sum::<f64>()
    };
    at(hi) - at(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values computed with numpy (`polyfit` degree 3 of log10 rate on quality,
    /// `polyint`, the VCEG-M33 procedure) on the same data.
    #[test]
    fn matches_numpy_reference() {
        let r1 = [
            (686.76, 40.28),
            (309.58, 37.18),
            (157.11, 34.24),
            (85.95, 31.42),
        ];
        let r2 = [
            (893.34, 40.39),
            (407.8, 37.21),
            (204.93, 34.17),
            (112.75, 31.24),
        ];
        let d = bd_rate(&r1, &r2).unwrap();
        assert!((d - 31.397_374_054_9).abs() < 1e-6, "{d}");
        let r3 = [
            (3000.0, 95.1),
            (1800.0, 91.3),
            (1100.0, 85.2),
            (600.0, 74.0),
            (300.0, 58.7),
        ];
        let r4 = [
            (2400.0, 94.8),
            (1500.0, 91.0),
            (900.0, 85.5),
            (500.0, 74.9),
            (260.0, 60.1),
        ];
        let d = bd_rate(&r3, &r4).unwrap();
        assert!((d + 19.178_782_979_3).abs() < 1e-6, "{d}");
    }

    #[test]
    fn piecewise_ignores_dominated_rungs() {
        // The 1600 kbit/s rung is worse than the 1000 one: dropped from the envelope.
        let fixed = [
            (500.0, 70.0),
            (1000.0, 90.0),
            (1600.0, 80.0),
            (2000.0, 95.0),
        ];
        let per_title = [(400.0, 70.0), (800.0, 90.0), (1600.0, 95.0)];
        let d = bd_rate_piecewise(&fixed, &per_title).unwrap();
        // log10 ratios: 70-90: log10(0.8) both ends; 90-95: from log10(0.8) to log10(0.8).
        assert!((d + 20.0).abs() < 1e-9, "{d}");
        assert!(bd_rate_piecewise(&fixed[..1], &per_title).is_none());
        // No overlap.
        assert!(
            bd_rate_piecewise(&[(1.0, 10.0), (2.0, 20.0)], &[(1.0, 30.0), (2.0, 40.0)]).is_none()
        );
    }

    #[test]
    fn degenerate_curves() {
        assert!(bd_rate(&[(100.0, 30.0)], &[(100.0, 30.0), (200.0, 40.0)]).is_none());
        // No overlap in quality.
        assert!(bd_rate(
            &[(100.0, 30.0), (200.0, 40.0)],
            &[(100.0, 50.0), (200.0, 60.0)]
        )
        .is_none());
        // Two points: a straight line still gives an answer.
        let d = bd_rate(
            &[(100.0, 30.0), (200.0, 40.0)],
            &[(50.0, 30.0), (100.0, 40.0)],
        )
        .unwrap();
        assert!((d + 50.0).abs() < 1e-9);
    }
}
