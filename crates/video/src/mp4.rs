//! Progressive MP4 downloads made from an HLS rendition without re-encoding:
//! the fMP4 pieces are joined byte for byte, then remuxed with the index
//! (`moov`) first so players can start before the download ends.

use std::path::Path;

use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::hls::read_playlist;
use crate::run::{no_progress, out_url, redactions, Job, Runner};
use crate::{Rendition, VideoError};

impl Runner {
    /// Writes `out` as a faststart MP4 holding the streams of `rendition`
    /// (made by [`Runner::hls`] or [`Runner::audio_hls`]), stream-copied.
    pub async fn mp4_from_rendition(
        &self,
        rendition: &Rendition,
        out: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), VideoError> {
        let list = read_playlist(&rendition.dir).await?;
        let work = self.workdir()?;
        let joined = work.path().join("joined.mp4");
        let mut file = tokio::fs::File::create(&joined).await?;
        let pieces = std::iter::once(&list.init).chain(list.segments.iter().map(|(n, _)| n));
        for piece in pieces {
            if cancel.is_cancelled() {
                return Err(VideoError::Cancelled);
            }
            let mut src = tokio::fs::File::open(rendition.dir.join(piece)).await?;
            tokio::io::copy(&mut src, &mut file).await?;
        }
        file.flush().await?;
        drop(file);

        // The joined file is ours, but it is still read only as MP4 ("mov").
        let mut args = self.args();
        args.input("mov", &crate::probe::file_url(&joined).await?)
            .push_all(["-map", "0", "-c", "copy"])
            .no_metadata()
            .push_all(["-movflags", "+faststart", "-f", "mp4"])
            .push(out_url(out)?);
        let mut redact = redactions(work.path(), "work");
        redact.extend(redactions(out, "output"));
        redact.extend(redactions(&rendition.dir, "rendition"));
        let job = Job {
            args,
            cwd: work.path(),
            duration_secs: list.duration_secs(),
            redact,
            progress: &no_progress,
        };
        self.run(job, cancel).await
    }
}
