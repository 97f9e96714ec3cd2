//! Rounded corners, padding and watermarks.

use imaging::transform::{
    Gravity, ResolvedWatermark, TransformFormat, TransformSpec, WatermarkSource, WatermarkSpec,
};

use crate::helpers::*;

const PNG: TransformFormat = TransformFormat::Png;

#[test]
fn radius_makes_the_corners_transparent_and_keeps_the_middle() {
    let fx = Fixtures::new();
    let src = solid(&fx, "green.png", 100, 100, GREEN);
    let spec = TransformSpec {
        radius: Some(20),
        ..Default::default()
    };
    let out = transform(&src, &spec, PNG);
    let px = Pixels::decode(&out.bytes);
    assert_eq!((px.w, px.h, px.bands), (100, 100, 4));
    for (x, y) in [(0, 0), (99, 0), (0, 99), (99, 99), (3, 3)] {
        assert_eq!(px.alpha(x, y), 0, "corner ({x},{y})");
    }
    for (x, y) in [(50, 50), (50, 0), (0, 50), (99, 50), (20, 20)] {
        assert_eq!(px.alpha(x, y), 255, "inside ({x},{y})");
    }
    assert_near(px.rgb(50, 50), GREEN, 0, "colour kept");
    // With bg the corners take its colour instead.
    let blue = TransformSpec {
        background: Some([0, 0, 255]),
        ..spec
    };
    let px = Pixels::decode(&transform(&src, &blue, PNG).bytes);
    assert_eq!(px.bands, 3);
    assert_near(px.rgb(0, 0), BLUE, 0, "corner takes bg");
}

#[test]
fn pad_adds_a_border_of_the_background() {
    let fx = Fixtures::new();
    let src = solid(&fx, "green.png", 100, 80, GREEN);
    let spec = TransformSpec {
        pad: Some(10),
        background: Some([0, 0, 255]),
        ..Default::default()
    };
    let out = transform(&src, &spec, PNG);
    assert_eq!((out.width, out.height), (120, 100));
    let px = Pixels::decode(&out.bytes);
    assert_near(px.rgb(5, 5), BLUE, 0, "border");
    assert_near(px.rgb(115, 95), BLUE, 0, "border");
    assert_near(px.rgb(60, 50), GREEN, 0, "picture");
    // Without bg: transparent in PNG, white in JPEG.
    let plain = TransformSpec {
        pad: Some(10),
        ..Default::default()
    };
    let px = Pixels::decode(&transform(&src, &plain, PNG).bytes);
    assert_eq!(px.alpha(5, 5), 0);
    assert_eq!(px.alpha(60, 50), 255);
    let px = Pixels::decode(&transform(&src, &plain, TransformFormat::Jpeg).bytes);
    assert_near(px.rgb(3, 3), [255, 255, 255], 3, "JPEG border");
}

fn red_mark(fx: &Fixtures) -> ResolvedWatermark {
    ResolvedWatermark {
        source: WatermarkSource::Image(solid(fx, "mark.png", 50, 50, RED)),
        opacity: 100,
        width_percent: 10,
        margin: 10,
    }
}

fn wm(position: Gravity) -> TransformSpec {
    TransformSpec {
        watermark: Some(WatermarkSpec {
            name: "logo".into(),
            position,
            opacity: 100,
            scale: None,
            tile: false,
        }),
        ..Default::default()
    }
}

fn marked(src: &std::path::Path, spec: &TransformSpec, mark: &ResolvedWatermark) -> Pixels {
    let out = try_transform(src, spec, Some(mark), PNG, &limits()).expect("watermarked");
    assert_eq!(magic(&out.bytes), Some(PNG));
    Pixels::decode(&out.bytes)
}

#[test]
fn an_image_watermark_lands_in_the_requested_corner_only() {
    let fx = Fixtures::new();
    let src = solid(&fx, "grey.png", 400, 300, GREY);
    let mark = red_mark(&fx);
    // 10 % of 400 = 40 px wide, 10 px from the edges.
    let px = marked(&src, &wm(Gravity::SouthEast), &mark);
    assert_eq!((px.w, px.h, px.bands), (400, 300, 3));
    assert_near(px.rgb(370, 270), RED, 2, "south-east");
    assert_near(px.rgb(352, 252), RED, 2, "mark's top-left");
    assert_near(px.rgb(345, 245), GREY, 2, "outside the 40 px mark");
    assert_near(px.rgb(395, 295), GREY, 2, "margin");
    assert_near(px.rgb(30, 30), GREY, 2, "opposite corner untouched");

    let px = marked(&src, &wm(Gravity::NorthWest), &mark);
    assert_near(px.rgb(30, 30), RED, 2, "north-west");
    assert_near(px.rgb(370, 270), GREY, 2, "south-east untouched");
}

#[test]
fn wmscale_sets_the_width_and_wmop_blends() {
    let fx = Fixtures::new();
    let src = solid(&fx, "grey.png", 400, 300, GREY);
    let mut spec = wm(Gravity::NorthWest);
    if let Some(w) = spec.watermark.as_mut() {
        w.scale = Some(50);
        w.opacity = 50;
    }
    let px = marked(&src, &spec, &red_mark(&fx));
    // 200 px wide from x = 10; half red over grey.
    assert_near(px.rgb(200, 100), [191, 64, 64], 4, "50 % red over grey");
    assert_near(px.rgb(215, 100), GREY, 2, "past the 200 px mark");
}

#[test]
fn a_tiled_watermark_covers_the_whole_image() {
    let fx = Fixtures::new();
    let src = solid(&fx, "grey.png", 400, 300, GREY);
    let mut spec = wm(Gravity::Center);
    if let Some(w) = spec.watermark.as_mut() {
        w.tile = true;
    }
    let px = marked(&src, &spec, &red_mark(&fx));
    let reddish =
        |x0: u32, y0: u32| (y0..y0 + 100).any(|y| (x0..x0 + 100).any(|x| px.rgb(x, y) == RED));
    for (x, y) in [(0, 0), (300, 0), (0, 200), (300, 200), (150, 100)] {
        assert!(reddish(x, y), "no tile near ({x},{y})");
    }
    // Tiles, not a wash: gaps of the picture remain between them.
    let red = (0..300)
        .flat_map(|y| (0..400).map(move |x| (x, y)))
        .filter(|&(x, y)| px.rgb(x, y) == RED)
        .count();
    assert!((6_000..90_000).contains(&red), "{red} of 120000 px red");
}

#[test]
fn a_text_watermark_draws_in_its_corner() {
    let fx = Fixtures::new();
    let src = solid(&fx, "white.png", 400, 200, [255, 255, 255]);
    let mark = ResolvedWatermark {
        source: WatermarkSource::Text {
            text: "Framehouse <&>".into(),
            font: "DejaVu Sans Bold".into(),
            rgba: [0, 0, 0, 255],
        },
        opacity: 100,
        width_percent: 40,
        margin: 8,
    };
    let px = marked(&src, &wm(Gravity::SouthEast), &mark);
    let darkest = |x0: u32, y0: u32, x1: u32, y1: u32| {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .map(|(x, y)| px.rgb(x, y)[0])
            .min()
            .unwrap()
    };
    assert!(darkest(200, 100, 400, 200) < 60, "text in the south-east");
    assert_eq!(darkest(0, 0, 200, 100), 255, "north-west untouched");
}
