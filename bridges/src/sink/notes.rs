//! MIDI notes and pitch bend from fields (docs/REFERENCE.md, Mapping file;
//! docs/AUDIO_CLIENTS.md, Notes and pitch bend).
//!
//! A `[notes.FIELD]` table turns each new report of FIELD into a note on the
//! station's channel: the field's norm picks a degree of a scale between the
//! root in the lowest octave and the root in the highest one; velocity comes
//! from another field's norm or is fixed; every note-on gets its note-off
//! `length_ms` later in media time.
//!
//! Pure and clock-free like [`super::midi::MidiEngine`], which drives
//! [`NotePlayer`]; [`PortNotes`] is what a port thread remembers so that a
//! port that vanished and came back gets the note-offs it missed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use buoycast::observation::{Field, Observation, StationId};
use chrono::{DateTime, Utc};

use super::midi::TimedMessage;
use crate::mapping::Map;

/// Velocity when the map sets none, or the velocity field has never had a value.
pub const DEFAULT_VELOCITY: u8 = 100;
/// Note length when the map sets none.
pub const DEFAULT_LENGTH: Duration = Duration::from_millis(500);
/// Octave range when the map sets none: C4 (60) to C6 (84) in C major.
pub const DEFAULT_OCTAVES: (i8, i8) = (4, 6);
/// Release velocity of the note-offs.
pub const NOTE_OFF_VELOCITY: u8 = 64;
/// Controller 123: All Notes Off.
pub const ALL_NOTES_OFF: u8 = 123;
/// Pitch bend centre (no bend), 14-bit.
pub const BEND_CENTER: u16 = 8192;
/// Lowest octave a map may use (MIDI notes 0–11).
pub const MIN_OCTAVE: i8 = -1;
/// Highest octave a map may use (MIDI notes 120–127).
pub const MAX_OCTAVE: i8 = 9;

/// A built-in scale: the semitones of one octave above its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scale {
    /// All twelve semitones.
    Chromatic,
    /// Ionian: 0 2 4 5 7 9 11.
    Major,
    /// Natural minor (aeolian): 0 2 3 5 7 8 10.
    Minor,
    /// 0 2 3 5 7 8 11.
    HarmonicMinor,
    /// 0 2 3 5 7 9 10.
    Dorian,
    /// 0 1 3 5 7 8 10.
    Phrygian,
    /// 0 2 4 6 7 9 11.
    Lydian,
    /// 0 2 4 5 7 9 10.
    Mixolydian,
    /// 0 1 3 5 6 8 10.
    Locrian,
    /// 0 2 4 7 9.
    MajorPentatonic,
    /// 0 3 5 7 10.
    MinorPentatonic,
    /// Minor pentatonic plus the flat fifth: 0 3 5 6 7 10.
    Blues,
    /// 0 2 4 6 8 10.
    WholeTone,
}

impl Scale {
    /// Every scale, in the order the docs list them.
    pub const ALL: [Scale; 13] = [
        Scale::Chromatic,
        Scale::Major,
        Scale::Minor,
        Scale::HarmonicMinor,
        Scale::Dorian,
        Scale::Phrygian,
        Scale::Lydian,
        Scale::Mixolydian,
        Scale::Locrian,
        Scale::MajorPentatonic,
        Scale::MinorPentatonic,
        Scale::Blues,
        Scale::WholeTone,
    ];

