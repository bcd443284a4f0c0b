//! OSC encoding of observations (docs/REFERENCE.md, OSC address space): the
//! `/observation` message with the original sentinels, the per-field
//! `/buoy/{stationId}/…` messages, the null policies, bundles, and SLIP
//! framing for TCP (OSC 1.1).
//!
//! Pure: it builds packets and bytes; sending them is `sink::osc`'s job.

use std::str::FromStr;

use buoycast::observation::{format_time, Field, FieldSet, Observation};
use chrono::{DateTime, Datelike, Timelike, Utc};
use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};

use crate::cli::OscFormat;
use crate::mapping::Map;

/// The immediate timetag of OSC bundles (seconds 0, fraction 1).
pub const IMMEDIATELY: OscTime = OscTime { seconds: 0, fractional: 1 };

/// What a missing measurement becomes in `fields` messages (`--null-policy`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NullPolicy {
    /// Not sent: the receiver holds its last value (default).
    Skip,
    /// OSC 1.1 `N` (nil) argument.
    Nil,
    /// A float32 NaN.
    Nan,
    /// This float32 instead.
    Sentinel(f32),
}

impl FromStr for NullPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(NullPolicy::Skip),
            "nil" => Ok(NullPolicy::Nil),
            "nan" => Ok(NullPolicy::Nan),
            _ => match s.strip_prefix("sentinel:").map(str::parse::<f32>) {
                Some(Ok(0.0)) => Err(format!("--null-policy {s:?}: 0 is a real reading, never a null")),
                Some(Ok(x)) if x.is_finite() => Ok(NullPolicy::Sentinel(x)),
                _ => Err(format!("--null-policy {s:?}: expected skip, nil, nan or sentinel:X (X a number, e.g. sentinel:-1)")),
            },
        }
    }
}

/// Builds the OSC packets for one observation.
#[derive(Debug, Clone)]
pub struct OscEncoder {
    /// `--osc-format`.
    pub format: OscFormat,
    /// `--null-policy`.
    pub null_policy: NullPolicy,
    /// `--bundle`: one bundle per observation.
    pub bundle: bool,
    /// Ranges (for `/norm`) and the address prefix.
    pub map: Map,
    /// `--latency`: one bundle per observation, time-tagged this long after
    /// the observation's due time, so hosts schedule it without network jitter.
    pub latency: Option<std::time::Duration>,
}

/// The `/observation` message of the original system: stationId, timestamp,
/// waveHeightM (-1), windSpeedMps (-1), windDirDeg (i, -1), waterTempC
/// (-999), pressureHpa (-1); the sentinel replaces a null.
pub fn observation_message(observation: &Observation) -> OscMessage {
    let m = &observation.measurements;
    let float = |field: Field, sentinel: f32| OscType::Float(m.get(field).map_or(sentinel, |v| v as f32));
    OscMessage {
        addr: "/observation".to_owned(),
        args: vec![
            OscType::String(observation.station_id.as_str().to_owned()),
            OscType::String(format_time(&observation.observed_at)),
            float(Field::WaveHeightM, -1.0),
            float(Field::WindSpeedMps, -1.0),
            OscType::Int(m.get(Field::WindDirDeg).map_or(-1, |v| v.round() as i32)),
            float(Field::WaterTempC, -999.0),
            float(Field::PressureHpa, -1.0),
        ],
    }
}

/// A `…/time` message: year, month, day, hour, minute (UTC) as int32.
pub fn time_message(addr: String, t: DateTime<Utc>) -> OscMessage {
    OscMessage {
        addr,
        args: [t.year(), t.month() as i32, t.day() as i32, t.hour() as i32, t.minute() as i32]
            .into_iter()
            .map(OscType::Int)
            .collect(),
    }
}

impl OscEncoder {
    /// The messages for one observation, in send order. `now` is the time
    /// `/age` is measured against (the wall clock live; the replayed time in a replay).
    pub fn messages(&self, observation: &Observation, now: DateTime<Utc>) -> Vec<OscMessage> {
        self.messages_for(observation, now, FieldSet::ALL, false)
    }

    /// The messages for one wave spectrum ([`crate::spectrum::messages`]):
    /// none in the original `observation` format, which has no spectra.
    pub fn spectrum_messages(&self, spectrum: &buoycast::spectrum::Spectrum) -> Vec<OscMessage> {
        match self.format {
            OscFormat::Observation => Vec::new(),
            OscFormat::Both | OscFormat::Fields => {
                crate::spectrum::messages(&self.map.prefix, spectrum, self.map.spectrum_audible)
            }
        }
    }

