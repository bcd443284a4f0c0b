//! A throw-away `redis-server` per test: free port, fresh temp dir, no RDB
//! snapshots, optional AOF persistence (for restart tests), killed by pid on
//! drop (even when the test panics). Its log is put in every panic message.
//!
//! It only ever signals the one process it spawned; it never looks processes
//! up by name. It is not a Redis client: tests use the `redis` crate for that.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a server is started.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisOptions {
    /// `appendonly yes` + `appendfsync always`: every write survives a kill
    /// (SIGKILL) and a [`RedisServer::restart`].
    pub persistence: bool,
    /// Also a TLS port ([`RedisServer::tls_url`]) with a certificate for
    /// `localhost` and `127.0.0.1` from a throw-away CA ([`RedisServer::ca_file`]),
    /// made with the `openssl` command.
    pub tls: bool,
}

/// One running (or stopped) redis-server owned by a test.
pub struct RedisServer {
    /// The port it listens on (kept across restarts).
    port: u16,
    /// Its working directory (AOF files, log); removed on drop.
    dir: tempfile::TempDir,
    /// How it was started.
    options: RedisOptions,
    /// The process, while running.
    child: Option<Child>,
    /// The TLS port, with [`RedisOptions::tls`].
    tls_port: Option<u16>,
}

/// How long a server may take to answer PING after being spawned.
const READY_WITHIN: Duration = Duration::from_secs(10);

impl RedisServer {
    /// Starts a server without persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(RedisOptions::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: RedisOptions) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("buoycast-redis-")
            .tempdir()
            .expect("create a temp dir for redis");
        if options.tls {
            make_certificates(dir.path());
        }
        let mut server = RedisServer { port: 0, dir, options, child: None, tls_port: None };
        // free_port() releases the port before redis binds it, so another test
        // may take it in between: try a few ports before giving up.
        for attempt in 1..=5 {
            server.port = super::free_port();
            server.tls_port = options.tls.then(super::free_port);
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(reason) if attempt < 5 && reason.contains("in use") => continue,
                Err(reason) => panic!("redis-server did not start: {reason}\n--- log ---\n{}", server.log()),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://localhost:{tls port}` (with [`RedisOptions::tls`]).
    pub fn tls_url(&self) -> String {
        format!("rediss://localhost:{}", self.tls_port.expect("started with tls"))
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Adds a user `admin` with every permission and returns its URL, so a
    /// test can take permissions away from `default` (the gateway's user).
    pub fn admin_url(&self) -> String {
        command(&self.url(), &["ACL", "SETUSER", "admin", "on", ">secret", "~*", "&*", "+@all"]);
        self.url().replacen("redis://", "redis://admin:secret@", 1)
    }

    /// Kills the server (SIGKILL, like a crash) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: wait() below reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port and directory;
    /// with [`RedisOptions::persistence`] the data survives.
    pub fn restart(&mut self) {
        self.stop();
        // The port was just released by our own process; retry briefly if the
        // kernel has not freed it yet.
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(reason) if reason.contains("in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(reason) => panic!("redis-server did not restart: {reason}\n--- log ---\n{}", self.log()),
            }
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers,
    /// like a silently dead peer.
    pub fn pause(&mut self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&mut self) {
        self.signal("-CONT");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_else(|error| format!("(no log: {error})"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the redis-server is running");
        let status = Command::new("kill").arg(signal).arg(child.id().to_string()).status().expect("run kill");
        assert!(status.success(), "kill {signal} {} failed\n--- log ---\n{}", child.id(), self.log());
    }

    /// Spawns redis-server and waits until it answers PING; on failure returns
    /// why (the process is reaped).
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let appendonly = if self.options.persistence { "yes" } else { "no" };
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(["--save", ""])
            .args(["--appendonly", appendonly])
            .args(["--appendfsync", "always"])
            .args(["--daemonize", "no"]);
        if let Some(tls_port) = self.tls_port {
            let file = |name: &str| self.dir.path().join(name);
            command
                .args(["--tls-port", &tls_port.to_string()])
                .arg("--tls-cert-file")
                .arg(file("server.pem"))
                .arg("--tls-key-file")
                .arg(file("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(file("ca.pem"))
                .args(["--tls-auth-clients", "no"]);
        }
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let child = command.spawn().map_err(|error| format!("cannot spawn redis-server: {error}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if self.answers_ping() {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                let log = self.log();
                let reason = if log.contains("Address already in use") { "port in use" } else { "exited" };
                return Err(format!("{reason} ({status}) on port {}", self.port));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!("no PONG within {READY_WITHIN:?} on port {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }
}

/// A CA and a server certificate for `localhost` / `127.0.0.1` signed by it,
/// in `dir` (`ca.pem`, `server.pem`, `server.key`).
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|error| panic!("the TLS tests need `openssl` (Debian: openssl): {error}"));
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=buoycast test CA"],
    ]
    .concat());
    run(&[&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]]
        .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the extensions file");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

/// Runs one command on the Redis at `url` over a short-lived connection;
/// panics on an error reply.
pub fn command(url: &str, args: &[&str]) -> redis::Value {
    let mut conn = redis::Client::open(url).and_then(|client| client.get_connection()).expect("connect");
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let reply: redis::Value = cmd.query(&mut conn).unwrap_or_else(|error| panic!("{args:?}: {error}"));
    assert!(!matches!(reply, redis::Value::ServerError(_)), "{args:?}: {reply:?}");
    reply
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL also ends a paused (SIGSTOPped) process.
        self.stop();
    }
}
