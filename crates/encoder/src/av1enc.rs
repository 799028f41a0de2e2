//! The AV1 rung: raw frames from an `appsink` handed to an AV1 encoder (rav1e, or SVT-AV1
//! with the `svt-av1` feature) on its own thread.

use crate::stream::{Event, Feed, Msg, Progress};
use crate::timing::{ns_to_ticks, snap};
use crate::{EncodeError, RateControl, VideoEncoder};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use num_traits::FromPrimitive;
use rav1e::config::SpeedSettings;
use rav1e::prelude::*;
use reel_media::{
    av1, Av1Config, CodecConfig, ColorInfo, EncodedSample, Rational, TrackInfo, VideoParams,
};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(crate) enum RawFrame {
    Frame(gst::Sample),
    Eos,
}

/// Everything one AV1 rung needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Av1Job {
    pub path: PathBuf,
    pub track_id: u32,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Rational,
    pub timescale: u32,
    pub frame_duration: u32,
    pub keyframe_frames: u64,
    pub encoder: VideoEncoder,
    pub rate: RateControl,
    pub speed: u8,
    /// Threads for the encoder's own use (SVT-AV1's logical processors); 0: every core.
    #[cfg_attr(not(feature = "svt-av1"), allow(dead_code))]
    pub threads: u32,
    pub frames_total: Option<u64>,
}

/// A coded temporal unit, whichever encoder made it.
struct Coded {
    data: Vec<u8>,
    pts: i64,
    key: bool,
}

/// The encoder behind a rung.
enum Backend {
    Rav1e(Box<Context<u8>>),
    #[cfg(feature = "svt-av1")]
    Svt(reel_svt_av1::Encoder),
}

pub(crate) fn spawn(
    job: Av1Job,
    frames: Receiver<RawFrame>,
    feed: Feed,
    started: Instant,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("{}-{}", job.encoder.name(), job.name))
        .spawn(move || {
            if let Err(e) = Worker::new(job, feed.clone(), started).run(frames) {
                feed.send(Msg::Error(e));
            }
        })
        .expect("spawning an encoder thread")
}

struct Worker {
    job: Av1Job,
    feed: Feed,
    started: Instant,
    backend: Option<Backend>,
    /// Colour description of the frames, known from their caps.
    color: Option<ColorInfo>,
    frames_in: u64,
    frames_out: u64,
    announced: bool,
    last_progress: Instant,
}

impl Worker {
    fn new(job: Av1Job, feed: Feed, started: Instant) -> Self {
        Self {
            job,
            feed,
            started,
            backend: None,
            color: None,
            frames_in: 0,
            frames_out: 0,
            announced: false,
            last_progress: Instant::now(),
        }
    }

    fn fail(&self, detail: impl std::fmt::Display) -> EncodeError {
        EncodeError::Encoder {
            path: self.job.path.clone(),
            encoder: self.job.encoder.name(),
            detail: format!("rung {}: {detail}", self.job.name),
        }
    }

