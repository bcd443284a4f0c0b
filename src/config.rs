//! Layered configuration (docs/REFERENCE.md, Configuration): built-in
//! defaults < `buoycast.toml` (or `--config FILE`) < environment <
//! command-line flags.
//!
//! Every key of docs/REFERENCE.md, Configuration is here, under its
//! `buoycast.toml` name. The environment names are the documented ones, the
//! original system's included (`PORT`, `DATABASE_URL`, `REDIS_URL`,
//! `NDBC_API_BASE`, `INGEST_INTERVAL_MS`). A bad value refuses start-up with
//! an error that names the key (and the variable it came from).
//!
//! This module only loads and validates; it opens nothing.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::observation::StationId;

/// The default config file, read from the working directory when present.
pub const DEFAULT_FILE: &str = "buoycast.toml";

/// Stations polled per-station by default: well-known, long-lived buoys.
pub const DEFAULT_STATIONS: [&str; 6] = ["41002", "44013", "46026", "46042", "46097", "tplm2"];

/// The default stations that publish directional wave spectra (46097 and
/// TPLM2 publish none).
pub const DEFAULT_SPECTRAL_STATIONS: [&str; 4] = ["41002", "44013", "46026", "46042"];

/// Errors of loading the configuration. Every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config key `{key}`{source_note}: {reason}")]
    Invalid { key: String, source_note: String, reason: String },
    #[error("reading config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Load(String),
}

impl ConfigError {
    fn invalid(key: &str, env: Option<&str>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            source_note: env.map(|env| format!(" (from {env})")).unwrap_or_default(),
            reason: reason.into(),
        }
    }
}

/// A string that must never reach a log: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Secret {
    /// What logs may show: a URL with its credentials masked, anything else
    /// (a token) as `***`.
    fn shown(&self) -> String {
        if self.0.contains("://") {
            redact_url(&self.0)
        } else {
            "***".to_owned()
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

pub use crate::redact::redact_url;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the gateway listens on (`127.0.0.1:3000`).
    pub listen: SocketAddr,
    /// PostgreSQL URL; `None` means the embedded SQLite store.
    pub database_url: Option<Secret>,
    /// Redis URL; `None` means the in-process bus.
    pub redis_url: Option<Secret>,
    /// Where the SQLite file lives when `database_url` is unset.
    pub sqlite_path: PathBuf,
    /// NDBC source URLs.
    pub ndbc: NdbcConfig,
    /// What the worker polls and how often.
    pub ingest: IngestConfig,
    /// Streaming (SSE / WebSocket) behaviour.
    pub stream: StreamConfig,
    /// HTTP server protection.
    pub http: HttpConfig,
    /// Optional bearer-token auth.
    pub auth: AuthConfig,
    /// Cross-origin policy.
    pub cors: CorsConfig,
    /// Per-client REST rate limit.
    pub rate_limit: RateLimitConfig,
    /// Logging.
    pub log: LogConfig,
    /// The dashboard page.
    #[serde(default)]
    pub dashboard: DashboardConfig,
}

/// The dashboard page (`GET /`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// A slippy-map tile URL template with `{z}`, `{x}` and `{y}`, e.g.
    /// `https://tile.openstreetmap.org/{z}/{x}/{y}.png`. Unset: stations are
    /// drawn on a plain lat/lon plot and the page makes no outside request.
    pub tile_url: Option<String>,
    /// Attribution shown under the map, as the tile server's terms require.
    pub tile_attribution: Option<String>,
}

/// NDBC source URLs (tests point them at a local server).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdbcConfig {
    /// Base of per-station files: `{realtime_base}/{STATION}.txt`.
    pub realtime_base: String,
    /// The all-stations latest observations file.
    pub latest_obs_url: String,
    /// Station metadata (`activestations.xml`).
    pub stations_url: String,
    /// Base of the yearly archives: `{historical_base}/swden/{id}w{YYYY}.txt.gz`, …
    pub historical_base: String,
}

