//! DASH MPD (`dash-mpd-core`) and HLS playlists (`m3u8-rs`) built from packaged tracks.

use crate::package::{Addressing, PackagedTrack};
use crate::{write_atomically, PackagerError, Result};
use dash_mpd_core as mpd;
use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, ByteRange, Map, MasterPlaylist, MediaPlaylist,
    MediaPlaylistType, MediaSegment, Resolution, VariantStream,
};
use reel_media::{Codec, TrackKind};
use std::path::Path;
use std::time::Duration;

/// Names of the files [`write_manifests`] writes.
pub const DASH_MANIFEST: &str = "manifest.mpd";
pub const HLS_MASTER: &str = "master.m3u8";

fn frame_rate_string(t: &PackagedTrack) -> Option<String> {
    let fr = t.info.video?.frame_rate;
    (!fr.is_zero()).then(|| {
        if fr.den == 1 {
            fr.num.to_string()
        } else {
            fr.to_string()
        }
    })
}

/// The presentation's duration: the longest track, rounded up to the millisecond so that no
/// player stops before the media ends.
fn presentation_duration(tracks: &[PackagedTrack]) -> Duration {
    let secs = tracks.iter().map(|t| t.duration_secs()).fold(0.0, f64::max);
    Duration::from_millis((secs * 1000.0).ceil() as u64)
}

