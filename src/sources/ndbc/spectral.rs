//! The NDBC wave-spectrum parsers (docs/REFERENCE.md, Spectrum): the five
//! per-band quantity files, realtime and historical, and the `.spec`
//! summary. Bytes in, rows plus per-line errors out; pure, never panics.
//!
//! - Realtime (`41010.data_spec`, `.swdir`, `.swdir2`, `.swr1`, `.swr2`):
//!   one `#YY MM DD hh mm …` header naming the quantity (`Sep_Freq` /
//!   `spec_1`, `alpha1_1`, `alpha2_1`, `r1_1`, `r2_1`), then rows of five
//!   date fields, `Sep_Freq` in `.data_spec`, and `value (freq)` pairs:
//!   each row carries its own band layout.
//! - Historical yearly files (`41010w2019part.txt`, `46042w1996.txt`): the
//!   header lists the frequencies (`.0200 .0325 …`), the rows one value per
//!   frequency, with or without a minute column, two- or four-digit years.
//!   The quantity is the letter after the station id in the file name (`w`
//!   density, `d` α1, `i` α2, `j` r1, `k` r2); r1 and r2 are written × 100
//!   there and divided back to 0–1 here.
//! - `.spec`: `WVHT SwH SwP WWH WWP SwD WWD STEEPNESS APD MWD`, columns by
//!   name; compass points become whole degrees, steepness stays a word.
//!
//! Missing values (999 in any spelling for the quantities and MWD, 99 for
//! the summary's heights and periods, `MM`, `N/A` steepness) are `None`. A
//! value outside its quantity's range ([`Quantity::valid_range`]) or an
//! unknown compass point is `None` too and reported as a [`Rejection`]. A
//! line that cannot be read whole (a malformed number, date or pair, a
//! frequency outside 0–1 Hz, the wrong number of values) is a [`LineError`]:
//! skipped, reported, and the rest of the file still read. No value is ever
//! guessed.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

use super::parse::{ndbc_year, parse_decimal};
use crate::observation::StationId;
use crate::spectrum::{compass_to_degrees, Quantity, SpectralRow, SpectralSummary};

/// A line skipped whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// A value set to `None` in a row that is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong (`alpha1 400 at 0.033 Hz is out of range, 0 to 360`).
    pub what: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {} (set to null)", self.line, self.what)
    }
}

/// The rows of one file, its bad lines and its rejected values, each in
/// file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<T> {
    pub rows: Vec<T>,
    pub errors: Vec<LineError>,
    pub rejected: Vec<Rejection>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Parsed { rows: Vec::new(), errors: Vec::new(), rejected: Vec::new() }
    }
}

/// What a spectral file held.
#[derive(Debug, Clone, PartialEq)]
pub enum SpectralFile {
    /// One of the five per-band quantities.
    Quantity(Parsed<SpectralRow>),
    /// A `.spec` summary.
    Summary(Parsed<SpectralSummary>),
}

/// Why a file is not read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("not an NDBC spectral file (no spectral header line)")]
    NotSpectral,
    #[error(
        "a historical spectral file whose quantity the name does not tell: expected the station id, then w (density), d (alpha1), i (alpha2), j (r1) or k (r2), then the year, as in 41010w2019.txt"
    )]
    UnknownQuantity,
}

/// The kind of a spectral file, from its header line (and, for the
/// historical files, its name).
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    /// Realtime pairs; `sep` when a `Sep_Freq` column comes first.
    Pairs { quantity: Quantity, sep: bool },
    /// Historical: `date_columns` date fields, then one value per frequency.
    Columns { quantity: Quantity, date_columns: usize, freqs: Vec<f64> },
    /// `.spec`: each column's index.
    Summary(SummaryColumns),
}

#[derive(Debug, Clone, PartialEq)]
struct SummaryColumns {
    date: [Option<usize>; 5],
    wvht: usize,
    swh: usize,
    swp: usize,
    wwh: usize,
    wwp: usize,
    swd: usize,
    wwd: usize,
    steepness: usize,
    apd: usize,
    mwd: usize,
    n: usize,
}

