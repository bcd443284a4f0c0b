//! Fuzzes the NDBC wave-spectrum parsers: they must never panic, and every
//! row they return must hold only values in their quantity's range (999,
//! NDBC's missing marker, never kept) and frequencies in (0, 1) Hz.
#![no_main]

use buoycast::observation::StationId;
use buoycast::sources::ndbc::spectral::{parse, SpectralFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let station = StationId::parse("41010").expect("valid id");
    // The file name picks the historical quantity: try two of the five.
    for name in ["41010w2019.txt", "41010j2019.txt"] {
        match parse(data, &station, Some(name)) {
            Ok(SpectralFile::Quantity(parsed)) => {
                for row in &parsed.rows {
                    let (min, max) = row.quantity.valid_range();
                    if let Some(Some(sep)) = row.sep_freq_hz {
                        assert!(sep > 0.0 && sep < 1.0, "Sep_Freq {sep}");
                    }
                    for &(freq, value) in &row.bands {
                        assert!(freq > 0.0 && freq < 1.0, "frequency {freq}");
                        if let Some(value) = value {
                            assert!(value.is_finite() && (min..=max).contains(&value), "{} {value}", row.quantity);
                            assert!(value != 999.0, "999 kept");
                        }
                    }
                }
            }
            Ok(SpectralFile::Summary(parsed)) => {
                for row in &parsed.rows {
                    for degrees in [row.swell_dir_deg, row.wind_wave_dir_deg, row.mean_wave_dir_deg].into_iter().flatten() {
                        assert!(degrees <= 360, "direction {degrees}");
                    }
                    for value in [row.wave_height_m, row.swell_height_m, row.average_period_s].into_iter().flatten() {
                        assert!(value.is_finite() && value != 99.0, "{value}");
                    }
                }
            }
            Err(_) => {}
        }
    }
});
