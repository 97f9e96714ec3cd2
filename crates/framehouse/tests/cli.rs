//! The `framehouse` command-line client against the real server binary: login with the
//! credentials file at mode 0600, an upload of a folder of 30 images and videos (and two
//! files that are not media) while the server is killed with SIGKILL and started again,
//! with every file ending up exactly once; a second run (and one without the state file)
//! uploads nothing; then info, get, share, rm and the exit codes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

// Shared with tus_clients.rs and browser.rs.
#[allow(dead_code)]
#[path = "support/server.rs"]
mod server;
use server::{sign_up, Server, Store};

/// The CLI with its config and state dirs under `home`.
fn cli(home: &Path, state: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framehouse"));
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join(state))
        .env_remove("FRAMEHOUSE_SERVER")
        .env_remove("FRAMEHOUSE_TOKEN")
        .env_remove("FRAMEHOUSE_CONFIG")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the CLI runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// 24 noise BMPs (1 MiB each, all distinct) and 6 short videos, with two text files.
fn make_folder(dir: &Path) -> BTreeSet<String> {
    let mut shas = BTreeSet::new();
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    for n in 0..24u64 {
        let side = 600 + n as u32;
        let (mut bmp, row) = server::bmp_header(side);
        let mut x = n * 7919 + 1;
        for _ in 0..row * side {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bmp.push(x as u8);
        }
        let sub = if n % 3 == 0 { "nested/" } else { "" };
        std::fs::write(dir.join(format!("{sub}noise-{n:02}.bmp")), &bmp).unwrap();
        shas.insert(hex::encode(Sha256::digest(&bmp)));
    }
    for n in 0..6 {
        let path = dir.join(format!("clip-{n}.mp4"));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=320x240:rate=25:duration={}", 1 + n))
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency={}:duration={}",
                300 + 100 * n,
                1 + n
            ))
            .args([
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
            ])
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        shas.insert(hex::encode(Sha256::digest(std::fs::read(&path).unwrap())));
    }
    std::fs::write(dir.join("notes.txt"), "not media").unwrap();
    std::fs::write(dir.join("nested/readme.md"), "# nor this").unwrap();
    shas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_uploads_a_folder_through_a_server_restart_exactly_once() {
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("photos");
    let shas = make_folder(&folder);
    let mut server = Server::with_roles(Store::Local, "all");
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    let base = server.base();
    sign_up(&http, &base).await;

    // Login: the password on stdin; the saved credentials readable by the user only.
    let mut login = cli(home.path(), "state")
        .args([
            "login",
            "--server",
            &base,
            "--username",
            "alice",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(login.stdin.as_mut().unwrap(), b"correct horse battery\n").unwrap();
    let out = login.wait_with_output().unwrap();
    assert!(out.status.success(), "login: {}", text(&out.stderr));
    let creds = home.path().join("config/framehouse/credentials.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&creds).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // Upload the folder; once a few items exist the server is killed and started again.
    let child = cli(home.path(), "state")
        .args([
            "upload",
            "--jobs",
            "4",
            "--chunk-mib",
            "1",
            "--wait",
            "--json",
        ])
        .arg(&folder)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let token = {
        let saved: Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
        saved["access_token"].as_str().unwrap().to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let page = http
            .get(format!("{base}/api/v1/media?limit=200"))
            .bearer_auth(&token)
            .send()
            .await;
        let count = match page {
            Ok(resp) => resp
                .json::<Value>()
                .await
                .map_or(0, |v| v["items"].as_array().map_or(0, Vec::len)),
            Err(_) => 0,
        };
        if count >= 6 {
            break;
        }
        assert!(Instant::now() < deadline, "the upload never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    server.start();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "upload failed: {stderr}\n{}",
        server.log()
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(report["uploaded"].as_array().unwrap().len(), 30, "{report}");
    assert_eq!(report["failed"].as_array().unwrap().len(), 0, "{report}");
    let not_media: Vec<&Value> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["reason"] == "not_media")
        .collect();
    assert_eq!(not_media.len(), 2, "{report}");
    for line in report["uploaded"].as_array().unwrap() {
        assert!(matches!(line["status"].as_str(), Some("ready")), "{line}");
    }

    // Exactly one item per file, with the files' bytes.
    let out = run(cli(home.path(), "state").args(["ls", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let items: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sha256"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed.len(), 30, "{items}");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), shas);

    // Again, with the state file and without it (the server's digests): nothing goes up,
    // and without a terminal the progress comes as lines ending at 100 %.
    for state in ["state", "fresh-state"] {
        let out = run(cli(home.path(), state)
            .args(["upload", "--json"])
            .arg(&folder));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["uploaded"].as_array().unwrap().len(), 0, "{report}");
        assert_eq!(report["skipped"].as_array().unwrap().len(), 32, "{report}");
    }
    let single = folder.join("extra.bmp");
    std::fs::copy(folder.join("noise-01.bmp"), &single).unwrap();
    let mut tail = std::fs::read(&single).unwrap();
    tail.extend_from_slice(&[0; 4]);
    std::fs::write(&single, &tail).unwrap();
    let out = run(cli(home.path(), "state").arg("upload").arg(&single));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .lines()
            .any(|l| l.starts_with("progress 100%")),
        "{}",
        text(&out.stderr)
    );
    let media = text(&out.stdout)
        .lines()
        .find_map(|l| l.split(" -> ").nth(1).map(String::from))
        .expect("the item id");

    // info, get (the original, byte for byte), share (a URL anyone can open), rm.
    let out = run(cli(home.path(), "state").args(["info", &media]));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["id"], media.as_str());
    let copy = home.path().join("copy.bmp");
    let out = run(cli(home.path(), "state")
        .args(["get", &media, "-o"])
        .arg(&copy));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&copy).unwrap(), tail);
    server.wait_ready(&http).await;
    let processed = Instant::now() + Duration::from_secs(60);
    loop {
        let out = run(cli(home.path(), "state").args(["info", &media]));
        let info: Value = serde_json::from_slice(&out.stdout).unwrap();
        if info["status"] == "ready" {
            break;
        }
        assert!(Instant::now() < processed, "never processed: {info}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = run(cli(home.path(), "state").args(["share", &media, "--ttl", "10m"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = text(&out.stdout).trim().to_string();
    let shared = http.get(&url).send().await.unwrap();
    assert_eq!(shared.status(), reqwest::StatusCode::OK, "{url}");
    let out = run(cli(home.path(), "state").args(["rm", &media]));
    assert!(out.status.success());
    // A failure names the item and the server's code, with exit code 1; misuse is 2.
    let out = run(cli(home.path(), "state").args(["rm", &media]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&media) && text(&out.stderr).contains("not_found"),
        "{}",
        text(&out.stderr)
    );
    let out = run(cli(home.path(), "state").arg("upload"));
    assert_eq!(out.status.code(), Some(2));

    // Logout ends the session and forgets it.
    let out = run(cli(home.path(), "state").arg("logout"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!creds.exists());
    let out = run(cli(home.path(), "state").arg("ls"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not_logged_in"),
        "{}",
        text(&out.stderr)
    );
}

/// `login --browser`: the CLI listens on loopback, opens the server's OpenID login in a
/// real browser (headless Chromium, through `$BROWSER`), gets the one-time code back on
/// its port, and saves the session; the server refuses such a redirect to anything but
/// a numeric loopback address.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_through_the_browser_signs_in_with_the_openid_provider() {
    let home = tempfile::tempdir().unwrap();
    let issuer = server::service_env("FRAMEHOUSE_TEST_OIDC_GOOD");
    let oidc = format!(
        "[[auth.oidc]]\nid = \"good\"\nissuer = \"{issuer}\"\nclient_id = \"framehouse\"\n\
         client_secret = \"framehouse-secret\"\nscopes = [\"openid\", \"email\", \"profile\"]\n"
    );
    let server = Server::with_config(Store::Local, "api", &oidc);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    server.wait_ready(&http).await;
    let base = server.base();
    let browser = home.path().join("browser.sh");
    std::fs::write(
        &browser,
        format!(
            "#!/bin/sh\nexec /usr/bin/chromium --headless --no-sandbox --disable-gpu \
             --user-data-dir={} --dump-dom \"$1\" >/dev/null 2>&1\n",
            home.path().join("profile").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = run(cli(home.path(), "state")
        .args([
            "login",
            "--server",
            &base,
            "--browser",
            "--login-hint",
            "carol",
        ])
        .env("BROWSER", &browser));
    assert!(
        out.status.success(),
        "login: {}\n{}",
        text(&out.stderr),
        server.log()
    );
    assert!(
        text(&out.stdout).contains("logged in"),
        "{}",
        text(&out.stdout)
    );
    let out = run(cli(home.path(), "state").args(["ls", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    // Elsewhere than a numeric loopback address with a port, no redirect is accepted.
    for target in [
        "http://localhost:9/cb",
        "http://10.0.0.1:9/cb",
        "https://evil.example/cb",
    ] {
        let resp = http
            .get(format!("{base}/api/v1/auth/oidc/good/login"))
            .query(&[("redirect", target)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST, "{target}");
    }
}
