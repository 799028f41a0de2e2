//! Decode once, scale per rung size, encode every rung concurrently: the GStreamer graph of
//! an [`EncodePlan`].
//!
//! ```text
//! decodebin3 ─video─▶ queue ▶ I420 ▶ deinterlace ▶ videoflip ▶ videorate ▶ appsink
//!               │           ── scale thread (resize, one scaler per rung size) ──
//!               │        appsrc (one per size) ▶ tee ┬▶ queue ▶ appsink ▶ AV1 thread
//!               │                                    └▶ queue ▶ x264enc ▶ h264parse ▶ appsink
//!               └─audio─▶ queue ▶ tee ┬▶ queue ▶ audioconvert ▶ audioresample ▶ audiorate ▶ stereo ▶ avenc_aac|opusenc ▶ appsink
//!                                     └▶ ... 5.1 ▶ avenc_aac ▶ appsink
//! ```
//!
//! The plan is made in `plan.rs`, frames are scaled in `scale.rs`, coded buffers become
//! samples in `coded.rs`, x264 is configured in `x264.rs`.

use crate::av1enc::{self, Av1Job, RawFrame};
use crate::coded::{coded_sink, CodedTrack};
use crate::gst_util::{add_decoder, caps_filter, decode_only, init, make};
use crate::plan::{AudioPlan, EncodePlan, RungPlan};
use crate::scale::ScaleState;
use crate::stream::{watch_bus, Event, Feed, Msg, SampleStream, Watch, EVENT_QUEUE};
use crate::timing::{frames_ns, half_frame_ns};
use crate::x264::X264Settings;
use crate::{probe, EncodeError, Ladder};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reel_media::Codec;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Probes `source`, applies `ladder` and starts encoding every rung.
pub fn encode(source: &Path, ladder: &Ladder) -> Result<SampleStream, EncodeError> {
    EncodePlan::new(probe(source)?, ladder)?.start()
}

fn set_queue_limits(q: &gst::Element, buffers: u32) {
    q.set_property("max-size-buffers", buffers);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
}

fn link_chain(pipeline: &gst::Pipeline, elements: &[&gst::Element]) -> Result<(), EncodeError> {
    pipeline.add_many(elements.iter().copied())?;
    gst::Element::link_many(elements.iter().copied())?;
    Ok(())
}

pub(crate) fn start(plan: EncodePlan) -> Result<SampleStream, EncodeError> {
    init()?;
    let path = plan.source.path.clone();
    let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
    let feed = Feed::new(tx);
    let stop = feed.stop.clone();
    for n in &plan.notices {
        feed.event(Event::Notice(n.clone()));
    }
    let started = Instant::now();
    let pipeline = gst::Pipeline::new();
    let decode = add_decoder(&pipeline, &path, plan.source_url.as_deref())?;

    // A chunk's frames are placed on the title's timeline by this origin (see `seek_to_range`).
    let origin = Arc::new(AtomicI64::new(NO_ORIGIN));
    // Without a video rung (an audio rendition encoded again alone), the video is not decoded;
    // a chunk decodes its video alone (the audio is encoded once for the whole title).
    let mut after_eos = Vec::new();
    if plan.range.is_some() {
        if !plan.audio.is_empty() {
            return Err(EncodeError::Gst(
                "a chunk of a title encodes video only: its audio is encoded whole".into(),
            ));
        }
        decode_only(&decode, gst::StreamType::VIDEO, 0);
    }
    let video_in = if plan.rungs.is_empty() {
        // (Before every stream was named, an audio unit of a 60-s 720p title decoded the
        // video too: 5.8 s alone, 0.85 s since.)
        let stream = plan.audio.first().map_or(0, |a| a.stream);
        decode_only(&decode, gst::StreamType::AUDIO, stream);
        None
    } else {
        Some(video_branch(
            &pipeline,
            &plan,
            &feed,
            started,
            &path,
            &origin,
            &mut after_eos,
        )?)
    };

    if let Some(pad) = &video_in {
        crate::fault::on_decoded_video(pad);
    }
    let audio_in = audio_branches(&pipeline, &plan.audio, &feed, started, &path)?;

    // Link decoded streams as they appear; anything we do not encode goes to a fakesink.
    let pipeline_weak = pipeline.downgrade();
    let linked = Arc::new(Mutex::new((false, false)));
    decode.connect_pad_added(move |_, pad| {
        let name = pad.name();
        // Serialise pad-added calls; a branch takes a pad whenever it has none linked, so a
        // stream that decodebin3 exposes again (after a stream-collection update removed
        // its first pad) still reaches the encoders instead of a fake sink.
        let _guard = linked.lock().unwrap();
        // By the caps as well as the name: a pad made before its stream's type was known is
        // named `src_N`.
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let media = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let is = |kind: &str| name.starts_with(kind) || media.starts_with(&format!("{kind}/"));
        let target = if is("video") && video_in.as_ref().is_some_and(|v| !v.is_linked()) {
            video_in.clone()
        } else if is("audio") && audio_in.as_ref().is_some_and(|a| !a.is_linked()) {
            audio_in.clone()
        } else {
            None
        };
        let target = match target {
            Some(t) => t,
            None => {
                let Some(pipeline) = pipeline_weak.upgrade() else {
                    return;
                };
                let Ok(fake) = make("fakesink") else { return };
                fake.set_property("sync", false);
                if pipeline.add(&fake).is_err() {
                    return;
                }
                let _ = fake.sync_state_with_parent();
                fake.static_pad("sink").expect("fakesink has a sink pad")
            }
        };
        let _ = pad.link(&target);
    });

    if let Some(range) = plan.range {
        seek_to_range(&pipeline, range, plan.frame_rate, &path, &origin)?;
    }
    let workers = vec![watch_bus(&pipeline, feed.clone(), path.clone(), after_eos)];
    let watch = Watch::new(&path, "encoding", &feed);
    drop(feed);
    SampleStream::start(rx, stop, pipeline, workers, watch)
}

