//! The `bridge` command line (docs/REFERENCE.md, Command line): sources, sinks
//! and mapping flags.
//!
//! Only parsing and validation live here; the work is done elsewhere.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Streams buoy observations to OSC hosts (Max, SuperCollider, Pure Data,
/// TouchDesigner) and MIDI (DAWs, .mid files).
///
/// Examples:
///   bridge --osc 127.0.0.1:57120
///   bridge --source http://gateway:3000 --station 46026,46042 --osc 127.0.0.1:57120 --osc 10.0.0.5:9000
///   bridge --redis redis://127.0.0.1:6379 --midi "IAC Driver Bus 1"
///   bridge --midi-virtual buoycast --map my-map.toml --glide 2000
///   bridge --replay 46026 --speed 3600 --osc 127.0.0.1:57120 --midi-file waves.mid
///   bridge --list-midi
///   bridge --midi-virtual buoycast --learn waveHeightM
#[derive(Debug, Parser)]
#[command(name = "bridge", version, verbatim_doc_comment)]
pub struct Args {
    /// Gateway to read from: its SSE stream (reconnecting with Last-Event-ID),
    /// or its WebSocket with a ws:// URL or --ws; with --replay STATION, its REST API.
    /// Example: --source http://gateway:3000
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3000")]
    pub source: String,

    /// Use the gateway's WebSocket instead of SSE. Example: --source http://gateway:3000 --ws
    #[arg(long)]
    pub ws: bool,

    /// Read observations:new from Redis directly instead of the gateway.
    /// Example: --redis redis://127.0.0.1:6379
    #[arg(long, value_name = "URL", conflicts_with = "replay")]
    pub redis: Option<String>,

    /// Play history instead of the live stream: a station id (from the
    /// gateway's REST API) or an NDBC file (a spectral file plays the wave
    /// spectra of the five files beside it). Example: --replay 46026
    #[arg(long, value_name = "STATION|FILE")]
    pub replay: Option<String>,

    /// Replay speed: X times faster than real time. Example: --speed 3600
    #[arg(long, value_name = "X", default_value_t = 1.0, requires = "replay")]
    pub speed: f64,

    /// Only these stations (comma-separated). Example: --station 46026,46042
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub station: Vec<String>,

    /// Send OSC over UDP to HOST:PORT (repeatable). Example: --osc 127.0.0.1:57120
    #[arg(long, value_name = "HOST:PORT")]
    pub osc: Vec<String>,

    /// Send OSC over TCP with SLIP framing (OSC 1.1) to HOST:PORT (repeatable;
    /// reconnects when the receiver comes back). Example: --osc-tcp 127.0.0.1:57121
    #[arg(long, value_name = "HOST:PORT")]
    pub osc_tcp: Vec<String>,

    /// Which OSC messages to send: both, observation (/observation s s f f i f f,
    /// nulls as -1 / -999) or fields (/buoy/{stationId}/{field}, /norm, /time, /age).
    /// Example: --osc-format fields
    #[arg(long, value_enum, default_value_t = OscFormat::Both)]
    pub osc_format: OscFormat,

    /// What a missing value becomes in `fields` messages: not sent (default),
    /// nil (OSC 1.1 N), nan, or sentinel:X. Example: --null-policy sentinel:-1
    #[arg(long, value_name = "POLICY", default_value = "skip")]
    pub null_policy: String,

    /// Wrap one observation's messages in one OSC bundle (immediate timetag).
    /// Example: --osc 127.0.0.1:57120 --bundle
    #[arg(long)]
    pub bundle: bool,

    /// Send each observation as one bundle time-tagged MS milliseconds ahead
    /// (in a replay: its replayed time at --speed, plus MS), so SuperCollider
    /// and Max schedule it without network jitter. Example: --latency 200
    #[arg(long, value_name = "MS")]
    pub latency: Option<u64>,

    /// Also send each wave spectrum's bands as audible frequencies
    /// (`/buoy/{stationId}/spectrum/audible`): the ocean's 0.02–0.5 Hz mapped
    /// pitch-linearly onto LOW–HIGH Hz. Example: --spectrum-audible 110:1760
    #[arg(long, value_name = "LOW:HIGH")]
    pub spectrum_audible: Option<crate::spectrum::Audible>,

    /// Send each wave spectrum's bands as a bank of CCs on this MIDI channel
    /// (1-16, then kept from the stations): band i on the i-th controller
    /// from 20 up (skipping 32, 38, 64-69, 96-101). Example: --spectrum-channel 16
    #[arg(long, value_name = "CHANNEL", value_parser = clap::value_parser!(u8).range(1..=16))]
    pub spectrum_channel: Option<u8>,

    /// Serve the OSC address space as OSCQuery on this port. Example: --oscquery 5678
    #[arg(long, value_name = "PORT")]
    pub oscquery: Option<u16>,

    /// The address the OSCQuery server listens on and advertises over mDNS
    /// (127.0.0.1: this machine only; 0.0.0.0: every interface, for hosts on
    /// the LAN). Example: --oscquery 5678 --oscquery-bind 0.0.0.0
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub oscquery_bind: std::net::IpAddr,

    /// How OSCQuery lists a field's `/norm` address: strict (every node a
    /// container or a method, as OSC 1.0 and strict clients want; `/norm` is
    /// answered when asked by path) or nested (under its field, for hosts
    /// such as ossia score that accept a method with children).
    /// Example: --oscquery 5678 --oscquery-layout nested
    #[arg(long, value_enum, value_name = "LAYOUT", default_value_t = OscQueryLayout::Strict)]
    pub oscquery_layout: OscQueryLayout,

