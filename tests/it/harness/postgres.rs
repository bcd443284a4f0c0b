//! A throw-away PostgreSQL 15 for the integration tests: one cluster per test
//! binary, one database per test.
//!
//! The cluster starts on first use (`initdb` into a temp dir, `postgres` on a
//! free 127.0.0.1 port, trust auth, fsync off). The migrations are applied
//! once, into a template database; each [`test_database`] is a
//! `CREATE DATABASE t_<uuid> TEMPLATE buoycast_template` copy, so tests run
//! in parallel without seeing each other's rows.
//!
//! Statics are never dropped, so the cluster's life is tied to the test
//! process by a watchdog shell: when the test process is gone (passed, failed,
//! panicked or killed) it stops `postgres` and removes the temp dir.
//!
//! PostgreSQL refuses to run as root; when the tests do (CI), `initdb` and
//! `postgres` run as the `postgres` user on a directory chowned to it.
//!
//! It is not a mock: every query goes to a real server.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::OnceCell;

/// The PostgreSQL binaries (Debian layout; also on PATH).
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The database the migrations are applied to, which every test copies.
const TEMPLATE: &str = "buoycast_template";
/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The running cluster (plain data: it must outlive every test's runtime).
pub struct Cluster {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Temp dir holding the data directory and `postgres.log`.
    pub dir: PathBuf,
    /// The `postgres` process and its watchdog. Never waited on: they outlive
    /// this process by design (the watchdog stops postgres once we are gone).
    processes: Option<(Child, Child)>,
}

impl Cluster {
    /// A URL for database `db` on this cluster (user `postgres`, no password).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The server's log so far (for panic messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

/// A database of its own for one test, migrated (or empty, see [`empty_database`]).
///
/// The database is left behind when this is dropped; it dies with the cluster.
pub struct TestDb {
    /// `postgres://postgres@127.0.0.1:PORT/t_<uuid>`.
    pub url: String,
    /// The database name.
    pub name: String,
}

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();

/// The cluster, started (and the template migrated) on first use.
pub async fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start_cluster).await
}

/// A URL for database `db` on the cluster, starting it if needed.
pub async fn cluster_url(db: &str) -> String {
    cluster().await.url(db)
}

/// A fresh database with every migration applied.
pub async fn test_database() -> TestDb {
    create_database(TEMPLATE).await
}

/// A fresh database without any table (for testing migrations themselves).
pub async fn empty_database() -> TestDb {
    create_database("template0").await
}

async fn create_database(template: &str) -> TestDb {
    let cluster = cluster().await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap_or_else(|error| panic!("connecting to the test cluster: {error}\n{}", cluster.log()));
    conn.execute(format!("CREATE DATABASE {name} TEMPLATE {template}").as_str())
        .await
        .unwrap_or_else(|error| panic!("creating database {name}: {error}\n{}", cluster.log()));
    let _ = conn.close().await;
    TestDb { url: cluster.url(&name), name }
}

async fn start_cluster() -> Cluster {
    let cluster =
        tokio::task::spawn_blocking(start_server).await.expect("the cluster start-up thread panicked");
    // Apply the migrations once, into the template every test database copies.
    let mut conn =
        PgConnection::connect(&cluster.url("postgres")).await.expect("connecting to the new cluster");
    conn.execute(format!("CREATE DATABASE {TEMPLATE}").as_str())
        .await
        .expect("creating the template database");
    let _ = conn.close().await;
    let store = buoycast::store::Store::connect(&cluster.url(TEMPLATE), Default::default())
        .await
        .unwrap_or_else(|error| panic!("connecting to the template: {error}\n{}", cluster.log()));
    store
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("migrating the template: {error}\n{}", cluster.log()));
    // CREATE DATABASE … TEMPLATE refuses while anyone is connected to the template.
    store.close().await;
    cluster
}

