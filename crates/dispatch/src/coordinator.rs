//! The coordinator's side: a title's missing units queued on JetStream, the workers' reports
//! followed, finished units copied from the object store into the title's unit store.

use crate::objects::Objects;
use crate::task::{key_of, unit_subject, Report, UnitTask, CONSUMER, REPORT_SUBJECTS};
use crate::{blocking, connect, nats_error, without_credentials, DispatchError, NatsAccess};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use crossbeam_channel::{Receiver, Sender};
use futures_util::StreamExt;
use reel_encoder::{Event, Progress};
use reel_publish::S3Options;
use reel_units::{PoolMsg, RunningUnits, Unit, UnitError, UnitStore, Workers};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the coordinator looks in the store for units finished without a report reaching
/// it (it was restarting, or the NATS server was).
const STORE_POLL: Duration = Duration::from_secs(5);
/// The longest gap between looks into the store for a unit nobody reports on (a unit waiting
/// in the queue is looked at after 5, 10, 20, 40, 40... s, not every 5 s: a title of a
/// thousand queued units costs the store 25 requests a second, not 200).
const MAX_LOOK_GAP: Duration = Duration::from_secs(40);

/// When the store is next looked at for one unit. A report on the unit puts the next look
/// [`STORE_POLL`] after it (a unit in a worker's hands reports every 4 s, so it is never
/// looked at); each look that finds nothing doubles the gap, up to [`MAX_LOOK_GAP`].
struct Look {
    next: Instant,
    gap: Duration,
}

impl Look {
    fn new() -> Look {
        Look {
            next: Instant::now() + STORE_POLL,
            gap: STORE_POLL,
        }
    }

    fn later(&mut self) {
        self.gap = (self.gap * 2).min(MAX_LOOK_GAP);
        self.next = Instant::now() + self.gap;
    }
}

/// How often a title whose units wait behind other work is told so.
const WAITING_NOTE_EVERY: Duration = Duration::from_secs(60);

/// How long the object store may fail every request before the title fails.
const STORE_PATIENCE: Duration = Duration::from_secs(120);

/// Units run by `reel worker` processes anywhere, reached through NATS JetStream and an object
/// store they share with this machine.
#[derive(Debug, Clone)]
pub struct NatsWorkers {
    pub nats: NatsAccess,
    /// `s3://bucket/prefix` or a folder every worker can read.
    pub store: String,
    pub s3: S3Options,
}

impl Workers for NatsWorkers {
    fn start(
        &self,
        units: Arc<Vec<Unit>>,
        todo: Vec<usize>,
        store: UnitStore,
        cancel: Arc<AtomicBool>,
    ) -> Result<Box<dyn RunningUnits>, UnitError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| nats_error(&self.nats.url, "starting the client")(e.to_string()))?;
        let objects = Arc::new(Objects::open(&self.store, &self.s3)?);
        let queue = rt.block_on(connect(&self.nats, "reel coordinator"))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let coordinator = Coordinator {
            url: self.nats.url.clone(),
            client: queue.client,
            js: queue.js,
            stream: queue.stream,
            objects,
            units,
            store,
            tx,
            stop: stop.clone(),
            cancel,
            running: BTreeMap::new(),
            told_waiting: None,
        };
        let handle = std::thread::Builder::new()
            .name("nats-coordinator".into())
            .spawn(move || {
                let tx = coordinator.tx.clone();
                if let Err((unit, e)) = rt.block_on(coordinator.run(todo)) {
                    let _ = tx.send(PoolMsg::Failed {
                        unit,
                        error: e.into(),
                    });
                }
            })
            .map_err(|e| nats_error(&self.nats.url, "starting the coordinator")(e.to_string()))?;
        Ok(Box::new(RemoteUnits {
            rx,
            stop,
            handle: Some(handle),
        }))
    }
}

