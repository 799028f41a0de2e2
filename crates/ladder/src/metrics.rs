//! Full-reference quality metrics on 8-bit I420 pictures: PSNR and SSIM (here, in Rust), VMAF
//! (through libvmaf, feature `vmaf`), and the pooling of per-frame scores into one figure.

use reel_media::Picture;
use serde::{Deserialize, Serialize};

/// PSNR of a distorted picture against its reference, in dB (100 for identical pictures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Psnr {
    pub y: f64,
    /// Over all samples of the three planes (mean squared error weighted by sample count).
    pub yuv: f64,
}

fn db(mse: f64) -> f64 {
    if mse <= 0.0 {
        100.0
    } else {
        (10.0 * (255.0 * 255.0 / mse).log10()).min(100.0)
    }
}

fn same_size(a: &Picture, b: &Picture) {
    assert!(
        a.width == b.width && a.height == b.height,
        "metric on pictures of different sizes: {a:?} vs {b:?}"
    );
}

/// PSNR of `distorted` against `reference` (same size).
pub fn psnr(reference: &Picture, distorted: &Picture) -> Psnr {
    same_size(reference, distorted);
    let mut sse = [0u64; 3];
    for (i, s) in sse.iter_mut().enumerate() {
        *s = reference.planes[i]
            .iter()
            .zip(&distorted.planes[i])
            .map(|(&a, &b)| {
                let d = a as i32 - b as i32;
                (d * d) as u64
            })
            .sum();
    }
    let n: Vec<f64> = reference.planes.iter().map(|p| p.len() as f64).collect();
    Psnr {
        y: db(sse[0] as f64 / n[0]),
        yuv: db(sse.iter().sum::<u64>() as f64 / n.iter().sum::<f64>()),
    }
}

/// SSIM of one plane: the mean over 8x8 windows placed every 4 samples (the arrangement x264
/// and ffmpeg use), with the usual constants for 8-bit samples.
fn ssim_plane(a: &[u8], b: &[u8], width: usize, height: usize) -> f64 {
    if width < 8 || height < 8 {
        return if a == b { 1.0 } else { 0.0 };
    }
    const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
    const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);
    let mut total = 0.0;
    let mut count = 0usize;
    for y in (0..=height - 8).step_by(4) {
        for x in (0..=width - 8).step_by(4) {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0u32, 0u32, 0u32, 0u32, 0u32);
            for row in y..y + 8 {
                let o = row * width + x;
                for (&p, &q) in a[o..o + 8].iter().zip(&b[o..o + 8]) {
                    let (p, q) = (p as u32, q as u32);
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let n = 64.0;
            let (ma, mb) = (sa as f64 / n, sb as f64 / n);
            let va = saa as f64 / n - ma * ma;
            let vb = sbb as f64 / n - mb * mb;
            let cov = sab as f64 / n - ma * mb;
            total += ((2.0 * ma * mb + C1) * (2.0 * cov + C2))
                / ((ma * ma + mb * mb + C1) * (va + vb + C2));
            count += 1;
        }
    }
    total / count as f64
}

/// SSIM of `distorted` against `reference`: luma, and the three planes weighted 4:1:1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ssim {
    pub y: f64,
    pub yuv: f64,
}

/// SSIM of `distorted` against `reference` (same size).
pub fn ssim(reference: &Picture, distorted: &Picture) -> Ssim {
    same_size(reference, distorted);
    let s: Vec<f64> = (0..3)
        .map(|i| {
            let (w, h) = reference.plane_size(i);
            ssim_plane(
                &reference.planes[i],
                &distorted.planes[i],
                w as usize,
                h as usize,
            )
        })
        .collect();
    Ssim {
        y: s[0],
        yuv: (4.0 * s[0] + s[1] + s[2]) / 6.0,
    }
}

/// SSIM of the luma plane only (what the analysis records per trial: a third cheaper).
pub fn ssim_luma(reference: &Picture, distorted: &Picture) -> f64 {
    same_size(reference, distorted);
    ssim_plane(
        reference.luma(),
        distorted.luma(),
        reference.width as usize,
        reference.height as usize,
    )
}

/// Per-frame scores pooled into single figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pooled {
    pub mean: f64,
    /// `n / sum(1 / (1 + x)) - 1`, the harmonic mean Netflix uses for VMAF: it punishes a few
    /// bad frames more than the mean does.
    pub harmonic_mean: f64,
    /// The 5th percentile (the score 95% of the weight is at or above).
    pub p5: f64,
    pub min: f64,
}

