//! The `buoycast` binary as users run it: the README's run command on the
//! embedded default, config errors that name the key, log formats, secrets
//! kept out of output, subcommands that are not there yet saying so, and
//! Redis over TLS (the CA from `SSL_CERT_FILE`, as operators would set it).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::free_port;

/// `buoycast` with a clean environment: none of the developer's settings leak in.
fn buoycast(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_buoycast"));
    command.current_dir(cwd).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

fn output(mut command: Command) -> Output {
    command.stdin(Stdio::null()).output().expect("buoycast runs")
}

fn wait_for_health(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("buoycast exited early with {status}");
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("buoycast never answered /health on port {port}");
}

fn interrupt(child: &Child) {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("buoycast did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn readme_run_command_serves_health_on_the_embedded_default_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut command = buoycast(dir.path());
    command.env("PORT", port.to_string()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("buoycast starts");
    wait_for_health(port, &mut child);
    assert!(dir.path().join("data/buoycast.db").is_file(), "SQLite file under ./data/");
    interrupt(&child);
    let status = wait_exit(&mut child, Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
}

#[test]
fn json_log_format_writes_json_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut command = buoycast(dir.path());
    command
        .args(["serve", "--log-format", "json", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("buoycast starts");
    wait_for_health(port, &mut child);
    interrupt(&child);
    let status = wait_exit(&mut child, Duration::from_secs(6));
    assert!(status.success());
    let mut stderr = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut stderr).expect("read stderr");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "some log lines");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
}

#[test]
fn bad_config_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = buoycast(dir.path());
    command.arg("serve").env("BUOYCAST_KEEPALIVE_SECS", "soon");
    let out = output(command);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stream.keepalive_secs") && stderr.contains("BUOYCAST_KEEPALIVE_SECS"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("buoycast.toml"), "[stream]\nclient_queue = -3\n").expect("write config");
    let mut command = buoycast(dir.path());
    command.arg("serve");
    let out = output(command);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("client_queue"), "{stderr}");

    let mut command = buoycast(dir.path());
    command.args(["serve", "--config", "missing.toml"]);
    let out = output(command);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn passwords_never_reach_the_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Nothing listens on port 1: the connection fails and the error is printed.
    let mut command = buoycast(dir.path());
    command.arg("migrate").env("DATABASE_URL", "postgres://buoy:hunter2@127.0.0.1:1/buoycast");
    let out = output(command);
    assert!(!out.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("hunter2"), "password leaked: {all}");
    assert!(all.contains("***"), "redacted URL shown: {all}");
}

#[test]
fn migrate_creates_the_embedded_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = buoycast(dir.path());
    command.arg("migrate");
    let out = output(command);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("data/buoycast.db").is_file());
}

