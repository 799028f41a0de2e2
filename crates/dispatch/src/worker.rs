//! `reel worker`: pulls units from the work queue (in `--units` lanes, one unit at a time
//! each), encodes each, puts its files and record into the object store and only then
//! acknowledges it.

use crate::objects::{Objects, SourceAccess};
use crate::task::{key_of, report_subject, Report, UnitTask};
use crate::{blocking, connect, DispatchError, NatsAccess, PROGRESS_EVERY};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use reel_encoder::Event;
use reel_publish::S3Options;
use reel_units::{run_unit, Unit, UnitRecord, UnitStore, UnitWork, ATTEMPTS};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A failed unit goes back on the queue after this long times its attempt, so that a fault
/// that passes (an object store restarting) does not use up every attempt at once.
const RETRY_DELAY: Duration = Duration::from_secs(4);

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub nats: NatsAccess,
    /// The object store shared with the coordinator: `s3://bucket/prefix` or a folder.
    pub store: String,
    pub s3: S3Options,
    /// Its own folder: units being encoded, sources copied from S3 for audio units.
    pub work: PathBuf,
    /// Its name in reports and logs (host and process by default).
    pub name: String,
    /// Units encoded at a time (each takes its own message from the queue).
    pub units_at_once: usize,
    /// Set it to stop taking units; the units in hand are finished first.
    pub stop: Arc<AtomicBool>,
}

/// What a worker did with one unit, for its log.
#[derive(Debug, Clone)]
pub struct UnitLog {
    pub key: String,
    pub unit: String,
    pub attempt: u32,
    pub outcome: Outcome,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Encoded {
        fps: f64,
        bytes: u64,
    },
    /// Another worker had finished it already.
    AlreadyDone,
    /// Failed; it goes back on the queue.
    Retrying(String),
    /// Failed on its last attempt, or cannot run here: off the queue.
    Failed(String),
}

/// Runs until `opts.stop` is set; every unit it handles goes to `log`.
pub fn run(opts: &WorkerOptions, log: &mut dyn FnMut(&UnitLog)) -> Result<(), DispatchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| DispatchError::Io {
            path: opts.work.clone(),
            source,
        })?;
    let objects = Arc::new(Objects::open(&opts.store, &opts.s3)?);
    let units = UnitStore::open(&opts.work.join("units"))?;
    rt.block_on(async {
        let queue = connect(&opts.nats, &format!("reel worker {}", opts.name)).await?;
        let worker = Worker {
            opts,
            client: queue.client,
            objects,
            units,
        };
        // Each lane takes one unit at a time; they share the log (one task: no locking).
        let log = std::cell::RefCell::new(log);
        let lanes =
            (0..opts.units_at_once.max(1)).map(|_| worker.take_units(&queue.consumer, &log));
        futures_util::future::join_all(lanes).await;
        Ok(())
    })
}

struct Worker<'a> {
    opts: &'a WorkerOptions,
    client: async_nats::Client,
    objects: Arc<Objects>,
    units: UnitStore,
}

