//! OSCQuery against real clients: the namespace and HOST_INFO over HTTP
//! (VALUE on every method, none on containers), LISTEN / IGNORE and
//! PATH_ADDED over a tokio-tungstenite WebSocket on the same port, and the
//! `python-oscquery` client from PyPI reading the namespace by URL.
//!
//! Observations go through the bridge's pipeline (as `app` wires it, without
//! the mDNS advertisement, which would reach the local network).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use buoycast::observation::{Field, Measurements, Observation, ObservationEvent, StationId};
use buoycast_bridges::cli::{OscFormat, OscQueryLayout};
use buoycast_bridges::mapping::Map;
use buoycast_bridges::pipeline::{Pipeline, PipelineStats};
use buoycast_bridges::sink::oscquery::{self, Namespace};
use buoycast_bridges::source::Item;
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use futures::{SinkExt, StreamExt};
use rosc::{OscPacket, OscType};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something the bridge should send.
const WAIT: Duration = Duration::from_secs(10);

/// A bridge with only an OSCQuery output: its namespace served on a local
/// port, observations fed to its pipeline.
struct Bridge {
    namespace: Arc<Namespace>,
    port: u16,
    items: Option<mpsc::Sender<Item>>,
    pipeline: JoinHandle<PipelineStats>,
    server: JoinHandle<()>,
    shutdown: CancellationToken,
}

impl Bridge {
    async fn start(format: OscFormat) -> Bridge {
        Bridge::start_with(format, OscQueryLayout::Strict).await
    }

    async fn start_with(format: OscFormat, layout: OscQueryLayout) -> Bridge {
        let namespace = Arc::new(Namespace::new(Map::builtin(), format, None).with_layout(layout));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(oscquery::serve(listener, namespace.clone(), shutdown.clone()));
        let pipeline = Pipeline {
            encoder: Some(buoycast_bridges::osc::OscEncoder {
                format,
                null_policy: buoycast_bridges::osc::NullPolicy::Skip,
                bundle: false,
                map: Map::builtin(),
                latency: None,
            }),
            osc: Vec::new(),
            midi: None,
            namespace: Some(namespace.clone()),
            lossless: false,
            control: None,
            start: tokio::time::Instant::now(),
            start_wall: std::time::SystemTime::now(),
            shaper: None,
        };
        let (items, items_rx) = mpsc::channel(64);
        let pipeline = tokio::spawn(pipeline.run(items_rx));
        Bridge { namespace, port, items: Some(items), pipeline, server, shutdown }
    }

    /// Hands one report to the pipeline.
    async fn feed(&self, observation: Observation) {
        let now = observation.observed_at + chrono::Duration::seconds(90);
        let item = Item::new(ObservationEvent::new(None, observation), Duration::ZERO, now);
        self.items.as_ref().expect("running").send(item).await.expect("pipeline running");
    }

    /// Feeds reports and waits until the namespace holds the last one.
    async fn feed_all(&self, observations: Vec<Observation>) {
        let Some(last) = observations.last().cloned() else { return };
        for observation in observations {
            self.feed(observation).await;
        }
        let path = format!("/buoy/{}/time", last.station_id);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, body) = http_get(self.port, &format!("{path}?VALUE")).await;
            if status == 200 && body["VALUE"][0].is_number() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{path} never got a value: {status} {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        drop(self.items.take());
        let stats = tokio::time::timeout(WAIT, self.pipeline).await.expect("pipeline ends").expect("task");
        assert!(stats.n_items > 0);
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.server).await.expect("server ends").expect("task");
    }
}

fn observation(station: &str, minute: u32, fields: &[(Field, f64)]) -> Observation {
    let mut measurements = Measurements::default();
    for (field, value) in fields {
        measurements = measurements.with(*field, *value);
    }
    Observation {
        station_id: StationId::parse(station).expect("id"),
        observed_at: Utc.with_ymd_and_hms(2026, 11, 28, 6, minute, 0).single().expect("time"),
        measurements,
    }
}

