//! Where the Redis bus's connections go: one server, the master that Redis
//! Sentinel names, or a Redis Cluster (docs/OPERATIONS.md, Scaling out:
//! existing engines, no home-made clustering). [`super::redis`] speaks the bus
//! protocol; this file only parses the URL and opens connections.
//!
//! URL forms:
//! - `redis://[[user]:password@]host[:port][/db]`, `rediss://…`, `redis+unix:///path`:
//!   one server, through the redis crate's [`ConnectionManager`] (unchanged).
//! - `redis+sentinel://[[user]:password@]host1[:26379],host2[:26379]/<master-name>[?db=N&sentinel_password=…]`
//!   (`rediss+sentinel://` for TLS to the data nodes): the sentinels are asked
//!   for the master (`SENTINEL` through the crate's [`SentinelClient`], which also
//!   checks `ROLE`) on every (re)connect. A command that finds the connection
//!   broken or the server demoted (`READONLY`) drops it, so the next command
//!   resolves the master again. [`Commands::replicate`] runs `WAIT` after a
//!   write so an acknowledged publish survives a failover.
//! - `redis+cluster://[[user]:password@]host1[:6379],host2[:6379],…` (`rediss+cluster://`):
//!   commands through the crate's async cluster client (scripts are routed by
//!   their first key, `observations:log`); Pub/Sub on a plain connection to
//!   one node at a time, moving to the next listed node when one fails
//!   (classic `PUBLISH` reaches every node of a cluster).
//!
//! This file deliberately holds no failover logic of its own: Sentinel picks
//! the master, Cluster owns the slots; we only re-ask after an error.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSub};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, Pipeline, RedisConnectionInfo,
    RedisError, RedisFuture, RedisResult, Role, TlsMode, Value,
};

use super::{Error, RedisBusOptions};

/// Default port of a sentinel.
const SENTINEL_PORT: u16 = 26379;

/// Default port of a Redis server.
const REDIS_PORT: u16 = 6379;

/// Where the bus connects, parsed from the URL.
pub(super) enum Topology {
    /// One server (`redis://`, `rediss://`, `redis+unix://`).
    Single(redis::Client),
    /// The master named by Redis Sentinel.
    Sentinel(Arc<SentinelMaster>),
    /// A Redis Cluster.
    Cluster(ClusterNodes),
}

/// A Sentinel-managed master and the command connection currently open to it.
pub(super) struct SentinelMaster {
    /// The sentinels to ask, in URL order.
    sentinels: Vec<ConnectionInfo>,
    /// `SENTINEL monitor <name> …` on the sentinels.
    master_name: String,
    /// How to connect to the master once found (TLS, db, credentials).
    node: SentinelNodeConnectionInfo,
    /// The database, for [`ConnectionLike::get_db`].
    db: i64,
    /// Bound on opening a connection (per resolution step).
    connect_timeout: Duration,
    /// Bound on one command's answer.
    response_timeout: Duration,
    /// The command connection to the current master, with its generation;
    /// `None` after an error, so the next command resolves the master again.
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Serialises resolutions, so an error seen by many tasks resolves once.
    resolving: tokio::sync::Mutex<()>,
    /// Source of generations.
    generations: AtomicU64,
}

/// The nodes of a Redis Cluster.
pub(super) struct ClusterNodes {
    /// The cluster client (slot map, redirections, reconnects).
    client: ClusterClient,
    /// The listed nodes, for Pub/Sub connections.
    nodes: Vec<ConnectionInfo>,
    /// The node the next Pub/Sub connection tries (round robin).
    next_pubsub: AtomicUsize,
}

