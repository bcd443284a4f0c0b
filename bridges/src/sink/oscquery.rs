//! `--oscquery PORT`: the bridge's OSC address space as OSCQuery
//! (docs/AUDIO_CLIENTS.md, OSCQuery), growing as stations appear, advertised
//! over mDNS as `_oscjson._tcp`.
//!
//! - HTTP: the namespace as JSON (FULL_PATH, CONTENTS, TYPE, VALUE, RANGE,
//!   UNIT, DESCRIPTION, ACCESS), one attribute with `?VALUE`, `?TYPE`, …
//!   (several with `?VALUE&RANGE`), and `?HOST_INFO`. Every method node
//!   carries VALUE: the arguments last sent to that address, or one `null`
//!   per TYPE character before anything was (strict clients refuse a method
//!   without VALUE). Containers have ACCESS 0 and no VALUE.
//! - WebSocket, on the same port (an HTTP Upgrade): `LISTEN` / `IGNORE` an
//!   address (`{"COMMAND":"LISTEN","DATA":"/buoy/46026/waveHeightM"}`), then
//!   each new value of a listened address arrives as one binary OSC message;
//!   `PATH_ADDED` (text) when a station appears.
//!
//! The HTTP side is a tiny HTTP/1.1 responder on tokio (GET only, one
//! request per connection): the bridge must not link axum, and the namespace
//! is small. It is not a general web server.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use buoycast::observation::{Field, StationId};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rosc::{OscMessage, OscPacket, OscType};
use serde_json::{json, Map as JsonMap, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::cli::{OscFormat, OscQueryLayout};
use crate::mapping::Map;

/// ACCESS value of a container: no value.
const ACCESS_NONE: u8 = 0;

/// ACCESS value of a method: the bridge sends these (a client reads them).
const ACCESS_READ: u8 = 1;

/// The attributes a query may name (`/path?VALUE`); others are a 400.
const ATTRIBUTES: [&str; 14] = [
    "FULL_PATH",
    "CONTENTS",
    "TYPE",
    "VALUE",
    "RANGE",
    "UNIT",
    "ACCESS",
    "DESCRIPTION",
    "TAGS",
    "EXTENDED_TYPE",
    "CRITICAL",
    "CLIPMODE",
    "OVERLOADS",
    "HTML",
];

/// Events queued for WebSocket clients; a client further behind skips ahead.
const EVENT_QUEUE: usize = 1024;

/// How long one WebSocket client may take to accept a batch before it is dropped.
const WS_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Most addresses one WebSocket client may listen to.
const MAX_LISTENED: usize = 4096;

/// The largest WebSocket message accepted from a client (commands are tiny).
const MAX_WS_MESSAGE: usize = 64 * 1024;

/// The address space served, with each address's current value.
#[derive(Debug)]
pub struct Namespace {
    /// Prefix and ranges.
    map: Map,
    /// Which messages are sent.
    format: OscFormat,
    /// Whether a method lists the addresses below it (`/norm`).
    layout: OscQueryLayout,
    /// Where the bridge receives OSC (HOST_INFO's OSC_IP, OSC_PORT, OSC_TRANSPORT).
    control: RwLock<Option<SocketAddr>>,
    /// Stations seen and values sent.
    state: RwLock<State>,
    /// New values and PATH_ADDED, for the WebSocket clients.
    events: broadcast::Sender<Event>,
}

#[derive(Debug, Default)]
struct State {
    /// Stations seen so far.
    stations: BTreeSet<StationId>,
    /// Each address's arguments as last sent.
    values: HashMap<String, Vec<OscType>>,
}

/// What goes to every WebSocket client.
#[derive(Debug, Clone)]
enum Event {
    /// One observation's messages: each address with its encoded OSC message.
    Values(Arc<[(String, Bytes)]>),
    /// A JSON notification (PATH_ADDED).
    Text(Arc<str>),
}

impl Namespace {
    /// An empty namespace (no stations yet). `control` is where the bridge
    /// itself receives OSC (`--control`, UDP): HOST_INFO names it as OSC_IP,
    /// OSC_PORT and OSC_TRANSPORT, and leaves them out when it is `None`.
    pub fn new(map: Map, format: OscFormat, control: Option<SocketAddr>) -> Namespace {
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let layout = OscQueryLayout::Strict;
        Namespace { map, format, layout, control: RwLock::new(control), state: RwLock::default(), events }
    }

    /// The namespace listing `/norm` as `layout` says (strict by default).
    pub fn with_layout(mut self, layout: OscQueryLayout) -> Namespace {
        self.layout = layout;
        self
    }

    /// Sets where the bridge receives OSC (the control port, once bound);
    /// `None` drops OSC_IP, OSC_PORT and OSC_TRANSPORT from HOST_INFO.
    pub fn set_control(&self, control: Option<SocketAddr>) {
        *self.control.write().unwrap_or_else(PoisonError::into_inner) = control;
    }

    /// Where the bridge receives OSC, if HOST_INFO names it.
    pub fn control(&self) -> Option<SocketAddr> {
        *self.control.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a station without values; true when it is new (then
    /// PATH_ADDED goes to the WebSocket clients).
    pub fn add_station(&self, station: &StationId) -> bool {
        self.record(station, &[])
    }

    /// Records what the pipeline sent for a station: the OSC messages the
    /// destinations got (so VALUE and the WebSocket stream are exactly
    /// that). Listened addresses go to their WebSocket clients. True when
    /// the station is new (then PATH_ADDED goes out).
    pub fn record(&self, station: &StationId, messages: &[OscMessage]) -> bool {
        let (new, first) = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            let new = state.stations.insert(station.clone());
            for message in messages {
                state.values.insert(message.addr.clone(), message.args.clone());
            }
            (new, new && state.stations.len() == 1)
        };
        if new {
            self.announce(station, first);
        }
        if self.events.receiver_count() > 0 && !messages.is_empty() {
            let encoded: Vec<(String, Bytes)> = messages
                .iter()
                .filter_map(|message| {
                    let bytes = rosc::encoder::encode(&OscPacket::Message(message.clone())).ok()?;
                    Some((message.addr.clone(), Bytes::from(bytes)))
                })
                .collect();
            let _ = self.events.send(Event::Values(encoded.into()));
        }
        new
    }

    /// PATH_ADDED for a new station: DATA is the path of the topmost node
    /// that did not exist before (the prefix's first container for the first
    /// station, else the station's container), and that node's attributes
    /// (FULL_PATH, CONTENTS, …) come alongside, as a query of it returns them.
    fn announce(&self, station: &StationId, first: bool) {
        if !self.has_fields() || self.events.receiver_count() == 0 {
            return;
        }
        let base = format!("{}/{}", self.map.prefix, station);
        let top = match self.map.prefix.split('/').find(|s| !s.is_empty()) {
            Some(segment) if first => format!("/{segment}"),
            _ => base,
        };
        let mut message = JsonMap::new();
        message.insert("COMMAND".into(), json!("PATH_ADDED"));
        message.insert("DATA".into(), json!(top));
        if let Some(Value::Object(node)) = self.node(&top) {
            for (key, value) in node {
                message.entry(key).or_insert(value);
            }
        }
        let _ = self.events.send(Event::Text(Value::Object(message).to_string().into()));
        tracing::debug!(path = %top, "oscquery: PATH_ADDED");
    }

    fn has_fields(&self) -> bool {
        matches!(self.format, OscFormat::Both | OscFormat::Fields)
    }

    /// `?HOST_INFO`.
    pub fn host_info(&self) -> Value {
        self.host_info_at(None)
    }

    /// `?HOST_INFO` asked on a connection to `local` (this server's address
    /// as the client reached it): WS_IP and WS_PORT name it.
    fn host_info_at(&self, local: Option<SocketAddr>) -> Value {
        let mut info = JsonMap::new();
        info.insert("NAME".into(), json!("buoycast bridge"));
        info.insert(
            "EXTENSIONS".into(),
            json!({
                "ACCESS": true, "VALUE": true, "RANGE": true, "DESCRIPTION": true, "UNIT": true,
                "TAGS": false, "EXTENDED_TYPE": false, "CRITICAL": false, "CLIPMODE": false,
                "OVERLOADS": false, "HTML": false,
                "LISTEN": true, "PATH_ADDED": true,
                "PATH_CHANGED": false, "PATH_REMOVED": false, "PATH_RENAMED": false
            }),
        );
        if let Some(control) = self.control() {
            info.insert("OSC_IP".into(), json!(control.ip().to_canonical().to_string()));
            info.insert("OSC_PORT".into(), json!(control.port()));
            info.insert("OSC_TRANSPORT".into(), json!("UDP"));
        }
        if let Some(local) = local {
            info.insert("WS_IP".into(), json!(local.ip().to_canonical().to_string()));
            info.insert("WS_PORT".into(), json!(local.port()));
        }
        Value::Object(info)
    }

    /// The whole tree, every address in it, `/norm` under its field.
    fn tree(&self) -> Value {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut root = container("/", "buoycast observations");
        let add = |root: &mut Value, path: &str, type_tag: &str, attributes: Value| {
            insert(root, path, method(&state, path, type_tag, attributes));
        };
        if matches!(self.format, OscFormat::Both | OscFormat::Observation) {
            add(
                &mut root,
                "/observation",
                "ssffiff",
                json!({
                    "DESCRIPTION": "stationId, timestamp, waveHeightM (-1 if null), windSpeedMps (-1), windDirDeg (-1), waterTempC (-999), pressureHpa (-1)",
                    "UNIT": ["", "", "m", "m/s", "deg", "degC", "hPa"]
                }),
            );
        }
        if self.has_fields() && !state.stations.is_empty() {
            // Every spectrum address sent, sorted (one pass over the values).
            let spectrum_values: std::collections::BTreeMap<&str, &Vec<OscType>> = state
                .values
                .iter()
                .filter(|(path, _)| path.contains("/spectrum/"))
                .map(|(path, args)| (path.as_str(), args))
                .collect();
            for station in &state.stations {
                let base = format!("{}/{}", self.map.prefix, station);
                for field in Field::ALL {
                    let m = self.map.field(field);
                    if !m.enabled {
                        continue;
                    }
                    add(
                        &mut root,
                        &format!("{base}/{field}"),
                        "f",
                        json!({
                            "RANGE": [{"MIN": m.min, "MAX": m.max}],
                            "UNIT": [field.unit()],
                            "DESCRIPTION": format!("{field} at station {station}, in {}; {base}/{field}/norm carries it 0..1", field.unit()),
                        }),
                    );
                    add(
                        &mut root,
                        &format!("{base}/{field}/norm"),
                        "f",
                        json!({
                            "RANGE": [{"MIN": 0.0, "MAX": 1.0}],
                            "DESCRIPTION": format!("{field} at station {station}, 0..1 over {}..{} {} ({} curve{})", m.min, m.max, field.unit(), m.curve.name(), if m.invert { ", inverted" } else { "" }),
                        }),
                    );
                }
                add(
                    &mut root,
                    &format!("{base}/time"),
                    "iiiii",
                    json!({
                        "DESCRIPTION": format!("observation time at station {station} (UTC): year, month, day, hour, minute"),
                    }),
                );
                add(
                    &mut root,
                    &format!("{base}/age"),
                    "f",
                    json!({
                        "UNIT": ["s"],
                        "DESCRIPTION": format!("seconds since the observation at station {station}, when it was sent"),
                    }),
                );
                // A wave spectrum's addresses, once one was sent (each list
                // as long as the spectrum's bands).
                let spectrum = format!("{base}/spectrum/");
                let sent = spectrum_values
                    .range(spectrum.as_str()..)
                    .take_while(|(path, _)| path.starts_with(spectrum.as_str()));
                for (path, args) in sent {
                    let type_tag: String = args
                        .iter()
                        .map(|arg| if matches!(arg, OscType::Int(_)) { 'i' } else { 'f' })
                        .collect();
                    let name = &path[spectrum.len()..];
                    add(
                        &mut root,
                        path,
                        &type_tag,
                        json!({"DESCRIPTION": format!("wave spectrum of station {station}: {name} (docs/REFERENCE.md, OSC address space)")}),
                    );
                }
                describe(
                    &mut root,
                    &format!("{base}/spectrum"),
                    &format!("wave spectrum of station {station}"),
                );
                describe(&mut root, &base, &format!("station {station}"));
            }
            describe(&mut root, &self.map.prefix, "one container per station, added as stations appear");
        }
        root
    }

    /// The node at `path`, if any, as the layout lists it: in the strict
    /// layout a method lists no children (they are still found by path).
    pub fn node(&self, path: &str) -> Option<Value> {
        let mut node = self.tree();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            node = node.get_mut("CONTENTS")?.get_mut(segment)?.take();
        }
        if self.layout == OscQueryLayout::Strict {
            unlist_below_methods(&mut node);
        }
        Some(node)
    }
}

/// Removes CONTENTS from every method node under (and at) `node`, so each
/// node is either a container or a method, as OSC 1.0's address space has it
/// (strict OSCQuery clients refuse a node that is both).
fn unlist_below_methods(node: &mut Value) {
    let Some(object) = node.as_object_mut() else { return };
    if object.contains_key("TYPE") {
        object.remove("CONTENTS");
    } else if let Some(Value::Object(contents)) = object.get_mut("CONTENTS") {
        contents.values_mut().for_each(unlist_below_methods);
    }
}

/// A method node: `attributes` plus TYPE, ACCESS (read) and VALUE.
fn method(state: &State, path: &str, type_tag: &str, mut attributes: Value) -> Value {
    if let Some(object) = attributes.as_object_mut() {
        object.insert("TYPE".into(), json!(type_tag));
        object.insert("ACCESS".into(), json!(ACCESS_READ));
        object.insert("VALUE".into(), value(state.values.get(path), type_tag));
    }
    attributes
}

/// VALUE: the arguments last sent, or one `null` (OSC nil) per TYPE
/// character while none were (or when they do not match TYPE).
fn value(sent: Option<&Vec<OscType>>, type_tag: &str) -> Value {
    let arity = type_tag.chars().filter(|c| !matches!(c, '[' | ']')).count();
    match sent {
        Some(args) if args.len() == arity => Value::Array(args.iter().map(osc_to_json).collect()),
        _ => Value::Array(vec![Value::Null; arity]),
    }
}

/// An OSC argument as JSON: numbers (a float32 at its shortest decimal),
/// strings, booleans; nil, NaN and the infinities are `null`.
fn osc_to_json(arg: &OscType) -> Value {
    match arg {
        OscType::Float(x) if x.is_finite() => json!(x.to_string().parse::<f64>().unwrap_or(f64::from(*x))),
        OscType::Double(x) if x.is_finite() => json!(x),
        OscType::Int(i) => json!(i),
        OscType::Long(i) => json!(i),
        OscType::String(s) => json!(s),
        OscType::Bool(b) => json!(b),
        _ => Value::Null,
    }
}

fn container(full_path: &str, description: &str) -> Value {
    json!({"FULL_PATH": full_path, "ACCESS": ACCESS_NONE, "DESCRIPTION": description, "CONTENTS": {}})
}

/// Sets the DESCRIPTION of the node at `path` (a container made by [`insert`]).
fn describe(root: &mut Value, path: &str, description: &str) {
    let mut node = root;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let Some(child) = node.get_mut("CONTENTS").and_then(|contents| contents.get_mut(segment)) else {
            return;
        };
        node = child;
    }
    if let Some(object) = node.as_object_mut() {
        object.insert("DESCRIPTION".into(), json!(description));
    }
}

