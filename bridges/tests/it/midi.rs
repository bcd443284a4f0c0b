//! docs/REFERENCE.md, MIDI map: CC values per station channel, 14-bit pairs,
//! skip-unchanged, nulls never sent, glide ramps (virtual time), the learn
//! sweep, and the .mid file read back with midly.

use std::time::Duration;

use buoycast::observation::{Field, Measurements, Observation, ObservationEvent, StationId};
use buoycast_bridges::mapping::Map;
use buoycast_bridges::sink::midi::{self, learn_norm, MidiEngine, MidiOutputs, TimedMessage, GLIDE_STEP};
use buoycast_bridges::sink::midi_file::{ticks, MidiFileWriter};
use buoycast_bridges::source::Item;
use chrono::{TimeZone, Utc};
use midly::{Format, MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};

fn observation(station: &str, measurements: Measurements) -> Observation {
    Observation {
        station_id: StationId::parse(station).expect("id"),
        observed_at: Utc.with_ymd_and_hms(2026, 11, 28, 6, 40, 0).single().expect("time"),
        measurements,
    }
}

fn observe(engine: &mut MidiEngine, observation: &Observation, at_ms: u64) -> Vec<[u8; 3]> {
    let mut out = Vec::new();
    engine.observe(observation, Duration::from_millis(at_ms), &mut out);
    out.into_iter().map(|m| m.bytes).collect()
}

#[test]
fn seven_bit_cc_per_station_channel_nulls_send_nothing() {
    let mut engine = MidiEngine::new(Map::builtin(), false, None);
    let first = observation("46026", Measurements::default().with(Field::WaveHeightM, 5.0));
    assert_eq!(observe(&mut engine, &first, 0), vec![[0xB0, 20, 64]]);
    // Second station: channel 2; wind 30 m/s is the top of 0..30.
    let second = observation("46042", Measurements::default().with(Field::WindSpeedMps, 30.0));
    assert_eq!(observe(&mut engine, &second, 10), vec![[0xB1, 24, 127]]);
    // Same value again: skipped. All null: nothing at all, never 0.
    assert_eq!(observe(&mut engine, &first, 20), Vec::<[u8; 3]>::new());
    assert_eq!(
        observe(&mut engine, &observation("46026", Measurements::default()), 30),
        Vec::<[u8; 3]>::new()
    );
    // A real 0 is sent.
    let zero = observation("46026", Measurements::default().with(Field::WaveHeightM, 0.0));
    assert_eq!(observe(&mut engine, &zero, 40), vec![[0xB0, 20, 0]]);
}

/// The original web-MIDI map: wave height on CC 1, wind on CC 2, nothing else.
#[test]
fn the_original_web_midi_map_sends_only_its_two_controls() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/maps/original-web-midi.toml");
    let mut engine = MidiEngine::new(Map::load(&path).expect("loads"), false, None);
    let mut full = Measurements::default();
    for field in Field::ALL {
        full.set(field, Some(5.0));
    }
    let messages = observe(&mut engine, &observation("46026", full), 0);
    // 5 m of 0..10 → 64; 5 m/s of 0..30 → 21.
    assert_eq!(messages, vec![[0xB0, 2, 21], [0xB0, 1, 64]]);
}

#[test]
fn channel_ten_is_skipped() {
    let mut engine = MidiEngine::new(Map::builtin(), false, None);
    let mut statuses = Vec::new();
    for i in 0..10 {
        let obs = observation(&format!("s{i}"), Measurements::default().with(Field::WaveHeightM, 1.0));
        statuses.push(observe(&mut engine, &obs, 0)[0][0]);
    }
    assert_eq!(statuses, vec![0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xBA]);
}

#[test]
fn fourteen_bit_pairs_msb_then_lsb_on_cc_plus_32() {
    let mut engine = MidiEngine::new(Map::builtin(), true, None);
    // 0.1 m over 0..10: v = round(0.01 * 16383) = 164 = 1 << 7 | 36.
    let obs =
        observation("46026", Measurements::default().with(Field::WaveHeightM, 0.1).with(Field::TideFt, 10.0));
    assert_eq!(observe(&mut engine, &obs, 0), vec![[0xB0, 20, 1], [0xB0, 52, 36], [0xB0, 86, 127]]);
}

#[test]
fn glide_ramps_at_most_fifty_steps_a_second_to_the_new_value() {
    let mut engine = MidiEngine::new(Map::builtin(), false, Some(Duration::from_millis(1000)));
    let low = observation("46026", Measurements::default().with(Field::WaveHeightM, 0.0));
    let high = observation("46026", Measurements::default().with(Field::WaveHeightM, 10.0));
    assert_eq!(observe(&mut engine, &low, 0), vec![[0xB0, 20, 0]]);
    assert!(observe(&mut engine, &high, 10_000).is_empty(), "a glide starts, it does not jump");
    let mut steps: Vec<TimedMessage> = Vec::new();
    engine.advance(Duration::from_millis(10_500), &mut steps);
    assert_eq!(steps.len(), 25);
    assert_eq!(steps.last().map(|m| m.bytes), Some([0xB0, 20, 64]));
    engine.finish(&mut steps);
    assert_eq!(steps.len(), 50);
    assert_eq!(steps.last().map(|m| (m.at, m.bytes)), Some((Duration::from_millis(11_000), [0xB0, 20, 127])));
    for pair in steps.windows(2) {
        assert!(pair[1].at - pair[0].at >= GLIDE_STEP);
        assert!(pair[1].bytes[2] > pair[0].bytes[2], "rising, unchanged values skipped");
    }
    assert!(!engine.gliding());
}

