//! The mapping from measurements to 0..1 `norm` values, MIDI CCs and
//! channels, and the `--map` TOML file that overrides it (docs/REFERENCE.md,
//! MIDI map and Mapping file).
//!
//! The math is pure (no I/O besides [`Map::load`] reading the file). It does
//! not decide *when* a value is sent; the OSC and MIDI sinks do.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use buoycast::observation::{Field, StationId, N_FIELDS};
use serde::Deserialize;
use toml::Spanned;

/// The OSC address prefix when the map does not set one.
pub const DEFAULT_PREFIX: &str = "/buoy";

/// Highest CC number a map may use (120–127 are channel-mode messages).
pub const MAX_CC: u8 = 119;

/// How `x` (the clamped position in the range) becomes `y` (the norm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Curve {
    /// y = x
    Linear,
    /// y = ln(1 + 9x) / ln 10: spreads the low end.
    Log,
    /// y = (10^x − 1) / 9: spreads the high end.
    Exp,
}

impl Curve {
    /// Applies the curve to `x` in 0..1.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Curve::Linear => x,
            Curve::Log => (1.0 + 9.0 * x).ln() / std::f64::consts::LN_10,
            Curve::Exp => (10f64.powf(x) - 1.0) / 9.0,
        }
    }

    /// The name used in map files.
    pub const fn name(self) -> &'static str {
        match self {
            Curve::Linear => "linear",
            Curve::Log => "log",
            Curve::Exp => "exp",
        }
    }
}

/// How one field is scaled and which CC carries it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldMap {
    /// Value that maps to x = 0.
    pub min: f64,
    /// Value that maps to x = 1 (always greater than `min`).
    pub max: f64,
    /// Shape applied after clamping.
    pub curve: Curve,
    /// `y = 1 − y` after the curve.
    pub invert: bool,
    /// MIDI Control Change number, 0..=119.
    pub cc: u8,
    /// `enabled = false` switches the field off: no `/buoy/{station}/{field}`
    /// messages, no CC (its CC number is then free for another field).
    pub enabled: bool,
    /// `smooth`, `quantize`, `deadband`, `rate` ([`crate::shape`]).
    pub shaping: crate::shape::Shaping,
}

impl FieldMap {
    /// The field's 0..1 value: x = (value − min) / (max − min) clamped to
    /// 0..1, then the curve, then invert. Always finite and within 0..1.
    pub fn norm(&self, value: f64) -> f64 {
        let span = self.max - self.min;
        let x =
            if span > 0.0 && value.is_finite() { ((value - self.min) / span).clamp(0.0, 1.0) } else { 0.0 };
        let y = self.curve.apply(x).clamp(0.0, 1.0);
        if self.invert {
            1.0 - y
        } else {
            y
        }
    }
}

/// 7-bit CC value: round(norm × 127).
pub fn cc7(norm: f64) -> u8 {
    (norm.clamp(0.0, 1.0) * 127.0).round() as u8
}

/// 14-bit CC value: round(norm × 16383).
pub fn cc14(norm: f64) -> u16 {
    (norm.clamp(0.0, 1.0) * 16383.0).round() as u16
}

/// Splits a 14-bit value into (MSB, LSB): MSB = v >> 7, LSB = v & 127.
pub fn split14(v: u16) -> (u8, u8) {
    (((v >> 7) & 0x7f) as u8, (v & 0x7f) as u8)
}

/// The whole mapping: OSC prefix, one [`FieldMap`] per field, fixed station channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    /// OSC address prefix replacing `/buoy`, e.g. `/buoy` or `/sea/buoys`.
    pub prefix: String,
    /// Indexed by [`Field::index`].
    pub fields: [FieldMap; N_FIELDS],
    /// Stations pinned to a MIDI channel (1..=16); others are assigned in order of appearance.
    pub stations: BTreeMap<StationId, u8>,
    /// `[notes.F]`: fields whose reports play notes (see [`crate::sink::notes`]).
    pub notes: BTreeMap<Field, crate::sink::notes::NoteMap>,
    /// `pitchbend = true`: fields that drive their station's pitch bend (one per map).
    pub pitchbend: BTreeSet<Field>,
    /// `--spectrum-audible`: where spectra's bands are also sent as audible
    /// frequencies (not a map-file key).
    pub spectrum_audible: Option<crate::spectrum::Audible>,
    /// `--spectrum-channel`: the MIDI channel (1..=16) of the spectra's band
    /// bank, kept from the stations (not a map-file key).
    pub spectrum_channel: Option<u8>,
}

