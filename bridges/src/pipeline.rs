//! The fan-out: one source's items go to every sink. Each observation is
//! OSC-encoded once and the same bytes go to every OSC destination; the
//! MIDI sink gets the item itself.
//!
//! It owns the sinks' queue ends: when the source ends (replay done,
//! shutdown) it drops them, which lets every sink drain and finish.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::osc::OscEncoder;
use crate::sink::osc::Frame;
use crate::sink::oscquery::Namespace;
use crate::sink::SinkQueue;
use crate::source::Item;

/// Sinks wired to one source.
#[derive(Debug)]
pub struct Pipeline {
    /// Encodes for the OSC destinations (None when there are none).
    pub encoder: Option<OscEncoder>,
    /// UDP and TCP destinations.
    pub osc: Vec<SinkQueue<Frame>>,
    /// The MIDI sink.
    pub midi: Option<SinkQueue<Item>>,
    /// The OSCQuery namespace to grow as stations appear.
    pub namespace: Option<Arc<Namespace>>,
    /// Replay: wait for room in healthy sinks instead of dropping.
    pub lossless: bool,
}

/// What the pipeline did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PipelineStats {
    /// Items received from the source.
    pub n_items: u64,
    /// Frames dropped by full OSC queues (all destinations).
    pub n_dropped: u64,
}

impl Pipeline {
    /// Runs until the source's channel closes.
    pub async fn run(self, mut items_rx: mpsc::Receiver<Item>) -> PipelineStats {
        let mut stats = PipelineStats::default();
        while let Some(item) = items_rx.recv().await {
            stats.n_items += 1;
            let observation = &item.event.observation;
            if let Some(namespace) = &self.namespace {
                if namespace.add_station(&observation.station_id) {
                    tracing::info!(station = %observation.station_id, "new station");
                }
            }
            if let (Some(encoder), false) = (&self.encoder, self.osc.is_empty()) {
                match encoder.encode(observation, item.now) {
                    Ok(datagrams) => {
                        let frame: Frame = Arc::new(datagrams);
                        for sink in &self.osc {
                            sink.deliver(frame.clone(), self.lossless).await;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(station = %observation.station_id, error = %error, "osc: cannot encode")
                    }
                }
            }
            if let Some(midi) = &self.midi {
                midi.deliver(item, self.lossless).await;
            }
        }
        stats.n_dropped = self.osc.iter().map(|sink| sink.dropped.load(Ordering::Relaxed)).sum();
        stats
    }
}
