//! Station metadata (docs/REFERENCE.md, Worker: name, lat, lon, owner, type),
//! as parsed from `activestations.xml` and stored beside the observations.
//!
//! Plain data, no I/O.

use serde::Serialize;

use crate::observation::StationId;

/// One station's metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Station {
    /// Lower-case station id.
    pub id: StationId,
    /// Human name; NDBC leaves a few empty.
    pub name: Option<String>,
    /// Latitude in decimal degrees (north positive).
    pub lat: Option<f64>,
    /// Longitude in decimal degrees (east positive).
    pub lon: Option<f64>,
    /// Owner or operator as NDBC names it.
    pub owner: Option<String>,
    /// NDBC station type (`buoy`, `fixed`, `dart`, …).
    #[serde(rename = "type")]
    pub station_type: Option<String>,
    /// Whether NDBC lists the station as active.
    pub active: bool,
}

impl Station {
    /// A station known only by its id (seen in data before its metadata).
    pub fn bare(id: StationId) -> Station {
        Station { id, name: None, lat: None, lon: None, owner: None, station_type: None, active: true }
    }
}