impl Default for Map {
    fn default() -> Self {
        Map::builtin()
    }
}

/// The default table of docs/REFERENCE.md, MIDI map: (CC, min, max) per field.
const fn builtin_field(field: Field) -> (u8, f64, f64) {
    match field {
        Field::WaveHeightM => (20, 0.0, 10.0),
        Field::DominantPeriodS => (21, 0.0, 20.0),
        Field::AveragePeriodS => (22, 0.0, 15.0),
        Field::MeanWaveDirDeg => (23, 0.0, 360.0),
        Field::WindSpeedMps => (24, 0.0, 30.0),
        Field::WindDirDeg => (25, 0.0, 360.0),
        Field::GustMps => (26, 0.0, 40.0),
        Field::PressureHpa => (27, 950.0, 1050.0),
        Field::AirTempC => (28, -20.0, 40.0),
        Field::WaterTempC => (29, -2.0, 35.0),
        Field::DewpointC => (30, -20.0, 30.0),
        Field::VisibilityNmi => (31, 0.0, 10.0),
        Field::PressureTendencyHpa => (85, -5.0, 5.0),
        Field::TideFt => (86, -5.0, 10.0),
    }
}

/// A map file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// The file could not be read.
    #[error("{path}: cannot read the map file: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is read but wrong; `line` is 1-based.
    #[error("{origin}:{line}: {reason}")]
    Invalid {
        /// The file name (or `<map>` for text).
        origin: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    osc: Option<RawOsc>,
    #[serde(default)]
    fields: BTreeMap<Spanned<String>, RawField>,
    #[serde(default)]
    stations: BTreeMap<Spanned<String>, RawStation>,
    #[serde(default)]
    notes: BTreeMap<Spanned<String>, RawNotes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOsc {
    prefix: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn value(&self) -> f64 {
        match *self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    min: Option<Spanned<Number>>,
    max: Option<Spanned<Number>>,
    curve: Option<Spanned<Curve>>,
    invert: Option<bool>,
    cc: Option<Spanned<i64>>,
    enabled: Option<bool>,
    smooth: Option<Spanned<Number>>,
    quantize: Option<Spanned<i64>>,
    deadband: Option<Spanned<Number>>,
    rate: Option<Spanned<Number>>,
    pitchbend: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStation {
    channel: Option<Spanned<i64>>,
}

impl Map {
    /// The built-in map (docs/REFERENCE.md, MIDI map; `examples/maps/default.toml`).
    pub fn builtin() -> Map {
        let fields = Field::ALL.map(|field| {
            let (cc, min, max) = builtin_field(field);
            FieldMap {
                min,
                max,
                curve: Curve::Linear,
                invert: false,
                cc,
                enabled: true,
                shaping: crate::shape::Shaping::default(),
            }
        });
        Map {
            prefix: DEFAULT_PREFIX.to_owned(),
            fields,
            stations: BTreeMap::new(),
            notes: BTreeMap::new(),
            pitchbend: BTreeSet::new(),
            spectrum_audible: None,
            spectrum_channel: None,
        }
    }

    /// How `field` is mapped.
    pub fn field(&self, field: Field) -> &FieldMap {
        &self.fields[field.index()]
    }

    /// Reads and validates a map file.
    pub fn load(path: &Path) -> Result<Map, MapError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| MapError::Read { path: path.display().to_string(), source })?;
        Map::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates map text; every key overrides the built-in map.
    pub fn from_toml(text: &str, origin: &str) -> Result<Map, MapError> {
        let invalid = |span: Option<Range<usize>>, reason: String| MapError::Invalid {
            origin: origin.to_owned(),
            line: span.map_or(1, |span| line_of(text, span.start)),
            reason,
        };
        let raw: RawMap = toml::from_str(text).map_err(|error| {
            let reason = error.message().trim_end_matches('.').to_owned();
            invalid(error.span(), reason)
        })?;
        let mut map = Map::builtin();
        if let Some(prefix) = raw.osc.and_then(|osc| osc.prefix) {
            check_prefix(prefix.get_ref()).map_err(|reason| invalid(Some(prefix.span()), reason))?;
            map.prefix = prefix.get_ref().clone();
        }
        let mut cc_lines: BTreeMap<Field, Range<usize>> = BTreeMap::new();
        for (name, raw_field) in &raw.fields {
            let field = Field::from_name(name.get_ref()).ok_or_else(|| {
                invalid(
                    Some(name.span()),
                    format!(
                        "unknown field {:?} (fields are the observation names, e.g. waveHeightM)",
                        name.get_ref()
                    ),
                )
            })?;
            let entry = &mut map.fields[field.index()];
            if let Some(min) = &raw_field.min {
                entry.min = finite(min, "min").map_err(|reason| invalid(Some(min.span()), reason))?;
            }
            if let Some(max) = &raw_field.max {
                entry.max = finite(max, "max").map_err(|reason| invalid(Some(max.span()), reason))?;
            }
            if entry.min >= entry.max {
                let span = raw_field.max.as_ref().or(raw_field.min.as_ref()).map(|v| v.span());
                return Err(invalid(
                    span,
                    format!("{field}: min {} must be less than max {}", entry.min, entry.max),
                ));
            }
            if let Some(curve) = &raw_field.curve {
                entry.curve = *curve.get_ref();
            }
            if let Some(invert) = raw_field.invert {
                entry.invert = invert;
            }
            if let Some(enabled) = raw_field.enabled {
                entry.enabled = enabled;
            }
            // Shaping: each key a positive number (crate::shape has the formulas).
            let positive = |value: &Spanned<Number>, key: &str| {
                let v = finite(value, key).map_err(|reason| invalid(Some(value.span()), reason))?;
                if v > 0.0 {
                    Ok(v)
                } else {
                    Err(invalid(Some(value.span()), format!("{field}: {key} {v} must be more than 0")))
                }
            };
            if let Some(smooth) = &raw_field.smooth {
                entry.shaping.smooth = Some(positive(smooth, "smooth")?);
            }
            if let Some(deadband) = &raw_field.deadband {
                entry.shaping.deadband = Some(positive(deadband, "deadband")?);
            }
            if let Some(rate) = &raw_field.rate {
                entry.shaping.rate = Some(positive(rate, "rate")?);
            }
            if let Some(quantize) = &raw_field.quantize {
                let steps = *quantize.get_ref();
                entry.shaping.quantize =
                    Some(u32::try_from(steps).ok().filter(|s| *s >= 2).ok_or_else(|| {
                        invalid(
                            Some(quantize.span()),
                            format!("{field}: quantize {steps} must be 2 steps or more"),
                        )
                    })?);
            }
            if let Some(cc) = &raw_field.cc {
                let value = *cc.get_ref();
                entry.cc = u8::try_from(value).ok().filter(|cc| *cc <= MAX_CC).ok_or_else(|| {
                    invalid(Some(cc.span()), format!("{field}: cc {value} is outside 0..={MAX_CC}"))
                })?;
                cc_lines.insert(field, cc.span());
            }
        }
        let mut seen: BTreeMap<u8, Field> = BTreeMap::new();
        // Report a duplicate at the key the file set (the built-in one cannot be wrong alone).
        // Only fields that are on use their CC.
        let on = |field: &Field| map.field(*field).enabled;
        let mut order: Vec<Field> =
            Field::ALL.into_iter().filter(|f| !cc_lines.contains_key(f)).filter(on).collect();
        let mut in_file: Vec<(usize, Field)> =
            cc_lines.iter().filter(|(f, _)| on(f)).map(|(f, span)| (span.start, *f)).collect();
        in_file.sort_unstable();
        order.extend(in_file.into_iter().map(|(_, f)| f));
        for field in order {
            let cc = map.field(field).cc;
            if let Some(other) = seen.insert(cc, field) {
                return Err(invalid(
                    cc_lines.get(&field).cloned(),
                    format!("cc {cc} is used twice: by {other} and by {field}"),
                ));
            }
        }
        for (id, station) in &raw.stations {
            let station_id = StationId::parse(id.get_ref())
                .map_err(|error| invalid(Some(id.span()), format!("station {:?}: {error}", id.get_ref())))?;
            if let Some(channel) = &station.channel {
                let value = *channel.get_ref();
                let channel_u8 =
                    u8::try_from(value).ok().filter(|c| (1..=16).contains(c)).ok_or_else(|| {
                        invalid(
                            Some(channel.span()),
                            format!("station {station_id}: channel {value} is outside 1..=16"),
                        )
                    })?;
                map.stations.insert(station_id, channel_u8);
            }
        }
        apply_notes(&raw.fields, &raw.notes, &mut map, &invalid)?;
        Ok(map)
    }

    /// With `--cc14`, CC n (< 32) also uses n + 32 for its LSB: refuses a map
    /// where that LSB collides with another field's CC.
    pub fn check_cc14(&self) -> Result<(), String> {
        let enabled = || Field::ALL.into_iter().filter(|f| self.field(*f).enabled);
        let used: BTreeMap<u8, Field> = enabled().map(|f| (self.field(f).cc, f)).collect();
        for field in enabled() {
            let cc = self.field(field).cc;
            if cc < 32 {
                if let Some(other) = used.get(&(cc + 32)) {
                    return Err(format!(
                        "--cc14: {field} on cc {cc} needs cc {} for its LSB, used by {other}",
                        cc + 32
                    ));
                }
            }
        }
        Ok(())
    }

    /// The channels pinned by the map.
    pub fn pinned_channels(&self) -> BTreeSet<u8> {
        self.stations.values().copied().chain(self.spectrum_channel).collect()
    }

    /// This map as TOML, in the layout of `examples/maps/default.toml`.
    pub fn to_toml(&self) -> String {
        let mut out = format!("[osc]\nprefix = {:?}\n", self.prefix);
        for field in Field::ALL {
            let m = self.field(field);
            out.push_str(&format!(
                "\n[fields.{field}]\nmin = {:?}\nmax = {:?}\ncurve = \"{}\"\ninvert = {}\ncc = {}\n",
                m.min,
                m.max,
                m.curve.name(),
                m.invert,
                m.cc
            ));
            if !m.enabled {
                out.push_str("enabled = false\n");
            }
            let shaping = &m.shaping;
            for (key, value) in
                [("smooth", shaping.smooth), ("deadband", shaping.deadband), ("rate", shaping.rate)]
            {
                if let Some(value) = value {
                    out.push_str(&format!("{key} = {value:?}\n"));
                }
            }
            if let Some(steps) = shaping.quantize {
                out.push_str(&format!("quantize = {steps}\n"));
            }
            if self.pitchbend.contains(&field) {
                out.push_str("pitchbend = true\n");
            }
        }
        for (station, channel) in &self.stations {
            out.push_str(&format!("\n[stations.\"{station}\"]\nchannel = {channel}\n"));
        }
        out.push_str(&notes_toml(self));
        out
    }
}

fn finite(value: &Spanned<Number>, key: &str) -> Result<f64, String> {
    let v = value.get_ref().value();
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{key} {v} is not a finite number"))
    }
}

/// An OSC address prefix: `/` then segments of printable ASCII without the
/// characters OSC reserves (space # * , / ? [ ] { }), no trailing `/`.
fn check_prefix(prefix: &str) -> Result<(), String> {
    let bad = || {
        format!("osc prefix {prefix:?} must look like /buoy: a '/' then names without spaces or # * , ? [ ] {{ }}")
    };
    let rest = prefix.strip_prefix('/').ok_or_else(bad)?;
    if rest.is_empty() {
        return Err(bad());
    }
    for segment in rest.split('/') {
        if segment.is_empty() || !segment.chars().all(|c| c.is_ascii_graphic() && !"#*,?[]{}".contains(c)) {
            return Err(bad());
        }
    }
    Ok(())
}

/// 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
}

