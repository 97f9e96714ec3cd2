//! On-the-fly transforms end to end on generated files: every option's effect on the
//! output's size, format and pixels, the animated and colour-managed paths, and the limits.

// Shared with tests/engine.rs, which uses the helpers this binary does not.
#[allow(dead_code)]
#[path = "../fixtures/mod.rs"]
mod fixtures;
mod helpers;

mod filters;
mod formats;
mod geometry;
mod overlays;
mod safety;
