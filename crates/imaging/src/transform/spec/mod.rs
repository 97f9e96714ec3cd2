//! The option language of `/img/{id}/{ops}.{ext}`: parsing, the canonical form (result-cache
//! and signature key material) and preset merging.
//!
//! `ops` is comma-separated `key_value` tokens in any order, each key at most once. Only the
//! first `_` separates key from value, so names may contain `_` (`wm_my_logo`). The parser is
//! strict on purpose: the canonical form is a cache key, so every accepted spelling must map
//! to exactly one meaning, and anything odd (whitespace, `+`, exponents, stray commas) is a 400
//! rather than a guess.
//!
//! `parse("")` is an error (an empty ops segment is not a valid URL), but the identity spec
//! canonicalises to `""`: callers that put the canonical form in a path need a placeholder
//! word for that case.

use std::fmt::Write as _;

use super::{TransformSpec, WatermarkSpec};
use value::*;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
mod value;

/// Longest ops segment accepted. Real option strings are well under 200 bytes; the bound keeps
/// parsing cheap and error bodies small for hostile input.
pub const MAX_OPS_LEN: usize = 1024;

/// Longest `wm_`/`p_` name.
const MAX_NAME_LEN: usize = 64;

/// Longest token quoted back in an error, so a 1 KiB token does not end up in a 400 body.
const MAX_QUOTED_LEN: usize = 64;

/// A transform option that is not understood; names the offending token and says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid option `{token}`: {reason}")]
pub struct SpecError {
    pub token: String,
    pub reason: String,
}

impl SpecError {
    fn new(token: &str, reason: impl Into<String>) -> SpecError {
        let token = match token.char_indices().nth(MAX_QUOTED_LEN) {
            Some((cut, _)) => format!("{}…", &token[..cut]),
            None => token.to_string(),
        };
        SpecError {
            token,
            reason: reason.into(),
        }
    }
}

/// Declares [`Key`] and its name table from one list, so the two cannot drift apart.
macro_rules! keys {
    ($($key:ident $name:literal),* $(,)?) => {
        /// Every key. The declaration order is the canonical token order: alphabetical by
        /// name (a test checks it). `flip_h`/`flip_v` are separate keys so both may be given.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Key { $($key),* }

        impl Key {
            const ALL: &[(Key, &str)] = &[$((Key::$key, $name)),*];
        }
    };
}

keys! {
    Bg "bg", Blur "blur", Bright "bright", Contrast "contrast", Crop "crop", Dpr "dpr",
    Fit "fit", FlipH "flip_h", FlipV "flip_v", Frame "frame", G "g", Gamma "gamma",
    Gray "gray", H "h", Lossless "lossless", Norm "norm", P "p", Pad "pad", Prog "prog",
    Q "q", Radius "radius", Rot "rot", Sat "sat", Sepia "sepia", Sharpen "sharpen", Up "up",
    W "w", Wm "wm", WmOp "wmop", WmPos "wmpos", WmScale "wmscale", WmTile "wmtile",
}

impl Key {
    fn name(self) -> &'static str {
        Key::ALL[self as usize].1
    }

    /// Splits a token into its key and value. `flip_h`/`flip_v` have no value.
    fn split(token: &str) -> Result<(Key, &str), String> {
        if token == "flip_h" || token == "flip_v" {
            let key = if token == "flip_h" {
                Key::FlipH
            } else {
                Key::FlipV
            };
            return Ok((key, ""));
        }
        let (name, value) = token.split_once('_').unwrap_or((token, ""));
        if name == "flip" {
            return Err("expected `flip_h` or `flip_v` (no value)".into());
        }
        let key = Key::ALL.iter().find(|(_, n)| *n == name).map(|(k, _)| *k);
        match key {
            None if name.is_empty() => Err("missing option name before `_`".into()),
            None => Err(format!("unknown option `{name}`")),
            Some(key) if value.is_empty() => Err(format!("`{}` needs a value", key.name())),
            Some(key) => Ok((key, value)),
        }
    }

    fn is_watermark_modifier(self) -> bool {
        matches!(self, Key::WmOp | Key::WmPos | Key::WmScale | Key::WmTile)
    }
}

