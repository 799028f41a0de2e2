//! Finished units in a local folder: one folder per unit, named by its key, made complete
//! under a temporary name and renamed into place; and a journal of every unit finished.

use crate::error::{io_error, UnitError};
use crate::unit::UnitWork;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One track a unit made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitOutput {
    /// The track's ID in the title's plan.
    pub track: u32,
    /// The rendition it belongs to.
    pub name: String,
    /// File name in the unit's folder.
    pub file: String,
    pub bytes: u64,
    pub samples: u64,
}

/// A finished unit: `unit.json` in its folder, and a line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitRecord {
    pub key: String,
    /// The unit as people name it.
    pub unit: String,
    pub work: UnitWork,
    pub outputs: Vec<UnitOutput>,
    /// The thumbnails a video unit took from its decode, when the plan asked for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<UnitPictures>,
    /// The still (poster frame) the plan asked for, from the chunk that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub still: Option<UnitPictures>,
    /// Wall time of the encode.
    pub seconds: f64,
}

/// Pictures a unit took from its decode (thumbnails, or the still): 8-bit I420 pictures of
/// one size, one after another in frame order, in one file of the unit's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitPictures {
    pub file: String,
    pub bytes: u64,
    /// The title's frame each picture was taken from.
    pub frames: Vec<u64>,
    pub width: u32,
    pub height: u32,
}

impl UnitPictures {
    /// File name of a unit's thumbnails.
    pub const THUMBNAILS: &'static str = "thumbnails.i420";
    /// File name of a unit's still.
    pub const STILL: &'static str = "still.i420";
}

impl UnitRecord {
    /// Every file the unit's folder must hold, with its size.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64)> {
        self.outputs
            .iter()
            .map(|o| (o.file.as_str(), o.bytes))
            .chain(
                self.thumbnails
                    .iter()
                    .chain(&self.still)
                    .map(|t| (t.file.as_str(), t.bytes)),
            )
    }
}

const RECORD: &str = "unit.json";
const JOURNAL: &str = "units.jsonl";

/// A folder of finished units.
#[derive(Debug, Clone)]
pub struct UnitStore {
    root: PathBuf,
}

impl UnitStore {
    pub fn open(root: &Path) -> Result<Self, UnitError> {
        std::fs::create_dir_all(root).map_err(io_error(root))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The unit `key`'s record, when it is finished and every file it lists is whole.
    pub fn finished(&self, key: &str) -> Option<UnitRecord> {
        let dir = self.root.join(key);
        let record: UnitRecord =
            serde_json::from_slice(&std::fs::read(dir.join(RECORD)).ok()?).ok()?;
        let whole = record.key == key
            && record.files().all(|(file, bytes)| {
                std::fs::metadata(dir.join(file)).is_ok_and(|m| m.len() == bytes)
            });
        whole.then_some(record)
    }

    /// The file `file` of unit `key`.
    pub fn file(&self, key: &str, file: &str) -> PathBuf {
        self.root.join(key).join(file)
    }

    /// A fresh temporary folder for unit `key`'s files, this run's alone: several runs of
    /// one unit may be under way at once (lanes of one worker, a redelivery), and each must
    /// never see another's files.
    pub fn begin(&self, key: &str) -> Result<Draft, UnitError> {
        let n = DRAFTS.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join(format!(".{key}.tmp-{}-{n}", std::process::id()));
        // The lock first: a sweep removes a draft folder only when it can take its lock.
        let lock_path = lock_of(&path);
        let lock = std::fs::File::create(&lock_path).map_err(io_error(&lock_path))?;
        lock.lock().map_err(io_error(&lock_path))?;
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(io_error(&path))?;
        Ok(Draft { path, _lock: lock })
    }

    /// Makes `draft` unit `record.key`'s folder: the record written and synced first, the
    /// folder renamed into place, then a line in the journal.
    pub fn commit(&self, draft: Draft, record: &UnitRecord) -> Result<(), UnitError> {
        let tmp = draft.path();
        let path = tmp.join(RECORD);
        let bytes = serde_json::to_vec_pretty(record).expect("a unit record serializes");
        std::fs::write(&path, bytes).map_err(io_error(&path))?;
        for (file, _) in record.files() {
            let p = tmp.join(file);
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(io_error(&p))?;
        }
        let dir = self.root.join(&record.key);
        // A folder left by a run that died after renaming but whose files are not whole.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(tmp, &dir).map_err(io_error(&dir))?;
        let journal = self.root.join(JOURNAL);
        let mut line = serde_json::to_vec(&serde_json::json!({
            "key": record.key,
            "unit": record.unit,
            "seconds": record.seconds,
            "pid": std::process::id(),
        }))
        .expect("a journal line serializes");
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal)
            .and_then(|mut f| f.write_all(&line).and_then(|_| f.sync_data()))
            .map_err(io_error(&journal))
    }

