//! The catalog: titles registered from a published `title.json` (with their keys from CPIX,
//! wrapped under the KEK), admin edits, browse/search/filter with paging, availability
//! windows, maturity ratings, posters, "continue watching" and "more like this".

use crate::auth::{Admin, Viewer};
use crate::error::{JsonBody, Result, ServiceError};
use crate::util::now_ms;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/titles", get(browse))
        .route("/v1/titles/{id}", get(one))
        .route("/v1/titles/{id}/similar", get(similar))
        .route("/v1/titles/{id}/poster", get(poster))
        .route("/v1/me/continue-watching", get(continue_watching))
        .route("/v1/admin/titles", post(admin_import))
        .route("/v1/admin/titles/{id}", patch(admin_update))
}

/// A published `title.json`: the pipeline's own record type.
pub type PublishedTitle = reel_media::TitleRecord;

/// The youngest age a maturity rating is for (BBFC, MPA and US TV ratings).
pub fn rating_age(rating: &str) -> Option<i64> {
    Some(match rating.trim().to_ascii_uppercase().as_str() {
        "U" | "G" | "ALL" | "TV-Y" | "TV-G" => 0,
        "TV-Y7" => 7,
        "PG" | "TV-PG" => 8,
        "12" | "12A" => 12,
        "PG-13" => 13,
        "TV-14" => 14,
        "15" => 15,
        "R" => 17,
        "18" | "NC-17" | "TV-MA" | "R18" => 18,
        _ => return None,
    })
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !id.starts_with('.')
}

