//! Decode once, scale per rung, encode every rung concurrently.
//!
//! ```text
//! uridecodebin3 ─video─▶ queue ▶ videorate ▶ videoconvert(I420) ▶ tee ┬▶ queue ▶ videoscale ▶ tee ┬▶ queue ▶ appsink ▶ rav1e thread
//!               │                                     (one scaler per rung size) │                    └▶ queue ▶ x264enc ▶ h264parse ▶ appsink
//!               │                                                                └▶ ...
//!               └─audio─▶ queue ▶ audioconvert ▶ audioresample(48 kHz) ▶ avenc_aac|opusenc ▶ appsink
//! ```

use crate::av1enc::{self, Av1Job, RawFrame};
use crate::gst_util::{file_uri, init, make};
use crate::stream::{watch_bus, Event, Feed, Msg, SampleStream, Watch, EVENT_QUEUE};
use crate::timing::{ns_to_ticks, snap, video_timescale};
use crate::{probe, EncodeError, Ladder, MediaInfo, RateControl, Rung};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reel_media::{
    AudioParams, AudioSpecificConfig, AvcConfig, Codec, CodecConfig, EncodedSample, OpusConfig,
    Rational, TrackInfo, VideoParams,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One video rendition as it will be encoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RungPlan {
    pub track_id: u32,
    pub name: String,
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    pub rate: RateControl,
    /// rav1e speed preset (AV1) or x264 preset index 1-10 (H.264; 10 = ultrafast).
    pub speed: u8,
}

/// An audio rendition as it will be encoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AudioPlan {
    pub track_id: u32,
    /// `audio` (stereo, or fewer channels), `audio_51` (5.1).
    pub name: String,
    pub codec: Codec,
    pub bitrate_kbps: u32,
    pub channels: u32,
    pub sample_rate: u32,
    pub language: String,
}

/// A ladder applied to one source: sizes, timescales and the key frame cadence.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EncodePlan {
    pub source: MediaInfo,
    pub frame_rate: Rational,
    /// Video timescale and frame duration in it.
    pub timescale: u32,
    pub frame_duration: u32,
    /// Frames between forced key frames (the same in every rung).
    pub keyframe_frames: u64,
    pub frames_total: u64,
    pub rungs: Vec<RungPlan>,
    /// The audio renditions from the source's first audio stream: stereo (or mono) first,
    /// then 5.1 when the source has it and the ladder asks for it.
    pub audio: Vec<AudioPlan>,
    /// Why rungs or streams were left out.
    pub notices: Vec<String>,
    /// Hand this decoded frame (counted from 0 at the output frame rate) to the caller as an
    /// [`Event::Still`], e.g. for a poster, without a second decode. `None` by default.
    pub still_at: Option<u64>,
}

/// `x` rounded to the nearest even number of pixels, at least 2 (4:2:0 needs even sizes). The
/// ladder analysis sizes its trials with it, so trials and rungs agree.
pub fn even(x: f64) -> u32 {
    (((x / 2.0).round() as u32) * 2).max(2)
}

/// x264enc's largest `bitrate`: in quality mode, no VBV cap in practice.
pub(crate) const X264_UNCAPPED_KBPS: u32 = 2_048_000;

pub(crate) const X264_PRESETS: [&str; 10] = [
    "placebo",
    "veryslow",
    "slower",
    "slow",
    "medium",
    "fast",
    "faster",
    "veryfast",
    "superfast",
    "ultrafast",
];

impl EncodePlan {
    /// Applies `ladder` to the probed source.
    pub fn new(source: MediaInfo, ladder: &Ladder) -> Result<Self, EncodeError> {
        ladder.validate()?;
        let path = source.path.clone();
        let video = source
            .video()
            .ok_or_else(|| EncodeError::NoVideo { path: path.clone() })?
            .clone();
        if video.frame_rate.is_zero() {
            return Err(EncodeError::Unsupported {
                path,
                detail: "the video stream has no constant frame rate (a still image or VFR)".into(),
            });
        }
        if video.width < 16 || video.height < 16 {
            return Err(EncodeError::Unsupported {
                path,
                detail: format!(
                    "video is {}x{}, smaller than 16x16",
                    video.width, video.height
                ),
            });
        }
        if let Some(detail) = video.unsupported() {
            return Err(EncodeError::Unsupported { path, detail });
        }
        let frame_rate = video.frame_rate;
        let (timescale, frame_duration) = video_timescale(frame_rate);
        let keyframe_frames =
            ((ladder.keyframe_interval * frame_rate.as_f64()).round() as u64).max(1);
        let mut notices = Vec::new();
        let dar = video.display_aspect();
        let mut rungs: Vec<RungPlan> = Vec::new();
        let height = video.upright_height();
        for r in rungs_for_source(&ladder.rungs, height, &mut notices) {
            rungs.push(Self::rung_plan(&r, height, dar)?);
        }
        for (i, r) in rungs.iter_mut().enumerate() {
            r.track_id = i as u32 + 1;
        }
        // Rung names become file names: make them unique (a 720p AV1 and a 720p H.264 rung).
        for i in 0..rungs.len() {
            if rungs[..i].iter().any(|o| o.name == rungs[i].name) {
                let n = format!("{}_{}", rungs[i].name, rungs[i].codec.name());
                rungs[i].name = if rungs[..i].iter().any(|o| o.name == n) {
                    format!("{n}_{}", rungs[i].track_id)
                } else {
                    n
                };
            }
        }
        let audio = audio_plans(ladder.audio.as_ref(), source.audio(), rungs.len() as u32);
        if ladder.audio.is_some() && source.audio().is_none() {
            notices.push("the source has no audio: no audio track".into());
        }
        let frames_total = (source.duration * frame_rate.as_f64()).round() as u64;
        Ok(Self {
            source,
            frame_rate,
            timescale,
            frame_duration,
            keyframe_frames,
            frames_total,
            rungs,
            audio,
            notices,
            still_at: None,
        })
    }