struct RemoteUnits {
    rx: Receiver<PoolMsg>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl RunningUnits for RemoteUnits {
    fn reports(&self) -> &Receiver<PoolMsg> {
        &self.rx
    }
}

impl Drop for RemoteUnits {
    /// Stops following the units; the workers go on with what is queued (another run finds
    /// the units finished in the store).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let (_, empty) = crossbeam_channel::unbounded();
        self.rx = empty;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Coordinator {
    url: String,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    stream: async_nats::jetstream::stream::Stream,
    objects: Arc<Objects>,
    units: Arc<Vec<Unit>>,
    store: UnitStore,
    tx: Sender<PoolMsg>,
    stop: Arc<AtomicBool>,
    cancel: Arc<AtomicBool>,
    /// Units a worker has started, by index: the worker and attempt.
    running: BTreeMap<usize, (String, u32)>,
    /// When the title was last told its units wait behind other work.
    told_waiting: Option<Instant>,
}

type Failed = (usize, DispatchError);

impl Coordinator {
    /// Queues `todo` and follows it until every unit is in the local store, one has failed,
    /// or the run stops.
    async fn run(mut self, todo: Vec<usize>) -> Result<(), Failed> {
        let first = todo.first().copied().unwrap_or(0);
        // Subscribed before anything is queued, so no report is missed.
        let mut reports = self.client.subscribe(REPORT_SUBJECTS).await.map_err(|e| {
            (
                first,
                nats_error(&self.url, "subscribing to reports")(e.to_string()),
            )
        })?;
        // Each source once (the title's, and any other file an audio track comes from).
        let mut source_objects: BTreeMap<String, String> = BTreeMap::new();
        let mut outstanding: BTreeMap<String, usize> = BTreeMap::new();
        for &i in &todo {
            if self
                .fetch_if_finished(i, "store")
                .await
                .map_err(|e| (i, e))?
            {
                continue;
            }
            let source = self.units[i].source.clone();
            if !source_objects.contains_key(&source) {
                let object = self.put_source(i).await.map_err(|e| (i, e))?;
                source_objects.insert(source.clone(), object);
            }
            self.queue(i, &source_objects[&source])
                .await
                .map_err(|e| (i, e))?;
            outstanding.insert(self.units[i].key.clone(), i);
        }
        let mut looks: BTreeMap<usize, Look> =
            outstanding.values().map(|&i| (i, Look::new())).collect();
        let mut poll = tokio::time::interval(STORE_POLL);
        let mut check = tokio::time::interval(STORE_POLL);
        // Since when every look into the store has failed.
        let mut store_down: Option<Instant> = None;
        // When a report on one of this title's units last came (or they were queued).
        let mut heard = Instant::now();
        let mut halt = tokio::time::interval(Duration::from_millis(200));
        while !outstanding.is_empty() {
            // Reports first: after a slow look into the store, the reports that came meanwhile
            // are read before anyone judges how long it has been since the last one.
            tokio::select! {
                biased;
                msg = reports.next() => {
                    let Some(msg) = msg else {
                        return Err((first, nats_error(&self.url, "following reports")("the subscription ended".into())));
                    };
                    let Some(&i) = key_of(&msg.subject).and_then(|k| outstanding.get(k)) else {
                        continue;
                    };
                    let Ok(report) = serde_json::from_slice::<Report>(&msg.payload) else {
                        continue;
                    };
                    heard = Instant::now();
                    looks.insert(i, Look::new());
                    if self.handle(i, report).await {
                        outstanding.remove(&self.units[i].key);
                        looks.remove(&i);
                    }
                }
                _ = halt.tick() => {
                    if self.stop.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                }
                _ = poll.tick() => {
                    self.look_in_store(&mut outstanding, &mut looks, &mut store_down).await?;
                }
                _ = check.tick() => {
                    self.check_workers(heard, first, &mut outstanding).await?;
                }
            }
        }
        Ok(())
    }

