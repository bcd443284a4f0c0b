//! `--oscquery PORT`: the bridge's OSC address space as OSCQuery JSON over
//! HTTP (FULL_PATH, CONTENTS, TYPE, RANGE, UNIT, DESCRIPTION, ACCESS, and
//! `?HOST_INFO`), growing as stations appear, advertised over mDNS as
//! `_oscjson._tcp`.
//!
//! The HTTP side is a tiny HTTP/1.1 responder on tokio (GET only, one
//! request per connection): the bridge must not link axum, and the namespace
//! is small. It is not a general web server.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use buoycast::observation::{Field, StationId};
use serde_json::{json, Map as JsonMap, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::cli::OscFormat;
use crate::mapping::Map;

/// ACCESS value: the bridge sends these (a client reads them).
const ACCESS_READ: u8 = 1;

/// The address space served.
#[derive(Debug)]
pub struct Namespace {
    /// Prefix and ranges.
    map: Map,
    /// Which messages are sent.
    format: OscFormat,
    /// Stations seen so far.
    stations: RwLock<BTreeSet<StationId>>,
    /// HOST_INFO's OSC_PORT and OSC_TRANSPORT (the first OSC destination).
    osc_port: Option<(u16, &'static str)>,
}

impl Namespace {
    /// An empty namespace (no stations yet).
    pub fn new(map: Map, format: OscFormat, osc_port: Option<(u16, &'static str)>) -> Namespace {
        Namespace { map, format, stations: RwLock::new(BTreeSet::new()), osc_port }
    }

    /// Records a station; true when it is new.
    pub fn add_station(&self, station: &StationId) -> bool {
        if self.stations.read().is_ok_and(|s| s.contains(station)) {
            return false;
        }
        self.stations.write().map(|mut s| s.insert(station.clone())).unwrap_or(false)
    }

    /// `?HOST_INFO`.
    pub fn host_info(&self) -> Value {
        let mut info = json!({
            "NAME": "buoycast bridge",
            "EXTENSIONS": {
                "ACCESS": true, "VALUE": false, "RANGE": true, "DESCRIPTION": true, "TAGS": false,
                "EXTENDED_TYPE": false, "UNIT": true, "CRITICAL": false, "CLIPMODE": false,
                "LISTEN": false, "PATH_CHANGED": false
            }
        });
        if let (Some((port, transport)), Some(object)) = (self.osc_port, info.as_object_mut()) {
            object.insert("OSC_PORT".into(), json!(port));
            object.insert("OSC_TRANSPORT".into(), json!(transport));
        }
        info
    }

    /// The whole tree (the node of `/`).
    pub fn tree(&self) -> Value {
        let mut root = container("/", "buoycast observations");
        if matches!(self.format, OscFormat::Both | OscFormat::Observation) {
            insert(
                &mut root,
                "/observation",
                json!({
                    "TYPE": "ssffiff",
                    "DESCRIPTION": "stationId, timestamp, waveHeightM (-1 if null), windSpeedMps (-1), windDirDeg (-1), waterTempC (-999), pressureHpa (-1)",
                    "UNIT": ["", "", "m", "m/s", "deg", "degC", "hPa"],
                    "ACCESS": ACCESS_READ
                }),
            );
        }
        if matches!(self.format, OscFormat::Both | OscFormat::Fields) {
            let stations: Vec<StationId> =
                self.stations.read().map(|s| s.iter().cloned().collect()).unwrap_or_default();
            for station in stations {
                let base = format!("{}/{}", self.map.prefix, station);
                for field in Field::ALL {
                    let m = self.map.field(field);
                    insert(
                        &mut root,
                        &format!("{base}/{field}"),
                        json!({
                            "TYPE": "f",
                            "RANGE": [{"MIN": m.min, "MAX": m.max}],
                            "UNIT": [field.unit()],
                            "DESCRIPTION": format!("{field} at station {station}, in {}", field.unit()),
                            "ACCESS": ACCESS_READ
                        }),
                    );
                    insert(
                        &mut root,
                        &format!("{base}/{field}/norm"),
                        json!({
                            "TYPE": "f",
                            "RANGE": [{"MIN": 0.0, "MAX": 1.0}],
                            "DESCRIPTION": format!("{field} at station {station}, 0..1 over {}..{} {} ({} curve{})", m.min, m.max, field.unit(), m.curve.name(), if m.invert { ", inverted" } else { "" }),
                            "ACCESS": ACCESS_READ
                        }),
                    );
                }
                insert(
                    &mut root,
                    &format!("{base}/time"),
                    json!({
                        "TYPE": "iiiii",
                        "DESCRIPTION": format!("observation time at station {station} (UTC): year, month, day, hour, minute"),
                        "ACCESS": ACCESS_READ
                    }),
                );
                insert(
                    &mut root,
                    &format!("{base}/age"),
                    json!({
                        "TYPE": "f",
                        "UNIT": ["s"],
                        "DESCRIPTION": format!("seconds since the observation at station {station}"),
                        "ACCESS": ACCESS_READ
                    }),
                );
            }
        }
        root
    }

    /// The node at `path`, if any.
    pub fn node(&self, path: &str) -> Option<Value> {
        let mut node = self.tree();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            node = node.get_mut("CONTENTS")?.get_mut(segment)?.take();
        }
        Some(node)
    }
}

fn container(full_path: &str, description: &str) -> Value {
    json!({"FULL_PATH": full_path, "ACCESS": 0, "DESCRIPTION": description, "CONTENTS": {}})
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
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if query == "HOST_INFO" {
        return (200, namespace.host_info());
    }
    match namespace.node(path) {
        None => (404, json!({"error": format!("no such OSC path {path:?}")})),
        Some(node) if query.is_empty() => (200, node),
        Some(node) => match node.get(query) {
            Some(value) => (200, json!({ query: value })),
            None => (204, Value::Null),
        },
    }
}

/// Serves OSCQuery on `listener` until cancelled.
pub async fn serve(listener: TcpListener, namespace: Arc<Namespace>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let namespace = namespace.clone();
                tokio::spawn(async move {
                    if let Err(error) = handle(stream, &namespace).await {
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

async fn handle(mut stream: TcpStream, namespace: &Namespace) -> std::io::Result<()> {
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
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or("/"));
    if method != "GET" && method != "HEAD" {
        return write_response(&mut stream, 405, &json!({"error": "only GET"}), true).await;
    }
    let (status, body) = respond(namespace, target);
    write_response(&mut stream, status, &body, method == "GET").await
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
        404 => "Not Found",
        405 => "Method Not Allowed",
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

/// Advertises the OSCQuery server as `_oscjson._tcp` over mDNS. A failure
/// is a warning: the HTTP side works without it.
pub fn advertise(port: u16) -> Option<mdns_sd::ServiceDaemon> {
    let result = (|| -> Result<mdns_sd::ServiceDaemon, mdns_sd::Error> {
        let daemon = mdns_sd::ServiceDaemon::new()?;
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
            tracing::info!(port, "oscquery: advertised as _oscjson._tcp");
            Some(daemon)
        }
        Err(error) => {
            tracing::warn!(error = %error, "oscquery: mDNS advertisement failed; the HTTP server still answers");
            None
        }
    }
}
