//! The wire encodings of one event, shared by the hub (built once per event
//! for every client) and the stream handlers (per client, with its
//! `fields` filter): the SSE frame (docs/API.md, The SSE stream) and the
//! WebSocket JSON text frame (docs/API.md, The WebSocket stream).
//!
//! The event name is the event's kind (`observation` or `spectrum`), except
//! that an observation's snapshot is a `snapshot` event (compatible with the
//! first clients of `?snapshot=latest`); a spectrum's snapshot stays a
//! `spectrum` event, flagged `"snapshot": true`, so a client that plays
//! spectra needs one handler (docs/API.md, Spectra).

use crate::observation::{DataForm, EventKind, FieldSet, ObservationEvent};

/// The event name of `event` in `form`.
fn event_name(event: &ObservationEvent, form: DataForm) -> &'static str {
    match (event.kind(), form) {
        (EventKind::Observation, DataForm::Snapshot) => "snapshot",
        (kind, _) => kind.name(),
    }
}

/// The id `event` carries in `form` (none for a snapshot: it does not move
/// `Last-Event-ID`).
fn event_id(event: &ObservationEvent, form: DataForm) -> Option<&str> {
    if form == DataForm::Event {
        event.id.as_deref()
    } else {
        None
    }
}

/// The SSE frame of an event in `form`: an `id:` line when it has one (not
/// for a snapshot), `event:` its name (see the module doc), `data:` with the
/// given fields.
pub fn encode_sse(event: &ObservationEvent, fields: FieldSet, form: DataForm) -> Vec<u8> {
    let mut out = Vec::with_capacity(if event.spectrum.is_some() { 6000 } else { 480 });
    if let Some(id) = event_id(event, form) {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event_name(event, form).as_bytes());
    out.extend_from_slice(b"\ndata: ");
    event.write_data(&mut out, fields, form);
    out.extend_from_slice(b"\n\n");
    out
}

/// The WebSocket JSON text frame of an event in `form`:
/// `{"event": its name, "id" (when it has one, not for a snapshot), "data"}`.
pub fn encode_ws(event: &ObservationEvent, fields: FieldSet, form: DataForm) -> Vec<u8> {
    let mut out = Vec::with_capacity(if event.spectrum.is_some() { 6000 } else { 480 });
    out.extend_from_slice(b"{\"event\":\"");
    out.extend_from_slice(event_name(event, form).as_bytes());
    out.extend_from_slice(b"\",");
    if let Some(id) = event_id(event, form) {
        out.extend_from_slice(b"\"id\":");
        match serde_json::to_writer(&mut out, id) {
            Ok(()) => out.push(b','),
            Err(_) => out.extend_from_slice(b"null,"),
        }
    }
    out.extend_from_slice(b"\"data\":");
    event.write_data(&mut out, fields, form);
    out.push(b'}');
    out
}
