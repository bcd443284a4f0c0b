//! docs/REFERENCE.md, OSC address space: every OSC format encoded, decoded
//! back with rosc, and checked address by address, type by type, float32 by
//! float32.

use buoycast::observation::{Field, Measurements, Observation, StationId};
use buoycast_bridges::cli::OscFormat;
use buoycast_bridges::mapping::Map;
use buoycast_bridges::osc::{NullPolicy, OscEncoder};
use chrono::{TimeZone, Utc};
use rosc::{OscPacket, OscTime, OscType};

fn observation(measurements: Measurements) -> Observation {
    Observation {
        station_id: StationId::parse("46026").expect("id"),
        observed_at: Utc.with_ymd_and_hms(2026, 11, 28, 6, 40, 0).single().expect("time"),
        measurements,
    }
}

fn encoder(format: OscFormat, null_policy: NullPolicy, bundle: bool) -> OscEncoder {
    OscEncoder { format, null_policy, bundle, map: Map::builtin(), latency: None }
}

/// Encodes to bytes and decodes every datagram back.
fn round_trip(encoder: &OscEncoder, observation: &Observation, age_s: i64) -> Vec<OscPacket> {
    let now = observation.observed_at + chrono::Duration::seconds(age_s);
    encoder
        .encode(observation, now)
        .expect("encodes")
        .iter()
        .map(|bytes| {
            let (rest, packet) = rosc::decoder::decode_udp(bytes).expect("decodes");
            assert!(rest.is_empty());
            packet
        })
        .collect()
}

fn messages(packets: &[OscPacket]) -> Vec<(String, Vec<OscType>)> {
    packets
        .iter()
        .map(|packet| match packet {
            OscPacket::Message(message) => (message.addr.clone(), message.args.clone()),
            OscPacket::Bundle(_) => panic!("unexpected bundle"),
        })
        .collect()
}

#[test]
fn observation_message_carries_the_seven_original_arguments() {
    let full = Measurements::default()
        .with(Field::WaveHeightM, 1.2)
        .with(Field::WindSpeedMps, 5.1)
        .with(Field::WindDirDeg, 270.0)
        .with(Field::WaterTempC, 14.2)
        .with(Field::PressureHpa, 1015.3)
        .with(Field::TideFt, 0.0);
    let packets =
        round_trip(&encoder(OscFormat::Observation, NullPolicy::Skip, false), &observation(full), 0);
    assert_eq!(
        messages(&packets),
        vec![(
            "/observation".to_owned(),
            vec![
                OscType::String("46026".into()),
                OscType::String("2026-11-28T06:40:00Z".into()),
                OscType::Float(1.2),
                OscType::Float(5.1),
                OscType::Int(270),
                OscType::Float(14.2),
                OscType::Float(1015.3),
            ]
        )]
    );
}

#[test]
fn observation_message_uses_the_sentinels_for_nulls_whatever_the_policy() {
    for policy in [NullPolicy::Skip, NullPolicy::Nil, NullPolicy::Nan, NullPolicy::Sentinel(-5.0)] {
        let packets = round_trip(
            &encoder(OscFormat::Observation, policy, false),
            &observation(Measurements::default()),
            0,
        );
        assert_eq!(
            messages(&packets)[0].1[2..],
            [
                OscType::Float(-1.0),
                OscType::Float(-1.0),
                OscType::Int(-1),
                OscType::Float(-999.0),
                OscType::Float(-1.0)
            ]
        );
    }
}

#[test]
fn fields_format_sends_value_norm_time_and_age_and_skips_nulls() {
    let some = Measurements::default().with(Field::WaveHeightM, 2.5).with(Field::WindDirDeg, 270.0);
    let packets = round_trip(&encoder(OscFormat::Fields, NullPolicy::Skip, false), &observation(some), 90);
    assert_eq!(
        messages(&packets),
        vec![
            ("/buoy/46026/windDirDeg".to_owned(), vec![OscType::Float(270.0)]),
            ("/buoy/46026/windDirDeg/norm".to_owned(), vec![OscType::Float(0.75)]),
            ("/buoy/46026/waveHeightM".to_owned(), vec![OscType::Float(2.5)]),
            ("/buoy/46026/waveHeightM/norm".to_owned(), vec![OscType::Float(0.25)]),
            (
                "/buoy/46026/time".to_owned(),
                vec![
                    OscType::Int(2026),
                    OscType::Int(11),
                    OscType::Int(28),
                    OscType::Int(6),
                    OscType::Int(40)
                ]
            ),
            ("/buoy/46026/age".to_owned(), vec![OscType::Float(90.0)]),
        ]
    );
}

