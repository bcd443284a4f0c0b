//! Throw-away Redis Sentinel and Redis Cluster setups from Debian's
//! `redis-server` (a sentinel is the same binary with `--sentinel`): free
//! ports, one temp dir per setup, every process killed by pid on drop (even
//! when the test panics), every log in panic messages, every wait bounded.
//!
//! - [`SentinelSetup`]: one master, one replica, one sentinel monitoring them
//!   as `m` (quorum 1, down after 1 s, failover timeout 3 s).
//! - [`ClusterSetup`]: three masters, no replicas, slots assigned with
//!   `redis-cli --cluster create`, `cluster-require-full-coverage no`.
//!
//! It only ever signals the processes it spawned; it never looks processes up
//! by name. It is not a Redis client for the code under test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process may take to answer PING after being spawned.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// How long a setup may take to settle (replica in sync, cluster ok, failover).
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// The master name the sentinel monitors.
pub const MASTER_NAME: &str = "m";

/// One spawned redis-server (data node or sentinel).
struct Node {
    /// What it is, for logs (`master`, `replica`, `sentinel`, `node1`…).
    name: String,
    /// Its client port.
    port: u16,
    /// Its log file.
    log: PathBuf,
    /// The process, while running.
    child: Option<Child>,
}

impl Node {
    /// Spawns `redis-server` with `config` (written to `{dir}/{name}.conf`)
    /// and `extra` arguments, on fresh ports; retries when a port was taken
    /// in between. `config` gets `port`, `bind`, `dir`, `logfile` added.
    fn spawn(dir: &Path, name: &str, config: impl Fn(u16) -> String, extra: &[&str]) -> Node {
        let log = dir.join(format!("{name}.log"));
        for attempt in 1..=5 {
            let port = super::free_port();
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\ndaemonize no\n{}\n",
                dir.display(),
                log.display(),
                config(port)
            );
            let conf = dir.join(format!("{name}.conf"));
            std::fs::write(&conf, text).expect("write a redis config");
            let child = Command::new("redis-server")
                .arg(&conf)
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut node = Node { name: name.to_owned(), port, log: log.clone(), child: Some(child) };
            match node.wait_ready() {
                Ok(()) => return node,
                Err(reason) if attempt < 5 && reason.contains("in use") => continue,
                Err(reason) => {
                    panic!("{name} did not start: {reason}\n--- {name} log ---\n{}", node.log_text())
                }
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if query_sync(self.port, &redis::cmd("PING")).is_ok() {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                let reason = if self.log_text().contains("in use") { "port in use" } else { "exited" };
                return Err(format!("{reason} ({status}) on port {}", self.port));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("no PONG within {READY_WITHIN:?} on port {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: wait() reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|error| format!("(no log: {error})"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs one command on `127.0.0.1:port` over a short-lived blocking connection.
fn query_sync(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(1))?;
    connection.set_read_timeout(Some(Duration::from_secs(2)))?;
    cmd.query(&mut connection)
}

/// Runs one command on `127.0.0.1:port` over a short-lived async connection.
async fn query_async(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(Duration::from_secs(2));
    let mut connection = client.get_multiplexed_async_connection_with_config(&config).await?;
    cmd.query_async(&mut connection).await
}

/// A bulk or simple string reply as text.
fn text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        redis::Value::SimpleString(text) => Some(text.clone()),
        redis::Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// One master, one replica, one sentinel.
pub struct SentinelSetup {
    /// The data node that starts as master.
    master: Node,
    /// The data node that starts as replica.
    replica: Node,
    /// The sentinel.
    sentinel: Node,
    /// Configs, logs, data; removed on drop (after the nodes, declared last).
    dir: tempfile::TempDir,
}

impl SentinelSetup {
    /// Starts the three processes and waits until the replica is in sync and
    /// the sentinel knows both data nodes.
    pub fn start() -> SentinelSetup {
        super::init_logs();
        let dir = tempfile::Builder::new().prefix("buoycast-sentinel-").tempdir().expect("temp dir");
        let data = |_: u16| "save \"\"\nappendonly no\n".to_owned();
        let master = Node::spawn(dir.path(), "master", data, &[]);
        let master_port = master.port;
        let replica = Node::spawn(
            dir.path(),
            "replica",
            move |_| format!("save \"\"\nappendonly no\nreplicaof 127.0.0.1 {master_port}\n"),
            &[],
        );
        let sentinel = Node::spawn(
            dir.path(),
            "sentinel",
            move |_| {
                format!(
                    "sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 2000\n\
                     sentinel failover-timeout {MASTER_NAME} 3000\n"
                )
            },
            &["--sentinel"],
        );
        let setup = SentinelSetup { master, replica, sentinel, dir };
        setup.wait_settled();
        setup
    }

    /// `redis+sentinel://127.0.0.1:{sentinel}/m`.
    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{MASTER_NAME}", self.sentinel.port)
    }

    /// The port of the data node that started as master.
    pub fn master_port(&self) -> u16 {
        self.master.port
    }

    /// The port of the data node that started as replica.
    pub fn replica_port(&self) -> u16 {
        self.replica.port
    }

    /// Kills the master (SIGKILL, like a crash), once the replica has
    /// everything the master wrote (so what the test counts on is there even
    /// if a loaded machine briefly dropped the replication link, during which
    /// a publish is acknowledged without waiting for a replica).
    pub fn kill_master(&mut self) {
        let offset = |port: u16, field: &str| -> Option<u64> {
            let info = query_sync(port, redis::cmd("INFO").arg("replication")).ok().and_then(|v| text(&v))?;
            info.lines().find_map(|line| line.strip_prefix(field)?.trim().parse().ok())
        };
        let deadline = Instant::now() + SETTLE_WITHIN;
        loop {
            let written = offset(self.master.port, "master_repl_offset:");
            let copied = offset(self.replica.port, "slave_repl_offset:");
            if written.is_some() && written == copied {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not catch up within {SETTLE_WITHIN:?} (master {written:?}, replica {copied:?})\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.master.kill();
    }

    /// Waits (without blocking the runtime) until the sentinel names the
    /// former replica as master and the replica says it is one.
    pub async fn wait_for_failover(&self) {
        let deadline = Instant::now() + SETTLE_WITHIN;
        let mut ask = redis::cmd("SENTINEL");
        ask.arg("get-master-addr-by-name").arg(MASTER_NAME);
        loop {
            let named = query_async(self.sentinel.port, &ask).await.ok().and_then(|reply| match reply {
                redis::Value::Array(parts) => parts.get(1).and_then(text),
                _ => None,
            });
            let role =
                query_async(self.replica.port, &redis::cmd("ROLE")).await.ok().and_then(
                    |reply| match reply {
                        redis::Value::Array(parts) => parts.first().and_then(text),
                        _ => None,
                    },
                );
            if named == Some(self.replica.port.to_string()) && role.as_deref() == Some("master") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no failover within {SETTLE_WITHIN:?} (sentinel names port {named:?}, replica role {role:?})\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every process's log, for panic messages.
    pub fn logs(&self) -> String {
        [&self.master, &self.replica, &self.sentinel]
            .iter()
            .map(|node| format!("--- {} log (port {}) ---\n{}", node.name, node.port, node.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn wait_settled(&self) {
        let deadline = Instant::now() + SETTLE_WITHIN;
        let mut replicas = redis::cmd("SENTINEL");
        replicas.arg("replicas").arg(MASTER_NAME);
        loop {
            let in_sync = query_sync(self.replica.port, redis::cmd("INFO").arg("replication"))
                .ok()
                .and_then(|reply| text(&reply))
                .is_some_and(|info| info.contains("master_link_status:up"));
            let known = query_sync(self.sentinel.port, &replicas).ok().is_some_and(|reply| match reply {
                redis::Value::Array(list) => list.iter().any(|entry| {
                    format!("{entry:?}").contains(&self.replica.port.to_string())
                        && !format!("{entry:?}").contains("s_down")
                }),
                _ => false,
            });
            if in_sync && known {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sentinel setup did not settle within {SETTLE_WITHIN:?} (replica in sync: {in_sync}, \
                 known to the sentinel: {known})\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Three cluster masters without replicas.
pub struct ClusterSetup {
    /// The nodes, in creation order.
    nodes: Vec<Node>,
    /// Configs, logs, node files; removed on drop.
    dir: tempfile::TempDir,
}

impl ClusterSetup {
    /// Starts three nodes, creates the cluster, waits for `cluster_state:ok` on every node.
    pub fn start() -> ClusterSetup {
        super::init_logs();
        let dir = tempfile::Builder::new().prefix("buoycast-cluster-").tempdir().expect("temp dir");
        let nodes: Vec<Node> = (1..=3)
            .map(|n| {
                let name = format!("node{n}");
                let config_file = dir.path().join(format!("nodes-{n}.conf"));
                Node::spawn(
                    dir.path(),
                    &name,
                    move |_| {
                        // The cluster bus gets its own free port (not port + 10000).
                        format!(
                            "save \"\"\nappendonly no\ncluster-enabled yes\ncluster-config-file {}\n\
                             cluster-port {}\ncluster-node-timeout 5000\ncluster-require-full-coverage no\n",
                            config_file.display(),
                            super::free_port()
                        )
                    },
                    &[],
                )
            })
            .collect();
        let setup = ClusterSetup { nodes, dir };
        setup.create();
        setup.wait_ok();
        setup
    }

    /// `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The client ports, in creation order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// The port of the node that serves `key`'s slot.
    pub fn owner_of(&self, key: &str) -> u16 {
        let port = self.nodes[0].port;
        let slot = match query_sync(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)) {
            Ok(redis::Value::Int(slot)) => slot,
            other => panic!("CLUSTER KEYSLOT {key}: {other:?}\n{}", self.logs()),
        };
        let shards = query_sync(port, redis::cmd("CLUSTER").arg("SLOTS")).expect("CLUSTER SLOTS");
        let redis::Value::Array(ranges) = shards else { panic!("CLUSTER SLOTS: {shards:?}") };
        for range in ranges {
            let redis::Value::Array(parts) = range else { continue };
            if let [redis::Value::Int(first), redis::Value::Int(last), redis::Value::Array(master), ..] =
                parts.as_slice()
            {
                if (*first..=*last).contains(&slot) {
                    if let Some(redis::Value::Int(owner)) = master.get(1) {
                        return u16::try_from(*owner).expect("a port");
                    }
                }
            }
        }
        panic!("no node serves slot {slot}\n{}", self.logs())
    }

    /// Kills the node listening on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        self.nodes.iter_mut().find(|node| node.port == port).expect("a node of this cluster").kill();
    }

    /// Every node's log, for panic messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("--- {} log (port {}) ---\n{}", node.name, node.port, node.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn create(&self) {
        let mut command = Command::new("redis-cli");
        command.arg("--cluster").arg("create");
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port));
        }
        let output_path = self.dir.path().join("create.out");
        let output = std::fs::File::create(&output_path).expect("create.out");
        let mut child = command
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("clone file handle"))
            .stderr(output)
            .spawn()
            .expect("spawn redis-cli");
        let deadline = Instant::now() + SETTLE_WITHIN;
        let status = loop {
            if let Some(status) = child.try_wait().expect("poll redis-cli") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-cli --cluster create took over {SETTLE_WITHIN:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = std::fs::read_to_string(&output_path).unwrap_or_default();
        assert!(status.success(), "redis-cli --cluster create failed ({status}):\n{out}\n{}", self.logs());
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + SETTLE_WITHIN;
        loop {
            let states: Vec<bool> = self
                .nodes
                .iter()
                .map(|node| {
                    query_sync(node.port, redis::cmd("CLUSTER").arg("INFO"))
                        .ok()
                        .and_then(|reply| text(&reply))
                        .is_some_and(|info| info.contains("cluster_state:ok"))
                })
                .collect();
            if states.iter().all(|ok| *ok) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ok within {SETTLE_WITHIN:?} ({states:?})\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
