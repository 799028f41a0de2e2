//! Ordered, parallel, resumable publishing of a set of files.

use crate::{file_sha256, Journal, JournalEntry, ObjectMeta, ObjectStore, PublishError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Segments and init segments never change once published.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Manifests may be replaced (a re-published title): short-lived.
pub const CACHE_MANIFEST: &str = "public, max-age=60";
/// The title record is read by the catalog: always revalidated.
pub const CACHE_RECORD: &str = "no-cache";

/// When an object may go up: every object of a tier is in place before the next tier starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Init segments, media segments, single-file tracks, posters: what manifests point at.
    Media,
    /// HLS media and I-frame playlists: what the master playlist points at.
    Playlist,
    /// The DASH MPD and the HLS master playlist.
    Manifest,
    /// The title record for the catalog, last: its presence means the title is complete.
    Record,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Media, Tier::Playlist, Tier::Manifest, Tier::Record];

    fn cache_control(self) -> &'static str {
        match self {
            Tier::Media => CACHE_IMMUTABLE,
            Tier::Playlist | Tier::Manifest => CACHE_MANIFEST,
            Tier::Record => CACHE_RECORD,
        }
    }
}

/// One file to publish.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub source: PathBuf,
    pub tier: Tier,
    pub content_type: String,
    pub cache_control: String,
}

impl Upload {
    /// An upload with the tier's cache policy.
    pub fn new(key: &str, source: &Path, tier: Tier, content_type: &str) -> Upload {
        Upload {
            key: key.to_string(),
            source: source.to_path_buf(),
            tier,
            content_type: content_type.to_string(),
            cache_control: tier.cache_control().to_string(),
        }
    }
}

/// The content type of a published file, by its name (`audio` for an audio track's media).
pub fn content_type_for(key: &str, audio: bool) -> &'static str {
    let ext = key.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "mpd" => "application/dash+xml",
        "m3u8" => "application/vnd.apple.mpegurl",
        "m4s" | "mp4" | "cmfv" | "cmfa" | "m4a" | "m4v" if audio => "audio/mp4",
        "m4s" | "mp4" | "cmfv" | "m4v" => "video/mp4",
        "cmfa" | "m4a" => "audio/mp4",
        "json" => "application/json",
        "xml" | "cpix" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "vtt" => "text/vtt",
        _ => "application/octet-stream",
    }
}

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Uploads in flight at once.
    pub parallel: usize,
    /// Set to stop: uploads in flight finish, no new one starts, the call returns
    /// [`PublishError::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            parallel: 4,
            cancel: None,
        }
    }
}

/// Progress of a publish.
#[derive(Debug, Clone)]
pub enum PublishEvent {
    /// Objects and bytes to look at in all.
    Planned {
        objects: usize,
        bytes: u64,
    },
    Uploaded {
        key: String,
        size: u64,
    },
    /// Already in place with the same checksum (by the journal).
    Skipped {
        key: String,
        size: u64,
    },
    /// Every object of a tier is in place.
    TierDone(Tier),
}

/// What a publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub uploaded: usize,
    pub skipped: usize,
    pub bytes_uploaded: u64,
}