#[test]
fn learn_sweeps_a_triangle() {
    assert_eq!(learn_norm(Duration::ZERO), 0.0);
    assert_eq!(learn_norm(Duration::from_secs(1)), 0.5);
    assert_eq!(learn_norm(Duration::from_secs(2)), 1.0);
    assert_eq!(learn_norm(Duration::from_secs(3)), 0.5);
    assert_eq!(learn_norm(Duration::from_secs(4)), 0.0);
}

/// (absolute tick, channel, controller, value) of every CC in a file; checks the header and tempo.
pub fn read_mid(bytes: &[u8]) -> Vec<(u64, u8, u8, u8)> {
    let smf = Smf::parse(bytes).expect("a valid SMF");
    assert_eq!(smf.header.format, Format::SingleTrack);
    assert_eq!(smf.header.timing, Timing::Metrical(480.into()));
    assert_eq!(smf.tracks.len(), 1);
    let track = &smf.tracks[0];
    assert_eq!(track[0].kind, TrackEventKind::Meta(MetaMessage::Tempo(500_000.into())));
    assert_eq!(track.last().map(|e| e.kind), Some(TrackEventKind::Meta(MetaMessage::EndOfTrack)));
    let mut tick = 0u64;
    let mut out = Vec::new();
    for event in track {
        tick += u64::from(event.delta.as_int());
        if let TrackEventKind::Midi { channel, message: MidiMessage::Controller { controller, value } } =
            event.kind
        {
            out.push((tick, channel.as_int(), controller.as_int(), value.as_int()));
        }
    }
    out
}

#[test]
fn midi_file_is_format0_480tpq_tempo120_with_ccs_at_their_ticks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("waves.mid");
    let mut writer = MidiFileWriter::new(&path);
    writer.push(Duration::ZERO, [0xB0, 20, 10]);
    writer.push(Duration::from_secs(1), [0xB1, 24, 127]);
    writer.push(Duration::from_millis(2500), [0xB0, 20, 0]);
    writer.write().expect("written");
    let events = read_mid(&std::fs::read(&path).expect("read"));
    assert_eq!(events, vec![(0, 0, 20, 10), (960, 1, 24, 127), (2400, 0, 20, 0)]);
    assert_eq!(ticks(Duration::from_millis(500)), 480, "a quarter note at 120 bpm");
}

#[tokio::test(start_paused = true)]
async fn glide_steps_reach_the_midi_file_in_virtual_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("glide.mid");
    let engine = MidiEngine::new(Map::builtin(), false, Some(Duration::from_millis(2000)));
    let outputs = MidiOutputs { ports: Vec::new(), file: Some(MidiFileWriter::new(&path)) };
    let (items_tx, items_rx) = tokio::sync::mpsc::channel(16);
    let start = tokio::time::Instant::now();
    let task = tokio::spawn(midi::run(engine, outputs, items_rx, start));
    let item = |wave: f64, at: Duration| {
        Item::new(
            ObservationEvent::new(
                None,
                observation("46026", Measurements::default().with(Field::WaveHeightM, wave)),
            ),
            at,
            Utc::now(),
        )
    };
    items_tx.send(item(0.0, start.elapsed())).await.expect("send");
    tokio::time::sleep(Duration::from_secs(1)).await;
    items_tx.send(item(10.0, start.elapsed())).await.expect("send");
    // Let the ramp run 1 s of its 2 s in (paused, auto-advancing) time, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(items_tx);
    task.await.expect("task").expect("file written");
    let events = read_mid(&std::fs::read(&path).expect("read"));
    assert_eq!(events.first(), Some(&(0, 0, 20, 0)));
    assert_eq!(events.last(), Some(&(ticks(Duration::from_secs(3)), 0, 20, 127)), "finished at 1 s + 2 s");
    assert!(events.len() >= 90, "about 100 steps of 20 ms with unchanged ones skipped: {}", events.len());
    assert!(events.iter().all(|e| e.2 == 20));
    for pair in events.windows(2) {
        assert!(pair[1].0 > pair[0].0, "one step per tick time at most");
        assert!(pair[1].0 - pair[0].0 >= ticks(GLIDE_STEP), "at most 50 steps a second");
    }
    let mid_ramp = events.iter().find(|e| e.0 >= ticks(Duration::from_secs(2))).expect("a step after 2 s");
    assert!((60..=68).contains(&mid_ramp.3), "halfway through the ramp: {mid_ramp:?}");
}
