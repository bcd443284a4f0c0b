//! docs/AUDIO_CLIENTS.md, Notes and pitch bend; docs/REFERENCE.md, Mapping
//! file: `[notes.F]` plays each new report of F as a note in a scale on its
//! station's channel, every note-on gets its note-off (at its length, at the
//! end, on Ctrl-C), `pitchbend = true` drives 14-bit pitch bend, and the .mid
//! file records all of it (read back with midly).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use buoycast::observation::{Field, Measurements, Observation, ObservationEvent, StationId};
use buoycast::sources::ndbc::parse;
use buoycast_bridges::app;
use buoycast_bridges::mapping::Map;
use buoycast_bridges::sink::midi::{self, MidiEngine, MidiOutputs, PortSender};
use buoycast_bridges::sink::midi_file::{ticks, MidiFileWriter};
use buoycast_bridges::source::Item;
use chrono::{TimeZone, Utc};
use midly::{MidiMessage, Smf, TrackEventKind};
use tokio_util::sync::CancellationToken;

use crate::harness::{args, fixture};

/// A channel message read back from a .mid file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Msg {
    On { key: u8, vel: u8 },
    Off { key: u8 },
    Cc { controller: u8, value: u8 },
    Bend(u16),
}

/// (absolute tick, channel 0..=15, message) of every channel message in the file.
fn read_events(path: &std::path::Path) -> Vec<(u64, u8, Msg)> {
    let bytes = std::fs::read(path).expect("the .mid file is written");
    let smf = Smf::parse(&bytes).expect("a valid SMF");
    assert_eq!(smf.tracks.len(), 1);
    let mut tick = 0u64;
    let mut out = Vec::new();
    for event in &smf.tracks[0] {
        tick += u64::from(event.delta.as_int());
        let TrackEventKind::Midi { channel, message } = event.kind else { continue };
        let msg = match message {
            MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                Msg::On { key: key.as_int(), vel: vel.as_int() }
            }
            MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                Msg::Off { key: key.as_int() }
            }
            MidiMessage::Controller { controller, value } => {
                Msg::Cc { controller: controller.as_int(), value: value.as_int() }
            }
            MidiMessage::PitchBend { bend } => Msg::Bend(bend.0.as_int()),
            other => panic!("unexpected message {other:?}"),
        };
        out.push((tick, channel.as_int(), msg));
    }
    out
}

/// Every note-on has its note-off after it on the same channel and key, no
/// key is struck twice without a note-off between, none is left sounding.
/// Returns (on tick, off tick, channel, key, velocity) per note.
fn pairs(events: &[(u64, u8, Msg)]) -> Vec<(u64, u64, u8, u8, u8)> {
    let mut sounding: BTreeMap<(u8, u8), (u64, u8)> = BTreeMap::new();
    let mut notes = Vec::new();
    for &(tick, channel, msg) in events {
        match msg {
            Msg::On { key, vel } => {
                let before = sounding.insert((channel, key), (tick, vel));
                assert_eq!(
                    before, None,
                    "key {key} on channel {channel} struck again at {tick} without a note-off"
                );
            }
            Msg::Off { key } => {
                let (on, vel) = sounding
                    .remove(&(channel, key))
                    .unwrap_or_else(|| panic!("note-off of key {key} at {tick} without its note-on"));
                assert!(tick >= on);
                notes.push((on, tick, channel, key, vel));
            }
            _ => {}
        }
    }
    assert!(sounding.is_empty(), "notes left sounding: {sounding:?}");
    notes.sort_unstable();
    notes
}

fn write_map(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("notes.toml");
    std::fs::write(&path, text).expect("write map");
    path
}

