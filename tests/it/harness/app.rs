//! `TestApp::spawn`: the real gateway on 127.0.0.1 port 0, in this process,
//! against the backends a test chooses (SQLite + in-process bus by default,
//! or a real PostgreSQL / Redis from the other harness modules).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use buoycast::bus::Bus;
use buoycast::config::{Config, Overrides};
use buoycast::store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Which backends the app runs on.
#[derive(Debug, Default, Clone)]
pub struct Backends {
    /// `DATABASE_URL`; `None` = a SQLite file in the app's temp dir.
    pub database_url: Option<String>,
    /// `REDIS_URL`; `None` = the in-process bus.
    pub redis_url: Option<String>,
    /// Extra environment variables (config keys) for this app.
    pub env: Vec<(String, String)>,
    /// Listen here instead of a fresh port (to restart on the same address).
    pub listen: Option<SocketAddr>,
    /// Return once `/health` answers, without waiting (up to 10 s) for
    /// `/ready`: for tests of a gateway whose bus is down at start.
    pub skip_ready_wait: bool,
}

impl Backends {
    /// The embedded default with these environment variables (config keys) set.
    pub fn with_env(env: &[(&str, &str)]) -> Backends {
        Backends {
            env: env.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect(),
            ..Backends::default()
        }
    }
}

/// A running gateway.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Cancel to shut it down.
    pub shutdown: CancellationToken,
    /// The serving task.
    pub task: Option<JoinHandle<()>>,
    /// The app's bus (publish here to reach its streams).
    pub bus: Bus,
    /// The app's store.
    pub store: Store,
    /// The configuration it runs with.
    pub config: Config,
    /// Keeps the SQLite file alive.
    pub dir: tempfile::TempDir,
}

impl TestApp {
    /// Starts the gateway and waits until `/health` answers.
    pub async fn spawn(backends: Backends) -> TestApp {
        super::init_logs();
        let dir = tempfile::tempdir().expect("temp dir for the app");
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("BUOYCAST_SQLITE_PATH".into(), dir.path().join("buoycast.db").display().to_string());
        if let Some(url) = &backends.database_url {
            env.insert("DATABASE_URL".into(), url.clone());
        }
        if let Some(url) = &backends.redis_url {
            env.insert("REDIS_URL".into(), url.clone());
        }
        env.extend(backends.env.iter().cloned());
        let overrides = Overrides { listen: Some("127.0.0.1:0".into()), ..Overrides::default() };
        let config = Config::load_from(&overrides, &env, dir.path()).expect("test config loads");
        let want = backends.listen.unwrap_or_else(|| "127.0.0.1:0".parse().expect("valid address"));
        let listener = bind_retrying(want).await;
        let addr = listener.local_addr().expect("listener address");
        let shutdown = CancellationToken::new();
        let store = buoycast::cli::open_store(&config).await.expect("store opens");
        let bus = buoycast::cli::open_bus_seeded(&config, &store).await.expect("bus opens");
        let task = tokio::spawn(buoycast::server::serve(
            listener,
            store.clone(),
            bus.clone(),
            config.clone(),
            shutdown.clone(),
        ));
        let app = TestApp {
            addr,
            base_url: format!("http://{addr}"),
            shutdown,
            task: Some(task),
            bus,
            store,
            config,
            dir,
        };
        app.wait_healthy().await;
        if !backends.skip_ready_wait {
            app.wait_ready().await;
        }
        app
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Waits (at most 10 s) until `/ready` answers 200: the gateway serves
    /// everything at once, but its bus comes up in the background. A test
    /// whose backends are meant to be down goes on after the 10 s anyway.
    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(response) = client.get(self.url("/ready")).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(response) = client.get(self.url("/health")).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway at {} never answered /health", self.base_url);
    }

    /// Cancels the app and waits for it to end (within the 5 s deadline).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("stop called once");
        tokio::time::timeout(Duration::from_secs(6), task)
            .await
            .expect("the gateway stops within its 5 s deadline")
            .expect("the serving task does not panic");
    }

    /// The value of one metric series in `/metrics` (first line starting with `series`).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = reqwest::get(self.url("/metrics")).await.ok()?.text().await.ok()?;
        text.lines()
            .find(|line| line.starts_with(series) && line[series.len()..].starts_with([' ', '{']))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }
}

/// Binds `addr`, retrying for a while if a previous app still holds it.
async fn bind_retrying(addr: SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = buoycast::server::listener::bind(addr) {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind {addr}");
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// `buoycast run` (worker and gateway in one process, SQLite and the
/// in-process bus) on 127.0.0.1 port 0, its worker polling the NDBC server
/// `ndbc` with `extra` settings on top (the end-to-end tests).
pub struct RunAll {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl RunAll {
    /// Starts it; the gateway answers at once, the worker polls at once.
    pub fn start(ndbc: &super::ndbc_server::NdbcServer, extra: &[(&str, &str)]) -> RunAll {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env: HashMap<String, String> = ndbc.env().into_iter().collect();
        env.insert("BUOYCAST_SQLITE_PATH".into(), dir.path().join("buoycast.db").display().to_string());
        env.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        let config = Config::load_from(&Overrides::default(), &env, dir.path()).expect("test config loads");
        let listener = buoycast::server::listener::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(buoycast::cli::run_all(listener, config, shutdown.clone()));
        RunAll { base_url, shutdown, task: Some(task), _dir: dir }
    }

    /// Shuts it down and checks it ended cleanly within 5 s.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        let ended = tokio::time::timeout(Duration::from_secs(6), task).await.expect("stops within 5 s");
        ended.expect("no panic").expect("run_all ends cleanly");
    }
}

impl Drop for RunAll {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
