//! `/origin`: segments and manifests under a playback token, ranges, HEAD, and a title
//! published to a real S3-compatible server.

use crate::harness::*;

/// A large object (2.5 MiB, more than the origin's 1 MiB read chunk) comes back whole, in a
/// range across chunk boundaries and as a bodiless HEAD with its length.
async fn large_object_is_streamed(h: &H, token: &str) {
    let want = support::large_object();
    let url = format!("/origin/{token}/720p/single.mp4");
    let (s, body, headers) = h.get(&url).send().await.raw_parts();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-length"], want.len().to_string().as_str());
    assert!(body == want, "the whole object differs");
    let (s, body, headers) = h
        .get(&url)
        .headers(&[("range", "bytes=1000000-2200000")])
        .send()
        .await
        .raw_parts();
    assert_eq!(
        (s, headers["content-range"].to_str().unwrap()),
        (
            StatusCode::PARTIAL_CONTENT,
            format!("bytes 1000000-2200000/{}", want.len()).as_str()
        )
    );
    assert!(body == want[1_000_000..=2_200_000], "the range differs");
    let (s, body, headers) = h.head(&url).send().await.raw_parts();
    assert_eq!((s, body.len()), (StatusCode::OK, 0));
    assert_eq!(headers["content-length"], want.len().to_string().as_str());
}

async fn origin(h: H) {
    let v = viewer(&h, "org@example.com", "premium").await;
    let (_, grant, _) = h
        .post("/v1/playback/lighthouse")
        .auth(&v)
        .send()
        .await
        .parts();
    let token = token_of(grant["dash"].as_str().unwrap());
    let get = |path: String, headers: Vec<(&'static str, String)>| {
        let h = &h;
        async move {
            let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.get(&path).headers(&hs).send().await.raw_parts()
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
    // A FIFO planted in the title's folder is refused at once, not waited on (opening it for
    // reading would block until a writer came).
    let fifo = h.t1.dir.join("stuck.m4s");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        get(format!("/origin/{token}/stuck.m4s"), vec![]),
    )
    .await
    .expect("the origin waited on a FIFO");
    assert_eq!(answer.0, StatusCode::NOT_FOUND);
    // A relative symlink that stays inside the title is followed.
    std::os::unix::fs::symlink("720p/init.mp4", h.t1.dir.join("alias.mp4")).unwrap();
    let (s, body, _) = get(format!("/origin/{token}/alias.mp4"), vec![]).await;
    assert_eq!((s, body.len()), (StatusCode::OK, 256));

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

/// A title published to a real S3-compatible server: imported from `s3://`, its objects
/// (ranges included) and poster served by the origin through the S3 store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_serves_a_title_published_to_s3() {
    use crate::s3_server::{S3Server, ACCESS, SECRET};
    let root = tempfile::tempdir().unwrap();
    let server = S3Server::start(&root.path().join("s3"));
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
    let (s, v, _) = h
        .post("/v1/admin/titles")
        .auth(&h.admin)
        .json(json!({ "url": "s3://media/titles/lighthouse", "cpix": h.t1.cpix }))
        .send()
        .await
        .parts();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let viewer = viewer(&h, "s3@example.com", "premium").await;
    let (_, grant, _) = h
        .post("/v1/playback/lighthouse")
        .auth(&viewer)
        .send()
        .await
        .parts();
    let token = token_of(grant["dash"].as_str().unwrap());
    let (s, body, headers) = h
        .get(&format!("/origin/{token}/manifest.mpd"))
        .send()
        .await
        .raw_parts();
    assert_eq!(
        (
            s,
            body.as_slice(),
            headers["content-type"].to_str().unwrap()
        ),
        (StatusCode::OK, &b"<MPD/>"[..], "application/dash+xml")
    );
    let (s, body, headers) = h
        .get(&format!("/origin/{token}/720p/init.mp4"))
        .headers(&[("range", "bytes=100-103")])
        .send()
        .await
        .raw_parts();
    assert_eq!(
        (s, body, headers["content-range"].to_str().unwrap()),
        (
            StatusCode::PARTIAL_CONTENT,
            vec![100, 101, 102, 103],
            "bytes 100-103/256"
        )
    );
    let (s, body, _) = h
        .get(&format!("/origin/{token}/720p/init.mp4"))
        .headers(&[("range", "bytes=-3")])
        .send()
        .await
        .raw_parts();
    assert_eq!(
        (s, body),
        (StatusCode::PARTIAL_CONTENT, vec![253, 254, 255])
    );
    let (s, _, headers) = h
        .get(&format!("/origin/{token}/720p/init.mp4"))
        .headers(&[("range", "bytes=256-")])
        .send()
        .await
        .raw_parts();
    assert_eq!(
        (s, headers["content-range"].to_str().unwrap()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "bytes */256")
    );
    let (s, body, _) = h
        .get(&format!("/origin/{token}/720p/seg-1.m4s"))
        .send()
        .await
        .raw_parts();
    assert_eq!((s, body.len()), (StatusCode::OK, 1000));
    large_object_is_streamed(&h, &token).await;
    assert_eq!(
        h.get(&format!("/origin/{token}/missing.m4s"))
            .send()
            .await
            .raw_parts()
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, body, _) = h
        .get("/v1/titles/lighthouse/poster")
        .send()
        .await
        .raw_parts();
    assert_eq!((s, &body[..2]), (StatusCode::OK, &[0xff, 0xd8][..]));
    // The licence server does not care where the media lives.
    let (s, lic, _) = h
        .post(grant["licence"].as_str().unwrap())
        .json(json!({ "kids": [kid_of(&h.t1, TrackClass::Hd)] }))
        .send()
        .await
        .parts();
    assert_eq!(
        (s, lic["keys"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(3))
    );
}
