//! Fuzzes what a stream request carries from outside: the query string
//! (`station=`, `fields=`, `last_event_id=`) and the `Last-Event-ID` header,
//! through the same functions the gateway uses.
#![no_main]

use buoycast::observation::{parse_stream_id, FieldSet, StationId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (key, value) in url::form_urlencoded::parse(data) {
        match key.as_ref() {
            "station" => {
                if let Ok(ids) = StationId::parse_list(&value) {
                    for id in ids {
                        assert!(id.as_str().len() <= 16);
                        assert!(id.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
                    }
                }
            }
            "fields" => {
                let _ = FieldSet::parse_list(&value);
            }
            _ => {
                if let Some(id) = parse_stream_id(&value) {
                    assert_eq!(parse_stream_id(&format!("{}-{}", id.0, id.1)), Some(id));
                }
            }
        }
    }
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = parse_stream_id(header.trim());
    }
});
