//! The services' API through the router (no socket), on SQLite and on PostgreSQL: auth,
//! catalog, playback, licences, origin, operations, and each kind of bad input.

#[path = "../../crates/publish/tests/support/s3_server.rs"]
mod s3_server;
mod support;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use reel_drm::TrackClass;
use reel_services::tokens::{AccessClaims, PlaybackClaims};
use reel_services::{AppState, Config};
use serde_json::{json, Value};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use support::{publish_title, Postgres, Published};
use tower::ServiceExt;

/// Everything the services logged in this test process.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;
impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(|| LogWriter)
            .init();
    });
}

struct H {
    app: Router,
    state: AppState,
    _dir: tempfile::TempDir,
    t1: Published,
    t2: Published,
    admin: String,
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn harness(backend: Backend, name: &str) -> H {
    harness_with(backend, name, &[]).await
}

async fn harness_with(backend: Backend, name: &str, extra: &[String]) -> H {
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
        let (s, v, _) = call(
            &h,
            "POST",
            "/v1/admin/titles",
            Some(&h.admin),
            Some(json!({ "url": t.dir.display().to_string(), "cpix": t.cpix })),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    h
}

async fn call_from(
    h: &H,
    ip: &str,
    method: &str,
    uri: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, HeaderMap) {
    let (s, bytes, headers) = raw(
        h,
        ip,
        method,
        uri,
        bearer,
        body.map(|b| b.to_string().into_bytes()),
        &[],
    )
    .await;
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (s, v, headers)
}

async fn call(
    h: &H,
    method: &str,
    uri: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, HeaderMap) {
    call_from(h, "10.0.0.1", method, uri, bearer, body).await
}

/// The status code of `call`.
async fn status(
    h: &H,
    method: &str,
    uri: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> StatusCode {
    call(h, method, uri, bearer, body).await.0
}

async fn raw(
    h: &H,
    ip: &str,
    method: &str,
    uri: &str,
    bearer: Option<&str>,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (StatusCode, Vec<u8>, HeaderMap) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(body.map_or_else(Body::empty, Body::from)).unwrap();
    let addr: SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    let res = h.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, bytes, headers)
}

/// Signs up (every account starts on the basic plan), then has the admin move it to `plan`.
async fn signup(h: &H, email: &str, plan: &str) {
    let (s, v, _) = call(
        h,
        "POST",
        "/v1/auth/signup",
        None,
        Some(json!({ "email": email, "password": "correct horse" })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["plan"], "basic", "{v}");
    if plan != "basic" {
        let id = v["id"].as_str().unwrap();
        let (s, v, _) = call(
            h,
            "PATCH",
            &format!("/v1/admin/accounts/{id}"),
            Some(&h.admin),
            Some(json!({ "plan": plan })),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
}

async fn signin(h: &H, email: &str, password: &str) -> String {
    let (s, v, _) = call(
        h,
        "POST",
        "/v1/auth/signin",
        None,
        Some(json!({ "email": email, "password": password })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

async fn viewer(h: &H, email: &str, plan: &str) -> String {
    signup(h, email, plan).await;
    signin(h, email, "correct horse").await
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn kid_of(p: &Published, class: TrackClass) -> String {
    b64url(p.keys.for_track(class).unwrap().kid.as_bytes())
}

fn key_of(p: &Published, class: TrackClass) -> String {
    b64url(p.keys.for_track(class).unwrap().key.expose())
}

fn token_of(url: &str) -> String {
    url.trim_start_matches("/origin/")
        .trim_start_matches("/v1/licence/")
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

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
}

async fn auth_flow(h: H) {
    signup(&h, "Ann@Example.com", "basic").await;
    let (s, v, _) = call(
        &h,
        "POST",
        "/v1/auth/signup",
        None,
        Some(json!({ "email": "ann@example.com", "password": "another one", "plan": "basic" })),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    for (email, password, plan) in [
        ("not-an-email", "long enough", "basic"),
        ("b@example.com", "short", "basic"),
        ("b@example.com", "long enough", "platinum"),
    ] {
        let (s, v, _) = call(
            &h,
            "POST",
            "/v1/auth/signup",
            None,
            Some(json!({ "email": email, "password": password, "plan": plan })),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{email} {password} {plan}: {v}");
    }
    // A wrong email and a wrong password get the same answer.
    let wrong_email = call_from(
        &h,
        "10.0.1.1",
        "POST",
        "/v1/auth/signin",
        None,
        Some(json!({ "email": "nobody@example.com", "password": "correct horse" })),
    )
    .await;
    let wrong_password = call_from(
        &h,
        "10.0.1.2",
        "POST",
        "/v1/auth/signin",
        None,
        Some(json!({ "email": "ann@example.com", "password": "wrong horse" })),
    )
    .await;
    assert_eq!(wrong_email.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (wrong_email.0, &wrong_email.1),
        (wrong_password.0, &wrong_password.1)
    );

    let (s, pair, _) = call(
        &h,
        "POST",
        "/v1/auth/signin",
        None,
        Some(json!({ "email": "ANN@example.com ", "password": "correct horse" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{pair}");
    let access = pair["access_token"].as_str().unwrap();
    let (s, me, _) = call(&h, "GET", "/v1/me", Some(access), None).await;
    assert_eq!(
        (s, me["email"].as_str(), me["plan"]["max_height"].as_i64()),
        (StatusCode::OK, Some("ann@example.com"), Some(576))
    );
    assert!(!me.to_string().contains("argon2"));

    // Missing, forged, expired tokens.
    assert_eq!(
        status(&h, "GET", "/v1/me", None, None).await,
        StatusCode::UNAUTHORIZED
    );
    let mut forged = access.to_string();
    forged.insert(5, 'x');
    assert_eq!(
        status(&h, "GET", "/v1/me", Some(&forged), None).await,
        StatusCode::UNAUTHORIZED
    );
    let expired = h.state.signer.access(&AccessClaims {
        sub: me["id"].as_str().unwrap().into(),
        role: "admin".into(),
        plan: "premium".into(),
        max_age: 18,
        exp: 1,
    });
    assert_eq!(
        status(&h, "GET", "/v1/me", Some(&expired), None).await,
        StatusCode::UNAUTHORIZED
    );
    let other_secret = reel_services::tokens::Signer::new([9; 32]).access(&AccessClaims {
        sub: me["id"].as_str().unwrap().into(),
        role: "admin".into(),
        plan: "premium".into(),
        max_age: 18,
        exp: i64::MAX,
    });
    assert_eq!(
        status(&h, "GET", "/v1/me", Some(&other_secret), None).await,
        StatusCode::UNAUTHORIZED
    );
    // A viewer is not an admin.
    let (s, v, _) = call(
        &h,
        "POST",
        "/v1/admin/titles",
        Some(access),
        Some(json!({ "url": "x" })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // Refresh rotates; a reused refresh token revokes its family.
    let first = pair["refresh_token"].as_str().unwrap().to_string();
    let (s, second, _) = call(
        &h,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": first })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{second}");
    let second = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(
        status(
            &h,
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": first }))
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(
            &h,
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": second }))
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "the family was revoked"
    );
    // Sign-out revokes.
    let (_, pair, _) = call(
        &h,
        "POST",
        "/v1/auth/signin",
        None,
        Some(json!({ "email": "ann@example.com", "password": "correct horse" })),
    )
    .await;
    let r = pair["refresh_token"].as_str().unwrap();
    assert_eq!(
        status(
            &h,
            "POST",
            "/v1/auth/signout",
            None,
            Some(json!({ "refresh_token": r }))
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(
            &h,
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": r }))
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let hashes: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM refresh_tokens")
        .fetch_all(&h.state.db)
        .await
        .unwrap();
    assert!(
        hashes.iter().all(|(t,)| t != r),
        "refresh tokens are stored hashed"
    );
}
both!(auth_flow);

async fn sign_in_limits(h: H) {
    signup(&h, "bea@example.com", "basic").await;
    for i in 0..5 {
        let (s, _, _) = call_from(
            &h,
            &format!("10.1.0.{i}"),
            "POST",
            "/v1/auth/signin",
            None,
            Some(json!({ "email": "bea@example.com", "password": "guess {i}" })),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // The account is locked, even for the right password, from any address.
    let (s, v, headers) = call_from(
        &h,
        "10.1.1.1",
        "POST",
        "/v1/auth/signin",
        None,
        Some(json!({ "email": "bea@example.com", "password": "correct horse" })),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(headers.get("retry-after").is_some());
    // One address trying many accounts is limited too; another address is not.
    for i in 0..20 {
        let (s, _, _) = call_from(
            &h,
            "10.2.0.1",
            "POST",
            "/v1/auth/signin",
            None,
            Some(json!({ "email": format!("u{i}@example.com"), "password": "whatever1" })),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _, _) = call_from(
        &h,
        "10.2.0.1",
        "POST",
        "/v1/auth/signin",
        None,
        Some(json!({ "email": "u99@example.com", "password": "whatever1" })),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let (s, _, _) = call_from(
        &h,
        "10.2.0.2",
        "POST",
        "/v1/auth/signin",
        None,
        Some(json!({ "email": "u99@example.com", "password": "whatever1" })),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
both!(sign_in_limits);

/// Twenty wrong passwords for one account at once, from twenty addresses: the account's limit
/// (5 failures) holds, as it does one at a time; the rest are refused before any password
/// check, and the right password is refused too while the lockout lasts.
async fn parallel_guesses_do_not_pass_the_lockout(h: H) {
    signup(&h, "target@example.com", "basic").await;
    let h = std::sync::Arc::new(h);
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                call_from(
                    &h,
                    &format!("10.7.0.{}", i + 1),
                    "POST",
                    "/v1/auth/signin",
                    None,
                    Some(
                        json!({ "email": "target@example.com", "password": format!("guess {i}") }),
                    ),
                )
                .await
                .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap());
    }
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, limited), (5, 15), "{statuses:?}");
    let (s, _, _) = call_from(
        &h,
        "10.7.1.1",
        "POST",
        "/v1/auth/signin",
        None,
        Some(json!({ "email": "target@example.com", "password": "correct horse" })),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}
both!(parallel_guesses_do_not_pass_the_lockout);

/// Behind a proxy (`--trust-forwarded`), a client that writes its own `X-Forwarded-For` entry
/// still counts as the address the proxy appended: the per-address sign-in limit (20 a
/// minute) holds against 25 attempts with a fresh invented address each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_written_by_the_client_do_not_reset_limits() {
    let h = harness_with(
        Backend::Sqlite,
        "forwarded",
        &["--trust-forwarded".to_string()],
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..25 {
        let invented = format!("198.51.100.{i}, 203.0.113.9");
        let (s, _, _) = raw(
            &h,
            "10.0.0.1",
            "POST",
            "/v1/auth/signin",
            None,
            Some(
                json!({ "email": format!("nobody{i}@example.com"), "password": "whatever1" })
                    .to_string()
                    .into_bytes(),
            ),
            &[("x-forwarded-for", invented.as_str())],
        )
        .await;
        statuses.push(s);
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(limited, 5, "{statuses:?}");
    // Another address, as the proxy saw it, is not limited.
    let (s, _, _) = raw(
        &h,
        "10.0.0.1",
        "POST",
        "/v1/auth/signin",
        None,
        Some(
            json!({ "email": "nobody@example.com", "password": "whatever1" })
                .to_string()
                .into_bytes(),
        ),
        &[("x-forwarded-for", "203.0.113.10")],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

async fn playback_and_licences(h: H) {
    let basic = viewer(&h, "sd@example.com", "basic").await;
    let premium = viewer(&h, "hd@example.com", "premium").await;
    let mobile = viewer(&h, "phone@example.com", "mobile").await;

    // A mobile plan (360p) cannot play a title that starts at 432p.
    let (s, v, _) = call(&h, "POST", "/v1/playback/lighthouse", Some(&mobile), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("plan")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("360p"), "{v}");
    assert_eq!(
        status(&h, "POST", "/v1/playback/nosuchtitle", Some(&basic), None).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(&h, "POST", "/v1/playback/lighthouse", None, None).await,
        StatusCode::UNAUTHORIZED
    );

    // Basic (576 lines): SD and audio keys, never the HD key.
    let (s, grant, _) = call(
        &h,
        "POST",
        "/v1/playback/lighthouse",
        Some(&basic),
        Some(json!({ "device": "tv" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{grant}");
    assert_eq!(grant["max_height"], 432);
    let licence = grant["licence"].as_str().unwrap().to_string();
    let all_kids = json!({ "kids": [kid_of(&h.t1, TrackClass::Sd), kid_of(&h.t1, TrackClass::Hd), kid_of(&h.t1, TrackClass::Audio)], "type": "temporary" });
    let (s, lic, _) = call(&h, "POST", &licence, None, Some(all_kids.clone())).await;
    assert_eq!(s, StatusCode::OK, "{lic}");
    let mut got: Vec<(String, String)> = lic["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().into(),
                k["k"].as_str().unwrap().into(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (kid_of(&h.t1, TrackClass::Sd), key_of(&h.t1, TrackClass::Sd)),
        (
            kid_of(&h.t1, TrackClass::Audio),
            key_of(&h.t1, TrackClass::Audio),
        ),
    ];
    want.sort();
    assert_eq!(got, want);
    // Asking for the audio key alone brings the SD key too: one licence, every entitled key.
    let (_, lic, _) = call(
        &h,
        "POST",
        &licence,
        None,
        Some(json!({ "kids": [kid_of(&h.t1, TrackClass::Audio)] })),
    )
    .await;
    let mut got2: Vec<(String, String)> = lic["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().into(),
                k["k"].as_str().unwrap().into(),
            )
        })
        .collect();
    got2.sort();
    assert_eq!(got2, want);
    assert_eq!(
        lic["keys"][0]["kid"].as_str(),
        Some(kid_of(&h.t1, TrackClass::Audio).as_str()),
        "the requested key first"
    );
    // Only the HD key: refused.
    let (s, v, _) = call(
        &h,
        "POST",
        &licence,
        None,
        Some(json!({ "kids": [kid_of(&h.t1, TrackClass::Hd)] })),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_entitled")),
        "{v}"
    );
    assert!(!v.to_string().contains(&key_of(&h.t1, TrackClass::Hd)));
    // Another title's key through this session: refused.
    let (s, _, _) = call(
        &h,
        "POST",
        &licence,
        None,
        Some(json!({ "kids": [kid_of(&h.t2, TrackClass::Sd)] })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Malformed requests.
    for body in [
        json!({ "kids": [] }),
        json!({ "kids": ["not base64!"] }),
        json!({ "kids": [b64url(&[1; 5])] }),
        json!("text"),
    ] {
        assert_eq!(
            status(&h, "POST", &licence, None, Some(body.clone())).await,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    // Forged and expired playback tokens; an access token is not a playback token.
    let token = token_of(&licence);
    let mut forged = token.clone();
    forged.insert(3, 'A');
    assert_eq!(
        status(
            &h,
            "POST",
            &format!("/v1/licence/{forged}"),
            None,
            Some(all_kids.clone())
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(
            &h,
            "POST",
            &format!("/v1/licence/{basic}"),
            None,
            Some(all_kids.clone())
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let claims = h.state.signer.verify_playback(&token, 0).unwrap();
    let expired = h.state.signer.playback(&PlaybackClaims {
        exp: 1,
        ..claims.clone()
    });
    assert_eq!(
        status(
            &h,
            "POST",
            &format!("/v1/licence/{expired}"),
            None,
            Some(all_kids.clone())
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // A token naming another account or title for this session (as if the secret leaked
    // one field at a time) does not pass the session check.
    let other_title = h.state.signer.playback(&PlaybackClaims {
        title: "harbour".into(),
        ..claims.clone()
    });
    assert_eq!(
        status(
            &h,
            "POST",
            &format!("/v1/licence/{other_title}"),
            None,
            Some(all_kids.clone())
        )
        .await,
        StatusCode::UNAUTHORIZED
    );

    // Premium: every key.
    let (_, grant_hd, _) = call(&h, "POST", "/v1/playback/lighthouse", Some(&premium), None).await;
    assert_eq!(grant_hd["max_height"], 720);
    let (s, lic, _) = call(
        &h,
        "POST",
        grant_hd["licence"].as_str().unwrap(),
        None,
        Some(all_kids.clone()),
    )
    .await;
    assert_eq!(
        (s, lic["keys"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(3))
    );

    // Another account's session: invisible.
    let session = grant["session"].as_str().unwrap();
    for path in ["heartbeat", "stop", "events"] {
        let (s, _, _) = call(
            &h,
            "POST",
            &format!("/v1/playback/sessions/{session}/{path}"),
            Some(&premium),
            Some(json!({ "kind": "start", "position": 1.0 })),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    // Stream limit (basic: one stream): a second device is refused, the same device replaces.
    let (s, v, _) = call(
        &h,
        "POST",
        "/v1/playback/lighthouse",
        Some(&basic),
        Some(json!({ "device": "phone" })),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, again, _) = call(
        &h,
        "POST",
        "/v1/playback/lighthouse",
        Some(&basic),
        Some(json!({ "device": "tv" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{again}");
    // The replaced session gets no more keys.
    let (s, v, _) = call(&h, "POST", &licence, None, Some(all_kids.clone())).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("session_ended"))
    );
    // Stopping frees the stream.
    let s2 = again["session"].as_str().unwrap();
    assert_eq!(
        status(
            &h,
            "POST",
            &format!("/v1/playback/sessions/{s2}/stop"),
            Some(&basic),
            Some(json!({ "position": 2.0 }))
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(
            &h,
            "POST",
            "/v1/playback/lighthouse",
            Some(&basic),
            Some(json!({ "device": "phone" }))
        )
        .await,
        StatusCode::OK
    );

    // Every licence request is audited with key IDs only.
    let audit: Vec<(String, String)> =
        sqlx::query_as("SELECT issued, refused FROM licence_audit WHERE session_id = $1")
            .bind(session)
            .fetch_all(&h.state.db)
            .await
            .unwrap();
    assert!(audit.len() >= 5, "{audit:?}");
    let hd_hex = h.t1.keys.for_track(TrackClass::Hd).unwrap().kid.hex();
    assert!(audit.iter().all(|(issued, _)| !issued.contains(&hd_hex)));
    assert!(audit.iter().any(|(_, refused)| refused.contains(&hd_hex)));
    // Keys are wrapped at rest.
    let stored: Vec<(String,)> = sqlx::query_as("SELECT wrapped_key FROM title_keys")
        .fetch_all(&h.state.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 6);
    no_key_leaks(&h, &stored.iter().map(|s| s.0.clone()).collect::<Vec<_>>());

    let (_, metrics, _) = raw(&h, "10.0.0.1", "GET", "/metrics", None, None, &[]).await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("reel_licences_issued_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("reel_playback_starts_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"/v1/licence/{token}\""),
        "{metrics}"
    );
}
both!(playback_and_licences);

/// No key (hex or base64url) and no password hash in anything logged, nor in the database's
/// wrapped keys.
fn no_key_leaks(h: &H, stored: &[String]) {
    let log = String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned();
    assert!(!log.contains("$argon2"), "a password hash was logged");
    for p in [&h.t1, &h.t2] {
        for k in p.keys.keys() {
            let hex = hex::encode(k.key.expose());
            let b64 = b64url(k.key.expose());
            assert!(
                !log.contains(&hex) && !log.contains(&b64),
                "a key was logged"
            );
            assert!(
                stored
                    .iter()
                    .all(|s| !s.contains(&b64) && !s.contains(&hex)),
                "a key is stored in clear"
            );
        }
    }
}

async fn catalog(h: H) {
    let v = viewer(&h, "cat@example.com", "premium").await;
    let (s, list, _) = call(&h, "GET", "/v1/titles?per_page=1", Some(&v), None).await;
    assert_eq!(
        (
            s,
            list["total"].as_i64(),
            list["titles"].as_array().map(Vec::len)
        ),
        (StatusCode::OK, Some(2), Some(1)),
        "{list}"
    );
    assert_eq!(list["titles"][0]["id"], "harbour", "sorted by name");
    let (_, page2, _) = call(&h, "GET", "/v1/titles?per_page=1&page=2", Some(&v), None).await;
    assert_eq!(page2["titles"][0]["id"], "lighthouse");
    let (_, drama, _) = call(&h, "GET", "/v1/titles?genre=drama", Some(&v), None).await;
    assert_eq!(drama["total"], 1);
    let (_, y, _) = call(&h, "GET", "/v1/titles?year=2020", Some(&v), None).await;
    assert_eq!(y["titles"][0]["id"], "lighthouse");
    let (_, q, _) = call(&h, "GET", "/v1/titles?q=light", Some(&v), None).await;
    assert_eq!(q["total"], 1);
    // LIKE wildcards are literal.
    let (_, q, _) = call(&h, "GET", "/v1/titles?q=%25", Some(&v), None).await;
    assert_eq!(q["total"], 0, "{q}");
    assert_eq!(
        status(&h, "GET", "/v1/titles?year=abc", Some(&v), None).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status(&h, "GET", "/v1/titles", None, None).await,
        StatusCode::UNAUTHORIZED
    );

    // More like this: the other documentary.
    let (_, sim, _) = call(&h, "GET", "/v1/titles/lighthouse/similar", Some(&v), None).await;
    assert_eq!(sim["titles"][0]["id"], "harbour", "{sim}");
    // Poster, public.
    let (s, bytes, headers) = raw(
        &h,
        "10.0.0.1",
        "GET",
        "/v1/titles/lighthouse/poster",
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(
        (s, &bytes[..3], headers["content-type"].to_str().unwrap()),
        (StatusCode::OK, &[0xff, 0xd8, 0xff][..], "image/jpeg")
    );

    // Hidden: gone for viewers, there for admins.
    let (s, _, _) = call(
        &h,
        "PATCH",
        "/v1/admin/titles/harbour",
        Some(&h.admin),
        Some(json!({ "hidden": true })),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        status(&h, "GET", "/v1/titles/harbour", Some(&v), None).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(&h, "POST", "/v1/playback/harbour", Some(&v), None).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&h, "GET", "/v1/titles", Some(&v), None).await.1["total"],
        1
    );
    assert_eq!(
        call(&h, "GET", "/v1/titles", Some(&h.admin), None).await.1["total"],
        2
    );
    call(
        &h,
        "PATCH",
        "/v1/admin/titles/harbour",
        Some(&h.admin),
        Some(json!({ "hidden": false })),
    )
    .await;

    // Availability window in the future: not listed, not playable.
    let future = reel_services::util::now_ms() + 86_400_000;
    let (s, t, _) = call(
        &h,
        "PATCH",
        "/v1/admin/titles/lighthouse",
        Some(&h.admin),
        Some(json!({ "available_from": future })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        call(&h, "GET", "/v1/titles", Some(&v), None).await.1["total"],
        1
    );
    let (s, v3, _) = call(&h, "POST", "/v1/playback/lighthouse", Some(&v), None).await;
    assert_eq!(
        (s, v3["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_available")),
        "{v3}"
    );
    let (s, _, _) = call(
        &h,
        "PATCH",
        "/v1/admin/titles/lighthouse",
        Some(&h.admin),
        Some(json!({ "available_from": null, "available_until": future })),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v2, _) = call(
        &h,
        "PATCH",
        "/v1/admin/titles/lighthouse",
        Some(&h.admin),
        Some(json!({ "available_from": future + 1 })),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v2}");
    let (s, _, _) = call(
        &h,
        "PATCH",
        "/v1/admin/titles/lighthouse",
        Some(&h.admin),
        Some(json!({ "maturity": "X-rated" })),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Maturity: a 12 profile sees neither the 18 title nor plays it.
    let (s, _, _) = call(
        &h,
        "PATCH",
        "/v1/me",
        Some(&v),
        Some(json!({ "max_age": 12 })),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let kid = signin(&h, "cat@example.com", "correct horse").await;
    let (_, list, _) = call(&h, "GET", "/v1/titles", Some(&kid), None).await;
    assert_eq!(list["total"], 1, "{list}");
    let (s, _, _) = call(&h, "POST", "/v1/playback/harbour", Some(&kid), None).await;
    assert!(
        s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND,
        "{s}"
    );

    // Continue watching: started and not finished.
    let (_, grant, _) = call(&h, "POST", "/v1/playback/lighthouse", Some(&kid), None).await;
    let session = grant["session"].as_str().unwrap();
    assert_eq!(
        status(
            &h,
            "POST",
            &format!("/v1/playback/sessions/{session}/heartbeat"),
            Some(&kid),
            Some(json!({ "position": 3.5 }))
        )
        .await,
        StatusCode::NO_CONTENT
    );
    for (kind, pos) in [("start", 0.0), ("switch", 1.0), ("rebuffer", 2.0)] {
        let (s, v, _) = call(
            &h,
            "POST",
            &format!("/v1/playback/sessions/{session}/events"),
            Some(&kid),
            Some(json!({ "kind": kind, "position": pos, "detail": { "height": 432 } })),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    let (_, cont, _) = call(&h, "GET", "/v1/me/continue-watching", Some(&kid), None).await;
    assert_eq!(
        (
            cont["titles"][0]["id"].as_str(),
            cont["titles"][0]["position"].as_f64()
        ),
        (Some("lighthouse"), Some(3.5)),
        "{cont}"
    );
    call(
        &h,
        "POST",
        &format!("/v1/playback/sessions/{session}/stop"),
        Some(&kid),
        Some(json!({ "position": 9.9 })),
    )
    .await;
    let (_, cont, _) = call(&h, "GET", "/v1/me/continue-watching", Some(&kid), None).await;
    assert_eq!(
        cont["titles"].as_array().unwrap().len(),
        0,
        "finished titles leave the row"
    );
    let events: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM playback_events WHERE session_id = $1")
            .bind(session)
            .fetch_one(&h.state.db)
            .await
            .unwrap();
    assert_eq!(events, 3);
    assert_eq!(
        status(
            &h,
            "POST",
            &format!("/v1/playback/sessions/{session}/events"),
            Some(&kid),
            Some(json!({ "kind": "explode" }))
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status(
            &h,
            "POST",
            &format!("/v1/playback/sessions/{session}/heartbeat"),
            Some(&kid),
            Some(json!({ "position": -1 }))
        )
        .await,
        StatusCode::BAD_REQUEST
    );
}
both!(catalog);

/// A large object (2.5 MiB, more than the origin's 1 MiB read chunk) comes back whole, in a
/// range across chunk boundaries and as a bodiless HEAD with its length.
async fn large_object_is_streamed(h: &H, token: &str) {
    let want = support::large_object();
    let url = format!("/origin/{token}/720p/single.mp4");
    let (s, body, headers) = raw(h, "10.0.0.1", "GET", &url, None, None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-length"], want.len().to_string().as_str());
    assert!(body == want, "the whole object differs");
    let (s, body, headers) = raw(
        h,
        "10.0.0.1",
        "GET",
        &url,
        None,
        None,
        &[("range", "bytes=1000000-2200000")],
    )
    .await;
    assert_eq!(
        (s, headers["content-range"].to_str().unwrap()),
        (
            StatusCode::PARTIAL_CONTENT,
            format!("bytes 1000000-2200000/{}", want.len()).as_str()
        )
    );
    assert!(body == want[1_000_000..=2_200_000], "the range differs");
    let (s, body, headers) = raw(h, "10.0.0.1", "HEAD", &url, None, None, &[]).await;
    assert_eq!((s, body.len()), (StatusCode::OK, 0));
    assert_eq!(headers["content-length"], want.len().to_string().as_str());
}

async fn origin(h: H) {
    let v = viewer(&h, "org@example.com", "premium").await;
    let (_, grant, _) = call(&h, "POST", "/v1/playback/lighthouse", Some(&v), None).await;
    let token = token_of(grant["dash"].as_str().unwrap());
    let get = |path: String, headers: Vec<(&'static str, String)>| {
        let h = &h;
        async move {
            let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw(h, "10.0.0.1", "GET", &path, None, None, &hs).await
        }
    };
    let (s, body, headers) = get(format!("/origin/{token}/manifest.mpd"), vec![]).await;
    assert_eq!(
        (
            s,
            body.as_slice(),
            headers["content-type"].to_str().unwrap()
        ),
        (StatusCode::OK, &b"<MPD/>"[..], "application/dash+xml")
    );
    assert_eq!(headers["cache-control"], "public, max-age=60");
    let (s, _, headers) = get(format!("/origin/{token}/master.m3u8"), vec![]).await;
    assert_eq!(
        (s, headers["content-type"].to_str().unwrap()),
        (StatusCode::OK, "application/vnd.apple.mpegurl")
    );
    let (s, body, headers) = get(
        format!("/origin/{token}/720p/init.mp4"),
        vec![("range", "bytes=10-19".into())],
    )
    .await;
    assert_eq!(
        (s, body, headers["content-range"].to_str().unwrap()),
        (
            StatusCode::PARTIAL_CONTENT,
            (10..20u8).collect::<Vec<_>>(),
            "bytes 10-19/256"
        )
    );
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(headers["content-type"], "video/mp4");
    let (_, _, headers) = get(format!("/origin/{token}/audio/init.mp4"), vec![]).await;
    assert_eq!(headers["content-type"], "audio/mp4");
    let (s, body, _) = get(
        format!("/origin/{token}/720p/init.mp4"),
        vec![("range", "bytes=-6".into())],
    )
    .await;
    assert_eq!(
        (s, body),
        (
            StatusCode::PARTIAL_CONTENT,
            (250..=255u8).collect::<Vec<_>>()
        )
    );
    let (s, _, headers) = get(
        format!("/origin/{token}/720p/init.mp4"),
        vec![("range", "bytes=300-".into())],
    )
    .await;
    assert_eq!(
        (s, headers["content-range"].to_str().unwrap()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "bytes */256")
    );
    // CORS for players on other origins.
    let (_, _, headers) = get(
        format!("/origin/{token}/manifest.mpd"),
        vec![("origin", "https://player.example".into())],
    )
    .await;
    assert_eq!(headers["access-control-allow-origin"], "*");
    large_object_is_streamed(&h, &token).await;

    // Outside the title: every spelling of a way out is refused.
    std::os::unix::fs::symlink(h.t2.dir.join("title.json"), h.t1.dir.join("escape.json")).unwrap();
    std::fs::write(h.t1.dir.join(".title.json.reel-tmp-1-1"), "partial").unwrap();
    for path in [
        "../harbour/title.json",
        "%2e%2e/harbour/title.json",
        "720p/%2E%2E/%2e%2e/harbour/title.json",
        "..%2fharbour%2ftitle.json",
        "%2fetc%2fpasswd",
        "..%5c..%5cetc%5cpasswd",
        "720p/../../harbour/title.json",
        "escape.json",
        ".title.json.reel-tmp-1-1",
        "720p",
        "nothing.mp4",
        "%00",
        "720p//init.mp4",
    ] {
        let (s, body, _) = get(format!("/origin/{token}/{path}"), vec![]).await;
        assert!(
            s == StatusCode::NOT_FOUND || s == StatusCode::BAD_REQUEST,
            "{path}: {s}"
        );
        assert!(
            !String::from_utf8_lossy(&body).contains("harbour"),
            "{path}"
        );
    }
    // Tokens: forged, expired, none.
    let mut forged = token.clone();
    forged.insert(4, 'Q');
    assert_eq!(
        get(format!("/origin/{forged}/manifest.mpd"), vec![])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let claims = h.state.signer.verify_playback(&token, 0).unwrap();
    let expired = h
        .state
        .signer
        .playback(&PlaybackClaims { exp: 1, ..claims });
    assert_eq!(
        get(format!("/origin/{expired}/manifest.mpd"), vec![])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(format!("/origin/{v}/manifest.mpd"), vec![]).await.0,
        StatusCode::UNAUTHORIZED,
        "an access token does not open the origin"
    );
}
both!(origin);

async fn hostile_input(h: H) {
    let v = viewer(&h, "evil@example.com", "premium").await;
    let attacks = [
        "'; DROP TABLE accounts; --",
        "\" OR 1=1 --",
        "%' OR '1'='1",
        "x' UNION SELECT password_hash FROM accounts --",
        "\\'; DELETE FROM titles; --",
        "😀\u{0}",
    ];
    for a in attacks {
        let enc: String = url::form_urlencoded::byte_serialize(a.as_bytes()).collect();
        let checks = vec![
            call(&h, "POST", "/v1/auth/signup", None, Some(json!({ "email": a, "password": a, "plan": a }))).await,
            call(&h, "POST", "/v1/auth/signup", None, Some(json!({ "email": format!("{}@example.com", enc.len()), "password": a, "plan": "basic" }))).await,
            call_from(&h, "10.9.9.9", "POST", "/v1/auth/signin", None, Some(json!({ "email": a, "password": a }))).await,
            call(&h, "POST", "/v1/auth/refresh", None, Some(json!({ "refresh_token": a }))).await,
            call(&h, "GET", &format!("/v1/titles?q={enc}&genre={enc}"), Some(&v), None).await,
            call(&h, "GET", &format!("/v1/titles/{enc}"), Some(&v), None).await,
            call(&h, "GET", &format!("/v1/titles/{enc}/similar"), Some(&v), None).await,
            call(&h, "POST", &format!("/v1/playback/{enc}"), Some(&v), None).await,
            call(&h, "POST", "/v1/playback/lighthouse", Some(&v), Some(json!({ "device": a }))).await,
            call(&h, "POST", &format!("/v1/playback/sessions/{enc}/events"), Some(&v), Some(json!({ "kind": a, "detail": { "x": a } }))).await,
            call(&h, "PATCH", "/v1/admin/titles/lighthouse", Some(&h.admin), Some(json!({ "name": a, "description": a, "genres": [a] }))).await,
            call(&h, "PATCH", "/v1/admin/titles/lighthouse", Some(&h.admin), Some(json!({ "maturity": a }))).await,
            call(&h, "POST", "/v1/admin/titles", Some(&h.admin), Some(json!({ "url": a, "cpix": a }))).await,
        ];
        for (i, (s, body, _)) in checks.iter().enumerate() {
            assert!(
                s.is_client_error() || s.is_success(),
                "check {i} with {a:?}: {s} {body}"
            );
            assert!(!body.to_string().contains("argon2"), "check {i}: {body}");
        }
    }
    // Stored as text, not run: the name is the attack string, the tables are all there.
    let (_, t, _) = call(&h, "GET", "/v1/titles/lighthouse", Some(&v), None).await;
    assert_eq!(
        t["name"].as_str(),
        Some("\\'; DELETE FROM titles; --"),
        "{t}"
    );
    let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
        .fetch_one(&h.state.db)
        .await
        .unwrap();
    let titles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM titles")
        .fetch_one(&h.state.db)
        .await
        .unwrap();
    assert!(accounts >= 2 && titles == 2, "{accounts} {titles}");
    let (_, list, _) = call(&h, "GET", "/v1/titles?q=%27%3B%20DROP", Some(&v), None).await;
    assert!(list["total"].as_i64().unwrap() <= 1, "{list}");

    // Oversized bodies.
    let big = json!({ "email": "a@example.com", "password": "x".repeat(100_000) });
    assert_eq!(
        status(&h, "POST", "/v1/auth/signup", None, Some(big)).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let big_licence = json!({ "kids": vec!["AAAAAAAAAAAAAAAAAAAAAA"; 10_000] });
    let (_, grant, _) = call(
        &h,
        "POST",
        "/v1/playback/lighthouse",
        Some(&v),
        Some(json!({ "device": "big" })),
    )
    .await;
    let s = status(
        &h,
        "POST",
        grant["licence"].as_str().unwrap_or("/v1/licence/x"),
        None,
        Some(big_licence),
    )
    .await;
    assert!(
        s == StatusCode::PAYLOAD_TOO_LARGE || s == StatusCode::BAD_REQUEST,
        "{s}"
    );
    // Not JSON at all.
    let (s, _, _) = raw(
        &h,
        "10.0.0.1",
        "POST",
        "/v1/auth/signin",
        None,
        Some(b"{not json".to_vec()),
        &[],
    )
    .await;
    assert!(s.is_client_error(), "{s}");
}
both!(hostile_input);

/// The poster route reads with the origin's rules: a poster that is a symlink out of the title
/// folder (here to a secret that even looks like a JPEG), a file that is not an image, and one
/// over the size cap are all "not found"; a real PNG is served as one.
async fn poster_stays_inside_the_title(h: H) {
    let get = || {
        raw(
            &h,
            "10.0.0.1",
            "GET",
            "/v1/titles/lighthouse/poster",
            None,
            None,
            &[],
        )
    };
    let (s, body, _) = get().await;
    assert_eq!((s, &body[..3]), (StatusCode::OK, &[0xff, 0xd8, 0xff][..]));
    let poster = h.t1.dir.join("poster.jpg");
    let secret = h._dir.path().join("kek.key");
    std::fs::write(
        &secret,
        [0xff, 0xd8, 0xff, 0xe0, b's', b'e', b'c', b'r', b'e', b't'],
    )
    .unwrap();
    std::fs::remove_file(&poster).unwrap();
    std::os::unix::fs::symlink(&secret, &poster).unwrap();
    let (s, body, _) = get().await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&body)
    );
    std::fs::remove_file(&poster).unwrap();
    std::fs::write(&poster, br#"{"not": "an image"}"#).unwrap();
    assert_eq!(get().await.0, StatusCode::NOT_FOUND);
    let mut huge = vec![0xff, 0xd8, 0xff, 0xe0];
    huge.resize(5 << 20, 0);
    std::fs::write(&poster, huge).unwrap();
    assert_eq!(get().await.0, StatusCode::NOT_FOUND);
    std::fs::write(&poster, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let (s, _, headers) = get().await;
    assert_eq!(
        (s, headers["content-type"].to_str().unwrap()),
        (StatusCode::OK, "image/png")
    );
}
both!(poster_stays_inside_the_title);

/// A viewer cannot choose a paid plan at sign-up: every account starts on the basic plan, and
/// only an administrator moves it (effective with the next sign-in).
async fn plans_are_set_by_an_administrator(h: H) {
    let signup = |email: &'static str, plan: Option<&'static str>| {
        let mut body = json!({ "email": email, "password": "correct horse" });
        if let Some(p) = plan {
            body["plan"] = json!(p);
        }
        call(&h, "POST", "/v1/auth/signup", None, Some(body))
    };
    let (s, v, _) = signup("eve@example.com", Some("premium")).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("plan")),
        "{v}"
    );
    assert_eq!(
        call(
            &h,
            "POST",
            "/v1/auth/signin",
            None,
            Some(json!({ "email": "eve@example.com", "password": "correct horse" }))
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED,
        "no account was made"
    );
    let (s, v, _) = signup("eve@example.com", None).await;
    assert_eq!(
        (s, v["plan"].as_str()),
        (StatusCode::CREATED, Some("basic")),
        "{v}"
    );
    let id = v["id"].as_str().unwrap().to_string();
    let token = signin(&h, "eve@example.com", "correct horse").await;
    let (_, me, _) = call(&h, "GET", "/v1/me", Some(&token), None).await;
    assert_eq!(me["plan"]["max_height"], 576, "{me}");
    let route = format!("/v1/admin/accounts/{id}");
    let premium = Some(json!({ "plan": "premium" }));
    assert_eq!(
        call(&h, "PATCH", &route, Some(&token), premium.clone())
            .await
            .0,
        StatusCode::FORBIDDEN,
        "a viewer cannot change a plan"
    );
    assert_eq!(
        call(
            &h,
            "PATCH",
            &route,
            Some(&h.admin),
            Some(json!({ "plan": "platinum" }))
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &h,
            "PATCH",
            "/v1/admin/accounts/nobody",
            Some(&h.admin),
            premium.clone()
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&h, "PATCH", &route, Some(&h.admin), premium).await.0,
        StatusCode::NO_CONTENT
    );
    let token = signin(&h, "eve@example.com", "correct horse").await;
    let (_, me, _) = call(&h, "GET", "/v1/me", Some(&token), None).await;
    assert_eq!(me["plan"]["max_height"], 2160, "{me}");
}
both!(plans_are_set_by_an_administrator);

/// The data folder and the SQLite database with its write-ahead log (password hashes,
/// wrapped keys) are for the service's own user only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let h = harness(Backend::Sqlite, "private_files").await;
    signup(&h, "pat@example.com", "basic").await;
    let data = h._dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    for file in ["reel.db", "reel.db-wal"] {
        let p = data.join(file);
        assert!(p.exists(), "{} missing", p.display());
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

async fn operations(h: H) {
    let (s, body, _) = raw(&h, "10.0.0.1", "GET", "/healthz", None, None, &[]).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &b"ok"[..]));
    assert_eq!(
        raw(&h, "10.0.0.1", "GET", "/readyz", None, None, &[])
            .await
            .0,
        StatusCode::OK
    );
    let (s, doc, _) = call(&h, "GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    // Every route the router serves is described.
    let metrics = {
        call(&h, "GET", "/v1/plans", None, None).await;
        String::from_utf8(
            raw(&h, "10.0.0.1", "GET", "/metrics", None, None, &[])
                .await
                .1,
        )
        .unwrap()
    };
    for path in [
        "/v1/auth/signup",
        "/v1/auth/signin",
        "/v1/auth/refresh",
        "/v1/auth/signout",
        "/v1/me",
        "/v1/plans",
        "/v1/titles",
        "/v1/titles/{id}",
        "/v1/titles/{id}/similar",
        "/v1/titles/{id}/poster",
        "/v1/me/continue-watching",
        "/v1/admin/titles",
        "/v1/admin/titles/{id}",
        "/v1/playback/{title}",
        "/v1/playback/sessions/{id}/heartbeat",
        "/v1/playback/sessions/{id}/stop",
        "/v1/playback/sessions/{id}/events",
        "/v1/licence/{token}",
        "/origin/{token}/{key}",
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from openapi.json"
        );
    }
    assert!(
        metrics.contains(
            "reel_http_requests_total{method=\"GET\",route=\"/v1/plans\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    // Request ids: kept when sane, made otherwise.
    let (_, _, headers) = raw(
        &h,
        "10.0.0.1",
        "GET",
        "/healthz",
        None,
        None,
        &[("x-request-id", "abc-123")],
    )
    .await;
    assert_eq!(headers["x-request-id"], "abc-123");
    let (_, _, headers) = raw(
        &h,
        "10.0.0.1",
        "GET",
        "/healthz",
        None,
        None,
        &[("x-request-id", "bad id\t")],
    )
    .await;
    assert_ne!(headers["x-request-id"], "bad id\t");
    // The player page and its script.
    let (s, page, _) = raw(&h, "10.0.0.1", "GET", "/", None, None, &[]).await;
    assert!(s == StatusCode::OK && String::from_utf8_lossy(&page).contains("/app.js"));
}
both!(operations);

/// Entitlement by key: a key shared by 540p and 720p renditions is HD, even for a 576-line plan.
#[test]
fn keys_are_granted_only_when_every_rendition_they_protect_is_within_the_plan() {
    use reel_services::catalog::PublishedTitle;
    use reel_services::playback::Entitlement;
    let record: PublishedTitle = serde_json::from_value(json!({
        "id": "t", "duration": 1.0, "dash": "m.mpd", "hls": "m.m3u8", "encryption": "cenc",
        "renditions": [
            { "name": "a", "kind": "video", "codec": "avc1", "height": 720, "width": 1280, "bandwidth": 1, "key_id": "00000000-0000-0000-0000-0000000000hd", "key_class": "hd" },
            { "name": "b", "kind": "video", "codec": "avc1", "height": 540, "width": 960, "bandwidth": 1, "key_id": "00000000-0000-0000-0000-0000000000hd", "key_class": "hd" },
            { "name": "c", "kind": "video", "codec": "avc1", "height": 432, "width": 768, "bandwidth": 1, "key_id": "00000000-0000-0000-0000-0000000000sd", "key_class": "sd" },
            { "name": "d", "kind": "audio", "codec": "mp4a", "height": null, "width": null, "bandwidth": 1, "key_id": "00000000-0000-0000-0000-0000000000au", "key_class": "audio" }
        ]
    })).unwrap();
    let e = Entitlement::of(&record, 576);
    assert_eq!(e.max_height, 432);
    assert_eq!(
        e.kids,
        vec![
            format!("{}au", "0".repeat(30)),
            format!("{}sd", "0".repeat(30))
        ]
    );
    let e = Entitlement::of(&record, 1080);
    assert_eq!((e.max_height, e.kids.len()), (720, 3));
    let e = Entitlement::of(&record, 360);
    assert_eq!(e.max_height, 0);
}

/// A title published to a real S3-compatible server: imported from `s3://`, its objects
/// (ranges included) and poster served by the origin through the S3 store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_serves_a_title_published_to_s3() {
    use s3_server::{free_port, S3Server, ACCESS, SECRET};
    let root = tempfile::tempdir().unwrap();
    let server = S3Server::start(&root.path().join("s3"), free_port());
    let extra = vec![
        "--s3-endpoint".to_string(),
        server.endpoint(),
        "--s3-access-key-id".into(),
        ACCESS.into(),
        "--s3-secret-access-key".into(),
        SECRET.into(),
    ];
    let h = harness_with(Backend::Sqlite, "s3", &extra).await;
    // Publish the local copy of the title to the bucket.
    let dir = h.t1.dir.clone();
    let options = h.state.config.s3_options();
    tokio::task::spawn_blocking(move || {
        let mut opts = options;
        opts.create_bucket = true;
        let store = reel_publish::Destination::parse("s3://media/titles/lighthouse")
            .unwrap()
            .open(&opts)
            .unwrap();
        for (key, path) in reel_publish::files_under(&dir).unwrap() {
            let (sha256, size) = reel_publish::file_sha256(&path).unwrap();
            let meta = reel_publish::ObjectMeta {
                content_type: reel_publish::content_type_for(&key, false).into(),
                cache_control: "no-cache".into(),
                sha256,
                size,
            };
            store.put_file(&key, &path, &meta).unwrap();
        }
    })
    .await
    .unwrap();
    let (s, v, _) = call(
        &h,
        "POST",
        "/v1/admin/titles",
        Some(&h.admin),
        Some(json!({ "url": "s3://media/titles/lighthouse", "cpix": h.t1.cpix })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let viewer = viewer(&h, "s3@example.com", "premium").await;
    let (_, grant, _) = call(&h, "POST", "/v1/playback/lighthouse", Some(&viewer), None).await;
    let token = token_of(grant["dash"].as_str().unwrap());
    let (s, body, headers) = raw(
        &h,
        "10.0.0.1",
        "GET",
        &format!("/origin/{token}/manifest.mpd"),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(
        (
            s,
            body.as_slice(),
            headers["content-type"].to_str().unwrap()
        ),
        (StatusCode::OK, &b"<MPD/>"[..], "application/dash+xml")
    );
    let (s, body, headers) = raw(
        &h,
        "10.0.0.1",
        "GET",
        &format!("/origin/{token}/720p/init.mp4"),
        None,
        None,
        &[("range", "bytes=100-103")],
    )
    .await;
    assert_eq!(
        (s, body, headers["content-range"].to_str().unwrap()),
        (
            StatusCode::PARTIAL_CONTENT,
            vec![100, 101, 102, 103],
            "bytes 100-103/256"
        )
    );
    let (s, body, _) = raw(
        &h,
        "10.0.0.1",
        "GET",
        &format!("/origin/{token}/720p/init.mp4"),
        None,
        None,
        &[("range", "bytes=-3")],
    )
    .await;
    assert_eq!(
        (s, body),
        (StatusCode::PARTIAL_CONTENT, vec![253, 254, 255])
    );
    let (s, _, headers) = raw(
        &h,
        "10.0.0.1",
        "GET",
        &format!("/origin/{token}/720p/init.mp4"),
        None,
        None,
        &[("range", "bytes=256-")],
    )
    .await;
    assert_eq!(
        (s, headers["content-range"].to_str().unwrap()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "bytes */256")
    );
    let (s, body, _) = raw(
        &h,
        "10.0.0.1",
        "GET",
        &format!("/origin/{token}/720p/seg-1.m4s"),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!((s, body.len()), (StatusCode::OK, 1000));
    large_object_is_streamed(&h, &token).await;
    assert_eq!(
        raw(
            &h,
            "10.0.0.1",
            "GET",
            &format!("/origin/{token}/missing.m4s"),
            None,
            None,
            &[]
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (s, body, _) = raw(
        &h,
        "10.0.0.1",
        "GET",
        "/v1/titles/lighthouse/poster",
        None,
        None,
        &[],
    )
    .await;
    assert_eq!((s, &body[..2]), (StatusCode::OK, &[0xff, 0xd8][..]));
    // The licence server does not care where the media lives.
    let (s, lic, _) = call(
        &h,
        "POST",
        grant["licence"].as_str().unwrap(),
        None,
        Some(json!({ "kids": [kid_of(&h.t1, TrackClass::Hd)] })),
    )
    .await;
    assert_eq!(
        (s, lic["keys"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(3))
    );
}
