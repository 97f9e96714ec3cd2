//! Running transforms on generated fixtures and reading the results back as pixels.

use std::path::{Path, PathBuf};
use std::time::Duration;

use imaging::transform::{
    transform_file, Encoded, ResolvedWatermark, TransformFormat, TransformLimits, TransformSpec,
};
use imaging::{sniff, ImagingError};
use libvips::VipsImage;

pub use crate::fixtures::{landscape, read, render, stripes, Fixtures};

pub const RED: [u8; 3] = [255, 0, 0];
pub const GREEN: [u8; 3] = [0, 255, 0];
pub const BLUE: [u8; 3] = [0, 0, 255];
pub const YELLOW: [u8; 3] = [255, 255, 0];
pub const GREY: [u8; 3] = [128, 128, 128];

pub fn limits() -> TransformLimits {
    TransformLimits {
        max_pixels: 50_000_000,
        max_side: 20_000,
        max_frames: 100,
        timeout: Duration::from_secs(60),
    }
}

pub fn try_transform(
    path: &Path,
    spec: &TransformSpec,
    watermark: Option<&ResolvedWatermark>,
    format: TransformFormat,
    limits: &TransformLimits,
) -> Result<Encoded, ImagingError> {
    let input = sniff(&read(path)).expect("fixture sniffs");
    transform_file(path, input, spec, watermark, format, limits)
}

/// Transforms and checks that the bytes are `format` and match the reported size.
pub fn transform(path: &Path, spec: &TransformSpec, format: TransformFormat) -> Encoded {
    let out = try_transform(path, spec, None, format, &limits())
        .unwrap_or_else(|e| panic!("{spec:?} → {format:?}: {e}"));
    assert_eq!(magic(&out.bytes), Some(format), "{spec:?}");
    let decoded = Pixels::decode(&out.bytes);
    assert_eq!((decoded.w, decoded.h), (out.width, out.height), "{spec:?}");
    out
}

/// The format the bytes say they are.
pub fn magic(b: &[u8]) -> Option<TransformFormat> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(TransformFormat::Jpeg)
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(TransformFormat::Png)
    } else if b.len() > 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some(TransformFormat::Webp)
    } else if b.len() > 12 && &b[4..12] == b"ftypavif" {
        Some(TransformFormat::Avif)
    } else if b.starts_with(b"GIF89a") || b.starts_with(b"GIF87a") {
        Some(TransformFormat::Gif)
    } else {
        None
    }
}

/// An image made of `w`×`h` pixels of `bands` bands computed by `f(x, y)`.
pub fn make(
    fx: &Fixtures,
    name: &str,
    w: u32,
    h: u32,
    bands: u32,
    f: impl Fn(u32, u32) -> Vec<u8>,
) -> PathBuf {
    let mut px = Vec::with_capacity((w * h * bands) as usize);
    for y in 0..h {
        for x in 0..w {
            px.extend(f(x, y));
        }
    }
    fx.save(name, &px, w, h, bands)
}

/// 200×100 (or any size): red, green / blue, yellow quadrants.
pub fn quadrants(fx: &Fixtures, name: &str, w: u32, h: u32) -> PathBuf {
    make(fx, name, w, h, 3, |x, y| {
        match (x < w / 2, y < h / 2) {
            (true, true) => RED,
            (false, true) => GREEN,
            (true, false) => BLUE,
            (false, false) => YELLOW,
        }
        .to_vec()
    })
}

pub fn solid(fx: &Fixtures, name: &str, w: u32, h: u32, rgb: [u8; 3]) -> PathBuf {
    make(fx, name, w, h, 3, |_, _| rgb.to_vec())
}

/// Decoded output pixels (the first frame), packed.
pub struct Pixels {
    pub w: u32,
    pub h: u32,
    pub bands: u32,
    pub data: Vec<u8>,
}

impl Pixels {
    pub fn decode(bytes: &[u8]) -> Pixels {
        let img = VipsImage::new_from_buffer(bytes, "").expect("output decodes");
        let (w, h, bands) = (
            img.get_width() as u32,
            img.get_height() as u32,
            img.get_bands() as u32,
        );
        let data = img.image_write_to_memory();
        assert_eq!(data.len(), (w * h * bands) as usize, "8-bit output");
        Pixels { w, h, bands, data }
    }

    /// Page `page` of an animated output.
    pub fn decode_page(bytes: &[u8], page: u32) -> Pixels {
        let img = VipsImage::new_from_buffer(bytes, &format!("page={page}")).expect("page");
        let (w, h, bands) = (
            img.get_width() as u32,
            img.get_height() as u32,
            img.get_bands() as u32,
        );
        Pixels {
            w,
            h,
            bands,
            data: img.image_write_to_memory(),
        }
    }

    pub fn at(&self, x: u32, y: u32) -> &[u8] {
        let i = ((y * self.w + x) * self.bands) as usize;
        &self.data[i..i + self.bands as usize]
    }

    /// The first three bands at `x`,`y`.
    pub fn rgb(&self, x: u32, y: u32) -> [u8; 3] {
        let p = self.at(x, y);
        if p.len() >= 3 {
            [p[0], p[1], p[2]]
        } else {
            [p[0]; 3]
        }
    }

    pub fn alpha(&self, x: u32, y: u32) -> u8 {
        match self.bands {
            4 | 2 => *self.at(x, y).last().unwrap(),
            _ => 255,
        }
    }

    /// Mean of `band` over the whole image.
    pub fn mean(&self, band: u32) -> f64 {
        let n = (self.w * self.h) as f64;
        self.values(band).map(f64::from).sum::<f64>() / n
    }

    pub fn stddev(&self, band: u32) -> f64 {
        let m = self.mean(band);
        let n = (self.w * self.h) as f64;
        (self
            .values(band)
            .map(|v| (f64::from(v) - m).powi(2))
            .sum::<f64>()
            / n)
            .sqrt()
    }

    pub fn min_max(&self, band: u32) -> (u8, u8) {
        let min = self.values(band).min().unwrap();
        (min, self.values(band).max().unwrap())
    }

    /// High-frequency energy: mean absolute difference of horizontal neighbours (band 0).
    pub fn energy(&self) -> f64 {
        let mut sum = 0.0;
        for y in 0..self.h {
            for x in 1..self.w {
                sum += (f64::from(self.at(x, y)[0]) - f64::from(self.at(x - 1, y)[0])).abs();
            }
        }
        sum / f64::from(self.h * (self.w - 1))
    }

    fn values(&self, band: u32) -> impl Iterator<Item = u8> + '_ {
        self.data
            .iter()
            .skip(band as usize)
            .step_by(self.bands as usize)
            .copied()
    }
}

/// Frames and page height of an animated output.
pub fn frames(bytes: &[u8]) -> (u32, u32, u32) {
    let img = VipsImage::new_from_buffer(bytes, "n=-1").expect("animation decodes");
    let pages = img.get_n_pages().max(1) as u32;
    (
        pages,
        img.get_width() as u32,
        img.get_height() as u32 / pages,
    )
}

/// A metadata field of the decoded output, as libvips prints it.
pub fn field(bytes: &[u8], name: &str) -> String {
    let img = VipsImage::new_from_buffer(bytes, "n=-1").expect("output decodes");
    img.get_as_string(name).unwrap_or_default()
}

/// Asserts `got` is within `tol` of `want` in every channel.
pub fn assert_near(got: [u8; 3], want: [u8; 3], tol: u8, what: &str) {
    let ok = got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= tol);
    assert!(ok, "{what}: got {got:?}, want {want:?} ± {tol}");
}
