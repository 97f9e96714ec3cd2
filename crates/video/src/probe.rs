//! Runs `ffprobe` under tight constraints and turns its JSON into a [`Probe`].
//!
//! The threat model is an upload that is really a playlist, concat list or
//! other reference-following format in disguise. ffprobe therefore gets one
//! forced demuxer (also the only whitelisted one), only the `file` protocol,
//! an absolute `file:` input, no stdin, an empty environment, a private
//! working directory, a wall-clock limit and a cap on what it may print.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::limits::{check, ProbeLimits};
use crate::report::parse_report;
use crate::{Container, VideoError};

pub use crate::report::{AudioStream, Probe, VideoStream};

/// ffprobe's JSON for a sane file is a few KiB; anything beyond this is an
/// attack on our parser or memory, not media worth accepting.
const MAX_STDOUT: u64 = 1024 * 1024;
/// Enough of stderr to explain a failure in the logs.
const MAX_STDERR: u64 = 16 * 1024;

/// Probes `path`, already sniffed as `container`, and enforces the codec
/// allow-list and `limits`. The file is read by the forced demuxer only.
pub async fn probe(
    path: &Path,
    container: Container,
    limits: &ProbeLimits,
) -> Result<Probe, VideoError> {
    // An empty file cannot be media; skip spawning a process for it.
    if tokio::fs::metadata(path).await?.len() == 0 {
        return Err(VideoError::Corrupt("empty file".into()));
    }
    let input = file_url(path).await?;
    let json = run_ffprobe(&input, container, limits).await?;
    let probe = parse_report(&json, container)?;
    check(&probe, limits)?;
    Ok(probe)
}

/// Builds the `file:` URL ffprobe reads. The prefix pins the protocol even if
/// the path contains a colon; the path is absolute so the private working
/// directory does not change what is opened.
pub(crate) async fn file_url(path: &Path) -> Result<String, VideoError> {
    let abs = tokio::fs::canonicalize(path).await?;
    let abs = abs.to_str().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8")
    })?;
    Ok(format!("file:{abs}"))
}

async fn run_ffprobe(
    input: &str,
    container: Container,
    limits: &ProbeLimits,
) -> Result<Vec<u8>, VideoError> {
    let workdir = tempfile::Builder::new()
        .prefix("framehouse-probe-")
        .tempdir()?;
    let demuxer = container.demuxer();
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-hide_banner", "-v", "error"])
        .args(["-print_format", "json", "-show_format", "-show_streams"])
        .args(["-f", demuxer, "-format_whitelist", demuxer])
        .args(["-protocol_whitelist", "file"])
        .arg(input)
        .current_dir(workdir.path())
        // No proxy variables, font configs or ffmpeg overrides from our env.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Dropping the child on timeout or error must not leave it running.
        .kill_on_drop(true);

    let run = async {
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (out, err) = tokio::try_join!(read_stdout(stdout), read_stderr(stderr))?;
        let status = child.wait().await?;
        Ok::<_, VideoError>((status, out, err))
    };
    let (status, out, err) = tokio::time::timeout(limits.timeout, run)
        .await
        .map_err(|_| VideoError::Timeout)??;
    drop(workdir);

    if !status.success() {
        let reason = first_line(&err, input);
        tracing::debug!(%input, %status, %reason, "ffprobe rejected input");
        return Err(VideoError::Corrupt(reason));
    }
    Ok(out)
}

/// Reads stdout up to the cap; one byte more means the output is too large,
/// and returning early drops (and so kills) the child.
async fn read_stdout(pipe: Option<impl AsyncRead + Unpin>) -> Result<Vec<u8>, VideoError> {
    let mut buf = Vec::new();
    if let Some(pipe) = pipe {
        pipe.take(MAX_STDOUT + 1).read_to_end(&mut buf).await?;
    }
    if buf.len() as u64 > MAX_STDOUT {
        return Err(VideoError::TooLarge("probe output".into()));
    }
    Ok(buf)
}

/// Keeps the start of stderr and drains the rest so ffprobe never blocks on
/// a full pipe while we wait for it to exit.
async fn read_stderr(pipe: Option<impl AsyncRead + Unpin>) -> Result<Vec<u8>, VideoError> {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        (&mut pipe).take(MAX_STDERR).read_to_end(&mut buf).await?;
        tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await?;
    }
    Ok(buf)
}

/// The first meaningful stderr line, with our path replaced so error
/// messages shown to users never reveal the server's directory layout.
fn first_line(stderr: &[u8], input: &str) -> String {
    let text = String::from_utf8_lossy(stderr).replace(input, "input");
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let line = line.unwrap_or("ffprobe could not read the file");
    line.chars().take(200).collect()
}
