//! Live MIDI without a sound card (feature `jack`, Linux): a JACK server
//! with the dummy driver, `bridge --midi-virtual` on it, and a JACK MIDI
//! reader that must receive the bridge's CC bytes: a `--learn` sweep, then
//! a wave spectrum's band bank.
//!
//! Needs `jackd` (Debian jackd2) and libjack; run with
//! `cargo test -p buoycast-bridges --features jack --test jack`.
//! Without the feature this file is empty.

#![cfg(all(feature = "jack", target_os = "linux"))]

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    /// SIGTERM first, so jackd removes itself from JACK's shared server
    /// registry (it holds 8 servers: SIGKILLed ones stay in it and later
    /// servers fail with "Too many servers already active"); SIGKILL only if
    /// it has not gone within 3 s.
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `bridge ARGS` on the JACK server `server`, quiet, stopped on drop.
fn bridge(server: &str, args: &[&str]) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_bridge"))
            .args(args)
            .env("JACK_DEFAULT_SERVER", server)
            .env("JACK_NO_START_SERVER", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bridge starts"),
    )
}

#[test]
fn a_virtual_port_delivers_cc_bytes_to_a_jack_midi_reader() {
    let server = format!("bridgetest{}", std::process::id());
    let _jackd = Killed(
        Command::new("jackd")
            .args(["--no-realtime", "-n", &server, "-d", "dummy", "-r", "48000", "-p", "256"])
            .env("JACK_NO_AUDIO_RESERVATION", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("jackd is installed (Debian jackd2)"),
    );
    // This test binary runs this one test: the variable is read by libjack.
    std::env::set_var("JACK_DEFAULT_SERVER", &server);
    std::env::set_var("JACK_NO_START_SERVER", "1");
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = loop {
        match jack::Client::new("reader", jack::ClientOptions::NO_START_SERVER) {
            Ok((client, _status)) => break client,
            Err(error) => {
                assert!(Instant::now() < deadline, "the JACK server did not start: {error}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    let input = client.register_port("in", jack::MidiIn::default()).expect("midi in port");
    let input_name = input.name().expect("port name");
    let (bytes_tx, bytes_rx) = mpsc::channel::<Vec<u8>>();
    let handler =
        jack::contrib::ClosureProcessHandler::new(move |_: &jack::Client, scope: &jack::ProcessScope| {
            for event in input.iter(scope) {
                let _ = bytes_tx.send(event.bytes.to_vec());
            }
            jack::Control::Continue
        });
    let active = client.activate_async((), handler).expect("activate");

    let _bridge = bridge(&server, &["--midi-virtual", "buoycast", "--learn", "waveHeightM"]);
    let source = loop {
        let ports =
            active.as_client().ports(Some("buoycast"), Some("8 bit raw midi"), jack::PortFlags::IS_OUTPUT);
        if let Some(port) = ports.into_iter().next() {
            break port;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(5),
            "the bridge's virtual port never appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    active.as_client().connect_ports_by_name(&source, &input_name).expect("connect");
    let mut values = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while values.len() < 10 && Instant::now() < until {
        if let Ok(bytes) = bytes_rx.recv_timeout(Duration::from_millis(200)) {
            assert_eq!(bytes[..2], [0xB0, 20], "CC 20 (waveHeightM) on channel 1: {bytes:?}");
            values.push(bytes[2]);
        }
    }
    assert!(values.len() >= 10, "CC bytes arrive through JACK: {values:?}");
    assert!(values.windows(2).all(|w| w[0] != w[1]), "unchanged values are skipped: {values:?}");

    // A wave spectrum's band bank (issue "Directional wave spectra"): a
    // replay of 41010's five spectral files, one hour a second, with
    // `--spectrum-channel 16`: band i on SPECTRUM_CCS[i], channel 16.
    let spectra = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/ndbc/realtime2/41010.data_spec");
    let _spectrum_bridge = bridge(
        &server,
        &[
            "--midi-virtual",
            "buoycast-spectrum",
            "--spectrum-channel",
            "16",
            "--replay",
            spectra,
            "--speed",
            "3600",
        ],
    );
    let until = Instant::now() + Duration::from_secs(10);
    let source = loop {
        let ports = active.as_client().ports(
            Some("buoycast-spectrum"),
            Some("8 bit raw midi"),
            jack::PortFlags::IS_OUTPUT,
        );
        if let Some(port) = ports.into_iter().next() {
            break port;
        }
        assert!(Instant::now() < until, "the spectrum bridge's virtual port never appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    active.as_client().connect_ports_by_name(&source, &input_name).expect("connect");
    // Learn's CCs may still be in flight: keep only channel 16's.
    let bank = &buoycast_bridges::sink::midi::SPECTRUM_CCS[..46];
    let mut controllers = std::collections::BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(8);
    while controllers.len() < 30 && Instant::now() < until {
        if let Ok(bytes) = bytes_rx.recv_timeout(Duration::from_millis(200)) {
            if bytes[0] == 0xBF {
                assert!(bank.contains(&bytes[1]), "CC {} is one of the 46 bands' controllers", bytes[1]);
                assert!(bytes[2] <= 127);
                controllers.insert(bytes[1]);
            }
        }
    }
    assert!(controllers.len() >= 30, "the bands' CCs arrive on channel 16 through JACK: {controllers:?}");
}
