//! The object store: local files under `<data_dir>/objects` by default, any S3-compatible
//! store when configured — both through the `object_store` crate. The key layout is
//! `kernel::keys`.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, GetResult, ObjectStore, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use serde::{Deserialize, Serialize};

use super::secret::Secret;

/// The `[storage]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// `local` (files under `<data_dir>/objects`) or `s3`. Default `local`.
    pub backend: String,
    /// S3 bucket name (backend `s3`).
    pub s3_bucket: String,
    /// S3 region. Default `us-east-1`.
    pub s3_region: String,
    /// S3 endpoint for non-AWS stores (Garage, MinIO, Ceph). Default: AWS.
    pub s3_endpoint: Option<String>,
    /// S3 access key id.
    pub s3_access_key_id: String,
    /// S3 secret access key.
    pub s3_secret_access_key: Secret,
    /// Allow plain-HTTP endpoints (local MinIO/Garage). Default false.
    pub s3_allow_http: bool,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_endpoint: None,
            s3_access_key_id: String::new(),
            s3_secret_access_key: Secret::default(),
            s3_allow_http: false,
        }
    }
}

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Set for the local backend: files can be renamed in and read in place.
    local_root: Option<PathBuf>,
    tmp_dir: PathBuf,
}

impl Storage {
    /// Opens the configured store; temp files live in `<data_dir>/tmp`.
    pub fn open(data_dir: &Path, s: &StorageSettings) -> anyhow::Result<Storage> {
        let tmp_dir = data_dir.join("tmp");
        std::fs::create_dir_all(&tmp_dir)
            .with_context(|| format!("creating {}", tmp_dir.display()))?;
        match s.backend.as_str() {
            "local" => {
                let root = data_dir.join("objects");
                std::fs::create_dir_all(&root)
                    .with_context(|| format!("creating {}", root.display()))?;
                let root = root.canonicalize()?;
                let store = LocalFileSystem::new_with_prefix(&root)?;
                Ok(Storage {
                    store: Arc::new(store),
                    local_root: Some(root),
                    tmp_dir,
                })
            }
            "s3" => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s.s3_bucket)
                    .with_region(&s.s3_region)
                    .with_access_key_id(&s.s3_access_key_id)
                    .with_secret_access_key(s.s3_secret_access_key.expose())
                    .with_allow_http(s.s3_allow_http);
                if let Some(endpoint) = &s.s3_endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                let store = builder.build().context("configuring the S3 store")?;
                Ok(Storage {
                    store: Arc::new(store),
                    local_root: None,
                    tmp_dir,
                })
            }
            other => anyhow::bail!("unknown storage backend `{other}` (local or s3)"),
        }
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
    /// upload completed (S3).
    pub async fn put_file(&self, key: &str, file: &Path) -> anyhow::Result<()> {
        if let Some(dest) = self.local_path(key) {
            let file = file.to_path_buf();
            return tokio::task::spawn_blocking(move || rename_durably(&file, &dest)).await?;
        }
        let mut upload =
            WriteMultipart::new(self.store.put_multipart(&ObjectPath::from(key)).await?);
        let mut reader = tokio::fs::File::open(file).await?;
        let mut buf = vec![0u8; 8 * 1024 * 1024];
        let sent: anyhow::Result<()> = async {
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                upload.wait_for_capacity(4).await?;
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
        self.store
            .put(&ObjectPath::from(key), PutPayload::from_bytes(bytes))
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
        self.store.get_opts(&ObjectPath::from(key), options).await
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
        let mut out = tokio::fs::File::create(&dest).await?;
        let mut stream = self.get(key, None).await?.into_stream();
        while let Some(chunk) = stream.next().await {
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk?).await?;
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

fn rename_durably(src: &Path, dest: &Path) -> anyhow::Result<()> {
    let dir = dest.parent().context("object key without a directory")?;
    std::fs::create_dir_all(dir)?;
    std::fs::rename(src, dest)?;
    // The rename is only durable once the directory entry is on disk.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