    fn rung_plan(r: &crate::Rung, src_height: u32, dar: f64) -> Result<RungPlan, EncodeError> {
        let height = even(f64::from(r.height.min(src_height)));
        let width = match r.width {
            Some(w) => even(f64::from(w)),
            None => even(f64::from(height) * dar),
        };
        let name = if r.name.is_empty() {
            format!("{height}p")
        } else {
            r.name.clone()
        };
        Ok(RungPlan {
            track_id: 0,
            name,
            codec: r.codec,
            width,
            height,
            rate: r.rate_control()?,
            speed: r
                .speed
                .unwrap_or(if r.codec == Codec::Av1 { 10 } else { 8 }),
        })
    }

    /// Starts encoding. The returned stream yields the tracks and their samples.
    pub fn start(self) -> Result<SampleStream, EncodeError> {
        start(self)
    }
}

/// Channels of the surround rendition (5.1), and its bitrate as a multiple of the stereo one.
const SURROUND_CHANNELS: u32 = 6;
const SURROUND_BITRATE_FACTOR: u32 = 3;

/// The audio renditions of `spec` for the source's audio stream `source`, with track IDs from
/// `first_id + 1`: the stereo one (or mono, for a mono source), and a 5.1 one for a source
/// of six channels or more when `spec.surround` and the codec is AAC.
fn audio_plans(
    spec: Option<&crate::AudioSpec>,
    source: Option<&crate::AudioStream>,
    first_id: u32,
) -> Vec<AudioPlan> {
    let (Some(spec), Some(a)) = (spec, source) else {
        return Vec::new();
    };
    let language = a
        .language
        .as_deref()
        .and_then(reel_media::language::iso639_2t)
        .unwrap_or_else(|| "und".into());
    let plan = |name: &str, channels: u32, bitrate_kbps: u32, id: u32| AudioPlan {
        track_id: id,
        name: name.into(),
        codec: spec.codec,
        bitrate_kbps,
        channels,
        sample_rate: 48_000,
        language: language.clone(),
    };
    let mut plans = vec![plan(
        "audio",
        a.channels.clamp(1, spec.max_channels.max(1)),
        spec.bitrate,
        first_id + 1,
    )];
    if spec.surround && spec.codec == Codec::Aac && a.channels >= SURROUND_CHANNELS {
        plans.push(plan(
            "audio_51",
            SURROUND_CHANNELS,
            spec.bitrate * SURROUND_BITRATE_FACTOR,
            first_id + 2,
        ));
    }
    plans
}

/// A source this much taller than the ladder's tallest rung that fits it gets a rung of its
/// own height: at 0.9, a 270-line source under a 240 rung does, a 250-line one does not.
const OWN_HEIGHT_ABOVE: f64 = 0.9;

/// Whether a source `src_height` lines high lies between two of `heights` (some taller,
/// the tallest of the rest under 90% of it), so that a rung at its own height should be
/// added. The one rule for ladders (`rungs_for_source`) and per-title candidate heights.
pub fn needs_own_height(heights: impl IntoIterator<Item = u32>, src_height: u32) -> bool {
    let (mut taller, mut fitting) = (false, None::<u32>);
    for h in heights {
        if h > src_height {
            taller = true;
        } else {
            fitting = fitting.max(Some(h));
        }
    }
    taller && fitting.is_none_or(|h| f64::from(h) < OWN_HEIGHT_ABOVE * f64::from(src_height))
}

/// The rungs of a ladder that suit a source `src_height` lines high. Rungs taller than the
/// source are dropped (each with a notice). A source that lies between two rungs gets a top
/// rung at its own height in place of the next-taller one (named after its height, that
/// rung's codec, quality and speed; a bitrate interpolated by height between the two rungs),
/// so that a 2.35:1 title 272 lines high is not served at 234 at best. When every rung is
/// taller, the smallest is encoded at the source's height.
fn rungs_for_source(ladder: &[Rung], src_height: u32, notices: &mut Vec<String>) -> Vec<Rung> {
    let (kept, dropped): (Vec<&Rung>, Vec<&Rung>) =
        ladder.iter().partition(|r| r.height <= src_height);
    for r in &dropped {
        notices.push(format!(
            "rung {} ({}p) dropped: the source is only {src_height} lines high",
            r.name, r.height
        ));
    }
    let mut out: Vec<Rung> = kept.iter().map(|r| (*r).clone()).collect();
    // The dropped rung nearest the source (the cheapest of its height).
    let Some(next) = dropped
        .iter()
        .min_by_key(|r| (r.height, r.bitrate.unwrap_or(0)))
    else {
        return out;
    };
    let below = kept
        .iter()
        .filter(|r| r.codec == next.codec)
        .max_by_key(|r| (r.height, r.bitrate.unwrap_or(0)));
    if !needs_own_height(ladder.iter().map(|r| r.height), src_height) {
        return out;
    }
    let mut own = (*next).clone();
    own.height = src_height;
    own.width = None;
    own.name = String::new(); // named after the height it has
    if let (Some(top), Some(b), Some(lower)) = (next.bitrate, below, below.and_then(|b| b.bitrate))
    {
        let t = f64::from(src_height - b.height) / f64::from(next.height - b.height);
        own.bitrate =
            Some((f64::from(lower) + t * (f64::from(top) - f64::from(lower))).round() as u32);
    }
    notices.push(match kept.first() {
        Some(_) => format!(
            "a rung at the source's own height ({src_height} lines) takes the place of rung {}",
            next.name
        ),
        None => format!(
            "rung {} encoded at the source height {src_height}",
            next.name
        ),
    });
    out.insert(0, own);
    out
}

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

