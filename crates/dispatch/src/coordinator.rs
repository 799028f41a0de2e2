//! The coordinator's side: a title's missing units queued on JetStream, the workers' reports
//! followed, finished units copied from the object store into the title's unit store.

use crate::objects::Objects;
use crate::task::{key_of, unit_subject, Report, UnitTask, REPORT_SUBJECTS};
use crate::{blocking, connect, nats_error, DispatchError};
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
use std::time::Duration;

/// How often the coordinator looks in the store for units finished without a report reaching
/// it (it was restarting, or the NATS server was).
const STORE_POLL: Duration = Duration::from_secs(5);
/// How long the object store may fail every request before the title fails.
const STORE_PATIENCE: Duration = Duration::from_secs(120);

/// Units run by `reel worker` processes anywhere, reached through NATS JetStream and an object
/// store they share with this machine.
#[derive(Debug, Clone)]
pub struct NatsWorkers {
    pub nats: String,
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
            .map_err(|e| nats_error(&self.nats, "starting the client")(e.to_string()))?;
        let objects = Arc::new(Objects::open(&self.store, &self.s3)?);
        let queue = rt.block_on(connect(&self.nats, "reel coordinator"))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let coordinator = Coordinator {
            url: self.nats.clone(),
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
            .map_err(|e| nats_error(&self.nats, "starting the coordinator")(e.to_string()))?;
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
        let source_object = self.put_source().await.map_err(|e| (first, e))?;
        let mut outstanding: BTreeMap<String, usize> = BTreeMap::new();
        for &i in &todo {
            if self
                .fetch_if_finished(i, "store")
                .await
                .map_err(|e| (i, e))?
            {
                continue;
            }
            self.queue(i, &source_object).await.map_err(|e| (i, e))?;
            outstanding.insert(self.units[i].key.clone(), i);
        }
        let mut poll = tokio::time::interval(STORE_POLL);
        // Since when every look into the store has failed.
        let mut store_down: Option<tokio::time::Instant> = None;
        let mut halt = tokio::time::interval(Duration::from_millis(200));
        while !outstanding.is_empty() {
            tokio::select! {
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
                    if self.handle(i, report).await {
                        outstanding.remove(&self.units[i].key);
                    }
                }
                _ = poll.tick() => {
                    let waiting: Vec<usize> = outstanding.values().copied().collect();
                    for i in waiting {
                        let worker = self.running.get(&i).map(|r| r.0.clone()).unwrap_or_else(|| "a worker".into());
                        match self.fetch_if_finished(i, &worker).await {
                            Ok(finished) => {
                                store_down = None;
                                if finished {
                                    outstanding.remove(&self.units[i].key);
                                }
                            }
                            Err(e) => {
                                let since = *store_down.get_or_insert_with(tokio::time::Instant::now);
                                if since.elapsed() > STORE_PATIENCE {
                                    return Err((i, e));
                                }
                            }
                        }
                    }
                }
                _ = halt.tick() => {
                    if self.stop.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
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

    /// The source, in the store for the workers (put once per content).
    async fn put_source(&self) -> Result<String, DispatchError> {
        let (objects, unit) = (self.objects.clone(), self.units[0].clone());
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
