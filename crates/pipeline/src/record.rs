//! `title.json` (the record type is `reel_media::TitleRecord`, shared with the catalog): its
//! renditions, from the packaged tracks.

use reel_media::Rendition;
use reel_packager::PackagedTrack;

pub(crate) fn renditions(
    tracks: &[PackagedTrack],
    predicted: &dyn Fn(&str) -> Option<f64>,
    measured: &dyn Fn(&str) -> Option<f64>,
) -> Vec<Rendition> {
    tracks
        .iter()
        .map(|t| Rendition {
            name: t.stem.clone(),
            kind: t.info.kind(),
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
            measured_vmaf: measured(&t.stem),
            text: t.text.clone(),
            language: t.info.audio.map(|_| t.info.language.clone()),
            role: t.info.audio.map(|a| a.role),
            title: t.info.audio.and(t.info.title.clone()),
            trick_play_of: t.trick_of.clone(),
        })
        .collect()
}
