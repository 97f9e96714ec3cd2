//! Resize, fit modes, crop, gravity, rotation and flips.

use imaging::transform::{CropRect, Gravity, ResizeFit, Rotation, TransformFormat, TransformSpec};

use crate::helpers::*;

const PNG: TransformFormat = TransformFormat::Png;

fn sized(w: Option<u32>, h: Option<u32>, fit: ResizeFit) -> TransformSpec {
    TransformSpec {
        width: w,
        height: h,
        fit,
        ..Default::default()
    }
}

#[test]
fn width_alone_keeps_the_aspect_ratio_and_never_enlarges_by_default() {
    let fx = Fixtures::new();
    let src = quadrants(&fx, "q.png", 400, 200);
    let out = transform(&src, &sized(Some(100), None, ResizeFit::Inside), PNG);
    assert_eq!((out.width, out.height), (100, 50));
    let px = Pixels::decode(&out.bytes);
    assert_near(px.rgb(10, 10), RED, 2, "top-left stays red");
    assert_near(px.rgb(90, 40), YELLOW, 2, "bottom-right stays yellow");

    let too_big = transform(&src, &sized(Some(800), None, ResizeFit::Inside), PNG);
    assert_eq!((too_big.width, too_big.height), (400, 200));
    let by_height = transform(&src, &sized(None, Some(50), ResizeFit::Inside), PNG);
    assert_eq!((by_height.width, by_height.height), (100, 50));
}

#[test]
fn up_1_enlarges_and_dpr_2_doubles_the_box() {
    let fx = Fixtures::new();
    let src = quadrants(&fx, "q.png", 400, 200);
    let up = TransformSpec {
        upscale: true,
        ..sized(Some(800), None, ResizeFit::Inside)
    };
    let out = transform(&src, &up, PNG);
    assert_eq!((out.width, out.height), (800, 400));
    assert_near(
        Pixels::decode(&out.bytes).rgb(790, 390),
        YELLOW,
        2,
        "corner",
    );

    let dpr = TransformSpec {
        dpr: 2,
        ..sized(Some(100), None, ResizeFit::Inside)
    };
    let out = transform(&src, &dpr, PNG);
    assert_eq!((out.width, out.height), (200, 100));
}

#[test]
fn each_fit_mode_gives_its_exact_box() {
    let fx = Fixtures::new();
    let src = quadrants(&fx, "q.png", 400, 200);
    let cases = [
        (ResizeFit::Inside, (100, 50)),
        (ResizeFit::Contain, (100, 100)),
        (ResizeFit::Cover, (100, 100)),
        (ResizeFit::Fill, (100, 100)),
        (ResizeFit::Outside, (200, 100)),
    ];
    for (fit, size) in cases {
        let out = transform(&src, &sized(Some(100), Some(100), fit), PNG);
        assert_eq!((out.width, out.height), size, "{fit:?}");
        let px = Pixels::decode(&out.bytes);
        match fit {
            // Letterboxed: transparent bands above and below, the picture in the middle.
            ResizeFit::Contain => {
                assert_eq!(px.alpha(50, 5), 0, "contain pads with transparency");
                assert_near(px.rgb(10, 30), RED, 2, "contain keeps the picture");
                assert_eq!(px.alpha(10, 30), 255);
            }
            // Resized to 200×100, the centre 100×100 has red on the left, green on the right.
            ResizeFit::Cover => {
                assert_near(px.rgb(5, 5), RED, 2, "cover left");
                assert_near(px.rgb(95, 5), GREEN, 2, "cover right");
            }
            // Squashed: all four quadrants fill the square.
            ResizeFit::Fill => {
                assert_near(px.rgb(10, 10), RED, 2, "fill");
                assert_near(px.rgb(90, 90), YELLOW, 2, "fill");
            }
            _ => assert_near(px.rgb(5, 5), RED, 2, "{fit:?}"),
        }
    }
}

