//! Limits before decoding, output limits, time limits, and bad input or options.

use std::time::{Duration, Instant};

use imaging::transform::{
    CropRect, Gravity, ResolvedWatermark, TransformFormat, TransformLimits, TransformSpec,
    WatermarkSource, WatermarkSpec,
};
use imaging::ImagingError;
use libvips::ops::BandFormat;
use libvips::VipsImage;

use crate::fixtures::png_header_only;
use crate::helpers::*;

const JPEG: TransformFormat = TransformFormat::Jpeg;

#[test]
fn an_input_declaring_100000px_is_refused_before_decoding() {
    let fx = Fixtures::new();
    let bomb = fx.write("bomb.png", &png_header_only(100_000, 100_000));
    let err = try_transform(&bomb, &TransformSpec::default(), None, JPEG, &limits());
    assert!(
        matches!(&err, Err(ImagingError::TooLarge(m)) if m.contains("100000")),
        "{err:?}"
    );
}

#[test]
fn a_watermark_declaring_100000px_is_refused_before_decoding() {
    let fx = Fixtures::new();
    let src = solid(&fx, "grey.png", 200, 100, GREY);
    let mark = ResolvedWatermark {
        source: WatermarkSource::Image(fx.write("bomb.png", &png_header_only(100_000, 100_000))),
        opacity: 100,
        width_percent: 20,
        margin: 0,
    };
    let spec = TransformSpec {
        watermark: Some(WatermarkSpec {
            name: "bomb".into(),
            position: Gravity::SouthEast,
            opacity: 100,
            scale: None,
            tile: false,
        }),
        ..Default::default()
    };
    let err = try_transform(&src, &spec, Some(&mark), JPEG, &limits());
    assert!(matches!(err, Err(ImagingError::TooLarge(_))), "{err:?}");
}

#[test]
fn outputs_beyond_the_limits_are_refused_up_front() {
    let fx = Fixtures::new();
    let src = solid(&fx, "grey.png", 200, 100, GREY);
    let small = TransformLimits {
        max_side: 1000,
        ..limits()
    };
    let huge = TransformSpec {
        width: Some(3000),
        upscale: true,
        ..Default::default()
    };
    let err = try_transform(&src, &huge, None, JPEG, &small);
    assert!(
        matches!(&err, Err(ImagingError::TooLarge(m)) if m.contains("1000 px")),
        "{err:?}"
    );
    let padded = TransformSpec {
        pad: Some(600),
        ..Default::default()
    };
    let err = try_transform(&src, &padded, None, JPEG, &small);
    assert!(matches!(err, Err(ImagingError::TooLarge(_))), "{err:?}");
}

#[test]
fn a_pathological_transform_is_cancelled_at_its_time_limit() {
    let fx = Fixtures::new();
    // 4000×3000 of flat grey: cheap to decode, very expensive to blur at sigma 100.
    let px = vec![128u8; 4000 * 3000 * 3];
    let img = VipsImage::new_from_memory(&px, 4000, 3000, 3, BandFormat::Uchar).unwrap();
    let path = fx.path("big.jpg");
    img.image_write_to_file(path.to_str().unwrap()).unwrap();
    let spec = TransformSpec {
        blur: Some(100.0),
        ..Default::default()
    };
    for timeout in [Duration::from_millis(1), Duration::from_millis(300)] {
        let limits = TransformLimits {
            timeout,
            ..limits()
        };
        let started = Instant::now();
        let err = try_transform(&path, &spec, None, JPEG, &limits);
        let took = started.elapsed();
        assert!(
            matches!(err, Err(ImagingError::Timeout)),
            "{timeout:?}: {err:?}"
        );
        assert!(took < timeout + Duration::from_secs(2), "took {took:?}");
    }
}

#[test]
fn truncated_and_garbage_inputs_fail_cleanly() {
    let fx = Fixtures::new();
    let jpeg = read(&fx.picture("land.jpg", 640, 480, landscape));
    let cut = fx.write("cut.jpg", &jpeg[..jpeg.len() / 2]);
    let err = try_transform(&cut, &TransformSpec::default(), None, JPEG, &limits());
    assert!(matches!(err, Err(ImagingError::Corrupt(_))), "{err:?}");
    let mut garbage = jpeg[..200].to_vec();
    garbage.extend(std::iter::repeat_n(0x5A, 5000));
    let bad = fx.write("bad.jpg", &garbage);
    let err = try_transform(&bad, &TransformSpec::default(), None, JPEG, &limits());
    assert!(err.is_err(), "{err:?}");
}

#[test]
fn options_that_do_not_fit_the_image_are_refused_with_a_reason() {
    let fx = Fixtures::new();
    let src = solid(&fx, "grey.png", 200, 100, GREY);
    let outside = TransformSpec {
        crop: Some(CropRect {
            x: 500,
            y: 0,
            width: 10,
            height: 10,
        }),
        ..Default::default()
    };
    let err = try_transform(&src, &outside, None, JPEG, &limits());
    assert!(
        matches!(err, Err(ImagingError::InvalidTransform(_))),
        "{err:?}"
    );
    let frame = TransformSpec {
        frame: Some(3),
        ..Default::default()
    };
    let err = try_transform(&src, &frame, None, JPEG, &limits());
    assert!(
        matches!(err, Err(ImagingError::InvalidTransform(_))),
        "{err:?}"
    );
}
