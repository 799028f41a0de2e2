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
use std::sync::Arc;
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

/// Objects (or ranges) up to this size are read in one go; larger ones are streamed in
/// chunks of this size, so a request holds at most one chunk in memory whatever the
/// object's size (a whole single-file rendition asked for without a `Range`, say).
const CHUNK: u64 = 1 << 20;

/// Reads bytes `start..=end` of the object found (exactly that many, or an error).
type ChunkReader = Arc<dyn Fn(u64, u64) -> Result<Vec<u8>> + Send + Sync>;

/// An object found: its size, the range asked for (`None`: all of it), and its bytes: read
/// already when they fit in one chunk (or nothing is to be sent), else how to read them.
struct Found {
    size: u64,
    range: Option<(u64, u64)>,
    bytes: Option<Vec<u8>>,
    reader: ChunkReader,
}

impl Found {
    /// Parses the `Range` header against the object's size and, when the answer fits in
    /// one chunk and a body is wanted, reads it (on the caller's blocking task).
    fn new(size: u64, range: Option<&str>, body: bool, reader: ChunkReader) -> Result<Self> {
        let range = match range {
            Some(v) => parse_range(v, size)?,
            None => None,
        };
        let mut found = Found {
            size,
            range,
            bytes: None,
            reader,
        };
        let (start, end) = found.span();
        if !body || found.length() == 0 {
            found.bytes = Some(Vec::new());
        } else if found.length() <= CHUNK {
            found.bytes = Some((found.reader)(start, end)?);
        }
        Ok(found)
    }

    /// The first and last byte to send.
    fn span(&self) -> (u64, u64) {
        self.range.unwrap_or((0, self.size.saturating_sub(1)))
    }

    fn length(&self) -> u64 {
        if self.size == 0 {
            0
        } else {
            let (start, end) = self.span();
            end - start + 1
        }
    }

    /// The response body: the bytes read, or a stream reading one chunk at a time.
    fn body(self) -> Body {
        if let Some(bytes) = self.bytes {
            return Body::from(bytes);
        }
        let (start, end) = self.span();
        let reader = self.reader;
        let chunks = futures_util::stream::try_unfold(start, move |at| {
            let reader = reader.clone();
            async move {
                if at > end {
                    return Ok::<_, ServiceError>(None);
                }
                let last = (at + CHUNK - 1).min(end);
                let bytes = tokio::task::spawn_blocking(move || reader(at, last))
                    .await
                    .map_err(|e| ServiceError::Internal(e.to_string()))??;
                Ok(Some((bytes, last + 1)))
            }
        });
        Body::from_stream(chunks)
    }
}

/// Finds `key` under `root`, refusing anything whose real path leaves the root. One
/// blocking task does every file-system step of a small answer.
fn find_local(root: &std::path::Path, key: &str, range: Option<&str>, body: bool) -> Result<Found> {
    use std::os::unix::fs::FileExt;
    let file = open_beneath(root, key)?;
    let meta = file.metadata().map_err(|_| ServiceError::NotFound)?;
    if !meta.is_file() {
        return Err(ServiceError::NotFound);
    }
    let file = Arc::new(file);
    let key = key.to_string();
    let reader: ChunkReader = Arc::new(move |start, end| {
        let mut buf = vec![0u8; (end - start + 1) as usize];
        file.read_exact_at(&mut buf, start)
            .map_err(|e| ServiceError::Internal(format!("{key}: {e}")))?;
        Ok(buf)
    });
    Found::new(meta.len(), range, body, reader)
}

/// Opens `key` for reading beneath `root`: the kernel resolves the path in the open itself
/// (`openat2` with `RESOLVE_BENEATH`), so `..`, absolute symlinks and symlinks that lead out
/// of the root are refused, and nothing can be swapped in between a check and the open.
/// Non-blocking, so that a FIFO planted in a title's folder cannot hold a thread (it is then
/// refused as not a regular file). Where the kernel has no `openat2` (before Linux 5.6, or a
/// sandbox that forbids it), the real path is checked and then opened without following a
/// final symlink, which narrows the window to a swapped folder.
fn open_beneath(root: &std::path::Path, key: &str) -> Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|_| ServiceError::NotFound)?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(&dir, key, flags, Mode::empty(), resolve) {
        Ok(fd) => Ok(std::fs::File::from(fd)),
        Err(Errno::NOSYS) | Err(Errno::PERM) => {
            let root = std::fs::canonicalize(root).map_err(|_| ServiceError::NotFound)?;
            let real = std::fs::canonicalize(root.join(key)).map_err(|_| ServiceError::NotFound)?;
            if !real.starts_with(&root) {
                return Err(ServiceError::NotFound);
            }
            let fd = rustix::fs::open(&real, flags | OFlags::NOFOLLOW, Mode::empty())
                .map_err(|_| ServiceError::NotFound)?;
            Ok(std::fs::File::from(fd))
        }
        Err(_) => Err(ServiceError::NotFound),
    }
}

