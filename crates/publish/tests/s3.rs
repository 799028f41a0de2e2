//! The S3 store against a real S3-compatible server: `s3s-fs` (crates.io, an S3 server over a
//! folder), started here on 127.0.0.1. `scripts/setup.sh` installs it; `REEL_S3_SERVER` may
//! name the binary.

use reel_publish::{
    publish, Journal, ObjectStore, PublishOptions, S3Options, S3Store, Tier, Upload,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[path = "support/s3_server.rs"]
mod s3_server;
use s3_server::{S3Server as Server, ACCESS, SECRET};

fn options(port: u16) -> S3Options {
    S3Options {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        path_style: true,
        access_key_id: Some(ACCESS.into()),
        secret_access_key: Some(SECRET.into()),
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        max_attempts: 3,
        ..S3Options::default()
    }
}

/// A title's worth of files: segments, a big single-file track (multipart), playlists,
/// manifests and a record.
fn title_files(dir: &Path) -> Vec<Upload> {
    std::fs::create_dir_all(dir).unwrap();
    let mut v = Vec::new();
    let mut add = |key: &str, tier: Tier, bytes: Vec<u8>, audio: bool| {
        let p = dir.join(key.replace('/', "_"));
        std::fs::write(&p, bytes).unwrap();
        v.push(Upload::new(
            key,
            &p,
            tier,
            reel_publish::content_type_for(key, audio),
        ));
    };
    for i in 1..=12 {
        add(
            &format!("720p/{i}.m4s"),
            Tier::Media,
            vec![i as u8; 10_000 + i * 7],
            false,
        );
    }
    add("audio/init.mp4", Tier::Media, vec![7; 700], true);
    let big: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    add("1080p.mp4", Tier::Media, big, false);
    add("720p.m3u8", Tier::Playlist, b"#EXTM3U\n".to_vec(), false);
    add("master.m3u8", Tier::Manifest, b"#EXTM3U\n".to_vec(), false);
    add("manifest.mpd", Tier::Manifest, b"<MPD/>".to_vec(), false);
    add("title.json", Tier::Record, b"{}".to_vec(), false);
    v
}

#[test]
fn publishes_reads_back_and_resumes_after_the_server_dies() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("s3"));
    let port = server.port;
    let store = S3Store::new("media", "titles/t1", &options(server.port)).unwrap();
    store.ensure_bucket().unwrap();
    store.ensure_bucket().unwrap(); // twice is fine
    let uploads = title_files(&dir.path().join("src"));
    let mut journal = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    let opts = PublishOptions {
        parallel: 4,
        cancel: None,
    };
    let r = publish(&store, &uploads, &mut journal, &opts, &mut |_| {}).unwrap();
    assert_eq!(r.uploaded, uploads.len());
    for u in &uploads {
        let back = store.get(&u.key).unwrap().expect(&u.key);
        assert_eq!(back, std::fs::read(&u.source).unwrap(), "{}", u.key);
        let head = store.head(&u.key).unwrap().unwrap();
        assert_eq!(head.size as usize, back.len());
        let (sha, _) = reel_publish::file_sha256(&u.source).unwrap();
        assert_eq!(head.sha256.as_deref(), Some(sha.as_str()), "{}", u.key);
        assert_eq!(head.content_type.as_deref(), Some(u.content_type.as_str()));
        assert_eq!(
            head.cache_control.as_deref(),
            Some(u.cache_control.as_str())
        );
    }
    assert_eq!(store.head("nothing/here").unwrap(), None);
    assert_eq!(store.get("nothing/here").unwrap(), None);
    let mut listed = store.list("").unwrap();
    let mut keys: Vec<String> = uploads.iter().map(|u| u.key.clone()).collect();
    listed.sort();
    keys.sort();
    assert_eq!(listed, keys);
    assert_eq!(
        store
            .head("audio/init.mp4")
            .unwrap()
            .unwrap()
            .content_type
            .as_deref(),
        Some("audio/mp4")
    );
    // Nothing changed: nothing goes up.
    let r = publish(&store, &uploads, &mut journal, &opts, &mut |_| {}).unwrap();
    assert_eq!((r.uploaded, r.skipped), (0, uploads.len()));

    // A second title; the server is killed after a few objects have landed.
    let store2 = S3Store::new("media", "titles/t2", &options(port)).unwrap();
    let server = Arc::new(std::sync::Mutex::new(Some(server)));
    let landed = Arc::new(AtomicUsize::new(0));
    let err = {
        let server = server.clone();
        let landed = landed.clone();
        publish(&store2, &uploads, &mut journal, &opts, &mut move |e| {
            if let reel_publish::PublishEvent::Uploaded { .. } = e {
                if landed.fetch_add(1, Ordering::SeqCst) == 3 {
                    server.lock().unwrap().take(); // kill
                }
            }
        })
        .unwrap_err()
    };
    let text = err.to_string();
    assert!(text.contains("s3://media/titles/t2"), "{text}");
    assert!(!text.contains(SECRET), "no secret in errors");
    // Same data folder, same port: the objects that landed are still there.
    let _server = Server::start_on(&dir.path().join("s3"), port);
    assert!(
        store2.head("manifest.mpd").unwrap().is_none(),
        "no manifest went up early"
    );
    assert!(store2.head("title.json").unwrap().is_none());
    let mut events = 0;
    let r = publish(&store2, &uploads, &mut journal, &opts, &mut |_| events += 1).unwrap();
    assert!(r.skipped >= 4, "{r:?}");
    assert_eq!(r.uploaded + r.skipped, uploads.len());
    for u in &uploads {
        assert_eq!(
            store2.get(&u.key).unwrap().unwrap(),
            std::fs::read(&u.source).unwrap()
        );
    }
}

