//! Makes the default presets (thumb/small/large × WebP/JPEG) of one image the way the worker
//! does — sniff, probe, check limits, process — and writes them to a directory.
//! `bench/presets.sh` times this against `vipsthumbnail`.
//!
//! Usage: cargo run --release -p imaging --example presets -- INPUT OUTPUT_DIR

use std::error::Error;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(input), Some(out_dir)) = (args.next(), args.next()) else {
        return Err("usage: presets INPUT OUTPUT_DIR".into());
    };
    imaging::init(0)?;

    let mut head = Vec::with_capacity(imaging::SNIFF_LEN);
    File::open(&input)?
        .take(imaging::SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    let format = imaging::sniff(&head).ok_or("not an image format we accept")?;
    let probe = imaging::probe_file(&input, format)?;
    imaging::check_limits(&probe, &imaging::Limits::default())?;

    let done = imaging::process_file(&input, format, &imaging::default_presets())?;
    std::fs::create_dir_all(&out_dir)?;
    for r in &done.renditions {
        let name = format!("{}.{}", r.preset, r.format.extension());
        std::fs::write(out_dir.join(&name), &r.bytes)?;
        println!("{name}\t{}x{}\t{} bytes", r.width, r.height, r.bytes.len());
    }
    println!("phash\t{:016x}", done.phash);
    Ok(())
}
