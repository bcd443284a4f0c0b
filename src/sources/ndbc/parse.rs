//! The NDBC standard-meteorological text parser (docs/REFERENCE.md,
//! Observation): bytes in, observations plus per-line errors out.
//!
//! It reads every stdmet vintage NDBC has served: realtime2 `{ID}.txt`
//! (`#YY MM DD hh mm WDIR … TIDE` and a `#yr mo …` units line), the yearly and
//! monthly historical files (two-digit `YY` or `YYYY` years, no minute column,
//! `WD`/`BAR` names, no `#`, no `PTDY`, zero-padded `0987.4`, `.79`, `-.3`),
//! `latest_obs.txt` (a `STN` column, `PTDY` before `ATMP`) and the drifting-buoy
//! `.drift` files (one `hhmm` column, `LAT`/`LON` per row, both ignored).
//! Columns are always found by name in the header line.
//!
//! Rules (docs/REFERENCE.md, Observation):
//! - `MM` and the per-field sentinels of [`Field::sentinel`] (compared
//!   numerically, so `99.00`, `99.0` and `99` are the same) become `None`,
//!   never 0. A 99 in `WDIR`/`MWD` is a real direction (their sentinel is 999).
//! - A row shorter than the header has its missing trailing fields `None`.
//! - An implausible value (a number outside [`Field::valid_range`] that is not
//!   the sentinel: a spike such as `WVHT 45.0` or `PRES 1200`) becomes `None`
//!   and the rest of the row is kept. Each one is reported as a
//!   [`ValueRejection`] in [`Parsed::rejected`] / [`Summary::rejected`], in
//!   file order.
//! - Except in a shifted row. A row that lost (or gained) a middle column
//!   slides its later values into the wrong fields (`WDIR 1013`: the pressure
//!   slid in), so its plausible-looking values are wrong too. A row is
//!   shifted, and skipped whole as a [`LineErrorKind::ShiftedColumns`] bad
//!   line, when
//!   1. two or more of its values are implausible, or
//!   2. one is, and the row has fewer tokens than the longest row kept so
//!      far under the current header (before the first kept row: fewer
//!      tokens than the header has columns).
//!
//!   Rule 2 measures against the rows above rather than the header because
//!   historical files legitimately leave out trailing columns for months
//!   (`TIDE` before it was added): a spike in such a row is a partial value.
//! - A line with more columns than the header, a malformed number or date
//!   (month 13, February 30, minute 60, …), or bytes that are not UTF-8 is a
//!   bad line: skipped whole and reported as a [`LineError`], and the rest
//!   of the file is still read. Blank lines are skipped silently.
//! - `#` lines that are not a header (units lines, comments) are skipped
//!   wherever they appear.
//! - A header line in mid-file (concatenated or hand-edited files) is judged
//!   by the rows below it, so that a stray one cannot make every later row
//!   unreadable. Its witness is the first data line below it that *reads*
//!   under the new header or under the columns in use; blank lines, `#`
//!   lines that are not headers, and up to 16 data lines that read under
//!   neither are passed over. A row reads under a stdmet header when it
//!   would be kept there: no more tokens than columns, valid date and time,
//!   well-formed numbers, a valid `STN`, not shifted (for the new header,
//!   rule 2 counts against its own columns). A row reads under a header of
//!   another NDBC kind (`.cwind`) when it has at most as many tokens as that
//!   header has columns. Then:
//!   - the witness reads under the columns in use but not under the new
//!     header: the header line is a bad line ([`LineErrorKind::StrayHeader`])
//!     and the columns in use go on;
//!   - it reads under both, gives different values under each, and has
//!     exactly as many tokens as the columns in use and fewer than the new
//!     header has: the same (a header that would leave its last columns
//!     empty and move the row's values is not the row's header);
//!   - otherwise (it reads under the new header only; or under both, to the
//!     same values, as when a newer vintage adds `TIDE` at the end; or there
//!     is no witness because another header or the end of the file comes
//!     first, or 16 data lines read under neither) the header re-defines the
//!     columns of the rows below it, as for two files concatenated.
//!
//!   Below a header of another NDBC kind there are no columns in use, so any
//!   header there is taken. Judging reads ahead only at a mid-file header.
//! - Two-digit years are 19YY when YY >= 50, else 20YY (NDBC's two-digit files
//!   run 1970–1998). The year is judged by the value, not by the header name:
//!   realtime files say `#YY` over four-digit years.
//! - Duplicate timestamps are kept as rows; the store deduplicates by key.
//!
//! NDBC files that are not standard meteorological data (`.cwind`, `.spec`,
//! `.ocean`, `.adcp`, `.dart`, `.srad`, `.supl`, `.rain`, `.dmv`, spectral
//! files, historical cwind/swden, …) never yield observations: their header
//! has a column stdmet does not know (`GDR`, `SwH`, `DEPTH`, `.030`, …), and
//! the whole file is refused with [`FileError::NotStdmet`]. (This matters:
//! `.cwind` has `WDIR`/`WSPD`/`GST` columns with another meaning and its own
//! "no gust" markers.) A file with no NDBC header at all (an HTML error page,
//! an empty body) is [`FileError::NotNdbc`].
//!
//! The parser is pure (no I/O), never panics, and is built for speed: lines
//! are found with `memchr`, tokens are split by hand, header columns are
//! mapped to [`Field`]s once, numbers go through a correctly rounded
//! fast-path decimal parser, and dates are cached per day.
//! [`parse_each`] streams rows to a callback without allocating per row
//! (except for `latest_obs.txt`, whose station changes from row to row).
//!
//! It deliberately does not fetch, store, or deduplicate anything.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

use crate::observation::{Field, Measurements, Observation, StationId};

/// The result of parsing one file: its good rows, its bad lines, and the
/// implausible values set to `None` in good rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    /// Every good row, in file order (duplicates included).
    pub observations: Vec<Observation>,
    /// Every bad line, in file order.
    pub errors: Vec<LineError>,
    /// Every implausible value of a good row (now `None` in it), in file order.
    pub rejected: Vec<ValueRejection>,
}

/// What [`parse_each`] returns once every row went to the callback.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Number of good rows handed to the callback.
    pub n_rows: usize,
    /// Every bad line, in file order.
    pub errors: Vec<LineError>,
    /// Every implausible value of a good row (now `None` in it), in file order.
    pub rejected: Vec<ValueRejection>,
}

/// An implausible value in a good row: outside [`Field::valid_range`] and not
/// the sentinel. The row is kept with this field `None` (see the module doc;
/// a row with more evidence of shifted columns is a
/// [`LineErrorKind::ShiftedColumns`] bad line instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueRejection {
    /// 1-based line number in the file.
    pub line: usize,
    /// The header's name for the column (`WVHT`, `BAR`, …).
    pub column: &'static str,
    /// The token as written (shortened when long).
    pub value: String,
    /// The field it would have filled.
    pub field: Field,
}

impl fmt::Display for ValueRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (min, max) = self.field.valid_range();
        write!(
            f,
            "line {}: {} {} is out of range, {min} to {max} {} (set to null)",
            self.line,
            self.column,
            self.value,
            self.field.unit()
        )
    }
}

/// A bad line: skipped whole, the rest of the file still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: usize,
    /// Why the line was skipped.
    pub kind: LineErrorKind,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl std::error::Error for LineError {}

