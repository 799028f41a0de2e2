//! The harness: the router over a fresh data folder (SQLite or PostgreSQL) with two
//! published titles and an administrator, a request builder, and the sign-up helpers.

pub(crate) use crate::support::{self, publish_title, Postgres, Published};
pub use axum::http::{HeaderMap, StatusCode};
pub use base64::Engine;
pub use reel_drm::TrackClass;
pub use reel_services::tokens::{AccessClaims, PlaybackClaims};
pub use serde_json::{json, Value};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use http_body_util::BodyExt;
use reel_services::{AppState, Config};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use tower::ServiceExt;

/// Everything the services logged in this test process.
pub static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

pub struct LogWriter;
impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(|| LogWriter)
            .init();
    });
}

pub struct H {
    pub app: Router,
    pub state: AppState,
    pub _dir: tempfile::TempDir,
    pub t1: Published,
    pub t2: Published,
    /// The administrator's access token.
    pub admin: String,
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub async fn harness(backend: Backend, name: &str) -> H {
    harness_with(backend, name, &[]).await
}

pub async fn harness_with(backend: Backend, name: &str, extra: &[String]) -> H {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "x".to_string(),
        "--data".into(),
        dir.path().join("data").display().to_string(),
        "--kek".into(),
        "11".repeat(32),
        "--token-secret".into(),
        "22".repeat(32),
    ];
    if let Backend::Postgres = backend {
        let pg = Postgres::shared();
        let db = format!("{name}_{}", std::process::id());
        let url = tokio::task::spawn_blocking(move || Postgres::shared().database(&db))
            .await
            .unwrap();
        let _ = pg;
        args.extend(["--database-url".into(), url]);
    }
    args.extend(extra.iter().cloned());
    let config = Config::parse_from(args);
    let state = AppState::open(&config).await.unwrap();
    let app = reel_services::router(state.clone());
    let t1 = publish_title(
        dir.path(),
        "lighthouse",
        "PG",
        &["Documentary", "Nature"],
        2020,
    );
    let t2 = publish_title(dir.path(), "harbour", "18", &["Documentary", "Drama"], 2022);
    reel_services::auth::create_account(
        &state,
        "ops@example.com",
        "admin-password",
        "admin",
        "premium",
    )
    .await
    .unwrap();
    let mut h = H {
        app,
        state,
        _dir: dir,
        t1,
        t2,
        admin: String::new(),
    };
    h.admin = signin(&h, "ops@example.com", "admin-password").await;
    for t in [&h.t1, &h.t2] {
        let (s, v, _) = h
            .post("/v1/admin/titles")
            .auth(&h.admin)
            .json(json!({ "url": t.dir.display().to_string(), "cpix": t.cpix }))
            .send()
            .await
            .parts();
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    h
}

/// One request to the router, built step by step: `h.post(uri).auth(token).json(body)`.
#[must_use]
pub struct Req<'a> {
    h: &'a H,
    method: String,
    uri: String,
    ip: String,
    bearer: Option<String>,
    body: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
}

/// What the router answered.
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
}

impl Reply {
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }

    /// Status, JSON body and headers.
    pub fn parts(self) -> (StatusCode, Value, HeaderMap) {
        let v = self.json();
        (self.status, v, self.headers)
    }

    /// Status, body bytes and headers.
    pub fn raw_parts(self) -> (StatusCode, Vec<u8>, HeaderMap) {
        (self.status, self.body, self.headers)
    }
}

impl H {
    pub fn request(&self, method: &str, uri: &str) -> Req<'_> {
        Req {
            h: self,
            method: method.to_string(),
            uri: uri.to_string(),
            ip: "10.0.0.1".into(),
            bearer: None,
            body: None,
            headers: Vec::new(),
        }
    }

    pub fn get(&self, uri: &str) -> Req<'_> {
        self.request("GET", uri)
    }

    pub fn head(&self, uri: &str) -> Req<'_> {
        self.request("HEAD", uri)
    }

    pub fn post(&self, uri: &str) -> Req<'_> {
        self.request("POST", uri)
    }

    pub fn patch(&self, uri: &str) -> Req<'_> {
        self.request("PATCH", uri)
    }
}