/// D minor pentatonic, D3 to D5 (docs: the root in the lowest octave to the root in the highest).
const D_MINOR_PENTATONIC_3_5: [u8; 11] = [50, 53, 55, 57, 60, 62, 65, 67, 69, 72, 74];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_plays_scale_notes_with_their_note_offs_and_pitch_bend_into_the_mid_file() {
    let path = fixture("realtime2/41002.txt");
    let dir = tempfile::tempdir().expect("tempdir");
    let mid = dir.path().join("notes.mid");
    let map = write_map(
        &dir,
        "[stations.\"41002\"]\nchannel = 3\n\n[fields.pressureHpa]\npitchbend = true\n\n\
         [notes.waveHeightM]\nscale = \"minor_pentatonic\"\nroot = \"D\"\noctaves = [3, 5]\n\
         velocity = \"windSpeedMps\"\nlength_ms = 1\n",
    );
    // ~45 days of 10-minute rows in about two seconds: wave reports ~2 ms apart.
    let flags = [
        "--replay",
        path.to_str().expect("utf-8"),
        "--speed",
        "2000000",
        "--midi-file",
        mid.to_str().expect("utf-8"),
        "--map",
        map.to_str().expect("utf-8"),
    ];
    let stats = tokio::time::timeout(
        Duration::from_secs(60),
        app::run_with_stats(args(&flags), CancellationToken::new()),
    )
    .await
    .expect("a replay ends by itself")
    .expect("runs");

    // What the fixture says should play, worked out here from the documented formulas.
    let station = parse::station_from_file_name("41002.txt");
    let mut rows = parse::parse(&std::fs::read(&path).expect("read"), station.as_ref())
        .expect("an NDBC file")
        .observations;
    rows.sort_by_key(|o| o.observed_at);
    assert_eq!(stats.n_items, rows.len() as u64);
    let mut newest = None;
    let mut velocity = 100u8;
    let mut expected_notes = Vec::new();
    let mut expected_bends: Vec<u16> = Vec::new();
    for row in &rows {
        if let Some(hpa) = row.measurements.get(Field::PressureHpa) {
            let bend = (((hpa - 950.0) / 100.0).clamp(0.0, 1.0) * 16383.0).round() as u16;
            if expected_bends.last() != Some(&bend) {
                expected_bends.push(bend);
            }
        }
        if newest.is_some_and(|t| t >= row.observed_at) {
            continue; // a repeated time is not a new report
        }
        newest = Some(row.observed_at);
        if let Some(wind) = row.measurements.get(Field::WindSpeedMps) {
            velocity = 1 + ((wind / 30.0).clamp(0.0, 1.0) * 126.0).round() as u8;
        }
        if let Some(wave) = row.measurements.get(Field::WaveHeightM) {
            let index = ((wave / 10.0).clamp(0.0, 1.0) * 10.0).round() as usize;
            expected_notes.push((D_MINOR_PENTATONIC_3_5[index], velocity));
        }
    }
    assert!(expected_notes.len() > 500, "the fixture has hourly wave heights: {}", expected_notes.len());

    let events = read_events(&mid);
    assert!(events.iter().all(|e| e.1 == 2), "everything on the station's channel 3");
    let ons: Vec<(u8, u8)> = events
        .iter()
        .filter_map(|e| match e.2 {
            Msg::On { key, vel } => Some((key, vel)),
            _ => None,
        })
        .collect();
    assert_eq!(ons, expected_notes, "one note per wave report: pitch in the scale, velocity from the wind");
    let notes = pairs(&events);
    assert_eq!(notes.len(), expected_notes.len());
    for (on, off, _, key, _) in &notes {
        assert!(D_MINOR_PENTATONIC_3_5.contains(key));
        assert!(
            off - on <= ticks(Duration::from_millis(1)) + 1,
            "a note lasts its length_ms at most: {on}..{off}"
        );
    }
    let bends: Vec<u16> = events
        .iter()
        .filter_map(|e| match e.2 {
            Msg::Bend(v) => Some(v),
            _ => None,
        })
        .collect();
    let (last_bend, bends) = bends.split_last().expect("pitch bend messages");
    assert_eq!(bends, expected_bends.as_slice(), "round(norm × 16383) per pressure change");
    assert_eq!(*last_bend, 8192, "the bend goes back to the centre at the end");
    // The wave height's CC is still sent, and All Notes Off closes the file.
    assert!(events.iter().any(|e| matches!(e.2, Msg::Cc { controller: 20, .. })));
    let last_off = notes.iter().map(|n| n.1).max().expect("notes");
    let all_off: Vec<u64> =
        events.iter().filter(|e| e.2 == Msg::Cc { controller: 123, value: 0 }).map(|e| e.0).collect();
    assert_eq!(all_off.len(), 1);
    assert!(all_off[0] >= last_off);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_turns_every_sounding_note_off() {
    let path = fixture("realtime2/41002.txt");
    let dir = tempfile::tempdir().expect("tempdir");
    let mid = dir.path().join("stopped.mid");
    // A minute-long note per wave report, in whole tones: many sound at once when stopped.
    let map = write_map(
        &dir,
        "[notes.waveHeightM]\nscale = \"whole_tone\"\nroot = \"C\"\noctaves = [4, 6]\nvelocity = 80\n\
         length_ms = 60000\n",
    );
    let flags = [
        "--replay",
        path.to_str().expect("utf-8"),
        "--speed",
        "36000",
        "--midi-file",
        mid.to_str().expect("utf-8"),
        "--map",
        map.to_str().expect("utf-8"),
    ];
    let shutdown = CancellationToken::new();
    let bridge = tokio::spawn(app::run(args(&flags), shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), bridge)
        .await
        .expect("stops on Ctrl-C")
        .expect("task")
        .expect("runs");
    let events = read_events(&mid);
    let notes = pairs(&events);
    assert!(notes.len() >= 3, "a few notes played before the stop: {}", notes.len());
    let whole_tones: Vec<u8> = (0..=12).map(|i| 60 + 2 * i).collect();
    assert!(notes.iter().all(|n| whole_tones.contains(&n.3) && n.4 == 80));
    // Each note-off is at its note's full length (or earlier, when the key was struck again).
    let length = ticks(Duration::from_secs(60));
    assert!(notes.iter().all(|n| n.1 - n.0 <= length));
    assert!(notes.iter().any(|n| n.1 - n.0 == length), "notes cut by the stop keep their length in the file");
    let last_off = notes.iter().map(|n| n.1).max().expect("notes");
    assert_eq!(events.last().map(|e| (e.0, e.2)), Some((last_off, Msg::Cc { controller: 123, value: 0 })));
}

#[test]
fn a_bad_notes_table_is_refused_at_start_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let map = write_map(&dir, "[notes.waveHeightM]\nscale = \"minor_pentatonic\"\nroot = \"H\"\n");
    let flags = ["--midi-file", "/dev/null", "--map", map.to_str().expect("utf-8")];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let error = runtime.block_on(app::run(args(&flags), CancellationToken::new())).expect_err("refused");
    let text = format!("{error:#}");
    assert!(text.contains("notes.toml:3: notes.waveHeightM: root \"H\""), "{text}");
    for (body, line) in [
        ("[notes.waveHeightM]\nscale = \"hungarian\"\n", 2),
        ("[notes.waveHeightM]\noctaves = [3, 12]\n", 2),
        ("[notes.waveHeightM]\nlength_ms = 0\n", 2),
        ("[notes.waveHeightM]\n\nvelocity = \"windSpeed\"\n", 3),
    ] {
        let error = Map::from_toml(body, "notes.toml").expect_err(body);
        assert!(error.to_string().starts_with(&format!("notes.toml:{line}: notes.waveHeightM: ")), "{error}");
    }
}

