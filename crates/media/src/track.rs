use crate::bits::BitReader;
use crate::{Av1Config, AvcConfig, MediaError, Rational, Result};
use serde::{Deserialize, Serialize};

/// The codecs Reel encodes and packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Av1,
    H264,
    Aac,
    Opus,
    /// WebVTT text (ISO/IEC 14496-30 `wvtt` in MP4).
    WebVtt,
    /// TTML text in the IMSC1 text profile (ISO/IEC 14496-30 `stpp` in MP4).
    Imsc1,
}

impl Codec {
    pub fn kind(self) -> TrackKind {
        match self {
            Codec::Av1 | Codec::H264 => TrackKind::Video,
            Codec::Aac | Codec::Opus => TrackKind::Audio,
            Codec::WebVtt | Codec::Imsc1 => TrackKind::Text,
        }
    }

    pub fn from_name(name: &str) -> Option<Codec> {
        [
            Codec::Av1,
            Codec::H264,
            Codec::Aac,
            Codec::Opus,
            Codec::WebVtt,
            Codec::Imsc1,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Av1 => "av1",
            Codec::H264 => "h264",
            Codec::Aac => "aac",
            Codec::Opus => "opus",
            Codec::WebVtt => "webvtt",
            Codec::Imsc1 => "imsc1",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Video,
    Audio,
    Text,
}

/// What a text track is for (DASH `Role`, HLS `FORCED` and `CHARACTERISTICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextKind {
    /// Dialogue in another language.
    #[default]
    Subtitles,
    /// Captions for deaf and hard-of-hearing viewers (SDH): dialogue, speakers, sounds, music.
    Captions,
    /// Forced narratives: only what the audio's language does not carry (foreign dialogue, signs).
    Forced,
}

impl TextKind {
    pub const ALL: [TextKind; 3] = [TextKind::Subtitles, TextKind::Captions, TextKind::Forced];

    pub fn name(self) -> &'static str {
        match self {
            TextKind::Subtitles => "subtitles",
            TextKind::Captions => "captions",
            TextKind::Forced => "forced",
        }
    }

    pub fn from_name(name: &str) -> Option<TextKind> {
        TextKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// What an audio track is for (DASH `Role` and `Accessibility`, HLS `CHARACTERISTICS`; in
/// an MP4 the `kind` box of the track, with the DASH role scheme, ISO/IEC 14496-12 8.10.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioRole {
    /// The title's original audio.
    #[default]
    Main,
    /// The dialogue in another language.
    Dub,
    /// Someone talking about the title over it (director's commentary).
    Commentary,
    /// Audio description for blind and partially sighted viewers: what is on screen, told
    /// between the lines.
    Description,
}

impl AudioRole {
    /// The DASH role scheme (ISO/IEC 23009-1 5.8.5.5), whose values the names are: in DASH
    /// `Role` elements and MP4 `kind` boxes.
    pub const SCHEME: &'static str = "urn:mpeg:dash:role:2011";

    pub const ALL: [AudioRole; 4] = [
        AudioRole::Main,
        AudioRole::Dub,
        AudioRole::Commentary,
        AudioRole::Description,
    ];

    /// The role's name, which is also its DASH role (ISO/IEC 23009-1 5.8.5.5).
    pub fn name(self) -> &'static str {
        match self {
            AudioRole::Main => "main",
            AudioRole::Dub => "dub",
            AudioRole::Commentary => "commentary",
            AudioRole::Description => "description",
        }
    }