/// The appsink the decoded, upright, constant-rate video leaves GStreamer through.
const DECODED_SINK: &str = "decoded";

/// `origin` before a chunk's preroll has set it.
pub(crate) const NO_ORIGIN: i64 = i64::MIN;

/// How long a chunk's pipeline may take to decode its first frame (preroll) before its seek.
/// One frame takes well under a second. (With `uridecodebin3`, about one pipeline in thirty
/// never got there; see [`add_decoder`]. A stall that still happens fails the unit, and the
/// pool runs it again: the bound is what a stall costs.)
const PREROLL_SECONDS: u64 = 10;

/// Decoding past a chunk's end by this much lets the last frames out of a decoder that
/// reorders (B-frames) and of `videorate`; the frames past the end are dropped.
const RANGE_TAIL_NS: u64 = 1_000_000_000;

/// Prerolls `pipeline` and seeks it to the key frame at or before the range's first frame,
/// stopping a little after its last; the scale stage keeps exactly the range's frames.
///
/// The title's timeline is the one a whole-title decode sees: running time in the segment the
/// demuxer starts with, so 0 is that segment's start. The preroll frame still carries that
/// segment, and its start (a buffer timestamp) becomes `origin`; after the seek, a frame's
/// place in the title is its timestamp minus `origin`, whatever segment the seek made (a
/// transport stream whose timestamps start at 1.48 s maps to the same frames either way).
fn seek_to_range(
    pipeline: &gst::Pipeline,
    range: crate::FrameRange,
    frame_rate: reel_media::Rational,
    path: &Path,
    origin: &AtomicI64,
) -> Result<(), EncodeError> {
    let failed = |detail: String| EncodeError::Decode {
        path: path.to_path_buf(),
        detail,
    };
    let ns = |frame: u64| frames_ns(frame, frame_rate);
    pipeline.set_state(gst::State::Paused)?;
    let (result, current, _) = pipeline.state(gst::ClockTime::from_seconds(PREROLL_SECONDS));
    // A pipeline that failed (rather than took too long) says why on its bus.
    let error = pipeline
        .bus()
        .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]));
    if let Some(gst::MessageView::Error(err)) = error.as_ref().map(|m| m.view()) {
        return Err(crate::gst_util::bus_error(path, err));
    }
    if result.is_err() || current != gst::State::Paused {
        return Err(failed(format!(
            "the chunk at frames {}..{} did not start decoding within {PREROLL_SECONDS} s",
            range.start, range.end
        )));
    }
    let decoded = pipeline
        .by_name(DECODED_SINK)
        .ok_or_else(|| EncodeError::Gst("the decoded video sink is missing".into()))?;
    let preroll = decoded
        .downcast_ref::<gst_app::AppSink>()
        .and_then(|sink| sink.try_pull_preroll(gst::ClockTime::ZERO));
    let segment = preroll
        .as_ref()
        .and_then(|s| {
            s.segment()
                .and_then(|seg| seg.downcast_ref::<gst::ClockTime>())
        })
        .ok_or_else(|| failed("the first decoded frame has no time segment".into()))?;
    // Running time 0 is at start - base (an edit list's empty edit makes base positive, so
    // this can be before 0).
    let at = |t: Option<gst::ClockTime>| t.map_or(0, |t| t.nseconds() as i64);
    origin.store(at(segment.start()) - at(segment.base()), Ordering::Relaxed);
    // The title's last chunk runs on to the source's end.
    let (stop_type, stop) = match range.exact {
        true => (
            gst::SeekType::Set,
            gst::ClockTime::from_nseconds(ns(range.end).saturating_add(RANGE_TAIL_NS)),
        ),
        false => (gst::SeekType::None, gst::ClockTime::ZERO),
    };
    // Sent up the decoded branch alone: the rungs' branches start at appsrcs, which cannot
    // seek, and have seen no frame yet.
    let seek = gst::event::Seek::new(
        1.0,
        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
        gst::SeekType::Set,
        gst::ClockTime::from_nseconds(ns(range.first())),
        stop_type,
        stop,
    );
    if !decoded.send_event(seek) {
        return Err(failed(format!(
            "the source cannot seek to the chunk at frames {}..{}",
            range.start, range.end
        )));
    }
    Ok(())
}