    /// The name used in map files.
    pub const fn name(self) -> &'static str {
        match self {
            Scale::Chromatic => "chromatic",
            Scale::Major => "major",
            Scale::Minor => "minor",
            Scale::HarmonicMinor => "harmonic_minor",
            Scale::Dorian => "dorian",
            Scale::Phrygian => "phrygian",
            Scale::Lydian => "lydian",
            Scale::Mixolydian => "mixolydian",
            Scale::Locrian => "locrian",
            Scale::MajorPentatonic => "major_pentatonic",
            Scale::MinorPentatonic => "minor_pentatonic",
            Scale::Blues => "blues",
            Scale::WholeTone => "whole_tone",
        }
    }

    /// The scale called `name` (as in map files).
    pub fn from_name(name: &str) -> Option<Scale> {
        Scale::ALL.into_iter().find(|scale| scale.name() == name)
    }

    /// Semitones above the root within one octave, ascending, starting at 0.
    pub const fn intervals(self) -> &'static [u8] {
        match self {
            Scale::Chromatic => &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            Scale::Major => &[0, 2, 4, 5, 7, 9, 11],
            Scale::Minor => &[0, 2, 3, 5, 7, 8, 10],
            Scale::HarmonicMinor => &[0, 2, 3, 5, 7, 8, 11],
            Scale::Dorian => &[0, 2, 3, 5, 7, 9, 10],
            Scale::Phrygian => &[0, 1, 3, 5, 7, 8, 10],
            Scale::Lydian => &[0, 2, 4, 6, 7, 9, 11],
            Scale::Mixolydian => &[0, 2, 4, 5, 7, 9, 10],
            Scale::Locrian => &[0, 1, 3, 5, 6, 8, 10],
            Scale::MajorPentatonic => &[0, 2, 4, 7, 9],
            Scale::MinorPentatonic => &[0, 3, 5, 7, 10],
            Scale::Blues => &[0, 3, 5, 6, 7, 10],
            Scale::WholeTone => &[0, 2, 4, 6, 8, 10],
        }
    }

    /// The names, comma-separated (for error messages).
    pub fn names() -> String {
        Scale::ALL.map(Scale::name).join(", ")
    }
}

/// Pitch-class names, sharps (how a map is written back).
pub const PITCH_CLASSES: [&str; 12] = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];

/// A note name's pitch class 0..=11: a letter A–G (either case) and an
/// optional `#` or `b` (`C`, `C#`, `Db`, `bb`, `E#` = F, `Cb` = B).
pub fn pitch_class(name: &str) -> Option<u8> {
    let mut chars = name.chars();
    let natural: i8 = match chars.next()?.to_ascii_uppercase() {
        'C' => 0,
        'D' => 2,
        'E' => 4,
        'F' => 5,
        'G' => 7,
        'A' => 9,
        'B' => 11,
        _ => return None,
    };
    let accidental: i8 = match chars.as_str() {
        "" => 0,
        "#" | "♯" => 1,
        "b" | "♭" => -1,
        _ => return None,
    };
    Some((natural + accidental).rem_euclid(12) as u8)
}

/// MIDI note number of pitch class `pc` in `octave` (C4 = 60, so octave −1
/// starts at 0); may exceed 127.
pub fn note_number(pc: u8, octave: i8) -> i32 {
    12 * (i32::from(octave) + 1) + i32::from(pc)
}

/// How a note's velocity is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Velocity {
    /// Always this (1..=127).
    Fixed(u8),
    /// From this field's norm: 1 + round(norm × 126). When the report has no
    /// value for it, the station's last one; before any, [`DEFAULT_VELOCITY`].
    Field(Field),
}

/// Velocity 1..=127 from a norm: 1 + round(norm × 126) (never 0, which would
/// be a note-off).
pub fn velocity_of(norm: f64) -> u8 {
    1 + (norm.clamp(0.0, 1.0) * 126.0).round() as u8
}

/// One `[notes.FIELD]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteMap {
    /// The scale.
    pub scale: Scale,
    /// The root's pitch class, 0 (C) ..= 11 (B).
    pub root: u8,
    /// Lowest and highest octave (MIDI numbering, C4 = 60), lowest ≤ highest.
    pub octaves: (i8, i8),
    /// Velocity rule.
    pub velocity: Velocity,
    /// Time from note-on to note-off (media time), more than zero.
    pub length: Duration,
}

impl Default for NoteMap {
    fn default() -> Self {
        NoteMap {
            scale: Scale::Major,
            root: 0,
            octaves: DEFAULT_OCTAVES,
            velocity: Velocity::Fixed(DEFAULT_VELOCITY),
            length: DEFAULT_LENGTH,
        }
    }
}

impl NoteMap {
    /// The notes a value can play, ascending: every scale degree from the
    /// root in the lowest octave up to and including the root in the highest
    /// octave (so `octaves = [4, 4]` is the root alone). Notes outside
    /// 0..=127 are left out.
    pub fn degrees(&self) -> Vec<u8> {
        let (low, high) = self.octaves;
        let bottom = note_number(self.root, low);
        let top = note_number(self.root, high);
        let mut notes = Vec::new();
        let mut octave_root = bottom;
        while octave_root < top {
            notes.extend(self.scale.intervals().iter().map(|i| octave_root + i32::from(*i)));
            octave_root += 12;
        }
        notes.push(top);
        notes.into_iter().filter_map(|n| u8::try_from(n).ok().filter(|n| *n <= 127)).collect()
    }

