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
//! straight into a large output buffer, stdout locked once. It deliberately
//! touches no config, store or runtime.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::observation::{StationId, TimeKey};
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
    let parsed = parse_each(&bytes, station.as_ref(), |observation| {
        if write_error.is_some() {
            return;
        }
        observation.write_json(&mut buffer, TimeKey::ObservedAt);
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
