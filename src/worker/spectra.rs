//! One station's set of five spectral files (docs/REFERENCE.md, Spectrum)
//! fetched, parsed and joined into spectra: for the worker's poll (the
//! realtime files, the density file already fetched with a conditional GET)
//! and for `backfill --spectra-year` (the gzipped yearly archives).
//!
//! The density file decides: when it cannot be fetched or read, the set
//! fails. A directional file that cannot leaves its quantity null in these
//! spectra, with a warning and a bad line counted.

use super::fetch::{Fetched, Fetcher, Validators};
use crate::observation::StationId;
use crate::sources::ndbc::spectral;
use crate::spectrum::{join, Quantity, Spectrum};

/// The largest file accepted after gunzip (a year of one quantity is ~3 MB).
const MAX_UNZIPPED: u64 = 256 * 1024 * 1024;

/// One file of a set.
pub(super) struct SetFile {
    pub quantity: Quantity,
    pub url: String,
    /// The file name the parser reads the historical quantity from.
    pub name: String,
}

/// What a set gave.
pub(super) struct LoadedSet {
    pub spectra: Vec<Spectrum>,
    /// Bad lines skipped, a cut last line and unreadable directional files.
    pub bad_lines: usize,
}

/// Fetches (all but a `density` body already fetched), gunzips when
/// gzipped, parses and joins a station's set. `Err` says why the density
/// file is unusable.
pub(super) async fn load_set(
    fetcher: &Fetcher,
    station: &StationId,
    files: impl IntoIterator<Item = SetFile>,
    density: Option<&[u8]>,
) -> Result<LoadedSet, String> {
    let mut rows = Vec::new();
    let mut bad_lines = 0;
    for file in files {
        let given = density.filter(|_| file.quantity == Quantity::Density);
        match read_file(fetcher, &file, station, given).await {
            Ok((file_rows, bad)) => {
                bad_lines += bad;
                rows.extend(file_rows);
            }
            Err(reason) if file.quantity == Quantity::Density => {
                return Err(format!("{}: {reason}", file.url))
            }
            Err(reason) => {
                bad_lines += 1;
                tracing::warn!(station = %station, url = %file.url, error = %reason, "spectral file not read; its quantity is null in these spectra");
            }
        }
    }
    Ok(LoadedSet { spectra: join(rows), bad_lines })
}

/// One file's rows and bad lines.
async fn read_file(
    fetcher: &Fetcher,
    file: &SetFile,
    station: &StationId,
    given: Option<&[u8]>,
) -> Result<(Vec<crate::spectrum::SpectralRow>, usize), String> {
    let fetched;
    let body = match given {
        Some(body) => body,
        None => {
            match fetcher.get(&file.url, &Validators::default()).await.map_err(|error| error.to_string())? {
                Fetched::Modified { body, .. } => {
                    fetched = body;
                    &fetched[..]
                }
                Fetched::NotModified => return Err("unexpected 304 to an unconditional request".to_owned()),
            }
        }
    };
    let unzipped;
    let text = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let decoder = flate2::read::GzDecoder::new(body);
        std::io::Read::read_to_end(&mut std::io::Read::take(decoder, MAX_UNZIPPED), &mut out)
            .map_err(|error| format!("not a readable gzip file: {error}"))?;
        unzipped = out;
        &unzipped[..]
    } else {
        body
    };
    let (complete, cut) = super::complete_lines(text);
    match spectral::parse(complete, station, Some(&file.name)) {
        Ok(spectral::SpectralFile::Quantity(parsed)) => {
            if let Some(first) = parsed.errors.first() {
                tracing::warn!(url = %file.url, n_bad = parsed.errors.len(), first = %first, "skipped bad spectral lines");
            }
            Ok((parsed.rows, parsed.errors.len() + usize::from(cut)))
        }
        Ok(spectral::SpectralFile::Summary(_)) => Err("a spectral summary, not band values".to_owned()),
        Err(error) => Err(format!("unusable spectral file: {error}")),
    }
}
