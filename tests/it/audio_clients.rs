//! The audio clients of issue 6, run for real: the Pure Data and SuperCollider
//! patches receive a live `bridge`'s OSC and the tests read what they print;
//! the Max patch is checked as patcher JSON; the Node and Python examples
//! read a live gateway's stream (and the Node SSE→OSC script must send the
//! very bytes the bridge sends).
//!
//! The tools (`pd`, `sclang`, `node`, `npm`, `python3`) must be installed —
//! `scripts/test` installs them — and a missing one fails its test with a
//! message that says so, never skips it. Every process is bounded by a
//! timeout and killed (by its handle, i.e. its pid) when its test ends.
//!
//! Not a test of the bridge's encoding in depth (the bridge crate's tests do
//! that), nor of sound: the hosts run without an audio device.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use buoycast::observation::{format_time, Field, Observation};
use chrono::{Datelike, Timelike};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::harness::app::{Backends, TestApp};
use crate::harness::fixtures;

/// How long any one expected line may take.
const WAIT: Duration = Duration::from_secs(60);

/// The repository root.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One line a child printed.
#[derive(Debug, Clone)]
struct Line {
    /// Printed on stderr (else stdout).
    stderr: bool,
    /// The text, without its newline.
    text: String,
}

/// A child process whose output lines are collected; killed when dropped.
struct Running {
    /// For messages.
    name: String,
    /// The process (`kill_on_drop`).
    child: Child,
    /// Lines as they come.
    lines: mpsc::UnboundedReceiver<Line>,
    /// Every line received so far.
    seen: Vec<Line>,
}

fn forward<R: AsyncRead + Unpin + Send + 'static>(reader: R, stderr: bool, tx: mpsc::UnboundedSender<Line>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(text)) = lines.next_line().await {
            if tx.send(Line { stderr, text }).is_err() {
                break;
            }
        }
    });
}

impl Running {
    /// Starts `command` with piped output. `program` must be on PATH (or a path).
    fn spawn(name: &str, mut command: Command) -> Running {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        let (tx, lines) = mpsc::unbounded_channel();
        forward(child.stdout.take().expect("stdout is piped"), false, tx.clone());
        forward(child.stderr.take().expect("stderr is piped"), true, tx);
        Running { name: name.to_owned(), child, lines, seen: Vec::new() }
    }

    fn transcript(&self) -> String {
        self.seen.iter().map(|line| line.text.as_str()).collect::<Vec<_>>().join("\n")
    }

    /// Waits for a line matching `pred` and returns it.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Line) -> bool) -> Line {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Ok(None) => {
                    let status = self.child.wait().await;
                    panic!(
                        "{} ended ({status:?}) before {what}; its output:\n{}",
                        self.name,
                        self.transcript()
                    )
                }
                Err(_) => panic!(
                    "{} printed no {what} within {WAIT:?}; its output:\n{}",
                    self.name,
                    self.transcript()
                ),
            }
        }
    }

    /// Waits for the process to exit successfully, collecting the rest of its output.
    async fn wait_success(&mut self) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {WAIT:?}:\n{}", self.name, self.transcript()))
            .expect("wait for the child");
        while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(2), self.lines.recv()).await {
            self.seen.push(line);
        }
        assert!(status.success(), "{} exited with {status}:\n{}", self.name, self.transcript());
    }
}

/// The absolute path of a tool on PATH, or a test failure saying what to install.
fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: install the Debian package {package} (scripts/test does)")
        })
}

/// The `bridge` binary of this checkout, built (or brought up to date) once per run.
async fn bridge() -> &'static Path {
    static BRIDGE: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    BRIDGE
        .get_or_init(|| async {
            // target/<profile>/deps/it-HASH → target/<profile>
            let exe = std::env::current_exe().expect("the test binary's path");
            let profile_dir =
                exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut command = Command::new(cargo);
            // `--workspace` unifies features as `cargo test --workspace` does, so this is
            // a no-op there instead of a rebuild with another feature set.
            command.args(["build", "--workspace", "--bin", "bridge"]);
            if profile_dir.file_name().is_some_and(|name| name == "release") {
                command.arg("--release");
            }
            command.current_dir(repo()).stdin(Stdio::null()).kill_on_drop(true);
            let output = tokio::time::timeout(Duration::from_secs(900), command.output())
                .await
                .expect("`cargo build --bin bridge` finished within 15 minutes")
                .expect("cargo runs");
            assert!(
                output.status.success(),
                "`cargo build --workspace --bin bridge` failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let path = profile_dir.join(format!("bridge{}", std::env::consts::EXE_SUFFIX));
            assert!(path.is_file(), "no bridge binary at {}", path.display());
            path
        })
        .await
}

/// A UDP port that was free a moment ago.
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
    socket.local_addr().expect("local addr").port()
}