#[test]
fn fit_contain_fills_with_bg_and_with_white_for_jpeg() {
    let fx = Fixtures::new();
    let src = quadrants(&fx, "q.png", 400, 200);
    let spec = TransformSpec {
        background: Some([0, 0, 255]),
        ..sized(Some(100), Some(100), ResizeFit::Contain)
    };
    let px = Pixels::decode(&transform(&src, &spec, PNG).bytes);
    assert_eq!(px.bands, 3, "bg makes it opaque");
    assert_near(px.rgb(50, 5), BLUE, 2, "bg canvas");
    let jpeg = sized(Some(100), Some(100), ResizeFit::Contain);
    let px = Pixels::decode(&transform(&src, &jpeg, TransformFormat::Jpeg).bytes);
    assert_near(px.rgb(50, 5), [255, 255, 255], 3, "JPEG canvas is white");
}

#[test]
fn crop_rect_picks_its_region_before_resizing() {
    let fx = Fixtures::new();
    let src = quadrants(&fx, "q.png", 400, 200);
    let crop = |x, y| TransformSpec {
        crop: Some(CropRect {
            x,
            y,
            width: 200,
            height: 100,
        }),
        ..Default::default()
    };
    let out = transform(&src, &crop(200, 100), PNG);
    assert_eq!((out.width, out.height), (200, 100));
    let px = Pixels::decode(&out.bytes);
    assert_near(px.rgb(0, 0), YELLOW, 0, "bottom-right quadrant");
    assert_near(px.rgb(199, 99), YELLOW, 0, "bottom-right quadrant");

    // Crop, then resize: 200×100 of green → 50×25.
    let both = TransformSpec {
        width: Some(50),
        ..crop(200, 0)
    };
    let out = transform(&src, &both, PNG);
    assert_eq!((out.width, out.height), (50, 25));
    let px = Pixels::decode(&out.bytes);
    assert_near(px.rgb(1, 1), GREEN, 2, "top-right quadrant");
    assert_near(px.rgb(48, 23), GREEN, 2, "top-right quadrant");
}

#[test]
fn crop_of_a_large_jpeg_uses_shrink_on_load_and_keeps_the_region() {
    let fx = Fixtures::new();
    let src = quadrants(&fx, "big.jpg", 4000, 2000);
    let spec = TransformSpec {
        crop: Some(CropRect {
            x: 2000,
            y: 0,
            width: 2000,
            height: 1000,
        }),
        width: Some(100),
        ..Default::default()
    };
    let out = transform(&src, &spec, TransformFormat::Jpeg);
    assert_eq!((out.width, out.height), (100, 50));
    let px = Pixels::decode(&out.bytes);
    assert_near(px.rgb(3, 3), GREEN, 12, "left edge of the crop is green");
    assert_near(px.rgb(96, 46), GREEN, 12, "right edge of the crop is green");
}

#[test]
fn gravity_chooses_which_part_a_cover_crop_keeps() {
    let fx = Fixtures::new();
    // Top half red, bottom half blue.
    let src = make(&fx, "tall.png", 200, 400, 3, |_, y| {
        if y < 200 { RED } else { BLUE }.to_vec()
    });
    for (gravity, want) in [(Gravity::North, RED), (Gravity::South, BLUE)] {
        let spec = TransformSpec {
            gravity,
            ..sized(Some(200), Some(100), ResizeFit::Cover)
        };
        let out = transform(&src, &spec, PNG);
        assert_eq!((out.width, out.height), (200, 100));
        let px = Pixels::decode(&out.bytes);
        assert_near(px.rgb(100, 2), want, 2, "{gravity:?}");
        assert_near(px.rgb(100, 97), want, 2, "{gravity:?}");
    }
}

