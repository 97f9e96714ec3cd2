//! Runs one on-the-fly transform the way the server does — sniff, transform (which probes
//! and checks limits first) — and writes the result. `bench/transform.sh` times this against
//! `vipsthumbnail`.
//!
//! Usage: cargo run --release -p imaging --example transform -- INPUT OPS OUTPUT.{jpg,png,webp,avif,gif}
//! e.g.   … -- photo.jpg w_300,q_80 out.jpg

use std::error::Error;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use imaging::transform::{TransformFormat, TransformLimits, TransformSpec};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(input), Some(ops), Some(output)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: transform INPUT OPS OUTPUT".into());
    };
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));
    let ops = ops.to_str().ok_or("OPS must be UTF-8")?;
    let ext = output.extension().and_then(|e| e.to_str()).unwrap_or("");
    let format = TransformFormat::from_extension(ext).ok_or("unknown output extension")?;
    imaging::init(0)?;

    let mut head = Vec::with_capacity(imaging::SNIFF_LEN);
    File::open(&input)?
        .take(imaging::SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    let sniffed = imaging::sniff(&head).ok_or("not an image format we accept")?;
    let spec = TransformSpec::parse(ops)?;
    let limits = TransformLimits::default();
    let done = imaging::transform::transform_file(&input, sniffed, &spec, None, format, &limits)?;
    std::fs::write(&output, &done.bytes)?;
    println!("{}x{}\t{} bytes", done.width, done.height, done.bytes.len());
    Ok(())
}
