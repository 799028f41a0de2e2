//! Text tracks inside a media file (MP4 `tx3g`/mov_text, Matroska SubRip and ASS). The `tx3g`
//! tracks of an MP4 are read from its sample tables as they are stored (GStreamer's `qtdemux`
//! keeps the text and drops the style records); everything else with GStreamer's own
//! demuxers: `parsebin` gives each as `text/x-raw` (plain UTF-8 from a fragmented MP4, Pango
//! markup from Matroska SubRip) or, for ASS, as the Matroska blocks themselves (kept from
//! `ssaparse`, which drops the italics and positions the blocks carry) with the track's
//! script header, with times and durations. Video and audio are parsed and dropped, never
//! decoded.

use crate::gst_util::{init, make};
use crate::EncodeError;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One text sample: shown from `start` for `duration` (ms); its bytes as the track's format
/// says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSample {
    pub start: u64,
    pub duration: u64,
    pub data: Vec<u8>,
}

/// A text track of a media file, in the file's order of text tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceText {
    /// The container's language tag (ISO 639-2 or BCP 47), when it names one.
    pub language: Option<String>,
    /// What the samples' text is.
    pub format: reel_media::SampleText,
    /// An ASS track's script header (Matroska's codec private data: its styles).
    pub header: Option<String>,
    pub samples: Vec<TextSample>,
}

type Tracks = Arc<Mutex<Vec<SourceText>>>;

/// Every text track of `path`. A file without one gives an empty list.
pub fn text_tracks(path: &Path) -> Result<Vec<SourceText>, EncodeError> {
    if let Some(tracks) = crate::mp4demux::tx3g_tracks(path) {
        return Ok(tracks);
    }
    init()?;
    let fail = |detail: String| EncodeError::Decode {
        path: path.to_path_buf(),
        detail,
    };
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property(
        "location",
        path.to_str()
            .ok_or_else(|| fail("path is not UTF-8".into()))?,
    );
    let parse = make("parsebin")?;
    // ASS reaches us as it is in the file: `ssaparse` would make it plain Pango text.
    parse.connect("autoplug-continue", false, |args| {
        let caps = args.get(2)?.get::<gst::Caps>().ok()?;
        let ass = caps.structure(0).is_some_and(|s| {
            matches!(s.name().as_str(), "application/x-ass" | "application/x-ssa")
        });
        Some((!ass).to_value())
    });
    pipeline
        .add_many([&src, &parse])
        .and_then(|_| src.link(&parse))
        .map_err(|e| fail(format!("cannot read the file's tracks: {e}")))?;
    let tracks: Tracks = Arc::default();
    let seen = Arc::new(Mutex::new(Instant::now()));
    let (tracks_pad, seen_pad, weak) = (tracks.clone(), seen.clone(), pipeline.downgrade());
    parse.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let caps = pad.current_caps().or_else(|| Some(pad.query_caps(None)));
        let format = caps.as_ref().and_then(|c| c.structure(0)).and_then(|s| {
            use reel_media::SampleText;
            match s.name().as_str() {
                "text/x-raw" if s.get::<&str>("format").is_ok_and(|f| f == "pango-markup") => {
                    Some(SampleText::PangoMarkup)
                }
                "text/x-raw" => Some(SampleText::Plain),
                "application/x-ass" | "application/x-ssa" => Some(SampleText::Ass),
                _ => None,
            }
        });
        let header = caps
            .as_ref()
            .and_then(|c| c.structure(0))
            .and_then(|s| s.get::<gst::Buffer>("codec_data").ok())
            .and_then(|b| {
                let map = b.map_readable().ok()?;
                Some(
                    String::from_utf8_lossy(&map)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            })
            .filter(|_| format == Some(reel_media::SampleText::Ass));
        let sink = match format {
            Some(format) => {
                let (index, sink) = text_sink(&tracks_pad, &seen_pad, format, header);
                note_language(pad, &tracks_pad, index);
                sink
            }
            None => match make("fakesink") {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        // No clock and no preroll: the demuxer pushes every track on one thread without
        // queues, and a sink waiting for preroll (a text track that starts later) would
        // hold it for ever.
        sink.set_property("sync", false);
        sink.set_property("async", false);
        if pipeline.add(&sink).is_ok() {
            let _ = sink.sync_state_with_parent();
            let _ = pad.link(&sink.static_pad("sink").expect("sinks have a sink pad"));
        }
    });
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| fail("the file could not be opened".into()))?;
    let result = wait_for_end(&pipeline, &seen, path);
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let tracks = std::mem::take(&mut *tracks.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(tracks)
}

/// An appsink that collects one text track's samples (and its language, from its tags).
fn text_sink(
    tracks: &Tracks,
    seen: &Arc<Mutex<Instant>>,
    format: reel_media::SampleText,
    header: Option<String>,
) -> (usize, gst::Element) {
    let index = {
        let mut t = tracks.lock().unwrap_or_else(|e| e.into_inner());
        t.push(SourceText {
            language: None,
            format,
            header,
            samples: Vec::new(),
        });
        t.len() - 1
    };
    let sink = gst_app::AppSink::builder().build();
    let (tracks, seen) = (tracks.clone(), seen.clone());
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let (Some(pts), Ok(map)) = (buffer.pts(), buffer.map_readable()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let text = String::from_utf8_lossy(&map);
                let duration = buffer.duration().map_or(0, |d| d.mseconds());
                if !text.trim_end_matches('\0').trim().is_empty() && duration > 0 {
                    tracks.lock().unwrap_or_else(|e| e.into_inner())[index]
                        .samples
                        .push(TextSample {
                            start: pts.mseconds(),
                            duration,
                            data: map.to_vec(),
                        });
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    (index, sink.upcast())
}

/// Notes the language a tag event on `pad` names for text track `index`.
fn note_language(pad: &gst::Pad, tracks: &Tracks, index: usize) {
    let tracks = tracks.clone();
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::EventView::Tag(tag)) = info.event().map(|e| e.view()) {
            if let Some(code) = tag.tag().get::<gst::tags::LanguageCode>() {
                tracks.lock().unwrap_or_else(|e| e.into_inner())[index].language =
                    Some(code.get().to_string());
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Waits for the end of the file, or fails on an error or when no text and no position
/// change came for the stall bound.
fn wait_for_end(
    pipeline: &gst::Pipeline,
    seen: &Arc<Mutex<Instant>>,
    path: &Path,
) -> Result<(), EncodeError> {
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let limit = crate::stall_limit();
    let mut position = None;
    loop {
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(500),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => return Ok(()),
            Some(gst::MessageView::Error(e)) => {
                return Err(EncodeError::Decode {
                    path: path.to_path_buf(),
                    detail: format!("reading its text tracks: {}", e.error()),
                })
            }
            _ => {}
        }
        let now = pipeline.query_position::<gst::ClockTime>();
        if now != position {
            position = now;
            *seen.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
        let quiet = seen.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
        if quiet >= limit {
            return Err(EncodeError::Stalled {
                path: PathBuf::from(path),
                stage: "reading text tracks",
                seconds: limit.as_secs(),
            });
        }
    }
}
