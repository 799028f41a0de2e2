//! The ladder the encoder consumes: one [`Rung`] per video rendition, plus the audio.

use crate::EncodeError;
use reel_media::Codec;
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// How a rung spends bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateControl {
    /// Target average bitrate in kbit/s.
    Bitrate(u32),
    /// Constant quality: rav1e's quantizer (0-255), SVT-AV1's CRF (1-63) or x264's CRF
    /// (0-50), as [`VideoEncoder::qualities`] says.
    Quality(u32),
}

/// The program that encodes a video rung. Each reads a rung's `quality` and `speed` on its own
/// scale; on every scale a higher speed is faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VideoEncoder {
    /// AV1 through the `rav1e` crate: pure Rust, always built in.
    Rav1e,
    /// AV1 through SVT-AV1 (the system's `libSvtAv1Enc`, the `svt-av1` feature): several
    /// times faster than rav1e at equal quality, and the AV1 default when built in.
    SvtAv1,
    /// H.264 through GStreamer's `x264enc`.
    X264,
}

impl VideoEncoder {
    pub fn name(self) -> &'static str {
        match self {
            VideoEncoder::Rav1e => "rav1e",
            VideoEncoder::SvtAv1 => "svt-av1",
            VideoEncoder::X264 => "x264",
        }
    }

    pub fn codec(self) -> Codec {
        match self {
            VideoEncoder::Rav1e | VideoEncoder::SvtAv1 => Codec::Av1,
            VideoEncoder::X264 => Codec::H264,
        }
    }

    /// Whether this build has the encoder (SVT-AV1 needs the `svt-av1` feature).
    pub fn built_in(self) -> bool {
        self != VideoEncoder::SvtAv1 || cfg!(feature = "svt-av1")
    }

    /// The encoder a rung of `codec` gets when it names none: SVT-AV1 for AV1 when built in,
    /// else rav1e; x264 for H.264.
    pub fn default_for(codec: Codec) -> Option<VideoEncoder> {
        match codec {
            Codec::Av1 if VideoEncoder::SvtAv1.built_in() => Some(VideoEncoder::SvtAv1),
            Codec::Av1 => Some(VideoEncoder::Rav1e),
            Codec::H264 => Some(VideoEncoder::X264),
            _ => None,
        }
    }

    /// The encoder of `codec` a ladder, job or command gets: `named`, else the codec's
    /// default. Errors (for the caller to prefix with what named it) when `named` encodes
    /// another codec or is not in this build, or `codec` is not a video codec.
    pub fn choose(named: Option<VideoEncoder>, codec: Codec) -> Result<VideoEncoder, String> {
        let encoder = match named {
            Some(e) => e,
            None => VideoEncoder::default_for(codec)
                .ok_or_else(|| format!("{} is not a video codec", codec.name()))?,
        };
        if encoder.codec() != codec {
            return Err(format!(
                "{} encodes {}, not {}",
                encoder.name(),
                encoder.codec().name(),
                codec.name()
            ));
        }
        if !encoder.built_in() {
            return Err(format!(
                "{} is not in this build of Reel (built without the svt-av1 feature)",
                encoder.name()
            ));
        }
        Ok(encoder)
    }

    /// What `quality` means and the values it takes.
    pub fn qualities(self) -> (&'static str, RangeInclusive<u32>) {
        match self {
            VideoEncoder::Rav1e => ("quantizer", 0..=255),
            VideoEncoder::SvtAv1 => ("CRF", 1..=63),
            VideoEncoder::X264 => ("CRF", 0..=50),
        }
    }

    /// The speeds (presets) the encoder takes; higher is faster.
    pub fn speeds(self) -> RangeInclusive<u8> {
        match self {
            VideoEncoder::Rav1e => 0..=10,
            VideoEncoder::SvtAv1 => 0..=13,
            // x264's presets, placebo (1) to ultrafast (10).
            VideoEncoder::X264 => 1..=10,
        }
    }

    /// The smallest width and height the encoder takes.
    pub fn least_size(self) -> u32 {
        match self {
            VideoEncoder::SvtAv1 => 64,
            VideoEncoder::Rav1e | VideoEncoder::X264 => 16,
        }
    }

    /// The speed a rung gets when it names none.
    pub fn default_speed(self) -> u8 {
        match self {
            VideoEncoder::Rav1e | VideoEncoder::SvtAv1 => 10,
            VideoEncoder::X264 => 8,
        }
    }
}

