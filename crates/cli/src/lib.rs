//! The command-line client in the `framehouse` binary: `login`, `logout`, `upload`
//! (resumable, parallel, with progress bars), `ls`, `info`, `get`, `rm` and `share`.
//! Exit codes: 0 when everything worked, 1 when something failed (each failure names
//! the file or item and the server's error code), 2 for a usage error (from clap).

pub mod api;
mod browser;
mod tus;
pub mod upload;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use reqwest::Method;
use serde_json::{json, Value};

use api::{Api, Failure, Saved};

#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Sign in to a server and save the session (mode 0600 in the config dir).
    Login {
        /// The server's URL, e.g. https://media.example.org.
        #[arg(long, env = "FRAMEHOUSE_SERVER")]
        server: String,
        /// Asked for when not given.
        #[arg(long)]
        username: Option<String>,
        /// Read the password from standard input instead of asking.
        #[arg(long, conflicts_with = "browser")]
        password_stdin: bool,
        /// Sign in through the server's OpenID provider in your browser instead.
        #[arg(long)]
        browser: bool,
        /// Which OpenID provider (needed when the server has several).
        #[arg(long, requires = "browser")]
        provider: Option<String>,
        /// Passed to the provider as `login_hint` (the account to sign in as).
        #[arg(long, requires = "browser")]
        login_hint: Option<String>,
    },
    /// End the saved session and forget it.
    Logout,
    /// Upload files and folders (resumable; see `framehouse upload --help`).
    Upload(upload::UploadArgs),
    /// List your items.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Show an item as JSON.
    Info { id: String },
    /// Download an item's original, a preset or a transform.
    Get {
        id: String,
        /// A preset file such as `thumb.webp` or `large.jpg`.
        #[arg(long, conflicts_with = "ops")]
        preset: Option<String>,
        /// Transform options such as `w_640,q_70`.
        #[arg(long)]
        ops: Option<String>,
        /// Where to write (`-` for standard output); default: the item id and extension.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Delete items.
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Print a signed URL anyone can open until it expires.
    Share {
        id: String,
        /// How long it works: seconds, or with s, m, h or d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Transform options of the shared image.
        #[arg(long, default_value = "w_2048")]
        ops: String,
    },
}

/// Runs a client command; the process exit code.
pub async fn run(command: ClientCommand) -> i32 {
    match dispatch(command).await {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(failure) => {
            eprintln!("error: {failure}");
            if failure.code == "usage" {
                2
            } else {
                1
            }
        }
    }
}

async fn dispatch(command: ClientCommand) -> Result<bool, Failure> {
    match command {
        ClientCommand::Login {
            server,
            browser: true,
            provider,
            login_hint,
            ..
        } => {
            let server = server.trim_end_matches('/').to_string();
            let saved = browser::login(&server, provider, login_hint).await?;
            api::save(&saved)?;
            println!("logged in to {server} as {}", saved.username);
            Ok(true)
        }
        ClientCommand::Login {
            server,
            username,
            password_stdin,
            ..
        } => login(server, username, password_stdin).await,
        ClientCommand::Logout => {
            if let Ok(api) = Api::connect(None) {
                // Forgotten here even when the server cannot be told.
                if let Err(e) = api.logout().await {
                    eprintln!("warning: the server did not end the session: {e}");
                }
            }
            let path = api::credentials_path()?;
            match std::fs::remove_file(&path) {
                Ok(()) => println!("logged out"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("not logged in"),
                Err(e) => return Err(Failure::new("io", format!("{}: {e}", path.display()))),
            }
            Ok(true)
        }
        ClientCommand::Upload(args) => upload::run(&Api::connect(None)?, &args).await,
        ClientCommand::Ls { json } => list(&Api::connect(None)?, json).await,
        ClientCommand::Info { id } => {
            let api = Api::connect(None)?;
            let item = api
                .json(Method::GET, &format!("/api/v1/media/{id}"), None)
                .await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&item).expect("serialises")
            );
            Ok(true)
        }
        ClientCommand::Get {
            id,
            preset,
            ops,
            output,
        } => get(&Api::connect(None)?, &id, preset, ops, output).await,
        ClientCommand::Rm { ids } => {
            let api = Api::connect(None)?;
            let mut ok = true;
            for id in ids {
                match api
                    .json(Method::DELETE, &format!("/api/v1/media/{id}"), None)
                    .await
                {
                    Ok(_) => println!("deleted {id}"),
                    Err(e) => {
                        eprintln!("{id}: {e}");
                        ok = false;
                    }
                }
            }
            Ok(ok)
        }
        ClientCommand::Share { id, ttl, ops } => {
            let api = Api::connect(None)?;
            let ttl_secs = parse_ttl(&ttl)?;
            let url = signed_url(&api, &id, json!({ "ops": ops, "ttl_secs": ttl_secs })).await?;
            println!("{}", api.url(&url));
            Ok(true)
        }
    }
}

