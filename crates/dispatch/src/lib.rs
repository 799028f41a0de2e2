//! A title's units encoded on as many machines as it takes, through NATS JetStream.
//!
//! The coordinator ([`NatsWorkers`], what `reel run --nats` uses in place of the local pool)
//! puts the source into the object store, queues every unit that is neither finished in the
//! store nor queued already on a JetStream work-queue stream, and follows the workers'
//! reports, copying each finished unit into the title's local unit store for the stitch.
//! Workers ([`worker::run`], `reel worker`) pull units one at a time from a durable pull
//! consumer with explicit acks, build each unit again from its parts (so a worker whose
//! encoders differ refuses rather than mixes bytes), encode it, put its files and then its
//! record into the object store, and only then acknowledge it. While a unit encodes, the
//! worker tells JetStream it is in progress; a worker that dies stops doing so and the unit is
//! delivered again after the ack wait. A unit is delivered at most [`reel_units::ATTEMPTS`]
//! times; the worker that sees the last attempt fail reports it and takes the unit off the
//! queue, and the coordinator fails the title naming the chunk.
//!
//! What decides is durable: the queue (a unit is queued once) and the object store (a record
//! means a finished unit). Reports are core NATS messages, a fast path: a coordinator that
//! misses one (restarted, or the server was) finds finished units by looking in the store.

mod coordinator;
mod objects;
pub mod task;
pub mod worker;

pub use coordinator::NatsWorkers;
pub use objects::Objects;
pub use worker::WorkerOptions;

use std::path::PathBuf;
use std::time::Duration;

/// How long JetStream waits for a worker's word on a unit before delivering it again.
pub const ACK_WAIT: Duration = Duration::from_secs(15);
/// How often a worker says a unit is still in progress (well inside [`ACK_WAIT`]).
pub const PROGRESS_EVERY: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("NATS at {url}: {detail}")]
    Nats { url: String, detail: String },
    #[error(transparent)]
    Publish(#[from] reel_publish::PublishError),
    #[error("object store {location}: {detail}")]
    Objects { location: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Unit(#[from] reel_units::UnitError),
}

impl From<DispatchError> for reel_units::UnitError {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::Unit(u) => u,
            DispatchError::Nats { url, detail } => reel_units::UnitError::Remote {
                service: format!("NATS at {url}"),
                detail,
            },
            other => reel_units::UnitError::Remote {
                service: "object store".into(),
                detail: other.to_string(),
            },
        }
    }
}

/// A NATS failure at `url`, as an error naming what was being done.
pub(crate) fn nats_error(url: &str, doing: &str) -> impl Fn(String) -> DispatchError {
    let (url, doing) = (url.to_string(), doing.to_string());
    move |detail| DispatchError::Nats {
        url: url.clone(),
        detail: format!("{doing}: {detail}"),
    }
}

/// A connection to the NATS server, with the work queue and the workers' consumer.
pub(crate) struct Queue {
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub stream: async_nats::jetstream::stream::Stream,
    pub consumer: async_nats::jetstream::consumer::PullConsumer,
}

/// Connects to `url` and makes sure the work-queue stream and the workers' consumer exist.
pub(crate) async fn connect(url: &str, name: &str) -> Result<Queue, DispatchError> {
    use async_nats::jetstream::{consumer, stream};
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(10))
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(|e| nats_error(url, "connecting")(e.to_string()))?;
    // The first connection is retried in the background: wait for it, bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() > deadline {
            return Err(nats_error(url, "connecting")(
                "no connection within 20 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let js = async_nats::jetstream::new(client.clone());
    let stream = js
        .get_or_create_stream(stream::Config {
            name: task::STREAM.into(),
            subjects: vec![task::UNIT_SUBJECTS.into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error(url, "making the work-queue stream")(e.to_string()))?;
    let consumer = stream
        .get_or_create_consumer(
            task::CONSUMER,
            consumer::pull::Config {
                durable_name: Some(task::CONSUMER.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_deliver: i64::from(reel_units::ATTEMPTS),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| nats_error(url, "making the workers' consumer")(e.to_string()))?;
    Ok(Queue {
        client,
        js,
        stream,
        consumer,
    })
}

/// Runs `f` (object-store requests, which block) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DispatchError> + Send + 'static,
) -> Result<T, DispatchError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(DispatchError::Objects {
            location: "object store".into(),
            detail: format!("a request panicked: {e}"),
        })
    })
}
