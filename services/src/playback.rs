//! Playback authorisation: entitlement (plan resolution, availability window, maturity,
//! concurrent streams), a session with a signed playback token bound to title and account,
//! heartbeats, stop, and playback events kept for later analysis.

use crate::auth::Viewer;
use crate::catalog::{cached_title, PublishedTitle};
use crate::error::{JsonBody, Result, ServiceError};
use crate::tokens::PlaybackClaims;
use crate::util::{now_ms, random_id};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/playback/{title}", post(authorise))
        .route("/v1/playback/sessions/{id}/heartbeat", post(heartbeat))
        .route("/v1/playback/sessions/{id}/stop", post(stop))
        .route("/v1/playback/sessions/{id}/events", post(event))
}

#[derive(Debug, Default, Deserialize)]
pub struct AuthoriseRequest {
    /// A stable id of the device: a new session on the same device replaces its old one.
    #[serde(default)]
    pub device: Option<String>,
}

/// Seconds between heartbeats the player should send.
pub const HEARTBEAT_INTERVAL: u64 = 30;

fn account_lock(state: &AppState, account: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = state
        .account_locks
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if locks.len() > 100_000 {
        locks.retain(|_, l| Arc::strong_count(l) > 1);
    }
    locks.entry(account.to_string()).or_default().clone()
}

async fn authorise(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(title_id): Path<String>,
    body: Option<JsonBody<AuthoriseRequest>>,
) -> Result<Json<Value>> {
    let device = body
        .and_then(|JsonBody(b)| b.device)
        .unwrap_or_else(|| "default".into());
    if device.is_empty() || device.len() > 128 {
        return Err(ServiceError::BadRequest("device: 1-128 bytes".into()));
    }
    crate::util::plain_text("device", &device)?;
    state.account_writes(&viewer.sub)?;
    let now = now_ms();
    let cached = cached_title(&state, &title_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let title = &cached.row;
    if title.hidden != 0 {
        return Err(ServiceError::NotFound);
    }
    if !title.available_at(now) {
        return Err(ServiceError::forbidden(
            "not_available",
            "this title is not available to watch now",
        ));
    }
    if title.min_age > viewer.max_age {
        return Err(ServiceError::forbidden(
            "maturity",
            format!(
                "this title is rated {}: not allowed on this profile",
                title.maturity
            ),
        ));
    }
    let plan = state
        .plans
        .get(&viewer.plan)
        .ok_or(ServiceError::Unauthorized)?;
    let record = &cached.record;
    let entitlement = Entitlement::of(record, plan.max_height);
    if entitlement.max_height == 0 {
        return Err(ServiceError::forbidden(
            "plan",
            format!(
                "your {} plan plays up to {}p; this title starts at {}p",
                plan.name, plan.max_height, title.min_height
            ),
        ));
    }
    let kids = entitlement.kids;

    // Stream limit: the check and the insert are one step per account.
    let lock = account_lock(&state, &viewer.sub);
    let _guard = lock.lock().await;
    let live_since = state.config.live_since(now);
    let session = random_id();
    let expires_at = now + (state.config.playback_ttl as i64) * 1000;
    let kids = kids.join(",");
    let refused = || {
        ServiceError::Conflict(format!(
            "your {} plan allows {} stream(s) at a time; stop one to start another",
            plan.name, plan.max_streams
        ))
    };
    // Parameters: $1 account, $2 device, $3 session, $4 title, $5 height, $6 key IDs, $7 now,
    // $8 expiry, $9 live-since, $10 the plan's streams.
    const LIVE: &str = "SELECT COUNT(*) FROM playback_sessions
         WHERE account_id = $1 AND stopped = 0 AND last_seen > $9 AND expires_at > $7";
    const INSERT: &str =
        "INSERT INTO playback_sessions (id, account_id, title_id, device, max_height, kids,
            created_at, expires_at, last_seen, stopped)";
    let row = NewSession {
        account: &viewer.sub,
        device: &device,
        id: &session,
        title: &title.id,
        max_height: entitlement.max_height,
        kids: &kids,
        now,
        expires_at,
    };
    if state.sqlite {
        // One writer at a time and one round trip: the new session goes in only if the
        // account's other live streams (this device's aside) leave room, and only then is
        // this device's old session stopped. Rows changed >= 1 means it went in.
        let sql = format!(
            "{INSERT} SELECT $3, $1, $4, $2, $5, $6, $7, $8, $7, 0
               WHERE ({LIVE} AND device <> $2) < $10;
             UPDATE playback_sessions SET stopped = 1
               WHERE account_id = $1 AND device = $2 AND stopped = 0 AND id <> $3
               AND EXISTS (SELECT 1 FROM playback_sessions WHERE id = $3)"
        );
        let _gate = state.writing().await;
        let changed = row
            .bind(sqlx::query(&sql))
            .bind(live_since)
            .bind(plan.max_streams)
            .execute(&state.db)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(refused());
        }
    } else {
        let mut tx = state.db.begin().await?;
        // Instances sharing the database take turns per account: a transaction-scoped
        // advisory lock on the account id.
        sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtext($1))) AS locked")
            .bind(&viewer.sub)
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM playback_sessions
             WHERE account_id = $1 AND device <> $2 AND stopped = 0 AND last_seen > $3
             AND expires_at > $4",
        )
        .bind(&viewer.sub)
        .bind(&device)
        .bind(live_since)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if live >= plan.max_streams {
            return Err(refused());
        }
        sqlx::query(
            "UPDATE playback_sessions SET stopped = 1
             WHERE account_id = $1 AND device = $2 AND stopped = 0",
        )
        .bind(&viewer.sub)
        .bind(&device)
        .execute(&mut *tx)
        .await?;
        let insert = format!("{INSERT} VALUES ($3, $1, $4, $2, $5, $6, $7, $8, $7, 0)");
        row.bind(sqlx::query(&insert)).execute(&mut *tx).await?;
        tx.commit().await?;
    }
    drop(_guard);
    // This device's earlier session, if any, was stopped: the origin and licence server
    // must not serve it from the cache.
    crate::session::forget_account_sessions(&state, &viewer.sub);
    state.metrics.playback_starts.inc();

    let token = state.signer.playback(&PlaybackClaims {
        sid: session.clone(),
        sub: viewer.sub.clone(),
        title: title.id.clone(),
        exp: expires_at,
    });
    Ok(Json(json!({
        "session": session,
        "title": title.json(),
        "dash": format!("/origin/{token}/{}", record.dash),
        "hls": format!("/origin/{token}/{}", record.hls),
        "licence": format!("/v1/licence/{token}"),
        "max_height": entitlement.max_height,
        "expires_at": expires_at,
        "heartbeat_interval": HEARTBEAT_INTERVAL,
    })))
}