/// Parses a spectral file of `station`. `file_name` names the quantity of a
/// historical file (`41010w2019part.txt`).
pub fn parse(bytes: &[u8], station: &StationId, file_name: Option<&str>) -> Result<SpectralFile, FileError> {
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().map(|(i, line)| (i + 1, line));
    let mut header = None;
    for (_, line) in lines.by_ref() {
        let Ok(text) = std::str::from_utf8(line) else { return Err(FileError::NotSpectral) };
        if text.trim().is_empty() {
            continue;
        }
        header = Some(layout_of(text, file_name)?);
        break;
    }
    let layout = header.ok_or(FileError::NotSpectral)?;
    let mut quantity_rows = Parsed::default();
    let mut summary_rows = Parsed::default();
    for (number, line) in lines {
        let text = match std::str::from_utf8(line) {
            Ok(text) => text.trim(),
            Err(_) => {
                let error = LineError { line: number, reason: "not UTF-8 text".into() };
                match layout {
                    Layout::Summary(_) => summary_rows.errors.push(error),
                    _ => quantity_rows.errors.push(error),
                }
                continue;
            }
        };
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let tokens: Vec<&str> = text.split_ascii_whitespace().collect();
        match &layout {
            Layout::Pairs { quantity, sep } => {
                push(&mut quantity_rows, number, pairs_row(&tokens, station, *quantity, *sep, number))
            }
            Layout::Columns { quantity, date_columns, freqs } => push(
                &mut quantity_rows,
                number,
                columns_row(&tokens, station, *quantity, *date_columns, freqs, number),
            ),
            Layout::Summary(columns) => {
                push(&mut summary_rows, number, summary_row(&tokens, station, columns, number))
            }
        }
    }
    Ok(match layout {
        Layout::Summary(_) => SpectralFile::Summary(summary_rows),
        _ => SpectralFile::Quantity(quantity_rows),
    })
}

/// What reading one row gives: the row and its rejections, or why not.
type RowResult<T> = Result<(T, Vec<Rejection>), String>;

fn push<T>(parsed: &mut Parsed<T>, line: usize, result: RowResult<T>) {
    match result {
        Ok((row, rejected)) => {
            parsed.rows.push(row);
            parsed.rejected.extend(rejected);
        }
        Err(reason) => parsed.errors.push(LineError { line, reason }),
    }
}

/// Reads the header line.
fn layout_of(header: &str, file_name: Option<&str>) -> Result<Layout, FileError> {
    let tokens: Vec<&str> = header.trim().trim_start_matches('#').split_ascii_whitespace().collect();
    if tokens.first() != Some(&"YY") && tokens.first() != Some(&"YYYY") {
        return Err(FileError::NotSpectral);
    }
    let has = |name: &str| tokens.iter().position(|t| *t == name);
    if let (Some(wvht), Some(swh)) = (has("WVHT"), has("SwH")) {
        let need = |name: &str| has(name).ok_or(FileError::NotSpectral);
        return Ok(Layout::Summary(SummaryColumns {
            date: [Some(0), has("MM"), has("DD"), has("hh"), has("mm")],
            wvht,
            swh,
            swp: need("SwP")?,
            wwh: need("WWH")?,
            wwp: need("WWP")?,
            swd: need("SwD")?,
            wwd: need("WWD")?,
            steepness: need("STEEPNESS")?,
            apd: need("APD")?,
            mwd: need("MWD")?,
            n: tokens.len(),
        }));
    }
    for (marker, quantity, sep) in [
        ("Sep_Freq", Quantity::Density, true),
        ("spec_1", Quantity::Density, false),
        ("alpha1_1", Quantity::Alpha1, false),
        ("alpha2_1", Quantity::Alpha2, false),
        ("r1_1", Quantity::R1, false),
        ("r2_1", Quantity::R2, false),
    ] {
        if has(marker).is_some() {
            return Ok(Layout::Pairs { quantity, sep });
        }
    }
    let date_columns =
        tokens.iter().take_while(|t| matches!(**t, "YY" | "YYYY" | "MM" | "DD" | "hh" | "mm")).count();
    let freqs: Option<Vec<f64>> = tokens[date_columns..].iter().map(|t| frequency(t)).collect();
    match freqs {
        Some(freqs) if date_columns >= 4 && !freqs.is_empty() => {
            let quantity = file_name.and_then(historical_quantity).ok_or(FileError::UnknownQuantity)?;
            Ok(Layout::Columns { quantity, date_columns, freqs })
        }
        _ => Err(FileError::NotSpectral),
    }
}