impl Req<'_> {
    /// The client's address (the router sees it as the peer).
    pub fn from(mut self, ip: &str) -> Self {
        self.ip = ip.to_string();
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn auth(self, token: &str) -> Self {
        self.auth_opt(Some(token))
    }

    pub fn auth_opt(mut self, token: Option<&str>) -> Self {
        self.bearer = token.map(str::to_string);
        self
    }

    /// A JSON body.
    pub fn json(self, body: Value) -> Self {
        self.body(body.to_string().into_bytes())
    }

    pub fn json_opt(self, body: Option<Value>) -> Self {
        match body {
            Some(b) => self.json(b),
            None => self,
        }
    }

    /// A body sent as `application/json` (unless a `content-type` header says otherwise),
    /// whatever its bytes.
    pub fn body(mut self, bytes: Vec<u8>) -> Self {
        self.body = Some(bytes);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers.iter().fold(self, |r, (k, v)| r.header(k, v))
    }

    pub async fn send(self) -> Reply {
        let mut req = Request::builder()
            .method(self.method.as_str())
            .uri(&self.uri);
        if let Some(t) = &self.bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let typed = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if self.body.is_some() && !typed {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut req = req
            .body(self.body.map_or_else(Body::empty, Body::from))
            .unwrap();
        let addr: SocketAddr = format!("{}:40000", self.ip).parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        let res = self.h.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply {
            status,
            body,
            headers,
        }
    }
}

/// Signs up (every account starts on the basic plan), then has the admin move it to `plan`.
pub async fn signup(h: &H, email: &str, plan: &str) {
    let (s, v, _) = h
        .post("/v1/auth/signup")
        .json(json!({ "email": email, "password": "correct horse" }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["plan"], "basic", "{v}");
    if plan != "basic" {
        let id = v["id"].as_str().unwrap();
        let (s, v, _) = h
            .patch(&format!("/v1/admin/accounts/{id}"))
            .auth(&h.admin)
            .json(json!({ "plan": plan }))
            .send()
            .await
            .parts();
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
}

pub async fn signin(h: &H, email: &str, password: &str) -> String {
    let (s, v, _) = h
        .post("/v1/auth/signin")
        .json(json!({ "email": email, "password": password }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::OK, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

pub async fn viewer(h: &H, email: &str, plan: &str) -> String {
    signup(h, email, plan).await;
    signin(h, email, "correct horse").await
}

/// Starts playback of the lighthouse title on the `tv` device; the grant, which must be 200.
pub async fn play_on_tv(h: &H, token: &str) -> Value {
    let (s, grant, _) = h
        .post("/v1/playback/lighthouse")
        .auth(token)
        .json(json!({ "device": "tv" }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::OK, "{grant}");
    grant
}

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn kid_of(p: &Published, class: TrackClass) -> String {
    b64url(p.keys.for_track(class).unwrap().kid.as_bytes())
}

pub fn key_of(p: &Published, class: TrackClass) -> String {
    b64url(p.keys.for_track(class).unwrap().key.expose())
}

pub fn token_of(url: &str) -> String {
    url.trim_start_matches("/origin/")
        .trim_start_matches("/v1/licence/")
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// Runs an `async fn(H)` test case on SQLite and on PostgreSQL.
macro_rules! both {
    ($case:ident) => {
        mod $case {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(harness(Backend::Sqlite, stringify!($case)).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case(harness(Backend::Postgres, stringify!($case)).await).await;
            }
        }
    };
    // With extra `reel serve` arguments.
    ($case:ident, $($arg:expr),+) => {
        mod $case {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let args = [$($arg.to_string()),+];
                super::$case(harness_with(Backend::Sqlite, stringify!($case), &args).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let args = [$($arg.to_string()),+];
                super::$case(harness_with(Backend::Postgres, stringify!($case), &args).await).await;
            }
        }
    };
}
pub(crate) use both;
