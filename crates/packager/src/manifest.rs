//! DASH MPD (`dash-mpd-core`) and HLS playlists (`m3u8-rs`) built from packaged tracks.

use crate::package::{Addressing, PackagedTrack};
use crate::thumbnails::{ThumbnailTrack, THUMBNAILS_DIR, THUMBNAILS_PLAYLIST, THUMBNAILS_VTT};
use crate::TrackProtection;
use crate::{write_atomically, PackagerError, Result};
use base64::Engine;
use dash_mpd_core as mpd;
use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, ByteRange, ClosedCaptionGroupId, Map, MasterPlaylist,
    MediaPlaylist, MediaPlaylistType, MediaSegment, Resolution, VariantStream,
};
use m3u8_rs::{ExtTag, Key, KeyMethod, SessionKey};
use reel_drm::{DrmSystem, Scheme};
use reel_media::{AudioRole, Codec, TextKind, TrackKind, VideoRange};
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

/// What puts two tracks in one DASH AdaptationSet.
#[derive(PartialEq)]
struct SetKey {
    kind: TrackKind,
    codec: Codec,
    language: String,
    channels: Option<u8>,
    text: Option<TextKind>,
    role: Option<AudioRole>,
    trick: bool,
    /// SDR and HDR renditions are a choice a player makes by the display, not a bitrate step.
    range: Option<VideoRange>,
}

/// DASH roles (ISO/IEC 23009-1 5.8.5.5) of a text track's kind.
fn text_role(kind: TextKind) -> &'static str {
    match kind {
        TextKind::Subtitles => "subtitle",
        TextKind::Captions => "caption",
        TextKind::Forced => "forced-subtitle",
    }
}

