//! The event stream every encode or demux session produces.

use crate::EncodeError;
use crossbeam_channel::{Receiver, Sender};
use gstreamer as gst;
use gstreamer::prelude::*;
use reel_media::{EncodedSample, Picture, TrackInfo};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Encoding progress of one track.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub track: u32,
    pub frames_done: u64,
    /// Expected frame count, from the probed duration.
    pub frames_total: Option<u64>,
    /// Frames per second since the session started.
    pub fps: f64,
    pub eta: Option<Duration>,
}

/// What a session produces, in order per track: `Track`, `Sample`s, `TrackEnd`.
#[derive(Debug, Clone)]
pub enum Event {
    /// A track's description, sent before its first sample.
    Track(TrackInfo),
    Sample {
        track: u32,
        sample: EncodedSample,
    },
    /// The track is complete; no more samples follow.
    TrackEnd {
        track: u32,
    },
    Progress(Progress),
    /// Something the user should know that is not an error (a rung dropped, a stream ignored).
    Notice(String),
    /// The decoded source picture asked for by [`EncodePlan::still_at`](crate::EncodePlan),
    /// at the source's coded size: a poster frame taken from the one decode.
    Still {
        frame: u64,
        picture: Picture,
    },
    /// A thumbnail asked for by [`EncodePlan::thumbnails`](crate::EncodePlan): the decoded
    /// frame `frame` (counted from the title's start), scaled to the thumbnail size. Chunks
    /// of a title give the thumbnails of their own frames, in order.
    Thumbnail {
        frame: u64,
        picture: Picture,
    },
}

pub(crate) enum Msg {
    Event(Box<Event>),
    /// Several events of one track in order: one hand-over between threads for many samples.
    Batch(Vec<Event>),
    Error(EncodeError),
    Done,
}

/// Capacity of the event channel: bounds the memory between the encoders and the consumer.
pub(crate) const EVENT_QUEUE: usize = 32;

/// A batch is handed over when it holds this many events or this many bytes of samples.
pub(crate) const BATCH_EVENTS: usize = 32;
pub(crate) const BATCH_BYTES: usize = 1 << 20;

/// How long a session may go without a decoded frame, an encoded sample or any event before
/// it counts as stalled (the slowest legitimate gap, the first packets of an AV1 rung at
/// a low speed, is far shorter). `REEL_STALL_SECONDS` sets another bound.
pub const DEFAULT_STALL_SECONDS: u64 = 120;

