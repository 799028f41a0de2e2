//! Operations (`/healthz`, `/readyz`, `/metrics`, the web page), the data folder's
//! permissions, and hostile input across the routers.

use crate::harness::*;

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
            h.post("/v1/auth/signup").json(json!({ "email": a, "password": a, "plan": a })).send().await.parts(),
            h.post("/v1/auth/signup").json(json!({ "email": format!("{}@example.com", enc.len()), "password": a, "plan": "basic" })).send().await.parts(),
            h.post("/v1/auth/signin").from("10.9.9.9").json(json!({ "email": a, "password": a })).send().await.parts(),
            h.post("/v1/auth/refresh").json(json!({ "refresh_token": a })).send().await.parts(),
            h.get(&format!("/v1/titles?q={enc}&genre={enc}")).auth(&v).send().await.parts(),
            h.get(&format!("/v1/titles/{enc}")).auth(&v).send().await.parts(),
            h.get(&format!("/v1/titles/{enc}/similar")).auth(&v).send().await.parts(),
            h.post(&format!("/v1/playback/{enc}")).auth(&v).send().await.parts(),
            h.post("/v1/playback/lighthouse").auth(&v).json(json!({ "device": a })).send().await.parts(),
            h.post(&format!("/v1/playback/sessions/{enc}/events")).auth(&v).json(json!({ "kind": a, "detail": { "x": a } })).send().await.parts(),
            h.patch("/v1/admin/titles/lighthouse").auth(&h.admin).json(json!({ "name": a, "description": a, "genres": [a] })).send().await.parts(),
            h.patch("/v1/admin/titles/lighthouse").auth(&h.admin).json(json!({ "maturity": a })).send().await.parts(),
            h.post("/v1/admin/titles").auth(&h.admin).json(json!({ "url": a, "cpix": a })).send().await.parts(),
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
    let (_, t, _) = h.get("/v1/titles/lighthouse").auth(&v).send().await.parts();
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
    let (_, list, _) = h
        .get("/v1/titles?q=%27%3B%20DROP")
        .auth(&v)
        .send()
        .await
        .parts();
    assert!(list["total"].as_i64().unwrap() <= 1, "{list}");

    // Oversized bodies.
    let big = json!({ "email": "a@example.com", "password": "x".repeat(100_000) });
    assert_eq!(
        h.post("/v1/auth/signup").json(big).send().await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let big_licence = json!({ "kids": vec!["AAAAAAAAAAAAAAAAAAAAAA"; 10_000] });
    let (_, grant, _) = h
        .post("/v1/playback/lighthouse")
        .auth(&v)
        .json(json!({ "device": "big" }))
        .send()
        .await
        .parts();
    let s = h
        .post(grant["licence"].as_str().unwrap_or("/v1/licence/x"))
        .json(big_licence)
        .send()
        .await
        .status;
    assert!(
        s == StatusCode::PAYLOAD_TOO_LARGE || s == StatusCode::BAD_REQUEST,
        "{s}"
    );
    // Not JSON at all.
    let (s, _, _) = h
        .post("/v1/auth/signin")
        .body(b"{not json".to_vec())
        .send()
        .await
        .raw_parts();
    assert!(s.is_client_error(), "{s}");
}
both!(hostile_input);

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
    let (s, body, _) = h.get("/healthz").send().await.raw_parts();
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &b"ok"[..]));
    assert_eq!(h.get("/readyz").send().await.raw_parts().0, StatusCode::OK);
    let (s, doc, _) = h.get("/openapi.json").send().await.parts();
    assert_eq!(s, StatusCode::OK);
    // Every route the router serves is described.
    let metrics = {
        h.get("/v1/plans").send().await.parts();
        let (s, body, _) = h.get("/metrics").auth(&h.admin).send().await.raw_parts();
        assert_eq!(s, StatusCode::OK);
        String::from_utf8(body).unwrap()
    };
    // Metrics are not for everyone: no token, or a viewer's, is refused.
    let v = viewer(&h, "ops-viewer@example.com", "basic").await;
    for token in [None, Some(v.as_str()), Some("not-a-token")] {
        let (s, body, _) = h.get("/metrics").auth_opt(token).send().await.parts();
        assert_eq!(
            (s, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized"))
        );
    }
    // A body that is not the JSON asked for gets the API's JSON error shape.
    let (s, body, _) = h
        .post("/v1/auth/signin")
        .body(b"{\"email\": ".to_vec())
        .send()
        .await
        .parts();
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{body}"
    );
    let (s, body, _) = h
        .post("/v1/auth/signin")
        .body(b"{\"email\": 7}".to_vec())
        .send()
        .await
        .parts();
    assert_eq!(body["error"], "bad_request", "{s}: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("email"),
        "{body}"
    );
    let (s, body, _) = h
        .post("/v1/auth/signin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(b"email=a".to_vec())
        .send()
        .await
        .parts();
    assert_eq!(
        (s, body["error"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    // Security headers on the page and on the API's answers alike.
    for path in ["/", "/v1/plans"] {
        let (_, _, headers) = h.get(path).send().await.raw_parts();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-frame-options"], "DENY");
    }
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
    let (_, _, headers) = h
        .get("/healthz")
        .headers(&[("x-request-id", "abc-123")])
        .send()
        .await
        .raw_parts();
    assert_eq!(headers["x-request-id"], "abc-123");
    let (_, _, headers) = h
        .get("/healthz")
        .headers(&[("x-request-id", "bad id\t")])
        .send()
        .await
        .raw_parts();
    assert_ne!(headers["x-request-id"], "bad id\t");
    // The player page and its script.
    let (s, page, _) = h.get("/").send().await.raw_parts();
    assert!(s == StatusCode::OK && String::from_utf8_lossy(&page).contains("/app.js"));
}
both!(operations);

/// A scraper reads `/metrics` with the token it was configured with, and only with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scraper_reads_metrics_with_its_token() {
    let h = harness_with(
        Backend::Sqlite,
        "metrics_token",
        &["--metrics-token".into(), "scrape-secret-1".into()],
    )
    .await;
    let (s, body, _) = h
        .get("/metrics")
        .auth("scrape-secret-1")
        .send()
        .await
        .raw_parts();
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("reel_http_requests_total"));
    let (s, _, _) = h
        .get("/metrics")
        .auth("scrape-secret-2")
        .send()
        .await
        .raw_parts();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