/// One video rendition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Rendition name (`720p`); defaults to the height followed by `p`.
    #[serde(default)]
    pub name: String,
    pub codec: Codec,
    /// Output height. Width follows from the source's display aspect ratio unless given.
    pub height: u32,
    #[serde(default)]
    pub width: Option<u32>,
    /// Target bitrate in kbit/s (mutually exclusive with `quality`).
    #[serde(default)]
    pub bitrate: Option<u32>,
    /// Quantizer / CRF on the encoder's scale (mutually exclusive with `bitrate`); `crf` is
    /// another name for it.
    #[serde(default, alias = "crf")]
    pub quality: Option<u32>,
    /// Speed preset on the encoder's scale (higher is faster); `preset` is another name for it.
    #[serde(default, alias = "preset")]
    pub speed: Option<u8>,
    /// `rav1e` or `svt-av1` for AV1, `x264` for H.264; by default SVT-AV1 for AV1 when this
    /// build has it, else rav1e.
    #[serde(default)]
    pub encoder: Option<VideoEncoder>,
}

impl Rung {
    /// The rung's name for messages: its own, else its height (as the plan will name it).
    fn label(&self) -> String {
        if self.name.is_empty() {
            format!("{}p", self.height)
        } else {
            self.name.clone()
        }
    }

    /// The rung's encoder: the one it names, else its codec's default.
    pub fn video_encoder(&self) -> Result<VideoEncoder, EncodeError> {
        VideoEncoder::choose(self.encoder, self.codec)
            .map_err(|why| EncodeError::InvalidLadder(format!("rung {}: {why}", self.label())))
    }

    pub fn rate_control(&self) -> Result<RateControl, EncodeError> {
        match (self.bitrate, self.quality) {
            (Some(b), None) if b > 0 => Ok(RateControl::Bitrate(b)),
            (None, Some(q)) => {
                let encoder = self.video_encoder()?;
                let (scale, range) = encoder.qualities();
                if !range.contains(&q) {
                    return Err(EncodeError::InvalidLadder(format!(
                        "rung {}: quality {q} is outside {}-{} ({} {scale})",
                        self.label(),
                        range.start(),
                        range.end(),
                        encoder.name(),
                    )));
                }
                Ok(RateControl::Quality(q))
            }
            _ => Err(EncodeError::InvalidLadder(format!(
                "rung {}: give exactly one of bitrate (kbit/s, > 0) or quality",
                self.label()
            ))),
        }
    }
}

/// The audio rendition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioSpec {
    /// `aac` (AAC-LC) or `opus`.
    pub codec: Codec,
    /// kbit/s.
    pub bitrate: u32,
    /// At most this many channels (downmixed); defaults to 2.
    #[serde(default = "two")]
    pub max_channels: u32,
    /// Besides the stereo rendition, a 5.1 rendition (AAC, six channels, at three times
    /// `bitrate`) when the source has six channels or more; on by default. AAC only: an Opus
    /// ladder keeps one rendition.
    #[serde(default = "yes")]
    pub surround: bool,
}

fn yes() -> bool {
    true
}

fn two() -> u32 {
    2
}

fn default_keyframe_interval() -> f64 {
    2.0
}

/// A bitrate ladder: video rungs, audio, and the keyframe cadence shared by all rungs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ladder {
    /// Seconds between forced key frames, identical in every rung so segments align.
    #[serde(default = "default_keyframe_interval")]
    pub keyframe_interval: f64,
    #[serde(rename = "rung")]
    pub rungs: Vec<Rung>,
    #[serde(default)]
    pub audio: Option<AudioSpec>,
}

