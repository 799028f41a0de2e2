//! Raw pictures for analysis: decode a source to I420 [`Picture`]s at a chosen size, and
//! trial-encode pictures at a rendition's size and quality, decoding the result and scaling it
//! back to the display size so that a quality metric can compare it with the source.
//!
//! ```no_run
//! use reel_encoder::{decode_pictures, trial_encode, RateControl, TrialSpec, VideoEncoder};
//! use reel_media::Rational;
//! let mut frames = Vec::new();
//! decode_pictures("mezzanine.mp4".as_ref(), (1280, 720), &[(0.0, 2.0)], &mut |_, _, p| {
//!     frames.push(p);
//!     true
//! })
//! .unwrap();
//! let spec = TrialSpec {
//!     encoder: VideoEncoder::X264, width: 640, height: 360, rate: RateControl::Quality(28), speed: 9,
//!     frame_rate: Rational::new(25, 1), display: (1280, 720), score_every: 1, gop: None,
//! };
//! let bytes = trial_encode(&frames, &spec, &mut |i, decoded| {
//!     let _ = (i, decoded.width); // compare with frames[i] here
//! })
//! .unwrap();
//! println!("{} bytes", bytes.iter().sum::<u64>());
//! ```

use crate::gst_util::{add_decoder, bus_error, caps_filter, init, make};
use crate::x264::X264Settings;
use crate::{EncodeError, RateControl, VideoEncoder};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use reel_media::{Picture, Rational};
use std::path::Path;
use std::sync::{Arc, Mutex};

const PULL_WAIT: gst::ClockTime = gst::ClockTime::from_mseconds(50);

/// Ranges of `decode_pictures` less than this many seconds apart are decoded straight through.
const SEEK_GAP: f64 = 3.0;

/// How long a pipeline may go without a picture before it counts as stalled. The slowest
/// step between two pictures is a trial encode's decoder start, well under a second.
const STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Fresh pipelines `decode_pictures` tries after a stall before giving up.
const STALL_RETRIES: u32 = 2;

fn i420_caps(width: u32, height: u32, frame_rate: Option<Rational>) -> gst::Caps {
    let mut b = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some(r) = frame_rate {
        b = b.field("framerate", gst::Fraction::new(r.num as i32, r.den as i32));
    }
    b.build()
}

fn scaler(method: &str) -> Result<gst::Element, EncodeError> {
    let s = make("videoscale")?;
    s.set_property_from_str("method", method);
    s.set_property("add-borders", false);
    Ok(s)
}

/// Copies a mapped I420 buffer into a tightly packed [`Picture`].
pub(crate) fn picture_from(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
) -> Result<Picture, String> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
        .map_err(|_| "cannot map a decoded frame".to_string())?;
    let (w, h) = (info.width(), info.height());
    let mut out = Picture::filled(w, h, 0, 0);
    for i in 0..3 {
        let (pw, ph) = out.plane_size(i);
        let stride = frame.info().stride()[i] as usize;
        let data = frame.plane_data(i as u32).map_err(|e| e.to_string())?;
        let dst = &mut out.planes[i];
        for row in 0..ph as usize {
            let s = row * stride;
            let src = data
                .get(s..s + pw as usize)
                .ok_or("decoded plane shorter than its stride says")?;
            dst[row * pw as usize..(row + 1) * pw as usize].copy_from_slice(src);
        }
    }
    Ok(out)
}

/// The picture of `buffer` from `sample`; the video layout is read from the first sample's caps
/// into `info` and reused for the rest of the stream.
fn sample_picture(
    sample: &gst::Sample,
    buffer: &gst::BufferRef,
    info: &mut Option<gst_video::VideoInfo>,
) -> Result<Picture, String> {
    if info.is_none() {
        let caps = sample.caps().ok_or("sample without caps")?;
        *info = Some(gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?);
    }
    picture_from(buffer, info.as_ref().expect("set above"))
}

/// A buffer holding `p` in GStreamer's own I420 layout (each row padded to its stride, planes
/// at its offsets), which is what downstream elements map it with: a tightly packed copy is
/// shorter than that whenever a width is not a multiple of 8, and x264enc then refuses it.
fn buffer_from(p: &Picture, index: u64, frame_rate: Rational) -> Result<gst::Buffer, EncodeError> {
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, p.width, p.height)
        .build()
        .map_err(|e| EncodeError::Gst(format!("I420 {}x{}: {e}", p.width, p.height)))?;
    let mut data = vec![0u8; info.size()];
    for (k, plane) in p.planes.iter().enumerate() {
        let (pw, ph) = p.plane_size(k);
        let (pw, ph) = (pw as usize, ph as usize);
        let (offset, stride) = (info.offset()[k], info.stride()[k] as usize);
        for (row, src) in plane.chunks_exact(pw).take(ph).enumerate() {
            let at = offset + row * stride;
            data[at..at + pw].copy_from_slice(src);
        }
    }
    let mut buffer = gst::Buffer::from_mut_slice(data);
    let ns = |i: u64| {
        gst::ClockTime::from_nseconds(
            (i as u128 * 1_000_000_000 * frame_rate.den as u128 / frame_rate.num as u128) as u64,
        )
    };
    {
        let b = buffer.get_mut().expect("new buffer is writable");
        b.set_pts(ns(index));
        b.set_duration(ns(index + 1) - ns(index));
    }
    Ok(buffer)
}

