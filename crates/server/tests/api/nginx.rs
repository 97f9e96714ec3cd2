//! `deploy/nginx/framehouse.conf` in front of two api nodes, run by a real nginx: uploads
//! through it, request ids, the client address through `trusted_proxies`, the cache of
//! public derivatives (and never of private ones), and failover when a node stops.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use server::settings::{DatabaseSettings, Secret};

use crate::fixtures;
use crate::helpers::{fresh_postgres_url, spawn_app_with, Backend, TestApp};

/// A running nginx with the deploy file rendered for these ports; stopped on drop.
pub struct Nginx {
    pub base: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The deploy file with our upstreams, listen address and cache folder put in.
pub fn render(upstreams: &[&str], port: u16, cache: &Path) -> String {
    let conf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/nginx/framehouse.conf"
    ))
    .unwrap();
    let servers: String = upstreams
        .iter()
        .map(|u| format!("    server {u} max_fails=3 fail_timeout=10s;\n"))
        .collect();
    let mut out = String::new();
    let mut in_upstream = false;
    for line in conf.lines() {
        if line.starts_with("upstream framehouse_api") {
            in_upstream = true;
            out.push_str(line);
            out.push('\n');
            out.push_str(&servers);
            continue;
        }
        if in_upstream && line.trim_start().starts_with("server ") {
            continue;
        }
        if in_upstream && line.starts_with('}') {
            in_upstream = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        out.contains("listen 8080;"),
        "the deploy file listens on 8080"
    );
    out.replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
        .replace("/var/cache/nginx/framehouse", cache.to_str().unwrap())
}

impl Nginx {
    pub async fn start(upstreams: &[&str]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // nginx's workers drop to `nobody` when started as root.
        for sub in ["cache", "tmp", "logs"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        open_to_all(root);
        let port = free_port();
        std::fs::write(
            root.join("framehouse.conf"),
            render(upstreams, port, &root.join("cache")),
        )
        .unwrap();
        let tmp = root.join("tmp");
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {r}/nginx.pid;\nerror_log {r}/logs/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n\
               fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
               include {r}/framehouse.conf;\n}}\n",
            r = root.display(),
            t = tmp.display()
        );
        std::fs::write(root.join("nginx.conf"), main).unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is installed (scripts/install-deps.sh test)");
        let check = std::process::Command::new(nginx)
            .args(["-t", "-p"])
            .arg(root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = tokio::process::Command::new(nginx)
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Nginx {
            base: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Makes `dir` and its folders writable by nginx's workers.
fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            open_to_all(&e.path());
        }
    }
}

async fn api_node(url: &str, data_dir: Option<std::path::PathBuf>) -> TestApp {
    let url = url.to_string();
    spawn_app_with(Backend::Sqlite, move |s| {
        s.database = DatabaseSettings {
            url: Some(Secret::new(url)),
            max_connections: 10,
            ..DatabaseSettings::default()
        };
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        if let Some(dir) = data_dir {
            s.data_dir = dir;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_postgres, ignore = "FRAMEHOUSE_TEST_SKIP_POSTGRES=1")]
#[cfg_attr(skip_nginx, ignore = "FRAMEHOUSE_TEST_SKIP_NGINX=1")]
async fn nginx_in_front_of_two_api_nodes_streams_caches_public_answers_and_fails_over() {
    let url = fresh_postgres_url().await;
    let one = api_node(&url, None).await;
    let two = api_node(&url, Some(one.data_dir.clone())).await;
    let (a, b) = (
        one.base.trim_start_matches("http://").to_string(),
        two.base.trim_start_matches("http://").to_string(),
    );
    let nginx = Nginx::start(&[&a, &b]).await;
    let client = reqwest::Client::new();
    let via = |path: &str| format!("{}{path}", nginx.base);

    // Sign up and upload through nginx; the request id we send comes back.
    let resp = client
        .post(via("/api/v1/auth/register"))
        .json(&serde_json::json!({"username": "alice", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let token = one.login("alice", "correct horse battery").await;
    let bytes = fixtures::jpeg(1600, 1200);
    let resp = client
        .post(via("/api/v1/media?visibility=public"))
        .bearer_auth(&token)
        .header("x-request-id", "upload-through-nginx-1")
        .header("content-type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(resp.headers()["x-request-id"], "upload-through-nginx-1");
    let item: serde_json::Value = resp.json().await.unwrap();
    let public_id = item["id"].as_str().unwrap().to_string();
    one.wait_processed(&token, &public_id).await;
    // Without one, nginx makes a request id and passes it on.
    let resp = client.get(via("/healthz")).send().await.unwrap();
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made.len(), 32, "nginx's $request_id: {made}");

    // Public derivatives: a miss, then hits served by nginx, byte for byte.
    let path = format!("/media/{public_id}/thumb.webp");
    let first = client.get(via(&path)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["x-cache-status"], "MISS");
    let first_bytes = first.bytes().await.unwrap();
    let second = client.get(via(&path)).send().await.unwrap();
    assert_eq!(second.headers()["x-cache-status"], "HIT");
    assert_eq!(second.bytes().await.unwrap(), first_bytes);
    let direct = one.get(None, &path).await.bytes().await.unwrap();
    assert_eq!(
        direct, first_bytes,
        "the same bytes as from a node directly"
    );
    // A range of a cached object.
    let ranged = client
        .get(via(&path))
        .header("range", "bytes=0-15")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap(), first_bytes.slice(0..16));

    // Private: never stored, never served to someone else.
    let private = one.upload_ok(&token, bytes.clone(), "").await;
    let private_id = private["id"].as_str().unwrap().to_string();
    one.wait_processed(&token, &private_id).await;
    let path = format!("/media/{private_id}/thumb.webp");
    for _ in 0..2 {
        let resp = client
            .get(via(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-cache-status"], "BYPASS");
    }
    let anonymous = client.get(via(&path)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::NOT_FOUND);
    assert_ne!(anonymous.headers()["x-cache-status"], "HIT");

    // The client's address reaches the audit log through X-Forwarded-For.
    let resp = client
        .post(via("/api/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&serde_json::json!({"username": "alice", "password": "wrong wrong wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let ip: Option<String> = sqlx::query_scalar(
        "SELECT ip FROM audit_log WHERE kind = 'login_failed' ORDER BY at DESC LIMIT 1",
    )
    .fetch_one(&one.state.db.pool)
    .await
    .unwrap();
    assert_eq!(ip.as_deref(), Some("203.0.113.7"));

    // One node stops: idempotent requests keep succeeding through the other.
    two.stop().await;
    for _ in 0..10 {
        let resp = client
            .get(via(&format!("/api/v1/media/{private_id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