/// A proxy that answers the first `failures` requests with `503 Slow Down` and passes the rest
/// to the server: S3 throttling, which the server cannot be made to produce (a fault
/// injector, named as such).
fn throttling_proxy(upstream: u16, failures: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let refused = Arc::new(AtomicUsize::new(0));
    let count = refused.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                if count.load(Ordering::SeqCst) < failures {
                    // Read the request head, answer 503 and close.
                    let mut buf = [0u8; 65536];
                    let _ = client.read(&mut buf);
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                    let _ = write!(
                        client,
                        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    // Drain what the client still sends (a body after the head) before closing:
                    // closing with unread bytes makes the kernel reset the connection, and the
                    // client may then see the reset instead of the 503 (a flaky "SlowDown").
                    let _ = client.shutdown(std::net::Shutdown::Write);
                    let _ = client.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                    while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
                    return;
                }
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let up = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
                let _ = up.join();
            });
        }
    });
    (port, refused)
}

#[test]
fn throttling_is_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("s3"));
    S3Store::new("media", "", &options(server.port))
        .unwrap()
        .ensure_bucket()
        .unwrap();
    let (proxy, refused) = throttling_proxy(server.port, 3);
    // Three attempts meet three 503s and give up, saying why ...
    let store = S3Store::new("media", "t", &options(proxy)).unwrap();
    let mut journal = Journal::open(&dir.path().join("j.jsonl")).unwrap();
    let src = dir.path().join("one");
    std::fs::write(&src, b"x").unwrap();
    let one = [Upload::new("x.m4s", &src, Tier::Media, "video/mp4")];
    let e = publish(&store, &one, &mut journal, &Default::default(), &mut |_| {});
    assert!(e.unwrap_err().to_string().contains("SlowDown"));
    assert_eq!(refused.load(Ordering::SeqCst), 3);
    // ... five attempts get through the next three.
    let (proxy, refused) = throttling_proxy(server.port, 3);
    let mut o = options(proxy);
    o.max_attempts = 5;
    let store = S3Store::new("media", "t", &o).unwrap();
    let uploads: Vec<Upload> = title_files(&dir.path().join("src"))
        .into_iter()
        .filter(|u| u.key.ends_with(".m4s"))
        .take(2)
        .collect();
    let opts = PublishOptions {
        parallel: 1,
        cancel: None,
    };
    let r = publish(&store, &uploads, &mut journal, &opts, &mut |_| {}).unwrap();
    assert_eq!(r.uploaded, 2);
    assert_eq!(
        refused.load(Ordering::SeqCst),
        3,
        "three 503s were answered, then retried"
    );
    assert!(store.head(&uploads[0].key).unwrap().is_some());
}

#[test]
fn credentials_are_required_and_never_shown() {
    let mut o = options(1);
    o.access_key_id = None;
    o.secret_access_key = Some("very-secret".into());
    if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        let e = S3Store::new("media", "", &o).unwrap_err().to_string();
        assert!(
            e.contains("AWS_ACCESS_KEY_ID") && !e.contains("very-secret"),
            "{e}"
        );
    }
    let store = S3Store::new("media", "", &options(1)).unwrap();
    assert!(!format!("{store:?}").contains(SECRET));
}

#[test]
fn the_server_checks_each_object_against_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("s3"));
    let store = S3Store::new("media", "t", &options(server.port)).unwrap();
    store.ensure_bucket().unwrap();
    let src = dir.path().join("seg");
    std::fs::write(&src, b"the bytes on disk").unwrap();
    let (other, _) = {
        let p = dir.path().join("other");
        std::fs::write(&p, b"other bytes").unwrap();
        reel_publish::file_sha256(&p).unwrap()
    };
    let meta = reel_publish::ObjectMeta {
        content_type: "video/mp4".into(),
        cache_control: reel_publish::CACHE_IMMUTABLE.into(),
        sha256: other,
        size: 17,
    };
    let e = store
        .put_file("1.m4s", &src, &meta)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1.m4s") && e.contains("BadDigest"), "{e}");
    // (s3s-fs 0.14 keeps the body it refused, where AWS does not; either way the put failed,
    // so the journal does not record it and a re-run sends it again.)
}

#[test]
fn ranged_reads_fetch_only_the_bytes_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("s3"));
    let store = S3Store::new("media", "t", &options(server.port)).unwrap();
    store.ensure_bucket().unwrap();
    let src = dir.path().join("seg");
    let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    std::fs::write(&src, &body).unwrap();
    let (sha256, size) = reel_publish::file_sha256(&src).unwrap();
    let meta = reel_publish::ObjectMeta {
        content_type: "video/mp4".into(),
        cache_control: reel_publish::CACHE_IMMUTABLE.into(),
        sha256,
        size,
    };
    store.put_file("v/1.m4s", &src, &meta).unwrap();
    assert_eq!(
        store.get_range("v/1.m4s", 1000, 1009).unwrap().unwrap(),
        body[1000..=1009].to_vec()
    );
    assert_eq!(
        store.get_range("v/1.m4s", 4990, 4999).unwrap().unwrap(),
        body[4990..].to_vec()
    );
    assert_eq!(store.get_range("v/none.m4s", 0, 9).unwrap(), None);
    // The default (whole object, then the slice) agrees, as a local folder uses it.
    let local = reel_publish::LocalStore::new(&dir.path().join("local")).unwrap();
    local.put_file("v/1.m4s", &src, &meta).unwrap();
    assert_eq!(
        local.get_range("v/1.m4s", 1000, 1009).unwrap().unwrap(),
        body[1000..=1009].to_vec()
    );
}
