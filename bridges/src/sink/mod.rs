//! Where observations go: OSC over UDP and TCP, OSCQuery, MIDI ports and a
//! Standard MIDI File (CCs, notes and pitch bend).
//!
//! Each sink is its own task behind a bounded queue, so a dead destination is
//! logged and retried without delaying the others: when a live sink's queue
//! is full the newest frame is dropped and counted (see [`SinkQueue`]).

pub mod midi;
pub mod midi_file;
pub mod notes;
pub mod osc;
pub mod oscquery;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// Queue length of each sink.
pub const SINK_QUEUE: usize = 4096;

/// The sending end of a sink's queue, with its health and drop counter.
#[derive(Debug)]
pub struct SinkQueue<T> {
    /// What the sink is, for logs (`udp 127.0.0.1:57120`).
    pub name: String,
    /// The queue.
    pub tx: mpsc::Sender<T>,
    /// False while the sink cannot deliver (TCP refused, port gone).
    pub healthy: Arc<AtomicBool>,
    /// Items dropped because the queue was full.
    pub dropped: Arc<AtomicU64>,
}

impl<T> SinkQueue<T> {
    /// A queue of `capacity` and its receiving end.
    pub fn new(name: String, capacity: usize) -> (SinkQueue<T>, mpsc::Receiver<T>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel(capacity);
        let healthy = Arc::new(AtomicBool::new(true));
        (SinkQueue { name, tx, healthy: healthy.clone(), dropped: Arc::new(AtomicU64::new(0)) }, rx, healthy)
    }

    /// Hands `item` to the sink. `lossless` (replay) waits for room while the
    /// sink is healthy; otherwise a full queue drops the item and counts it.
    /// Returns false when the sink has gone away.
    pub async fn deliver(&self, item: T, lossless: bool) -> bool {
        if lossless && self.healthy.load(Ordering::Relaxed) {
            return self.tx.send(item).await.is_ok();
        }
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(sink = %self.name, dropped, "sink queue full, dropping newest");
                }
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}