fn text_meta(meta: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    meta.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

/// Registers (or refreshes) a published title: reads `title.json` from the store at `url`,
/// checks that `cpix` (when the title is encrypted) holds a key for every key ID, wraps the
/// keys under the KEK and stores both. Errors name the URL and the problem, never a key.
pub async fn import_title(
    state: &AppState,
    url: &str,
    cpix: Option<(&str, &str)>,
) -> Result<Value> {
    let mut root = url
        .trim_end_matches('/')
        .trim_end_matches("/title.json")
        .to_string();
    // A local folder is kept as an absolute path: the origin must not depend on the folder
    // the service runs in.
    if let Ok(reel_publish::Destination::Folder(folder)) = reel_publish::Destination::parse(&root) {
        let abs = std::fs::canonicalize(&folder)
            .map_err(|e| ServiceError::Import(format!("{url}: {e}")))?;
        if !abs.is_dir() {
            return Err(ServiceError::Import(format!("{url}: not a folder")));
        }
        root = format!("file://{}", abs.display());
    }
    let err = |problem: String| ServiceError::Import(format!("{root}/title.json: {problem}"));
    let store = state.store(&root).map_err(|e| err(e.to_string()))?;
    let bytes = tokio::task::spawn_blocking(move || store.get("title.json"))
        .await
        .map_err(|e| err(e.to_string()))?
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("not found (is this a published title's folder?)".into()))?;
    let record: PublishedTitle =
        serde_json::from_slice(&bytes).map_err(|e| err(format!("not a title record: {e}")))?;
    if !valid_id(&record.id) {
        return Err(err(format!(
            "id '{}' must be 1-128 letters, digits, '-', '_' or '.'",
            record.id
        )));
    }
    let videos: Vec<i64> = record
        .renditions
        .iter()
        .filter(|r| r.kind == reel_media::TrackKind::Video)
        .filter_map(|r| r.height.map(i64::from))
        .collect();
    let (Some(&min_height), Some(&max_height)) = (videos.iter().min(), videos.iter().max()) else {
        return Err(err("no video rendition".into()));
    };
    let maturity = text_meta(&record.metadata, "maturity").unwrap_or_else(|| "18".into());
    let min_age = rating_age(&maturity).ok_or_else(|| {
        err(format!(
            "maturity '{maturity}' is not a rating Reel knows (U, PG, 12, 15, 18, G, PG-13, R, NC-17, TV-Y..TV-MA)"
        ))
    })?;
    let genres: Vec<String> = record
        .metadata
        .get("genres")
        .and_then(|g| g.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let year = record.metadata.get("year").and_then(|v| v.as_i64());
    let name = record.name.clone().unwrap_or_else(|| record.id.clone());
    let description = text_meta(&record.metadata, "description").unwrap_or_default();

    // Keys: one per key ID the renditions name, from the CPIX document.
    let mut wrapped = Vec::new();
    let kids: BTreeMap<String, String> = record
        .renditions
        .iter()
        .filter_map(|r| {
            r.key_id.as_ref().map(|k| {
                (
                    k.replace('-', "").to_ascii_lowercase(),
                    r.key_class.clone().unwrap_or_else(|| "all".into()),
                )
            })
        })
        .collect();
    if record.encryption.is_some() || !kids.is_empty() {
        let Some((text, origin)) = cpix else {
            return Err(err(
                "the title is encrypted: give its keys (a CPIX document)".into(),
            ));
        };
        let keys = reel_drm::parse_cpix_document(text, origin)
            .map_err(|e| ServiceError::Import(e.to_string()))?;
        for (kid, class) in &kids {
            let key = keys
                .keys()
                .iter()
                .find(|k| &k.kid.hex() == kid)
                .ok_or_else(|| {
                    ServiceError::Import(format!(
                        "{origin}: has no key for key ID {kid} ({class} tracks of title {})",
                        record.id
                    ))
                })?;
            wrapped.push((
                kid.clone(),
                class.clone(),
                state.kek.wrap(&record.id, kid, key.key.expose()),
            ));
        }
    }

    let now = now_ms();
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO titles (id, name, name_lower, description, genres, year, maturity, min_age,
            duration_ms, min_height, max_height, available_from, available_until, hidden, source,
            dash, hls, poster, record, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, 0, $12, $13, $14, $15, $16, $17, $17)
         ON CONFLICT (id) DO UPDATE SET name = $2, name_lower = $3, description = $4, genres = $5,
            year = $6, maturity = $7, min_age = $8, duration_ms = $9, min_height = $10,
            max_height = $11, source = $12, dash = $13, hls = $14, poster = $15, record = $16,
            updated_at = $17",
    )
    .bind(&record.id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(&description)
    .bind(serde_json::to_string(&genres).unwrap_or_else(|_| "[]".into()))
    .bind(year)
    .bind(&maturity)
    .bind(min_age)
    .bind((record.duration * 1000.0).round() as i64)
    .bind(min_height)
    .bind(max_height)
    .bind(&root)
    .bind(&record.dash)
    .bind(&record.hls)
    .bind(&record.poster)
    .bind(String::from_utf8_lossy(&bytes).into_owned())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM title_keys WHERE title_id = $1")
        .bind(&record.id)
        .execute(&mut *tx)
        .await?;
    for (kid, class, w) in &wrapped {
        sqlx::query(
            "INSERT INTO title_keys (title_id, kid, class, wrapped_key) VALUES ($1, $2, $3, $4)",
        )
        .bind(&record.id)
        .bind(kid)
        .bind(class)
        .bind(w)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    forget_title(state, &record.id);
    tracing::info!(title = %record.id, keys = wrapped.len(), "title imported");
    Ok(json!({
        "id": record.id, "name": name, "renditions": record.renditions.len(),
        "keys": wrapped.len(), "key_ids": kids.keys().collect::<Vec<_>>(),
    }))
}

/// One catalog row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TitleRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub genres: String,
    pub year: Option<i64>,
    pub maturity: String,
    pub min_age: i64,
    pub duration_ms: i64,
    pub min_height: i64,
    pub max_height: i64,
    pub available_from: Option<i64>,
    pub available_until: Option<i64>,
    pub hidden: i64,
    pub source: String,
    pub dash: String,
    pub hls: String,
    pub poster: Option<String>,
}

pub const TITLE_COLUMNS: &str =
    "id, name, description, genres, year, maturity, min_age, duration_ms, \
    min_height, max_height, available_from, available_until, hidden, source, dash, hls, poster";

impl TitleRow {
    pub fn genres(&self) -> Vec<String> {
        serde_json::from_str(&self.genres).unwrap_or_default()
    }

    pub fn available_at(&self, now: i64) -> bool {
        self.available_from.is_none_or(|f| f <= now) && self.available_until.is_none_or(|u| now < u)
    }

    /// Not hidden, and within the availability window at `now`: what viewers may see and
    /// play, and what the origin, the licence server and the poster route serve.
    pub fn playable_at(&self, now: i64) -> bool {
        self.hidden == 0 && self.available_at(now)
    }

    pub fn json(&self) -> Value {
        json!({
            "id": self.id, "name": self.name, "description": self.description,
            "genres": self.genres(), "year": self.year, "maturity": self.maturity,
            "duration": self.duration_ms as f64 / 1000.0,
            "min_height": self.min_height, "max_height": self.max_height,
            "available_from": self.available_from, "available_until": self.available_until,
            "hidden": self.hidden != 0,
            "poster": self.poster.as_ref().map(|_| format!("/v1/titles/{}/poster", self.id)),
        })
    }
}

pub async fn load_title(state: &AppState, id: &str) -> Result<Option<TitleRow>> {
    if !valid_id(id) {
        return Ok(None);
    }
    Ok(
        sqlx::query_as::<_, TitleRow>(&format!("SELECT {TITLE_COLUMNS} FROM titles WHERE id = $1"))
            .bind(id)
            .fetch_optional(&state.db)
            .await?,
    )
}

/// What the hot paths (playback, licences, origin) need of a title, held in memory for a few
/// seconds: the row, the parsed record and the wrapped keys. Imports and admin edits drop the
/// entry at once; other instances see a change within [`TITLE_CACHE_TTL`].
#[derive(Debug)]
pub struct CachedTitle {
    pub row: TitleRow,
    pub record: PublishedTitle,
    /// (key ID hex, wrapped key).
    pub keys: Vec<(String, String)>,
}

pub const TITLE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// The title from the cache, or from the database (then cached).
pub async fn cached_title(
    state: &AppState,
    id: &str,
) -> Result<Option<std::sync::Arc<CachedTitle>>> {
    {
        let cache = state.titles.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, t)) = cache.get(id) {
            if at.elapsed() < TITLE_CACHE_TTL {
                return Ok(Some(t.clone()));
            }
        }
    }
    let Some(row) = load_title(state, id).await? else {
        return Ok(None);
    };
    let record: Option<(String,)> = sqlx::query_as("SELECT record FROM titles WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.db)
        .await?;
    let record: PublishedTitle = record
        .and_then(|(r,)| serde_json::from_str(&r).ok())
        .ok_or_else(|| ServiceError::Internal(format!("title {id}: unreadable record")))?;
    let keys: Vec<(String, String)> =
        sqlx::query_as("SELECT kid, wrapped_key FROM title_keys WHERE title_id = $1")
            .bind(id)
            .fetch_all(&state.db)
            .await?;
    let t = std::sync::Arc::new(CachedTitle { row, record, keys });
    let mut cache = state.titles.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() > 10_000 {
        cache.retain(|_, (at, _)| at.elapsed() < TITLE_CACHE_TTL);
    }
    cache.insert(id.to_string(), (std::time::Instant::now(), t.clone()));
    Ok(Some(t))
}

