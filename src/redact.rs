//! Secrets out of URLs before they reach a log line or an error message
//! (one redaction for config, store, bus and the bridge).

/// A URL fit for logs and error messages: the password (`user:***@`), a
/// Redis token given as user name (`redis://***@host`) and secret query
/// parameters (`?password=***`, `?sentinel_password=***`) are masked;
/// multi-host URLs (`redis+sentinel://h1:26379,h2:26379/m`) are masked by
/// hand. Anything else (a file path, a URL without credentials) is returned
/// unchanged.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) => {
            let mut changed = false;
            if parsed.password().is_some() {
                if parsed.set_password(Some("***")).is_err() {
                    return "***".to_owned();
                }
                changed = true;
            } else if !parsed.username().is_empty() && parsed.scheme().starts_with("redis") {
                // redis://token@host: the user part is the password for Redis.
                if parsed.set_username("***").is_err() {
                    return "***".to_owned();
                }
                changed = true;
            }
            if parsed.query_pairs().any(|(key, _)| is_secret_param(&key)) {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(key, value)| {
                        let value = if is_secret_param(&key) { "***".to_owned() } else { value.into_owned() };
                        (key.into_owned(), value)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
                changed = true;
            }
            if changed {
                parsed.to_string()
            } else {
                raw.to_owned()
            }
        }
        Err(_) => {
            let (base, query) = match raw.split_once('?') {
                Some((base, query)) => (base, Some(query)),
                None => (raw, None),
            };
            let mut out = match base.find("://") {
                Some(scheme_end) => match base.rfind('@') {
                    Some(at) if at > scheme_end => {
                        format!("{}://***@{}", &base[..scheme_end], &base[at + 1..])
                    }
                    _ => base.to_owned(),
                },
                None => base.to_owned(),
            };
            if let Some(query) = query {
                let pairs: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((key, _)) if is_secret_param(key) => format!("{key}=***"),
                        _ => pair.to_owned(),
                    })
                    .collect();
                out.push('?');
                out.push_str(&pairs.join("&"));
            }
            out
        }
    }
}

/// Query parameters that carry a secret (`?password=`, `?sentinel_password=`).
fn is_secret_param(key: &str) -> bool {
    key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("sentinel_password")
}