/// The audio renditions: one decoded audio stream, restamped and given channel positions
/// once, then a tee with one branch per rendition (stereo downmix, 5.1). Returns the pad
/// the decoded audio goes into, or `None` when no audio is encoded.
fn audio_branches(
    pipeline: &gst::Pipeline,
    plans: &[AudioPlan],
    feed: &Feed,
    started: Instant,
    path: &Path,
) -> Result<Option<gst::Pad>, EncodeError> {
    if plans.is_empty() {
        return Ok(None);
    }
    let q = make("queue")?;
    let tee = make("tee")?;
    link_chain(pipeline, &[&q, &tee])?;
    for a in plans {
        audio_rendition(pipeline, &tee, a, feed, started, path)?;
    }
    let audio_in = q.static_pad("sink").expect("queue has a sink pad");
    crate::gst_util::position_unpositioned_channels(&audio_in);
    crate::gst_util::stamp_running_time(&audio_in);
    Ok(Some(audio_in))
}

/// One audio rendition, fed by `tee`: converted to its channel layout (downmixed to stereo,
/// or kept as 5.1) and rate, then encoded into a coded-sample sink.
fn audio_rendition(
    pipeline: &gst::Pipeline,
    tee: &gst::Element,
    a: &AudioPlan,
    feed: &Feed,
    started: Instant,
    path: &Path,
) -> Result<(), EncodeError> {
    let q = make("queue")?;
    // Audio that starts after the presentation does gets silence from 0, and gaps in it are
    // filled, so that it starts with the video and stays in step with it.
    let rate = make("audiorate")?;
    let convert = make("audioconvert")?;
    let resample = make("audioresample")?;
    let mut raw_caps = gst::Caps::builder("audio/x-raw")
        .field("rate", a.sample_rate as i32)
        .field("channels", a.channels as i32);
    if a.channels > 2 {
        raw_caps = raw_caps.field(
            "channel-mask",
            gst::Bitmask::new(gstreamer_audio::AudioChannelPosition::fallback_mask(
                a.channels,
            )),
        );
    }
    let caps = caps_filter(raw_caps.build())?;
    let sink = crate::gst_util::free_running_appsink(16);
    let sink_el: gst::Element = sink.clone().upcast();
    let bps = a.bitrate_kbps.saturating_mul(1000);
    let encoder: Vec<gst::Element> = match a.codec {
        Codec::Aac => {
            let enc = make("avenc_aac")?;
            enc.set_property("bitrate", bps as i32);
            let raw = caps_filter(
                gst::Caps::builder("audio/mpeg")
                    .field("mpegversion", 4i32)
                    .field("stream-format", "raw")
                    .build(),
            )?;
            vec![enc, make("aacparse")?, raw]
        }
        Codec::Opus => {
            let enc = make("opusenc")?;
            enc.set_property("bitrate", bps as i32);
            vec![enc]
        }
        other => {
            return Err(EncodeError::InvalidLadder(format!(
                "{} is not an audio codec",
                other.name()
            )))
        }
    };
    let mut chain: Vec<&gst::Element> = vec![&q, &convert, &resample, &rate, &caps];
    chain.extend(encoder.iter());
    chain.push(&sink_el);
    link_chain(pipeline, &chain)?;
    tee.link(&q)?;
    coded_sink(
        &sink,
        CodedTrack {
            path: path.to_path_buf(),
            track_id: a.track_id,
            name: a.name.clone(),
            timescale: a.sample_rate,
            frame_duration: None,
            video: None,
            language: a.language.clone(),
            role: a.role,
            title: a.title.clone(),
            frames_total: None,
        },
        feed.clone(),
        started,
    );
    Ok(())
}