fn insert(root: &mut Value, path: &str, mut leaf: Value) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut node = root;
    let mut full = String::new();
    for (i, segment) in segments.iter().enumerate() {
        full.push('/');
        full.push_str(segment);
        let Some(contents) = node
            .as_object_mut()
            .map(|object| object.entry("CONTENTS").or_insert_with(|| Value::Object(JsonMap::new())))
        else {
            return;
        };
        let Some(contents) = contents.as_object_mut() else { return };
        let child = contents.entry(segment.to_string()).or_insert_with(|| container(&full, ""));
        if i + 1 == segments.len() {
            if let (Some(child), Some(leaf)) = (child.as_object_mut(), leaf.as_object_mut()) {
                child.remove("DESCRIPTION");
                child.insert("FULL_PATH".into(), json!(full));
                for (key, value) in std::mem::take(leaf) {
                    child.insert(key, value);
                }
                if child.get("CONTENTS").and_then(|c| c.as_object()).is_some_and(|c| c.is_empty()) {
                    child.remove("CONTENTS");
                }
            }
            return;
        }
        node = child;
    }
}

/// Answers one HTTP request.
pub fn respond(namespace: &Namespace, target: &str) -> (u16, Value) {
    respond_at(namespace, target, None)
}

/// [`respond`] on a connection to `local` (for HOST_INFO's WS_IP and WS_PORT).
fn respond_at(namespace: &Namespace, target: &str, local: Option<SocketAddr>) -> (u16, Value) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if query == "HOST_INFO" {
        return (200, namespace.host_info_at(local));
    }
    let Some(node) = namespace.node(path) else {
        return (404, json!({"error": format!("no such OSC path {path:?}")}));
    };
    if query.is_empty() {
        return (200, node);
    }
    let mut reply = JsonMap::new();
    for attribute in query.split('&').map(|a| a.split_once('=').map_or(a, |(name, _)| name)) {
        if !ATTRIBUTES.contains(&attribute) {
            return (400, json!({"error": format!("unknown attribute {attribute:?}")}));
        }
        if let Some(value) = node.get(attribute) {
            reply.insert(attribute.to_owned(), value.clone());
        }
    }
    if reply.is_empty() {
        (204, Value::Null)
    } else {
        (200, Value::Object(reply))
    }
}