fn start(plan: EncodePlan) -> Result<SampleStream, EncodeError> {
    init()?;
    let path = plan.source.path.clone();
    let uri = file_uri(
        &std::path::absolute(&path).map_err(|source| EncodeError::Io {
            path: path.clone(),
            source,
        })?,
    )?;
    let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
    let feed = Feed::new(tx);
    let stop = feed.stop.clone();
    for n in &plan.notices {
        feed.event(Event::Notice(n.clone()));
    }
    let started = Instant::now();
    let pipeline = gst::Pipeline::new();
    let decode = make("uridecodebin3")?;
    decode.set_property("uri", &uri);
    pipeline.add(&decode)?;

    // Without a video rung (an audio rendition encoded again alone), the video is not decoded.
    let mut after_eos = Vec::new();
    let video_in = if plan.rungs.is_empty() {
        decode.connect("select-stream", false, |args| {
            let stream = args[2].get::<gst::Stream>().ok()?;
            let video = stream.stream_type().contains(gst::StreamType::VIDEO);
            Some(if video { 0i32 } else { -1i32 }.to_value())
        });
        None
    } else {
        Some(video_branch(
            &pipeline,
            &plan,
            &feed,
            started,
            &path,
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
        // stream that uridecodebin3 exposes again (after a stream-collection update removed
        // its first pad) still reaches the encoders instead of a fake sink.
        let _guard = linked.lock().unwrap();
        let target = if name.starts_with("video")
            && video_in.as_ref().is_some_and(|v| !v.is_linked())
        {
            video_in.clone()
        } else if name.starts_with("audio") && audio_in.as_ref().is_some_and(|a| !a.is_linked()) {
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

    let workers = vec![watch_bus(&pipeline, feed.clone(), path.clone(), after_eos)];
    let watch = Watch::new(&path, "encoding", &feed);
    drop(feed);
    SampleStream::start(rx, stop, pipeline, workers, watch)
}

/// Decoded I420 frames scaled to every rung size (`resize`, SIMD Lanczos-3) and pushed into
/// that size's appsrc; the source's own size gets the same buffer. Caps follow the source's,
/// with the rung size, square pixels and the source's colorimetry: sample values are never
/// converted between matrices, and every rung carries the same colour tags.
struct ScaleState {
    outputs: Vec<((u32, u32), gst_app::AppSrc)>,
    infos: Vec<Option<gstreamer_video::VideoInfo>>,
    scaler: crate::resize::PlaneScaler,
    caps_set: bool,
    /// Frames seen so far, and the one to hand over as a still.
    count: u64,
    /// One frame at the output rate, in nanoseconds.
    frame_ns: u64,
    still_at: Option<u64>,
    feed: Feed,
}

impl ScaleState {
    fn new(
        outputs: Vec<((u32, u32), gst_app::AppSrc)>,
        still_at: Option<u64>,
        frame_rate: Rational,
        feed: Feed,
    ) -> ScaleState {
        ScaleState {
            frame_ns: 1_000_000_000 * u64::from(frame_rate.den) / u64::from(frame_rate.num.max(1)),
            infos: vec![None; outputs.len()],
            outputs,
            scaler: crate::resize::PlaneScaler::default(),
            caps_set: false,
            count: 0,
            still_at,
            feed,
        }
    }

    /// Scales and pushes one frame; `Ok(false)` when the pipeline is stopping.
    fn push(&mut self, sample: &gst::Sample) -> Result<bool, String> {
        use gstreamer_video as gst_video;
        use gstreamer_video::prelude::*;
        self.feed.pulse.beat();
        let (Some(caps), Some(buffer)) = (sample.caps(), sample.buffer_owned()) else {
            return Err("the decoder gave a frame without caps or data".into());
        };
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| format!("decoded frames have caps {caps}: {e}"))?;
        if !self.caps_set {
            for (i, ((w, h), src)) in self.outputs.iter().enumerate() {
                let mut c = caps.copy();
                {
                    let c = c.make_mut();
                    c.set("width", *w as i32);
                    c.set("height", *h as i32);
                    c.set("pixel-aspect-ratio", gst::Fraction::new(1, 1));
                    // The source's colorimetry, stated: left out, GStreamer would guess it from
                    // each rung's size (BT.709 from 720 lines up, BT.601 below), so rungs of
                    // one title would be tagged (and converted) differently.
                    c.set("colorimetry", info.colorimetry().to_string());
                }
                self.infos[i] = Some(
                    gst_video::VideoInfo::from_caps(&c)
                        .map_err(|e| format!("rung caps {c}: {e}"))?,
                );
                src.set_caps(Some(&c));
            }
            self.caps_set = true;
        }
        // The appsrcs start their own segments at 0: frames go out stamped with their running
        // time in the decoder's segment (a source whose first frame is at 0.08 s, after an
        // edit list, still starts at 0).
        let pts = buffer.pts().map(|t| {
            sample
                .segment()
                .and_then(|seg| seg.downcast_ref::<gst::ClockTime>())
                .and_then(|seg| seg.to_running_time(t))
                .unwrap_or(t)
        });
        if self.still_at == Some(self.count) {
            let picture = crate::raw::picture_from(buffer.as_ref(), &info)?;
            self.feed.event(Event::Still {
                frame: self.count,
                picture,
            });
        }
        // A video that starts after the presentation does (an edit list's empty edit, audio
        // recorded first) is led in by its first frame, held from 0, so that every track
        // starts at 0 and stays where the container puts it.
        let lead_in = match (self.count, pts) {
            (0, Some(first)) if first.nseconds() > self.frame_ns / 2 => {
                let n = (first.nseconds() + self.frame_ns / 2) / self.frame_ns;
                self.feed.event(Event::Notice(format!(
                    "the video starts {:.3} s into the presentation: its first frame is shown from 0",
                    first.nseconds() as f64 / 1e9
                )));
                n
            }
            _ => 0,
        };
        self.count += 1;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info)
            .map_err(|_| "cannot map a decoded frame".to_string())?;
        for (i, ((w, h), src)) in self.outputs.iter().enumerate() {
            let out = if (*w, *h) == (info.width(), info.height()) {
                // A new buffer sharing the frame's memory, with its own timestamps.
                let mut b = buffer.copy();
                {
                    let b = b.get_mut().expect("a copy is writable");
                    b.set_pts(pts);
                    b.set_dts(gst::ClockTime::NONE);
                }
                b
            } else {
                let oinfo = self.infos[i].as_ref().expect("set with the caps");
                let mut out = gst::Buffer::with_size(oinfo.size())
                    .map_err(|_| "cannot allocate a scaled frame".to_string())?;
                {
                    let ob = out.get_mut().expect("a new buffer is writable");
                    ob.set_pts(pts);
                    ob.set_duration(buffer.duration());
                    ob.set_offset(buffer.offset());
                    let mut of = gst_video::VideoFrameRef::from_buffer_ref_writable(ob, oinfo)
                        .map_err(|_| "cannot map a scaled frame".to_string())?;
                    for p in 0..3u32 {
                        let (sw, sh) = (info.comp_width(p as u8), info.comp_height(p as u8));
                        let (dw, dh) = (oinfo.comp_width(p as u8), oinfo.comp_height(p as u8));
                        let sstride = frame.plane_stride()[p as usize] as usize;
                        let dstride = of.plane_stride()[p as usize] as usize;
                        let src_plane = frame
                            .plane_data(p)
                            .map_err(|_| "a decoded frame lacks a plane".to_string())?;
                        let dst_plane = of
                            .plane_data_mut(p)
                            .map_err(|_| "a scaled frame lacks a plane".to_string())?;
                        self.scaler
                            .plane(src_plane, sw, sh, sstride, dst_plane, dw, dh, dstride)?;
                    }
                }
                out
            };
            for k in 0..lead_in {
                let mut held = out.copy();
                {
                    let b = held.get_mut().expect("a copy is writable");
                    b.set_pts(gst::ClockTime::from_nseconds(k * self.frame_ns));
                    b.set_duration(gst::ClockTime::from_nseconds(self.frame_ns));
                }
                if src.push_buffer(held).is_err() {
                    return Ok(false);
                }
            }
            if src.push_buffer(out).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
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
    let caps = make("capsfilter")?;
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
    caps.set_property("caps", raw_caps.build());
    let sink = crate::gst_util::free_running_appsink(16);
    let sink_el: gst::Element = sink.clone().upcast();
    let bps = a.bitrate_kbps.saturating_mul(1000);
    let encoder: Vec<gst::Element> = match a.codec {
        Codec::Aac => {
            let enc = make("avenc_aac")?;
            enc.set_property("bitrate", bps as i32);
            let raw = make("capsfilter")?;
            raw.set_property(
                "caps",
                gst::Caps::builder("audio/mpeg")
                    .field("mpegversion", 4i32)
                    .field("stream-format", "raw")
                    .build(),
            );
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
            frames_total: None,
        },
        feed.clone(),
        started,
    );
    Ok(())
}

/// What a sink of already-encoded buffers (x264, AAC, Opus, or a demuxed stream) turns into.
pub(crate) struct CodedTrack {
    pub path: PathBuf,
    pub track_id: u32,
    pub name: String,
    pub timescale: u32,
    /// Snap video timestamps to this frame grid (encoded constant-rate video).
    pub frame_duration: Option<u32>,
    /// (width, height, frame rate) for video known from the plan.
    pub video: Option<(u32, u32, Rational)>,
    pub language: String,
    pub frames_total: Option<u64>,
}

struct CodedState {
    track: CodedTrack,
    announced: bool,
    kind_video: bool,
    codec: Option<Codec>,
    count: u64,
    /// The previous sample, held until the next one gives its duration when the buffer had none.
    held: Option<EncodedSample>,
    /// Audio: the expected start of the next frame, for gap-free timestamps.
    next_audio: Option<i64>,
    last_progress: Instant,
    /// Events not yet handed to the consumer, and the sample bytes they hold.
    batch: Vec<Event>,
    batch_bytes: usize,
}

/// Installs callbacks on `sink` that turn encoded buffers into `Track`/`Sample`/`TrackEnd` events.
pub(crate) fn coded_sink(sink: &gst_app::AppSink, track: CodedTrack, feed: Feed, started: Instant) {
    let state = Arc::new(Mutex::new(CodedState {
        track,
        announced: false,
        kind_video: false,
        codec: None,
        count: 0,
        held: None,
        next_audio: None,
        last_progress: Instant::now(),
        batch: Vec::new(),
        batch_bytes: 0,
    }));
    let state_eos = state.clone();
    let feed_eos = feed.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                feed.pulse.beat();
                let mut st = state.lock().unwrap();
                match st.on_sample(&sample, &feed, started) {
                    Ok(true) => Ok(gst::FlowSuccess::Ok),
                    Ok(false) => Err(gst::FlowError::Flushing),
                    Err(e) => {
                        feed.send(Msg::Error(e));
                        Err(gst::FlowError::Error)
                    }
                }
            })
            .eos(move |_| {
                let mut st = state_eos.lock().unwrap();
                let id = st.track.track_id;
                if let Some(mut last) = st.held.take() {
                    if last.duration == 0 {
                        last.duration = st.track.frame_duration.unwrap_or(1);
                    }
                    st.count += 1;
                    st.batch.push(Event::Sample {
                        track: id,
                        sample: last,
                    });
                }
                if st.kind_video {
                    let p = av1enc::progress(id, st.count, st.track.frames_total, started);
                    st.batch.push(Event::Progress(p));
                }
                if st.announced {
                    st.batch.push(Event::TrackEnd { track: id });
                }
                st.flush(&feed_eos);
            })
            .build(),
    );
}

impl CodedState {
    fn fail(&self, detail: impl std::fmt::Display) -> EncodeError {
        EncodeError::Decode {
            path: self.track.path.clone(),
            detail: format!("track {}: {detail}", self.track.name),
        }
    }

    fn announce(
        &mut self,
        caps: &gst::CapsRef,
        first: &[u8],
        feed: &Feed,
    ) -> Result<bool, EncodeError> {
        let s = caps.structure(0).ok_or_else(|| self.fail("no caps"))?;
        let codec_data = s.get::<gst::Buffer>("codec_data").ok();
        let codec_bytes = || -> Result<Vec<u8>, EncodeError> {
            let b = codec_data
                .as_ref()
                .ok_or_else(|| self.fail(format!("{} caps without codec_data", s.name())))?;
            Ok(b.map_readable().map_err(|e| self.fail(e))?.to_vec())
        };
        let int = |f: &str| s.get::<i32>(f).ok().map(|v| v.max(0) as u32);
        let t = &self.track;
        let (config, video, audio) = match s.name().as_str() {
            "video/x-h264" => (
                CodecConfig::Avc(
                    AvcConfig::from_record(&codec_bytes()?).map_err(|e| self.fail(e))?,
                ),
                true,
                None,
            ),
            "video/x-av1" => {
                // Without an av1C in the caps, the first temporal unit carries the sequence header.
                // av1parse may hand over bare OBUs (no av1C header) as codec_data.
                let cfg = match codec_data.as_ref() {
                    Some(_) => {
                        let bytes = codec_bytes()?;
                        if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                            reel_media::Av1Config::from_record(&bytes)
                        } else {
                            reel_media::Av1Config::from_obus(&bytes)
                        }
                    }
                    None => reel_media::Av1Config::from_obus(first),
                }
                .or_else(|_| reel_media::Av1Config::from_obus(first));
                (CodecConfig::Av1(cfg.map_err(|e| self.fail(e))?), true, None)
            }
            "audio/mpeg" => {
                let asc = AudioSpecificConfig::parse(&codec_bytes()?).map_err(|e| self.fail(e))?;
                let params = AudioParams {
                    sample_rate: int("rate").unwrap_or(asc.sample_rate),
                    channels: int("channels").unwrap_or(u32::from(asc.channels)) as u8,
                };
                (CodecConfig::Aac(asc), false, Some(params))
            }
            "audio/x-opus" => {
                let head = s
                    .get::<gst::ArrayRef>("streamheader")
                    .ok()
                    .and_then(|a| a.first().and_then(|v| v.get::<gst::Buffer>().ok()));
                let cfg = match head {
                    Some(head) => {
                        let head = head.map_readable().map_err(|e| self.fail(e))?.to_vec();
                        OpusConfig::from_opus_head(&head).map_err(|e| self.fail(e))?
                    }
                    // Demuxers (qtdemux, matroskademux) describe Opus by caps fields instead.
                    None => {
                        let channels = int("channels").unwrap_or(2) as u8;
                        let family = int("channel-mapping-family").unwrap_or(0) as u8;
                        let mut mapping_table = Vec::new();
                        if family != 0 {
                            mapping_table.push(int("stream-count").unwrap_or(1) as u8);
                            mapping_table.push(int("coupled-count").unwrap_or(0) as u8);
                            let map = s.get::<gst::ArrayRef>("channel-mapping").ok();
                            for i in 0..usize::from(channels) {
                                let v = map
                                    .as_ref()
                                    .and_then(|m| m.get(i).and_then(|v| v.get::<i32>().ok()))
                                    .unwrap_or(i as i32);
                                mapping_table.push(v as u8);
                            }
                        }
                        OpusConfig {
                            channels,
                            // The caps do not carry it; 312 samples is what libopus uses at 48 kHz.
                            pre_skip: int("pre-skip").map_or(312, |v| v as u16),
                            input_sample_rate: int("rate").unwrap_or(48_000),
                            output_gain: 0,
                            mapping_family: family,
                            mapping_table,
                        }
                    }
                };
                let params = AudioParams {
                    sample_rate: 48_000,
                    channels: cfg.channels,
                };
                (CodecConfig::Opus(cfg), false, Some(params))
            }
            other => {
                return Err(EncodeError::Unsupported {
                    path: t.path.clone(),
                    detail: format!("track {}: codec {other}", t.name),
                })
            }
        };
        let video = if video {
            let (w, h, fr) = t.video.unwrap_or_else(|| {
                let fr = s
                    .get::<gst::Fraction>("framerate")
                    .map(|f| Rational::new(f.numer().max(0) as u32, f.denom().max(1) as u32))
                    .unwrap_or(Rational::new(0, 1));
                (int("width").unwrap_or(0), int("height").unwrap_or(0), fr)
            });
            let par = s
                .get::<gst::Fraction>("pixel-aspect-ratio")
                .map(|f| Rational::new(f.numer().max(0) as u32, f.denom().max(1) as u32))
                .unwrap_or(Rational::new(1, 1));
            // Colour description from the caps, when they carry one (colr nclx later).
            let color = s
                .get::<String>("colorimetry")
                .ok()
                .and_then(|c| crate::gst_util::color_from_colorimetry(&c));
            Some(VideoParams {
                width: w,
                height: h,
                frame_rate: fr,
                pixel_aspect: par,
                color,
            })
        } else {
            None
        };
        self.kind_video = video.is_some();
        self.codec = Some(config.codec());
        self.announced = true;
        Ok(self.queue(
            Event::Track(TrackInfo {
                id: t.track_id,
                config,
                timescale: t.timescale,
                video,
                audio,
                language: t.language.clone(),
                name: t.name.clone(),
            }),
            0,
            feed,
        ))
    }

    /// Adds an event to the batch; hands the batch over when it is full. False when the
    /// consumer has gone away.
    fn queue(&mut self, e: Event, bytes: usize, feed: &Feed) -> bool {
        self.batch.push(e);
        self.batch_bytes += bytes;
        if self.batch.len() >= crate::stream::BATCH_EVENTS
            || self.batch_bytes >= crate::stream::BATCH_BYTES
        {
            return self.flush(feed);
        }
        true
    }

    fn flush(&mut self, feed: &Feed) -> bool {
        self.batch_bytes = 0;
        if self.batch.is_empty() {
            return !feed.stopped();
        }
        feed.send(Msg::Batch(std::mem::take(&mut self.batch)))
    }

    fn on_sample(
        &mut self,
        sample: &gst::Sample,
        feed: &Feed,
        started: Instant,
    ) -> Result<bool, EncodeError> {
        if !self.announced {
            let caps = sample
                .caps()
                .ok_or_else(|| self.fail("sample without caps"))?;
            let first = sample
                .buffer()
                .and_then(|b| b.map_readable().ok().map(|m| m.to_vec()))
                .unwrap_or_default();
            if !self.announce(caps, &first, feed)? {
                return Ok(false);
            }
        }
        let buffer = sample
            .buffer()
            .ok_or_else(|| self.fail("sample without buffer"))?;
        let ts = self.track.timescale;
        let pts_ns = crate::gst_util::running_ns(sample, buffer.pts());
        let dts_ns = crate::gst_util::running_ns(sample, buffer.dts()).or(pts_ns);
        let (Some(pts_ns), Some(dts_ns)) = (pts_ns, dts_ns) else {
            return Err(self.fail(format!("buffer {} has no timestamp", self.count)));
        };
        let mut pts = ns_to_ticks(pts_ns, ts);
        let mut dts = ns_to_ticks(dts_ns, ts);
        let mut duration = buffer
            .duration()
            .map(|d| ns_to_ticks(d.nseconds() as i128, ts).max(0) as u32)
            .unwrap_or(0);
        if let Some(step) = self.track.frame_duration {
            pts = snap(pts, step);
            dts = snap(dts, step);
            duration = step;
        }
        if !self.kind_video {
            // Audio frames are contiguous: follow the running sum of durations unless the
            // source jumps by more than half a frame.
            if let Some(next) = self.next_audio {
                if (pts - next).abs() <= i64::from(duration / 2) {
                    pts = next;
                }
            }
            dts = pts;
            self.next_audio = Some(pts + i64::from(duration));
        }
        let mut data = buffer.map_readable().map_err(|e| self.fail(e))?.to_vec();
        if matches!(self.codec, Some(Codec::Av1)) {
            data = reel_media::av1::strip_temporal_delimiters(&data).map_err(|e| self.fail(e))?;
        }
        let sync = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let current = EncodedSample {
            data,
            dts,
            pts,
            duration,
            sync,
        };
        let ready = match self.held.take() {
            Some(mut prev) => {
                if prev.duration == 0 {
                    prev.duration = u32::try_from(current.dts - prev.dts).unwrap_or(0).max(1);
                }
                Some(prev)
            }
            None => None,
        };
        if current.duration == 0 {
            self.held = Some(current);
        } else if let Some(r) = ready {
            self.held = Some(current);
            return self.send(r, feed, started);
        } else {
            return self.send(current, feed, started);
        }
        match ready {
            Some(r) => self.send(r, feed, started),
            None => Ok(true),
        }
    }

    fn send(
        &mut self,
        sample: EncodedSample,
        feed: &Feed,
        started: Instant,
    ) -> Result<bool, EncodeError> {
        self.count += 1;
        let bytes = sample.data.len();
        let track = self.track.track_id;
        if !self.queue(Event::Sample { track, sample }, bytes, feed) {
            return Ok(false);
        }
        if self.kind_video && self.last_progress.elapsed() >= Duration::from_millis(250) {
            self.last_progress = Instant::now();
            let p = av1enc::progress(track, self.count, self.track.frames_total, started);
            // Progress goes out with what is queued, so bars move while encoding.
            self.batch.push(Event::Progress(p));
            return Ok(self.flush(feed));
        }
        Ok(true)
    }
}

