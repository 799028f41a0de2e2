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
//! delivered again after the ack wait. A unit is attempted at most [`reel_units::ATTEMPTS`]
//! times; the worker that sees the last attempt fail, or receives the unit once more after
//! workers died on every attempt, reports it and takes the unit off the queue, and the
//! coordinator fails the title naming the chunk.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a first connection to the NATS server may take (it is retried meanwhile).
const CONNECT_WITHIN: Duration = Duration::from_secs(20);

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

/// How to reach the NATS server: its URL (`nats://host:4222`, `tls://...`; a user and
/// password or a token may be in it), and optionally a CA to trust for TLS and an nkey seed
/// file to sign in with. Messages name the URL without its credentials.
#[derive(Clone)]
pub struct NatsAccess {
    pub url: String,
    /// PEM roots for a server whose certificate a private CA signed; TLS is then required.
    pub tls_ca: Option<PathBuf>,
    /// A file holding a user nkey seed (`SU...`), as `nsc` or `nk -gen user` make it.
    pub nkey_seed: Option<PathBuf>,
}

impl NatsAccess {
    pub fn new(url: &str) -> NatsAccess {
        NatsAccess {
            url: url.to_string(),
            tls_ca: None,
            nkey_seed: None,
        }
    }

    /// The URL without user, password or token, for messages and logs.
    pub fn shown(&self) -> String {
        without_credentials(&self.url)
    }

    fn options(&self, name: &str) -> Result<async_nats::ConnectOptions, DispatchError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(10))
            .retry_on_initial_connect();
        if let Some(ca) = &self.tls_ca {
            if !ca.is_file() {
                return Err(nats_error(&self.url, "reading the TLS CA")(format!(
                    "{} is not a file",
                    ca.display()
                )));
            }
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some(file) = &self.nkey_seed {
            let seed = std::fs::read_to_string(file).map_err(|source| DispatchError::Io {
                path: file.clone(),
                source,
            })?;
            let seed = seed.trim();
            if !seed.starts_with("SU") {
                return Err(nats_error(&self.url, "reading the nkey seed")(format!(
                    "{} does not hold a user nkey seed (SU...)",
                    file.display()
                )));
            }
            options = options.nkey(seed.to_string());
        }
        Ok(options)
    }
}

impl std::fmt::Debug for NatsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAccess")
            .field("url", &self.shown())
            .field("tls_ca", &self.tls_ca)
            .field("nkey_seed", &self.nkey_seed)
            .finish()
    }
}

/// `url` (or a comma-separated list of them) without user names, passwords or tokens:
/// `nats://user:secret@host:4222` is shown as `nats://host:4222`.
pub(crate) fn without_credentials(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let (scheme, rest) = one.split_once("://").unwrap_or(("", one));
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if scheme.is_empty() {
                format!("{host}{path}")
            } else {
                format!("{scheme}://{host}{path}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A NATS failure at `url` (shown without credentials), as an error naming what was being
/// done.
pub(crate) fn nats_error(url: &str, doing: &str) -> impl Fn(String) -> DispatchError {
    let (url, doing) = (without_credentials(url), doing.to_string());
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

/// Connects to the server and makes sure the work-queue stream and the workers' consumer
/// exist.
pub(crate) async fn connect(nats: &NatsAccess, name: &str) -> Result<Queue, DispatchError> {
    use async_nats::jetstream::{consumer, stream};
    // Already installed (by an earlier connection, or by the program) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = nats.url.as_str();
    // What the client last said went wrong (a refused sign-in, say), for the error below.
    let trouble: Arc<Mutex<Option<String>>> = Arc::default();
    let heard = trouble.clone();
    let client = nats
        .options(name)?
        .event_callback(move |event| {
            if matches!(
                event,
                async_nats::Event::ServerError(_) | async_nats::Event::ClientError(_)
            ) {
                *heard.lock().unwrap_or_else(|e| e.into_inner()) = Some(event.to_string());
            }
            async {}
        })
        .connect(url)
        .await
        .map_err(|e| nats_error(url, "connecting")(e.to_string()))?;
    // The first connection is retried in the background: wait for it, bounded.
    let deadline = tokio::time::Instant::now() + CONNECT_WITHIN;
    while client.connection_state() != async_nats::connection::State::Connected {
        if tokio::time::Instant::now() > deadline {
            let last = trouble.lock().unwrap_or_else(|e| e.into_inner()).clone();
            return Err(nats_error(url, "connecting")(format!(
                "no connection within {} s{}",
                CONNECT_WITHIN.as_secs(),
                last.map(|l| format!(" (last: {l})")).unwrap_or_default()
            )));
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
                // Unbounded: the worker that receives a delivery past the last attempt gives
                // the unit up with a report (see `worker`), so no unit leaves the queue
                // without a word, as one whose deliveries JetStream stopped would.
                max_deliver: -1,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        for (url, shown) in [
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            ("nats://reel:s3cret@queue:4222", "nats://queue:4222"),
            ("tls://tok3n@queue:4222/x", "tls://queue:4222/x"),
            ("u:p@host:4222", "host:4222"),
            (
                "nats://a:b@h1:4222,nats://c:d@h2:4222",
                "nats://h1:4222,nats://h2:4222",
            ),
        ] {
            assert_eq!(without_credentials(url), shown);
        }
        let e = nats_error("nats://reel:s3cret@queue:4222", "connecting")("refused".into());
        assert_eq!(
            e.to_string(),
            "NATS at nats://queue:4222: connecting: refused"
        );
        let access = NatsAccess::new("nats://reel:s3cret@queue:4222");
        assert!(!format!("{access:?}").contains("s3cret"));
    }
}