/// Serves OSCQuery (HTTP and WebSocket) on `listener` until cancelled.
pub async fn serve(listener: TcpListener, namespace: Arc<Namespace>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let namespace = namespace.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(error) = handle(stream, &namespace, shutdown).await {
                        tracing::debug!(error = %error, "oscquery: request failed");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(error = %error, "oscquery: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(
    mut stream: TcpStream,
    namespace: &Namespace,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let local = stream.local_addr().ok();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head timed out"))??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > 16 * 1024 {
            return write_response(&mut stream, 431, &json!({"error": "request head too large"}), true).await;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut parts = lines.next().unwrap_or_default().split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or("/"));
    let headers: Vec<(String, &str)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, value)| *value);
    if method == "GET" && header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
        let Some(key) = header("sec-websocket-key") else {
            return write_response(&mut stream, 400, &json!({"error": "no Sec-WebSocket-Key"}), true).await;
        };
        let accept = derive_accept_key(key.as_bytes());
        let upgrade = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        stream.write_all(upgrade.as_bytes()).await?;
        // Frames the client sent right after its request head.
        let early = buf[head_end + 4..].to_vec();
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_WS_MESSAGE))
            .max_frame_size(Some(MAX_WS_MESSAGE));
        let ws = WebSocketStream::from_partially_read(stream, early, Role::Server, Some(config)).await;
        return websocket(ws, namespace, shutdown).await;
    }
    if method != "GET" && method != "HEAD" {
        return write_response(&mut stream, 405, &json!({"error": "only GET"}), true).await;
    }
    let (status, body) = respond_at(namespace, target, local);
    write_response(&mut stream, status, &body, method == "GET").await
}

