//! Fuzzes the NDBC text parser: it must never panic, and every row it
//! returns must hold only finite values and no historical sentinel.
#![no_main]

use buoycast::observation::{Field, StationId};
use buoycast::sources::ndbc::parse::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let station = StationId::parse("46026").expect("valid id");
    if let Ok(parsed) = parse(data, Some(&station)) {
        for observation in &parsed.observations {
            for field in Field::ALL {
                if let Some(value) = observation.measurements.get(field) {
                    assert!(value.is_finite(), "{field} = {value}");
                    assert!(value != field.sentinel(), "{field} kept its sentinel");
                }
            }
        }
    }
});
