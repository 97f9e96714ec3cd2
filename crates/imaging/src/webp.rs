//! Removes metadata chunks from WebP files libvips wrote.
//!
//! libvips 8.14's `webpsave` ignores `strip`: it always writes an EXIF chunk (rebuilt from
//! the image header: orientation, resolution, and any EXIF the image carried). We drop the
//! EXIF, XMP and ICC chunks from the RIFF container and clear their flags in `VP8X`, which
//! leaves a valid extended-format WebP with the same pixels.

/// Chunks that hold metadata rather than pixels.
const METADATA: [&[u8; 4]; 3] = [b"EXIF", b"XMP ", b"ICCP"];
/// VP8X flag bits for ICC (0x20), EXIF (0x08) and XMP (0x04).
const METADATA_FLAGS: u8 = 0x20 | 0x08 | 0x04;

/// Returns `webp` without metadata chunks, or `None` if it is not a well-formed WebP.
pub(crate) fn strip_metadata(webp: &[u8]) -> Option<Vec<u8>> {
    if webp.len() < 12 || &webp[0..4] != b"RIFF" || &webp[8..12] != b"WEBP" {
        return None;
    }
    let mut out = Vec::with_capacity(webp.len());
    out.extend_from_slice(&webp[..12]);
    let mut at = 12;
    while at < webp.len() {
        let header = webp.get(at..at + 8)?;
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let data_end = at.checked_add(8 + size)?;
        let chunk = webp.get(at..data_end)?;
        if !METADATA.iter().any(|m| &header[0..4] == *m) {
            let start = out.len();
            out.extend_from_slice(chunk);
            if size % 2 == 1 {
                out.push(0); // chunks are padded to an even length
            }
            if &header[0..4] == b"VP8X" && size >= 1 {
                out[start + 8] &= !METADATA_FLAGS;
            }
        }
        at = data_end + size % 2;
    }
    let riff_size = u32::try_from(out.len() - 8).ok()?;
    out[4..8].copy_from_slice(&riff_size.to_le_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(fourcc: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut v = fourcc.to_vec();
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        if data.len() % 2 == 1 {
            v.push(0);
        }
        v
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut v = b"RIFF".to_vec();
        v.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        v.extend_from_slice(b"WEBP");
        v.extend(body);
        v
    }

    #[test]
    fn drops_exif_xmp_icc_and_their_flags() {
        let vp8x = chunk(
            b"VP8X",
            &[0x08 | 0x10 | 0x20 | 0x04, 0, 0, 0, 9, 0, 0, 9, 0, 0],
        );
        let image = chunk(b"VP8 ", b"pixels!");
        let input = riff(&[
            vp8x,
            chunk(b"ICCP", b"icc"),
            image.clone(),
            chunk(b"EXIF", b"Exif\0\0GPS"),
            chunk(b"XMP ", b"<x/>"),
        ]);
        let out = strip_metadata(&input).unwrap();
        let expected = riff(&[chunk(b"VP8X", &[0x10, 0, 0, 0, 9, 0, 0, 9, 0, 0]), image]);
        assert_eq!(out, expected);
    }

    #[test]
    fn rejects_what_is_not_a_webp() {
        assert_eq!(strip_metadata(b"RIFF\0\0\0\0WAVE"), None);
        let mut truncated = riff(&[chunk(b"VP8 ", b"pixels!")]);
        truncated.truncate(18);
        assert_eq!(strip_metadata(&truncated), None);
    }
}
