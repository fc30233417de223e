//! `outage-radar demo` in a shortened mode (a faster clock), with Debian's
//! headless Chromium loading the status page while the outage is live.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outage_testkit::{find_binary, free_port, wait_until};

#[test]
fn demo_detects_every_region_and_the_status_page_shows_the_incident() {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(["demo", "--speed", "300", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    let reader = {
        let out = out.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut o = out.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        })
    };
    let text = || out.lock().unwrap().clone();

    // While the fan-out is live: the status page, in a real browser.
    assert!(
        wait_until(Duration::from_secs(240), || text()
            .contains("GLOBAL outage")),
        "no global incident in the demo's output:\n{}",
        text()
    );
    let chromium = find_binary("CHROMIUM_BIN", &["chromium", "chromium-browser"]);
    let profile = tempfile::tempdir().unwrap();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo");
    std::fs::create_dir_all(&shots).unwrap();
    let screenshot = shots.join("status-page.png");
    let browser = |extra: &[String]| {
        Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1400,1800",
                // Let the page's fetch of /api/status run before the dump.
                "--virtual-time-budget=4000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .unwrap()
    };
    let dom = browser(&["--dump-dom".to_string()]);
    let html = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    assert!(
        html.contains("data-scope=\"global\""),
        "the global incident is shown:\n{html}"
    );
    assert!(
        html.contains("GLOBAL OUTAGE"),
        "the service is marked:\n{html}"
    );
    for region in ["GB", "DE", "FR"] {
        assert!(
            html.contains(&format!("data-region=\"{region}\"")),
            "region {region} in the table:\n{html}"
        );
    }
    assert!(
        html.contains("<polyline"),
        "the reports-vs-expected chart is drawn"
    );
    let shot = browser(&[format!("--screenshot={}", screenshot.display())]);
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 10_000,
        "a real screenshot"
    );
    eprintln!("status page screenshot: {}", screenshot.display());

    // The summary.
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let text = text();
    assert!(status.success(), "{text}\n{stderr}");
    assert!(text.contains("— nothing dropped"), "{text}");
    assert!(text.contains("outage regions detected: 14/14"), "{text}");
    assert!(
        text.contains("global incidents: 1 detected, 0 missed"),
        "{text}"
    );
    assert!(
        text.contains("false incidents: 0 region, 0 global"),
        "{text}"
    );
    assert!(
        text.contains("alexa GB  start 2018-09-26T10:00:00Z  detected after"),
        "{text}"
    );
}