impl Ladder {
    /// A built-in ladder by name (see [`BuiltinLadder`]).
    pub fn builtin(name: &str) -> Option<Ladder> {
        BuiltinLadder::from_name(name).map(BuiltinLadder::ladder)
    }

    /// Reads a ladder from a TOML file, or JSON when the file name ends in `.json`.
    pub fn from_file(path: &Path) -> Result<Ladder, EncodeError> {
        let text = std::fs::read_to_string(path).map_err(|e| EncodeError::reading(path, e))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        let ladder: Ladder =
            parsed.map_err(|e| EncodeError::InvalidLadder(format!("{}: {e}", path.display())))?;
        ladder.validate()?;
        Ok(ladder)
    }

    /// Checks the ladder on its own (the source is checked when the plan is made).
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.rungs.is_empty() {
            return Err(EncodeError::InvalidLadder("no rungs".into()));
        }
        if !(self.keyframe_interval > 0.0 && self.keyframe_interval <= 20.0) {
            return Err(EncodeError::InvalidLadder(format!(
                "keyframe_interval {} s is outside (0, 20]",
                self.keyframe_interval
            )));
        }
        for r in &self.rungs {
            if r.codec.kind() != reel_media::TrackKind::Video {
                return Err(EncodeError::InvalidLadder(format!(
                    "rung {}: {} is not a video codec",
                    r.label(),
                    r.codec.name()
                )));
            }
            if r.height < 16
                || r.height > 4320
                || r.width.is_some_and(|w| !(16..=7680).contains(&w))
            {
                return Err(EncodeError::InvalidLadder(format!(
                    "rung {}: size must be between 16 and 7680x4320",
                    r.label()
                )));
            }
            let encoder = r.video_encoder()?;
            let speeds = encoder.speeds();
            if let Some(speed) = r.speed.filter(|s| !speeds.contains(s)) {
                return Err(EncodeError::InvalidLadder(format!(
                    "rung {}: speed {speed} is outside {}-{} ({})",
                    r.label(),
                    speeds.start(),
                    speeds.end(),
                    encoder.name()
                )));
            }
            r.rate_control()?;
        }
        if let Some(a) = &self.audio {
            if a.codec.kind() != reel_media::TrackKind::Audio || a.bitrate == 0 {
                return Err(EncodeError::InvalidLadder(format!(
                    "audio: {} at {} kbit/s is not an audio rendition",
                    a.codec.name(),
                    a.bitrate
                )));
            }
        }
        Ok(())
    }
}

/// The built-in AV1 ladder's SVT-AV1 CRF: at preset 10 on the 720p Big Buck Bunny excerpt,
/// fewer bytes and a higher PSNR than rav1e at [`AV1_QUANTIZER`] (issue 20's table).
const AV1_CRF: u32 = 40;
/// The built-in AV1 ladder's rav1e quantizer, in a build without SVT-AV1.
const AV1_QUANTIZER: u32 = 110;

/// The ladders built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinLadder {
    /// `h264`: 1080p to 240p, AAC 128 kbit/s.
    H264,
    /// `av1`: SVT-AV1 preset 10 at CRF 40 (rav1e speed 10 at quantizer 110 in a build
    /// without SVT-AV1), Opus 96 kbit/s.
    Av1,
    /// `fixed`: Apple's HLS authoring-spec H.264 ladder, the baseline per-title is judged by.
    Fixed,
}

