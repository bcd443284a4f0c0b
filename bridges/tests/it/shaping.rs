//! Shaping through the real pipeline to a real UDP OSC receiver
//! (docs/AUDIO_CLIENTS.md, Shaping): a smoothed field glides on the clock
//! instead of jumping, a quantized one only takes its levels, and clock
//! steps carry only the shaped fields.

use std::time::Duration;

use buoycast::observation::{Field, Measurements, Observation, ObservationEvent, StationId};
use buoycast_bridges::cli::OscFormat;
use buoycast_bridges::mapping::Map;
use buoycast_bridges::osc::{NullPolicy, OscEncoder};
use buoycast_bridges::pipeline::Pipeline;
use buoycast_bridges::shape::Shaper;
use buoycast_bridges::sink::osc::{run_udp, Frame};
use buoycast_bridges::sink::{SinkQueue, SINK_QUEUE};
use buoycast_bridges::source::Item;
use chrono::{TimeZone, Utc};
use rosc::{OscPacket, OscType};

use crate::harness::OscReceiver;

fn report(wave: f64, wind: f64) -> Item {
    let observation = Observation {
        station_id: StationId::parse("46026").expect("id"),
        observed_at: Utc.with_ymd_and_hms(2026, 11, 28, 6, 40, 0).single().expect("time"),
        measurements: Measurements::default().with(Field::WaveHeightM, wave).with(Field::WindSpeedMps, wind),
    };
    Item::new(ObservationEvent::new(None, observation), Duration::ZERO, Utc::now())
}

/// Every (address, first float argument) received until `quiet` passes with nothing.
async fn received(receiver: &OscReceiver, quiet: Duration) -> Vec<(String, Option<f32>)> {
    let mut out = Vec::new();
    while let Some(packet) = receiver.next(quiet).await {
        let mut stack = vec![packet];
        while let Some(packet) = stack.pop() {
            match packet {
                OscPacket::Message(message) => {
                    let value = match message.args.first() {
                        Some(OscType::Float(v)) => Some(*v),
                        _ => None,
                    };
                    out.push((message.addr, value));
                }
                OscPacket::Bundle(bundle) => stack.extend(bundle.content.into_iter().rev()),
            }
        }
    }
    out
}

async fn run_pipeline(map_text: &str, items: Vec<(Item, Duration)>) -> Vec<(String, Option<f32>)> {
    let map = Map::from_toml(map_text, "<map>").expect("map");
    let receiver = OscReceiver::bind().await;
    let (queue, rx, healthy) = SinkQueue::<Frame>::new("udp".into(), SINK_QUEUE);
    let sink = tokio::spawn(run_udp(receiver.addr().to_string(), rx, healthy));
    let pipeline = Pipeline {
        encoder: Some(OscEncoder {
            format: OscFormat::Both,
            null_policy: NullPolicy::Skip,
            bundle: false,
            map: map.clone(),
            latency: None,
        }),
        osc: vec![queue],
        midi: None,
        namespace: None,
        lossless: false,
        control: None,
        start: tokio::time::Instant::now(),
        start_wall: std::time::SystemTime::now(),
        shaper: Some(Shaper::new(&map)),
    };
    let (items_tx, items_rx) = tokio::sync::mpsc::channel(64);
    let run = tokio::spawn(pipeline.run(items_rx));
    let collect = tokio::spawn(async move { received(&receiver, Duration::from_millis(600)).await });
    for (item, then_wait) in items {
        items_tx.send(item).await.expect("send");
        tokio::time::sleep(then_wait).await;
    }
    let packets = collect.await.expect("collect");
    drop(items_tx);
    run.await.expect("pipeline");
    let _ = tokio::time::timeout(Duration::from_secs(2), sink).await;
    packets
}

fn values(packets: &[(String, Option<f32>)], address: &str) -> Vec<f32> {
    packets.iter().filter(|(a, _)| a == address).filter_map(|(_, v)| *v).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoothed_field_glides_on_the_clock_and_the_others_do_not() {
    let packets = run_pipeline(
        "[fields.waveHeightM]\nsmooth = 0.3\n",
        vec![(report(1.0, 5.0), Duration::from_millis(100)), (report(5.0, 9.0), Duration::from_millis(1500))],
    )
    .await;
    let waves = values(&packets, "/buoy/46026/waveHeightM");
    assert_eq!(waves[0], 1.0, "the first value at once");
    assert_eq!(waves[1], 1.0, "the second report does not jump: {waves:?}");
    assert!(waves.len() >= 20, "a continuous glide, 50 steps a second: {} values", waves.len());
    for pair in waves[1..].windows(2) {
        assert!(pair[1] > pair[0], "rising towards 5: {waves:?}");
    }
    let last = *waves.last().expect("values");
    assert!(last <= 5.0 && last > 4.99, "settles on the new value: {last}");
    // The unshaped field jumps at once, once per report.
    assert_eq!(values(&packets, "/buoy/46026/windSpeedMps"), [5.0, 9.0]);
    // Clock steps carry the shaped field only: /observation and /age once per report.
    assert_eq!(packets.iter().filter(|(a, _)| a == "/observation").count(), 2);
    assert_eq!(packets.iter().filter(|(a, _)| a == "/buoy/46026/age").count(), 2);
    // /norm follows the value (0..10 m).
    let norms = values(&packets, "/buoy/46026/waveHeightM/norm");
    assert_eq!(norms.len(), waves.len());
    assert!((norms.last().expect("norm") - last / 10.0).abs() < 1e-6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantize_and_deadband_through_the_pipeline() {
    let packets = run_pipeline(
        "[fields.waveHeightM]\nquantize = 5\ndeadband = 1.0\n",
        vec![
            (report(3.4, 5.0), Duration::from_millis(50)),
            (report(3.6, 5.0), Duration::from_millis(50)),
            (report(4.0, 5.0), Duration::from_millis(50)),
        ],
    )
    .await;
    // 3.4 → 2.5; 3.6 → 5.0 (moved 2.5 > 1: sent); 4.0 → 5.0 (no move: held).
    assert_eq!(values(&packets, "/buoy/46026/waveHeightM"), [2.5, 5.0]);
}