    fn run(mut self, frames: Receiver<RawFrame>) -> Result<(), EncodeError> {
        loop {
            let msg = match frames.recv_timeout(Duration::from_millis(200)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    if self.feed.stopped() {
                        return Ok(());
                    }
                    // Packets finished while no frame came are taken out now, not left
                    // in the encoder until the next frame arrives.
                    if self.backend.is_some() && !self.drain()? {
                        return Ok(());
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            match msg {
                RawFrame::Frame(sample) => {
                    // A frame taken in is progress too: at low speeds rav1e may hold many
                    // before its first packet.
                    self.feed.pulse.beat();
                    self.send_frame(&sample)?;
                    if !self.drain()? {
                        return Ok(());
                    }
                }
                RawFrame::Eos => {
                    if self.backend.is_some() {
                        self.flush()?;
                        self.drain()?;
                    }
                    self.progress(true);
                    self.feed.event(Event::TrackEnd {
                        track: self.job.track_id,
                    });
                    return Ok(());
                }
            }
        }
    }

    /// The rung's encoder for frames like `info`'s, with their range and (from `self.color`)
    /// their colour description.
    fn backend(&self, info: &gst_video::VideoInfo) -> Result<Backend, EncodeError> {
        let color = color_info(info);
        match self.job.encoder {
            #[cfg(feature = "svt-av1")]
            VideoEncoder::SvtAv1 => self.svt_encoder(info, color).map(Backend::Svt),
            VideoEncoder::Rav1e => self
                .rav1e_context(info, color)
                .map(|c| Backend::Rav1e(Box::new(c))),
            other => Err(self.fail(format!(
                "{} is not an AV1 encoder in this build",
                other.name()
            ))),
        }
    }

    fn rav1e_context(
        &self,
        info: &gst_video::VideoInfo,
        color: ColorInfo,
    ) -> Result<Context<u8>, EncodeError> {
        let job = &self.job;
        let mut enc = encoder_config(job.width, job.height, job.frame_rate, job.speed, job.rate);
        enc.chroma_sample_position = match ChromaSite::of(info) {
            ChromaSite::Unknown => ChromaSamplePosition::Unknown,
            ChromaSite::Vertical => ChromaSamplePosition::Vertical,
            ChromaSite::Colocated => ChromaSamplePosition::Colocated,
        };
        enc.pixel_range = if color.full_range {
            PixelRange::Full
        } else {
            PixelRange::Limited
        };
        if let Some((p, t, m)) = self.color.and_then(|c| {
            Some((
                ColorPrimaries::from_u8(c.primaries)?,
                TransferCharacteristics::from_u8(c.transfer)?,
                MatrixCoefficients::from_u8(c.matrix)?,
            ))
        }) {
            enc.color_description = Some(ColorDescription {
                color_primaries: p,
                transfer_characteristics: t,
                matrix_coefficients: m,
            });
        }
        enc.level_idx = Some(av1::level_for(
            job.width,
            job.height,
            job.frame_rate.as_f64(),
        ));
        // Key frames exactly on the shared cadence and nowhere else, so that every rung has
        // sync samples at the same presentation times.
        enc.set_key_frame_interval(job.keyframe_frames, job.keyframe_frames);
        // Tiles let rav1e spread one large frame over both cores.
        if job.width * job.height >= 1280 * 720 {
            enc.tiles = 2;
        }
        Config::new()
            .with_encoder_config(enc)
            .new_context()
            .map_err(|e| self.fail(e))
    }

    /// SVT-AV1 with the rung's settings: key frames on the shared cadence only (closed GOPs,
    /// no scene-cut key frames), the frames' colour description.
    #[cfg(feature = "svt-av1")]
    fn svt_encoder(
        &self,
        info: &gst_video::VideoInfo,
        color: ColorInfo,
    ) -> Result<reel_svt_av1::Encoder, EncodeError> {
        let job = &self.job;
        let settings = svt_settings(
            job.width,
            job.height,
            job.frame_rate,
            job.speed,
            job.rate,
            job.keyframe_frames,
            job.threads,
        )
        .map_err(|e| self.fail(e))?;
        let settings = reel_svt_av1::Settings {
            color: self.color.map(|c| reel_svt_av1::ColorDescription {
                primaries: c.primaries,
                transfer: c.transfer,
                matrix: c.matrix,
            }),
            full_range: color.full_range,
            chroma_position: match ChromaSite::of(info) {
                ChromaSite::Unknown => reel_svt_av1::ChromaPosition::Unknown,
                ChromaSite::Vertical => reel_svt_av1::ChromaPosition::Vertical,
                ChromaSite::Colocated => reel_svt_av1::ChromaPosition::Colocated,
            },
            ..settings
        };
        reel_svt_av1::Encoder::new(&settings).map_err(|e| self.fail(e))
    }

    fn send_frame(&mut self, sample: &gst::Sample) -> Result<(), EncodeError> {
        let caps = sample
            .caps()
            .ok_or_else(|| self.fail("frame without caps"))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| self.fail(e))?;
        if self.backend.is_none() {
            // Described only when the primaries are known (2: unspecified).
            self.color = Some(color_info(&info)).filter(|c| c.primaries != 2);
            self.backend = Some(self.backend(&info)?);
        }
        let buffer = sample
            .buffer()
            .ok_or_else(|| self.fail("sample without buffer"))?;
        let pts_ns = crate::gst_util::running_ns(sample, buffer.pts()).unwrap_or(
            self.frames_in as i128 * 1_000_000_000 * i128::from(self.job.frame_rate.den)
                / i128::from(self.job.frame_rate.num.max(1)),
        );
        let pts = snap(
            ns_to_ticks(pts_ns, self.job.timescale),
            self.job.frame_duration,
        );
        let vframe = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|e| self.fail(e))?;
        let key = self.frames_in.is_multiple_of(self.job.keyframe_frames);
        self.frames_in += 1;
        let sent = match self.backend.as_mut().expect("backend made above") {
            Backend::Rav1e(ctx) => send_rav1e(ctx, &vframe, pts, key),
            #[cfg(feature = "svt-av1")]
            Backend::Svt(enc) => send_svt(enc, &vframe, pts),
        };
        sent.map_err(|e| self.fail(e))
    }

