//! Where units run. [`Workers`] starts a title's missing units somewhere and reports, over a
//! channel, what happens to them; the stitch does not care where. The embedded pool,
//! [`LocalWorkers`], runs them on local threads, each attempted a bounded number of times;
//! `reel-dispatch` runs them on workers reached through NATS JetStream.

use crate::error::UnitError;
use crate::store::{UnitRecord, UnitStore};
use crate::unit::{run_unit, Unit};
use crossbeam_channel::{Receiver, Sender};
use reel_encoder::Event;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Attempts per unit before the title fails: a unit that failed for a passing reason (a
/// decoder stall, a full disk freed meanwhile) gets another chance; one that fails every time
/// (a corrupt range of the source) fails the title after the last.
pub const ATTEMPTS: u32 = 3;

/// What the workers report, by unit index.
#[derive(Debug)]
pub enum PoolMsg {
    Started {
        unit: usize,
        /// Which worker: `local-1`, or a remote worker's name (host and process).
        worker: String,
        attempt: u32,
    },
    /// An encoder's progress, notice or still, from inside a unit.
    Event {
        unit: usize,
        event: Event,
    },
    /// The unit's files are in the title's [`UnitStore`].
    Done {
        unit: usize,
        worker: String,
        record: UnitRecord,
    },
    /// An attempt failed and the unit goes back into the queue.
    Retrying {
        unit: usize,
        attempt: u32,
        error: String,
    },
    Failed {
        unit: usize,
        error: UnitError,
    },
    /// Nothing is stalled: the units wait their turn in a queue shared with other titles.
    Waiting {
        detail: String,
    },
}

/// Where a title's units run.
pub trait Workers: Send + Sync {
    /// Runs `todo` (indices into `units`, in order of need) until each is finished into
    /// `store` or has failed for good. Dropping the result stops what it started on this
    /// machine; `cancel` asks the same.
    fn start(
        &self,
        units: Arc<Vec<Unit>>,
        todo: Vec<usize>,
        store: UnitStore,
        cancel: Arc<AtomicBool>,
    ) -> Result<Box<dyn RunningUnits>, UnitError>;
}

/// Units being run: their reports.
pub trait RunningUnits: Send {
    /// Reports until every unit is done (then the channel closes) or one has failed.
    fn reports(&self) -> &Receiver<PoolMsg>;
}

/// How many units of a ladder of `video_rungs` keep `cores` busy: a unit runs its video rungs side by side, each
/// on at least one core (a chunk's x264 runs one thread; rav1e spreads over tiles), so one
/// unit per that many cores, at least one. More would only add work in flight: on two cores a
/// six-rung ladder took the same time with one unit at a time as with two (52.2 s against
/// 52.7 s for 10-s chunks of the 60-s title), and a crash loses half as much.
pub fn units_at_once(video_rungs: usize, cores: usize) -> usize {
    cores.div_ceil(video_rungs.max(1)).max(1)
}

/// The embedded pool: this many threads, each running one unit at a time.
#[derive(Debug, Clone, Copy)]
pub struct LocalWorkers(pub usize);

impl Workers for LocalWorkers {
    fn start(
        &self,
        units: Arc<Vec<Unit>>,
        todo: Vec<usize>,
        store: UnitStore,
        cancel: Arc<AtomicBool>,
    ) -> Result<Box<dyn RunningUnits>, UnitError> {
        Ok(Box::new(LocalPool::start(
            units, todo, store, self.0, cancel,
        )))
    }
}

impl RunningUnits for LocalPool {
    fn reports(&self) -> &Receiver<PoolMsg> {
        &self.rx
    }
}

/// Threads running units. Dropping it stops them at their next event and waits for them.
struct LocalPool {
    rx: Receiver<PoolMsg>,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl LocalPool {
    /// Runs `todo` (indices into `units`, taken in order) on `workers` threads.
    fn start(
        units: Arc<Vec<Unit>>,
        todo: Vec<usize>,
        store: UnitStore,
        workers: usize,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (queue_tx, queue) = crossbeam_channel::unbounded();
        for i in &todo {
            let _ = queue_tx.send(*i);
        }
        drop(queue_tx);
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..workers.clamp(1, todo.len().max(1)))
            .map(|worker| {
                let (units, store, tx, queue) =
                    (units.clone(), store.clone(), tx.clone(), queue.clone());
                let (stop, cancel) = (stop.clone(), cancel.clone());
                std::thread::Builder::new()
                    .name(format!("unit-worker-{worker}"))
                    .spawn(move || {
                        let halted =
                            || stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed);
                        while let Ok(unit) = queue.recv() {
                            if halted() {
                                return;
                            }
                            let name = format!("local-{}", worker + 1);
                            let msg = attempt_unit(&units[unit], unit, &name, &store, &tx, &halted);
                            release_freed_memory();
                            let failed = matches!(msg, PoolMsg::Failed { .. });
                            if tx.send(msg).is_err() || failed {
                                return;
                            }
                        }
                    })
                    .expect("spawning a unit worker")
            })
            .collect();
        LocalPool { rx, stop, handles }
    }
}

/// Hands the memory a finished unit's pipeline freed back to the system. Every unit allocates
/// its decoder's, scaler's and encoders' frames afresh, on fresh threads, while another unit
/// runs beside it; glibc keeps what they free inside its heaps, holed by the other unit's
/// allocations, so without this a 120-s title peaked at 375 MB where a 10-s one took 255 MB.
/// Whatever runs units one after another in a process (a `reel worker`) calls it too.
pub fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs one unit up to [`ATTEMPTS`] times; the message that ends it (`Done` or `Failed`).
fn attempt_unit(
    unit: &Unit,
    index: usize,
    worker: &str,
    store: &UnitStore,
    tx: &Sender<PoolMsg>,
    halted: &dyn Fn() -> bool,
) -> PoolMsg {
    let mut attempt = 1;
    loop {
        let _ = tx.send(PoolMsg::Started {
            unit: index,
            worker: worker.to_string(),
            attempt,
        });
        let result = run_unit(unit, store, halted, &mut |event| {
            let _ = tx.send(PoolMsg::Event { unit: index, event });
        });
        match result {
            Ok(record) => {
                return PoolMsg::Done {
                    unit: index,
                    worker: worker.to_string(),
                    record,
                }
            }
            Err(UnitError::Cancelled) => {
                return PoolMsg::Failed {
                    unit: index,
                    error: UnitError::Cancelled,
                }
            }
            Err(e) if attempt < ATTEMPTS && !halted() => {
                let _ = tx.send(PoolMsg::Retrying {
                    unit: index,
                    attempt,
                    error: e.to_string(),
                });
                attempt += 1;
            }
            Err(e) => {
                return PoolMsg::Failed {
                    unit: index,
                    error: UnitError::Failed {
                        source_path: unit.plan.source.path.clone(),
                        unit: unit.name(),
                        attempts: attempt,
                        detail: e.to_string(),
                    },
                }
            }
        }
    }
}

impl Drop for LocalPool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Receivers gone: a worker blocked on sending wakes up.
        let (_, empty) = crossbeam_channel::unbounded();
        self.rx = empty;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod units_at_once_tests {
    use super::units_at_once;

    #[test]
    fn one_unit_per_rungs_worth_of_cores_and_never_none() {
        assert_eq!(units_at_once(6, 2), 1);
        assert_eq!(units_at_once(6, 8), 2);
        assert_eq!(units_at_once(1, 2), 2);
        assert_eq!(units_at_once(4, 16), 4);
        assert_eq!(units_at_once(0, 1), 1);
        assert_eq!(units_at_once(3, 0), 1);
    }
}