    /// The note for a norm: degrees[round(norm × (n_degrees − 1))]. None only
    /// when no degree fits in 0..=127 (a map [`NoteMap::check`] refuses).
    pub fn pitch(&self, norm: f64) -> Option<u8> {
        let degrees = self.degrees();
        let last = degrees.len().checked_sub(1)?;
        let index = (norm.clamp(0.0, 1.0) * last as f64).round() as usize;
        degrees.get(index.min(last)).copied()
    }

    /// Whether the octave range fits MIDI: −1 ≤ lowest ≤ highest ≤ 9 and the
    /// root in the highest octave is at most 127.
    pub fn check_octaves(&self) -> Result<(), String> {
        let (low, high) = self.octaves;
        if !(MIN_OCTAVE..=MAX_OCTAVE).contains(&low) || !(MIN_OCTAVE..=MAX_OCTAVE).contains(&high) {
            return Err(format!(
                "octaves [{low}, {high}]: each must be within {MIN_OCTAVE}..={MAX_OCTAVE} (C4 = 60)"
            ));
        }
        if low > high {
            return Err(format!("octaves [{low}, {high}]: the lowest octave comes first"));
        }
        let top = note_number(self.root, high);
        if top > 127 {
            return Err(format!(
                "octaves [{low}, {high}]: the root {}{high} would be note {top}, above 127",
                PITCH_CLASSES[usize::from(self.root % 12)]
            ));
        }
        Ok(())
    }
}

/// A channel message's status byte: `kind` (0x80 note-off, 0x90 note-on,
/// 0xB0 control change, 0xE0 pitch bend) on channel 1..=16.
pub fn status(kind: u8, channel: u8) -> u8 {
    kind | (channel.wrapping_sub(1) & 0x0f)
}

/// Note On, channel 1..=16.
pub fn note_on(channel: u8, key: u8, velocity: u8) -> [u8; 3] {
    [status(0x90, channel), key & 0x7f, velocity.clamp(1, 127)]
}

/// Note Off, channel 1..=16.
pub fn note_off(channel: u8, key: u8) -> [u8; 3] {
    [status(0x80, channel), key & 0x7f, NOTE_OFF_VELOCITY]
}

/// Controller 123 (All Notes Off), channel 1..=16.
pub fn all_notes_off(channel: u8) -> [u8; 3] {
    [status(0xB0, channel), ALL_NOTES_OFF, 0]
}

/// Pitch bend, channel 1..=16, 14-bit value (LSB first, as on the wire).
pub fn pitch_bend(channel: u8, value: u16) -> [u8; 3] {
    let (msb, lsb) = crate::mapping::split14(value);
    [status(0xE0, channel), lsb, msb]
}

/// The MIDI engine's note state: what sounds and when it ends.
#[derive(Debug, Default, Clone)]
pub struct NotePlayer {
    /// (channel, key) → media time of its note-off.
    sounding: BTreeMap<(u8, u8), Duration>,
    /// Each station's newest observation time that played (or could have).
    newest: BTreeMap<StationId, DateTime<Utc>>,
    /// (channel, velocity field) → the last velocity it gave.
    last_velocity: BTreeMap<(u8, Field), u8>,
    /// Channels that have played a note.
    channels: BTreeSet<u8>,
}

