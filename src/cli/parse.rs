//! `buoycast parse FILE` (SPEC 6): the observations of an NDBC file as JSON
//! lines on stdout, one object per row in the SPEC 2 names with `observedAt`
//! and every measurement key (`null` when missing).
//!
//! Bad lines go to stderr (`line N: reason`, then a count). The exit code is 0
//! whenever the file is an NDBC file, even with bad lines, no rows, or NDBC
//! data that is not standard meteorological (then stderr says so); an error
//! (non-zero, printed by the caller) when it is not an NDBC file at all (an
//! HTML page), cannot be read, or has no station id.
//!
//! Built for throughput: one `fs::read`, rows streamed from the parser
//! straight into a large output buffer, stdout locked once, and [`write_row`]:
//! the same bytes as [`Observation::write_json`] with the `observedAt` key,
//! but with the station prefix and the day cached and NDBC's short decimals
//! formatted without ryu (which otherwise takes a third of the run). It
//! deliberately touches no config, store or runtime.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{Datelike, NaiveDate, Timelike};

use crate::observation::{Field, Observation, StationId, TimeKey};
use crate::sources::ndbc::parse::{parse_each, station_from_file_name, FileError};

/// Output is flushed to stdout in chunks of about this many bytes.
const OUT_CHUNK: usize = 1 << 20;

/// Prints the observations of the NDBC file at `path` as JSON lines.
///
/// The station comes from the file's `STN` column, else from its name
/// (`41002.txt`, `46035h1990.txt`, `tplm212022.txt`).
pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    run_with_station(path, None)
}

/// [`run`], with a station id for files whose name does not carry one (a
/// `--station` flag); a `STN` column still wins row by row.
pub fn run_with_station(path: &Path, station: Option<&StationId>) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let station = station
        .cloned()
        .or_else(|| path.file_name().and_then(|name| name.to_str()).and_then(station_from_file_name));

    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut buffer = Vec::with_capacity(OUT_CHUNK + 4096);
    let mut write_error: Option<io::Error> = None;
    let mut writer = RowWriter::default();
    let parsed = parse_each(&bytes, station.as_ref(), |observation| {
        if write_error.is_some() {
            return;
        }
        writer.write_row(&mut buffer, observation);
        buffer.push(b'\n');
        if buffer.len() >= OUT_CHUNK {
            if let Err(error) = out.write_all(&buffer) {
                write_error = Some(error);
            }
            buffer.clear();
        }
    });
    if write_error.is_none() {
        if let Err(error) = out.write_all(&buffer).and_then(|()| out.flush()) {
            write_error = Some(error);
        }
    }
    match write_error {
        // The reader went away (`| head`): that is its choice, not our failure.
        Some(error) if error.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Some(error) => return Err(error).context("writing to stdout"),
        None => {}
    }

    let stderr = io::stderr();
    let mut err = io::BufWriter::new(stderr.lock());
    match parsed {
        Ok(summary) => {
            for error in &summary.errors {
                writeln!(err, "{error}")?;
            }
            if !summary.errors.is_empty() {
                writeln!(
                    err,
                    "{}: {} observations, {} bad lines skipped",
                    path.display(),
                    summary.n_rows,
                    summary.errors.len()
                )?;
            }
            err.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ FileError::NotStdmet { .. }) => {
            writeln!(err, "{}: holds no standard meteorological data, no rows: {error}", path.display())?;
            err.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(FileError::MissingStation) => Err(anyhow::anyhow!(
            "{}: cannot tell the station: the file has no STN column and its name is not an NDBC \
             file name such as 41002.txt or 46035h1990.txt",
            path.display()
        )),
        Err(error) => Err(error).with_context(|| format!("{}", path.display())),
    }
}

/// Writes observations as `buoycast parse` prints them, caching what rows
/// share.
#[derive(Debug, Default)]
pub struct RowWriter {
    /// `{"stationId":"…","observedAt":"` for the station of the last row.
    prefix: Vec<u8>,
    /// The station `prefix` was built for.
    prefix_station: Option<StationId>,
    /// The day of the last row and its `YYYY-MM-DDT` text.
    day: Option<(NaiveDate, [u8; 11])>,
}

