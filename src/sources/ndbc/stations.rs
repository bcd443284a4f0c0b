//! The `activestations.xml` parser: NDBC's station list into [`Station`]s
//! (docs/REFERENCE.md, Worker: name, lat, lon, owner, type).
//!
//! Like the text parser it never fails a whole file for one bad entry: a
//! `<station>` with a bad id or a bad coordinate is skipped and reported as a
//! [`StationError`], the others are kept. Only a body that is not an NDBC
//! station list at all (not XML, no `<stations>` root: an HTML error page)
//! is a [`StationsFileError`]. A file cut short after some stations keeps
//! them and reports the cut.
//!
//! It is pure (no I/O) and deliberately does not merge with stored metadata.

use std::fmt;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::observation::StationId;
use crate::station::Station;

/// A `<station>` element that was skipped, or a cut in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationError {
    /// 1-based position among the `<station>` elements (0 for file-level problems
    /// after the root, such as truncation).
    pub index: usize,
    /// The element's `id` attribute as written, when it had one.
    pub id: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

impl fmt::Display for StationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.id, self.index) {
            (_, 0) => write!(f, "{}", self.reason),
            (Some(id), index) => write!(f, "station {index} ({id:?}): {}", self.reason),
            (None, index) => write!(f, "station {index}: {}", self.reason),
        }
    }
}

impl std::error::Error for StationError {}

/// The body is not an NDBC station list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StationsFileError {
    /// XML syntax error before the `<stations>` root element.
    #[error("not an XML station list: {reason} at byte {position}")]
    NotXml {
        /// Byte offset of the error.
        position: u64,
        /// The XML parser's message.
        reason: String,
    },
    /// Well-formed enough, but no `<stations>` root element.
    #[error("not an NDBC station list: no <stations> element")]
    NoStations,
}

/// Parses `activestations.xml` into the stations it lists, all `active`.
///
/// Returns the good stations in file order and the skipped ones.
pub fn parse_active_stations(bytes: &[u8]) -> Result<(Vec<Station>, Vec<StationError>), StationsFileError> {
    let mut reader = Reader::from_reader(bytes);
    let mut stations = Vec::new();
    let mut errors = Vec::new();
    let mut in_root = false;
    let mut root_closed = false;
    let mut index = 0;
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(error) if in_root => {
                errors.push(StationError {
                    index: 0,
                    id: None,
                    reason: format!(
                        "XML error at byte {}, rest of the file skipped: {error}",
                        reader.error_position()
                    ),
                });
                break;
            }
            Err(error) => {
                return Err(StationsFileError::NotXml {
                    position: reader.error_position(),
                    reason: error.to_string(),
                })
            }
        };
        match event {
            Event::Start(element) | Event::Empty(element)
                if in_root && element.local_name().as_ref() == b"station" =>
            {
                index += 1;
                match station(&element) {
                    Ok(station) => stations.push(station),
                    Err((id, reason)) => errors.push(StationError { index, id, reason }),
                }
            }
            Event::Start(element) if !in_root && element.local_name().as_ref() == b"stations" => {
                in_root = true
            }
            Event::Empty(element) if !in_root && element.local_name().as_ref() == b"stations" => {
                in_root = true;
                root_closed = true;
                break;
            }
            Event::End(element) if in_root && element.local_name().as_ref() == b"stations" => {
                root_closed = true;
                break;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !in_root {
        return Err(StationsFileError::NoStations);
    }
    if !root_closed && !errors.iter().any(|error| error.index == 0) {
        errors.push(StationError {
            index: 0,
            id: None,
            reason: "the file ends before </stations>: it may be truncated".to_owned(),
        });
    }
    Ok((stations, errors))
}

/// One `<station …/>` element; on error, its raw id and the reason.
fn station(element: &BytesStart<'_>) -> Result<Station, (Option<String>, String)> {
    let mut id = None;
    let mut name = None;
    let mut lat = None;
    let mut lon = None;
    let mut owner = None;
    let mut station_type = None;
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|error| (id.clone(), format!("bad attribute: {error}")))?;
        let value = attribute
            .unescape_value()
            .map_err(|error| (id.clone(), format!("bad attribute value: {error}")))?;
        let value = value.trim();
        let text = || (!value.is_empty()).then(|| value.to_owned());
        match attribute.key.local_name().as_ref() {
            b"id" => id = Some(value.to_owned()),
            b"name" => name = text(),
            b"lat" => lat = Some(value.to_owned()),
            b"lon" => lon = Some(value.to_owned()),
            b"owner" => owner = text(),
            b"type" => station_type = text(),
            _ => {}
        }
    }
    let Some(raw_id) = id else {
        return Err((None, "no id attribute".to_owned()));
    };
    let station_id = StationId::parse(&raw_id).map_err(|error| (Some(raw_id.clone()), error.to_string()))?;
    let lat = coordinate(lat.as_deref(), "lat", 90.0).map_err(|reason| (Some(raw_id.clone()), reason))?;
    let lon = coordinate(lon.as_deref(), "lon", 180.0).map_err(|reason| (Some(raw_id.clone()), reason))?;
    Ok(Station { id: station_id, name, lat, lon, owner, station_type, active: true })
}

