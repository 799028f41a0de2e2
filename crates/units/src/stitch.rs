//! A title encoded as units and stitched back: the same [`Event`] stream a whole-title encode
//! gives (every track announced first, then samples in order per track, then each track's
//! end), made from unit outputs as they finish, in order.
//!
//! Joins: every chunk's samples are moved by the chunk's start on the title's frame grid, so
//! timestamps run on exactly across joins; a chunk's codec configuration must equal the first
//! chunk's, and decode times must keep rising, or the stitch fails naming the chunk. Audio is
//! one unit for the whole title, so it has no joins: its samples are interleaved with the
//! video's chunk by chunk.

use crate::error::UnitError;
use crate::pool::{PoolMsg, RunningUnits, Workers};
use crate::store::{UnitRecord, UnitStore};
use crate::unit::{Unit, UnitWork};
use reel_encoder::{EncodePlan, Event, Progress, SampleStream};
use reel_media::{CodecConfig, EncodedSample, Picture};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many units are where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnitCounts {
    pub total: usize,
    /// Finished, by this run or (reused) by an earlier one.
    pub done: usize,
    pub reused: usize,
    pub running: usize,
    /// Attempts that failed (the unit was tried again, or the title failed).
    pub failed_attempts: usize,
}

/// What happens to units, for progress displays and `--json` event streams.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum UnitEvent {
    Planned {
        counts: UnitCounts,
    },
    Started {
        unit: String,
        worker: String,
        attempt: u32,
        counts: UnitCounts,
    },
    Done {
        unit: String,
        worker: String,
        seconds: f64,
        /// Frames per second per rung (0 for the audio unit).
        fps: f64,
        counts: UnitCounts,
    },
    Retrying {
        unit: String,
        attempt: u32,
        error: String,
        counts: UnitCounts,
    },
}

/// What a chunked encode yields.
#[derive(Debug, Clone)]
pub enum ChunkEvent {
    Media(Event),
    Unit(UnitEvent),
}

/// How to run a title's units.
#[derive(Clone)]
pub struct ChunkedOptions {
    /// Where the units run: [`LocalWorkers`](crate::LocalWorkers) or remote workers.
    pub workers: Arc<dyn Workers>,
    /// Set it to stop at the next event; finished units stay for the next run.
    pub cancel: Arc<AtomicBool>,
}

/// One audio track being interleaved: its file's events, and the next sample.
struct AudioFeed {
    track: u32,
    timescale: u32,
    stream: SampleStream,
    next: Option<EncodedSample>,
}

/// Where the stitch is.
enum Stage {
    /// Waiting for the first chunk (and the audio) to announce every track.
    Start,
    /// Reading rung `rung` of video unit `chunk` (an index into `video`).
    Chunk {
        chunk: usize,
        rung: usize,
        reader: Option<SampleStream>,
    },
    /// Every chunk stitched: the rest of the audio, then every track's end.
    Tail,
    /// Every track's end handed over: the units' folders go.
    Cleanup,
    Done,
}

/// A title's units, run on a local pool (the ones no earlier run finished) and stitched.
pub struct ChunkedEncode {
    plan: EncodePlan,
    units: Arc<Vec<Unit>>,
    store: UnitStore,
    records: Vec<Option<UnitRecord>>,
    /// The units of the title's audio tracks (its main audio, and any other track from a
    /// stream of the source or another file), and of its video chunks in order.
    audio_units: Vec<usize>,
    video: Vec<usize>,
    pool: Option<Box<dyn RunningUnits>>,
    cancel: Arc<AtomicBool>,
    pending: VecDeque<ChunkEvent>,
    stage: Stage,
    /// Readers of the first chunk's files, opened to announce the rungs.
    first_chunk: Vec<Option<SampleStream>>,
    audio: Vec<AudioFeed>,
    configs: BTreeMap<u32, CodecConfig>,
    last_dts: BTreeMap<u32, i64>,
    /// Chunks whose pictures (thumbnails, still) are handed over.
    pictures_sent: usize,
    /// Frames done per unit and track, for progress over the title.
    frames: Vec<BTreeMap<u32, u64>>,
    reused_frames: u64,
    counts: UnitCounts,
    started: Instant,
    last_message: Instant,
}