/// The header and the first `rows` data rows (the newest) of a real NDBC
/// file, written to a temp dir under the file's own name, and its
/// observations oldest first as buoycast's parser reads them.
fn fixture_head(relative: &str, rows: usize) -> (tempfile::TempDir, PathBuf, Vec<Observation>) {
    let text = String::from_utf8(fixtures::read(relative)).expect("the fixture is ASCII");
    let header = text.lines().take_while(|line| line.starts_with('#'));
    let data = text.lines().filter(|line| !line.starts_with('#')).take(rows);
    let body: String = header.chain(data).map(|line| format!("{line}\n")).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let name = Path::new(relative).file_name().expect("the fixture has a file name");
    let path = dir.path().join(name);
    std::fs::write(&path, &body).expect("write the trimmed fixture");
    let station = buoycast::sources::ndbc::parse::station_from_file_name(
        name.to_str().expect("the file name is UTF-8"),
    );
    let parsed =
        buoycast::sources::ndbc::parse::parse(body.as_bytes(), station.as_ref()).expect("an NDBC file");
    assert!(parsed.errors.is_empty(), "the fixture's head parses cleanly: {:?}", parsed.errors);
    let mut observations = parsed.observations;
    observations.sort_by_key(|observation| observation.observed_at);
    assert_eq!(observations.len(), rows);
    (dir, path, observations)
}

/// The seven arguments of `/observation` (docs/REFERENCE.md, OSC address
/// space) for an observation, the numbers with the original sentinels for
/// nulls.
fn observation_args(observation: &Observation) -> (String, String, [f64; 5]) {
    let m = &observation.measurements;
    (
        observation.station_id.to_string(),
        format_time(&observation.observed_at),
        [
            m.get(Field::WaveHeightM).unwrap_or(-1.0),
            m.get(Field::WindSpeedMps).unwrap_or(-1.0),
            m.get(Field::WindDirDeg).unwrap_or(-1.0),
            m.get(Field::WaterTempC).unwrap_or(-999.0),
            m.get(Field::PressureHpa).unwrap_or(-1.0),
        ],
    )
}

/// `got` (as a host printed it) is `want` sent as an OSC float32.
fn assert_number(got: &str, want: f64, context: &str) {
    let got: f64 = got.parse().unwrap_or_else(|_| panic!("{context}: {got:?} is not a number"));
    let want = f64::from(want as f32);
    assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{context}: printed {got}, expected {want}");
}

/// Checks one host's printout of one observation: the `/observation` numbers
/// (`numbers`: its five numeric arguments as printed), the `/buoy/...` values
/// (`fields`: field name → printed value, nulls absent), the wave-height norm
/// and `/time`.
fn assert_observation_printed(
    observation: &Observation,
    header: &[&str],
    fields: &[(String, String)],
    norms: &[(String, String)],
    time: &[&str],
) {
    let (station, timestamp, numbers) = observation_args(observation);
    let context = format!("{station} {timestamp}");
    assert_eq!(header.len(), 7, "{context}: /observation has 7 arguments: {header:?}");
    assert_eq!(header[0], station);
    assert_eq!(header[1], timestamp);
    for (got, want) in header[2..].iter().zip(numbers) {
        assert_number(got, want, &format!("{context} /observation"));
    }
    let want_fields: Vec<(Field, f64)> = Field::ALL
        .into_iter()
        .filter_map(|field| observation.measurements.get(field).map(|value| (field, value)))
        .collect();
    let mut got_names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
    let mut want_names: Vec<&str> = want_fields.iter().map(|(field, _)| field.name()).collect();
    got_names.sort_unstable();
    want_names.sort_unstable();
    assert_eq!(got_names, want_names, "{context}: the non-null fields are sent, the nulls are not");
    for (field, value) in &want_fields {
        let (_, got) = fields.iter().find(|(name, _)| name == field.name()).expect("checked above");
        assert_number(got, *value, &format!("{context} /buoy/{station}/{field}"));
    }
    let wave_norm = norms.iter().find(|(name, _)| name == "waveHeightM");
    match observation.measurements.get(Field::WaveHeightM) {
        // docs/REFERENCE.md, MIDI map: waveHeightM's default range is 0–10, linear.
        Some(wave) => assert_number(
            &wave_norm.expect("a wave height norm").1,
            (wave / 10.0).clamp(0.0, 1.0),
            &format!("{context} /buoy/{station}/waveHeightM/norm"),
        ),
        None => assert!(wave_norm.is_none(), "{context}: no norm for a missing wave height"),
    }
    let t = observation.observed_at;
    let want_time = [t.year(), t.month() as i32, t.day() as i32, t.hour() as i32, t.minute() as i32]
        .map(|n| n.to_string());
    assert_eq!(time, want_time, "{context}: /buoy/{station}/time");
}

/// What a host printed for one observation, split into its parts.
#[derive(Debug, Default)]
struct Printed {
    header: Vec<String>,
    fields: Vec<(String, String)>,
    norms: Vec<(String, String)>,
    time: Vec<String>,
}

impl Printed {
    /// Adds one `/buoy/{station}/…` message: `rest` is what follows the station.
    fn add_buoy(&mut self, rest: &[&str]) {
        match rest {
            ["time", numbers @ ..] => self.time = numbers.iter().map(|n| n.to_string()).collect(),
            ["age", _] => {}
            [field, "norm", value] => self.norms.push((field.to_string(), value.to_string())),
            [field, value] => self.fields.push((field.to_string(), value.to_string())),
            other => panic!("unexpected /buoy message {other:?}"),
        }
    }