/// One WebSocket client: LISTEN / IGNORE commands in, the listened
/// addresses' new values (binary OSC) and PATH_ADDED (text) out.
async fn websocket(
    ws: WebSocketStream<TcpStream>,
    namespace: &Namespace,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut events = namespace.events.subscribe();
    let (mut outgoing, mut incoming) = ws.split();
    let mut listening: HashSet<String> = HashSet::new();
    loop {
        let batch: Vec<Message> = tokio::select! {
            () = shutdown.cancelled() => {
                let _ = tokio::time::timeout(WS_SEND_TIMEOUT, outgoing.send(Message::Close(None))).await;
                return Ok(());
            }
            received = incoming.next() => match received {
                None | Some(Ok(Message::Close(_))) => {
                    // Completes the closing handshake (tungstenite queued the reply).
                    let _ = tokio::time::timeout(WS_SEND_TIMEOUT, outgoing.close()).await;
                    return Ok(());
                }
                Some(Err(error)) => return Err(std::io::Error::other(error)),
                Some(Ok(Message::Text(text))) => {
                    command(&mut listening, text.as_str());
                    Vec::new()
                }
                // Pings are answered by tungstenite; nothing here is settable.
                Some(Ok(_)) => Vec::new(),
            },
            event = events.recv() => match event {
                Ok(Event::Values(values)) => values
                    .iter()
                    .filter(|(address, _)| listening.contains(address))
                    .map(|(_, bytes)| Message::Binary(bytes.clone()))
                    .collect(),
                Ok(Event::Text(text)) => vec![Message::text(text.as_ref())],
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::debug!(skipped, "oscquery: a WebSocket client fell behind; skipping ahead");
                    Vec::new()
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        };
        if batch.is_empty() {
            continue;
        }
        let sent = tokio::time::timeout(WS_SEND_TIMEOUT, async {
            for message in batch {
                outgoing.feed(message).await?;
            }
            outgoing.flush().await
        })
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(std::io::Error::other(error)),
            Err(_) => {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "WebSocket client not reading"))
            }
        }
    }
}