/// How NDBC names one quantity's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileNames {
    pub quantity: Quantity,
    /// The realtime extension: `41010.swdir`.
    pub extension: &'static str,
    /// The historical letter after the station id: `41010d2019.txt`.
    pub letter: u8,
    /// The archive directory of the yearly files: `historical/swdir/`.
    pub archive: &'static str,
}

/// Every quantity's file names, in [`Quantity::ALL`] order.
pub const FILE_NAMES: [FileNames; 5] = [
    FileNames { quantity: Quantity::Density, extension: "data_spec", letter: b'w', archive: "swden" },
    FileNames { quantity: Quantity::Alpha1, extension: "swdir", letter: b'd', archive: "swdir" },
    FileNames { quantity: Quantity::Alpha2, extension: "swdir2", letter: b'i', archive: "swdir2" },
    FileNames { quantity: Quantity::R1, extension: "swr1", letter: b'j', archive: "swr1" },
    FileNames { quantity: Quantity::R2, extension: "swr2", letter: b'k', archive: "swr2" },
];

/// The quantity letter of a historical file name: the letter between the
/// station id and the four-digit year (`41010w2019part.txt` → density).
fn historical_quantity(name: &str) -> Option<Quantity> {
    let letter = name.as_bytes()[quantity_letter_at(name)?].to_ascii_lowercase();
    FILE_NAMES.iter().find(|names| names.letter == letter).map(|names| names.quantity)
}

/// The file names of the five quantities of the set `file_name` belongs to
/// (`41010.swdir` → `41010.data_spec`, `41010.swdir`, …; `41010w2019part.txt`
/// → `41010w2019part.txt`, `41010d2019part.txt`, …), `None` when the name is
/// not one of NDBC's spectral names.
pub fn quantity_siblings(file_name: &str) -> Option<[(Quantity, String); 5]> {
    if let Some((stem, ext)) = file_name.rsplit_once('.') {
        if FILE_NAMES.iter().any(|names| names.extension == ext) {
            return Some(FILE_NAMES.map(|names| (names.quantity, format!("{stem}.{}", names.extension))));
        }
    }
    historical_quantity(file_name)?;
    let at = quantity_letter_at(file_name)?;
    let bytes = file_name.as_bytes();
    Some(FILE_NAMES.map(|names| {
        let mut name = bytes.to_vec();
        name[at] =
            if bytes[at].is_ascii_uppercase() { names.letter.to_ascii_uppercase() } else { names.letter };
        (names.quantity, String::from_utf8_lossy(&name).into_owned())
    }))
}

/// Where the quantity letter of a historical name is: the letter right
/// before the four-digit year, the rightmost such (in the base name).
fn quantity_letter_at(name: &str) -> Option<usize> {
    let base_at = name.rfind(['/', '\\']).map_or(0, |i| i + 1);
    let base = &name[base_at..];
    let stem = base.split('.').next().unwrap_or(base).as_bytes();
    (1..stem.len().saturating_sub(4))
        .rev()
        .find(|&i| stem[i].is_ascii_alphabetic() && stem[i + 1..i + 5].iter().all(u8::is_ascii_digit))
        .map(|i| base_at + i)
}

/// A band's centre frequency: a decimal in (0, 1) Hz.
fn frequency(token: &str) -> Option<f64> {
    parse_decimal(token.as_bytes()).filter(|f| *f > 0.0 && *f < 1.0)
}

/// The time of a row from its date tokens (year, month, day, hour[, minute]).
fn timestamp(tokens: &[&str]) -> Result<DateTime<Utc>, String> {
    let number = |i: usize, what: &str| -> Result<u32, String> {
        let token = tokens.get(i).ok_or_else(|| format!("no {what}"))?;
        if token.is_empty() || token.len() > 4 || !token.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{what} {token:?} is not a number"));
        }
        token.parse().map_err(|_| format!("{what} {token:?} is not a number"))
    };
    let year_token = tokens.first().ok_or("no year")?;
    let year = ndbc_year(year_token.as_bytes())
        .ok_or_else(|| format!("year {year_token:?} is neither YY nor YYYY"))?;
    let (month, day, hour) = (number(1, "month")?, number(2, "day")?, number(3, "hour")?);
    let minute = if tokens.len() > 4 { number(4, "minute")? } else { 0 };
    NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|date| date.and_hms_opt(hour, minute, 0))
        .map(|time| time.and_utc())
        .ok_or_else(|| format!("{year}-{month:02}-{day:02} {hour:02}:{minute:02} is not a time"))
}