// ---------------------------------------------------------------------------
// Notes and pitch bend: `[notes.F]` tables and `fields.F.pitchbend`
// (docs/REFERENCE.md, Mapping file; the note math is in crate::sink::notes).
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotes {
    scale: Option<Spanned<String>>,
    root: Option<Spanned<toml::Value>>,
    octaves: Option<Spanned<Vec<i64>>>,
    velocity: Option<Spanned<toml::Value>>,
    length_ms: Option<Spanned<i64>>,
}

type Invalid<'a> = &'a dyn Fn(Option<Range<usize>>, String) -> MapError;

/// Reads the `[notes.F]` tables and the `pitchbend` keys into `map`.
fn apply_notes(
    raw_fields: &BTreeMap<Spanned<String>, RawField>,
    raw_notes: &BTreeMap<Spanned<String>, RawNotes>,
    map: &mut Map,
    invalid: Invalid<'_>,
) -> Result<(), MapError> {
    use crate::sink::notes::{pitch_class, NoteMap, Scale, Velocity};

    // pitchbend: one field per map (a channel has one bend), reported at the later key.
    let mut bends: Vec<(Range<usize>, Field)> = Vec::new();
    for (name, raw_field) in raw_fields {
        let Some(field) = Field::from_name(name.get_ref()) else { continue };
        if let Some(bend) = raw_field.pitchbend.as_ref().filter(|bend| *bend.get_ref()) {
            bends.push((bend.span(), field));
        }
    }
    bends.sort_by_key(|(span, _)| span.start);
    if let [(_, first), (span, second), ..] = bends.as_slice() {
        return Err(invalid(
            Some(span.clone()),
            format!(
                "pitchbend is used twice: by {first} and by {second} (a station's channel has one pitch bend)"
            ),
        ));
    }
    map.pitchbend = bends.into_iter().map(|(_, field)| field).collect();

    for (name, raw) in raw_notes {
        let field = Field::from_name(name.get_ref()).ok_or_else(|| {
            invalid(
                Some(name.span()),
                format!(
                    "unknown field {:?} in [notes] (fields are the observation names, e.g. waveHeightM)",
                    name.get_ref()
                ),
            )
        })?;
        let mut notes = NoteMap::default();
        if let Some(scale) = &raw.scale {
            notes.scale = Scale::from_name(scale.get_ref()).ok_or_else(|| {
                invalid(
                    Some(scale.span()),
                    format!("notes.{field}: unknown scale {:?} (one of {})", scale.get_ref(), Scale::names()),
                )
            })?;
        }
        if let Some(root) = &raw.root {
            let pc = match root.get_ref() {
                toml::Value::String(name) => pitch_class(name),
                toml::Value::Integer(number) => {
                    u8::try_from(*number).ok().filter(|n| *n <= 127).map(|n| n % 12)
                }
                _ => None,
            };
            notes.root = pc.ok_or_else(|| {
                invalid(
                    Some(root.span()),
                    format!(
                        "notes.{field}: root {} must be a note name (C, C#, Db … B) or a MIDI number 0..=127",
                        root.get_ref()
                    ),
                )
            })?;
        }
        if let Some(octaves) = &raw.octaves {
            let bad = |reason: String| invalid(Some(octaves.span()), format!("notes.{field}: {reason}"));
            let [low, high] = octaves.get_ref().as_slice() else {
                return Err(bad(
                    "octaves must be two octave numbers, [lowest, highest], e.g. [3, 5]".to_owned()
                ));
            };
            let octave = |n: i64| {
                i8::try_from(n).map_err(|_| {
                    bad(format!("octaves [{low}, {high}]: each must be within -1..=9 (C4 = 60)"))
                })
            };
            notes.octaves = (octave(*low)?, octave(*high)?);
        }
        notes.check_octaves().map_err(|reason| {
            let span =
                raw.octaves.as_ref().map(Spanned::span).or_else(|| raw.root.as_ref().map(Spanned::span));
            invalid(span.or(Some(name.span())), format!("notes.{field}: {reason}"))
        })?;
        if let Some(velocity) = &raw.velocity {
            let bad = |reason: String| invalid(Some(velocity.span()), format!("notes.{field}: {reason}"));
            notes.velocity = match velocity.get_ref() {
                toml::Value::String(source) => {
                    Velocity::Field(Field::from_name(source).ok_or_else(|| {
                        bad(format!("velocity: unknown field {source:?} (a field name, or a number 1..=127)"))
                    })?)
                }
                toml::Value::Integer(number) => {
                    Velocity::Fixed(u8::try_from(*number).ok().filter(|v| (1..=127).contains(v)).ok_or_else(
                        || bad(format!("velocity {number} is outside 1..=127 (0 would be a note-off)")),
                    )?)
                }
                other => {
                    return Err(bad(format!(
                        "velocity {other} must be a field name or a whole number 1..=127"
                    )))
                }
            };
        }
        if let Some(length) = &raw.length_ms {
            let ms = *length.get_ref();
            notes.length = u64::try_from(ms)
                .ok()
                .filter(|ms| *ms > 0)
                .map(std::time::Duration::from_millis)
                .ok_or_else(|| {
                    invalid(Some(length.span()), format!("notes.{field}: length_ms {ms} must be 1 or more"))
                })?;
        }
        map.notes.insert(field, notes);
    }
    Ok(())
}