#[test]
fn both_format_sends_observation_first_then_fields() {
    let some = Measurements::default().with(Field::TideFt, -1.0);
    let packets = round_trip(&encoder(OscFormat::Both, NullPolicy::Skip, false), &observation(some), 0);
    let addrs: Vec<String> = messages(&packets).into_iter().map(|(addr, _)| addr).collect();
    assert_eq!(
        addrs,
        [
            "/observation",
            "/buoy/46026/tideFt",
            "/buoy/46026/tideFt/norm",
            "/buoy/46026/time",
            "/buoy/46026/age"
        ]
    );
    // tideFt -1 ft over -5..10 ft: x = 4/15.
    assert_eq!(messages(&packets)[2].1, vec![OscType::Float(4.0 / 15.0)]);
}

fn null_messages(policy: NullPolicy) -> Vec<(String, Vec<OscType>)> {
    let only_wave = Measurements::default().with(Field::WaveHeightM, 10.0);
    let packets = round_trip(&encoder(OscFormat::Fields, policy, false), &observation(only_wave), 0);
    let all = messages(&packets);
    assert_eq!(all.len(), 14 * 2 + 2, "every field and its norm, then time and age");
    all.into_iter().filter(|(addr, _)| addr.starts_with("/buoy/46026/gustMps")).collect()
}

#[test]
fn null_policy_nil_sends_the_osc_nil_type() {
    assert_eq!(
        null_messages(NullPolicy::Nil),
        vec![
            ("/buoy/46026/gustMps".into(), vec![OscType::Nil]),
            ("/buoy/46026/gustMps/norm".into(), vec![OscType::Nil])
        ]
    );
}

#[test]
fn null_policy_nan_sends_nan_never_zero() {
    for (_, args) in null_messages(NullPolicy::Nan) {
        match args.as_slice() {
            [OscType::Float(v)] => assert!(v.is_nan()),
            other => panic!("expected one NaN float, got {other:?}"),
        }
    }
}

#[test]
fn null_policy_sentinel_sends_x_on_value_and_norm() {
    assert_eq!(
        null_messages(NullPolicy::Sentinel(-1.0)),
        vec![
            ("/buoy/46026/gustMps".into(), vec![OscType::Float(-1.0)]),
            ("/buoy/46026/gustMps/norm".into(), vec![OscType::Float(-1.0)])
        ]
    );
}

#[test]
fn bundle_wraps_one_observation_with_the_immediate_timetag() {
    let some = Measurements::default().with(Field::WaveHeightM, 1.0);
    let plain = round_trip(&encoder(OscFormat::Both, NullPolicy::Skip, false), &observation(some), 0);
    let bundled = round_trip(&encoder(OscFormat::Both, NullPolicy::Skip, true), &observation(some), 0);
    assert_eq!(bundled.len(), 1);
    match &bundled[0] {
        OscPacket::Bundle(bundle) => {
            assert_eq!(bundle.timetag, OscTime { seconds: 0, fractional: 1 });
            assert_eq!(bundle.content, plain);
        }
        OscPacket::Message(message) => panic!("expected a bundle, got {message:?}"),
    }
}

#[test]
fn map_prefix_and_range_change_the_fields_messages() {
    let map = Map::from_toml(
        "[osc]\nprefix = \"/sea/b\"\n[fields.waveHeightM]\nmax = 4\ncurve = \"exp\"\ninvert = true\n",
        "t",
    )
    .expect("valid map");
    let encoder = OscEncoder {
        format: OscFormat::Fields,
        null_policy: NullPolicy::Skip,
        bundle: false,
        map,
        latency: None,
    };
    let packets =
        round_trip(&encoder, &observation(Measurements::default().with(Field::WaveHeightM, 2.0)), 0);
    let all = messages(&packets);
    assert_eq!(all[0], ("/sea/b/46026/waveHeightM".into(), vec![OscType::Float(2.0)]));
    // x = 0.5; exp: (10^0.5 - 1) / 9; inverted.
    let expected = 1.0 - (10f64.sqrt() - 1.0) / 9.0;
    assert_eq!(all[1], ("/sea/b/46026/waveHeightM/norm".into(), vec![OscType::Float(expected as f32)]));
}

/// `--latency MS`: one bundle per observation, time-tagged MS after its due
/// time, so SuperCollider and Max schedule it without network jitter.
#[test]
fn latency_time_tags_one_bundle_ahead_of_the_due_time() {
    let encoder = OscEncoder {
        latency: Some(std::time::Duration::from_millis(250)),
        ..encoder(OscFormat::Both, NullPolicy::Skip, false)
    };
    let full = observation(Measurements::default().with(Field::WaveHeightM, 1.2));
    let due = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    let datagrams = encoder.encode_at(&full, full.observed_at, due).expect("encodes");
    assert_eq!(datagrams.len(), 1, "one bundle");
    let (_, packet) = rosc::decoder::decode_udp(&datagrams[0]).expect("decodes");
    let OscPacket::Bundle(bundle) = packet else { panic!("a bundle") };
    let expected = OscTime::try_from(due + std::time::Duration::from_millis(250)).expect("timetag");
    assert_eq!(bundle.timetag, expected);
    assert!(bundle.content.len() > 2, "/observation and the fields in one bundle");
}
