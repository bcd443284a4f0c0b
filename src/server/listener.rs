//! The accept loop: binds with a deep backlog, serves each connection with
//! hyper's HTTP/1 builder (leaner per connection than the auto HTTP/1+2
//! builder; HTTP/2 is left to the reverse proxy), bounds header reads and
//! stalled writes, and drains connections on shutdown.
//!
//! It knows nothing of routes: it serves whatever `Router` it is given.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Pending connections the kernel queues before we accept them: thousands
/// of clients arriving at once must not see dropped handshakes.
pub const BACKLOG: u32 = 4096;

/// A write that makes no progress for this long closes the connection: the
/// client stopped reading (its queue is bounded, the socket must be too).
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request head (request line + headers) accepted: a larger one is
/// answered 431 in the JSON error shape ([`super::guard::head_limit`]).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What hyper itself reads of a head before it gives up with a bare 431
/// (no body: hyper writes it below the router). Heads between
/// [`MAX_HEAD_BYTES`] and this get the JSON 431.
pub const HYPER_HEAD_BYTES: usize = 4 * MAX_HEAD_BYTES;

/// Binds `addr` with [`BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    bind_with(addr, false)
}

/// Binds `addr` with [`BACKLOG`]; `reuse_port` sets `SO_REUSEPORT` so other
/// processes that set it too can bind the same port (`http.reuse_port`;
/// Unix only, an error elsewhere).
pub fn bind_with(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        #[cfg(not(unix))]
        return Err(io::Error::new(io::ErrorKind::Unsupported, "http.reuse_port needs SO_REUSEPORT (Unix)"));
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Settings of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    /// Time a client has to send a complete request head.
    pub header_timeout: Duration,
}

/// Accepts and serves connections until `shutdown`; then asks each open
/// connection to finish (streams end themselves on the same token).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnSettings,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(error = %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        // A child token per connection: its select polls the cancellation on
        // every wake, and polling the shared root token takes its mutex, which
        // thousands of connections on every worker would contend for.
        let shutdown = shutdown.child_token();
        tracker.spawn(serve_connection(stream, peer, router, settings, shutdown));
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    settings: ConnSettings,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .max_buf_size(HYPER_HEAD_BYTES);
    let connection = builder.serve_connection(TokioIo::new(StallGuard::new(stream)), service).with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(error = %error, %peer, "connection ended with an error");
            }
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(crate::shutdown::DEADLINE, connection).await;
        }
    }
}

/// A TCP stream whose writes fail once they have been stuck for
/// [`WRITE_STALL_TIMEOUT`].
struct StallGuard {
    inner: TcpStream,
    /// Armed while a write is pending; dropped when it makes progress.
    stall: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    fn new(inner: TcpStream) -> StallGuard {
        StallGuard { inner, stall: None }
    }

    fn check<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stall = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let stall =
                    self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL_TIMEOUT)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading")))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
