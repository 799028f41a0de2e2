//! `/v1/auth` and account administration: sign-up, sign-in, refresh, limits and lockout,
//! plans.

use crate::harness::*;

async fn auth_flow(h: H) {
    signup(&h, "Ann@Example.com", "basic").await;
    let (s, v, _) = h
        .post("/v1/auth/signup")
        .json(json!({ "email": "ann@example.com", "password": "another one", "plan": "basic" }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    for (email, password, plan) in [
        ("not-an-email", "long enough", "basic"),
        ("b@example.com", "short", "basic"),
        ("b@example.com", "long enough", "platinum"),
    ] {
        let (s, v, _) = h
            .post("/v1/auth/signup")
            .json(json!({ "email": email, "password": password, "plan": plan }))
            .send()
            .await
            .parts();
        assert_eq!(s, StatusCode::BAD_REQUEST, "{email} {password} {plan}: {v}");
    }
    // A wrong email and a wrong password get the same answer.
    let wrong_email = h
        .post("/v1/auth/signin")
        .from("10.0.1.1")
        .json(json!({ "email": "nobody@example.com", "password": "correct horse" }))
        .send()
        .await
        .parts();
    let wrong_password = h
        .post("/v1/auth/signin")
        .from("10.0.1.2")
        .json(json!({ "email": "ann@example.com", "password": "wrong horse" }))
        .send()
        .await
        .parts();
    assert_eq!(wrong_email.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (wrong_email.0, &wrong_email.1),
        (wrong_password.0, &wrong_password.1)
    );

    let (s, pair, _) = h
        .post("/v1/auth/signin")
        .json(json!({ "email": "ANN@example.com ", "password": "correct horse" }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::OK, "{pair}");
    let access = pair["access_token"].as_str().unwrap();
    let (s, me, _) = h.get("/v1/me").auth(access).send().await.parts();
    assert_eq!(
        (s, me["email"].as_str(), me["plan"]["max_height"].as_i64()),
        (StatusCode::OK, Some("ann@example.com"), Some(576))
    );
    assert!(!me.to_string().contains("argon2"));

    // Missing, forged, expired tokens.
    assert_eq!(
        h.get("/v1/me").send().await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut forged = access.to_string();
    forged.insert(5, 'x');
    assert_eq!(
        h.get("/v1/me").auth(&forged).send().await.status,
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
        h.get("/v1/me").auth(&expired).send().await.status,
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
        h.get("/v1/me").auth(&other_secret).send().await.status,
        StatusCode::UNAUTHORIZED
    );
    // A viewer is not an admin.
    let (s, v, _) = h
        .post("/v1/admin/titles")
        .auth(access)
        .json(json!({ "url": "x" }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // Refresh rotates; a reused refresh token revokes its family.
    let first = pair["refresh_token"].as_str().unwrap().to_string();
    let (s, second, _) = h
        .post("/v1/auth/refresh")
        .json(json!({ "refresh_token": first }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::OK, "{second}");
    let second = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(
        h.post("/v1/auth/refresh")
            .json(json!({ "refresh_token": first }))
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.post("/v1/auth/refresh")
            .json(json!({ "refresh_token": second }))
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "the family was revoked"
    );
    // Sign-out revokes.
    let (_, pair, _) = h
        .post("/v1/auth/signin")
        .json(json!({ "email": "ann@example.com", "password": "correct horse" }))
        .send()
        .await
        .parts();
    let r = pair["refresh_token"].as_str().unwrap();
    assert_eq!(
        h.post("/v1/auth/signout")
            .json(json!({ "refresh_token": r }))
            .send()
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.post("/v1/auth/refresh")
            .json(json!({ "refresh_token": r }))
            .send()
            .await
            .status,
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
        let (s, _, _) = h
            .post("/v1/auth/signin")
            .from(&format!("10.1.0.{i}"))
            .json(json!({ "email": "bea@example.com", "password": "guess {i}" }))
            .send()
            .await
            .parts();
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // The account is locked, even for the right password, from any address.
    let (s, v, headers) = h
        .post("/v1/auth/signin")
        .from("10.1.1.1")
        .json(json!({ "email": "bea@example.com", "password": "correct horse" }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(headers.get("retry-after").is_some());
    // One address trying many accounts is limited too; another address is not.
    for i in 0..20 {
        let (s, _, _) = h
            .post("/v1/auth/signin")
            .from("10.2.0.1")
            .json(json!({ "email": format!("u{i}@example.com"), "password": "whatever1" }))
            .send()
            .await
            .parts();
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, _, _) = h
        .post("/v1/auth/signin")
        .from("10.2.0.1")
        .json(json!({ "email": "u99@example.com", "password": "whatever1" }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let (s, _, _) = h
        .post("/v1/auth/signin")
        .from("10.2.0.2")
        .json(json!({ "email": "u99@example.com", "password": "whatever1" }))
        .send()
        .await
        .parts();
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
                h.post("/v1/auth/signin")
                    .from(&format!("10.7.0.{}", i + 1))
                    .json(
                        json!({ "email": "target@example.com", "password": format!("guess {i}") }),
                    )
                    .send()
                    .await
                    .parts()
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
    let (s, _, _) = h
        .post("/v1/auth/signin")
        .from("10.7.1.1")
        .json(json!({ "email": "target@example.com", "password": "correct horse" }))
        .send()
        .await
        .parts();
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
        let (s, _, _) = h
            .post("/v1/auth/signin")
            .body(
                json!({ "email": format!("nobody{i}@example.com"), "password": "whatever1" })
                    .to_string()
                    .into_bytes(),
            )
            .headers(&[("x-forwarded-for", invented.as_str())])
            .send()
            .await
            .raw_parts();
        statuses.push(s);
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(limited, 5, "{statuses:?}");
    // Another address, as the proxy saw it, is not limited.
    let (s, _, _) = h
        .post("/v1/auth/signin")
        .body(
            json!({ "email": "nobody@example.com", "password": "whatever1" })
                .to_string()
                .into_bytes(),
        )
        .headers(&[("x-forwarded-for", "203.0.113.10")])
        .send()
        .await
        .raw_parts();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// A viewer cannot choose a paid plan at sign-up: every account starts on the basic plan, and
/// only an administrator moves it (effective with the next sign-in).
async fn plans_are_set_by_an_administrator(h: H) {
    let signup = |email: &'static str, plan: Option<&'static str>| {
        let mut body = json!({ "email": email, "password": "correct horse" });
        if let Some(p) = plan {
            body["plan"] = json!(p);
        }
        h.post("/v1/auth/signup").json(body).send()
    };
    let (s, v, _) = signup("eve@example.com", Some("premium")).await.parts();
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("plan")),
        "{v}"
    );
    assert_eq!(
        h.post("/v1/auth/signin")
            .json(json!({ "email": "eve@example.com", "password": "correct horse" }))
            .send()
            .await
            .parts()
            .0,
        StatusCode::UNAUTHORIZED,
        "no account was made"
    );
    let (s, v, _) = signup("eve@example.com", None).await.parts();
    assert_eq!(
        (s, v["plan"].as_str()),
        (StatusCode::CREATED, Some("basic")),
        "{v}"
    );
    let id = v["id"].as_str().unwrap().to_string();
    let token = signin(&h, "eve@example.com", "correct horse").await;
    let (_, me, _) = h.get("/v1/me").auth(&token).send().await.parts();
    assert_eq!(me["plan"]["max_height"], 576, "{me}");
    let route = format!("/v1/admin/accounts/{id}");
    let premium = Some(json!({ "plan": "premium" }));
    assert_eq!(
        h.patch(&route)
            .auth(&token)
            .json_opt(premium.clone())
            .send()
            .await
            .parts()
            .0,
        StatusCode::FORBIDDEN,
        "a viewer cannot change a plan"
    );
    assert_eq!(
        h.patch(&route)
            .auth(&h.admin)
            .json(json!({ "plan": "platinum" }))
            .send()
            .await
            .parts()
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.patch("/v1/admin/accounts/nobody")
            .auth(&h.admin)
            .json_opt(premium.clone())
            .send()
            .await
            .parts()
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.patch(&route)
            .auth(&h.admin)
            .json_opt(premium)
            .send()
            .await
            .parts()
            .0,
        StatusCode::NO_CONTENT
    );
    let token = signin(&h, "eve@example.com", "correct horse").await;
    let (_, me, _) = h.get("/v1/me").auth(&token).send().await.parts();
    assert_eq!(me["plan"]["max_height"], 2160, "{me}");
}
both!(plans_are_set_by_an_administrator);