impl BuiltinLadder {
    pub const ALL: [BuiltinLadder; 3] = [
        BuiltinLadder::H264,
        BuiltinLadder::Av1,
        BuiltinLadder::Fixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BuiltinLadder::H264 => "h264",
            BuiltinLadder::Av1 => "av1",
            BuiltinLadder::Fixed => "fixed",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The ladder. Rungs above the source are dropped when the plan is made.
    pub fn ladder(self) -> Ladder {
        let rung = |codec, height, bitrate: Option<u32>, quality: Option<u32>| Rung {
            name: format!("{height}p"),
            codec,
            height,
            width: None,
            bitrate,
            quality,
            speed: None,
            encoder: None,
        };
        // The AV1 rungs' constant quality on their default encoder's scale.
        let av1_quality = match VideoEncoder::default_for(Codec::Av1) {
            Some(VideoEncoder::SvtAv1) => AV1_CRF,
            _ => AV1_QUANTIZER,
        };
        match self {
            BuiltinLadder::H264 => Ladder {
                keyframe_interval: 2.0,
                rungs: vec![
                    rung(Codec::H264, 1080, Some(5000), None),
                    rung(Codec::H264, 720, Some(3000), None),
                    rung(Codec::H264, 480, Some(1200), None),
                    rung(Codec::H264, 360, Some(700), None),
                    rung(Codec::H264, 240, Some(350), None),
                ],
                audio: Some(AudioSpec {
                    codec: Codec::Aac,
                    bitrate: 128,
                    max_channels: 2,
                    surround: true,
                }),
            },
            BuiltinLadder::Av1 => Ladder {
                keyframe_interval: 2.0,
                rungs: vec![
                    rung(Codec::Av1, 1080, None, Some(av1_quality)),
                    rung(Codec::Av1, 720, None, Some(av1_quality)),
                    rung(Codec::Av1, 480, None, Some(av1_quality)),
                    rung(Codec::Av1, 360, None, Some(av1_quality)),
                    rung(Codec::Av1, 240, None, Some(av1_quality)),
                ],
                audio: Some(AudioSpec {
                    codec: Codec::Opus,
                    bitrate: 96,
                    max_channels: 2,
                    surround: true,
                }),
            },
            // Apple's HLS authoring specification ladder for 16:9 H.264 (published bitrates,
            // kbit/s): the fixed baseline per-title ladders are compared against.
            BuiltinLadder::Fixed => Ladder {
                keyframe_interval: 2.0,
                rungs: [
                    (1080, 7800),
                    (1080, 6000),
                    (720, 4500),
                    (720, 3000),
                    (540, 2000),
                    (432, 1100),
                    (432, 730),
                    (360, 365),
                    (234, 145),
                ]
                .into_iter()
                .map(|(height, kbps)| Rung {
                    name: format!("{height}p-{kbps}k"),
                    ..rung(Codec::H264, height, Some(kbps), None)
                })
                .collect(),
                audio: Some(AudioSpec {
                    codec: Codec::Aac,
                    bitrate: 128,
                    max_channels: 2,
                    surround: true,
                }),
            },
        }
    }
}

/// The ladder a job or a command asks for, parsed once from its name: `per-title`, a
/// built-in ladder's name, or else a ladder file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LadderChoice {
    /// Analysed for the title (`reel-ladder`).
    PerTitle,
    Builtin(BuiltinLadder),
    /// A ladder file (TOML, or JSON when it ends in `.json`).
    File(PathBuf),
}

const PER_TITLE: &str = "per-title";

impl LadderChoice {
    pub fn parse(text: &str) -> Self {
        if text == PER_TITLE {
            LadderChoice::PerTitle
        } else if let Some(b) = BuiltinLadder::from_name(text) {
            LadderChoice::Builtin(b)
        } else {
            LadderChoice::File(PathBuf::from(text))
        }
    }

    /// The ladder, a file read relative to `base`; `None` for a per-title ladder.
    pub fn load(&self, base: &Path) -> Result<Option<Ladder>, EncodeError> {
        match self {
            LadderChoice::PerTitle => Ok(None),
            LadderChoice::Builtin(b) => Ok(Some(b.ladder())),
            LadderChoice::File(path) => {
                let path = base.join(path);
                if !path.is_file() {
                    return Err(EncodeError::InvalidLadder(format!(
                        "ladder '{}' is neither per-title, a built-in ladder (h264, av1, fixed) nor a file",
                        path.display()
                    )));
                }
                Ladder::from_file(&path).map(Some)
            }
        }
    }
}

impl std::fmt::Display for LadderChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LadderChoice::PerTitle => f.write_str(PER_TITLE),
            LadderChoice::Builtin(b) => f.write_str(b.name()),
            LadderChoice::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl std::str::FromStr for LadderChoice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(LadderChoice::parse(s))
    }
}

