//! `--midi-file PATH`: the MIDI messages (CCs, notes, pitch bend) as a Standard MIDI File
//! (docs/REFERENCE.md, MIDI map): format 0, 480 ticks per quarter note, tempo
//! 120 (500000 µs per quarter), each message at its media time (960 ticks a
//! second).
//!
//! Messages are kept in memory and the file is written once, completely, at
//! the end (replay done, SIGINT or SIGTERM); it is not a streaming writer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use midly::live::LiveEvent;
use midly::num::{u15, u24, u28};
use midly::{Format, Header, MetaMessage, Smf, Timing, TrackEvent, TrackEventKind};

/// Ticks per quarter note.
pub const TICKS_PER_QUARTER: u16 = 480;
/// Microseconds per quarter note (120 bpm).
pub const TEMPO_US: u32 = 500_000;

/// Ticks for a media time: 480 ticks per 0.5 s quarter.
pub fn ticks(at: Duration) -> u64 {
    (at.as_secs_f64() * 1_000_000.0 * f64::from(TICKS_PER_QUARTER) / f64::from(TEMPO_US)).round() as u64
}

/// Collects messages and writes the file.
#[derive(Debug)]
pub struct MidiFileWriter {
    /// Where the file goes.
    pub path: PathBuf,
    /// (absolute tick, 3 message bytes), in order.
    events: Vec<(u64, [u8; 3])>,
}

impl MidiFileWriter {
    /// A writer for `path` (nothing is written until [`MidiFileWriter::write`]).
    pub fn new(path: &Path) -> MidiFileWriter {
        MidiFileWriter { path: path.to_path_buf(), events: Vec::new() }
    }

    /// Adds a channel message (Control Change, note-on/off, pitch bend: see
    /// [`channel_message`]) at media time `at`; times never go backwards in the file.
    pub fn push(&mut self, at: Duration, message: [u8; 3]) {
        let tick = ticks(at).max(self.events.last().map_or(0, |(tick, _)| *tick));
        self.events.push((tick, message));
    }

    /// Number of messages collected.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> std::io::Result<Vec<u8>> {
        let mut track = Vec::with_capacity(self.events.len() + 2);
        track.push(TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(TEMPO_US))),
        });
        let mut previous = 0u64;
        for (tick, message) in &self.events {
            // midly reads the channel message (note on/off, CC, pitch bend …);
            // the engine only makes valid ones.
            let Ok(LiveEvent::Midi { channel, message }) = LiveEvent::parse(message) else { continue };
            let delta = tick - previous;
            previous = *tick;
            track.push(TrackEvent {
                delta: u28::new(delta.min(u64::from(u28::max_value().as_int())) as u32),
                kind: TrackEventKind::Midi { channel, message },
            });
        }
        track.push(TrackEvent { delta: u28::new(0), kind: TrackEventKind::Meta(MetaMessage::EndOfTrack) });
        let smf = Smf {
            header: Header::new(Format::SingleTrack, Timing::Metrical(u15::new(TICKS_PER_QUARTER))),
            tracks: vec![track],
        };
        let mut out = Vec::new();
        smf.write_std(&mut out)?;
        Ok(out)
    }

    /// Writes the file completely (through a temporary file and a rename, so
    /// a reader never sees half of it).
    pub fn write(&self) -> std::io::Result<()> {
        let bytes = self.to_bytes()?;
        let tmp = self.path.with_extension("mid.partial");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.path)
    }
}