impl ChunkedEncode {
    /// Plans nothing itself: runs `units` (of `plan`, from [`title_units`](crate::title_units))
    /// that `store` does not hold finished on `opts.workers`, and stitches them.
    pub fn start(
        plan: EncodePlan,
        units: Vec<Unit>,
        store: UnitStore,
        opts: &ChunkedOptions,
    ) -> Result<Self, UnitError> {
        let records: Vec<Option<UnitRecord>> =
            units.iter().map(|u| store.finished(&u.key)).collect();
        let todo: Vec<usize> = (0..units.len()).filter(|&i| records[i].is_none()).collect();
        let reused = units.len() - todo.len();
        let (audio_units, video): (Vec<usize>, Vec<usize>) =
            (0..units.len()).partition(|&i| units[i].work == UnitWork::Audio);
        let reused_frames = units
            .iter()
            .zip(&records)
            .filter(|(_, r)| r.is_some())
            .map(|(u, _)| u.frames())
            .sum();
        let units = Arc::new(units);
        let pool = if todo.is_empty() {
            None
        } else {
            Some(
                opts.workers
                    .start(units.clone(), todo, store.clone(), opts.cancel.clone())?,
            )
        };
        let counts = UnitCounts {
            total: units.len(),
            done: reused,
            reused,
            ..Default::default()
        };
        let mut pending = VecDeque::new();
        pending.push_back(ChunkEvent::Unit(UnitEvent::Planned { counts }));
        Ok(Self {
            frames: vec![BTreeMap::new(); units.len()],
            first_chunk: Vec::new(),
            plan,
            units,
            store,
            records,
            audio_units,
            video,
            pool,
            cancel: opts.cancel.clone(),
            pending,
            stage: Stage::Start,
            audio: Vec::new(),
            configs: BTreeMap::new(),
            last_dts: BTreeMap::new(),
            pictures_sent: 0,
            reused_frames,
            counts,
            started: Instant::now(),
            last_message: Instant::now(),
        })
    }

    /// The title's plan.
    pub fn plan(&self) -> &EncodePlan {
        &self.plan
    }

    /// Every unit of the title (their keys name their outputs).
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    fn source(&self) -> std::path::PathBuf {
        self.plan.source.path.clone()
    }

    fn stitch_error(&self, detail: String) -> UnitError {
        UnitError::Stitch {
            path: self.source(),
            detail,
        }
    }