    fn check(&self, observation: &Observation) {
        let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
        let time: Vec<&str> = self.time.iter().map(String::as_str).collect();
        assert_observation_printed(observation, &header, &self.fields, &self.norms, &time);
    }
}

#[tokio::test]
async fn pure_data_patch_prints_what_a_bridge_replay_of_a_real_file_sends() {
    let pd = tool("pd", "puredata-core");
    let bridge = bridge().await;
    let (_dir, file, observations) = fixture_head("realtime2/41002.txt", 6);
    let port = free_udp_port();

    let mut command = Command::new(pd);
    command.args(["-nogui", "-nosound", "-nomidi", "-stderr", "-send"]);
    command.arg(format!("buoycast-port {port}"));
    command.arg(repo().join("patches/puredata/buoycast.pd"));
    let mut pd = Running::spawn("pd", command);
    pd.wait_for("buoycast-listening", |line| line.text == format!("buoycast-listening: {port}")).await;

    let mut command = Command::new(bridge);
    command.arg("--replay").arg(&file);
    command.args(["--speed", "1e9", "--osc", &format!("127.0.0.1:{port}")]);
    Running::spawn("bridge", command).wait_success().await;

    let last = observations.last().expect("rows");
    let last_time = {
        let t = last.observed_at;
        format!("{} time {} {} {} {} {}", last.station_id, t.year(), t.month(), t.day(), t.hour(), t.minute())
    };
    pd.wait_for("the last observation's /time", |line| line.text == format!("buoycast-buoy: {last_time}"))
        .await;

    let mut printed: Vec<Printed> = Vec::new();
    for line in &pd.seen {
        if let Some(rest) = line.text.strip_prefix("buoycast-observation: ") {
            printed.push(Printed {
                header: rest.split_whitespace().map(str::to_owned).collect(),
                ..Printed::default()
            });
        } else if let Some(rest) = line.text.strip_prefix("buoycast-buoy: ") {
            let tokens: Vec<&str> = rest.split_whitespace().collect();
            let current = printed.last_mut().expect("/observation comes first in --osc-format both");
            assert_eq!(tokens[0], current.header[0], "the station of {rest:?}");
            current.add_buoy(&tokens[1..]);
        } else if line.text.contains("error") {
            panic!("pd reported an error: {}\n{}", line.text, pd.transcript());
        }
    }
    assert_eq!(printed.len(), observations.len(), "one /observation each:\n{}", pd.transcript());
    for (printed, observation) in printed.iter().zip(&observations) {
        printed.check(observation);
    }
}

/// The shipped SuperCollider patch in sclang (no server), and the UDP port it
/// listens on (sclang moves to the next port when its `-u` port is taken:
/// the one it prints).
async fn start_supercollider_patch() -> (Running, u16) {
    start_sclang("buoycast.scd", "buoycast: listening").await
}