impl Worker<'_> {
    /// Takes units one at a time until told to stop.
    async fn take_units(
        &self,
        consumer: &jetstream::consumer::PullConsumer,
        log: &std::cell::RefCell<&mut dyn FnMut(&UnitLog)>,
    ) {
        while !self.opts.stop.load(Ordering::Relaxed) {
            let batch = consumer
                .fetch()
                .max_messages(1)
                .expires(Duration::from_secs(2))
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    // The server is away (restarting, say): the client reconnects by itself.
                    tracing::warn!(error = %e, "fetching a unit failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(msg) = batch.next().await {
                match msg {
                    Ok(msg) => {
                        let entry = self.serve(msg).await;
                        reel_units::release_freed_memory();
                        if let Some(entry) = entry {
                            (log.borrow_mut())(&entry);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "receiving a unit failed"),
                }
            }
        }
    }

    /// Handles one delivery of a unit; what happened, for the log.
    async fn serve(&self, msg: jetstream::Message) -> Option<UnitLog> {
        let started = Instant::now();
        let attempt = msg.info().map(|i| i.delivered.max(1) as u32).unwrap_or(1);
        let key = key_of(&msg.subject)?.to_string();
        let task: UnitTask = match serde_json::from_slice(&msg.payload) {
            Ok(t) => t,
            Err(e) => {
                let error = format!("the queued unit is not readable: {e}");
                return Some(self.give_up(&msg, &key, "?", attempt, error, started).await);
            }
        };
        let name = task.work.name(task.plan.frame_rate);
        if attempt > ATTEMPTS {
            let error = format!(
                "delivered {attempt} times and never finished: the workers that had it stopped \
                 reporting (killed, crashed, or cut off from the NATS server)"
            );
            return Some(
                self.give_up(&msg, &key, &name, attempt, error, started)
                    .await,
            );
        }
        match self.encode(&task, attempt, &msg).await {
            Ok(encoded) => {
                let (record, outcome) = match encoded {
                    Encoded::Now(record) => {
                        let bytes = record.files().map(|(_, bytes)| bytes).sum();
                        let fps = task.work.frames() as f64 / record.seconds.max(1e-9);
                        (record, Outcome::Encoded { fps, bytes })
                    }
                    Encoded::Earlier(record) => (record, Outcome::AlreadyDone),
                };
                let worker = self.opts.name.clone();
                self.report(
                    &key,
                    &Report::Done {
                        worker,
                        record: Box::new(record),
                    },
                )
                .await;
                ack(&msg, AckKind::Ack).await;
                Some(self.entry(&key, &name, attempt, outcome, started))
            }
            Err(Failure::Never(error)) => Some(
                self.give_up(&msg, &key, &name, attempt, error, started)
                    .await,
            ),
            Err(Failure::ThisTime(error)) if attempt >= ATTEMPTS => Some(
                self.give_up(&msg, &key, &name, attempt, error, started)
                    .await,
            ),
            Err(Failure::ThisTime(error)) => {
                self.report(
                    &key,
                    &Report::Retrying {
                        worker: self.opts.name.clone(),
                        attempt,
                        error: error.clone(),
                    },
                )
                .await;
                ack(&msg, AckKind::Nak(Some(RETRY_DELAY * attempt))).await;
                Some(self.entry(&key, &name, attempt, Outcome::Retrying(error), started))
            }
        }
    }

    /// Encodes the unit unless the store has it, telling JetStream it is in progress while it
    /// runs; puts the result into the store.
    async fn encode(
        &self,
        task: &UnitTask,
        attempt: u32,
        msg: &jetstream::Message,
    ) -> Result<Encoded, Failure> {
        let objects = self.objects.clone();
        let key = task.key.clone();
        if let Some(record) = blocking(move || objects.unit_record(&key)).await? {
            return Ok(Encoded::Earlier(record));
        }
        let unit = rebuild(task)?;
        self.report(
            &task.key,
            &Report::Started {
                worker: self.opts.name.clone(),
                attempt,
            },
        )
        .await;
        let (objects, units, cache) = (
            self.objects.clone(),
            self.units.clone(),
            self.opts.work.join("sources"),
        );
        let source_object = task.source_object.clone();
        let frames: Arc<Mutex<(BTreeMap<u32, u64>, f64)>> = Arc::default();
        let seen = frames.clone();
        let mut job = tokio::task::spawn_blocking(move || {
            // Encoded here before, but the store failed to take it: put it again, unencoded.
            if let Some(record) = units.finished(&unit.key) {
                objects.put_unit(&units, &record)?;
                units.remove(std::slice::from_ref(&record.key));
                return Ok(record);
            }
            let mut unit = unit;
            // A chunk reads the ranges it needs. The audio is one unit that reads every byte
            // of an interleaved source anyway; it reads a whole copy as a file, as a local run
            // does: streamed, qtdemux ends AAC audio up to 513 samples differently (measured:
            // 576,001 samples against 575,488 for 12.000 s), and the audio would no longer
            // be the local run's bytes.
            let how = match unit.work {
                UnitWork::Audio => SourceAccess::Copy,
                UnitWork::Video { .. } => SourceAccess::Ranges,
            };
            let source = objects.source(&source_object, &unit.source, how, &cache)?;
            unit.plan.source.path = source.path;
            unit.plan.source_url = source.url;
            let record = run_unit(&unit, &units, &|| false, &mut |event| {
                if let Event::Progress(p) = event {
                    let mut seen = seen.lock().expect("progress lock");
                    seen.0.insert(p.track, p.frames_done);
                    seen.1 = p.fps;
                }
            })?;
            objects.put_unit(&units, &record)?;
            units.remove(std::slice::from_ref(&record.key));
            Ok::<UnitRecord, DispatchError>(record)
        });
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.tick().await;
        let result = loop {
            tokio::select! {
                r = &mut job => break r,
                _ = tick.tick() => {
                    ack(msg, AckKind::Progress).await;
                    let (frames, fps) = {
                        let f = frames.lock().expect("progress lock");
                        (f.0.iter().map(|(t, n)| (*t, *n)).collect(), f.1)
                    };
                    self.report(&task.key, &Report::Progress {
                        worker: self.opts.name.clone(),
                        frames,
                        fps,
                    })
                    .await;
                }
            }
        };
        match result {
            Ok(Ok(record)) => Ok(Encoded::Now(record)),
            Ok(Err(e)) => Err(Failure::ThisTime(e.to_string())),
            Err(e) => Err(Failure::ThisTime(format!("the encode panicked: {e}"))),
        }
    }

    async fn give_up(
        &self,
        msg: &jetstream::Message,
        key: &str,
        name: &str,
        attempt: u32,
        error: String,
        started: Instant,
    ) -> UnitLog {
        self.report(
            key,
            &Report::Failed {
                worker: self.opts.name.clone(),
                attempts: attempt,
                error: error.clone(),
            },
        )
        .await;
        ack(msg, AckKind::Term).await;
        self.entry(key, name, attempt, Outcome::Failed(error), started)
    }

    async fn report(&self, key: &str, report: &Report) {
        let body = serde_json::to_vec(report).expect("a report serializes");
        if let Err(e) = self.client.publish(report_subject(key), body.into()).await {
            // Reports are a fast path; the store and the queue are what decide.
            tracing::warn!(unit = key, error = %e, "a report was not sent");
        }
        let _ = self.client.flush().await;
    }

    fn entry(&self, key: &str, name: &str, attempt: u32, outcome: Outcome, t: Instant) -> UnitLog {
        UnitLog {
            key: key.to_string(),
            unit: name.to_string(),
            attempt,
            outcome,
            seconds: t.elapsed().as_secs_f64(),
        }
    }
}

