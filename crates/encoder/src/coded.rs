//! Coded-sample sinks: already-encoded buffers (x264, AAC, Opus, or a demuxed stream) from an
//! appsink turned into `Track`, `Sample` and `TrackEnd` events.

use crate::av1enc::{self};
use crate::stream::{Event, Feed, Msg};
use crate::timing::{ns_to_ticks, snap};
use crate::EncodeError;
use gstreamer as gst;
use gstreamer_app as gst_app;
use reel_media::{
    AudioParams, AudioSpecificConfig, AvcConfig, Codec, CodecConfig, EncodedSample, OpusConfig,
    Rational, TrackInfo, VideoParams,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// What an audio track is for.
    pub role: reel_media::AudioRole,
    /// The name players show for it, when one was given.
    pub title: Option<String>,
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
                    role: t.role,
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
                    role: t.role,
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
                hdr: None,
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
                title: t.title.clone(),
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