impl TransformSpec {
    /// Parses comma-separated `key_value` tokens in any order. See the module docs for the
    /// rules; the error names the first bad token.
    pub fn parse(ops: &str) -> Result<TransformSpec, SpecError> {
        if ops.is_empty() {
            return Err(SpecError::new("", "no options given"));
        }
        if ops.len() > MAX_OPS_LEN {
            let reason = format!("options are longer than {MAX_OPS_LEN} bytes");
            return Err(SpecError::new(ops, reason));
        }
        let mut spec = TransformSpec::default();
        // Modifiers may come before `wm_`, so they are collected here and attached at the end.
        let mut watermark = WatermarkSpec::named("");
        let mut first_modifier = None;
        let mut seen = 0u64;
        for token in ops.split(',') {
            if token.is_empty() {
                return Err(SpecError::new(token, "empty option (stray comma)"));
            }
            if token.chars().any(char::is_whitespace) {
                return Err(SpecError::new(token, "contains whitespace"));
            }
            let (key, value) = Key::split(token).map_err(|r| SpecError::new(token, r))?;
            let bit = 1u64 << key as u32;
            if seen & bit != 0 {
                let reason = format!("`{}` is given more than once", key.name());
                return Err(SpecError::new(token, reason));
            }
            seen |= bit;
            if key.is_watermark_modifier() {
                first_modifier.get_or_insert(token);
            }
            apply(&mut spec, &mut watermark, key, value).map_err(|r| SpecError::new(token, r))?;
        }
        if !watermark.name.is_empty() {
            spec.watermark = Some(watermark);
        } else if let Some(token) = first_modifier {
            return Err(SpecError::new(token, "watermark options need `wm_NAME`"));
        }
        Ok(spec)
    }

    /// The canonical option string: tokens in alphabetical key order, defaults dropped,
    /// numbers normalised, floats to at most 3 decimals. A pure function of the meaning, so
    /// it is the cache key; `parse(&s.canonical()) == Ok(s)` for every parsed `s` that is not
    /// the identity (whose canonical form is `""`).
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for &(key, name) in Key::ALL {
            let Some(value) = self.canonical_value(key) else {
                continue;
            };
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(name);
            if !matches!(value, Value::Bare) {
                // Writing to a String cannot fail.
                let _ = write!(out, "_{value}");
            }
        }
        out
    }

    /// These options applied on top of `base` (a named preset's): every option set here (not
    /// at its default) wins, everything else comes from `base`. The watermark is taken whole,
    /// since its modifiers only mean something together with its name. The result has no
    /// preset. A default here cannot switch off an option of `base` (`up_0` is the same as
    /// leaving `up` out).
    pub fn merged_onto(&self, base: &TransformSpec) -> TransformSpec {
        let d = TransformSpec::default();
        macro_rules! pick {
            ($field:ident) => {
                if self.$field != d.$field {
                    self.$field.clone()
                } else {
                    base.$field.clone()
                }
            };
        }
        // A struct literal rather than `..base` so that a new field cannot be forgotten here.
        TransformSpec {
            preset: None,
            width: pick!(width),
            height: pick!(height),
            fit: pick!(fit),
            upscale: pick!(upscale),
            dpr: pick!(dpr),
            crop: pick!(crop),
            gravity: pick!(gravity),
            rotate: pick!(rotate),
            flip_h: pick!(flip_h),
            flip_v: pick!(flip_v),
            blur: pick!(blur),
            sharpen: pick!(sharpen),
            gray: pick!(gray),
            sepia: pick!(sepia),
            brightness: pick!(brightness),
            contrast: pick!(contrast),
            saturation: pick!(saturation),
            gamma: pick!(gamma),
            normalize: pick!(normalize),
            background: pick!(background),
            radius: pick!(radius),
            pad: pick!(pad),
            watermark: pick!(watermark),
            quality: pick!(quality),
            lossless: pick!(lossless),
            progressive: pick!(progressive),
            frame: pick!(frame),
        }
    }
}