/// Worker scheduling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Poll interval in milliseconds.
    pub interval_ms: u64,
    /// Stations fetched from their per-station files.
    pub stations: Vec<String>,
    /// Whether `latest_obs.txt` (every station in one request) is polled.
    pub latest_obs: bool,
    /// How often `latest_obs.txt` is polled, in milliseconds (conditional
    /// GET: an unchanged file costs NDBC a 304). Station files keep `interval_ms`.
    pub latest_obs_interval_ms: u64,
    /// Stations whose directional wave spectra are fetched (the five
    /// realtime spectral files, every `interval_ms`).
    pub spectral_stations: Vec<String>,
}

/// Streaming behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Seconds between keepalive comments.
    pub keepalive_secs: u64,
    /// Open stream connections allowed at once (SSE + WebSocket).
    pub max_connections: usize,
    /// Events a client may fall behind before it is told `lagged` and
    /// closed: the size of the hub's one ring, shared by every client (its
    /// memory is the gateway's, once, not per client), sized so that a burst
    /// (every station of a `latest_obs.txt` poll at once) lags no one.
    pub client_queue: usize,
    /// How far back (seconds) a reconnecting client can catch up.
    pub retention_secs: u64,
}

/// HTTP server protection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds a client has to send its request headers.
    pub header_timeout_secs: u64,
    /// Reverse proxies / load balancers (addresses or CIDR ranges) whose
    /// `X-Forwarded-For` names the client; empty: the peer is the client.
    pub trusted_proxies: Vec<String>,
    /// `SO_REUSEPORT` on `listen`: several `buoycast serve` processes on one
    /// host share the port (the kernel spreads connections across them), to
    /// hold more connections than one process's file descriptors allow.
    pub reuse_port: bool,
}

/// Bearer-token auth; off when `tokens` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Accepted tokens.
    pub tokens: Vec<Secret>,
}

/// CORS policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins; `*` means any origin, without credentials.
    pub origins: Vec<String>,
}

