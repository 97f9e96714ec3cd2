//! The server as the client sees it: where it is, the credential (an API key from
//! `FRAMEHOUSE_TOKEN`, or the session saved by `framehouse login`, refreshed when its
//! access token lapses), and errors that carry the server's error code.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A failure to report: the server's `code` (or a local one) and its message.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Failure {
        Failure {
            code: code.into(),
            message: message.into(),
        }
    }

    /// From a non-2xx answer with the server's `{"error":{"code","message"}}` body.
    pub async fn of(resp: Response) -> Failure {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Failure {
            code: body["error"]["code"]
                .as_str()
                .map_or_else(|| format!("http_{}", status.as_u16()), String::from),
            message: body["error"]["message"]
                .as_str()
                .map_or_else(|| status.to_string(), String::from),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Failure {
        Failure::new("network", e.to_string())
    }
}

/// What `framehouse login` saves: `<config dir>/framehouse/credentials.json`, mode 0600.
#[derive(Serialize, Deserialize, Clone)]
pub struct Saved {
    pub server: String,
    pub username: String,
    pub access_token: String,
    pub refresh_token: String,
}

pub fn credentials_path() -> Result<PathBuf, Failure> {
    let dir = dirs::config_dir()
        .ok_or_else(|| Failure::new("no_config_dir", "no configuration directory (set HOME)"))?;
    Ok(dir.join("framehouse").join("credentials.json"))
}

pub fn save(saved: &Saved) -> Result<(), Failure> {
    use std::io::Write;
    let path = credentials_path()?;
    let io = |e: std::io::Error| Failure::new("io", format!("{}: {e}", path.display()));
    std::fs::create_dir_all(path.parent().expect("a folder")).map_err(io)?;
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(&serde_json::to_vec_pretty(saved).expect("serialises"))
            .map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)
}

fn load() -> Option<Saved> {
    let text = std::fs::read(credentials_path().ok()?).ok()?;
    serde_json::from_slice(&text).ok()
}

enum Credential {
    Key(String),
    Session(Saved),
}

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    credential: Mutex<Credential>,
    /// One refresh at a time: the server treats a refresh token used twice as stolen
    /// and ends the session, so parallel uploads must not each refresh.
    refreshing: tokio::sync::Mutex<()>,
}

impl Api {
    /// The server and credential: `--server` or `FRAMEHOUSE_SERVER`, `FRAMEHOUSE_TOKEN`,
    /// else what `framehouse login` saved.
    pub fn connect(server: Option<String>) -> Result<Api, Failure> {
        let saved = load();
        let env_server = std::env::var("FRAMEHOUSE_SERVER")
            .ok()
            .filter(|s| !s.is_empty());
        let base = server
            .or(env_server)
            .or_else(|| saved.as_ref().map(|s| s.server.clone()))
            .ok_or_else(|| {
                Failure::new(
                    "not_logged_in",
                    "run `framehouse login --server URL`, or set FRAMEHOUSE_SERVER and FRAMEHOUSE_TOKEN",
                )
            })?
            .trim_end_matches('/')
            .to_string();
        let credential = match std::env::var("FRAMEHOUSE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
        {
            Some(key) => Credential::Key(key),
            None => match saved {
                Some(saved) if saved.server.trim_end_matches('/') == base => {
                    Credential::Session(saved)
                }
                _ => {
                    return Err(Failure::new(
                        "not_logged_in",
                        format!("not logged in to {base}: run `framehouse login --server {base}`"),
                    ))
                }
            },
        };
        Ok(Api {
            base,
            http: client(),
            credential: Mutex::new(credential),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn token(&self) -> String {
        match &*self.credential.lock().expect("not poisoned") {
            Credential::Key(key) => key.clone(),
            Credential::Session(saved) => saved.access_token.clone(),
        }
    }

    /// Sends the request `build` makes (with the credential), refreshing a lapsed
    /// session once.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Failure> {
        let url = self.url(path);
        for attempt in 0..2 {
            let token = self.token();
            let req = self.http.request(method.clone(), &url).bearer_auth(&token);
            let resp = build(req).send().await?;
            let lapsed = resp.status() == StatusCode::UNAUTHORIZED && attempt == 0;
            if lapsed && self.refresh(&token).await? {
                continue;
            }
            return Ok(resp);
        }
        unreachable!("the loop returns")
    }

    /// A JSON answer, or the server's error.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let resp = self
            .send(method, path, |r| match body {
                Some(b) => r.json(b),
                None => r,
            })
            .await?;
        if !resp.status().is_success() {
            return Err(Failure::of(resp).await);
        }
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        Ok(resp.json().await?)
    }

    /// Trades the saved refresh token for a new pair and saves it, unless the access
    /// token `refused` was replaced already; `false` with an API key or when the session
    /// is gone.
    async fn refresh(&self, refused: &str) -> Result<bool, Failure> {
        let _one = self.refreshing.lock().await;
        let saved = match &*self.credential.lock().expect("not poisoned") {
            Credential::Key(_) => return Ok(false),
            // Another request refreshed it meanwhile: use the new one.
            Credential::Session(saved) if saved.access_token != refused => return Ok(true),
            Credential::Session(saved) => saved.clone(),
        };
        let resp = self
            .http
            .post(self.url("/api/v1/auth/refresh"))
            .json(&serde_json::json!({ "refresh_token": saved.refresh_token }))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Ok(false);
        }
        let pair: Value = resp.json().await?;
        let fresh = Saved {
            access_token: pair["access_token"].as_str().unwrap_or_default().into(),
            refresh_token: pair["refresh_token"].as_str().unwrap_or_default().into(),
            ..saved
        };
        save(&fresh)?;
        *self.credential.lock().expect("not poisoned") = Credential::Session(fresh);
        Ok(true)
    }

    /// Ends the saved session on the server (an API key stays valid).
    pub async fn logout(&self) -> Result<(), Failure> {
        let refresh = match &*self.credential.lock().expect("not poisoned") {
            Credential::Key(_) => return Ok(()),
            Credential::Session(saved) => saved.refresh_token.clone(),
        };
        let body = serde_json::json!({ "refresh_token": refresh });
        let resp = self
            .send(Method::POST, "/api/v1/auth/logout", |r| r.json(&body))
            .await?;
        if resp.status().is_success() || resp.status() == StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        Err(Failure::of(resp).await)
    }
}

/// Bounded in time: connecting, and each request's wait for an answer (a PATCH of a
/// chunk included).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .user_agent(concat!("framehouse-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a TLS backend")
}