/// A value of `quantity` as written: `None` for 999 (NDBC's missing marker)
/// and for a value out of range (then reported); an error when the token is
/// not a number.
fn quantity_value(
    token: &str,
    quantity: Quantity,
    scale: f64,
    freq: f64,
    line: usize,
    rejected: &mut Vec<Rejection>,
) -> Result<Option<f64>, String> {
    let raw = parse_decimal(token.as_bytes())
        .ok_or_else(|| format!("{quantity} value {token:?} is not a number"))?;
    if raw == 999.0 {
        return Ok(None);
    }
    let value = raw / scale;
    let (min, max) = quantity.valid_range();
    if !(min..=max).contains(&value) {
        rejected.push(Rejection {
            line,
            what: format!("{quantity} {token} at {freq} Hz is out of range, {min} to {max}"),
        });
        return Ok(None);
    }
    Ok(Some(value))
}

/// A realtime row: date, [Sep_Freq,] `value (freq)` pairs.
fn pairs_row(
    tokens: &[&str],
    station: &StationId,
    quantity: Quantity,
    sep: bool,
    line: usize,
) -> RowResult<SpectralRow> {
    if tokens.len() < 5 {
        return Err("fewer than five date fields".into());
    }
    let time = timestamp(&tokens[..5])?;
    let mut rest = &tokens[5..];
    let sep_freq_hz = if sep {
        let (token, after) = rest.split_first().ok_or("no Sep_Freq")?;
        rest = after;
        let value =
            parse_decimal(token.as_bytes()).ok_or_else(|| format!("Sep_Freq {token:?} is not a number"))?;
        Some(if value == 999.0 {
            None
        } else if value > 0.0 && value < 1.0 {
            Some(value)
        } else {
            return Err(format!("Sep_Freq {token} is not a frequency between 0 and 1 Hz"));
        })
    } else {
        None
    };
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err(format!("{} tokens after the date: expected `value (freq)` pairs", rest.len()));
    }
    let mut rejected = Vec::new();
    let mut bands = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks_exact(2) {
        let freq_token = pair[1]
            .strip_prefix('(')
            .and_then(|t| t.strip_suffix(')'))
            .ok_or_else(|| format!("{:?} is not a frequency in parentheses", pair[1]))?;
        let freq = frequency(freq_token)
            .ok_or_else(|| format!("frequency {freq_token:?} is not between 0 and 1 Hz"))?;
        let value = quantity_value(pair[0], quantity, 1.0, freq, line, &mut rejected)?;
        bands.push((freq, value));
    }
    Ok((SpectralRow { station_id: station.clone(), timestamp: time, quantity, sep_freq_hz, bands }, rejected))
}

/// A historical row: date, then one value per header frequency.
fn columns_row(
    tokens: &[&str],
    station: &StationId,
    quantity: Quantity,
    date_columns: usize,
    freqs: &[f64],
    line: usize,
) -> RowResult<SpectralRow> {
    if tokens.len() != date_columns + freqs.len() {
        return Err(format!("{} fields, the header has {}", tokens.len(), date_columns + freqs.len()));
    }
    let time = timestamp(&tokens[..date_columns])?;
    let scale = if matches!(quantity, Quantity::R1 | Quantity::R2) { 100.0 } else { 1.0 };
    let mut rejected = Vec::new();
    let mut bands = Vec::with_capacity(freqs.len());
    for (token, &freq) in tokens[date_columns..].iter().zip(freqs) {
        bands.push((freq, quantity_value(token, quantity, scale, freq, line, &mut rejected)?));
    }
    Ok((
        SpectralRow { station_id: station.clone(), timestamp: time, quantity, sep_freq_hz: None, bands },
        rejected,
    ))
}

