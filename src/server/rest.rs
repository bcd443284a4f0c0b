//! The REST endpoints (docs/API.md, History): observation and spectrum
//! history and station metadata.
//!
//! Shapes are the original system's (compatible): paginated lists are
//! `{"data":[…],"meta":{"page","limit","total"}}`; single items `{"data":{…}}`.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::ApiError;
use super::params::{station_path, Params};
use super::AppState;
use crate::store::{HistoryQuery, Page, PageQuery};

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: u32 = 1000;

/// `GET /v1/observations/by-station/{id}?page=&limit=&since=`: page 1 is the
/// newest `limit` rows, each page oldest first; `since` is exclusive; a
/// `limit` above the maximum is clamped (all as the original system).
pub async fn by_station(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let station = station_path(&id)?;
    let query = page_query(query.as_deref())?;
    let result = state
        .store
        .observations_by_station(&station, query)
        .await
        .map_err(|error| ApiError::internal(&error))?;
    state.metrics.observations_queried.inc_by(result.items.len() as u64);
    Ok(page_response(result, query))
}

/// `GET /v1/spectra/by-station/{id}?page=&limit=&since=`: a station's wave
/// spectra (docs/REFERENCE.md, Spectrum), paged as `by_station`.
pub async fn spectra_by_station(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let station = station_path(&id)?;
    let query = page_query(query.as_deref())?;
    let result =
        state.store.spectra_by_station(&station, query).await.map_err(|error| ApiError::internal(&error))?;
    Ok(page_response(result, query))
}

/// `{"data":[…],"meta":{"page","limit","total"}}` (compatible).
fn page_response<T: serde::Serialize>(result: Page<T>, query: PageQuery) -> Response {
    Json(json!({
        "data": result.items,
        "meta": { "page": query.page, "limit": query.limit, "total": result.total },
    }))
    .into_response()
}

/// `?page=&limit=&since=` of the by-station endpoints.
fn page_query(query: Option<&str>) -> Result<PageQuery, ApiError> {
    let params = Params::parse(query);
    Ok(PageQuery {
        page: params.number("page", 1, 1, 1_000_000)?,
        limit: params.number_clamped("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?,
        since: params.time("since")?,
    })
}

/// `GET /v1/observations?station=&since=&until=&limit=`: newest first.
pub async fn history(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let stations = params.stations("station")?.unwrap_or_default();
    let since = params.time("since")?;
    let until = params.time("until")?;
    if let (Some(since), Some(until)) = (since, until) {
        if since > until {
            return Err(super::params::invalid(
                "until",
                params.get("until").unwrap_or_default(),
                "must not be before `since`",
            ));
        }
    }
    let limit = params.number_clamped("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let items = state
        .store
        .observations(HistoryQuery { stations, since, until, limit })
        .await
        .map_err(|error| ApiError::internal(&error))?;
    let count = items.len();
    state.metrics.observations_queried.inc_by(count as u64);
    Ok(Json(json!({ "data": items, "meta": { "limit": limit, "count": count } })).into_response())
}

/// `GET /v1/stations?page=&limit=`.
pub async fn stations(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let page = params.number("page", 1, 1, 1_000_000)?;
    let limit = params.number_clamped("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let result = state.store.stations(page, limit).await.map_err(|error| ApiError::internal(&error))?;
    Ok(Json(json!({
        "data": result.items,
        "meta": { "page": page, "limit": limit, "total": result.total },
    }))
    .into_response())
}

/// `GET /v1/stations/{id}`.
pub async fn station(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let station = station_path(&id)?;
    match state.store.station(&station).await.map_err(|error| ApiError::internal(&error))? {
        Some(summary) => Ok(Json(json!({ "data": summary })).into_response()),
        None => Err(ApiError::not_found(format!("Station {station} not found"))),
    }
}