/// The video half of an encode: the decoded frames made upright, progressive, constant-rate
/// and I420 once, scaled once per rung size, and fed to every rung's encoder. Returns the pad
/// the decoder's video goes to.
fn video_branch(
    pipeline: &gst::Pipeline,
    plan: &EncodePlan,
    feed: &Feed,
    started: Instant,
    path: &Path,
    origin: &Arc<AtomicI64>,
    after_eos: &mut Vec<std::thread::JoinHandle<()>>,
) -> Result<gst::Pad, EncodeError> {
    let (input, decoded) = decoded_video(pipeline, plan)?;
    let mut sizes: Vec<SizeSource> = Vec::new();
    for rung in &plan.rungs {
        let size = (rung.width, rung.height);
        let at = match sizes.iter().position(|s| s.size == size) {
            Some(at) => at,
            None => {
                sizes.push(SizeSource::new(pipeline, size)?);
                sizes.len() - 1
            }
        };
        let rung_in = match rung.codec {
            Codec::Av1 => av1_rung(pipeline, plan, rung, feed, started, path, after_eos)?,
            Codec::H264 => h264_rung(pipeline, plan, rung, feed, started, path)?,
            other => {
                return Err(EncodeError::InvalidLadder(format!(
                    "{} is not a video codec",
                    other.name()
                )))
            }
        };
        let tee_pad = sizes[at]
            .tee
            .request_pad_simple("src_%u")
            .ok_or_else(|| EncodeError::Gst("tee gave no pad".into()))?;
        tee_pad
            .link(&rung_in)
            .map_err(|e| EncodeError::Gst(format!("linking rung {}: {e:?}", rung.name)))?;
    }
    scale_into_sizes(&decoded, sizes, plan, feed, path, origin.clone());
    Ok(input)
}

/// The shared video path: decoded once, made upright and progressive, constant-rate and I420
/// once, then out of GStreamer through an appsink. Returns its input pad and the appsink.
fn decoded_video(
    pipeline: &gst::Pipeline,
    plan: &EncodePlan,
) -> Result<(gst::Pad, gst_app::AppSink), EncodeError> {
    let vqueue = make("queue")?;
    set_queue_limits(&vqueue, 4);
    let rate = make("videorate")?;
    let rate_caps = caps_filter(
        gst::Caps::builder("video/x-raw")
            .field(
                "framerate",
                gst::Fraction::new(plan.frame_rate.num as i32, plan.frame_rate.den as i32),
            )
            .build(),
    )?;
    let raw_sink = crate::gst_util::free_running_appsink(2);
    raw_sink.set_property("name", DECODED_SINK);
    if plan.range.is_some() {
        // A chunk prerolls before its seek: the pipeline reaches PAUSED on a decoded frame.
        raw_sink.set_property("async", true);
    }
    let raw_el: gst::Element = raw_sink.clone().upcast();
    let upright = crate::gst_util::upright_progressive()?;
    let mut chain: Vec<&gst::Element> = vec![&vqueue];
    chain.extend(upright.iter());
    chain.extend([&rate, &rate_caps, &raw_el]);
    link_chain(pipeline, &chain)?;
    Ok((
        vqueue.static_pad("sink").expect("queue has a sink pad"),
        raw_sink,
    ))
}

/// Where the frames of one rung size enter GStreamer again: an appsrc, and a tee to the
/// rungs of that size (a ladder often has two bitrates at one height).
struct SizeSource {
    size: (u32, u32),
    src: gst_app::AppSrc,
    tee: gst::Element,
}

