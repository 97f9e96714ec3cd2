//! The object store: local files under `<data_dir>/objects` by default, any S3-compatible
//! store when configured — both through the `object_store` crate. The key layout is
//! `kernel::keys`. Also the URLs that let clients fetch objects from the store itself:
//! a public base URL (a CDN or public bucket) and presigned GETs.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, GetResult, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};
use tokio::io::AsyncReadExt;

use serde::{Deserialize, Serialize};

use super::secret::Secret;

/// The `[storage]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `local` (files under `<data_dir>/objects`) or `s3`. Default `local`.
    pub backend: String,
    /// S3 bucket name (backend `s3`). Empty: `AWS_BUCKET`.
    pub s3_bucket: String,
    /// S3 region. Default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub s3_region: String,
    /// S3 endpoint for non-AWS stores (SeaweedFS, Garage, MinIO, Ceph). Default:
    /// `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), else AWS.
    pub s3_endpoint: Option<String>,
    /// S3 access key id. Empty: `AWS_ACCESS_KEY_ID`, then the other AWS credential
    /// sources (web identity on Kubernetes, instance metadata).
    pub s3_access_key_id: String,
    /// S3 secret access key. Empty: `AWS_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: Secret,
    /// A folder of the bucket to keep every key under (several deployments or test runs
    /// can share one bucket). Default none.
    pub s3_prefix: String,
    /// Allow plain-HTTP endpoints (a store on the same host or network). Default false.
    pub s3_allow_http: bool,
    /// Address buckets as `https://{bucket}.{endpoint}` instead of `{endpoint}/{bucket}`.
    /// Default false (path style), which every S3-compatible store accepts; with a custom
    /// endpoint and this set, the endpoint must already name the bucket.
    pub s3_virtual_hosted_style: bool,
    /// Bound on each request to the store, except reading an object's body, which lasts
    /// as long as the client downloading it (its first byte is still bounded). Default 30.
    pub s3_timeout_secs: u64,
    /// Base URL under which the store's objects are readable without credentials (a CDN
    /// in front of the bucket, the bucket's public endpoint, or a web server over the local
    /// `objects` folder), e.g. `https://cdn.example.com`. An object is fetched as
    /// `{public_base_url}/{s3_prefix}/{key}`.
    pub public_base_url: Option<String>,
    /// How derivatives (and public originals) of public items are served: `proxy`
    /// (streamed through Framehouse, the default) or `redirect` (a 302 to
    /// `public_base_url`, so the bytes never pass through the api nodes).
    pub public_delivery: String,
    /// How an original only its owner may fetch is served: `proxy` (default) or
    /// `presign` (a 302 to a presigned GET valid `presign_ttl_secs`; backend `s3` only).
    pub private_originals: String,
    /// Lifetime of presigned GETs. Default 300.
    pub presign_ttl_secs: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            s3_bucket: String::new(),
            s3_region: String::new(),
            s3_endpoint: None,
            s3_access_key_id: String::new(),
            s3_secret_access_key: Secret::default(),
            s3_prefix: String::new(),
            s3_allow_http: false,
            s3_virtual_hosted_style: false,
            s3_timeout_secs: 30,
            public_base_url: None,
            public_delivery: "proxy".into(),
            private_originals: "proxy".into(),
            presign_ttl_secs: 300,
        }
    }
}

/// The parts of an opened backend: store, body reader, signer, key prefix, local root.
type Backend = (
    Arc<dyn ObjectStore>,
    Arc<dyn ObjectStore>,
    Option<Arc<AmazonS3>>,
    String,
    Option<PathBuf>,
);

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The same store without a total time bound, for streaming object bodies.
    reader: Arc<dyn ObjectStore>,
    /// Set for the S3 backend: signs presigned GETs (of keys with `prefix` in front).
    signer: Option<Arc<AmazonS3>>,
    /// `storage.s3_prefix` with a trailing slash, or empty.
    prefix: String,
    /// Set for the local backend: files can be renamed in and read in place.
    local_root: Option<PathBuf>,
    tmp_dir: PathBuf,
    first_byte_timeout: Duration,
    /// `storage.public_base_url` when `public_delivery = "redirect"`.
    redirect_base: Option<String>,
    /// Set when `private_originals = "presign"`.
    presign_ttl: Option<Duration>,
}

