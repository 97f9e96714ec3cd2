//! The one place ffmpeg is spawned. Every run gets the same hardening as
//! ffprobe: an argument vector, one forced and whitelisted demuxer per input,
//! only the `file`/`pipe` protocols, an empty environment, a private working
//! directory, a memory ceiling, a wall-clock limit and a cancellation token.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::probe::file_url;
use crate::{Container, Probe, VideoError};

/// Prefix of every private working directory, so leaks are easy to spot.
pub(crate) const WORKDIR_PREFIX: &str = "framehouse-ffmpeg-";
/// How much of stderr is kept (its end) to explain a failure.
const MAX_STDERR: usize = 16 * 1024;
/// A progress line longer than this is not ffmpeg's `key=value` output.
const MAX_PROGRESS_LINE: u64 = 4096;

/// Runs ffmpeg for the processing steps, bounding how many run at once.
#[derive(Clone, Debug)]
pub struct Runner {
    /// Bounds concurrent ffmpeg processes; one permit is held per process.
    pub permits: Arc<Semaphore>,
    /// Address-space limit (RLIMIT_AS) of each child in bytes; 0 = none.
    pub max_memory_bytes: u64,
    /// Passed to decoders and encoders as `-threads` when above zero.
    pub threads: u32,
    /// libx264 preset, e.g. "veryfast".
    pub x264_preset: String,
    /// Shortest wall-clock limit of any step.
    pub timeout_floor: Duration,
    /// Extra wall-clock time per second of media; a step's limit is
    /// `timeout_floor + duration_secs * timeout_per_media_second`.
    pub timeout_per_media_second: f64,
    /// Where private working directories are made; `None` = the system
    /// temp dir. Tests point it at their own directory to check cleanup.
    pub work_root: Option<PathBuf>,
}

impl Runner {
    /// A runner allowing `concurrency` simultaneous ffmpeg processes (at
    /// least one) with defaults suited to a small self-hosted server.
    pub fn new(concurrency: usize) -> Runner {
        Runner {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            max_memory_bytes: 4 << 30,
            threads: 0,
            x264_preset: "veryfast".into(),
            timeout_floor: Duration::from_secs(300),
            timeout_per_media_second: 20.0,
            work_root: None,
        }
    }

    /// The wall-clock limit of one step over `duration_secs` of media.
    pub(crate) fn step_timeout(&self, duration_secs: f64) -> Duration {
        let extra = duration_secs.max(0.0) * self.timeout_per_media_second.max(0.0);
        let extra = Duration::try_from_secs_f64(extra).unwrap_or(Duration::MAX);
        self.timeout_floor.saturating_add(extra)
    }

    /// A fresh private directory: ffmpeg's cwd and the step's scratch space.
    pub(crate) fn workdir(&self) -> Result<tempfile::TempDir, VideoError> {
        let root = self.work_root.clone().unwrap_or_else(std::env::temp_dir);
        Ok(tempfile::Builder::new()
            .prefix(WORKDIR_PREFIX)
            .tempdir_in(root)?)
    }

    /// An argument list starting with the flags every run shares.
    pub(crate) fn args(&self) -> Args {
        let mut a = Args {
            list: Vec::new(),
            threads: self.threads,
        };
        // -y: output paths are chosen by the caller, who owns them.
        a.push_all(["-nostdin", "-y", "-hide_banner", "-v", "error", "-nostats"]);
        a.push_all(["-progress", "pipe:1"]);
        a
    }

    /// Runs one ffmpeg process to completion, reporting progress as a
    /// fraction of `job.duration_secs` of output time.
    pub(crate) async fn run(
        &self,
        job: Job<'_>,
        cancel: &CancellationToken,
    ) -> Result<(), VideoError> {
        let _permit = tokio::select! {
            p = self.permits.acquire() => p.map_err(|_| VideoError::Cancelled)?,
            _ = cancel.cancelled() => return Err(VideoError::Cancelled),
        };
        let mut cmd = Command::new("ffmpeg");
        cmd.args(&job.args.list)
            .current_dir(job.cwd)
            // No proxy variables, font configs or ffmpeg overrides from our env.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        limit_memory(&mut cmd, self.max_memory_bytes);
        die_with_parent(&mut cmd);

        let mut child = cmd.spawn()?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let progress = read_progress(stdout, job.duration_secs, job.progress);
        let timeout = self.step_timeout(job.duration_secs);
        let outcome = tokio::select! {
            r = async { tokio::join!(progress, read_tail(stderr), child.wait()) } => Ok(r),
            _ = cancel.cancelled() => Err(VideoError::Cancelled),
            _ = tokio::time::sleep(timeout) => Err(VideoError::Timeout),
        };
        let (_, tail, status) = match outcome {
            Ok(r) => r,
            Err(e) => {
                // Kill at once and reap, so no ffmpeg outlives the step.
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(e);
            }
        };
        let status = status?;
        if status.success() {
            (job.progress)(1.0);
            return Ok(());
        }
        let tail = redact(&String::from_utf8_lossy(&tail?), &job.redact);
        tracing::debug!(%status, stderr = %tail, "ffmpeg failed");
        Err(VideoError::Failed(summary(&tail)))
    }
}