    /// Looks into the store for the outstanding units that are due (see [`Look`]): a unit
    /// whose reports were lost is found finished all the same. A store that fails every
    /// look for [`STORE_PATIENCE`] fails the title.
    async fn look_in_store(
        &mut self,
        outstanding: &mut BTreeMap<String, usize>,
        looks: &mut BTreeMap<usize, Look>,
        store_down: &mut Option<Instant>,
    ) -> Result<(), Failed> {
        let now = Instant::now();
        let due: Vec<usize> = looks
            .iter()
            .filter(|(_, l)| l.next <= now)
            .map(|(&i, _)| i)
            .collect();
        for i in due {
            let worker = self
                .running
                .get(&i)
                .map(|r| r.0.clone())
                .unwrap_or_else(|| "a worker".into());
            match self.fetch_if_finished(i, &worker).await {
                Ok(true) => {
                    *store_down = None;
                    outstanding.remove(&self.units[i].key);
                    looks.remove(&i);
                }
                Ok(false) => {
                    *store_down = None;
                    if let Some(l) = looks.get_mut(&i) {
                        l.later();
                    }
                }
                Err(e) => {
                    if store_down.get_or_insert(now).elapsed() > STORE_PATIENCE {
                        return Err((i, e));
                    }
                }
            }
        }
        Ok(())
    }

    /// When nothing has been heard of this title's units for the stall bound, asks JetStream
    /// whether any worker holds a unit (of any title). If one does, the units wait their turn
    /// in a shared queue: the title is told it is waiting, not stalled. If none does but units
    /// wait in the queue, no worker is taking units at all. If the queue is empty, the units
    /// ended without a report reaching us: those the store has are done; any other left the
    /// queue unfinished, and the title fails saying so.
    async fn check_workers(
        &mut self,
        heard: Instant,
        first: usize,
        outstanding: &mut BTreeMap<String, usize>,
    ) -> Result<(), Failed> {
        let limit = reel_encoder::stall_limit();
        if heard.elapsed() < limit
            || self
                .told_waiting
                .is_some_and(|t| t.elapsed() < WAITING_NOTE_EVERY)
        {
            return Ok(());
        }
        let info = self.stream.consumer_info(CONSUMER).await.map_err(|e| {
            (
                first,
                nats_error(&self.url, "asking for the workers' queue")(e.to_string()),
            )
        })?;
        if info.num_ack_pending > 0 {
            self.told_waiting = Some(Instant::now());
            let _ = self.tx.send(PoolMsg::Waiting {
                detail: format!(
                    "{} units of every title are waiting in the queue and {} in workers' hands",
                    info.num_pending, info.num_ack_pending
                ),
            });
            return Ok(());
        }
        let waited = heard.elapsed().as_secs();
        if info.num_pending > 0 {
            return Err((
                first,
                nats_error(&self.url, "waiting for workers")(format!(
                    "no worker has taken a unit for {waited} s ({} units waiting): is a `reel worker --nats {} --store ...` running?",
                    info.num_pending,
                    without_credentials(&self.url),
                )),
            ));
        }
        let mut lost = Vec::new();
        let pending: Vec<usize> = outstanding.values().copied().collect();
        for i in pending {
            if self
                .fetch_if_finished(i, "a worker")
                .await
                .map_err(|e| (i, e))?
            {
                outstanding.remove(&self.units[i].key);
            } else {
                lost.push(i);
            }
        }
        match lost.first() {
            None => Ok(()),
            Some(&i) => Err((
                i,
                nats_error(&self.url, "waiting for workers")(format!(
                    "{} units (the first: {}) are neither queued, nor in a worker's hands, nor finished in the store, and no word of them came for {waited} s: run the title again to queue them anew",
                    lost.len(),
                    self.units[i].name(),
                )),
            )),
        }
    }