/// Stores one token's value in `spec`; the error is the reason, the caller adds the token.
fn apply(
    spec: &mut TransformSpec,
    wm: &mut WatermarkSpec,
    key: Key,
    v: &str,
) -> Result<(), String> {
    match key {
        Key::W => spec.width = Some(uint(v, 1, 12_000, "width")?),
        Key::H => spec.height = Some(uint(v, 1, 12_000, "height")?),
        Key::Fit => spec.fit = parse_fit(v)?,
        Key::Up => spec.upscale = flag(v, key.name())?,
        Key::Dpr => spec.dpr = uint(v, 1, 4, "dpr")? as u8,
        Key::Crop => spec.crop = Some(parse_crop(v)?),
        Key::G => spec.gravity = parse_gravity(v, true)?,
        Key::Rot => spec.rotate = parse_rotation(v)?,
        Key::FlipH => spec.flip_h = true,
        Key::FlipV => spec.flip_v = true,
        Key::Blur => spec.blur = Some(decimal(v, 300, 100_000, "blur sigma")?),
        Key::Sharpen => spec.sharpen = Some(decimal(v, 300, 10_000, "sharpen sigma")?),
        Key::Gray => spec.gray = flag(v, key.name())?,
        Key::Sepia => spec.sepia = flag(v, key.name())?,
        Key::Bright => spec.brightness = percent(v, "brightness")?,
        Key::Contrast => spec.contrast = percent(v, "contrast")?,
        Key::Sat => spec.saturation = percent(v, "saturation")?,
        Key::Gamma => spec.gamma = Some(decimal(v, 100, 10_000, "gamma")?),
        Key::Norm => spec.normalize = flag(v, key.name())?,
        Key::Bg => spec.background = Some(parse_colour(v)?),
        Key::Radius => spec.radius = Some(uint(v, 1, 5_000, "radius")?),
        Key::Pad => spec.pad = Some(uint(v, 1, 5_000, "padding")?),
        Key::Wm => wm.name = name(v, "watermark")?,
        Key::WmPos => wm.position = parse_gravity(v, false)?,
        Key::WmOp => wm.opacity = uint(v, 0, 100, "watermark opacity")? as u8,
        Key::WmScale => wm.scale = Some(uint(v, 1, 100, "watermark scale")? as u8),
        Key::WmTile => wm.tile = flag(v, key.name())?,
        Key::Q => spec.quality = Some(uint(v, 1, 100, "quality")? as u8),
        Key::Lossless => spec.lossless = flag(v, key.name())?,
        Key::Prog => spec.progressive = flag(v, key.name())?,
        Key::Frame => spec.frame = Some(uint(v, 0, 10_000, "frame")?),
        Key::P => spec.preset = Some(name(v, "preset")?),
    }
    Ok(())
}

impl TransformSpec {
    /// The value `canonical()` writes for `key`, or `None` when the option is at its default.
    fn canonical_value(&self, key: Key) -> Option<Value<'_>> {
        let d = TransformSpec::default();
        let wm = self.watermark.as_ref();
        let wm_d = WatermarkSpec::named("");
        let int = |n: u32| Value::Int(n.into());
        let on = |set: bool| set.then_some(Value::Int(1));
        let adjust = |n: i8| (n != 0).then_some(Value::Int(n.into()));
        match key {
            Key::Bg => self.background.map(Value::Colour),
            Key::Blur => self.blur.map(Value::Dec),
            Key::Bright => adjust(self.brightness),
            Key::Contrast => adjust(self.contrast),
            Key::Crop => self.crop.map(Value::Crop),
            Key::Dpr => (self.dpr != d.dpr).then_some(Value::Int(self.dpr.into())),
            Key::Fit => (self.fit != d.fit).then_some(Value::Fit(self.fit)),
            Key::FlipH => self.flip_h.then_some(Value::Bare),
            Key::FlipV => self.flip_v.then_some(Value::Bare),
            Key::Frame => self.frame.map(int),
            Key::G => (self.gravity != d.gravity).then_some(Value::Gravity(self.gravity)),
            Key::Gamma => self.gamma.map(Value::Dec),
            Key::Gray => on(self.gray),
            Key::H => self.height.map(int),
            Key::Lossless => on(self.lossless),
            Key::Norm => on(self.normalize),
            Key::P => self.preset.as_deref().map(Value::Name),
            Key::Pad => self.pad.map(int),
            Key::Prog => on(self.progressive),
            Key::Q => self.quality.map(|q| int(q.into())),
            Key::Radius => self.radius.map(int),
            Key::Rot => rotation_degrees(self.rotate).map(|deg| int(deg.into())),
            Key::Sat => adjust(self.saturation),
            Key::Sepia => on(self.sepia),
            Key::Sharpen => self.sharpen.map(Value::Dec),
            Key::Up => on(self.upscale),
            Key::W => self.width.map(int),
            Key::Wm => wm.map(|w| Value::Name(&w.name)),
            Key::WmOp => wm
                .filter(|w| w.opacity != wm_d.opacity)
                .map(|w| int(w.opacity.into())),
            Key::WmPos => wm
                .filter(|w| w.position != wm_d.position)
                .map(|w| Value::Gravity(w.position)),
            Key::WmScale => wm.and_then(|w| w.scale).map(|s| int(s.into())),
            Key::WmTile => on(wm.is_some_and(|w| w.tile)),
        }
    }
}