impl Topology {
    /// Parses `url`; errors carry no password.
    pub(super) fn parse(url: &str, options: &RedisBusOptions) -> RedisResult<Topology> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some(scheme @ ("redis+sentinel" | "rediss+sentinel")) => {
                let parsed = ParsedUrl::parse(url, SENTINEL_PORT)?;
                let tls = scheme.starts_with("rediss");
                SentinelMaster::new(parsed, tls, options).map(|master| Topology::Sentinel(Arc::new(master)))
            }
            Some(scheme @ ("redis+cluster" | "rediss+cluster")) => {
                let parsed = ParsedUrl::parse(url, REDIS_PORT)?;
                let tls = scheme.starts_with("rediss");
                ClusterNodes::new(parsed, tls, options).map(Topology::Cluster)
            }
            _ => redis::Client::open(url).map(Topology::Single),
        }
    }

    /// A handle for commands (scripts, PUBLISH, PING). Single: a
    /// [`ConnectionManager`] opened now; Sentinel: connects on first use;
    /// Cluster: a cluster connection opened now.
    pub(super) async fn commands(&self, options: &RedisBusOptions) -> RedisResult<Commands> {
        match self {
            Topology::Single(client) => {
                // One retry after about a second: callers (the worker's publish
                // retries, the subscription loop) have their own backoff.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(options.connect_timeout)
                    .set_response_timeout(options.response_timeout)
                    .set_number_of_retries(1)
                    .set_factor(2)
                    .set_max_delay(1000);
                ConnectionManager::new_with_config(client.clone(), config).await.map(Commands::Single)
            }
            Topology::Sentinel(master) => {
                Ok(Commands::Sentinel(SentinelCommands { master: master.clone(), pinned: None }))
            }
            Topology::Cluster(cluster) => cluster.client.get_async_connection().await.map(Commands::Cluster),
        }
    }

    /// A new Pub/Sub connection: to the server, to the master Sentinel names
    /// now, or to the next cluster node in turn. The caller bounds it in time.
    pub(super) async fn pubsub(&self) -> RedisResult<PubSub> {
        match self {
            Topology::Single(client) => client.get_async_pubsub().await,
            Topology::Sentinel(master) => master.resolve().await?.get_async_pubsub().await,
            Topology::Cluster(cluster) => {
                let turn = cluster.next_pubsub.fetch_add(1, Ordering::Relaxed);
                let node = cluster.nodes.get(turn % cluster.nodes.len().max(1)).ok_or_else(|| {
                    RedisError::from((ErrorKind::InvalidClientConfig, "a cluster url without nodes"))
                })?;
                redis::Client::open(node.clone())?.get_async_pubsub().await
            }
        }
    }
}

impl SentinelMaster {
    fn new(parsed: ParsedUrl, tls: bool, options: &RedisBusOptions) -> RedisResult<SentinelMaster> {
        let master_name = parsed.path.trim_matches('/').to_owned();
        if master_name.is_empty() || master_name.contains('/') {
            return Err(invalid("a sentinel url needs the master name as its path", &parsed.path));
        }
        let mut db = 0;
        let mut sentinel_password = None;
        let mut sentinel_username = None;
        for (key, value) in &parsed.query {
            match key.as_str() {
                "db" => db = value.parse().map_err(|_| invalid("db is not a number", value))?,
                "sentinel_password" => sentinel_password = Some(value.clone()),
                "sentinel_username" => sentinel_username = Some(value.clone()),
                _ => return Err(invalid("unknown sentinel url parameter", key)),
            }
        }
        let sentinels = parsed
            .hosts
            .iter()
            .map(|(host, port)| ConnectionInfo {
                addr: ConnectionAddr::Tcp(host.clone(), *port),
                redis: RedisConnectionInfo {
                    username: sentinel_username.clone(),
                    password: sentinel_password.clone(),
                    ..RedisConnectionInfo::default()
                },
            })
            .collect();
        let node = SentinelNodeConnectionInfo {
            tls_mode: tls.then_some(TlsMode::Secure),
            redis_connection_info: Some(RedisConnectionInfo {
                db,
                username: parsed.username.clone(),
                password: parsed.password.clone(),
                ..RedisConnectionInfo::default()
            }),
        };
        Ok(SentinelMaster {
            sentinels,
            master_name,
            node,
            db,
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            current: Mutex::new(None),
            resolving: tokio::sync::Mutex::new(()),
            generations: AtomicU64::new(0),
        })
    }

    /// Asks the sentinels for the master (the crate checks its `ROLE` too) and
    /// returns a client for it, within about twice the connect timeout.
    async fn resolve(&self) -> RedisResult<redis::Client> {
        let bound = self.connect_timeout * 2 + self.response_timeout;
        let ask = async {
            // A fresh sentinel client per resolution: no cached connection to a
            // sentinel that has died since.
            let mut sentinel = SentinelClient::build(
                self.sentinels.clone(),
                self.master_name.clone(),
                Some(self.node.clone()),
                SentinelServerType::Master,
            )?;
            sentinel.async_get_client().await
        };
        match tokio::time::timeout(bound, ask).await {
            Ok(client) => client,
            Err(_) => Err(RedisError::from((
                ErrorKind::IoError,
                "no master from the sentinels in time",
                format!("master {} within {bound:?}", self.master_name),
            ))),
        }
    }