/// Publishes `uploads` to `store` tier by tier (see [`Tier`]), `opts.parallel` at a time
/// within a tier, recording each object in `journal` once it is in place and skipping those
/// the journal already has with the same checksum. The first failure stops the publish before
/// the next tier: no manifest goes up unless everything it can point at is up.
pub fn publish(
    store: &dyn ObjectStore,
    uploads: &[Upload],
    journal: &mut Journal,
    opts: &PublishOptions,
    on_event: &mut dyn FnMut(PublishEvent),
) -> Result<PublishReport, PublishError> {
    let mut seen = std::collections::HashSet::new();
    let mut bytes = 0u64;
    for u in uploads {
        crate::check_key(&u.key)?;
        if !seen.insert(u.key.as_str()) {
            return Err(PublishError::BadKey {
                key: u.key.clone(),
                why: "given twice",
            });
        }
        bytes += std::fs::metadata(&u.source)
            .map_err(crate::io_error(&u.source))?
            .len();
    }
    store.remove_partials()?;
    on_event(PublishEvent::Planned {
        objects: uploads.len(),
        bytes,
    });
    let location = store.location();
    let mut report = PublishReport::default();
    let journal = Mutex::new(journal);
    let cancelled = || {
        opts.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    };
    for tier in Tier::ALL {
        let batch: Vec<&Upload> = uploads.iter().filter(|u| u.tier == tier).collect();
        if batch.is_empty() {
            continue;
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<PublishError>> = Mutex::new(None);
        let (tx, rx) = std::sync::mpsc::channel::<PublishEvent>();
        std::thread::scope(|scope| {
            for _ in 0..opts.parallel.clamp(1, batch.len()) {
                let tx = tx.clone();
                let (next, failed, first_error, journal) = (&next, &failed, &first_error, &journal);
                let batch = &batch;
                let location = &location;
                scope.spawn(move || loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    if cancelled() {
                        failed.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .expect("error slot")
                            .get_or_insert(PublishError::Cancelled);
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(u) = batch.get(i) else { return };
                    match upload_one(store, location, u, journal) {
                        Ok(event) => {
                            let _ = tx.send(event);
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            first_error.lock().expect("error slot").get_or_insert(e);
                            return;
                        }
                    }
                });
            }
            drop(tx);
            for event in rx.iter() {
                match &event {
                    PublishEvent::Uploaded { size, .. } => {
                        report.uploaded += 1;
                        report.bytes_uploaded += size;
                    }
                    PublishEvent::Skipped { .. } => report.skipped += 1,
                    _ => {}
                }
                on_event(event);
            }
        });
        if let Some(e) = first_error.into_inner().expect("error slot") {
            let _ = journal.with(|j| j.sync());
            return Err(e);
        }
        on_event(PublishEvent::TierDone(tier));
    }
    journal.into_inner().expect("journal").sync()?;
    Ok(report)
}

/// A journal shared by upload threads: borrowed for one publish, or owned by early uploads.
trait SharedJournal: Sync {
    fn with<R>(&self, f: impl FnOnce(&mut Journal) -> R) -> R;
}

impl SharedJournal for Mutex<&mut Journal> {
    fn with<R>(&self, f: impl FnOnce(&mut Journal) -> R) -> R {
        f(&mut self.lock().expect("journal"))
    }
}

impl SharedJournal for Mutex<Journal> {
    fn with<R>(&self, f: impl FnOnce(&mut Journal) -> R) -> R {
        f(&mut self.lock().expect("journal"))
    }
}

fn upload_one(
    store: &dyn ObjectStore,
    location: &str,
    u: &Upload,
    journal: &impl SharedJournal,
) -> Result<PublishEvent, PublishError> {
    let (sha256, size) = file_sha256(&u.source)?;
    if journal.with(|j| j.has(location, &u.key, &sha256, size)) {
        return Ok(PublishEvent::Skipped {
            key: u.key.clone(),
            size,
        });
    }
    let meta = ObjectMeta {
        content_type: u.content_type.clone(),
        cache_control: u.cache_control.clone(),
        sha256: sha256.clone(),
        size,
    };
    store.put_file(&u.key, &u.source, &meta)?;
    journal.with(|j| {
        j.record(JournalEntry {
            location: location.to_string(),
            key: u.key.clone(),
            sha256,
            size,
        })
    })?;
    Ok(PublishEvent::Uploaded {
        key: u.key.clone(),
        size,
    })
}

/// Media objects uploaded while the title is still being made (segments as the packager
/// writes them), on `parallel` threads of their own, ahead of the [`publish`] of the whole
/// title, which then finds them in the journal and skips them.
///
/// Only [`Tier::Media`] objects are taken: nothing here can expose a manifest early. A
/// failure stops the early uploads (the rest wait for the final publish, which retries them
/// and reports errors); it is reported by [`finish`](EarlyUploads::finish), not raised.
///
/// ```
/// use reel_publish::{Destination, EarlyUploads, Journal, Tier, Upload};
/// let dir = tempfile::tempdir().unwrap();
/// let store = Destination::parse(&format!("file://{}", dir.path().join("out").display()))
///     .unwrap()
///     .open(&Default::default())
///     .unwrap();
/// let journal = Journal::open(&dir.path().join("published.jsonl")).unwrap();
/// let early = EarlyUploads::start(store.into(), journal, 2);
/// let seg = dir.path().join("1.m4s");
/// std::fs::write(&seg, b"segment").unwrap();
/// early.send(Upload::new("720p/1.m4s", &seg, Tier::Media, "video/mp4"));
/// let (journal, report) = early.finish();
/// assert_eq!(report.uploaded, 1);
/// assert!(journal.has(&dir.path().join("out").canonicalize().map(|p| format!("file://{}", p.display())).unwrap(), "720p/1.m4s",
///     &reel_publish::file_sha256(&seg).unwrap().0, 7));
/// ```
pub struct EarlyUploads {
    tx: Option<std::sync::mpsc::Sender<Upload>>,
    events: std::sync::mpsc::Receiver<PublishEvent>,
    journal: Option<Arc<Mutex<Journal>>>,
    /// Objects and bytes uploaded.
    done: Arc<(AtomicUsize, std::sync::atomic::AtomicU64)>,
    error: Arc<Mutex<Option<PublishError>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What early uploads did.
#[derive(Debug, Default)]
pub struct EarlyReport {
    pub uploaded: usize,
    pub bytes_uploaded: u64,
    /// The failure that stopped them, if one did.
    pub error: Option<PublishError>,
    /// Events that [`EarlyUploads::events`] had not handed out yet.
    pub events: Vec<PublishEvent>,
}

impl EarlyUploads {
    /// Starts `parallel` upload threads for `store`, recording in `journal`.
    pub fn start(store: Arc<dyn ObjectStore>, journal: Journal, parallel: usize) -> EarlyUploads {
        let (tx, rx) = std::sync::mpsc::channel::<Upload>();
        let (etx, events) = std::sync::mpsc::channel();
        let rx = Arc::new(Mutex::new(rx));
        let journal = Arc::new(Mutex::new(journal));
        let error: Arc<Mutex<Option<PublishError>>> = Arc::default();
        let done: Arc<(AtomicUsize, std::sync::atomic::AtomicU64)> = Arc::default();
        let location = store.location();
        let threads = (0..parallel.max(1))
            .map(|_| {
                let (rx, etx, journal, error, store, location, done) = (
                    rx.clone(),
                    etx.clone(),
                    journal.clone(),
                    error.clone(),
                    store.clone(),
                    location.clone(),
                    done.clone(),
                );
                std::thread::Builder::new()
                    .name("early-upload".into())
                    .spawn(move || loop {
                        let Ok(u) = rx.lock().expect("queue").recv() else {
                            return;
                        };
                        if error.lock().expect("error slot").is_some() {
                            continue; // stopped: left for the final publish
                        }
                        match crate::check_key(&u.key)
                            .and_then(|()| upload_one(store.as_ref(), &location, &u, &*journal))
                        {
                            Ok(e) => {
                                if let PublishEvent::Uploaded { size, .. } = &e {
                                    done.0.fetch_add(1, Ordering::Relaxed);
                                    done.1.fetch_add(*size, Ordering::Relaxed);
                                }
                                let _ = etx.send(e);
                            }
                            Err(e) => {
                                error.lock().expect("error slot").get_or_insert(e);
                            }
                        }
                    })
                    .expect("spawning an upload thread")
            })
            .collect();
        EarlyUploads {
            tx: Some(tx),
            events,
            journal: Some(journal),
            done,
            error,
            threads,
        }
    }

    /// Queues a media object (objects of other tiers are left for the final publish).
    pub fn send(&self, upload: Upload) {
        if upload.tier == Tier::Media {
            if let Some(tx) = &self.tx {
                let _ = tx.send(upload);
            }
        }
    }

    /// What has happened since the last call, without waiting.
    pub fn events(&self) -> Vec<PublishEvent> {
        self.events.try_iter().collect()
    }

    /// Waits for the queued uploads; gives the journal back, with what was done (and the
    /// events not yet taken by [`events`](EarlyUploads::events)).
    pub fn finish(mut self) -> (Journal, EarlyReport) {
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let report = EarlyReport {
            uploaded: self.done.0.load(Ordering::Relaxed),
            bytes_uploaded: self.done.1.load(Ordering::Relaxed),
            error: self.error.lock().expect("error slot").take(),
            events: self.events.try_iter().collect(),
        };
        let journal = self.journal.take().expect("finished once");
        let journal = match Arc::try_unwrap(journal) {
            Ok(j) => j.into_inner().expect("journal"),
            Err(_) => unreachable!("every upload thread has ended"),
        };
        let _ = journal.sync();
        (journal, report)
    }
}

impl Drop for EarlyUploads {
    /// Stops taking uploads and waits for those in flight (a cancelled run).
    fn drop(&mut self) {
        drop(self.tx.take());
        self.error
            .lock()
            .expect("error slot")
            .get_or_insert(PublishError::Cancelled);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalStore, StoredObject};

    /// A store that records the order objects arrive in and fails on one key: a fault the
    /// local folder cannot be made to produce (a mock, named as such).
    struct OrderRecordingStore {
        inner: LocalStore,
        order: Mutex<Vec<String>>,
        fail_on: Option<String>,
    }

    impl ObjectStore for OrderRecordingStore {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn put_file(
            &self,
            key: &str,
            source: &Path,
            meta: &ObjectMeta,
        ) -> Result<(), PublishError> {
            if self.fail_on.as_deref() == Some(key) {
                return Err(PublishError::Store {
                    location: self.location(),
                    operation: "put",
                    key: key.into(),
                    detail: "injected".into(),
                });
            }
            self.inner.put_file(key, source, meta)?;
            self.order.lock().unwrap().push(key.to_string());
            Ok(())
        }
        fn head(&self, key: &str) -> Result<Option<StoredObject>, PublishError> {
            self.inner.head(key)
        }
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PublishError> {
            self.inner.get(key)
        }
        fn list(&self, prefix: &str) -> Result<Vec<String>, PublishError> {
            self.inner.list(prefix)
        }
    }

    fn files(dir: &Path) -> Vec<Upload> {
        let mut v = Vec::new();
        let mut add = |key: &str, tier: Tier| {
            let p = dir.join(key.replace('/', "_"));
            std::fs::write(&p, key.as_bytes()).unwrap();
            v.push(Upload::new(key, &p, tier, content_type_for(key, false)));
        };
        add("t/manifest.mpd", Tier::Manifest);
        add("t/title.json", Tier::Record);
        add("t/master.m3u8", Tier::Manifest);
        add("t/720p.m3u8", Tier::Playlist);
        for i in 1..=20 {
            add(&format!("t/720p/{i}.m4s"), Tier::Media);
        }
        add("t/720p/init.mp4", Tier::Media);
        v
    }

    #[test]
    fn tiers_in_order_manifests_never_early_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let uploads = files(&src);
        let store = OrderRecordingStore {
            inner: LocalStore::new(&dir.path().join("out")).unwrap(),
            order: Mutex::new(Vec::new()),
            fail_on: Some("t/720p/13.m4s".into()),
        };
        let mut journal = Journal::open(&dir.path().join("j.jsonl")).unwrap();
        let opts = PublishOptions {
            parallel: 3,
            cancel: None,
        };
        let err = publish(&store, &uploads, &mut journal, &opts, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("13.m4s"), "{err}");
        let landed = store.order.lock().unwrap().clone();
        assert!(landed
            .iter()
            .all(|k| k.ends_with(".m4s") || k.ends_with("init.mp4")));
        assert!(store.inner.head("t/manifest.mpd").unwrap().is_none());
        // The fault is gone: the re-run uploads only what is missing.
        let store = OrderRecordingStore {
            fail_on: None,
            order: Mutex::new(Vec::new()),
            ..store
        };
        let mut events = Vec::new();
        let r = publish(&store, &uploads, &mut journal, &opts, &mut |e| {
            events.push(e)
        })
        .unwrap();
        assert_eq!(r.uploaded + r.skipped, uploads.len());
        assert_eq!(r.skipped, landed.len());
        let order = store.order.lock().unwrap().clone();
        let pos = |k: &str| order.iter().position(|o| o == k).unwrap();
        let last_media = order
            .iter()
            .rposition(|k| k.ends_with(".m4s") || k.ends_with(".mp4"))
            .unwrap();
        assert!(last_media < pos("t/720p.m3u8"));
        assert!(pos("t/720p.m3u8") < pos("t/master.m3u8"));
        assert!(pos("t/manifest.mpd") < pos("t/title.json"));
        assert_eq!(*order.last().unwrap(), "t/title.json");
        assert!(matches!(
            events[0],
            PublishEvent::Planned { objects: 25, .. }
        ));
        // Once more: nothing to do.
        let r = publish(&store, &uploads, &mut journal, &opts, &mut |_| {}).unwrap();
        assert_eq!((r.uploaded, r.skipped), (0, 25));
        // A changed file goes up again.
        std::fs::write(&uploads[0].source, b"changed").unwrap();
        let r = publish(&store, &uploads, &mut journal, &opts, &mut |_| {}).unwrap();
        assert_eq!(r.uploaded, 1);
        assert_eq!(
            store.inner.get("t/manifest.mpd").unwrap().unwrap(),
            b"changed"
        );
    }

    #[test]
    fn cancel_stops_before_anything_more_goes_up() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = files(dir.path());
        let store = LocalStore::new(&dir.path().join("out")).unwrap();
        let mut journal = Journal::open(&dir.path().join("j.jsonl")).unwrap();
        let cancel = Arc::new(AtomicBool::new(true));
        let opts = PublishOptions {
            parallel: 2,
            cancel: Some(cancel),
        };
        let err = publish(&store, &uploads, &mut journal, &opts, &mut |_| {}).unwrap_err();
        assert!(matches!(err, PublishError::Cancelled));
        assert!(store.list("").unwrap().is_empty());
    }

    #[test]
    fn bad_keys_and_duplicates_are_refused_before_any_upload() {
        let dir = tempfile::tempdir().unwrap();
        let mut uploads = files(dir.path());
        uploads.push(uploads[3].clone());
        let store = LocalStore::new(&dir.path().join("out")).unwrap();
        let mut journal = Journal::open(&dir.path().join("j.jsonl")).unwrap();
        let e = publish(
            &store,
            &uploads,
            &mut journal,
            &Default::default(),
            &mut |_| {},
        );
        assert!(e.unwrap_err().to_string().contains("given twice"));
        assert!(store.list("").unwrap().is_empty());
    }

    #[test]
    fn content_types_by_name() {
        assert_eq!(
            content_type_for("a/manifest.mpd", false),
            "application/dash+xml"
        );
        assert_eq!(
            content_type_for("a/master.m3u8", false),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(content_type_for("a/720p/3.m4s", false), "video/mp4");
        assert_eq!(content_type_for("a/audio/init.mp4", true), "audio/mp4");
        assert_eq!(content_type_for("a/title.json", false), "application/json");
        assert_eq!(
            content_type_for("a/blob", false),
            "application/octet-stream"
        );
    }
}