/// The largest poster served.
const POSTER_MAX_BYTES: u64 = 4 << 20;

/// A title's poster, read with the origin's rules (a folder's file must really be inside the
/// title's folder: no `..`, no symlink out), at most [`POSTER_MAX_BYTES`], and only when its
/// bytes are an image (JPEG, PNG or WebP): the bytes and their content type. Anything else is
/// "not found", so that nothing about other files leaks.
pub(crate) fn read_poster(
    store: Arc<dyn reel_publish::ObjectStore>,
    source: &str,
    key: &str,
) -> Result<(Vec<u8>, &'static str)> {
    if reel_publish::check_key(key).is_err() {
        return Err(ServiceError::NotFound);
    }
    let found = match Destination::parse(source) {
        Ok(Destination::Folder(root)) => find_local(&root, key, None, false)?,
        _ => find_in_store(store, key, None, false)?,
    };
    if found.size == 0 || found.size > POSTER_MAX_BYTES {
        return Err(ServiceError::NotFound);
    }
    let bytes = (found.reader)(0, found.size - 1)?;
    let kind = image_type(&bytes).ok_or(ServiceError::NotFound)?;
    Ok((bytes, kind))
}

/// The content type of an image by its signature: JPEG, PNG or WebP.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Finds `key` in an object store: its size first (HEAD), then only the bytes asked for
/// (ranged GETs, one per chunk).
fn find_in_store(
    store: Arc<dyn reel_publish::ObjectStore>,
    key: &str,
    range: Option<&str>,
    body: bool,
) -> Result<Found> {
    let internal = |e: reel_publish::PublishError| ServiceError::Internal(e.to_string());
    let size = store
        .head(key)
        .map_err(internal)?
        .ok_or(ServiceError::NotFound)?
        .size;
    let key = key.to_string();
    let reader: ChunkReader = Arc::new(move |start, end| {
        let bytes = store
            .get_range(&key, start, end)
            .map_err(internal)?
            .ok_or(ServiceError::NotFound)?;
        if bytes.len() as u64 != end - start + 1 {
            return Err(ServiceError::Internal(format!(
                "{key}: the object changed while it was read"
            )));
        }
        Ok(bytes)
    });
    Found::new(size, range, body, reader)
}

async fn serve_object(
    State(state): State<AppState>,
    Path((token, key)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let now = now_ms();
    let claims = state
        .signer
        .verify_playback(&token, now)
        .ok_or(ServiceError::Unauthorized)?;
    // Every request, not only the first: a stopped, replaced, expired or idle session
    // fetches nothing more.
    let session = crate::session::live_session(&state, &claims, now).await?;
    // `key` is already percent-decoded: `%2e%2e` arrives as `..` and is refused here.
    if reel_publish::check_key(&key).is_err() || key.split('/').any(|c| c.starts_with('.')) {
        return Err(ServiceError::NotFound);
    }
    // A title hidden or out of its availability window is gone for sessions already playing.
    let title = crate::catalog::cached_title(&state, &claims.title)
        .await?
        .filter(|t| t.row.playable_at(now))
        .ok_or(ServiceError::NotFound)?;
    let source = title.row.source.clone();
    let range_header = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = method != Method::HEAD;
    let found = match Destination::parse(&source) {
        Ok(Destination::Folder(root)) => {
            let k = key.clone();
            tokio::task::spawn_blocking(move || {
                find_local(&root, &k, range_header.as_deref(), body)
            })
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??
        }
        _ => {
            let store = state.store(&source)?;
            let k = key.clone();
            tokio::task::spawn_blocking(move || {
                find_in_store(store, &k, range_header.as_deref(), body)
            })
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??
        }
    };
    // The rendition by the title record's own names: a rendition's folder, or a single
    // file's stem. Video above the session's plan is refused, as its key is.
    let first = key.split('/').next().unwrap_or_default();
    let stem = first.split('.').next().unwrap_or_default();
    let rendition = title
        .record
        .renditions
        .iter()
        .find(|r| r.name == first || r.name == stem);
    if let Some(height) = rendition.and_then(|r| r.height) {
        if i64::from(height) > session.max_height {
            return Err(ServiceError::forbidden(
                "plan",
                format!(
                    "this playback session plays up to {}p; {} is {height}p",
                    session.max_height, first
                ),
            ));
        }
    }
    let audio = rendition.is_some_and(|r| r.kind == reel_media::TrackKind::Audio);
    let mut response = Response::builder()
        .status(if found.range.is_some() {
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
        .header(header::CONTENT_LENGTH, found.length());
    if let Some((start, end)) = found.range {
        let size = found.size;
        response = response.header(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
                .map_err(|e| ServiceError::Internal(e.to_string()))?,
        );
    }
    response
        .body(if body { found.body() } else { Body::empty() })
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
