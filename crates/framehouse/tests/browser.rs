//! The web UI in a real browser: `tests/browser/suite.mjs` drives Debian's Chromium with
//! playwright-core against this binary (every role, SQLite, a fresh data dir), and this
//! harness makes its media with ffmpeg, restarts the server with SIGKILL when the suite
//! asks (mid-upload), and fails on any failed step. Screenshots land in
//! `<target>/ui-screenshots`. The suite and Chromium come from
//! `scripts/with-test-services.sh`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[allow(dead_code)]
#[path = "support/server.rs"]
mod server;
use server::{service_env, Server, Store};

/// Makes the suite's media: three photos, a short video with sound (long enough that
/// stopping early leaves a resume position), a sound, and two large uncompressed images
/// for the interrupted uploads.
fn fixtures(dir: &Path) {
    let ffmpeg = |args: &[&str], out: &str| {
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .arg(dir.join(out))
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "ffmpeg made {out}");
    };
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1600x1200:rate=1",
            "-frames:v",
            "1",
        ],
        "photo-1.jpg",
    );
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "mandelbrot=size=1200x1600:rate=1",
            "-frames:v",
            "1",
        ],
        "photo-2.jpg",
    );
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "smptehdbars=size=1280x720:rate=1",
            "-frames:v",
            "1",
        ],
        "photo-3.png",
    );
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=854x480:rate=30:duration=24",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=24",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-preset",
            "veryfast",
            "-c:a",
            "aac",
            "-shortest",
        ],
        "clip.mp4",
    );
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=330:duration=6",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "96k",
        ],
        "tone.mp3",
    );
    for (name, side) in [("big-1.bmp", 3600u32), ("big-2.bmp", 3000)] {
        let (header, row) = server::bmp_header(side);
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(name)).unwrap());
        out.write_all(&header).unwrap();
        let mut noise = std::fs::File::open("/dev/urandom").unwrap();
        std::io::copy(
            &mut std::io::Read::take(&mut noise, (row * side) as u64),
            &mut out,
        )
        .unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_ui_in_chromium() {
    let media = tempfile::tempdir().unwrap();
    fixtures(media.path());
    // The test OpenID provider (GOOD) for the sign-in button, webhooks allowed to reach
    // the suite's receiver on loopback, and a short subscriber lease: the suite kills the
    // server with SIGKILL, and the restarted one takes the dead one's subscribers (the
    // notifier among them) back when that lease runs out.
    let extra = format!(
        "[[auth.oidc]]\nid = \"test\"\nname = \"Test ID\"\nissuer = \"{}\"\n\
         client_id = \"framehouse\"\nclient_secret = \"framehouse-secret\"\n\
         scopes = [\"openid\", \"email\", \"profile\"]\n\
         [webhooks]\nallow_private_targets = true\n[events]\nlease_secs = 2\n",
        service_env("FRAMEHOUSE_TEST_OIDC_GOOD")
    );
    let mut server = Server::with_config(Store::Local, "api,worker,scheduler", &extra);
    let http = reqwest::Client::new();
    server.wait_ready(&http).await;
    // An operator's admin, made with the CLI beside the running server.
    server.cli(&[
        "user",
        "create",
        "--username",
        "root",
        "--password",
        "correct horse battery staple",
        "--admin",
    ]);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots");
    let mut child = Command::new("node")
        .arg(service_env("FRAMEHOUSE_TEST_BROWSER_SUITE"))
        .env("FRAMEHOUSE_BASE", server.base())
        .env("FIXTURES", media.path())
        .env("NOTIFICATIONS", server.data_dir().join("notifications.log"))
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", service_env("FRAMEHOUSE_TEST_CHROMIUM"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs the suite");
    let mut to_suite = child.stdin.take().unwrap();
    let mut rx = server::stdout_lines(&mut child);
    let mut steps = Vec::new();
    let mut restarts = 0;
    loop {
        let line = tokio::time::timeout(Duration::from_secs(300), rx.recv())
            .await
            .expect("the suite said nothing for five minutes");
        let Some(line) = line else { break };
        eprintln!("browser: {line}");
        if line == "restart" {
            restarts += 1;
            server.kill9();
            server.start();
            server.wait_ready(&http).await;
            writeln!(to_suite, "restarted").unwrap();
        } else if let Some(step) = line.strip_prefix("ok ") {
            steps.push(step.to_string());
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the browser suite failed after {} steps ({}):\n{}\nserver log (tail):\n{}",
        steps.len(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        tail(&server.log(), 60)
    );
    assert_eq!(restarts, 1, "the suite restarted the server once");
    assert_eq!(steps.len(), 17, "every step ran: {steps:#?}");
    let shot = std::fs::read(shots.join("library-phone.png")).expect("screenshots are written");
    assert_eq!(&shot[1..4], b"PNG");
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
