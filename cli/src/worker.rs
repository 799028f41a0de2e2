//! `reel worker` and the options `reel run` shares with it to reach workers: a NATS server
//! with JetStream, and an object store both sides read and write.

use anyhow::Result;
use reel_dispatch::worker::{Outcome, UnitLog};
use reel_dispatch::{NatsAccess, NatsWorkers, WorkerOptions};
use reel_publish::S3Options;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where units run when they run on workers.
#[derive(Debug, Clone, clap::Args)]
pub struct Cluster {
    /// The NATS server (with JetStream) the units are queued on, e.g. nats://10.0.0.5:4222
    /// (`nats://user:password@host:4222` signs in; `tls://` requires TLS).
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// PEM file of the CA that signed the NATS server's certificate (TLS is then required).
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub nats_ca: Option<PathBuf>,
    /// File holding the user nkey seed (`SU...`) to sign in to NATS with.
    #[arg(long, value_name = "FILE", requires = "nats")]
    pub nats_nkey: Option<PathBuf>,
    /// The object store the coordinator and its workers share: sources and unit outputs
    /// (`s3://bucket/prefix`, or a folder every worker can read).
    #[arg(long, value_name = "URL", requires = "nats")]
    pub store: Option<String>,
    /// The store's S3-compatible server (path-style addressing unless --store-virtual-hosted).
    #[arg(long, value_name = "URL")]
    pub store_endpoint: Option<String>,
    #[arg(long)]
    pub store_region: Option<String>,
    #[arg(long)]
    pub store_virtual_hosted: bool,
}

impl Cluster {
    fn nats_access(&self, url: &str) -> NatsAccess {
        NatsAccess {
            url: url.to_string(),
            tls_ca: self.nats_ca.clone(),
            nkey_seed: self.nats_nkey.clone(),
        }
    }

    fn s3(&self) -> S3Options {
        let path_style = self.store_virtual_hosted.then_some(false);
        S3Options {
            create_bucket: true,
            ..S3Options::at(
                self.store_endpoint.clone(),
                self.store_region.clone(),
                path_style,
            )
        }
    }

    /// The workers `reel run` hands its units to; `None` runs them on this machine.
    pub fn workers(&self) -> Result<Option<NatsWorkers>> {
        match (&self.nats, &self.store) {
            (None, _) => Ok(None),
            (Some(_), None) => anyhow::bail!(
                "--nats needs --store: the object store where workers find the source and put units"
            ),
            (Some(nats), Some(store)) => Ok(Some(NatsWorkers {
                nats: self.nats_access(nats),
                store: store.clone(),
                s3: self.s3(),
            })),
        }
    }
}

/// `reel worker`'s options.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub cluster: Cluster,
    /// Its own folder for units in progress and sources copied from S3.
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Its name in reports (default: host-pid).
    #[arg(long)]
    pub name: Option<String>,
    /// Units encoded at a time. A unit runs its video rungs side by side, at least a core each
    /// (one thread per H.264 rung: x264's frame threads would make other bytes on every run);
    /// a worker does not know the titles' ladders in advance, so the default is a guess, not
    /// measured above two cores: one unit per four cores, at least one.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub units: Option<u16>,
    /// One JSON line per unit.
    #[arg(long)]
    pub json: bool,
}

/// Units at a time unless `--units` says: one per four cores, at least one.
fn default_units() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(4))
}

/// `reel worker`: takes units until Ctrl-C or SIGTERM (the units in hand are finished first).
pub fn run(args: WorkerArgs) -> Result<()> {
    let WorkerArgs {
        cluster,
        work,
        name,
        units,
        json: json_out,
    } = args;
    let (Some(nats), Some(store)) = (&cluster.nats, &cluster.store) else {
        anyhow::bail!("reel worker needs --nats URL and --store URL");
    };
    // Warnings (a report not sent, a fetch that failed while the server was away) to stderr.
    let filter = tracing_subscriber::EnvFilter::try_from_env("REEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let name = name.unwrap_or_else(default_name);
    let work = work.unwrap_or_else(|| std::env::temp_dir().join(format!("reel-worker-{name}")));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("stopping after the units in hand (again to quit at once)");
        });
    }
    let opts = WorkerOptions {
        nats: cluster.nats_access(nats),
        store: store.clone(),
        s3: cluster.s3(),
        work,
        name: name.clone(),
        units_at_once: units.map_or_else(default_units, usize::from),
        stop,
    };
    if json_out {
        crate::emit(&format!(
            "{}\n",
            json!({"event": "worker_ready", "worker": name})
        ));
    } else {
        eprintln!(
            "worker {name}: taking units from {}, store {store}",
            opts.nats.shown()
        );
    }
    reel_dispatch::worker::run(&opts, &mut |log| {
        let line = if json_out {
            format!("{}\n", unit_json(&name, log))
        } else {
            format!("{}\n", unit_text(log))
        };
        crate::emit(&line);
    })?;
    Ok(())
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}-{}", std::process::id())
}

fn unit_json(worker: &str, log: &UnitLog) -> serde_json::Value {
    let (outcome, detail) = match &log.outcome {
        Outcome::Encoded { fps, bytes } => ("encoded", json!({"fps": fps, "bytes": bytes})),
        Outcome::AlreadyDone => ("already_done", json!({})),
        Outcome::Retrying(e) => ("retrying", json!({"error": e})),
        Outcome::Failed(e) => ("failed", json!({"error": e})),
    };
    json!({
        "event": "unit", "worker": worker, "key": log.key, "unit": log.unit,
        "attempt": log.attempt, "outcome": outcome, "seconds": log.seconds, "detail": detail,
    })
}

fn unit_text(log: &UnitLog) -> String {
    let what = match &log.outcome {
        Outcome::Encoded { fps, bytes } => {
            format!(
                "encoded in {:.1} s ({fps:.0} fps per rung, {bytes} bytes)",
                log.seconds
            )
        }
        Outcome::AlreadyDone => "already finished in the store".into(),
        Outcome::Retrying(e) => format!("attempt {} failed, queued again: {e}", log.attempt),
        Outcome::Failed(e) => format!("failed on attempt {}, off the queue: {e}", log.attempt),
    };
    format!("{} [{}]: {what}", log.unit, log.key)
}