/// A latitude or longitude in `-limit..=limit`; absent or empty is `None`.
fn coordinate(raw: Option<&str>, name: &str, limit: f64) -> Result<Option<f64>, String> {
    let Some(raw) = raw.filter(|raw| !raw.is_empty()) else {
        return Ok(None);
    };
    match raw.parse::<f64>() {
        Ok(value) if value.is_finite() && value.abs() <= limit => Ok(Some(value)),
        _ => Err(format!("invalid {name} {raw:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_stations_are_skipped_and_reported() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<stations created="2024-08-27T14:40:01UTC" count="5">
  <station id="41002" lat="31.743" lon="-74.955" name="SOUTH HATTERAS - 225 NM South of Cape Hatteras" owner="NDBC" type="buoy"/>
  <station id="bad-id" lat="1" lon="2" name="x"/>
  <station id="46026" lat="north" lon="-122.8" name="SAN FRANCISCO"/>
  <station id="46027" lat="41.8" lon="-190" name="ST GEORGES"/>
  <station lat="1" lon="2"/>
  <station id="TPLM2" lat="38.899" lon="-76.436" name="Tartan &quot;A&quot; &amp; co" owner="" type="fixed"></station>
</stations>"#;
        let (stations, errors) = parse_active_stations(xml).expect("a station list");
        let ids: Vec<&str> = stations.iter().map(|station| station.id.as_str()).collect();
        assert_eq!(ids, ["41002", "tplm2"]);
        assert_eq!(stations[1].name.as_deref(), Some("Tartan \"A\" & co"));
        assert_eq!(stations[1].owner, None);
        assert_eq!(stations[1].lat, Some(38.899));
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        expect_test::expect![[r#"
            [
                "station 2 (\"bad-id\"): invalid station id \"bad-id\": expected 1-16 letters or digits",
                "station 3 (\"46026\"): invalid lat \"north\"",
                "station 4 (\"46027\"): invalid lon \"-190\"",
                "station 5: no id attribute",
            ]
        "#]]
        .assert_debug_eq(&errors);
    }

    #[test]
    fn not_a_station_list_is_a_file_error() {
        let html = b"<!DOCTYPE html>\n<html><body><h1>503 Service Unavailable</h1></body></html>\n";
        assert_eq!(parse_active_stations(html), Err(StationsFileError::NoStations));
        assert_eq!(parse_active_stations(b""), Err(StationsFileError::NoStations));
        let error = parse_active_stations(b"<stations <<< garbage").expect_err("not XML");
        assert!(error.to_string().starts_with("not an XML station list"), "{error}");
    }

    #[test]
    fn truncated_file_keeps_what_it_has() {
        let xml = br#"<stations><station id="41002" lat="31.7" lon="-74.9" name="A"/><station id="41"#;
        let (stations, errors) = parse_active_stations(xml).expect("a station list");
        assert_eq!(stations.len(), 1);
        assert_eq!(errors.len(), 1, "{errors:?}");
    }
}
