//! `framehouse login --browser`: signing in through the server's OpenID Connect login in
//! the user's browser, for native apps as RFC 8252 describes. The client listens on a
//! loopback port, opens the login with that address as the place to return to, and
//! receives the one-time code there; it trades the code for the session, and the tokens
//! never appear in a URL.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::{self, Failure, Saved};

/// How long the browser has to finish signing in.
const WAIT: Duration = Duration::from_secs(300);

/// Signs in at `server` through `provider` (the only one configured when `None`).
pub async fn login(
    server: &str,
    provider: Option<String>,
    login_hint: Option<String>,
) -> Result<Saved, Failure> {
    let http = api::client();
    let provider = match provider {
        Some(p) => p,
        None => only_provider(&http, server).await?,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Failure::new("io", format!("cannot listen on loopback: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::new("io", e.to_string()))?
        .port();
    // A page the user happens to visit could send its own code to this port (and sign
    // the CLI in as someone else): only an answer carrying this secret is taken.
    let expected: String = rand_state();
    let back = format!("http://127.0.0.1:{port}/callback?state={expected}");
    let mut url = reqwest::Url::parse(&format!("{server}/api/v1/auth/oidc/{provider}/login"))
        .map_err(|e| Failure::new("usage", format!("bad server URL: {e}")))?;
    url.query_pairs_mut().append_pair("redirect", &back);
    if let Some(hint) = &login_hint {
        url.query_pairs_mut().append_pair("login_hint", hint);
    }
    eprintln!("opening {url} in your browser (if it does not open, visit it yourself)");
    if let Err(e) = webbrowser::open(url.as_str()) {
        eprintln!("could not start a browser: {e}");
    }
    let code = tokio::time::timeout(WAIT, receive_code(&listener, &expected))
        .await
        .map_err(|_| Failure::new("timeout", "the sign-in did not come back within 5 minutes"))??;
    let resp = http
        .post(format!("{server}/api/v1/auth/oidc/exchange"))
        .json(&json!({ "code": code }))
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(Failure::of(resp).await);
    }
    let pair: Value = resp.json().await?;
    let me = http
        .get(format!("{server}/api/v1/account"))
        .bearer_auth(pair["access_token"].as_str().unwrap_or_default())
        .send()
        .await?;
    let account: Value = if me.status().is_success() {
        me.json().await?
    } else {
        Value::Null
    };
    Ok(Saved {
        server: server.to_string(),
        username: account["username"].as_str().unwrap_or_default().to_string(),
        access_token: pair["access_token"].as_str().unwrap_or_default().into(),
        refresh_token: pair["refresh_token"].as_str().unwrap_or_default().into(),
    })
}

async fn only_provider(http: &reqwest::Client, server: &str) -> Result<String, Failure> {
    let resp = http
        .get(format!("{server}/api/v1/auth/oidc/providers"))
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(Failure::of(resp).await);
    }
    let list: Value = resp.json().await?;
    let names: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str().map(String::from))
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure::new(
            "no_provider",
            "the server has no OpenID provider configured",
        )),
        _ => Err(Failure::new(
            "usage",
            format!("choose one with --provider: {}", names.join(", ")),
        )),
    }
}

/// Answers the browser's one request to the loopback address; the `code` it carries.
/// A request without one, or without our `state` (a favicon, a scanner, another page),
/// is answered 404 and waited past.
async fn receive_code(
    listener: &tokio::net::TcpListener,
    expected: &str,
) -> Result<String, Failure> {
    loop {
        let (mut conn, _) = listener
            .accept()
            .await
            .map_err(|e| Failure::new("io", e.to_string()))?;
        let mut head = vec![0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut head))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        let request = String::from_utf8_lossy(&head[..n]);
        let target = request.split(' ').nth(1).unwrap_or_default();
        let code = reqwest::Url::parse(&format!("http://127.0.0.1{target}"))
            .ok()
            .filter(|u| u.path() == "/callback")
            .filter(|u| {
                u.query_pairs()
                    .any(|(k, v)| k == "state" && v.as_bytes() == expected.as_bytes())
            })
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.to_string())
            });
        let (status, body) = match &code {
            Some(_) => ("200 OK", "Signed in to Framehouse. You can close this tab."),
            None => ("404 Not Found", "Not the sign-in."),
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
             cache-control: no-store\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(answer.as_bytes()).await;
        if let Some(code) = code {
            return Ok(code);
        }
    }
}

/// 32 random bytes as hex.
fn rand_state() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}
