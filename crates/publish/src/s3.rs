//! S3 and S3-compatible servers through `aws-sdk-s3`.

use crate::{check_key, io_error, ObjectMeta, ObjectStore, PublishError, S3Options, StoredObject};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use std::path::Path;
use std::time::Duration;

/// The user metadata field that carries an object's SHA-256 (hex), for `head`.
const SHA256_META: &str = "sha256";

/// Objects in one bucket under a key prefix. The SDK is asynchronous; this store runs it on a
/// small runtime of its own so that callers (threads of a pipeline) stay synchronous, and
/// several threads may upload through one store at once.
pub struct S3Store {
    client: aws_sdk_s3::Client,
    runtime: OwnRuntime,
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    multipart_threshold: u64,
    part_size: u64,
    pending: Option<crate::pending::PendingLedger>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl S3Store {
    /// A store for `bucket`/`prefix`. Credentials come from `opts` or the environment.
    pub fn new(bucket: &str, prefix: &str, opts: &S3Options) -> Result<S3Store, PublishError> {
        let location = format!("s3://{bucket}/{prefix}");
        let bad = |why: String| PublishError::BadDestination {
            url: location.clone(),
            why,
        };
        let id = opts
            .access_key_id
            .clone()
            .or_else(|| std::env::var("AWS_ACCESS_KEY_ID").ok())
            .filter(|s| !s.is_empty());
        let secret = opts
            .secret_access_key
            .clone()
            .or_else(|| std::env::var("AWS_SECRET_ACCESS_KEY").ok())
            .filter(|s| !s.is_empty());
        let (Some(id), Some(secret)) = (id, secret) else {
            return Err(bad(
                "S3 needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
            ));
        };
        if opts.part_size < 5 << 20 {
            return Err(bad(format!(
                "part size {} is below S3's minimum of 5 MiB",
                opts.part_size
            )));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("reel-s3")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the S3 client's runtime: {e}")))?;
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(opts.region.clone()))
            .credentials_provider(Credentials::new(id, secret, None, None, "reel"))
            .force_path_style(opts.path_style)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(opts.max_attempts.max(1))
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .timeout_config(
                // A server that takes a request and then says nothing is given up after a
                // minute and the request retried. The read timeout runs from the request's
                // start to the response's headers, and a single request carries at most
                // 16 MiB (the multipart threshold): a minute even at 2.3 Mbit/s. Stalled
                // bodies are the SDK's stalled-stream protection's (on by default).
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(60))
                    .operation_attempt_timeout(Duration::from_secs(300))
                    .build(),
            )
            // Our own SHA-256 goes with every object; no extra CRC pass over the body.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(ep) = &opts.endpoint {
            config = config.endpoint_url(ep);
        }
        let client = aws_sdk_s3::Client::from_conf(config.build());
        Ok(S3Store {
            client,
            runtime: OwnRuntime(Some(runtime)),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: opts.endpoint.clone(),
            multipart_threshold: opts.multipart_threshold.max(opts.part_size),
            part_size: opts.part_size,
            pending: opts
                .pending_uploads
                .as_deref()
                .map(crate::pending::PendingLedger::new),
        })
    }

    fn full_key(&self, key: &str) -> Result<String, PublishError> {
        check_key(key)?;
        Ok(if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        })
    }

    fn failed(
        &self,
        operation: &'static str,
        key: &str,
        e: impl std::error::Error,
    ) -> PublishError {
        PublishError::Store {
            location: self.location(),
            operation,
            key: key.to_string(),
            detail: DisplayErrorContext(e).to_string(),
        }
    }

    /// GET of the object, or of a `bytes=a-b` range of it; `None` when there is no such key.
    fn fetch(&self, key: &str, range: Option<String>) -> Result<Option<Vec<u8>>, PublishError> {
        let full = self.full_key(key)?;
        self.runtime.block_on(async {
            match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&full)
                .set_range(range)
                .send()
                .await
            {
                Ok(o) => {
                    let bytes = o
                        .body
                        .collect()
                        .await
                        .map_err(|e| self.failed("read", key, e))?;
                    Ok(Some(bytes.into_bytes().to_vec()))
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) => Err(self.failed("get", key, e)),
            }
        })
    }

    /// Creates the bucket if it does not exist (for servers set up by tests and demos).
    pub fn ensure_bucket(&self) -> Result<(), PublishError> {
        self.runtime.block_on(async {
            if self
                .client
                .head_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            match self
                .client
                .create_bucket()
                .bucket(&self.bucket)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error().is_some_and(|s| {
                        s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                    }) =>
                {
                    Ok(())
                }
                Err(e) => Err(self.failed("create bucket", &self.bucket, e)),
            }
        })
    }

    async fn put_multipart(
        &self,
        key: &str,
        full: &str,
        source: &Path,
        meta: &ObjectMeta,
    ) -> Result<(), PublishError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .content_type(&meta.content_type)
            .cache_control(&meta.cache_control)
            .metadata(SHA256_META, &meta.sha256)
            .send()
            .await
            .map_err(|e| self.failed("start multipart upload of", key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        if let Some(p) = &self.pending {
            p.started(&self.bucket, full, &upload_id)?;
        }
        let result = async {
            let mut parts = Vec::new();
            let mut offset = 0u64;
            let mut number = 1;
            while offset < meta.size {
                let len = self.part_size.min(meta.size - offset);
                let digest = range_sha256(source, offset, len)?;
                let body = ByteStream::read_from()
                    .path(source)
                    .offset(offset)
                    .length(Length::Exact(len))
                    .build()
                    .await
                    .map_err(|e| self.failed("read part for", key, e))?;
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(full)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .content_length(len as i64)
                    .content_md5(b64(&digest.1))
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| self.failed("upload part of", key, e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .build(),
                );
                offset += len;
                number += 1;
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.failed("complete multipart upload of", key, e))?;
            Ok(())
        }
        .await;
        let ended = match result {
            Ok(()) => true,
            Err(_) => self.abort(&self.bucket, full, &upload_id).await.is_ok(),
        };
        if let (true, Some(p)) = (ended, &self.pending) {
            p.ended(&self.bucket, full, &upload_id)?;
        }
        result
    }

    async fn abort(
        &self,
        bucket: &str,
        full: &str,
        upload_id: &str,
    ) -> Result<(), aws_sdk_s3::error::SdkError<AbortMultipartUploadError>> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await
            .map(|_| ())
    }
}

