//! MIDI output (docs/REFERENCE.md, MIDI map): the mapping engine (channels
//! per station, 7- or 14-bit CC values, pitch bend, notes from
//! [`super::notes`], skip-unchanged, `--glide` ramps, `--learn` sweeps) and
//! the outputs (named ports reopened when they come back, with the note-offs
//! they missed; virtual ports; the .mid file).
//!
//! [`MidiEngine`] is pure and clock-free: it turns observations and media
//! times into timed messages, so tests drive it directly. The port threads
//! only move bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use buoycast::observation::{Field, FieldSet, Observation, StationId};
use buoycast::spectrum::Spectrum;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::midi_file::MidiFileWriter;
use super::notes::{pitch_bend, NotePlayer, PortNotes, BEND_CENTER};
use crate::mapping::{cc14, cc7, split14, ChannelAssigner, Map};
use crate::source::Item;

/// Time between two glide steps: at most 50 steps a second.
pub const GLIDE_STEP: Duration = Duration::from_millis(20);

/// One MIDI message at its media time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedMessage {
    /// Media time since start.
    pub at: Duration,
    /// A channel message: status (0xB0 CC, 0x90 note-on, 0x80 note-off,
    /// 0xE0 pitch bend, | channel − 1) and its two data bytes.
    pub bytes: [u8; 3],
}

/// What a control moves: a CC, or the channel's pitch bend (always 14-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Cc(u8),
    Bend,
}

#[derive(Debug, Clone, Copy)]
struct Ramp {
    from: u16,
    to: u16,
    start: Duration,
    step: Duration,
    n_steps: u32,
    done: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct Control {
    /// Last value sent (7- or 14-bit).
    current: Option<u16>,
    ramp: Option<Ramp>,
}

/// The controllers of a spectrum's band bank, band 0 first: 20 to 119
/// without 32 and 38 (LSBs of bank select and data entry), 64–69 (pedals:
/// 64 would hold a synth's notes) and 96–101 (data increment, NRPN, RPN).
/// 86 of them; bands beyond are not sent.
pub const SPECTRUM_CCS: [u8; 86] = {
    let mut ccs = [0u8; 86];
    let (mut cc, mut i) = (20u8, 0);
    while cc <= 119 {
        if !(cc == 32 || cc == 38 || (cc >= 64 && cc <= 69) || (cc >= 96 && cc <= 101)) {
            ccs[i] = cc;
            i += 1;
        }
        cc += 1;
    }
    ccs
};

/// Turns observations into CC messages.
#[derive(Debug)]
pub struct MidiEngine {
    /// Ranges, curves and CC numbers.
    map: Map,
    /// `--cc14`: 14-bit pairs for CCs below 32.
    cc14: bool,
    /// `--glide`.
    glide: Option<Duration>,
    /// Station → channel.
    channels: ChannelAssigner,
    /// (channel 1..=16, CC or pitch bend) → state.
    controls: BTreeMap<(u8, Target), Control>,
    /// Stations already warned about having no channel.
    warned: BTreeSet<StationId>,
    /// Sounding notes and their note-offs (`[notes.F]` in the map).
    notes: NotePlayer,
    /// The newest media time observed (where the final messages go).
    clock: Duration,
}

impl MidiEngine {
    /// Gives the `--station` stations their channels in that order (1, 2, …
    /// skipping 10 and pinned ones) before any data arrives, so a station's
    /// channel does not depend on which reports first.
    pub fn preassign(&mut self, stations: &[StationId]) {
        for station in stations {
            self.channels.channel(station);
        }
    }

    /// An engine for a map and the CC options.
    pub fn new(map: Map, cc14: bool, glide: Option<Duration>) -> MidiEngine {
        let channels = ChannelAssigner::new(&map);
        MidiEngine {
            map,
            cc14,
            glide: glide.filter(|g| !g.is_zero()),
            channels,
            controls: BTreeMap::new(),
            warned: BTreeSet::new(),
            notes: NotePlayer::default(),
            clock: Duration::ZERO,
        }
    }

    fn wide(&self, target: Target) -> bool {
        match target {
            Target::Cc(cc) => self.cc14 && cc < 32,
            Target::Bend => true,
        }
    }

    /// The messages a report causes at media time `at` (glide steps and
    /// note-offs due before `at` first): CCs, pitch bend, and notes. A null
    /// sends nothing.
    pub fn observe(&mut self, observation: &Observation, at: Duration, out: &mut Vec<TimedMessage>) {
        if let Some(channel) = self.controls_for(observation, at, out) {
            self.notes.report(&self.map, channel, observation, at, out);
        }
    }