impl SizeSource {
    fn new(pipeline: &gst::Pipeline, size: (u32, u32)) -> Result<Self, EncodeError> {
        let frame_bytes = u64::from(size.0) * u64::from(size.1) * 3 / 2;
        let src = gst_app::AppSrc::builder()
            .format(gst::Format::Time)
            .is_live(false)
            .block(true)
            .max_bytes(frame_bytes * 3)
            .build();
        let src_el: gst::Element = src.clone().upcast();
        let tee = make("tee")?;
        link_chain(pipeline, &[&src_el, &tee])?;
        Ok(SizeSource { size, src, tee })
    }
}

/// A rung's queue and the appsink its encoded (or, for AV1, raw) frames leave through.
fn rung_queue_and_sink() -> Result<(gst::Element, gst_app::AppSink), EncodeError> {
    let q = make("queue")?;
    set_queue_limits(&q, 3);
    // No preroll: a sink that prerolled on its first frame would block the tee while an
    // encoder with look-ahead (x264) on another branch still waits for frames.
    Ok((q, crate::gst_util::free_running_appsink(2)))
}

/// SVT-AV1's logical processors per rung in a chunk's encode. Units run several at a time and
/// their rungs beside each other, which keeps the cores busy; an encoder sized for every core
/// in each of them only multiplies threads and buffers. (SVT-AV1's output does not depend on
/// its thread count, unlike x264's: see `CHUNK_X264_THREADS`.)
const CHUNK_SVT_THREADS: u32 = 1;

/// SVT-AV1's logical processors for a rung: one in a chunk's encode (`CHUNK_SVT_THREADS`),
/// else the rung's share of the machine's cores by pixels among the ladder's rungs.
fn svt_threads(plan: &EncodePlan, rung: &RungPlan) -> u32 {
    if plan.range.is_some() {
        return CHUNK_SVT_THREADS;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let pixels = |r: &RungPlan| u64::from(r.width) * u64::from(r.height);
    let ladder: u64 = plan.rungs.iter().map(pixels).sum();
    share_of_cores(cores, pixels(rung), ladder)
}

/// `cores` shared by pixels: a rung of `pixels` in a ladder of `ladder` pixels gets its
/// share, rounded down, at least one. Each SVT-AV1 encoder sized for every core (its default)
/// runs all rungs' thread pools against each other: on 2 cores a 4-rung 720p ladder then
/// took 7% longer, with 55% more system time and 180 MB more memory, for identical output.
fn share_of_cores(cores: u64, pixels: u64, ladder: u64) -> u32 {
    let share = cores * pixels / ladder.max(1);
    share.clamp(1, cores.max(1)) as u32
}

/// An AV1 rung: scaled frames leave GStreamer for an AV1 encoder's thread (rav1e or
/// SVT-AV1). Returns the rung's input pad.
fn av1_rung(
    pipeline: &gst::Pipeline,
    plan: &EncodePlan,
    rung: &RungPlan,
    feed: &Feed,
    started: Instant,
    path: &Path,
    after_eos: &mut Vec<std::thread::JoinHandle<()>>,
) -> Result<gst::Pad, EncodeError> {
    let (q, sink) = rung_queue_and_sink()?;
    let sink_el: gst::Element = sink.clone().upcast();
    link_chain(pipeline, &[&q, &sink_el])?;
    let (ftx, frx) = crossbeam_channel::bounded::<RawFrame>(2);
    let ftx_eos = ftx.clone();
    // The AV1 encoder never sees a chunk's lead-in (see `FrameRange`): its first frame is the chunk's.
    let lead_in = plan.range.map_or(0, |r| r.lead_in);
    let lead_in_ns = i128::from(frames_ns(lead_in, plan.frame_rate));
    let half_frame_ns = i128::from(half_frame_ns(plan.frame_rate));
    let (stop, stop_eos) = (feed.stop.clone(), feed.stop.clone());
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let pts = sample
                    .buffer()
                    .and_then(|b| crate::gst_util::running_ns(&sample, b.pts()));
                if lead_in > 0 && pts.is_some_and(|t| t < lead_in_ns - half_frame_ns) {
                    return Ok(gst::FlowSuccess::Ok);
                }
                hand_over(&ftx, RawFrame::Frame(sample), &stop)
            })
            .eos(move |_| {
                let _ = hand_over(&ftx_eos, RawFrame::Eos, &stop_eos);
            })
            .build(),
    );
    after_eos.push(av1enc::spawn(
        Av1Job {
            path: path.to_path_buf(),
            track_id: rung.track_id,
            name: rung.name.clone(),
            width: rung.width,
            height: rung.height,
            frame_rate: plan.frame_rate,
            timescale: plan.timescale,
            frame_duration: plan.frame_duration,
            keyframe_frames: plan.keyframe_frames,
            encoder: rung.encoder,
            rate: rung.rate,
            speed: rung.speed,
            threads: svt_threads(plan, rung),
            frames_total: Some(plan.frames_total),
        },
        frx,
        feed.clone(),
        started,
    ));
    Ok(q.static_pad("sink").expect("queue has a sink pad"))
}

