//! Configurable limits on what a probed file may contain, checked before any
//! transcode is queued so an oversized upload fails fast with a clear reason.

use std::time::Duration;

use crate::probe::Probe;

/// Upper bounds for an accepted upload. Defaults suit a self-hosted instance:
/// generous enough for phone and camera footage, small enough to stop abuse.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeLimits {
    /// Longest accepted duration, in seconds.
    pub max_duration_secs: f64,
    /// Longest accepted side, in pixels (checked orientation-independently).
    pub max_width: u32,
    /// Shortest-side bound, in pixels (checked orientation-independently).
    pub max_height: u32,
    /// Highest accepted frame rate.
    pub max_fps: f64,
    /// Highest accepted overall bit rate, in bits per second.
    pub max_bit_rate: u64,
    /// Most streams of any kind in the container.
    pub max_streams: u32,
    /// Wall-clock limit for one ffprobe run.
    pub timeout: Duration,
}

impl Default for ProbeLimits {
    fn default() -> Self {
        Self {
            max_duration_secs: 4.0 * 3600.0,
            max_width: 7680,
            max_height: 4320,
            max_fps: 240.0,
            max_bit_rate: 200_000_000,
            max_streams: 16,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A limit that a probed file exceeds; `limit` names it for API error codes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{limit} {actual} exceeds the limit of {max}")]
pub struct LimitError {
    /// Which limit: "duration", "resolution", "fps", "bit_rate" or "streams".
    pub limit: &'static str,
    /// The value found in the file, formatted for humans.
    pub actual: String,
    /// The configured maximum, formatted for humans.
    pub max: String,
}

impl LimitError {
    fn new(limit: &'static str, actual: impl ToString, max: impl ToString) -> Self {
        Self {
            limit,
            actual: actual.to_string(),
            max: max.to_string(),
        }
    }
}

/// Checks a probe against the limits, reporting the first one exceeded.
pub fn check(probe: &Probe, limits: &ProbeLimits) -> Result<(), LimitError> {
    if probe.duration_secs > limits.max_duration_secs {
        return Err(LimitError::new(
            "duration",
            format!("{:.3}s", probe.duration_secs),
            format!("{:.3}s", limits.max_duration_secs),
        ));
    }
    if probe.stream_count > limits.max_streams {
        return Err(LimitError::new(
            "streams",
            probe.stream_count,
            limits.max_streams,
        ));
    }
    if let Some(v) = &probe.video {
        // Compare long side with long side so a portrait phone clip is held to
        // the same bound as its landscape twin, whatever its rotation flag says.
        let (long, short) = (v.width.max(v.height), v.width.min(v.height));
        let (max_long, max_short) = (
            limits.max_width.max(limits.max_height),
            limits.max_width.min(limits.max_height),
        );
        if long > max_long || short > max_short {
            return Err(LimitError::new(
                "resolution",
                format!("{}x{}", v.width, v.height),
                format!("{}x{}", limits.max_width, limits.max_height),
            ));
        }
        if v.fps > limits.max_fps {
            return Err(LimitError::new("fps", v.fps, limits.max_fps));
        }
    }
    if let Some(rate) = probe.bit_rate {
        if rate > limits.max_bit_rate {
            return Err(LimitError::new("bit_rate", rate, limits.max_bit_rate));
        }
    }
    Ok(())
}