/// Drops a title from the cache (after an import or an edit).
pub fn forget_title(state: &AppState, id: &str) {
    state
        .titles
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id);
}

/// What a viewer may see of the catalog: visible, available now, within their maturity.
fn visible_to(t: &TitleRow, viewer: &crate::tokens::AccessClaims, now: i64) -> bool {
    viewer.role == "admin" || (t.playable_at(now) && t.min_age <= viewer.max_age)
}

#[derive(Debug, Deserialize)]
pub struct BrowseQuery {
    pub q: Option<String>,
    pub genre: Option<String>,
    pub year: Option<i64>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

enum Bind {
    Text(String),
    Int(i64),
}

async fn browse(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Query(q): Query<BrowseQuery>,
) -> Result<Json<Value>> {
    let per_page = q.per_page.unwrap_or(20).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    if page > 100_000 {
        return Err(ServiceError::BadRequest("page: at most 100000".into()));
    }
    let now = now_ms();
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    let param = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    if viewer.role != "admin" {
        clauses.push("hidden = 0".to_string());
        let p = param(&mut binds, Bind::Int(now));
        clauses.push(format!(
            "(available_from IS NULL OR available_from <= {p}) AND (available_until IS NULL OR available_until > {p})"
        ));
        let p = param(&mut binds, Bind::Int(viewer.max_age));
        clauses.push(format!("min_age <= {p}"));
    }
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        crate::util::plain_text("q", text)?;
        if text.len() > 200 {
            return Err(ServiceError::BadRequest("q: at most 200 bytes".into()));
        }
        let p = param(&mut binds, Bind::Text(like_pattern(&text.to_lowercase())));
        clauses.push(format!("name_lower LIKE {p} ESCAPE '\\'"));
    }
    if let Some(genre) = q.genre.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        crate::util::plain_text("genre", genre)?;
        if genre.len() > 100 {
            return Err(ServiceError::BadRequest("genre: at most 100 bytes".into()));
        }
        let quoted = serde_json::to_string(&genre.to_lowercase()).unwrap_or_default();
        let p = param(&mut binds, Bind::Text(like_pattern(&quoted)));
        clauses.push(format!("LOWER(genres) LIKE {p} ESCAPE '\\'"));
    }
    if let Some(year) = q.year {
        let p = param(&mut binds, Bind::Int(year));
        clauses.push(format!("year = {p}"));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let count_sql = format!("SELECT COUNT(*) FROM titles {filter}");
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
    for b in &binds {
        count = match b {
            Bind::Text(t) => count.bind(t.clone()),
            Bind::Int(i) => count.bind(*i),
        };
    }
    let total = count.fetch_one(&state.db).await?;
    let list_sql = format!(
        "SELECT {TITLE_COLUMNS} FROM titles {filter} ORDER BY name_lower, id LIMIT {per_page} OFFSET {}",
        (page - 1) * per_page
    );
    let mut list = sqlx::query_as::<_, TitleRow>(&list_sql);
    for b in &binds {
        list = match b {
            Bind::Text(t) => list.bind(t.clone()),
            Bind::Int(i) => list.bind(*i),
        };
    }
    let rows = list.fetch_all(&state.db).await?;
    Ok(Json(json!({
        "titles": rows.iter().map(TitleRow::json).collect::<Vec<_>>(),
        "page": page, "per_page": per_page, "total": total,
    })))
}