/// The stall bound of [`DEFAULT_STALL_SECONDS`], or `REEL_STALL_SECONDS` when it is a whole
/// number of seconds above zero.
pub fn stall_limit() -> Duration {
    let seconds = std::env::var("REEL_STALL_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(DEFAULT_STALL_SECONDS);
    Duration::from_secs(seconds)
}

/// When a session last showed progress (a frame decoded, a sample encoded): the stall bound
/// is measured from it, so a slow consumer or a slow encoder is never mistaken for a stall.
#[derive(Clone)]
pub(crate) struct Pulse {
    origin: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Pulse {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// Shared by everything that feeds a session.
#[derive(Clone)]
pub(crate) struct Feed {
    pub tx: Sender<Msg>,
    pub stop: Arc<AtomicBool>,
    pub pulse: Pulse,
}

impl Feed {
    pub fn new(tx: Sender<Msg>) -> Self {
        Self {
            tx,
            stop: Arc::new(AtomicBool::new(false)),
            pulse: Pulse::new(),
        }
    }

    /// Sends a message; false when the consumer has gone away.
    pub fn send(&self, msg: Msg) -> bool {
        !self.stop.load(Ordering::Relaxed) && self.tx.send(msg).is_ok()
    }

    pub fn event(&self, e: Event) -> bool {
        self.send(Msg::Event(Box::new(e)))
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What a stalled session names in its error: the file, and what was being done with it.
pub(crate) struct Watch {
    pub path: PathBuf,
    /// `encoding`, `demuxing`, ...
    pub stage: &'static str,
    pub pulse: Pulse,
}

impl Watch {
    pub fn new(path: &Path, stage: &'static str, feed: &Feed) -> Self {
        Self {
            path: path.to_path_buf(),
            stage,
            pulse: feed.pulse.clone(),
        }
    }
}

/// A running encode or demux: an iterator over [`Event`]s that ends after every track has
/// ended, or after the first error. Memory is bounded by fixed-size queues between stages;
/// a consumer that stops reading pauses the whole pipeline. Dropping it stops the pipeline.
/// A session that shows no progress for [`stall_limit`] ends with [`EncodeError::Stalled`].
pub struct SampleStream {
    rx: Option<Receiver<Msg>>,
    pending: std::collections::VecDeque<Event>,
    stop: Arc<AtomicBool>,
    pipeline: Option<gst::Pipeline>,
    workers: Vec<JoinHandle<()>>,
    finished: bool,
    watch: Watch,
    stall_limit: Duration,
}

impl SampleStream {
    /// Starts `pipeline` and returns the stream it feeds.
    pub(crate) fn start(
        rx: Receiver<Msg>,
        stop: Arc<AtomicBool>,
        pipeline: gst::Pipeline,
        workers: Vec<JoinHandle<()>>,
        watch: Watch,
    ) -> Result<Self, EncodeError> {
        // Wrapped first, so that a failed start still stops the pipeline and its threads.
        let path = watch.path.clone();
        let mut stream = Self::without_pipeline(rx, stop, workers, watch);
        stream.pipeline = Some(pipeline.clone());
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| EncodeError::Decode {
                path,
                detail: "the pipeline could not start".into(),
            })?;
        Ok(stream)
    }

    /// A stream fed by plain threads (the native MP4 reader).
    pub(crate) fn without_pipeline(
        rx: Receiver<Msg>,
        stop: Arc<AtomicBool>,
        workers: Vec<JoinHandle<()>>,
        watch: Watch,
    ) -> Self {
        watch.pulse.beat();
        Self {
            rx: Some(rx),
            pending: Default::default(),
            stop,
            pipeline: None,
            workers,
            finished: false,
            watch,
            stall_limit: stall_limit(),
        }
    }

    /// The next message, waiting at most until the session has been quiet for the stall
    /// limit; `None` when every sender has gone.
    fn receive(&mut self) -> Option<Result<Msg, EncodeError>> {
        loop {
            let rx = self.rx.as_ref()?;
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(msg) => {
                    self.watch.pulse.beat();
                    return Some(Ok(msg));
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return None,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.watch.pulse.quiet_for() >= self.stall_limit {
                        return Some(Err(EncodeError::Stalled {
                            path: self.watch.path.clone(),
                            stage: self.watch.stage,
                            seconds: self.stall_limit.as_secs(),
                        }));
                    }
                }
            }
        }
    }

    fn shutdown(&mut self) {
        self.finished = true;
        self.stop.store(true, Ordering::Relaxed);
        // Drop the receiver first so that any stage blocked on a full queue wakes up.
        self.rx.take();
        if let Some(p) = self.pipeline.take() {
            // Stopped mid-stream (an error, a stall, the consumer gone), a streaming thread may
            // be waiting inside the pipeline: the decoded frames' callback for room in a rung
            // size's full appsrc, whose branches wait in turn. Going to Null waits for every
            // streaming thread, sinks first, and a sink whose thread waits on an appsrc that
            // is stopped after it never stops. A flush first releases every such wait.
            p.send_event(gst::event::FlushStart::new());
            let _ = p.set_state(gst::State::Null);
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Iterator for SampleStream {
    type Item = Result<Event, EncodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.pop_front() {
            return Some(Ok(e));
        }
        if self.finished {
            return None;
        }
        match self.receive() {
            Some(Ok(Msg::Event(e))) => Some(Ok(*e)),
            Some(Ok(Msg::Batch(events))) => {
                self.pending.extend(events);
                self.pending.pop_front().map(Ok)
            }
            Some(Ok(Msg::Error(e))) | Some(Err(e)) => {
                self.shutdown();
                Some(Err(e))
            }
            Some(Ok(Msg::Done)) | None => {
                self.shutdown();
                None
            }
        }
    }
}

impl Drop for SampleStream {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Watches the bus: posts an error on the first error message, and on end-of-stream waits for
/// `after_eos` (encoder threads flushing) before posting `Done`.
pub(crate) fn watch_bus(
    pipeline: &gst::Pipeline,
    feed: Feed,
    path: std::path::PathBuf,
    after_eos: Vec<JoinHandle<()>>,
) -> JoinHandle<()> {
    let bus = pipeline.bus().expect("a pipeline has a bus");
    std::thread::spawn(move || {
        loop {
            if feed.stopped() {
                return;
            }
            let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(100),
                &[gst::MessageType::Error, gst::MessageType::Eos],
            ) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Error(err) => {
                    feed.send(Msg::Error(crate::gst_util::bus_error(&path, err)));
                    return;
                }
                gst::MessageView::Eos(_) => break,
                _ => {}
            }
        }
        for h in after_eos {
            match h.join() {
                Ok(()) => {}
                Err(_) => {
                    feed.send(Msg::Error(EncodeError::Gst(
                        "an encoder thread panicked".into(),
                    )));
                    return;
                }
            }
        }
        feed.send(Msg::Done);
    })
}