impl NotePlayer {
    /// The notes a report plays on `channel` at media time `at` (call
    /// [`NotePlayer::advance`] up to `at` first). Only a report newer than
    /// the station's newest so far plays: a resend, the snapshot after a
    /// reconnection or a late older row repeat or precede what was played.
    /// A null (or a field held back by shaping) plays nothing.
    pub fn report(
        &mut self,
        map: &Map,
        channel: u8,
        observation: &Observation,
        at: Duration,
        out: &mut Vec<TimedMessage>,
    ) {
        if map.notes.is_empty() {
            return;
        }
        match self.newest.get(&observation.station_id) {
            Some(newest) if *newest >= observation.observed_at => return,
            _ => {
                self.newest.insert(observation.station_id.clone(), observation.observed_at);
            }
        }
        let measurements = &observation.measurements;
        for (field, notes) in &map.notes {
            if let Velocity::Field(source) = notes.velocity {
                if let Some(value) = measurements.get(source) {
                    self.last_velocity.insert((channel, source), velocity_of(map.field(source).norm(value)));
                }
            }
            let Some(value) = measurements.get(*field) else { continue };
            let Some(key) = notes.pitch(map.field(*field).norm(value)) else { continue };
            let velocity = match notes.velocity {
                Velocity::Fixed(velocity) => velocity,
                Velocity::Field(source) => {
                    self.last_velocity.get(&(channel, source)).copied().unwrap_or(DEFAULT_VELOCITY)
                }
            };
            // The same key still sounding on this channel ends first.
            if self.sounding.remove(&(channel, key)).is_some() {
                out.push(TimedMessage { at, bytes: note_off(channel, key) });
            }
            out.push(TimedMessage { at, bytes: note_on(channel, key, velocity) });
            self.sounding.insert((channel, key), at.saturating_add(notes.length));
            self.channels.insert(channel);
        }
    }

    /// The note-offs due at or before `now`, in time order.
    pub fn advance(&mut self, now: Duration, out: &mut Vec<TimedMessage>) {
        let mut due: Vec<(Duration, u8, u8)> = self
            .sounding
            .iter()
            .filter(|(_, off)| **off <= now)
            .map(|(&(channel, key), &off)| (off, channel, key))
            .collect();
        due.sort_unstable();
        for (off, channel, key) in due {
            self.sounding.remove(&(channel, key));
            out.push(TimedMessage { at: off, bytes: note_off(channel, key) });
        }
    }

    /// When the next note-off is due.
    pub fn next_off(&self) -> Option<Duration> {
        self.sounding.values().min().copied()
    }

    /// Whether a note is sounding.
    pub fn sounding(&self) -> bool {
        !self.sounding.is_empty()
    }

    /// At the end: every sounding note's note-off (at its own time), then
    /// All Notes Off (CC 123) at `end` on every channel that played a note.
    pub fn finish(&mut self, end: Duration, out: &mut Vec<TimedMessage>) {
        let from = out.len();
        self.advance(Duration::MAX, out);
        let end = out[from..].iter().map(|m| m.at).max().map_or(end, |last| last.max(end));
        for channel in &self.channels {
            out.push(TimedMessage { at: end, bytes: all_notes_off(*channel) });
        }
    }
}

/// What a port thread remembers of the notes it delivered, so that a port
/// that vanished and came back gets the note-offs it missed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PortNotes {
    /// (status channel 0..=15, key) delivered as on and not yet off.
    on: BTreeSet<(u8, u8)>,
    /// Channels (0..=15) that had a note delivered.
    channels: BTreeSet<u8>,
}

impl PortNotes {
    /// Notes a message the device received.
    pub fn delivered(&mut self, message: [u8; 3]) {
        let [status, key, value] = message;
        let channel = status & 0x0f;
        match status & 0xf0 {
            0x90 if value > 0 => {
                self.on.insert((channel, key));
                self.channels.insert(channel);
            }
            0x80 | 0x90 => {
                self.on.remove(&(channel, key));
            }
            0xB0 if key == ALL_NOTES_OFF => self.on.retain(|(c, _)| *c != channel),
            _ => {}
        }
    }

    /// Whether the device was left a note without its note-off.
    pub fn holding(&self) -> bool {
        !self.on.is_empty()
    }