async fn one(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let t = cached_title(&state, &id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    if !visible_to(&t.row, &viewer, now_ms()) {
        return Err(ServiceError::NotFound);
    }
    let mut body = t.row.json();
    body["tracks"] = tracks(&t.record);
    Ok(Json(body))
}

/// The choices a viewer has besides the picture: audio renditions (language, role) and text
/// tracks (language, kind, the name players show), from the published record.
fn tracks(record: &PublishedTitle) -> Value {
    use reel_media::TrackKind;
    let of = |kind: TrackKind| record.renditions.iter().filter(move |r| r.kind == kind);
    let audio: Vec<Value> = of(TrackKind::Audio)
        .map(|r| {
            json!({
                "name": r.name,
                "codec": r.codec,
                "channels": r.channels,
                "language": r.language,
                "role": r.role.map(|role| role.name()),
                "title": r.title,
            })
        })
        .collect();
    let text: Vec<Value> = of(TrackKind::Text)
        .filter_map(|r| {
            let t = r.text.as_ref()?;
            Some(json!({ "name": r.name, "language": t.language, "kind": t.kind.name() }))
        })
        .collect();
    json!({ "audio": audio, "text": text })
}

/// "More like this": other visible titles ranked by shared genres (Jaccard), words shared
/// by name and description, and nearness in year.
async fn similar(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let now = now_ms();
    let seed = load_title(&state, &id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    if !visible_to(&seed, &viewer, now) {
        return Err(ServiceError::NotFound);
    }
    let all = sqlx::query_as::<_, TitleRow>(&format!(
        "SELECT {TITLE_COLUMNS} FROM titles WHERE hidden = 0 AND id <> $1"
    ))
    .bind(&id)
    .fetch_all(&state.db)
    .await?;
    let words = |t: &TitleRow| -> HashSet<String> {
        format!("{} {}", t.name, t.description)
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 3)
            .map(str::to_string)
            .collect()
    };
    let jaccard = |a: &HashSet<String>, b: &HashSet<String>| {
        let union = a.union(b).count();
        if union == 0 {
            0.0
        } else {
            a.intersection(b).count() as f64 / union as f64
        }
    };
    let seed_genres: HashSet<String> = seed
        .genres()
        .into_iter()
        .map(|g| g.to_lowercase())
        .collect();
    let seed_words = words(&seed);
    let mut scored: Vec<(f64, &TitleRow)> = all
        .iter()
        .filter(|t| visible_to(t, &viewer, now))
        .map(|t| {
            let genres: HashSet<String> =
                t.genres().into_iter().map(|g| g.to_lowercase()).collect();
            let year = match (seed.year, t.year) {
                (Some(a), Some(b)) => 1.0 / (1.0 + (a - b).abs() as f64 / 5.0),
                _ => 0.0,
            };
            (
                0.6 * jaccard(&seed_genres, &genres)
                    + 0.3 * jaccard(&seed_words, &words(t))
                    + 0.1 * year,
                t,
            )
        })
        .filter(|(s, _)| *s > 0.0)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    Ok(Json(json!({
        "titles": scored.iter().take(10).map(|(s, t)| {
            let mut j = t.json();
            j["score"] = json!((s * 1000.0).round() / 1000.0);
            j
        }).collect::<Vec<_>>(),
    })))
}

/// The poster frame: public (an `<img>` cannot send a token), only for titles that are
/// visible and within their availability window.
async fn poster(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let t = load_title(&state, &id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let key = match (&t.poster, t.playable_at(now_ms())) {
        (Some(k), true) => k.clone(),
        _ => return Err(ServiceError::NotFound),
    };
    let store = state.store(&t.source)?;
    let source = t.source.clone();
    let (bytes, content_type) =
        tokio::task::spawn_blocking(move || crate::origin::read_poster(store, &source, &key))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        bytes,
    )
        .into_response())
}

