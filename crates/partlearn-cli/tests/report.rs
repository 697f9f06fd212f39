//! `partlearn report` renders in a real browser: the page is drawn by headless Chromium and the
//! screenshot must not be blank. Skipped when Chromium is missing, unless
//! PARTLEARN_REQUIRE_CHROMIUM is set (CI installs the Debian package `chromium`).

use std::path::Path;
use std::process::Command;

mod common;
use common::*;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
}

/// Fraction of pixels of an RGB(A) PNG that are not near-white.
fn ink_fraction(png_path: &Path) -> f64 {
    let bytes = std::fs::read(png_path).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px = &buf[..info.buffer_size()];
    let total = px.len() / channels;
    let ink = px
        .chunks_exact(channels)
        .filter(|p| p.iter().take(3).any(|&c| c < 200))
        .count();
    ink as f64 / total as f64
}

#[test]
fn report_renders_in_headless_chromium_and_is_not_blank() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("PARTLEARN_REQUIRE_CHROMIUM").is_none(),
            "PARTLEARN_REQUIRE_CHROMIUM is set but no chromium is installed (apt-get install -y chromium)"
        );
        eprintln!("skipped: chromium not installed");
        return;
    };
    let dir = temp_dir("report");
    let run_dir = dir.join("run");
    assert_ok(
        &fit_swimmer(&run_dir)
            .args(["-k", "17", "--max-iter", "30"])
            .output()
            .unwrap(),
    );
    let html = dir.join("report.html");
    let report = ["report", s(&run_dir), "--out", s(&html)];
    assert_ok(&run(&report));
    // Without --force the report is not overwritten.
    assert_user_error(&run(&report), &["already exists", "--force"]);

    let shot = dir.join("shot.png");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1400",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        shot.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ink = ink_fraction(&shot);
    // Text, table lines and the black atom tiles cover a good part of the page.
    assert!(
        ink > 0.05,
        "the rendered report looks blank ({:.1}% ink)",
        100.0 * ink
    );
    let _ = std::fs::remove_dir_all(&dir);
}
