//! Shared test helpers: fixture paths, a UDP OSC receiver, a throw-away
//! `redis-server`, and flag parsing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use buoycast_bridges::cli::Args;
use clap::Parser;
use rosc::{OscMessage, OscPacket};
use tokio::net::UdpSocket;

/// The fixture root: `BUOYCAST_FIXTURES` if set, else `../shared/fixtures/ndbc`
/// beside the workspace root.
pub fn fixture(relative: &str) -> PathBuf {
    let root = match std::env::var_os("BUOYCAST_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ndbc"),
    };
    let path = root.join(relative);
    assert!(path.is_file(), "fixture {} not found: set BUOYCAST_FIXTURES", path.display());
    path
}

/// The workspace root (for `examples/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Parses bridge flags as the binary would.
pub fn args(flags: &[&str]) -> Args {
    let args =
        Args::try_parse_from(std::iter::once("bridge").chain(flags.iter().copied())).expect("flags parse");
    args.validate().expect("flags are valid");
    args
}

/// A local port nobody listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A UDP socket receiving OSC.
pub struct OscReceiver {
    /// The socket.
    pub socket: UdpSocket,
}

impl OscReceiver {
    /// Binds 127.0.0.1 on a free port, with a 4 MiB receive buffer so a
    /// busy test machine does not lose datagrams in the kernel.
    pub async fn bind() -> OscReceiver {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
        let _ = socket.set_recv_buffer_size(4 << 20);
        socket.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        socket.bind(&addr.into()).expect("bind udp");
        let std_socket: std::net::UdpSocket = socket.into();
        OscReceiver { socket: UdpSocket::from_std(std_socket).expect("tokio socket") }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("addr")
    }

    /// The next packet, or None after `wait` of silence.
    pub async fn next(&self, wait: Duration) -> Option<OscPacket> {
        let mut buf = vec![0u8; 65536];
        let n = tokio::time::timeout(wait, self.socket.recv(&mut buf)).await.ok()?.expect("recv");
        let (_, packet) = rosc::decoder::decode_udp(&buf[..n]).expect("a valid OSC packet");
        Some(packet)
    }

    /// Every packet until `wait` of silence.
    pub async fn drain(&self, wait: Duration) -> Vec<OscPacket> {
        let mut packets = Vec::new();
        while let Some(packet) = self.next(wait).await {
            packets.push(packet);
        }
        packets
    }
}

/// The message inside a packet that is one.
pub fn message(packet: &OscPacket) -> &OscMessage {
    match packet {
        OscPacket::Message(message) => message,
        OscPacket::Bundle(bundle) => panic!("expected a message, got a bundle {bundle:?}"),
    }
}

/// A `redis-server` on a free port in a temp dir, killed on drop.
pub struct RedisServer {
    child: Child,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts it and waits until it answers PING.
    pub async fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let url = format!("redis://127.0.0.1:{port}");
        let server = RedisServer { child, url, _dir: dir };
        let client = redis::Client::open(server.url.as_str()).expect("url");
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not answer PING on {}", server.url);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
