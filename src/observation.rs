//! The observation schema: one NDBC standard-meteorological row, its field
//! names, and its three wire forms.
//!
//! This is the only place that knows the field names of docs/REFERENCE.md,
//! Observation (`stationId`, `waveHeightM`, …). Everything else (parser, store,
//! bus, server, bridge) goes through [`Field`], [`Observation`] and
//! [`ObservationEvent`].
//!
//! Wire forms:
//! - REST and `buoycast parse`: [`Observation`] with `observedAt`
//!   (serde `Serialize`, and the fast [`Observation::write_json`]).
//! - Bus message on `observations:new`: [`ObservationEvent::decode_bus`]
//!   (tolerant: the original system's 7-field messages decode) and
//!   [`ObservationEvent::to_bus_json`].
//! - Stream event data (SSE / WebSocket): [`ObservationEvent::write_stream_json`],
//!   always all 14 measurement keys unless a [`FieldSet`] filter narrows them.
//!
//! It deliberately does no I/O.

use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// One of the 14 measurements (docs/REFERENCE.md, Observation), in documented order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    WindDirDeg,
    WindSpeedMps,
    GustMps,
    WaveHeightM,
    DominantPeriodS,
    AveragePeriodS,
    MeanWaveDirDeg,
    PressureHpa,
    AirTempC,
    WaterTempC,
    DewpointC,
    VisibilityNmi,
    PressureTendencyHpa,
    TideFt,
}

/// Number of measurement fields.
pub const N_FIELDS: usize = 14;

impl Field {
    /// Every field, in documented order (also the order of JSON keys we write).
    pub const ALL: [Field; N_FIELDS] = [
        Field::WindDirDeg,
        Field::WindSpeedMps,
        Field::GustMps,
        Field::WaveHeightM,
        Field::DominantPeriodS,
        Field::AveragePeriodS,
        Field::MeanWaveDirDeg,
        Field::PressureHpa,
        Field::AirTempC,
        Field::WaterTempC,
        Field::DewpointC,
        Field::VisibilityNmi,
        Field::PressureTendencyHpa,
        Field::TideFt,
    ];

