//! `title.json`: what the catalog needs to know of a published title. Key IDs, never keys.

use reel_packager::PackagedTrack;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One packaged track as the catalog sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    pub name: String,
    /// `video` or `audio`.
    pub kind: String,
    /// RFC 6381 codec string.
    pub codec: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Audio channels (2 for stereo, 6 for 5.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    /// Peak and average bits per second, as the manifests state them.
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    /// Init segment (or single file), relative to the title's root.
    pub init: String,
    pub segments: usize,
    /// Bytes of media published for it: init segment (and index) plus every segment.
    #[serde(default)]
    pub bytes: u64,
    /// The key ID (UUID form) protecting it, when encrypted.
    pub key_id: Option<String>,
    /// The track class the key belongs to (audio, sd, hd, uhd).
    pub key_class: Option<String>,
    /// VMAF the per-title analysis predicted for this rung.
    pub predicted_vmaf: Option<f64>,
}

/// The title record published beside the manifests, last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TitleRecord {
    pub id: String,
    pub name: Option<String>,
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Seconds.
    pub duration: f64,
    pub renditions: Vec<Rendition>,
    /// Manifest keys relative to the title's root.
    pub dash: String,
    pub hls: String,
    /// `cenc` or `cbcs` when encrypted.
    pub encryption: Option<String>,
    pub drm_systems: Vec<String>,
    /// `per-title`, `fixed`, ... as the job asked, and whether the analysis fell back.
    pub ladder: String,
    /// The per-title report (trials, hull, chosen rungs), when there was an analysis.
    pub analysis: Option<serde_json::Value>,
    /// When the package was made (seconds since 1970).
    pub packaged_at: u64,
    /// The poster frame (a JPEG) relative to the title's root, when one could be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster: Option<String>,
}

pub(crate) fn renditions(
    tracks: &[PackagedTrack],
    predicted: &dyn Fn(&str) -> Option<f64>,
) -> Vec<Rendition> {
    tracks
        .iter()
        .map(|t| {
            let kind = t.info.kind();
            Rendition {
                name: t.stem.clone(),
                kind: if kind == reel_media::TrackKind::Audio {
                    "audio".into()
                } else {
                    "video".into()
                },
                codec: t.info.config.codec_string(),
                width: t.info.video.map(|v| v.width),
                height: t.info.video.map(|v| v.height),
                channels: t.info.audio.map(|a| a.channels),
                bandwidth: t.peak_bandwidth(),
                average_bandwidth: t.average_bandwidth(),
                init: t.init_uri(),
                segments: t.segments.len(),
                bytes: t.init_size + t.index_size + t.segments.iter().map(|s| s.size).sum::<u64>(),
                key_id: t.protection.as_ref().map(|p| p.kid().to_string()),
                key_class: t.protection.as_ref().map(|p| p.class.name().to_string()),
                predicted_vmaf: predicted(&t.stem),
            }
        })
        .collect()
}