    fn flush(&mut self) -> Result<(), EncodeError> {
        let flushed: Result<(), String> = match self.backend.as_mut() {
            Some(Backend::Rav1e(ctx)) => {
                ctx.flush();
                Ok(())
            }
            #[cfg(feature = "svt-av1")]
            Some(Backend::Svt(enc)) => enc.flush().map_err(|e| e.to_string()),
            None => Ok(()),
        };
        flushed.map_err(|e| self.fail(e))
    }

    /// Emits every packet the encoder has ready (after the flush: every packet left).
    /// Returns false when the consumer is gone.
    fn drain(&mut self) -> Result<bool, EncodeError> {
        loop {
            let next = match self.backend.as_mut().expect("drain after the first frame") {
                Backend::Rav1e(ctx) => receive_rav1e(ctx, self.job.frame_duration),
                #[cfg(feature = "svt-av1")]
                Backend::Svt(enc) => enc
                    .receive_packet()
                    .map(|p| {
                        p.map(|p| Coded {
                            data: p.data,
                            pts: p.pts,
                            key: p.key,
                        })
                    })
                    .map_err(|e| e.to_string()),
            };
            match next.map_err(|e| self.fail(e))? {
                Some(coded) => {
                    if !self.emit(coded)? {
                        return Ok(false);
                    }
                }
                None => return Ok(true),
            }
        }
    }

    fn emit(&mut self, coded: Coded) -> Result<bool, EncodeError> {
        let job = &self.job;
        if !self.announced {
            let config = Av1Config::from_obus(&coded.data).map_err(|e| self.fail(e))?;
            let info = TrackInfo {
                id: job.track_id,
                config: CodecConfig::Av1(config),
                timescale: job.timescale,
                video: Some(VideoParams {
                    width: job.width,
                    height: job.height,
                    frame_rate: job.frame_rate,
                    pixel_aspect: Rational::new(1, 1),
                    color: self.color,
                    hdr: None,
                }),
                audio: None,
                language: "und".into(),
                name: job.name.clone(),
                title: None,
            };
            self.announced = true;
            if !self.feed.event(Event::Track(info)) {
                return Ok(false);
            }
        }
        let data = av1::strip_temporal_delimiters(&coded.data).map_err(|e| self.fail(e))?;
        let sample = EncodedSample {
            data,
            dts: coded.pts,
            pts: coded.pts,
            duration: job.frame_duration,
            sync: coded.key,
        };
        self.frames_out += 1;
        self.feed.pulse.beat();
        if !self.feed.event(Event::Sample {
            track: job.track_id,
            sample,
        }) {
            return Ok(false);
        }
        self.progress(false);
        Ok(true)
    }

    fn progress(&mut self, last: bool) {
        if !last && self.last_progress.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last_progress = Instant::now();
        self.feed.event(Event::Progress(progress(
            self.job.track_id,
            self.frames_out,
            self.job.frames_total,
            self.started,
        )));
    }
}

/// Hands one frame to rav1e, a key frame forced when `key`.
fn send_rav1e(
    ctx: &mut Context<u8>,
    vframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
    pts: i64,
    key: bool,
) -> Result<(), String> {
    let mut frame = ctx.new_frame();
    for (p, plane) in frame.planes.iter_mut().enumerate() {
        let data = vframe.plane_data(p as u32).map_err(|e| e.to_string())?;
        let stride = vframe.plane_stride()[p] as usize;
        plane.copy_from_raw_u8(data, stride, 1);
    }
    let params = FrameParameters {
        frame_type_override: if key {
            FrameTypeOverride::Key
        } else {
            FrameTypeOverride::No
        },
        opaque: Some(rav1e::prelude::Opaque::new(pts)),
        t35_metadata: Box::new([]),
    };
    ctx.send_frame((frame, params)).map_err(|e| e.to_string())
}

