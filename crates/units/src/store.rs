//! Finished units in a local folder: one folder per unit, named by its key, made complete
//! under a temporary name and renamed into place; and a journal of every unit finished.

use crate::error::{io_error, UnitError};
use crate::unit::UnitWork;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Wall time of the encode.
    pub seconds: f64,
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
            && record
                .outputs
                .iter()
                .all(|o| std::fs::metadata(dir.join(&o.file)).is_ok_and(|m| m.len() == o.bytes));
        whole.then_some(record)
    }

    /// The file `file` of unit `key`.
    pub fn file(&self, key: &str, file: &str) -> PathBuf {
        self.root.join(key).join(file)
    }

    /// A fresh temporary folder for unit `key`'s files.
    pub fn begin(&self, key: &str) -> Result<PathBuf, UnitError> {
        let tmp = self.root.join(format!(".{key}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        Ok(tmp)
    }

    /// Makes `tmp` unit `record.key`'s folder: the record written and synced first, the folder
    /// renamed into place, then a line in the journal.
    pub fn commit(&self, tmp: &Path, record: &UnitRecord) -> Result<(), UnitError> {
        let path = tmp.join(RECORD);
        let bytes = serde_json::to_vec_pretty(record).expect("a unit record serializes");
        std::fs::write(&path, bytes).map_err(io_error(&path))?;
        for o in &record.outputs {
            let p = tmp.join(&o.file);
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
    /// any temporary folder a killed run left.
    pub fn remove(&self, keys: &[String]) {
        for k in keys {
            let _ = std::fs::remove_dir_all(self.root.join(k));
        }
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.contains(".tmp-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}