    pub fn from_name(name: &str) -> Option<AudioRole> {
        AudioRole::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Checks a track's name of one's own (what players list: a job's `name`, a command line's
/// `NAME`), trimmed: one line of at most 64 characters, without the double quote that an HLS
/// `NAME` attribute cannot carry (RFC 8216 4.2) or control characters. The error says why.
pub fn track_title(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.chars().count() > 64 {
        return Err(format!("the name '{name}' is longer than 64 characters"));
    }
    if let Some(c) = name.chars().find(|c| *c == '"' || c.is_control()) {
        return Err(format!(
            "the name '{}' has {}, which an HLS NAME cannot carry",
            name.escape_debug(),
            if c == '"' {
                "a double quote".to_string()
            } else {
                format!("the control character {c:?}")
            }
        ));
    }
    Ok(name.to_string())
}

/// What the text of a media file's text samples is (as its demuxer gives it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleText {
    /// Plain UTF-8 (GStreamer's form of an MP4 `tx3g`/mov_text track).
    Plain,
    /// `tx3g` samples as the MP4 holds them (text length, text, style boxes), with what the
    /// track's sample entry gives each.
    Tx3g(Tx3gDefaults),
    /// Pango markup (GStreamer's form of a Matroska SubRip track).
    PangoMarkup,
    /// Matroska ASS blocks (`ReadOrder,Layer,Style,...,Text`) with override tags.
    Ass,
}

/// What a `tx3g` sample entry gives every sample of its track (3GPP TS 26.245 5.16): the
/// default style record's face flags (1 bold, 2 italic, 4 underline) and the vertical
/// justification (0 top, 1 centre, -1 bottom).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tx3gDefaults {
    pub face: u8,
    pub vertical_justification: i8,
}

/// What manifests say of a text track beyond its `TrackInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextTrackInfo {
    /// BCP 47 tag (`pt-BR`); `TrackInfo::language` holds its ISO 639-2 code for `mdhd`.
    pub language: String,
    pub kind: TextKind,
}

/// MPEG-4 `AudioSpecificConfig` (ISO/IEC 14496-3 1.6.2.1), kept byte-exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type: 2 is AAC-LC.
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
    record: Vec<u8>,
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

impl AudioSpecificConfig {
    /// Builds the two-byte config for a standard sample rate and 1-7 channels.
    pub fn new(object_type: u8, sample_rate: u32, channels: u8) -> Result<Self> {
        let idx = AAC_RATES
            .iter()
            .position(|&r| r == sample_rate)
            .ok_or_else(|| MediaError::Invalid {
                what: "AudioSpecificConfig",
                problem: format!("sample rate {sample_rate} has no frequency index"),
            })? as u16;
        if !(1..=7).contains(&channels) || object_type >= 31 {
            return Err(MediaError::Invalid {
                what: "AudioSpecificConfig",
                problem: format!("object type {object_type} with {channels} channels"),
            });
        }
        let v: u16 = (u16::from(object_type) << 11) | (idx << 7) | (u16::from(channels) << 3);
        Self::parse(&v.to_be_bytes())
    }

    pub fn parse(record: &[u8]) -> Result<Self> {
        let mut r = BitReader::new(record, "AudioSpecificConfig");
        let mut object_type = r.bits(5)? as u8;
        if object_type == 31 {
            object_type = 32 + r.bits(6)? as u8;
        }
        let idx = r.bits(4)?;
        let sample_rate = if idx == 15 {
            r.bits(24)?
        } else {
            *AAC_RATES
                .get(idx as usize)
                .ok_or_else(|| MediaError::Invalid {
                    what: "AudioSpecificConfig",
                    problem: format!("reserved frequency index {idx}"),
                })?
        };
        let channels = r.bits(4)? as u8;
        Ok(Self {
            object_type,
            sample_rate,
            channels,
            record: record.to_vec(),
        })
    }

    pub fn to_record(&self) -> &[u8] {
        &self.record
    }
}

/// The Opus-in-ISOBMFF `dOps` contents, built from an Ogg `OpusHead`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusConfig {
    pub channels: u8,
    pub pre_skip: u16,
    pub input_sample_rate: u32,
    pub output_gain: i16,
    pub mapping_family: u8,
    /// Stream count, coupled count and channel mapping, present when the family is not 0.
    pub mapping_table: Vec<u8>,
}

impl OpusConfig {
    /// Parses an Ogg `OpusHead` packet (RFC 7845 5.1; little-endian fields).
    pub fn from_opus_head(head: &[u8]) -> Result<Self> {
        if head.len() < 19 || &head[..8] != b"OpusHead" {
            return Err(MediaError::Invalid {
                what: "OpusHead",
                problem: format!("not an OpusHead packet ({} bytes)", head.len()),
            });
        }
        let channels = head[9];
        let mapping_family = head[18];
        let mapping_table = if mapping_family != 0 {
            let need = 21 + usize::from(channels);
            head.get(19..need)
                .ok_or(MediaError::Truncated {
                    what: "OpusHead channel mapping",
                    needed: need,
                    had: head.len(),
                })?
                .to_vec()
        } else {
            Vec::new()
        };
        Ok(Self {
            channels,
            pre_skip: u16::from_le_bytes([head[10], head[11]]),
            input_sample_rate: u32::from_le_bytes(head[12..16].try_into().unwrap()),
            output_gain: i16::from_le_bytes([head[16], head[17]]),
            mapping_family,
            mapping_table,
        })
    }

