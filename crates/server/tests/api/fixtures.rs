//! Test images made in the test: every accepted format, EXIF orientation with a GPS
//! block, hostile headers.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// A `w`×`h` image: left half red, right half blue, with a gradient so it has detail.
pub fn two_tone(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let shade = ((x + y) % 32) as u8;
        if x < w / 2 {
            Rgb([220 + shade / 2, shade, shade])
        } else {
            Rgb([shade, shade, 220 + shade / 2])
        }
    })
}

pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode fixture");
    out.into_inner()
}

pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(two_tone(w, h)), ImageFormat::Jpeg)
}

pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| {
        Rgba([(x % 256) as u8, (y % 256) as u8, 128, 200])
    });
    encode(&DynamicImage::ImageRgba8(img), ImageFormat::Png)
}

pub fn of_format(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
    match format {
        ImageFormat::Gif => animated_gif(w, h, 3),
        ImageFormat::Png => png(w, h),
        other => encode(&DynamicImage::ImageRgb8(two_tone(w, h)), other),
    }
}

pub fn animated_gif(w: u32, h: u32, frames: u32) -> Vec<u8> {
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Delay, Frame};
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut out, 30);
        enc.set_repeat(Repeat::Infinite).unwrap();
        for i in 0..frames {
            let img = RgbaImage::from_fn(w, h, |x, _| {
                Rgba([(x * 255 / w) as u8, (i * 80) as u8, 0, 255])
            });
            enc.encode_frame(Frame::from_parts(
                img,
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            ))
            .unwrap();
        }
    }
    out
}

pub const GPS_MARKER: &[u8] = b"FRAMEHOUSE-GPS-MARKER";

/// A JPEG whose EXIF says orientation 6 (rotate 90° clockwise to display) and that
/// carries a GPS IFD and a marker string we can look for in outputs.
pub fn jpeg_with_exif_orientation_6(w: u32, h: u32) -> Vec<u8> {
    let plain = jpeg(w, h);
    let tiff = exif_tiff();
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    let mut out = plain[..2].to_vec(); // SOI
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

fn exif_tiff() -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value);
    }
    let ifd0_at = 8u32;
    let gps_at = ifd0_at + 2 + 3 * 12 + 4;
    let text_at = gps_at + 2 + 12 + 4;
    let mut marker = GPS_MARKER.to_vec();
    marker.push(0);
    let mut t = b"II\x2a\x00".to_vec();
    t.extend_from_slice(&ifd0_at.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    entry(
        &mut t,
        0x010E,
        2,
        marker.len() as u32,
        text_at.to_le_bytes(),
    ); // ImageDescription
    entry(&mut t, 0x0112, 3, 1, [6, 0, 0, 0]); // Orientation = 6
    entry(&mut t, 0x8825, 4, 1, gps_at.to_le_bytes()); // GPS IFD pointer
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, [b'N', 0, 0, 0]); // GPSLatitudeRef
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&marker);
    t
}

/// A structurally valid PNG header that declares `w`×`h` but carries no pixel data.
pub fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc_input);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Decodes output bytes and returns (format, width, height).
pub fn decode(bytes: &[u8]) -> (ImageFormat, u32, u32) {
    let format = image::guess_format(bytes).expect("known output format");
    let img = image::load_from_memory(bytes).expect("decodable output");
    (format, img.width(), img.height())
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
