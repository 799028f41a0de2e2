//! What has been published, one JSON line per object, appended as objects land: a re-run
//! reads it to skip objects already in place with the same checksum.

use crate::{io_error, PublishError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One published object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The store's location (`ObjectStore::location`).
    pub location: String,
    pub key: String,
    pub sha256: String,
    pub size: u64,
}

/// An append-only record of published objects.
///
/// A line cut short by a crash (no final newline) is ignored; any other line that does not
/// parse is an error naming the file and line.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    entries: HashMap<(String, String), (String, u64)>,
}

impl Journal {
    /// Opens (or creates) the journal at `path`.
    pub fn open(path: &Path) -> Result<Journal, PublishError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        let mut entries = HashMap::new();
        let mut valid_len = 0usize;
        match std::fs::read(path) {
            Ok(bytes) => {
                let mut start = 0;
                for (n, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
                    let end = start + line.len();
                    if !line.ends_with(b"\n") {
                        break; // cut short by a crash: dropped below
                    }
                    let e: JournalEntry =
                        serde_json::from_slice(&line[..line.len() - 1]).map_err(|e| {
                            PublishError::Journal {
                                path: path.to_path_buf(),
                                line: n + 1,
                                detail: e.to_string(),
                            }
                        })?;
                    entries.insert((e.location, e.key), (e.sha256, e.size));
                    start = end;
                    valid_len = end;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path)(e)),
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error(path))?;
        // Drop a partial last line so that the next entry starts on a line of its own.
        if file.metadata().map_err(io_error(path))?.len() != valid_len as u64 {
            file.set_len(valid_len as u64).map_err(io_error(path))?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    /// Whether `key` was published to `location` with this checksum and size.
    pub fn has(&self, location: &str, key: &str, sha256: &str, size: u64) -> bool {
        self.entries
            .get(&(location.to_string(), key.to_string()))
            .is_some_and(|(s, n)| s == sha256 && *n == size)
    }

    /// Records a published object (appended and flushed to the OS at once).
    pub fn record(&mut self, entry: JournalEntry) -> Result<(), PublishError> {
        let mut line = serde_json::to_vec(&entry).expect("entries serialize");
        line.push(b'\n');
        self.file.write_all(&line).map_err(io_error(&self.path))?;
        self.entries
            .insert((entry.location, entry.key), (entry.sha256, entry.size));
        Ok(())
    }

    /// Objects recorded for `location`.
    pub fn count(&self, location: &str) -> usize {
        self.entries.keys().filter(|(l, _)| l == location).count()
    }

    /// Flushes the journal to disk.
    pub fn sync(&self) -> Result<(), PublishError> {
        self.file.sync_all().map_err(io_error(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, sha: &str) -> JournalEntry {
        JournalEntry {
            location: "file:///x".into(),
            key: key.into(),
            sha256: sha.into(),
            size: 3,
        }
    }

    #[test]
    fn survives_a_torn_last_line_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        let mut j = Journal::open(&p).unwrap();
        j.record(entry("a", "11")).unwrap();
        j.record(entry("b", "22")).unwrap();
        drop(j);
        // A crash in the middle of a third line.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"location\":\"file:///x\",\"ke").unwrap();
        drop(f);
        let mut j = Journal::open(&p).unwrap();
        assert!(j.has("file:///x", "a", "11", 3));
        assert!(!j.has("file:///x", "a", "12", 3), "another checksum");
        assert!(!j.has("s3://b", "a", "11", 3), "another store");
        j.record(entry("c", "33")).unwrap();
        drop(j);
        let j = Journal::open(&p).unwrap();
        assert_eq!(j.count("file:///x"), 3);
        // A damaged line in the middle is an error that says where.
        std::fs::write(&p, "not json\n").unwrap();
        let err = Journal::open(&p).unwrap_err().to_string();
        assert!(err.contains("j.jsonl") && err.contains("line 1"), "{err}");
    }
}