/// SHA-256 and MD5 of `len` bytes of a file from `offset` (MD5 for S3's `Content-MD5`, which
/// every S3-compatible server checks on parts).
fn range_sha256(path: &Path, offset: u64, len: u64) -> Result<(Vec<u8>, Vec<u8>), PublishError> {
    use sha2::Digest;
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(io_error(path))?;
    f.seek(SeekFrom::Start(offset)).map_err(io_error(path))?;
    let mut sha = sha2::Sha256::new();
    let mut md5 = md5::Md5::new();
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = f
            .read(&mut buf[..(left.min(1 << 20)) as usize])
            .map_err(io_error(path))?;
        if n == 0 {
            return Err(io_error(path)(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while being uploaded",
            )));
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
        left -= n as u64;
    }
    Ok((sha.finalize().to_vec(), md5.finalize().to_vec()))
}

impl ObjectStore for S3Store {
    fn location(&self) -> String {
        let base = format!("s3://{}/{}", self.bucket, self.prefix);
        match &self.endpoint {
            Some(ep) => format!("{base} at {ep}"),
            None => base,
        }
    }

    /// Aborts the multipart uploads the ledger says a killed run left open; returns how many
    /// were aborted. Uploads the server could not be reached for stay in the ledger for the
    /// next run.
    fn remove_partials(&self) -> Result<usize, PublishError> {
        let Some(ledger) = &self.pending else {
            return Ok(0);
        };
        let open = ledger.open_uploads()?;
        if open.is_empty() {
            return Ok(0);
        }
        let mut aborted = 0;
        let mut still_open = Vec::new();
        self.runtime.block_on(async {
            for u in open {
                match self.abort(&u.bucket, &u.key, &u.upload_id).await {
                    Ok(()) => aborted += 1,
                    // The server answered (no such upload: it was completed or aborted; or a
                    // refusal): nothing more for this client to do.
                    Err(e) if e.as_service_error().is_some() => {}
                    // Not reached: try again next time.
                    Err(_) => still_open.push(u),
                }
            }
        });
        ledger.keep_only(&still_open)?;
        Ok(aborted)
    }

    fn put_file(&self, key: &str, source: &Path, meta: &ObjectMeta) -> Result<(), PublishError> {
        let full = self.full_key(key)?;
        self.runtime.block_on(async {
            if meta.size >= self.multipart_threshold {
                return self.put_multipart(key, &full, source, meta).await;
            }
            let digest = hex::decode(&meta.sha256).unwrap_or_default();
            let body = ByteStream::from_path(source)
                .await
                .map_err(|e| self.failed("read", key, e))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                .content_type(&meta.content_type)
                .cache_control(&meta.cache_control)
                .content_length(meta.size as i64)
                .checksum_sha256(b64(&digest))
                .metadata(SHA256_META, &meta.sha256)
                .body(body)
                .send()
                .await
                .map_err(|e| self.failed("put", key, e))?;
            Ok(())
        })
    }

    fn head(&self, key: &str) -> Result<Option<StoredObject>, PublishError> {
        let full = self.full_key(key)?;
        self.runtime.block_on(async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&full)
                .send()
                .await
            {
                Ok(o) => Ok(Some(StoredObject {
                    size: o.content_length().unwrap_or(0).max(0) as u64,
                    sha256: o
                        .metadata()
                        .and_then(|m| m.get(SHA256_META))
                        .map(|s| s.to_string()),
                    content_type: o.content_type().map(str::to_string),
                    cache_control: o.cache_control().map(str::to_string),
                })),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
                Err(e) => Err(self.failed("head", key, e)),
            }
        })
    }

    fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Option<Vec<u8>>, PublishError> {
        self.fetch(key, Some(format!("bytes={start}-{end}")))
    }

    fn read_url(&self, key: &str, valid_for: Duration) -> Result<Option<String>, PublishError> {
        let full = self.full_key(key)?;
        let config =
            PresigningConfig::expires_in(valid_for).map_err(|e| self.failed("presign", key, e))?;
        self.runtime.block_on(async {
            let request = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&full)
                .presigned(config)
                .await
                .map_err(|e| self.failed("presign", key, e))?;
            Ok(Some(request.uri().to_string()))
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PublishError> {
        self.fetch(key, None)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, PublishError> {
        let base = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let full_prefix = format!("{base}{prefix}");
        self.runtime.block_on(async {
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&full_prefix)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| self.failed("list", prefix, e))?;
                for o in out.contents() {
                    if let Some(k) = o.key().and_then(|k| k.strip_prefix(&base)) {
                        keys.push(k.to_string());
                    }
                }
                match out.next_continuation_token() {
                    Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                    _ => break,
                }
            }
            keys.sort();
            Ok(keys)
        })
    }
}

/// The store's runtime. Dropped without waiting for its threads, so that a store may be
/// dropped anywhere, an async context included (a service that keeps stores in its state and
/// drops that state inside its own runtime): a runtime dropped there normally panics.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for OwnRuntime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("the runtime lives until drop")
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
