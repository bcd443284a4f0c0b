//! `buoycast parse FILE` (docs/REFERENCE.md, Command line): the observations
//! of an NDBC file as JSON lines on stdout, one object per row in the names of
//! docs/REFERENCE.md, Observation, with `observedAt` and every measurement key
//! (`null` when missing).
//!
//! Bad lines go to stderr (`line N: reason`), and so do implausible values
//! set to null in a row that is still printed (`line N: WVHT 45.0 is out of
//! range, 0 to 40 m (set to null)`), in line order, then a count. The exit
//! code is 0 whenever the file is an NDBC file, even with bad lines, no rows,
//! or NDBC data that is not standard meteorological (then stderr says so); an
//! error (non-zero, printed by the caller) when it is not an NDBC file at all
//! (an HTML page), cannot be read, or has no station id.
//!
//! Built for throughput: one `fs::read`, rows streamed from the parser
//! straight into a large output buffer, stdout locked once, and [`RowWriter`]:
//! the same bytes as [`Observation::write_json`] with the `observedAt` key,
//! but with the station prefix and the day cached and NDBC's short decimals
//! formatted without ryu (which otherwise takes a third of the run). It
//! deliberately touches no config, store or runtime.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{Datelike, NaiveDate, Timelike};

use crate::observation::{Field, Observation, StationId, TimeKey, N_FIELDS};
use crate::sources::ndbc::parse::{parse_each, station_from_file_name, FileError};
use crate::sources::ndbc::spectral::{self, SpectralFile};

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
            // Bad lines and rejected values, merged in line order (each list is).
            let mut rejected = summary.rejected.iter().peekable();
            for error in &summary.errors {
                while let Some(rejection) = rejected.next_if(|rejection| rejection.line < error.line) {
                    writeln!(err, "{rejection}")?;
                }
                writeln!(err, "{error}")?;
            }
            for rejection in rejected {
                writeln!(err, "{rejection}")?;
            }
            if !summary.errors.is_empty() || !summary.rejected.is_empty() {
                write!(
                    err,
                    "{}: {} observations, {} bad lines skipped",
                    path.display(),
                    summary.n_rows,
                    summary.errors.len()
                )?;
                match summary.rejected.len() {
                    0 => writeln!(err)?,
                    1 => writeln!(err, ", 1 value set to null")?,
                    n => writeln!(err, ", {n} values set to null")?,
                }
            }
            err.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ FileError::NotStdmet { .. }) => {
            if let Some(station) = &station {
                match spectral::parse(&bytes, station, path.file_name().and_then(|name| name.to_str())) {
                    Ok(file) => {
                        drop(err);
                        return print_spectral(path, &file);
                    }
                    Err(spectral::FileError::NotSpectral) => {}
                    Err(error) => return Err(error).with_context(|| format!("{}", path.display())),
                }
            }
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

/// Prints the rows of a spectral file (docs/REFERENCE.md, Command line) as
/// JSON lines, then its bad lines and nulled values on stderr, in line order.
fn print_spectral(path: &Path, file: &SpectralFile) -> anyhow::Result<ExitCode> {
    let (lines, errors, rejected): (Vec<String>, _, _) = match file {
        SpectralFile::Quantity(parsed) => (
            parsed.rows.iter().map(|row| row.to_json().to_string()).collect(),
            &parsed.errors,
            &parsed.rejected,
        ),
        SpectralFile::Summary(parsed) => (
            parsed.rows.iter().map(|row| row.to_json().to_string()).collect(),
            &parsed.errors,
            &parsed.rejected,
        ),
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = lines.iter().try_for_each(|line| writeln!(out, "{line}")).and_then(|()| out.flush());
    match written {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(error) => return Err(error).context("writing to stdout"),
        Ok(()) => {}
    }
    let mut err = io::BufWriter::new(io::stderr().lock());
    let mut notes: Vec<(usize, String)> = errors.iter().map(|e| (e.line, e.to_string())).collect();
    notes.extend(rejected.iter().map(|r| (r.line, r.to_string())));
    notes.sort_by_key(|(line, _)| *line);
    for (_, note) in &notes {
        writeln!(err, "{note}")?;
    }
    if !notes.is_empty() {
        writeln!(
            err,
            "{}: {} rows, {} bad lines skipped, {} values set to null",
            path.display(),
            lines.len(),
            errors.len(),
            rejected.len()
        )?;
    }
    err.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Longest row [`RowWriter`] can write, plus slack for padded copies: the
/// prefix (at most 46 bytes), the time (21), 14 keys (at most 23 each) and
/// 14 numbers (at most 24 each) stay well below it.
const ROW_MAX: usize = 1024;

/// Width of the padded copies (every key, `null` included, fits).
const PAD: usize = 32;

/// Writes observations as `buoycast parse` prints them, caching what rows
/// share.
///
/// A row is assembled in a fixed buffer with fixed-width copies (keys are
/// stored padded to [`PAD`] bytes, so each is one unaligned 32-byte move
/// instead of a `memcpy` call), then appended to the output in one go.
pub struct RowWriter {
    /// The row being assembled.
    row: [u8; ROW_MAX],
    /// Bytes of `row` in use.
    len: usize,
    /// `{"stationId":"…","observedAt":"` for the station of the last row, padded.
    prefix: [u8; 64],
    /// Bytes of `prefix` in use.
    prefix_len: usize,
    /// The station `prefix` was built for.
    prefix_station: Option<StationId>,
    /// The day of the last row and its `YYYY-MM-DDT` text.
    day: Option<(NaiveDate, [u8; 11])>,
}

impl Default for RowWriter {
    fn default() -> Self {
        RowWriter {
            row: [0; ROW_MAX],
            len: 0,
            prefix: [0; 64],
            prefix_len: 0,
            prefix_station: None,
            day: None,
        }
    }
}

impl RowWriter {
    /// Appends `observation` to `out`: byte for byte what
    /// `observation.write_json(out, TimeKey::ObservedAt)` appends (a test
    /// checks every fixture row), only faster.
    pub fn write_row(&mut self, out: &mut Vec<u8>, observation: &Observation) {
        let time = observation.observed_at.naive_utc();
        let year = time.year();
        let id = observation.station_id.as_str().as_bytes();
        if time.nanosecond() != 0 || !(0..=9999).contains(&year) || id.len() > 16 {
            // Forms the parser never makes (fractional seconds, far years): the schema's writer.
            observation.write_json(out, TimeKey::ObservedAt);
            return;
        }
        if self.prefix_station.as_ref() != Some(&observation.station_id) {
            // Station ids are validated alphanumerics: no escaping needed.
            let mut prefix = Vec::with_capacity(64);
            prefix.extend_from_slice(b"{\"stationId\":\"");
            prefix.extend_from_slice(id);
            prefix.extend_from_slice(b"\",\"observedAt\":\"");
            self.prefix[..prefix.len()].copy_from_slice(&prefix);
            self.prefix_len = prefix.len();
            self.prefix_station = Some(observation.station_id.clone());
        }
        self.len = 0;
        let prefix = self.prefix;
        self.put_fixed(&prefix);
        self.len = self.prefix_len;
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
        self.put_fixed(&day_text);
        let mut clock = *b"00:00:00Z\"";
        put_digits(&mut clock[0..2], time.hour());
        put_digits(&mut clock[3..5], time.minute());
        put_digits(&mut clock[6..8], time.second());
        self.put_fixed(&clock);
        for field in Field::ALL {
            match observation.measurements.get(field) {
                None => {
                    let (key, len) = &KEYS_NULL[field.index()];
                    self.put_padded(key, *len);
                }
                Some(value) => {
                    let (key, len) = &KEYS[field.index()];
                    self.put_padded(key, *len);
                    if field.is_integer() {
                        let value = value.round() as i64;
                        if value < 0 {
                            self.put_fixed(b"-");
                        }
                        self.put_uint(value.unsigned_abs());
                    } else {
                        self.put_f64(value);
                    }
                }
            }
        }
        self.put_fixed(b"}");
        out.extend_from_slice(&self.row[..self.len]);
    }

    #[inline(always)]
    fn put_fixed<const N: usize>(&mut self, chunk: &[u8; N]) {
        self.row[self.len..self.len + N].copy_from_slice(chunk);
        self.len += N;
    }

    /// Copies all of `chunk` but keeps only `len` bytes of it.
    #[inline(always)]
    fn put_padded(&mut self, chunk: &[u8; PAD], len: usize) {
        self.row[self.len..self.len + PAD].copy_from_slice(chunk);
        self.len += len;
    }

    /// Decimal digits of `value`.
    #[inline(always)]
    fn put_uint(&mut self, value: u64) {
        let mut n_digits = 1;
        let mut rest = value / 10;
        while rest != 0 {
            n_digits += 1;
            rest /= 10;
        }
        put_digits_u64(&mut self.row[self.len..self.len + n_digits], value);
        self.len += n_digits;
    }

    /// Writes a finite `value` exactly as `ryu::Buffer::format_finite` would.
    ///
    /// NDBC values have at most a few decimals. For 1e-3 <= |v| < 1e9, take
    /// the integer `r` nearest `v * 10^k` (k = 2, else 4): if `r / 10^k == v`
    /// (that division is correctly rounded, so this says exactly "the decimal
    /// r·10^-k parses to v"), then dropping r's trailing zeros gives the
    /// shortest round-tripping decimal, which is what ryu prints, in plain
    /// notation at this magnitude. (Two decimals with at most 4 places that
    /// both parse to v are equal: doubles below 1e9 are less than 1e-6 apart.)
    /// Anything else goes to ryu.
    fn put_f64(&mut self, value: f64) {
        let magnitude = value.abs();
        if (1e-3..1e9).contains(&magnitude) {
            for (mut decimals, scale) in [(2usize, 100.0f64), (4, 10_000.0)] {
                // Truncating `x + 0.5` rounds a positive x to nearest.
                // (Through i64: one instruction each way, and the value is below 2^53.)
                let mut rounded = (magnitude * scale + 0.5) as i64 as u64;
                if rounded as i64 as f64 / scale != magnitude {
                    continue;
                }
                let whole = rounded / scale as u64;
                rounded %= scale as u64;
                while decimals > 0 && rounded % 10 == 0 {
                    rounded /= 10;
                    decimals -= 1;
                }
                if value < 0.0 {
                    self.put_fixed(b"-");
                }
                self.put_uint(whole);
                if decimals == 0 {
                    self.put_fixed(b".0");
                } else {
                    self.put_fixed(b".");
                    put_digits_u64(&mut self.row[self.len..self.len + decimals], rounded);
                    self.len += decimals;
                }
                return;
            }
        }
        let mut fbuf = ryu::Buffer::new();
        let text = fbuf.format_finite(value).as_bytes();
        self.row[self.len..self.len + text.len()].copy_from_slice(text);
        self.len += text.len();
    }
}

/// `,"name":` (and `null` after it when `null`) for one field, padded to
/// [`PAD`] bytes, and its length. The name comes from the schema
/// ([`Field::name`]), so it is spelled in one place only.
const fn key(field: Field, null: bool) -> ([u8; PAD], usize) {
    let mut out = [b' '; PAD];
    let mut len = 0;
    let tail: &[u8] = if null { b"null" } else { b"" };
    let parts: [&[u8]; 4] = [b",\"", field.name().as_bytes(), b"\":", tail];
    let mut part = 0;
    while part < parts.len() {
        let bytes = parts[part];
        let mut i = 0;
        while i < bytes.len() {
            out[len] = bytes[i];
            len += 1;
            i += 1;
        }
        part += 1;
    }
    (out, len)
}

/// Every field's [`key`], in `Field::ALL` order.
const fn keys(null: bool) -> [([u8; PAD], usize); N_FIELDS] {
    let mut out = [([b' '; PAD], 0); N_FIELDS];
    let mut i = 0;
    while i < N_FIELDS {
        out[i] = key(Field::ALL[i], null);
        i += 1;
    }
    out
}

/// `,"<field name>":` for every field, in `Field::ALL` order.
const KEYS: [([u8; PAD], usize); N_FIELDS] = keys(false);

/// The same keys followed by `null`.
const KEYS_NULL: [([u8; PAD], usize); N_FIELDS] = keys(true);

/// Writes `value` into `slot` as zero-padded decimal digits.
fn put_digits(slot: &mut [u8], value: u32) {
    put_digits_u64(slot, u64::from(value));
}

/// Writes `value` into `slot` as zero-padded decimal digits.
#[inline(always)]
fn put_digits_u64(slot: &mut [u8], mut value: u64) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ryu_text(value: f64) -> String {
        ryu::Buffer::new().format_finite(value).to_owned()
    }

    fn ours(value: f64) -> String {
        let mut writer = RowWriter::default();
        writer.put_f64(value);
        String::from_utf8(writer.row[..writer.len].to_vec()).expect("ASCII")
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
    fn longest_rows_fit_and_match_the_schema_writer() {
        use crate::observation::Measurements;
        let mut measurements = Measurements::default();
        for field in Field::ALL {
            measurements.set(field, Some(-1.7976931348623157e308));
        }
        let observation = Observation {
            station_id: StationId::parse("abcdefghijklmnop").expect("16 characters is valid"),
            observed_at: chrono::DateTime::from_timestamp(253_402_300_799, 0).expect("9999-12-31"),
            measurements,
        };
        let (mut fast, mut reference) = (Vec::new(), Vec::new());
        RowWriter::default().write_row(&mut fast, &observation);
        observation.write_json(&mut reference, TimeKey::ObservedAt);
        assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&reference));
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
