//! A real nginx running `deploy/nginx/framehouse.conf`, rendered with the test's
//! upstreams, port and cache folder; shared by the API tests and the cluster test (which
//! includes this file by path), so both prove the deploy file itself.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A running nginx with the deploy file rendered for these ports; stopped on drop.
pub struct Nginx {
    pub base: String,
    port: u16,
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

fn binary() -> &'static str {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx is installed (scripts/install-deps.sh test)")
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
        let nginx = binary();
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
            port,
            child,
            dir,
        }
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    /// Renders the deploy file for `upstreams`, reloads, and returns once every worker
    /// from before has exited: from then on requests go to those upstreams only (the old
    /// workers finish what they hold first — nginx's graceful reload, the open-source way
    /// to take a node out of rotation).
    pub async fn reload(&self, upstreams: &[&str]) {
        let root = self.dir.path();
        std::fs::write(
            root.join("framehouse.conf"),
            render(upstreams, self.port, &root.join("cache")),
        )
        .unwrap();
        let old = self.workers();
        let out = std::process::Command::new(binary())
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(self.conf())
            .args(["-s", "reload"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nginx -s reload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = self.workers();
            if !now.is_empty() && now.iter().all(|pid| !old.contains(pid)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx workers from before the reload still run"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The pids of the master's worker processes.
    fn workers(&self) -> Vec<u32> {
        let Some(master) = self.child.id() else {
            return Vec::new();
        };
        let out = std::process::Command::new("pgrep")
            .args(["-P", &master.to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// What nginx logged at `warn` and above.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
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