    /// The camelCase name used in JSON, on the bus, in OSC addresses and in map files.
    pub const fn name(self) -> &'static str {
        match self {
            Field::WindDirDeg => "windDirDeg",
            Field::WindSpeedMps => "windSpeedMps",
            Field::GustMps => "gustMps",
            Field::WaveHeightM => "waveHeightM",
            Field::DominantPeriodS => "dominantPeriodS",
            Field::AveragePeriodS => "averagePeriodS",
            Field::MeanWaveDirDeg => "meanWaveDirDeg",
            Field::PressureHpa => "pressureHpa",
            Field::AirTempC => "airTempC",
            Field::WaterTempC => "waterTempC",
            Field::DewpointC => "dewpointC",
            Field::VisibilityNmi => "visibilityNmi",
            Field::PressureTendencyHpa => "pressureTendencyHpa",
            Field::TideFt => "tideFt",
        }
    }

    /// The snake_case column name used in the SQL schema.
    pub const fn column(self) -> &'static str {
        match self {
            Field::WindDirDeg => "wind_dir_deg",
            Field::WindSpeedMps => "wind_speed_mps",
            Field::GustMps => "gust_mps",
            Field::WaveHeightM => "wave_height_m",
            Field::DominantPeriodS => "dominant_period_s",
            Field::AveragePeriodS => "average_period_s",
            Field::MeanWaveDirDeg => "mean_wave_dir_deg",
            Field::PressureHpa => "pressure_hpa",
            Field::AirTempC => "air_temp_c",
            Field::WaterTempC => "water_temp_c",
            Field::DewpointC => "dewpoint_c",
            Field::VisibilityNmi => "visibility_nmi",
            Field::PressureTendencyHpa => "pressure_tendency_hpa",
            Field::TideFt => "tide_ft",
        }
    }

    /// Unit, as shown to people (OSCQuery UNIT, dashboard).
    pub const fn unit(self) -> &'static str {
        match self {
            Field::WindDirDeg | Field::MeanWaveDirDeg => "deg",
            Field::WindSpeedMps | Field::GustMps => "m/s",
            Field::WaveHeightM => "m",
            Field::DominantPeriodS | Field::AveragePeriodS => "s",
            Field::PressureHpa | Field::PressureTendencyHpa => "hPa",
            Field::AirTempC | Field::WaterTempC | Field::DewpointC => "degC",
            Field::VisibilityNmi => "nmi",
            Field::TideFt => "ft",
        }
    }

    /// Directions are whole degrees; everything else is a decimal.
    pub const fn is_integer(self) -> bool {
        matches!(self, Field::WindDirDeg | Field::MeanWaveDirDeg)
    }

    /// The value historical NDBC files write for "missing" in this column.
    ///
    /// It is never a valid reading (a 99 in WDIR or MWD is a real direction,
    /// their sentinel is 999).
    pub const fn sentinel(self) -> f64 {
        match self {
            Field::WindDirDeg | Field::MeanWaveDirDeg => 999.0,
            Field::PressureHpa => 9999.0,
            Field::AirTempC | Field::WaterTempC | Field::DewpointC => 999.0,
            _ => 99.0,
        }
    }

    /// The physically possible range of a reading, bounds included.
    ///
    /// Generous on purpose (record storms, polar air, the Bay of Fundy): a
    /// value outside it is not weather but a misread line, e.g. a row that
    /// dropped a middle column so that every later value shifted one field.
    pub const fn valid_range(self) -> (f64, f64) {
        match self {
            Field::WindDirDeg | Field::MeanWaveDirDeg => (0.0, 360.0),
            Field::WindSpeedMps => (0.0, 100.0),
            Field::GustMps => (0.0, 120.0),
            Field::WaveHeightM => (0.0, 40.0),
            Field::DominantPeriodS | Field::AveragePeriodS => (0.0, 40.0),
            Field::PressureHpa => (800.0, 1100.0),
            Field::AirTempC => (-70.0, 60.0),
            Field::WaterTempC => (-5.0, 45.0),
            Field::DewpointC => (-80.0, 50.0),
            Field::VisibilityNmi => (0.0, 100.0),
            Field::PressureTendencyHpa => (-30.0, 30.0),
            Field::TideFt => (-50.0, 50.0),
        }
    }

    /// Whether `value` lies in [`Field::valid_range`].
    pub fn is_plausible(self, value: f64) -> bool {
        let (min, max) = self.valid_range();
        (min..=max).contains(&value)
    }

    /// Looks a field up by its camelCase name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.name() == name)
    }

    /// Position in [`Field::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of fields, used by the stream's `fields=` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldSet(u16);