/// Pulls every sample from `sink` until end of stream, watching `pipeline`'s bus for errors.
fn drain(
    pipeline: &gst::Pipeline,
    sink: &gst_app::AppSink,
    path: &Path,
    on_sample: &mut dyn FnMut(gst::Sample) -> Result<bool, EncodeError>,
) -> Result<(), EncodeError> {
    let bus = pipeline.bus().expect("pipeline has a bus");
    let mut last = std::time::Instant::now();
    loop {
        while let Some(msg) = bus.pop() {
            if let gst::MessageView::Error(e) = msg.view() {
                return Err(bus_error(path, e));
            }
        }
        // A pipeline that neither delivers, ends nor fails is reported, never waited on
        // forever.
        if last.elapsed() > STALL_TIMEOUT {
            return Err(EncodeError::Stalled {
                path: path.to_path_buf(),
                stage: "decoding",
                seconds: STALL_TIMEOUT.as_secs(),
            });
        }
        match sink.try_pull_sample(PULL_WAIT) {
            Some(sample) => {
                let go_on = on_sample(sample)?;
                if !go_on {
                    return Ok(());
                }
                // The clock restarts after the caller's work on the picture, however long.
                last = std::time::Instant::now();
            }
            None if sink.is_eos() => {
                // A source that fails posts its error, then sends end of stream: an end of
                // stream is only a success when no error came before it.
                return match bus.pop_filtered(&[gst::MessageType::Error]) {
                    Some(msg) => match msg.view() {
                        gst::MessageView::Error(e) => Err(bus_error(path, e)),
                        _ => unreachable!("filtered on errors"),
                    },
                    None => Ok(()),
                };
            }
            None => {}
        }
    }
}

/// Stops a pipeline when dropped, whatever way the function holding it returns.
struct Running(gst::Pipeline);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// One decoded frame of [`decode_frames`].
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    /// Counts every frame the decoder delivered (those outside the ranges too).
    pub index: u64,
    /// Presentation time in seconds.
    pub seconds: f64,
    /// Whether the coded frame was a key frame (decoding can start at it): a seek to
    /// `seconds` decodes nothing before it.
    pub key_frame: bool,
    pub picture: Picture,
}

/// Decodes the first video stream of `source` to I420 pictures of `size` (scaled with Lanczos
/// when it differs from the coded size) and calls `on_frame(index, seconds, picture)` for each
/// frame whose time lies in one of `ranges` (every frame when `ranges` is empty). `index`
/// counts all decoded frames. Returning `false` from `on_frame` stops decoding. Returns the
/// number of frames decoded.
pub fn decode_pictures(
    source: &Path,
    size: (u32, u32),
    ranges: &[(f64, f64)],
    on_frame: &mut dyn FnMut(u64, f64, Picture) -> bool,
) -> Result<u64, EncodeError> {
    decode_frames(source, size, ranges, &mut |f| {
        on_frame(f.index, f.seconds, f.picture)
    })
}

/// [`decode_pictures`] with each frame's key-frame flag (read from the coded stream as it
/// enters the decoder). A range that starts on a key frame is reached by a seek that decodes
/// nothing before it; any other range costs the frames from the key frame before it.
pub fn decode_frames(
    source: &Path,
    size: (u32, u32),
    ranges: &[(f64, f64)],
    on_frame: &mut dyn FnMut(DecodedFrame) -> bool,
) -> Result<u64, EncodeError> {
    // A pipeline that stops delivering without an error or an end of stream (with
    // uridecodebin3, about once in fifty decodes; see `add_decoder`) is replaced by a fresh
    // one that carries on after the last picture delivered, so the caller sees every frame
    // once.
    let mut delivered: Option<f64> = None;
    let mut index = 0u64;
    let mut attempt = 0;
    loop {
        match decode_attempt(source, size, ranges, &mut delivered, &mut index, on_frame) {
            Err(EncodeError::Stalled { .. }) if attempt < STALL_RETRIES => attempt += 1,
            other => return other,
        }
    }
}

/// Presentation times (ns) of the key frames that entered a video decoder and whose decoded
/// pictures have not come out yet.
#[derive(Default)]
struct KeyFrames(Mutex<std::collections::VecDeque<u64>>);

