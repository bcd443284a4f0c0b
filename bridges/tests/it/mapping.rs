//! docs/REFERENCE.md, MIDI map and Mapping file: ranges, clamping, curves,
//! invert, 7- and 14-bit values (with property tests), map files refused with
//! their line, and the example maps.

use buoycast::observation::{Field, StationId};
use buoycast_bridges::mapping::{cc14, cc7, split14, Curve, FieldMap, Map, MapError};
use proptest::prelude::*;

use crate::harness::workspace_root;

fn wave() -> FieldMap {
    *Map::builtin().field(Field::WaveHeightM)
}

#[test]
fn range_maps_linearly_and_clamps() {
    let m = wave();
    assert_eq!(m.norm(5.0), 0.5);
    assert_eq!(m.norm(0.0), 0.0);
    assert_eq!(m.norm(-3.0), 0.0);
    assert_eq!(m.norm(10.0), 1.0);
    assert_eq!(m.norm(25.0), 1.0);
    let pressure = *Map::builtin().field(Field::PressureHpa);
    assert_eq!(pressure.norm(1000.0), 0.5);
    assert_eq!(pressure.norm(900.0), 0.0);
}

#[test]
fn curves_and_invert_follow_the_documented_formulas() {
    let log = FieldMap { curve: Curve::Log, ..wave() };
    let exp = FieldMap { curve: Curve::Exp, ..wave() };
    assert!((log.norm(5.0) - (5.5f64).ln() / 10f64.ln()).abs() < 1e-12);
    assert!((exp.norm(5.0) - (10f64.sqrt() - 1.0) / 9.0).abs() < 1e-12);
    assert_eq!(log.norm(0.0), 0.0);
    assert!((log.norm(10.0) - 1.0).abs() < 1e-12);
    assert!((exp.norm(10.0) - 1.0).abs() < 1e-12);
    let inverted = FieldMap { invert: true, ..log };
    assert!((inverted.norm(5.0) - (1.0 - (5.5f64).ln() / 10f64.ln())).abs() < 1e-12);
    assert_eq!(FieldMap { invert: true, ..wave() }.norm(0.0), 1.0);
}

#[test]
fn seven_and_fourteen_bit_values() {
    assert_eq!(cc7(0.0), 0);
    assert_eq!(cc7(0.5), 64);
    assert_eq!(cc7(1.0), 127);
    assert_eq!(cc14(0.5), 8192);
    assert_eq!(cc14(1.0), 16383);
    assert_eq!(split14(8192), (64, 0));
    assert_eq!(split14(16383), (127, 127));
    assert_eq!(split14(200), (1, 72));
}

fn any_curve() -> impl Strategy<Value = Curve> {
    prop_oneof![Just(Curve::Linear), Just(Curve::Log), Just(Curve::Exp)]
}

proptest! {
    #[test]
    fn norm_is_always_within_zero_and_one(
        min in -1.0e6f64..1.0e6, span in 1.0e-6f64..1.0e6, value in proptest::num::f64::ANY,
        curve in any_curve(), invert in any::<bool>(),
    ) {
        let m = FieldMap { min, max: min + span, curve, invert, cc: 20, enabled: true, shaping: Default::default() };
        let y = m.norm(value);
        prop_assert!((0.0..=1.0).contains(&y), "norm {y} for {value}");
    }

    #[test]
    fn norm_is_monotonic_without_invert(
        min in -1.0e3f64..1.0e3, span in 1.0e-3f64..1.0e3, a in -2.0e3f64..2.0e3, b in -2.0e3f64..2.0e3,
        curve in any_curve(),
    ) {
        let m = FieldMap { min, max: min + span, curve, invert: false, cc: 20, enabled: true, shaping: Default::default() };
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(m.norm(lo) <= m.norm(hi));
        prop_assert!(cc7(m.norm(lo)) <= cc7(m.norm(hi)));
    }

    #[test]
    fn fourteen_bit_halves_recombine(norm in 0.0f64..=1.0) {
        let v = cc14(norm);
        let (msb, lsb) = split14(v);
        prop_assert!(msb < 128 && lsb < 128);
        prop_assert_eq!((u16::from(msb) << 7) | u16::from(lsb), v);
        prop_assert_eq!(v, (norm * 16383.0).round() as u16);
        prop_assert_eq!(cc7(norm), (norm * 127.0).round() as u8);
    }
}

fn refused(text: &str) -> (usize, String) {
    match Map::from_toml(text, "bad.toml") {
        Err(MapError::Invalid { origin, line, reason }) => {
            assert_eq!(origin, "bad.toml");
            (line, reason)
        }
        other => panic!("expected a refusal for {text:?}, got {other:?}"),
    }
}