impl FieldSet {
    /// Every field.
    pub const ALL: FieldSet = FieldSet((1 << N_FIELDS) - 1);
    /// No field.
    pub const EMPTY: FieldSet = FieldSet(0);

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fields in the set, in [`Field::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |field| self.contains(*field))
    }

    /// Adds one field.
    pub fn insert(&mut self, field: Field) {
        self.0 |= 1 << field.index();
    }

    /// Whether the set holds `field`.
    pub const fn contains(self, field: Field) -> bool {
        self.0 & (1 << field.index()) != 0
    }

    /// Parses a comma list of camelCase names (`waveHeightM,windSpeedMps`).
    ///
    /// `stationId`, `timestamp` and `id` are accepted and ignored: they always stay.
    pub fn parse_list(list: &str) -> Result<FieldSet, SchemaError> {
        let mut set = FieldSet::EMPTY;
        for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            match name {
                "stationId" | "timestamp" | "id" | "observedAt" => {}
                _ => set.insert(
                    Field::from_name(name).ok_or_else(|| SchemaError::UnknownField(name.to_owned()))?,
                ),
            }
        }
        Ok(set)
    }
}

/// Errors of the schema's validating constructors and decoders.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid station id {0:?}: expected 1-16 letters or digits")]
    InvalidStationId(String),
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("bus message is not valid JSON: {0}")]
    NotJson(String),
    #[error("bus message is not a JSON object")]
    NotAnObject,
    #[error("bus message lacks {0}")]
    Missing(&'static str),
    #[error("bus message field {field} has a bad value: {reason}")]
    BadValue { field: &'static str, reason: String },
}

/// A station id: 1–16 ASCII letters or digits, always lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StationId(String);

impl StationId {
    /// Validates and lower-cases `raw`.
    pub fn parse(raw: &str) -> Result<StationId, SchemaError> {
        if raw.is_empty() || raw.len() > 16 || !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SchemaError::InvalidStationId(raw.to_owned()));
        }
        Ok(StationId(raw.to_ascii_lowercase()))
    }

    /// Parses a comma list of station ids (`46026,46042`).
    pub fn parse_list(list: &str) -> Result<Vec<StationId>, SchemaError> {
        list.split(',').map(str::trim).filter(|id| !id.is_empty()).map(StationId::parse).collect()
    }

    /// The id, lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for StationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        StationId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The 14 measurements of one observation; `None` means missing.
///
/// Directions are held as whole degrees in an `f64` so that every consumer
/// (OSC, MIDI mapping, JSON) can treat the fields uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Measurements {
    values: [Option<f64>; N_FIELDS],
}

impl Measurements {
    /// The value of `field`, if present.
    pub fn get(&self, field: Field) -> Option<f64> {
        self.values[field.index()]
    }

    /// Sets `field`; non-finite values are stored as missing.
    pub fn set(&mut self, field: Field, value: Option<f64>) {
        self.values[field.index()] = value.filter(|v| v.is_finite());
    }

    /// Builder form of [`Measurements::set`].
    pub fn with(mut self, field: Field, value: f64) -> Self {
        self.set(field, Some(value));
        self
    }

    /// Fields with a value, in documented order.
    pub fn present(&self) -> impl Iterator<Item = (Field, f64)> + '_ {
        Field::ALL.into_iter().filter_map(|field| self.get(field).map(|v| (field, v)))
    }
}

impl Serialize for Measurements {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(N_FIELDS))?;
        for field in Field::ALL {
            match self.get(field) {
                Some(v) if field.is_integer() => map.serialize_entry(field.name(), &(v.round() as i64))?,
                Some(v) => map.serialize_entry(field.name(), &v)?,
                None => map.serialize_entry(field.name(), &None::<f64>)?,
            }
        }
        map.end()
    }
}

/// One observation: a station at a time, with its measurements.
///
/// Serializes in the REST form (`stationId`, `observedAt`, 14 measurements).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub station_id: StationId,
    #[serde(serialize_with = "serialize_time")]
    pub observed_at: DateTime<Utc>,
    #[serde(flatten)]
    pub measurements: Measurements,
}

/// Serializes a time as [`format_time`] writes it (`serialize_with`).
pub(crate) fn serialize_time<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(time))
}

/// RFC 3339 UTC with a `Z`, fractional seconds only when there are any.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Which name the time key gets in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKey {
    /// `observedAt` (REST, `buoycast parse`).
    ObservedAt,
    /// `timestamp` (bus, streams).
    Timestamp,
}

impl Observation {
    /// Appends this observation as one JSON object to `out`.
    ///
    /// A hand-written encoder (no intermediate `Value`) because `buoycast
    /// parse` and the fan-out write millions of these; its output equals the
    /// serde form (a test checks that).
    pub fn write_json(&self, out: &mut Vec<u8>, time_key: TimeKey) {
        self.write_json_inner(out, time_key, None, FieldSet::ALL);
    }

    fn write_json_inner(&self, out: &mut Vec<u8>, time_key: TimeKey, id: Option<&str>, fields: FieldSet) {
        out.push(b'{');
        if let Some(id) = id {
            out.extend_from_slice(b"\"id\":");
            write_json_str(out, id);
            out.push(b',');
        }
        out.extend_from_slice(b"\"stationId\":");
        // Station ids are validated alphanumerics: no escaping needed.
        out.push(b'"');
        out.extend_from_slice(self.station_id.as_str().as_bytes());
        out.extend_from_slice(match time_key {
            TimeKey::ObservedAt => b"\",\"observedAt\":\"",
            TimeKey::Timestamp => b"\",\"timestamp\":\"",
        });
        write_time(out, &self.observed_at);
        out.push(b'"');
        let mut ibuf = itoa::Buffer::new();
        let mut fbuf = ryu::Buffer::new();
        for field in Field::ALL {
            if !fields.contains(field) {
                continue;
            }
            out.extend_from_slice(b",\"");
            out.extend_from_slice(field.name().as_bytes());
            out.extend_from_slice(b"\":");
            match self.measurements.get(field) {
                None => out.extend_from_slice(b"null"),
                Some(v) if field.is_integer() => {
                    out.extend_from_slice(ibuf.format(v.round() as i64).as_bytes())
                }
                Some(v) => out.extend_from_slice(fbuf.format_finite(v).as_bytes()),
            }
        }
        out.push(b'}');
    }
}

fn write_time(out: &mut Vec<u8>, time: &DateTime<Utc>) {
    if time.nanosecond() != 0 || !(0..=9999).contains(&time.year()) {
        out.extend_from_slice(format_time(time).as_bytes());
        return;
    }
    let two = |out: &mut Vec<u8>, v: u32| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    let year = time.year() as u32;
    two(out, year / 100);
    two(out, year % 100);
    out.push(b'-');
    two(out, time.month());
    out.push(b'-');
    two(out, time.day());
    out.push(b'T');
    two(out, time.hour());
    out.push(b':');
    two(out, time.minute());
    out.push(b':');
    two(out, time.second());
    out.push(b'Z');
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping is correct and fast enough for the rare id string.
    match serde_json::to_writer(&mut *out, s) {
        Ok(()) => {}
        Err(_) => out.extend_from_slice(b"\"\""),
    }
}

/// An observation as it travels on the bus and the streams, with the stream
/// position `id` when the publisher assigned one (docs/API.md, Catch-up).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationEvent {
    pub id: Option<String>,
    pub observation: Observation,
    /// The publisher's `publishedAt` (the original system's worker sets it
    /// so clients can measure end-to-end latency), passed through as sent.
    pub published_at: Option<String>,
    /// Measurements the message carried that were implausible or not
    /// numbers: each became null (docs/REFERENCE.md, Bus messages); the
    /// rest of the reading was kept.
    pub rejected: FieldSet,
    /// Which version of the row this is: 0 as first published, 1, 2, … for
    /// each correction NDBC made later (sent as `"revised": true`; a bus
    /// message that says `"revised": true` decodes as 1).
    pub revision: u32,
    /// Set for a `spectrum` event (docs/API.md, Spectra): then `observation`
    /// is only its key (station and time, no measurements) and the event's
    /// data is the spectrum. Everything keyed by station, time, revision or
    /// stream id (catch-up, de-duplication, filters, the snapshot seam)
    /// treats both kinds alike.
    pub spectrum: Option<std::sync::Arc<crate::spectrum::Spectrum>>,
}

