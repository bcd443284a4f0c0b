//! The wire encodings of one event, shared by the hub (built once per event
//! for every client) and the stream handlers (per client, with its
//! `fields` filter): the SSE frame (docs/API.md, The SSE stream) and the
//! WebSocket JSON text frame (docs/API.md, The WebSocket stream).

use crate::observation::{DataForm, FieldSet, ObservationEvent};

/// The SSE frame of an event in `form` ([`DataForm::Event`]: `id:` line when
/// known, `event: observation`; [`DataForm::Snapshot`]: `event: snapshot`,
/// no id), with the given fields.
pub fn encode_sse(event: &ObservationEvent, fields: FieldSet, form: DataForm) -> Vec<u8> {
    let mut out = Vec::with_capacity(480);
    match (form, &event.id) {
        (DataForm::Event, Some(id)) => {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(b"\nevent: observation\ndata: ");
        }
        (DataForm::Event, None) => out.extend_from_slice(b"event: observation\ndata: "),
        _ => out.extend_from_slice(b"event: snapshot\ndata: "),
    }
    event.write_data(&mut out, fields, form);
    out.extend_from_slice(b"\n\n");
    out
}

/// The WebSocket JSON text frame of an event in `form` (`"event"` is
/// `observation` with its `"id"` when known, or `snapshot` without one).
pub fn encode_ws(event: &ObservationEvent, fields: FieldSet, form: DataForm) -> Vec<u8> {
    let mut out = Vec::with_capacity(480);
    match (form, &event.id) {
        (DataForm::Event, Some(id)) => {
            out.extend_from_slice(b"{\"event\":\"observation\",\"id\":");
            match serde_json::to_writer(&mut out, id) {
                Ok(()) => out.push(b','),
                Err(_) => out.extend_from_slice(b"null,"),
            }
        }
        (DataForm::Event, None) => out.extend_from_slice(b"{\"event\":\"observation\","),
        _ => out.extend_from_slice(b"{\"event\":\"snapshot\","),
    }
    out.extend_from_slice(b"\"data\":");
    event.write_data(&mut out, fields, form);
    out.push(b'}');
    out
}
