//! Fuzzes the `activestations.xml` parser: never a panic on any bytes.
#![no_main]

use buoycast::sources::ndbc::stations::parse_active_stations;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((stations, _errors)) = parse_active_stations(data) {
        for station in stations {
            if let Some(lat) = station.lat {
                assert!(lat.is_finite());
            }
        }
    }
});