    /// An item from the pipeline: a report ([`MidiEngine::observe`]), or a
    /// shaping clock step, which moves CCs and pitch bend but plays no note.
    /// Only the fields in `item.send` count (a field the shaping holds back
    /// sends nothing, as a null).
    pub fn observe_item(&mut self, item: &Item, out: &mut Vec<TimedMessage>) {
        if let Some(spectrum) = item.spectrum() {
            self.spectrum(spectrum, item.at, out);
            return;
        }
        let observation: std::borrow::Cow<'_, Observation> = if item.send == FieldSet::ALL {
            std::borrow::Cow::Borrowed(&item.event.observation)
        } else {
            let mut held_back = item.event.observation.clone();
            for field in Field::ALL.into_iter().filter(|field| !item.send.contains(*field)) {
                held_back.measurements.set(field, None);
            }
            std::borrow::Cow::Owned(held_back)
        };
        if item.tick {
            self.controls_for(&observation, item.at, out);
        } else {
            self.observe(&observation, item.at, out);
        }
    }

    /// A wave spectrum's band bank (docs/REFERENCE.md, MIDI map: Spectra):
    /// on `--spectrum-channel`, band i on [`SPECTRUM_CCS`]`[i]`, value
    /// round(127 · √(density / the spectrum's largest density)). Without
    /// that channel a spectrum sends nothing.
    pub fn spectrum(&mut self, spectrum: &Spectrum, at: Duration, out: &mut Vec<TimedMessage>) {
        let Some(channel) = self.map.spectrum_channel else { return };
        self.advance(at, out);
        self.clock = self.clock.max(at);
        let loudest = spectrum.bands.iter().filter_map(|band| band.density).fold(0.0, f64::max);
        for (band, &cc) in spectrum.bands.iter().zip(SPECTRUM_CCS.iter()) {
            let norm = if loudest > 0.0 { (band.density.unwrap_or(0.0) / loudest).sqrt() } else { 0.0 };
            self.set(channel, cc, norm, at, out);
        }
    }

    /// CCs and pitch bend for an observation; its station's channel, if it has one.
    fn controls_for(
        &mut self,
        observation: &Observation,
        at: Duration,
        out: &mut Vec<TimedMessage>,
    ) -> Option<u8> {
        self.advance(at, out);
        self.clock = self.clock.max(at);
        let (channel, exhausted) = self.channels.channel(&observation.station_id);
        let Some(channel) = channel else {
            if exhausted && self.warned.insert(observation.station_id.clone()) {
                tracing::warn!(station = %observation.station_id, "midi: no channel left (15 in use); this station is not sent");
            }
            return None;
        };
        for (field, value) in observation.measurements.present() {
            let mapping = *self.map.field(field);
            let norm = mapping.norm(value);
            if mapping.enabled {
                self.set(channel, mapping.cc, norm, at, out);
            }
            if self.map.pitchbend.contains(&field) {
                self.set_target(channel, Target::Bend, norm, at, out);
            }
        }
        Some(channel)
    }

    /// Moves one control towards `norm`: at once, or as a ramp with `--glide`.
    pub fn set(&mut self, channel: u8, cc: u8, norm: f64, at: Duration, out: &mut Vec<TimedMessage>) {
        self.set_target(channel, Target::Cc(cc), norm, at, out);
    }

    fn set_target(&mut self, channel: u8, cc: Target, norm: f64, at: Duration, out: &mut Vec<TimedMessage>) {
        let wide = self.wide(cc);
        let target = if wide { cc14(norm) } else { u16::from(cc7(norm)) };
        let glide = self.glide;
        let control = self.controls.entry((channel, cc)).or_default();
        match (glide, control.current) {
            (Some(glide), Some(current)) if current != target => {
                let n_steps = (glide.as_secs_f64() / GLIDE_STEP.as_secs_f64()).ceil().max(1.0) as u32;
                control.ramp = Some(Ramp {
                    from: current,
                    to: target,
                    start: at,
                    step: glide / n_steps,
                    n_steps,
                    done: 0,
                });
            }
            _ => {
                control.ramp = None;
                emit(control, channel, cc, wide, target, at, out);
            }
        }
    }

