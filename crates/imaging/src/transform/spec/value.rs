//! The syntax of single option values: parsing them (errors are reasons; the caller adds
//! the token) and writing them back in canonical form.

use std::fmt;

use super::MAX_NAME_LEN;
use crate::transform::{CropRect, Gravity, ResizeFit, Rotation};

/// ASCII digits only (no sign, no spaces), leading zeros allowed. Saturates instead of
/// overflowing: any saturated value is out of every range anyway.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

pub(super) fn uint(v: &str, lo: u32, hi: u32, what: &str) -> Result<u32, String> {
    let n = digits(v).ok_or_else(|| format!("{what} must be a whole number"))?;
    if n < u64::from(lo) || n > u64::from(hi) {
        return Err(format!("{what} must be between {lo} and {hi}"));
    }
    Ok(n as u32)
}

/// −100…100 with an optional leading `-` (never `+`).
pub(super) fn percent(v: &str, what: &str) -> Result<i8, String> {
    let (negative, abs) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let n = digits(abs).ok_or_else(|| format!("{what} must be a whole number"))?;
    if n > 100 {
        return Err(format!("{what} must be between -100 and 100"));
    }
    let n = n as i8;
    Ok(if negative { -n } else { n })
}

/// A plain decimal (`2`, `1.5`, `0.125`) as thousandths, rounded half up at the fourth
/// decimal. Rounding on the digits (not on a float) is exact, and the stored value is then
/// exactly what the 3-decimal canonical form says, which the round trip depends on.
fn milli(s: &str) -> Option<u64> {
    let (int, frac) = match s.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (s, None),
    };
    let mut m = digits(int)?.saturating_mul(1000);
    if let Some(frac) = frac {
        digits(frac)?;
        let frac = frac.as_bytes();
        for (i, scale) in [100, 10, 1].into_iter().enumerate() {
            let d = frac.get(i).map_or(0, |b| u64::from(b - b'0'));
            m = m.saturating_add(d * scale);
        }
        if frac.get(3).is_some_and(|&b| b >= b'5') {
            m = m.saturating_add(1);
        }
    }
    Some(m)
}

/// A decimal between `lo` and `hi` thousandths, stored as `f32` thousandths.
pub(super) fn decimal(v: &str, lo: u64, hi: u64, what: &str) -> Result<f32, String> {
    let (lo_f, hi_f) = (Decimal(lo as f32 / 1000.0), Decimal(hi as f32 / 1000.0));
    let m = milli(v).ok_or_else(|| format!("{what} must be a decimal number like 1.5"))?;
    if m < lo || m > hi {
        return Err(format!("{what} must be between {lo_f} and {hi_f}"));
    }
    Ok(m as f32 / 1000.0)
}

/// `_1` or `_0`; anything else is an error (not a truthy guess).
pub(super) fn flag(v: &str, key: &str) -> Result<bool, String> {
    match v {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(format!("expected `{key}_1` or `{key}_0`")),
    }
}

/// Watermark and preset names: 1–64 of `[a-z0-9_-]`.
pub(super) fn name(v: &str, what: &str) -> Result<String, String> {
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
    if v.is_empty() || v.len() > MAX_NAME_LEN || !v.bytes().all(ok) {
        return Err(format!(
            "{what} name must be 1 to {MAX_NAME_LEN} characters of a-z, 0-9, `_` and `-`"
        ));
    }
    Ok(v.to_string())
}

pub(super) fn parse_colour(v: &str) -> Result<[u8; 3], String> {
    let bytes = v.as_bytes();
    if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        return Err("background must be 6 hex digits (RRGGBB)".into());
    }
    let channel = |i: usize| u8::from_str_radix(&v[i..i + 2], 16).unwrap_or(0);
    Ok([channel(0), channel(2), channel(4)])
}

pub(super) fn parse_crop(v: &str) -> Result<CropRect, String> {
    let bad = || "crop must be X:Y:W:H in whole pixels, W and H at least 1".to_string();
    let mut parts = v
        .split(':')
        .map(|p| digits(p).and_then(|n| u32::try_from(n).ok()));
    let mut next = || parts.next().flatten().ok_or_else(bad);
    let (x, y, width, height) = (next()?, next()?, next()?, next()?);
    if parts.next().is_some() || width == 0 || height == 0 {
        return Err(bad());
    }
    // Bounds against the image are checked when it is known; an edge past u32 never fits.
    if x.checked_add(width).is_none() || y.checked_add(height).is_none() {
        return Err("crop rectangle extends past 4294967295".into());
    }
    Ok(CropRect {
        x,
        y,
        width,
        height,
    })
}