impl Pooled {
    /// Pools `(score, weight)` pairs; weights need not sum to one. `None` when there is no
    /// positive weight.
    pub fn weighted(scores: &[(f64, f64)]) -> Option<Pooled> {
        let total: f64 = scores.iter().map(|s| s.1).filter(|w| *w > 0.0).sum();
        if total.is_nan() || total <= 0.0 || scores.iter().any(|s| !s.0.is_finite()) {
            return None;
        }
        let mean = scores.iter().map(|(x, w)| x * w).sum::<f64>() / total;
        let inv = scores
            .iter()
            .map(|(x, w)| w / (1.0 + x.max(0.0)))
            .sum::<f64>()
            / total;
        let mut sorted: Vec<(f64, f64)> = scores.iter().copied().filter(|s| s.1 > 0.0).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut acc = 0.0;
        let mut p5 = sorted[0].0;
        for (x, w) in &sorted {
            acc += w;
            p5 = *x;
            if acc >= 0.05 * total {
                break;
            }
        }
        Some(Pooled {
            mean,
            harmonic_mean: 1.0 / inv - 1.0,
            p5,
            min: sorted[0].0,
        })
    }

    /// Pools equally weighted scores.
    pub fn of(scores: &[f64]) -> Option<Pooled> {
        let pairs: Vec<(f64, f64)> = scores.iter().map(|&s| (s, 1.0)).collect();
        Pooled::weighted(&pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(w: u32, h: u32, amp: i32, seed: u32) -> Picture {
        let mut p = Picture::filled(w, h, 0, 128);
        let mut s = seed;
        for (i, v) in p.planes[0].iter_mut().enumerate() {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let base = ((i as u32 % w) * 255 / w) as i32;
            *v = (base + ((s >> 16) as i32 % (2 * amp + 1)) - amp).clamp(0, 255) as u8;
        }
        p
    }

    #[test]
    fn psnr_of_a_known_error() {
        let a = Picture::filled(16, 16, 100, 128);
        let mut b = a.clone();
        // Every luma sample off by 2: MSE 4 on Y, 0 on chroma.
        b.planes[0].iter_mut().for_each(|v| *v += 2);
        let p = psnr(&a, &b);
        assert!((p.y - 10.0 * (65025.0f64 / 4.0).log10()).abs() < 1e-9);
        // Y is 256 of 384 samples: MSE 4 * 256/384.
        assert!((p.yuv - 10.0 * (65025.0f64 / (4.0 * 256.0 / 384.0)).log10()).abs() < 1e-9);
        assert_eq!(psnr(&a, &a).y, 100.0);
    }

    #[test]
    fn ssim_is_one_for_identical_and_falls_with_noise() {
        let a = noisy(64, 48, 0, 1);
        assert!((ssim(&a, &a).y - 1.0).abs() < 1e-12);
        let light = ssim(&a, &noisy(64, 48, 4, 2)).y;
        let heavy = ssim(&a, &noisy(64, 48, 40, 3)).y;
        assert!(light < 1.0 && heavy < light, "{light} {heavy}");
    }

    #[test]
    fn ssim_of_a_mean_shift_on_flat_windows() {
        // Flat windows, means 100 and 110: SSIM = (2*100*110 + C1) / (100^2 + 110^2 + C1).
        let a = Picture::filled(16, 16, 100, 128);
        let b = Picture::filled(16, 16, 110, 128);
        let c1 = (0.01f64 * 255.0).powi(2);
        let want = (2.0 * 100.0 * 110.0 + c1) / (100.0f64.powi(2) + 110.0f64.powi(2) + c1);
        assert!((ssim(&a, &b).y - want).abs() < 1e-12);
    }

    #[test]
    fn pooling() {
        let p = Pooled::of(&[90.0, 90.0, 90.0, 0.0]).unwrap();
        assert_eq!(p.mean, 67.5);
        // 4 / (3/91 + 1/1) - 1
        assert!((p.harmonic_mean - (4.0 / (3.0 / 91.0 + 1.0) - 1.0)).abs() < 1e-12);
        assert_eq!(p.p5, 0.0);
        assert_eq!(p.min, 0.0);
        let w = Pooled::weighted(&[(80.0, 3.0), (40.0, 1.0)]).unwrap();
        assert_eq!(w.mean, 70.0);
        assert!(Pooled::of(&[]).is_none());
        assert!(Pooled::of(&[f64::NAN]).is_none());
    }
}