/// The input every operation reads: an uploaded file already sniffed and probed.
pub struct Input<'a> {
    pub path: &'a Path,
    pub container: Container,
    pub probe: &'a Probe,
}

impl Input<'_> {
    /// The absolute `file:` URL of the upload (see [`file_url`]).
    pub(crate) async fn url(&self) -> Result<String, VideoError> {
        file_url(self.path).await
    }
}

/// An ffmpeg argument vector under construction.
pub(crate) struct Args {
    list: Vec<OsString>,
    threads: u32,
}

impl Args {
    pub(crate) fn push(&mut self, arg: impl Into<OsString>) -> &mut Self {
        self.list.push(arg.into());
        self
    }

    pub(crate) fn push_all<I: IntoIterator<Item = S>, S: Into<OsString>>(
        &mut self,
        args: I,
    ) -> &mut Self {
        self.list.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an input read only by `demuxer` (forced and the only one
    /// whitelisted) through `url`, an absolute `file:` URL. Reference-following
    /// demuxers (hls, concat, image2) are never passed here.
    pub(crate) fn input(&mut self, demuxer: &str, url: &str) -> &mut Self {
        self.threads();
        self.push_all(["-f", demuxer, "-format_whitelist", demuxer])
            .push_all(["-protocol_whitelist", "file,pipe", "-i", url])
    }

    /// `-threads n` for the next input or output, when configured.
    pub(crate) fn threads(&mut self) -> &mut Self {
        if self.threads > 0 {
            let n = self.threads.to_string();
            self.push_all(["-threads", n.as_str()]);
        }
        self
    }

    /// Output options that drop every piece of source metadata: global and
    /// per-stream tags (location, creation_time, rotate), chapters, and the
    /// encoder/version strings that bitexact mode leaves out.
    pub(crate) fn no_metadata(&mut self) -> &mut Self {
        self.push_all(["-map_metadata", "-1", "-map_chapters", "-1"])
            .push_all(["-fflags", "+bitexact", "-flags:v", "+bitexact"])
            .push_all(["-flags:a", "+bitexact"])
    }
}

/// One ffmpeg process to run.
pub(crate) struct Job<'a> {
    pub args: Args,
    /// The private working directory, used as cwd.
    pub cwd: &'a Path,
    /// Media seconds the step produces; scales progress and the timeout.
    pub duration_secs: f64,
    /// Strings (paths) to replace in error messages, with their stand-ins.
    pub redact: Vec<(String, &'static str)>,
    pub progress: &'a (dyn Fn(f64) + Send + Sync),
}

/// A progress callback that ignores its argument.
pub(crate) fn no_progress(_: f64) {}

/// Makes the kernel kill the child if this process dies (`kill -9` included): an orphaned
/// ffmpeg would keep burning CPU and writing into a work directory nobody reads. The
/// signal follows the spawning *thread*; ffmpeg is spawned from async tasks, whose
/// runtime worker threads live as long as the process.
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: runs in the forked child before exec; prctl and getppid are
    // async-signal-safe syscalls, and nothing is allocated or locked.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Caps the child's address space so a decoder bomb cannot exhaust memory.
fn limit_memory(cmd: &mut Command, bytes: u64) {
    if bytes == 0 {
        return;
    }
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: the closure runs in the forked child between fork and exec,
    // where only async-signal-safe work is allowed. It captures a plain
    // `rlimit` by copy and makes one setrlimit syscall; it does not allocate,
    // take locks or touch state shared with the parent (last_os_error only
    // reads errno and builds an error without allocating).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Parses `-progress` key=value lines and reports a monotonic fraction.
async fn read_progress(
    pipe: Option<impl AsyncRead + Unpin>,
    duration_secs: f64,
    report: &(dyn Fn(f64) + Send + Sync),
) {
    let Some(pipe) = pipe else { return };
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    let mut last = 0.0;
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_PROGRESS_LINE);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(f) = progress_fraction(text.trim(), duration_secs) {
            if f > last {
                last = f;
                report(f);
            }
        }
    }
}

/// The fraction one `-progress` line implies, if any. ffmpeg 5.1 prints
/// `out_time_ms` in microseconds too (a long-standing naming bug).
pub(crate) fn progress_fraction(line: &str, duration_secs: f64) -> Option<f64> {
    let (key, value) = line.split_once('=')?;
    match key {
        "progress" if value == "end" => Some(1.0),
        "out_time_us" | "out_time_ms" if duration_secs > 0.0 => {
            let us: f64 = value.trim().parse().ok()?;
            (us.is_finite() && us >= 0.0).then(|| (us / 1e6 / duration_secs).min(1.0))
        }
        _ => None,
    }
}

/// Keeps the last [`MAX_STDERR`] bytes of stderr, draining the pipe fully so
/// ffmpeg never blocks on it.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>) -> std::io::Result<Vec<u8>> {
    let mut tail = Vec::new();
    let Some(mut pipe) = pipe else {
        return Ok(tail);
    };
    let mut buf = [0u8; 4096];
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            return Ok(tail);
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > MAX_STDERR {
            tail.drain(..tail.len() - MAX_STDERR);
        }
    }
}

