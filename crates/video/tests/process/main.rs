//! End-to-end tests of the ffmpeg processing steps against the real Debian
//! ffmpeg. Media is generated per test, small and short, so the whole binary
//! runs in well under a minute on two cores.

mod audio;
mod helpers;
mod hls;
mod safety;
mod stills;