/// Hands `frame` to an AV1 rung's thread, waiting while its queue is full, but never once
/// the session stops: this runs on a streaming thread, which the pipeline's stop waits for,
/// and the encoder thread may be gone or stuck.
fn hand_over(
    to: &crossbeam_channel::Sender<RawFrame>,
    mut frame: RawFrame,
    stop: &AtomicBool,
) -> Result<gst::FlowSuccess, gst::FlowError> {
    loop {
        match to.send_timeout(frame, Duration::from_millis(200)) {
            Ok(()) => return Ok(gst::FlowSuccess::Ok),
            Err(crossbeam_channel::SendTimeoutError::Timeout(f))
                if !stop.load(Ordering::Relaxed) =>
            {
                frame = f
            }
            Err(_) => return Err(gst::FlowError::Flushing),
        }
    }
}

/// x264's threads per rung in a chunk's encode: one, so that a unit has the same bytes on
/// every machine and in every run. With frame threads, x264's rate control and VBV estimate
/// the frames still being encoded, and the result depends on timing: two runs of the same
/// 4-s chunk at 4 threads gave different bytes, at 1 thread the same. Units run several at a
/// time (and rungs beside each other), which keeps the cores busy; a whole-title encode lets
/// x264 use every core instead.
const CHUNK_X264_THREADS: u32 = 1;

/// An H.264 rung: x264 (High profile, closed GOPs of the plan's key-frame interval), then
/// length-prefixed access units into a coded-sample sink. Returns the rung's input pad.
fn h264_rung(
    pipeline: &gst::Pipeline,
    plan: &EncodePlan,
    rung: &RungPlan,
    feed: &Feed,
    started: Instant,
    path: &Path,
) -> Result<gst::Pad, EncodeError> {
    let (q, sink) = rung_queue_and_sink()?;
    let sink_el: gst::Element = sink.clone().upcast();
    let enc = X264Settings {
        speed: rung.speed,
        rate: rung.rate,
        gop: Some(plan.keyframe_frames as u32),
        threads: plan.range.map(|_| CHUNK_X264_THREADS),
    }
    .element()?;
    let profile = caps_filter(
        gst::Caps::builder("video/x-h264")
            .field("profile", "high")
            .build(),
    )?;
    let parse = make("h264parse")?;
    let avc = caps_filter(
        gst::Caps::builder("video/x-h264")
            .field("stream-format", "avc")
            .field("alignment", "au")
            .build(),
    )?;
    link_chain(pipeline, &[&q, &enc, &profile, &parse, &avc, &sink_el])?;
    if let Some(range) = plan.range.filter(|r| r.lead_in > 0) {
        force_key_frame_at(&enc, range.lead_in, plan.frame_rate);
    }
    coded_sink(
        &sink,
        CodedTrack {
            path: path.to_path_buf(),
            track_id: rung.track_id,
            name: rung.name.clone(),
            timescale: plan.timescale,
            frame_duration: Some(plan.frame_duration),
            video: Some((rung.width, rung.height, plan.frame_rate)),
            language: "und".into(),
            role: Default::default(),
            title: None,
            frames_total: Some(plan.frames_total),
        },
        feed.clone(),
        started,
    );
    Ok(q.static_pad("sink").expect("queue has a sink pad"))
}

/// Makes `enc` (x264enc) code frame `frame` of its input (a chunk's start, after its lead-in)
/// as a key frame: a force-key-unit event goes in just before that frame, in the stream.
/// (An upstream event with a running time does not do: x264enc moves its input by 1,000
/// hours to keep decode times positive, so every frame is "after" any time we could name.)
fn force_key_frame_at(enc: &gst::Element, frame: u64, frame_rate: reel_media::Rational) {
    let at_ns = i128::from(frames_ns(frame, frame_rate));
    let half_frame_ns = i128::from(half_frame_ns(frame_rate));
    let pad = enc.static_pad("sink").expect("x264enc has a sink pad");
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
            return gst::PadProbeReturn::Ok;
        };
        if (i128::from(pts.nseconds()) - at_ns).abs() > half_frame_ns {
            return gst::PadProbeReturn::Ok;
        }
        let event = gstreamer_video::DownstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        pad.send_event(event);
        gst::PadProbeReturn::Remove
    });
}