impl KeyFrames {
    /// Watches every video decoder `pipeline` makes (inside `decodebin3`).
    fn watch(self: &Arc<Self>, pipeline: &gst::Pipeline) {
        let keys = Arc::downgrade(self);
        pipeline.connect_deep_element_added(move |_, _, element| {
            let is_video_decoder = element.factory().is_some_and(|f| {
                let klass = f.klass();
                klass.contains("Decoder") && klass.contains("Video")
            });
            let Some(pad) = element.static_pad("sink").filter(|_| is_video_decoder) else {
                return;
            };
            let keys = keys.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let (Some(keys), Some(buffer)) = (keys.upgrade(), info.buffer()) {
                    if let (false, Some(pts)) = (
                        buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                        buffer.pts(),
                    ) {
                        keys.0
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_back(pts.nseconds());
                    }
                }
                gst::PadProbeReturn::Ok
            });
        });
    }

    /// Whether the picture at `pts` was a key frame; forgets key frames before it (their
    /// pictures have passed or were dropped).
    fn take(&self, pts: u64) -> bool {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Decoded pictures come out in presentation order; coded frames entered in decode
        // order, and a key frame is never presented after a later key frame.
        while q.front().is_some_and(|&k| k < pts) {
            q.pop_front();
        }
        if q.front() == Some(&pts) {
            q.pop_front();
            true
        } else {
            false
        }
    }

    fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

fn decode_attempt(
    source: &Path,
    size: (u32, u32),
    ranges: &[(f64, f64)],
    delivered: &mut Option<f64>,
    index: &mut u64,
    on_frame: &mut dyn FnMut(DecodedFrame) -> bool,
) -> Result<u64, EncodeError> {
    let skip_until = *delivered;
    init()?;
    let pipeline = gst::Pipeline::new();
    let queue = make("queue")?;
    let scale = scaler("lanczos")?;
    let caps = caps_filter(i420_caps(size.0, size.1, None))?;
    let sink = gst_app::AppSink::builder()
        .max_buffers(4)
        .sync(false)
        .build();
    let sink_el: gst::Element = sink.clone().upcast();
    let upright = crate::gst_util::upright_progressive()?;
    let mut chain: Vec<&gst::Element> = vec![&queue];
    chain.extend(upright.iter());
    chain.extend([&scale, &caps, &sink_el]);
    let decode = add_decoder(&pipeline, source, None)?;
    pipeline.add_many(chain.iter().copied())?;
    gst::Element::link_many(chain.iter().copied())?;
    // Decode the video stream only: audio and subtitles are never selected, so no branch
    // of this pipeline waits on a stream nobody reads.
    // (A stream whose type is not known yet is left to decodebin3: -1.)
    crate::gst_util::decode_only(&decode, gst::StreamType::VIDEO, 0);
    let video_in = queue.static_pad("sink").expect("queue has a sink pad");
    let linked = Arc::new(Mutex::new(false));
    let weak = pipeline.downgrade();
    decode.connect_pad_added(move |_, pad| {
        // Serialises pad-added calls. The video branch takes a video pad whenever it has none
        // linked: decodebin3 may remove the first pad and expose the stream again after a
        // stream-collection update, and a one-shot flag then sent the stream into a fake sink
        // and the pipeline stalled.
        let _guard = linked.lock().unwrap();
        // By the caps, not the pad's name: a pad made before its stream's type was known is
        // named `src_N`.
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_video = caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"))
            || pad.name().starts_with("video");
        if is_video && !video_in.is_linked() {
            let _ = pad.link(&video_in);
            return;
        }
        // Any other stream runs into a fake sink so that it does not stall the pipeline.
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let Ok(fake) = make("fakesink") else { return };
        fake.set_property("sync", false);
        if pipeline.add(&fake).is_ok() {
            let _ = fake.sync_state_with_parent();
            let _ = pad.link(&fake.static_pad("sink").expect("fakesink has a sink pad"));
        }
    });
    let keys = Arc::new(KeyFrames::default());
    keys.watch(&pipeline);
    let running = Running(pipeline);
    // Ranges closer than SEEK_GAP are decoded straight through; a group further on is reached
    // with an accurate seek, so that the frames between windows are never decoded.
    let mut sorted: Vec<(f64, f64)> = ranges.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut groups: Vec<(f64, f64)> = Vec::new();
    for (a, b) in sorted {
        match groups.last_mut() {
            Some(g) if a - g.1 < SEEK_GAP => g.1 = g.1.max(b),
            _ => groups.push((a, b)),
        }
    }
    let can_seek = !groups.is_empty() && {
        // Preroll in PAUSED so that a seek has a running pipeline to act on.
        running.0.set_state(gst::State::Paused)?;
        let (r, _, _) = running.0.state(gst::ClockTime::from_seconds(30));
        r.is_ok()
    };
    let mut info: Option<gst_video::VideoInfo> = None;
    let mut position = skip_until.unwrap_or(0.0);
    let mut playing = false;
    let segments: Vec<Option<(f64, f64)>> = if groups.is_empty() {
        vec![None]
    } else {
        groups.iter().copied().map(Some).collect()
    };
    for segment in segments {
        if let Some((a, _)) = segment {
            if can_seek && a - position > SEEK_GAP {
                // To the key frame at or before the range's start (a millisecond late, so
                // that rounding never snaps to the key frame before one the range starts on):
                // every frame from there keeps its own timestamp. An accurate seek clips the
                // first frame after it to the seek position, and with B-frames drops the
                // frames of one reorder delay after it.
                let at = gst::ClockTime::from_nseconds(((a.max(0.0) + 0.001) * 1e9).round() as u64);
                keys.clear();
                // A failed seek leaves the pipeline where it was: decoding on still finds the
                // range, only slower.
                let _ = running.0.seek_simple(
                    gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
                    at,
                );
                if !playing {
                    let _ = running.0.state(gst::ClockTime::from_seconds(30));
                }
            }
        }
        if !playing {
            running.0.set_state(gst::State::Playing)?;
            playing = true;
        }
        let mut stopped = false;
        drain(&running.0, &sink, source, &mut |sample| {
            let buffer = sample.buffer().ok_or_else(|| EncodeError::Decode {
                path: source.to_path_buf(),
                detail: "decoder gave a sample without a buffer".into(),
            })?;
            let pts = buffer.pts().map_or(0, |p| p.nseconds());
            let t = pts as f64 / 1e9;
            let key_frame = keys.take(pts);
            // After a stall: the frames an earlier pipeline delivered are not delivered again.
            if skip_until.is_some_and(|s| t <= s + 1e-6) {
                return Ok(true);
            }
            let i = *index;
            *index += 1;
            position = t;
            if let Some((_, b)) = segment {
                if t >= b {
                    return Ok(false);
                }
                if !ranges.iter().any(|&(a, b)| t >= a && t < b) {
                    return Ok(true);
                }
            }
            let picture = sample_picture(&sample, buffer, &mut info).map_err(|detail| {
                EncodeError::Decode {
                    path: source.to_path_buf(),
                    detail,
                }
            })?;
            *delivered = Some(t);
            if on_frame(DecodedFrame {
                index: i,
                seconds: t,
                key_frame,
                picture,
            }) {
                Ok(true)
            } else {
                stopped = true;
                Ok(false)
            }
        })?;
        if stopped || sink.is_eos() {
            break;
        }
    }
    if *index == 0 {
        return Err(EncodeError::NoVideo {
            path: source.to_path_buf(),
        });
    }
    Ok(*index)
}

