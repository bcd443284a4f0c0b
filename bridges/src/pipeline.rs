//! The fan-out: one source's items go to every sink. Each observation is
//! OSC-encoded once and the same bytes go to every OSC destination; the
//! MIDI sink gets the item itself (observations and spectra alike).
//!
//! It owns the sinks' queue ends: when the source ends (replay done,
//! shutdown) it drops them, which lets every sink drain and finish.
//!
//! It keeps every station's current state (its newest observation) and,
//! asked through its control channel ([`Control::Resend`]), sends it all
//! again, as if each station had just reported.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use buoycast::observation::StationId;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::control::Control;
use crate::osc::OscEncoder;
use crate::shape::{Shaper, TICK};
use crate::sink::osc::Frame;
use crate::sink::oscquery::Namespace;
use crate::sink::SinkQueue;
use crate::source::Item;

/// Sinks wired to one source.
#[derive(Debug)]
pub struct Pipeline {
    /// Encodes for the OSC destinations and OSCQuery (None when there is
    /// neither).
    pub encoder: Option<OscEncoder>,
    /// UDP and TCP destinations.
    pub osc: Vec<SinkQueue<Frame>>,
    /// The MIDI sink.
    pub midi: Option<SinkQueue<Item>>,
    /// The OSCQuery namespace to grow as stations appear.
    pub namespace: Option<Arc<Namespace>>,
    /// Replay: wait for room in healthy sinks instead of dropping.
    pub lossless: bool,
    /// Resend requests; `None` when nothing can ask.
    pub control: Option<mpsc::Receiver<Control>>,
    /// Media time zero, for the time of a resent live state.
    pub start: Instant,
    /// The wall clock at media time zero (OSC timetags are wall-clock times).
    pub start_wall: std::time::SystemTime,
    /// The map's `smooth` / `quantize` / `deadband` / `rate`; `None` when no
    /// field is shaped.
    pub shaper: Option<Shaper>,
}

/// What the pipeline did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PipelineStats {
    /// Items received from the source.
    pub n_items: u64,
    /// Frames dropped by full OSC queues (all destinations).
    pub n_dropped: u64,
    /// Station states sent again on request.
    pub n_resent: u64,
}

impl Pipeline {
    /// Runs until the source's channel closes.
    pub async fn run(mut self, mut items_rx: mpsc::Receiver<Item>) -> PipelineStats {
        let mut stats = PipelineStats::default();
        let mut control = self.control.take();
        // Every station's newest item (the current state a resend repeats).
        let mut state: BTreeMap<StationId, Item> = BTreeMap::new();
        // Every station's newest spectrum, resent with it.
        let mut spectra: BTreeMap<StationId, Item> = BTreeMap::new();
        // The newest media time so far (a replay's resend goes there).
        let mut played = std::time::Duration::ZERO;
        // The newest `/age` reference so far: the replay clock in a replay.
        let mut clock = chrono::DateTime::<chrono::Utc>::MIN_UTC;
        // The shaping clock, running only while a glide or a held value needs it.
        let mut shaping_clock = tokio::time::interval(TICK);
        shaping_clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let request = async {
                match control.as_mut() {
                    Some(control) => control.recv().await,
                    None => std::future::pending().await,
                }
            };
            let shaping_busy = self.shaper.as_ref().is_some_and(Shaper::busy);
            tokio::select! {
                _ = shaping_clock.tick(), if shaping_busy => {
                    let at = self.start.elapsed();
                    let steps = self.shaper.as_mut().map(|shaper| shaper.tick(at)).unwrap_or_default();
                    for step in steps {
                        let mut item = Item::new(
                            buoycast::observation::ObservationEvent::new(None, step.observation),
                            at,
                            chrono::Utc::now(),
                        );
                        item.send = step.send;
                        item.tick = true;
                        self.send(item).await;
                    }
                }
                item = items_rx.recv() => {
                    let Some(item) = item else { break };
                    stats.n_items += 1;
                    played = played.max(item.at);
                    clock = clock.max(item.now);
                    // Spectra have their own current state and skip the shaping.
                    let held = if item.spectrum().is_some() { &mut spectra } else { &mut state };
                    let station = &item.event.observation.station_id;
                    let newer = held.get(station).map_or(true, |held| {
                        held.event.observation.observed_at <= item.event.observation.observed_at
                    });
                    if newer {
                        held.insert(station.clone(), item.clone());
                    }
                    let item = match self.shaper.as_mut().filter(|_| item.spectrum().is_none()) {
                        Some(shaper) => {
                            let shaped = shaper.report(&item.event.observation, self.start.elapsed());
                            let mut item = item;
                            item.event.observation = shaped.observation;
                            item.send = shaped.send;
                            item
                        }
                        None => item,
                    };
                    self.send(item).await;
                }
                Some(request) = request => match request {
                    Control::Resend { reply } => {
                        let n_stations = state.len();
                        for held in state.values().chain(spectra.values()) {
                            self.send(self.resent(held, played, clock)).await;
                        }
                        stats.n_resent += n_stations as u64;
                        tracing::info!(n_stations, "resent the current state");
                        if let Some((peer, answer)) = reply {
                            let _ = answer.try_send((peer, n_stations));
                        }
                    }
                },
            }
        }
        stats.n_dropped = self.osc.iter().map(|sink| sink.dropped.load(Ordering::Relaxed)).sum();
        stats
    }

    /// A held state, stamped to go out now: live, the current media time and
    /// wall clock (`/age` grows); in a replay, the media time now (never
    /// before the newest played) and the replay clock (`/age` is measured
    /// against it).
    fn resent(&self, held: &Item, played: std::time::Duration, clock: chrono::DateTime<chrono::Utc>) -> Item {
        let mut item = if self.lossless {
            Item { at: played.max(self.start.elapsed()), now: clock, ..held.clone() }
        } else {
            Item { at: self.start.elapsed(), now: chrono::Utc::now(), ..held.clone() }
        };
        if item.spectrum().is_some() {
            return item;
        }
        // Shaped fields at their current shaped values, everything sent.
        if let Some(shaper) = &self.shaper {
            item.event.observation = shaper.current(&item.event.observation);
        }
        item.send = buoycast::observation::FieldSet::ALL;
        item
    }

    /// Sends one item to every sink.
    async fn send(&self, item: Item) {
        let Some(encoder) = &self.encoder else {
            self.send_midi(item).await;
            return;
        };
        let station = &item.event.observation.station_id;
        // Built once: the OSC destinations and OSCQuery get the same messages.
        let messages = match item.spectrum() {
            Some(spectrum) => encoder.spectrum_messages(spectrum),
            None => encoder.messages_for(&item.event.observation, item.now, item.send, item.tick),
        };
        if let Some(namespace) = &self.namespace {
            if namespace.record(station, &messages) {
                tracing::info!(station = %station, "new station");
            }
        }
        if !self.osc.is_empty() && !messages.is_empty() {
            let due = self.start_wall + item.at;
            match encoder.datagrams(&messages, due) {
                Ok(datagrams) => {
                    let frame: Frame = Arc::new(datagrams);
                    for sink in &self.osc {
                        sink.deliver(frame.clone(), self.lossless).await;
                    }
                }
                Err(error) => tracing::warn!(station = %station, error = %error, "osc: cannot encode"),
            }
        }
        self.send_midi(item).await;
    }

    /// Hands an item to the MIDI sink (a spectrum plays there only with
    /// `--spectrum-channel`).
    async fn send_midi(&self, item: Item) {
        if let Some(midi) = &self.midi {
            midi.deliver(item, self.lossless).await;
        }
    }
}
