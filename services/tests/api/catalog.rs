//! `/v1/titles` and `/v1/admin/titles`: listing, search, details, posters, availability.

use crate::harness::*;

async fn catalog(h: H) {
    let v = viewer(&h, "cat@example.com", "premium").await;
    let (s, list, _) = h.get("/v1/titles?per_page=1").auth(&v).send().await.parts();
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
    let (_, page2, _) = h
        .get("/v1/titles?per_page=1&page=2")
        .auth(&v)
        .send()
        .await
        .parts();
    assert_eq!(page2["titles"][0]["id"], "lighthouse");
    let (_, drama, _) = h
        .get("/v1/titles?genre=drama")
        .auth(&v)
        .send()
        .await
        .parts();
    assert_eq!(drama["total"], 1);
    let (_, y, _) = h.get("/v1/titles?year=2020").auth(&v).send().await.parts();
    assert_eq!(y["titles"][0]["id"], "lighthouse");
    let (_, q, _) = h.get("/v1/titles?q=light").auth(&v).send().await.parts();
    assert_eq!(q["total"], 1);
    // LIKE wildcards are literal.
    let (_, q, _) = h.get("/v1/titles?q=%25").auth(&v).send().await.parts();
    assert_eq!(q["total"], 0, "{q}");
    assert_eq!(
        h.get("/v1/titles?year=abc").auth(&v).send().await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.get("/v1/titles").send().await.status,
        StatusCode::UNAUTHORIZED
    );

    // More like this: the other documentary.
    let (_, sim, _) = h
        .get("/v1/titles/lighthouse/similar")
        .auth(&v)
        .send()
        .await
        .parts();
    assert_eq!(sim["titles"][0]["id"], "harbour", "{sim}");
    // Poster, public.
    let (s, bytes, headers) = h
        .get("/v1/titles/lighthouse/poster")
        .send()
        .await
        .raw_parts();
    assert_eq!(
        (s, &bytes[..3], headers["content-type"].to_str().unwrap()),
        (StatusCode::OK, &[0xff, 0xd8, 0xff][..], "image/jpeg")
    );

    // The title's details list its audio and text tracks for the player's menus.
    let (s, one, _) = h.get("/v1/titles/lighthouse").auth(&v).send().await.parts();
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(
        one["tracks"],
        json!({
            "audio": [
                { "name": "audio", "codec": "mp4a.40.2", "channels": null,
                  "language": "eng", "role": "main", "title": null },
                { "name": "audio_eng_description", "codec": "mp4a.40.2", "channels": null,
                  "language": "eng", "role": "description", "title": "English (described)" }
            ],
            "text": [{ "name": "French (CA) [captions]", "language": "fr-CA", "kind": "captions" }]
        }),
        "{one}"
    );

    // Hidden: gone for viewers, there for admins.
    let (s, _, _) = h
        .patch("/v1/admin/titles/harbour")
        .auth(&h.admin)
        .json(json!({ "hidden": true }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get("/v1/titles/harbour").auth(&v).send().await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.post("/v1/playback/harbour").auth(&v).send().await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get("/v1/titles").auth(&v).send().await.parts().1["total"],
        1
    );
    assert_eq!(
        h.get("/v1/titles").auth(&h.admin).send().await.parts().1["total"],
        2
    );
    h.patch("/v1/admin/titles/harbour")
        .auth(&h.admin)
        .json(json!({ "hidden": false }))
        .send()
        .await
        .parts();

    // Availability window in the future: not listed, not playable.
    let future = reel_services::util::now_ms() + 86_400_000;
    let (s, t, _) = h
        .patch("/v1/admin/titles/lighthouse")
        .auth(&h.admin)
        .json(json!({ "available_from": future }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(
        h.get("/v1/titles").auth(&v).send().await.parts().1["total"],
        1
    );
    let (s, v3, _) = h
        .post("/v1/playback/lighthouse")
        .auth(&v)
        .send()
        .await
        .parts();
    assert_eq!(
        (s, v3["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_available")),
        "{v3}"
    );
    let (s, _, _) = h
        .patch("/v1/admin/titles/lighthouse")
        .auth(&h.admin)
        .json(json!({ "available_from": null, "available_until": future }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::OK);
    let (s, v2, _) = h
        .patch("/v1/admin/titles/lighthouse")
        .auth(&h.admin)
        .json(json!({ "available_from": future + 1 }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v2}");
    let (s, _, _) = h
        .patch("/v1/admin/titles/lighthouse")
        .auth(&h.admin)
        .json(json!({ "maturity": "X-rated" }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Maturity: a 12 profile sees neither the 18 title nor plays it.
    let (s, _, _) = h
        .patch("/v1/me")
        .auth(&v)
        .json(json!({ "max_age": 12 }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::NO_CONTENT);
    let kid = signin(&h, "cat@example.com", "correct horse").await;
    let (_, list, _) = h.get("/v1/titles").auth(&kid).send().await.parts();
    assert_eq!(list["total"], 1, "{list}");
    let (s, _, _) = h
        .post("/v1/playback/harbour")
        .auth(&kid)
        .send()
        .await
        .parts();
    assert!(
        s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND,
        "{s}"
    );

    // Continue watching: started and not finished.
    let (_, grant, _) = h
        .post("/v1/playback/lighthouse")
        .auth(&kid)
        .send()
        .await
        .parts();
    let session = grant["session"].as_str().unwrap();
    assert_eq!(
        h.post(&format!("/v1/playback/sessions/{session}/heartbeat"))
            .auth(&kid)
            .json(json!({ "position": 3.5 }))
            .send()
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    for (kind, pos) in [("start", 0.0), ("switch", 1.0), ("rebuffer", 2.0)] {
        let (s, v, _) = h
            .post(&format!("/v1/playback/sessions/{session}/events"))
            .auth(&kid)
            .json(json!({ "kind": kind, "position": pos, "detail": { "height": 432 } }))
            .send()
            .await
            .parts();
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
    let (_, cont, _) = h
        .get("/v1/me/continue-watching")
        .auth(&kid)
        .send()
        .await
        .parts();
    assert_eq!(
        (
            cont["titles"][0]["id"].as_str(),
            cont["titles"][0]["position"].as_f64()
        ),
        (Some("lighthouse"), Some(3.5)),
        "{cont}"
    );
    h.post(&format!("/v1/playback/sessions/{session}/stop"))
        .auth(&kid)
        .json(json!({ "position": 9.9 }))
        .send()
        .await
        .parts();
    let (_, cont, _) = h
        .get("/v1/me/continue-watching")
        .auth(&kid)
        .send()
        .await
        .parts();
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
        h.post(&format!("/v1/playback/sessions/{session}/events"))
            .auth(&kid)
            .json(json!({ "kind": "explode" }))
            .send()
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.post(&format!("/v1/playback/sessions/{session}/heartbeat"))
            .auth(&kid)
            .json(json!({ "position": -1 }))
            .send()
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}
both!(catalog);

/// The poster route reads with the origin's rules: a poster that is a symlink out of the title
/// folder (here to a secret that even looks like a JPEG), a file that is not an image, and one
/// over the size cap are all "not found"; a real PNG is served as one.
async fn poster_stays_inside_the_title(h: H) {
    let get = || h.get("/v1/titles/lighthouse/poster").send();
    let (s, body, _) = get().await.raw_parts();
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
    let (s, body, _) = get().await.raw_parts();
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&body)
    );
    std::fs::remove_file(&poster).unwrap();
    std::fs::write(&poster, br#"{"not": "an image"}"#).unwrap();
    assert_eq!(get().await.raw_parts().0, StatusCode::NOT_FOUND);
    let mut huge = vec![0xff, 0xd8, 0xff, 0xe0];
    huge.resize(5 << 20, 0);
    std::fs::write(&poster, huge).unwrap();
    assert_eq!(get().await.raw_parts().0, StatusCode::NOT_FOUND);
    std::fs::write(&poster, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let (s, _, headers) = get().await.raw_parts();
    assert_eq!(
        (s, headers["content-type"].to_str().unwrap()),
        (StatusCode::OK, "image/png")
    );
    // Out of its availability window, a title's poster is gone as the title is.
    let s = h
        .patch("/v1/admin/titles/lighthouse")
        .auth(&h.admin)
        .json(json!({ "available_until": 1_000 }))
        .send()
        .await
        .status;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(get().await.raw_parts().0, StatusCode::NOT_FOUND);
}
both!(poster_stays_inside_the_title);