/// Why a line was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineErrorKind {
    /// More tokens than the header has columns.
    #[error("{found} columns but the header has {expected}")]
    TooManyColumns {
        /// Tokens on the line.
        found: usize,
        /// Columns in the header.
        expected: usize,
    },
    /// A measurement that is neither `MM` nor a decimal number.
    #[error("malformed number {value:?} in column {column}")]
    BadNumber {
        /// The header's name for the column (`WSPD`, `BAR`, …).
        column: &'static str,
        /// The offending token (truncated when long).
        value: String,
    },
    /// A row whose columns look shifted: it lost (or gained) a middle
    /// column, so that its later values slid into the wrong fields. The
    /// evidence is two or more values outside [`Field::valid_range`], or one
    /// in a row shorter than the rows above it (see the module doc). A single
    /// implausible value elsewhere is a [`ValueRejection`], not a bad line.
    #[error("{}", describe_shift(column, value, *field, *n_out_of_range, *found, *expected))]
    ShiftedColumns {
        /// The header's name for the first column out of range (`WSPD`, `BAR`, …).
        column: &'static str,
        /// Its token as written (truncated when long).
        value: String,
        /// The field it would have filled.
        field: Field,
        /// How many values of the row are out of range (at least 1).
        n_out_of_range: usize,
        /// Tokens on the line.
        found: usize,
        /// Tokens of the longest row kept so far under this header (the
        /// header's column count before the first).
        expected: usize,
    },
    /// A date or time token that is not a number in its range.
    #[error("malformed {} {value:?} (column {column})", date_label(column))]
    BadDateField {
        /// The header's name for the column (`MM`, `hh`, …).
        column: &'static str,
        /// The offending token (truncated when long).
        value: String,
    },
    /// Date fields each in range but not a calendar date (February 30).
    #[error("impossible date {year:04}-{month:02}-{day:02}")]
    ImpossibleDate {
        /// Year as read (two-digit years already expanded).
        year: i32,
        /// Month 1–12.
        month: u32,
        /// Day 1–31.
        day: u32,
    },
    /// The row ends before all of its date and time columns.
    #[error("row ends before its date and time ({found} columns)")]
    MissingDate {
        /// Tokens on the line.
        found: usize,
    },
    /// The row has no `STN` column and no station was given for the file.
    #[error("no station id for this row: no STN column and none given")]
    NoStation,
    /// The `STN` token is not a valid station id.
    #[error("invalid station id {value:?}")]
    BadStation {
        /// The offending token (truncated when long).
        value: String,
    },
    /// The line's bytes are not UTF-8.
    #[error("bytes that are not UTF-8")]
    NotUtf8,
    /// A header in mid-file that switches to columns stdmet does not know.
    #[error("header that is not standard meteorological ({})", describe_unknown(unknown))]
    ForeignHeader {
        /// The unknown column names.
        unknown: Vec<String>,
    },
    /// A row below such a header.
    #[error("row under a header that is not standard meteorological")]
    UnderForeignHeader,
    /// A header line in mid-file that the rows below it do not fit, while
    /// they fit the columns in use: ignored, the columns in use go on (see
    /// the module doc).
    #[error("header line ignored: the row on line {witness} fits the columns in use, not this header's {columns} columns")]
    StrayHeader {
        /// Columns the ignored header names.
        columns: usize,
        /// The line of the row below that decided it.
        witness: usize,
    },
}

/// The message of [`LineErrorKind::ShiftedColumns`].
fn describe_shift(
    column: &str,
    value: &str,
    field: Field,
    n_out_of_range: usize,
    found: usize,
    expected: usize,
) -> String {
    let (min, max) = field.valid_range();
    let first = format!("{value} is out of range for column {column} ({min} to {max})");
    match n_out_of_range {
        0 | 1 => {
            format!("columns look shifted: {first} in a row of {found} columns where {expected} are expected")
        }
        2 => format!("columns look shifted: {first}, and 1 more value in the row is out of range"),
        n => format!("columns look shifted: {first}, and {} more values in the row are out of range", n - 1),
    }
}

/// What a date column holds, for messages (`MM` alone reads like "missing").
fn date_label(column: &str) -> &'static str {
    match column {
        "YY" | "YYYY" => "year",
        "MM" => "month",
        "DD" => "day",
        "hh" => "hour",
        "mm" => "minute",
        "hhmm" => "time of day",
        _ => "date field",
    }
}

/// Why a whole file yields nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// No NDBC column header: an HTML error page, an empty body, random text.
    #[error("not an NDBC data file: {reason}")]
    NotNdbc {
        /// What was found instead of a header.
        reason: String,
    },
    /// An NDBC file of another kind (`.cwind`, `.spec`, `.ocean`, …).
    #[error("an NDBC file but not standard meteorological data ({})", describe_unknown(unknown))]
    NotStdmet {
        /// The header's column names that stdmet does not have, in header order.
        unknown: Vec<String>,
    },
    /// The file has no `STN` column and the caller gave no station.
    #[error("no station id: the file has no STN column and no station was given")]
    MissingStation,
}

/// `columns A, B, C are not stdmet` for error messages, at most ten names.
fn describe_unknown(columns: &[String]) -> String {
    const MAX: usize = 10;
    if columns.is_empty() {
        return "no measurement column".to_owned();
    }
    let mut out = columns.iter().take(MAX).map(String::as_str).collect::<Vec<_>>().join(", ");
    if columns.len() > MAX {
        out.push_str(&format!(" and {} more", columns.len() - MAX));
    }
    out.push_str(if columns.len() == 1 { " is not stdmet" } else { " are not stdmet" });
    format!("column{} {out}", if columns.len() == 1 { "" } else { "s" })
}

/// Parses a whole NDBC stdmet file into observations and bad lines.
///
/// `station` is used when the file has no `STN` column (every file except
/// `latest_obs.txt`); see [`station_from_file_name`].
pub fn parse(bytes: &[u8], station: Option<&StationId>) -> Result<Parsed, FileError> {
    // One slot per line is an upper bound on the rows: no reallocation.
    let mut observations = Vec::with_capacity(memchr::memchr_iter(b'\n', bytes).count() + 1);
    let summary = parse_each(bytes, station, |observation| observations.push(observation.clone()))?;
    Ok(Parsed { observations, errors: summary.errors, rejected: summary.rejected })
}

/// Parses a whole NDBC stdmet file, handing each good row to `on_row`.
///
/// The same [`Observation`] is reused from row to row, so nothing is
/// allocated per row; clone it to keep it. Bad lines and rejected values come
/// back in the [`Summary`]. See [`parse`] for `station`.
pub fn parse_each(
    bytes: &[u8],
    station: Option<&StationId>,
    mut on_row: impl FnMut(&Observation),
) -> Result<Summary, FileError> {
    let all_ascii = bytes.is_ascii();
    let mut lines = Lines::new(bytes);

    // The first meaningful line must be the header.
    let layout = loop {
        let Some((number, line)) = lines.next() else {
            return Err(FileError::NotNdbc {
                reason: if bytes.iter().all(u8::is_ascii_whitespace) {
                    "the file is empty".to_owned()
                } else {
                    "no column header line".to_owned()
                },
            });
        };
        let trimmed = trim(line);
        if trimmed.is_empty() {
            continue;
        }
        match classify_header(trimmed) {
            Header::Stdmet(layout) => break layout,
            Header::Foreign { unknown, .. } => return Err(FileError::NotStdmet { unknown }),
            Header::Other if trimmed[0] == b'#' => continue,
            Header::Other => return Err(FileError::NotNdbc { reason: not_a_header(number, trimmed) }),
        }
    };
    if !layout.has_station && station.is_none() {
        return Err(FileError::MissingStation);
    }

    let placeholder = || StationId::parse("unknown").expect("a literal valid station id");
    let mut row = RowParser {
        layout: Some(layout),
        longest_kept: 0,
        default_station: station.is_some(),
        observation: Observation {
            station_id: station.cloned().unwrap_or_else(placeholder),
            observed_at: DateTime::<Utc>::UNIX_EPOCH,
            measurements: Measurements::default(),
        },
        day_cache: None,
    };
    let mut summary = Summary::default();
    while let Some((number, line)) = lines.next() {
        if !all_ascii && !line.is_ascii() && std::str::from_utf8(line).is_err() {
            summary.errors.push(LineError { line: number, kind: LineErrorKind::NotUtf8 });
            continue;
        }
        let first = match line.iter().position(|b| !is_sep(*b)) {
            Some(first) => first,
            None => continue,
        };
        let trimmed = &line[first..];
        // Only `#` lines and lines starting with a column name can be headers:
        // data rows start with a digit (or, in latest_obs.txt, a station id,
        // which `classify_header` rejects quickly).
        if trimmed[0] == b'#' || trimmed[0].is_ascii_alphabetic() {
            match classify_header(trimmed) {
                Header::Other if trimmed[0] == b'#' => continue,
                Header::Other => {}
                Header::Stdmet(layout) => {
                    match row.stray_witness(Candidate::Stdmet(&layout), lines.clone()) {
                        Some(witness) => {
                            summary.errors.push(stray_header(number, layout.columns.len(), witness))
                        }
                        None => row.set_layout(Some(layout)),
                    }
                    continue;
                }
                Header::Foreign { unknown, n_columns } => {
                    match row.stray_witness(Candidate::Foreign { n_columns }, lines.clone()) {
                        Some(witness) => summary.errors.push(stray_header(number, n_columns, witness)),
                        None => {
                            row.set_layout(None);
                            let kind = LineErrorKind::ForeignHeader { unknown };
                            summary.errors.push(LineError { line: number, kind });
                        }
                    }
                    continue;
                }
            }
        }
        match row.parse(trimmed) {
            Ok(implausible) => {
                summary.n_rows += 1;
                if let Some(Implausible { column, token, field }) = implausible {
                    let value = shorten(token, 40);
                    summary.rejected.push(ValueRejection { line: number, column, value, field });
                }
                on_row(&row.observation);
            }
            Err(kind) => summary.errors.push(LineError { line: number, kind }),
        }
    }
    Ok(summary)
}

