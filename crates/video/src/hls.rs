//! HLS packaging: one ffmpeg run decodes the source once and encodes every
//! rung of the ladder into VOD playlists of aligned fMP4 segments; an
//! audio-only rendition for music files; and measurement of what was written.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::run::{out_url, redactions, Args, Input, Job, Runner};
use crate::watermark::{ladder_graph, Watermark};
use crate::{Rung, VideoError};

/// Target segment length; keyframes are forced on these boundaries so the
/// segments of all rungs line up.
const SEGMENT_SECS: u32 = 4;
const PLAYLIST: &str = "index.m3u8";
const INIT: &str = "init.mp4";
const AAC_LC: &str = "mp4a.40.2";

/// A rendition written to disk, with what a master playlist needs.
#[derive(Clone, Debug)]
pub struct Rendition {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Peak bits per second over segments (each counted with the init
    /// segment), measured from the files and their EXTINF durations.
    pub bandwidth: u64,
    /// All bytes over the whole duration, in bits per second.
    pub average_bandwidth: u64,
    /// RFC 6381 codecs, e.g. "avc1.64001f,mp4a.40.2".
    pub codecs: String,
    pub frame_rate: Option<f64>,
    pub dir: PathBuf,
    /// File names in `dir`: the playlist, the init segment, then media segments.
    pub files: Vec<String>,
}

impl Runner {
    /// Encodes every rung (decoding once, split filter) into
    /// `out_dir/<rung.name>/` as a VOD HLS rendition, display-oriented and
    /// stripped of metadata, with `watermark` burned in when given.
    pub async fn hls(
        &self,
        input: &Input<'_>,
        rungs: &[Rung],
        watermark: Option<&Watermark>,
        out_dir: &Path,
        cancel: &CancellationToken,
        progress: &(dyn Fn(f64) + Send + Sync),
    ) -> Result<Vec<Rendition>, VideoError> {
        if input.probe.video.is_none() {
            return Err(VideoError::Failed("no video stream".into()));
        }
        if rungs.is_empty() {
            return Err(VideoError::Failed("no rungs to encode".into()));
        }
        // Owned names: a closure-borrowing iterator held across an await makes the
        // future not `Send` for every lifetime, which spawned job handlers need.
        let names: Vec<String> = rungs.iter().map(|r| r.name.clone()).collect();
        let dirs = rung_dirs(out_dir, names.iter().map(String::as_str)).await?;
        let has_audio = input.probe.audio.is_some();
        let mut args = self.args();
        args.input(input.container.demuxer(), &input.url().await?);
        if let Some(wm) = watermark {
            let wm_url = crate::probe::file_url(&wm.png).await?;
            args.input("png_pipe", &wm_url);
        }
        args.push_all(["-filter_complex", &ladder_graph(rungs, watermark)]);
        for (k, (rung, dir)) in rungs.iter().zip(&dirs).enumerate() {
            args.push_all(["-map", &format!("[v{k}]")]);
            if has_audio {
                args.push_all(["-map", "0:a:0"]);
            }
            self.x264(&mut args, rung);
            if has_audio {
                aac(&mut args);
            }
            hls_output(&mut args, dir)?;
        }
        let mut redact = redactions(input.path, "input");
        redact.extend(redactions(out_dir, "output"));
        if let Some(wm) = watermark {
            redact.extend(redactions(&wm.png, "watermark"));
        }
        let work = self.workdir()?;
        let job = Job {
            args,
            cwd: work.path(),
            duration_secs: input.probe.duration_secs,
            redact,
            progress,
        };
        if let Err(e) = self.run(job, cancel).await {
            remove_all(&dirs).await;
            return Err(e);
        }
        let frame_rate = input
            .probe
            .video
            .as_ref()
            .map(|v| v.fps)
            .filter(|f| *f > 0.0);
        let mut out = Vec::with_capacity(rungs.len());
        for (rung, dir) in rungs.iter().zip(dirs) {
            let mut r = measure(&rung.name, dir).await?;
            (r.width, r.height, r.frame_rate) = (rung.width, rung.height, frame_rate);
            out.push(r);
        }
        Ok(out)
    }