/// A client's JSON command: `LISTEN` or `IGNORE` with the address as DATA.
fn command(listening: &mut HashSet<String>, text: &str) {
    let Ok(command) = serde_json::from_str::<Value>(text) else {
        tracing::debug!(text, "oscquery: WebSocket text is not JSON; ignored");
        return;
    };
    let path = command.get("DATA").and_then(Value::as_str);
    match (command.get("COMMAND").and_then(Value::as_str), path) {
        (Some("LISTEN"), Some(path)) if listening.len() < MAX_LISTENED => {
            listening.insert(path.to_owned());
        }
        (Some("IGNORE"), Some(path)) => {
            listening.remove(path);
        }
        _ => tracing::debug!(text, "oscquery: WebSocket command ignored"),
    }
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    body: &Value,
    with_body: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let body = if status == 204 { String::new() } else { body.to_string() };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// Advertises the OSCQuery server as `_oscjson._tcp` over mDNS on the
/// interfaces it listens on: loopback only for 127.0.0.1 (the default: the
/// announcement stays on this machine), that interface for one address,
/// every interface (loopback included) for 0.0.0.0. A failure is a warning:
/// the HTTP side works without it.
pub fn advertise(bind: IpAddr, port: u16) -> Option<mdns_sd::ServiceDaemon> {
    use mdns_sd::IfKind;
    let result = (|| -> Result<mdns_sd::ServiceDaemon, mdns_sd::Error> {
        let daemon = mdns_sd::ServiceDaemon::new()?;
        if bind.is_loopback() {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(if bind.is_ipv4() { IfKind::LoopbackV4 } else { IfKind::LoopbackV6 })?;
        } else if bind.is_unspecified() {
            daemon.enable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
        } else {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(IfKind::Addr(bind))?;
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "buoycast-bridge".into());
        let info = mdns_sd::ServiceInfo::new(
            "_oscjson._tcp.local.",
            "buoycast-bridge",
            &format!("{host}.local."),
            "",
            port,
            None::<std::collections::HashMap<String, String>>,
        )?
        .enable_addr_auto();
        daemon.register(info)?;
        Ok(daemon)
    })();
    match result {
        Ok(daemon) => {
            tracing::info!(port, %bind, "oscquery: advertised as _oscjson._tcp");
            Some(daemon)
        }
        Err(error) => {
            tracing::warn!(error = %error, "oscquery: mDNS advertisement failed; the HTTP server still answers");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_type_arity() {
        assert_eq!(value(None, "iiiii"), json!([null, null, null, null, null]));
        assert_eq!(value(Some(&vec![OscType::Float(1.2)]), "f"), json!([1.2]));
        assert_eq!(value(Some(&vec![OscType::Nil]), "f"), json!([null]));
        assert_eq!(value(Some(&vec![OscType::Float(f32::NAN)]), "f"), json!([null]));
        assert_eq!(value(Some(&vec![OscType::Float(1.0), OscType::Float(2.0)]), "f"), json!([null]));
    }

    #[test]
    fn commands_listen_and_ignore() {
        let mut listening = HashSet::new();
        command(&mut listening, r#"{"COMMAND":"LISTEN","DATA":"/buoy/46026/waveHeightM"}"#);
        command(&mut listening, r#"{"COMMAND":"LISTEN","DATA":"/buoy/46026/age"}"#);
        command(&mut listening, r#"{"COMMAND":"IGNORE","DATA":"/buoy/46026/age"}"#);
        command(&mut listening, "not json");
        command(&mut listening, r#"{"COMMAND":"LISTEN"}"#);
        assert_eq!(listening, HashSet::from(["/buoy/46026/waveHeightM".to_owned()]));
    }
}