    /// Handles what the pool reported; waits up to `wait` for the first report.
    fn poll(&mut self, wait: Duration) -> Result<(), UnitError> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let first = match pool.reports().recv_timeout(wait) {
            Ok(m) => m,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if self.cancel.load(Ordering::Relaxed) {
                    return Err(UnitError::Cancelled);
                }
                let limit = reel_encoder::stall_limit() + Duration::from_secs(60);
                if self.last_message.elapsed() > limit {
                    return Err(self.stitch_error(format!(
                        "no unit has reported anything for {} s",
                        limit.as_secs()
                    )));
                }
                return Ok(());
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                if self.records.iter().all(Option::is_some) {
                    // Every unit is finished and the workers have gone.
                    self.pool = None;
                    return Ok(());
                }
                return Err(self.stitch_error(
                    "the unit workers stopped before every unit was finished".into(),
                ));
            }
        };
        let more: Vec<PoolMsg> = pool.reports().try_iter().collect();
        self.last_message = Instant::now();
        for msg in std::iter::once(first).chain(more) {
            self.handle(msg)?;
        }
        Ok(())
    }

    fn handle(&mut self, msg: PoolMsg) -> Result<(), UnitError> {
        match msg {
            PoolMsg::Started {
                unit,
                worker,
                attempt,
            } => {
                self.counts.running += 1;
                self.frames[unit].clear();
                self.pending.push_back(ChunkEvent::Unit(UnitEvent::Started {
                    unit: self.units[unit].name(),
                    worker,
                    attempt,
                    counts: self.counts,
                }));
            }
            PoolMsg::Event { unit, event } => match event {
                Event::Progress(p) => {
                    self.frames[unit].insert(p.track, p.frames_done);
                    self.push_progress(p.track);
                }
                Event::Notice(n) => {
                    self.pending
                        .push_back(ChunkEvent::Media(Event::Notice(format!(
                            "{}: {n}",
                            self.units[unit].name()
                        ))))
                }
                other => self.pending.push_back(ChunkEvent::Media(other)),
            },
            PoolMsg::Done {
                unit,
                worker,
                record,
            } => {
                self.counts.running = self.counts.running.saturating_sub(1);
                self.counts.done += 1;
                let frames = self.units[unit].frames();
                for r in &self.plan.rungs {
                    self.frames[unit].insert(r.track_id, frames);
                }
                self.pending.push_back(ChunkEvent::Unit(UnitEvent::Done {
                    unit: record.unit.clone(),
                    worker,
                    seconds: record.seconds,
                    fps: frames as f64 / record.seconds.max(1e-9),
                    counts: self.counts,
                }));
                self.records[unit] = Some(record);
            }
            PoolMsg::Retrying {
                unit,
                attempt,
                error,
            } => {
                self.counts.running = self.counts.running.saturating_sub(1);
                self.counts.failed_attempts += 1;
                self.pending
                    .push_back(ChunkEvent::Unit(UnitEvent::Retrying {
                        unit: self.units[unit].name(),
                        attempt,
                        error,
                        counts: self.counts,
                    }));
            }
            PoolMsg::Failed { error, .. } => {
                self.counts.failed_attempts += 1;
                return Err(error);
            }
            PoolMsg::Waiting { detail } => {
                self.pending
                    .push_back(ChunkEvent::Media(Event::Notice(format!(
                        "waiting: {detail}"
                    ))));
            }
        }
        Ok(())
    }

    /// The title's progress for `track`: frames of every unit, finished or running.
    fn push_progress(&mut self, track: u32) {
        // Units reused from earlier runs have no entries here.
        let done: u64 = self.reused_frames
            + self
                .frames
                .iter()
                .map(|f| f.get(&track).copied().unwrap_or(0))
                .sum::<u64>();
        let fps = (done - self.reused_frames.min(done)) as f64
            / self.started.elapsed().as_secs_f64().max(1e-3);
        let total = self.plan.frames_total;
        self.pending
            .push_back(ChunkEvent::Media(Event::Progress(Progress {
                track,
                frames_done: done.min(total),
                frames_total: Some(total),
                fps,
                eta: (fps > 0.0)
                    .then(|| Duration::from_secs_f64(total.saturating_sub(done) as f64 / fps)),
            })));
    }

    /// Waits (reporting progress) until unit `u` is finished; false while there are reports
    /// to hand over first.
    fn ready(&mut self, u: usize) -> Result<bool, UnitError> {
        if self.records[u].is_some() {
            return Ok(true);
        }
        if self.pool.is_none() {
            return Err(self.stitch_error(format!("{} was never finished", self.units[u].name())));
        }
        self.poll(Duration::from_millis(500))?;
        Ok(self.records[u].is_some() && self.pending.is_empty())
    }

    /// A reader of unit `u`'s output for `track`, and the track it announces.
    fn open(
        &self,
        u: usize,
        track: u32,
    ) -> Result<Option<(SampleStream, reel_media::TrackInfo)>, UnitError> {
        let record = self.records[u].as_ref().expect("checked ready");
        let Some(out) = record.outputs.iter().find(|o| o.track == track) else {
            return Ok(None);
        };
        let mut stream = reel_encoder::demux(&self.store.file(&record.key, &out.file))?;
        match stream.next() {
            Some(Ok(Event::Track(mut info))) => {
                info.id = track;
                info.name = out.name.clone();
                Ok(Some((stream, info)))
            }
            Some(Err(e)) => Err(e.into()),
            _ => Err(self.stitch_error(format!(
                "{}: {} does not start with its track",
                record.unit, out.file
            ))),
        }
    }

    /// One step of the stitch; false when it is complete.
    fn step(&mut self) -> Result<bool, UnitError> {
        if self.pool.is_some() {
            self.poll(Duration::ZERO)?;
        }
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Start => self.start_stage(),
            Stage::Chunk {
                chunk,
                rung,
                reader,
            } => self.chunk_stage(chunk, rung, reader),
            Stage::Tail => {
                self.audio_until(i64::MAX)?;
                for r in &self.plan.rungs {
                    self.pending
                        .push_back(ChunkEvent::Media(Event::TrackEnd { track: r.track_id }));
                }
                for a in &self.audio {
                    self.pending
                        .push_back(ChunkEvent::Media(Event::TrackEnd { track: a.track }));
                }
                self.pool = None;
                self.stage = Stage::Cleanup;
                Ok(true)
            }
            Stage::Cleanup => {
                // Only now: the caller took every track's end (and recorded its rendition)
                // before asking for more, so a kill before this point still finds the units.
                let keys: Vec<String> = self.units.iter().map(|u| u.key.clone()).collect();
                self.store.remove(&keys);
                Ok(true)
            }
            Stage::Done => Ok(false),
        }
    }

    /// Announces every track: the audio unit's, and the rungs from the first chunk's files.
    fn start_stage(&mut self) -> Result<bool, UnitError> {
        let needed: Vec<usize> = self
            .audio_units
            .iter()
            .chain(self.video.first())
            .copied()
            .collect();
        for u in needed {
            if !self.ready(u)? {
                self.stage = Stage::Start;
                return Ok(true);
            }
        }
        for a in self.audio_units.clone() {
            let record = self.records[a].clone().expect("ready");
            for out in &record.outputs {
                let (stream, info) = self.open(a, out.track)?.expect("listed output");
                self.audio.push(AudioFeed {
                    track: out.track,
                    timescale: info.timescale,
                    stream,
                    next: None,
                });
                self.pending
                    .push_back(ChunkEvent::Media(Event::Track(info)));
            }
        }
        if let Some(&first) = self.video.first() {
            for r in self.plan.rungs.clone() {
                let Some((stream, info)) = self.open(first, r.track_id)? else {
                    return Err(self.stitch_error(format!(
                        "{} has no output for rung {}",
                        self.units[first].name(),
                        r.name
                    )));
                };
                self.configs.insert(r.track_id, info.config.clone());
                self.first_chunk.push(Some(stream));
                self.pending
                    .push_back(ChunkEvent::Media(Event::Track(info)));
            }
        }
        self.stage = if self.video.is_empty() {
            Stage::Tail
        } else {
            Stage::Chunk {
                chunk: 0,
                rung: 0,
                reader: None,
            }
        };
        Ok(true)
    }

    /// Hands over the next sample of rung `rung` of chunk `chunk`, moving on at each end.
    fn chunk_stage(
        &mut self,
        chunk: usize,
        rung: usize,
        reader: Option<SampleStream>,
    ) -> Result<bool, UnitError> {
        let u = self.video[chunk];
        if !self.ready(u)? {
            self.stage = Stage::Chunk {
                chunk,
                rung,
                reader,
            };
            return Ok(true);
        }
        let UnitWork::Video { range, .. } = self.units[u].work else {
            unreachable!("video units only")
        };
        if self.pictures_sent == chunk {
            // A chunk's pictures go first, so that thumbnails arrive in the title's order.
            self.pictures_sent += 1;
            let record = self.records[u].as_ref().expect("ready");
            let thumbnail: fn(u64, Picture) -> Event =
                |frame, picture| Event::Thumbnail { frame, picture };
            let still: fn(u64, Picture) -> Event = |frame, picture| Event::Still { frame, picture };
            for (pictures, event) in [(&record.thumbnails, thumbnail), (&record.still, still)] {
                let Some(t) = pictures else { continue };
                let path = self.store.file(&record.key, &t.file);
                for (frame, picture) in crate::unit::read_pictures(&path, t)? {
                    self.pending
                        .push_back(ChunkEvent::Media(event(frame, picture)));
                }
            }
        }
        let Some(r) = self.plan.rungs.get(rung).cloned() else {
            // Every rung of this chunk is out: the audio up to the chunk's end follows.
            let end = range.end as i64 * i64::from(self.plan.frame_duration);
            self.audio_until(end)?;
            self.stage = match chunk + 1 < self.video.len() {
                true => Stage::Chunk {
                    chunk: chunk + 1,
                    rung: 0,
                    reader: None,
                },
                false => Stage::Tail,
            };
            return Ok(true);
        };
        let mut reader = match reader {
            Some(r) => Some(r),
            None if chunk == 0 => self.first_chunk.get_mut(rung).and_then(Option::take),
            None => match self.open(u, r.track_id)? {
                Some((stream, info)) => {
                    if self.configs.get(&r.track_id) != Some(&info.config) {
                        return Err(self.stitch_error(format!(
                            "{}: rung {}'s codec configuration differs from the first chunk's",
                            self.units[u].name(),
                            r.name
                        )));
                    }
                    Some(stream)
                }
                // An open last chunk that the source left empty.
                None if !range.exact
                    && self.records[u]
                        .as_ref()
                        .is_some_and(|r| r.outputs.is_empty()) =>
                {
                    None
                }
                None => {
                    return Err(self.stitch_error(format!(
                        "{} has no output for rung {}",
                        self.units[u].name(),
                        r.name
                    )))
                }
            },
        };
        let next = match reader.as_mut() {
            Some(s) => s.next().transpose()?,
            None => None,
        };
        match next {
            Some(Event::Sample { mut sample, .. }) => {
                let offset = range.start as i64 * i64::from(self.plan.frame_duration);
                sample.dts += offset;
                sample.pts += offset;
                if self
                    .last_dts
                    .get(&r.track_id)
                    .is_some_and(|&l| sample.dts <= l)
                {
                    return Err(self.stitch_error(format!(
                        "{}: rung {}'s decode times go back at the join",
                        self.units[u].name(),
                        r.name
                    )));
                }
                self.last_dts.insert(r.track_id, sample.dts);
                self.pending.push_back(ChunkEvent::Media(Event::Sample {
                    track: r.track_id,
                    sample,
                }));
                self.stage = Stage::Chunk {
                    chunk,
                    rung,
                    reader,
                };
            }
            Some(_) => {
                self.stage = Stage::Chunk {
                    chunk,
                    rung,
                    reader,
                }
            }
            None => {
                self.stage = Stage::Chunk {
                    chunk,
                    rung: rung + 1,
                    reader: None,
                }
            }
        }
        Ok(true)
    }

    /// Hands over every audio sample that starts before `video_ticks` (in the video's
    /// timescale).
    fn audio_until(&mut self, video_ticks: i64) -> Result<(), UnitError> {
        let vts = i128::from(self.plan.timescale.max(1));
        for a in &mut self.audio {
            let until = match video_ticks {
                i64::MAX => i64::MAX,
                t => (i128::from(t) * i128::from(a.timescale) / vts) as i64,
            };
            loop {
                if a.next.is_none() {
                    a.next = loop {
                        match a.stream.next().transpose()? {
                            Some(Event::Sample { sample, .. }) => break Some(sample),
                            Some(_) => continue,
                            None => break None,
                        }
                    };
                }
                match a.next.take() {
                    Some(s) if s.pts < until => {
                        self.pending.push_back(ChunkEvent::Media(Event::Sample {
                            track: a.track,
                            sample: s,
                        }))
                    }
                    Some(s) => {
                        a.next = Some(s);
                        break;
                    }
                    None => break,
                }
            }
        }
        Ok(())
    }
}

impl Iterator for ChunkedEncode {
    type Item = Result<ChunkEvent, UnitError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            match self.step() {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => {
                    self.stage = Stage::Done;
                    self.pool = None;
                    return Some(Err(e));
                }
            }
        }
    }
}