    /// The `dOps` box payload: version 0 and big-endian fields, unlike the Ogg header.
    pub fn to_dops(&self) -> Vec<u8> {
        let mut out = vec![0, self.channels];
        out.extend_from_slice(&self.pre_skip.to_be_bytes());
        out.extend_from_slice(&self.input_sample_rate.to_be_bytes());
        out.extend_from_slice(&self.output_gain.to_be_bytes());
        out.push(self.mapping_family);
        out.extend_from_slice(&self.mapping_table);
        out
    }
}

/// A codec configuration record: what a decoder needs before the first sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecConfig {
    Av1(Av1Config),
    Avc(AvcConfig),
    Aac(AudioSpecificConfig),
    Opus(OpusConfig),
    /// WebVTT: the `vttC` configuration (the file header, `WEBVTT`).
    WebVtt(String),
    /// IMSC1 text: nothing but the TTML namespace, which the sample entry states.
    Imsc1,
}

impl CodecConfig {
    pub fn codec(&self) -> Codec {
        match self {
            CodecConfig::Av1(_) => Codec::Av1,
            CodecConfig::Avc(_) => Codec::H264,
            CodecConfig::Aac(_) => Codec::Aac,
            CodecConfig::Opus(_) => Codec::Opus,
            CodecConfig::WebVtt(_) => Codec::WebVtt,
            CodecConfig::Imsc1 => Codec::Imsc1,
        }
    }

    /// RFC 6381 `codecs` value for DASH and HLS manifests.
    pub fn codec_string(&self) -> String {
        match self {
            CodecConfig::Av1(c) => c.codec_string(),
            CodecConfig::Avc(c) => c.codec_string(),
            CodecConfig::Aac(c) => format!("mp4a.40.{}", c.object_type),
            // The sample entry is `Opus`; the codecs parameter is lower-case `opus`.
            CodecConfig::Opus(_) => "opus".to_string(),
            CodecConfig::WebVtt(_) => "wvtt".to_string(),
            // ISO/IEC 14496-30 and DASH-IF: the sample entry, then the IMSC1 text profile.
            CodecConfig::Imsc1 => "stpp.ttml.im1t".to_string(),
        }
    }
}

/// Colour description (ISO/IEC 23091-2 code points), as carried in `colr`/`nclx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColorInfo {
    pub primaries: u8,
    pub transfer: u8,
    pub matrix: u8,
    pub full_range: bool,
}

impl ColorInfo {
    /// Transfer characteristics of SMPTE ST 2084 (PQ, HDR10) and ARIB STD-B67 (HLG).
    pub const PQ: u8 = 16;
    pub const HLG: u8 = 18;

    /// The dynamic range the transfer characteristics give.
    pub fn range(&self) -> VideoRange {
        match self.transfer {
            Self::PQ => VideoRange::Pq,
            Self::HLG => VideoRange::Hlg,
            _ => VideoRange::Sdr,
        }
    }
}

/// Standard or high dynamic range, as HLS `VIDEO-RANGE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VideoRange {
    Sdr,
    Pq,
    Hlg,
}

impl VideoRange {
    /// The HLS `VIDEO-RANGE` value.
    pub fn name(self) -> &'static str {
        match self {
            VideoRange::Sdr => "SDR",
            VideoRange::Pq => "PQ",
            VideoRange::Hlg => "HLG",
        }
    }
}

/// The mastering display's colour volume (SMPTE ST 2086), in the units of the `mdcv` box:
/// chromaticity coordinates in 0.00002, luminance in 0.0001 cd/m².
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasteringDisplay {
    /// (x, y) of the red, green and blue primaries.
    pub primaries: [(u16, u16); 3],
    pub white_point: (u16, u16),
    pub max_luminance: u32,
    pub min_luminance: u32,
}