/// One GET on a fresh connection: the status and the JSON body (Null when empty).
async fn http_get(port: u16, target: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    stream
        .write_all(format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("answer in time")
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Checks one node and its subtree; returns the method nodes' paths.
fn check_node(node: &Value, path: &str, methods: &mut Vec<String>) {
    assert_eq!(node["FULL_PATH"], json!(path), "FULL_PATH of {path}: {node}");
    assert!(node["DESCRIPTION"].is_string(), "DESCRIPTION of {path}");
    match node.get("TYPE").and_then(Value::as_str) {
        Some(type_tag) => {
            assert_eq!(node["ACCESS"], 1, "a method is readable: {path}");
            let value =
                node["VALUE"].as_array().unwrap_or_else(|| panic!("{path} has no VALUE array: {node}"));
            assert_eq!(value.len(), type_tag.len(), "{path}: VALUE {value:?} against TYPE {type_tag}");
            for (arg, tag) in value.iter().zip(type_tag.chars()) {
                let fits = match tag {
                    'f' => arg.is_number(),
                    'i' => arg.is_i64(),
                    's' => arg.is_string(),
                    other => panic!("{path}: unexpected type tag {other}"),
                };
                assert!(fits || arg.is_null(), "{path}: {arg} is not a {tag} (nor null)");
            }
            // One RANGE and one UNIT entry per value.
            for attribute in ["RANGE", "UNIT"] {
                if let Some(list) = node.get(attribute) {
                    assert_eq!(list.as_array().map(Vec::len), Some(type_tag.len()), "{path}: {attribute}");
                }
            }
            methods.push(path.to_owned());
        }
        None => {
            assert_eq!(node["ACCESS"], 0, "a container has no value: {path}");
            assert!(node.get("VALUE").is_none(), "a container has no VALUE: {path}");
            assert!(node["CONTENTS"].is_object(), "a container has CONTENTS: {path}");
        }
    }
    if let Some(contents) = node.get("CONTENTS").and_then(Value::as_object) {
        for (name, child) in contents {
            let child_path = if path == "/" { format!("/{name}") } else { format!("{path}/{name}") };
            check_node(child, &child_path, methods);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oscquery_serves_values_on_every_method_and_host_info_over_http() {
    let bridge = Bridge::start_with(OscFormat::Both, OscQueryLayout::Nested).await;

    // Before any report: /observation already exists, its VALUE one null per argument.
    let (status, empty) = http_get(bridge.port, "/").await;
    assert_eq!(status, 200);
    let mut methods = Vec::new();
    check_node(&empty, "/", &mut methods);
    assert_eq!(methods, vec!["/observation"]);
    assert_eq!(empty["CONTENTS"]["observation"]["VALUE"], json!([null, null, null, null, null, null, null]));

    bridge
        .feed_all(vec![
            observation(
                "46026",
                40,
                &[
                    (Field::WaveHeightM, 1.2),
                    (Field::WindSpeedMps, 5.1),
                    (Field::WindDirDeg, 270.0),
                    (Field::PressureHpa, 1015.3),
                ],
            ),
            observation("46042", 50, &[(Field::WaveHeightM, 2.5)]),
        ])
        .await;

    let (status, root) = http_get(bridge.port, "/").await;
    assert_eq!(status, 200);
    let mut methods = Vec::new();
    check_node(&root, "/", &mut methods);
    // /observation, and per station 14 fields with their /norm, /time and /age.
    assert_eq!(methods.len(), 1 + 2 * (14 * 2 + 2), "{methods:?}");

    let station = &root["CONTENTS"]["buoy"]["CONTENTS"]["46026"]["CONTENTS"];
    assert_eq!(station["waveHeightM"]["VALUE"], json!([1.2]));
    assert_eq!(station["waveHeightM"]["CONTENTS"]["norm"]["VALUE"], json!([0.12]));
    assert_eq!(station["windDirDeg"]["VALUE"], json!([270.0]));
    assert_eq!(station["waterTempC"]["VALUE"], json!([null]), "never reported (null policy skip)");
    assert_eq!(station["time"]["VALUE"], json!([2026, 11, 28, 6, 40]));
    assert_eq!(station["age"]["VALUE"], json!([90.0]));
    assert_eq!(
        root["CONTENTS"]["observation"]["VALUE"],
        json!(["46042", "2026-11-28T06:50:00Z", 2.5, -1.0, -1, -999.0, -1.0]),
        "the last /observation sent"
    );

    // Single attributes.
    let (status, wave) = http_get(bridge.port, "/buoy/46042/waveHeightM?VALUE").await;
    assert_eq!((status, wave), (200, json!({"VALUE": [2.5]})));
    let (status, both) = http_get(bridge.port, "/buoy/46042/waveHeightM?TYPE&UNIT").await;
    assert_eq!((status, both), (200, json!({"TYPE": "f", "UNIT": ["m"]})));
    let (status, _) = http_get(bridge.port, "/buoy/46042?VALUE").await;
    assert_eq!(status, 204, "a container has no VALUE");
    let (status, _) = http_get(bridge.port, "/buoy/46042/age?NONSENSE").await;
    assert_eq!(status, 400);
    let (status, _) = http_get(bridge.port, "/buoy/99999?VALUE").await;
    assert_eq!(status, 404);

    // HOST_INFO: the extensions served; where the bridge receives OSC only once it does.
    let (status, info) = http_get(bridge.port, "/?HOST_INFO").await;
    assert_eq!(status, 200);
    assert_eq!(info["NAME"], "buoycast bridge");
    for extension in ["ACCESS", "VALUE", "RANGE", "UNIT", "DESCRIPTION", "LISTEN", "PATH_ADDED"] {
        assert_eq!(info["EXTENSIONS"][extension], true, "{extension}: {info}");
    }
    assert_eq!(info["EXTENSIONS"]["PATH_CHANGED"], false);
    for key in ["OSC_IP", "OSC_PORT", "OSC_TRANSPORT"] {
        assert!(info.get(key).is_none(), "{key} without a control port: {info}");
    }
    assert_eq!(info["WS_IP"], "127.0.0.1");
    assert_eq!(info["WS_PORT"], bridge.port);
    let control: SocketAddr = "127.0.0.1:57130".parse().expect("addr");
    bridge.namespace.set_control(Some(control));
    let (_, info) = http_get(bridge.port, "/?HOST_INFO").await;
    assert_eq!(info["OSC_IP"], "127.0.0.1");
    assert_eq!(info["OSC_PORT"], 57130);
    assert_eq!(info["OSC_TRANSPORT"], "UDP");

    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_layout_lists_no_children_under_a_method_and_answers_norm_by_path() {
    let bridge = Bridge::start(OscFormat::Both).await;
    bridge.feed_all(vec![observation("46026", 40, &[(Field::WaveHeightM, 1.2)])]).await;

    let (status, root) = http_get(bridge.port, "/").await;
    assert_eq!(status, 200);
    let mut methods = Vec::new();
    check_node(&root, "/", &mut methods);
    // /observation, and the station's 14 fields, /time and /age: no /norm listed.
    assert_eq!(methods.len(), 1 + 14 + 2, "{methods:?}");
    assert!(methods.iter().all(|path| !path.ends_with("/norm")), "{methods:?}");
    let (_, wave) = http_get(bridge.port, "/buoy/46026/waveHeightM").await;
    assert!(wave.get("CONTENTS").is_none(), "a method lists no children: {wave}");
    assert_eq!(wave["VALUE"], json!([1.2]));
    assert!(
        wave["DESCRIPTION"].as_str().is_some_and(|d| d.contains("/buoy/46026/waveHeightM/norm")),
        "{wave}"
    );

    // The /norm address is still there, asked for by path.
    let (status, norm) = http_get(bridge.port, "/buoy/46026/waveHeightM/norm").await;
    assert_eq!(status, 200);
    assert_eq!(norm["FULL_PATH"], "/buoy/46026/waveHeightM/norm");
    assert_eq!(norm["VALUE"], json!([0.12]));
    assert_eq!(norm["RANGE"], json!([{"MIN": 0.0, "MAX": 1.0}]));
    bridge.stop().await;
}

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Waits until the bridge has read everything sent so far (a ping's pong
/// comes after it); returns what arrived meanwhile.
async fn sync(ws: &mut Client) -> Vec<Message> {
    ws.send(Message::Ping(Bytes::from_static(b"sync"))).await.expect("ping");
    let mut other = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("pong in time") {
            Some(Ok(Message::Pong(payload))) if payload.as_ref() == b"sync" => return other,
            Some(Ok(message)) => other.push(message),
            Some(Err(error)) => panic!("websocket: {error}"),
            None => panic!("websocket closed"),
        }
    }
}

/// The next text or binary frame.
async fn next_frame(ws: &mut Client) -> Message {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => return message,
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("websocket: {error}"),
            None => panic!("websocket closed"),
        }
    }
}

/// A binary frame as one OSC message: its address and arguments.
fn osc(message: &Message) -> (String, Vec<OscType>) {
    let Message::Binary(bytes) = message else { panic!("expected binary OSC, got {message:?}") };
    match rosc::decoder::decode_udp(bytes).expect("an OSC packet").1 {
        OscPacket::Message(message) => (message.addr, message.args),
        OscPacket::Bundle(bundle) => panic!("expected one message, got {bundle:?}"),
    }
}

fn path_added(message: &Message) -> Value {
    let Message::Text(text) = message else { panic!("expected PATH_ADDED text, got {message:?}") };
    let json: Value = serde_json::from_str(text.as_str()).expect("JSON");
    assert_eq!(json["COMMAND"], "PATH_ADDED", "{json}");
    json
}

async fn command(ws: &mut Client, command: &str, path: &str) {
    let text = json!({"COMMAND": command, "DATA": path}).to_string();
    ws.send(Message::text(text)).await.expect("send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_listen_streams_osc_ignore_stops_and_path_added_announces_stations() {
    let bridge = Bridge::start(OscFormat::Both).await;
    let (mut ws, response) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/", bridge.port)).await.expect("upgrade");
    assert_eq!(response.status(), 101);
    let wave = "/buoy/46026/waveHeightM";
    let wind = "/buoy/46026/windSpeedMps";
    command(&mut ws, "LISTEN", wave).await;
    command(&mut ws, "LISTEN", wind).await;
    assert!(sync(&mut ws).await.is_empty());

    // The first station: PATH_ADDED for /buoy (new too), then the listened values.
    bridge.feed(observation("46026", 40, &[(Field::WaveHeightM, 1.5), (Field::WindSpeedMps, 5.0)])).await;
    let added = path_added(&next_frame(&mut ws).await);
    assert_eq!(added["DATA"], "/buoy");
    assert_eq!(added["FULL_PATH"], "/buoy");
    assert_eq!(added["CONTENTS"]["46026"]["CONTENTS"]["waveHeightM"]["VALUE"], json!([1.5]));
    // Field order: windSpeedMps is sent before waveHeightM.
    assert_eq!(osc(&next_frame(&mut ws).await), (wind.to_owned(), vec![OscType::Float(5.0)]));
    assert_eq!(osc(&next_frame(&mut ws).await), (wave.to_owned(), vec![OscType::Float(1.5)]));

    // IGNORE: the wind stops; the wave (after it in the same report) still comes.
    command(&mut ws, "IGNORE", wind).await;
    assert!(sync(&mut ws).await.is_empty(), "nothing else was listened to");
    bridge.feed(observation("46026", 50, &[(Field::WaveHeightM, 2.5), (Field::WindSpeedMps, 6.0)])).await;
    assert_eq!(osc(&next_frame(&mut ws).await), (wave.to_owned(), vec![OscType::Float(2.5)]));

    // A second station: PATH_ADDED for its container only; nothing listened there.
    bridge.feed(observation("46042", 55, &[(Field::WaveHeightM, 3.5)])).await;
    let added = path_added(&next_frame(&mut ws).await);
    assert_eq!(added["DATA"], "/buoy/46042");
    assert_eq!(added["FULL_PATH"], "/buoy/46042");
    assert_eq!(added["CONTENTS"]["waveHeightM"]["VALUE"], json!([3.5]));
    assert_eq!(added["CONTENTS"]["time"]["VALUE"], json!([2026, 11, 28, 6, 55]));
    assert!(sync(&mut ws).await.is_empty(), "no value of an unlistened address");

    // A known station is no news; IGNORE of the last address silences the stream.
    command(&mut ws, "IGNORE", wave).await;
    sync(&mut ws).await;
    bridge.feed(observation("46026", 58, &[(Field::WaveHeightM, 4.5)])).await;
    bridge.feed_all(vec![observation("46042", 59, &[(Field::WaveHeightM, 4.0)])]).await;
    assert!(sync(&mut ws).await.is_empty());

    ws.close(None).await.expect("close");
    bridge.stop().await;
}

/// A Python with `python-oscquery` (PyPI): `BUOYCAST_OSCQUERY_PYTHON` if set,
/// else a virtualenv in the target directory, made and filled with pip the
/// first time.
fn python_with_oscquery() -> PathBuf {
    if let Some(python) = std::env::var_os("BUOYCAST_OSCQUERY_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-oscquery");
    let python = venv.join("bin").join("python");
    let imports = |python: &Path| {
        Command::new(python).args(["-c", "import pythonoscquery"]).status().is_ok_and(|s| s.success())
    };
    if imports(&python) {
        return python;
    }
    let made = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 runs");
    assert!(made.success(), "python3 -m venv {}", venv.display());
    let pip = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "python-oscquery==0.4.0"])
        .output()
        .expect("pip runs");
    assert!(
        pip.status.success(),
        "pip install python-oscquery==0.4.0 failed (PyPI unreachable? set BUOYCAST_OSCQUERY_PYTHON): {}",
        String::from_utf8_lossy(&pip.stderr)
    );
    assert!(imports(&python), "python-oscquery installed but does not import");
    python
}

/// Runs python-oscquery's own client against the bridge. With a port, by
/// URL (a `ServiceInfo` made by hand); with `discover`, found over mDNS by
/// the library's listener on a zeroconf bound to 127.0.0.1 (the
/// announcement and the query stay on this machine). Prints the service
/// found, HOST_INFO and, for each path, every node of the subtree as the
/// client parsed it (path, ACCESS, VALUE) or its error.
const PYTHON_CLIENT: &str = r#"
import json, socket, sys, time
from zeroconf import ServiceBrowser, ServiceInfo, Zeroconf
from pythonoscquery.osc_query_browser import OSCQueryListener
from pythonoscquery.osc_query_client import OSCQueryClient

target, paths = sys.argv[1], sys.argv[2:]
if target == "discover":
    zc = Zeroconf(interfaces=["127.0.0.1"])
    listener = OSCQueryListener()
    ServiceBrowser(zc, ["_oscjson._tcp.local."], listener)
    deadline = time.time() + 20
    while not listener.oscjson_services and time.time() < deadline:
        time.sleep(0.1)
    services = [s for s in listener.oscjson_services.values() if s is not None]
    if not services:
        sys.exit("no _oscjson._tcp service discovered")
    info = services[0]
else:
    zc = None
    info = ServiceInfo("_oscjson._tcp.local.", "buoycast-bridge._oscjson._tcp.local.",
                       addresses=[socket.inet_aton("127.0.0.1")], port=int(target))
client = OSCQueryClient(info)
host = client.get_host_info()
out = {"service": {"name": info.name, "port": info.port, "addresses": info.parsed_addresses()},
       "host": {"name": host.name, "extensions": host.extensions, "osc_ip": host.osc_ip,
                "osc_port": host.osc_port, "osc_transport": host.osc_transport}, "nodes": {}}
for path in paths:
    try:
        node = client.query_node(path)
        out["nodes"][path] = {"ok": [[n.full_path, n.access.value if n.access is not None else None,
                                      n.value] for n in node]}
    except Exception as error:
        out["nodes"][path] = {"error": str(error)}
if zc is not None:
    zc.close()
print(json.dumps(out))
"#;

fn run_python_client(python: &Path, target: &str, paths: &[String]) -> Value {
    let output = Command::new(python)
        .arg("-c")
        .arg(PYTHON_CLIENT)
        .arg(target)
        .args(paths)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .expect("python runs");
    assert!(output.status.success(), "python-oscquery client: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_oscquery_client_discovers_the_bridge_and_reads_the_whole_namespace() {
    let python = tokio::task::spawn_blocking(python_with_oscquery).await.expect("task");

    // `--osc-format observation`, by URL: the whole namespace, accepted as is.
    let bridge = Bridge::start(OscFormat::Observation).await;
    bridge.feed(observation("46026", 40, &[(Field::WaveHeightM, 1.2)])).await;
    tokio::time::timeout(WAIT, async {
        while http_get(bridge.port, "/observation?VALUE").await.1["VALUE"][0].is_null() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the report reaches the namespace");
    let target = bridge.port.to_string();
    let out = tokio::task::spawn_blocking({
        let python = python.clone();
        move || run_python_client(&python, &target, &["/".to_owned()])
    })
    .await
    .expect("task");
    assert_eq!(out["host"]["name"], "buoycast bridge");
    assert_eq!(out["host"]["extensions"]["VALUE"], true);
    assert_eq!(
        out["nodes"]["/"]["ok"],
        json!([
            ["/", 0, null],
            ["/observation", 1, ["46026", "2026-11-28T06:40:00Z", 1.2, -1.0, -1, -999.0, -1.0]]
        ]),
        "{out}"
    );
    bridge.stop().await;

    // The default `both` format and strict layout, discovered over mDNS (the
    // bridge's own advertisement, on loopback as `--oscquery-bind 127.0.0.1`
    // has it): the whole tree, every node accepted, and each `/norm` by path.
    let bridge = Bridge::start(OscFormat::Both).await;
    let mdns = oscquery::advertise("127.0.0.1".parse().expect("ip"), bridge.port).expect("mDNS on loopback");
    bridge
        .feed_all(vec![
            observation("46026", 40, &[(Field::WaveHeightM, 1.2)]),
            observation("46042", 50, &[(Field::WaveHeightM, 2.5)]),
        ])
        .await;
    let (_, root) = http_get(bridge.port, "/").await;
    let mut methods = Vec::new();
    check_node(&root, "/", &mut methods);
    let norms: Vec<String> = methods
        .iter()
        .filter(|path| path.starts_with("/buoy/") && path.matches('/').count() == 3)
        .filter(|path| !path.ends_with("/time") && !path.ends_with("/age"))
        .map(|path| format!("{path}/norm"))
        .collect();
    assert_eq!(norms.len(), 2 * 14);
    let mut paths = vec!["/".to_owned()];
    paths.extend(norms.iter().cloned());
    let out = tokio::task::spawn_blocking({
        let python = python.clone();
        move || run_python_client(&python, "discover", &paths)
    })
    .await
    .expect("task");
    let _ = mdns.shutdown();
    assert_eq!(out["service"]["name"], "buoycast-bridge._oscjson._tcp.local.", "{out}");
    assert_eq!(out["service"]["port"], bridge.port, "{out}");
    assert_eq!(out["service"]["addresses"], json!(["127.0.0.1"]), "{out}");
    assert_eq!(out["host"]["name"], "buoycast bridge");
    let nodes = out["nodes"]["/"]["ok"].as_array().unwrap_or_else(|| panic!("the whole tree: {out}"));
    let parsed_methods: Vec<&str> =
        nodes.iter().filter(|node| node[1] == 1).filter_map(|node| node[0].as_str()).collect();
    assert_eq!(parsed_methods, methods.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(parsed_methods.len(), 1 + 2 * (14 + 2));
    for node in nodes {
        let value = node[2].as_array();
        match node[1].as_u64() {
            Some(1) => assert!(value.is_some_and(|v| !v.is_empty()), "a method with VALUE: {node}"),
            Some(0) => assert!(node[2].is_null(), "a container without VALUE: {node}"),
            _ => panic!("ACCESS 0 or 1: {node}"),
        }
    }
    let wave = nodes.iter().find(|node| node[0] == "/buoy/46042/waveHeightM").expect("listed");
    assert_eq!(wave[2], json!([2.5]));
    for path in &norms {
        let node = &out["nodes"][path.as_str()]["ok"];
        assert_eq!(node[0][0], json!(path), "{path}: {node}");
        assert_eq!(node[0][1], 1, "{path}: read-only method");
        assert_eq!(node.as_array().map(Vec::len), Some(1), "{path}: a leaf");
    }
    assert_eq!(out["nodes"]["/buoy/46026/waveHeightM/norm"]["ok"][0][2], json!([0.12]));
    bridge.stop().await;

    // `--oscquery-layout nested`: python-oscquery's model has a node be a
    // container or a method, never both, so it refuses `/buoy/{id}/{field}`
    // with its `/norm` child (and so the whole tree); every leaf still reads.
    let bridge = Bridge::start_with(OscFormat::Both, OscQueryLayout::Nested).await;
    bridge.feed_all(vec![observation("46026", 40, &[(Field::WaveHeightM, 1.2)])]).await;
    let target = bridge.port.to_string();
    let paths = vec!["/".to_owned(), "/buoy/46026/waveHeightM".to_owned(), "/buoy/46026/age".to_owned()];
    let out =
        tokio::task::spawn_blocking(move || run_python_client(&python, &target, &paths)).await.expect("task");
    let refused =
        "A node can either have child nodes (for OSC containers) or values (for OSC methods), but not both.";
    assert_eq!(out["nodes"]["/"]["error"], refused, "{out}");
    assert_eq!(out["nodes"]["/buoy/46026/waveHeightM"]["error"], refused, "{out}");
    assert_eq!(out["nodes"]["/buoy/46026/age"]["ok"][0][0], "/buoy/46026/age", "{out}");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spectrum_sent_is_described_with_its_lists_and_values() {
    use buoycast::spectrum::{Band, Spectrum};
    let bridge = Bridge::start(OscFormat::Both).await;
    let spectrum = Spectrum {
        station_id: StationId::parse("41010").expect("id"),
        timestamp: Utc.with_ymd_and_hms(2020, 6, 8, 3, 50, 0).single().expect("time"),
        sep_freq_hz: Some(0.1),
        bands: [(0.05, 1.0, 200.0), (0.1, 4.0, 180.0), (0.2, 2.0, 90.0)]
            .into_iter()
            .map(|(freq_hz, density, alpha1)| Band {
                freq_hz,
                density: Some(density),
                alpha1: Some(alpha1),
                alpha2: None,
                r1: Some(0.5),
                r2: None,
            })
            .collect(),
    };
    let item = Item::from_spectrum(spectrum, Duration::ZERO, Utc::now());
    bridge.items.as_ref().expect("running").send(item).await.expect("pipeline running");
    let deadline = tokio::time::Instant::now() + WAIT;
    let density = loop {
        let (status, node) = http_get(bridge.port, "/buoy/41010/spectrum/density").await;
        if status == 200 {
            break node;
        }
        assert!(tokio::time::Instant::now() < deadline, "the spectrum never reached the namespace");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(density["TYPE"], "fff", "one float per band: {density}");
    assert_eq!(density["VALUE"], json!([1.0, 4.0, 2.0]));
    assert_eq!(density["ACCESS"], 1);
    let (_, alpha2) = http_get(bridge.port, "/buoy/41010/spectrum/alpha2?VALUE").await;
    assert_eq!(alpha2, json!({"VALUE": [-1.0, -1.0, -1.0]}), "missing bands keep their place");
    let (_, time) = http_get(bridge.port, "/buoy/41010/spectrum/time").await;
    assert_eq!((time["TYPE"].clone(), time["VALUE"].clone()), (json!("iiiii"), json!([2020, 6, 8, 3, 50])));
    // The whole tree stays valid: containers and methods only, each with VALUE.
    let (_, root) = http_get(bridge.port, "/").await;
    let mut methods = Vec::new();
    check_spectrum_tree(&root, &mut methods);
    assert!(methods.contains(&"/buoy/41010/spectrum/freqs".to_owned()), "{methods:?}");
    assert!(methods.contains(&"/buoy/41010/spectrum/peakFreqHz".to_owned()), "{methods:?}");
    bridge.stop().await;
}

/// Every method path of the tree, checking each node is a container or a
/// method (never both) and each method has as many VALUEs as TYPE letters.
fn check_spectrum_tree(node: &Value, methods: &mut Vec<String>) {
    match node.get("TYPE").and_then(Value::as_str) {
        Some(type_tag) => {
            assert!(node.get("CONTENTS").is_none(), "a method with children: {node}");
            assert_eq!(node["VALUE"].as_array().map(Vec::len), Some(type_tag.len()), "{node}");
            methods.push(node["FULL_PATH"].as_str().expect("FULL_PATH").to_owned());
        }
        None => {
            for child in node["CONTENTS"].as_object().expect("a container has CONTENTS").values() {
                check_spectrum_tree(child, methods);
            }
        }
    }
}