    /// For a reopened port: a note-off for each note left sounding, then All
    /// Notes Off (CC 123) on every channel that played notes. Forgets them.
    pub fn release(&mut self) -> Vec<[u8; 3]> {
        let mut messages: Vec<[u8; 3]> =
            self.on.iter().map(|&(channel, key)| note_off(channel + 1, key)).collect();
        messages.extend(self.channels.iter().map(|channel| all_notes_off(channel + 1)));
        self.on.clear();
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buoycast::observation::Measurements;
    use chrono::TimeZone;

    fn notes(scale: Scale, root: &str, octaves: (i8, i8)) -> NoteMap {
        NoteMap { scale, root: pitch_class(root).expect("root"), octaves, ..NoteMap::default() }
    }

    #[test]
    fn note_names_and_octave_numbering() {
        assert_eq!(pitch_class("C"), Some(0));
        assert_eq!(pitch_class("c#"), Some(1));
        assert_eq!(pitch_class("Db"), Some(1));
        assert_eq!(pitch_class("Bb"), Some(10));
        assert_eq!(pitch_class("B"), Some(11));
        assert_eq!(pitch_class("Cb"), Some(11));
        assert_eq!(pitch_class("E#"), Some(5));
        assert_eq!(pitch_class("H"), None);
        assert_eq!(pitch_class("C4"), None);
        assert_eq!(pitch_class(""), None);
        assert_eq!(note_number(0, 4), 60, "C4 = 60");
        assert_eq!(note_number(9, 4), 69, "A4 = 69");
        assert_eq!(note_number(0, -1), 0);
        assert_eq!(note_number(7, 9), 127);
    }

    #[test]
    fn every_scale_starts_at_the_root_and_rises_within_an_octave() {
        for scale in Scale::ALL {
            let intervals = scale.intervals();
            assert_eq!(intervals[0], 0, "{}", scale.name());
            assert!(intervals.windows(2).all(|w| w[0] < w[1]) && intervals.last() < Some(&12));
            assert_eq!(Scale::from_name(scale.name()), Some(scale));
        }
        assert_eq!(Scale::from_name("Major"), None, "names are lowercase");
    }

    #[test]
    fn degrees_run_from_the_root_in_the_lowest_octave_to_the_root_in_the_highest() {
        let d = notes(Scale::MinorPentatonic, "D", (3, 5));
        assert_eq!(d.degrees(), vec![50, 53, 55, 57, 60, 62, 65, 67, 69, 72, 74]);
        assert_eq!(notes(Scale::Major, "C", (4, 5)).degrees(), vec![60, 62, 64, 65, 67, 69, 71, 72]);
        assert_eq!(notes(Scale::Chromatic, "C", (4, 6)).degrees().len(), 25);
        assert_eq!(notes(Scale::Major, "C", (2, 2)).degrees(), vec![36], "one octave number: the root alone");
        // G9 = 127 is the top.
        assert_eq!(notes(Scale::Major, "G", (8, 9)).degrees().last(), Some(&127));
    }

    #[test]
    fn pitch_is_the_degree_at_round_norm_times_n_minus_one() {
        let d = notes(Scale::MinorPentatonic, "D", (3, 5));
        // 11 degrees: index = round(norm × 10).
        assert_eq!(d.pitch(0.0), Some(50));
        assert_eq!(d.pitch(1.0), Some(74));
        assert_eq!(d.pitch(0.5), Some(62));
        assert_eq!(d.pitch(0.04), Some(50), "0.4 rounds down");
        assert_eq!(d.pitch(0.05), Some(53), "0.5 rounds up");
        assert_eq!(d.pitch(0.349), Some(57), "3.49 → index 3");
        assert_eq!(d.pitch(-3.0), Some(50), "clamped");
        assert_eq!(d.pitch(7.0), Some(74), "clamped");
        assert_eq!(notes(Scale::Blues, "A", (2, 2)).pitch(0.7), Some(45));
    }

    #[test]
    fn octaves_are_checked() {
        assert!(notes(Scale::Major, "C", (-1, 9)).check_octaves().is_ok());
        assert!(notes(Scale::Major, "G", (9, 9)).check_octaves().is_ok());
        let above = notes(Scale::Major, "G#", (8, 9)).check_octaves().expect_err("G#9 = 128");
        assert!(above.contains("128"), "{above}");
        assert!(notes(Scale::Major, "C", (5, 4)).check_octaves().is_err());
        assert!(notes(Scale::Major, "C", (-2, 4)).check_octaves().is_err());
        assert!(notes(Scale::Major, "C", (4, 10)).check_octaves().is_err());
    }

    #[test]
    fn velocity_is_one_plus_round_norm_times_126() {
        assert_eq!(velocity_of(0.0), 1);
        assert_eq!(velocity_of(1.0), 127);
        assert_eq!(velocity_of(0.5), 64);
        assert_eq!(velocity_of(2.0), 127);
        assert_eq!(velocity_of(f64::NAN), 1);
    }

    #[test]
    fn messages_on_the_wire() {
        assert_eq!(note_on(1, 60, 100), [0x90, 60, 100]);
        assert_eq!(note_off(16, 60), [0x8F, 60, 64]);
        assert_eq!(all_notes_off(3), [0xB2, 123, 0]);
        assert_eq!(pitch_bend(1, BEND_CENTER), [0xE0, 0, 64]);
        assert_eq!(pitch_bend(2, 16383), [0xE1, 127, 127]);
    }

    fn report(station: &str, minute: u32, wave: Option<f64>, wind: Option<f64>) -> Observation {
        let mut measurements = Measurements::default();
        measurements.set(Field::WaveHeightM, wave);
        measurements.set(Field::WindSpeedMps, wind);
        Observation {
            station_id: StationId::parse(station).expect("id"),
            observed_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).single().expect("time"),
            measurements,
        }
    }