/// What an event carries (`?kinds=`, docs/API.md, Spectra).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A standard meteorological observation (`event: observation`).
    Observation,
    /// A directional wave spectrum (`event: spectrum`).
    Spectrum,
}

impl EventKind {
    /// Every kind, in `?kinds=` order.
    pub const ALL: [EventKind; 2] = [EventKind::Observation, EventKind::Spectrum];

    /// The kind's name in `?kinds=`, the SSE `event:` line and the bus `kind` key.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Observation => "observation",
            EventKind::Spectrum => "spectrum",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// The bus message shape: tolerant, unknown fields ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMessage {
    #[serde(default)]
    id: Option<serde_json::Value>,
    station_id: Option<serde_json::Value>,
    timestamp: Option<serde_json::Value>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl ObservationEvent {
    /// An event with nothing passed through and nothing rejected.
    pub fn new(id: Option<String>, observation: Observation) -> ObservationEvent {
        ObservationEvent {
            id,
            observation,
            published_at: None,
            rejected: FieldSet::EMPTY,
            revision: 0,
            spectrum: None,
        }
    }

    /// A `spectrum` event: the spectrum, keyed by its station and time.
    pub fn spectrum(id: Option<String>, spectrum: crate::spectrum::Spectrum) -> ObservationEvent {
        let key = Observation {
            station_id: spectrum.station_id.clone(),
            observed_at: spectrum.timestamp,
            measurements: Measurements::default(),
        };
        ObservationEvent { spectrum: Some(std::sync::Arc::new(spectrum)), ..ObservationEvent::new(id, key) }
    }

    /// What this event carries.
    pub fn kind(&self) -> EventKind {
        if self.spectrum.is_some() {
            EventKind::Spectrum
        } else {
            EventKind::Observation
        }
    }

    /// Decodes one message from `observations:new`.
    ///
    /// Accepts any JSON object with a valid `stationId` and an RFC 3339
    /// `timestamp`; measurements absent or `null` are missing; unknown keys
    /// are ignored. A measurement that is present but not a finite number,
    /// or outside [`Field::valid_range`], becomes null and is named in
    /// [`ObservationEvent::rejected`] (we never guess a value, and one bad
    /// value does not cost the reading). `publishedAt`, when a string, is
    /// kept as sent.
    pub fn decode_bus(payload: &[u8]) -> Result<ObservationEvent, SchemaError> {
        let value: serde_json::Value =
            serde_json::from_slice(payload).map_err(|error| SchemaError::NotJson(error.to_string()))?;
        if !value.is_object() {
            return Err(SchemaError::NotAnObject);
        }
        let wire: WireMessage =
            serde_json::from_value(value).map_err(|error| SchemaError::NotJson(error.to_string()))?;
        let station_id = match wire.station_id {
            Some(serde_json::Value::String(s)) => StationId::parse(&s)
                .map_err(|error| SchemaError::BadValue { field: "stationId", reason: error.to_string() })?,
            Some(serde_json::Value::Number(n)) => StationId::parse(&n.to_string())
                .map_err(|error| SchemaError::BadValue { field: "stationId", reason: error.to_string() })?,
            Some(serde_json::Value::Null) | None => return Err(SchemaError::Missing("stationId")),
            Some(other) => {
                return Err(SchemaError::BadValue {
                    field: "stationId",
                    reason: format!("expected a string, got {other}"),
                })
            }
        };
        let observed_at = match wire.timestamp {
            Some(serde_json::Value::String(s)) => parse_time(&s).ok_or_else(|| SchemaError::BadValue {
                field: "timestamp",
                reason: format!("{s:?} is not RFC 3339"),
            })?,
            Some(serde_json::Value::Null) | None => return Err(SchemaError::Missing("timestamp")),
            Some(other) => {
                return Err(SchemaError::BadValue {
                    field: "timestamp",
                    reason: format!("expected a string, got {other}"),
                })
            }
        };
        let id = match wire.id {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(SchemaError::BadValue {
                    field: "id",
                    reason: format!("expected a string, got {other}"),
                })
            }
        };
        let revision = u32::from(wire.rest.get("revised") == Some(&serde_json::Value::Bool(true)));
        let published_at = match wire.rest.get("publishedAt") {
            Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 64 => Some(s.clone()),
            _ => None,
        };
        match wire.rest.get("kind") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(kind)) if kind == EventKind::Observation.name() => {}
            Some(serde_json::Value::String(kind)) if kind == EventKind::Spectrum.name() => {
                let spectrum = crate::spectrum::Spectrum::from_wire(station_id, observed_at, &wire.rest)?;
                return Ok(ObservationEvent {
                    published_at,
                    revision,
                    ..ObservationEvent::spectrum(id, spectrum)
                });
            }
            Some(other) => {
                return Err(SchemaError::BadValue {
                    field: "kind",
                    reason: format!("expected \"observation\" or \"spectrum\", got {other}"),
                })
            }
        }
        let mut measurements = Measurements::default();
        let mut rejected = FieldSet::EMPTY;
        for field in Field::ALL {
            match wire.rest.get(field.name()) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::Number(n)) => match n.as_f64() {
                    Some(v) if v.is_finite() && field.is_plausible(v) => {
                        measurements.set(field, Some(if field.is_integer() { v.round() } else { v }));
                    }
                    _ => rejected.insert(field),
                },
                Some(_) => rejected.insert(field),
            }
        }
        Ok(ObservationEvent {
            id,
            observation: Observation { station_id, observed_at, measurements },
            published_at,
            rejected,
            revision,
            spectrum: None,
        })
    }

    /// The bus message buoycast's own worker publishes: `id` (when known),
    /// `stationId`, `timestamp` and all 14 measurements.
    pub fn to_bus_json(&self) -> String {
        let mut out = Vec::with_capacity(400);
        self.write_stream_json(&mut out, FieldSet::ALL);
        String::from_utf8(out).expect("the JSON writer only writes UTF-8")
    }

    /// Appends the stream event data (SSE `data:` / WebSocket `data`) to `out`:
    /// `id` when known, `stationId`, `timestamp`, and the fields in `fields`
    /// (`null` when missing).
    pub fn write_stream_json(&self, out: &mut Vec<u8>, fields: FieldSet) {
        self.write_data(out, fields, DataForm::Event);
    }

    /// Appends this event's data in `form` (see [`DataForm`]).
    pub fn write_data(&self, out: &mut Vec<u8>, fields: FieldSet, form: DataForm) {
        let id = if form == DataForm::Event { self.id.as_deref() } else { None };
        match &self.spectrum {
            Some(spectrum) => write_spectrum(out, spectrum, id),
            None => self.observation.write_json_inner(out, TimeKey::Timestamp, id, fields),
        }
        // Trailing keys go before the closing brace.
        if self.revision > 0 {
            out.pop();
            out.extend_from_slice(b",\"revised\":true}");
        }
        match (&self.published_at, form) {
            (Some(published_at), DataForm::Event) => {
                out.pop();
                out.extend_from_slice(b",\"publishedAt\":");
                write_json_str(out, published_at);
                out.push(b'}');
            }
            (_, DataForm::Snapshot) => {
                out.pop();
                out.extend_from_slice(b",\"snapshot\":true}");
            }
            _ => {}
        }
    }
}