/// Scales every decoded frame to each rung size (`resize`, SIMD Lanczos-3) and pushes it into
/// that size's appsrc. Scaling runs on the streaming thread that delivers the decoded frames
/// (decoding runs on the decoder's own threads); a full appsrc blocks it, so memory stays
/// bounded.
fn scale_into_sizes(
    decoded: &gst_app::AppSink,
    sizes: Vec<SizeSource>,
    plan: &EncodePlan,
    feed: &Feed,
    path: &Path,
    origin: Arc<AtomicI64>,
) {
    let outputs: Vec<((u32, u32), gst_app::AppSrc)> =
        sizes.into_iter().map(|s| (s.size, s.src)).collect();
    let state = Arc::new(Mutex::new(ScaleState::new(
        outputs,
        plan.still_at,
        plan.thumbnails,
        plan.frame_rate,
        plan.range,
        origin,
        feed.clone(),
    )));
    let state_eos = state.clone();
    let feed = feed.clone();
    let path = path.to_path_buf();
    decoded.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                match state.push(&sample) {
                    Ok(true) => Ok(gst::FlowSuccess::Ok),
                    Ok(false) => Err(gst::FlowError::Flushing),
                    Err(detail) => {
                        feed.send(Msg::Error(EncodeError::Decode {
                            path: path.clone(),
                            detail,
                        }));
                        Err(gst::FlowError::Error)
                    }
                }
            })
            .eos(move |_| state_eos.lock().unwrap_or_else(|e| e.into_inner()).finish())
            .build(),
    );
}

#[cfg(test)]
mod tests {
    use super::share_of_cores;
    use crate::{Event, Ladder};
    use std::time::Duration;

    /// A session dropped in the middle, its decode far ahead of slow rungs (the decoded
    /// frames' callback waiting for room in a full appsrc), stops within a bound. Stopping
    /// the pipeline without a flush first waited for ever, in one run of a few, whenever the
    /// decoded frames' sink was stopped before the rungs' sinks: a unit that failed half-way
    /// then held its worker for good.
    #[test]
    fn a_session_dropped_mid_stream_stops() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.mp4");
        let made = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=25",
            ])
            .args([
                "-t",
                "10",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "25",
            ])
            .arg(&source)
            .status()
            .expect("ffmpeg (scripts/setup.sh installs it)");
        assert!(made.success());
        // Slow rungs at full size: the decode runs ahead and fills every queue.
        let ladder: Ladder = toml::from_str(
            "[[rung]]\ncodec = 'h264'\nheight = 720\nbitrate = 3000\nspeed = 3\n\
             [[rung]]\ncodec = 'h264'\nheight = 540\nbitrate = 2000\nspeed = 3\n",
        )
        .unwrap();
        for round in 0..3 {
            let mut stream = super::encode(&source, &ladder).unwrap();
            let first = stream.find(|e| matches!(e, Ok(Event::Sample { .. })));
            assert!(first.is_some(), "round {round}: no sample");
            std::thread::sleep(Duration::from_millis(300));
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                drop(stream);
                let _ = tx.send(());
            });
            rx.recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("round {round}: the dropped session never stopped"));
        }
    }

    /// Pixels of 720p, 480p, 360p and 240p rungs.
    const LADDER: [u64; 4] = [1280 * 720, 854 * 480, 640 * 360, 426 * 240];

    fn shares(cores: u64) -> Vec<u32> {
        let total = LADDER.iter().sum();
        LADDER
            .iter()
            .map(|&p| share_of_cores(cores, p, total))
            .collect()
    }

    #[test]
    fn svt_av1_rungs_share_the_cores_by_pixels() {
        assert_eq!(shares(2), [1, 1, 1, 1]);
        assert_eq!(shares(16), [8, 3, 2, 1]);
        assert_eq!(shares(64), [35, 15, 8, 3]);
        assert_eq!(share_of_cores(8, 100, 100), 8);
        assert_eq!(share_of_cores(1, 0, 0), 1);
    }
}
