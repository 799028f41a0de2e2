//! The event stream every encode or demux session produces.

use crate::EncodeError;
use crossbeam_channel::{Receiver, Sender};
use gstreamer as gst;
use gstreamer::prelude::*;
use reel_media::{EncodedSample, Picture, TrackInfo};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

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
}

pub(crate) enum Msg {
    Event(Event),
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

/// Shared by everything that feeds a session.
#[derive(Clone)]
pub(crate) struct Feed {
    pub tx: Sender<Msg>,
    pub stop: Arc<AtomicBool>,
}

impl Feed {
    /// Sends a message; false when the consumer has gone away.
    pub fn send(&self, msg: Msg) -> bool {
        !self.stop.load(Ordering::Relaxed) && self.tx.send(msg).is_ok()
    }

    pub fn event(&self, e: Event) -> bool {
        self.send(Msg::Event(e))
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A running encode or demux: an iterator over [`Event`]s that ends after every track has
/// ended, or after the first error. Memory is bounded by fixed-size queues between stages;
/// a consumer that stops reading pauses the whole pipeline. Dropping it stops the pipeline.
pub struct SampleStream {
    rx: Option<Receiver<Msg>>,
    pending: std::collections::VecDeque<Event>,
    stop: Arc<AtomicBool>,
    pipeline: Option<gst::Pipeline>,
    workers: Vec<JoinHandle<()>>,
    finished: bool,
}

impl SampleStream {
    pub(crate) fn new(
        rx: Receiver<Msg>,
        stop: Arc<AtomicBool>,
        pipeline: gst::Pipeline,
        workers: Vec<JoinHandle<()>>,
    ) -> Self {
        let mut s = Self::without_pipeline(rx, stop, workers);
        s.pipeline = Some(pipeline);
        s
    }

    /// Starts `pipeline` and returns the stream it feeds.
    pub(crate) fn start(
        rx: Receiver<Msg>,
        stop: Arc<AtomicBool>,
        pipeline: gst::Pipeline,
        workers: Vec<JoinHandle<()>>,
        path: &std::path::Path,
    ) -> Result<Self, EncodeError> {
        // Wrapped first, so that a failed start still stops the pipeline and its threads.
        let stream = Self::new(rx, stop, pipeline.clone(), workers);
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| EncodeError::Decode {
                path: path.to_path_buf(),
                detail: "the pipeline could not start".into(),
            })?;
        Ok(stream)
    }

    /// A stream fed by plain threads (the native MP4 reader).
    pub(crate) fn without_pipeline(
        rx: Receiver<Msg>,
        stop: Arc<AtomicBool>,
        workers: Vec<JoinHandle<()>>,
    ) -> Self {
        Self {
            rx: Some(rx),
            pending: Default::default(),
            stop,
            pipeline: None,
            workers,
            finished: false,
        }
    }

    fn shutdown(&mut self) {
        self.finished = true;
        self.stop.store(true, Ordering::Relaxed);
        // Drop the receiver first so that any stage blocked on a full queue wakes up.
        self.rx.take();
        if let Some(p) = self.pipeline.take() {
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
        let msg = self.rx.as_ref()?.recv();
        match msg {
            Ok(Msg::Event(e)) => Some(Ok(e)),
            Ok(Msg::Batch(events)) => {
                self.pending.extend(events);
                self.pending.pop_front().map(Ok)
            }
            Ok(Msg::Error(e)) => {
                self.shutdown();
                Some(Err(e))
            }
            Ok(Msg::Done) | Err(_) => {
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
