//! Fuzzes the bus-message decoder: never a panic, and whatever decodes
//! re-encodes to JSON that decodes to the same event (values it set to null
//! are null in the encoding, so only the record of which ones is gone).
#![no_main]

use buoycast::observation::{FieldSet, ObservationEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = ObservationEvent::decode_bus(data) {
        let again = ObservationEvent::decode_bus(event.to_bus_json().as_bytes()).expect("own encoding decodes");
        assert_eq!(again, ObservationEvent { rejected: FieldSet::EMPTY, ..event });
    }
});