/// What one trial encode makes.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialSpec {
    /// x264, rav1e or SVT-AV1.
    pub encoder: VideoEncoder,
    pub width: u32,
    pub height: u32,
    /// A CRF (0-50, x264enc's range) or a target bitrate (kbit/s; CBR with a 2 s VBV, as the
    /// encoder's bitrate rungs).
    pub rate: RateControl,
    /// On the encoder's scale: x264 preset 1 (placebo) ... 10 (ultrafast); rav1e speed 0-10;
    /// SVT-AV1 preset 0-13.
    pub speed: u8,
    pub frame_rate: Rational,
    /// The size decoded pictures are scaled back to (bicubic, Catmull-Rom) for comparison.
    pub display: (u32, u32),
    /// Only one decoded picture in this many is scaled back and handed on, the middle one of
    /// each run (k/2, k + k/2, ...; 1: every picture), so that a metric that scores a
    /// subsample saves the scaling of the others. Not the first of each run: the first frame
    /// is a key frame, coded better than the rest, and a subsample holding it (1 in 5 of a
    /// 1-second window's scores against 1 in 25 of its frames) reads high.
    pub score_every: u32,
    /// Frames from one key frame to the next in the rungs the trial stands for: x264 codes
    /// the trial with the rungs' GOP settings (fixed GOPs, no scene-cut key frames), so that a
    /// cut inside a window is coded as a rung codes it. `None` leaves key frames to x264.
    pub gop: Option<u32>,
}

/// Scales `frames` (all one size) to `size` with Lanczos-3, exactly as the encoder scales rungs
/// (`resize`); sample values are never converted between colour matrices.
pub fn scale_pictures(
    frames: &[Picture],
    size: (u32, u32),
    _frame_rate: Rational,
) -> Result<Vec<Picture>, EncodeError> {
    let mut scaler = crate::resize::PlaneScaler::default();
    frames
        .iter()
        .map(|p| {
            scaler
                .picture(p, size.0, size.1)
                .map_err(|detail| EncodeError::Decode {
                    path: "<trial>".into(),
                    detail,
                })
        })
        .collect()
}

/// Pushes `frames` through `chain` (appsrc ! chain ! appsink) and hands every picture that
/// comes out to `on_picture`; errors if fewer or more pictures come out than went in.
fn run_raw(
    frames: &[Picture],
    frame_rate: Rational,
    chain: &[gst::Element],
    what: &'static str,
    on_picture: &mut dyn FnMut(usize, Picture),
) -> Result<(), EncodeError> {
    let Some(first) = frames.first() else {
        return Ok(());
    };
    let input = Input {
        caps: i420_caps(first.width, first.height, Some(frame_rate)),
        max_bytes: 4 * (first.width as u64 * first.height as u64 * 3 / 2),
        count: frames.len(),
    };
    let buffer = |i: usize| buffer_from(&frames[i], i as u64, frame_rate);
    run_chain(&input, &buffer, chain, what, on_picture)
}

