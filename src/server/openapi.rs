//! `GET /v1/openapi.json`: the OpenAPI 3 description of the REST API.
//!
//! Written by hand from the same constants the handlers use; a test checks
//! that every route of the router is described here.

use axum::Json;
use serde_json::{json, Value};

use crate::observation::Field;

/// The document.
pub async fn document() -> Json<Value> {
    Json(spec())
}

/// Builds the OpenAPI document.
pub fn spec() -> Value {
    let mut measurement_props = serde_json::Map::new();
    for field in Field::ALL {
        let kind = if field.is_integer() { "integer" } else { "number" };
        measurement_props.insert(
            field.name().to_owned(),
            json!({ "type": [kind, "null"], "description": format!("{} ({}); null when missing", field.name(), field.unit()) }),
        );
    }
    let mut observation_props = measurement_props.clone();
    observation_props.insert("stationId".into(), json!({ "type": "string", "pattern": "^[a-z0-9]{1,16}$" }));
    observation_props.insert("observedAt".into(), json!({ "type": "string", "format": "date-time" }));
    let station_param = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[A-Za-z0-9]{1,16}$" } });
    let page =
        json!({ "name": "page", "in": "query", "schema": { "type": "integer", "minimum": 1, "default": 1 } });
    let limit = json!({ "name": "limit", "in": "query", "description": format!("Rows per page; a larger value than {} is taken as {} (as the original system did)", super::rest::MAX_LIMIT, super::rest::MAX_LIMIT), "schema": { "type": "integer", "minimum": 1, "default": super::rest::DEFAULT_LIMIT } });
    let time = |name: &str, what: &str| json!({ "name": name, "in": "query", "description": format!("{what}. RFC 3339, or a date alone (2026-11-28: its midnight UTC)"), "schema": { "type": "string" } });
    let errors = json!({
        "400": { "$ref": "#/components/responses/Error" },
        "401": { "$ref": "#/components/responses/Error" },
        "429": { "$ref": "#/components/responses/Error" },
        "500": { "$ref": "#/components/responses/Error" }
    });
    let with_errors = |ok: Value| {
        let mut responses = errors.as_object().cloned().unwrap_or_default();
        responses.insert("200".into(), ok);
        Value::Object(responses)
    };
    let stream_params = json!([
        { "name": "station", "in": "query", "description": "Comma list of station ids", "schema": { "type": "string" } },
        { "name": "fields", "in": "query", "description": "Comma list of measurement names to keep", "schema": { "type": "string" } },
        { "name": "kinds", "in": "query", "description": "Comma list of event kinds: observation (the default alone), spectrum", "schema": { "type": "string", "example": "observation,spectrum" } },
        { "name": "snapshot", "in": "query", "description": "latest: every station's current state first", "schema": { "type": "string", "enum": ["latest"] } },
        { "name": "last_event_id", "in": "query", "description": "Resume after this event id (as Last-Event-ID)", "schema": { "type": "string" } },
        { "name": "access_token", "in": "query", "description": "Bearer token, for clients that cannot set headers", "schema": { "type": "string" } }
    ]);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "buoycast",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Live NDBC ocean-buoy observations: streams (SSE, WebSocket) and history."
        },
        "paths": {
            "/v1/observations/stream": { "get": {
                "summary": "Server-Sent Events stream of observations",
                "parameters": stream_params,
                "responses": with_errors(json!({ "description": "text/event-stream: events connection, snapshot, observation, spectrum, reset, lagged", "content": { "text/event-stream": {} } }))
            }},
            "/v1/observations/ws": { "get": {
                "summary": "WebSocket stream of observations (JSON text frames)",
                "parameters": stream_params,
                "responses": with_errors(json!({ "description": "Switching protocols" }))
            }},
            "/v1/observations/by-station/{id}": { "get": {
                "summary": "One station's history, paged from the newest rows",
                "description": "Page 1 is the newest `limit` rows, page 2 the `limit` before them, and so on; each page is returned oldest first. `meta.total` counts every row after `since`.",
                "parameters": [station_param, page, limit, time("since", "Only observations strictly after this time (exclusive, so polling with the last time seen repeats nothing)")],
                "responses": with_errors(json!({ "description": "A page", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ObservationPage" } } } }))
            }},
            "/v1/spectra/by-station/{id}": { "get": {
                "summary": "One station's directional wave spectra, paged from the newest",
                "description": "Paged as /v1/observations/by-station/{id}. Each spectrum carries its bands (frequency, density, directions, r1, r2, spread) and the values derived from them.",
                "parameters": [station_param, page, limit, time("since", "Only spectra strictly after this time")],
                "responses": with_errors(json!({ "description": "A page", "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "data": { "type": "array", "items": { "$ref": "#/components/schemas/Spectrum" } },
                    "meta": { "$ref": "#/components/schemas/PageMeta" } } } } } }))
            }},
            "/v1/observations": { "get": {
                "summary": "History across stations, newest first",
                "parameters": [
                    { "name": "station", "in": "query", "schema": { "type": "string" }, "description": "Comma list of station ids" },
                    time("since", "At or after"), time("until", "At or before"), limit
                ],
                "responses": with_errors(json!({ "description": "Observations", "content": { "application/json": { "schema": { "type": "object", "properties": { "data": { "type": "array", "items": { "$ref": "#/components/schemas/Observation" } } } } } } }))
            }},
            "/v1/stations": { "get": {
                "summary": "Stations with their latest observation",
                "parameters": [page, limit],
                "responses": with_errors(json!({ "description": "A page of stations", "content": { "application/json": { "schema": { "type": "object", "properties": { "data": { "type": "array", "items": { "$ref": "#/components/schemas/Station" } }, "meta": { "$ref": "#/components/schemas/PageMeta" } } } } } }))
            }},
            "/v1/stations/{id}": { "get": {
                "summary": "One station",
                "parameters": [station_param],
                "responses": with_errors(json!({ "description": "The station", "content": { "application/json": { "schema": { "type": "object", "properties": { "data": { "$ref": "#/components/schemas/Station" } } } } } }))
            }},
            "/v1/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3" } } } },
            "/health": { "get": { "summary": "Liveness", "responses": { "200": { "description": "Alive" } } } },
            "/ready": { "get": { "summary": "Readiness: store and bus reachable", "responses": { "200": { "description": "Ready" }, "503": { "$ref": "#/components/responses/Error" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "Text exposition format" } } } }
        },
        "components": {
            "schemas": {
                "Observation": { "type": "object", "properties": observation_props, "required": ["stationId", "observedAt"] },
                "Spectrum": { "type": "object", "required": ["stationId", "timestamp", "bands"], "properties": {
                    "stationId": { "type": "string" }, "timestamp": { "type": "string", "format": "date-time" },
                    "sepFreqHz": { "type": ["number", "null"], "description": "Swell / wind-sea separation frequency, Hz" },
                    "bands": { "type": "array", "items": { "type": "object", "properties": {
                        "freqHz": { "type": "number" },
                        "density": { "type": ["number", "null"], "description": "m²/Hz" },
                        "alpha1": { "type": ["number", "null"], "description": "mean direction, degrees" },
                        "alpha2": { "type": ["number", "null"], "description": "principal direction, degrees" },
                        "r1": { "type": ["number", "null"] }, "r2": { "type": ["number", "null"] },
                        "spreadDeg": { "type": ["number", "null"] } } } },
                    "significantHeightM": { "type": ["number", "null"] }, "peakFreqHz": { "type": ["number", "null"] },
                    "peakPeriodS": { "type": ["number", "null"] }, "meanPeriodS": { "type": ["number", "null"] },
                    "swellEnergyM2": { "type": ["number", "null"] }, "windSeaEnergyM2": { "type": ["number", "null"] } } },
                "PageMeta": { "type": "object", "properties": { "page": { "type": "integer" }, "limit": { "type": "integer" }, "total": { "type": "integer" } } },
                "ObservationPage": { "type": "object", "properties": {
                    "data": { "type": "array", "items": { "$ref": "#/components/schemas/Observation" } },
                    "meta": { "$ref": "#/components/schemas/PageMeta" } } },
                "Station": { "type": "object", "properties": {
                    "id": { "type": "string" }, "name": { "type": ["string", "null"] },
                    "lat": { "type": ["number", "null"] }, "lon": { "type": ["number", "null"] },
                    "owner": { "type": ["string", "null"] }, "type": { "type": ["string", "null"] },
                    "active": { "type": "boolean" },
                    "lastObservationAt": { "type": ["string", "null"], "format": "date-time" },
                    "latest": { "oneOf": [{ "$ref": "#/components/schemas/Observation" }, { "type": "null" }] } } },
                "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": {
                    "code": { "type": "string", "enum": ["VALIDATION_ERROR", "BAD_REQUEST", "UNAUTHORIZED", "NOT_FOUND", "RATE_LIMITED", "SERVICE_UNAVAILABLE", "INTERNAL_ERROR"] },
                    "message": { "type": "string" }, "details": {} }, "required": ["code", "message"] } } }
            },
            "responses": {
                "Error": { "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            },
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        }
    })
}