async fn login(
    server: String,
    username: Option<String>,
    password_stdin: bool,
) -> Result<bool, Failure> {
    let server = server.trim_end_matches('/').to_string();
    let username = match username {
        Some(u) => u,
        None => {
            eprint!("username: ");
            std::io::stderr().flush().ok();
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| Failure::new("io", e.to_string()))?;
            line.trim().to_string()
        }
    };
    let password = if password_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure::new("io", e.to_string()))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        rpassword::prompt_password("password: ").map_err(|e| Failure::new("io", e.to_string()))?
    };
    let resp = api::client()
        .post(format!("{server}/api/v1/auth/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(Failure::of(resp).await);
    }
    let pair: Value = resp.json().await?;
    api::save(&Saved {
        server: server.clone(),
        username: username.clone(),
        access_token: pair["access_token"].as_str().unwrap_or_default().into(),
        refresh_token: pair["refresh_token"].as_str().unwrap_or_default().into(),
    })?;
    println!("logged in to {server} as {username}");
    Ok(true)
}

async fn list(api: &Api, as_json: bool) -> Result<bool, Failure> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/media?limit=200&cursor={c}"),
            None => "/api/v1/media?limit=200".to_string(),
        };
        let page = api.json(Method::GET, &path, None).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&items).expect("serialises")
        );
        return Ok(true);
    }
    for item in &items {
        println!(
            "{}  {:<5} {:<10} {:<8} {:>12}  {}",
            item["id"].as_str().unwrap_or_default(),
            item["kind"].as_str().unwrap_or_default(),
            item["status"].as_str().unwrap_or_default(),
            item["visibility"].as_str().unwrap_or_default(),
            item["bytes"],
            item["title"].as_str().unwrap_or_default()
        );
    }
    Ok(true)
}

async fn get(
    api: &Api,
    id: &str,
    preset: Option<String>,
    ops: Option<String>,
    output: Option<PathBuf>,
) -> Result<bool, Failure> {
    let path = match (&preset, &ops) {
        (Some(preset), _) => format!("/media/{id}/{preset}"),
        (None, Some(ops)) => signed_url(api, id, json!({ "ops": ops })).await?,
        (None, None) => format!("/media/{id}/original"),
    };
    let mut resp = api.send(Method::GET, &path, |r| r).await?;
    if !resp.status().is_success() {
        return Err(Failure::of(resp).await);
    }
    let ext = match resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
    {
        Some(t) => t
            .split('/')
            .nth(1)
            .unwrap_or("bin")
            .split(['+', ';'])
            .next()
            .unwrap_or("bin"),
        None => "bin",
    }
    .replace("jpeg", "jpg");
    let to_stdout = output.as_deref() == Some(std::path::Path::new("-"));
    let target = output.unwrap_or_else(|| PathBuf::from(format!("{id}.{ext}")));
    let mut sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&target)
                .map_err(|e| Failure::new("io", format!("{}: {e}", target.display())))?,
        )
    };
    let mut written = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        sink.write_all(&chunk)
            .map_err(|e| Failure::new("io", format!("{}: {e}", target.display())))?;
        written += chunk.len() as u64;
    }
    sink.flush()
        .map_err(|e| Failure::new("io", e.to_string()))?;
    if !to_stdout {
        eprintln!("wrote {written} bytes to {}", target.display());
    }
    Ok(true)
}

/// A signed transform URL of item `id` (its path and query).
async fn signed_url(api: &Api, id: &str, body: Value) -> Result<String, Failure> {
    let path = format!("/api/v1/media/{id}/signed-url");
    let signed = api.json(Method::POST, &path, Some(&body)).await?;
    Ok(signed["url"].as_str().unwrap_or_default().to_string())
}

/// `90`, `90s`, `15m`, `2h`, `7d` as seconds.
fn parse_ttl(text: &str) -> Result<u64, Failure> {
    let bad = || {
        Failure::new(
            "usage",
            format!("`{text}` is not a duration (90, 15m, 2h, 7d)"),
        )
    };
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(n * scale)
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_ttl("90").unwrap(), 90);
        assert_eq!(parse_ttl("15m").unwrap(), 900);
        assert_eq!(parse_ttl("2h").unwrap(), 7200);
        assert_eq!(parse_ttl("7d").unwrap(), 604_800);
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("5y").is_err());
    }
}