/// The uid and gid of the `postgres` user, when we are root and must switch to it.
fn run_as() -> Option<(u32, u32)> {
    let euid = Command::new("id").arg("-u").output().expect("running id -u");
    if String::from_utf8_lossy(&euid.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
    let entry = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .expect("running as root needs a `postgres` user to run PostgreSQL as");
    let fields: Vec<&str> = entry.split(':').collect();
    let uid = fields[2].parse().expect("numeric uid in /etc/passwd");
    let gid = fields[3].parse().expect("numeric gid in /etc/passwd");
    Some((uid, gid))
}

fn pg_command(program: &str, user: Option<(u32, u32)>, dir: &Path) -> Command {
    let mut command = Command::new(Path::new(BIN_DIR).join(program));
    command.current_dir(dir).env_remove("PGDATA").env_remove("PGPORT").env_remove("PGHOST");
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

/// initdb, then postgres plus its watchdog. Blocking.
fn start_server() -> Cluster {
    let started = Instant::now();
    let dir = tempfile::Builder::new().prefix("buoycast-pg-").tempdir().expect("creating a temp dir").keep();
    let user = run_as();
    if let Some((uid, gid)) = user {
        let status =
            Command::new("chown").arg(format!("{uid}:{gid}")).arg(&dir).status().expect("running chown");
        assert!(status.success(), "chown {} to postgres failed", dir.display());
    }
    let data = dir.join("data");
    let output = pg_command("initdb", user, &dir)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync", "-D"])
        .arg(&data)
        .output()
        .expect("running initdb");
    assert!(
        output.status.success(),
        "initdb failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // A free port can be taken by someone else before postgres binds it: retry.
    let mut last_log = String::new();
    for _attempt in 0..3 {
        let port = super::free_port();
        let mut cluster = Cluster { port, dir: dir.clone(), processes: None };
        let log = std::fs::File::create(dir.join("postgres.log")).expect("creating postgres.log");
        let mut server = pg_command("postgres", user, &dir)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=256MB", "-c", "max_wal_size=4GB"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        let mut watchdog = spawn_watchdog(server.id(), &dir);
        match wait_until_ready(&mut server, port) {
            Ok(()) => {
                tracing::debug!(port, elapsed_ms = started.elapsed().as_millis() as u64, "test postgres up");
                cluster.processes = Some((server, watchdog));
                return cluster;
            }
            Err(reason) => {
                // The watchdog first: it would remove the directory the next attempt reuses.
                let _ = watchdog.kill();
                let _ = watchdog.wait();
                let _ = server.kill();
                let _ = server.wait();
                last_log = format!("{reason}\n{}", cluster.log());
            }
        }
    }
    panic!("postgres did not start:\n{last_log}");
}

/// Stops postgres (and removes `dir`) once this test process has exited.
///
/// Runs as the current user (so it may signal both processes), detached from
/// our stdio so that nothing waits on it.
fn spawn_watchdog(postgres_pid: u32, dir: &Path) -> Child {
    let script = r#"
        while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 0.5; done
        kill -INT "$2" 2>/dev/null
        i=0
        while kill -0 "$2" 2>/dev/null && [ "$i" -lt 40 ]; do sleep 0.25; i=$((i + 1)); done
        kill -KILL "$2" 2>/dev/null
        rm -rf "$3"
    "#;
    Command::new("sh")
        .args(["-c", script, "buoycast-pg-watchdog"])
        .arg(std::process::id().to_string())
        .arg(postgres_pid.to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the postgres watchdog")
}

/// Waits until postgres accepts a TCP connection and answers a startup packet.
fn wait_until_ready(server: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = server.try_wait().map_err(|error| error.to_string())? {
            return Err(format!("postgres exited with {status}"));
        }
        if answers_startup(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("postgres did not accept connections within {START_TIMEOUT:?}"))
}

/// Whether the server on `port` accepts a connection for user `postgres`.
///
/// Sends a protocol-3 startup message and expects an authentication request
/// (`R`); while starting up the server answers with an error (`E`) instead.
fn answers_startup(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut body = Vec::new();
    body.extend_from_slice(&196_608_u32.to_be_bytes()); // protocol 3.0
    body.extend_from_slice(b"user\0postgres\0database\0postgres\0\0");
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    if stream.write_all(&message).is_err() {
        return false;
    }
    let mut kind = [0_u8; 1];
    matches!(stream.read_exact(&mut kind), Ok(()) if kind[0] == b'R')
}
