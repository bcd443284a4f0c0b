//! The dashboard (docs/API.md, Dashboard): the page as served, and the page
//! at work in a real headless Chromium against the real gateway.
//!
//! The browser is driven through playwright-core by `tests/browser/driver.mjs`,
//! a thin line protocol (one JSON command per line on its stdin, one JSON
//! answer per line on its stdout); the steps and assertions are all here.
//! Chromium (`/usr/bin/chromium`, or `CHROMIUM`), Node and npm are required:
//! a missing one fails the test with what to install, it never skips.
//! `tests/browser/node_modules` is installed with `npm ci` when missing.
//!
//! Artifacts: `target/dashboard.png` (desktop) and `target/dashboard-phone.png`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use buoycast::bus::Bus;
use buoycast::observation::{Field, Measurements, Observation, StationId};
use buoycast::station::Station;
use buoycast::store::{Delivery, Store};
use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::harness::app::{Backends, TestApp};
use crate::harness::redis::RedisServer;

/// How long one driver command may take (waits inside it have their own, shorter, timeouts).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(45);
/// How long Chromium may take to start.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn browser_dir() -> PathBuf {
    repo_root().join("tests/browser")
}

fn artifact(name: &str) -> PathBuf {
    let dir = repo_root().join("target");
    std::fs::create_dir_all(&dir).expect("create target/ for test artifacts");
    dir.join(name)
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails (never skips) when a tool the browser tests need is missing.
fn require_tools() {
    let chromium = chromium_path();
    assert!(
        chromium.exists(),
        "the dashboard tests need Chromium at {} (Debian: `apt-get install -y chromium`, \
         or run ./scripts/test, which installs it; or set CHROMIUM=/path/to/chromium)",
        chromium.display()
    );
    for tool in ["node", "npm"] {
        let found = std::process::Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
        assert!(found, "the dashboard tests need `{tool}` on PATH (Debian: `apt-get install -y nodejs npm`)");
    }
}

/// Runs `npm ci` in tests/browser once when playwright-core is not installed.
fn require_node_modules() {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = browser_dir();
    if dir.join("node_modules/playwright-core/package.json").exists() {
        return;
    }
    let output = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .expect("run npm ci in tests/browser");
    assert!(
        output.status.success(),
        "`npm ci` in {} failed ({}):\n{}\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One headless Chromium behind `driver.mjs`.
struct Browser {
    /// The node process (Chromium is its child and dies with it).
    child: Child,
    /// Commands go here, one JSON line each.
    stdin: Option<ChildStdin>,
    /// Answers come from here, one JSON line each.
    stdout: Lines<BufReader<ChildStdout>>,
    /// Everything the driver wrote to stderr so far.
    stderr: Arc<Mutex<String>>,
}

impl Browser {
    async fn launch() -> Browser {
        // Off the runtime thread: `npm ci` may take a while, and the gateway
        // under test runs on this thread.
        if let Err(error) = tokio::task::spawn_blocking(|| {
            require_tools();
            require_node_modules();
        })
        .await
        {
            std::panic::resume_unwind(error.into_panic());
        }
        let mut child = Command::new("node")
            .arg("driver.mjs")
            .current_dir(browser_dir())
            .env("CHROMIUM", chromium_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node tests/browser/driver.mjs");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let mut browser = Browser { child, stdin: Some(stdin), stdout, stderr };
        let ready = browser.answer(LAUNCH_TIMEOUT).await;
        assert_eq!(ready, Ok(json!("ready")), "the driver did not start{}", browser.stderr_text());
        browser
    }

    fn stderr_text(&self) -> String {
        let text = self.stderr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        if text.is_empty() {
            String::new()
        } else {
            format!("\n--- driver stderr ---\n{text}")
        }
    }

    async fn answer(&mut self, timeout: Duration) -> Result<Value, String> {
        let line = match tokio::time::timeout(timeout, self.stdout.next_line()).await {
            Err(_) => return Err(format!("no answer within {timeout:?}")),
            Ok(Err(error)) => return Err(format!("cannot read the driver's stdout: {error}")),
            Ok(Ok(None)) => return Err("the driver exited".to_owned()),
            Ok(Ok(Some(line))) => line,
        };
        let answer: Value = serde_json::from_str(&line)
            .map_err(|error| format!("driver wrote a non-JSON line {line:?}: {error}"))?;
        if answer["ok"] == json!(true) {
            Ok(answer["value"].clone())
        } else {
            Err(answer["error"].as_str().unwrap_or("unknown driver error").to_owned())
        }
    }

    /// Sends `command`, returns its value; panics with the driver's stderr on error.
    async fn call(&mut self, command: Value) -> Value {
        let stdin = self.stdin.as_mut().expect("the driver's stdin is open");
        let line = format!("{command}\n");
        if let Err(error) = stdin.write_all(line.as_bytes()).await {
            panic!("cannot send {command} to the driver: {error}{}", self.stderr_text());
        }
        match self.answer(COMMAND_TIMEOUT).await {
            Ok(value) => value,
            Err(error) => panic!("driver command {command} failed: {error}{}", self.stderr_text()),
        }
    }

    async fn open(&mut self, url: &str) {
        let answer = self.call(json!({ "cmd": "open", "url": url })).await;
        assert_eq!(answer["status"], 200, "GET {url}");
    }

    /// Waits until an element matching `selector` contains `text`.
    async fn wait_text(&mut self, selector: &str, text: &str) {
        self.call(json!({ "cmd": "waitFor", "selector": selector, "text": text })).await;
    }

    /// Waits until an element matching `selector` has `attr` = `value`.
    async fn wait_attr(&mut self, selector: &str, attr: &str, value: &str, timeout: Duration) {
        self.call(json!({
            "cmd": "waitFor", "selector": selector, "attr": attr, "value": value,
            "timeoutMs": timeout.as_millis() as u64,
        }))
        .await;
    }

    /// Waits for the connection-state element to say `state` (attribute and text).
    async fn wait_state(&mut self, state: &str, timeout: Duration) {
        self.wait_attr("#conn-state", "data-state", state, timeout).await;
        assert_eq!(self.text("#conn-state").await, state, "the state element's text is its data-state");
    }

    /// Waits until exactly `count` elements match `selector`.
    async fn wait_count(&mut self, selector: &str, count: usize) {
        self.call(json!({ "cmd": "waitFor", "selector": selector, "count": count })).await;
    }

    async fn text(&mut self, selector: &str) -> String {
        self.call(json!({ "cmd": "text", "selector": selector }))
            .await
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    async fn attr(&mut self, selector: &str, name: &str) -> Option<String> {
        self.call(json!({ "cmd": "attr", "selector": selector, "name": name }))
            .await
            .as_str()
            .map(str::to_owned)
    }

    async fn screenshot(&mut self, name: &str) -> PathBuf {
        let path = artifact(name);
        self.call(json!({ "cmd": "screenshot", "path": path.display().to_string() })).await;
        path
    }

    /// Every URL the page requested so far.
    async fn requests(&mut self) -> Vec<String> {
        let requests = self.call(json!({ "cmd": "requests" })).await;
        requests
            .as_array()
            .expect("requests is an array")
            .iter()
            .map(|request| request["url"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Asserts the page made no request off 127.0.0.1, logged no console
    /// error and threw nothing (the gateway outage included: a failed
    /// EventSource reconnect is not a console error).
    async fn assert_clean(&mut self) {
        let problems = self.call(json!({ "cmd": "problems" })).await;
        assert_eq!(problems["foreignRequests"], json!([]), "requests left 127.0.0.1");
        assert_eq!(problems["pageErrors"], json!([]), "uncaught errors in the page");
        assert_eq!(problems["consoleErrors"], json!([]), "console errors");
    }

    async fn close(mut self) {
        self.call(json!({ "cmd": "close" })).await;
        self.stdin = None;
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("the driver exits after close")
            .expect("wait for the driver");
        assert!(status.success(), "driver exit status {status}{}", self.stderr_text());
    }
}

/// A full reading: `n` ten-minute steps after [`base_time`], with a water
/// temperature only when `water_temp_c` is given (so the page must show "—").
fn reading(
    id: &str,
    n: i64,
    wave_height_m: f64,
    wind_speed_mps: f64,
    water_temp_c: Option<f64>,
) -> Observation {
    let base = base_time();
    let mut measurements = Measurements::default()
        .with(Field::WaveHeightM, wave_height_m)
        .with(Field::WindSpeedMps, wind_speed_mps)
        .with(Field::GustMps, wind_speed_mps + 2.0)
        .with(Field::WindDirDeg, 290.0)
        .with(Field::DominantPeriodS, 12.0)
        .with(Field::MeanWaveDirDeg, 280.0)
        .with(Field::PressureHpa, 1017.4)
        .with(Field::AirTempC, 13.1);
    if let Some(water) = water_temp_c {
        measurements = measurements.with(Field::WaterTempC, water);
    }
    Observation {
        station_id: StationId::parse(id).expect("valid id"),
        observed_at: base + chrono::Duration::minutes(n * 10),
        measurements,
    }
}

/// Three real NDBC stations' metadata (from activestations.xml).
/// Three hours ago on a whole minute, fixed for the test binary's run: the
/// page loads the last 24 hours, so the history must be relative to today.
fn base_time() -> DateTime<Utc> {
    static BASE: OnceLock<DateTime<Utc>> = OnceLock::new();
    *BASE.get_or_init(|| {
        let now = Utc::now() - chrono::Duration::hours(3);
        now.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(now)
    })
}

/// The quiet station: it last reported [`QUIET_DAYS`] days ago.
const QUIET: &str = "46014";
const QUIET_DAYS: i64 = 3;
/// How many readings the quiet station has in its last day.
const QUIET_READINGS: usize = 4;

fn stations() -> Vec<Station> {
    let station = |id: &str, name: &str, lat: f64, lon: f64| Station {
        name: Some(name.to_owned()),
        lat: Some(lat),
        lon: Some(lon),
        owner: Some("NDBC".to_owned()),
        station_type: Some("buoy".to_owned()),
        ..Station::bare(StationId::parse(id).expect("valid id"))
    };
    vec![
        station("46026", "San Francisco", 37.75, -122.838),
        station("46042", "Monterey", 36.785, -122.398),
        station("46013", "Bodega Bay", 38.235, -123.317),
        station(QUIET, "Point Arena", 39.196, -123.969),
    ]
}

/// Stations, six readings of history for 46026 (the sparkline at load), and
/// the quiet station's last readings, [`QUIET_DAYS`] days old, with one more
/// a day before them (outside its own last day, so never drawn).
async fn seed(store: &Store) -> usize {
    store.upsert_stations(&stations()).await.expect("seed stations");
    let history: Vec<Observation> =
        (0..6).map(|n| reading("46026", n, 1.4 + n as f64 * 0.1, 4.0 + n as f64, Some(13.9))).collect();
    store.upsert_observations(&history).await.expect("seed history");
    let days_ago = |days: i64, n: i64| {
        let mut quiet = reading(QUIET, n, 0.8, 3.0, Some(12.0));
        quiet.observed_at -= chrono::Duration::days(days);
        quiet
    };
    let mut quiet: Vec<Observation> = (0..QUIET_READINGS as i64).map(|n| days_ago(QUIET_DAYS, n)).collect();
    quiet.push(days_ago(QUIET_DAYS + 1, 0));
    store.upsert_observations(&quiet).await.expect("seed the quiet station");
    history.len()
}

fn card(id: &str) -> String {
    format!("[data-station=\"{id}\"]")
}

fn value(id: &str, field: &str) -> String {
    format!("[data-station=\"{id}\"] [data-field=\"{field}\"] dd")
}

#[tokio::test]
async fn page_is_one_self_contained_html_response() {
    let app = TestApp::spawn(Backends::default()).await;
    let response = reqwest::get(app.url("/")).await.expect("GET /");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().expect("ascii header");
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"), "{policy}");
    let body = response.text().await.expect("body");
    assert!(body.starts_with("<!doctype html>"));
    assert!(
        body.contains(r#"data-state="disconnected""#),
        "the state element is there before the script runs"
    );
    assert!(!body.contains("{{STYLE}}") && !body.contains("{{SCRIPT}}"), "the assets are inlined");
    assert!(
        !body.contains("<script src") && !body.contains("rel=\"stylesheet\""),
        "no external script or style"
    );
    // The only absolute URLs are the SVG namespace (an identifier, never fetched).
    for (at, _) in body.match_indices("http") {
        let rest = &body[at..];
        assert!(
            rest.starts_with("http://www.w3.org/2000/svg")
                || !(rest.starts_with("http://") || rest.starts_with("https://")),
            "an absolute URL in the page: {}",
            &rest[..rest.len().min(60)]
        );
    }
    // HEAD works too (uptime checks).
    let head = reqwest::Client::new().head(app.url("/")).send().await.expect("HEAD /");
    assert_eq!(head.status(), 200);
}

/// Loads the page, sees history and live observations, then survives a
/// gateway restart: `reconnecting`, `connected`, and the events published
/// while the gateway was down appear.
#[tokio::test]
async fn dashboard_shows_live_data_and_catches_up_after_a_gateway_restart() {
    let started = Instant::now();
    let redis = RedisServer::start();
    let mut app = TestApp::spawn(Backends { redis_url: Some(redis.url()), ..Backends::default() }).await;
    let history_len = seed(&app.store).await;
    let mut browser = Browser::launch().await;
    browser.open(&app.url("/")).await;
    browser.wait_state("connected", Duration::from_secs(15)).await;
    // History at load: the sparkline of 46026 has every stored point.
    browser
        .wait_attr(
            &format!("{} .spark", card("46026")),
            "data-points",
            &history_len.to_string(),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(browser.text(&format!("{} .sname", card("46026"))).await, "San Francisco");
    // A station that went quiet days ago shows its own last day, marked with its age.
    browser
        .wait_attr(
            &format!("{} .spark", card(QUIET)),
            "data-points",
            &QUIET_READINGS.to_string(),
            Duration::from_secs(10),
        )
        .await;
    browser
        .wait_text(&format!("{}.quiet .updated", card(QUIET)), &format!("quiet · {QUIET_DAYS} d ago"))
        .await;

    // Live, after load.
    let live = [reading("46026", 6, 2.3, 9.4, Some(14.2)), reading("46042", 6, 1.7, 6.1, None)];
    let ids = app.bus.publish(&live).await.expect("publish");
    browser.wait_text(&value("46026", "waveHeightM"), "2.3 m").await;
    browser.wait_text(&value("46026", "windSpeedMps"), "9.4 m/s").await;
    browser.wait_text(&value("46026", "waterTempC"), "14.2 °C").await;
    browser.wait_text(&value("46042", "waveHeightM"), "1.7 m").await;
    browser.wait_text(&value("46042", "windDirDeg"), "290° WNW").await;
    // Not reported is "—", never 0.
    assert_eq!(browser.text(&value("46042", "waterTempC")).await, "—");
    assert_eq!(browser.text(&value("46042", "tideFt")).await, "—");
    browser.wait_text("#last-event-id", ids.last().expect("two ids")).await;
    browser
        .wait_attr(
            &format!("{} .spark", card("46026")),
            "data-points",
            &(history_len + 1).to_string(),
            Duration::from_secs(5),
        )
        .await;
    browser.wait_text("#log [data-kind=observation]", "46042 · wave 1.7 m · wind 6.1 m/s").await;

    // The gateway goes away; the page says so and keeps retrying.
    let addr = app.addr;
    let database = app.dir.path().join("buoycast.db").display().to_string();
    app.stop().await;
    browser.wait_state("reconnecting", Duration::from_secs(10)).await;
    let bus = Bus::redis(&redis.url(), Default::default()).expect("a redis bus handle");
    let missed = [reading("46026", 7, 2.8, 11.2, Some(14.0)), reading("46013", 7, 3.1, 12.5, Some(12.6))];
    let missed_ids = bus.publish(&missed).await.expect("publish while the gateway is down");

    // Back on the same address: connected again, and caught up.
    let restarted = TestApp::spawn(Backends {
        redis_url: Some(redis.url()),
        env: vec![("BUOYCAST_SQLITE_PATH".to_owned(), database)],
        listen: Some(addr),
        ..Backends::default()
    })
    .await;
    browser.wait_state("connected", Duration::from_secs(20)).await;
    browser.wait_text(&value("46026", "waveHeightM"), "2.8 m").await;
    browser.wait_text(&value("46013", "waveHeightM"), "3.1 m").await;
    browser.wait_text("#last-event-id", missed_ids.last().expect("two ids")).await;
    assert_eq!(
        browser.text("#event-count").await,
        "4",
        "each live event counted once: no duplicate after catch-up"
    );

    // Still live after the restart.
    let after = [reading("46042", 8, 1.9, 7.3, Some(13.3))];
    restarted.bus.publish(&after).await.expect("publish after restart");
    browser.wait_text(&value("46042", "waterTempC"), "13.3 °C").await;

    let shot = browser.screenshot("dashboard.png").await;
    browser.assert_clean().await;
    browser.close().await;
    assert!(std::fs::metadata(&shot).map(|meta| meta.len() > 10_000).unwrap_or(false), "{}", shot.display());
    eprintln!("browser restart test took {:?}; screenshot {}", started.elapsed(), shot.display());
}

/// With auth on: the page forwards its `?access_token=`, the filter narrows
/// the list and the stream, the buttons work from the keyboard, sound starts
/// only on a click, and a phone-sized window does not scroll sideways.
#[tokio::test]
async fn dashboard_filter_token_keyboard_audio_and_phone_layout() {
    let token = "dashboard-test-token";
    let env = vec![("BUOYCAST_AUTH_TOKENS".to_owned(), token.to_owned())];
    let mut app = TestApp::spawn(Backends { env: env.clone(), ..Backends::default() }).await;
    seed(&app.store).await;
    let mut browser = Browser::launch().await;
    browser.open(&app.url(&format!("/?access_token={token}"))).await;
    browser.wait_state("connected", Duration::from_secs(15)).await;
    assert_eq!(browser.attr("#audio", "aria-pressed").await.as_deref(), Some("false"), "muted until clicked");

    let first = [
        reading("46026", 10, 2.0, 8.0, Some(14.0)),
        reading("46042", 10, 1.5, 5.0, Some(13.5)),
        reading("46013", 10, 2.6, 10.0, Some(12.9)),
    ];
    app.bus.publish(&first).await.expect("publish");
    browser.wait_text(&value("46013", "waveHeightM"), "2.6 m").await;
    // The three live stations and the quiet one.
    browser.wait_count(".station:not([hidden])", 4).await;
    browser.wait_count("#plot [data-pin] .pin.in", 4).await;

    // Filter by keyboard: type an id and press Enter.
    browser.call(json!({ "cmd": "focus", "selector": "#filter-input" })).await;
    browser.call(json!({ "cmd": "fill", "selector": "#filter-input", "value": "46042" })).await;
    browser.call(json!({ "cmd": "press", "key": "Enter" })).await;
    browser.wait_count(".station:not([hidden])", 1).await;
    browser.wait_count(&format!("{}:not([hidden])", card("46042")), 1).await;
    browser.wait_count("#plot [data-pin] .pin.in", 1).await;
    browser.wait_state("connected", Duration::from_secs(10)).await;
    let filtered_stream =
        "/v1/observations/stream?snapshot=latest&kinds=observation%2Cspectrum&station=46042&last_event_id=";
    let mut seen_filtered = false;
    for _ in 0..50 {
        if browser.requests().await.iter().any(|url| url.contains(filtered_stream)) {
            seen_filtered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_filtered, "the stream reconnected with station=46042: {:#?}", browser.requests().await);
    assert!(browser.attr("#filter-input", "aria-invalid").await.is_none());
    let count_before = browser.text("#event-count").await;
    // The server filters: 46026 never reaches the page; 46042 does.
    app.bus
        .publish(&[reading("46026", 11, 4.4, 14.0, Some(14.1)), reading("46042", 11, 1.6, 5.5, None)])
        .await
        .expect("publish");
    browser.wait_text(&value("46042", "waveHeightM"), "1.6 m").await;
    assert_eq!(browser.text(&value("46042", "waterTempC")).await, "—");
    let count_after: u64 = browser.text("#event-count").await.parse().expect("a count");
    assert_eq!(count_after, count_before.parse::<u64>().expect("a count") + 1, "only 46042's event arrived");
    assert_eq!(browser.text(&value("46026", "waveHeightM")).await, "2.0 m", "46026 got nothing");
    // A malformed id is refused on the page, with a message.
    browser.call(json!({ "cmd": "fill", "selector": "#filter-input", "value": "46042, no-such!" })).await;
    browser.call(json!({ "cmd": "press", "key": "Enter" })).await;
    browser.wait_attr("#filter-input", "aria-invalid", "true", Duration::from_secs(5)).await;
    browser.wait_text("#filter-error", "no-such!").await;

    // Disconnect and connect from the keyboard (real buttons).
    browser.call(json!({ "cmd": "focus", "selector": "#connect" })).await;
    browser.call(json!({ "cmd": "press", "key": "Enter" })).await;
    browser.wait_state("disconnected", Duration::from_secs(5)).await;
    assert_eq!(browser.text("#connect").await, "Connect");
    browser.call(json!({ "cmd": "press", "key": "Space" })).await;
    browser.wait_state("connected", Duration::from_secs(10)).await;
    assert_eq!(
        browser.call(json!({ "cmd": "focused" })).await,
        json!("connect"),
        "focus stays on the button"
    );

    // Sound only after a click; one voice per visible station with data.
    browser.call(json!({ "cmd": "click", "selector": "#audio" })).await;
    browser.wait_attr("#audio", "aria-pressed", "true", Duration::from_secs(5)).await;
    browser.wait_attr("#audio", "data-voices", "1", Duration::from_secs(5)).await;
    browser.call(json!({ "cmd": "click", "selector": "#audio" })).await;
    browser.wait_attr("#audio", "aria-pressed", "false", Duration::from_secs(5)).await;

    // Every API call carried the token.
    let requests = browser.requests().await;
    let api: Vec<&String> = requests.iter().filter(|url| url.contains("/v1/")).collect();
    assert!(api.len() >= 4, "{requests:#?}");
    assert!(api.iter().all(|url| url.contains(&format!("access_token={token}"))), "{api:#?}");

    // A restart on the in-process bus loses its catch-up log: the server
    // cannot place the page's id, says `reset`, and the page reloads history.
    let addr = app.addr;
    let database = app.dir.path().join("buoycast.db").display().to_string();
    app.stop().await;
    browser.wait_state("reconnecting", Duration::from_secs(10)).await;
    let mut env_again = env.clone();
    env_again.push(("BUOYCAST_SQLITE_PATH".to_owned(), database));
    let restarted =
        TestApp::spawn(Backends { env: env_again, listen: Some(addr), ..Backends::default() }).await;
    browser.wait_state("connected", Duration::from_secs(20)).await;
    browser.wait_text("#log [data-kind=reset]", "reloading history").await;
    browser.wait_text("#log [data-kind=history]", "after reset").await;
    browser.wait_text("#last-event-id", "reset").await;
    // Ids start over after the reset, and the page takes them.
    let fresh = restarted.bus.publish(&[reading("46042", 12, 1.2, 4.4, Some(13.0))]).await.expect("publish");
    browser.wait_text(&value("46042", "waveHeightM"), "1.2 m").await;
    browser.wait_text("#last-event-id", fresh.last().expect("one id")).await;

    // Show everything again, then a phone-sized window.
    browser.call(json!({ "cmd": "click", "selector": "#filter-clear" })).await;
    browser.wait_count(".station:not([hidden])", 4).await;
    browser.wait_state("connected", Duration::from_secs(10)).await;
    browser.call(json!({ "cmd": "viewport", "width": 390, "height": 844 })).await;
    let width = browser.call(json!({ "cmd": "scrollWidth" })).await;
    assert!(
        width.as_u64().is_some_and(|width| width <= 390),
        "the page scrolls sideways on a phone: {width}"
    );
    let path = artifact("dashboard-phone.png");
    browser.call(json!({ "cmd": "screenshot", "path": path.display().to_string(), "fullPage": true })).await;
    browser.assert_clean().await;
    browser.close().await;
}

/// A 1×1 ocean-blue PNG: every tile the local tile server serves.
const TILE_PNG: &[u8] = &[
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0, 144,
    119, 83, 222, 0, 0, 0, 12, 73, 68, 65, 84, 120, 156, 99, 208, 136, 234, 1, 0, 1, 188, 1, 15, 132, 46,
    116, 142, 0, 0, 0, 0, 73, 69, 78, 68, 174, 66, 96, 130,
];

/// A slippy-map tile server on 127.0.0.1 that counts the tiles it serves.
async fn tile_server() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::routing::get;
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let router = axum::Router::new().route(
        "/{z}/{x}/{file}",
        get(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                ([(axum::http::header::CONTENT_TYPE, "image/png")], TILE_PNG)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the tile server");
    let addr = listener.local_addr().expect("tile server address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, served)
}

#[tokio::test]
async fn a_configured_tile_server_puts_the_stations_on_a_map() {
    let (tiles, served) = tile_server().await;
    let template = format!("http://{tiles}/{{z}}/{{x}}/{{y}}.png");
    let app = TestApp::spawn(Backends {
        env: vec![
            ("BUOYCAST_DASHBOARD_TILE_URL".into(), template),
            ("BUOYCAST_DASHBOARD_TILE_ATTRIBUTION".into(), "Test tiles".into()),
        ],
        ..Backends::default()
    })
    .await;
    seed(&app.store).await;
    let mut browser = Browser::launch().await;
    browser.open(&app.url("/")).await;
    browser.wait_state("connected", Duration::from_secs(10)).await;
    browser.wait_text("#plot-caption", "map").await;
    browser.wait_text("#plot", "Test tiles").await;
    let tile_requests: Vec<String> =
        browser.requests().await.into_iter().filter(|url| url.contains(&tiles.to_string())).collect();
    assert!(!tile_requests.is_empty(), "the page asked the tile server for tiles");
    assert!(tile_requests.iter().all(|url| url.ends_with(".png")), "{tile_requests:?}");
    assert!(served.load(std::sync::atomic::Ordering::SeqCst) > 0, "the tile server served tiles");
    assert!(
        browser.attr("[data-pin=\"46026\"] .pin", "cx").await.is_some(),
        "the stations are pinned on the map"
    );
    browser.screenshot("dashboard-map.png").await;
    browser.assert_clean().await;
    browser.close().await;
}

/// The original system's `test-sse-client.html` usage, unchanged: a page
/// from another origin opens a plain `EventSource` on the stream and listens
/// for `connection` and `observation` (issue 4, "done when").
const ORIGINAL_CLIENT_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>SSE test client</title></head>
<body>
<button id="connect">Connect</button>
<p>Status: <span id="status">Disconnected</span></p>
<p>Connection events: <span id="connections">0</span> · Observation events: <span id="observations">0</span></p>
<ul id="log"></ul>
<script>
  let source = null, connections = 0, observations = 0;
  document.getElementById('connect').addEventListener('click', () => {
    source = new EventSource('__STREAM__');
    source.addEventListener('connection', (event) => {
      const data = JSON.parse(event.data);
      connections += 1;
      document.getElementById('connections').textContent = String(connections);
      document.getElementById('status').textContent = data.status === 'connected' ? 'Connected' : data.status;
    });
    source.addEventListener('observation', (event) => {
      const data = JSON.parse(event.data);
      observations += 1;
      document.getElementById('observations').textContent = String(observations);
      const item = document.createElement('li');
      item.textContent = `${data.stationId} ${data.timestamp} wave=${data.waveHeightM} wind=${data.windSpeedMps}`;
      document.getElementById('log').append(item);
    });
    source.onerror = () => { document.getElementById('status').textContent = 'Error / Reconnecting...'; };
  });
</script>
</body></html>
"#;

#[tokio::test]
async fn the_original_test_sse_client_page_works_unchanged() {
    let app = TestApp::spawn(Backends::default()).await;
    let page = ORIGINAL_CLIENT_PAGE.replace("__STREAM__", &app.url("/v1/observations/stream"));
    // Served from another origin (another port), as the original page was.
    let router = axum::Router::new()
        .route(
            "/test-sse-client.html",
            axum::routing::get(move || {
                let page = page.clone();
                async move { axum::response::Html(page) }
            }),
        )
        .route("/favicon.ico", axum::routing::get(|| async { axum::http::StatusCode::NO_CONTENT }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the page server");
    let page_addr = listener.local_addr().expect("page server address");
    tokio::spawn(async move { axum::serve(listener, router).await });

    let mut browser = Browser::launch().await;
    browser.open(&format!("http://{page_addr}/test-sse-client.html")).await;
    browser.call(json!({ "cmd": "click", "selector": "#connect" })).await;
    browser.wait_text("#status", "Connected").await;
    browser.wait_text("#connections", "1").await;
    app.bus.publish(&[reading("46026", 1, 1.2, 5.1, Some(14.2))]).await.expect("publish");
    browser.wait_text("#observations", "1").await;
    let at =
        (base_time() + chrono::Duration::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    browser.wait_text("#log", &format!("46026 {at} wave=1.2 wind=5.1")).await;
    browser.assert_clean().await;
    browser.close().await;
}

#[tokio::test]
async fn a_clicked_station_shows_its_wave_spectra_and_plays_the_newest() {
    let app = TestApp::spawn(Backends::default()).await;
    seed(&app.store).await;
    // 41010's real spectra, filed under 46026 (a station with a card).
    let spectra: Vec<buoycast::spectrum::Spectrum> = crate::harness::fixtures::spectra_41010()
        .into_iter()
        .map(|spectrum| buoycast::spectrum::Spectrum {
            station_id: StationId::parse("46026").expect("id"),
            ..spectrum
        })
        .collect();
    app.store.upsert_spectra(&spectra, Delivery::Silent).await.expect("store spectra");
    let mut browser = Browser::launch().await;
    browser.open(&app.url("/")).await;
    browser.wait_state("connected", Duration::from_secs(15)).await;
    assert_eq!(browser.attr("#spectrum-play", "disabled").await.as_deref(), Some(""), "nothing to play yet");

    browser.call(json!({ "cmd": "click", "selector": format!("{} h3", card("46026")) })).await;
    browser.wait_text("#spectrum-heading", "Wave spectrum · 46026").await;
    browser.wait_attr("#spectrogram", "data-columns", "48", Duration::from_secs(10)).await;
    browser.wait_text("#spectrum-caption", "48 spectra").await;
    browser.wait_text("#spectrum-caption", "46 bands").await;
    assert!(browser.attr(card("46026").as_str(), "class").await.is_some_and(|c| c.contains("selected")));
    assert!(
        browser.requests().await.iter().any(|url| url.contains("/v1/spectra/by-station/46026?limit=48")),
        "{:#?}",
        browser.requests().await
    );

    browser
        .call(
            json!({ "cmd": "screenshot", "path": artifact("dashboard-spectrum.png").display().to_string() }),
        )
        .await;

    // Play: one partial per band of the newest spectrum; again to stop.
    browser.call(json!({ "cmd": "click", "selector": "#spectrum-play" })).await;
    browser.wait_attr("#spectrum-play", "aria-pressed", "true", Duration::from_secs(5)).await;
    browser.wait_attr("#spectrum-play", "data-partials", "46", Duration::from_secs(5)).await;
    browser.call(json!({ "cmd": "click", "selector": "#spectrum-play" })).await;
    browser.wait_attr("#spectrum-play", "aria-pressed", "false", Duration::from_secs(5)).await;

    // A station without spectra says so.
    browser.call(json!({ "cmd": "click", "selector": format!("{} h3", card("46042")) })).await;
    browser.wait_text("#spectrum-caption", "No wave spectra for 46042.").await;
    assert_eq!(browser.attr("#spectrum-play", "disabled").await.as_deref(), Some(""));

    // Its first spectrum arrives live on the stream (`?kinds=…spectrum`):
    // the spectrogram draws it and Play comes alive, with no reload.
    let live = buoycast::spectrum::Spectrum {
        station_id: StationId::parse("46042").expect("id"),
        ..spectra.last().expect("spectra").clone()
    };
    app.bus
        .publish_once(&[buoycast::observation::ObservationEvent::spectrum(None, live)])
        .await
        .expect("publish a spectrum");
    browser.wait_attr("#spectrogram", "data-columns", "1", Duration::from_secs(10)).await;
    browser.wait_text("#spectrum-caption", "1 spectra").await;
    browser.wait_text("#log", "46042 2020-06-08T03:50:00Z: 46 bands").await;
    assert_eq!(browser.attr("#spectrum-play", "disabled").await, None, "the live spectrum plays");
    browser.assert_clean().await;
    browser.close().await;
}

/// Issue "Directional wave spectra", the whole way to a browser: a station's
/// five spectral files served over HTTP → the worker → the store's outbox →
/// the bus → the gateway's stream (`?kinds=observation,spectrum`) →
/// Chromium's dashboard, whose spectrogram of the selected station fills
/// with the spectra as they are published, with no reload.
#[tokio::test]
async fn the_dashboard_draws_spectra_a_live_gateway_streams_from_ndbc_files() {
    use crate::harness::ndbc_server::{NdbcServer, Override};
    const EXTENSIONS: [&str; 5] = ["data_spec", "swdir", "swdir2", "swr1", "swr2"];
    let server = NdbcServer::start().await;
    // TPLM2 reports observations (its card appears); its spectra (41010's
    // real files, served under its name) answer only once the browser watches.
    for ext in EXTENSIONS {
        server.set_override(&format!("/realtime2/TPLM2.{ext}"), Override::Status(503));
    }
    let app = crate::harness::app::RunAll::start(
        &server,
        &[
            ("BUOYCAST_STATIONS", "tplm2"),
            ("BUOYCAST_SPECTRAL_STATIONS", "tplm2"),
            ("BUOYCAST_LATEST_OBS", "false"),
            ("INGEST_INTERVAL_MS", "1000"),
            ("BUOYCAST_CLIENT_QUEUE", "20000"),
        ],
    );
    let base = app.base_url.clone();

    let mut browser = Browser::launch().await;
    browser.open(&format!("{base}/")).await;
    browser.wait_state("connected", Duration::from_secs(15)).await;
    browser.wait_count(&format!("{}:not([hidden])", card("tplm2")), 1).await;
    browser.call(json!({ "cmd": "click", "selector": format!("{} h3", card("tplm2")) })).await;
    browser.wait_text("#spectrum-caption", "No wave spectra for tplm2.").await;

    for ext in EXTENSIONS {
        server.set_body(
            &format!("/realtime2/TPLM2.{ext}"),
            crate::harness::fixtures::read(&format!("realtime2/41010.{ext}")),
        );
    }
    // 149 spectra arrive; the spectrogram keeps the newest 48.
    browser.wait_attr("#spectrogram", "data-columns", "48", Duration::from_secs(30)).await;
    browser.wait_text("#log", "tplm2 2020-06-08T03:50:00Z: 46 bands").await;
    browser.wait_text("#spectrum-caption", "46 bands").await;
    assert_eq!(browser.attr("#spectrum-play", "disabled").await, None, "the newest spectrum plays");
    browser.assert_clean().await;
    browser.close().await;
    app.stop().await;
}
