//! Benchmark: the coordinator's cost per unit through NATS, with units that do no work.
//!
//! A real nats-server (JetStream, file storage) and the real coordinator (`NatsWorkers`, as
//! `reel run --nats` uses it) over a folder store; the workers are "null workers" that take
//! each unit from the same consumer, put an empty unit record into the store through the same
//! `Objects` calls a real worker makes, report it done and acknowledge it: everything a unit
//! costs but the encode. Prints units per second from the first queued to the last copied
//! into the title's unit store.
//!
//! Run: `cargo bench -p reel-dispatch --bench throughput` (`REEL_BENCH_UNITS`, default 2000).

#[path = "../tests/support/nats_server.rs"]
mod nats_server;

use async_nats::jetstream::{consumer::PullConsumer, AckKind};
use futures_util::StreamExt;
use nats_server::NatsServer;
use reel_dispatch::task::{report_subject, Report, UnitTask, CONSUMER, STREAM};
use reel_dispatch::{NatsWorkers, Objects};
use reel_encoder::{EncodePlan, FrameRange};
use reel_publish::S3Options;
use reel_units::{PoolMsg, Unit, UnitRecord, UnitStore, UnitWork, Workers};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn plan(source: &std::path::Path) -> EncodePlan {
    serde_json::from_value(serde_json::json!({
        "source": {"path": source, "container": null, "duration": 3600.0, "seekable": true, "streams": []},
        "frame_rate": {"num": 25, "den": 1},
        "timescale": 12800, "frame_duration": 512, "keyframe_frames": 50, "frames_total": 90000,
        "rungs": [], "audio": [], "notices": [], "still_at": null, "range": null
    }))
    .unwrap()
}

/// Takes units and finishes them without encoding, until `total` are done.
async fn null_worker(url: String, objects: Arc<Objects>, scratch: UnitStore, name: String) {
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let consumer: PullConsumer = js
        .get_stream(STREAM)
        .await
        .unwrap()
        .get_consumer(CONSUMER)
        .await
        .unwrap();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(64)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        while let Some(Ok(msg)) = batch.next().await {
            let task: UnitTask = serde_json::from_slice(&msg.payload).unwrap();
            let record = UnitRecord {
                key: task.key.clone(),
                unit: "null".into(),
                work: task.work,
                outputs: Vec::new(),
                thumbnails: None,
                still: None,
                seconds: 0.0,
            };
            let (objects, scratch, r) = (objects.clone(), scratch.clone(), record.clone());
            tokio::task::spawn_blocking(move || {
                let tmp = scratch.begin(&r.key).unwrap();
                scratch.commit(tmp, &r).unwrap();
                objects.put_unit(&scratch, &r).unwrap();
                scratch.remove(std::slice::from_ref(&r.key));
            })
            .await
            .unwrap();
            let done = Report::Done {
                worker: name.clone(),
                record: Box::new(record),
            };
            client
                .publish(
                    report_subject(&task.key),
                    serde_json::to_vec(&done).unwrap().into(),
                )
                .await
                .unwrap();
            msg.ack_with(AckKind::Ack).await.unwrap();
        }
    }
}

fn main() {
    let n: usize = std::env::var("REEL_BENCH_UNITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats"));
    let url = nats.url();
    let source = dir.path().join("source.bin");
    std::fs::write(&source, b"a source the null workers never read").unwrap();
    let (sha, _) = reel_publish::file_sha256(&source).unwrap();
    let plan = plan(&source);
    let units: Vec<Unit> = (0..n)
        .map(|i| {
            let range = FrameRange {
                start: i as u64 * 750,
                end: (i as u64 + 1) * 750,
                lead_in: 0,
                exact: true,
            };
            let work = UnitWork::Video {
                chunk: i as u32,
                range,
            };
            Unit::new(work, plan.for_range(range), &sha, &[])
        })
        .collect();
    let store_url = dir.path().join("store").display().to_string();
    let workers = NatsWorkers {
        nats: reel_dispatch::NatsAccess::new(&url),
        store: store_url.clone(),
        s3: S3Options::default(),
    };
    let local = UnitStore::open(&dir.path().join("title-units")).unwrap();
    let started = Instant::now();
    let running = workers
        .start(
            Arc::new(units),
            (0..n).collect(),
            local,
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap();
    // Two null workers beside the coordinator, as on the two-core machine.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = Arc::new(Objects::open(&store_url, &S3Options::default()).unwrap());
    for w in 0..2 {
        let scratch = UnitStore::open(&dir.path().join(format!("w{w}"))).unwrap();
        rt.spawn(null_worker(
            url.clone(),
            objects.clone(),
            scratch,
            format!("null-{w}"),
        ));
    }
    let mut done = 0;
    while done < n {
        match running.reports().recv_timeout(Duration::from_secs(60)) {
            Ok(PoolMsg::Done { .. }) => done += 1,
            Ok(PoolMsg::Failed { error, .. }) => panic!("{error}"),
            Ok(_) => {}
            Err(e) => panic!("after {done} of {n} units: {e}"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} units that do no work through NATS: {secs:.2} s, {:.0} units per second",
        n as f64 / secs
    );
    drop(running);
}
