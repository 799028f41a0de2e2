//! Multipart uploads in progress, written down so that a later run can abort the ones a killed
//! process left open. S3 keeps an unfinished multipart upload (and bills its parts) until it is
//! completed or aborted; only its client knows its id.

use crate::{io_error, PublishError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One line of the ledger: an upload started, or ended (completed or aborted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingUpload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub ended: bool,
}

/// An append-only JSON-lines file of multipart uploads started and ended.
#[derive(Debug)]
pub(crate) struct PendingLedger {
    path: PathBuf,
    lock: Mutex<()>,
}

impl PendingLedger {
    pub fn new(path: &Path) -> PendingLedger {
        PendingLedger {
            path: path.to_path_buf(),
            lock: Mutex::new(()),
        }
    }

    fn append(&self, entry: &PendingUpload) -> Result<(), PublishError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        let mut line = serde_json::to_vec(entry).expect("entries serialize");
        line.push(b'\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(&line))
            .map_err(io_error(&self.path))
    }

    /// Records an upload before its first part goes up.
    pub fn started(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), PublishError> {
        self.append(&PendingUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            ended: false,
        })
    }

    /// Records that an upload was completed or aborted.
    pub fn ended(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), PublishError> {
        self.append(&PendingUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            ended: true,
        })
    }

    /// Uploads started and not ended. Lines that do not parse (a line cut short by a kill)
    /// are skipped: the upload they named, if any, is the lifecycle rule's to clean.
    pub fn open_uploads(&self) -> Result<Vec<PendingUpload>, PublishError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&self.path)(e)),
        };
        let mut open: Vec<PendingUpload> = Vec::new();
        for entry in text
            .lines()
            .filter_map(|l| serde_json::from_str::<PendingUpload>(l).ok())
        {
            if entry.ended {
                open.retain(|o| o.upload_id != entry.upload_id);
            } else {
                open.push(entry);
            }
        }
        Ok(open)
    }

    /// Rewrites the ledger with only `still_open` (through a temporary file).
    pub fn keep_only(&self, still_open: &[PendingUpload]) -> Result<(), PublishError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = Vec::new();
        for e in still_open {
            text.extend(serde_json::to_vec(e).expect("entries serialize"));
            text.push(b'\n');
        }
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, &text).map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io_error(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_uploads_are_those_started_and_not_ended() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = PendingLedger::new(&dir.path().join("w/multipart.jsonl"));
        assert!(ledger.open_uploads().unwrap().is_empty());
        ledger.started("b", "t/a.mp4", "1").unwrap();
        ledger.started("b", "t/b.mp4", "2").unwrap();
        ledger.ended("b", "t/a.mp4", "1").unwrap();
        ledger.started("b", "t/c.mp4", "3").unwrap();
        // A kill in the middle of a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("w/multipart.jsonl"))
            .unwrap();
        f.write_all(b"{\"bucket\":\"b\",\"key\":\"t/d").unwrap();
        let open: Vec<String> = ledger
            .open_uploads()
            .unwrap()
            .into_iter()
            .map(|u| u.upload_id)
            .collect();
        assert_eq!(open, ["2", "3"]);
        let keep = ledger.open_uploads().unwrap()[1..].to_vec();
        ledger.keep_only(&keep).unwrap();
        assert_eq!(ledger.open_uploads().unwrap(), keep);
    }
}