impl Serialize for LadderChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LadderChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LadderChoice::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_choices_parse_once() {
        assert_eq!(LadderChoice::parse("per-title"), LadderChoice::PerTitle);
        assert_eq!(
            LadderChoice::parse("av1"),
            LadderChoice::Builtin(BuiltinLadder::Av1)
        );
        let file = LadderChoice::parse("ladders/mine.toml");
        assert_eq!(file, LadderChoice::File("ladders/mine.toml".into()));
        for choice in [
            LadderChoice::PerTitle,
            LadderChoice::Builtin(BuiltinLadder::Fixed),
            file,
        ] {
            assert_eq!(LadderChoice::parse(&choice.to_string()), choice);
        }
        assert!(LadderChoice::PerTitle
            .load(Path::new("."))
            .unwrap()
            .is_none());
        let err = LadderChoice::parse("nope.toml")
            .load(Path::new("/nonexistent"))
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/nope.toml"), "{err}");
    }

    #[test]
    fn fixed_ladder_is_apples() {
        let l = Ladder::builtin("fixed").unwrap();
        l.validate().unwrap();
        assert_eq!(l.rungs.len(), 9);
        assert_eq!(l.rungs[0].name, "1080p-7800k");
        assert!(l
            .rungs
            .windows(2)
            .all(|w| w[0].bitrate > w[1].bitrate && w[0].height >= w[1].height));
        assert_eq!(l.rungs.last().unwrap().bitrate, Some(145));
    }

    #[test]
    fn parses_toml() {
        let l: Ladder = toml::from_str(
            r#"
            keyframe_interval = 2
            [[rung]]
            codec = "av1"
            encoder = "rav1e"
            height = 480
            quality = 100
            speed = 10
            [audio]
            codec = "opus"
            bitrate = 96
            "#,
        )
        .unwrap();
        l.validate().unwrap();
        assert_eq!(
            l.rungs[0].rate_control().unwrap(),
            RateControl::Quality(100)
        );
        assert_eq!(l.audio.unwrap().max_channels, 2);
    }

    #[test]
    fn rejects_bad_rungs() {
        let mut l = Ladder::builtin("h264").unwrap();
        l.rungs[0].quality = Some(20);
        assert!(l.validate().is_err());
        let mut l = Ladder::builtin("av1").unwrap();
        l.rungs[0].codec = Codec::Aac;
        assert!(l.validate().is_err());
        assert!(toml::from_str::<Ladder>("[[rung]]\ncodec='h264'\nheight=1\nfoo=1").is_err());
    }

    #[test]
    fn each_encoder_reads_quality_and_speed_on_its_own_scale() {
        let parse = |text: &str| toml::from_str::<Ladder>(text).unwrap().validate();
        let rung = "[[rung]]\ncodec = 'av1'\nheight = 360\n";
        parse(&format!(
            "{rung}encoder = 'rav1e'\nquality = 200\nspeed = 10"
        ))
        .unwrap();
        let e = parse(&format!(
            "{rung}encoder = 'rav1e'\nquality = 40\nspeed = 12"
        ));
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("speed 12 is outside 0-10 (rav1e)"));
        let e = parse(&format!("{rung}encoder = 'x264'\nquality = 20"));
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("x264 encodes h264, not av1"));
        if VideoEncoder::SvtAv1.built_in() {
            parse(&format!("{rung}encoder = 'svt-av1'\ncrf = 40\npreset = 12")).unwrap();
            // Without an encoder, AV1 is SVT-AV1's: a rav1e quantizer is out of its range.
            let e = parse(&format!("{rung}quality = 110"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("quality 110 is outside 1-63 (svt-av1 CRF)"),
                "{e}"
            );
            let e = parse(&format!("{rung}encoder = 'svt-av1'\ncrf = 0"));
            assert!(e.unwrap_err().to_string().contains("outside 1-63"));
        } else {
            let e = parse(&format!("{rung}encoder = 'svt-av1'\ncrf = 40"));
            assert!(e.unwrap_err().to_string().contains("not in this build"));
        }
        Ladder::builtin("av1").unwrap().validate().unwrap();
    }
}
