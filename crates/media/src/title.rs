//! `title.json`: the record of a published title. The pipeline writes it last, beside the
//! manifests; the catalog reads it. One definition for both. Key IDs, never keys.

use crate::{MediaError, TrackKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The Common Encryption scheme of a title (ISO/IEC 23001-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// AES-128 CTR, full-sample or subsample, per-sample IVs.
    Cenc,
    /// AES-128 CBC, 1:9 pattern for video and whole-block full-sample for audio, constant IV.
    Cbcs,
}

impl Scheme {
    pub fn fourcc(self) -> &'static [u8; 4] {
        match self {
            Scheme::Cenc => b"cenc",
            Scheme::Cbcs => b"cbcs",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Cenc => "cenc",
            Scheme::Cbcs => "cbcs",
        }
    }

    pub fn parse(text: &str) -> Result<Self, MediaError> {
        match text.to_ascii_lowercase().as_str() {
            "cenc" => Ok(Scheme::Cenc),
            "cbcs" => Ok(Scheme::Cbcs),
            other => Err(MediaError::Invalid {
                what: "encryption",
                problem: format!("unknown protection scheme '{other}' (expected cenc or cbcs)"),
            }),
        }
    }
}

/// A published title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TitleRecord {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Seconds.
    pub duration: f64,
    pub renditions: Vec<Rendition>,
    /// Manifest keys relative to the title's root.
    pub dash: String,
    pub hls: String,
    /// The scheme, when encrypted.
    pub encryption: Option<Scheme>,
    /// DRM systems signalled (clearkey, widevine, playready, fairplay).
    #[serde(default)]
    pub drm_systems: Vec<String>,
    /// `per-title`, `fixed`, ... as the job asked, and whether the analysis fell back.
    #[serde(default)]
    pub ladder: String,
    /// The per-title report (trials, hull, chosen rungs), when there was an analysis.
    #[serde(default)]
    pub analysis: Option<serde_json::Value>,
    /// When the package was made (seconds since 1970).
    #[serde(default)]
    pub packaged_at: u64,
    /// The poster frame (a JPEG) relative to the title's root, when one could be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster: Option<String>,
    /// The scrubbing thumbnails, when the title has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<Thumbnails>,
}

/// A title's thumbnail track: JPEG sprites of `columns` x `rows` tiles of `width` x `height`,
/// a tile every `interval` seconds, listed in the DASH MPD (image AdaptationSet), the HLS
/// master (`EXT-X-IMAGE-STREAM-INF`) and a WebVTT track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thumbnails {
    pub width: u32,
    pub height: u32,
    pub columns: u32,
    pub rows: u32,
    /// Seconds each tile stands for.
    pub interval: f64,
    pub tiles: u64,
    pub sprites: usize,
    /// The HLS image playlist and the WebVTT track, relative to the title's root.
    pub hls: String,
    pub webvtt: String,
}

impl TitleRecord {
    /// The names of the audio renditions (their folders, or single files' stems).
    pub fn audio_renditions(&self) -> impl Iterator<Item = &str> {
        self.renditions
            .iter()
            .filter(|r| r.kind == TrackKind::Audio)
            .map(|r| r.name.as_str())
    }
}

/// One packaged track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    pub name: String,
    pub kind: TrackKind,
    /// RFC 6381 codec string.
    pub codec: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Audio channels (2 for stereo, 6 for 5.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    /// Peak and average bits per second, as the manifests state them.
    pub bandwidth: u64,
    #[serde(default)]
    pub average_bandwidth: u64,
    /// Init segment (or single file), relative to the title's root.
    #[serde(default)]
    pub init: String,
    #[serde(default)]
    pub segments: usize,
    /// Bytes of media published for it: init segment (and index) plus every segment.
    #[serde(default)]
    pub bytes: u64,
    /// The key ID (UUID form) protecting it, when encrypted.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The track class the key belongs to (audio, sd, hd, uhd).
    #[serde(default)]
    pub key_class: Option<String>,
    /// VMAF the per-title analysis predicted for this rung.
    #[serde(default)]
    pub predicted_vmaf: Option<f64>,
    /// VMAF measured over every frame of the title (`[quality] measure`), mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_vmaf: Option<f64>,
    /// A text track's BCP 47 language and kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<crate::TextTrackInfo>,
    /// An audio track's language: ISO 639-2 (`deu`), or a BCP 47 tag with a region or script
    /// (`pt-BR`); `und` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// What an audio track is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::AudioRole>,
    /// The name an audio track was given (players list it instead of one made from language
    /// and role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A trick-play track (key frames only): the video rendition it is made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trick_play_of: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_schemes_are_written_as_names() {
        let r: Rendition = serde_json::from_str(
            r#"{"name":"audio_51","kind":"audio","codec":"mp4a.40.2","width":null,
                "height":null,"channels":6,"bandwidth":1}"#,
        )
        .unwrap();
        assert_eq!(r.kind, TrackKind::Audio);
        assert!(serde_json::to_string(&r)
            .unwrap()
            .contains(r#""kind":"audio""#));
        assert_eq!(serde_json::to_string(&Scheme::Cbcs).unwrap(), r#""cbcs""#);
        assert!(serde_json::from_str::<Scheme>(r#""rot13""#).is_err());
        assert!(Scheme::parse("ROT13")
            .unwrap_err()
            .to_string()
            .contains("unknown protection scheme"));
        assert_eq!(Scheme::parse("CENC").unwrap(), Scheme::Cenc);
    }
}
