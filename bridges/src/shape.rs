//! Shaping: what the mapping file's `smooth`, `quantize`, `deadband` and
//! `rate` keys do to a field's values before OSC and MIDI see them
//! (docs/AUDIO_CLIENTS.md, Shaping; docs/REFERENCE.md, Mapping file).
//!
//! Per (station, field), in this order:
//! 1. `smooth = TAU` (seconds): an exponential moving average run on a clock
//!    ([`TICK`], 50 times a second): y ← y + (x − y)·(1 − e^(−Δt/TAU)), x the
//!    newest report. The first report sets y = x at once; y snaps to x once
//!    it is within a 1/100,000 of the field's range. So a report glides
//!    instead of jumping, on OSC and MIDI alike.
//! 2. `quantize = N` (≥ 2 steps): v ← min + round(x·(N − 1))/(N − 1)·(max − min),
//!    x = (v − min)/(max − min) clamped to 0..1: N levels across the range.
//! 3. `deadband = D` (field units): a value is sent only when it differs from
//!    the last one sent by more than D (the first is always sent).
//! 4. `rate = R` (messages a second): at most R sends a second per station
//!    and field (so per destination); a value held back is sent when the
//!    next slot opens, so the last value always arrives.
//!
//! Pure and clocked from outside (`at`: media time), so it is tested against
//! its formulas without waiting.

use std::collections::BTreeMap;
use std::time::Duration;

use buoycast::observation::{Field, FieldSet, Observation, StationId};

use crate::mapping::{FieldMap, Map};

/// The shaping clock: 50 steps a second (as MIDI glide).
pub const TICK: Duration = Duration::from_millis(20);

/// How one field is shaped (all off by default).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Shaping {
    /// EMA time constant in seconds.
    pub smooth: Option<f64>,
    /// Number of levels across min..max (≥ 2).
    pub quantize: Option<u32>,
    /// Minimum change to send, in the field's unit.
    pub deadband: Option<f64>,
    /// Most sends a second.
    pub rate: Option<f64>,
}

impl Shaping {
    /// Whether any key is set.
    pub fn is_on(&self) -> bool {
        self.smooth.is_some() || self.quantize.is_some() || self.deadband.is_some() || self.rate.is_some()
    }
}

/// `quantize`: `value` snapped to one of `steps` levels across the field's range.
pub fn quantize(value: f64, steps: u32, range: &FieldMap) -> f64 {
    let span = range.max - range.min;
    if steps < 2 || span <= 0.0 || !value.is_finite() {
        return value;
    }
    let x = ((value - range.min) / span).clamp(0.0, 1.0);
    let levels = f64::from(steps - 1);
    range.min + (x * levels).round() / levels * span
}

/// One EMA step of `dt` towards `target` with time constant `tau` seconds.
pub fn ema_step(current: f64, target: f64, dt: Duration, tau: f64) -> f64 {
    if tau <= 0.0 {
        return target;
    }
    current + (target - current) * (1.0 - (-dt.as_secs_f64() / tau).exp())
}

/// One station's field being shaped.
#[derive(Debug, Clone)]
struct Track {
    /// The newest reported value.
    target: f64,
    /// The smoothed value (= target without `smooth`).
    current: f64,
    /// When `current` was last advanced.
    advanced_at: Duration,
    /// The last value sent, and when.
    sent: Option<(f64, Duration)>,
    /// A value held back by `rate`, to send when the next slot opens.
    pending: bool,
}

/// What a shaping step decided to send: the values, and which fields to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Shaped {
    /// The observation with shaped fields replaced by their shaped values.
    pub observation: Observation,
    /// The fields to send now (shaped fields that the deadband or the rate
    /// hold back are left out; unshaped fields that are present are in).
    pub send: FieldSet,
}

/// The shaping state of every station and field.
#[derive(Debug, Clone)]
pub struct Shaper {
    /// The ranges and each field's [`Shaping`].
    map: Map,
    /// (station, field) → its track.
    tracks: BTreeMap<(StationId, Field), Track>,
}

/// The value sent for a smoothed value `current`.
fn output(mapping: &FieldMap, current: f64) -> f64 {
    match mapping.shaping.quantize {
        Some(steps) => quantize(current, steps, mapping),
        None => current,
    }
}