/// A spectrum event's data: `{"id"?, "kind":"spectrum", …the spectrum's
/// JSON}`. The kind makes the data self-describing (it decodes with
/// [`ObservationEvent::decode_bus`] wherever it was read), and a bus
/// payload (no id) starts with it, which the publish script routes on.
fn write_spectrum(out: &mut Vec<u8>, spectrum: &crate::spectrum::Spectrum, id: Option<&str>) {
    out.push(b'{');
    if let Some(id) = id {
        out.extend_from_slice(b"\"id\":");
        write_json_str(out, id);
        out.push(b',');
    }
    out.extend_from_slice(&SPECTRUM_PAYLOAD_PREFIX.as_bytes()[1..]);
    let start = out.len();
    if serde_json::to_writer(&mut *out, spectrum).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"{}");
    }
    // The spectrum's own `{` is already written.
    out.remove(start);
}

/// How a spectrum's bus payload starts (the publish script sends payloads
/// that start so on the spectrum channel).
pub const SPECTRUM_PAYLOAD_PREFIX: &str = "{\"kind\":\"spectrum\",";

/// The forms an event's JSON data takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataForm {
    /// A stream event: `id` (when known), the observation, `revised`,
    /// `publishedAt` (when the publisher set it).
    Event,
    /// A `snapshot` event: no `id` (it does not move `Last-Event-ID`) and no
    /// `publishedAt`, flagged `"snapshot": true`.
    Snapshot,
    /// What the worker hands the publish script: no `id` (the script splices
    /// it in) and no `publishedAt`.
    BusPayload,
}