    /// The current command connection, resolving the master when there is none.
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return Ok(current);
        }
        let _resolving = self.resolving.lock().await;
        if let Some(current) = self.current.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return Ok(current);
        }
        let client = self.resolve().await?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.response_timeout);
        let connection = client.get_multiplexed_async_connection_with_config(&config).await?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            master = %self.master_name,
            address = %client.get_connection_info().addr,
            "bus connected to the master named by sentinel"
        );
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some((generation, connection.clone()));
        Ok((generation, connection))
    }

    /// Drops the command connection of `generation` (if still current).
    fn forget(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|(current, _)| *current == generation) {
            *current = None;
        }
    }
}

impl ClusterNodes {
    fn new(parsed: ParsedUrl, tls: bool, options: &RedisBusOptions) -> RedisResult<ClusterNodes> {
        if !matches!(parsed.path.as_str(), "" | "/" | "/0") {
            return Err(invalid("a cluster has only database 0", &parsed.path));
        }
        if let Some((key, _)) = parsed.query.first() {
            return Err(invalid("unknown cluster url parameter", key));
        }
        let nodes: Vec<ConnectionInfo> = parsed
            .hosts
            .iter()
            .map(|(host, port)| ConnectionInfo {
                addr: if tls {
                    ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host.clone(), *port)
                },
                redis: RedisConnectionInfo {
                    username: parsed.username.clone(),
                    password: parsed.password.clone(),
                    ..RedisConnectionInfo::default()
                },
            })
            .collect();
        let client = ClusterClient::builder(nodes.clone())
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.response_timeout)
            // Callers retry with their own backoff; a few quick retries cover
            // a MOVED/ASK or a node that just restarted.
            .retries(3)
            .max_retry_wait(1000)
            .build()?;
        Ok(ClusterNodes { client, nodes, next_pubsub: AtomicUsize::new(0) })
    }
}

/// The command handle [`super::redis`] uses: a [`ConnectionLike`], so scripts
/// and commands run on it unchanged whatever the topology. Cheap to clone.
#[derive(Clone)]
pub(super) enum Commands {
    /// One server (reconnects by itself).
    Single(ConnectionManager),
    /// The Sentinel master.
    Sentinel(SentinelCommands),
    /// A cluster (routes by key, follows MOVED, reconnects by itself).
    Cluster(ClusterConnection),
}

/// Commands to the Sentinel master. A clone starts unpinned; its first
/// command pins the connection current then, so a later [`Commands::replicate`]
/// waits on the connection that carried the write.
#[derive(Clone)]
pub(super) struct SentinelCommands {
    /// The shared master state.
    master: Arc<SentinelMaster>,
    /// The connection this handle uses, with its generation.
    pinned: Option<(u64, MultiplexedConnection)>,
}

impl SentinelCommands {
    /// The pinned connection, pinning the master's current one first if needed.
    async fn pin(&mut self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(pinned) = &self.pinned {
            return Ok(pinned.clone());
        }
        let pinned = self.master.connection().await?;
        self.pinned = Some(pinned.clone());
        Ok(pinned)
    }

    /// Drops the connection of `generation` when `result` says it is no good.
    fn check<T>(&mut self, generation: u64, result: &RedisResult<T>) {
        if let Err(error) = result {
            if topology_changed(error) {
                tracing::debug!(error = %error, "dropping the sentinel master connection");
                self.master.forget(generation);
                self.pinned = None;
            }
        }
    }

    async fn command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        let (generation, mut connection) = self.pin().await?;
        let result = connection.req_packed_command(cmd).await;
        self.check(generation, &result);
        result
    }

    async fn commands(&mut self, cmd: &Pipeline, offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        let (generation, mut connection) = self.pin().await?;
        let result = connection.req_packed_commands(cmd, offset, count).await;
        self.check(generation, &result);
        result
    }
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Commands::Single(connection) => connection.req_packed_command(cmd),
            // The crate sends SCRIPT LOAD (after a NOSCRIPT) to every node, which
            // fails while any node is down; every bus script runs on the node of
            // `observations:log`, so load it there only.
            Commands::Cluster(connection) => {
                if is_script_load(cmd) {
                    Box::pin(async move { connection.route_command(cmd, log_route()).await })
                } else {
                    connection.req_packed_command(cmd)
                }
            }
            Commands::Sentinel(sentinel) => Box::pin(sentinel.command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Commands::Single(connection) => connection.req_packed_commands(cmd, offset, count),
            Commands::Cluster(connection) => connection.req_packed_commands(cmd, offset, count),
            Commands::Sentinel(sentinel) => Box::pin(sentinel.commands(cmd, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Commands::Single(connection) => connection.get_db(),
            Commands::Cluster(connection) => connection.get_db(),
            Commands::Sentinel(sentinel) => sentinel.master.db,
        }
    }
}