/// Builds the static MPD, with an image AdaptationSet for `thumbnails` when given.
pub fn dash_mpd(tracks: &[PackagedTrack], thumbnails: Option<&ThumbnailTrack>) -> String {
    let single = tracks
        .first()
        .is_some_and(|t| t.addressing == Addressing::SingleFile);
    // A player switches only within a set: one per kind, codec and language, and for audio
    // per channel count too (a stereo and a 5.1 rendition are a choice, not a bitrate step).
    let mut sets: Vec<(SetKey, Vec<&PackagedTrack>)> = Vec::new();
    for t in tracks {
        let key = SetKey {
            kind: t.info.kind(),
            codec: t.info.config.codec(),
            // Text carries its BCP 47 tag (`pt-BR`), which `mdhd` cannot.
            language: t
                .text
                .as_ref()
                .map_or_else(|| t.info.language.clone(), |x| x.language.clone()),
            channels: t.info.audio.map(|a| a.channels),
            text: t.text.as_ref().map(|x| x.kind),
            role: t.info.audio.map(|a| a.role),
            trick: t.trick_of.is_some(),
            range: t.info.video.map(|v| v.range()),
        };
        match sets.iter_mut().find(|s| s.0 == key) {
            Some(s) => s.1.push(t),
            None => sets.push((key, vec![t])),
        }
    }
    // A trick-play set names the set of the rendition it is made from.
    let set_of = |stem: &str| {
        sets.iter()
            .position(|(_, m)| m.iter().any(|t| t.stem == stem))
    };
    let trick_for: Vec<Option<usize>> = sets
        .iter()
        .map(|(_, m)| m[0].trick_of.as_deref().and_then(set_of))
        .collect();
    let mut adaptations = Vec::new();
    for (i, (key, members)) in sets.into_iter().enumerate() {
        let (kind, lang) = (key.kind, key.language);
        let video = kind == TrackKind::Video;
        let (content_type, mime_type) = match kind {
            TrackKind::Video => ("video", "video/mp4"),
            TrackKind::Audio => ("audio", "audio/mp4"),
            TrackKind::Text => ("text", "application/mp4"),
        };
        let roles = key
            .text
            .map(text_role)
            .or(key.role.map(AudioRole::name))
            .map(|value| mpd::Role {
                schemeIdUri: AudioRole::SCHEME.into(),
                value: Some(value.into()),
                ..Default::default()
            })
            .into_iter()
            .collect();
        // TV-Anytime AudioPurposeCS, as DASH-IF uses it: captions are for the hard of hearing
        // (2), audio description for the visually impaired (1).
        let purpose = match (key.text, key.role) {
            (Some(TextKind::Captions), _) => Some("2"),
            (_, Some(AudioRole::Description)) => Some("1"),
            _ => None,
        };
        let accessibility = purpose
            .map(|value| mpd::Accessibility {
                schemeIdUri: "urn:tva:metadata:cs:AudioPurposeCS:2007".into(),
                value: Some(value.into()),
                ..Default::default()
            })
            .into_iter()
            .collect();
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
            if key.trick {
                // Key frames only, each independent (DASH-IF IOP 3.2.9): a player may play
                // them at up to one key frame interval's frames per frame shown.
                rep.frameRate = None;
                rep.codingDependency = Some(false);
                rep.maxPlayoutRate = Some(frames_per_key_frame(t));
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
        // Keys shared by the whole set are signalled once on it; otherwise per representation.
        let kids: Vec<_> = members
            .iter()
            .map(|t| t.protection.as_ref().map(TrackProtection::kid))
            .collect();
        let shared = kids.windows(2).all(|w| w[0] == w[1]);
        let mut set_protection = Vec::new();
        if shared {
            if let Some(p) = &members[0].protection {
                set_protection = content_protection(p);
            }
        } else {
            for (rep, t) in reps.iter_mut().zip(members.iter()) {
                if let Some(p) = &t.protection {
                    rep.ContentProtection = content_protection(p);
                }
            }
        }
        let (mut essential, supplemental) = members[0]
            .info
            .video
            .map(colour_properties)
            .unwrap_or_default();
        essential.extend(trick_for[i].map(|main| mpd::EssentialProperty {
            schemeIdUri: "http://dashif.org/guidelines/trickmode".into(),
            value: Some(main.to_string()),
            ..Default::default()
        }));
        adaptations.push(mpd::AdaptationSet {
            essential_property: essential,
            supplemental_property: supplemental,
            ContentProtection: set_protection,
            id: Some(i.to_string()),
            contentType: Some(content_type.into()),
            mimeType: Some(mime_type.into()),
            Role: roles,
            Accessibility: accessibility,
            // Text and audio sets carry the name players show in their menus.
            Label: members
                .first()
                .and_then(|t| match kind {
                    TrackKind::Text => Some(t.info.name.clone()),
                    TrackKind::Audio => Some(audio_label(t)),
                    TrackKind::Video => None,
                })
                .map(|content| mpd::Label {
                    content,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
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
    if let Some(t) = thumbnails {
        adaptations.push(t.dash_adaptation_set(adaptations.len()));
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
    let mut text = manifest.to_string();
    if text.contains("<dashif:laurl") {
        // dash-mpd-core declares cenc and mspr on the root but not the DASH-IF namespace.
        text = text.replacen("<MPD ", "<MPD xmlns:dashif=\"https://dashif.org/CPS\" ", 1);
    }
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{text}\n")
}

/// The colour of an HDR video set as DASH-IF IOP signals it (ISO/IEC 23001-8 code points in
/// `urn:mpeg:mpegB:cicp` properties): PQ's primaries, transfer and matrix as essential (a
/// player that cannot show them must skip the set); HLG's as supplemental, since an SDR
/// display shows HLG acceptably. SDR sets say nothing, as before.
fn colour_properties(
    v: reel_media::VideoParams,
) -> (Vec<mpd::EssentialProperty>, Vec<mpd::SupplementalProperty>) {
    let Some(c) = v.color.filter(|_| v.range() != VideoRange::Sdr) else {
        return Default::default();
    };
    let cicp = [
        ("ColourPrimaries", c.primaries),
        ("TransferCharacteristics", c.transfer),
        ("MatrixCoefficients", c.matrix),
    ];
    let scheme = |name: &str| format!("urn:mpeg:mpegB:cicp:{name}");
    match v.range() {
        VideoRange::Pq => (
            cicp.iter()
                .map(|(name, value)| mpd::EssentialProperty {
                    schemeIdUri: scheme(name),
                    value: Some(value.to_string()),
                    ..Default::default()
                })
                .collect(),
            Vec::new(),
        ),
        _ => (
            Vec::new(),
            cicp.iter()
                .map(|(name, value)| mpd::SupplementalProperty {
                    schemeIdUri: scheme(name),
                    value: Some(value.to_string()),
                    ..Default::default()
                })
                .collect(),
        ),
    }
}

/// HLS `VIDEO-RANGE` of a video track, as the variant's other attribute.
fn video_range(
    p: reel_media::VideoParams,
) -> Option<std::collections::HashMap<String, m3u8_rs::QuotedOrUnquoted>> {
    Some(std::collections::HashMap::from([(
        "VIDEO-RANGE".to_string(),
        m3u8_rs::QuotedOrUnquoted::Unquoted(p.range().name().to_string()),
    )]))
}

/// Source frames per sample of a trick-play track: its duration in frames of its frame rate
/// over its samples (one key frame each), rounded.
fn frames_per_key_frame(t: &PackagedTrack) -> f64 {
    let key_frames: usize = t.segments.iter().map(|s| s.iframes.len()).sum();
    let fps = t.info.video.map_or(0.0, |v| v.frame_rate.as_f64());
    (t.duration_secs() * fps / key_frames.max(1) as f64)
        .round()
        .max(1.0)
}

/// The W3C ClearKey system ID used in DASH (`dashif:laurl` lives on it).
const CLEARKEY_DASH_SYSTEM: &str = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `ContentProtection` elements of a protected track: the scheme and default KID
/// (`urn:mpeg:dash:mp4protection:2011`), then one per DRM system with its `cenc:pssh`
/// (PlayReady also `mspr:pro`; ClearKey also the licence URL as `dashif:laurl`).
fn content_protection(p: &TrackProtection) -> Vec<mpd::ContentProtection> {
    let kid = p.kid().to_string();
    let mut out = vec![mpd::ContentProtection {
        schemeIdUri: "urn:mpeg:dash:mp4protection:2011".into(),
        value: Some(p.info.scheme.name().into()),
        default_KID: Some(kid),
        ..Default::default()
    }];
    let pssh_of = |system: DrmSystem| {
        p.pssh
            .iter()
            .find(|x| x.0 == system)
            .map(|x| {
                vec![mpd::CencPssh {
                    content: Some(b64(&x.1.to_box())),
                }]
            })
            .unwrap_or_default()
    };
    for &system in &p.systems {
        // The system's element with its `cenc:pssh`.
        let with_pssh = |value: &str| mpd::ContentProtection {
            schemeIdUri: system.scheme_id_uri(),
            value: Some(value.into()),
            cenc_pssh: pssh_of(system),
            ..Default::default()
        };
        out.push(match system {
            // DASH-IF IOP 7.6.2.4: ClearKey is signalled with its own system ID, without a
            // `cenc:pssh` (players build `keyids` init data from the default KID); the W3C
            // common PSSH stays in the init segment.
            DrmSystem::ClearKey => mpd::ContentProtection {
                schemeIdUri: CLEARKEY_DASH_SYSTEM.into(),
                value: Some("ClearKey1.0".into()),
                laurl: p
                    .signalling
                    .clearkey_license_url
                    .as_ref()
                    .map(|u| mpd::Laurl {
                        lic_type: Some("EME-1.0".into()),
                        content: Some(u.clone()),
                    }),
                ..Default::default()
            },
            DrmSystem::Widevine => with_pssh("Widevine"),
            DrmSystem::PlayReady => mpd::ContentProtection {
                msprpro: p.playready_object().map(|pro| mpd::MsprPro {
                    xmlns: None,
                    content: Some(b64(pro)),
                }),
                ..with_pssh("MSPR 2.0")
            },
            DrmSystem::FairPlay => with_pssh("FairPlay"),
        });
    }
    out
}

/// The `EXT-X-KEY` attribute lists of a protected track: one per key format, so that every
/// player finds its own (shaka-player reads `identity`, hls.js `org.w3.clearkey`).
/// `session` leaves out `identity`, whose key URI belongs to one media playlist.
fn hls_keys(p: &TrackProtection, session: bool) -> Vec<Key> {
    let method = match p.info.scheme {
        Scheme::Cbcs => KeyMethod::SampleAES,
        Scheme::Cenc => KeyMethod::Other("SAMPLE-AES-CTR".into()),
    };
    let kid_hex = p.kid().hex();
    let key = |uri: String, format: &str| Key {
        method: method.clone(),
        uri: Some(uri),
        iv: None,
        keyformat: Some(format.into()),
        keyformatversions: Some("1".into()),
    };
    let mut out = Vec::new();
    for &system in &p.systems {
        match system {
            DrmSystem::ClearKey => {
                out.push(key(
                    format!("data:text/plain;base64,{}", b64(p.kid().as_bytes())),
                    "org.w3.clearkey",
                ));
                if let (Some(uri), false) = (&p.signalling.hls_key_uri, session) {
                    out.push(Key {
                        keyformat: Some("identity".into()),
                        keyformatversions: None,
                        ..key(uri.replace("{kid}", &kid_hex), "identity")
                    });
                }
            }
            DrmSystem::Widevine => {
                if let Some(x) = p.pssh.iter().find(|x| x.0 == system) {
                    out.push(key(
                        format!("data:text/plain;base64,{}", b64(&x.1.to_box())),
                        "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
                    ));
                }
            }
            DrmSystem::PlayReady => {
                if let Some(pro) = p.playready_object() {
                    out.push(key(
                        format!("data:text/plain;charset=UTF-16;base64,{}", b64(pro)),
                        "com.microsoft.playready",
                    ));
                }
            }
            DrmSystem::FairPlay => {
                let uri = p
                    .signalling
                    .fairplay_key_uri
                    .as_deref()
                    .unwrap_or("skd://{kid}")
                    .replace("{kid}", &kid_hex);
                out.push(key(uri, "com.apple.streamingkeydelivery"));
            }
        }
    }
    out
}

fn key_tag(k: &Key) -> ExtTag {
    let mut attrs = Vec::new();
    k.write_attributes_to(&mut attrs)
        .expect("writing to memory");
    ExtTag {
        tag: "X-KEY".into(),
        rest: Some(String::from_utf8(attrs).expect("ASCII attributes")),
    }
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
        byte_range: (t.addressing == Addressing::SingleFile).then_some(ByteRange {
            length: t.init_size,
            offset: Some(0),
        }),
        ..Default::default()
    }
}

fn media_playlist(t: &PackagedTrack) -> MediaPlaylist {
    let keys = playlist_keys(t);
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
            byte_range: single.then_some(ByteRange {
                length: s.size,
                offset: Some(s.offset),
            }),
            map: (i == 0).then(|| map.clone()),
            unknown_tags: if i == 0 { keys.clone() } else { Vec::new() },
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

/// The `GROUP-ID` of the text renditions in the HLS master playlist.
const SUBTITLES_GROUP: &str = "subs";

/// A text track's HLS playlist: its segments as WebVTT files (`N.vtt`, beside `N.m4s`).
fn text_playlist(t: &PackagedTrack) -> MediaPlaylist {
    let ts = f64::from(t.timescale());
    MediaPlaylist {
        version: Some(7),
        target_duration: t.max_segment_secs().ceil() as u64,
        segments: t
            .segments
            .iter()
            .map(|s| MediaSegment {
                uri: relative(t, format!("{}/{}.vtt", t.stem, s.number)),
                duration: (s.duration as f64 / ts) as f32,
                ..Default::default()
            })
            .collect(),
        end_list: true,
        playlist_type: Some(MediaPlaylistType::Vod),
        independent_segments: true,
        ..Default::default()
    }
}

fn playlist_keys(t: &PackagedTrack) -> Vec<ExtTag> {
    t.protection
        .as_ref()
        .map(|p| hls_keys(p, false).iter().map(key_tag).collect())
        .unwrap_or_default()
}

/// The I-frame playlist: each entry is a fragment's `moof` and its leading sync sample.
fn iframe_playlist(t: &PackagedTrack) -> MediaPlaylist {
    let keys = playlist_keys(t);
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
                unknown_tags: if i == 0 { keys.clone() } else { Vec::new() },
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

/// What players list for an audio track: the name it was given, or its language's name, what
/// it is for when it is not the main or dubbed dialogue, and `5.1` for surround (`English`,
/// `English audio description`, `German 5.1`); the rendition's name when the language is not
/// known.
fn audio_label(t: &PackagedTrack) -> String {
    if let Some(title) = &t.info.title {
        return title.clone();
    }
    let known = Some(t.info.language.as_str()).filter(|l| *l != "und");
    let Some(language) = known.and_then(reel_media::language::english_name) else {
        return t.info.name.clone();
    };
    let mut label = language.to_string();
    match t.info.audio.map(|a| a.role).unwrap_or_default() {
        AudioRole::Main | AudioRole::Dub => {}
        AudioRole::Commentary => label.push_str(" commentary"),
        AudioRole::Description => label.push_str(" audio description"),
    }
    if let Some(a) = t.info.audio.filter(|a| a.channels > 2) {
        label.push_str(&format!(" {}.1", a.channels - 1));
    }
    label
}

/// One HLS audio group: the renditions of one channel count.
struct AudioGroup<'a> {
    id: String,
    members: Vec<&'a PackagedTrack>,
    codecs: Vec<String>,
    peak_bandwidth: u64,
    average_bandwidth: u64,
}

/// The audio renditions grouped by channel count, stereo (and mono) first: `audio` for up to
/// two channels, `audio-6ch` for 5.1 and so on.
fn audio_groups<'a>(audio: &[&'a PackagedTrack]) -> Vec<AudioGroup<'a>> {
    let channels = |t: &PackagedTrack| t.info.audio.map_or(2, |a| a.channels).max(2);
    let mut counts: Vec<u8> = audio.iter().map(|t| channels(t)).collect();
    counts.sort_unstable();
    counts.dedup();
    counts
        .into_iter()
        .map(|n| {
            let members: Vec<&PackagedTrack> =
                audio.iter().copied().filter(|t| channels(t) == n).collect();
            let mut codecs: Vec<String> = members
                .iter()
                .map(|a| a.info.config.codec_string())
                .collect();
            codecs.dedup();
            AudioGroup {
                id: if n <= 2 {
                    "audio".into()
                } else {
                    format!("audio-{n}ch")
                },
                peak_bandwidth: members
                    .iter()
                    .map(|a| a.peak_bandwidth())
                    .max()
                    .unwrap_or(0),
                average_bandwidth: members
                    .iter()
                    .map(|a| a.average_bandwidth())
                    .max()
                    .unwrap_or(0),
                codecs,
                members,
            }
        })
        .collect()
}

fn render(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out).expect("writing to memory");
    out
}

/// Builds the HLS master playlist and every media and I-frame playlist, and the image
/// playlist of `thumbnails` when given: (relative path, bytes).
pub fn hls_playlists(
    tracks: &[PackagedTrack],
    thumbnails: Option<&ThumbnailTrack>,
) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let audio: Vec<&PackagedTrack> = tracks
        .iter()
        .filter(|t| t.info.kind() == TrackKind::Audio)
        .collect();
    let groups = audio_groups(&audio);
    let mut alternatives = Vec::new();
    for g in &groups {
        let role = |a: &PackagedTrack| a.info.audio.map(|p| p.role).unwrap_or_default();
        // The main audio plays unless the viewer picks another; without one, the first.
        let default = g
            .members
            .iter()
            .position(|a| role(a) == AudioRole::Main)
            .unwrap_or(0);
        let mut names: Vec<String> = Vec::new();
        for (i, a) in g.members.iter().enumerate() {
            let path = playlist_path(a, "playlist");
            files.push((path.clone(), render(|w| media_playlist(a).write_to(w))));
            // NAME is unique in a group (RFC 8216 4.3.4.1.1).
            let mut name = audio_label(a);
            if names.contains(&name) {
                name = format!("{name} ({})", a.info.name);
            }
            names.push(name.clone());
            alternatives.push(AlternativeMedia {
                media_type: AlternativeMediaType::Audio,
                uri: Some(path),
                group_id: g.id.clone(),
                language: (a.info.language != "und").then(|| a.info.language.clone()),
                name,
                default: i == default,
                // A commentary is chosen, never matched to the viewer's language.
                autoselect: role(a) != AudioRole::Commentary,
                channels: a.info.audio.map(|p| p.channels.to_string()),
                characteristics: (role(a) == AudioRole::Description)
                    .then(|| "public.accessibility.describes-video".into()),
                ..Default::default()
            });
        }
    }
    // Text: one SUBTITLES group that every variant names; its playlists list WebVTT files.
    let text: Vec<&PackagedTrack> = tracks.iter().filter(|t| t.text.is_some()).collect();
    for t in &text {
        let meta = t.text.as_ref().expect("text tracks have text info");
        let path = playlist_path(t, "playlist");
        files.push((path.clone(), render(|w| text_playlist(t).write_to(w))));
        alternatives.push(AlternativeMedia {
            media_type: AlternativeMediaType::Subtitles,
            uri: Some(path),
            group_id: SUBTITLES_GROUP.into(),
            language: Some(meta.language.clone()),
            name: t.info.name.clone(),
            default: false,
            autoselect: true,
            forced: meta.kind == TextKind::Forced,
            characteristics: (meta.kind == TextKind::Captions).then(|| {
                "public.accessibility.transcribes-spoken-dialog,\
                 public.accessibility.describes-music-and-sound"
                    .into()
            }),
            ..Default::default()
        });
    }
    let subtitles = (!text.is_empty()).then(|| SUBTITLES_GROUP.to_string());
    // Every video variant once per audio group (the stereo group's first, so that a player
    // that starts with the first variant starts with audio every device plays), as Apple's
    // authoring specification asks for multichannel audio; each variant's bandwidth counts
    // its own group's audio only.
    let audio_choices: Vec<Option<&AudioGroup>> = if groups.is_empty() {
        vec![None]
    } else {
        groups.iter().map(Some).collect()
    };
    // HLS fast-forwards with I-frame playlists: trick-play tracks are for DASH.
    let video: Vec<&PackagedTrack> = tracks
        .iter()
        .filter(|t| t.info.kind() == TrackKind::Video && t.trick_of.is_none())
        .collect();
    let mut variants = Vec::new();
    for g in &audio_choices {
        for v in &video {
            let p = v.info.video.expect("video track has video parameters");
            let mut codecs = vec![v.info.config.codec_string()];
            codecs.extend(g.iter().flat_map(|g| g.codecs.iter().cloned()));
            variants.push(VariantStream {
                uri: playlist_path(v, "playlist"),
                bandwidth: v.peak_bandwidth() + g.map_or(0, |g| g.peak_bandwidth),
                average_bandwidth: Some(
                    v.average_bandwidth() + g.map_or(0, |g| g.average_bandwidth),
                ),
                codecs: Some(codecs.join(",")),
                resolution: Some(Resolution {
                    width: u64::from(p.width),
                    height: u64::from(p.height),
                }),
                frame_rate: (!p.frame_rate.is_zero())
                    .then(|| (p.frame_rate.as_f64() * 1000.0).round() / 1000.0),
                audio: g.map(|g| g.id.clone()),
                subtitles: subtitles.clone(),
                // No CEA-608/708 captions in the video: said, so players do not look for them.
                closed_captions: Some(ClosedCaptionGroupId::None),
                other_attributes: video_range(p),
                ..Default::default()
            });
        }
    }
    for v in &video {
        files.push((
            playlist_path(v, "playlist"),
            render(|w| media_playlist(v).write_to(w)),
        ));
        let p = v.info.video.expect("video track has video parameters");
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
            other_attributes: video_range(p),
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
    // One session key per key ID and format, so clients can fetch licences early.
    let mut session_key: Vec<SessionKey> = Vec::new();
    for p in tracks.iter().filter_map(|t| t.protection.as_ref()) {
        for k in hls_keys(p, true) {
            if !session_key.iter().any(|s| s.0 == k) {
                session_key.push(SessionKey(k));
            }
        }
    }
    let mut unknown_tags = Vec::new();
    if let Some(t) = thumbnails {
        files.push((
            format!("{THUMBNAILS_DIR}/{THUMBNAILS_PLAYLIST}"),
            t.hls_playlist(presentation_duration(tracks)).into_bytes(),
        ));
        unknown_tags.push(t.hls_stream_inf());
    }
    let master = MasterPlaylist {
        version: Some(7),
        variants,
        alternatives,
        session_key,
        independent_segments: true,
        unknown_tags,
        ..Default::default()
    };
    files.push((HLS_MASTER.to_string(), render(|w| master.write_to(w))));
    files
}

/// Writes the HLS playlists and then the DASH MPD, each through a temporary name, listing
/// `thumbnails` too (with its WebVTT track) when given. Call only after every segment and
/// sprite is written.
pub fn write_manifests(
    dir: &Path,
    tracks: &[PackagedTrack],
    thumbnails: Option<&ThumbnailTrack>,
) -> Result<()> {
    if tracks.is_empty() {
        return Err(PackagerError::InvalidTrack {
            track: 0,
            problem: "no tracks to list in a manifest".into(),
        });
    }
    if let Some(t) = thumbnails {
        let vtt = dir.join(THUMBNAILS_DIR).join(THUMBNAILS_VTT);
        write_atomically(&vtt, t.webvtt(presentation_duration(tracks)).as_bytes())?;
    }
    let playlists = hls_playlists(tracks, thumbnails);
    // Media playlists first, the master last among them.
    for (path, bytes) in &playlists {
        write_atomically(&dir.join(path), bytes)?;
    }
    write_atomically(
        &dir.join(DASH_MANIFEST),
        dash_mpd(tracks, thumbnails).as_bytes(),
    )
}