    /// Send MIDI CC to this output port (exact name, else a substring; a port
    /// that vanishes is reopened when it comes back). Example: --midi "IAC Driver Bus 1"
    #[arg(long, value_name = "NAME")]
    pub midi: Vec<String>,

    /// Create a virtual MIDI output port with this name (ALSA on Linux, JACK with
    /// the `jack` build feature, CoreMIDI on macOS; not on Windows). Example: --midi-virtual buoycast
    #[arg(long, value_name = "NAME")]
    pub midi_virtual: Option<String>,

    /// Also write a Standard MIDI File (format 0, 480 ticks per quarter, tempo
    /// 120), completed at the end of a replay or on Ctrl-C. Example: --midi-file waves.mid
    #[arg(long, value_name = "PATH")]
    pub midi_file: Option<PathBuf>,

    /// List MIDI output ports and exit. Example: bridge --list-midi
    #[arg(long)]
    pub list_midi: bool,

    /// Mapping file (ranges, curves, CCs, channels). Example: --map my-map.toml
    #[arg(long, value_name = "FILE")]
    pub map: Option<PathBuf>,

    /// Ramp each CC to its new value over MS milliseconds (at most 50 steps a
    /// second, the .mid file included). Example: --glide 2000
    #[arg(long, value_name = "MS")]
    pub glide: Option<u64>,

    /// Send 14-bit CC pairs (MSB on CC n, LSB on CC n+32) for CCs below 32.
    /// Example: --midi-virtual buoycast --cc14
    #[arg(long)]
    pub cc14: bool,

    /// Sweep only this field's CC so a DAW's MIDI-learn picks it, on that
    /// station's channel when given (FIELD@STATION; default: the first
    /// station's channel). Example: --learn waveHeightM@46042
    #[arg(long, value_name = "FIELD[@STATION]")]
    pub learn: Option<String>,

    /// Do not ask the gateway for every station's current state on connect
    /// (by default the bridge sends it at once, and again after a reset).
    #[arg(long)]
    pub no_snapshot: bool,

    /// Receive OSC control messages on 127.0.0.1:PORT: `/buoycast/resend`
    /// sends every station's current state again. Example: --control 57130
    #[arg(long, value_name = "PORT")]
    pub control: Option<u16>,

    /// Send every station's current state again every SECS seconds (for
    /// installations whose receivers restart on their own). Example: --resend-every 60
    #[arg(long, value_name = "SECS")]
    pub resend_every: Option<f64>,
}

/// `--osc-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OscFormat {
    /// Both `/observation` and the per-field `/buoy/...` messages.
    Both,
    /// Only `/observation` (the original system's format).
    Observation,
    /// Only the per-field `/buoy/{stationId}/{field}` messages.
    Fields,
}

/// `--oscquery-layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OscQueryLayout {
    /// Every node a container or a method: `/buoy/{id}/{field}` lists no
    /// children, its `/norm` is served when asked for by path.
    Strict,
    /// `/buoy/{id}/{field}` is a method that also lists its `/norm`.
    Nested,
}

impl Args {
    /// Checks values clap cannot: addresses, station ids, field names, speed.
    pub fn validate(&self) -> Result<(), String> {
        for target in self.osc.iter().chain(&self.osc_tcp) {
            if target.parse::<SocketAddr>().is_err() && !looks_like_host_port(target) {
                return Err(format!("--osc {target:?}: expected HOST:PORT, e.g. 127.0.0.1:57120"));
            }
        }
        for id in &self.station {
            buoycast::observation::StationId::parse(id).map_err(|error| format!("--station: {error}"))?;
        }
        if let Some(learn) = &self.learn {
            parse_learn(learn)?;
        }
        if let Some(secs) = self.resend_every {
            if !(secs.is_finite() && (0.1..=86_400.0).contains(&secs)) {
                return Err(format!("--resend-every {secs}: give a period in seconds, from 0.1 to 86400"));
            }
        }
        if let Some(ms) = self.latency {
            if ms > 60_000 {
                return Err(format!("--latency {ms}: at most 60000 ms"));
            }
        }
        self.null_policy.parse::<crate::osc::NullPolicy>()?;
        if self.glide == Some(0) {
            return Err("--glide 0: give a ramp length in milliseconds, e.g. --glide 2000 (or leave it out)"
                .to_owned());
        }
        if self.learn.is_some()
            && self.midi.is_empty()
            && self.midi_virtual.is_none()
            && self.midi_file.is_none()
        {
            return Err("--learn needs a MIDI output: --midi NAME, --midi-virtual NAME or --midi-file PATH"
                .to_owned());
        }
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err(format!("--speed {}: must be a positive number", self.speed));
        }
        Ok(())
    }
}

/// `--learn FIELD[@STATION]`.
pub fn parse_learn(
    raw: &str,
) -> Result<(buoycast::observation::Field, Option<buoycast::observation::StationId>), String> {
    let (field, station) = match raw.split_once('@') {
        Some((field, station)) => (field, Some(station)),
        None => (raw, None),
    };
    let field = buoycast::observation::Field::from_name(field)
        .ok_or_else(|| format!("--learn: unknown field {field:?} (FIELD or FIELD@STATION)"))?;
    let station = station
        .map(buoycast::observation::StationId::parse)
        .transpose()
        .map_err(|error| format!("--learn: {error}"))?;
    Ok((field, station))
}

fn looks_like_host_port(target: &str) -> bool {
    match target.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}
