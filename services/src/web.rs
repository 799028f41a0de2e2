//! The player page: sign in, browse with posters, play with shaka-player through the
//! licence server, and show the current resolution and bitrate.

use crate::error::{Result, ServiceError};
use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../web/index.html");
const APP: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/style.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route(
            "/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], APP) }),
        )
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], STYLE) }),
        )
        .route("/lib/shaka-player.js", get(shaka))
}

/// What the player page may load: its own scripts, styles, posters and media (MSE plays from
/// `blob:` URLs), nothing inline, no plugins, and no framing by other sites.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Headers every answer carries: the page's content security policy (harmless on the API's
/// JSON and the origin's media), no content-type sniffing, no framing, and no referrer, since
/// origin and licence URLs carry playback tokens.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(header::HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    response
}

async fn shaka(State(state): State<AppState>) -> Result<Response> {
    let path = state.config.shaka.clone();
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        ServiceError::Internal(format!(
            "shaka-player at {} (set --shaka or REEL_SHAKA; `npm ci` in tests/players installs it): {e}",
            path.display()
        ))
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/javascript"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        bytes,
    )
        .into_response())
}