/// The bad line of a mid-file header judged stray.
fn stray_header(line: usize, columns: usize, witness: usize) -> LineError {
    LineError { line, kind: LineErrorKind::StrayHeader { columns, witness } }
}

/// The reason text for a first line that is not a header.
fn not_a_header(number: usize, line: &[u8]) -> String {
    let shown = shorten(line, 60);
    if line[0] == b'<' {
        format!("line {number} looks like HTML or XML, not an NDBC column header: {shown:?}")
    } else {
        format!("line {number} is not an NDBC column header: {shown:?}")
    }
}

/// Lossy, at most `max` bytes, for error messages.
fn shorten(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let mut out = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > max {
        out.push('…');
    }
    out
}

/// Derives the station from an NDBC file name.
///
/// Understands realtime names (`41002.txt`, `TPLM2.txt`, `22101.drift`),
/// historical yearly names (`46035h1990.txt`, `42a01c2003.txt`, and the
/// `46097h201908qc.txt` style with a month and a suffix) and monthly names
/// (`tplm212022.txt`: month code `1`–`9`, `a`, `b`, `c`, then the year).
/// A leading directory is ignored. Historical names need an id of at
/// least four characters before the code letter and a year in 1970–2099.
pub fn station_from_file_name(name: &str) -> Option<StationId> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = base.split('.').next().unwrap_or(base);
    let bytes = stem.as_bytes();
    // The rightmost code + four-digit year with only `\d{0,2}[a-z]*` after it.
    let split = (4..bytes.len().saturating_sub(4)).rev().find(|&code| {
        let year = &bytes[code + 1..code + 5];
        let rest = &bytes[code + 5..];
        let n_digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        bytes[code].is_ascii_alphanumeric()
            && bytes[code] != b'0'
            && year.iter().all(u8::is_ascii_digit)
            && parse_uint(year).is_some_and(|year| (1970..=2099).contains(&year))
            && n_digits <= 2
            && rest[n_digits..].iter().all(u8::is_ascii_alphabetic)
    });
    StationId::parse(match split {
        Some(code) => &stem[..code],
        None => stem,
    })
    .ok()
}

/// What a header column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    /// Drifting buoys: hour and minute in one `hhmm` token.
    HourMinute,
    /// `latest_obs.txt`: the station id.
    Station,
    /// Known but not kept (`LAT`, `LON`).
    Skip,
    Measure(Field),
}

/// Maps a header name to its column; `None` for names stdmet does not have.
///
/// Case matters: `MM` is the month, `mm` the minute.
fn column(name: &[u8]) -> Option<Column> {
    Some(match name {
        b"YY" | b"YYYY" => Column::Year,
        b"MM" => Column::Month,
        b"DD" => Column::Day,
        b"hh" => Column::Hour,
        b"mm" => Column::Minute,
        b"hhmm" => Column::HourMinute,
        b"STN" => Column::Station,
        b"LAT" | b"LON" => Column::Skip,
        b"WDIR" | b"WD" => Column::Measure(Field::WindDirDeg),
        b"WSPD" => Column::Measure(Field::WindSpeedMps),
        b"GST" => Column::Measure(Field::GustMps),
        b"WVHT" => Column::Measure(Field::WaveHeightM),
        b"DPD" => Column::Measure(Field::DominantPeriodS),
        b"APD" => Column::Measure(Field::AveragePeriodS),
        b"MWD" => Column::Measure(Field::MeanWaveDirDeg),
        b"PRES" | b"BAR" | b"BARO" => Column::Measure(Field::PressureHpa),
        b"ATMP" => Column::Measure(Field::AirTempC),
        b"WTMP" => Column::Measure(Field::WaterTempC),
        b"DEWP" => Column::Measure(Field::DewpointC),
        b"VIS" => Column::Measure(Field::VisibilityNmi),
        b"PTDY" => Column::Measure(Field::PressureTendencyHpa),
        b"TIDE" => Column::Measure(Field::TideFt),
        _ => return None,
    })
}

/// The columns of a stdmet header, in order, with their names for messages.
#[derive(Debug, Clone)]
struct Layout {
    columns: Vec<(Column, &'static str)>,
    has_station: bool,
}

/// What a line is, as far as headers go.
enum Header {
    /// Not a header: data, a units line, a comment, or not NDBC at all.
    Other,
    /// A standard-meteorological header.
    Stdmet(Layout),
    /// A header of another NDBC file kind.
    Foreign {
        /// Its column names that stdmet does not have.
        unknown: Vec<String>,
        /// All of its columns.
        n_columns: usize,
    },
}

/// A mid-file header being judged (see [`RowParser::stray_witness`]).
#[derive(Clone, Copy)]
enum Candidate<'a> {
    Stdmet(&'a Layout),
    Foreign { n_columns: usize },
}

/// Decides whether a (trimmed, non-empty) line is a column header.
///
/// A header names a year (`YY`/`YYYY`), `MM`, `DD` and an hour (`hh` or
/// `hhmm`); one optional leading `#` is dropped.
fn classify_header(line: &[u8]) -> Header {
    let body = line.strip_prefix(b"#").unwrap_or(line);
    // Cheap rejection for data rows of latest_obs.txt and other text.
    let first = Tokens::new(body).next().unwrap_or_default();
    if !matches!(first, b"YY" | b"YYYY" | b"STN") {
        return Header::Other;
    }
    let mut columns = Vec::new();
    let mut unknown = Vec::new();
    for token in Tokens::new(body) {
        match column(token) {
            Some(column) => columns.push((column, static_name(column, token))),
            None => unknown.push(String::from_utf8_lossy(token).into_owned()),
        }
    }
    let has = |wanted: Column| columns.iter().any(|(column, _)| *column == wanted);
    let is_header = has(Column::Year)
        && has(Column::Month)
        && has(Column::Day)
        && (has(Column::Hour) || has(Column::HourMinute));
    if !is_header {
        return Header::Other;
    }
    let n_columns = columns.len() + unknown.len();
    if !unknown.is_empty() {
        return Header::Foreign { unknown, n_columns };
    }
    if !columns.iter().any(|(column, _)| matches!(column, Column::Measure(_))) {
        return Header::Foreign { unknown, n_columns };
    }
    let has_station = has(Column::Station);
    Header::Stdmet(Layout { columns, has_station })
}

/// The header's own spelling of a known column, as a `'static` name.
fn static_name(column: Column, token: &[u8]) -> &'static str {
    match token {
        b"YY" => "YY",
        b"YYYY" => "YYYY",
        b"WD" => "WD",
        b"BAR" => "BAR",
        b"BARO" => "BARO",
        _ => match column {
            Column::Year => "YY",
            Column::Month => "MM",
            Column::Day => "DD",
            Column::Hour => "hh",
            Column::Minute => "mm",
            Column::HourMinute => "hhmm",
            Column::Station => "STN",
            Column::Skip => "LAT/LON",
            Column::Measure(field) => stdmet_name(field),
        },
    }
}

