//! Reel's services: catalog, auth and playback over published titles, with a W3C ClearKey
//! licence server, an origin for the published objects and a player page. One axum router
//! per route group; SQLite by default, PostgreSQL when the database URL names one.
//!
//! ```no_run
//! # async fn demo() -> Result<(), reel_services::ServiceError> {
//! use reel_services::{AppState, Config};
//! let config = Config::parse_from(["reel-serve", "--data", "out/serve"]);
//! let state = AppState::open(&config).await?;
//! let app = reel_services::router(state);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//!     .await
//!     .unwrap();
//! # Ok(()) }
//! ```

pub mod auth;
pub mod catalog;
pub mod db;
pub mod error;
pub mod kek;
pub mod licence;
pub mod limit;
pub mod ops;
pub mod origin;
pub mod playback;
pub mod session;
pub mod tokens;
pub mod util;
pub mod web;

pub use error::{Result, ServiceError};

use axum::Router;
use kek::Kek;
use limit::Limiter;
use reel_publish::ObjectStore;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokens::Signer;

/// Configuration, by flags or environment.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Data folder: the SQLite database and generated secrets live here.
    #[arg(long, env = "REEL_DATA", default_value = "out/serve")]
    pub data: PathBuf,
    /// `sqlite://FILE` or `postgres://...`; default: SQLite in the data folder.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "REEL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Key-encryption key for content keys at rest, 64 hex digits. Default: generated once
    /// into `DATA/kek.key` (mode 0600).
    #[arg(long, env = "REEL_KEK", hide_env_values = true)]
    pub kek: Option<String>,
    /// Secret for signing tokens, 64 hex digits. Default: generated once into `DATA/token.key`.
    #[arg(long, env = "REEL_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// shaka-player's compiled script, served to the player page.
    #[arg(
        long,
        env = "REEL_SHAKA",
        default_value = "tests/players/node_modules/shaka-player/dist/shaka-player.compiled.js"
    )]
    pub shaka: PathBuf,
    /// S3 endpoint for titles published to `s3://` (S3-compatible servers).
    #[arg(long, env = "REEL_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "REEL_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 credentials (else the AWS SDK's usual sources: environment, profile, ...).
    #[arg(long, env = "REEL_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = "REEL_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Access-token lifetime, seconds.
    #[arg(long, default_value_t = 900)]
    pub access_ttl: u64,
    /// Refresh-token lifetime, seconds.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    pub refresh_ttl: u64,
    /// Playback-token lifetime, seconds.
    #[arg(long, default_value_t = 6 * 3600)]
    pub playback_ttl: u64,
    /// A playback session without a heartbeat for this long no longer counts as a stream.
    #[arg(long, default_value_t = 90)]
    pub heartbeat_timeout: u64,
    /// Sign-in attempts per client address per minute.
    #[arg(long, default_value_t = 20)]
    pub signin_per_ip: u32,
    /// Failed sign-ins per account per 15 minutes before it is locked for the rest of them.
    #[arg(long, default_value_t = 5)]
    pub signin_failures: u32,
    /// Rows an account may add per minute: playback sessions, playback events and licence
    /// requests (each audited) together. A player adds a few per minute; a script that
    /// floods the tables is told to wait (429).
    #[arg(long, default_value_t = 600)]
    pub writes_per_account: u32,
    /// Behind a proxy you run: take the client address from the entry that proxy appends to
    /// `X-Forwarded-For` (the rightmost), never from what the client wrote.
    #[arg(long)]
    pub trust_forwarded: bool,
    /// Largest request body, bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_body: usize,
    /// A bearer token that lets a scraper (Prometheus) read `/metrics`; without it, only a
    /// signed-in administrator can. From the environment, so that it is not on the command
    /// line for every user of the machine to see.
    #[arg(long, env = "REEL_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

impl Config {
    /// The time (ms) a session's last heartbeat must be after for the session to still count
    /// as a stream at `now` (ms).
    pub fn live_since(&self, now: i64) -> i64 {
        now - self.heartbeat_timeout as i64 * 1000
    }

    /// Parses flags as `reel serve` does (the first item is the program's name; the
    /// environment fills what flags leave out). Exits with a usage message on bad flags.
    pub fn parse_from<I, T>(args: I) -> Config
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            config: Config,
        }
        <Flags as clap::Parser>::parse_from(args).config
    }

    /// The database URL: the configured one, else SQLite in the data folder.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data.join("reel.db").display()))
    }

    pub fn s3_options(&self) -> reel_publish::S3Options {
        reel_publish::S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self
                .s3_region
                .clone()
                .unwrap_or_else(|| reel_publish::S3Options::default().region),
            path_style: true,
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            ..Default::default()
        }
    }
}

