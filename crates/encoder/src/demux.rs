//! Demux already-encoded files (MP4, Matroska/WebM, MPEG-TS, ...) into [`Event`] streams
//! without re-encoding, so renditions made by other tools can be packaged.

use crate::coded::{coded_sink, CodedTrack};
use crate::gst_util::{init, make};
use crate::stream::{watch_bus, Event, Feed, SampleStream, Watch, EVENT_QUEUE};
use crate::timing::video_timescale;
use crate::{probe, EncodeError, StreamInfo};
use gstreamer as gst;
use gstreamer::prelude::*;
use reel_media::Rational;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Media types Reel packages, and the caps each is converted to (length-prefixed H.264,
/// temporal-unit AV1, raw AAC).
fn target_caps(media_type: &str) -> Option<gst::Caps> {
    Some(match media_type {
        "video/x-h264" => gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .build(),
        "video/x-av1" => gst::Caps::builder("video/x-av1")
            .field("stream-format", "obu-stream")
            .field("alignment", "tu")
            .build(),
        "audio/mpeg" => gst::Caps::builder("audio/mpeg")
            .field("mpegversion", 4i32)
            .field("stream-format", "raw")
            .build(),
        "audio/x-opus" => gst::Caps::new_empty_simple("audio/x-opus"),
        _ => return None,
    })
}

/// Duration in seconds and whether `source` has video: from the sample tables of an MP4 this
/// crate reads natively, else from GStreamer's discoverer.
pub fn summary(source: &Path) -> Result<(f64, bool), EncodeError> {
    if let Some(s) = crate::mp4demux::summary(source) {
        return Ok(s);
    }
    let info = probe(source)?;
    let video = info
        .streams
        .iter()
        .any(|s| matches!(s, StreamInfo::Video(_)));
    Ok((info.duration, video))
}

/// Starts demuxing every H.264, AV1, AAC and Opus stream of `source`. Other streams are
/// reported as [`Event::Notice`] and ignored; a file with none of these is an error.
pub fn demux(source: &Path) -> Result<SampleStream, EncodeError> {
    // MP4 with only codecs we package: read it natively, without GStreamer's discoverer (which
    // alone costs about 0.1 s) or parsebin.
    if let Some(stream) = crate::mp4demux::try_demux(source)? {
        return Ok(stream);
    }
    let info = probe(source)?;
    init()?;
    let path = source.to_path_buf();
    let mut supported = 0;
    let mut notices = Vec::new();
    for s in &info.streams {
        let (index, media_type, codec) = match s {
            StreamInfo::Video(v) => (v.index, v.media_type.as_str(), v.codec.as_str()),
            StreamInfo::Audio(a) => (a.index, a.media_type.as_str(), a.codec.as_str()),
            StreamInfo::Subtitle { index, .. } => (*index, "subtitle", "subtitles"),
        };
        if target_caps(media_type).is_some() {
            supported += 1;
        } else {
            notices.push(format!(
                "stream {index} ({codec}) is not H.264, AV1, AAC or Opus: ignored"
            ));
        }
    }
    if supported == 0 {
        return Err(EncodeError::Unsupported {
            path,
            detail: format!(
                "no H.264, AV1, AAC or Opus stream (found: {})",
                info.streams
                    .iter()
                    .map(|s| match s {
                        StreamInfo::Video(v) => v.codec.clone(),
                        StreamInfo::Audio(a) => a.codec.clone(),
                        StreamInfo::Subtitle { .. } => "subtitles".into(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    let languages: Vec<String> = info
        .streams
        .iter()
        .filter_map(|s| match s {
            StreamInfo::Audio(a) => Some(a.language.clone().unwrap_or_default()),
            _ => None,
        })
        .collect();

    let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
    let feed = Feed::new(tx);
    let stop = feed.stop.clone();
    for n in notices {
        feed.event(Event::Notice(n));
    }
    let started = Instant::now();
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", source);
    let parse = make("parsebin")?;
    pipeline.add_many([&src, &parse])?;
    src.link(&parse)?;

    let next_id = Arc::new(AtomicU32::new(1));
    let audio_seen = Arc::new(AtomicU32::new(0));
    let pipeline_weak = pipeline.downgrade();
    let pad_feed = feed.clone();
    let pad_path = path.clone();
    parse.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(s) = caps.structure(0) else { return };
        let name = s.name().to_string();
        let link = |el: &gst::Element| -> bool {
            let Some(sinkpad) = el.static_pad("sink") else {
                return false;
            };
            pad.link(&sinkpad).is_ok()
        };
        let Some(target) = target_caps(&name) else {
            if let Ok(fake) = make("fakesink") {
                fake.set_property("sync", false);
                if pipeline.add(&fake).is_ok() && fake.sync_state_with_parent().is_ok() {
                    link(&fake);
                }
            }
            return;
        };
        let video = name.starts_with("video/");
        let timescale = if video {
            s.get::<gst::Fraction>("framerate")
                .ok()
                .filter(|f| f.numer() > 0 && f.denom() > 0)
                .map_or(90_000, |f| {
                    video_timescale(Rational::new(f.numer() as u32, f.denom() as u32)).0
                })
        } else {
            s.get::<i32>("rate").map_or(48_000, |r| r.max(1) as u32)
        };
        let language = if video {
            "und".to_string()
        } else {
            let i = audio_seen.fetch_add(1, Ordering::Relaxed) as usize;
            languages
                .get(i)
                .and_then(|l| reel_media::language::iso639_2t(l))
                .unwrap_or_else(|| "und".into())
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let Ok(filter) = make("capsfilter") else {
            return;
        };
        filter.set_property("caps", target);
        // The demuxer pushes every stream from one thread: no queue thread is needed between
        // it and us, as long as no sink waits to preroll.
        let sink = crate::gst_util::free_running_appsink(16);
        let sink_el: gst::Element = sink.clone().upcast();
        coded_sink(
            &sink,
            CodedTrack {
                path: pad_path.clone(),
                track_id: id,
                name: format!("{}{}", if video { "video" } else { "audio" }, id),
                timescale,
                frame_duration: None,
                video: None,
                language,
                role: Default::default(),
                title: None,
                frames_total: None,
            },
            pad_feed.clone(),
            started,
        );
        if pipeline.add_many([&filter, &sink_el]).is_err() || filter.link(&sink_el).is_err() {
            return;
        }
        for el in [&sink_el, &filter] {
            let _ = el.sync_state_with_parent();
        }
        link(&filter);
    });

    let workers = vec![watch_bus(&pipeline, feed.clone(), path.clone(), Vec::new())];
    let watch = Watch::new(&path, "demuxing", &feed);
    drop(feed);
    SampleStream::start(rx, stop, pipeline, workers, watch)
}