    /// Emits the glide steps and note-offs due at or before `now`, in time order.
    pub fn advance(&mut self, now: Duration, out: &mut Vec<TimedMessage>) {
        let from = out.len();
        let cc14_on = self.cc14;
        for (&(channel, cc), control) in self.controls.iter_mut() {
            let Some(mut ramp) = control.ramp else { continue };
            while ramp.done < ramp.n_steps {
                let k = ramp.done + 1;
                let step_at = ramp.start + ramp.step * k;
                if step_at > now {
                    break;
                }
                let value = f64::from(ramp.from)
                    + (f64::from(ramp.to) - f64::from(ramp.from)) * f64::from(k) / f64::from(ramp.n_steps);
                let wide = match cc {
                    Target::Cc(cc) => cc14_on && cc < 32,
                    Target::Bend => true,
                };
                emit(control, channel, cc, wide, value.round() as u16, step_at, out);
                ramp.done = k;
            }
            control.ramp = (ramp.done < ramp.n_steps).then_some(ramp);
        }
        self.notes.advance(now, out);
        // Stable: a 14-bit pair keeps MSB before LSB.
        out[from..].sort_by_key(|message| message.at);
    }

    /// Whether a ramp is still running.
    pub fn gliding(&self) -> bool {
        self.controls.values().any(|c| c.ramp.is_some())
    }

    /// When the next note-off is due (the run loop wakes for it).
    pub fn next_note_off(&self) -> Option<Duration> {
        self.notes.next_off()
    }

    /// Whether a note is sounding.
    pub fn sounding(&self) -> bool {
        self.notes.sounding()
    }

    /// At the end (replay done, Ctrl-C): completes every ramp (at its own
    /// step times), turns every sounding note off (at its own note-off time)
    /// then sends All Notes Off (CC 123) on each channel that played notes,
    /// and puts every pitch bend that moved back to the centre (8192).
    pub fn finish(&mut self, out: &mut Vec<TimedMessage>) {
        let from = out.len();
        self.advance(Duration::MAX, out);
        let end = out[from..].iter().map(|m| m.at).max().unwrap_or(self.clock).max(self.clock);
        self.notes.finish(end, out);
        for (&(channel, target), control) in self.controls.iter_mut() {
            if target == Target::Bend {
                emit(control, channel, target, true, BEND_CENTER, end, out);
            }
        }
    }
}

fn emit(
    control: &mut Control,
    channel: u8,
    target: Target,
    wide: bool,
    value: u16,
    at: Duration,
    out: &mut Vec<TimedMessage>,
) {
    if control.current == Some(value) {
        return;
    }
    control.current = Some(value);
    let cc = match target {
        Target::Cc(cc) => cc,
        Target::Bend => {
            out.push(TimedMessage { at, bytes: pitch_bend(channel, value) });
            return;
        }
    };
    let status = super::notes::status(0xB0, channel);
    if wide {
        let (msb, lsb) = split14(value);
        out.push(TimedMessage { at, bytes: [status, cc, msb] });
        out.push(TimedMessage { at, bytes: [status, cc + 32, lsb] });
    } else {
        out.push(TimedMessage { at, bytes: [status, cc, (value & 0x7f) as u8] });
    }
}

/// The `--learn` sweep: a triangle 0 → 1 → 0 over this period.
pub const LEARN_PERIOD: Duration = Duration::from_secs(4);

/// The learn sweep's norm at media time `t`.
pub fn learn_norm(t: Duration) -> f64 {
    let phase = (t.as_secs_f64() % LEARN_PERIOD.as_secs_f64()) / LEARN_PERIOD.as_secs_f64();
    if phase < 0.5 {
        2.0 * phase
    } else {
        2.0 - 2.0 * phase
    }
}

/// A MIDI output port to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    /// An existing output port, found by exact name, else by substring.
    Named(String),
    /// A virtual port other programs connect to.
    Virtual(String),
}