/// The `[notes.F]` tables as TOML (the `pitchbend` keys go with `[fields.F]`).
fn notes_toml(map: &Map) -> String {
    use crate::sink::notes::{Velocity, PITCH_CLASSES};

    let mut out = String::new();
    for (field, notes) in &map.notes {
        let velocity = match notes.velocity {
            Velocity::Fixed(velocity) => velocity.to_string(),
            Velocity::Field(source) => format!("\"{source}\""),
        };
        out.push_str(&format!(
            "\n[notes.{field}]\nscale = \"{}\"\nroot = \"{}\"\noctaves = [{}, {}]\nvelocity = {velocity}\nlength_ms = {}\n",
            notes.scale.name(),
            PITCH_CLASSES[usize::from(notes.root % 12)],
            notes.octaves.0,
            notes.octaves.1,
            notes.length.as_millis(),
        ));
    }
    out
}

/// Gives each station its MIDI channel: pinned ones from the map, the others
/// 1, 2, … in order of appearance, skipping 10 (drums) and pinned channels.
/// When all 15 are taken, later stations get no channel (and are warned about
/// once by the caller) rather than sharing one and mixing their values.
#[derive(Debug, Clone)]
pub struct ChannelAssigner {
    /// Known stations and their channel (1..=16); `None` when none was left.
    assigned: BTreeMap<StationId, Option<u8>>,
    /// Channels still free for new stations, in order.
    free: Vec<u8>,
}