pub(super) const FITS: [(ResizeFit, &str); 5] = [
    (ResizeFit::Cover, "cover"),
    (ResizeFit::Contain, "contain"),
    (ResizeFit::Fill, "fill"),
    (ResizeFit::Inside, "inside"),
    (ResizeFit::Outside, "outside"),
];

fn fit_name(fit: ResizeFit) -> &'static str {
    FITS.iter()
        .find(|(f, _)| *f == fit)
        .map_or("inside", |(_, n)| n)
}

pub(super) fn parse_fit(v: &str) -> Result<ResizeFit, String> {
    FITS.iter()
        .find(|(_, n)| *n == v)
        .map(|(f, _)| *f)
        .ok_or_else(|| "fit must be one of cover, contain, fill, inside, outside".into())
}

pub(super) const GRAVITIES: [(Gravity, &str); 9] = [
    (Gravity::Center, "center"),
    (Gravity::North, "north"),
    (Gravity::South, "south"),
    (Gravity::East, "east"),
    (Gravity::West, "west"),
    (Gravity::NorthEast, "northeast"),
    (Gravity::NorthWest, "northwest"),
    (Gravity::SouthEast, "southeast"),
    (Gravity::SouthWest, "southwest"),
];

/// A compass gravity, or with `crops` also `smart` and a focal point `X:Y` (fractions 0–1).
pub(super) fn parse_gravity(v: &str, crops: bool) -> Result<Gravity, String> {
    if let Some((g, _)) = GRAVITIES.iter().find(|(_, n)| *n == v) {
        return Ok(*g);
    }
    if !crops {
        return Err("position must be a compass gravity (center, north, …, southwest)".into());
    }
    if v == "smart" {
        return Ok(Gravity::Smart);
    }
    let focal = v
        .split_once(':')
        .and_then(|(x, y)| Some((milli(x)?, milli(y)?)));
    match focal {
        Some((x, y)) if x <= 1000 && y <= 1000 => {
            Ok(Gravity::Focal(x as f32 / 1000.0, y as f32 / 1000.0))
        }
        Some(_) => Err("focal point coordinates must be between 0 and 1".into()),
        None => Err("gravity must be a compass gravity, `smart` or a focal point X:Y".into()),
    }
}

pub(super) fn parse_rotation(v: &str) -> Result<Rotation, String> {
    match v {
        "0" => Ok(Rotation::None),
        "90" => Ok(Rotation::Deg90),
        "180" => Ok(Rotation::Deg180),
        "270" => Ok(Rotation::Deg270),
        _ => Err("rotation must be 0, 90, 180 or 270".into()),
    }
}

pub(super) fn rotation_degrees(r: Rotation) -> Option<u16> {
    match r {
        Rotation::None => None,
        Rotation::Deg90 => Some(90),
        Rotation::Deg180 => Some(180),
        Rotation::Deg270 => Some(270),
    }
}

/// A float written with at most 3 decimals and no trailing zeros (`1.5`, `0.125`, `2`).
struct Decimal(f32);

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Through f64: every parsed value is k/1000 as f32, whose error is under 0.004
        // thousandths even at the largest value (100), so rounding recovers k exactly.
        let m = (f64::from(self.0) * 1000.0).round() as i64;
        let sign = if m < 0 { "-" } else { "" };
        let (int, frac) = (m.unsigned_abs() / 1000, m.unsigned_abs() % 1000);
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let frac = format!("{frac:03}");
            write!(f, "{sign}{int}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// One token's value as the canonical form writes it (after `key_`).
pub(super) enum Value<'a> {
    /// `flip_h`, `flip_v`: the key alone, nothing to write.
    Bare,
    Int(i64),
    Dec(f32),
    Name(&'a str),
    Colour([u8; 3]),
    Crop(CropRect),
    Fit(ResizeFit),
    Gravity(Gravity),
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bare => Ok(()),
            Value::Int(n) => write!(f, "{n}"),
            Value::Dec(x) => write!(f, "{}", Decimal(*x)),
            Value::Name(name) => f.write_str(name),
            Value::Colour([r, g, b]) => write!(f, "{r:02x}{g:02x}{b:02x}"),
            Value::Crop(c) => write!(f, "{}:{}:{}:{}", c.x, c.y, c.width, c.height),
            Value::Fit(fit) => f.write_str(fit_name(*fit)),
            Value::Gravity(Gravity::Smart) => f.write_str("smart"),
            Value::Gravity(Gravity::Focal(x, y)) => write!(f, "{}:{}", Decimal(*x), Decimal(*y)),
            Value::Gravity(g) => {
                let name = GRAVITIES
                    .iter()
                    .find(|(c, _)| c == g)
                    .map_or("center", |(_, n)| n);
                f.write_str(name)
            }
        }
    }
}