/// The next packet rav1e has ready, if any.
fn receive_rav1e(ctx: &mut Context<u8>, frame_duration: u32) -> Result<Option<Coded>, String> {
    loop {
        match ctx.receive_packet() {
            Ok(packet) => {
                let pts = packet
                    .opaque
                    .and_then(|o| o.downcast::<i64>().ok())
                    .map(|b| *b)
                    .unwrap_or(packet.input_frameno as i64 * i64::from(frame_duration));
                return Ok(Some(Coded {
                    key: packet.frame_type == FrameType::KEY,
                    data: packet.data,
                    pts,
                }));
            }
            Err(EncoderStatus::Encoded) => continue,
            Err(EncoderStatus::NeedMoreData) | Err(EncoderStatus::LimitReached) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Hands one frame to SVT-AV1 (which copies it); key frames follow from its settings.
#[cfg(feature = "svt-av1")]
fn send_svt(
    enc: &mut reel_svt_av1::Encoder,
    vframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
    pts: i64,
) -> Result<(), String> {
    let plane = |p: u32| vframe.plane_data(p).map_err(|e| e.to_string());
    let strides = vframe.plane_stride();
    let picture = reel_svt_av1::Picture {
        planes: [plane(0)?, plane(1)?, plane(2)?],
        strides: [
            strides[0] as usize,
            strides[1] as usize,
            strides[2] as usize,
        ],
    };
    enc.send_picture(&picture, pts).map_err(|e| e.to_string())
}

/// SVT-AV1's settings for 8-bit 4:2:0 pictures of `width` x `height` at `frame_rate`, at
/// preset `speed` and `rate` (a CRF or a bitrate), a key frame every `keyframe_frames` and
/// nowhere else. Rungs and trials both start here.
#[cfg(feature = "svt-av1")]
pub(crate) fn svt_settings(
    width: u32,
    height: u32,
    frame_rate: Rational,
    speed: u8,
    rate: RateControl,
    keyframe_frames: u64,
    threads: u32,
) -> Result<reel_svt_av1::Settings, String> {
    let rate = match rate {
        RateControl::Quality(crf) => reel_svt_av1::Rate::Crf(crf),
        RateControl::Bitrate(kbps) => reel_svt_av1::Rate::Bitrate { kbps },
    };
    let keyframe_interval = u32::try_from(keyframe_frames)
        .map_err(|_| format!("a key frame every {keyframe_frames} frames is too far apart"))?;
    Ok(reel_svt_av1::Settings {
        threads,
        ..reel_svt_av1::Settings::new(
            width,
            height,
            (frame_rate.num, frame_rate.den),
            speed,
            rate,
            keyframe_interval,
        )
    })
}

/// rav1e's configuration for 8-bit 4:2:0 pictures of `width` x `height` at `frame_rate`, at
/// speed preset `speed` (0-10) and `rate` (a quantizer, 0-255, or a bitrate), with rav1e's own
/// scene detection off (key frames are placed by the caller). Rungs and trials both start here.
pub(crate) fn encoder_config(
    width: u32,
    height: u32,
    frame_rate: reel_media::Rational,
    speed: u8,
    rate: RateControl,
) -> EncoderConfig {
    let mut enc = EncoderConfig::with_speed_preset(speed.min(10));
    enc.width = width as usize;
    enc.height = height as usize;
    enc.time_base =
        rav1e::data::Rational::new(u64::from(frame_rate.den), u64::from(frame_rate.num));
    enc.bit_depth = 8;
    enc.chroma_sampling = ChromaSampling::Cs420;
    enc.speed_settings = SpeedSettings::from_preset(speed.min(10));
    enc.speed_settings.scene_detection_mode = SceneDetectionSpeed::None;
    match rate {
        RateControl::Quality(q) => enc.quantizer = q.min(255) as usize,
        RateControl::Bitrate(kbps) => {
            enc.bitrate = i32::try_from(u64::from(kbps) * 1000).unwrap_or(i32::MAX)
        }
    }
    enc
}

pub(crate) fn progress(track: u32, done: u64, total: Option<u64>, started: Instant) -> Progress {
    let secs = started.elapsed().as_secs_f64();
    let fps = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = total.and_then(|t| {
        (fps > 0.0).then(|| Duration::from_secs_f64(t.saturating_sub(done) as f64 / fps))
    });
    Progress {
        track,
        frames_done: done,
        frames_total: total,
        fps,
        eta,
    }
}

/// Where the frames' chroma sits, as AV1 can say it: GStreamer's `mpeg2` siting (horizontally
/// co-sited, H.264's default) is AV1's vertical position; fully co-sited is co-located;
/// centred (`jpeg`) and the rest have no AV1 code and stay unknown.
enum ChromaSite {
    Unknown,
    Vertical,
    Colocated,
}

impl ChromaSite {
    fn of(info: &gst_video::VideoInfo) -> ChromaSite {
        let site = info.chroma_site();
        if site == gst_video::VideoChromaSite::MPEG2 {
            ChromaSite::Vertical
        } else if site == gst_video::VideoChromaSite::COSITED {
            ChromaSite::Colocated
        } else {
            ChromaSite::Unknown
        }
    }
}

/// ISO/IEC 23091-2 code points of a raw video format's colorimetry.
pub(crate) fn color_info(info: &gst_video::VideoInfo) -> ColorInfo {
    let c = info.colorimetry();
    ColorInfo {
        primaries: c.primaries().to_iso() as u8,
        transfer: c.transfer().to_iso() as u8,
        matrix: c.matrix().to_iso() as u8,
        full_range: c.range() == gst_video::VideoColorRange::Range0_255,
    }
}