impl Storage {
    /// Opens the configured store; temp files live in `<data_dir>/tmp`.
    pub fn open(data_dir: &Path, s: &StorageSettings) -> anyhow::Result<Storage> {
        let tmp_dir = data_dir.join("tmp");
        std::fs::create_dir_all(&tmp_dir)
            .with_context(|| format!("creating {}", tmp_dir.display()))?;
        let public_base_url = s
            .public_base_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty());
        if let Some(url) = &public_base_url {
            let parsed = url::Url::parse(url)
                .with_context(|| format!("storage.public_base_url `{url}` is not a URL"))?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "http" | "https"),
                "storage.public_base_url must be an http(s) URL"
            );
        }
        let redirect_public = match s.public_delivery.as_str() {
            "proxy" => false,
            "redirect" => {
                anyhow::ensure!(
                    public_base_url.is_some(),
                    "storage.public_delivery = \"redirect\" needs storage.public_base_url"
                );
                true
            }
            other => anyhow::bail!("storage.public_delivery `{other}` (proxy or redirect)"),
        };
        let presign = match s.private_originals.as_str() {
            "proxy" => false,
            "presign" => {
                anyhow::ensure!(
                    s.backend == "s3",
                    "storage.private_originals = \"presign\" needs the s3 backend"
                );
                true
            }
            other => anyhow::bail!("storage.private_originals `{other}` (proxy or presign)"),
        };
        let first_byte_timeout = Duration::from_secs(s.s3_timeout_secs.max(1));
        let (store, reader, signer, prefix, local_root): Backend = match s.backend.as_str() {
            "local" => {
                let root = data_dir.join("objects");
                std::fs::create_dir_all(&root)
                    .with_context(|| format!("creating {}", root.display()))?;
                let root = root.canonicalize()?;
                let store: Arc<dyn ObjectStore> =
                    Arc::new(LocalFileSystem::new_with_prefix(&root)?);
                (store.clone(), store, None, String::new(), Some(root))
            }
            "s3" => {
                let bounded = ClientOptions::new()
                    .with_timeout(first_byte_timeout)
                    .with_connect_timeout(Duration::from_secs(5));
                let streaming = ClientOptions::new()
                    .with_timeout_disabled()
                    .with_connect_timeout(Duration::from_secs(5));
                let s3 = Arc::new(
                    s3_builder(s, bounded)
                        .build()
                        .context("configuring the S3 store")?,
                );
                let streaming: Arc<dyn ObjectStore> = Arc::new(
                    s3_builder(s, streaming)
                        .build()
                        .context("configuring the S3 store")?,
                );
                let store: Arc<dyn ObjectStore> = s3.clone();
                match s.s3_prefix.trim_matches('/') {
                    "" => (store, streaming, Some(s3), String::new(), None),
                    prefix => (
                        Arc::new(PrefixStore::new(store, prefix)),
                        Arc::new(PrefixStore::new(streaming, prefix)),
                        Some(s3),
                        format!("{prefix}/"),
                        None,
                    ),
                }
            }
            other => anyhow::bail!("unknown storage backend `{other}` (local or s3)"),
        };
        Ok(Storage {
            store,
            reader,
            signer,
            prefix,
            local_root,
            tmp_dir,
            first_byte_timeout,
            redirect_base: public_base_url.filter(|_| redirect_public),
            presign_ttl: presign.then(|| Duration::from_secs(s.presign_ttl_secs.max(1))),
        })
    }

    /// Where a public object can be fetched without passing through Framehouse, when
    /// `storage.public_delivery = "redirect"`. `version` (the ETag) goes into the query so
    /// a CDN never serves an object's former bytes under its new URL.
    pub fn public_url(&self, key: &str, version: &str) -> Option<String> {
        let base = self.redirect_base.as_ref()?;
        let version: String = url::form_urlencoded::byte_serialize(version.as_bytes()).collect();
        Some(format!("{base}/{}{key}?v={version}", self.prefix))
    }

    /// A presigned GET of `key`, when `storage.private_originals = "presign"`.
    pub async fn presigned_get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let (Some(signer), Some(ttl)) = (&self.signer, self.presign_ttl) else {
            return Ok(None);
        };
        let url = signer
            .signed_url(
                reqwest::Method::GET,
                &ObjectPath::from(format!("{}{key}", self.prefix)),
                ttl,
            )
            .await?;
        Ok(Some(url.to_string()))
    }

    /// Where uploads are spooled; on the same filesystem as local objects so a
    /// finished upload is moved in with a rename.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    /// The file behind `key` when the store is local, for readers that want a path.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.local_root.as_ref().map(|root| root.join(key))
    }

    /// Moves a finished, fsynced temp file into the store under `key`. Returns once the
    /// object is durable: renamed and its directory fsynced (local), or the multipart
    /// upload completed (S3). The file is streamed in parts, so memory stays flat
    /// whatever its size. `content_type` defaults to the one the key's extension implies.
    pub async fn put_file(
        &self,
        key: &str,
        file: &Path,
        content_type: Option<&str>,
    ) -> anyhow::Result<()> {
        if let Some(dest) = self.local_path(key) {
            let file = file.to_path_buf();
            return tokio::task::spawn_blocking(move || rename_durably(&file, &dest)).await?;
        }
        let opts = PutMultipartOptions {
            attributes: attributes(key, content_type),
            ..Default::default()
        };
        let mut upload = WriteMultipart::new_with_chunk_size(
            self.store
                .put_multipart_opts(&ObjectPath::from(key), opts)
                .await?,
            PART_SIZE,
        );
        let mut reader = tokio::fs::File::open(file).await?;
        let mut buf = vec![0u8; 1024 * 1024];
        let sent: anyhow::Result<()> = async {
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                upload.write(&buf[..n]);
            }
        }
        .await;
        if let Err(e) = sent {
            // S3 keeps (and bills) incomplete multipart uploads until they are aborted.
            upload.abort().await.ok();
            return Err(e);
        }
        upload.finish().await?;
        tokio::fs::remove_file(file).await.ok();
        Ok(())
    }

    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> anyhow::Result<()> {
        let opts = PutOptions {
            attributes: if self.local_root.is_some() {
                Attributes::default()
            } else {
                attributes(key, None)
            },
            ..Default::default()
        };
        self.store
            .put_opts(&ObjectPath::from(key), PutPayload::from_bytes(bytes), opts)
            .await?;
        Ok(())
    }

    /// Reads `key`, or the byte `range` of it.
    pub async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> object_store::Result<GetResult> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        // The body streams for as long as the client reads; the answer must come promptly.
        match tokio::time::timeout(
            self.first_byte_timeout,
            self.reader.get_opts(&ObjectPath::from(key), options),
        )
        .await
        {
            Ok(got) => got,
            Err(_) => Err(object_store::Error::Generic {
                store: "storage",
                source: format!("no answer within {:?}", self.first_byte_timeout).into(),
            }),
        }
    }

    /// The whole object in memory (for small objects): one blocking read when local.
    pub async fn get_bytes(&self, key: &str) -> anyhow::Result<Bytes> {
        if let Some(path) = self.local_path(key) {
            let data = tokio::task::spawn_blocking(move || std::fs::read(path)).await??;
            return Ok(Bytes::from(data));
        }
        Ok(self.get(key, None).await?.bytes().await?)
    }

    /// Like [`Storage::get_bytes`], but `None` when the object does not exist.
    pub async fn get_bytes_if_exists(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        if let Some(path) = self.local_path(key) {
            return match tokio::task::spawn_blocking(move || std::fs::read(path)).await? {
                Ok(data) => Ok(Some(Bytes::from(data))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        match self.get(key, None).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies `key` into a new temp file (or returns the local file itself) for tools
    /// that need a path. The second value says whether the caller must delete the path.
    pub async fn fetch_to_path(&self, key: &str) -> anyhow::Result<(PathBuf, bool)> {
        if let Some(path) = self.local_path(key) {
            return Ok((path, false));
        }
        let dest = self.tmp_dir.join(format!("fetch-{}", uuid::Uuid::new_v4()));
        let fetched = async {
            let mut out = tokio::fs::File::create(&dest).await?;
            let got = self.get(key, None).await?;
            let expected = got.meta.size;
            let mut stream = got.into_stream();
            let mut written = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                written += chunk.len() as u64;
                tokio::io::AsyncWriteExt::write_all(&mut out, &chunk).await?;
            }
            // tokio's File hands each write to a blocking thread: without this flush the
            // last one may still be in flight when a reader (libvips, ffmpeg) opens the
            // file, which then looks truncated.
            tokio::io::AsyncWriteExt::flush(&mut out).await?;
            anyhow::ensure!(
                written == expected,
                "{key}: read {written} of {expected} bytes from the store"
            );
            Ok(())
        }
        .await;
        if let Err(e) = fetched {
            tokio::fs::remove_file(&dest).await.ok();
            return Err(e);
        }
        Ok((dest, true))
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Keys under `prefix/` with their last-modified time (epoch ms).
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<(String, i64)>> {
        let prefix = ObjectPath::from(prefix);
        let metas: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .map(|m| (m.location.to_string(), m.last_modified.timestamp_millis()))
            .collect())
    }

    /// Deletes every object under `prefix/`.
    pub async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<()> {
        let prefix = ObjectPath::from(prefix);
        let keys: Vec<ObjectPath> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for key in keys {
            self.delete(key.as_ref()).await?;
        }
        if let Some(dir) = self.local_path(prefix.as_ref()) {
            tokio::fs::remove_dir(dir).await.ok();
        }
        Ok(())
    }

    /// Whether objects are files under a local directory (else S3).
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Where resumable uploads keep their part files (local store only): beside the
    /// objects, so a finished upload is renamed in.
    pub fn staging_dir(&self) -> Option<PathBuf> {
        self.local_root
            .as_ref()
            .and_then(|root| root.parent())
            .map(|data| data.join("uploads"))
    }

    fn multipart_store(&self) -> anyhow::Result<&AmazonS3> {
        self.signer
            .as_deref()
            .context("multipart uploads need the s3 storage backend")
    }

    fn full_path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{key}", self.prefix))
    }

    /// Starts an S3 multipart upload of `key` that outlives this process (a resumable
    /// upload's parts arrive over many requests, possibly to other nodes); its id.
    pub async fn create_multipart(&self, key: &str) -> anyhow::Result<String> {
        Ok(self
            .multipart_store()?
            .create_multipart(&self.full_path(key))
            .await?)
    }

    /// Uploads part `index` (from 0) of a multipart upload; the part's ETag.
    pub async fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        index: usize,
        bytes: Bytes,
    ) -> anyhow::Result<String> {
        let part = self
            .multipart_store()?
            .put_part(
                &self.full_path(key),
                &upload_id.to_string(),
                index,
                PutPayload::from_bytes(bytes),
            )
            .await?;
        Ok(part.content_id)
    }

    /// Assembles the parts (ETags in order) into the object.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: Vec<String>,
    ) -> anyhow::Result<()> {
        let parts = etags
            .into_iter()
            .map(|content_id| PartId { content_id })
            .collect();
        self.multipart_store()?
            .complete_multipart(&self.full_path(key), &upload_id.to_string(), parts)
            .await?;
        Ok(())
    }

    /// Drops an unfinished multipart upload and its parts (S3 keeps, and bills, them
    /// until then). An upload already gone is not an error.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> anyhow::Result<()> {
        match self
            .multipart_store()?
            .abort_multipart(&self.full_path(key), &upload_id.to_string())
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        match self
            .store
            .list(Some(&ObjectPath::from("originals")))
            .next()
            .await
        {
            None | Some(Ok(_)) => true,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "object store unreachable");
                false
            }
        }
    }
}

