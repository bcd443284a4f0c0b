//! Fuzzes the bridge's mapping-file loader (docs/REFERENCE.md, Mapping file):
//! never a panic, and a map it accepts always normalises every field into 0..1
//! (never NaN).
#![no_main]

use buoycast::observation::Field;
use buoycast_bridges::mapping::Map;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(map) = Map::from_toml(text, "fuzz.toml") {
        for field in Field::ALL {
            let field_map = map.field(field);
            for value in [-1e9, -1.0, 0.0, 0.5, 1.0, 99.0, 1e9] {
                let norm = field_map.norm(value);
                assert!((0.0..=1.0).contains(&norm), "{field}: norm({value}) = {norm}");
            }
        }
    }
});
