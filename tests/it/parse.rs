//! The NDBC parsers over the real fixture files, and `buoycast parse`.
//!
//! Data-driven: each stdmet fixture is summarised (row count, bad lines,
//! values set to null, first and last row as the JSON `buoycast parse`
//! prints) and compared with an `expect!` snapshot whose values were checked
//! by eye against the file.
//! Targeted tests then pin the rules of docs/REFERENCE.md, Observation, to
//! specific rows.

use std::collections::HashSet;
use std::process::Command;

use buoycast::cli::parse::RowWriter;
use buoycast::observation::{Field, Observation, StationId, TimeKey};
use buoycast::sources::ndbc::parse::{parse, station_from_file_name, FileError, LineErrorKind, Parsed};
use buoycast::sources::ndbc::stations::parse_active_stations;
use expect_test::{expect, Expect};

use crate::harness::fixtures;

/// Parses a fixture with the station its file name gives.
fn parse_fixture(relative: &str) -> Result<Parsed, FileError> {
    let name = relative.rsplit('/').next().expect("a file name");
    let station = station_from_file_name(name);
    parse(&fixtures::read(relative), station.as_ref())
}

fn json(observation: &Observation) -> String {
    let mut out = Vec::new();
    observation.write_json(&mut out, TimeKey::ObservedAt);
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn check(relative: &str, expected: Expect) {
    let parsed = parse_fixture(relative).unwrap_or_else(|error| panic!("{relative}: {error}"));
    let mut summary = format!(
        "rows {}, bad lines {}, values set to null {}\n",
        parsed.observations.len(),
        parsed.errors.len(),
        parsed.rejected.len()
    );
    for error in parsed.errors.iter().take(5) {
        summary.push_str(&format!("{error}\n"));
    }
    for rejection in parsed.rejected.iter().take(5) {
        summary.push_str(&format!("{rejection}\n"));
    }
    if let (Some(first), Some(last)) = (parsed.observations.first(), parsed.observations.last()) {
        summary.push_str(&format!("first {}\nlast  {}\n", json(first), json(last)));
    }
    expected.assert_eq(&summary);
}

fn at(parsed: &Parsed, rfc3339: &str) -> Vec<Observation> {
    parsed.observations.iter().filter(|o| o.observed_at.to_rfc3339() == rfc3339).cloned().collect()
}

fn one_at(parsed: &Parsed, rfc3339: &str) -> Observation {
    let rows = at(parsed, rfc3339);
    assert_eq!(rows.len(), 1, "rows at {rfc3339}: {rows:?}");
    rows.into_iter().next().expect("one row")
}

#[test]
fn realtime_41002() {
    check(
        "realtime2/41002.txt",
        expect![[r#"
            rows 6560, bad lines 0, values set to null 0
            first {"stationId":"41002","observedAt":"2018-08-01T15:10:00Z","windDirDeg":160,"windSpeedMps":6.0,"gustMps":7.0,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1022.9,"airTempC":null,"waterTempC":28.0,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
            last  {"stationId":"41002","observedAt":"2018-06-17T00:00:00Z","windDirDeg":80,"windSpeedMps":5.0,"gustMps":6.0,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1017.6,"airTempC":null,"waterTempC":26.6,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":0.4,"tideFt":null}
        "#]],
    );
}

#[test]
fn realtime_44013() {
    check(
        "realtime2/44013.txt",
        expect![[r#"
            rows 6508, bad lines 0, values set to null 0
            first {"stationId":"44013","observedAt":"2022-06-05T13:00:00Z","windDirDeg":280,"windSpeedMps":3.0,"gustMps":4.0,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1015.2,"airTempC":null,"waterTempC":13.9,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":1.6,"tideFt":null}
            last  {"stationId":"44013","observedAt":"2022-04-21T00:00:00Z","windDirDeg":90,"windSpeedMps":2.0,"gustMps":3.0,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1029.6,"airTempC":null,"waterTempC":7.0,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":3.5,"tideFt":null}
        "#]],
    );
}

#[test]
fn realtime_tplm2_uppercase_file_name() {
    check(
        "realtime2/TPLM2.txt",
        expect![[r#"
            rows 1094, bad lines 0, values set to null 0
            first {"stationId":"tplm2","observedAt":"2022-08-13T18:00:00Z","windDirDeg":10,"windSpeedMps":4.1,"gustMps":5.1,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1020.8,"airTempC":23.3,"waterTempC":null,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":-1.0,"tideFt":null}
            last  {"stationId":"tplm2","observedAt":"2022-06-29T00:00:00Z","windDirDeg":170,"windSpeedMps":4.1,"gustMps":4.6,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1023.2,"airTempC":23.8,"waterTempC":24.0,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":0.6,"tideFt":null}
        "#]],
    );
}

#[test]
fn realtime_46097() {
    check(
        "realtime2/46097.txt",
        expect![[r#"
            rows 1500, bad lines 0, values set to null 0
            first {"stationId":"46097","observedAt":"2019-04-02T13:50:00Z","windDirDeg":120,"windSpeedMps":2.0,"gustMps":null,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1007.7,"airTempC":10.7,"waterTempC":11.1,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
            last  {"stationId":"46097","observedAt":"2019-03-22T22:50:00Z","windDirDeg":230,"windSpeedMps":5.0,"gustMps":null,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1014.1,"airTempC":11.0,"waterTempC":10.3,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
        "#]],
    );
}

#[test]
fn drifting_buoy_hhmm_and_lat_lon_columns() {
    check(
        "realtime2/22101.drift",
        expect![[r#"
            rows 1084, bad lines 0, values set to null 0
            first {"stationId":"22101","observedAt":"2018-08-01T14:00:00Z","windDirDeg":20,"windSpeedMps":1.0,"gustMps":null,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1004.2,"airTempC":24.9,"waterTempC":22.1,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
            last  {"stationId":"22101","observedAt":"2018-06-17T00:00:00Z","windDirDeg":150,"windSpeedMps":1.0,"gustMps":null,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1012.3,"airTempC":15.3,"waterTempC":14.6,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
        "#]],
    );
}

#[test]
fn historical_46035h1990_two_digit_year_no_minute_zero_padded() {
    check(
        "historical/46035h1990.txt",
        expect![[r#"
            rows 300, bad lines 0, values set to null 0
            first {"stationId":"46035","observedAt":"1990-01-01T00:00:00Z","windDirDeg":154,"windSpeedMps":12.8,"gustMps":15.1,"waveHeightM":5.4,"dominantPeriodS":12.5,"averagePeriodS":8.5,"meanWaveDirDeg":null,"pressureHpa":987.4,"airTempC":4.0,"waterTempC":2.8,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
            last  {"stationId":"46035","observedAt":"1990-01-13T12:00:00Z","windDirDeg":339,"windSpeedMps":12.1,"gustMps":14.4,"waveHeightM":4.3,"dominantPeriodS":10.0,"averagePeriodS":8.4,"meanWaveDirDeg":null,"pressureHpa":985.2,"airTempC":-0.2,"waterTempC":2.5,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
        "#]],
    );
    let parsed = parse_fixture("historical/46035h1990.txt").expect("stdmet");
    // `90 01 01 02 148 12.8 15.0 05.30 12.50 08.50 999 0986.8  03.9  03.1 999.0 99.0`
    let row = one_at(&parsed, "1990-01-01T02:00:00+00:00");
    let m = row.measurements;
    assert_eq!(m.get(Field::WindDirDeg), Some(148.0));
    assert_eq!(m.get(Field::WaveHeightM), Some(5.3));
    assert_eq!(m.get(Field::MeanWaveDirDeg), None, "999 is missing");
    assert_eq!(m.get(Field::PressureHpa), Some(986.8), "0986.8");
    assert_eq!(m.get(Field::AirTempC), Some(3.9), "03.9");
    assert_eq!(m.get(Field::DewpointC), None, "999.0 is missing");
    assert_eq!(m.get(Field::VisibilityNmi), None, "99.0 is missing");
    assert_eq!(m.get(Field::PressureTendencyHpa), None, "no PTDY column");
}

#[test]
fn historical_46035h1997_no_leading_zero() {
    check(
        "historical/46035h1997.txt",
        expect![[r#"
            rows 300, bad lines 0, values set to null 0
            first {"stationId":"46035","observedAt":"1997-01-01T00:00:00Z","windDirDeg":14,"windSpeedMps":1.7,"gustMps":2.6,"waveHeightM":0.79,"dominantPeriodS":11.11,"averagePeriodS":6.61,"meanWaveDirDeg":null,"pressureHpa":1010.0,"airTempC":0.1,"waterTempC":3.2,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
            last  {"stationId":"46035","observedAt":"1997-01-13T11:00:00Z","windDirDeg":83,"windSpeedMps":5.5,"gustMps":6.8,"waveHeightM":4.54,"dominantPeriodS":12.5,"averagePeriodS":8.86,"meanWaveDirDeg":null,"pressureHpa":975.3,"airTempC":2.4,"waterTempC":2.7,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
        "#]],
    );
    let parsed = parse_fixture("historical/46035h1997.txt").expect("stdmet");
    // `97 01 01 02  73  1.9  3.0   .81 12.50  6.79 999 1009.3   -.2   3.2 999.0 99.0`
    let m = one_at(&parsed, "1997-01-01T02:00:00+00:00").measurements;
    assert_eq!(m.get(Field::WaveHeightM), Some(0.81));
    assert_eq!(m.get(Field::AirTempC), Some(-0.2));
    // `97 01 01 00  14  1.7  2.6   .79 …`
    assert_eq!(one_at(&parsed, "1997-01-01T00:00:00+00:00").measurements.get(Field::WaveHeightM), Some(0.79));
}

#[test]
fn historical_46035h1998_duplicate_timestamps_are_kept() {
    let parsed = parse_fixture("historical/46035h1998.txt").expect("stdmet");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.observations.len(), 120);
    let distinct: HashSet<_> = parsed.observations.iter().map(|o| o.observed_at).collect();
    assert_eq!(distinct.len(), 72, "24 hourly rows of 1998-08-27 appear three times");
    let noon = at(&parsed, "1998-08-27T12:00:00+00:00");
    assert_eq!(noon.len(), 3);
    assert!(noon.iter().all(|row| row == &noon[0]), "the three copies are identical");
}

#[test]
fn historical_46035h1999_four_digit_year_and_sentinels() {
    check(
        "historical/46035h1999.txt",
        expect![[r#"
            rows 300, bad lines 0, values set to null 0
            first {"stationId":"46035","observedAt":"1999-01-01T00:00:00Z","windDirDeg":null,"windSpeedMps":null,"gustMps":null,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":null,"airTempC":null,"waterTempC":null,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
            last  {"stationId":"46035","observedAt":"1999-01-13T11:00:00Z","windDirDeg":null,"windSpeedMps":null,"gustMps":null,"waveHeightM":5.14,"dominantPeriodS":11.11,"averagePeriodS":7.86,"meanWaveDirDeg":null,"pressureHpa":979.1,"airTempC":-3.2,"waterTempC":2.9,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
        "#]],
    );
    let parsed = parse_fixture("historical/46035h1999.txt").expect("stdmet");
    // `1999 01 01 00 999 99.0 99.0 99.00 99.00 99.00 999 9999.0 999.0 999.0 999.0 99.0`: all missing.
    let first = one_at(&parsed, "1999-01-01T00:00:00+00:00");
    assert_eq!(first.measurements.present().count(), 0, "{first:?}");
}

#[test]
fn historical_46035h2000_short_rows_have_no_tide_and_blank_line_is_fine() {
    check(
        "historical/46035h2000.txt",
        expect![[r#"
            rows 48, bad lines 0, values set to null 0
            first {"stationId":"46035","observedAt":"2000-07-31T01:00:00Z","windDirDeg":57,"windSpeedMps":8.3,"gustMps":10.1,"waveHeightM":2.12,"dominantPeriodS":7.14,"averagePeriodS":5.7,"meanWaveDirDeg":null,"pressureHpa":1006.8,"airTempC":9.4,"waterTempC":9.7,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
            last  {"stationId":"46035","observedAt":"2000-08-02T00:00:00Z","windDirDeg":26,"windSpeedMps":15.4,"gustMps":18.8,"waveHeightM":3.4,"dominantPeriodS":7.69,"averagePeriodS":6.2,"meanWaveDirDeg":null,"pressureHpa":990.4,"airTempC":8.6,"waterTempC":8.7,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
        "#]],
    );
    let parsed = parse_fixture("historical/46035h2000.txt").expect("stdmet");
    assert!(parsed.errors.is_empty(), "line 2 is blank, not an error: {:?}", parsed.errors);
    // 16 tokens: `2000 07 31 23  96  9.6 11.4  1.15  6.67  4.68 999 1003.1   7.9   9.5 999.0 99.0`
    let short = one_at(&parsed, "2000-07-31T23:00:00+00:00").measurements;
    assert_eq!(short.get(Field::TideFt), None);
    assert_eq!(short.get(Field::WaterTempC), Some(9.5));
    assert_eq!(parsed.observations.len(), 48);
}

#[test]
fn historical_post_2007_vintages() {
    check(
        "historical/tplm2h2020.txt",
        expect![[r#"
            rows 500, bad lines 0, values set to null 0
            first {"stationId":"tplm2","observedAt":"2020-01-01T00:00:00Z","windDirDeg":188,"windSpeedMps":6.1,"gustMps":6.2,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1006.1,"airTempC":9.5,"waterTempC":6.6,"dewpointC":-0.3,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
            last  {"stationId":"tplm2","observedAt":"2020-01-21T19:00:00Z","windDirDeg":343,"windSpeedMps":4.5,"gustMps":6.0,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1031.9,"airTempC":-0.1,"waterTempC":4.4,"dewpointC":-11.7,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
        "#]],
    );
    check(
        "historical/tplm212022.txt",
        expect![[r#"
            rows 744, bad lines 0, values set to null 0
            first {"stationId":"tplm2","observedAt":"2022-01-01T00:00:00Z","windDirDeg":127,"windSpeedMps":5.1,"gustMps":5.6,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1013.6,"airTempC":9.5,"waterTempC":7.7,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
            last  {"stationId":"tplm2","observedAt":"2022-01-31T23:00:00Z","windDirDeg":30,"windSpeedMps":5.6,"gustMps":6.2,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1027.9,"airTempC":0.4,"waterTempC":1.7,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
        "#]],
    );
    check(
        "historical/46097h201908qc.txt",
        expect![[r#"
            rows 288, bad lines 0, values set to null 0
            first {"stationId":"46097","observedAt":"2019-08-01T00:00:00Z","windDirDeg":231,"windSpeedMps":1.6,"gustMps":null,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1017.3,"airTempC":15.7,"waterTempC":13.5,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
            last  {"stationId":"46097","observedAt":"2019-08-02T23:50:00Z","windDirDeg":165,"windSpeedMps":1.6,"gustMps":null,"waveHeightM":null,"dominantPeriodS":null,"averagePeriodS":null,"meanWaveDirDeg":null,"pressureHpa":1019.8,"airTempC":15.5,"waterTempC":15.3,"dewpointC":null,"visibilityNmi":null,"pressureTendencyHpa":null,"tideFt":null}
        "#]],
    );
}

#[test]
fn realtime_specific_values() {
    let parsed = parse_fixture("realtime2/41002.txt").expect("stdmet");
    // Line 709: `2018 07 27 15 50 160  7.0  9.0   1.2     8   5.2  99 1020.0    MM  27.5 …`
    let row = one_at(&parsed, "2018-07-27T15:50:00+00:00");
    assert_eq!(row.measurements.get(Field::MeanWaveDirDeg), Some(99.0), "99 degrees is a direction");
    assert_eq!(row.measurements.get(Field::DominantPeriodS), Some(8.0));
    assert_eq!(row.measurements.get(Field::AirTempC), None, "MM");
    let rows_with_mwd_99 = parsed
        .observations
        .iter()
        .filter(|o| o.measurements.get(Field::MeanWaveDirDeg) == Some(99.0))
        .count();
    assert!(rows_with_mwd_99 >= 3, "{rows_with_mwd_99}");
    // `2018 08 01 15 00 … +0.6    MM`
    let signed = one_at(&parsed, "2018-08-01T15:00:00+00:00");
    assert_eq!(signed.measurements.get(Field::PressureTendencyHpa), Some(0.6));
    let stations: HashSet<_> = parsed.observations.iter().map(|o| o.station_id.clone()).collect();
    assert_eq!(stations.len(), 1);

    let tplm2 = parse_fixture("realtime2/TPLM2.txt").expect("stdmet");
    // `2022 08 13 18 00  10  4.1  5.1 … 1020.8  23.3    MM    MM   MM -1.0    MM`
    let row = one_at(&tplm2, "2022-08-13T18:00:00+00:00");
    assert_eq!(row.station_id.as_str(), "tplm2");
    assert_eq!(row.measurements.get(Field::PressureTendencyHpa), Some(-1.0));
    assert_eq!(row.measurements.get(Field::WindDirDeg), Some(10.0));
}

#[test]
fn latest_obs_stations_from_stn_column_and_ptdy_before_atmp() {
    let bytes = fixtures::read("latest_obs/latest_obs.txt");
    let parsed = parse(&bytes, None).expect("latest_obs.txt carries its stations");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.observations.len(), 840);
    let stations: HashSet<&str> = parsed.observations.iter().map(|o| o.station_id.as_str()).collect();
    assert_eq!(stations.len(), 840);
    assert!(stations.contains("katp"), "upper-case ids are lower-cased");
    let by_station = |id: &str| {
        parsed.observations.iter().find(|o| o.station_id.as_str() == id).cloned().expect("station present")
    };
    // `41008  31.400  -80.868 2018 07 30 20 50 150   6.0   7.0  0.8   8  4.4  80 1015.9  -1.6  27.9  29.6  24.1   MM     MM`
    expect![[r#"{"stationId":"41008","observedAt":"2018-07-30T20:50:00Z","windDirDeg":150,"windSpeedMps":6.0,"gustMps":7.0,"waveHeightM":0.8,"dominantPeriodS":8.0,"averagePeriodS":4.4,"meanWaveDirDeg":80,"pressureHpa":1015.9,"airTempC":27.9,"waterTempC":29.6,"dewpointC":24.1,"visibilityNmi":null,"pressureTendencyHpa":-1.6,"tideFt":null}"#]].assert_eq(&json(&by_station("41008")));
    // `BDVF1  25.478  -80.989 2018 07 30 20 00  MM … 28.3    MM   MM   0.29`
    let bdvf1 = by_station("bdvf1");
    assert_eq!(bdvf1.measurements.get(Field::TideFt), Some(0.29));
    assert_eq!(bdvf1.measurements.get(Field::WaterTempC), Some(28.3));
    assert_eq!(bdvf1.measurements.present().count(), 2);
    // A station given by the caller does not override the STN column.
    let other = StationId::parse("46026").expect("valid");
    let with_station = parse(&bytes, Some(&other)).expect("stdmet");
    assert_eq!(with_station.observations, parsed.observations);
}

#[test]
fn non_stdmet_ndbc_files_yield_nothing() {
    let files = [
        "realtime2/41008.cwind",
        "realtime2/TPLM2.cwind",
        "realtime2/41002.spec",
        "realtime2/44013.spec",
        "realtime2/41010.spec",
        "realtime2/41010.data_spec",
        "realtime2/41010.swdir",
        "realtime2/44029.ocean",
        "realtime2/45183.ocean",
        "realtime2/44029.adcp",
        "realtime2/41421.dart",
        "realtime2/45027.srad",
        "realtime2/PVGF1.supl",
        "realtime2/BDVF1.rain",
        "realtime2/44013.dmv",
        "historical/42a01c2003.txt",
        "historical/46042w1996.txt",
    ];
    let mut messages = String::new();
    for file in files {
        match parse_fixture(file) {
            Err(error @ FileError::NotStdmet { .. }) => messages.push_str(&format!("{file}: {error}\n")),
            other => panic!("{file}: expected NotStdmet, got {other:?}"),
        }
    }
    expect![[r#"
        realtime2/41008.cwind: an NDBC file but not standard meteorological data (columns GDR, GTIME are not stdmet)
        realtime2/TPLM2.cwind: an NDBC file but not standard meteorological data (columns GDR, GTIME are not stdmet)
        realtime2/41002.spec: an NDBC file but not standard meteorological data (columns SwH, SwP, WWH, WWP, SwD, WWD, STEEPNESS are not stdmet)
        realtime2/44013.spec: an NDBC file but not standard meteorological data (columns SwH, SwP, WWH, WWP, SwD, WWD, STEEPNESS are not stdmet)
        realtime2/41010.spec: an NDBC file but not standard meteorological data (columns SwH, SwP, WWH, WWP, SwD, WWD, STEEPNESS are not stdmet)
        realtime2/41010.data_spec: an NDBC file but not standard meteorological data (columns Sep_Freq, <, spec_1, (freq_1), spec_2, (freq_2), spec_3, (freq_3), ..., > are not stdmet)
        realtime2/41010.swdir: an NDBC file but not standard meteorological data (columns alpha1_1, (freq_1), alpha1_2, (freq_2), alpha1_3, (freq_3), ..., > are not stdmet)
        realtime2/44029.ocean: an NDBC file but not standard meteorological data (columns DEPTH, OTMP, COND, SAL, O2%, O2PPM, CLCON, TURB, PH, EH are not stdmet)
        realtime2/45183.ocean: an NDBC file but not standard meteorological data (columns DEPTH, OTMP, COND, SAL, O2%, O2PPM, CLCON, TURB, PH, EH are not stdmet)
        realtime2/44029.adcp: an NDBC file but not standard meteorological data (columns DEP01, DIR01, SPD01, DEP02, DIR02, SPD02, DEP03, DIR03, SPD03, DEP04 and 50 more are not stdmet)
        realtime2/41421.dart: an NDBC file but not standard meteorological data (columns ss, T, HEIGHT are not stdmet)
        realtime2/45027.srad: an NDBC file but not standard meteorological data (columns SRAD1, SWRAD, LWRAD are not stdmet)
        realtime2/PVGF1.supl: an NDBC file but not standard meteorological data (columns PTIME, WTIME are not stdmet)
        realtime2/BDVF1.rain: an NDBC file but not standard meteorological data (column ACCUM is not stdmet)
        realtime2/44013.dmv: an NDBC file but not standard meteorological data (columns CHILL, HEAT, ICE, WSPD10, WSPD20 are not stdmet)
        historical/42a01c2003.txt: an NDBC file but not standard meteorological data (columns DIR, SPD, GDR, GSP, GMN are not stdmet)
        historical/46042w1996.txt: an NDBC file but not standard meteorological data (columns .030, .040, .050, .060, .070, .080, .090, .100, .110, .120 and 28 more are not stdmet)
    "#]].assert_eq(&messages);
}

#[test]
fn html_page_is_not_ndbc() {
    let html = b"<!DOCTYPE html>\n<html lang=\"en\"><head><title>503</title></head>\n<body>Service Unavailable</body></html>\n";
    let station = StationId::parse("41002").expect("valid");
    let error = parse(html, Some(&station)).expect_err("not NDBC");
    assert!(matches!(error, FileError::NotNdbc { .. }), "{error:?}");
    expect![[r#"not an NDBC data file: line 1 looks like HTML or XML, not an NDBC column header: "<!DOCTYPE html>""#]].assert_eq(&error.to_string());
}

#[test]
fn bad_lines_in_a_real_file_are_skipped_and_reported() {
    let original = fixtures::read("realtime2/41002.txt");
    let text = String::from_utf8(original).expect("ASCII fixture");
    let mut lines: Vec<Vec<u8>> = text.lines().map(|line| line.as_bytes().to_vec()).collect();
    let n_rows = lines.len() - 2;
    // Insert after the header (lines 1-2) and the first data row (line 3).
    let bad: [&[u8]; 6] = [
        b"2018 08 01 15 05 160  6.0  7.0    MM    MM    MM  MM 1022.9    MM  28.0    MM   MM   MM    MM  MM",
        b"2018 08 01 15 04 160  6.0  7.0    MM    MM    MM  MM 10x2.9    MM  28.0    MM   MM   MM    MM",
        b"2018 02 30 15 03 160  6.0  7.0    MM    MM    MM  MM 1022.9    MM  28.0    MM   MM   MM    MM",
        b"2018 08 01 15 02 160  6.0  7.0    MM    MM    MM  MM 1022.9 \xb0C  28.0    MM   MM   MM    MM",
        b"#yr  mo dy hr mn degT m/s  m/s     m   sec   sec degT   hPa  degC  degC  degC  nmi  hPa    ft",
        b"",
    ];
    for (offset, line) in bad.iter().enumerate() {
        lines.insert(3 + offset, line.to_vec());
    }
    let bytes = lines.join(&b'\n');
    let station = StationId::parse("41002").expect("valid");
    let parsed = parse(&bytes, Some(&station)).expect("stdmet");
    assert_eq!(parsed.observations.len(), n_rows, "every real row still parses");
    let lines: Vec<usize> = parsed.errors.iter().map(|error| error.line).collect();
    assert_eq!(lines, [4, 5, 6, 7]);
    assert!(matches!(parsed.errors[0].kind, LineErrorKind::TooManyColumns { found: 20, expected: 19 }));
    assert!(matches!(parsed.errors[3].kind, LineErrorKind::NotUtf8));
    let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
    expect![[r#"
        [
            "line 4: 20 columns but the header has 19",
            "line 5: malformed number \"10x2.9\" in column PRES",
            "line 6: impossible date 2018-02-30",
            "line 7: bytes that are not UTF-8",
        ]
    "#]]
    .assert_debug_eq(&errors);
}

#[test]
fn active_stations_xml() {
    let (stations, errors) =
        parse_active_stations(&fixtures::read("stations/activestations.xml")).expect("a station list");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(stations.len(), 1348, "the root says count=\"1348\"");
    assert!(stations.iter().all(|station| station.active));
    let unnamed = stations.iter().filter(|station| station.name.is_none()).count();
    assert_eq!(unnamed, 35, "empty names become None");
    let find = |id: &str| stations.iter().find(|station| station.id.as_str() == id).expect("listed");
    expect![[r#"{"id":"41002","name":"SOUTH HATTERAS - 225 NM South of Cape Hatteras","lat":31.759,"lon":-74.936,"owner":"NDBC","type":"other","active":true}"#]].assert_eq(&serde_json::to_string(find("41002")).expect("serializes"));
    assert_eq!(find("62114").name.as_deref(), Some("Tartan \"A\" AWS"));
    assert_eq!(find("22101").name, None);
    assert_eq!(find("tplm2").lat, Some(38.899));
    let mut by_type = std::collections::BTreeMap::new();
    for station in &stations {
        *by_type.entry(station.station_type.clone().unwrap_or_default()).or_insert(0) += 1;
    }
    expect![[r#"
        {
            "buoy": 380,
            "dart": 74,
            "fixed": 707,
            "oilrig": 54,
            "other": 84,
            "tao": 48,
            "usv": 1,
        }
    "#]]
    .assert_debug_eq(&by_type);
}

// ---- `buoycast parse` ----

#[test]
fn cli_row_writer_equals_the_schema_writer_on_every_fixture_row() {
    let files = [
        "realtime2/41002.txt",
        "realtime2/44013.txt",
        "realtime2/TPLM2.txt",
        "realtime2/46097.txt",
        "realtime2/22101.drift",
        "historical/46035h1990.txt",
        "historical/46035h1997.txt",
        "historical/46035h1998.txt",
        "historical/46035h1999.txt",
        "historical/46035h2000.txt",
        "historical/tplm2h2020.txt",
        "historical/tplm212022.txt",
        "historical/46097h201908qc.txt",
        "latest_obs/latest_obs.txt",
    ];
    let mut n_rows = 0;
    for file in files {
        let mut writer = RowWriter::default();
        for observation in parse_fixture(file).expect("stdmet").observations {
            let (mut fast, mut reference) = (Vec::new(), Vec::new());
            writer.write_row(&mut fast, &observation);
            observation.write_json(&mut reference, TimeKey::ObservedAt);
            assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&reference), "{file}");
            n_rows += 1;
        }
    }
    assert_eq!(n_rows, 6560 + 6508 + 1094 + 1500 + 1084 + 300 + 300 + 120 + 300 + 48 + 500 + 744 + 288 + 840);
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn buoycast_parse(path: &std::path::Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_buoycast"))
        .arg("parse")
        .arg(path)
        .output()
        .expect("run buoycast parse");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn cli_prints_json_lines() {
    let output = buoycast_parse(&fixtures::path("realtime2/41002.txt"));
    assert_eq!(output.code, Some(0), "stderr: {}", output.stderr);
    assert_eq!(output.stderr, "");
    let rows: Vec<serde_json::Value> = output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 6560);
    let first = rows[0].as_object().expect("object");
    assert_eq!(first.len(), 16, "stationId, observedAt and 14 measurements: {first:?}");
    assert_eq!(rows[0]["stationId"], "41002");
    assert_eq!(rows[0]["observedAt"], "2018-08-01T15:10:00Z");
    assert_eq!(rows[0]["windDirDeg"], 160);
    assert_eq!(rows[0]["pressureHpa"], 1022.9);
    assert!(rows[0]["waveHeightM"].is_null());
    assert_eq!(rows[1]["pressureTendencyHpa"], 0.6);
}

#[test]
fn cli_reports_bad_lines_and_still_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("46035h2000.txt");
    let mut bytes = fixtures::read("historical/46035h2000.txt");
    bytes.extend_from_slice(b"2000 08 02 01 86 9.4 oops\n2000 13 02 02 86 9.4\n");
    std::fs::write(&path, bytes).expect("write temp file");
    let output = buoycast_parse(&path);
    assert_eq!(output.code, Some(0), "stderr: {}", output.stderr);
    assert_eq!(output.stdout.lines().count(), 48);
    let first: serde_json::Value =
        serde_json::from_str(output.stdout.lines().next().expect("a row")).expect("JSON");
    assert_eq!(first["stationId"], "46035");
    assert_eq!(first["observedAt"], "2000-07-31T01:00:00Z");
    let stderr = output.stderr.replace(&path.display().to_string(), "FILE");
    expect![[r#"
        line 51: malformed number "oops" in column GST
        line 52: malformed month "13" (column MM)
        FILE: 48 observations, 2 bad lines skipped
    "#]]
    .assert_eq(&stderr);
}

#[test]
fn cli_non_stdmet_ndbc_file_exits_0_with_a_note() {
    let output = buoycast_parse(&fixtures::path("realtime2/41008.cwind"));
    assert_eq!(output.code, Some(0), "stderr: {}", output.stderr);
    assert_eq!(output.stdout, "");
    assert!(output.stderr.contains("no standard meteorological data"), "{}", output.stderr);
}

#[test]
fn cli_html_page_fails_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("41002.txt");
    std::fs::write(&path, "<!DOCTYPE html>\n<html><body><h1>Not Found</h1></body></html>\n").expect("write");
    let output = buoycast_parse(&path);
    assert_ne!(output.code, Some(0));
    assert_eq!(output.stdout, "");
    assert!(output.stderr.contains("not an NDBC data file"), "{}", output.stderr);
    assert!(output.stderr.contains("HTML"), "{}", output.stderr);

    let missing = buoycast_parse(&dir.path().join("absent.txt"));
    assert_ne!(missing.code, Some(0));
    assert!(missing.stderr.contains("absent.txt"), "{}", missing.stderr);
}

/// Regression (found by the `ndbc_parse` fuzz target): a row that lost a
/// middle column slides its later values into the wrong fields. Such a row
/// is refused whole as shifted (four values out of range) instead of storing
/// a pressure of 8 hPa.
#[test]
fn r_fuzz_shifted_row_is_refused_not_stored_shifted() {
    let text = "YYYY MM DD hh WD   WSPD GST  WVHT  DPD   APD  MWD  BAR    ATMP  WTMP  DEWP  VIS  TIDE\n\
                2000 08 01 03  75 12.3 14.1  1.60  5.00  4.90 999  999.6   8.1   9.1 999.0 99.0 99.00\n\
                2000 08 01 04  77 12.7 14.8  1.63  5.00  999  999.2   8.0   9.1 999.0 99.0 99.00\n";
    let station = buoycast::observation::StationId::parse("46035").expect("valid id");
    let parsed =
        buoycast::sources::ndbc::parse::parse(text.as_bytes(), Some(&station)).expect("an NDBC file");
    assert_eq!(parsed.observations.len(), 1, "only the whole row is kept");
    assert!(parsed.rejected.is_empty(), "nothing of the shifted row is kept: {:?}", parsed.rejected);
    assert_eq!(parsed.errors.len(), 1);
    assert!(
        matches!(
            parsed.errors[0].kind,
            LineErrorKind::ShiftedColumns { column: "APD", n_out_of_range: 4, .. }
        ),
        "{:?}",
        parsed.errors[0]
    );
    let error = parsed.errors[0].to_string();
    assert!(error.contains("line 3") && error.contains("out of range for column APD"), "{error}");
}

// ---- Partial values, shifted rows, mid-file headers (on real files) ----

/// The lines of a fixture, to edit.
fn fixture_lines(relative: &str) -> Vec<String> {
    let text = String::from_utf8(fixtures::read(relative)).expect("ASCII fixture");
    text.lines().map(str::to_owned).collect()
}

fn parse_lines(lines: &[String], station: &str) -> Parsed {
    let station = StationId::parse(station).expect("valid");
    parse(format!("{}\n", lines.join("\n")).as_bytes(), Some(&station)).expect("stdmet")
}

/// The index of the line that starts with `prefix`.
fn line_starting(lines: &[String], prefix: &str) -> usize {
    lines.iter().position(|line| line.starts_with(prefix)).unwrap_or_else(|| panic!("no line {prefix:?}"))
}

#[test]
fn a_spike_in_a_real_file_is_set_to_null_and_the_row_kept() {
    let original = parse_fixture("realtime2/41002.txt").expect("stdmet");
    let mut lines = fixture_lines("realtime2/41002.txt");
    // Line 709: `2018 07 27 15 50 160  7.0  9.0   1.2     8   5.2  99 1020.0    MM  27.5 …`
    let at = line_starting(&lines, "2018 07 27 15 50 ");
    assert_eq!(at + 1, 709);
    lines[at] = lines[at].replacen("  1.2  ", " 45.0  ", 1);
    let parsed = parse_lines(&lines, "41002");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.observations.len(), original.observations.len(), "no row is lost");
    let rejected: Vec<String> = parsed.rejected.iter().map(ToString::to_string).collect();
    assert_eq!(rejected, ["line 709: WVHT 45.0 is out of range, 0 to 40 m (set to null)"]);
    assert_eq!(parsed.rejected[0].field, Field::WaveHeightM);
    for (row, before) in parsed.observations.iter().zip(&original.observations) {
        if row.observed_at.to_rfc3339() == "2018-07-27T15:50:00+00:00" {
            assert_eq!(before.measurements.get(Field::WaveHeightM), Some(1.2));
            assert_eq!(row.measurements.get(Field::WaveHeightM), None);
            for field in Field::ALL.into_iter().filter(|field| *field != Field::WaveHeightM) {
                assert_eq!(row.measurements.get(field), before.measurements.get(field), "{field}");
            }
        } else {
            assert_eq!(row, before);
        }
    }
}

#[test]
fn a_row_that_lost_a_column_in_a_real_file_is_dropped_whole() {
    let original = parse_fixture("realtime2/41002.txt").expect("stdmet");
    let mut lines = fixture_lines("realtime2/41002.txt");
    // `2018 07 27 15 50 160  7.0 …` without WDIR: 7.0 would be a direction,
    // 9.0 a speed, … and the pressure a wave direction (the only value out
    // of range: MWD's 99 lands in APD, where it means "missing").
    let at = line_starting(&lines, "2018 07 27 15 50 ");
    lines[at] = lines[at].replacen(" 160 ", " ", 1);
    // `2018 08 01 15 10 160  6.0  7.0    MM    MM    MM  MM 1022.9    MM  28.0 …`
    // without one `MM`: the pressure lands in MWD (the only value out of
    // range), the water temperature in ATMP.
    let first = line_starting(&lines, "2018 08 01 15 10 ");
    lines[first] = lines[first].replacen("    MM", "", 1);
    let parsed = parse_lines(&lines, "41002");
    assert_eq!(parsed.observations.len(), original.observations.len() - 2);
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
    expect![[r#"
        [
            "line 3: columns look shifted: 1022.9 is out of range for column MWD (0 to 360) in a row of 18 columns where 19 are expected",
            "line 709: columns look shifted: 1020.0 is out of range for column MWD (0 to 360) in a row of 18 columns where 19 are expected",
        ]
    "#]]
    .assert_debug_eq(&errors);
    let kept: Vec<&Observation> = original
        .observations
        .iter()
        .filter(|row| {
            !["2018-07-27T15:50:00+00:00", "2018-08-01T15:10:00+00:00"]
                .contains(&row.observed_at.to_rfc3339().as_str())
        })
        .collect();
    assert_eq!(parsed.observations.iter().collect::<Vec<_>>(), kept);
}

#[test]
fn a_stray_header_in_a_real_file_is_a_bad_line_and_every_row_still_reads() {
    let original = parse_fixture("realtime2/41002.txt").expect("stdmet");
    let historical = fixture_lines("historical/46035h2000.txt");
    let mut lines = fixture_lines("realtime2/41002.txt");
    // A historical header pasted after row 100 (line 103), then a realtime
    // header without PTDY after row 200.
    lines.insert(102, historical[0].clone());
    lines.insert(203, lines[0].replacen(" PTDY", "", 1));
    let parsed = parse_lines(&lines, "41002");
    assert_eq!(parsed.observations, original.observations, "every row reads as before");
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
    expect![[r#"
        [
            "line 103: header line ignored: the row on line 104 fits the columns in use, not this header's 17 columns",
            "line 204: header line ignored: the row on line 205 fits the columns in use, not this header's 18 columns",
        ]
    "#]]
    .assert_debug_eq(&errors);
    assert!(matches!(parsed.errors[0].kind, LineErrorKind::StrayHeader { columns: 17, witness: 104 }));
}

#[test]
fn concatenated_real_files_are_read_whole() {
    let concatenated = |files: &[&str], station: &str| {
        let lines: Vec<String> = files.iter().flat_map(|file| fixture_lines(file)).collect();
        let alone: Vec<Observation> = files
            .iter()
            .flat_map(|file| parse_fixture(file).expect("stdmet").observations)
            .map(|mut row| {
                row.station_id = StationId::parse(station).expect("valid");
                row
            })
            .collect();
        (parse_lines(&lines, station), alone)
    };
    // Two realtime2 files (header and units line again in the middle).
    let (parsed, alone) = concatenated(&["realtime2/41002.txt", "realtime2/44013.txt"], "41002");
    assert!(parsed.errors.is_empty() && parsed.rejected.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.observations.len(), 6560 + 6508);
    assert_eq!(parsed.observations, alone);
    // Four historical vintages: `YY`, then `YYYY`, then `YYYY` with `TIDE`
    // (whose July rows do not have it yet), then a realtime2 file.
    let files = [
        "historical/46035h1990.txt",
        "historical/46035h1997.txt",
        "historical/46035h1999.txt",
        "historical/46035h2000.txt",
        "realtime2/46097.txt",
    ];
    let (parsed, alone) = concatenated(&files, "46035");
    assert!(parsed.errors.is_empty() && parsed.rejected.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.observations.len(), 300 + 300 + 300 + 48 + 1500);
    assert_eq!(parsed.observations, alone);
}

#[test]
fn cli_reports_rejected_values_and_prints_their_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("46035h2000.txt");
    let mut bytes = fixtures::read("historical/46035h2000.txt");
    bytes.extend_from_slice(
        b"2000 08 02 01  28 15.0 18.4 45.00  7.69  5.98 999  992.0   8.2   8.8 999.0 99.0 99.00\n\
          2000 08 02 02 13 02 02 86 9.4\n\
          2000 08 02 03  28 15.0 18.4  2.88  7.69  5.98 999  992.0 -99.0   8.8 999.0 99.0 99.00\n",
    );
    std::fs::write(&path, bytes).expect("write temp file");
    let output = buoycast_parse(&path);
    assert_eq!(output.code, Some(0), "stderr: {}", output.stderr);
    let rows: Vec<serde_json::Value> =
        output.stdout.lines().map(|line| serde_json::from_str(line).expect("JSON")).collect();
    assert_eq!(rows.len(), 50, "both rows with a spike are printed");
    assert_eq!(rows[48]["observedAt"], "2000-08-02T01:00:00Z");
    assert!(rows[48]["waveHeightM"].is_null());
    assert_eq!(rows[48]["pressureHpa"], 992.0);
    assert!(rows[49]["airTempC"].is_null());
    assert_eq!(rows[49]["waveHeightM"], 2.88);
    let stderr = output.stderr.replace(&path.display().to_string(), "FILE");
    expect![[r#"
        line 51: WVHT 45.00 is out of range, 0 to 40 m (set to null)
        line 52: columns look shifted: 86 is out of range for column WVHT (0 to 40) in a row of 9 columns where 17 are expected
        line 53: ATMP -99.0 is out of range, -70 to 60 degC (set to null)
        FILE: 50 observations, 1 bad lines skipped, 2 values set to null
    "#]]
    .assert_eq(&stderr);
}