impl ChannelAssigner {
    /// Starts from the map's pinned stations.
    pub fn new(map: &Map) -> ChannelAssigner {
        let pinned = map.pinned_channels();
        let free = (1..=16u8).filter(|c| *c != 10 && !pinned.contains(c)).collect();
        let assigned = map.stations.iter().map(|(id, ch)| (id.clone(), Some(*ch))).collect();
        ChannelAssigner { assigned, free }
    }

    /// Whether the station has its channel already (pinned or assigned).
    pub fn knows(&self, station: &StationId) -> bool {
        self.assigned.contains_key(station)
    }

    /// The station's channel (1..=16); the bool is true when this call just
    /// found there is none left for it.
    pub fn channel(&mut self, station: &StationId) -> (Option<u8>, bool) {
        if let Some(channel) = self.assigned.get(station) {
            return (*channel, false);
        }
        let channel = if self.free.is_empty() { None } else { Some(self.free.remove(0)) };
        self.assigned.insert(station.clone(), channel);
        (channel, channel.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_follows_the_documented_table() {
        let map = Map::builtin();
        assert_eq!(map.field(Field::WaveHeightM).cc, 20);
        assert_eq!(map.field(Field::PressureHpa).min, 950.0);
        assert_eq!(map.field(Field::TideFt).cc, 86);
        assert_eq!(map.prefix, "/buoy");
    }

    #[test]
    fn builtin_round_trips_through_toml() {
        let map = Map::builtin();
        assert_eq!(Map::from_toml(&map.to_toml(), "t").expect("valid"), map);
    }

    #[test]
    fn channels_skip_ten_and_pinned_and_run_out() {
        let mut map = Map::builtin();
        map.stations.insert(StationId::parse("pinned").expect("id"), 2);
        let mut channels = ChannelAssigner::new(&map);
        let got: Vec<Option<u8>> =
            (0..15).map(|i| channels.channel(&StationId::parse(&format!("s{i}")).expect("id")).0).collect();
        let expected: Vec<Option<u8>> =
            [1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16].into_iter().map(Some).chain([None]).collect();
        assert_eq!(got, expected);
        assert_eq!(channels.channel(&StationId::parse("pinned").expect("id")), (Some(2), false));
    }
}
