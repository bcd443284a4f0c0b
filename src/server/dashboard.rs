//! `GET /`: the dashboard page (SPEC 4.5).
//!
//! The page is `assets/dashboard/index.html` with `style.css` and `app.js`
//! inlined in place of its two markers, assembled once and embedded in the
//! binary: one self-contained response, no CDN, no build step, no further
//! request but the API calls the page makes to this same gateway (a
//! `Content-Security-Policy` holds it to that). It is not a static file
//! server: there are no other assets to serve.

use std::sync::LazyLock;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The page skeleton.
const HTML: &str = include_str!("../../assets/dashboard/index.html");
/// Its stylesheet, inlined at [`STYLE_MARKER`].
const STYLE: &str = include_str!("../../assets/dashboard/style.css");
/// Its script, inlined at [`SCRIPT_MARKER`].
const SCRIPT: &str = include_str!("../../assets/dashboard/app.js");

/// Where the stylesheet goes in the skeleton.
const STYLE_MARKER: &str = "/*{{STYLE}}*/";
/// Where the script goes in the skeleton.
const SCRIPT_MARKER: &str = "/*{{SCRIPT}}*/";

/// The browser may reach this origin's API and nothing else; the inline
/// script and style are the page's own (nothing user-supplied is ever
/// interpolated into it), and the favicon is a `data:` image.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The assembled page.
static PAGE: LazyLock<String> =
    LazyLock::new(|| HTML.replacen(STYLE_MARKER, STYLE, 1).replacen(SCRIPT_MARKER, SCRIPT, 1));

/// The assembled page, as served.
pub fn page() -> &'static str {
    PAGE.as_str()
}

/// The page.
pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            // An `?access_token=` in the page URL must not leak through links.
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY")),
        ],
        page(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_inlines_style_and_script_once_and_keeps_no_marker() {
        let page = page();
        assert!(!page.contains(STYLE_MARKER) && !page.contains(SCRIPT_MARKER));
        assert_eq!(page.matches(STYLE).count(), 1);
        assert_eq!(page.matches(SCRIPT).count(), 1);
        assert!(
            page.len() == HTML.len() - STYLE_MARKER.len() - SCRIPT_MARKER.len() + STYLE.len() + SCRIPT.len()
        );
    }

    #[test]
    fn inlined_assets_cannot_end_their_element_early() {
        assert!(!SCRIPT.to_ascii_lowercase().contains("</script"), "app.js must not contain `</script`");
        assert!(!STYLE.to_ascii_lowercase().contains("</style"), "style.css must not contain `</style`");
    }
}