/// The realtime2 column name of a field.
fn stdmet_name(field: Field) -> &'static str {
    match field {
        Field::WindDirDeg => "WDIR",
        Field::WindSpeedMps => "WSPD",
        Field::GustMps => "GST",
        Field::WaveHeightM => "WVHT",
        Field::DominantPeriodS => "DPD",
        Field::AveragePeriodS => "APD",
        Field::MeanWaveDirDeg => "MWD",
        Field::PressureHpa => "PRES",
        Field::AirTempC => "ATMP",
        Field::WaterTempC => "WTMP",
        Field::DewpointC => "DEWP",
        Field::VisibilityNmi => "VIS",
        Field::PressureTendencyHpa => "PTDY",
        Field::TideFt => "TIDE",
    }
}

/// Data lines a mid-file header looks past for a witness (see the module doc).
const WITNESS_LOOKAHEAD: usize = 16;

/// The last (year, month, day) seen and its date.
type DayCache = Option<((i32, u32, u32), NaiveDate)>;

/// The first implausible value of a row.
#[derive(Debug, Clone, Copy)]
struct Implausible<'a> {
    column: &'static str,
    token: &'a [u8],
    field: Field,
}

/// One data line read under a layout (measurements go to the caller's buffer).
struct Scanned<'a> {
    observed_at: DateTime<Utc>,
    station_token: Option<&'a [u8]>,
    /// The first implausible value, if any.
    implausible: Option<Implausible<'a>>,
    /// How many values are implausible.
    n_implausible: usize,
    /// Tokens on the line.
    n_tokens: usize,
}

impl Scanned<'_> {
    /// Whether the row's columns look shifted (module doc, rules 1 and 2):
    /// `expected` is the token count of the longest row kept so far (or the
    /// header's column count).
    fn is_shifted(&self, expected: usize) -> bool {
        self.n_implausible >= 2 || (self.n_implausible == 1 && self.n_tokens < expected)
    }
}

/// Parses data rows into one reused [`Observation`].
struct RowParser {
    /// The current header's columns; `None` below a foreign header.
    layout: Option<Layout>,
    /// Tokens of the longest row kept under the current header; 0 before the first.
    longest_kept: usize,
    /// Whether the caller gave a station (used when there is no `STN` column).
    default_station: bool,
    /// The row being built, handed out by reference.
    observation: Observation,
    /// The last (year, month, day) seen and its date: rows come sorted, so
    /// the calendar check runs once per day, not once per row.
    day_cache: DayCache,
}

impl RowParser {
    /// Switches to a new header's columns (`None`: a foreign header).
    fn set_layout(&mut self, layout: Option<Layout>) {
        self.layout = layout;
        self.longest_kept = 0;
    }

    /// Parses one trimmed, non-empty data line into `self.observation`, and
    /// returns its implausible value (now `None` in the row), if any.
    ///
    /// On error `self.observation` is left unchanged except for its station;
    /// it is only handed out after an `Ok`.
    fn parse<'a>(&mut self, line: &'a [u8]) -> Result<Option<Implausible<'a>>, LineErrorKind> {
        let Some(layout) = &self.layout else {
            return Err(LineErrorKind::UnderForeignHeader);
        };
        if !layout.has_station && !self.default_station {
            return Err(LineErrorKind::NoStation);
        }
        let mut measurements = Measurements::default();
        let scanned = scan_row(layout, line, &mut measurements, &mut self.day_cache)?;
        let expected = expected_tokens(layout, self.longest_kept);
        if scanned.is_shifted(expected) {
            let first = scanned.implausible.expect("a shifted row has an implausible value");
            return Err(LineErrorKind::ShiftedColumns {
                column: first.column,
                value: shorten(first.token, 40),
                field: first.field,
                n_out_of_range: scanned.n_implausible,
                found: scanned.n_tokens,
                expected,
            });
        }
        if layout.has_station {
            match scanned.station_token {
                Some(token) => {
                    if !token.eq_ignore_ascii_case(self.observation.station_id.as_str().as_bytes()) {
                        let text = std::str::from_utf8(token).unwrap_or("");
                        self.observation.station_id = StationId::parse(text)
                            .map_err(|_| LineErrorKind::BadStation { value: shorten(token, 40) })?;
                    }
                }
                None => return Err(LineErrorKind::MissingDate { found: scanned.n_tokens }),
            }
        }
        self.observation.observed_at = scanned.observed_at;
        self.observation.measurements = measurements;
        self.longest_kept = self.longest_kept.max(scanned.n_tokens);
        Ok(scanned.implausible)
    }

    /// Judges a mid-file header (module doc): the line of the witness row
    /// when the header is stray, `None` when it is to be taken. `below`
    /// yields the lines after the header; nothing is parsed for real.
    fn stray_witness(&self, candidate: Candidate<'_>, below: Lines<'_>) -> Option<usize> {
        // Below a foreign header there are no columns in use to prefer.
        let current = self.layout.as_ref()?;
        let mut day_cache = self.day_cache;
        let mut reads = |layout: &Layout, expected: usize, line: &[u8]| {
            row_reads(layout, expected, line, self.default_station, &mut day_cache)
        };
        let mut n_unread = 0;
        for (number, line) in below {
            let trimmed = trim(line);
            if trimmed.is_empty() {
                continue;
            }
            if trimmed[0] == b'#' || trimmed[0].is_ascii_alphabetic() {
                match classify_header(trimmed) {
                    Header::Other if trimmed[0] == b'#' => continue,
                    Header::Other => {}
                    // The next header comes first: nothing to judge by.
                    Header::Stdmet(_) | Header::Foreign { .. } => return None,
                }
            }
            if std::str::from_utf8(line).is_ok() {
                // What the row reads as under the new header (`None` if it
                // does not, or when it is foreign: nothing to compare).
                let (fits_new, new_reading, new_columns) = match candidate {
                    Candidate::Stdmet(layout) => {
                        let reading = reads(layout, expected_tokens(layout, 0), trimmed);
                        (reading.is_some(), reading, layout.columns.len())
                    }
                    Candidate::Foreign { n_columns } => {
                        (Tokens::new(trimmed).count() <= n_columns, None, n_columns)
                    }
                };
                let expected = expected_tokens(current, self.longest_kept);
                if let Some(reading) = reads(current, expected, trimmed) {
                    if !fits_new {
                        return Some(number);
                    }
                    // It reads under both: the header is stray only if the
                    // two readings differ and the row fits the columns in
                    // use exactly, leaving the new header's last ones empty.
                    let differ = match &new_reading {
                        Some(new) => new.values != reading.values,
                        None => true,
                    };
                    let exact = reading.n_tokens == current.columns.len() && reading.n_tokens < new_columns;
                    return (differ && exact).then_some(number);
                }
                if fits_new {
                    return None;
                }
            }
            n_unread += 1;
            if n_unread == WITNESS_LOOKAHEAD {
                return None;
            }
        }
        None
    }
}

/// How a row reads under a layout, for judging a mid-file header.
struct Reading {
    /// Tokens on the line.
    n_tokens: usize,
    /// Its time and measurements.
    values: (DateTime<Utc>, Measurements),
}

/// How `line` reads under `layout` if it would be kept (see
/// [`RowParser::parse`]; `expected` is as in [`Scanned::is_shifted`]).
fn row_reads(
    layout: &Layout,
    expected: usize,
    line: &[u8],
    default_station: bool,
    day_cache: &mut DayCache,
) -> Option<Reading> {
    if !layout.has_station && !default_station {
        return None;
    }
    let mut measurements = Measurements::default();
    let scanned = scan_row(layout, line, &mut measurements, day_cache).ok()?;
    if scanned.is_shifted(expected) {
        return None;
    }
    if layout.has_station {
        let token = scanned.station_token?;
        StationId::parse(std::str::from_utf8(token).ok()?).ok()?;
    }
    Some(Reading { n_tokens: scanned.n_tokens, values: (scanned.observed_at, measurements) })
}

