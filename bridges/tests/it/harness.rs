//! Shared test helpers: fixture paths, a UDP OSC receiver, a throw-away
//! `redis-server`, and flag parsing.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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

/// A `redis-server` on a free port in a temp dir, killed on drop.
pub struct RedisServer {
    child: Child,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    persistent: bool,
    _dir: tempfile::TempDir,
}

fn spawn_redis(port: u16, dir: &std::path::Path, persistent: bool) -> Child {
    let appendonly = if persistent {
        ["--appendonly", "yes", "--appendfsync", "always"]
    } else {
        ["--appendonly", "no", "--appendfsync", "everysec"]
    };
    Command::new("redis-server")
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", ""])
        .args(appendonly)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed")
}

impl RedisServer {
    /// Starts it and waits until it answers PING, as itself: a free port can
    /// be taken by someone else (another test's server) between
    /// [`free_port`] and the server's bind, and then the PING would be
    /// answered by that other server while ours exits. So the server must
    /// still be running and report our child's process id; if it exited,
    /// start over on another port.
    pub async fn start() -> RedisServer {
        RedisServer::start_with(false).await
    }

    /// [`RedisServer::start`]; `persistent` keeps an append-only file synced
    /// on every write, so a [`RedisServer::restart`] keeps the data.
    pub async fn start_with(persistent: bool) -> RedisServer {
        const ATTEMPTS: usize = 5;
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let child = spawn_redis(port, dir.path(), persistent);
            let url = format!("redis://127.0.0.1:{port}");
            let mut server = RedisServer { child, url, port, persistent, _dir: dir };
            match server.wait_until_it_answers(Duration::from_secs(20)).await {
                Ok(()) => return server,
                Err(failure) => failures.push(format!("{}: {failure}", server.url)),
            }
        }
        panic!("redis-server did not start in {ATTEMPTS} attempts: {failures:?}");
    }

    /// Kills the server and starts it again on the same port and directory
    /// (with its data when it is persistent).
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_redis(self.port, self._dir.path(), self.persistent);
        self.wait_until_it_answers(Duration::from_secs(20)).await.expect("redis-server restarts on its port");
    }

    /// Ok once this server (its pid) answers; Err if it exited or `deadline` passed.
    async fn wait_until_it_answers(&mut self, deadline: Duration) -> Result<(), String> {
        let client = redis::Client::open(self.url.as_str()).expect("url");
        let pid = self.child.id();
        let give_up = Instant::now() + deadline;
        let mut answered_by = None;
        while Instant::now() < give_up {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("exited ({status}; port taken?)"));
            }
            let info = tokio::time::timeout(Duration::from_secs(2), async {
                let mut conn = client.get_multiplexed_async_connection().await?;
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                redis::cmd("INFO").arg("server").query_async::<String>(&mut conn).await
            })
            .await;
            if let Ok(Ok(info)) = info {
                let answering: Option<u32> =
                    info.lines().find_map(|line| line.trim().strip_prefix("process_id:")?.parse().ok());
                if answering == Some(pid) {
                    return Ok(());
                }
                answered_by = answering;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("no answer from pid {pid} within {deadline:?} (last answer from pid {answered_by:?})"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
