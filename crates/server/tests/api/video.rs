//! Video and audio end to end with real ffmpeg: upload, the processing job's outputs
//! (ffprobed), HLS delivery and its authorisation, audio extraction, hostile inputs.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use server::settings::Settings;

use crate::both_backends;
use crate::helpers::{error_code, spawn_app_with, Backend, TestApp};
use crate::video_fixtures::*;

fn fast(s: &mut Settings) {
    s.video.ladder = vec![240, 360];
    s.video.x264_preset = "ultrafast".into();
}

impl TestApp {
    /// Polls a job until it finishes; returns its JSON.
    pub async fn wait_job(&self, token: &str, job_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let job: Value = self
                .get(Some(token), &format!("/api/v1/jobs/{job_id}"))
                .await
                .json()
                .await
                .unwrap();
            if ["succeeded", "dead", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} did not finish: {job}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Uploads a clip, waits for its job to succeed, returns the item JSON.
    async fn processed_clip(&self, token: &str, bytes: Vec<u8>, query: &str) -> Value {
        let item = self.upload_ok(token, bytes, query).await;
        let job = self.wait_job(token, item["job_id"].as_str().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(
            job["attempts"], 1,
            "every step worked the first time: {job}"
        );
        let id = item["id"].as_str().unwrap();
        self.get_item(Some(token), id).await.json().await.unwrap()
    }

    async fn bytes(&self, token: Option<&str>, path: &str) -> Vec<u8> {
        let resp = self.get(token, path).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.bytes().await.unwrap().to_vec()
    }

    /// init.mp4 + every segment of a rendition, as one fragmented MP4.
    async fn whole_rendition(&self, token: Option<&str>, id: &str, name: &str) -> Vec<u8> {
        let base = format!("/media/{id}/hls/{name}");
        let playlist =
            String::from_utf8(self.bytes(token, &format!("{base}/index.m3u8")).await).unwrap();
        assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
        let mut out = self.bytes(token, &format!("{base}/init.mp4")).await;
        for line in playlist
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            out.extend(self.bytes(token, &format!("{base}/{line}")).await);
        }
        out
    }
}

async fn an_h264_mp4_gets_a_poster_a_ladder_a_storyboard_and_an_mp4(backend: Backend) {
    let app = spawn_app_with(backend, fast).await;
    h264_end_to_end(&app).await;
}

/// The same on SeaweedFS: renditions, storyboard and MP4 are published to the bucket and
/// served from it (the MP4 job reads the renditions back from the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(skip_s3, ignore = "FRAMEHOUSE_TEST_SKIP_S3=1")]
async fn an_h264_mp4_is_processed_and_played_from_s3() {
    let s3 = crate::storage::s3_settings();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fast(s);
        s.storage = s3;
    })
    .await;
    h264_end_to_end(&app).await;
    assert!(
        app.files_under("objects").is_empty(),
        "nothing written to the local object folder"
    );
}