/// The token count a row is measured against for rule 2 of shifted rows.
fn expected_tokens(layout: &Layout, longest_kept: usize) -> usize {
    if longest_kept == 0 {
        layout.columns.len()
    } else {
        longest_kept
    }
}

/// Reads one trimmed, non-empty data line under `layout`: date, time and
/// station token, and the measurements into `measurements` (implausible
/// values left `None` and counted).
fn scan_row<'a>(
    layout: &Layout,
    line: &'a [u8],
    measurements: &mut Measurements,
    day_cache: &mut DayCache,
) -> Result<Scanned<'a>, LineErrorKind> {
    let columns = layout.columns.as_slice();
    let (mut year, mut month, mut day, mut hour, mut minute) = (None, None, None, None, Some(0));
    let mut station_token: Option<&[u8]> = None;
    let mut implausible = None;
    let mut n_implausible = 0;
    let mut n_tokens = 0;
    for token in Tokens::new(line) {
        let Some(&(column, name)) = columns.get(n_tokens) else {
            let found = n_tokens + 1 + Tokens::new(line).skip(n_tokens + 1).count();
            return Err(LineErrorKind::TooManyColumns { found, expected: columns.len() });
        };
        n_tokens += 1;
        match column {
            Column::Measure(field) => {
                if token == b"MM" {
                    continue;
                }
                let value = parse_decimal(token)
                    .ok_or_else(|| LineErrorKind::BadNumber { column: name, value: shorten(token, 40) })?;
                if value != field.sentinel() {
                    if !field.is_plausible(value) {
                        // Left `None`; whether the row is kept is the caller's call.
                        n_implausible += 1;
                        implausible.get_or_insert(Implausible { column: name, token, field });
                        continue;
                    }
                    // Directions are whole degrees; round only the rare `123.0` form.
                    let value =
                        if field.is_integer() && token.contains(&b'.') { value.round() } else { value };
                    measurements.set(field, Some(value));
                }
            }
            Column::Year => {
                year = Some(ndbc_year(token).ok_or_else(|| bad_date(name, token))?);
            }
            Column::Month => month = Some(date_field(token, name, 1..=12)?),
            Column::Day => day = Some(date_field(token, name, 1..=31)?),
            Column::Hour => hour = Some(date_field(token, name, 0..=23)?),
            Column::Minute => minute = Some(date_field(token, name, 0..=59)?),
            Column::HourMinute => {
                let hhmm = match parse_uint(token) {
                    Some(hhmm) if token.len() == 4 && hhmm / 100 <= 23 && hhmm % 100 <= 59 => hhmm,
                    _ => return Err(bad_date(name, token)),
                };
                hour = Some(hhmm / 100);
                minute = Some(hhmm % 100);
            }
            Column::Station => station_token = Some(token),
            Column::Skip => {}
        }
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute)) = (year, month, day, hour, minute)
    else {
        return Err(LineErrorKind::MissingDate { found: n_tokens });
    };
    let date = match *day_cache {
        Some((key, date)) if key == (year, month, day) => date,
        _ => {
            let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else {
                return Err(LineErrorKind::ImpossibleDate { year, month, day });
            };
            *day_cache = Some(((year, month, day), date));
            date
        }
    };
    // Hour and minute are range-checked above, so this holds; stay total anyway.
    let Some(observed_at) = date.and_hms_opt(hour, minute, 0).map(|time| time.and_utc()) else {
        return Err(LineErrorKind::ImpossibleDate { year, month, day });
    };
    Ok(Scanned { observed_at, station_token, implausible, n_implausible, n_tokens })
}

fn bad_date(column: &'static str, token: &[u8]) -> LineErrorKind {
    LineErrorKind::BadDateField { column, value: shorten(token, 40) }
}

/// A one- or two-digit date field within `range`.
/// An NDBC year: four digits, or two (19YY when YY >= 50, else 20YY: the
/// two-digit files run 1970–1998).
pub(super) fn ndbc_year(token: &[u8]) -> Option<i32> {
    match (token.len(), parse_uint(token)?) {
        (2, yy) if yy >= 50 => Some(1900 + yy as i32),
        (2, yy) => Some(2000 + yy as i32),
        (4, yyyy) => Some(yyyy as i32),
        _ => None,
    }
}

fn date_field(
    token: &[u8],
    column: &'static str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, LineErrorKind> {
    match parse_uint(token) {
        Some(value) if token.len() <= 2 && range.contains(&value) => Ok(value),
        _ => Err(bad_date(column, token)),
    }
}

/// All-digit tokens of at most 9 digits.
fn parse_uint(token: &[u8]) -> Option<u32> {
    if token.is_empty() || token.len() > 9 {
        return None;
    }
    let mut value = 0u32;
    for &b in token {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u32::from(digit);
    }
    Some(value)
}

/// Exact powers of ten as `f64` (every one up to 1e22 is representable).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];

/// Parses `[+-]?digits[.digits]` (at least one digit, no exponent) into the
/// nearest `f64`, exactly as `str::parse::<f64>` would.
///
/// The fast path reads the digits as an integer mantissa `m` and divides by
/// `10^k`: when `m <= 2^53` and `k <= 22` both are exact doubles and IEEE
/// division rounds correctly, so the result is the correctly rounded value.
/// Longer inputs (never seen in NDBC files) fall back to the standard parser.
#[inline]
pub fn parse_decimal(token: &[u8]) -> Option<f64> {
    let (negative, digits) = match token.first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    let mut mantissa: u64 = 0;
    let mut n_digits = 0usize;
    // Digits before the dot, once there is one.
    let mut dot_at = usize::MAX;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit <= 9 {
            // Wrapping: past 19 digits the value is unused (we fall back below).
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
            n_digits += 1;
        } else if b == b'.' && dot_at == usize::MAX {
            dot_at = n_digits;
        } else {
            return None;
        }
    }
    if n_digits == 0 {
        return None;
    }
    let n_fraction = if dot_at == usize::MAX { 0 } else { n_digits - dot_at };
    // 19 digits always fit in a u64 without wrapping.
    let value = if n_digits <= 19 && mantissa <= 1 << 53 && n_fraction < POW10.len() {
        // Through i64 (exact, as mantissa <= 2^53): one instruction instead of
        // the unsigned conversion sequence.
        let mantissa = mantissa as i64 as f64;
        if n_fraction == 0 {
            mantissa
        } else {
            mantissa / POW10[n_fraction]
        }
    } else {
        // The grammar is already checked, and std accepts all of it.
        std::str::from_utf8(token).ok()?.parse::<f64>().ok()?.abs()
    };
    Some(if negative { -value } else { value })
}

/// Field separators: spaces, tabs, a stray `\r` from CRLF files, and any
/// other ASCII control byte (one comparison on the hot path; a control byte
/// inside a token splits it, which then fails as a bad line anyway).
#[inline(always)]
fn is_sep(b: u8) -> bool {
    b <= b' '
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !is_sep(*b)).unwrap_or(line.len());
    &line[start..]
}

/// Whitespace-separated tokens of a line.
struct Tokens<'a> {
    rest: &'a [u8],
}

impl<'a> Tokens<'a> {
    fn new(line: &'a [u8]) -> Self {
        Tokens { rest: line }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a [u8];

    #[inline(always)]
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest;
        let mut start = 0;
        while start < rest.len() && is_sep(rest[start]) {
            start += 1;
        }
        if start == rest.len() {
            self.rest = &[];
            return None;
        }
        let mut end = start + 1;
        while end < rest.len() && !is_sep(rest[end]) {
            end += 1;
        }
        self.rest = &rest[end..];
        Some(&rest[start..end])
    }
}