/// `patches/supercollider/{patch}` in headless sclang, and the port named
/// by its first line starting with `listening`.
async fn start_sclang(patch: &str, listening: &str) -> (Running, u16) {
    let sclang = tool("sclang", "supercollider-language");
    let mut command = Command::new(sclang);
    command.arg("-u").arg(free_udp_port().to_string());
    command.arg(repo().join("patches/supercollider").join(patch));
    command
        .env("QT_QPA_PLATFORM", "offscreen")
        .env("QTWEBENGINE_DISABLE_SANDBOX", "1")
        .env("BUOYCAST_NO_SERVER", "1");
    let mut sc = Running::spawn("sclang", command);
    let ready = sc.wait_for("its listening line", |line| line.text.starts_with(listening)).await;
    let port: u16 = ready.text.rsplit(' ').next().and_then(|p| p.parse().ok()).expect("a port number");
    (sc, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supercollider_patch_posts_what_a_live_bridge_sends() {
    let bridge = bridge().await;
    let app = TestApp::spawn(Backends::default()).await;

    let (mut sc, port) = start_supercollider_patch().await;

    let mut command = Command::new(bridge);
    command.args(["--source", &app.base_url, "--osc", &format!("127.0.0.1:{port}")]);
    let mut bridge = Running::spawn("bridge", command);
    bridge.wait_for("its SSE connection", |line| line.text.contains("sse stream connected")).await;

    let observations = [crate::stream::observation("46026", 1), crate::stream::observation("46026", 2)];
    app.bus.publish(&observations).await.expect("publish");

    let last_time = {
        let t = observations[1].observed_at;
        format!(
            "buoycast /buoy/46026/time {} {} {} {} {}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute()
        )
    };
    sc.wait_for("the last observation's /time", |line| line.text == last_time).await;

    let mut printed: Vec<Printed> = Vec::new();
    for line in &sc.seen {
        let Some(rest) = line.text.strip_prefix("buoycast ") else {
            assert!(!line.text.starts_with("ERROR"), "sclang: {}\n{}", line.text, sc.transcript());
            continue;
        };
        let tokens: Vec<&str> = rest.split_whitespace().collect();
        if tokens[0] == "/observation" {
            printed.push(Printed {
                header: tokens[1..].iter().map(|t| t.to_string()).collect(),
                ..Printed::default()
            });
        } else if let Some(address) = tokens[0].strip_prefix("/buoy/") {
            let parts: Vec<&str> = address.split('/').collect();
            let current = printed.last_mut().expect("/observation comes first in --osc-format both");
            assert_eq!(parts[0], current.header[0], "the station of {rest:?}");
            let mut rest: Vec<&str> = parts[1..].to_vec();
            rest.extend(&tokens[1..]);
            current.add_buoy(&rest);
        }
    }
    assert!(
        sc.seen.iter().any(|line| line.text == "buoycast: OSCdefs added for station 46026"),
        "the patch made OSCdefs for the station:\n{}",
        sc.transcript()
    );
    assert_eq!(printed.len(), observations.len(), "one /observation each:\n{}", sc.transcript());
    for (printed, observation) in printed.iter().zip(&observations) {
        printed.check(observation);
    }
}

#[test]
fn max_patch_is_patcher_json_that_receives_the_documented_addresses_on_57120() {
    let text = std::fs::read_to_string(repo().join("patches/max/buoycast.maxpat")).expect("the Max patch");
    let json: serde_json::Value = serde_json::from_str(&text).expect("the .maxpat is JSON");
    let patcher = &json["patcher"];
    assert_eq!(patcher["fileversion"], 1);
    let boxes = patcher["boxes"].as_array().expect("boxes");
    let lines = patcher["lines"].as_array().expect("lines");
    let by_id = |id: &str| boxes.iter().map(|b| &b["box"]).find(|b| b["id"] == id);
    let find = |text: &str| {
        boxes
            .iter()
            .map(|b| &b["box"])
            .find(|b| b["text"].as_str().is_some_and(|t| t.starts_with(text)))
            .unwrap_or_else(|| panic!("no box [{text} …] in the Max patch"))
    };

    let mut ids = std::collections::HashSet::new();
    for b in boxes {
        let id = b["box"]["id"].as_str().expect("every box has an id");
        assert!(ids.insert(id), "box id {id} is unique");
        assert!(b["box"]["maxclass"].is_string(), "box {id} has a maxclass");
    }
    for line in lines {
        let source = &line["patchline"]["source"];
        let destination = &line["patchline"]["destination"];
        let (Some(from), Some(to)) = (source[0].as_str(), destination[0].as_str()) else {
            panic!("a patchline names its boxes: {line}")
        };
        let from_box = by_id(from).unwrap_or_else(|| panic!("patchline from a missing box {from}"));
        let to_box = by_id(to).unwrap_or_else(|| panic!("patchline to a missing box {to}"));
        let outlet = source[1].as_u64().expect("outlet index");
        let inlet = destination[1].as_u64().expect("inlet index");
        assert!(outlet < from_box["numoutlets"].as_u64().expect("numoutlets"), "{from} has outlet {outlet}");
        assert!(inlet < to_box["numinlets"].as_u64().expect("numinlets"), "{to} has inlet {inlet}");
    }
    let connected = |from: &serde_json::Value, outlet: u64, to: &serde_json::Value| {
        lines.iter().any(|line| {
            let l = &line["patchline"];
            l["source"][0] == from["id"] && l["source"][1] == outlet && l["destination"][0] == to["id"]
        })
    };

    // The comment at the top says how to run it with the bridge on port 57120.
    let first = &boxes[0]["box"];
    assert_eq!(first["maxclass"], "comment");
    assert!(
        boxes.iter().any(|b| b["box"]["maxclass"] == "comment"
            && b["box"]["text"].as_str().is_some_and(|t| t.contains("bridge --osc 127.0.0.1:57120"))),
        "a comment shows the bridge command"
    );

    let udp = find("udpreceive");
    assert_eq!(udp["text"], "udpreceive 57120");
    let route = find("route /observation");
    let addresses: Vec<&str> =
        route["text"].as_str().expect("route text").split_whitespace().skip(1).collect();
    assert_eq!(
        route["numoutlets"].as_u64(),
        Some(addresses.len() as u64 + 1),
        "one outlet per address + reject"
    );
    assert!(connected(udp, 0, route), "udpreceive feeds the route");
    for address in &addresses[1..] {
        // /buoy/{stationId}/{field}/norm, with a real field name and station id.
        let parts: Vec<&str> = address.split('/').collect();
        assert_eq!(parts.len(), 5, "{address}");
        assert_eq!((parts[0], parts[1], parts[4]), ("", "buoy", "norm"), "{address}");
        buoycast::observation::StationId::parse(parts[2]).expect("a station id in the address");
        assert!(Field::from_name(parts[3]).is_some(), "{address}: a documented field");
    }
    let unpack = find("unpack");
    assert_eq!(unpack["text"], "unpack s s f f i f f", "the documented /observation arguments");
    assert!(connected(route, 0, unpack), "/observation feeds the unpack");

    // The synth: dials driven by the norms, reaching the DAC.
    let dials = boxes.iter().filter(|b| b["box"]["maxclass"] == "dial").count();
    assert_eq!(dials, addresses.len() - 1, "one dial per /buoy address");
    assert!(boxes.iter().any(|b| b["box"]["maxclass"] == "ezdac~"), "an ezdac~");
    assert!(find("lores~")["numinlets"].as_u64().is_some());
}

/// `examples/node`'s dependencies, installed once per run from its lock file.
async fn node_examples() -> PathBuf {
    static READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let dir = repo().join("examples/node");
    READY
        .get_or_init(|| async {
            tool("node", "nodejs");
            let npm = tool("npm", "npm");
            if dir.join("node_modules/eventsource/package.json").is_file() {
                return;
            }
            let mut command = Command::new(npm);
            command.args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).kill_on_drop(true);
            let output = tokio::time::timeout(Duration::from_secs(300), command.output())
                .await
                .expect("npm ci finished within 5 minutes")
                .expect("npm runs");
            assert!(
                output.status.success(),
                "npm ci in examples/node failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        })
        .await;
    dir
}

/// Publishes two observations once `client` says it is connected, and checks
/// the JSON lines it prints on stdout.
async fn assert_client_prints_observations(app: &TestApp, mut client: Running) {
    client.wait_for("its connected line", |line| line.stderr && line.text.starts_with("connected")).await;
    let observations = [crate::stream::observation("46026", 1), crate::stream::observation("46026", 2)];
    let ids = app.bus.publish(&observations).await.expect("publish");
    client.wait_success().await;
    let printed: Vec<serde_json::Value> = client
        .seen
        .iter()
        .filter(|line| !line.stderr)
        .map(|line| serde_json::from_str(&line.text).expect("stdout carries JSON lines"))
        .collect();
    assert_eq!(printed.len(), 2, "two observations:\n{}", client.transcript());
    for ((json, observation), id) in printed.iter().zip(&observations).zip(&ids) {
        assert_eq!(json["id"], id.as_str());
        assert_eq!(json["stationId"], "46026");
        assert_eq!(json["timestamp"], format_time(&observation.observed_at));
        for field in Field::ALL {
            assert_eq!(
                json[field.name()].as_f64(),
                observation.measurements.get(field),
                "{}: {field}",
                client.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_prints_observations_from_a_live_gateway() {
    let dir = node_examples().await;
    let app = TestApp::spawn(Backends::default()).await;
    let mut command = Command::new(tool("node", "nodejs"));
    command.arg(dir.join("client.mjs")).args(["--url", &app.base_url, "--count", "2"]);
    assert_client_prints_observations(&app, Running::spawn("node client.mjs", command)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_prints_observations_from_a_live_gateway() {
    let app = TestApp::spawn(Backends::default()).await;
    let mut command = Command::new(tool("python3", "python3"));
    command.arg(repo().join("examples/python/client.py")).args(["--url", &app.base_url, "--count", "2"]);
    assert_client_prints_observations(&app, Running::spawn("python client.py", command)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sse_to_osc_sends_the_bytes_the_bridge_sends() {
    let dir = node_examples().await;
    let bridge = bridge().await;
    let app = TestApp::spawn(Backends::default()).await;
    let from_bridge = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let from_node = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for socket in [&from_bridge, &from_node] {
        socket.set_read_timeout(Some(WAIT)).expect("set a read timeout");
    }

    let mut command = Command::new(bridge);
    command.args(["--source", &app.base_url, "--osc-format", "observation", "--osc"]);
    command.arg(from_bridge.local_addr().expect("addr").to_string());
    let mut bridge = Running::spawn("bridge", command);
    let mut command = Command::new(tool("node", "nodejs"));
    command.arg(dir.join("sse-to-osc.mjs")).args(["--url", &app.base_url, "--count", "1", "--osc"]);
    command.arg(from_node.local_addr().expect("addr").to_string());
    let mut node = Running::spawn("node sse-to-osc.mjs", command);
    bridge.wait_for("its SSE connection", |line| line.text.contains("sse stream connected")).await;
    node.wait_for("its connected line", |line| line.text.starts_with("connected")).await;

    // One with a null water temperature and pressure (sentinels -999 and -1).
    let observation = crate::stream::observation("46026", 3);
    app.bus.publish(std::slice::from_ref(&observation)).await.expect("publish");

    let receive = |socket: UdpSocket| {
        tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 1024];
            let (n, _) = socket.recv_from(&mut buf).expect("a datagram within the timeout");
            buf[..n].to_vec()
        })
    };
    let (bridge_packet, node_packet) = (receive(from_bridge), receive(from_node));
    let bridge_packet = bridge_packet.await.expect("receive from the bridge");
    let node_packet = node_packet.await.expect("receive from node");
    node.wait_success().await;

    assert!(bridge_packet.starts_with(b"/observation\0\0\0\0,ssffiff\0"), "{bridge_packet:?}");
    let (station, timestamp, _) = observation_args(&observation);
    let text = String::from_utf8_lossy(&bridge_packet);
    assert!(text.contains(&station) && text.contains(&timestamp), "{text:?}");
    assert_eq!(node_packet, bridge_packet, "the Node script and the bridge send the same /observation");
}

/// A performer starts the bridge after the stations reported: SuperCollider
/// (the patch as shipped) hears every station at once, from time-tagged
/// bundles (`--latency`), and again when it asks with `/buoycast/resend`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supercollider_hears_every_station_at_once_and_again_on_resend() {
    let bridge = bridge().await;
    let app = TestApp::spawn(Backends::default()).await;
    // The stations reported before anyone listened.
    let observations = [crate::stream::observation("46026", 1), crate::stream::observation("46042", 1)];
    app.bus.publish(&observations).await.expect("publish");

    let (mut sc, port) = start_supercollider_patch().await;

    let control_port = free_udp_port();
    let mut command = Command::new(bridge);
    command.args(["--source", &app.base_url, "--osc", &format!("127.0.0.1:{port}"), "--latency", "100"]);
    command.args(["--control", &control_port.to_string()]);
    let _bridge = Running::spawn("bridge", command);

    let time_line = |observation: &Observation| {
        let t = observation.observed_at;
        format!(
            "buoycast /buoy/{}/time {} {} {} {} {}",
            observation.station_id,
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute()
        )
    };
    let (first, second) = (time_line(&observations[0]), time_line(&observations[1]));
    // Sorted by station: 46042's state comes after 46026's, with no report published meanwhile.
    sc.wait_for("46026's current state", |line| line.text == first).await;
    sc.wait_for("46042's current state", |line| line.text == second).await;

    // The patch asks for the state again (as a recompiled patch would).
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let resend = rosc::encoder::encode(&rosc::OscPacket::Message(rosc::OscMessage {
        addr: "/buoycast/resend".into(),
        args: vec![],
    }))
    .expect("encode");
    socket.send_to(&resend, ("127.0.0.1", control_port)).await.expect("send");
    sc.wait_for("46026's state again", |line| line.text == first).await;
    sc.wait_for("46042's state again", |line| line.text == second).await;
    for line in &sc.seen {
        assert!(!line.text.starts_with("ERROR"), "sclang: {}\n{}", line.text, sc.transcript());
    }
}

#[tokio::test]
async fn pure_data_hears_every_station_at_once_then_a_smoothed_glide_and_the_state_again_on_resend() {
    let pd = tool("pd", "puredata-core");
    let bridge = bridge().await;
    let app = TestApp::spawn(Backends::default()).await;
    // The stations reported before anyone listened: 46026 at 1.1 m.
    let before = [crate::stream::observation("46026", 1), crate::stream::observation("46042", 1)];
    app.bus.publish(&before).await.expect("publish");

    let port = free_udp_port();
    let mut command = Command::new(pd);
    command.args(["-nogui", "-nosound", "-nomidi", "-stderr", "-send"]);
    command.arg(format!("buoycast-port {port}"));
    command.arg(repo().join("patches/puredata/buoycast.pd"));
    let mut pd = Running::spawn("pd", command);
    pd.wait_for("buoycast-listening", |line| line.text == format!("buoycast-listening: {port}")).await;

    // A map that smooths the wave height over 0.3 s; time-tagged bundles
    // (Pd's oscparse unpacks them and plays them at once).
    let dir = tempfile::tempdir().expect("temp dir");
    let map = dir.path().join("smooth.toml");
    std::fs::write(&map, "[fields.waveHeightM]\nsmooth = 0.3\n").expect("write map");
    let control_port = free_udp_port();
    let mut command = Command::new(bridge);
    command.args(["--source", &app.base_url, "--osc", &format!("127.0.0.1:{port}"), "--latency", "50"]);
    command.args(["--control", &control_port.to_string()]).arg("--map").arg(&map);
    let _bridge = Running::spawn("bridge", command);

    let station_line = |id: &str, rest: &str| format!("buoycast-buoy: {id} {rest}");
    let time_of = |observation: &Observation| {
        let t = observation.observed_at;
        format!("time {} {} {} {} {}", t.year(), t.month(), t.day(), t.hour(), t.minute())
    };
    // The current state of both stations, without a report published meanwhile.
    pd.wait_for("46026's state", |line| line.text == station_line("46026", &time_of(&before[0]))).await;
    pd.wait_for("46042's state", |line| line.text == station_line("46042", &time_of(&before[1]))).await;
    let seen = pd.seen.len();

    // A new report, 1.1 m → 2.0 m: Pd hears it glide there, never jump.
    let after = crate::stream::observation("46026", 10);
    app.bus.publish(std::slice::from_ref(&after)).await.expect("publish");
    pd.wait_for("the glide's end", |line| line.text == station_line("46026", "waveHeightM 2")).await;
    let glide: Vec<f64> = pd.seen[seen..]
        .iter()
        .filter_map(|line| line.text.strip_prefix("buoycast-buoy: 46026 waveHeightM "))
        .filter_map(|value| value.parse().ok())
        .collect();
    assert!(glide.len() >= 5, "several steps of a 0.3 s glide at 50 Hz: {glide:?}\n{}", pd.transcript());
    assert!(glide.windows(2).all(|w| w[0] <= w[1]), "rising, never back: {glide:?}");
    // The report's own messages carry the value reached so far (1.1), then
    // the clock moves it: no step takes more than two ticks' worth.
    assert!(glide[0] >= 1.1 && glide[0] < 2.0, "it starts from where it was: {glide:?}");
    let two_ticks = 0.9 * (1.0 - (-0.04f64 / 0.3).exp());
    assert!(glide.windows(2).all(|w| w[1] - w[0] < two_ticks), "no jump: {glide:?}");
    // The formula: each 20 ms step keeps e^(−0.02/0.3) of the distance left
    // (the steps while the distance is still large, Pd printing 6 digits).
    let mut kept: Vec<f64> =
        glide.windows(2).filter(|w| 2.0 - w[1] > 0.05).map(|w| (2.0 - w[1]) / (2.0 - w[0])).collect();
    kept.sort_by(f64::total_cmp);
    let median = kept[kept.len() / 2];
    let expected = (-0.02f64 / 0.3).exp();
    assert!(
        (median - expected).abs() < 0.02,
        "distance kept per step {median} against {expected}: {glide:?}"
    );

    // The patch asks for the state again (as after reopening it).
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let resend = rosc::encoder::encode(&rosc::OscPacket::Message(rosc::OscMessage {
        addr: "/buoycast/resend".into(),
        args: vec![],
    }))
    .expect("encode");
    let seen = pd.seen.len();
    socket.send_to(&resend, ("127.0.0.1", control_port)).await.expect("send");
    pd.wait_for("46026's newest state", |line| line.text == station_line("46026", &time_of(&after))).await;
    pd.wait_for("46042's state again", |line| line.text == station_line("46042", &time_of(&before[1]))).await;
    assert!(
        pd.seen[seen..].iter().any(|line| line.text == station_line("46026", "waveHeightM 2")),
        "the resend carries the newest value:\n{}",
        pd.transcript()
    );
    for line in &pd.seen {
        assert!(!line.text.contains("error"), "pd: {}\n{}", line.text, pd.transcript());
    }
}

/// The loudest band's audible pitch of each 41010 spectrum, oldest first, as
/// `--spectrum-audible 110:1760` maps it: what the spectrum patches print.
fn expected_spectrum_peaks() -> Vec<f64> {
    crate::harness::fixtures::spectra_41010()
        .iter()
        .map(|spectrum| {
            let mut loudest = &spectrum.bands[0];
            for band in &spectrum.bands {
                if band.density.unwrap_or(0.0) > loudest.density.unwrap_or(0.0) {
                    loudest = band;
                }
            }
            110.0 * 16f64.powf((loudest.freq_hz / 0.02).ln() / 25f64.ln())
        })
        .collect()
}

/// Replays 41010's spectral files with `--spectrum-audible 110:1760` to `port`.
async fn replay_spectra_to(port: u16) {
    let mut command = Command::new(bridge().await);
    command.arg("--replay").arg(fixtures::path("realtime2/41010.data_spec"));
    command.args(["--speed", "1e6", "--osc", &format!("127.0.0.1:{port}"), "--spectrum-audible", "110:1760"]);
    Running::spawn("bridge", command).wait_success().await;
}

/// Checks the lines `STATION N PEAK` a spectrum patch printed against the data.
fn check_spectrum_lines(lines: &[String], transcript: &str) {
    let expected = expected_spectrum_peaks();
    assert_eq!(lines.len(), expected.len(), "one line per spectrum:\n{transcript}");
    for (line, peak) in lines.iter().zip(&expected) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(tokens[..2], ["41010", "46"], "{line}");
        let printed: f64 = tokens[2].parse().expect("a pitch");
        assert!((printed - peak).abs() < 0.01, "{line}: expected a peak at {peak:.3} Hz");
    }
}

#[tokio::test]
async fn supercollider_spectrum_patch_plays_every_band_of_a_replayed_spectrum() {
    let (mut sc, port) = start_sclang("spectrum.scd", "buoycast-spectrum: listening").await;

    replay_spectra_to(port).await;
    let last = expected_spectrum_peaks().len();
    let mut lines = Vec::new();
    while lines.len() < last {
        let line =
            sc.wait_for("a spectrum line", |line| line.text.starts_with("buoycast-spectrum: 41010 ")).await;
        lines.push(line.text["buoycast-spectrum: ".len()..].to_owned());
    }
    for line in &sc.seen {
        assert!(!line.text.starts_with("ERROR"), "sclang: {}\n{}", line.text, sc.transcript());
    }
    check_spectrum_lines(&lines, &sc.transcript());
}

#[tokio::test]
async fn pure_data_spectrum_patch_plays_every_band_of_a_replayed_spectrum() {
    let pd = tool("pd", "puredata-core");
    let port = free_udp_port();
    let mut command = Command::new(pd);
    command.args(["-nogui", "-nosound", "-nomidi", "-stderr", "-send"]);
    command.arg(format!("spectrum-port {port}"));
    command.arg(repo().join("patches/puredata/spectrum.pd"));
    let mut pd = Running::spawn("pd", command);
    pd.wait_for("spectrum-listening", |line| line.text == format!("spectrum-listening: {port}")).await;

    replay_spectra_to(port).await;
    let last = expected_spectrum_peaks().len();
    let mut lines = Vec::new();
    while lines.len() < last {
        let line = pd.wait_for("a spectrum line", |line| line.text.starts_with("spectrum: 41010 ")).await;
        lines.push(line.text["spectrum: ".len()..].to_owned());
    }
    for line in &pd.seen {
        assert!(!line.text.contains("error"), "pd: {}\n{}", line.text, pd.transcript());
    }
    check_spectrum_lines(&lines, &pd.transcript());
}

/// Issue "Directional wave spectra", the whole way: NDBC's five spectral
/// files served over HTTP → the worker → the store's outbox → the bus → the
/// gateway's SSE stream → a live `bridge --source` → SuperCollider's
/// spectrum patch, which prints each spectrum's loudest band as the audible
/// pitch the files give: the current spectrum at once (snapshot), then the
/// next one when NDBC's files gain a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supercollider_plays_spectra_a_live_gateway_streams_from_ndbc_files() {
    use crate::harness::ndbc_server::NdbcServer;
    use crate::harness::sse::SseClient;
    const EXTENSIONS: [&str; 5] = ["data_spec", "swdir", "swdir2", "swr1", "swr2"];
    let bridge = bridge().await;
    let server = NdbcServer::start().await;
    // NDBC an hour ago: each file without its newest row.
    for ext in EXTENSIONS {
        let text = String::from_utf8(fixtures::read(&format!("realtime2/41010.{ext}"))).expect("ASCII");
        let mut rows = text.lines().filter(|line| !line.starts_with('#')).skip(1).peekable();
        assert!(rows.peek().is_some(), "{ext} has rows");
        let header = text.lines().take_while(|line| line.starts_with('#'));
        let body: String = header.chain(rows).map(|line| format!("{line}\n")).collect();
        server.set_body(&format!("/realtime2/41010.{ext}"), body);
    }
    let app = crate::harness::app::RunAll::start(
        &server,
        &[
            ("BUOYCAST_STATIONS", "41010"),
            ("BUOYCAST_SPECTRAL_STATIONS", "41010"),
            ("BUOYCAST_LATEST_OBS", "false"),
            ("INGEST_INTERVAL_MS", "1000"),
        ],
    );
    let base = app.base_url.clone();

    // Until the gateway holds the hour-old spectrum as the current one.
    let peaks = expected_spectrum_peaks();
    let spectra = fixtures::spectra_41010();
    let (previous, newest) = (&spectra[spectra.len() - 2], &spectra[spectra.len() - 1]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let snapshot_url = format!("{base}/v1/observations/stream?kinds=spectrum&snapshot=latest");
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the worker published no spectrum within 30 s");
        let mut client = SseClient::connect(&snapshot_url, &[]).await;
        if client.status == 200 {
            let _connection = client.next_event(Duration::from_secs(5)).await;
            if !client.silent_for(Duration::from_millis(300)).await {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (mut sc, port) = start_sclang("spectrum.scd", "buoycast-spectrum: listening").await;
    let mut command = Command::new(bridge);
    command.args([
        "--source",
        &base,
        "--osc",
        &format!("127.0.0.1:{port}"),
        "--spectrum-audible",
        "110:1760",
    ]);
    let _bridge = Running::spawn("bridge", command);
    let first =
        sc.wait_for("the current spectrum", |line| line.text.starts_with("buoycast-spectrum: 41010 ")).await;
    // NDBC's files gain the newest row: the worker's next poll publishes that one spectrum.
    for ext in EXTENSIONS {
        server
            .set_body(&format!("/realtime2/41010.{ext}"), fixtures::read(&format!("realtime2/41010.{ext}")));
    }
    let second =
        sc.wait_for("the new spectrum", |line| line.text.starts_with("buoycast-spectrum: 41010 ")).await;
    let lines = [&first, &second].map(|line| line.text["buoycast-spectrum: ".len()..].to_owned());
    let n = peaks.len();
    assert_eq!((previous.bands.len(), newest.bands.len()), (46, 46));
    for (line, peak) in lines.iter().zip(&peaks[n - 2..]) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(tokens[..2], ["41010", "46"], "{line}");
        let printed: f64 = tokens[2].parse().expect("a pitch");
        assert!(
            (printed - peak).abs() < 0.01,
            "{line}: expected a peak at {peak:.3} Hz\n{}",
            sc.transcript()
        );
    }
    for line in &sc.seen {
        assert!(!line.text.starts_with("ERROR"), "sclang: {}\n{}", line.text, sc.transcript());
    }
    app.stop().await;
}
