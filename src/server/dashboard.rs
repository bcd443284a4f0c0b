//! `GET /`: the dashboard page (docs/API.md, Dashboard).
//!
//! The page is `assets/dashboard/index.html` with `style.css` and `app.js`
//! inlined in place of its two markers, assembled once and embedded in the
//! binary: one self-contained response, no CDN, no build step, no further
//! request but the API calls the page makes to this same gateway (a
//! `Content-Security-Policy` holds it to that). It is not a static file
//! server: there are no other assets to serve.

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::config::DashboardConfig;

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

/// The page and its policy for this configuration: with a tile server, the
/// page learns its URL template from a `<meta>` tag and the policy lets
/// images (and only images) come from that one origin.
pub fn page_for(dashboard: &DashboardConfig) -> (Cow<'static, str>, Cow<'static, str>) {
    let Some(template) = &dashboard.tile_url else {
        return (Cow::Borrowed(page()), Cow::Borrowed(CONTENT_SECURITY_POLICY));
    };
    let origin = url::Url::parse(template).map(|url| url.origin().ascii_serialization()).unwrap_or_default();
    let attribution = dashboard.tile_attribution.clone().unwrap_or_else(|| format!("Map tiles: {origin}"));
    let meta = format!(
        "<head>\n  <meta name=\"buoycast-tile-url\" content=\"{}\">\n  <meta name=\"buoycast-tile-attribution\" content=\"{}\">",
        escape_attribute(template),
        escape_attribute(&attribution)
    );
    let page = page().replacen("<head>", &meta, 1);
    let policy = CONTENT_SECURITY_POLICY.replace("img-src data:", &format!("img-src data: {origin}"));
    (Cow::Owned(page), Cow::Owned(policy))
}

/// Escapes a value for a double-quoted HTML attribute.
fn escape_attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

/// The page.
pub async fn index(State(state): State<AppState>) -> Response {
    let (page, policy) = page_for(&state.config.dashboard);
    let policy = HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, policy),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            // An `?access_token=` in the page URL must not leak through links.
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY")),
        ],
        page,
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
    fn a_tile_server_is_announced_to_the_page_and_allowed_for_images_only() {
        let config = DashboardConfig {
            tile_url: Some("https://tiles.example.org/{z}/{x}/{y}.png?key=a&b=\"c\"".into()),
            tile_attribution: Some("© Example <maps>".into()),
        };
        let (page, policy) = page_for(&config);
        assert!(
            page.contains(r#"content="https://tiles.example.org/{z}/{x}/{y}.png?key=a&amp;b=&quot;c&quot;""#)
        );
        assert!(page.contains("© Example &lt;maps&gt;"));
        assert!(policy.contains("img-src data: https://tiles.example.org;"), "{policy}");
        assert!(policy.contains("connect-src 'self'"), "{policy}");
        let (plain, plain_policy) = page_for(&DashboardConfig::default());
        assert!(!plain.contains("<meta name=\"buoycast-tile-url\""));
        assert_eq!(plain_policy, CONTENT_SECURITY_POLICY);
    }

    #[test]
    fn inlined_assets_cannot_end_their_element_early() {
        assert!(!SCRIPT.to_ascii_lowercase().contains("</script"), "app.js must not contain `</script`");
        assert!(!STYLE.to_ascii_lowercase().contains("</style"), "style.css must not contain `</style`");
    }
}