/// What enters a [`run_chain`] pipeline: caps, room in the appsrc, and how many buffers.
struct Input {
    caps: gst::Caps,
    max_bytes: u64,
    count: usize,
}

/// Pushes `input.count` buffers made by `buffer(i)` through `chain` (appsrc ! chain !
/// appsink) and hands every picture that comes out to `on_picture`; errors if fewer or more
/// pictures come out than buffers went in.
fn run_chain(
    input: &Input,
    buffer: &(dyn Fn(usize) -> Result<gst::Buffer, EncodeError> + Sync),
    chain: &[gst::Element],
    what: &'static str,
    on_picture: &mut dyn FnMut(usize, Picture),
) -> Result<(), EncodeError> {
    let path = Path::new("<trial>");
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(&input.caps)
        .format(gst::Format::Time)
        .block(true)
        .max_bytes(input.max_bytes)
        .build();
    let sink = gst_app::AppSink::builder()
        .max_buffers(4)
        .sync(false)
        .build();
    let src_el: gst::Element = src.clone().upcast();
    let sink_el: gst::Element = sink.clone().upcast();
    let mut all: Vec<&gst::Element> = vec![&src_el];
    all.extend(chain.iter());
    all.push(&sink_el);
    pipeline.add_many(all.iter().copied())?;
    gst::Element::link_many(all.iter().copied())?;
    let running = Running(pipeline);
    running.0.set_state(gst::State::Playing)?;
    std::thread::scope(|scope| {
        let feeder = scope.spawn(|| -> Result<(), EncodeError> {
            for i in 0..input.count {
                let buffer = match buffer(i) {
                    Ok(b) => b,
                    Err(e) => {
                        // The end of stream makes the drain return.
                        let _ = src.end_of_stream();
                        return Err(e);
                    }
                };
                if src.push_buffer(buffer).is_err() {
                    break;
                }
            }
            let _ = src.end_of_stream();
            Ok(())
        });
        let mut n = 0usize;
        let mut info: Option<gst_video::VideoInfo> = None;
        let r = drain(&running.0, &sink, path, &mut |sample| {
            let buffer = sample
                .buffer()
                .ok_or_else(|| EncodeError::Gst("a sample without a buffer".into()))?;
            let p = sample_picture(&sample, buffer, &mut info).map_err(EncodeError::Gst)?;
            on_picture(n, p);
            n += 1;
            Ok(true)
        });
        // Stopping the pipeline unblocks a feeder still waiting for room in the appsrc
        // (the pipeline failed, or ended early); one that has finished is not affected.
        let _ = running.0.set_state(gst::State::Null);
        let fed = feeder
            .join()
            .unwrap_or_else(|_| Err(EncodeError::Gst("the frame feeder panicked".into())));
        r.and(fed).and_then(|()| {
            if n == input.count {
                Ok(())
            } else {
                Err(EncodeError::Encoder {
                    path: path.to_path_buf(),
                    encoder: what,
                    detail: format!("{} frames in, {n} out", input.count),
                })
            }
        })
    })
}

/// Encodes `frames` (all one size, in display order; scaled to the trial's size with Lanczos-3
/// as the encoder scales, unless already at it) as described by `spec`, decodes the result,
/// scales it to `spec.display` (Catmull-Rom) and calls `on_decoded(index, picture)` for every
/// `spec.score_every`-th frame in order. No step converts sample values between colour matrices. Returns the
/// coded bytes attributed to each input frame (by presentation time).
///
/// One thread; run several trials at once for parallelism.
pub fn trial_encode(
    frames: &[Picture],
    spec: &TrialSpec,
    on_decoded: &mut dyn FnMut(usize, Picture),
) -> Result<Vec<u64>, EncodeError> {
    init()?;
    let scaled;
    let frames = match frames.first() {
        Some(f) if (f.width, f.height) != (spec.width, spec.height) => {
            scaled = scale_pictures(frames, (spec.width, spec.height), spec.frame_rate)?;
            &scaled[..]
        }
        _ => frames,
    };
    match spec.encoder {
        VideoEncoder::Rav1e => return trial_encode_av1(frames, spec, on_decoded),
        #[cfg(feature = "svt-av1")]
        VideoEncoder::SvtAv1 => return trial_encode_svt(frames, spec, on_decoded),
        _ => {}
    }
    let mut chain = Vec::new();
    let decoder = match spec.encoder {
        VideoEncoder::X264 => {
            let enc = X264Settings {
                speed: spec.speed,
                rate: spec.rate,
                gop: spec.gop,
                threads: Some(1),
            }
            .element()?;
            let dec = make("avdec_h264")?;
            dec.set_property("max-threads", 1i32);
            chain.extend([enc, make("h264parse")?, dec.clone()]);
            dec
        }
        other => {
            return Err(EncodeError::InvalidLadder(format!(
                "{} is not in this build of Reel (built without the svt-av1 feature)",
                other.name()
            )))
        }
    };
    // Count coded bytes per frame where the coded stream enters the decoder.
    let bytes = Arc::new(Mutex::new(vec![0u64; frames.len()]));
    let frame_ns = 1e9 * spec.frame_rate.den as f64 / spec.frame_rate.num as f64;
    let counter = bytes.clone();
    decoder
        .static_pad("sink")
        .expect("decoder has a sink pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
            if let Some(gst::PadProbeData::Buffer(b)) = &probe.data {
                let i = b
                    .pts()
                    .map_or(0, |p| (p.nseconds() as f64 / frame_ns).round() as usize);
                let mut c = counter.lock().unwrap();
                let last = c.len().saturating_sub(1);
                c[i.min(last)] += b.size() as u64;
            }
            gst::PadProbeReturn::Ok
        });
    let mut scored = ScoredPictures::new(spec, on_decoded);
    run_raw(frames, spec.frame_rate, &chain, "x264", &mut |i, p| {
        scored.take(i, p)
    })?;
    scored.finish()?;
    let bytes = std::mem::take(&mut *bytes.lock().unwrap());
    Ok(bytes)
}