fn report(minute: u32, measurements: Measurements) -> Observation {
    Observation {
        station_id: StationId::parse("46026").expect("id"),
        observed_at: Utc.with_ymd_and_hms(2026, 11, 28, 6, minute, 0).single().expect("time"),
        measurements,
    }
}

fn item(observation: Observation, at: Duration) -> Item {
    Item::new(ObservationEvent::new(None, observation), at, Utc::now())
}

/// Waits (real time) until the port thread has received `n` messages.
fn port_messages(received: &Arc<Mutex<Vec<[u8; 3]>>>, n: usize) -> Vec<[u8; 3]> {
    for _ in 0..500 {
        let got = received.lock().expect("lock").clone();
        if got.len() >= n {
            return got;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    received.lock().expect("lock").clone()
}

/// The run loop in virtual time, with a port thread that records what it is
/// sent: a note-off leaves at its time (not only at the end); a shaping clock
/// step moves the pitch bend but plays no note; the same report again (a
/// resend) plays nothing; the end releases the rest.
#[tokio::test(start_paused = true)]
async fn note_offs_leave_at_their_time_and_only_new_reports_play() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mid = dir.path().join("live.mid");
    let map = Map::from_toml(
        "[fields.windSpeedMps]\npitchbend = true\n[notes.waveHeightM]\nscale = \"major\"\nroot = \"C\"\n\
         octaves = [4, 5]\nlength_ms = 500\n",
        "<map>",
    )
    .expect("valid");
    let received = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::sync_channel::<[u8; 3]>(64);
    let sink = received.clone();
    let thread = std::thread::spawn(move || {
        while let Ok(message) = rx.recv() {
            sink.lock().expect("lock").push(message);
        }
    });
    let port = PortSender { name: "recorder".to_owned(), tx, thread };
    let outputs = MidiOutputs { ports: vec![port], file: Some(MidiFileWriter::new(&mid)) };
    let engine = MidiEngine::new(map, false, None);
    let (items_tx, items_rx) = tokio::sync::mpsc::channel(16);
    let start = tokio::time::Instant::now();
    let task = tokio::spawn(midi::run(engine, outputs, items_rx, start));

    // 10 m → the top of C4..C5 (C5 = 72), default velocity 100; wind 15 of 0..30 → bend 8192.
    let first =
        report(0, Measurements::default().with(Field::WaveHeightM, 10.0).with(Field::WindSpeedMps, 15.0));
    items_tx.send(item(first.clone(), start.elapsed())).await.expect("send");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        port_messages(&received, 4),
        vec![[0xB0, 24, 64], [0xE0, 0, 64], [0xB0, 20, 127], [0x90, 72, 100]]
    );
    // The resend of the same report at 200 ms: CCs unchanged, no note.
    tokio::time::sleep(Duration::from_millis(100)).await;
    items_tx.send(item(first, start.elapsed())).await.expect("send");
    // A clock step at 300 ms: the wind glides, the wave too, but no note plays.
    let mut step = item(
        report(0, Measurements::default().with(Field::WaveHeightM, 0.0).with(Field::WindSpeedMps, 30.0)),
        Duration::from_millis(300),
    );
    step.tick = true;
    tokio::time::sleep(Duration::from_millis(100)).await;
    items_tx.send(step).await.expect("send");
    // Past 500 ms the note-off has gone out, while the input is still open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = port_messages(&received, 8);
    assert_eq!(
        got[4..].to_vec(),
        vec![[0xB0, 24, 127], [0xE0, 127, 127], [0xB0, 20, 0], [0x80, 72, 64]],
        "{got:?}"
    );
    // A newer report plays again; then the end turns it off and centres the bend.
    let next = report(10, Measurements::default().with(Field::WaveHeightM, 5.0));
    items_tx.send(item(next, start.elapsed())).await.expect("send");
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(items_tx);
    task.await.expect("task").expect("file written");
    let events = read_events(&mid);
    let notes = pairs(&events);
    let ms = |ms: u64| ticks(Duration::from_millis(ms));
    // At 600 ms, 5 m of 0..10 over 8 degrees: index round(3.5) = 4 → G4 = 67, off at 1100 ms
    // (in the file at its own time, though the input closed at 650 ms).
    assert_eq!(notes, vec![(0, ms(500), 0, 72, 100), (ms(600), ms(1100), 0, 67, 100)]);
    let tail: Vec<(u64, Msg)> = events.iter().rev().take(2).rev().map(|e| (e.0, e.2)).collect();
    assert_eq!(tail, vec![(ms(1100), Msg::Cc { controller: 123, value: 0 }), (ms(1100), Msg::Bend(8192))]);
    // The port got the rest at once: the note-off, All Notes Off, the bend centred.
    let got = port_messages(&received, 13);
    assert_eq!(got[10..].to_vec(), vec![[0x80, 67, 64], [0xB0, 123, 0], [0xE0, 0, 64]], "{got:?}");
}

