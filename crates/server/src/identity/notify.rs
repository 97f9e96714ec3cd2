//! How messages for a user (today: password-reset links) leave the server. Pluggable:
//! `log` appends JSON lines to `<data_dir>/notifications.log` (mode 0600, the way a
//! development mail catcher works; the server log only says a notice was written, never
//! the link), `webhook` POSTs JSON signed with HMAC-SHA256 to a URL that sends mail, chat
//! or SMS, and `none` drops them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::settings::Settings;

/// One message for a user.
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    /// `password_reset`.
    pub kind: &'static str,
    pub user_id: String,
    pub username: String,
    pub email: Option<String>,
    /// The secret the user needs (the reset token).
    pub token: String,
    /// A link that carries the token.
    pub link: String,
    pub expires_at: String,
}

#[async_trait::async_trait]
pub trait Notify: Send + Sync {
    async fn send(&self, notice: &Notice) -> anyhow::Result<()>;
}

pub type Notifier = Arc<dyn Notify>;

pub fn from_settings(settings: &Settings) -> anyhow::Result<Notifier> {
    let n = &settings.auth.notifier;
    Ok(match n.kind.as_str() {
        "log" => Arc::new(LogFile {
            path: settings.data_dir.join("notifications.log"),
        }),
        "webhook" => {
            anyhow::ensure!(
                n.webhook_url.starts_with("http://") || n.webhook_url.starts_with("https://"),
                "auth.notifier.webhook_url must be an http(s) URL"
            );
            anyhow::ensure!(
                n.webhook_secret.expose().len() >= 16,
                "auth.notifier.webhook_secret must be at least 16 characters: receivers check the signature"
            );
            Arc::new(Webhook {
                url: n.webhook_url.clone(),
                secret: n.webhook_secret.expose().as_bytes().to_vec(),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?,
            })
        }
        "none" => Arc::new(Nowhere),
        other => anyhow::bail!("auth.notifier.kind `{other}`: expected log, webhook or none"),
    })
}

struct LogFile {
    path: PathBuf,
}

#[async_trait::async_trait]
impl Notify for LogFile {
    async fn send(&self, notice: &Notice) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(notice)?;
        line.push(b'\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.append(true).create(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options.open(&path)?.write_all(&line)
        })
        .await??;
        tracing::info!(kind = notice.kind, user_id = %notice.user_id, file = %self.path.display(), "notice written");
        Ok(())
    }
}

struct Webhook {
    url: String,
    secret: Vec<u8>,
    client: reqwest::Client,
}

#[async_trait::async_trait]
impl Notify for Webhook {
    async fn send(&self, notice: &Notice) -> anyhow::Result<()> {
        let body = serde_json::to_vec(notice)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)?;
        mac.update(&body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-framehouse-signature", signature)
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "webhook answered {}",
            resp.status()
        );
        Ok(())
    }
}

struct Nowhere;

#[async_trait::async_trait]
impl Notify for Nowhere {
    async fn send(&self, notice: &Notice) -> anyhow::Result<()> {
        tracing::warn!(kind = notice.kind, user_id = %notice.user_id, "notice dropped: auth.notifier.kind is none");
        Ok(())
    }
}