async fn h264_end_to_end(app: &TestApp) {
    let token = app.user("vera").await;
    let item = app
        .processed_clip(&token, mp4(640, 360, 4), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap();
    assert_eq!(item["kind"], "video");
    assert_eq!(item["status"], "ready");
    assert_eq!(item["format"], "mp4");
    assert_eq!(item["mime"], "video/mp4");
    assert_eq!(
        (item["width"].as_i64(), item["height"].as_i64()),
        (Some(640), Some(360))
    );
    let duration = item["duration"].as_f64().unwrap();
    assert!((duration - 4.0).abs() < 0.2, "{duration}");

    // The poster went through the image presets.
    let thumb = app.bytes(None, &format!("/media/{id}/thumb.webp")).await;
    assert_eq!(&thumb[8..12], b"WEBP");
    let large = item["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["preset"] == "large" && v["format"] == "jpg")
        .unwrap();
    assert_eq!(
        (large["width"].as_i64(), large["height"].as_i64()),
        (Some(640), Some(360))
    );

    // On-the-fly transforms start from the poster.
    let small = app.bytes(None, &format!("/img/{id}/w_100.png")).await;
    let small = image::load_from_memory(&small).unwrap();
    assert_eq!((small.width(), small.height()), (100, 56));
    let cropped = app
        .get(None, &format!("/img/{id}/w_64,h_64,fit_cover.jpg"))
        .await;
    assert_eq!(cropped.status(), StatusCode::OK);

    // The master lists both rungs, lowest first, with the attributes players need.
    let master = String::from_utf8(
        app.bytes(None, &format!("/media/{id}/hls/master.m3u8"))
            .await,
    )
    .unwrap();
    assert!(master.starts_with("#EXTM3U\n"), "{master}");
    let infs: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    assert_eq!(infs.len(), 2, "{master}");
    assert!(
        infs[0].contains("RESOLUTION=426x240") && infs[1].contains("RESOLUTION=640x360"),
        "{master}"
    );
    for inf in &infs {
        assert!(
            inf.contains("BANDWIDTH=") && inf.contains("CODECS=\"avc1.64"),
            "{inf}"
        );
        assert!(inf.contains("mp4a.40.2"), "{inf}");
    }
    assert!(master.contains("\n240p/index.m3u8\n") && master.contains("\n360p/index.m3u8\n"));
    let playback = &item["playback"];
    assert_eq!(playback["renditions"].as_array().unwrap().len(), 2);

    // Every rendition decodes at its size, H.264 + AAC, without the GPS tag.
    for (name, size) in [("240p", (426, 240)), ("360p", (640, 360))] {
        let whole = app.whole_rendition(None, id, name).await;
        let probe = ffprobe(&whole, "r.mp4");
        assert_eq!(video_size(&probe), size, "{name}");
        assert_eq!(codecs(&probe), ["h264", "aac"], "{name}");
        assert!(probe["format"]["tags"]["location"].is_null(), "{probe}");
    }
    let seg = app
        .get(None, &format!("/media/{id}/hls/240p/init.mp4"))
        .await;
    assert_eq!(seg.headers()["content-type"], "video/mp4");
    assert!(seg.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let pl = app
        .get(None, &format!("/media/{id}/hls/240p/index.m3u8"))
        .await;
    assert_eq!(
        pl.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    // Names the job did not publish are not reachable.
    let probe_other = app
        .get(None, &format!("/media/{id}/hls/240p/..%2F..%2Foriginal"))
        .await;
    assert_eq!(probe_other.status(), StatusCode::NOT_FOUND);

    // Storyboard: every cue points inside the sprite.
    let vtt = String::from_utf8(
        app.bytes(None, &format!("/media/{id}/storyboard.vtt"))
            .await,
    )
    .unwrap();
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    let sprite = app
        .bytes(None, &format!("/media/{id}/storyboard.jpg"))
        .await;
    let sprite = image::load_from_memory(&sprite).unwrap();
    let mut cues = 0;
    for line in vtt.lines().filter(|l| l.contains("#xywh=")) {
        let (file, xywh) = line.split_once("#xywh=").unwrap();
        assert_eq!(file, "storyboard.jpg");
        let n: Vec<u32> = xywh.split(',').map(|v| v.parse().unwrap()).collect();
        assert!(
            n[0] + n[2] <= sprite.width() && n[1] + n[3] <= sprite.height(),
            "{line}"
        );
        cues += 1;
    }
    assert!(cues >= 2, "{vtt}");

    // The progressive MP4: faststart, the top rung's size, Range works.
    let mp4_bytes = app.bytes(None, &format!("/media/{id}/video.mp4")).await;
    let boxes = top_level_boxes(&mp4_bytes);
    let moov = boxes.iter().position(|b| b == "moov").unwrap();
    let mdat = boxes.iter().position(|b| b == "mdat").unwrap();
    assert!(moov < mdat, "{boxes:?}");
    assert_eq!(video_size(&ffprobe(&mp4_bytes, "v.mp4")), (640, 360));
    let ranged = app
        .client
        .get(app.url(&format!("/media/{id}/video.mp4")))
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.bytes().await.unwrap().len(), 100);
}

async fn a_private_video_plays_only_with_authorisation_or_a_live_token(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        fast(s);
        s.video.ladder = vec![240];
        s.video.storyboard = false;
        s.video.mp4_fallback = false;
    })
    .await;
    let token = app.user("pia").await;
    let item = app.processed_clip(&token, mp4(320, 240, 2), "").await;
    let id = item["id"].as_str().unwrap();
    let master_path = format!("/media/{id}/hls/master.m3u8");
    assert_eq!(
        app.get(None, &master_path).await.status(),
        StatusCode::NOT_FOUND
    );
    let other = app.user("mallory").await;
    assert_eq!(
        app.get(Some(&other), &master_path).await.status(),
        StatusCode::NOT_FOUND
    );

    // The owner's master carries a token on every URL, which opens the rest anonymously.
    let master = String::from_utf8(app.bytes(Some(&token), &master_path).await).unwrap();
    let media_line = master.lines().find(|l| l.starts_with("240p/")).unwrap();
    assert!(media_line.contains("?token="), "{master}");
    let media = String::from_utf8(
        app.bytes(None, &format!("/media/{id}/hls/{media_line}"))
            .await,
    )
    .unwrap();
    let segment = media.lines().find(|l| !l.starts_with('#')).unwrap();
    assert!(segment.contains("?token="), "{media}");
    assert!(media.contains("URI=\"init.mp4?token="), "{media}");
    assert_eq!(
        app.get(None, &format!("/media/{id}/hls/240p/{segment}"))
            .await
            .status(),
        StatusCode::OK
    );
    let bare = segment.split('?').next().unwrap();
    assert_eq!(
        app.get(None, &format!("/media/{id}/hls/240p/{bare}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // The token also opens the poster, never the original.
    let tok = segment.split("?token=").nth(1).unwrap();
    assert_eq!(
        app.get(None, &format!("/media/{id}/thumb.webp?token={tok}"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get(None, &format!("/media/{id}/original?token={tok}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // Tampered, foreign and expired tokens are refused.
    let signer = &app.state.keyring;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired =
        server::media::access::mint(signer, id, now - 1, &server::media::access::Grant::Owner);
    let live =
        server::media::access::mint(signer, id, now + 60, &server::media::access::Grant::Owner);
    let foreign = server::media::access::mint(
        signer,
        "someotheritem",
        now + 60,
        &server::media::access::Grant::Owner,
    );
    let tampered = format!(
        "{}{}",
        &live[..live.len() - 2],
        if live.ends_with("AA") { "BB" } else { "AA" }
    );
    for (t, ok) in [
        (&live, true),
        (&expired, false),
        (&foreign, false),
        (&tampered, false),
    ] {
        let status = app
            .get(None, &format!("{master_path}?token={t}"))
            .await
            .status();
        assert_eq!(status == StatusCode::OK, ok, "token {t}: {status}");
    }
    // The owner can mint one for a player.
    let minted: Value = app
        .client
        .post(app.url(&format!("/api/v1/media/{id}/playback-token")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hls_url = minted["hls_url"].as_str().unwrap();
    assert_eq!(app.get(None, hls_url).await.status(), StatusCode::OK);
}

both_backends!(
    an_h264_mp4_gets_a_poster_a_ladder_a_storyboard_and_an_mp4,
    a_private_video_plays_only_with_authorisation_or_a_live_token,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vp9_opus_webm_is_transcoded_to_h264_renditions() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fast(s);
        s.video.storyboard = false;
    })
    .await;
    let token = app.user("wes").await;
    let item = app
        .processed_clip(&token, webm(480, 270, 2), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap();
    assert_eq!(item["format"], "webm");
    let names: Vec<&str> = item["playback"]["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["240p"], "never above the 270p source");
    let whole = app.whole_rendition(None, id, "240p").await;
    let probe = ffprobe(&whole, "r.mp4");
    assert_eq!(codecs(&probe), ["h264", "aac"]);
    assert_eq!(video_size(&probe), (426, 240));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_portrait_phone_clip_stays_portrait_everywhere() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fast(s);
        s.video.storyboard = false;
    })
    .await;
    let token = app.user("pat").await;
    let item = app
        .processed_clip(&token, mp4_rotated(640, 360, 2), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap();
    assert_eq!(
        (item["width"].as_i64(), item["height"].as_i64()),
        (Some(360), Some(640))
    );
    let large = item["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["preset"] == "large" && v["format"] == "jpg")
        .unwrap();
    assert!(
        large["height"].as_i64() > large["width"].as_i64(),
        "poster is portrait: {large}"
    );
    let whole = app.whole_rendition(None, id, "240p").await;
    let probe = ffprobe(&whole, "r.mp4");
    assert_eq!(video_size(&probe), (240, 426));
    let rotated = probe["streams"][0]["side_data_list"]
        .as_array()
        .is_some_and(|l| l.iter().any(|d| d["rotation"].as_i64().unwrap_or(0) != 0));
    assert!(!rotated, "no rotation left to apply: {probe}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_audio_only_upload_is_its_own_kind_with_a_waveform_and_an_audio_stream() {
    let app = spawn_app_with(Backend::Sqlite, fast).await;
    let token = app.user("ada").await;
    let item = app
        .processed_clip(&token, mp3(3), "visibility=public")
        .await;
    let id = item["id"].as_str().unwrap();
    assert_eq!(item["kind"], "audio");
    assert_eq!(item["mime"], "audio/mpeg");
    assert!(item["playback"]["storyboard_url"].is_null());
    assert_eq!(
        app.get(None, &format!("/media/{id}/thumb.webp"))
            .await
            .status(),
        StatusCode::OK
    );
    let master = String::from_utf8(
        app.bytes(None, &format!("/media/{id}/hls/master.m3u8"))
            .await,
    )
    .unwrap();
    let inf = master
        .lines()
        .find(|l| l.starts_with("#EXT-X-STREAM-INF"))
        .unwrap();
    assert!(
        inf.contains("CODECS=\"mp4a.40.2\"") && !inf.contains("RESOLUTION"),
        "{master}"
    );
    let m4a = app.bytes(None, &format!("/media/{id}/audio.m4a")).await;
    let probe = ffprobe(&m4a, "a.m4a");
    assert_eq!(codecs(&probe), ["aac"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audio_is_extracted_on_request_in_each_format() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fast(s);
        s.video.ladder = vec![240];
        s.video.storyboard = false;
        s.video.mp4_fallback = false;
    })
    .await;
    let token = app.user("axel").await;
    let item = app.processed_clip(&token, mp4(320, 240, 2), "").await;
    let id = item["id"].as_str().unwrap();
    let ask = |format: &'static str| {
        app.client
            .post(app.url(&format!("/api/v1/media/{id}/audio")))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "format": format }))
            .send()
    };
    for (format, codec) in [("mp3", "mp3"), ("opus", "opus"), ("m4a", "aac")] {
        let resp = ask(format).await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{format}");
        let body: Value = resp.json().await.unwrap();
        let job = app.wait_job(&token, body["job_id"].as_str().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        let file = app.bytes(Some(&token), body["url"].as_str().unwrap()).await;
        let probe = ffprobe(&file, &format!("a.{format}"));
        assert_eq!(codecs(&probe), [codec], "{format}: {probe}");
        // Asking again answers at once.
        assert_eq!(ask(format).await.unwrap().status(), StatusCode::OK);
    }
    let resp = ask("flac").await.unwrap();
    assert_eq!(
        error_code(resp).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_format".into())
    );
    // Only the owner may start work on an item.
    let other = app.user("eve").await;
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/media/{id}/audio")))
        .bearer_auth(&other)
        .json(&serde_json::json!({ "format": "mp3" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // A clip without audio says so.
    let silent = app
        .processed_clip(&token, mp4_silent(320, 240, 2), "")
        .await;
    let resp = app
        .client
        .post(app.url(&format!(
            "/api/v1/media/{}/audio",
            silent["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "format": "mp3" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "no_audio".into())
    );
}

/// A listener that records whether anything connected to it.
async fn canary() -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hit = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = hit.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (port, hit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_and_broken_video_uploads_are_refused_and_leave_nothing_behind() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fast(s);
        s.video.max_duration_secs = 3.0;
        s.video.max_width = 1280;
        s.video.max_height = 720;
    })
    .await;
    let token = app.user("hal").await;
    let (port, hit) = canary().await;
    let playlist = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXTINF:10,\nhttp://127.0.0.1:{port}/x.ts\n#EXT-X-ENDLIST\n"
    );
    let concat =
        format!("ffconcat version 1.0\nfile /etc/passwd\nfile http://127.0.0.1:{port}/y\n");
    // A playlist behind a real-looking `ftyp` box: sniffed as MP4, read only by the MP4 demuxer.
    let mut disguised = vec![0, 0, 0, 0x18];
    disguised.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2");
    disguised.extend_from_slice(playlist.as_bytes());
    let mut avi = b"RIFF\x00\x10\x00\x00AVI LIST".to_vec();
    avi.extend_from_slice(playlist.as_bytes());
    let full = mp4(320, 240, 2);
    let truncated = full[..full.len() * 2 / 3].to_vec();
    let moov_last = mp4_moov_last(320, 240, 2);
    let moov_cut = moov_last[..moov_last.len() - 200].to_vec();
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "playlist",
            playlist.clone().into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_format",
        ),
        (
            "ffconcat",
            concat.into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_format",
        ),
        (
            "avi playlist",
            avi,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_format",
        ),
        (
            "mp4 playlist",
            disguised,
            StatusCode::UNPROCESSABLE_ENTITY,
            "truncated_media",
        ),
        (
            "truncated mp4",
            truncated,
            StatusCode::UNPROCESSABLE_ENTITY,
            "truncated_media",
        ),
        (
            "moov cut off",
            moov_cut,
            StatusCode::UNPROCESSABLE_ENTITY,
            "truncated_media",
        ),
        (
            "too long",
            mp4(320, 240, 5),
            StatusCode::UNPROCESSABLE_ENTITY,
            "media_too_large",
        ),
        (
            "too large",
            mp4_silent(1920, 1080, 1),
            StatusCode::UNPROCESSABLE_ENTITY,
            "media_too_large",
        ),
        (
            "empty",
            Vec::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_upload",
        ),
    ];
    for (what, bytes, status, code) in cases {
        let resp = app.upload(&token, bytes, "").await;
        assert_eq!(error_code(resp).await, (status, code.to_string()), "{what}");
    }
    assert!(
        !hit.load(std::sync::atomic::Ordering::SeqCst),
        "something followed a URL"
    );
    assert_eq!(app.count("blobs").await, 0);
    assert_eq!(app.count("media").await, 0);
    let processing_jobs: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind LIKE 'process%'")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(processing_jobs, 0);
    assert!(
        app.files_under("objects").is_empty(),
        "{:?}",
        app.files_under("objects")
    );
    assert!(
        app.files_under("tmp").is_empty(),
        "{:?}",
        app.files_under("tmp")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_transcode_can_be_cancelled_and_reports_progress() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.video.ladder = vec![240, 360, 480, 720];
        s.video.x264_preset = "medium".into();
        s.video.storyboard = false;
        s.worker.lease_secs = 3;
    })
    .await;
    let token = app.user("cam").await;
    let item = app.upload_ok(&token, mp4_silent(1280, 720, 20), "").await;
    let job_id = item["job_id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job: Value = app
            .get(Some(&token), &format!("/api/v1/jobs/{job_id}"))
            .await
            .json()
            .await
            .unwrap();
        let progress = job["progress"].as_i64().unwrap_or(0);
        if job["state"] == "running" && progress > 0 && progress < 100 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress reported: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/jobs/{job_id}/cancel")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let job: Value = resp.json().await.unwrap();
    assert_eq!(job["state"], "cancelled");
    // The handler stops: its work dir goes when it returns, so nothing more can appear.
    let work_dirs = || {
        std::fs::read_dir(app.data_dir.join("tmp"))
            .map(|d| {
                (d.flatten())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("video-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while work_dirs() > 0 {
        assert!(
            Instant::now() < deadline,
            "the cancelled transcode kept running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = app.count("renditions").await;
    assert!(count < 4, "the ladder was not finished: {count} renditions");
    let job: Value = app
        .get(Some(&token), &format!("/api/v1/jobs/{job_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["state"], "cancelled");
    let again = app
        .client
        .post(app.url(&format!("/api/v1/jobs/{job_id}/cancel")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(again).await,
        (StatusCode::CONFLICT, "job_finished".into())
    );
}

/// Mean brightness of the bottom-right quarter-width corner of the first frame.
fn corner_brightness(mp4: &[u8]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    let frame = dir.path().join("frame.png");
    std::fs::write(&input, mp4).unwrap();
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(&input)
        .args(["-frames:v", "1"])
        .arg(&frame)
        .status()
        .unwrap();
    assert!(status.success());
    let img = image::open(&frame).unwrap().to_luma8();
    let (w, h) = img.dimensions();
    let (x0, y0) = (w * 3 / 4, h * 3 / 4);
    let mut sum = 0u64;
    for y in y0..h {
        for x in x0..w {
            sum += u64::from(img.get_pixel(x, y)[0]);
        }
    }
    sum as f64 / f64::from((w - x0) * (h - y0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_owners_watermark_is_burned_into_renditions_unless_the_upload_opts_out() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fast(s);
        s.video.ladder = vec![240];
        s.video.storyboard = false;
    })
    .await;
    let token = app.user("wanda").await;
    let white = crate::fixtures::encode(
        &image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            64,
            64,
            image::Rgb([255, 255, 255]),
        )),
        image::ImageFormat::Png,
    );
    let mark = app.upload_ok(&token, white, "").await;
    app.wait_processed(&token, mark["id"].as_str().unwrap())
        .await;
    let settings = serde_json::json!({
        "media_id": mark["id"], "position": "se", "margin": 0, "opacity": 1.0, "scale": 0.25
    });
    let put = |body: Value| {
        app.client
            .put(app.url("/api/v1/account/watermark"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    assert_eq!(
        put(settings.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    let bad = put(serde_json::json!({ "media_id": mark["id"], "opacity": 3.0 }))
        .await
        .unwrap();
    assert_eq!(
        error_code(bad).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_watermark".into())
    );

    let clip = mp4(320, 240, 2);
    let marked = app
        .processed_clip(&token, clip.clone(), "visibility=public")
        .await;
    let plain = app
        .processed_clip(&token, clip.clone(), "visibility=public&watermark=none")
        .await;
    // Same content hash, but two blobs: their renditions differ.
    assert_eq!(marked["sha256"], plain["sha256"]);
    assert_eq!(plain["deduplicated"], false);
    let with = corner_brightness(
        &app.whole_rendition(None, marked["id"].as_str().unwrap(), "240p")
            .await,
    );
    let without = corner_brightness(
        &app.whole_rendition(None, plain["id"].as_str().unwrap(), "240p")
            .await,
    );
    assert!(with > without + 60.0, "corner {with} vs {without}");
    // Someone else's image cannot be used as a watermark.
    let other = app.user("otto").await;
    let resp = app
        .upload(
            &other,
            clip,
            &format!("watermark={}", mark["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        error_code(resp).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_watermark".into())
    );
}