    fn play(player: &mut NotePlayer, map: &Map, obs: &Observation, at_ms: u64) -> Vec<(u64, [u8; 3])> {
        let at = Duration::from_millis(at_ms);
        let mut out = Vec::new();
        player.advance(at, &mut out);
        player.report(map, 1, obs, at, &mut out);
        out.into_iter().map(|m| (m.at.as_millis() as u64, m.bytes)).collect()
    }

    #[test]
    fn player_pairs_every_note_and_retriggers_and_skips_repeats() {
        let map = Map::from_toml(
            "[notes.waveHeightM]\nscale = \"chromatic\"\nroot = \"C\"\noctaves = [4, 5]\n\
             velocity = \"windSpeedMps\"\nlength_ms = 1000\n",
            "<map>",
        )
        .expect("valid");
        let mut player = NotePlayer::default();
        // 5 m of 0..10 → index 6 of 13 → F#4 = 66; wind 15 of 0..30 → 64.
        assert_eq!(
            play(&mut player, &map, &report("a", 0, Some(5.0), Some(15.0)), 0),
            vec![(0, [0x90, 66, 64])]
        );
        // The same report again (a resend): nothing.
        assert_eq!(play(&mut player, &map, &report("a", 0, Some(5.0), Some(15.0)), 100), vec![]);
        // A newer one on the same key, no wind: old note ends first, last wind velocity kept.
        assert_eq!(
            play(&mut player, &map, &report("a", 1, Some(5.0), None), 200),
            vec![(200, [0x80, 66, 64]), (200, [0x90, 66, 64])]
        );
        // A null wave plays nothing; the pending note-off comes at 1200.
        assert_eq!(play(&mut player, &map, &report("a", 2, None, Some(30.0)), 300), vec![]);
        assert_eq!(player.next_off(), Some(Duration::from_millis(1200)));
        assert_eq!(
            play(&mut player, &map, &report("a", 3, Some(0.0), None), 1500),
            vec![(1200, [0x80, 66, 64]), (1500, [0x90, 60, 127])]
        );
        let mut out = Vec::new();
        player.finish(Duration::from_millis(1600), &mut out);
        let out: Vec<(u64, [u8; 3])> = out.into_iter().map(|m| (m.at.as_millis() as u64, m.bytes)).collect();
        assert_eq!(out, vec![(2500, [0x80, 60, 64]), (2500, [0xB0, 123, 0])]);
        assert!(!player.sounding());
    }

    #[test]
    fn fixed_velocity_and_a_station_without_notes_map() {
        let map = Map::from_toml("[notes.waveHeightM]\nvelocity = 90\n", "<map>").expect("valid");
        let mut player = NotePlayer::default();
        // Default C major, octaves [4, 6]: 15 degrees; 10 m → C6 = 84.
        assert_eq!(
            play(&mut player, &map, &report("a", 0, Some(10.0), Some(0.0)), 0),
            vec![(0, [0x90, 84, 90])]
        );
        let mut quiet = NotePlayer::default();
        assert_eq!(play(&mut quiet, &Map::builtin(), &report("a", 0, Some(10.0), None), 0), vec![]);
    }

