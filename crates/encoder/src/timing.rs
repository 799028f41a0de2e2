use reel_media::Rational;

/// The timescale for a video track at `frame_rate`: 90 kHz when a frame lasts a whole number
/// of 90 kHz ticks (25, 30, 50, 60 fps ...), otherwise the frame rate's numerator scaled up to
/// at least 10,000 (24000/1001 fps gets 24000). Frame durations are then exact integers, so
/// timestamps computed from frame numbers never drift.
///
/// ```
/// use reel_media::Rational;
/// assert_eq!(reel_encoder::video_timescale(Rational::new(25, 1)), (90_000, 3600));
/// assert_eq!(reel_encoder::video_timescale(Rational::new(24000, 1001)), (24_000, 1001));
/// ```
pub fn video_timescale(frame_rate: Rational) -> (u32, u32) {
    let (n, d) = (u64::from(frame_rate.num), u64::from(frame_rate.den));
    if n == 0 {
        return (90_000, 3600);
    }
    if (90_000 * d) % n == 0 {
        return (90_000, (90_000 * d / n) as u32);
    }
    let k = 10_000u64.div_ceil(n).max(1);
    ((n * k) as u32, (d * k) as u32)
}

/// Nanoseconds from frame 0 to frame `frames` at `frame_rate` (rounded down), exact over any
/// title length (no frame duration rounded first).
pub(crate) fn frames_ns(frames: u64, frame_rate: Rational) -> u64 {
    let (num, den) = (
        u128::from(frame_rate.num.max(1)),
        u128::from(frame_rate.den.max(1)),
    );
    (u128::from(frames) * den * 1_000_000_000 / num) as u64
}

/// Half a frame at `frame_rate`, in nanoseconds (rounded down): the tolerance for matching a
/// timestamp to a frame.
pub(crate) fn half_frame_ns(frame_rate: Rational) -> u64 {
    (u64::from(frame_rate.den.max(1)) * 500_000_000) / u64::from(frame_rate.num.max(1))
}

/// Converts nanoseconds to ticks of `timescale`, rounding to nearest.
pub(crate) fn ns_to_ticks(ns: i128, timescale: u32) -> i64 {
    let t = i128::from(timescale);
    let v = (ns * t + if ns >= 0 { 500_000_000 } else { -500_000_000 }) / 1_000_000_000;
    v as i64
}

/// Rounds `ticks` to the nearest multiple of `step`.
pub(crate) fn snap(ticks: i64, step: u32) -> i64 {
    let s = i64::from(step);
    (ticks + if ticks >= 0 { s / 2 } else { -s / 2 }) / s * s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(ns_to_ticks(40_000_000, 90_000), 3600);
        assert_eq!(ns_to_ticks(-40_000_000, 90_000), -3600);
        // 1001/24000 s = 41708333.33 ns
        assert_eq!(ns_to_ticks(41_708_333, 24_000), 1001);
        assert_eq!(snap(3599, 3600), 3600);
        assert_eq!(snap(-3601, 3600), -3600);
        assert_eq!(video_timescale(Rational::new(30000, 1001)), (90_000, 3003));
        // 90000 * 1001 / 60000 is not whole: fall back to the numerator.
        assert_eq!(video_timescale(Rational::new(60000, 1001)), (60_000, 1001));
        assert_eq!(video_timescale(Rational::new(30, 1)), (90_000, 3000));
        let ntsc = Rational::new(30_000, 1001);
        assert_eq!(frames_ns(1, ntsc), 33_366_666);
        assert_eq!(frames_ns(215_784, ntsc), 7_199_992_800_000);
        assert_eq!(half_frame_ns(ntsc), 16_683_333);
        assert_eq!(half_frame_ns(Rational::new(25, 1)), 20_000_000);
    }
}