/// Hands a trial's decoded pictures on: every `spec.score_every`-th (the middle one of each
/// run), scaled to the display size (Catmull-Rom) unless already at it. A scaling failure is
/// kept for [`finish`](Self::finish), as the pictures come out of a callback.
struct ScoredPictures<'a> {
    spec: &'a TrialSpec,
    on_decoded: &'a mut dyn FnMut(usize, Picture),
    up: crate::resize::PlaneScaler,
    failed: Option<String>,
}

impl<'a> ScoredPictures<'a> {
    fn new(spec: &'a TrialSpec, on_decoded: &'a mut dyn FnMut(usize, Picture)) -> Self {
        ScoredPictures {
            spec,
            on_decoded,
            up: crate::resize::PlaneScaler::new(crate::resize::Filter::CatmullRom),
            failed: None,
        }
    }

    fn take(&mut self, i: usize, p: Picture) {
        let every = self.spec.score_every.max(1) as usize;
        if i % every != every / 2 {
            return;
        }
        let (w, h) = self.spec.display;
        if (p.width, p.height) == (w, h) {
            (self.on_decoded)(i, p);
        } else {
            match self.up.picture(&p, w, h) {
                Ok(d) => (self.on_decoded)(i, d),
                Err(e) => {
                    self.failed.get_or_insert(e);
                }
            }
        }
    }

    fn finish(self) -> Result<(), EncodeError> {
        match self.failed {
            Some(detail) => Err(EncodeError::Decode {
                path: "<trial>".into(),
                detail,
            }),
            None => Ok(()),
        }
    }
}