    /// Passes a worker's report on; true once the unit needs no more following (it is in the
    /// local store, or failed for good).
    async fn handle(&mut self, i: usize, report: Report) -> bool {
        match report {
            Report::Started { worker, attempt } => {
                if let Some((before, _)) = self.running.insert(i, (worker.clone(), attempt)) {
                    // Delivered again without a word from the worker that had it: it died,
                    // or lost its connection, and JetStream's ack wait ran out.
                    let _ = self.tx.send(PoolMsg::Retrying {
                        unit: i,
                        attempt: attempt.saturating_sub(1).max(1),
                        error: format!("{before} stopped reporting on it"),
                    });
                }
                let _ = self.tx.send(PoolMsg::Started {
                    unit: i,
                    worker,
                    attempt,
                });
            }
            Report::Progress { frames, fps, .. } => {
                for (track, frames_done) in frames {
                    let _ = self.tx.send(PoolMsg::Event {
                        unit: i,
                        event: Event::Progress(Progress {
                            track,
                            frames_done,
                            frames_total: None,
                            fps,
                            eta: None,
                        }),
                    });
                }
            }
            Report::Done { worker, .. } => {
                // A store that fails now is tried again at the next poll, within patience.
                return self.fetch_if_finished(i, &worker).await.unwrap_or(false);
            }
            Report::Retrying { attempt, error, .. } => {
                self.running.remove(&i);
                let _ = self.tx.send(PoolMsg::Retrying {
                    unit: i,
                    attempt,
                    error,
                });
            }
            Report::Failed {
                worker,
                attempts,
                error,
            } => {
                let unit = &self.units[i];
                let _ = self.tx.send(PoolMsg::Failed {
                    unit: i,
                    error: UnitError::Failed {
                        source_path: unit.plan.source.path.clone(),
                        unit: unit.name(),
                        attempts,
                        detail: format!("{error} (on {worker})"),
                    },
                });
                return true;
            }
        }
        false
    }

    /// Unit `i`'s source, in the store for the workers (put once per content).
    async fn put_source(&self, i: usize) -> Result<String, DispatchError> {
        let (objects, unit) = (self.objects.clone(), self.units[i].clone());
        blocking(move || objects.put_source(&unit.plan.source.path, &unit.source)).await
    }

    /// Copies unit `i` into the local store when the object store has it finished, and says
    /// so (as done by `worker`).
    async fn fetch_if_finished(&mut self, i: usize, worker: &str) -> Result<bool, DispatchError> {
        let (objects, store, key) = (
            self.objects.clone(),
            self.store.clone(),
            self.units[i].key.clone(),
        );
        let record = blocking(move || {
            let Some(record) = objects.unit_record(&key)? else {
                return Ok(None);
            };
            if store.finished(&key).is_none() {
                objects.get_unit(&record, &store)?;
            }
            Ok(Some(record))
        })
        .await?;
        let Some(record) = record else {
            return Ok(false);
        };
        self.running.remove(&i);
        let _ = self.tx.send(PoolMsg::Done {
            unit: i,
            worker: worker.to_string(),
            record,
        });
        Ok(true)
    }

    /// Queues unit `i` unless it is queued already (waiting, or in a worker's hands).
    async fn queue(&self, i: usize, source_object: &str) -> Result<(), DispatchError> {
        let unit = &self.units[i];
        let subject = unit_subject(&unit.key);
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
            Err(e) => {
                return Err(nats_error(&self.url, "looking up a queued unit")(
                    e.to_string(),
                ))
            }
        }
        let task = UnitTask {
            key: unit.key.clone(),
            work: unit.work,
            plan: unit.plan.clone(),
            source_sha256: unit.source.clone(),
            source_object: source_object.to_string(),
        };
        let body = serde_json::to_vec(&task).expect("a unit task serializes");
        self.js
            .publish(subject, body.into())
            .await
            .map_err(|e| nats_error(&self.url, "queueing a unit")(e.to_string()))?
            .await
            .map_err(|e| nats_error(&self.url, "queueing a unit")(e.to_string()))?;
        Ok(())
    }
}