/// The video half of an encode: the decoded frames made constant-rate and I420 once, scaled
/// once per rung size, and fed to every rung's encoder. Returns the pad the decoder's video
/// goes to.
fn video_branch(
    pipeline: &gst::Pipeline,
    plan: &EncodePlan,
    feed: &Feed,
    started: Instant,
    path: &Path,
    after_eos: &mut Vec<std::thread::JoinHandle<()>>,
) -> Result<gst::Pad, EncodeError> {
    let path = path.to_path_buf();
    // Shared video path: decoded once, made constant-rate and converted to I420 once.
    let vqueue = make("queue")?;
    set_queue_limits(&vqueue, 4);
    let rate = make("videorate")?;
    let rate_caps = make("capsfilter")?;
    rate_caps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field(
                "framerate",
                gst::Fraction::new(plan.frame_rate.num as i32, plan.frame_rate.den as i32),
            )
            .build(),
    );
    let convert = make("videoconvert")?;
    let i420 = make("capsfilter")?;
    i420.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .build(),
    );
    // The decoded frames leave GStreamer here: one thread scales them to every rung size
    // (`resize`, SIMD Lanczos-3) and feeds one appsrc per size.
    let raw_sink = crate::gst_util::free_running_appsink(2);
    let raw_el: gst::Element = raw_sink.clone().upcast();
    let upright = crate::gst_util::upright_progressive()?;
    let mut chain: Vec<&gst::Element> = vec![&vqueue];
    chain.extend(upright.iter());
    chain.extend([&rate, &rate_caps, &convert, &i420, &raw_el]);
    link_chain(pipeline, &chain)?;

    // One appsrc per distinct size, shared by the rungs of that size through a tee (a ladder
    // often has two bitrates at one height).
    let mut sized: Vec<((u32, u32), gst_app::AppSrc, gst::Element)> = Vec::new();
    for rung in &plan.rungs {
        let size = (rung.width, rung.height);
        let size_tee = match sized.iter().find(|s| s.0 == size) {
            Some((_, _, t)) => t.clone(),
            None => {
                let frame_bytes = u64::from(rung.width) * u64::from(rung.height) * 3 / 2;
                let src = gst_app::AppSrc::builder()
                    .format(gst::Format::Time)
                    .is_live(false)
                    .block(true)
                    .max_bytes(frame_bytes * 3)
                    .build();
                let src_el: gst::Element = src.clone().upcast();
                let t = make("tee")?;
                link_chain(pipeline, &[&src_el, &t])?;
                sized.push((size, src, t.clone()));
                t
            }
        };
        let q = make("queue")?;
        set_queue_limits(&q, 3);
        // No preroll: a sink that prerolled on its first frame would block the tee while an
        // encoder with look-ahead (x264) on another branch still waits for frames.
        let sink = crate::gst_util::free_running_appsink(2);
        let sink_el: gst::Element = sink.clone().upcast();
        match rung.codec {
            Codec::Av1 => {
                link_chain(pipeline, &[&q, &sink_el])?;
                let (ftx, frx) = crossbeam_channel::bounded::<RawFrame>(2);
                let ftx_eos = ftx.clone();
                sink.set_callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |s| {
                            let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            ftx.send(RawFrame::Frame(sample))
                                .map_err(|_| gst::FlowError::Flushing)?;
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .eos(move |_| {
                            let _ = ftx_eos.send(RawFrame::Eos);
                        })
                        .build(),
                );
                after_eos.push(av1enc::spawn(
                    Av1Job {
                        path: path.clone(),
                        track_id: rung.track_id,
                        name: rung.name.clone(),
                        width: rung.width,
                        height: rung.height,
                        frame_rate: plan.frame_rate,
                        timescale: plan.timescale,
                        frame_duration: plan.frame_duration,
                        keyframe_frames: plan.keyframe_frames,
                        rate: rung.rate,
                        speed: rung.speed,
                        frames_total: Some(plan.frames_total),
                    },
                    frx,
                    feed.clone(),
                    started,
                ));
            }
            Codec::H264 => {
                let enc = make("x264enc")?;
                let g = plan.keyframe_frames as u32;
                enc.set_property("key-int-max", g);
                enc.set_property_from_str(
                    "speed-preset",
                    X264_PRESETS[usize::from(rung.speed.clamp(1, 10)) - 1],
                );
                // Closed GOPs of exactly `g` frames, no scene-cut key frames: every rung has
                // IDR frames at the same presentation times.
                enc.set_property(
                    "option-string",
                    format!("min-keyint={g}:scenecut=0:open-gop=0"),
                );
                match rung.rate {
                    RateControl::Bitrate(kbps) => {
                        enc.set_property_from_str("pass", "cbr");
                        enc.set_property("bitrate", kbps);
                        enc.set_property("vbv-buf-capacity", 2000u32);
                    }
                    RateControl::Quality(crf) => {
                        enc.set_property_from_str("pass", "qual");
                        enc.set_property("quantizer", crf);
                        // x264enc turns `bitrate` (default 2048 kbit/s) into a VBV cap in
                        // quality mode; a CRF rung is uncapped.
                        enc.set_property("bitrate", X264_UNCAPPED_KBPS);
                    }
                }
                let profile = make("capsfilter")?;
                profile.set_property(
                    "caps",
                    gst::Caps::builder("video/x-h264")
                        .field("profile", "high")
                        .build(),
                );
                let parse = make("h264parse")?;
                let avc = make("capsfilter")?;
                avc.set_property(
                    "caps",
                    gst::Caps::builder("video/x-h264")
                        .field("stream-format", "avc")
                        .field("alignment", "au")
                        .build(),
                );
                link_chain(pipeline, &[&q, &enc, &profile, &parse, &avc, &sink_el])?;
                coded_sink(
                    &sink,
                    CodedTrack {
                        path: path.clone(),
                        track_id: rung.track_id,
                        name: rung.name.clone(),
                        timescale: plan.timescale,
                        frame_duration: Some(plan.frame_duration),
                        video: Some((rung.width, rung.height, plan.frame_rate)),
                        language: "und".into(),
                        frames_total: Some(plan.frames_total),
                    },
                    feed.clone(),
                    started,
                );
            }
            other => {
                return Err(EncodeError::InvalidLadder(format!(
                    "{} is not a video codec",
                    other.name()
                )))
            }
        }
        let tee_pad = size_tee
            .request_pad_simple("src_%u")
            .ok_or_else(|| EncodeError::Gst("tee gave no pad".into()))?;
        let qpad = q.static_pad("sink").expect("queue has a sink pad");
        tee_pad
            .link(&qpad)
            .map_err(|e| EncodeError::Gst(format!("linking rung {}: {e:?}", rung.name)))?;
    }

    let outputs: Vec<((u32, u32), gst_app::AppSrc)> = sized
        .into_iter()
        .map(|(size, src, _)| (size, src))
        .collect();
    {
        // Scaling runs on the streaming thread that delivers the decoded frames (decoding runs
        // on the decoder's own threads); a full appsrc blocks it, so memory stays bounded.
        let mut state = ScaleState::new(
            outputs.clone(),
            plan.still_at,
            plan.frame_rate,
            feed.clone(),
        );
        let eos_outputs = outputs;
        let feed = feed.clone();
        let path = path.clone();
        raw_sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
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
                .eos(move |_| {
                    for (_, src) in &eos_outputs {
                        let _ = src.end_of_stream();
                    }
                })
                .build(),
        );
    }

    Ok(vqueue.static_pad("sink").expect("queue has a sink pad"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heights(rungs: &[Rung]) -> Vec<(u32, Option<u32>)> {
        rungs.iter().map(|r| (r.height, r.bitrate)).collect()
    }

    /// A 2.35:1 title 270 lines high between the built-in ladders' 240 and 360 rungs gets a
    /// top rung of its own height (issue 17: the AV1 ladder gave one 240p rung).
    #[test]
    fn a_source_between_two_rungs_gets_its_own_height() {
        let mut notes = Vec::new();
        let av1 = Ladder::builtin("av1").unwrap();
        let r = rungs_for_source(&av1.rungs, 270, &mut notes);
        assert_eq!(heights(&r), [(270, None), (240, None)]);
        assert_eq!(r[0].quality, Some(110));
        assert_eq!(r[0].name, "");
        assert!(
            notes.iter().any(|n| n.contains("own height (270 lines)")),
            "{notes:?}"
        );
        // H.264: the bitrate lies between its neighbours' by height.
        let h264 = Ladder::builtin("h264").unwrap();
        let r = rungs_for_source(&h264.rungs, 300, &mut notes);
        assert_eq!(heights(&r), [(300, Some(525)), (240, Some(350))]);
        // The fixed ladder's 234 rung under a 272-line source, the 360 one (365k) above.
        let fixed = Ladder::builtin("fixed").unwrap();
        let r = rungs_for_source(&fixed.rungs, 272, &mut notes);
        assert_eq!(heights(&r), [(272, Some(211)), (234, Some(145))]);
    }

    #[test]
    fn a_source_at_or_near_a_rung_gets_no_extra_rung() {
        let mut notes = Vec::new();
        let h264 = Ladder::builtin("h264").unwrap();
        let r = rungs_for_source(&h264.rungs, 720, &mut notes);
        assert_eq!(
            r.iter().map(|r| r.height).collect::<Vec<_>>(),
            [720, 480, 360, 240]
        );
        let r = rungs_for_source(&h264.rungs, 250, &mut notes);
        assert_eq!(r.iter().map(|r| r.height).collect::<Vec<_>>(), [240]);
        let r = rungs_for_source(&h264.rungs, 1080, &mut notes);
        assert_eq!(r.len(), 5);
    }

    #[test]
    fn a_source_below_every_rung_gets_the_smallest_at_its_height() {
        let mut notes = Vec::new();
        let h264 = Ladder::builtin("h264").unwrap();
        let r = rungs_for_source(&h264.rungs, 180, &mut notes);
        assert_eq!(heights(&r), [(180, Some(350))]);
        assert!(notes
            .last()
            .unwrap()
            .contains("encoded at the source height 180"));
    }
}
