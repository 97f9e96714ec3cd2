//! Container detection from the first bytes of an upload, by magic bytes only.
//!
//! Text formats that ffmpeg would happily follow (HLS playlists, ffconcat
//! lists, SDP files) have no magic we recognise, so they sniff as `None` and
//! are rejected before ffprobe ever sees them.

use serde::Serialize;

/// A container we are willing to hand to ffprobe, with exactly one demuxer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    Mp4,
    Mov,
    Webm,
    Mkv,
    Mp3,
    M4a,
    Ogg,
    Wav,
}

impl Container {
    /// The only ffmpeg demuxer allowed to read this container. It is passed both
    /// as `-f` and as `-format_whitelist`, so ffprobe cannot switch demuxers.
    pub fn demuxer(self) -> &'static str {
        match self {
            // ffmpeg's demuxer is "mov,mp4,m4a,3gp,3g2,mj2"; "mov" selects it.
            Container::Mp4 | Container::Mov | Container::M4a => "mov",
            Container::Webm | Container::Mkv => "matroska",
            Container::Mp3 => "mp3",
            Container::Ogg => "ogg",
            Container::Wav => "wav",
        }
    }

    /// Whether this container is audio-only by definition (a video stream in it
    /// can still appear, e.g. cover art, and is treated as such by the prober).
    pub fn is_audio_only(self) -> bool {
        matches!(
            self,
            Container::Mp3 | Container::M4a | Container::Ogg | Container::Wav
        )
    }
}

/// Identifies the container from the first bytes of a file (64 bytes are
/// enough for everything but Matroska, which wants a few hundred; pass 4 KiB).
pub fn sniff(head: &[u8]) -> Option<Container> {
    if let Some(c) = sniff_iso_bmff(head) {
        return Some(c);
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return sniff_ebml(head);
    }
    if head.starts_with(b"OggS") {
        return Some(Container::Ogg);
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        return Some(Container::Wav);
    }
    if head.starts_with(b"ID3") || is_mp3_frame_header(head) {
        return Some(Container::Mp3);
    }
    None
}

/// ISO base media files start with an `ftyp` box whose major brand says what
/// flavour they are; QuickTime and M4A get their own variants so callers can
/// label them, though all three use the same demuxer.
fn sniff_iso_bmff(head: &[u8]) -> Option<Container> {
    if head.len() < 12 || &head[4..8] != b"ftyp" {
        return None;
    }
    let brand = &head[8..12];
    Some(match brand {
        b"qt  " => Container::Mov,
        b"M4A " | b"M4B " => Container::M4a,
        _ => Container::Mp4,
    })
}

/// Reads the EBML header's DocType element: "webm" or "matroska". Anything
/// else (or a header we cannot parse within `head`) is not accepted.
fn sniff_ebml(head: &[u8]) -> Option<Container> {
    let mut pos = 4;
    let (header_len, n) = read_vint(head.get(pos..)?)?;
    pos += n;
    let end = pos
        .saturating_add(usize::try_from(header_len).ok()?)
        .min(head.len());
    while pos < end {
        let (id, id_len) = read_element_id(head.get(pos..end)?)?;
        pos += id_len;
        let (size, size_len) = read_vint(head.get(pos..end)?)?;
        pos += size_len;
        let size = usize::try_from(size).ok()?;
        let body = head.get(pos..pos.checked_add(size)?)?;
        if id == 0x4282 {
            // DocType strings may be NUL padded.
            let doc_type = body.split(|&b| b == 0).next().unwrap_or_default();
            return match doc_type {
                b"webm" => Some(Container::Webm),
                b"matroska" => Some(Container::Mkv),
                _ => None,
            };
        }
        pos += size;
    }
    None
}

/// An EBML element ID keeps its length marker bits; returns (id, length).
fn read_element_id(buf: &[u8]) -> Option<(u32, usize)> {
    let first = *buf.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return None;
    }
    let bytes = buf.get(..len)?;
    Some((
        bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)),
        len,
    ))
}

/// An EBML variable-length size with its marker bit removed; returns (value, length).
fn read_vint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = buf.get(..len)?;
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let value = bytes[1..]
        .iter()
        .fold(u64::from(first & mask), |acc, &b| (acc << 8) | u64::from(b));
    Some((value, len))
}

/// An MPEG-1/2/2.5 Layer III frame header: 11 sync bits, a valid version,
/// layer III, and bitrate/sample-rate indices that are not reserved. Checking
/// the indices keeps random binary starting with 0xFF from passing as MP3.
fn is_mp3_frame_header(head: &[u8]) -> bool {
    let [a, b, c, ..] = *head else {
        return false;
    };
    let sync = a == 0xFF && b & 0xE0 == 0xE0;
    let version_ok = (b >> 3) & 0b11 != 0b01;
    let layer3 = (b >> 1) & 0b11 == 0b01;
    let bitrate_ok = c >> 4 != 0b1111 && c >> 4 != 0;
    let rate_ok = (c >> 2) & 0b11 != 0b11;
    sync && version_ok && layer3 && bitrate_ok && rate_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ebml(doc_type: &[u8]) -> Vec<u8> {
        let mut body = vec![0x42, 0x86, 0x81, 0x01]; // EBMLVersion = 1
        body.extend([0x42, 0x82, 0x80 | doc_type.len() as u8]);
        body.extend(doc_type);
        let mut out = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80 | body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn iso_bmff_brands_map_to_containers() {
        assert_eq!(sniff(b"\0\0\0\x20ftypisom\0\0\x02\0"), Some(Container::Mp4));
        assert_eq!(sniff(b"\0\0\0\x14ftypqt  \0\0\0\0"), Some(Container::Mov));
        assert_eq!(sniff(b"\0\0\0\x20ftypM4A \0\0\0\0"), Some(Container::M4a));
    }

    #[test]
    fn ebml_doc_type_decides_between_webm_and_matroska() {
        assert_eq!(sniff(&ebml(b"webm")), Some(Container::Webm));
        assert_eq!(sniff(&ebml(b"matroska")), Some(Container::Mkv));
        assert_eq!(sniff(&ebml(b"other")), None);
        assert_eq!(sniff(&ebml(b"webm")[..8]), None);
    }

    #[test]
    fn audio_magics_are_recognised() {
        assert_eq!(sniff(b"OggS\0\x02"), Some(Container::Ogg));
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Some(Container::Wav));
        assert_eq!(sniff(b"ID3\x04\0\0"), Some(Container::Mp3));
        assert_eq!(sniff(&[0xFF, 0xFB, 0x90, 0x64]), Some(Container::Mp3));
        assert_eq!(sniff(&[0xFF, 0xFF, 0xFF, 0xFF]), None);
    }

    #[test]
    fn playlists_and_short_or_empty_input_sniff_as_none() {
        assert_eq!(sniff(b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n"), None);
        assert_eq!(sniff(b"ffconcat version 1.0\nfile /etc/passwd\n"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"\x1A\x45\xDF\xA3\xFF"), None);
    }
}