    /// Audio-only HLS rendition "audio" in `out_dir/audio/` (AAC-LC 128 kb/s
    /// stereo in fMP4 segments).
    pub async fn audio_hls(
        &self,
        input: &Input<'_>,
        out_dir: &Path,
        cancel: &CancellationToken,
        progress: &(dyn Fn(f64) + Send + Sync),
    ) -> Result<Rendition, VideoError> {
        if input.probe.audio.is_none() {
            return Err(VideoError::NoAudio);
        }
        let dirs = rung_dirs(out_dir, ["audio"]).await?;
        let mut args = self.args();
        args.input(input.container.demuxer(), &input.url().await?)
            .push_all(["-map", "0:a:0", "-vn", "-sn", "-dn"]);
        aac(&mut args);
        hls_output(&mut args, &dirs[0])?;
        let mut redact = redactions(input.path, "input");
        redact.extend(redactions(out_dir, "output"));
        let work = self.workdir()?;
        let job = Job {
            args,
            cwd: work.path(),
            duration_secs: input.probe.duration_secs,
            redact,
            progress,
        };
        if let Err(e) = self.run(job, cancel).await {
            remove_all(&dirs).await;
            return Err(e);
        }
        let dir = dirs.into_iter().next().unwrap_or_default();
        measure("audio", dir).await
    }

    /// H.264 High, capped constant quality, keyframes on segment boundaries.
    fn x264(&self, args: &mut Args, rung: &Rung) {
        let max = rung.max_kbps.max(1);
        args.push_all(["-c:v", "libx264", "-preset", &self.x264_preset])
            .push_all(["-profile:v", "high", "-pix_fmt", "yuv420p", "-crf", "23"])
            // The 8x8 transform makes x264 signal High even under presets
            // (ultrafast) that would otherwise fall back to Baseline.
            .push_all(["-x264-params", "8x8dct=1"])
            .push_all(["-maxrate", &format!("{max}k")])
            .push_all(["-bufsize", &format!("{}k", max * 2)])
            .push("-force_key_frames")
            .push(format!("expr:gte(t,n_forced*{SEGMENT_SECS})"))
            .threads();
    }
}

/// AAC-LC, stereo, 48 kHz, 128 kb/s.
fn aac(args: &mut Args) {
    args.push_all(["-c:a", "aac", "-profile:a", "aac_low", "-b:a", "128k"])
        .push_all(["-ac", "2", "-ar", "48000"]);
}

/// The HLS muxer writing a VOD playlist of fMP4 segments into `dir`.
fn hls_output(args: &mut Args, dir: &Path) -> Result<(), VideoError> {
    let seg = dir.join("seg-%05d.m4s");
    let seg = seg
        .to_str()
        .ok_or_else(|| bad_path("output path is not UTF-8"))?;
    args.no_metadata()
        .push_all(["-f", "hls", "-hls_time", &SEGMENT_SECS.to_string()])
        .push_all(["-hls_playlist_type", "vod", "-hls_segment_type", "fmp4"])
        .push_all([
            "-hls_fmp4_init_filename",
            INIT,
            "-hls_segment_filename",
            seg,
        ])
        .push_all(["-hls_flags", "independent_segments"])
        .push(out_url(&dir.join(PLAYLIST))?);
    Ok(())
}

/// Creates `out_dir/<name>` for each name, refusing names that are not a
/// single plain path component and paths the HLS muxer would misread.
async fn rung_dirs<'a>(
    out_dir: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<PathBuf>, VideoError> {
    if !out_dir.is_absolute() || out_dir.to_str().is_none_or(|s| s.contains('%')) {
        return Err(bad_path(
            "output directory must be absolute, UTF-8, without '%'",
        ));
    }
    let mut dirs = Vec::new();
    for name in names {
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if name.is_empty() || !plain {
            return Err(bad_path("rendition names must be [A-Za-z0-9_-]+"));
        }
        let dir = out_dir.join(name);
        tokio::fs::create_dir_all(&dir).await?;
        dirs.push(dir);
    }
    Ok(dirs)
}

async fn remove_all(dirs: &[PathBuf]) {
    for d in dirs {
        let _ = tokio::fs::remove_dir_all(d).await;
    }
}

fn bad_path(msg: &str) -> VideoError {
    VideoError::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, msg))
}

/// A parsed media playlist: the init segment and (file, seconds) segments.
pub(crate) struct Playlist {
    pub init: String,
    pub segments: Vec<(String, f64)>,
}

impl Playlist {
    pub(crate) fn duration_secs(&self) -> f64 {
        self.segments.iter().map(|(_, d)| d).sum()
    }
}