/// MIDI errors.
#[derive(Debug, thiserror::Error)]
pub enum MidiError {
    /// The platform's MIDI system cannot be opened.
    #[error("cannot open the MIDI system ({backend}): {reason}")]
    Init {
        /// Which backend.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// Virtual port creation failed or is unsupported.
    #[error("--midi-virtual {name:?}: {reason}")]
    Virtual {
        /// Port name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The MIDI backend this build uses.
pub const BACKEND: &str = if cfg!(all(target_os = "linux", feature = "jack")) {
    "JACK"
} else if cfg!(target_os = "linux") {
    "ALSA sequencer"
} else if cfg!(target_os = "macos") {
    "CoreMIDI"
} else if cfg!(windows) {
    "Windows MIDI"
} else {
    "system MIDI"
};

fn midi_output() -> Result<midir::MidiOutput, MidiError> {
    midir::MidiOutput::new("buoycast-bridge")
        .map_err(|error| MidiError::Init { backend: BACKEND, reason: error.to_string() })
}

/// The names of the output ports (`--list-midi`).
pub fn list_ports() -> Result<Vec<String>, MidiError> {
    let output = midi_output()?;
    Ok(output.ports().iter().filter_map(|port| output.port_name(port).ok()).collect())
}

fn find_port(output: &midir::MidiOutput, wanted: &str) -> Option<midir::MidiOutputPort> {
    let ports = output.ports();
    let named: Vec<(String, midir::MidiOutputPort)> =
        ports.into_iter().filter_map(|port| output.port_name(&port).ok().map(|name| (name, port))).collect();
    let lower = wanted.to_lowercase();
    named
        .iter()
        .find(|(name, _)| name == wanted)
        .or_else(|| named.iter().find(|(name, _)| name.to_lowercase().contains(&lower)))
        .map(|(_, port)| port.clone())
}

#[cfg(unix)]
fn open_virtual(name: &str) -> Result<midir::MidiOutputConnection, MidiError> {
    use midir::os::unix::VirtualOutput;
    let output = midi_output()?;
    output
        .create_virtual(name)
        .map_err(|error| MidiError::Virtual { name: name.to_owned(), reason: error.to_string() })
}

#[cfg(not(unix))]
fn open_virtual(name: &str) -> Result<midir::MidiOutputConnection, MidiError> {
    Err(MidiError::Virtual {
        name: name.to_owned(),
        reason: "Windows has no virtual MIDI ports; create one with loopMIDI and use --midi NAME".to_owned(),
    })
}

/// How often a named port's presence is checked (and a missing one reopened).
const PORT_POLL: Duration = Duration::from_secs(2);

/// A port's sending end; its thread owns the connection.
#[derive(Debug)]
pub struct PortSender {
    /// For logs.
    pub name: String,
    /// Messages to the port thread (bounded; a full queue drops).
    pub tx: std_mpsc::SyncSender<[u8; 3]>,
    /// The thread, joined at the end.
    pub thread: std::thread::JoinHandle<()>,
}

/// Opens a port thread. A virtual port must open now (its error is fatal); a
/// named port that is missing is waited for and reopened whenever it comes back.
pub fn open_port(spec: PortSpec) -> Result<PortSender, MidiError> {
    let (tx, rx) = std_mpsc::sync_channel::<[u8; 3]>(4096);
    let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), MidiError>>();
    let name = match &spec {
        PortSpec::Named(name) => format!("midi {name}"),
        PortSpec::Virtual(name) => format!("midi virtual {name}"),
    };
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || port_thread(spec, rx, ready_tx))
        .map_err(|error| MidiError::Init { backend: BACKEND, reason: error.to_string() })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(PortSender { name, tx, thread }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(MidiError::Init { backend: BACKEND, reason: "the port thread ended".to_owned() }),
    }
}

fn port_thread(
    spec: PortSpec,
    rx: std_mpsc::Receiver<[u8; 3]>,
    ready_tx: std_mpsc::Sender<Result<(), MidiError>>,
) {
    let mut connection = match &spec {
        PortSpec::Virtual(name) => match open_virtual(name) {
            Ok(connection) => {
                tracing::info!(port = %name, backend = BACKEND, "midi: virtual port created");
                Some(connection)
            }
            Err(error) => {
                let _ = ready_tx.send(Err(error));
                return;
            }
        },
        PortSpec::Named(_) => match midi_output() {
            Ok(_) => None,
            Err(error) => {
                let _ = ready_tx.send(Err(error));
                return;
            }
        },
    };
    let _ = ready_tx.send(Ok(()));
    let mut next_poll = std::time::Instant::now();
    let mut dropped = 0u64;
    let mut warned_missing = false;
    // Notes the device got without their note-off, released on a reopen.
    let mut notes = PortNotes::default();
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(message) => match connection.as_mut() {
                Some(open) => match open.send(&message) {
                    Ok(()) => notes.delivered(message),
                    Err(error) => {
                        tracing::warn!(port = ?spec, error = %error, "midi: send failed; reopening");
                        if matches!(spec, PortSpec::Named(_)) {
                            connection = None;
                        }
                    }
                },
                None => dropped += 1,
            },
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                // The engine sent every note-off; if the queue dropped one, release it here.
                if let (Some(open), true) = (connection.as_mut(), notes.holding()) {
                    for message in notes.release() {
                        let _ = open.send(&message);
                    }
                }
                break;
            }
        }
        let PortSpec::Named(wanted) = &spec else { continue };
        if std::time::Instant::now() < next_poll {
            continue;
        }
        next_poll = std::time::Instant::now() + PORT_POLL;
        let present =
            midi_output().ok().and_then(|output| find_port(&output, wanted).map(|port| (output, port)));
        match (connection.is_some(), present) {
            (false, Some((output, port))) => match output.connect(&port, "buoycast") {
                Ok(mut open) => {
                    // Notes that sounded when the port went away: their note-offs were lost.
                    let release = notes.release();
                    for message in &release {
                        let _ = open.send(message);
                    }
                    tracing::info!(port = %wanted, dropped, n_released = release.len(), "midi: port opened");
                    connection = Some(open);
                    warned_missing = false;
                }
                Err(error) => {
                    tracing::warn!(port = %wanted, error = %error, "midi: cannot open port, retrying")
                }
            },
            (true, None) => {
                tracing::warn!(port = %wanted, "midi: port vanished; will reopen it when it comes back");
                connection = None;
            }
            (false, None) if !warned_missing => {
                warned_missing = true;
                tracing::warn!(port = %wanted, "midi: no such output port (yet); see --list-midi; waiting for it");
            }
            _ => {}
        }
    }
}