/// REST rate limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests a minute per client on history endpoints; 0 disables.
    pub history_per_minute: u32,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Coloured, one line per event, for a terminal.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Command-line flags that override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config FILE`: read this file instead of `./buoycast.toml` (it must exist).
    pub config_file: Option<PathBuf>,
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// `--log-format human|json`.
    pub log_format: Option<String>,
}

/// What kind of value an environment variable carries.
#[derive(Clone, Copy)]
enum EnvKind {
    Str,
    Int,
    Bool,
    List,
}

/// Environment variable → config key. `PORT` is handled apart (port only).
const ENV_KEYS: &[(&str, &str, EnvKind)] = &[
    ("BUOYCAST_LISTEN", "listen", EnvKind::Str),
    ("DATABASE_URL", "database_url", EnvKind::Str),
    ("REDIS_URL", "redis_url", EnvKind::Str),
    ("BUOYCAST_SQLITE_PATH", "sqlite_path", EnvKind::Str),
    ("NDBC_API_BASE", "ndbc.realtime_base", EnvKind::Str),
    ("NDBC_HISTORICAL_BASE", "ndbc.historical_base", EnvKind::Str),
    ("BUOYCAST_LATEST_OBS_URL", "ndbc.latest_obs_url", EnvKind::Str),
    ("BUOYCAST_STATIONS_URL", "ndbc.stations_url", EnvKind::Str),
    ("INGEST_INTERVAL_MS", "ingest.interval_ms", EnvKind::Int),
    ("BUOYCAST_STATIONS", "ingest.stations", EnvKind::List),
    ("BUOYCAST_LATEST_OBS", "ingest.latest_obs", EnvKind::Bool),
    ("BUOYCAST_LATEST_OBS_INTERVAL_MS", "ingest.latest_obs_interval_ms", EnvKind::Int),
    ("BUOYCAST_SPECTRAL_STATIONS", "ingest.spectral_stations", EnvKind::List),
    ("BUOYCAST_KEEPALIVE_SECS", "stream.keepalive_secs", EnvKind::Int),
    ("BUOYCAST_MAX_CONNECTIONS", "stream.max_connections", EnvKind::Int),
    ("BUOYCAST_CLIENT_QUEUE", "stream.client_queue", EnvKind::Int),
    ("BUOYCAST_RETENTION_SECS", "stream.retention_secs", EnvKind::Int),
    ("BUOYCAST_HEADER_TIMEOUT_SECS", "http.header_timeout_secs", EnvKind::Int),
    ("BUOYCAST_REUSE_PORT", "http.reuse_port", EnvKind::Bool),
    ("BUOYCAST_TRUSTED_PROXIES", "http.trusted_proxies", EnvKind::List),
    ("BUOYCAST_AUTH_TOKENS", "auth.tokens", EnvKind::List),
    ("BUOYCAST_CORS_ORIGINS", "cors.origins", EnvKind::List),
    ("BUOYCAST_RATE_LIMIT", "rate_limit.history_per_minute", EnvKind::Int),
    ("BUOYCAST_LOG_FORMAT", "log.format", EnvKind::Str),
    ("BUOYCAST_DASHBOARD_TILE_URL", "dashboard.tile_url", EnvKind::Str),
    ("BUOYCAST_DASHBOARD_TILE_ATTRIBUTION", "dashboard.tile_attribution", EnvKind::Str),
];

impl Config {
    /// Loads from the process environment and the working directory.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Config::load_from(overrides, &env, Path::new("."))
    }

    /// Loads with an explicit environment and working directory (for tests).
    pub fn load_from(
        overrides: &Overrides,
        env: &HashMap<String, String>,
        cwd: &Path,
    ) -> Result<Config, ConfigError> {
        let mut builder = defaults()?;

        // The file: --config FILE must exist; ./buoycast.toml is optional.
        let (file, required) = match &overrides.config_file {
            Some(path) => (path.clone(), true),
            None => (cwd.join(DEFAULT_FILE), false),
        };
        if required && !file.is_file() {
            return Err(ConfigError::File {
                path: file.display().to_string(),
                reason: "no such file".into(),
            });
        }
        if file.is_file() {
            let text = std::fs::read_to_string(&file).map_err(|error| ConfigError::File {
                path: file.display().to_string(),
                reason: error.to_string(),
            })?;
            // Parse with toml first: its errors carry line and column.
            if let Err(error) = text.parse::<toml::Table>() {
                let reason = error.to_string().trim_end().to_owned();
                return Err(ConfigError::File { path: file.display().to_string(), reason });
            }
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }

        // The environment, each variable typed so a bad one is named.
        for (var, key, kind) in ENV_KEYS {
            let Some(raw) = env.get(*var) else { continue };
            builder = set_env_override(builder, var, key, *kind, raw)?;
        }

        // PORT (the original system's) changes only the port of `listen`,
        // unless BUOYCAST_LISTEN or --listen says more.
        let port = match env.get("PORT") {
            Some(raw) if !raw.trim().is_empty() => Some(raw.trim().parse::<u16>().map_err(|_| {
                ConfigError::invalid("listen", Some("PORT"), format!("{raw:?} is not a port number"))
            })?),
            _ => None,
        };

        if let Some(listen) = &overrides.listen {
            builder = builder
                .set_override("listen", listen.as_str())
                .map_err(|error| ConfigError::Load(error.to_string()))?;
        }
        if let Some(format) = &overrides.log_format {
            builder = builder
                .set_override("log.format", format.as_str())
                .map_err(|error| ConfigError::Load(error.to_string()))?;
        }

        let built = builder.build().map_err(|error| ConfigError::Load(error.to_string()))?;
        let mut config: Config = built.try_deserialize().map_err(deserialize_error)?;
        if let Some(port) = port {
            if overrides.listen.is_none() && !env.contains_key("BUOYCAST_LISTEN") {
                config.listen.set_port(port);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url {
            let url = url.expose();
            let sqlite = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"));
            let valid = url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || sqlite.is_some_and(|path| !path.is_empty());
            if !valid {
                return Err(ConfigError::invalid(
                    "database_url",
                    None,
                    format!(
                        "{} is neither a postgres:// URL nor sqlite://PATH (or sqlite::memory:)",
                        redact_url(url)
                    ),
                ));
            }
        }
        if let Some(url) = &self.redis_url {
            let url = url.expose();
            if ![
                "redis://",
                "rediss://",
                "redis+unix://",
                "redis+sentinel://",
                "rediss+sentinel://",
                "redis+cluster://",
                "rediss+cluster://",
            ]
            .iter()
            .any(|scheme| url.starts_with(scheme))
            {
                return Err(ConfigError::invalid(
                    "redis_url",
                    None,
                    format!("{} is not a redis:// URL", redact_url(url)),
                ));
            }
        }
        if let Some(url) = &self.redis_url {
            if url.expose().to_ascii_lowercase().contains("protocol=resp3") {
                // A subscription is checked by the RESP2 shape of its PING answer.
                return Err(ConfigError::invalid(
                    "redis_url",
                    None,
                    "buoycast speaks RESP2: drop protocol=resp3",
                ));
            }
        }
        for (key, value) in [
            ("ndbc.realtime_base", &self.ndbc.realtime_base),
            ("ndbc.latest_obs_url", &self.ndbc.latest_obs_url),
            ("ndbc.stations_url", &self.ndbc.stations_url),
            ("ndbc.historical_base", &self.ndbc.historical_base),
        ] {
            match url::Url::parse(value) {
                Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {}
                _ => return Err(ConfigError::invalid(key, None, format!("{value:?} is not an http(s) URL"))),
            }
        }
        if self.ingest.latest_obs_interval_ms < 1000 {
            return Err(ConfigError::invalid("ingest.latest_obs_interval_ms", None, "must be at least 1000"));
        }
        if self.ingest.interval_ms < 1000 {
            return Err(ConfigError::invalid("ingest.interval_ms", None, "must be at least 1000"));
        }
        for station in &self.ingest.stations {
            StationId::parse(station)
                .map_err(|error| ConfigError::invalid("ingest.stations", None, error.to_string()))?;
        }
        for station in &self.ingest.spectral_stations {
            StationId::parse(station)
                .map_err(|error| ConfigError::invalid("ingest.spectral_stations", None, error.to_string()))?;
        }
        let positive = [
            ("stream.keepalive_secs", self.stream.keepalive_secs),
            ("stream.max_connections", self.stream.max_connections as u64),
            ("stream.client_queue", self.stream.client_queue as u64),
            ("stream.retention_secs", self.stream.retention_secs),
            ("http.header_timeout_secs", self.http.header_timeout_secs),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, None, "must be greater than 0"));
            }
        }
        for origin in &self.cors.origins {
            if origin != "*" && url::Url::parse(origin).map(|url| url.origin().is_tuple()) != Ok(true) {
                return Err(ConfigError::invalid(
                    "cors.origins",
                    None,
                    format!("{origin:?} is not an origin"),
                ));
            }
        }
        if let Some(template) = &self.dashboard.tile_url {
            let ok = url::Url::parse(template)
                .is_ok_and(|url| url.scheme() == "http" || url.scheme() == "https")
                && ["{z}", "{x}", "{y}"].iter().all(|part| template.contains(part));
            if !ok {
                return Err(ConfigError::invalid(
                    "dashboard.tile_url",
                    None,
                    format!("{template:?} is not an http(s) URL template with {{z}}, {{x}} and {{y}}"),
                ));
            }
        }
        for proxy in &self.http.trusted_proxies {
            if parse_net(proxy).is_none() {
                return Err(ConfigError::invalid(
                    "http.trusted_proxies",
                    None,
                    format!("{proxy:?} is not an IP address or CIDR range"),
                ));
            }
        }
        for token in &self.auth.tokens {
            if token.expose().len() < 8 {
                return Err(ConfigError::invalid(
                    "auth.tokens",
                    None,
                    "every token needs at least 8 characters",
                ));
            }
        }
        Ok(())
    }

    /// Stations polled per-station, validated.
    pub fn stations(&self) -> Vec<StationId> {
        self.ingest.stations.iter().filter_map(|id| StationId::parse(id).ok()).collect()
    }

    /// Stations whose wave spectra are polled, validated.
    pub fn spectral_stations(&self) -> Vec<StationId> {
        self.ingest.spectral_stations.iter().filter_map(|id| StationId::parse(id).ok()).collect()
    }

    /// The store URL: PostgreSQL when configured, else the SQLite file.
    pub fn store_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}", self.sqlite_path.display()),
        }
    }

    /// `http.trusted_proxies`, parsed (validated at load).
    pub fn trusted_proxies(&self) -> Vec<ipnet::IpNet> {
        self.http.trusted_proxies.iter().filter_map(|proxy| parse_net(proxy)).collect()
    }

    /// `stream.keepalive_secs` as a duration.
    pub fn keepalive_interval(&self) -> Duration {
        Duration::from_secs(self.stream.keepalive_secs)
    }

    /// `stream.retention_secs` as a duration.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.stream.retention_secs)
    }

    /// `ingest.interval_ms` as a duration.
    pub fn ingest_interval(&self) -> Duration {
        Duration::from_millis(self.ingest.interval_ms)
    }

    /// `ingest.latest_obs_interval_ms` as a duration.
    pub fn latest_obs_interval(&self) -> Duration {
        Duration::from_millis(self.ingest.latest_obs_interval_ms)
    }
}

/// An address (a one-address range) or a CIDR range.
fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

fn defaults() -> Result<config::ConfigBuilder<config::builder::DefaultState>, ConfigError> {
    let stations: Vec<String> = DEFAULT_STATIONS.iter().map(|s| (*s).to_owned()).collect();
    let spectral: Vec<String> = DEFAULT_SPECTRAL_STATIONS.iter().map(|s| (*s).to_owned()).collect();
    let empty: Vec<String> = Vec::new();
    config::Config::builder()
        .set_default("listen", "127.0.0.1:3000")
        .and_then(|b| b.set_default("sqlite_path", "./data/buoycast.db"))
        .and_then(|b| b.set_default("ndbc.realtime_base", "https://www.ndbc.noaa.gov/data/realtime2"))
        .and_then(|b| {
            b.set_default("ndbc.latest_obs_url", "https://www.ndbc.noaa.gov/data/latest_obs/latest_obs.txt")
        })
        .and_then(|b| b.set_default("ndbc.stations_url", "https://www.ndbc.noaa.gov/activestations.xml"))
        .and_then(|b| b.set_default("ndbc.historical_base", "https://www.ndbc.noaa.gov/data/historical"))
        .and_then(|b| b.set_default("ingest.interval_ms", 300_000))
        .and_then(|b| b.set_default("ingest.stations", stations))
        .and_then(|b| b.set_default("ingest.latest_obs", true))
        .and_then(|b| b.set_default("ingest.latest_obs_interval_ms", 60_000))
        .and_then(|b| b.set_default("ingest.spectral_stations", spectral))
        .and_then(|b| b.set_default("stream.keepalive_secs", 15))
        .and_then(|b| b.set_default("stream.max_connections", 20_000))
        .and_then(|b| b.set_default("stream.client_queue", 4096))
        .and_then(|b| b.set_default("stream.retention_secs", 86_400))
        .and_then(|b| b.set_default("http.header_timeout_secs", 10))
        .and_then(|b| b.set_default("http.reuse_port", false))
        .and_then(|b| b.set_default("http.trusted_proxies", empty.clone()))
        .and_then(|b| b.set_default("auth.tokens", empty.clone()))
        .and_then(|b| b.set_default("cors.origins", vec!["*".to_owned()]))
        .and_then(|b| b.set_default("rate_limit.history_per_minute", 60))
        .and_then(|b| b.set_default("log.format", "human"))
        .map_err(|error| ConfigError::Load(error.to_string()))
}

fn set_env_override(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    var: &str,
    key: &str,
    kind: EnvKind,
    raw: &str,
) -> Result<config::ConfigBuilder<config::builder::DefaultState>, ConfigError> {
    let raw = raw.trim();
    let result = match kind {
        EnvKind::Str => builder.set_override(key, raw),
        EnvKind::Int => {
            let value: i64 = raw.parse().ok().filter(|v| *v >= 0).ok_or_else(|| {
                ConfigError::invalid(key, Some(var), format!("{raw:?} is not a whole number"))
            })?;
            builder.set_override(key, value)
        }
        EnvKind::Bool => {
            let value = match raw.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError::invalid(key, Some(var), format!("{raw:?} is not true or false")))
                }
            };
            builder.set_override(key, value)
        }
        EnvKind::List => {
            let items: Vec<String> =
                raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
            builder.set_override(key, items)
        }
    };
    result.map_err(|error| ConfigError::invalid(key, Some(var), error.to_string()))
}

/// Turns the config crate's deserialization error into one that names the key.
fn deserialize_error(error: config::ConfigError) -> ConfigError {
    let text = error.to_string();
    // The config crate says "... for key `stream.keepalive_secs`" (or "in …").
    let key = text.split('`').nth(1).unwrap_or("").to_owned();
    if key.is_empty() {
        ConfigError::Load(format!("invalid configuration: {text}"))
    } else {
        ConfigError::Invalid { key, source_note: String::new(), reason: text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)], file: Option<&str>) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(text) = file {
            std::fs::write(dir.path().join(DEFAULT_FILE), text).expect("write config");
        }
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load_from(&Overrides::default(), &env, dir.path())
    }

    #[test]
    fn defaults_match_the_documentation() {
        let config = load(&[], None).expect("defaults load");
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert!(config.database_url.is_none());
        assert!(config.redis_url.is_none());
        assert_eq!(config.ingest.interval_ms, 300_000);
        assert_eq!(config.ingest.latest_obs_interval_ms, 60_000);
        assert_eq!(config.stream.keepalive_secs, 15);
        assert_eq!(config.stream.max_connections, 20_000);
        assert_eq!(config.stream.client_queue, 4096);
        assert_eq!(config.stream.retention_secs, 86_400);
        assert_eq!(config.rate_limit.history_per_minute, 60);
        assert_eq!(config.cors.origins, vec!["*"]);
        assert_eq!(config.log.format, LogFormat::Human);
        assert_eq!(config.store_url(), "sqlite://./data/buoycast.db");
    }

    #[test]
    fn documented_example_file_parses_and_equals_defaults() {
        let text = include_str!("../examples/buoycast.toml");
        let from_file = load(&[], Some(text)).expect("example config loads");
        let defaults = load(&[], None).expect("defaults load");
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn layers_file_then_env() {
        let file = "listen = \"127.0.0.1:4000\"\n[stream]\nkeepalive_secs = 5\n";
        let config = load(&[("BUOYCAST_KEEPALIVE_SECS", "7")], Some(file)).expect("loads");
        assert_eq!(config.listen.port(), 4000);
        assert_eq!(config.stream.keepalive_secs, 7);
    }

    #[test]
    fn original_env_names_work() {
        let config = load(
            &[
                ("PORT", "3100"),
                ("DATABASE_URL", "postgres://u:hunter2@127.0.0.1/db"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("NDBC_API_BASE", "http://127.0.0.1:9/realtime2"),
                ("INGEST_INTERVAL_MS", "60000"),
                ("BUOYCAST_STATIONS", "41002, 44013"),
            ],
            None,
        )
        .expect("loads");
        assert_eq!(config.listen.to_string(), "127.0.0.1:3100");
        assert_eq!(config.ingest.interval_ms, 60_000);
        assert_eq!(config.ingest.stations, vec!["41002", "44013"]);
        assert_eq!(config.ndbc.realtime_base, "http://127.0.0.1:9/realtime2");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "password leaked: {shown}");
    }

    #[test]
    fn database_url_takes_postgres_and_sqlite_urls() {
        for url in ["postgres://u@db/b", "sqlite://data/b.db", "sqlite:///var/lib/b.db", "sqlite::memory:"] {
            let config =
                load(&[("DATABASE_URL", url)], None).unwrap_or_else(|error| panic!("{url}: {error}"));
            assert_eq!(config.store_url(), url);
        }
        for url in ["sqlite://", "mysql://x", "data/b.db"] {
            let error = load(&[("DATABASE_URL", url)], None).expect_err("refused");
            assert!(error.to_string().contains("database_url"), "{url}: {error}");
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
        let cases: [Case; 9] = [
            (&[("BUOYCAST_KEEPALIVE_SECS", "soon")], None, "stream.keepalive_secs"),
            (&[("BUOYCAST_TRUSTED_PROXIES", "10.0.0.0/8,lb.internal")], None, "http.trusted_proxies"),
            (&[("PORT", "70000")], None, "PORT"),
            (&[("BUOYCAST_LATEST_OBS", "maybe")], None, "ingest.latest_obs"),
            (&[("DATABASE_URL", "mysql://x")], None, "database_url"),
            (&[("REDIS_URL", "redis://127.0.0.1/?protocol=resp3")], None, "redis_url"),
            (&[], Some("[stream]\nclient_queue = 0\n"), "stream.client_queue"),
            (&[], Some("listen = \"nowhere\"\n"), "listen"),
            (&[], Some("[stream]\nkeepalive = 3\n"), "keepalive"),
        ];
        for (env, file, key) in cases {
            let error = load(env, file).expect_err("must be refused");
            assert!(error.to_string().contains(key), "{error} should name {key}");
        }
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let config =
            load(&[("BUOYCAST_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1, ::1")], None).expect("loads");
        let nets: Vec<String> = config.trusted_proxies().iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.0.2.1/32", "::1/128"]);
        assert!(load(&[], None).expect("defaults").trusted_proxies().is_empty());
    }

    #[test]
    fn toml_syntax_errors_carry_the_line() {
        let error = load(&[], Some("listen = \"127.0.0.1:3000\"\n[stream\n")).expect_err("refused");
        assert!(error.to_string().contains("line 2"), "{error}");
    }

    #[test]
    fn redaction_hides_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("redis://:pw@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact_url("data/buoycast.db"), "data/buoycast.db");
        assert_eq!(redact_url("redis://tok3n@h:6379"), "redis://***@h:6379");
        assert_eq!(redact_url("postgres://db/x?user=a&password=pw"), "postgres://db/x?user=a&password=***");
        assert_eq!(redact_url("weird://u:p@[not a url"), "weird://***@[not a url");
        assert_eq!(format!("{:?}", Secret::new("plain-token")), "***");
        assert_eq!(Secret::new("postgres://u:pw@h/db").to_string(), "postgres://u:***@h/db");
        let sentinel = redact_url("redis+sentinel://h1:26379,h2:26379/m?sentinel_password=pw2&db=1");
        assert_eq!(sentinel, "redis+sentinel://h1:26379,h2:26379/m?sentinel_password=***&db=1");
        assert_eq!(redact_url("redis+sentinel://:pw@h1,h2/m"), "redis+sentinel://:***@h1,h2/m");
    }
}