#[test]
fn bad_maps_are_refused_with_their_line_and_reason() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "[fields.waveHeightM]\nmin = 0\n\n[fields.waveHeight]\nmax = 3\n",
            4,
            "unknown field \"waveHeight\"",
        ),
        ("[fields.waveHeightM]\nmin = 0\nmaxx = 3\n", 3, "maxx"),
        ("[osc]\nport = 3\n", 2, "port"),
        ("[fields.waveHeightM]\nmin = 5\nmax = 5\n", 3, "min 5 must be less than max 5"),
        ("[fields.tideFt]\nmax = -6\n", 2, "min -5 must be less than max -6"),
        ("\n[fields.waveHeightM]\ncc = 120\n", 3, "cc 120 is outside 0..=119"),
        ("[fields.waveHeightM]\ncc = 1\n[fields.windSpeedMps]\ncc = 1\n", 4, "cc 1 is used twice"),
        ("[fields.waveHeightM]\ncc = 24\n", 2, "cc 24 is used twice: by windSpeedMps and by waveHeightM"),
        ("[stations.\"46026\"]\nchannel = 17\n", 2, "channel 17 is outside 1..=16"),
        ("[stations.\"46026\"]\nchannel = 0\n", 2, "channel 0"),
        ("[stations.\"46-026\"]\nchannel = 1\n", 1, "station \"46-026\""),
        ("[osc]\nprefix = \"buoy\"\n", 2, "osc prefix \"buoy\""),
        ("[osc]\nprefix = \"/bu oy\"\n", 2, "osc prefix"),
        ("[osc]\nprefix = \"/buoy/\"\n", 2, "osc prefix"),
        ("[fields.waveHeightM]\ncurve = \"cubic\"\n", 2, "cubic"),
        ("[fields.waveHeightM]\nmin = \"low\"\n", 2, ""),
        ("[fields.waveHeightM\n", 1, ""),
    ];
    for &(text, line, needle) in cases {
        let (got_line, reason) = refused(text);
        assert_eq!(got_line, line, "{text:?}: {reason}");
        assert!(reason.contains(needle), "{text:?}: {reason:?} lacks {needle:?}");
    }
}

#[test]
fn error_message_names_file_and_line() {
    let error = Map::from_toml("\n\n[fields.nope]\n", "my-map.toml").expect_err("refused");
    assert!(error.to_string().starts_with("my-map.toml:3: unknown field \"nope\""), "{error}");
}

#[test]
fn cc14_refuses_an_lsb_collision() {
    let map = Map::from_toml("[fields.tideFt]\ncc = 52\n", "t").expect("valid alone");
    let error = map.check_cc14().expect_err("52 is waveHeightM's LSB");
    assert!(error.contains("waveHeightM on cc 20 needs cc 52"), "{error}");
    Map::builtin().check_cc14().expect("the default map works with --cc14");
}

#[test]
fn examples_default_map_equals_the_builtin_map() {
    let path = workspace_root().join("examples/maps/default.toml");
    assert_eq!(Map::load(&path).expect("loads"), Map::builtin());
}

#[test]
fn examples_original_web_midi_map_puts_wave_height_on_cc1_and_wind_on_cc2() {
    let path = workspace_root().join("examples/maps/original-web-midi.toml");
    let map = Map::load(&path).expect("loads");
    assert_eq!(map.field(Field::WaveHeightM).cc, 1);
    assert_eq!(map.field(Field::WindSpeedMps).cc, 2);
    assert_eq!(map.stations.get(&StationId::parse("46026").expect("id")), Some(&1));
    let on: Vec<Field> = Field::ALL.into_iter().filter(|field| map.field(*field).enabled).collect();
    assert_eq!(on, [Field::WindSpeedMps, Field::WaveHeightM], "only the original's two controls");
}

/// `enabled = false` frees the field's CC and keeps it out of the OSC fields.
#[test]
fn a_switched_off_field_sends_nothing_and_frees_its_cc() {
    let map =
        Map::from_toml("[fields.waveHeightM]\nenabled = false\n[fields.windSpeedMps]\ncc = 20\n", "<map>")
            .expect("cc 20 is free once waveHeightM is off");
    assert!(!map.field(Field::WaveHeightM).enabled);
    let encoder = buoycast_bridges::osc::OscEncoder {
        format: buoycast_bridges::cli::OscFormat::Fields,
        null_policy: buoycast_bridges::osc::NullPolicy::Skip,
        bundle: false,
        map: map.clone(),
        latency: None,
    };
    let observation = buoycast::observation::Observation {
        station_id: StationId::parse("46026").expect("id"),
        observed_at: chrono::Utc::now(),
        measurements: buoycast::observation::Measurements::default()
            .with(Field::WaveHeightM, 1.0)
            .with(Field::WindSpeedMps, 5.0),
    };
    let addresses: Vec<String> =
        encoder.messages(&observation, chrono::Utc::now()).into_iter().map(|message| message.addr).collect();
    assert!(addresses.iter().all(|address| !address.contains("/waveHeightM")), "{addresses:?}");
    assert!(addresses.contains(&"/buoy/46026/windSpeedMps".to_owned()), "{addresses:?}");
    assert!(Map::from_toml("[fields.windSpeedMps]\ncc = 20\n", "<map>").is_err(), "cc 20 is taken while on");
}

#[test]
fn a_missing_map_file_is_an_error_naming_it() {
    let error = Map::load(std::path::Path::new("/nonexistent/map.toml")).expect_err("missing");
    assert!(error.to_string().contains("/nonexistent/map.toml"), "{error}");
}