    #[test]
    fn a_reopened_port_gets_the_note_offs_it_missed() {
        let mut port = PortNotes::default();
        assert_eq!(port.release(), Vec::<[u8; 3]>::new(), "nothing played: nothing to release");
        port.delivered([0xB0, 20, 5]);
        port.delivered([0x90, 60, 100]);
        port.delivered([0x91, 62, 100]);
        port.delivered([0x91, 64, 100]);
        port.delivered([0x80, 60, 64]);
        port.delivered([0x91, 64, 0]);
        // 62 on channel 2 was left sounding when the port vanished.
        assert!(port.holding());
        assert_eq!(port.release(), vec![[0x81, 62, 64], [0xB0, 123, 0], [0xB1, 123, 0]]);
        assert!(!port.holding());
        assert_eq!(port.release(), vec![[0xB0, 123, 0], [0xB1, 123, 0]], "the notes are forgotten");
    }

    fn refused(text: &str) -> String {
        match Map::from_toml(text, "m.toml") {
            Ok(_) => panic!("accepted: {text}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn bad_notes_tables_are_refused_with_their_line() {
        let head = "[osc]\nprefix = \"/buoy\"\n[notes.waveHeightM]\n";
        for (body, line, words) in [
            ("scale = \"ionian\"\n", 4, "unknown scale \"ionian\""),
            ("root = \"H\"\n", 4, "root \"H\""),
            ("root = 128\n", 4, "root 128"),
            ("root = 1.5\n", 4, "root"),
            ("scale = \"major\"\noctaves = [5, 4]\n", 5, "lowest octave comes first"),
            ("octaves = [4]\n", 4, "two octave numbers"),
            ("octaves = [3, 10]\n", 4, "-1..=9"),
            ("root = \"A\"\noctaves = [8, 9]\n", 5, "above 127"),
            ("velocity = \"waveHeight\"\n", 4, "unknown field \"waveHeight\""),
            ("velocity = 0\n", 4, "velocity 0"),
            ("velocity = 128\n", 4, "velocity 128"),
            ("velocity = 0.5\n", 4, "velocity"),
            ("length_ms = 0\n", 4, "length_ms 0"),
            ("length_ms = -5\n", 4, "length_ms -5"),
            ("channel = 2\n", 4, "unknown field `channel`"),
        ] {
            let error = refused(&format!("{head}{body}"));
            assert!(error.starts_with(&format!("m.toml:{line}: ")), "{body}: {error}");
            assert!(error.contains(words), "{body}: {error}");
        }
        let error = refused("[notes.waves]\nscale = \"major\"\n");
        assert!(error.starts_with("m.toml:1: unknown field \"waves\""), "{error}");
    }

    #[test]
    fn pitchbend_is_one_field_per_channel() {
        let map = Map::from_toml("[fields.pressureHpa]\npitchbend = true\n", "<map>").expect("valid");
        assert!(map.pitchbend.contains(&Field::PressureHpa));
        let error =
            refused("[fields.pressureHpa]\npitchbend = true\n[fields.tideFt]\nmin = -5\npitchbend = true\n");
        assert!(error.starts_with("m.toml:5: pitchbend is used twice"), "{error}");
        assert!(refused("[fields.tideFt]\npitchbend = 1\n").starts_with("m.toml:2: "));
    }

    #[test]
    fn notes_and_pitchbend_round_trip_through_toml() {
        let text = "[fields.pressureHpa]\npitchbend = true\n\n[notes.waveHeightM]\nscale = \"blues\"\n\
                    root = \"Eb\"\noctaves = [2, 4]\nvelocity = \"gustMps\"\nlength_ms = 1500\n\n\
                    [notes.tideFt]\nroot = 62\nvelocity = 30\n";
        let map = Map::from_toml(text, "<map>").expect("valid");
        let wave = &map.notes[&Field::WaveHeightM];
        assert_eq!(
            *wave,
            NoteMap {
                scale: Scale::Blues,
                root: 3,
                octaves: (2, 4),
                velocity: Velocity::Field(Field::GustMps),
                length: Duration::from_millis(1500),
            }
        );
        assert_eq!(map.notes[&Field::TideFt].root, 2, "a MIDI number gives its pitch class: 62 is D");
        assert_eq!(map.notes[&Field::TideFt].velocity, Velocity::Fixed(30));
        assert_eq!(Map::from_toml(&map.to_toml(), "t").expect("valid"), map);
    }
}
