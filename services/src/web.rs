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
