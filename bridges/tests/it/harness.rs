//! Shared test helpers: fixture paths, a UDP OSC receiver, a throw-away
//! `redis-server`, and flag parsing.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use buoycast_bridges::cli::Args;
use clap::Parser;
use rosc::{OscMessage, OscPacket};
use tokio::net::UdpSocket;

/// One of the workspace's NDBC fixture files (`tests/fixtures/ndbc/`).
pub fn fixture(relative: &str) -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/ndbc")).join(relative);
    assert!(path.is_file(), "fixture {} not found", path.display());
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
    /// The receive buffer the kernel granted (bytes, as `SO_RCVBUF` reports
    /// it): it may be below the 4 MiB asked for when `rmem_max` caps it.
    pub recv_buffer: usize,
}

impl OscReceiver {
    /// Binds 127.0.0.1 on a free port, with a 4 MiB receive buffer so a
    /// busy test machine does not lose datagrams in the kernel.
    pub async fn bind() -> OscReceiver {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
        let _ = socket.set_recv_buffer_size(4 << 20);
        let recv_buffer = socket.recv_buffer_size().expect("SO_RCVBUF");
        socket.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        socket.bind(&addr.into()).expect("bind udp");
        let std_socket: std::net::UdpSocket = socket.into();
        OscReceiver { socket: UdpSocket::from_std(std_socket).expect("tokio socket"), recv_buffer }
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

    /// Receives on a thread of its own, so the code under test (which shares
    /// the test's runtime) cannot hold up the reads and make the kernel drop
    /// datagrams: packets until `n` have arrived or `deadline` has passed,
    /// then any more until `quiet` of silence, so that an extra packet shows
    /// up in the count too.
    pub fn collect_on_thread(
        self,
        n: usize,
        deadline: Duration,
        quiet: Duration,
    ) -> std::thread::JoinHandle<Vec<OscPacket>> {
        let socket = self.socket.into_std().expect("std socket");
        socket.set_nonblocking(false).expect("blocking");
        std::thread::spawn(move || {
            let give_up = Instant::now() + deadline;
            let mut buf = vec![0u8; 65536];
            let mut packets = Vec::new();
            loop {
                let wait =
                    if packets.len() < n { give_up.saturating_duration_since(Instant::now()) } else { quiet };
                if wait.is_zero() {
                    break;
                }
                socket.set_read_timeout(Some(wait)).expect("read timeout");
                match socket.recv(&mut buf) {
                    Ok(len) => {
                        let (_, packet) = rosc::decoder::decode_udp(&buf[..len]).expect("a valid OSC packet");
                        packets.push(packet);
                    }
                    Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break
                    }
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(error) => panic!("recv: {error}"),
                }
            }
            packets
        })
    }
}

/// The message inside a packet that is one.
pub fn message(packet: &OscPacket) -> &OscMessage {
    match packet {
        OscPacket::Message(message) => message,
        OscPacket::Bundle(bundle) => panic!("expected a message, got a bundle {bundle:?}"),
    }
}

/// The integration tests' throw-away `redis-server` (one spawner for the
/// workspace's tests and benches): free port, temp dir, optional AOF
/// persistence, killed by pid on drop.
#[allow(dead_code)] // the bridge's tests use part of it
#[path = "../../../tests/it/harness/redis.rs"]
mod redis_server;
pub use redis_server::{RedisOptions, RedisServer};