/// Whether `value` may go out at `at` after what `track` sent; records it when it does.
fn admit(shaping: &Shaping, track: &mut Track, value: f64, at: Duration) -> bool {
    if let (Some(band), Some((last, _))) = (shaping.deadband, track.sent) {
        if (value - last).abs() <= band {
            track.pending = false;
            return false;
        }
    }
    if let (Some(rate), Some((_, when))) = (shaping.rate, track.sent) {
        if rate > 0.0 && at.saturating_sub(when).as_secs_f64() < 1.0 / rate {
            track.pending = true;
            return false;
        }
    }
    track.sent = Some((value, at));
    track.pending = false;
    true
}

impl Shaper {
    /// A shaper for the map's shaping keys.
    pub fn new(map: &Map) -> Shaper {
        Shaper { map: map.clone(), tracks: BTreeMap::new() }
    }

    /// Whether any field is shaped at all (else the pipeline skips shaping).
    pub fn is_on(&self) -> bool {
        Field::ALL.iter().any(|field| self.map.field(*field).shaping.is_on())
    }

    /// A report at media time `at`: shaped fields take their shaped values;
    /// `send` says which fields go out now.
    pub fn report(&mut self, observation: &Observation, at: Duration) -> Shaped {
        let mut shaped = observation.clone();
        let mut send = FieldSet::EMPTY;
        for field in Field::ALL {
            let Some(value) = observation.measurements.get(field) else { continue };
            let mapping = self.map.field(field);
            if !mapping.shaping.is_on() {
                send.insert(field);
                continue;
            }
            let track = self.tracks.entry((observation.station_id.clone(), field)).or_insert(Track {
                target: value,
                current: value,
                advanced_at: at,
                sent: None,
                pending: false,
            });
            if let Some(tau) = mapping.shaping.smooth {
                track.current =
                    ema_step(track.current, track.target, at.saturating_sub(track.advanced_at), tau);
            } else {
                track.current = value;
            }
            track.target = value;
            track.advanced_at = at;
            let out = output(mapping, track.current);
            shaped.measurements.set(field, Some(out));
            if admit(&mapping.shaping, track, out, at) {
                send.insert(field);
            }
        }
        Shaped { observation: shaped, send }
    }

    /// Whether a clock step could send anything (a glide under way or a
    /// value held back by the rate).
    pub fn busy(&self) -> bool {
        self.tracks.values().any(|track| track.pending || track.current != track.target)
    }

    /// One clock step at media time `at`: the glides move on, held values
    /// whose slot opened go out. One [`Shaped`] per station with something
    /// to send (only those fields in `send`, and only they are set).
    pub fn tick(&mut self, at: Duration) -> Vec<Shaped> {
        let mut by_station: BTreeMap<&StationId, Shaped> = BTreeMap::new();
        for ((station, field), track) in &mut self.tracks {
            let mapping = self.map.field(*field);
            let before = output(mapping, track.current);
            if let Some(tau) = mapping.shaping.smooth {
                if track.current != track.target {
                    track.current =
                        ema_step(track.current, track.target, at.saturating_sub(track.advanced_at), tau);
                    if (track.target - track.current).abs() <= (mapping.max - mapping.min).abs() * 1e-5 {
                        track.current = track.target;
                    }
                }
            }
            track.advanced_at = at;
            let out = output(mapping, track.current);
            let moved = out != before || track.pending;
            if moved && admit(&mapping.shaping, track, out, at) {
                let entry = by_station.entry(station).or_insert_with(|| Shaped {
                    observation: Observation {
                        station_id: station.clone(),
                        observed_at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
                        measurements: Default::default(),
                    },
                    send: FieldSet::EMPTY,
                });
                entry.observation.measurements.set(*field, Some(out));
                entry.send.insert(*field);
            }
        }
        by_station.into_values().collect()
    }