/// A plan: what an account's subscription allows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub max_height: i64,
    pub max_streams: i64,
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub db: db::Db,
    pub sqlite: bool,
    pub signer: Signer,
    pub kek: Kek,
    pub config: Config,
    pub plans: HashMap<String, Plan>,
    pub signin_ip: Limiter,
    pub signin_account: Limiter,
    pub signup_ip: Limiter,
    /// Rows each account adds (see [`Config::writes_per_account`]).
    pub account_writes: Limiter,
    /// An argon2id hash of nothing, verified against when the email is unknown, so that a
    /// wrong email costs as long as a wrong password.
    pub dummy_hash: String,
    pub metrics: ops::Metrics,
    pub stores: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    /// Titles for the hot paths (see [`catalog::cached_title`]).
    pub titles: Mutex<HashMap<String, (std::time::Instant, Arc<catalog::CachedTitle>)>>,
    /// Playback sessions for the origin's and the licence server's checks (see
    /// [`session::cached_session`]).
    pub sessions: Mutex<session::SessionCache>,
    /// On SQLite, one writer at a time, queued here in order instead of in SQLite's busy
    /// handler (which sleeps 1-100 ms between retries and made the latency tail).
    pub write_gate: tokio::sync::Mutex<()>,
    /// Serialises playback authorisations per account (stream-limit check, then insert).
    pub account_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Inner {
    /// Counts one row `account` adds, or refuses it (429) when the account has used up its
    /// minute (see [`Config::writes_per_account`]).
    pub fn account_writes(&self, account: &str) -> Result<()> {
        self.account_writes
            .take(account)
            .map_err(|retry_after| ServiceError::RateLimited { retry_after })
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

fn secret_from(given: Option<&str>, data: &Path, file: &str, what: &str) -> Result<[u8; 32]> {
    let parse = |text: &str, origin: &str| -> Result<[u8; 32]> {
        let bytes = hex::decode(text.trim()).map_err(|_| {
            ServiceError::Import(format!("{what} from {origin}: expected 64 hex digits"))
        })?;
        bytes.try_into().map_err(|_| {
            ServiceError::Import(format!(
                "{what} from {origin}: expected 64 hex digits (32 bytes)"
            ))
        })
    };
    if let Some(text) = given {
        return parse(text, "the configuration");
    }
    let path = data.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = util::random_bytes::<32>();
            write_private(&path, hex::encode(bytes).as_bytes()).map_err(|e| {
                ServiceError::Import(format!("cannot write {}: {e}", path.display()))
            })?;
            tracing::warn!(file = %path.display(), "generated a new {what}; keep this file safe");
            Ok(bytes)
        }
        Err(e) => Err(ServiceError::Import(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Creates the data folder for its owner only (0700), and takes others' access away from one
/// that exists: it holds the key-encryption key, the token secret and the database.
fn private_folder(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    builder.create(path)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

impl AppState {
    /// Holds the SQLite write gate (nothing on PostgreSQL, which has row locks).
    pub async fn writing(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.sqlite {
            Some(self.write_gate.lock().await)
        } else {
            None
        }
    }

    /// Opens the database (running migrations) and loads secrets and plans.
    pub async fn open(config: &Config) -> Result<AppState> {
        private_folder(&config.data).map_err(|e| {
            ServiceError::Import(format!("cannot create {}: {e}", config.data.display()))
        })?;
        let url = config.database_url();
        let db = db::connect(&url).await?;
        let kek = Kek::new(secret_from(
            config.kek.as_deref(),
            &config.data,
            "kek.key",
            "key-encryption key",
        )?);
        let signer = Signer::new(secret_from(
            config.token_secret.as_deref(),
            &config.data,
            "token.key",
            "token secret",
        )?);
        let rows: Vec<(String, String, i64, i64)> =
            sqlx::query_as("SELECT id, name, max_height, max_streams FROM plans")
                .fetch_all(&db)
                .await?;
        let plans = rows
            .into_iter()
            .map(|(id, name, max_height, max_streams)| {
                (
                    id.clone(),
                    Plan {
                        id,
                        name,
                        max_height,
                        max_streams,
                    },
                )
            })
            .collect();
        let dummy_hash = tokio::task::spawn_blocking(|| auth::hash_password("no account"))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
        Ok(AppState(Arc::new(Inner {
            db,
            sqlite: db::is_sqlite(&url),
            signer,
            kek,
            config: config.clone(),
            plans,
            signin_ip: Limiter::new(config.signin_per_ip, Duration::from_secs(60)),
            signin_account: Limiter::new(config.signin_failures, Duration::from_secs(15 * 60)),
            signup_ip: Limiter::new(config.signin_per_ip, Duration::from_secs(60)),
            account_writes: Limiter::new(config.writes_per_account, Duration::from_secs(60)),
            dummy_hash,
            metrics: ops::Metrics::new(),
            stores: Mutex::new(HashMap::new()),
            titles: Mutex::new(HashMap::new()),
            sessions: Mutex::new(session::SessionCache::default()),
            write_gate: tokio::sync::Mutex::new(()),
            account_locks: Mutex::new(HashMap::new()),
        })))
    }

    /// The object store a title was published to (opened once, then shared).
    pub fn store(&self, source: &str) -> Result<Arc<dyn ObjectStore>> {
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = stores.get(source) {
            return Ok(s.clone());
        }
        let dest = reel_publish::Destination::parse(source)
            .map_err(|e| ServiceError::Internal(format!("title source {source}: {e}")))?;
        let store: Arc<dyn ObjectStore> = Arc::from(
            dest.open(&self.config.s3_options())
                .map_err(|e| ServiceError::Internal(format!("title source {source}: {e}")))?,
        );
        stores.insert(source.to_string(), store.clone());
        Ok(store)
    }
}

/// The whole service: API, licence server, origin, player page and operations routes.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body;
    Router::new()
        .merge(auth::router())
        .merge(catalog::router())
        .merge(playback::router())
        .merge(licence::router())
        .merge(origin::router())
        .merge(web::router())
        .merge(ops::router())
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_response(web::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::observe,
        ))
        .with_state(state)
}

/// Serves until Ctrl-C or SIGTERM, finishing requests in flight.
pub async fn serve(state: AppState) -> Result<()> {
    let listen = state.config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServiceError::Import(format!("cannot listen on {listen}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    tracing::info!(address = %local, "serving");
    println!("Reel is serving on http://{local}/");
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| ServiceError::Internal(e.to_string()))?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