/// Parses a stream id `"{ms}-{seq}"` (both decimal, no sign, no spaces).
///
/// The gateway validates `Last-Event-ID` with it; tuples compare in stream order.
pub fn parse_stream_id(s: &str) -> Option<(u64, u64)> {
    let (ms, seq) = s.split_once('-')?;
    let digits =
        |part: &str| !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Parses an RFC 3339 time into UTC.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> Observation {
        Observation {
            station_id: StationId::parse("46026").expect("valid"),
            observed_at: Utc.with_ymd_and_hms(2026, 11, 28, 6, 40, 0).single().expect("valid"),
            measurements: Measurements::default()
                .with(Field::WaveHeightM, 1.2)
                .with(Field::WindDirDeg, 99.0)
                .with(Field::PressureTendencyHpa, -1.2)
                .with(Field::AirTempC, 28.0),
        }
    }

    #[test]
    fn fast_writer_equals_serde() {
        let obs = sample();
        let mut out = Vec::new();
        obs.write_json(&mut out, TimeKey::ObservedAt);
        let fast: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        let serde = serde_json::to_value(&obs).expect("serializes");
        assert_eq!(fast, serde);
        assert_eq!(fast["observedAt"], "2026-11-28T06:40:00Z");
        assert_eq!(fast["windDirDeg"], 99);
        assert_eq!(fast["waveHeightM"], 1.2);
        assert_eq!(fast["pressureTendencyHpa"], -1.2);
        assert!(fast["tideFt"].is_null());
    }

    #[test]
    fn original_seven_field_message_decodes_with_other_fields_null() {
        let msg = br#"{"stationId":"46026","timestamp":"2026-11-28T06:40:00.000Z","waveHeightM":1.2,
            "windSpeedMps":5.1,"windDirDeg":270,"waterTempC":14.2,"pressureHpa":1016.3,"extra":"ignored"}"#;
        let event = ObservationEvent::decode_bus(msg).expect("decodes");
        assert_eq!(event.id, None);
        assert_eq!(event.observation.measurements.get(Field::WaveHeightM), Some(1.2));
        assert_eq!(event.observation.measurements.get(Field::WindDirDeg), Some(270.0));
        assert_eq!(event.observation.measurements.get(Field::GustMps), None);
        let mut out = Vec::new();
        event.write_stream_json(&mut out, FieldSet::ALL);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        let obj = v.as_object().expect("object");
        assert_eq!(obj.len(), 16, "stationId, timestamp and 14 measurements: {v}");
        assert!(obj.get("extra").is_none());
        assert!(obj.get("id").is_none());
        assert_eq!(v["timestamp"], "2026-11-28T06:40:00Z");
    }

    #[test]
    fn bus_round_trip_keeps_id_and_values() {
        let event = ObservationEvent::new(Some("1732776600000-0".into()), sample());
        let decoded = ObservationEvent::decode_bus(event.to_bus_json().as_bytes()).expect("decodes");
        assert_eq!(decoded, event);
    }

    #[test]
    fn bad_bus_messages_are_typed_errors() {
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "not valid JSON"),
            (b"[1,2]", "not a JSON object"),
            (br#"{"timestamp":"2026-11-28T06:40:00Z"}"#, "lacks stationId"),
            (br#"{"stationId":"46026"}"#, "lacks timestamp"),
            (br#"{"stationId":"46-026","timestamp":"2026-11-28T06:40:00Z"}"#, "stationId"),
            (br#"{"stationId":"46026","timestamp":"yesterday"}"#, "timestamp"),
        ];
        for (payload, expected) in cases {
            let error = ObservationEvent::decode_bus(payload).expect_err("must be rejected");
            assert!(error.to_string().contains(expected), "{error} should mention {expected}");
        }
    }

    /// One bad value costs that value, not the message.
    #[test]
    fn ill_typed_or_implausible_values_become_null_and_are_named() {
        let msg = br#"{"stationId":"46026","timestamp":"2026-11-28T06:40:00Z","waveHeightM":"1.2","pressureHpa":6.6e31,"windSpeedMps":5.1,"gustMps":true}"#;
        let event = ObservationEvent::decode_bus(msg).expect("kept");
        assert_eq!(event.observation.measurements.get(Field::WindSpeedMps), Some(5.1));
        for field in [Field::WaveHeightM, Field::PressureHpa, Field::GustMps] {
            assert_eq!(event.observation.measurements.get(field), None, "{field}");
            assert!(event.rejected.contains(field), "{field}");
        }
        assert_eq!(event.rejected.iter().count(), 3);
    }

    #[test]
    fn revised_and_published_at_round_trip() {
        let msg = br#"{"stationId":"46026","timestamp":"2026-11-28T06:40:00Z","revised":true,"publishedAt":"2026-11-28T06:41:00.120Z"}"#;
        let event = ObservationEvent::decode_bus(msg).expect("decodes");
        assert_eq!((event.revision, event.published_at.as_deref()), (1, Some("2026-11-28T06:41:00.120Z")));
        let json = event.to_bus_json();
        assert!(json.ends_with(r#","revised":true,"publishedAt":"2026-11-28T06:41:00.120Z"}"#), "{json}");
        assert_eq!(ObservationEvent::decode_bus(json.as_bytes()).expect("again"), event);
    }

    /// Regression (found by the `bus_decode` fuzz target): a decoded value
    /// must survive its own encoding bit for bit.
    #[test]
    fn r_fuzz_values_round_trip_exactly_through_the_bus() {
        let msg = br#"{"stationId":"46026","timestamp":"2026-11-28T06:40:00.005Z","pressureHpa":1016.3000000000001,"waveHeightM":3.0000000000000004}"#;
        let event = ObservationEvent::decode_bus(msg).expect("decodes");
        let again = ObservationEvent::decode_bus(event.to_bus_json().as_bytes()).expect("decodes");
        assert_eq!(again, event);
    }

    #[test]
    fn field_filter_keeps_identity_keys() {
        let fields = FieldSet::parse_list("waveHeightM,stationId").expect("valid");
        let event = ObservationEvent::new(Some("5-0".into()), sample());
        let mut out = Vec::new();
        event.write_stream_json(&mut out, fields);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        let keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert_eq!(v["id"], "5-0");
        assert_eq!(v["waveHeightM"], 1.2);
        assert!(FieldSet::parse_list("waveHeight").is_err());
    }

    #[test]
    fn station_ids_are_validated_and_lowercased() {
        assert_eq!(StationId::parse("PTAT2").expect("valid").as_str(), "ptat2");
        assert!(StationId::parse("").is_err());
        assert!(StationId::parse("a".repeat(17).as_str()).is_err());
        assert!(StationId::parse("46026;drop").is_err());
        assert_eq!(StationId::parse_list("46026, 46042").expect("valid").len(), 2);
    }
}
