//! On-the-fly transforms: the option language of `/img/{id}/{ops}.{ext}` (`spec`) and
//! its execution on libvips (`exec`).
//!
//! A [`TransformSpec`] is what the URL asks for, validated and canonicalised; the server
//! resolves named presets and watermark names before handing it to [`transform_file`].

mod exec;
mod spec;

pub use exec::{
    transform_file, transform_proxy_file, Encoded, ResolvedWatermark, TransformLimits,
    WatermarkSource,
};
pub use spec::SpecError;

/// How the output box is filled when both `w` and `h` are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ResizeFit {
    /// Fill the box exactly, cropping the overflow (by `gravity`).
    Cover,
    /// Fit inside the box and pad the rest with the background (transparent if none).
    Contain,
    /// Stretch to the box, ignoring the aspect ratio.
    Fill,
    /// Fit inside the box, keeping the aspect ratio (the default).
    #[default]
    Inside,
    /// Cover the box, keeping the aspect ratio, without cropping.
    Outside,
}

/// Where to anchor a crop, padding or watermark.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Gravity {
    #[default]
    Center,
    North,
    South,
    East,
    West,
    NorthEast,
    NorthWest,
    SouthEast,
    SouthWest,
    /// Attention/entropy-based, like libvips smartcrop (crops only).
    Smart,
    /// A focal point as fractions of width and height, each 0–1 (crops only).
    Focal(f32, f32),
}

/// A rectangle of the source, in pixels of the EXIF-oriented image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CropRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// A quarter turn applied after EXIF auto-orientation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rotation {
    #[default]
    None,
    Deg90,
    Deg180,
    Deg270,
}

/// `wm_NAME` and its modifiers; NAME is resolved by the server to a [`ResolvedWatermark`].
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkSpec {
    pub name: String,
    /// `wmpos_{gravity}`; default south-east. Smart/focal are not allowed here.
    pub position: Gravity,
    /// `wmop_N`, 0–100 percent; default 100 (the preset's own opacity applies on top).
    pub opacity: u8,
    /// `wmscale_N`, watermark width as 1–100 percent of the output width; default: the
    /// preset's size.
    pub scale: Option<u8>,
    /// `wmtile_1`: repeat over the whole image.
    pub tile: bool,
}

impl WatermarkSpec {
    /// `wm_NAME` with every modifier at its default.
    pub fn named(name: impl Into<String>) -> WatermarkSpec {
        WatermarkSpec {
            name: name.into(),
            position: Gravity::SouthEast,
            opacity: 100,
            scale: None,
            tile: false,
        }
    }
}

/// Every option of a transform URL. `Default` is the identity transform (re-encode only).
#[derive(Debug, Clone, PartialEq)]
pub struct TransformSpec {
    /// `p_NAME`: a named preset; the server expands it (its options, then these on top).
    pub preset: Option<String>,
    /// `w_N`, `h_N`: the target box in CSS pixels (multiplied by `dpr`), 1–12000.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `fit_cover | fit_contain | fit_fill | fit_inside | fit_outside`.
    pub fit: ResizeFit,
    /// `up_1`: allow upscaling (never by default).
    pub upscale: bool,
    /// `dpr_N`, 1–4; default 1.
    pub dpr: u8,
    /// `crop_X:Y:W:H`, applied first.
    pub crop: Option<CropRect>,
    /// `g_…`: gravity for `fit_cover` crops and `fit_contain` placement.
    pub gravity: Gravity,
    /// `rot_90 | rot_180 | rot_270`.
    pub rotate: Rotation,
    /// `flip_h`, `flip_v` (written `flip_h` / `flip_v`, no value).
    pub flip_h: bool,
    pub flip_v: bool,
    /// `blur_S`: Gaussian sigma, 0.3–100.
    pub blur: Option<f32>,
    /// `sharpen_S`: sigma, 0.3–10.
    pub sharpen: Option<f32>,
    /// `gray_1`.
    pub gray: bool,
    /// `sepia_1`.
    pub sepia: bool,
    /// `bright_N`, `contrast_N`, `sat_N`: −100…100, 0 = unchanged.
    pub brightness: i8,
    pub contrast: i8,
    pub saturation: i8,
    /// `gamma_F`, 0.1–10.
    pub gamma: Option<f32>,
    /// `norm_1`: stretch levels to the full range.
    pub normalize: bool,
    /// `bg_RRGGBB`: flatten alpha onto this colour (also the `fit_contain`/`pad` colour).
    pub background: Option<[u8; 3]>,
    /// `radius_N`: rounded corners in output pixels (transparent, or `bg` when set).
    pub radius: Option<u32>,
    /// `pad_N`: padding on every side in output pixels.
    pub pad: Option<u32>,
    /// `wm_NAME` with `wmpos_`, `wmop_`, `wmscale_`, `wmtile_`.
    pub watermark: Option<WatermarkSpec>,
    /// `q_N`, 1–100; default: the format's default (80).
    pub quality: Option<u8>,
    /// `lossless_1` (WebP, AVIF).
    pub lossless: bool,
    /// `prog_1`: progressive JPEG / interlaced PNG.
    pub progressive: bool,
    /// `frame_N`: use only this frame of an animated input (0 = the first).
    pub frame: Option<u32>,
}

// Written out rather than derived: a derived default would set `dpr` to 0, which is not a
// valid device-pixel ratio and would not be the identity.
impl Default for TransformSpec {
    fn default() -> Self {
        TransformSpec {
            preset: None,
            width: None,
            height: None,
            fit: ResizeFit::Inside,
            upscale: false,
            dpr: 1,
            crop: None,
            gravity: Gravity::Center,
            rotate: Rotation::None,
            flip_h: false,
            flip_v: false,
            blur: None,
            sharpen: None,
            gray: false,
            sepia: false,
            brightness: 0,
            contrast: 0,
            saturation: 0,
            gamma: None,
            normalize: false,
            background: None,
            radius: None,
            pad: None,
            watermark: None,
            quality: None,
            lossless: false,
            progressive: false,
            frame: None,
        }
    }
}

/// Formats a transform can produce (`auto` is resolved by the server from `Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformFormat {
    Jpeg,
    Png,
    Webp,
    Avif,
    Gif,
}

impl TransformFormat {
    /// From a URL extension: `jpg | png | webp | avif | gif` (`jpeg` too).
    pub fn from_extension(ext: &str) -> Option<TransformFormat> {
        match ext {
            "jpg" | "jpeg" => Some(TransformFormat::Jpeg),
            "png" => Some(TransformFormat::Png),
            "webp" => Some(TransformFormat::Webp),
            "avif" => Some(TransformFormat::Avif),
            "gif" => Some(TransformFormat::Gif),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            TransformFormat::Jpeg => "jpg",
            TransformFormat::Png => "png",
            TransformFormat::Webp => "webp",
            TransformFormat::Avif => "avif",
            TransformFormat::Gif => "gif",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            TransformFormat::Jpeg => "image/jpeg",
            TransformFormat::Png => "image/png",
            TransformFormat::Webp => "image/webp",
            TransformFormat::Avif => "image/avif",
            TransformFormat::Gif => "image/gif",
        }
    }
}
