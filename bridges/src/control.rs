//! Asking the bridge to send every station's current state again, for a
//! patch recompiled or a receiver restarted mid-set (docs/AUDIO_CLIENTS.md,
//! Current state at once): the control port (`--control PORT`, OSC over UDP
//! on 127.0.0.1, `/buoycast/resend`), SIGUSR1 (Unix), and `--resend-every
//! SECS`. Each is one task that sends [`Control::Resend`] into the
//! pipeline's bounded control channel; the pipeline keeps the state.

use std::net::SocketAddr;
use std::time::Duration;

use rosc::{OscMessage, OscPacket, OscType};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::source::LogThrottle;

/// The address that asks for the current state again.
pub const RESEND: &str = "/buoycast/resend";

/// The reply to [`RESEND`] on the control port: one int32, how many stations
/// were sent again.
pub const RESENT: &str = "/buoycast/resent";

/// Bound of the control channel (requests beyond it are dropped: a resend
/// already queued does the same job).
pub const CONTROL_QUEUE: usize = 8;

/// What the pipeline is asked to do.
#[derive(Debug)]
pub enum Control {
    /// Send every station's current state again; when `reply` is given, tell
    /// it how many stations that was.
    Resend {
        /// Where the request came from, to answer on the control socket.
        reply: Option<(SocketAddr, mpsc::Sender<(SocketAddr, usize)>)>,
    },
}

/// Binds the control port on 127.0.0.1 and serves it until `shutdown`;
/// returns where it listens.
pub async fn serve_port(
    port: u16,
    control: mpsc::Sender<Control>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let socket = UdpSocket::bind(("127.0.0.1", port)).await?;
    let local = socket.local_addr()?;
    tokio::spawn(receive(socket, control, shutdown));
    Ok(local)
}

/// Reads OSC packets (messages or bundles) and acts on [`RESEND`]; anything
/// else is logged (at most every 10 s) and ignored.
async fn receive(socket: UdpSocket, control: mpsc::Sender<Control>, shutdown: CancellationToken) {
    let (reply_tx, mut reply_rx) = mpsc::channel::<(SocketAddr, usize)>(CONTROL_QUEUE);
    let mut buffer = vec![0u8; 65_536];
    let mut unknown = LogThrottle::new(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            Some((peer, n_stations)) = reply_rx.recv() => {
                let message = OscMessage { addr: RESENT.to_owned(), args: vec![OscType::Int(n_stations.min(i32::MAX as usize) as i32)] };
                if let Ok(bytes) = rosc::encoder::encode(&OscPacket::Message(message)) {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
            received = socket.recv_from(&mut buffer) => {
                let Ok((n, peer)) = received else { continue };
                let addresses = match rosc::decoder::decode_udp(&buffer[..n]) {
                    Ok((_, packet)) => addresses(packet),
                    Err(error) => {
                        if let Some(suppressed) = unknown.check() {
                            tracing::warn!(%peer, error = ?error, suppressed, "control: not an OSC packet, ignored");
                        }
                        continue;
                    }
                };
                for address in addresses {
                    if address == RESEND {
                        tracing::info!(%peer, "control: resend requested");
                        let request = Control::Resend { reply: Some((peer, reply_tx.clone())) };
                        if control.try_send(request).is_err() {
                            tracing::debug!("control: a resend is already queued");
                        }
                    } else if let Some(suppressed) = unknown.check() {
                        tracing::warn!(%peer, address, suppressed, "control: unknown address, ignored (known: /buoycast/resend)");
                    }
                }
            }
        }
    }
}

/// Every message address in a packet, bundles flattened.
fn addresses(packet: OscPacket) -> Vec<String> {
    match packet {
        OscPacket::Message(message) => vec![message.addr],
        OscPacket::Bundle(bundle) => bundle.content.into_iter().flat_map(addresses).collect(),
    }
}

/// SIGUSR1 asks for a resend (Unix only; elsewhere nothing).
pub fn on_sigusr1(control: mpsc::Sender<Control>, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::user_defined1()) {
            Ok(mut signals) => {
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            received = signals.recv() => {
                                if received.is_none() {
                                    return;
                                }
                                tracing::info!("control: SIGUSR1, resending the current state");
                                let _ = control.try_send(Control::Resend { reply: None });
                            }
                        }
                    }
                });
            }
            Err(error) => tracing::warn!(error = %error, "control: cannot listen for SIGUSR1"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (control, shutdown);
    }
}

/// `--resend-every`: a resend every `period`, the first one after `period`.
pub fn every(period: Duration, control: mpsc::Sender<Control>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let _ = control.try_send(Control::Resend { reply: None });
                }
            }
        }
    });
}