/// Everything the MIDI sink task writes to.
#[derive(Debug)]
pub struct MidiOutputs {
    /// Port threads.
    pub ports: Vec<PortSender>,
    /// The .mid file, if any.
    pub file: Option<MidiFileWriter>,
}

impl MidiOutputs {
    fn dispatch(&mut self, messages: &mut Vec<TimedMessage>) {
        for message in messages.drain(..) {
            for port in &self.ports {
                let _ = port.tx.try_send(message.bytes);
            }
            if let Some(file) = &mut self.file {
                file.push(message.at, message.bytes);
            }
        }
    }

    /// Writes the file and closes the ports.
    pub fn close(self) -> std::io::Result<()> {
        let result = match &self.file {
            Some(file) => {
                let written = file.write();
                if written.is_ok() {
                    tracing::info!(path = %file.path.display(), n_messages = file.len(), "midi file written");
                }
                written
            }
            None => Ok(()),
        };
        for port in self.ports {
            drop(port.tx);
            let _ = port.thread.join();
        }
        result
    }
}

/// The MIDI sink task: observations in, CCs, pitch bend and notes out, glide
/// steps on a 20 ms tick, each note-off at its time; when the queue closes
/// (replay done, Ctrl-C) every note is turned off and the file is written.
pub async fn run(
    mut engine: MidiEngine,
    mut outputs: MidiOutputs,
    mut items_rx: mpsc::Receiver<Item>,
    start: Instant,
) -> std::io::Result<()> {
    let mut tick = tokio::time::interval(GLIDE_STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut messages = Vec::new();
    loop {
        let note_off = engine.next_note_off().and_then(|due| start.checked_add(due));
        tokio::select! {
            item = items_rx.recv() => {
                let Some(item) = item else { break };
                engine.observe_item(&item, &mut messages);
            }
            _ = tick.tick(), if engine.gliding() => {
                engine.advance(start.elapsed(), &mut messages);
            }
            () = sleep_until_some(note_off) => {
                engine.advance(start.elapsed(), &mut messages);
            }
        }
        outputs.dispatch(&mut messages);
    }
    engine.finish(&mut messages);
    outputs.dispatch(&mut messages);
    outputs.close()
}

/// Sleeps until `due`; forever when there is none.
async fn sleep_until_some(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// `--learn FIELD`: sweeps that field's CC on channel 1 until cancelled.
pub async fn run_learn(
    field: Field,
    station: Option<StationId>,
    mut engine: MidiEngine,
    mut outputs: MidiOutputs,
    start: Instant,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let cc = engine.map.field(field).cc;
    let channel = match &station {
        Some(station) => {
            if !engine.map.stations.contains_key(station) && !engine.channels.knows(station) {
                tracing::warn!(
                    station = %station,
                    "midi learn: this station is neither pinned in the map nor in --station, so live its \
                     channel depends on the order stations appear; pin it ([stations.\"ID\"] channel = N)"
                );
            }
            engine.channels.channel(station).0.unwrap_or(1)
        }
        None => 1,
    };
    tracing::info!(field = %field, cc, channel, "midi learn: sweeping; map it in your DAW, then Ctrl-C");
    let mut tick = tokio::time::interval(GLIDE_STEP);
    let mut messages = Vec::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {
                let now = start.elapsed();
                engine.set(channel, cc, learn_norm(now), now, &mut messages);
                outputs.dispatch(&mut messages);
            }
        }
    }
    outputs.close()
}