/// The SVT-AV1 trial: SVT-AV1 (one logical processor, the first frame the only key frame)
/// encodes `frames` (already at the trial's size), then libaom's decoder (`av1dec`) decodes
/// the temporal units, whose pictures are scaled to the display size as the H.264 trial's
/// are. The coded bytes are attributed to the frame each temporal unit shows.
#[cfg(feature = "svt-av1")]
fn trial_encode_svt(
    frames: &[Picture],
    spec: &TrialSpec,
    on_decoded: &mut dyn FnMut(usize, Picture),
) -> Result<Vec<u64>, EncodeError> {
    let fail = |detail: String| EncodeError::Encoder {
        path: "<trial>".into(),
        encoder: "svt-av1",
        detail,
    };
    let (Some(first), n) = (frames.first(), frames.len()) else {
        return Ok(Vec::new());
    };
    let (w, h) = (first.width, first.height);
    let settings =
        crate::av1enc::svt_settings(w, h, spec.frame_rate, spec.speed, spec.rate, n as u64, 1)
            .map_err(fail)?;
    let mut encoder = reel_svt_av1::Encoder::new(&settings).map_err(|e| fail(e.to_string()))?;
    let mut units: Vec<reel_svt_av1::Packet> = Vec::with_capacity(n);
    let mut take = |encoder: &mut reel_svt_av1::Encoder| -> Result<(), EncodeError> {
        while let Some(p) = encoder.receive_packet().map_err(|e| fail(e.to_string()))? {
            units.push(p);
        }
        Ok(())
    };
    for (i, picture) in frames.iter().enumerate() {
        let (cw, _) = picture.plane_size(1);
        let svt_picture = reel_svt_av1::Picture {
            planes: [&picture.planes[0], &picture.planes[1], &picture.planes[2]],
            strides: [w as usize, cw as usize, cw as usize],
        };
        encoder
            .send_picture(&svt_picture, i as i64)
            .map_err(|e| fail(e.to_string()))?;
        take(&mut encoder)?;
    }
    encoder.flush().map_err(|e| fail(e.to_string()))?;
    take(&mut encoder)?;
    drop(encoder);
    if units.len() != n {
        return Err(fail(format!("{n} frames in, {} out", units.len())));
    }
    let mut bytes = vec![0u64; n];
    for u in &units {
        if let Some(b) = usize::try_from(u.pts).ok().and_then(|i| bytes.get_mut(i)) {
            *b += u.data.len() as u64;
        }
    }
    let input = Input {
        caps: gst::Caps::builder("video/x-av1")
            .field("stream-format", "obu-stream")
            .field("alignment", "tu")
            .field("width", w as i32)
            .field("height", h as i32)
            .field(
                "framerate",
                gst::Fraction::new(spec.frame_rate.num as i32, spec.frame_rate.den as i32),
            )
            .build(),
        max_bytes: 4 * (u64::from(w) * u64::from(h) * 3 / 2),
        count: n,
    };
    let frame_ns = |i: u64| {
        gst::ClockTime::from_nseconds(
            (u128::from(i) * 1_000_000_000 * u128::from(spec.frame_rate.den)
                / u128::from(spec.frame_rate.num.max(1))) as u64,
        )
    };
    let buffer = |i: usize| -> Result<gst::Buffer, EncodeError> {
        let mut b = gst::Buffer::from_slice(units[i].data.clone());
        let pts = units[i].pts.max(0) as u64;
        let b_mut = b.get_mut().expect("a new buffer is writable");
        b_mut.set_pts(frame_ns(pts));
        b_mut.set_duration(frame_ns(pts + 1) - frame_ns(pts));
        if !units[i].key {
            b_mut.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        Ok(b)
    };
    let chain = [make("av1parse")?, make("av1dec")?];
    let mut scored = ScoredPictures::new(spec, on_decoded);
    run_chain(&input, &buffer, &chain, "svt-av1", &mut |i, p| {
        scored.take(i, p)
    })?;
    scored.finish()?;
    Ok(bytes)
}

/// The AV1 trial: rav1e (one thread, no tiles, the first frame a key frame) encodes `frames`
/// (already at the trial's size); each shown frame's reconstruction, which is what a decoder
/// outputs (rav1e applies no film grain here), is scaled to the display size as the H.264
/// trial's decoded pictures are. The coded bytes are attributed to the frame each temporal
/// unit shows.
fn trial_encode_av1(
    frames: &[Picture],
    spec: &TrialSpec,
    on_decoded: &mut dyn FnMut(usize, Picture),
) -> Result<Vec<u64>, EncodeError> {
    use rav1e::prelude::*;
    let fail = |detail: String| EncodeError::Encoder {
        path: "<trial>".into(),
        encoder: "rav1e",
        detail,
    };
    let (Some(first), n) = (frames.first(), frames.len()) else {
        return Ok(Vec::new());
    };
    let mut enc = crate::av1enc::encoder_config(
        first.width,
        first.height,
        spec.frame_rate,
        spec.speed,
        spec.rate,
    );
    // One key frame, at the start, as a window of the rungs' key-frame cadence starts.
    enc.set_key_frame_interval(n as u64, n as u64);
    let mut ctx: Context<u8> = Config::new()
        .with_encoder_config(enc)
        .with_threads(1)
        .new_context()
        .map_err(|e| fail(e.to_string()))?;
    let mut bytes = vec![0u64; n];
    let mut up = crate::resize::PlaneScaler::new(crate::resize::Filter::CatmullRom);
    let every = spec.score_every.max(1) as usize;
    let mut shown = 0usize;
    let mut take = |packet: Packet<u8>| -> Result<(), EncodeError> {
        let i = packet.input_frameno as usize;
        if let Some(b) = bytes.get_mut(i) {
            *b += packet.data.len() as u64;
        }
        shown += 1;
        if i % every != every / 2 {
            return Ok(());
        }
        let rec = packet
            .rec
            .ok_or_else(|| fail(format!("no reconstruction of frame {i}")))?;
        let (w, h) = (first.width, first.height);
        let mut p = Picture::filled(w, h, 0, 0);
        for (k, plane) in rec.planes.iter().enumerate() {
            let (pw, ph) = p.plane_size(k);
            let (pw, ph) = (pw as usize, ph as usize);
            let stride = plane.cfg.stride;
            let data = plane.data_origin();
            if plane.cfg.width < pw || plane.cfg.height < ph {
                return Err(fail(format!("reconstruction of frame {i} is too small")));
            }
            for (r, row) in p.planes[k].chunks_exact_mut(pw).enumerate().take(ph) {
                row.copy_from_slice(&data[r * stride..r * stride + pw]);
            }
        }
        if (w, h) == spec.display {
            on_decoded(i, p);
        } else {
            on_decoded(
                i,
                up.picture(&p, spec.display.0, spec.display.1)
                    .map_err(fail)?,
            );
        }
        Ok(())
    };
    // Hands every packet rav1e has ready to `take`.
    let drain = |ctx: &mut Context<u8>,
                 take: &mut dyn FnMut(Packet<u8>) -> Result<(), EncodeError>|
     -> Result<(), EncodeError> {
        loop {
            match ctx.receive_packet() {
                Ok(packet) => take(packet)?,
                Err(EncoderStatus::Encoded) => continue,
                Err(EncoderStatus::NeedMoreData) | Err(EncoderStatus::LimitReached) => {
                    return Ok(())
                }
                Err(e) => return Err(fail(e.to_string())),
            }
        }
    };
    for picture in frames {
        let mut frame = ctx.new_frame();
        for (k, plane) in frame.planes.iter_mut().enumerate() {
            let (pw, _) = picture.plane_size(k);
            plane.copy_from_raw_u8(&picture.planes[k], pw as usize, 1);
        }
        ctx.send_frame(frame).map_err(|e| fail(e.to_string()))?;
        drain(&mut ctx, &mut take)?;
    }
    ctx.flush();
    // Flushed: the rest, up to the limit (a frame missing is reported below).
    drain(&mut ctx, &mut take)?;
    if shown != n {
        return Err(fail(format!("{n} frames in, {shown} out")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32, n: u32) -> Vec<Picture> {
        (0..n)
            .map(|t| {
                let mut p = Picture::filled(w, h, 0, 128);
                for y in 0..h {
                    for x in 0..w {
                        p.planes[0][(y * w + x) as usize] = (x * 2 + y + t) as u8;
                    }
                }
                p
            })
            .collect()
    }

    /// Runs a trial of `frames`: each handed-back picture's index and mean absolute luma
    /// difference from its input, and the coded bytes per frame.
    fn round_trip(frames: &[Picture], spec: &TrialSpec) -> (Vec<(usize, f64)>, Vec<u64>) {
        let mut seen = Vec::new();
        let bytes = trial_encode(frames, spec, &mut |i, p| {
            let diff: u64 = p.planes[0]
                .iter()
                .zip(&frames[i].planes[0])
                .map(|(&a, &b)| u64::from(a.abs_diff(b)))
                .sum();
            seen.push((i, diff as f64 / p.planes[0].len() as f64));
        })
        .unwrap();
        (seen, bytes)
    }

    /// A width whose chroma rows GStreamer pads (100 / 2 = 50, stride 52): the pictures reach
    /// x264 in GStreamer's layout, and every one comes back. Packed tightly, x264enc refused
    /// the first frame and the trial waited forever for the feeder (issue 17).
    #[test]
    fn h264_trial_of_a_width_gstreamer_pads() {
        let frames = gradient(100, 64, 10);
        let spec = TrialSpec {
            encoder: VideoEncoder::X264,
            width: 100,
            height: 64,
            rate: RateControl::Quality(20),
            speed: 9,
            frame_rate: Rational::new(25, 1),
            display: (100, 64),
            score_every: 1,
            gop: None,
        };
        let (seen, _) = round_trip(&frames, &spec);
        assert_eq!(
            seen.iter().map(|s| s.0).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert!(seen.iter().all(|s| s.1 < 3.0), "{seen:?}");
    }

    /// A moving gradient through the AV1 trial: every frame comes back once, in order, close
    /// to its input, with the key frame's bytes on frame 0; a subsample hands back the middle
    /// frame of each run.
    #[test]
    fn av1_trial_hands_back_reconstructions_in_order() {
        let (w, h) = (64u32, 48u32);
        let frames = gradient(w, h, 12);
        let spec = TrialSpec {
            encoder: VideoEncoder::Rav1e,
            width: w,
            height: h,
            rate: RateControl::Quality(40),
            speed: 10,
            frame_rate: Rational::new(25, 1),
            display: (w, h),
            score_every: 1,
            gop: None,
        };
        let (seen, bytes) = round_trip(&frames, &spec);
        let order: Vec<usize> = seen.iter().map(|s| s.0).collect();
        assert_eq!(order, (0..12).collect::<Vec<_>>());
        assert!(seen.iter().all(|s| s.1 < 3.0), "{seen:?}");
        assert_eq!(bytes.len(), 12);
        assert!(bytes[0] > bytes[6], "{bytes:?}");
        let every_third = TrialSpec {
            score_every: 3,
            gop: None,
            ..spec
        };
        let mut picked = Vec::new();
        trial_encode(&frames, &every_third, &mut |i, _| picked.push(i)).unwrap();
        assert_eq!(picked, vec![1, 4, 7, 10]);
    }

    /// The SVT-AV1 trial: every frame comes back once, in order, decoded by libaom and close
    /// to its input, with the key frame's bytes on frame 0.
    #[cfg(feature = "svt-av1")]
    #[test]
    fn svt_trial_hands_back_decoded_pictures_in_order() {
        let (w, h) = (128u32, 72u32);
        let frames = gradient(w, h, 20);
        let spec = TrialSpec {
            encoder: VideoEncoder::SvtAv1,
            width: w,
            height: h,
            rate: RateControl::Quality(20),
            speed: 12,
            frame_rate: Rational::new(25, 1),
            display: (w, h),
            score_every: 1,
            gop: None,
        };
        let (seen, bytes) = round_trip(&frames, &spec);
        let order: Vec<usize> = seen.iter().map(|s| s.0).collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>());
        assert!(seen.iter().all(|s| s.1 < 3.0), "{seen:?}");
        assert_eq!(bytes.len(), 20);
        assert!(bytes[0] > bytes[10], "{bytes:?}");
    }
}