/// S3 parts: the smallest S3 accepts is 5 MiB; 8 MiB × 3 in flight bounds an upload's
/// buffers to about 32 MiB whatever the object's size.
const PART_SIZE: usize = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 3;

fn s3_builder(s: &StorageSettings, client: ClientOptions) -> AmazonS3Builder {
    // Environment first (AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT_URL, web identity …),
    // then whatever the settings name. (The client options carry `allow_http`: setting
    // them after `with_allow_http` would undo it.)
    let mut b = AmazonS3Builder::from_env()
        .with_client_options(client.with_allow_http(s.s3_allow_http))
        .with_virtual_hosted_style_request(s.s3_virtual_hosted_style);
    if !s.s3_bucket.is_empty() {
        b = b.with_bucket_name(&s.s3_bucket);
    }
    if !s.s3_region.is_empty() {
        b = b.with_region(&s.s3_region);
    } else if std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        b = b.with_region("us-east-1");
    }
    if let Some(endpoint) = s.s3_endpoint.as_deref().filter(|e| !e.is_empty()) {
        b = b.with_endpoint(endpoint);
    }
    if !s.s3_access_key_id.is_empty() {
        b = b
            .with_access_key_id(&s.s3_access_key_id)
            .with_secret_access_key(s.s3_secret_access_key.expose());
    }
    b
}

/// What the store records with an S3 object, so a client fetching it straight from the
/// bucket or a CDN gets the right type.
fn attributes(key: &str, content_type: Option<&str>) -> Attributes {
    let mut attributes = Attributes::new();
    let mime = content_type.unwrap_or_else(|| super::keys::content_type(key));
    attributes.insert(Attribute::ContentType, mime.to_owned().into());
    attributes
}

fn rename_durably(src: &Path, dest: &Path) -> anyhow::Result<()> {
    let dir = dest.parent().context("object key without a directory")?;
    std::fs::create_dir_all(dir)?;
    std::fs::rename(src, dest)?;
    // The rename is only durable once the directory entry is on disk.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