/// Replaces our paths so messages never reveal the server's layout.
fn redact(text: &str, needles: &[(String, &'static str)]) -> String {
    let mut text = text.to_owned();
    // Longest first, so a path is replaced before any prefix of it.
    let mut needles: Vec<_> = needles.iter().filter(|(n, _)| !n.is_empty()).collect();
    needles.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (needle, stand_in) in needles {
        text = text.replace(needle.as_str(), stand_in);
    }
    text
}

/// The last few meaningful stderr lines, short enough for an error message.
fn summary(tail: &str) -> String {
    let lines: Vec<&str> = tail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let text = lines[lines.len().saturating_sub(3)..].join("; ");
    if text.is_empty() {
        return "ffmpeg failed".into();
    }
    let skip = text.chars().count().saturating_sub(500);
    text.chars().skip(skip).collect()
}

/// Redaction pairs for a path: the path itself and its canonical form.
pub(crate) fn redactions(path: &Path, stand_in: &'static str) -> Vec<(String, &'static str)> {
    let mut out = vec![(path.to_string_lossy().into_owned(), stand_in)];
    if let Ok(abs) = std::fs::canonicalize(path) {
        out.push((abs.to_string_lossy().into_owned(), stand_in));
    }
    out
}

/// A path as an output URL with the `file:` protocol pinned.
pub(crate) fn out_url(path: &Path) -> Result<String, VideoError> {
    let s = path.to_str().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8")
    })?;
    Ok(format!("file:{s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_become_fractions_of_the_duration() {
        assert_eq!(progress_fraction("out_time_us=1500000", 3.0), Some(0.5));
        assert_eq!(progress_fraction("out_time_ms=3000000", 3.0), Some(1.0));
        assert_eq!(progress_fraction("out_time_us=9000000", 3.0), Some(1.0));
        assert_eq!(progress_fraction("out_time_us=N/A", 3.0), None);
        assert_eq!(progress_fraction("progress=end", 0.0), Some(1.0));
        assert_eq!(progress_fraction("progress=continue", 3.0), None);
        assert_eq!(progress_fraction("frame=12", 3.0), None);
    }

    #[test]
    fn paths_are_redacted_longest_first_and_summaries_are_short() {
        let needles = vec![
            ("/srv/a".to_string(), "x"),
            ("/srv/a/in.mp4".to_string(), "input"),
        ];
        assert_eq!(
            redact("file:/srv/a/in.mp4: bad", &needles),
            "file:input: bad"
        );
        let long = "e\n".repeat(10) + &"z".repeat(900);
        assert_eq!(summary(&long).chars().count(), 500);
        assert_eq!(summary(""), "ffmpeg failed");
    }

    #[test]
    fn step_timeouts_grow_with_duration() {
        let r = Runner::new(1);
        assert_eq!(r.step_timeout(10.0), Duration::from_secs(500));
        assert_eq!(r.step_timeout(-1.0), Duration::from_secs(300));
    }
}