enum Encoded {
    Now(UnitRecord),
    Earlier(UnitRecord),
}

enum Failure {
    /// Another attempt may succeed (a worker elsewhere, a passing fault).
    ThisTime(String),
    /// No attempt can: the unit is not one this worker can make as asked.
    Never(String),
}

impl From<DispatchError> for Failure {
    fn from(e: DispatchError) -> Self {
        Failure::ThisTime(e.to_string())
    }
}

/// The unit again from its parts and this worker's encoders: its key must come out the same,
/// or this worker would make different bytes under the same name.
fn rebuild(task: &UnitTask) -> Result<Unit, Failure> {
    let encoders = task
        .plan
        .encoders()
        .map_err(|e| Failure::Never(format!("this worker cannot encode the unit: {e}")))?;
    let unit = Unit::new(task.work, task.plan.clone(), &task.source_sha256, &encoders);
    if unit.key != task.key {
        let versions: Vec<String> = encoders.iter().map(|(n, v)| format!("{n} {v}")).collect();
        return Err(Failure::Never(format!(
            "this worker's encoders ({}) are not the ones the unit was planned with",
            versions.join(", ")
        )));
    }
    Ok(unit)
}

async fn ack(msg: &jetstream::Message, kind: AckKind) {
    if let Err(e) = msg.ack_with(kind).await {
        tracing::warn!(subject = %msg.subject, error = %e, "an acknowledgement was not sent");
    }
}