    /// [`OscEncoder::messages`] sending only the fields in `send`; a shaping
    /// clock step (`tick`) sends only those fields' messages (no
    /// `/observation`, `/time`, `/age`).
    pub fn messages_for(
        &self,
        observation: &Observation,
        now: DateTime<Utc>,
        send: FieldSet,
        tick: bool,
    ) -> Vec<OscMessage> {
        let mut out = Vec::with_capacity(32);
        if !tick && matches!(self.format, OscFormat::Both | OscFormat::Observation) {
            out.push(observation_message(observation));
        }
        if matches!(self.format, OscFormat::Both | OscFormat::Fields) {
            let base = format!("{}/{}", self.map.prefix, observation.station_id);
            let sent = |field: &Field| self.map.field(*field).enabled && send.contains(*field);
            for field in Field::ALL.into_iter().filter(sent) {
                let (value, norm) = match observation.measurements.get(field) {
                    Some(v) => {
                        (OscType::Float(v as f32), OscType::Float(self.map.field(field).norm(v) as f32))
                    }
                    None => match self.null_policy {
                        NullPolicy::Skip => continue,
                        NullPolicy::Nil => (OscType::Nil, OscType::Nil),
                        NullPolicy::Nan => (OscType::Float(f32::NAN), OscType::Float(f32::NAN)),
                        NullPolicy::Sentinel(x) => (OscType::Float(x), OscType::Float(x)),
                    },
                };
                out.push(OscMessage { addr: format!("{base}/{field}"), args: vec![value] });
                out.push(OscMessage { addr: format!("{base}/{field}/norm"), args: vec![norm] });
            }
            if tick {
                return out;
            }
            let t = observation.observed_at;
            out.push(time_message(format!("{base}/time"), t));
            let age_s = (now - t).num_milliseconds() as f32 / 1000.0;
            out.push(OscMessage { addr: format!("{base}/age"), args: vec![OscType::Float(age_s)] });
        }
        out
    }

    /// The datagrams for `messages` due at `due` (wall clock): with
    /// `--latency`, one bundle time-tagged `due + latency`; with `--bundle`,
    /// one bundle for immediate use; else one datagram per message.
    pub fn datagrams(
        &self,
        messages: &[OscMessage],
        due: std::time::SystemTime,
    ) -> Result<Vec<bytes::Bytes>, rosc::OscError> {
        let timetag = match self.latency {
            Some(latency) => Some(OscTime::try_from(due + latency).unwrap_or(IMMEDIATELY)),
            None if self.bundle => Some(IMMEDIATELY),
            None => None,
        };
        let packets: Vec<OscPacket> = match timetag {
            Some(timetag) => vec![OscPacket::Bundle(OscBundle {
                timetag,
                content: messages.iter().cloned().map(OscPacket::Message).collect(),
            })],
            None => messages.iter().cloned().map(OscPacket::Message).collect(),
        };
        packets.iter().map(|packet| rosc::encoder::encode(packet).map(bytes::Bytes::from)).collect()
    }

    /// One observation's datagrams, sent now.
    pub fn encode(
        &self,
        observation: &Observation,
        now: DateTime<Utc>,
    ) -> Result<Vec<bytes::Bytes>, rosc::OscError> {
        self.encode_at(observation, now, std::time::SystemTime::now())
    }

    /// One observation's datagrams, due at `due` (see [`OscEncoder::datagrams`]).
    pub fn encode_at(
        &self,
        observation: &Observation,
        now: DateTime<Utc>,
        due: std::time::SystemTime,
    ) -> Result<Vec<bytes::Bytes>, rosc::OscError> {
        self.datagrams(&self.messages(observation, now), due)
    }
}

/// SLIP END byte.
pub const SLIP_END: u8 = 0xC0;
const SLIP_ESC: u8 = 0xDB;
const SLIP_ESC_END: u8 = 0xDC;
const SLIP_ESC_ESC: u8 = 0xDD;

/// Appends one packet SLIP-framed (double END, as OSC 1.1 recommends) to `out`.
pub fn slip_encode(packet: &[u8], out: &mut Vec<u8>) {
    out.push(SLIP_END);
    for &b in packet {
        match b {
            SLIP_END => out.extend_from_slice(&[SLIP_ESC, SLIP_ESC_END]),
            SLIP_ESC => out.extend_from_slice(&[SLIP_ESC, SLIP_ESC_ESC]),
            _ => out.push(b),
        }
    }
    out.push(SLIP_END);
}

/// Splits a SLIP byte stream into packets (empty frames between ENDs are skipped).
/// Returns the complete packets and leaves an incomplete tail in `buf`.
pub fn slip_decode(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    let mut consumed = 0;
    let mut escaped = false;
    for (i, &b) in buf.iter().enumerate() {
        if escaped {
            current.push(match b {
                SLIP_ESC_END => SLIP_END,
                SLIP_ESC_ESC => SLIP_ESC,
                other => other,
            });
            escaped = false;
        } else if b == SLIP_ESC {
            escaped = true;
        } else if b == SLIP_END {
            if !current.is_empty() {
                packets.push(std::mem::take(&mut current));
            }
            consumed = i + 1;
        } else {
            current.push(b);
        }
    }
    buf.drain(..consumed);
    packets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slip_round_trips_escapes() {
        let packet = vec![1, SLIP_END, 2, SLIP_ESC, 3];
        let mut framed = Vec::new();
        slip_encode(&packet, &mut framed);
        slip_encode(&[9], &mut framed);
        assert_eq!(framed[0], SLIP_END);
        let mut tail = framed[..framed.len() - 1].to_vec();
        assert_eq!(slip_decode(&mut tail), vec![packet.clone()]);
        tail.push(SLIP_END);
        assert_eq!(slip_decode(&mut tail), vec![vec![9]]);
    }

    #[test]
    fn null_policies_parse() {
        assert_eq!("nil".parse::<NullPolicy>(), Ok(NullPolicy::Nil));
        assert_eq!("sentinel:-1".parse::<NullPolicy>(), Ok(NullPolicy::Sentinel(-1.0)));
        assert!("sentinel:0".parse::<NullPolicy>().is_err());
        assert!("zero".parse::<NullPolicy>().is_err());
    }
}