/// Builds the static MPD.
pub fn dash_mpd(tracks: &[PackagedTrack]) -> String {
    let single = tracks
        .first()
        .is_some_and(|t| t.addressing == Addressing::SingleFile);
    let mut sets: Vec<(TrackKind, Codec, String, Vec<&PackagedTrack>)> = Vec::new();
    for t in tracks {
        let key = (
            t.info.kind(),
            t.info.config.codec(),
            t.info.language.clone(),
        );
        match sets.iter_mut().find(|s| (s.0, s.1, s.2.clone()) == key) {
            Some(s) => s.3.push(t),
            None => sets.push((key.0, key.1, key.2, vec![t])),
        }
    }
    let mut adaptations = Vec::new();
    for (i, (kind, _codec, lang, members)) in sets.into_iter().enumerate() {
        let video = kind == TrackKind::Video;
        let mut reps = Vec::new();
        for t in members.iter() {
            let mut rep = mpd::Representation {
                id: Some(t.stem.clone()),
                bandwidth: Some(t.peak_bandwidth()),
                codecs: Some(t.info.config.codec_string()),
                ..Default::default()
            };
            if let Some(v) = t.info.video {
                rep.width = Some(u64::from(v.width));
                rep.height = Some(u64::from(v.height));
                rep.frameRate = frame_rate_string(t);
                rep.sar = Some(format!(
                    "{}:{}",
                    v.pixel_aspect.num.max(1),
                    v.pixel_aspect.den.max(1)
                ));
            }
            if let Some(a) = t.info.audio {
                rep.audioSamplingRate = Some(a.sample_rate.to_string());
                rep.AudioChannelConfiguration = vec![mpd::AudioChannelConfiguration {
                    schemeIdUri: "urn:mpeg:dash:23003:3:audio_channel_configuration:2011".into(),
                    value: Some(a.channels.to_string()),
                    ..Default::default()
                }];
            }
            if single {
                rep.BaseURL = vec![mpd::BaseURL {
                    base: t.init_uri(),
                    ..Default::default()
                }];
                rep.SegmentBase = Some(mpd::SegmentBase {
                    timescale: Some(u64::from(t.timescale())),
                    indexRange: Some(format!(
                        "{}-{}",
                        t.init_size,
                        t.init_size + t.index_size - 1
                    )),
                    indexRangeExact: Some(true),
                    Initialization: Some(mpd::Initialization {
                        range: Some(format!("0-{}", t.init_size - 1)),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
            } else {
                let mut timeline: Vec<mpd::S> = Vec::new();
                for s in &t.segments {
                    match timeline.last_mut() {
                        Some(last) if last.d == s.duration => {
                            last.r = Some(last.r.unwrap_or(0) + 1);
                        }
                        _ => timeline.push(mpd::S {
                            t: Some(s.start.max(0) as u64),
                            d: s.duration,
                            ..Default::default()
                        }),
                    }
                }
                rep.SegmentTemplate = Some(mpd::SegmentTemplate {
                    timescale: Some(u64::from(t.timescale())),
                    initialization: Some(t.init_uri()),
                    media: Some(format!("{}/$Number$.m4s", t.stem)),
                    startNumber: Some(1),
                    SegmentTimeline: Some(mpd::SegmentTimeline { segments: timeline }),
                    ..Default::default()
                });
            }
            reps.push(rep);
        }
        adaptations.push(mpd::AdaptationSet {
            id: Some(i.to_string()),
            contentType: Some(if video { "video" } else { "audio" }.into()),
            mimeType: Some(if video { "video/mp4" } else { "audio/mp4" }.into()),
            lang: (!video && lang != "und").then(|| lang.clone()),
            segmentAlignment: Some(true),
            subsegmentAlignment: single.then_some(true),
            startWithSAP: (!single).then_some(1),
            subsegmentStartsWithSAP: single.then_some(1),
            maxWidth: members
                .iter()
                .filter_map(|t| t.info.video.map(|v| u64::from(v.width)))
                .max(),
            maxHeight: members
                .iter()
                .filter_map(|t| t.info.video.map(|v| u64::from(v.height)))
                .max(),
            representations: reps,
            ..Default::default()
        });
    }
    let duration = presentation_duration(tracks);
    let max_seg = tracks
        .iter()
        .map(|t| t.max_segment_secs())
        .fold(0.0, f64::max);
    let manifest = mpd::MPD {
        xmlns: Some("urn:mpeg:dash:schema:mpd:2011".into()),
        mpdtype: Some("static".into()),
        profiles: Some(if single {
            "urn:mpeg:dash:profile:isoff-on-demand:2011".into()
        } else {
            "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019".into()
        }),
        mediaPresentationDuration: Some(duration),
        minBufferTime: Some(Duration::from_secs(2)),
        maxSegmentDuration: Some(Duration::from_millis((max_seg * 1000.0).ceil() as u64)),
        periods: vec![mpd::Period {
            id: Some("0".into()),
            start: Some(Duration::ZERO),
            adaptations,
            ..Default::default()
        }],
        ..Default::default()
    };
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{manifest}\n")
}

fn playlist_path(t: &PackagedTrack, name: &str) -> String {
    match t.addressing {
        Addressing::SegmentFiles => format!("{}/{name}.m3u8", t.stem),
        Addressing::SingleFile => format!("{}_{name}.m3u8", t.stem),
    }
}

/// URIs inside a track's playlist are relative to the playlist.
fn relative(t: &PackagedTrack, uri: String) -> String {
    match t.addressing {
        Addressing::SegmentFiles => uri.trim_start_matches(&format!("{}/", t.stem)).to_string(),
        Addressing::SingleFile => uri,
    }
}

/// `EXT-X-MAP` for a track: its init segment (a byte range of the single file, if so).
fn init_map(t: &PackagedTrack) -> Map {
    Map {
        uri: relative(t, t.init_uri()),
        byte_range: (t.addressing == Addressing::SingleFile).then(|| ByteRange {
            length: t.init_size,
            offset: Some(0),
        }),
        ..Default::default()
    }
}

fn media_playlist(t: &PackagedTrack) -> MediaPlaylist {
    let ts = f64::from(t.timescale());
    let single = t.addressing == Addressing::SingleFile;
    let map = init_map(t);
    let segments = t
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| MediaSegment {
            uri: relative(t, t.segment_uri(s.number)),
            duration: (s.duration as f64 / ts) as f32,
            byte_range: single.then(|| ByteRange {
                length: s.size,
                offset: Some(s.offset),
            }),
            map: (i == 0).then(|| map.clone()),
            ..Default::default()
        })
        .collect();
    MediaPlaylist {
        version: Some(7),
        target_duration: t.max_segment_secs().ceil() as u64,
        segments,
        end_list: true,
        playlist_type: Some(MediaPlaylistType::Vod),
        independent_segments: true,
        ..Default::default()
    }
}

/// The I-frame playlist: each entry is a fragment's `moof` and its leading sync sample.
fn iframe_playlist(t: &PackagedTrack) -> MediaPlaylist {
    let ts = f64::from(t.timescale());
    let frames: Vec<(u32, i64, u64, u64)> = t
        .segments
        .iter()
        .flat_map(|s| s.iframes.iter().map(move |f| (s.number, f.0, f.1, f.2)))
        .collect();
    let end = t.segments.last().map_or(0, |s| s.start + s.duration as i64);
    let map = init_map(t);
    let segments: Vec<MediaSegment> = frames
        .iter()
        .enumerate()
        .map(|(i, &(number, pts, offset, len))| {
            let next = frames.get(i + 1).map_or(end, |f| f.1);
            MediaSegment {
                uri: relative(t, t.segment_uri(number)),
                duration: ((next - pts) as f64 / ts) as f32,
                byte_range: Some(ByteRange {
                    length: len,
                    offset: Some(offset),
                }),
                map: (i == 0).then(|| map.clone()),
                ..Default::default()
            }
        })
        .collect();
    let longest = segments
        .iter()
        .map(|s: &MediaSegment| s.duration)
        .fold(0.0f32, f32::max);
    MediaPlaylist {
        version: Some(7),
        target_duration: longest.ceil() as u64,
        segments,
        end_list: true,
        playlist_type: Some(MediaPlaylistType::Vod),
        i_frames_only: true,
        independent_segments: true,
        ..Default::default()
    }
}

fn render(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out).expect("writing to memory");
    out
}

/// Builds the HLS master playlist and every media and I-frame playlist: (relative path, bytes).
pub fn hls_playlists(tracks: &[PackagedTrack]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let audio: Vec<&PackagedTrack> = tracks
        .iter()
        .filter(|t| t.info.kind() == TrackKind::Audio)
        .collect();
    let mut alternatives = Vec::new();
    for (i, a) in audio.iter().enumerate() {
        let path = playlist_path(a, "playlist");
        files.push((path.clone(), render(|w| media_playlist(a).write_to(w))));
        alternatives.push(AlternativeMedia {
            media_type: AlternativeMediaType::Audio,
            uri: Some(path),
            group_id: "audio".into(),
            language: (a.info.language != "und").then(|| a.info.language.clone()),
            name: format!("{} {}", a.info.name, a.info.config.codec().name()),
            default: i == 0,
            autoselect: true,
            channels: a.info.audio.map(|p| p.channels.to_string()),
            ..Default::default()
        });
    }
    let audio_peak = audio.iter().map(|a| a.peak_bandwidth()).max().unwrap_or(0);
    let audio_avg = audio
        .iter()
        .map(|a| a.average_bandwidth())
        .max()
        .unwrap_or(0);
    let audio_codecs: Vec<String> = {
        let mut c: Vec<String> = audio.iter().map(|a| a.info.config.codec_string()).collect();
        c.dedup();
        c
    };
    let mut variants = Vec::new();
    for v in tracks.iter().filter(|t| t.info.kind() == TrackKind::Video) {
        let path = playlist_path(v, "playlist");
        files.push((path.clone(), render(|w| media_playlist(v).write_to(w))));
        let mut codecs = vec![v.info.config.codec_string()];
        codecs.extend(audio_codecs.iter().cloned());
        let p = v.info.video.expect("video track has video parameters");
        variants.push(VariantStream {
            uri: path,
            bandwidth: v.peak_bandwidth() + audio_peak,
            average_bandwidth: Some(v.average_bandwidth() + audio_avg),
            codecs: Some(codecs.join(",")),
            resolution: Some(Resolution {
                width: u64::from(p.width),
                height: u64::from(p.height),
            }),
            frame_rate: (!p.frame_rate.is_zero())
                .then(|| (p.frame_rate.as_f64() * 1000.0).round() / 1000.0),
            audio: (!audio.is_empty()).then(|| "audio".to_string()),
            ..Default::default()
        });
        let ipath = playlist_path(v, "iframes");
        let ipl = iframe_playlist(v);
        let ibytes: u64 = ipl
            .segments
            .iter()
            .filter_map(|s| s.byte_range.as_ref().map(|b| b.length))
            .sum();
        let isecs: f64 = ipl.segments.iter().map(|s| f64::from(s.duration)).sum();
        files.push((ipath.clone(), render(|w| ipl.write_to(w))));
        variants.push(VariantStream {
            is_i_frame: true,
            uri: ipath,
            bandwidth: if isecs > 0.0 {
                (ibytes as f64 * 8.0 / isecs).ceil() as u64
            } else {
                0
            },
            codecs: Some(v.info.config.codec_string()),
            resolution: Some(Resolution {
                width: u64::from(p.width),
                height: u64::from(p.height),
            }),
            ..Default::default()
        });
    }
    if variants.is_empty() {
        // Audio only: each audio playlist is a variant of its own.
        for a in &audio {
            variants.push(VariantStream {
                uri: playlist_path(a, "playlist"),
                bandwidth: a.peak_bandwidth(),
                average_bandwidth: Some(a.average_bandwidth()),
                codecs: Some(a.info.config.codec_string()),
                ..Default::default()
            });
        }
        alternatives.clear();
    }
    let master = MasterPlaylist {
        version: Some(7),
        variants,
        alternatives,
        independent_segments: true,
        ..Default::default()
    };
    files.push((HLS_MASTER.to_string(), render(|w| master.write_to(w))));
    files
}

/// Writes the HLS playlists and then the DASH MPD, each through a temporary name. Call only
/// after every segment is written.
pub fn write_manifests(dir: &Path, tracks: &[PackagedTrack]) -> Result<()> {
    if tracks.is_empty() {
        return Err(PackagerError::InvalidTrack {
            track: 0,
            problem: "no tracks to list in a manifest".into(),
        });
    }
    let playlists = hls_playlists(tracks);
    // Media playlists first, the master last among them.
    for (path, bytes) in &playlists {
        write_atomically(&dir.join(path), bytes)?;
    }
    write_atomically(&dir.join(DASH_MANIFEST), dash_mpd(tracks).as_bytes())
}