/// A `.spec` row.
fn summary_row(
    tokens: &[&str],
    station: &StationId,
    columns: &SummaryColumns,
    line: usize,
) -> RowResult<SpectralSummary> {
    if tokens.len() != columns.n {
        return Err(format!("{} fields, the header has {}", tokens.len(), columns.n));
    }
    let date: Vec<&str> = columns.date.iter().flatten().map(|&i| tokens[i]).collect();
    let time = timestamp(&date)?;
    let mut rejected = Vec::new();
    // Heights and periods: MM and 99 are missing.
    let number = |i: usize, name: &str| -> Result<Option<f64>, String> {
        let token = tokens[i];
        if token == "MM" {
            return Ok(None);
        }
        let value =
            parse_decimal(token.as_bytes()).ok_or_else(|| format!("{name} {token:?} is not a number"))?;
        Ok((value != 99.0).then_some(value))
    };
    let mut compass = |i: usize, name: &str| -> Option<u16> {
        let token = tokens[i];
        if token == "MM" {
            return None;
        }
        let degrees = compass_to_degrees(token);
        if degrees.is_none() {
            rejected.push(Rejection { line, what: format!("{name} {token:?} is not a compass point") });
        }
        degrees
    };
    let swell_dir_deg = compass(columns.swd, "SwD");
    let wind_wave_dir_deg = compass(columns.wwd, "WWD");
    let steepness = match tokens[columns.steepness] {
        "MM" | "N/A" => None,
        word if word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') => Some(word.to_owned()),
        word => {
            rejected.push(Rejection { line, what: format!("STEEPNESS {word:?} is not a word") });
            None
        }
    };
    let mean_wave_dir_deg = match tokens[columns.mwd] {
        "MM" => None,
        token => {
            let value =
                parse_decimal(token.as_bytes()).ok_or_else(|| format!("MWD {token:?} is not a number"))?;
            if value == 999.0 {
                None
            } else if (0.0..=360.0).contains(&value) && value.fract() == 0.0 {
                Some(value as u16)
            } else {
                rejected
                    .push(Rejection { line, what: format!("MWD {token} is out of range, 0 to 360 degrees") });
                None
            }
        }
    };
    let summary = SpectralSummary {
        station_id: station.clone(),
        timestamp: time,
        wave_height_m: number(columns.wvht, "WVHT")?,
        swell_height_m: number(columns.swh, "SwH")?,
        swell_period_s: number(columns.swp, "SwP")?,
        wind_wave_height_m: number(columns.wwh, "WWH")?,
        wind_wave_period_s: number(columns.wwp, "WWP")?,
        swell_dir_deg,
        wind_wave_dir_deg,
        steepness,
        average_period_s: number(columns.apd, "APD")?,
        mean_wave_dir_deg,
    };
    Ok((summary, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn station() -> StationId {
        StationId::parse("41010").expect("id")
    }

    fn quantity_rows(text: &str, name: &str) -> Parsed<SpectralRow> {
        match parse(text.as_bytes(), &station(), Some(name)).expect("a spectral file") {
            SpectralFile::Quantity(parsed) => parsed,
            other => panic!("not a quantity file: {other:?}"),
        }
    }

    #[test]
    fn realtime_density_with_sep_freq_and_missing_values() {
        let parsed = quantity_rows(
            "#YY  MM DD hh mm Sep_Freq  < spec_1 (freq_1) spec_2 (freq_2) ... >\n\
             2020 06 08 03 50 0.225 0.000 (0.033) 999.00 (0.038) 1.5 (0.043)\n\
             2020 06 08 02 50 999.0 0.5 (0.033)\n",
            "41010.data_spec",
        );
        assert_eq!(parsed.errors, vec![]);
        let row = &parsed.rows[0];
        assert_eq!(row.quantity, Quantity::Density);
        assert_eq!(row.sep_freq_hz, Some(Some(0.225)));
        assert_eq!(row.bands, vec![(0.033, Some(0.0)), (0.038, None), (0.043, Some(1.5))]);
        assert_eq!(parsed.rows[1].sep_freq_hz, Some(None));
    }

    #[test]
    fn historical_r1_is_scaled_and_the_quantity_comes_from_the_name() {
        let text = "#YY  MM DD hh mm  .0200  .0325\n2019 02 06 00 40     59    999\n";
        let parsed = quantity_rows(text, "41010j2019part.txt");
        assert_eq!(parsed.rows[0].quantity, Quantity::R1);
        assert_eq!(parsed.rows[0].bands, vec![(0.02, Some(0.59)), (0.0325, None)]);
        assert_eq!(parse(text.as_bytes(), &station(), Some("spectra.txt")), Err(FileError::UnknownQuantity));
    }

    #[test]
    fn two_digit_years_without_minutes() {
        let parsed =
            quantity_rows("YY MM DD hh   .030   .040\n96 01 01 00    .06    .62\n", "46042w1996.txt");
        assert_eq!(parsed.rows[0].timestamp.to_rfc3339(), "1996-01-01T00:00:00+00:00");
        assert_eq!(parsed.rows[0].bands, vec![(0.03, Some(0.06)), (0.04, Some(0.62))]);
    }

    #[test]
    fn bad_lines_are_skipped_and_out_of_range_values_nulled() {
        let parsed = quantity_rows(
            "#YY  MM DD hh mm alpha1_1 (freq_1) alpha1_2 (freq_2) ... >\n\
             2020 06 08 03 50 36.0 (0.063) 400.0 (0.068)\n\
             2020 06 08 02 50 36.0 (0.063) 52.0\n\
             2020 13 08 02 50 36.0 (0.063)\n\
             2020 06 08 01 50 x (0.063)\n\
             2020 06 08 00 50 36.0 (1.5)\n\
             2020 06 07 23 50 36.0 0.063\n",
            "41010.swdir",
        );
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].bands, vec![(0.063, Some(36.0)), (0.068, None)]);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(
            parsed.rejected[0].to_string(),
            "line 2: alpha1 400.0 at 0.068 Hz is out of range, 0 to 360 (set to null)"
        );
        assert_eq!(parsed.errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![3, 4, 5, 6, 7]);
    }

    #[test]
    fn summary_rows() {
        let text = "#YY  MM DD hh mm WVHT  SwH  SwP  WWH  WWP SwD WWD  STEEPNESS  APD MWD\n\
                    #yr  mo dy hr mn    m    m  sec    m  sec  -  degT     -      sec degT\n\
                    2020 06 08 03 40  1.1  1.0  5.6  0.5  3.6 SSW  SE      STEEP  4.9 196\n\
                    2022 06 05 12 40  0.5  0.0   MM  0.4  3.0  MM WNW        N/A  3.5 999\n\
                    2022 06 05 11 40  0.5  0.3  6.7  0.4  2.9 XYZ WNW        N/A  3.4\n";
        let SpectralFile::Summary(parsed) = parse(text.as_bytes(), &station(), None).expect("spec") else {
            panic!("a summary");
        };
        assert_eq!(parsed.rows.len(), 2);
        let first = &parsed.rows[0];
        assert_eq!(first.swell_dir_deg, Some(203));
        assert_eq!(first.wind_wave_dir_deg, Some(135));
        assert_eq!(first.steepness.as_deref(), Some("STEEP"));
        assert_eq!(first.mean_wave_dir_deg, Some(196));
        let second = &parsed.rows[1];
        assert_eq!(
            (second.swell_period_s, second.swell_dir_deg, second.steepness.as_deref()),
            (None, None, None)
        );
        assert_eq!((second.wind_wave_dir_deg, second.mean_wave_dir_deg), (Some(293), None));
        assert_eq!(parsed.errors.len(), 1, "a short row");
    }

    #[test]
    fn siblings_name_the_five_files_of_a_set() {
        let names = |name: &str| quantity_siblings(name).map(|set| set.map(|(_, name)| name));
        assert_eq!(
            names("data/41010.swdir2"),
            Some(
                [
                    "data/41010.data_spec",
                    "data/41010.swdir",
                    "data/41010.swdir2",
                    "data/41010.swr1",
                    "data/41010.swr2"
                ]
                .map(String::from)
            )
        );
        assert_eq!(
            names("41010w2019part.txt"),
            Some(
                [
                    "41010w2019part.txt",
                    "41010d2019part.txt",
                    "41010i2019part.txt",
                    "41010j2019part.txt",
                    "41010k2019part.txt"
                ]
                .map(String::from)
            )
        );
        assert_eq!(names("46042W1996.TXT").map(|set| set[4].clone()), Some("46042K1996.TXT".to_owned()));
        assert_eq!(names("41002.txt"), None);
        assert_eq!(names("46035h1990.txt"), None);
    }

    #[test]
    fn other_files_are_not_spectral() {
        for text in ["", "<html>", "#YY  MM DD hh mm WDIR WSPD GST\n", "#YY MM DD hh mm DEPTH OTMP\n"] {
            assert_eq!(
                parse(text.as_bytes(), &station(), Some("41010.txt")),
                Err(FileError::NotSpectral),
                "{text}"
            );
        }
    }
}
