//! The origin: serves a title's published objects under `/origin/{playback token}/{key}`.
//! The token sits in the path so that the manifests' relative URLs carry it to every
//! segment. Byte ranges, content types, cache headers and CORS; no key ever leaves the
//! title's folder (`..`, encoded or not, and symlinks out of it are refused).

use crate::error::{Result, ServiceError};
use crate::util::now_ms;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use reel_publish::Destination;
use tower_http::cors::{Any, CorsLayer};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/origin/{token}/{*key}", get(serve_object))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::HEAD])
                .allow_headers([header::RANGE])
                .expose_headers([
                    header::CONTENT_RANGE,
                    header::CONTENT_LENGTH,
                    header::ACCEPT_RANGES,
                ]),
        )
}

/// A single byte range of an object of `size` bytes: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
/// `Ok(None)` means "send it all" (no header, or several ranges, which we may ignore).
pub fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let unsatisfiable = ServiceError::RangeNotSatisfiable { size };
    let (a, b) = spec
        .split_once('-')
        .ok_or(ServiceError::RangeNotSatisfiable { size })?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b
            .parse()
            .map_err(|_| ServiceError::RangeNotSatisfiable { size })?;
        if n == 0 || size == 0 {
            return Err(unsatisfiable);
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a
            .parse()
            .map_err(|_| ServiceError::RangeNotSatisfiable { size })?;
        let end: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| ServiceError::RangeNotSatisfiable { size })?
                .min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            return Err(unsatisfiable);
        }
        (start, end)
    };
    Ok(Some(range))
}

fn cache_control(key: &str) -> &'static str {
    if key.ends_with(".mpd") || key.ends_with(".m3u8") {
        reel_publish::CACHE_MANIFEST
    } else if key.ends_with(".json") {
        reel_publish::CACHE_RECORD
    } else {
        reel_publish::CACHE_IMMUTABLE
    }
}

/// Reads `key` (or the `range` of it) under `root`, refusing anything whose real path leaves
/// the root. One blocking task does every file-system step.
/// The bytes read, the object's size and the range served (`None`: all of it).
type Read = (Vec<u8>, u64, Option<(u64, u64)>);

fn read_local(root: &std::path::Path, key: &str, range: Option<&str>) -> Result<Read> {
    use std::io::{Read, Seek};
    let root = std::fs::canonicalize(root).map_err(|_| ServiceError::NotFound)?;
    let resolved = std::fs::canonicalize(root.join(key)).map_err(|_| ServiceError::NotFound)?;
    if !resolved.starts_with(&root) {
        return Err(ServiceError::NotFound);
    }
    let mut file = std::fs::File::open(&resolved).map_err(|_| ServiceError::NotFound)?;
    let meta = file.metadata().map_err(|_| ServiceError::NotFound)?;
    if !meta.is_file() {
        return Err(ServiceError::NotFound);
    }
    let size = meta.len();
    let range = match range {
        Some(v) => parse_range(v, size)?,
        None => None,
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { end - start + 1 };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .map_err(|e| ServiceError::Internal(format!("{}: {e}", resolved.display())))?;
    }
    let mut buf = vec![0u8; length as usize];
    file.read_exact(&mut buf)
        .map_err(|e| ServiceError::Internal(format!("{}: {e}", resolved.display())))?;
    Ok((buf, size, range))
}

async fn serve_object(
    State(state): State<AppState>,
    Path((token, key)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let claims = state
        .signer
        .verify_playback(&token, now_ms())
        .ok_or(ServiceError::Unauthorized)?;
    // `key` is already percent-decoded: `%2e%2e` arrives as `..` and is refused here.
    if reel_publish::check_key(&key).is_err() || key.split('/').any(|c| c.starts_with('.')) {
        return Err(ServiceError::NotFound);
    }
    let title = crate::catalog::cached_title(&state, &claims.title)
        .await?
        .filter(|t| t.row.hidden == 0)
        .ok_or(ServiceError::NotFound)?;
    let source = title.row.source.clone();
    let range_header = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (body, size, range) = match Destination::parse(&source) {
        Ok(Destination::Folder(root)) => {
            let k = key.clone();
            tokio::task::spawn_blocking(move || read_local(&root, &k, range_header.as_deref()))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))??
        }
        _ => {
            // S3: the size first, then only the bytes asked for (a ranged GET).
            let store = state.store(&source)?;
            let k = key.clone();
            tokio::task::spawn_blocking(move || -> Result<Read> {
                let internal =
                    |e: reel_publish::PublishError| ServiceError::Internal(e.to_string());
                let size = store
                    .head(&k)
                    .map_err(internal)?
                    .ok_or(ServiceError::NotFound)?
                    .size;
                let range = match range_header.as_deref() {
                    Some(v) => parse_range(v, size)?,
                    None => None,
                };
                let body = match range {
                    Some((a, b)) => store.get_range(&k, a, b),
                    None if size == 0 => Ok(Some(Vec::new())),
                    None => store.get(&k),
                }
                .map_err(internal)?
                .ok_or(ServiceError::NotFound)?;
                Ok((body, size, range))
            })
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??
        }
    };
    let audio = key.split('/').next().is_some_and(|d| d.contains("audio"));
    let mut response = Response::builder()
        .status(if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        })
        .header(
            header::CONTENT_TYPE,
            reel_publish::content_type_for(&key, audio),
        )
        .header(header::CACHE_CONTROL, cache_control(&key))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, body.len());
    if let Some((start, end)) = range {
        response = response.header(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    response
        .body(body)
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100).unwrap(), Some((50, 99)));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=9-3", 100).is_err());
        assert!(parse_range("bytes=x-3", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
    }
}
