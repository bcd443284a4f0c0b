//! Query-string parsing shared by every endpoint: one place that turns a raw
//! query into typed values or a 400 `VALIDATION_ERROR` naming the parameter.
//!
//! Unknown parameters are ignored (cache-busters like `_=123` are common);
//! a known parameter with a bad value is refused.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::error::ApiError;
use super::feed::Kinds;
use crate::observation::{parse_time, FieldSet, StationId};

/// The decoded `key=value` pairs of a query string.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Decodes a raw query (without `?`). Malformed percent-escapes decode lossily.
    pub fn parse(raw: Option<&str>) -> Params {
        let pairs = raw
            .map(|raw| {
                url::form_urlencoded::parse(raw.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Params { pairs }
    }

    /// The last value of `name`, if any (empty values count as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// `name` as a comma list of station ids (`46026,46042`); `None` if absent.
    pub fn stations(&self, name: &'static str) -> Result<Option<Vec<StationId>>, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(None) };
        let ids = StationId::parse_list(raw).map_err(|error| invalid(name, raw, &error.to_string()))?;
        if ids.is_empty() {
            return Err(invalid(name, raw, "expected at least one station id"));
        }
        Ok(Some(ids))
    }

    /// `fields=` as a field set; all fields when absent.
    pub fn fields(&self) -> Result<FieldSet, ApiError> {
        match self.get("fields") {
            None => Ok(FieldSet::ALL),
            Some(raw) => {
                FieldSet::parse_list(raw).map_err(|error| invalid("fields", raw, &error.to_string()))
            }
        }
    }

    /// `kinds=` as a set of event kinds; observations only when absent.
    pub fn kinds(&self) -> Result<Kinds, ApiError> {
        let Some(raw) = self.get("kinds") else { return Ok(Kinds::default()) };
        let kinds = Kinds::parse_list(raw).map_err(|name| {
            invalid("kinds", raw, &format!("unknown kind {name:?}: expected observation or spectrum"))
        })?;
        if kinds.is_empty() {
            return Err(invalid("kinds", raw, "expected at least one of observation, spectrum"));
        }
        Ok(kinds)
    }

    /// A whole number in `min..=max`, or `default` when absent.
    pub fn number(&self, name: &'static str, default: u32, min: u32, max: u32) -> Result<u32, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(default) };
        match raw.parse::<u32>() {
            Ok(value) if (min..=max).contains(&value) => Ok(value),
            _ => Err(invalid(name, raw, &format!("expected a whole number from {min} to {max}"))),
        }
    }

    /// A whole number of at least `min`, or `default` when absent; a value
    /// above `max` is clamped to `max`, as the original system did for `limit`.
    pub fn number_clamped(
        &self,
        name: &'static str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(default) };
        let too_big = !raw.is_empty() && raw.len() > 9 && raw.bytes().all(|b| b.is_ascii_digit());
        match raw.parse::<u32>() {
            Ok(value) if value >= min => Ok(value.min(max)),
            _ if too_big => Ok(max),
            _ => Err(invalid(name, raw, &format!("expected a whole number of at least {min}"))),
        }
    }

    /// A time, if present: RFC 3339 (`2026-11-28T06:40:00Z`), or a date
    /// alone (`2026-11-28`, meaning its midnight UTC), as the original
    /// system accepted.
    pub fn time(&self, name: &'static str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(raw) = self.get(name) else { return Ok(None) };
        parse_time(raw)
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .ok()
                    .and_then(|date| date.and_hms_opt(0, 0, 0))
                    .map(|midnight| midnight.and_utc())
            })
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    name,
                    raw,
                    "expected an RFC 3339 time such as 2026-11-28T06:40:00Z, or a date such as 2026-11-28",
                )
            })
    }
}

/// A 400 naming the parameter, its value (truncated) and what was expected.
pub fn invalid(name: &str, value: &str, reason: &str) -> ApiError {
    let shown: String = value.chars().take(100).collect();
    ApiError::validation(
        format!("Invalid query parameter `{name}`: {reason}"),
        json!({ "param": name, "value": shown, "reason": reason }),
    )
}

/// A station id from a path segment, or a 400.
pub fn station_path(raw: &str) -> Result<StationId, ApiError> {
    StationId::parse(raw).map_err(|error| {
        ApiError::validation(
            format!("Invalid station id: {error}"),
            json!({ "param": "id", "value": raw.chars().take(100).collect::<String>() }),
        )
    })
}
