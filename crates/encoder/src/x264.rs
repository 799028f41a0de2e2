//! The one x264enc configuration, shared by the rungs (`encode.rs`) and the per-title trials
//! (`raw.rs`): a trial predicts a rung only as well as the two encoders agree, so the preset
//! and the rate control are set here and nowhere else. What differs is named in
//! [`X264Settings`]: the rungs' fixed GOPs and the trials' single thread.

use crate::gst_util::make;
use crate::{EncodeError, RateControl};
use gstreamer as gst;
use gstreamer::prelude::*;

/// x264enc's largest `bitrate`: in quality mode, no VBV cap in practice.
pub(crate) const UNCAPPED_KBPS: u32 = 2_048_000;

/// x264's presets by Reel's speed 1 (placebo) ... 10 (ultrafast).
const PRESETS: [&str; 10] = [
    "placebo",
    "veryslow",
    "slower",
    "slow",
    "medium",
    "fast",
    "faster",
    "veryfast",
    "superfast",
    "ultrafast",
];

/// The VBV of a bitrate rung: 2 s at the target bitrate (x264enc's `vbv-buf-capacity`, ms).
const VBV_MS: u32 = 2000;

/// How one x264 encoder is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct X264Settings {
    /// 1 (placebo) ... 10 (ultrafast); clamped into that range.
    pub speed: u8,
    /// A CRF (0-50) or a target bitrate (kbit/s, CBR with a 2 s VBV).
    pub rate: RateControl,
    /// Closed GOPs of exactly this many frames and no scene-cut key frames, so that every
    /// rung has IDR frames at the same presentation times. `None` leaves key frames to x264
    /// (a trial window has one at its start).
    pub gop: Option<u32>,
    /// x264's frame threads (no sliced threads); `None` lets x264 choose by the machine's
    /// cores. Trials run many at a time, one thread each; a chunk's rungs use one thread so
    /// that a unit has the same bytes wherever and whenever it runs (threaded rate control
    /// depends on timing).
    pub threads: Option<u32>,
}

impl X264Settings {
    /// The preset's name.
    pub fn preset(&self) -> &'static str {
        PRESETS[usize::from(self.speed.clamp(1, 10)) - 1]
    }

    /// A configured `x264enc`.
    pub fn element(&self) -> Result<gst::Element, EncodeError> {
        let enc = make("x264enc")?;
        enc.set_property_from_str("speed-preset", self.preset());
        match self.rate {
            RateControl::Quality(crf) => {
                enc.set_property_from_str("pass", "qual");
                enc.set_property("quantizer", crf.min(50));
                // x264enc turns `bitrate` (default 2048 kbit/s) into a VBV cap in quality
                // mode; a CRF encode is uncapped.
                enc.set_property("bitrate", UNCAPPED_KBPS);
            }
            RateControl::Bitrate(kbps) => {
                enc.set_property_from_str("pass", "cbr");
                enc.set_property("bitrate", kbps.clamp(1, UNCAPPED_KBPS));
                enc.set_property("vbv-buf-capacity", VBV_MS);
            }
        }
        if let Some(g) = self.gop {
            enc.set_property("key-int-max", g);
            enc.set_property(
                "option-string",
                format!("min-keyint={g}:scenecut=0:open-gop=0"),
            );
        }
        if let Some(threads) = self.threads {
            enc.set_property("threads", threads);
            enc.set_property("sliced-threads", false);
        }
        Ok(enc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(s: X264Settings) -> gst::Element {
        crate::gst_util::init().unwrap();
        s.element().unwrap()
    }

    fn enum_nick(e: &gst::Element, name: &str) -> String {
        let v = e.property_value(name);
        gst::glib::EnumValue::from_value(&v)
            .map(|(_, e)| e.nick().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_rung_has_fixed_closed_gops_and_a_vbv() {
        let e = element(X264Settings {
            speed: 8,
            rate: RateControl::Bitrate(1500),
            gop: Some(48),
            threads: None,
        });
        assert_eq!(enum_nick(&e, "speed-preset"), "veryfast");
        assert_eq!(enum_nick(&e, "pass"), "cbr");
        assert_eq!(e.property::<u32>("bitrate"), 1500);
        assert_eq!(e.property::<u32>("vbv-buf-capacity"), 2000);
        assert_eq!(e.property::<u32>("key-int-max"), 48);
        assert_eq!(
            e.property::<String>("option-string"),
            "min-keyint=48:scenecut=0:open-gop=0"
        );
        assert_eq!(e.property::<u32>("threads"), 0, "x264's own thread count");
    }

    #[test]
    fn a_quality_trial_is_uncapped_and_single_threaded() {
        let e = element(X264Settings {
            speed: 0,
            rate: RateControl::Quality(60),
            gop: None,
            threads: Some(1),
        });
        assert_eq!(
            enum_nick(&e, "speed-preset"),
            "placebo",
            "speed clamped to 1"
        );
        assert_eq!(enum_nick(&e, "pass"), "qual");
        assert_eq!(
            e.property::<u32>("quantizer"),
            50,
            "CRF clamped to x264enc's range"
        );
        assert_eq!(e.property::<u32>("bitrate"), UNCAPPED_KBPS);
        assert_eq!(e.property::<u32>("threads"), 1);
        assert!(!e.property::<bool>("sliced-threads"));
        assert_eq!(e.property::<String>("option-string"), "");
    }
}
