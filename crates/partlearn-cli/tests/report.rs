//! `partlearn report` renders in a real browser: the page is drawn by headless Chromium, the
//! screenshot must not be blank, and a script run in the page checks the layout (every image and
//! chart has a non-zero size, no chart text leaves its chart, no text overflows its box). Skipped
//! when Chromium is missing, unless PARTLEARN_REQUIRE_CHROMIUM is set (CI installs the Debian
//! package `chromium`).

use std::path::Path;
use std::process::Command;

mod common;
use common::*;

/// The installed browser; `None` (the test is skipped) when there is none, which is an error
/// when PARTLEARN_REQUIRE_CHROMIUM is set.
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
    if found.is_none() {
        assert!(
            std::env::var_os("PARTLEARN_REQUIRE_CHROMIUM").is_none(),
            "PARTLEARN_REQUIRE_CHROMIUM is set but no chromium is installed (apt-get install -y chromium)"
        );
        eprintln!("skipped: chromium not installed");
    }
    found
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
        return;
    };
    let dir = temp_dir("report");
    let run_dir = dir.join("run");
    let other = dir.join("other-run-with-a-longer-name");
    for (d, k) in [(&run_dir, "17"), (&other, "8")] {
        assert_ok(
            &fit_swimmer(d)
                .args(["-k", k, "--max-iter", "30"])
                .output()
                .unwrap(),
        );
        assert_ok(&run(&["eval", s(d), "--data", "swimmer", "--quiet", "--no-svm"]));
    }
    // A rank selection's section (table and four charts) is laid out and checked as well.
    let sel = dir.join("select-k");
    assert_ok(&run(&[
        "select-k",
        "--data",
        "swimmer",
        "-k",
        "4,8",
        "--runs",
        "2",
        "--max-iter",
        "20",
        "--holdout",
        "0.1",
        "--replicates",
        "2",
        "--out",
        s(&sel),
        "-q",
    ]));
    let html = dir.join("report.html");
    let report = ["report", s(&run_dir), s(&other), s(&sel), "--out", s(&html)];
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
    // Text, table lines and chart axes cover a part of the page (a blank page has none; the
    // first screen is text, the table and the trade-off charts, mostly white).
    assert!(
        ink > 0.02,
        "the rendered report looks blank ({:.1}% ink)",
        100.0 * ink
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "self-contained"
    );
    assert!(
        page.contains(">max-approximations</text>"),
        "the panel's rows are named"
    );

    // The layout, measured by the browser.
    let problems = layout_problems(browser, &dir, &page);
    assert!(
        problems.starts_with("checked "),
        "layout check did not run: {problems}"
    );
    assert!(!problems.contains("PROBLEM"), "report layout: {problems}");
    // The check fails when the layout is broken: a chart text pushed out of its chart, an image
    // that does not load, a cell whose text cannot wrap.
    let broken = page
        .replacen(
            ">max-approximations</text>",
            " dx=\"-400\">max-approximations</text>",
            1,
        )
        .replacen(
            "src=\"data:image/png;base64,",
            "src=\"data:image/png;base64,AAAA",
            1,
        )
        .replacen(
            "<figcaption>",
            "<figcaption style=\"width:40px;white-space:nowrap;overflow:hidden\">",
            1,
        );
    let found = layout_problems(browser, &dir, &broken);
    for want in ["text outside its svg", "no size", "overflows"] {
        assert!(found.contains(want), "the check missed '{want}': {found}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_study_page_lays_out_in_headless_chromium() {
    let Some(browser) = chromium() else {
        return;
    };
    if !fashion_available() {
        return;
    }
    let dir = temp_dir("study-page");
    let out = dir.join("study");
    assert_ok(&run(&[
        "reproduce",
        "part-based-study",
        "--first",
        "300",
        "--eval-first",
        "200",
        "--epochs",
        "1",
        "--penalties",
        "kl,log",
        "--beta",
        "0.001,0.01",
        "--p",
        "0.01,0.05",
        "--no-asym",
        "--threads",
        "2",
        "--out",
        s(&out),
        "-q",
    ]));
    let page = std::fs::read_to_string(out.join("study.html")).unwrap();
    assert!(
        page.contains("shallow NN-AE, log penalty"),
        "the log penalty's curves"
    );
    let problems = layout_problems(browser, &dir, &page);
    assert!(
        problems.starts_with("checked "),
        "layout check did not run: {problems}"
    );
    assert!(!problems.contains("PROBLEM"), "study page layout: {problems}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a layout check in the page (after load) and returns what it wrote: `checked N …` and
/// one `PROBLEM …` line per image or chart of zero size, chart text outside its chart, element
/// whose text overflows its box, or page wider than the window.
fn layout_problems(browser: &str, dir: &Path, page: &str) -> String {
    const CHECK: &str = r#"<script>
window.addEventListener('load', () => {
  const out = [];
  let n = 0;
  const inside = (a, b) => a.left >= b.left - 1 && a.right <= b.right + 1 && a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  for (const el of document.querySelectorAll('img, svg')) {
    if (el.tagName.toLowerCase() === 'svg' && el.parentElement.closest('svg')) continue;
    n++;
    const r = el.getBoundingClientRect();
    const broken = el.tagName.toLowerCase() === 'img' && !(el.complete && el.naturalWidth > 0);
    if (!(r.width > 0 && r.height > 0) || broken) out.push('PROBLEM no size: ' + el.tagName + ' in ' + (el.closest('figure')?.textContent.slice(0, 60) ?? ''));
  }
  for (const t of document.querySelectorAll('svg text')) {
    n++;
    const svg = t.closest('svg');
    let root = svg; while (root.parentElement && root.parentElement.closest('svg')) root = root.parentElement.closest('svg');
    const r = t.getBoundingClientRect();
    if (t.textContent.trim() && !(r.width > 0)) out.push('PROBLEM text of no size: ' + t.textContent);
    else if (t.textContent.trim() && !inside(r, root.getBoundingClientRect())) out.push('PROBLEM text outside its svg: ' + t.textContent);
  }
  for (const el of document.querySelectorAll('h1, h2, h3, p, th, td, figcaption')) {
    n++;
    if (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1) out.push('PROBLEM text overflows: <' + el.tagName + '> ' + el.textContent.slice(0, 60));
  }
  if (document.documentElement.scrollWidth > window.innerWidth + 1) out.push('PROBLEM page wider than the window');
  const pre = document.createElement('pre');
  pre.id = 'layout-check';
  pre.textContent = 'checked ' + n + '\n' + out.join('\n');
  document.body.appendChild(pre);
});
</script>"#;
    let path = dir.join("layout.html");
    std::fs::write(&path, page.replacen("</body>", &format!("{CHECK}</body>"), 1)).unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,1400",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", path.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let Some(start) = dom.find("<pre id=\"layout-check\">") else {
        return format!(
            "no result in the dumped page: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let rest = &dom[start + "<pre id=\"layout-check\">".len()..];
    rest[..rest.find("</pre>").unwrap_or(rest.len())]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}