async fn continue_watching(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
) -> Result<Json<Value>> {
    let now = now_ms();
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT title_id, position_ms, updated_at FROM watch_progress WHERE account_id = $1
         ORDER BY updated_at DESC LIMIT 50",
    )
    .bind(&viewer.sub)
    .fetch_all(&state.db)
    .await?;
    let mut out = Vec::new();
    for (title_id, position, updated) in rows {
        let Some(t) = load_title(&state, &title_id).await? else {
            continue;
        };
        // Started, not finished (the last 5% counts as finished).
        if !visible_to(&t, &viewer, now) || position <= 0 || position * 100 >= t.duration_ms * 95 {
            continue;
        }
        let mut j = t.json();
        j["position"] = json!(position as f64 / 1000.0);
        j["updated_at"] = json!(updated);
        out.push(j);
    }
    Ok(Json(json!({ "titles": out })))
}

#[derive(Debug, Deserialize)]
pub struct ImportRequest {
    /// Where the title was published: `file://PATH` or `s3://bucket/prefix`.
    pub url: String,
    /// The title's keys, as a CPIX document.
    pub cpix: Option<String>,
}

async fn admin_import(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody<ImportRequest>,
) -> Result<(StatusCode, Json<Value>)> {
    let report = import_title(
        &state,
        &body.url,
        body.cpix
            .as_deref()
            .map(|c| (c, "the request's CPIX document")),
    )
    .await
    .map_err(|e| match e {
        ServiceError::Import(m) => ServiceError::BadRequest(m),
        other => other,
    })?;
    tracing::info!(admin = %admin.sub, title = %report["id"], "admin imported a title");
    Ok((StatusCode::CREATED, Json(report)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TitleUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub genres: Option<Vec<String>>,
    pub year: Option<i64>,
    pub maturity: Option<String>,
    /// Unix milliseconds; `null` clears. Absent keeps.
    #[serde(default, with = "double_option")]
    pub available_from: Option<Option<i64>>,
    #[serde(default, with = "double_option")]
    pub available_until: Option<Option<i64>>,
    pub hidden: Option<bool>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        Ok(Some(Option::<i64>::deserialize(d)?))
    }
}

async fn admin_update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    JsonBody(u): JsonBody<TitleUpdate>,
) -> Result<Json<Value>> {
    let mut t = load_title(&state, &id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    for (field, text) in [
        ("name", u.name.as_deref()),
        ("description", u.description.as_deref()),
        ("maturity", u.maturity.as_deref()),
    ] {
        if let Some(text) = text {
            crate::util::plain_text(field, text)?;
        }
    }
    for g in u.genres.iter().flatten() {
        crate::util::plain_text("genres", g)?;
    }
    if let Some(name) = u.name {
        if name.trim().is_empty() || name.len() > 300 {
            return Err(ServiceError::BadRequest("name: 1-300 bytes".into()));
        }
        t.name = name;
    }
    if let Some(d) = u.description {
        if d.len() > 10_000 {
            return Err(ServiceError::BadRequest(
                "description: at most 10000 bytes".into(),
            ));
        }
        t.description = d;
    }
    if let Some(g) = u.genres {
        if g.len() > 20 || g.iter().any(|g| g.is_empty() || g.len() > 100) {
            return Err(ServiceError::BadRequest(
                "genres: at most 20, each 1-100 bytes".into(),
            ));
        }
        t.genres = serde_json::to_string(&g).unwrap_or_else(|_| "[]".into());
    }
    if let Some(y) = u.year {
        if !(1870..=3000).contains(&y) {
            return Err(ServiceError::BadRequest("year: 1870-3000".into()));
        }
        t.year = Some(y);
    }
    if let Some(m) = u.maturity {
        t.min_age = rating_age(&m).ok_or_else(|| {
            ServiceError::BadRequest(format!("maturity: '{m}' is not a known rating"))
        })?;
        t.maturity = m;
    }
    if let Some(f) = u.available_from {
        t.available_from = f;
    }
    if let Some(v) = u.available_until {
        t.available_until = v;
    }
    if let (Some(f), Some(v)) = (t.available_from, t.available_until) {
        if v <= f {
            return Err(ServiceError::BadRequest(
                "available_until must be after available_from".into(),
            ));
        }
    }
    if let Some(h) = u.hidden {
        t.hidden = i64::from(h);
    }
    sqlx::query(
        "UPDATE titles SET name = $2, name_lower = $3, description = $4, genres = $5, year = $6,
            maturity = $7, min_age = $8, available_from = $9, available_until = $10, hidden = $11,
            updated_at = $12 WHERE id = $1",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(t.name.to_lowercase())
    .bind(&t.description)
    .bind(&t.genres)
    .bind(t.year)
    .bind(&t.maturity)
    .bind(t.min_age)
    .bind(t.available_from)
    .bind(t.available_until)
    .bind(t.hidden)
    .bind(now_ms())
    .execute(&state.db)
    .await?;
    forget_title(&state, &t.id);
    tracing::info!(admin = %admin.sub, title = %t.id, "admin updated a title");
    Ok(Json(t.json()))
}
