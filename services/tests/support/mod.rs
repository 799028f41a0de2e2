//! Test support shared by the services tests: a private PostgreSQL server and a small
//! published title with its keys.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A PostgreSQL server of our own (Debian's binaries, a temporary data folder, trust
/// authentication on 127.0.0.1), started once per test binary. `REEL_TEST_DATABASE_URL`
/// points the tests at an existing server instead.
pub struct Postgres {
    pub base_url: String,
    _dir: Option<tempfile::TempDir>,
    /// The watchdog shell that stops the server when this process ends.
    _watchdog: Option<Child>,
}

fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort();
    let Some(v) = versions.last() else {
        panic!("PostgreSQL is not installed (apt-get install postgresql); scripts/setup.sh installs it")
    };
    v.join("bin").join(name)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root (it refuses root).
fn pg_command(name: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(name));
        c
    } else {
        Command::new(pg_bin(name))
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    fn start() -> Postgres {
        if let Ok(url) = std::env::var("REEL_TEST_DATABASE_URL") {
            return Postgres {
                base_url: url.trim_end_matches('/').to_string(),
                _dir: None,
                _watchdog: None,
            };
        }
        let dir = tempfile::Builder::new()
            .prefix("reel-pg")
            .tempdir_in("/tmp")
            .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if is_root() {
            // `id -u postgres`, `id -g postgres`: the user Debian's postgresql package makes.
            let id = |flag: &str| -> u32 {
                let out = Command::new("id")
                    .args([flag, "postgres"])
                    .output()
                    .unwrap();
                String::from_utf8(out.stdout)
                    .unwrap()
                    .trim()
                    .parse()
                    .expect("a postgres user (created by Debian's postgresql package)")
            };
            let (uid, gid) = (id("-u"), id("-g"));
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
        }
        let out = pg_command("initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        // A watchdog shell stops the server and removes its folder when this test process
        // ends (statics are never dropped, so nothing else would; each run left 115 MB).
        let prefix = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let bin = pg_bin("postgres");
        let ctl = pg_bin("pg_ctl");
        let script = format!(
            "{prefix}{bin} -D {data} -p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 >/dev/null 2>&1 & \
             while kill -0 {me} 2>/dev/null; do sleep 0.5; done; {prefix}{ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {sock}",
            bin = bin.display(), ctl = ctl.display(), data = data.display(), sock = dir.path().display(), me = std::process::id()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Accepting TCP is not yet accepting queries: wait for pg_isready.
        while !pg_command("pg_isready")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres not ready on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Postgres {
            base_url: format!("postgres://postgres@127.0.0.1:{port}"),
            _dir: Some(dir),
            _watchdog: Some(child),
        }
    }

    /// The shared server, started on first use.
    pub fn shared() -> &'static Postgres {
        static PG: OnceLock<Postgres> = OnceLock::new();
        PG.get_or_init(Postgres::start)
    }

    /// A fresh, empty database on the server: its URL.
    pub fn database(&self, name: &str) -> String {
        let admin = format!("{}/postgres", self.base_url);
        let status = Command::new("psql")
            .args([
                &admin,
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {name}"),
                "-c",
                &format!("CREATE DATABASE {name}"),
            ])
            .stdout(Stdio::null())
            .status()
            .expect("psql runs");
        assert!(status.success(), "could not create database {name}");
        format!("{}/{name}", self.base_url)
    }
}

/// A published title on disk: `title.json`, manifests and a few media objects, with its
/// keys (audio, sd, hd) in a CPIX document.
pub struct Published {
    pub dir: PathBuf,
    pub cpix: String,
    pub keys: reel_drm::KeySet,
}

pub fn publish_title(
    root: &Path,
    id: &str,
    maturity: &str,
    genres: &[&str],
    year: i64,
) -> Published {
    use reel_drm::{KeySet, TrackClass};
    let dir = root.join(id);
    std::fs::create_dir_all(dir.join("720p")).unwrap();
    std::fs::create_dir_all(dir.join("432p")).unwrap();
    std::fs::create_dir_all(dir.join("audio")).unwrap();
    let keys = KeySet::generate(&[TrackClass::Audio, TrackClass::Sd, TrackClass::Hd]).unwrap();
    let kid = |c| {
        let k = keys.for_track(c).unwrap().kid.hex();
        format!(
            "{}-{}-{}-{}-{}",
            &k[..8],
            &k[8..12],
            &k[12..16],
            &k[16..20],
            &k[20..]
        )
    };
    let record = serde_json::json!({
        "id": id, "name": format!("Title {id}"),
        "metadata": { "genres": genres, "year": year, "maturity": maturity,
                      "description": format!("A test title called {id} about lighthouses") },
        "duration": 10.0,
        "renditions": [
            { "name": "720p", "kind": "video", "codec": "avc1.64001f", "width": 1280, "height": 720,
              "bandwidth": 2000000, "average_bandwidth": 1800000, "init": "720p/init.mp4", "segments": 1,
              "key_id": kid(TrackClass::Hd), "key_class": "hd", "predicted_vmaf": 95.0 },
            { "name": "432p", "kind": "video", "codec": "avc1.64001e", "width": 768, "height": 432,
              "bandwidth": 600000, "average_bandwidth": 500000, "init": "432p/init.mp4", "segments": 1,
              "key_id": kid(TrackClass::Sd), "key_class": "sd", "predicted_vmaf": 85.0 },
            { "name": "audio", "kind": "audio", "codec": "mp4a.40.2", "width": null, "height": null,
              "bandwidth": 128000, "average_bandwidth": 128000, "init": "audio/init.mp4", "segments": 1,
              "key_id": kid(TrackClass::Audio), "key_class": "audio", "predicted_vmaf": null,
              "language": "eng", "role": "main" },
            { "name": "audio_eng_description", "kind": "audio", "codec": "mp4a.40.2",
              "width": null, "height": null, "bandwidth": 128000, "average_bandwidth": 128000,
              "init": "audio_eng_description/init.mp4", "segments": 1,
              "key_id": kid(TrackClass::Audio), "key_class": "audio", "predicted_vmaf": null,
              "language": "eng", "role": "description", "title": "English (described)" },
            { "name": "French (CA) [captions]", "kind": "text", "codec": "wvtt", "width": null,
              "height": null, "bandwidth": 1000, "init": "text_fr-CA_captions/init.mp4",
              "segments": 1, "text": { "language": "fr-CA", "kind": "captions" } }
        ],
        "dash": "manifest.mpd", "hls": "master.m3u8", "encryption": "cenc",
        "drm_systems": ["clearkey"], "ladder": "fixed", "analysis": null, "packaged_at": 0,
        "poster": "poster.jpg"
    });
    std::fs::write(
        dir.join("title.json"),
        serde_json::to_vec_pretty(&record).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("manifest.mpd"), "<MPD/>").unwrap();
    std::fs::write(dir.join("master.m3u8"), "#EXTM3U\n").unwrap();
    std::fs::write(dir.join("poster.jpg"), [0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]).unwrap();
    for r in ["720p", "432p", "audio"] {
        std::fs::write(
            dir.join(r).join("init.mp4"),
            (0..=255u8).collect::<Vec<_>>(),
        )
        .unwrap();
        std::fs::write(dir.join(r).join("seg-1.m4s"), vec![7u8; 1000]).unwrap();
    }
    // An object larger than the origin's read chunk (1 MiB), as a single-file rendition is.
    std::fs::write(dir.join("720p").join("single.mp4"), large_object()).unwrap();
    let cpix = reel_drm::cpix_document(&keys, id);
    Published { dir, cpix, keys }
}

/// The bytes of the fixture's large object: 2.5 MiB + 3 of a pattern in which no two nearby
/// chunks are alike, so a misplaced chunk shows.
pub fn large_object() -> Vec<u8> {
    (0..(5u32 << 19) + 3)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}
