//! OSC transports: UDP datagrams (`--osc`) and TCP with SLIP framing
//! (`--osc-tcp`, OSC 1.1). One task per destination.
//!
//! Frames arrive already encoded (the pipeline encodes an observation once
//! for every destination); this module only moves bytes, logs failures at
//! most once per few seconds, and reconnects.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::osc::slip_encode;
use crate::source::{Backoff, LogThrottle};

/// One observation's OSC datagrams, shared by every destination.
pub type Frame = Arc<Vec<Bytes>>;

/// How often a failing destination may log.
const LOG_PERIOD: Duration = Duration::from_secs(5);

async fn resolve(target: &str) -> std::io::Result<SocketAddr> {
    tokio::net::lookup_host(target).await?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("{target} resolves to nothing"))
    })
}

/// Sends each frame's datagrams to `target` until the queue closes.
pub async fn run_udp(target: String, mut frames_rx: mpsc::Receiver<Frame>, healthy: Arc<AtomicBool>) {
    let mut log_limit = LogThrottle::new(LOG_PERIOD);
    let mut socket: Option<(UdpSocket, SocketAddr)> = None;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let mut retry_at = tokio::time::Instant::now();
    while let Some(frame) = frames_rx.recv().await {
        if socket.is_none() && tokio::time::Instant::now() >= retry_at {
            match open_udp(&target).await {
                Ok(opened) => {
                    backoff.reset();
                    socket = Some(opened);
                }
                Err(error) => {
                    retry_at = tokio::time::Instant::now() + backoff.next_delay();
                    healthy.store(false, Ordering::Relaxed);
                    if let Some(suppressed) = log_limit.check() {
                        tracing::warn!(target = %target, error = %error, suppressed, "osc udp: cannot open, retrying");
                    }
                }
            }
        }
        let Some((udp, addr)) = &socket else { continue };
        let mut ok = true;
        for datagram in frame.iter() {
            if let Err(error) = udp.send_to(datagram, addr).await {
                ok = false;
                if let Some(suppressed) = log_limit.check() {
                    tracing::warn!(target = %target, error = %error, suppressed, "osc udp: send failed");
                }
            }
        }
        healthy.store(ok, Ordering::Relaxed);
    }
}

async fn open_udp(target: &str) -> std::io::Result<(UdpSocket, SocketAddr)> {
    let addr = resolve(target).await?;
    let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).await?;
    Ok((socket, addr))
}

/// Sends each frame SLIP-framed over TCP to `target` until the queue closes,
/// reconnecting (with backoff) after a failure; frames that arrive while it
/// is down are dropped, the receiver holding its last values.
pub async fn run_tcp(target: String, mut frames_rx: mpsc::Receiver<Frame>, healthy: Arc<AtomicBool>) {
    let mut log_limit = LogThrottle::new(LOG_PERIOD);
    let mut stream: Option<TcpStream> = None;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let mut retry_at = tokio::time::Instant::now();
    let mut buf = Vec::with_capacity(4096);
    while let Some(frame) = frames_rx.recv().await {
        if stream.is_none() && tokio::time::Instant::now() >= retry_at {
            let connected = async {
                let addr = resolve(&target).await?;
                let stream =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await.map_err(
                        |_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
                    )??;
                stream.set_nodelay(true)?;
                Ok::<_, std::io::Error>(stream)
            }
            .await;
            match connected {
                Ok(connected) => {
                    tracing::info!(target = %target, "osc tcp: connected");
                    backoff.reset();
                    stream = Some(connected);
                }
                Err(error) => {
                    retry_at = tokio::time::Instant::now() + backoff.next_delay();
                    if let Some(suppressed) = log_limit.check() {
                        tracing::warn!(target = %target, error = %error, suppressed, "osc tcp: cannot connect, retrying");
                    }
                }
            }
        }
        let Some(connection) = stream.as_mut() else {
            healthy.store(false, Ordering::Relaxed);
            continue;
        };
        buf.clear();
        for datagram in frame.iter() {
            slip_encode(datagram, &mut buf);
        }
        let written = tokio::time::timeout(Duration::from_secs(2), connection.write_all(&buf)).await;
        match written {
            Ok(Ok(())) => healthy.store(true, Ordering::Relaxed),
            Ok(Err(error)) => {
                drop_connection(&mut stream, &healthy, &mut retry_at, &mut backoff);
                if let Some(suppressed) = log_limit.check() {
                    tracing::warn!(target = %target, error = %error, suppressed, "osc tcp: send failed, reconnecting");
                }
            }
            Err(_) => {
                drop_connection(&mut stream, &healthy, &mut retry_at, &mut backoff);
                if let Some(suppressed) = log_limit.check() {
                    tracing::warn!(target = %target, suppressed, "osc tcp: receiver stalled, reconnecting");
                }
            }
        }
    }
    if let Some(mut connection) = stream {
        let _ = tokio::time::timeout(Duration::from_secs(1), connection.shutdown()).await;
    }
}

fn drop_connection(
    stream: &mut Option<TcpStream>,
    healthy: &AtomicBool,
    retry_at: &mut tokio::time::Instant,
    backoff: &mut Backoff,
) {
    *stream = None;
    healthy.store(false, Ordering::Relaxed);
    *retry_at = tokio::time::Instant::now() + backoff.next_delay();
}