/// A server that accepts connections and never answers (for `limit` at most).
fn hung_server(limit: Duration) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let mut held = Vec::new();
        while Instant::now() < deadline {
            if let Ok((socket, _)) = listener.accept() {
                held.push(socket);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    addr
}

#[test]
fn worker_stops_within_the_deadline_even_while_a_fetch_hangs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ndbc = hung_server(Duration::from_secs(30));
    let port = free_port();
    let mut command = buoycast(dir.path());
    command
        .arg("worker")
        .env("PORT", port.to_string())
        .env("NDBC_API_BASE", format!("http://{ndbc}/data/realtime2"))
        .env("BUOYCAST_LATEST_OBS_URL", format!("http://{ndbc}/latest_obs.txt"))
        .env("BUOYCAST_STATIONS_URL", format!("http://{ndbc}/activestations.xml"))
        .env("BUOYCAST_STATIONS", "41002")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("buoycast worker starts");
    // The worker serves /health for operators; once it does, its fetches are under way.
    wait_for_health(port, &mut child);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    interrupt(&child);
    let status = wait_exit(&mut child, Duration::from_secs(6));
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

/// `buoycast serve` on `port` with `REDIS_URL` = `redis_url`, plus `env`;
/// its stderr goes to the returned channel, line by line.
fn serve_with_redis(
    dir: &Path,
    port: u16,
    redis_url: &str,
    env: &[(&str, &Path)],
) -> (Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut command = buoycast(dir);
    command
        .args(["serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("REDIS_URL", redis_url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("buoycast starts");
    let stderr = child.stderr.take().expect("piped");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reaches_redis_over_tls_trusting_the_ca_in_ssl_cert_file() {
    use crate::harness::redis::{RedisOptions, RedisServer};
    let redis = RedisServer::start_with(RedisOptions { tls: true, ..RedisOptions::default() });
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let ca = redis.ca_file();
    let (mut child, log) = serve_with_redis(dir.path(), port, &redis.tls_url(), &[("SSL_CERT_FILE", &ca)]);
    let base = format!("http://127.0.0.1:{port}");

    // Ready means the bus answers: over TLS, the only way in for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("buoycast exited early with {status}: {}", log.try_iter().collect::<Vec<_>>().join("\n"));
        }
        let ready = reqwest::get(format!("{base}/ready")).await.map(|r| r.status().as_u16()).ok();
        if ready == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready over TLS: {}",
            log.try_iter().collect::<Vec<_>>().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client =
        crate::harness::sse::SseClient::connect(&format!("{base}/v1/observations/stream"), &[]).await;
    assert_eq!(client.status, 200);
    assert_eq!(
        client.next_event(Duration::from_secs(5)).await.expect("connection event").event,
        "connection"
    );
    // Published on the same server's plain port, streamed from the TLS one.
    let bus =
        buoycast::bus::Bus::redis(&redis.url(), buoycast::bus::RedisBusOptions::default()).expect("url");
    let ids = bus.publish(&[crate::stream::observation("46026", 1)]).await.expect("publish");
    let events = client.observations(1, Duration::from_secs(10)).await;
    assert_eq!(events[0].id.as_ref(), Some(&ids[0]));
    interrupt(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(6)).success());
}

#[test]
fn a_redis_certificate_from_an_unknown_ca_is_refused_and_said_so() {
    use crate::harness::redis::{RedisOptions, RedisServer};
    let redis = RedisServer::start_with(RedisOptions { tls: true, ..RedisOptions::default() });
    let dir = tempfile::tempdir().expect("temp dir");
    // The system's CAs (not the test CA): the server's certificate is not trusted.
    let (mut child, log) = serve_with_redis(dir.path(), free_port(), &redis.tls_url(), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let refused = loop {
        match log.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let told = line.contains("UnknownIssuer") || line.contains("certificate");
                seen.push(line);
                if told {
                    break true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break false,
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(refused, "no certificate error in the log:\n{}", seen.join("\n"));
}

/// One `GET path` on a fresh connection; the body.
fn get_fresh(port: u16, path: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn with_reuse_port_two_gateways_share_one_port_and_the_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let gateway = |name: &str, reuse: bool| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).expect("dir");
        let mut command = buoycast(&home);
        command.args(["serve", "--listen"]).arg(format!("127.0.0.1:{port}"));
        command.env("BUOYCAST_SQLITE_PATH", home.join("buoycast.db"));
        if reuse {
            command.env("BUOYCAST_REUSE_PORT", "true");
        }
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        command.spawn().expect("buoycast starts")
    };
    let mut first = gateway("a", true);
    wait_for_health(port, &mut first);

    // Without the option a second gateway cannot bind, and says which key.
    let mut refused = gateway("b", false);
    let status = wait_exit(&mut refused, Duration::from_secs(20));
    assert!(!status.success());
    let mut stderr = String::new();
    refused.stderr.take().expect("piped").read_to_string(&mut stderr).expect("stderr");
    assert!(stderr.contains("config key `listen`"), "{stderr}");

    // With it, both serve the port, and the kernel spreads new connections:
    // each gateway counts only the requests it served, so the totals seen
    // over fresh connections go back and forth between two counters.
    let mut second = gateway("c", true);
    std::thread::sleep(Duration::from_secs(2));
    assert!(second.try_wait().expect("try_wait").is_none(), "the second gateway runs");
    let totals: Vec<f64> = (0..60)
        .map(|_| {
            let metrics = get_fresh(port, "/metrics");
            assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
            metrics
                .lines()
                .filter(|line| line.starts_with("http_requests_total{"))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        })
        .collect();
    assert!(totals.windows(2).any(|w| w[1] < w[0]), "every answer came from one gateway: {totals:?}");
    for child in [&mut first, &mut second] {
        interrupt(child);
        assert!(wait_exit(child, Duration::from_secs(6)).success());
    }
}
