//! Audio-only downloads: the first audio track as M4A, MP3 or Opus,
//! stream-copied when the source codec already fits, with no metadata.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::run::{out_url, redactions, Input, Job, Runner};
use crate::VideoError;

/// A download format for the audio track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    /// AAC in MP4 with the index first.
    M4a,
    /// MPEG-1 Layer III.
    Mp3,
    /// Opus in Ogg.
    Opus,
}

impl AudioFormat {
    pub fn extension(self) -> &'static str {
        match self {
            AudioFormat::M4a => "m4a",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Opus => "opus",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            AudioFormat::M4a => "audio/mp4",
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Opus => "audio/ogg",
        }
    }

    /// Parses "m4a", "mp3" or "opus" (case-insensitive).
    pub fn parse(text: &str) -> Option<AudioFormat> {
        match text.trim().to_ascii_lowercase().as_str() {
            "m4a" => Some(AudioFormat::M4a),
            "mp3" => Some(AudioFormat::Mp3),
            "opus" => Some(AudioFormat::Opus),
            _ => None,
        }
    }

    /// The source codec that can be copied as is, the encoder and bit rate
    /// otherwise, and the muxer.
    fn recipe(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            AudioFormat::M4a => ("aac", "aac", "192k", "ipod"),
            AudioFormat::Mp3 => ("mp3", "libmp3lame", "192k", "mp3"),
            AudioFormat::Opus => ("opus", "libopus", "128k", "ogg"),
        }
    }
}

impl Runner {
    /// Writes the first audio track of `input` to `out` in `format`.
    /// [`VideoError::NoAudio`] when the input has no audio stream.
    pub async fn extract_audio(
        &self,
        input: &Input<'_>,
        format: AudioFormat,
        out: &Path,
        cancel: &CancellationToken,
        progress: &(dyn Fn(f64) + Send + Sync),
    ) -> Result<(), VideoError> {
        let audio = input.probe.audio.as_ref().ok_or(VideoError::NoAudio)?;
        let (copyable, encoder, rate, muxer) = format.recipe();
        let mut args = self.args();
        args.input(input.container.demuxer(), &input.url().await?)
            .push_all(["-map", "0:a:0", "-vn", "-sn", "-dn"]);
        if audio.codec == copyable {
            args.push_all(["-c:a", "copy"]);
        } else {
            args.push_all(["-c:a", encoder, "-b:a", rate]).threads();
            if audio.channels > 2 {
                args.push_all(["-ac", "2"]);
            }
            if format == AudioFormat::Opus {
                // libopus takes 48 kHz (or lower fixed rates) only.
                args.push_all(["-ar", "48000"]);
            }
        }
        args.no_metadata();
        match format {
            AudioFormat::M4a => args.push_all(["-movflags", "+faststart"]),
            // No ID3 tag at all: nothing of the source's tags can leak.
            AudioFormat::Mp3 => args.push_all(["-id3v2_version", "0", "-write_id3v1", "0"]),
            AudioFormat::Opus => &mut args,
        };
        args.push_all(["-f", muxer]).push(out_url(out)?);
        let mut redact = redactions(input.path, "input");
        redact.extend(redactions(out, "output"));
        let work = self.workdir()?;
        let job = Job {
            args,
            cwd: work.path(),
            duration_secs: input.probe.duration_secs,
            redact,
            progress,
        };
        self.run(job, cancel).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_name_their_files() {
        for f in [AudioFormat::M4a, AudioFormat::Mp3, AudioFormat::Opus] {
            assert_eq!(AudioFormat::parse(f.extension()), Some(f));
        }
        assert_eq!(AudioFormat::parse("MP3"), Some(AudioFormat::Mp3));
        assert_eq!(AudioFormat::parse("flac"), None);
        assert_eq!(AudioFormat::Opus.mime(), "audio/ogg");
        assert_eq!(serde_json::to_string(&AudioFormat::M4a).unwrap(), "\"m4a\"");
    }
}