impl RowWriter {
    /// Appends `observation` to `out`: byte for byte what
    /// `observation.write_json(out, TimeKey::ObservedAt)` appends (a test
    /// checks every fixture row), only faster.
    pub fn write_row(&mut self, out: &mut Vec<u8>, observation: &Observation) {
        let time = observation.observed_at.naive_utc();
        let year = time.year();
        if time.nanosecond() != 0 || !(0..=9999).contains(&year) {
            // Rare forms (fractional seconds, far years): the schema's writer.
            observation.write_json(out, TimeKey::ObservedAt);
            return;
        }
        if self.prefix_station.as_ref() != Some(&observation.station_id) {
            self.prefix.clear();
            self.prefix.extend_from_slice(b"{\"stationId\":\"");
            // Station ids are validated alphanumerics: no escaping needed.
            self.prefix.extend_from_slice(observation.station_id.as_str().as_bytes());
            self.prefix.extend_from_slice(b"\",\"observedAt\":\"");
            self.prefix_station = Some(observation.station_id.clone());
        }
        out.extend_from_slice(&self.prefix);
        let date = time.date();
        let day_text = match self.day {
            Some((day, text)) if day == date => text,
            _ => {
                let mut text = *b"0000-00-00T";
                put_digits(&mut text[0..4], year as u32);
                put_digits(&mut text[5..7], date.month());
                put_digits(&mut text[8..10], date.day());
                self.day = Some((date, text));
                text
            }
        };
        out.extend_from_slice(&day_text);
        let mut clock = *b"00:00:00Z\"";
        put_digits(&mut clock[0..2], time.hour());
        put_digits(&mut clock[3..5], time.minute());
        put_digits(&mut clock[6..8], time.second());
        out.extend_from_slice(&clock);
        let mut ibuf = itoa::Buffer::new();
        let mut fbuf = ryu::Buffer::new();
        for field in Field::ALL {
            out.extend_from_slice(KEYS[field.index()].as_bytes());
            match observation.measurements.get(field) {
                None => out.extend_from_slice(b"null"),
                Some(value) if field.is_integer() => {
                    out.extend_from_slice(ibuf.format(value.round() as i64).as_bytes());
                }
                Some(value) => write_f64(out, value, &mut fbuf),
            }
        }
        out.push(b'}');
    }
}

/// `,"windDirDeg":` and so on, in `Field::ALL` order.
const KEYS: [&str; 14] = [
    ",\"windDirDeg\":",
    ",\"windSpeedMps\":",
    ",\"gustMps\":",
    ",\"waveHeightM\":",
    ",\"dominantPeriodS\":",
    ",\"averagePeriodS\":",
    ",\"meanWaveDirDeg\":",
    ",\"pressureHpa\":",
    ",\"airTempC\":",
    ",\"waterTempC\":",
    ",\"dewpointC\":",
    ",\"visibilityNmi\":",
    ",\"pressureTendencyHpa\":",
    ",\"tideFt\":",
];

/// Writes `value` into `slot` as zero-padded decimal digits.
fn put_digits(slot: &mut [u8], mut value: u32) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Exact powers of ten for the short-decimal path.
const POW10: [f64; 5] = [1.0, 10.0, 100.0, 1_000.0, 10_000.0];

/// Writes a finite `value` exactly as `ryu::Buffer::format_finite` would.
///
/// NDBC values have at most a few decimals: for 1e-3 <= |v| < 1e9 the
/// shortest round-tripping form has k <= 4 decimals when `r / 10^k == v` for
/// the integer `r` nearest `v * 10^k` (that division is correctly rounded,
/// so it is exactly "the decimal r·10^-k parses to v"), and the first such k
/// is the shortest form, which is what ryu prints, in plain notation at this
/// magnitude. Anything else goes to ryu.
pub fn write_f64(out: &mut Vec<u8>, value: f64, fbuf: &mut ryu::Buffer) {
    let magnitude = value.abs();
    if (1e-3..1e9).contains(&magnitude) {
        for (decimals, scale) in POW10.iter().enumerate() {
            // Truncating `x + 0.5` rounds a positive x to nearest.
            let rounded = (magnitude * scale + 0.5) as u64;
            if rounded as f64 / scale == magnitude {
                if value < 0.0 {
                    out.push(b'-');
                }
                let unit = *scale as u64;
                let mut ibuf = itoa::Buffer::new();
                out.extend_from_slice(ibuf.format(rounded / unit).as_bytes());
                out.push(b'.');
                if decimals == 0 {
                    out.push(b'0');
                } else {
                    let mut fraction = [b'0'; 4];
                    put_digits(&mut fraction[..decimals], (rounded % unit) as u32);
                    out.extend_from_slice(&fraction[..decimals]);
                }
                return;
            }
        }
    }
    out.extend_from_slice(fbuf.format_finite(value).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ryu_text(value: f64) -> String {
        ryu::Buffer::new().format_finite(value).to_owned()
    }

    fn ours(value: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, value, &mut ryu::Buffer::new());
        String::from_utf8(out).expect("ASCII")
    }

    proptest! {
        #[test]
        fn short_decimals_print_like_ryu(mantissa in -10_000_000_000i64..10_000_000_000, decimals in 0u32..7) {
            let value = mantissa as f64 / 10f64.powi(decimals as i32);
            prop_assert_eq!(ours(value), ryu_text(value));
        }

        #[test]
        fn any_finite_double_prints_like_ryu(bits in any::<u64>()) {
            let value = f64::from_bits(bits);
            prop_assume!(value.is_finite());
            prop_assert_eq!(ours(value), ryu_text(value));
        }
    }

    #[test]
    fn edge_values_print_like_ryu() {
        for value in
            [0.0, -0.0, 1e-3, 0.001, 0.0999, 999_999_999.9, 1e9, 1e-4, 9999.0, 0.1 + 0.2, -1022.9, 5e-324]
        {
            assert_eq!(ours(value), ryu_text(value), "{value:e}");
        }
    }
}
