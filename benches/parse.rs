//! Parser throughput on a large synthetic stdmet file (target: >= 300 MB/s on
//! one core, in process).
//!
//! Run with `cargo bench --bench parse`. The file is built by repeating the
//! data rows of the real fixtures `41002.txt` and `44013.txt` under one
//! header until it reaches `BUOYCAST_BENCH_MB` megabytes (default 200). It
//! goes to a temp dir, or to `BUOYCAST_BENCH_FILE` when set (then it is kept,
//! for `scripts/bench-parse-vs-pandas.sh` or by hand:
//! `target/release/buoycast parse FILE > /dev/null`).
//!
//! Prints the best of 3 runs of [`parse`] (collecting every observation) and
//! of [`parse_each`] (streaming, as `buoycast parse` uses it); then the same
//! for the wave-spectrum parser on synthetic files built alike from the
//! realtime `41010.data_spec` (`value (freq)` pairs) and the historical
//! `41010w2019part.txt` (one value per header frequency), a quarter of the
//! size each, and the spectra's join.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use buoycast::sources::ndbc::parse::{parse, parse_each, station_from_file_name};
use buoycast::sources::ndbc::spectral::{self, SpectralFile};
use buoycast::spectrum::join;

fn fixture(relative: &str) -> Vec<u8> {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ndbc")).join(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// The data rows of a realtime stdmet file (everything after its two `#` lines).
fn data_rows(bytes: &[u8]) -> &[u8] {
    let mut rest = bytes;
    while rest.first() == Some(&b'#') {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |end| end + 1);
        rest = &rest[end..];
    }
    rest
}

/// A file of `target_bytes`: `relative`'s header, then its data rows again and again.
fn repeat_rows(relative: &str, target_bytes: usize) -> Vec<u8> {
    let file = fixture(relative);
    let header_end = memchr::memchr(b'\n', &file).map_or(file.len(), |end| end + 1);
    let mut out = Vec::with_capacity(target_bytes + file.len());
    out.extend_from_slice(&file[..header_end]);
    while out.len() < target_bytes {
        out.extend_from_slice(&file[header_end..]);
    }
    out
}

fn build(target_bytes: usize) -> Vec<u8> {
    let a = fixture("realtime2/41002.txt");
    let b = fixture("realtime2/44013.txt");
    let header_end = a.len() - data_rows(&a).len();
    let mut out = Vec::with_capacity(target_bytes + a.len() + b.len());
    out.extend_from_slice(&a[..header_end]);
    while out.len() < target_bytes {
        out.extend_from_slice(data_rows(&a));
        out.extend_from_slice(data_rows(&b));
    }
    out
}

/// Best wall time of 3 runs; the result is dropped outside the timed part.
fn best_of_3<T>(mut run: impl FnMut() -> T, rows: impl Fn(&T) -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut n_rows = 0;
    for _ in 0..3 {
        let start = Instant::now();
        let result = black_box(run());
        best = best.min(start.elapsed());
        n_rows = rows(&result);
        drop(result);
    }
    (best, n_rows)
}

fn report(what: &str, bytes: usize, (elapsed, rows): (Duration, usize)) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{what:<32} {:>8.1} MB/s  {:>6.2} M rows/s  ({rows} rows in {:.3} s)",
        bytes as f64 / 1e6 / secs,
        rows as f64 / 1e6 / secs,
        secs
    );
}

fn main() {
    let megabytes: usize =
        std::env::var("BUOYCAST_BENCH_MB").ok().and_then(|mb| mb.parse().ok()).unwrap_or(200);
    let temp = tempfile::tempdir().expect("temp dir");
    let path = match std::env::var_os("BUOYCAST_BENCH_FILE") {
        Some(path) => PathBuf::from(path),
        None => temp.path().join("41002.txt"),
    };
    let started = Instant::now();
    std::fs::write(&path, build(megabytes * 1_000_000)).expect("write the synthetic file");
    let bytes = std::fs::read(&path).expect("read the synthetic file back");
    println!(
        "synthetic stdmet file: {} ({:.1} MB, built in {:.1} s)",
        path.display(),
        bytes.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let station = station_from_file_name("41002.txt").expect("a valid name");

    report(
        "parse (collect Vec<Observation>)",
        bytes.len(),
        best_of_3(|| parse(&bytes, Some(&station)).expect("stdmet"), |parsed| parsed.observations.len()),
    );
    report(
        "parse_each (streaming)",
        bytes.len(),
        best_of_3(
            || {
                let mut wind = 0.0;
                let summary = parse_each(&bytes, Some(&station), |observation| {
                    wind += observation
                        .measurements
                        .get(buoycast::observation::Field::WindSpeedMps)
                        .unwrap_or(0.0);
                })
                .expect("stdmet");
                black_box(wind);
                summary.n_rows
            },
            |n_rows| *n_rows,
        ),
    );
    let spectral_station = station_from_file_name("41010.data_spec").expect("a valid name");
    for (relative, name) in [
        ("realtime2/41010.data_spec", "41010.data_spec"),
        ("historical/41010w2019part.txt", "41010w2019part.txt"),
    ] {
        let bytes = repeat_rows(relative, megabytes * 250_000);
        let rows = |file: &SpectralFile| match file {
            SpectralFile::Quantity(parsed) => parsed.rows.len(),
            SpectralFile::Summary(parsed) => parsed.rows.len(),
        };
        report(
            &format!("spectral {name}"),
            bytes.len(),
            best_of_3(|| spectral::parse(&bytes, &spectral_station, Some(name)).expect("spectral"), rows),
        );
    }
    let rows = match spectral::parse(
        &repeat_rows("realtime2/41010.data_spec", 20_000_000),
        &spectral_station,
        Some("41010.data_spec"),
    ) {
        Ok(SpectralFile::Quantity(parsed)) => parsed.rows,
        other => panic!("{other:?}"),
    };
    let n = rows.len();
    let started = Instant::now();
    let spectra = black_box(join(rows));
    println!(
        "{:<32} {:>8.2} M rows/s  ({n} density rows into {} spectra in {:.3} s)",
        "join (density only)",
        n as f64 / 1e6 / started.elapsed().as_secs_f64(),
        spectra.len(),
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("BUOYCAST_BENCH_FILE").is_some() {
        println!("kept {} for: target/release/buoycast parse {} > /dev/null", path.display(), path.display());
    }
}
