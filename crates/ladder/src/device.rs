//! Device limits per codec: a decoder level (H.264 Annex A, AV1 Annex A.3) bounds the picture
//! size, the sample rate and the bitrate a rung may have. The analysis drops candidate heights
//! a level does not admit and caps the rungs' bitrate at the level's.
//!
//! ```
//! use reel_ladder::device::Level;
//! use reel_media::Codec;
//! let l = Level::parse(Codec::H264, "3.1").unwrap();
//! assert!(l.admits(1280, 720, 25.0));
//! assert!(!l.admits(1920, 1080, 25.0));
//! assert_eq!(l.max_kbps(), 17_500.0); // High profile: 1.25 x 14,000
//! ```

use reel_media::Codec;
use serde::{Deserialize, Serialize};

/// A decoder level of one codec and the limits it sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub codec: Codec,
    /// As written: `3.1`, `4`, `1b`.
    pub name: String,
    /// Most luma samples in a picture.
    pub max_picture: u64,
    /// Longest side (luma samples); H.264 bounds each side by `sqrt(8 x MaxFS)` macroblocks.
    pub max_side: u32,
    /// Most luma samples a second.
    pub max_sample_rate: u64,
    /// Most bits a second (kbit/s) of the coded video.
    max_kbps: f64,
}

// H.264 Table A-1: (level, MaxMBPS, MaxFS, MaxBR in 1000 bit/s).
const H264: [(&str, u64, u64, f64); 17] = [
    ("1", 1_485, 99, 64.0),
    ("1b", 1_485, 99, 128.0),
    ("1.1", 3_000, 396, 192.0),
    ("1.2", 6_000, 396, 384.0),
    ("1.3", 11_880, 396, 768.0),
    ("2", 11_880, 396, 2_000.0),
    ("2.1", 19_800, 792, 4_000.0),
    ("2.2", 20_250, 1_620, 4_000.0),
    ("3", 40_500, 1_620, 10_000.0),
    ("3.1", 108_000, 3_600, 14_000.0),
    ("3.2", 216_000, 5_120, 20_000.0),
    ("4", 245_760, 8_192, 20_000.0),
    ("4.1", 245_760, 8_192, 50_000.0),
    ("4.2", 522_240, 8_704, 50_000.0),
    ("5", 589_824, 22_080, 135_000.0),
    ("5.1", 983_040, 36_864, 240_000.0),
    ("5.2", 2_073_600, 36_864, 240_000.0),
];

/// x264 encodes the High profile, whose bitrate limits are 1.25 times the table's
/// (cpbBrVclFactor 1250 against 1000).
const H264_HIGH_FACTOR: f64 = 1.25;

// AV1 Annex A.3, main tier: (level, MaxPicSize, MaxHSize, MaxDisplayRate, MaxBitrate in Mbit/s).
const AV1: [(&str, u64, u32, u64, f64); 8] = [
    ("2.0", 147_456, 2_048, 4_423_680, 1.5),
    ("2.1", 278_784, 2_816, 8_363_520, 3.0),
    ("3.0", 665_856, 4_352, 19_975_680, 6.0),
    ("3.1", 1_065_024, 5_504, 31_950_720, 10.0),
    ("4.0", 2_359_296, 6_144, 70_778_880, 12.0),
    ("4.1", 2_359_296, 6_144, 141_557_760, 20.0),
    ("5.0", 8_912_896, 8_192, 267_386_880, 30.0),
    ("5.1", 8_912_896, 8_192, 534_773_760, 40.0),
];