/// Reads `dir/index.m3u8` as written by ffmpeg; file names must be plain
/// names inside `dir`, and the playlist must be a finished VOD one.
pub(crate) async fn read_playlist(dir: &Path) -> Result<Playlist, VideoError> {
    let text = tokio::fs::read_to_string(dir.join(PLAYLIST)).await?;
    let bad = |why: &str| VideoError::Failed(format!("unexpected playlist: {why}"));
    if !text.contains("#EXT-X-PLAYLIST-TYPE:VOD") || !text.contains("#EXT-X-ENDLIST") {
        return Err(bad("not a finished VOD playlist"));
    }
    let (mut init, mut segments, mut pending) = (None, Vec::new(), None);
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
            init = rest.strip_suffix('"').map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("#EXTINF:") {
            let secs = rest
                .split(',')
                .next()
                .and_then(|s| s.trim().parse::<f64>().ok());
            pending = Some(
                secs.filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| bad("EXTINF"))?,
            );
        } else if !line.is_empty() && !line.starts_with('#') {
            let secs = pending
                .take()
                .ok_or_else(|| bad("segment without EXTINF"))?;
            segments.push((line.to_owned(), secs));
        }
    }
    let init = init.ok_or_else(|| bad("no init segment"))?;
    let plain = |n: &str| !n.is_empty() && !n.contains('/') && !n.starts_with('.');
    if segments.is_empty() || !plain(&init) || !segments.iter().all(|(n, _)| plain(n)) {
        return Err(bad("missing or non-local segments"));
    }
    Ok(Playlist { init, segments })
}

/// Measures a finished rendition directory: bandwidths from the segment
/// sizes and durations, codecs from the init segment's sample entries.
async fn measure(name: &str, dir: PathBuf) -> Result<Rendition, VideoError> {
    let list = read_playlist(&dir).await?;
    let init = tokio::fs::read(dir.join(&list.init)).await?;
    let init_len = init.len() as u64;
    let (mut peak, mut total_bytes) = (0u64, init_len);
    let mut files = vec![PLAYLIST.to_owned(), list.init.clone()];
    for (file, secs) in &list.segments {
        let len = tokio::fs::metadata(dir.join(file)).await?.len();
        total_bytes += len;
        peak = peak.max((((len + init_len) * 8) as f64 / secs).ceil() as u64);
        files.push(file.clone());
    }
    let average = (total_bytes * 8) as f64 / list.duration_secs();
    Ok(Rendition {
        name: name.to_owned(),
        width: 0,
        height: 0,
        bandwidth: peak,
        average_bandwidth: average.ceil() as u64,
        codecs: codecs(&init),
        frame_rate: None,
        dir,
        files,
    })
}

/// RFC 6381 codecs from an init segment: `avc1.PPCCLL` from the avcC box
/// (profile, constraint flags, level as encoded) and AAC-LC when an `mp4a`
/// sample entry is present.
pub(crate) fn codecs(init: &[u8]) -> String {
    let mut out = Vec::new();
    if let Some(i) = find(init, b"avcC") {
        if let Some(&[_version, profile, compat, level]) = init.get(i + 4..i + 8) {
            out.push(format!("avc1.{profile:02x}{compat:02x}{level:02x}"));
        }
    }
    if find(init, b"mp4a").is_some() {
        out.push(AAC_LC.to_owned());
    }
    out.join(",")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_come_from_avcc_and_mp4a_boxes() {
        let mut init = b"....stsd....avc1....".to_vec();
        init.extend(b"\0\0\0\x30avcC\x01\x64\x00\x1f\xff");
        assert_eq!(codecs(&init), "avc1.64001f");
        init.extend(b"\0\0\0\x20mp4a");
        assert_eq!(codecs(&init), "avc1.64001f,mp4a.40.2");
        assert_eq!(codecs(b"\0\0\0\x20mp4a"), "mp4a.40.2");
    }

    #[tokio::test]
    async fn playlists_must_be_finished_vod_with_local_segments() {
        let dir = tempfile::tempdir().unwrap();
        let ok = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n\
                  #EXTINF:4.000000,\nseg-00000.m4s\n#EXTINF:1.5,\nseg-00001.m4s\n#EXT-X-ENDLIST\n";
        std::fs::write(dir.path().join(PLAYLIST), ok).unwrap();
        let p = read_playlist(dir.path()).await.unwrap();
        assert_eq!(p.init, "init.mp4");
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.duration_secs(), 5.5);

        let hostile = ok.replace("seg-00001.m4s", "/etc/passwd");
        std::fs::write(dir.path().join(PLAYLIST), hostile).unwrap();
        assert!(read_playlist(dir.path()).await.is_err());
        let unfinished = ok.replace("#EXT-X-ENDLIST\n", "");
        std::fs::write(dir.path().join(PLAYLIST), unfinished).unwrap();
        assert!(read_playlist(dir.path()).await.is_err());
    }
}