/// A new playback session's values, `$1`-`$8` of both stream-limit statements (SQLite's and
/// PostgreSQL's), bound in one place so that the two cannot drift apart.
struct NewSession<'a> {
    account: &'a str,
    device: &'a str,
    id: &'a str,
    title: &'a str,
    max_height: i64,
    kids: &'a str,
    now: i64,
    expires_at: i64,
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl<'a> NewSession<'a> {
    fn bind<'q>(&self, q: AnyQuery<'q>) -> AnyQuery<'q>
    where
        'a: 'q,
    {
        q.bind(self.account)
            .bind(self.device)
            .bind(self.id)
            .bind(self.title)
            .bind(self.max_height)
            .bind(self.kids)
            .bind(self.now)
            .bind(self.expires_at)
    }
}

/// What a plan may play of a title. A key is granted only when every rendition it protects
/// is within the plan's resolution (a key shared by 540p and 720p renditions is an HD key,
/// whatever the plan's line count says), audio keys always.
#[derive(Debug, Clone, PartialEq)]
pub struct Entitlement {
    /// Key IDs (hex) the session may receive.
    pub kids: Vec<String>,
    /// The tallest video rendition the session can play (0: none).
    pub max_height: i64,
}

impl Entitlement {
    pub fn of(record: &PublishedTitle, plan_max_height: i64) -> Self {
        use std::collections::BTreeMap;
        let norm = |k: &String| k.replace('-', "").to_ascii_lowercase();
        // The tallest video rendition each key protects (0 for audio-only keys).
        let mut key_height: BTreeMap<String, i64> = BTreeMap::new();
        for r in &record.renditions {
            if let Some(kid) = r.key_id.as_ref().map(norm) {
                let h = if r.kind == reel_media::TrackKind::Video {
                    r.height.map_or(i64::MAX, i64::from)
                } else {
                    0
                };
                let e = key_height.entry(kid).or_insert(0);
                *e = (*e).max(h);
            }
        }
        let kids: Vec<String> = key_height
            .iter()
            .filter(|(_, &h)| h <= plan_max_height)
            .map(|(k, _)| k.clone())
            .collect();
        let max_height = record
            .renditions
            .iter()
            .filter(|r| r.kind == reel_media::TrackKind::Video)
            .filter_map(|r| {
                let h = i64::from(r.height?);
                let playable = match r.key_id.as_ref().map(norm) {
                    Some(kid) => kids.contains(&kid),
                    None => h <= plan_max_height,
                };
                playable.then_some(h)
            })
            .max()
            .unwrap_or(0);
        Entitlement { kids, max_height }
    }
}

