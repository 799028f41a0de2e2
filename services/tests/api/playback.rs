//! `/v1/playback` and `/v1/licence`: sessions, stream limits, entitlement by plan, licences.

use crate::harness::*;

async fn playback_and_licences(h: H) {
    let basic = viewer(&h, "sd@example.com", "basic").await;
    let premium = viewer(&h, "hd@example.com", "premium").await;
    let mobile = viewer(&h, "phone@example.com", "mobile").await;

    // A mobile plan (360p) cannot play a title that starts at 432p.
    let (s, v, _) = h
        .post("/v1/playback/lighthouse")
        .auth(&mobile)
        .send()
        .await
        .parts();
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("plan")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("360p"), "{v}");
    assert_eq!(
        h.post("/v1/playback/nosuchtitle")
            .auth(&basic)
            .send()
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.post("/v1/playback/lighthouse").send().await.status,
        StatusCode::UNAUTHORIZED
    );

    // Basic (576 lines): SD and audio keys, never the HD key.
    let grant = play_on_tv(&h, &basic).await;
    assert_eq!(grant["max_height"], 432);
    let licence = grant["licence"].as_str().unwrap().to_string();
    let all_kids = json!({ "kids": [kid_of(&h.t1, TrackClass::Sd), kid_of(&h.t1, TrackClass::Hd), kid_of(&h.t1, TrackClass::Audio)], "type": "temporary" });
    let (s, lic, _) = h.post(&licence).json(all_kids.clone()).send().await.parts();
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
    let (_, lic, _) = h
        .post(&licence)
        .json(json!({ "kids": [kid_of(&h.t1, TrackClass::Audio)] }))
        .send()
        .await
        .parts();
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
    let (s, v, _) = h
        .post(&licence)
        .json(json!({ "kids": [kid_of(&h.t1, TrackClass::Hd)] }))
        .send()
        .await
        .parts();
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_entitled")),
        "{v}"
    );
    assert!(!v.to_string().contains(&key_of(&h.t1, TrackClass::Hd)));
    // Another title's key through this session: refused.
    let (s, _, _) = h
        .post(&licence)
        .json(json!({ "kids": [kid_of(&h.t2, TrackClass::Sd)] }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Malformed requests.
    for body in [
        json!({ "kids": [] }),
        json!({ "kids": ["not base64!"] }),
        json!({ "kids": [b64url(&[1; 5])] }),
        json!("text"),
    ] {
        assert_eq!(
            h.post(&licence).json(body.clone()).send().await.status,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    // Forged and expired playback tokens; an access token is not a playback token.
    let token = token_of(&licence);
    let mut forged = token.clone();
    forged.insert(3, 'A');
    assert_eq!(
        h.post(&format!("/v1/licence/{forged}"))
            .json(all_kids.clone())
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.post(&format!("/v1/licence/{basic}"))
            .json(all_kids.clone())
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let claims = h.state.signer.verify_playback(&token, 0).unwrap();
    let expired = h.state.signer.playback(&PlaybackClaims {
        exp: 1,
        ..claims.clone()
    });
    assert_eq!(
        h.post(&format!("/v1/licence/{expired}"))
            .json(all_kids.clone())
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // A token naming another account or title for this session (as if the secret leaked
    // one field at a time) does not pass the session check.
    let other_title = h.state.signer.playback(&PlaybackClaims {
        title: "harbour".into(),
        ..claims.clone()
    });
    assert_eq!(
        h.post(&format!("/v1/licence/{other_title}"))
            .json(all_kids.clone())
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // Premium: every key.
    let (_, grant_hd, _) = h
        .post("/v1/playback/lighthouse")
        .auth(&premium)
        .send()
        .await
        .parts();
    assert_eq!(grant_hd["max_height"], 720);
    let (s, lic, _) = h
        .post(grant_hd["licence"].as_str().unwrap())
        .json(all_kids.clone())
        .send()
        .await
        .parts();
    assert_eq!(
        (s, lic["keys"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(3))
    );

    // Another account's session: invisible.
    let session = grant["session"].as_str().unwrap();
    for path in ["heartbeat", "stop", "events"] {
        let (s, _, _) = h
            .post(&format!("/v1/playback/sessions/{session}/{path}"))
            .auth(&premium)
            .json(json!({ "kind": "start", "position": 1.0 }))
            .send()
            .await
            .parts();
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    // Stream limit (basic: one stream): a second device is refused, the same device replaces.
    let (s, v, _) = h
        .post("/v1/playback/lighthouse")
        .auth(&basic)
        .json(json!({ "device": "phone" }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let again = play_on_tv(&h, &basic).await;
    // The replaced session gets no more keys.
    let (s, v, _) = h.post(&licence).json(all_kids.clone()).send().await.parts();
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("session_ended"))
    );
    // Stopping frees the stream.
    let s2 = again["session"].as_str().unwrap();
    assert_eq!(
        h.post(&format!("/v1/playback/sessions/{s2}/stop"))
            .auth(&basic)
            .json(json!({ "position": 2.0 }))
            .send()
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.post("/v1/playback/lighthouse")
            .auth(&basic)
            .json(json!({ "device": "phone" }))
            .send()
            .await
            .status,
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

    let (_, metrics, _) = h.get("/metrics").auth(&h.admin).send().await.raw_parts();
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

/// The origin and the licence server check the session on every request: a session replaced
/// on its device, stopped, idle past the heartbeat timeout (3 s here), or of a title hidden
/// since it started gets no more segments and no more keys; video above the session's plan is
/// refused at the origin as its key is at the licence server.
async fn ended_sessions_fetch_nothing_more(h: H) {
    let h = &h;
    let v = &viewer(h, "one@example.com", "basic").await;
    let start = move |device: &'static str| async move {
        let (s, grant, _) = h
            .post("/v1/playback/lighthouse")
            .auth(v)
            .json(json!({ "device": device }))
            .send()
            .await
            .parts();
        assert_eq!(s, StatusCode::OK, "{grant}");
        grant
    };
    let segment = |grant: &Value, rendition: &str| {
        let token = token_of(grant["dash"].as_str().unwrap());
        format!("/origin/{token}/{rendition}/seg-1.m4s")
    };
    let sd_key = &json!({ "kids": [kid_of(&h.t1, TrackClass::Sd)] });
    let fetch = move |grant: &Value| {
        let url = segment(grant, "432p");
        async move { h.get(&url).send().await.parts() }
    };
    let licence = move |grant: &Value| {
        let url = grant["licence"].as_str().unwrap().to_string();
        let body = sd_key.clone();
        async move { h.post(&url).json(body).send().await.parts() }
    };
    let ended = |(s, v, _): (StatusCode, Value, HeaderMap), code: &str| {
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::FORBIDDEN, Some(code)),
            "{v}"
        );
    };

    let a = start("tv").await;
    assert_eq!(fetch(&a).await.0, StatusCode::OK);
    assert_eq!(licence(&a).await.0, StatusCode::OK);
    let (s, e, _) = h.get(&segment(&a, "720p")).send().await.parts();
    assert_eq!(
        (s, e["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("plan")),
        "{e}"
    );

    // Replaced on its device.
    let b = start("tv").await;
    ended(fetch(&a).await, "session_ended");
    ended(licence(&a).await, "session_ended");
    assert_eq!(fetch(&b).await.0, StatusCode::OK);

    // Stopped.
    let stop = format!(
        "/v1/playback/sessions/{}/stop",
        b["session"].as_str().unwrap()
    );
    let s = h
        .post(&stop)
        .auth(v)
        .json(json!({ "position": 1.0 }))
        .send()
        .await
        .status;
    assert_eq!(s, StatusCode::NO_CONTENT);
    ended(fetch(&b).await, "session_ended");
    ended(licence(&b).await, "session_ended");

    // Idle: no heartbeat for longer than the timeout. A late heartbeat does not revive it.
    let c = start("tv").await;
    assert_eq!(fetch(&c).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    ended(fetch(&c).await, "session_ended");
    ended(licence(&c).await, "session_ended");
    let beat = format!(
        "/v1/playback/sessions/{}/heartbeat",
        c["session"].as_str().unwrap()
    );
    let s = h
        .post(&beat)
        .auth(v)
        .json(json!({ "position": 2.0 }))
        .send()
        .await
        .status;
    assert_eq!(s, StatusCode::CONFLICT);

    // A title hidden after the session started.
    let d = start("tv").await;
    assert_eq!(fetch(&d).await.0, StatusCode::OK);
    let s = h
        .patch("/v1/admin/titles/lighthouse")
        .auth(&h.admin)
        .json(json!({ "hidden": true }))
        .send()
        .await
        .status;
    assert!(s.is_success(), "{s}");
    assert_eq!(fetch(&d).await.0, StatusCode::NOT_FOUND);
    ended(licence(&d).await, "title_unavailable");
}
both!(
    ended_sessions_fetch_nothing_more,
    "--heartbeat-timeout",
    "3"
);

/// Sessions, events and licence requests each add a row: an account adds at most
/// `--writes-per-account` a minute, then is told to wait; other accounts are not held up.
async fn rows_per_account_are_limited(h: H) {
    let v = viewer(&h, "flood@example.com", "basic").await;
    let grant = play_on_tv(&h, &v).await;
    let session = grant["session"].as_str().unwrap().to_string();
    let licence = grant["licence"].as_str().unwrap().to_string();
    let kids = json!({ "kids": [kid_of(&h.t1, TrackClass::Audio)] });
    assert_eq!(
        h.post(&licence).json(kids.clone()).send().await.parts().0,
        StatusCode::OK
    );
    let event = json!({ "kind": "seek", "position": 1.0 });
    let events = format!("/v1/playback/sessions/{session}/events");
    let post_event = || async {
        h.post(&events)
            .auth(&v)
            .json(event.clone())
            .send()
            .await
            .parts()
    };
    for _ in 0..3 {
        assert_eq!(post_event().await.0, StatusCode::NO_CONTENT);
    }
    // Five rows so far: the sixth of any kind waits.
    let (s, body, headers) = post_event().await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        h.post(&licence).json(kids).send().await.parts().0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let (s, _, _) = h
        .post("/v1/playback/lighthouse")
        .auth(&v)
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let rows: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM playback_events")
        .fetch_one(&h.state.db)
        .await
        .unwrap();
    assert_eq!(rows.0, 3);
    // Another account is not held up.
    let other = viewer(&h, "calm@example.com", "basic").await;
    let (s, _, _) = h
        .post("/v1/playback/lighthouse")
        .auth(&other)
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::OK);
}
both!(rows_per_account_are_limited, "--writes-per-account", "5");