    /// The keys of every unit finished in this store, in the order they finished (a key twice
    /// means a unit was encoded twice).
    pub fn journal(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.join(JOURNAL))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["key"].as_str().map(str::to_owned))
            .collect()
    }

    /// Removes the folders of `keys` (their outputs are stitched and recorded elsewhere) and
    /// any draft a killed run left; drafts that runs still write, in this process or
    /// another, stay.
    pub fn remove(&self, keys: &[String]) {
        for k in keys {
            let _ = std::fs::remove_dir_all(self.root.join(k));
        }
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with('.') || !name.contains(".tmp-") {
                continue;
            }
            // A draft folder, or its lock file (alone when its run died after the commit).
            let (folder, lock_path) = match name.strip_suffix(LOCK) {
                Some(folder) => (self.root.join(folder), e.path()),
                None => (e.path(), lock_of(&e.path())),
            };
            // No lock file: a draft of a version that made none, or one whose run died
            // before it locked; either way no run holds it.
            let held = std::fs::OpenOptions::new()
                .write(true)
                .open(&lock_path)
                .is_ok_and(|f| f.try_lock().is_err());
            if !held {
                let _ = std::fs::remove_dir_all(&folder);
                let _ = std::fs::remove_file(&lock_path);
            }
        }
    }
}

/// Drafts begun by this process: each gets its own folder.
static DRAFTS: AtomicU64 = AtomicU64::new(0);

/// A draft's lock file sits beside its folder, so that the folder renamed into place holds
/// only the unit's files.
const LOCK: &str = ".lock";

fn lock_of(draft: &Path) -> PathBuf {
    let mut name = draft.as_os_str().to_owned();
    name.push(LOCK);
    PathBuf::from(name)
}

/// A unit's folder while one run writes it, locked for the run's life. Dropped without a
/// [`UnitStore::commit`], it is removed: a failed run leaves nothing behind.
#[derive(Debug)]
pub struct Draft {
    path: PathBuf,
    /// Held, never read: the lock is released when the field drops, after `drop` below.
    _lock: std::fs::File,
}

impl Draft {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file `file` in the draft.
    pub fn join(&self, file: impl AsRef<Path>) -> PathBuf {
        self.path.join(file)
    }
}

impl Drop for Draft {
    fn drop(&mut self) {
        // Gone when committed (renamed into place).
        let _ = std::fs::remove_dir_all(&self.path);
        // The lock file goes before the lock (the field drops after this), so that no
        // sweep finds it unheld while the folder is still there.
        let _ = std::fs::remove_file(lock_of(&self.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str) -> UnitRecord {
        UnitRecord {
            key: key.into(),
            unit: "chunk 0".into(),
            work: UnitWork::Audio,
            outputs: vec![UnitOutput {
                track: 1,
                name: "aac".into(),
                file: "aac.mp4".into(),
                bytes: 3,
                samples: 1,
            }],
            thumbnails: None,
            still: None,
            seconds: 1.0,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Two lanes of one worker may run one unit at once (a redelivery): neither sees the
    /// other's files, and the one that commits second still commits a whole unit.
    #[test]
    fn two_runs_of_one_unit_in_one_process_keep_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = UnitStore::open(dir.path()).unwrap();
        let key = "00112233445566778899aabbccddeeff";
        let (a, b) = (store.begin(key).unwrap(), store.begin(key).unwrap());
        assert_ne!(a.path(), b.path());
        std::fs::write(a.join("aac.mp4"), b"aaa").unwrap();
        std::fs::write(b.join("aac.mp4"), b"bbb").unwrap();
        store.commit(a, &record(key)).unwrap();
        assert!(b.join("aac.mp4").exists());
        store.commit(b, &record(key)).unwrap();
        assert_eq!(store.finished(key), Some(record(key)));
        assert_eq!(names(dir.path()), [key, JOURNAL]);
    }

    /// Another unit finishing sweeps up what dead runs left, never a draft being written:
    /// that once deleted a chunk's folder under a second lane of the same worker.
    #[test]
    fn a_sweep_leaves_live_drafts_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = UnitStore::open(dir.path()).unwrap();
        let live = store.begin("live").unwrap();
        std::fs::write(live.join("720p.mp4.partial"), b"x").unwrap();
        // What a killed run leaves: a folder whose lock nobody holds, and one from before
        // drafts had locks.
        let dead = dir.path().join(".dead.tmp-4000000-0");
        std::fs::create_dir(&dead).unwrap();
        std::fs::File::create(lock_of(&dead)).unwrap();
        std::fs::create_dir(dir.path().join(".old.tmp-4000001")).unwrap();
        std::fs::File::create(dir.path().join(".done.tmp-4000002-0.lock")).unwrap();
        store.remove(&[]);
        assert!(live.join("720p.mp4.partial").exists());
        let left = names(dir.path());
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|n| n.starts_with(".live.tmp-")), "{left:?}");
    }

    #[test]
    fn a_draft_dropped_uncommitted_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = UnitStore::open(dir.path()).unwrap();
        let draft = store.begin("k").unwrap();
        std::fs::write(draft.join("a.mp4"), b"x").unwrap();
        drop(draft);
        assert!(names(dir.path()).is_empty());
    }
}