/// `examples/maps/notes.toml` loads and plays what its comments say.
#[test]
fn the_example_notes_map_loads_and_plays_its_scale() {
    let map = Map::load(&crate::harness::workspace_root().join("examples/maps/notes.toml")).expect("loads");
    assert!(map.pitchbend.contains(&Field::PressureHpa));
    let wave = &map.notes[&Field::WaveHeightM];
    assert_eq!(wave.degrees(), D_MINOR_PENTATONIC_3_5.to_vec());
    assert_eq!(map.notes[&Field::DominantPeriodS].degrees().first(), Some(&26), "D1");
    let mut engine = MidiEngine::new(map, false, None);
    let mut out = Vec::new();
    let obs = report(
        0,
        Measurements::default()
            .with(Field::WaveHeightM, 10.0)
            .with(Field::WindSpeedMps, 30.0)
            .with(Field::PressureHpa, 1010.0),
    );
    engine.observe(&obs, Duration::ZERO, &mut out);
    let bytes: Vec<[u8; 3]> = out.iter().map(|m| m.bytes).collect();
    assert_eq!(bytes, vec![[0xB0, 24, 127], [0xB0, 20, 127], [0xB0, 27, 64], [0xE0, 0, 64], [0x90, 74, 127]]);
    assert!(engine.sounding());
}
