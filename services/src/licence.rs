//! W3C ClearKey licence server. A request `{"kids": [base64url], "type": ...}` to
//! `/v1/licence/{playback token}` is answered with a JSON Web Key set holding only the keys
//! of the session's title that the session is entitled to (audio, and video within the
//! plan's resolution). Keys are unwrapped from the KEK only here; every request is audited
//! with key IDs, never key bytes.

use crate::error::{Result, ServiceError};
use crate::util::{b64, now_ms, random_id, unb64};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/licence/{token}", post(licence))
}

#[derive(Debug, Deserialize)]
pub struct LicenceRequest {
    pub kids: Vec<String>,
    /// `temporary` or `persistent-license`; answered as `temporary` either way.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

async fn licence(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse> {
    let now = now_ms();
    let claims = state
        .signer
        .verify_playback(&token, now)
        .ok_or(ServiceError::Unauthorized)?;
    // Players send the request as JSON in an ArrayBuffer, whatever the content type.
    let request: LicenceRequest = serde_json::from_slice(&body).map_err(|_| {
        ServiceError::BadRequest("expected a ClearKey licence request {\"kids\": [...]}".into())
    })?;
    if request.kids.is_empty() || request.kids.len() > 32 {
        return Err(ServiceError::BadRequest("kids: 1 to 32 key IDs".into()));
    }
    let mut requested = Vec::new();
    for kid in &request.kids {
        let bytes = unb64(kid).filter(|b| b.len() == 16).ok_or_else(|| {
            ServiceError::BadRequest("kids: each a base64url 16-byte key ID".into())
        })?;
        requested.push(hex::encode(bytes));
    }
    // The session even when it has ended: the refusal is audited like an issue.
    let session = crate::session::session_of(&state, &claims).await?;
    state.account_writes(&session.account)?;
    let (account, title) = (session.account.clone(), session.title.clone());
    let cached = crate::catalog::cached_title(&state, &title).await?;
    // A title hidden or out of its availability window since the session started gets no
    // more keys.
    let unavailable = !cached.as_ref().is_some_and(|t| t.row.playable_at(now));
    let ended = session.ended(now, state.config.live_since(now));
    let entitled: Vec<&str> = session.kids.iter().map(String::as_str).collect();
    let (wanted, refused): (Vec<String>, Vec<String>) = requested
        .into_iter()
        .partition(|kid| ended.is_none() && !unavailable && entitled.contains(&kid.as_str()));
    // One licence carries every key the session is entitled to, the requested ones first:
    // players ask with the key ID of the rendition they start on, and must not stall when
    // they switch to another rendition of the plan (its key is already in the CDM).
    let mut issued = wanted;
    if !issued.is_empty() {
        for kid in &entitled {
            if !issued.iter().any(|k| k == kid) {
                issued.push(kid.to_string());
            }
        }
    }
    let mut keys = Vec::new();
    if !issued.is_empty() {
        let cached = cached.as_ref().ok_or_else(|| {
            ServiceError::Internal(format!("title {title} of a live session is gone"))
        })?;
        let wrapped = &cached.keys;
        for kid in &issued {
            let w = wrapped.iter().find(|(k, _)| k == kid).ok_or_else(|| {
                ServiceError::Internal(format!("title {title}: no stored key for key ID {kid}"))
            })?;
            let key = state.kek.unwrap(&title, kid, &w.1).ok_or_else(|| {
                ServiceError::Internal(format!(
                    "title {title}: key ID {kid} does not unwrap under the configured KEK"
                ))
            })?;
            keys.push(json!({
                "kty": "oct",
                "kid": b64(&hex::decode(kid).unwrap_or_default()),
                "k": b64(&*key),
            }));
        }
    }
    let gate = state.writing().await;
    sqlx::query(
        "INSERT INTO licence_audit (id, session_id, account_id, title_id, issued, refused, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(random_id())
    .bind(&claims.sid)
    .bind(&account)
    .bind(&title)
    .bind(issued.join(","))
    .bind(refused.join(","))
    .bind(now)
    .execute(&state.db)
    .await?;
    drop(gate);
    tracing::info!(session = %claims.sid, title = %title, issued = ?issued, refused = ?refused, "licence");
    if let Some(why) = ended {
        return Err(why.error());
    }
    if unavailable {
        return Err(ServiceError::forbidden(
            "title_unavailable",
            "this title is no longer available",
        ));
    }
    if keys.is_empty() {
        return Err(ServiceError::forbidden(
            "not_entitled",
            "none of the requested keys is part of this playback session's entitlement",
        ));
    }
    state.metrics.licences_issued.inc();
    let mut licence = json!({
        "keys": keys,
        // Licences are never persistent, whatever the request asked for.
        "type": "temporary",
    });
    let body = serde_json::to_vec(&licence)
        .map_err(|e| ServiceError::Internal(format!("a licence did not serialise: {e}")))?;
    // The keys' base64 text is zeroed here; the body goes to the HTTP stack, which frees
    // its buffers without zeroing them.
    zero_strings(&mut licence);
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "application/json"),
        ],
        body,
    ))
}

/// Overwrites every string in `value` with zeros (licences hold keys as base64 text).
fn zero_strings(value: &mut serde_json::Value) {
    use zeroize::Zeroize;
    match value {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(zero_strings),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(zero_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_of_a_licence_is_zeroed() {
        let mut licence = json!({
            "keys": [{ "kty": "oct", "kid": "a2lk", "k": "c2VjcmV0LWtleS1ieXRlcw" }],
            "type": "temporary",
        });
        zero_strings(&mut licence);
        assert_eq!(
            licence,
            json!({ "keys": [{ "kty": "", "kid": "", "k": "" }], "type": "" })
        );
    }
}