/// Lines with their 1-based numbers, without the `\n`. A UTF-8 byte-order
/// mark at the start is dropped. Cloning it looks ahead.
#[derive(Clone)]
struct Lines<'a> {
    rest: &'a [u8],
    number: usize,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Lines { rest: bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes), number: 0 }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        if self.rest.is_empty() {
            return None;
        }
        self.number += 1;
        let line = match memchr::memchr(b'\n', self.rest) {
            Some(end) => {
                let line = &self.rest[..end];
                self.rest = &self.rest[end + 1..];
                line
            }
            None => std::mem::take(&mut self.rest),
        };
        Some((self.number, line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn station() -> StationId {
        StationId::parse("41002").expect("valid id")
    }

    const HEADER: &str =
        "#YY  MM DD hh mm WDIR WSPD GST  WVHT   DPD   APD MWD   PRES  ATMP  WTMP  DEWP  VIS PTDY  TIDE\n\
        #yr  mo dy hr mn degT m/s  m/s     m   sec   sec degT   hPa  degC  degC  degC  nmi  hPa    ft\n";

    proptest! {
        #[test]
        fn decimal_parser_equals_std(text in "[+-]?[0-9]{0,24}(\\.[0-9]{0,24})?") {
            let ours = parse_decimal(text.as_bytes()).map(f64::to_bits);
            let std = text.parse::<f64>().ok().map(f64::to_bits);
            prop_assert_eq!(ours, std, "{}", text);
        }

        #[test]
        fn decimal_parser_equals_std_on_ndbc_shapes(int in 0u32..100_000, frac in 0u32..1000, width in 1usize..4, sign in 0u8..3) {
            let sign = ["", "-", "+"][usize::from(sign)];
            let text = format!("{sign}{int}.{frac:0width$}");
            prop_assert_eq!(
                parse_decimal(text.as_bytes()).map(f64::to_bits),
                text.parse::<f64>().ok().map(f64::to_bits),
                "{}", text
            );
        }

        #[test]
        fn one_implausible_value_in_a_whole_row_is_nulled_not_dropped(
            column in 5usize..19,
            value in prop::sample::select(vec!["123456.7", "-123456.7", "-9999.5", "7777"]),
        ) {
            let mut tokens: Vec<&str> = ROW.split_whitespace().collect();
            let reference = parse(format!("{HEADER}{ROW}\n").as_bytes(), Some(&station())).expect("stdmet");
            let reference = reference.observations[0].measurements;
            tokens[column] = value;
            let text = format!("{HEADER}{}\n", tokens.join(" "));
            let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
            prop_assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
            prop_assert_eq!(parsed.rejected.len(), 1);
            let field = parsed.rejected[0].field;
            // The realtime2 header lists the fields in `Field::ALL` order.
            prop_assert_eq!(field, Field::ALL[column - 5]);
            prop_assert_eq!(parsed.rejected[0].line, 3);
            prop_assert_eq!(&parsed.rejected[0].value, value);
            let row = parsed.observations[0].measurements;
            for other in Field::ALL {
                let expected = if other == field { None } else { reference.get(other) };
                prop_assert_eq!(row.get(other), expected, "{}", other);
            }
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut input = HEADER.as_bytes().to_vec();
            input.extend_from_slice(&bytes);
            let _ = parse(&input, Some(&station()));
            let _ = parse(&bytes, Some(&station()));
        }
    }

    #[test]
    fn decimal_parser_rejects_what_is_not_a_plain_decimal() {
        for bad in ["", ".", "+", "-", "-.", "1.2.3", "1e5", "nan", "inf", "MM", "12a", "--1", " 1"] {
            assert_eq!(parse_decimal(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_decimal(b"0987.4"), Some(987.4));
        assert_eq!(parse_decimal(b".79"), Some(0.79));
        assert_eq!(parse_decimal(b"-.3"), Some(-0.3));
        assert_eq!(parse_decimal(b"+0.6"), Some(0.6));
        assert_eq!(parse_decimal(b"5."), Some(5.0));
    }

    #[test]
    fn file_names_give_station_ids() {
        let cases = [
            ("41002.txt", Some("41002")),
            ("TPLM2.txt", Some("tplm2")),
            ("22101.drift", Some("22101")),
            ("41008.cwind", Some("41008")),
            ("46035h1990.txt", Some("46035")),
            ("46035h1990.txt.gz", Some("46035")),
            ("tplm2h2020.txt", Some("tplm2")),
            ("tplm212022.txt", Some("tplm2")),
            ("tplm2c2022.txt", Some("tplm2")),
            ("42a01c2003.txt", Some("42a01")),
            ("46097h201908qc.txt", Some("46097")),
            ("/some/dir/realtime2/44013.txt", Some("44013")),
            ("1801593.txt", Some("1801593")),
            ("latest_obs.txt", None),
            ("page.html", Some("page")),
            ("", None),
        ];
        for (name, expected) in cases {
            let got = station_from_file_name(name);
            assert_eq!(got.as_ref().map(StationId::as_str), expected, "{name}");
        }
    }

    #[test]
    fn sentinels_are_missing_but_99_degrees_is_a_direction() {
        let text = format!(
            "{HEADER}2018 08 01 15 10  99 99.0 7.0 99.00 99.00 99.00  99 9999.0 999.0 999 999.0 99.0 99.0 99.00\n\
             2018 08 01 15 00 999  6.0  MM  1.2    7    MM 999 1022.9    MM  28.0  MM   MM  +0.6  -0.2\n"
        );
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let first = &parsed.observations[0].measurements;
        assert_eq!(first.get(Field::WindDirDeg), Some(99.0));
        assert_eq!(first.get(Field::MeanWaveDirDeg), Some(99.0));
        assert_eq!(first.present().count(), 3, "only WDIR, GST and MWD survive: {first:?}");
        let second = &parsed.observations[1].measurements;
        assert_eq!(second.get(Field::WindDirDeg), None);
        assert_eq!(second.get(Field::MeanWaveDirDeg), None);
        assert_eq!(second.get(Field::DominantPeriodS), Some(7.0));
        assert_eq!(second.get(Field::PressureTendencyHpa), Some(0.6));
        assert_eq!(second.get(Field::TideFt), Some(-0.2));
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let mut text = HEADER.as_bytes().to_vec();
        text.extend_from_slice(b"2018 08 01 15 10 160 6.0 7.0 MM MM MM MM 1022.9 MM 28.0 MM MM MM MM\n");
        text.extend_from_slice(b"2018 08 01 15 00 160 6.0 7.0 MM MM MM MM 1022.9 MM 28.0 MM MM MM MM 12\n");
        text.extend_from_slice(b"2018 08 01 14 50 160 6.x 7.0\n");
        text.extend_from_slice(b"2018 02 30 14 40 160 6.0 7.0\n");
        text.extend_from_slice(b"2018 13 01 14 30 160 6.0 7.0\n");
        text.extend_from_slice(b"2018 08 01 24 30 160 6.0 7.0\n");
        text.extend_from_slice(b"2018 08 01 14 60 160 6.0 7.0\n");
        text.extend_from_slice(b"2018 08 01\n");
        text.extend_from_slice(b"2018 08 01 14 20 160 \xff\xfe 7.0\n");
        text.extend_from_slice(b"\n   \n# a comment\n");
        text.extend_from_slice(b"2018 08 01 14 10 160 6.0\n");
        let parsed = parse(&text, Some(&station())).expect("stdmet");
        let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
        expect_test::expect![[r#"
            [
                "line 4: 20 columns but the header has 19",
                "line 5: malformed number \"6.x\" in column WSPD",
                "line 6: impossible date 2018-02-30",
                "line 7: malformed month \"13\" (column MM)",
                "line 8: malformed hour \"24\" (column hh)",
                "line 9: malformed minute \"60\" (column mm)",
                "line 10: row ends before its date and time (3 columns)",
                "line 11: bytes that are not UTF-8",
            ]
        "#]]
        .assert_debug_eq(&errors);
        assert_eq!(parsed.observations.len(), 2);
        let last = &parsed.observations[1];
        assert_eq!(last.observed_at.to_rfc3339(), "2018-08-01T14:10:00+00:00");
        assert_eq!(last.measurements.get(Field::WindSpeedMps), Some(6.0));
        assert_eq!(last.measurements.get(Field::GustMps), None, "trailing columns missing");
    }

    #[test]
    fn crlf_lines_and_a_byte_order_mark_are_fine() {
        let text =
            "\u{feff}#YY MM DD hh mm WSPD PTDY\r\n#yr mo dy hr mn m/s hPa\r\n2018 08 01 15 10 6.0 -1.2\r\n";
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.observations[0].measurements.get(Field::PressureTendencyHpa), Some(-1.2));
    }

    #[test]
    fn stn_column_gives_the_station_row_by_row() {
        let text = "#STN LAT LON YYYY MM DD hh mm WSPD\nKATP 1.0 2.0 2018 07 30 21 00 5.0\n\
                    41-02 1.0 2.0 2018 07 30 21 00 5.0\n41002 1.0 2.0 2018 07 30 21 10 6.0\n";
        let parsed = parse(text.as_bytes(), None).expect("stations from STN");
        let ids: Vec<&str> = parsed.observations.iter().map(|o| o.station_id.as_str()).collect();
        assert_eq!(ids, ["katp", "41002"]);
        assert_eq!(parsed.errors[0].to_string(), "line 3: invalid station id \"41-02\"");
    }

    #[test]
    fn two_digit_years_pivot_at_50() {
        let text = "YY MM DD hh WD   WSPD\n49 01 01 00 154 12.8\n50 01 01 00 154 12.8\n";
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        let years: Vec<String> = parsed.observations.iter().map(|o| o.observed_at.to_rfc3339()).collect();
        assert_eq!(years, ["2049-01-01T00:00:00+00:00", "1950-01-01T00:00:00+00:00"]);
    }

    #[test]
    fn mid_file_header_redefines_columns() {
        let text = "#YY MM DD hh mm WSPD\n2018 08 01 15 10 6.0\n#YY MM DD hh mm GST WSPD\n2018 08 01 15 20 9.0 6.5\n\
                    #YY MM DD hh mm GDR\n2018 08 01 15 30 100\n";
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert_eq!(parsed.observations.len(), 2);
        assert_eq!(parsed.observations[1].measurements.get(Field::GustMps), Some(9.0));
        assert_eq!(parsed.observations[1].measurements.get(Field::WindSpeedMps), Some(6.5));
        let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "line 5: header that is not standard meteorological (column GDR is not stdmet)",
                "line 6: row under a header that is not standard meteorological",
            ]
        );
    }

    fn errors_of(parsed: &Parsed) -> Vec<String> {
        parsed.errors.iter().map(ToString::to_string).collect()
    }

    fn rejections_of(parsed: &Parsed) -> Vec<String> {
        parsed.rejected.iter().map(ToString::to_string).collect()
    }

    /// A realtime2 row of 41002.txt (line 709), 19 tokens.
    const ROW: &str =
        "2018 07 27 15 50 160  7.0  9.0   1.2     8   5.2  99 1020.0    MM  27.5    MM   MM   MM    MM";

    #[test]
    fn a_single_implausible_value_becomes_null_and_is_reported() {
        let text = format!(
            "{HEADER}{ROW}\n\
             2018 07 27 15 40 160  7.0  9.0  45.0     8   5.2  99 1020.0    MM  27.5    MM   MM   MM    MM\n\
             2018 07 27 15 30 160  7.0  9.0   1.2     8   5.2  99 1200.0    MM  27.5    MM   MM   MM    MM\n\
             2018 07 27 15 20 160  7.0  9.0   1.2     8   5.2  99 1020.0    MM  27.5    MM   MM   MM -123456789.123456789\n"
        );
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.observations.len(), 4, "every row is kept");
        let reference = parsed.observations[0].measurements;
        let spike = parsed.observations[1].measurements;
        assert_eq!(spike.get(Field::WaveHeightM), None, "WVHT 45.0 is null");
        for field in Field::ALL.into_iter().filter(|field| *field != Field::WaveHeightM) {
            assert_eq!(spike.get(field), reference.get(field), "{field} is kept");
        }
        assert_eq!(parsed.observations[2].measurements.get(Field::PressureHpa), None);
        assert_eq!(parsed.observations[2].measurements.get(Field::WaterTempC), Some(27.5));
        assert_eq!(
            parsed.rejected[0],
            ValueRejection { line: 4, column: "WVHT", value: "45.0".to_owned(), field: Field::WaveHeightM }
        );
        expect_test::expect![[r#"
            [
                "line 4: WVHT 45.0 is out of range, 0 to 40 m (set to null)",
                "line 5: PRES 1200.0 is out of range, 800 to 1100 hPa (set to null)",
                "line 6: TIDE -123456789.123456789 is out of range, -50 to 50 ft (set to null)",
            ]
        "#]]
        .assert_debug_eq(&rejections_of(&parsed));

        // The streaming API reports the same.
        let mut n_seen = 0;
        let summary = parse_each(text.as_bytes(), Some(&station()), |_| n_seen += 1).expect("stdmet");
        assert_eq!((summary.n_rows, n_seen), (4, 4));
        assert_eq!(summary.rejected, parsed.rejected);
    }

    #[test]
    fn a_spike_in_a_historical_row_without_trailing_columns_is_a_partial_value() {
        // 46035h2000.txt: TIDE in the header, but the July rows have 16 tokens.
        let text = "YYYY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n\
                    2000 07 31 01  57  8.3 10.1  2.12  7.14  5.70 999 1006.8   9.4   9.7 999.0 99.0\n\
                    2000 07 31 02  60  8.5  9.9 45.17  7.14  5.78 999 1007.0   9.4   9.7 999.0 99.0\n\
                    2000 08 01 19  31 14.7 18.3  2.88  7.14  5.83 999  993.6   7.8   9.0 99999.0 99.0 99.00\n";
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.observations.len(), 3);
        assert_eq!(parsed.observations[1].measurements.get(Field::WaveHeightM), None);
        assert_eq!(parsed.observations[1].measurements.get(Field::PressureHpa), Some(1007.0));
        assert_eq!(parsed.observations[2].measurements.get(Field::DewpointC), None);
        assert_eq!(parsed.observations[2].measurements.get(Field::WaterTempC), Some(9.0));
        expect_test::expect![[r#"
            [
                "line 3: WVHT 45.17 is out of range, 0 to 40 m (set to null)",
                "line 4: DEWP 99999.0 is out of range, -80 to 50 degC (set to null)",
            ]
        "#]]
        .assert_debug_eq(&rejections_of(&parsed));
    }

    #[test]
    fn shifted_rows_are_dropped_whole() {
        let text = format!(
            "{HEADER}{ROW}\n\
             2018 07 27 15 40 1020.0 160 7.0 9.0 1.2 8 5.2 99 MM 27.5 MM MM MM MM\n\
             2018 07 27 15 30 160 7.0 9.0 MM MM MM 1020.0 MM 27.5 MM MM MM MM\n\
             2018 07 27 15 20 1013.2 27.5\n\
             {ROW}\n"
        );
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert_eq!(parsed.observations.len(), 2, "only the two whole rows");
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        expect_test::expect![[r#"
            [
                "line 4: columns look shifted: 1020.0 is out of range for column WDIR (0 to 360), and 2 more values in the row are out of range",
                "line 5: columns look shifted: 1020.0 is out of range for column MWD (0 to 360) in a row of 18 columns where 19 are expected",
                "line 6: columns look shifted: 1013.2 is out of range for column WDIR (0 to 360) in a row of 7 columns where 19 are expected",
            ]
        "#]]
        .assert_debug_eq(&errors_of(&parsed));
        assert!(matches!(
            parsed.errors[1].kind,
            LineErrorKind::ShiftedColumns {
                column: "MWD",
                field: Field::MeanWaveDirDeg,
                n_out_of_range: 1,
                found: 18,
                expected: 19,
                ..
            }
        ));
    }

    #[test]
    fn shifted_rows_found_by_fuzzing_a_historical_file() {
        // From fuzz/corpus/ndbc_parse/r-shifted-row.txt: line 3 lost APD (a
        // pressure of 8 hPa otherwise); line 4 has its hour split in two and
        // lost TIDE, so that `BAR 999` would pass for a pressure.
        let text = "YYYY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n\
                    2000 08 01 03  75 12.3 14.1  1.60  5.00  4.90 999  999.6   8.1   9.1 999.0 99.0 99.00\n\
                    2000 08 01 04  77 12.7 14.8  1.63  5.00  999  999.2   8.0   9.1 999.0 99.0 99.00\n\
                    2000 07 31 2 2 19  6.7  7.8  1.09  6.25  5.33 999 1004.3   8.6   9.5 999.0 99.0\n";
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert_eq!(parsed.observations.len(), 1);
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        expect_test::expect![[r#"
            [
                "line 3: columns look shifted: 999 is out of range for column APD (0 to 40), and 3 more values in the row are out of range",
                "line 4: columns look shifted: 1004.3 is out of range for column ATMP (-70 to 60), and 1 more value in the row is out of range",
            ]
        "#]]
        .assert_debug_eq(&errors_of(&parsed));
    }

    #[test]
    fn a_stray_mid_file_header_is_a_bad_line_and_later_rows_still_read() {
        let text = format!(
            "{HEADER}{ROW}\n\
             YYYY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n\
             {ROW}\n\
             #YY  MM DD hh mm WDIR WSPD GST  WVHT   DPD   APD MWD   PRES  ATMP  WTMP  DEWP  VIS  TIDE\n\
             \n# a comment\n\
             {ROW}\n\
             #YY  MM DD hh mm WDIR WSPD GDR GST GTIME\n\
             {ROW}\n\
             {ROW}\n"
        );
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert_eq!(parsed.observations.len(), 5, "{:?}", parsed.errors);
        assert!(parsed.observations.iter().all(|row| row == &parsed.observations[0]));
        expect_test::expect![[r#"
            [
                "line 4: header line ignored: the row on line 5 fits the columns in use, not this header's 17 columns",
                "line 6: header line ignored: the row on line 9 fits the columns in use, not this header's 18 columns",
                "line 10: header line ignored: the row on line 11 fits the columns in use, not this header's 10 columns",
            ]
        "#]]
        .assert_debug_eq(&errors_of(&parsed));
    }

    #[test]
    fn a_row_that_fits_the_columns_in_use_exactly_outweighs_a_longer_header() {
        // The row below reads under both headers (6.5 would be a gust, the
        // last column missing), but it has exactly the columns in use.
        let text = "#YY MM DD hh mm WDIR WSPD\n2018 08 01 15 10 160 6.0\n\
                    #YY MM DD hh mm WDIR GST WSPD\n2018 08 01 15 20 170 6.5\n";
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert_eq!(
            errors_of(&parsed),
            ["line 3: header line ignored: the row on line 4 fits the columns in use, not this header's 8 columns"]
        );
        assert_eq!(parsed.observations[1].measurements.get(Field::WindDirDeg), Some(170.0));
        assert_eq!(parsed.observations[1].measurements.get(Field::WindSpeedMps), Some(6.5));
        assert_eq!(parsed.observations[1].measurements.get(Field::GustMps), None);
    }

    #[test]
    fn a_genuine_new_header_redefines_the_columns() {
        // Two files concatenated: a realtime2 file, then a historical one.
        let text = format!(
            "{HEADER}{ROW}\n{ROW}\n\
             YYYY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n\
             2000 07 31 01  57  8.3 10.1  2.12  7.14  5.70 999 1006.8   9.4   9.7 999.0 99.0\n\
             2000 07 31 02  60  8.5  9.9  2.17  7.14  5.78 999 1007.0   9.4   9.7 999.0 99.0\n\
             {HEADER}\n{ROW}\n"
        );
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        assert_eq!(parsed.observations.len(), 5);
        let historical = &parsed.observations[2];
        assert_eq!(historical.observed_at.to_rfc3339(), "2000-07-31T01:00:00+00:00");
        assert_eq!(historical.measurements.get(Field::PressureHpa), Some(1006.8));
        assert_eq!(historical.measurements.get(Field::WaveHeightM), Some(2.12));
        assert_eq!(parsed.observations[4], parsed.observations[0], "the realtime columns again");
    }

    #[test]
    fn a_new_header_that_adds_trailing_columns_is_taken_before_its_rows_have_them() {
        // 46035h1999.txt then 46035h2000.txt: the second adds TIDE, which its
        // July rows do not have yet; its later rows do.
        let text = "YYYY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS\n\
                    1999 01 01 01 999 99.0 99.0  1.98  7.69  6.31 999 1015.0  -2.2   2.5 999.0 99.0\n\
                    YYYY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n\
                    2000 07 31 01  57  8.3 10.1  2.12  7.14  5.70 999 1006.8   9.4   9.7 999.0 99.0\n\
                    2000 08 01 00  86  9.4 99.0 99.00 99.00 99.00 999 1002.8   7.8   9.5 999.0 99.0 1.25\n";
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.observations.len(), 3);
        assert_eq!(parsed.observations[2].measurements.get(Field::TideFt), Some(1.25));
    }

    #[test]
    fn a_mid_file_header_with_no_row_to_judge_by_is_taken() {
        // The bad line below it reads under neither header; then the file
        // ends. The message names the new header's column: it was taken.
        let text = format!("{HEADER}{ROW}\n#YY MM DD hh mm WSPD\n2018 07 27 15 40 x\n");
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert_eq!(errors_of(&parsed), ["line 5: malformed number \"x\" in column WSPD"]);
        // A header at the very end, or right before the next header, is taken too.
        let text = format!("{HEADER}{ROW}\n#YY MM DD hh mm WSPD\n{HEADER}{ROW}\n#YY MM DD hh mm WSPD\n");
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.observations.len(), 2);
    }

    #[test]
    fn the_witness_of_a_mid_file_header_is_the_first_row_either_reads() {
        // Line 5 reads under neither header; line 6 decides.
        let text = format!("{HEADER}{ROW}\n#YY MM DD hh mm WSPD\n2018 07 27 15 40 x\n{ROW}\n");
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        expect_test::expect![[r#"
            [
                "line 4: header line ignored: the row on line 6 fits the columns in use, not this header's 6 columns",
                "line 5: malformed number \"x\" in column WDIR",
            ]
        "#]]
        .assert_debug_eq(&errors_of(&parsed));
        assert_eq!(parsed.observations.len(), 2);
        // Past 16 unreadable lines the header is taken at its word.
        let junk = "2018 07 27 15 40 x\n".repeat(WITNESS_LOOKAHEAD);
        let text = format!("{HEADER}{ROW}\n#YY MM DD hh mm WSPD\n{junk}{ROW}\n");
        let parsed = parse(text.as_bytes(), Some(&station())).expect("stdmet");
        assert_eq!(parsed.errors.len(), WITNESS_LOOKAHEAD + 1);
        assert!(matches!(parsed.errors.last().expect("errors").kind, LineErrorKind::TooManyColumns { .. }));
    }

    #[test]
    fn file_level_errors() {
        let html = b"<!DOCTYPE html>\n<html><body>Not Found</body></html>\n";
        expect_test::expect![[r#"not an NDBC data file: line 1 looks like HTML or XML, not an NDBC column header: "<!DOCTYPE html>""#]]
            .assert_eq(&parse(html, Some(&station())).expect_err("html").to_string());
        expect_test::expect![[r#"not an NDBC data file: the file is empty"#]]
            .assert_eq(&parse(b"  \n\n", Some(&station())).expect_err("empty").to_string());
        expect_test::expect![[r#"not an NDBC data file: no column header line"#]]
            .assert_eq(&parse(b"# just a comment\n", Some(&station())).expect_err("comment").to_string());
        expect_test::expect![[
            r#"an NDBC file but not standard meteorological data (columns GDR, GTIME are not stdmet)"#
        ]]
        .assert_eq(
            &parse(b"#YY MM DD hh mm WDIR WSPD GDR GST GTIME\n", Some(&station()))
                .expect_err("cwind")
                .to_string(),
        );
        expect_test::expect![[r#"no station id: the file has no STN column and no station was given"#]]
            .assert_eq(&parse(HEADER.as_bytes(), None).expect_err("no station").to_string());
    }
}