impl Commands {
    /// After a write on this handle: on a Sentinel master that has replicas,
    /// `WAIT 1 <timeout>` on the connection that wrote, so a write reported
    /// done is on a replica before a failover can lose it. A replica that
    /// does not acknowledge in time fails the call ([`Error::Timeout`]); the
    /// caller retries (the idempotent publish prevents duplicates). One
    /// server and Cluster: nothing to do.
    pub(super) async fn replicate(&mut self, timeout: Duration) -> Result<(), Error> {
        let Commands::Sentinel(sentinel) = self else {
            return Ok(());
        };
        if sentinel.pinned.is_none() {
            return Err(Error::Reply { command: "WAIT", detail: "no write on this connection".to_owned() });
        }
        let role: Role = redis::cmd("ROLE")
            .query_async(&mut *self)
            .await
            .map_err(|source| Error::Command { command: "ROLE", source })?;
        let replicas = match role {
            Role::Primary { replicas, .. } => replicas.len(),
            other => {
                if let Commands::Sentinel(sentinel) = self {
                    if let Some((generation, _)) = sentinel.pinned.take() {
                        sentinel.master.forget(generation);
                    }
                }
                return Err(Error::Reply {
                    command: "ROLE",
                    detail: format!("not a master any more: {other:?}"),
                });
            }
        };
        if replicas == 0 {
            return Ok(());
        }
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        let acknowledged: u64 = redis::cmd("WAIT")
            .arg(1)
            .arg(millis)
            .query_async(&mut *self)
            .await
            .map_err(|source| Error::Command { command: "WAIT", source })?;
        if acknowledged == 0 {
            return Err(Error::Timeout { command: "WAIT", after: timeout });
        }
        Ok(())
    }
}

/// Whether `cmd` is `SCRIPT LOAD …`.
fn is_script_load(cmd: &Cmd) -> bool {
    let mut args = cmd.args_iter().map(|arg| match arg {
        redis::Arg::Simple(bytes) => bytes,
        redis::Arg::Cursor => b"".as_slice(),
    });
    matches!((args.next(), args.next()), (Some(script), Some(load))
        if script.eq_ignore_ascii_case(b"SCRIPT") && load.eq_ignore_ascii_case(b"LOAD"))
}

/// The primary of the slot of `observations:log` (where every bus script runs).
fn log_route() -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
        key_slot(super::LOG_KEY.as_bytes()),
        SlotAddr::Master,
    )))
}

/// The cluster slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag
/// (the text between the first `{` and the next `}`, when not empty), mod 16384.
fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|byte| *byte == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|byte| *byte == b'}').filter(|close| *close > 0).map(|close| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for byte in hashed {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}

/// Whether `error` means the master connection is no good any more: lost,
/// timed out, or the server is no longer (or not yet) a writable master.
fn topology_changed(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || matches!(error.kind(), ErrorKind::ReadOnly | ErrorKind::MasterDown | ErrorKind::BusyLoadingError)
        || error.code().is_some_and(|code| matches!(code, "READONLY" | "MASTERDOWN" | "LOADING"))
}

/// The pieces of a `redis+sentinel://` or `redis+cluster://` URL.
#[derive(Debug, PartialEq)]
struct ParsedUrl {
    /// Percent-decoded user name, if any.
    username: Option<String>,
    /// Percent-decoded password, if any.
    password: Option<String>,
    /// `(host, port)` in URL order (at least one).
    hosts: Vec<(String, u16)>,
    /// The path, with its leading `/` (may be empty).
    path: String,
    /// Percent-decoded query pairs.
    query: Vec<(String, String)>,
}

impl ParsedUrl {
    fn parse(url: &str, default_port: u16) -> RedisResult<ParsedUrl> {
        let (_, rest) = url.split_once("://").ok_or_else(|| invalid("not a url", "missing ://"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, query),
            None => (rest, ""),
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => match userinfo.split_once(':') {
                Some((user, password)) => (non_empty(percent_decode(user)?), Some(percent_decode(password)?)),
                // A lone user part is a user name, as the redis crate reads `redis://user@host`.
                None => (non_empty(percent_decode(userinfo)?), None),
            },
        };
        let hosts =
            hosts.split(',').map(|host| parse_host(host, default_port)).collect::<RedisResult<Vec<_>>>()?;
        let query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((percent_decode(key)?, percent_decode(value)?))
            })
            .collect::<RedisResult<Vec<_>>>()?;
        Ok(ParsedUrl { username, password, hosts, path: percent_decode(path)?, query })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_host(text: &str, default_port: u16) -> RedisResult<(String, u16)> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(|| invalid("unclosed [ in host", text))?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(|| invalid("bad host", text))?)),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("empty host", text));
    }
    let port = match port {
        None => default_port,
        Some(port) => port.parse().map_err(|_| invalid("bad port", text))?,
    };
    Ok((host.to_owned(), port))
}

