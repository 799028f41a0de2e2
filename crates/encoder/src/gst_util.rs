use crate::EncodeError;
use gstreamer as gst;
use gstreamer::prelude::*;
use std::path::{Path, PathBuf};

pub(crate) fn init() -> Result<(), EncodeError> {
    gst::init().map_err(|e| EncodeError::Gst(e.to_string()))
}

pub(crate) fn make(factory: &str) -> Result<gst::Element, EncodeError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| EncodeError::MissingElement(factory.to_string()))
}

/// Checks that `path` is a readable regular file and returns its absolute path.
pub(crate) fn existing_file(path: &Path) -> Result<PathBuf, EncodeError> {
    let meta = std::fs::metadata(path).map_err(|e| EncodeError::reading(path, e))?;
    if !meta.is_file() {
        return Err(EncodeError::NotMedia {
            path: path.to_path_buf(),
            detail: "not a regular file".into(),
        });
    }
    std::fs::File::open(path).map_err(|source| EncodeError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    std::path::absolute(path).map_err(|source| EncodeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn file_uri(abs: &Path) -> Result<String, EncodeError> {
    gst::glib::filename_to_uri(abs, None)
        .map(|u| u.to_string())
        .map_err(|e| EncodeError::Gst(e.to_string()))
}

/// Turns a bus error message into an error naming the file and, where it can tell, the cause.
pub(crate) fn bus_error(path: &Path, err: &gst::message::Error) -> EncodeError {
    let src = err.src().map(|s| s.name().to_string()).unwrap_or_default();
    let e = err.error();
    let detail = if src.is_empty() {
        e.to_string()
    } else {
        format!("{e} (in {src})")
    };
    let path = path.to_path_buf();
    if e.matches(gst::StreamError::TypeNotFound) || e.matches(gst::StreamError::WrongType) {
        EncodeError::NotMedia { path, detail }
    } else if e.matches(gst::CoreError::MissingPlugin) || e.matches(gst::StreamError::CodecNotFound)
    {
        EncodeError::Unsupported { path, detail }
    } else {
        EncodeError::Decode { path, detail }
    }
}

/// A buffer timestamp as signed running time in nanoseconds, through the sample's segment.
/// Encoders such as x264enc shift their output segment (by 1000 hours, so that decode times
/// before the first presentation time stay positive); running time undoes that.
pub(crate) fn running_ns(sample: &gst::Sample, t: Option<gst::ClockTime>) -> Option<i128> {
    let t = t?;
    let seg = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    match seg.to_running_time_full(t)? {
        gst::format::Signed::Positive(v) => Some(v.nseconds() as i128),
        gst::format::Signed::Negative(v) => Some(-(v.nseconds() as i128)),
    }
}

/// ISO/IEC 23091-2 code points for a GStreamer colorimetry string; `None` when unknown.
pub(crate) fn color_from_colorimetry(c: &str) -> Option<reel_media::ColorInfo> {
    use gstreamer_video::{VideoColorRange, VideoColorimetry};
    let c: VideoColorimetry = c.parse().ok()?;
    let info = reel_media::ColorInfo {
        primaries: c.primaries().to_iso() as u8,
        transfer: c.transfer().to_iso() as u8,
        matrix: c.matrix().to_iso() as u8,
        full_range: c.range() == VideoColorRange::Range0_255,
    };
    (info.primaries != 0 && info.primaries != 2).then_some(info)
}

/// An appsink that pulls as fast as it can (no clock sync), holds at most `max_buffers`, and
/// does not preroll: sinks sharing one upstream thread (a demuxer, or a tee feeding an encoder
/// with look-ahead) must never wait for each other.
pub(crate) fn free_running_appsink(max_buffers: u32) -> gstreamer_app::AppSink {
    let sink = gstreamer_app::AppSink::builder()
        .max_buffers(max_buffers)
        .sync(false)
        .build();
    sink.set_property("async", false);
    sink
}

/// Adds to `pipeline` a source reading `path` (or `url`, an http(s) address, read by ranges)
/// and a `decodebin3` behind it; returns the decodebin3, whose pads carry the decoded streams.
///
/// Not `uridecodebin3`: in GStreamer 1.22 its pipelines now and then never preroll (the
/// parsed streams stay in its source bin's multiqueue and no decoded pad appears). Measured
/// with two chunk-style pipelines prerolling at a time beside an x264 encode, 300 prerolls
/// each on the 60-s 720p fixture: 53 of 600 stalled with `uridecodebin3`, none of 600 with
/// `filesrc ! decodebin3`. Over HTTP (nginx, same load, 300 each at a time): none stalled
/// with either, and `souphttpsrc ! typefind ! decodebin3` prerolled in 0.15 s against 0.24 s.
pub(crate) fn add_decoder(
    pipeline: &gst::Pipeline,
    path: &Path,
    url: Option<&str>,
) -> Result<gst::Element, EncodeError> {
    let source = match url {
        Some(url) => {
            let http = make("souphttpsrc")?;
            http.set_property("location", url);
            http
        }
        None => {
            let file = make("filesrc")?;
            file.set_property("location", existing_file(path)?);
            file
        }
    };
    let decode = make("decodebin3")?;
    pipeline.add_many([&source, &decode])?;
    if url.is_some() {
        // Pushed bytes from the network reach decodebin3 typed, or it refuses them
        // (not-linked at once, GStreamer 1.22); a file is pulled and typed inside.
        let typefind = make("typefind")?;
        pipeline.add(&typefind)?;
        gst::Element::link_many([&source, &typefind, &decode])?;
    } else {
        source.link(&decode)?;
    }
    Ok(decode)
}

/// Makes a `decodebin3` decode only stream `nth` (0 for the first) of `kind` (audio or
/// video) in the source's stream collection: every other audio, video and text stream is
/// deselected, and a stream whose type is not known yet is left to it.
/// Each stream is named, none left to its choice: with the wanted one left to it (-1), it
/// decoded the unwanted video as well; with every stream of the kind selected, a source with
/// two audio languages gave either one.
pub(crate) fn decode_only(decode: &gst::Element, kind: gst::StreamType, nth: usize) {
    decode.connect("select-stream", false, move |args| {
        let collection = args.get(1)?.get::<gst::StreamCollection>().ok()?;
        let stream = args.get(2)?.get::<gst::Stream>().ok()?;
        let t = stream.stream_type();
        let known = gst::StreamType::AUDIO | gst::StreamType::VIDEO | gst::StreamType::TEXT;
        let wanted = collection
            .iter()
            .filter(|s| s.stream_type().contains(kind))
            .nth(nth)
            .is_some_and(|s| s.stream_id() == stream.stream_id());
        let choice = if t.contains(kind) && wanted {
            1i32
        } else if t.intersects(known) {
            0
        } else {
            -1
        };
        Some(choice.to_value())
    });
}

/// A `capsfilter` holding `caps`.
pub(crate) fn caps_filter(caps: gst::Caps) -> Result<gst::Element, EncodeError> {
    let c = make("capsfilter")?;
    c.set_property("caps", caps);
    Ok(c)
}

/// The elements every decoded picture goes through before anything else sees it, linked in
/// order, for the encode and the analysis alike (so that trials see what rungs see):
/// conversion to I420 (10-bit and 4:2:2 sources included; sample values are not converted
/// between colour matrices), deinterlacing of interlaced sources (motion-adaptive GreedyH,
/// which, unlike GStreamer's YADIF, also deinterlaces the first frames; one frame per field
/// pair: 1080i50 becomes 25 progressive frames a second; progressive sources pass through),
/// and rotation to upright by the source's orientation tag (phone video).
pub(crate) fn upright_progressive() -> Result<Vec<gst::Element>, EncodeError> {
    let convert = make("videoconvert")?;
    let i420 = caps_filter(
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .build(),
    )?;
    let deinterlace = make("deinterlace")?;
    deinterlace.set_property_from_str("method", "greedyh");
    deinterlace.set_property_from_str("fields", "top");
    deinterlace.set_property_from_str("mode", "auto");
    let flip = make("videoflip")?;
    flip.set_property_from_str("video-direction", "auto");
    Ok(vec![convert, i420, deinterlace, flip])
}

/// Restamps the raw audio passing `pad` with its running time in a segment that starts at 0,
/// as the video frames leaving the decoder are: a stream whose container puts it later in
/// the presentation (qtdemux expresses an audio track that starts 0.5 s in as a segment
/// with that base, not as a later timestamp) then starts late in timestamps too, where
/// `audiorate` fills the lead-in with silence. Samples outside the container's segment
/// (an AAC encoder's priming, cut by the edit list) are clipped first, as downstream
/// elements would have done against the original segment.
pub(crate) fn stamp_running_time(pad: &gst::Pad) {
    struct State {
        segment: gst::FormattedSegment<gst::ClockTime>,
        format: Option<gstreamer_audio::AudioInfo>,
    }
    let state = std::sync::Mutex::new(State {
        segment: gst::FormattedSegment::new(),
        format: None,
    });
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            match &mut info.data {
                Some(gst::PadProbeData::Event(event)) => match event.view() {
                    gst::EventView::Caps(c) => {
                        state.format = gstreamer_audio::AudioInfo::from_caps(c.caps()).ok();
                    }
                    gst::EventView::Segment(e) => {
                        if let Some(seg) = e.segment().downcast_ref::<gst::ClockTime>() {
                            state.segment = seg.clone();
                            *event = gst::event::Segment::new(&gst::FormattedSegment::<
                                gst::ClockTime,
                            >::new(
                            ));
                        }
                    }
                    _ => {}
                },
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    if let Some(format) = &state.format {
                        let whole = std::mem::replace(buffer, gst::Buffer::new());
                        match gstreamer_audio::audio_buffer_clip(
                            whole,
                            state.segment.upcast_ref(),
                            format.rate(),
                            format.bpf(),
                        ) {
                            Some(kept) => *buffer = kept,
                            None => return gst::PadProbeReturn::Drop,
                        }
                    }
                    let seg = &state.segment;
                    let b = buffer.make_mut();
                    let pts = b.pts().and_then(|t| seg.to_running_time(t));
                    let dts = b.dts().and_then(|t| seg.to_running_time(t));
                    b.set_pts(pts);
                    b.set_dts(dts);
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Gives multichannel audio without channel positions the standard layout for its channel
/// count (5.1: L R C LFE Ls Rs; 7.1: L R C LFE Ls Rs Lsd Rsd; GStreamer's fallback layouts,
/// which are also ffmpeg's and WAV's defaults), on caps passing `pad`. qtdemux does not read
/// a MOV's `chan` box, so PCM from a MOV arrives with an empty channel mask, and
/// `audioconvert` can neither downmix nor keep such audio: it refused to negotiate.
pub(crate) fn position_unpositioned_channels(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
        let Some(gst::PadProbeData::Event(event)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let gst::EventView::Caps(c) = event.view() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(positioned) = with_fallback_positions(c.caps()) else {
            return gst::PadProbeReturn::Ok;
        };
        info.data = Some(gst::PadProbeData::Event(gst::event::Caps::new(&positioned)));
        gst::PadProbeReturn::Ok
    });
}

/// `caps` with the fallback channel mask, when they are raw audio of more than two channels
/// with no mask or an empty one; `None` when nothing needs changing.
fn with_fallback_positions(caps: &gst::CapsRef) -> Option<gst::Caps> {
    let s = caps.structure(0)?;
    let channels = s.get::<i32>("channels").ok()?;
    let mask = s
        .get::<gst::Bitmask>("channel-mask")
        .map(|m| m.0)
        .unwrap_or(0);
    if s.name() != "audio/x-raw" || channels <= 2 || mask != 0 {
        return None;
    }
    let fallback = gstreamer_audio::AudioChannelPosition::fallback_mask(channels as u32);
    if fallback == 0 {
        return None;
    }
    let mut out = caps.to_owned();
    out.make_mut()
        .structure_mut(0)?
        .set("channel-mask", gst::Bitmask::new(fallback));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpositioned_surround_gets_the_standard_layout() {
        gst::init().unwrap();
        let caps = |channels: i32, mask: Option<u64>| {
            let mut b = gst::Caps::builder("audio/x-raw")
                .field("format", "S24LE")
                .field("rate", 48000i32)
                .field("channels", channels);
            if let Some(m) = mask {
                b = b.field("channel-mask", gst::Bitmask::new(m));
            }
            b.build()
        };
        let mask = |c: &gst::Caps| {
            c.structure(0)
                .unwrap()
                .get::<gst::Bitmask>("channel-mask")
                .unwrap()
                .0
        };
        // 5.1 as qtdemux reads it from a MOV without a `chan` box: FL FR FC LFE RL RR.
        assert_eq!(
            mask(&with_fallback_positions(&caps(6, Some(0))).unwrap()),
            0x3f
        );
        // 7.1 with no mask at all: FL FR FC LFE RL RR SL SR.
        assert_eq!(
            mask(&with_fallback_positions(&caps(8, None)).unwrap()),
            0xc3f
        );
        // Positioned audio, stereo and mono are left alone.
        assert!(with_fallback_positions(&caps(6, Some(0x60f))).is_none());
        assert!(with_fallback_positions(&caps(2, Some(0))).is_none());
        assert!(with_fallback_positions(&caps(1, None)).is_none());
    }
}