/// Content light levels (CTA-861.3) in cd/m²: the brightest pixel and the brightest frame's
/// average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentLightLevel {
    pub max_cll: u16,
    pub max_fall: u16,
}

/// HDR10 static metadata of a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HdrMetadata {
    pub mastering: Option<MasteringDisplay>,
    pub light: Option<ContentLightLevel>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoParams {
    pub width: u32,
    pub height: u32,
    pub frame_rate: Rational,
    /// Pixel (sample) aspect ratio; `1/1` for square pixels.
    pub pixel_aspect: Rational,
    pub color: Option<ColorInfo>,
    /// HDR10 static metadata, when the stream carries it.
    #[serde(default)]
    pub hdr: Option<HdrMetadata>,
}

impl VideoParams {
    /// The dynamic range of the picture (SDR when no colour is described).
    pub fn range(&self) -> VideoRange {
        self.color.map_or(VideoRange::Sdr, |c| c.range())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioParams {
    pub sample_rate: u32,
    pub channels: u8,
    /// What the track is for (main audio unless said otherwise).
    pub role: AudioRole,
}

/// One elementary stream: what it is and how to decode it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInfo {
    /// 1-based track id, unique within one encode or demux session.
    pub id: u32,
    pub config: CodecConfig,
    /// Ticks per second of every timestamp and duration in this track's samples.
    pub timescale: u32,
    pub video: Option<VideoParams>,
    pub audio: Option<AudioParams>,
    /// ISO 639-2 code (`deu`), or a BCP 47 tag when it says more than the language (`pt-BR`:
    /// `mdhd` then holds the primary language's code and `elng` the tag); `und` when unknown.
    pub language: String,
    /// Name of the rendition this track belongs to (the rung name for encoded video).
    pub name: String,
    /// The name players show for the track when one was given (a job's `[[audio]] name`;
    /// in an MP4 the track's `udta` `name` box, where ffmpeg keeps a stream's title);
    /// players derive one from language and role otherwise.
    pub title: Option<String>,
}

impl TrackInfo {
    pub fn kind(&self) -> TrackKind {
        self.config.codec().kind()
    }
}

/// One encoded access unit (a video frame / temporal unit, or an audio frame).
///
/// Timestamps are in the track's timescale. For AV1 the data holds the OBUs of one temporal
/// unit without temporal delimiters; for H.264, length-prefixed NAL units.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedSample {
    pub data: Vec<u8>,
    pub dts: i64,
    pub pts: i64,
    pub duration: u32,
    /// A sync sample (a random access point: IDR or AV1 key frame).
    pub sync: bool,
}

impl std::fmt::Debug for EncodedSample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedSample")
            .field("len", &self.data.len())
            .field("dts", &self.dts)
            .field("pts", &self.pts)
            .field("duration", &self.duration)
            .field("sync", &self.sync)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_titles_are_one_quoted_line() {
        assert_eq!(
            track_title("  Director's cut — Français ").unwrap(),
            "Director's cut — Français"
        );
        for (bad, says) in [
            ("", "empty"),
            ("The \"best\" mix", "double quote"),
            ("two\nlines", "control character"),
            (&"x".repeat(65), "longer than 64"),
        ] {
            let e = track_title(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn aac_config() {
        let asc = AudioSpecificConfig::new(2, 48000, 2).unwrap();
        assert_eq!(asc.to_record(), &[0x11, 0x90]);
        let p = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!((p.object_type, p.sample_rate, p.channels), (2, 44100, 2));
        assert!(AudioSpecificConfig::new(2, 12345, 2).is_err());
    }

    #[test]
    fn opus_head_to_dops_is_big_endian() {
        let mut head = b"OpusHead".to_vec();
        head.extend([1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        let c = OpusConfig::from_opus_head(&head).unwrap();
        assert_eq!(c.pre_skip, 312);
        assert_eq!(c.input_sample_rate, 48000);
        assert_eq!(
            c.to_dops(),
            vec![0, 2, 0x01, 0x38, 0x00, 0x00, 0xbb, 0x80, 0, 0, 0]
        );
        assert_eq!(CodecConfig::Opus(c).codec_string(), "opus");
        assert!(OpusConfig::from_opus_head(b"OpusTags").is_err());
    }
}
