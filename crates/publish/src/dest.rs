//! Where a title is published: `file://PATH` (or a plain path) or `s3://bucket/prefix`.

use crate::{LocalStore, ObjectStore, PublishError, S3Store};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A parsed destination URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local folder.
    Folder(PathBuf),
    /// A bucket and a key prefix (no leading or trailing `/`; may be empty).
    S3 { bucket: String, prefix: String },
}

/// How to reach an S3 (or S3-compatible) server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Options {
    /// An S3-compatible server's URL (e.g. `http://127.0.0.1:9000`); AWS when unset.
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    /// Attempts per request, with exponential backoff on throttling, 5xx and dropped
    /// connections.
    pub max_attempts: u32,
    /// Objects at least this large go up in parts.
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// Create the bucket when [`Destination::open`] finds it missing (test servers, demos).
    pub create_bucket: bool,
    /// Credentials: from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` when unset. Never
    /// written to logs or messages.
    #[serde(skip_serializing)]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing)]
    pub secret_access_key: Option<String>,
    /// A file (in the caller's work folder) recording multipart uploads in progress, so that
    /// the next publish aborts those a killed process left open. Unset: an upload is aborted
    /// only when the client sees an error, and a bucket lifecycle rule must clean up after
    /// kills.
    #[serde(skip)]
    pub pending_uploads: Option<std::path::PathBuf>,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: "us-east-1".into(),
            path_style: false,
            max_attempts: 5,
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            create_bucket: false,
            access_key_id: None,
            secret_access_key: None,
            pending_uploads: None,
        }
    }
}

impl S3Options {
    /// Options for the server at `endpoint` (AWS when `None`) in `region` (the default when
    /// `None`), with path-style addressing when `path_style` says so and otherwise whenever
    /// an endpoint is given: S3-compatible servers at an endpoint almost always want it.
    ///
    /// ```
    /// use reel_publish::S3Options;
    /// let local = S3Options::at(Some("http://127.0.0.1:9000".into()), None, None);
    /// assert!(local.path_style);
    /// assert_eq!(local.region, S3Options::default().region);
    /// assert!(!S3Options::at(None, Some("eu-west-1".into()), None).path_style);
    /// assert!(!S3Options::at(Some("http://s3".into()), None, Some(false)).path_style);
    /// ```
    pub fn at(endpoint: Option<String>, region: Option<String>, path_style: Option<bool>) -> Self {
        let defaults = S3Options::default();
        S3Options {
            path_style: path_style.unwrap_or(endpoint.is_some()),
            endpoint,
            region: region.unwrap_or(defaults.region.clone()),
            ..defaults
        }
    }
}

impl Destination {
    /// Parses `file://PATH`, `s3://bucket[/prefix]` or a plain path.
    ///
    /// ```
    /// use reel_publish::Destination;
    /// assert_eq!(
    ///     Destination::parse("s3://media/titles/t1/").unwrap(),
    ///     Destination::S3 { bucket: "media".into(), prefix: "titles/t1".into() }
    /// );
    /// assert_eq!(Destination::parse("file://out/t1").unwrap(), Destination::Folder("out/t1".into()));
    /// assert!(Destination::parse("ftp://x").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Destination, PublishError> {
        let bad = |why: &str| PublishError::BadDestination {
            url: url.to_string(),
            why: why.to_string(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid_bucket {
                return Err(bad(
                    "the bucket name must be 3-63 characters of a-z, 0-9, '-' and '.'",
                ));
            }
            let prefix = prefix.trim_matches('/').to_string();
            if !prefix.is_empty() {
                crate::check_key(&prefix).map_err(|e| bad(&e.to_string()))?;
            }
            return Ok(Destination::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad("no folder after file://"));
            }
            return Ok(Destination::Folder(PathBuf::from(path)));
        }
        if url.contains("://") {
            return Err(bad("use file://PATH or s3://bucket/prefix"));
        }
        if url.is_empty() {
            return Err(bad("empty"));
        }
        Ok(Destination::Folder(PathBuf::from(url)))
    }

    /// Opens the store (creating a local folder; for S3, no request is made unless
    /// `s3.create_bucket` asks for the bucket to be made when missing).
    pub fn open(&self, s3: &S3Options) -> Result<Box<dyn ObjectStore>, PublishError> {
        Ok(match self {
            Destination::Folder(p) => Box::new(LocalStore::new(p)?),
            Destination::S3 { bucket, prefix } => {
                let store = S3Store::new(bucket, prefix, s3)?;
                if s3.create_bucket {
                    store.ensure_bucket()?;
                }
                Box::new(store)
            }
        })
    }
}