#[derive(Debug, Deserialize)]
pub struct Position {
    /// Seconds into the title.
    #[serde(default)]
    pub position: f64,
}

#[derive(Debug, Deserialize)]
pub struct PlaybackEvent {
    /// start, switch, rebuffer, stop, error, seek, pause, resume.
    pub kind: String,
    #[serde(default)]
    pub position: f64,
    /// Free-form detail (e.g. the new rendition's height and bitrate).
    #[serde(default)]
    pub detail: Value,
}

async fn own_session(state: &AppState, viewer: &str, id: &str) -> Result<(String, i64)> {
    if id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ServiceError::NotFound);
    }
    let row: Option<(String, String, i64)> =
        sqlx::query_as("SELECT account_id, title_id, stopped FROM playback_sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.db)
            .await?;
    match row {
        // Another account's session looks exactly like a missing one.
        Some((account, title, stopped)) if account == viewer => Ok((title, stopped)),
        _ => Err(ServiceError::NotFound),
    }
}

fn position_ms(p: f64) -> Result<i64> {
    if !p.is_finite() || !(0.0..=1.0e7).contains(&p) {
        return Err(ServiceError::BadRequest(
            "position: seconds, 0 to 10^7".into(),
        ));
    }
    Ok((p * 1000.0).round() as i64)
}

async fn record_progress(
    state: &AppState,
    account: &str,
    title: &str,
    position: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO watch_progress (account_id, title_id, position_ms, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (account_id, title_id) DO UPDATE SET position_ms = $3, updated_at = $4",
    )
    .bind(account)
    .bind(title)
    .bind(position)
    .bind(now_ms())
    .execute(&state.db)
    .await?;
    Ok(())
}

async fn heartbeat(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<Position>,
) -> Result<StatusCode> {
    let position = position_ms(p.position)?;
    let (title, _) = own_session(&state, &viewer.sub, &id).await?;
    // A session that was stopped, replaced, has expired or went without a heartbeat for the
    // timeout has ended: a late heartbeat does not bring it back (another stream may have
    // taken its place).
    let now = now_ms();
    let live_since = state.config.live_since(now);
    let beat = sqlx::query(
        "UPDATE playback_sessions SET last_seen = $2
         WHERE id = $1 AND stopped = 0 AND expires_at > $2 AND last_seen > $3",
    )
    .bind(&id)
    .bind(now)
    .bind(live_since)
    .execute(&state.db)
    .await?;
    crate::session::forget_session(&state, &id);
    if beat.rows_affected() == 0 {
        return Err(ServiceError::Conflict(
            "this playback session has ended (stopped, replaced on this device, expired, or \
             without a heartbeat for too long)"
                .into(),
        ));
    }
    record_progress(&state, &viewer.sub, &title, position).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stop(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<Position>,
) -> Result<StatusCode> {
    let position = position_ms(p.position)?;
    let (title, _) = own_session(&state, &viewer.sub, &id).await?;
    sqlx::query("UPDATE playback_sessions SET stopped = 1, last_seen = $2 WHERE id = $1")
        .bind(&id)
        .bind(now_ms())
        .execute(&state.db)
        .await?;
    crate::session::forget_session(&state, &id);
    record_progress(&state, &viewer.sub, &title, position).await?;
    Ok(StatusCode::NO_CONTENT)
}

const EVENT_KINDS: &[&str] = &[
    "start", "switch", "rebuffer", "stop", "error", "seek", "pause", "resume", "ended",
];

async fn event(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
    JsonBody(e): JsonBody<PlaybackEvent>,
) -> Result<StatusCode> {
    if !EVENT_KINDS.contains(&e.kind.as_str()) {
        return Err(ServiceError::BadRequest(format!(
            "kind: one of {}",
            EVENT_KINDS.join(", ")
        )));
    }
    let position = position_ms(e.position)?;
    let detail = serde_json::to_string(&e.detail).unwrap_or_default();
    if detail.len() > 2048 {
        return Err(ServiceError::BadRequest(
            "detail: at most 2 KiB of JSON".into(),
        ));
    }
    let (title, _) = own_session(&state, &viewer.sub, &id).await?;
    state.account_writes(&viewer.sub)?;
    sqlx::query(
        "INSERT INTO playback_events (id, session_id, account_id, title_id, kind, position_ms, detail, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(random_id())
    .bind(&id)
    .bind(&viewer.sub)
    .bind(&title)
    .bind(&e.kind)
    .bind(position)
    .bind(&detail)
    .bind(now_ms())
    .execute(&state.db)
    .await?;
    if matches!(e.kind.as_str(), "stop" | "ended" | "pause") {
        record_progress(&state, &viewer.sub, &title, position).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