/// Decodes `%XX` escapes.
fn percent_decode(text: &str) -> RedisResult<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|hex| std::str::from_utf8(hex).ok());
            let byte = hex.and_then(|hex| u8::from_str_radix(hex, 16).ok());
            // The offending text may be a password: never put it in the error.
            out.push(byte.ok_or_else(|| invalid("bad percent escape", "%"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("percent escapes are not UTF-8", "(hidden)"))
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn invalid(what: &'static str, detail: &str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, what, detail.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_parse() {
        let parsed = ParsedUrl::parse(
            "redis+sentinel://:p%40ss@10.0.0.1,10.0.0.2:26380,[::1]:5000/mymaster?db=2&sentinel_password=s",
            SENTINEL_PORT,
        )
        .expect("valid url");
        assert_eq!(
            parsed,
            ParsedUrl {
                username: None,
                password: Some("p@ss".to_owned()),
                hosts: vec![
                    ("10.0.0.1".to_owned(), 26379),
                    ("10.0.0.2".to_owned(), 26380),
                    ("::1".to_owned(), 5000)
                ],
                path: "/mymaster".to_owned(),
                query: vec![
                    ("db".to_owned(), "2".to_owned()),
                    ("sentinel_password".to_owned(), "s".to_owned())
                ],
            }
        );
        let options = RedisBusOptions::default();
        let Ok(Topology::Sentinel(master)) = Topology::parse(
            "redis+sentinel://user:pw@h1,h2:26380/mymaster?db=2&sentinel_password=s",
            &options,
        ) else {
            panic!("a sentinel topology");
        };
        assert_eq!(master.master_name, "mymaster");
        assert_eq!(master.db, 2);
        assert_eq!(master.sentinels.len(), 2);
        assert_eq!(master.sentinels[1].addr, ConnectionAddr::Tcp("h2".to_owned(), 26380));
        assert_eq!(master.sentinels[1].redis.password.as_deref(), Some("s"));
        let node = master.node.redis_connection_info.clone().expect("node info");
        assert_eq!(
            (node.username.as_deref(), node.password.as_deref(), node.db),
            (Some("user"), Some("pw"), 2)
        );
    }

    #[test]
    fn bad_sentinel_and_cluster_urls_are_refused_without_the_password() {
        let options = RedisBusOptions::default();
        for bad in [
            "redis+sentinel://:hunter2@h1:26379",
            "redis+sentinel://:hunter2@h1:26379/",
            "redis+sentinel://:hunter2@h1:notaport/m",
            "redis+sentinel://:hunter2@h1/m?db=x",
            "redis+sentinel://:hunter2@h1/m?foo=1",
            "redis+sentinel://:hunter2@,h2/m",
            "redis+cluster://:hunter2@h1,h2/3",
            "redis+cluster://:hunter2@h1:70000",
            "redis+cluster://:hunter2%zz@h1",
        ] {
            match Topology::parse(bad, &options) {
                Ok(_) => panic!("{bad} should be refused"),
                Err(error) => assert!(!error.to_string().contains("hunter2"), "{bad}: {error}"),
            }
        }
    }

    #[test]
    fn publish_marks_hash_to_the_slot_of_the_log() {
        // In a Cluster the publish script runs on the node of `observations:log`;
        // the marks it touches must hash to the same slot (hash tag = the log key).
        let prefix = super::super::redis::PUBLISHED_MARK_PREFIX;
        assert!(prefix.starts_with(&format!("{{{}}}", super::super::LOG_KEY)), "{prefix}");
    }

    #[test]
    fn key_slots_are_the_cluster_hash_slots() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag does not count: the whole key is hashed.
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"{observations:log}:pub:41002:x"), key_slot(b"observations:log"));
    }

    #[test]
    fn cluster_urls_parse() {
        let options = RedisBusOptions::default();
        let Ok(Topology::Cluster(cluster)) = Topology::parse("redis+cluster://:pw@a:7000,b:7001,c", &options)
        else {
            panic!("a cluster topology");
        };
        let addrs: Vec<String> = cluster.nodes.iter().map(|node| node.addr.to_string()).collect();
        assert_eq!(addrs, ["a:7000", "b:7001", "c:6379"]);
        assert!(cluster.nodes.iter().all(|node| node.redis.password.as_deref() == Some("pw")));
        assert!(matches!(Topology::parse("redis://127.0.0.1:6379/1", &options), Ok(Topology::Single(_))));
    }
}