    /// The station's current state for a resend: shaped fields at their
    /// current shaped values, everything sent.
    pub fn current(&self, observation: &Observation) -> Observation {
        let mut shaped = observation.clone();
        for field in Field::ALL {
            if let Some(track) = self.tracks.get(&(observation.station_id.clone(), field)) {
                if observation.measurements.get(field).is_some() {
                    shaped.measurements.set(field, Some(output(self.map.field(field), track.current)));
                }
            }
        }
        shaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with(field: Field, shaping: Shaping) -> Map {
        let mut map = Map::builtin();
        map.fields[field.index()].shaping = shaping;
        map
    }

    fn report(station: &str, field: Field, value: f64) -> Observation {
        let mut observation = Observation {
            station_id: StationId::parse(station).expect("id"),
            observed_at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            measurements: Default::default(),
        };
        observation.measurements.set(field, Some(value));
        observation
    }

    #[test]
    fn quantize_snaps_to_n_levels_across_the_range() {
        let range = Map::builtin().field(Field::WaveHeightM).to_owned(); // 0..10
        assert_eq!(quantize(3.4, 5, &range), 2.5);
        assert_eq!(quantize(3.9, 5, &range), 5.0);
        assert_eq!(quantize(-1.0, 5, &range), 0.0);
        assert_eq!(quantize(12.0, 5, &range), 10.0);
        assert_eq!(quantize(3.4, 1, &range), 3.4, "fewer than two steps: unchanged");
    }

    #[test]
    fn smoothing_follows_the_exponential_formula_on_the_clock() {
        let tau = 2.0;
        let mut shaper =
            Shaper::new(&map_with(Field::WaveHeightM, Shaping { smooth: Some(tau), ..Default::default() }));
        let first = shaper.report(&report("46026", Field::WaveHeightM, 1.0), Duration::ZERO);
        assert_eq!(
            first.observation.measurements.get(Field::WaveHeightM),
            Some(1.0),
            "the first value at once"
        );
        let jump = shaper.report(&report("46026", Field::WaveHeightM, 5.0), Duration::from_secs(1));
        assert_eq!(jump.observation.measurements.get(Field::WaveHeightM), Some(1.0), "no jump");
        assert!(shaper.busy());
        let mut t = Duration::from_secs(1);
        let mut expected = 1.0;
        for _ in 0..100 {
            t += TICK;
            let out = shaper.tick(t);
            expected = ema_step(expected, 5.0, TICK, tau);
            let value = out[0].observation.measurements.get(Field::WaveHeightM).expect("sent");
            assert!((value - expected).abs() < 1e-9, "{value} vs {expected}");
        }
        // After 2 s (one time constant): 1 + 4·(1 − e^−1).
        let formula = 1.0 + 4.0 * (1.0 - (-1.0f64).exp());
        assert!((expected - formula).abs() < 1e-9, "{expected} vs {formula}");
    }

    #[test]
    fn deadband_sends_only_moves_larger_than_it() {
        let mut shaper =
            Shaper::new(&map_with(Field::WaveHeightM, Shaping { deadband: Some(0.5), ..Default::default() }));
        let sent = |shaped: Shaped| shaped.send.contains(Field::WaveHeightM);
        assert!(sent(shaper.report(&report("46026", Field::WaveHeightM, 1.0), Duration::ZERO)));
        assert!(!sent(shaper.report(&report("46026", Field::WaveHeightM, 1.4), Duration::from_secs(1))));
        assert!(sent(shaper.report(&report("46026", Field::WaveHeightM, 1.6), Duration::from_secs(2))));
        assert!(!sent(shaper.report(&report("46026", Field::WaveHeightM, 1.2), Duration::from_secs(3))));
    }

    #[test]
    fn rate_holds_values_back_and_sends_the_last_when_the_slot_opens() {
        let mut shaper =
            Shaper::new(&map_with(Field::WaveHeightM, Shaping { rate: Some(2.0), ..Default::default() }));
        let sent = |shaped: &Shaped| shaped.send.contains(Field::WaveHeightM);
        assert!(sent(&shaper.report(&report("46026", Field::WaveHeightM, 1.0), Duration::ZERO)));
        assert!(!sent(&shaper.report(&report("46026", Field::WaveHeightM, 2.0), Duration::from_millis(100))));
        assert!(!sent(&shaper.report(&report("46026", Field::WaveHeightM, 3.0), Duration::from_millis(200))));
        assert!(shaper.busy(), "a value is held back");
        assert!(shaper.tick(Duration::from_millis(400)).is_empty(), "the slot opens at 500 ms");
        let out = shaper.tick(Duration::from_millis(500));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].observation.measurements.get(Field::WaveHeightM), Some(3.0), "the last value");
        assert!(!shaper.busy());
    }

    #[test]
    fn unshaped_fields_pass_through_untouched() {
        let mut shaper = Shaper::new(&Map::builtin());
        assert!(!shaper.is_on());
        let observation = report("46026", Field::WindSpeedMps, 7.3);
        let shaped = shaper.report(&observation, Duration::ZERO);
        assert_eq!(shaped.observation, observation);
        assert!(shaped.send.contains(Field::WindSpeedMps));
        assert!(shaper.tick(Duration::from_secs(1)).is_empty());
    }
}