#[test]
fn smart_gravity_keeps_the_detailed_square_of_a_flat_image() {
    let fx = Fixtures::new();
    // Flat grey with a colourful 100×100 checker at x 280..380.
    let src = make(&fx, "flat.png", 400, 200, 3, |x, y| {
        let inside = (280..380).contains(&x) && (50..150).contains(&y);
        if inside && (x / 6 + y / 6) % 2 == 0 {
            vec![230, 40, 60]
        } else if inside {
            vec![250, 220, 30]
        } else {
            GREY.to_vec()
        }
    });
    let cut = |gravity| {
        let spec = TransformSpec {
            gravity,
            ..sized(Some(150), Some(150), ResizeFit::Cover)
        };
        let out = transform(&src, &spec, PNG);
        assert_eq!((out.width, out.height), (150, 150));
        Pixels::decode(&out.bytes)
    };
    let (smart, centre) = (cut(Gravity::Smart), cut(Gravity::Center));
    assert!(
        smart.energy() > 2.0 * centre.energy(),
        "smart {} vs centre {}",
        smart.energy(),
        centre.energy()
    );
}

#[test]
fn a_focal_point_centres_the_crop_window_clamped_to_the_image() {
    let fx = Fixtures::new();
    // Thirds: red, green, blue.
    let src = make(&fx, "thirds.png", 300, 100, 3, |x, _| {
        [RED, GREEN, BLUE][(x / 100) as usize].to_vec()
    });
    for (point, want) in [((0.95, 0.5), BLUE), ((0.5, 0.5), GREEN), ((0.0, 0.0), RED)] {
        let spec = TransformSpec {
            gravity: Gravity::Focal(point.0, point.1),
            ..sized(Some(100), Some(100), ResizeFit::Cover)
        };
        let px = Pixels::decode(&transform(&src, &spec, PNG).bytes);
        assert_near(px.rgb(2, 50), want, 2, "{point:?}");
        assert_near(px.rgb(97, 50), want, 2, "{point:?}");
    }
}

#[test]
fn rotation_swaps_the_sides_and_moves_the_corners() {
    let fx = Fixtures::new();
    let src = quadrants(&fx, "q.png", 200, 100);
    let turned = |rotate| {
        let spec = TransformSpec {
            rotate,
            ..Default::default()
        };
        Pixels::decode(&transform(&src, &spec, PNG).bytes)
    };
    let r90 = turned(Rotation::Deg90);
    assert_eq!((r90.w, r90.h), (100, 200));
    assert_near(r90.rgb(95, 5), RED, 0, "clockwise: top-left goes top-right");
    let r180 = turned(Rotation::Deg180);
    assert_eq!((r180.w, r180.h), (200, 100));
    assert_near(r180.rgb(195, 95), RED, 0, "top-left goes bottom-right");
    let r270 = turned(Rotation::Deg270);
    assert_eq!((r270.w, r270.h), (100, 200));
    assert_near(r270.rgb(5, 195), RED, 0, "top-left goes bottom-left");
}

#[test]
fn flips_mirror_the_image() {
    let fx = Fixtures::new();
    let src = quadrants(&fx, "q.png", 200, 100);
    let h = TransformSpec {
        flip_h: true,
        ..Default::default()
    };
    let px = Pixels::decode(&transform(&src, &h, PNG).bytes);
    assert_near(px.rgb(195, 5), RED, 0, "flip_h");
    assert_near(px.rgb(5, 5), GREEN, 0, "flip_h");
    let v = TransformSpec {
        flip_v: true,
        ..Default::default()
    };
    let px = Pixels::decode(&transform(&src, &v, PNG).bytes);
    assert_near(px.rgb(5, 95), RED, 0, "flip_v");
    assert_near(px.rgb(5, 5), BLUE, 0, "flip_v");
}

#[test]
fn exif_orientation_is_applied_before_everything_else() {
    let fx = Fixtures::new();
    let jpeg = read(&quadrants(&fx, "q.jpg", 200, 100));
    let rotated = fx.write("rot.jpg", &crate::fixtures::with_exif(&jpeg, 6, "marker"));
    let spec = sized(Some(50), None, ResizeFit::Inside);
    let out = transform(&rotated, &spec, PNG);
    // Orientation 6 is a quarter turn clockwise: 100×200 upright, then w_50.
    assert_eq!((out.width, out.height), (50, 100));
    assert_near(Pixels::decode(&out.bytes).rgb(45, 3), RED, 12, "upright");
}
