//! Fuzzes the bus-message decoder: never a panic, and whatever decodes
//! re-encodes to JSON that decodes to the same event.
#![no_main]

use buoycast::observation::ObservationEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = ObservationEvent::decode_bus(data) {
        let again = ObservationEvent::decode_bus(event.to_bus_json().as_bytes()).expect("own encoding decodes");
        assert_eq!(again, event);
    }
});