impl Level {
    /// The level called `name` (`3.1`, `4`, `4.0`, ...) of `codec`; an error names the levels
    /// there are.
    pub fn parse(codec: Codec, name: &str) -> Result<Level, String> {
        let name = name.trim();
        match codec {
            Codec::H264 => {
                let key = name.strip_suffix(".0").unwrap_or(name);
                let &(n, mbps, fs, br) = H264.iter().find(|l| l.0 == key).ok_or_else(|| {
                    format!(
                        "H.264 has no level '{name}' (levels: {})",
                        H264.map(|l| l.0).join(", ")
                    )
                })?;
                Ok(Level {
                    codec,
                    name: n.into(),
                    max_picture: fs * 256,
                    max_side: ((8 * fs) as f64).sqrt() as u32 * 16,
                    max_sample_rate: mbps * 256,
                    max_kbps: br * H264_HIGH_FACTOR,
                })
            }
            Codec::Av1 => {
                let key = if name.contains('.') {
                    name.to_string()
                } else {
                    format!("{name}.0")
                };
                let &(n, pic, side, rate, mbit) =
                    AV1.iter().find(|l| l.0 == key).ok_or_else(|| {
                        format!(
                            "AV1 has no level '{name}' (levels: {})",
                            AV1.map(|l| l.0).join(", ")
                        )
                    })?;
                Ok(Level {
                    codec,
                    name: n.into(),
                    max_picture: pic,
                    max_side: side,
                    max_sample_rate: rate,
                    max_kbps: mbit * 1000.0,
                })
            }
            other => Err(format!("{} has no video levels", other.name())),
        }
    }

    /// Whether a `width` x `height` picture at `frame_rate` fits the level (H.264 counts
    /// whole macroblocks).
    pub fn admits(&self, width: u32, height: u32, frame_rate: f64) -> bool {
        let (w, h) = match self.codec {
            Codec::H264 => (width.div_ceil(16) * 16, height.div_ceil(16) * 16),
            _ => (width, height),
        };
        let picture = u64::from(w) * u64::from(h);
        picture <= self.max_picture
            && w.max(h) <= self.max_side
            && picture as f64 * frame_rate <= self.max_sample_rate as f64
    }

    /// The level's bitrate limit, kbit/s.
    pub fn max_kbps(&self) -> f64 {
        self.max_kbps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_levels_bound_size_rate_and_bitrate() {
        let l30 = Level::parse(Codec::H264, "3.0").unwrap();
        assert_eq!(l30.name, "3");
        assert!(l30.admits(720, 576, 25.0));
        assert!(
            !l30.admits(720, 576, 30.0),
            "MaxMBPS 40,500: 1,620 MBs x 30 is more"
        );
        assert!(!l30.admits(1280, 720, 25.0));
        assert_eq!(l30.max_kbps(), 12_500.0);
        let l40 = Level::parse(Codec::H264, "4").unwrap();
        assert!(l40.admits(1920, 1080, 30.0));
        assert!(!l40.admits(1920, 1080, 60.0));
        // 1080p60 takes level 4.2 (MaxMBPS 522,240; 4.1 has 245,760).
        assert!(!Level::parse(Codec::H264, "4.1")
            .unwrap()
            .admits(1920, 1080, 60.0));
        assert!(Level::parse(Codec::H264, "4.2")
            .unwrap()
            .admits(1920, 1080, 60.0));
        assert!(Level::parse(Codec::H264, "1b").is_ok());
        let e = Level::parse(Codec::H264, "3.3").unwrap_err();
        assert!(e.contains("3.3") && e.contains("3.1"), "{e}");
    }

    #[test]
    fn av1_levels_agree_with_the_encoder_s_level_choice() {
        // reel_media::av1::level_for picks the lowest level admitting a size: that level
        // admits it, the one before does not.
        let names = AV1.map(|l| l.0);
        for (w, h, fps) in [(1280, 720, 25.0), (1920, 1080, 30.0), (640, 360, 25.0)] {
            let idx = reel_media::av1::level_for(w, h, fps);
            let name = format!("{}.{}", 2 + idx / 4, idx % 4);
            let i = names.iter().position(|n| *n == name).unwrap();
            assert!(Level::parse(Codec::Av1, &name).unwrap().admits(w, h, fps));
            if i > 0 {
                assert!(!Level::parse(Codec::Av1, names[i - 1])
                    .unwrap()
                    .admits(w, h, fps));
            }
        }
        assert_eq!(Level::parse(Codec::Av1, "4").unwrap().max_kbps(), 12_000.0);
        assert!(Level::parse(Codec::Aac, "2").is_err());
    }
}
