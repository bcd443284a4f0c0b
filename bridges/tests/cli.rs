//! The `bridge` binary's command line: every flag of docs/REFERENCE.md,
//! Command line is documented in `--help`, bad values are refused naming the
//! flag, a replay ends by itself and SIGINT ends a live bridge with exit 0 and
//! a complete .mid file.

use std::process::Command;

fn bridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
}

#[test]
fn help_lists_every_documented_flag() {
    let help = bridge().arg("--help").output().expect("bridge runs");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--osc ",
        "--osc-tcp",
        "--osc-format",
        "--null-policy",
        "--bundle",
        "--oscquery",
        "--source",
        "--redis",
        "--replay",
        "--speed",
        "--station",
        "--midi ",
        "--midi-virtual",
        "--midi-file",
        "--list-midi",
        "--map",
        "--glide",
        "--cc14",
        "--learn",
        "--no-snapshot",
        "--control",
        "--resend-every",
        "--spectrum-audible",
        "--spectrum-channel",
        "--oscquery-bind",
        "--oscquery-layout",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}

#[test]
fn no_output_is_refused_not_faked() {
    let run = bridge().args(["--source", "http://127.0.0.1:9"]).output().expect("bridge runs");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("no output: give --osc"), "{run:?}");
}

#[test]
fn list_midi_lists_ports_or_says_why_it_cannot() {
    let run = bridge().arg("--list-midi").output().expect("bridge runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    if cfg!(feature = "jack") {
        // JACK: ports when a JACK server runs, else the same clear error.
        assert!(
            (run.status.success() && stdout.starts_with("MIDI output ports (JACK)"))
                || stderr.contains("--list-midi: cannot open the MIDI system (JACK)"),
            "{stdout}{stderr}"
        );
    } else if std::path::Path::new("/dev/snd/seq").exists() || !cfg!(target_os = "linux") {
        assert!(run.status.success(), "{stderr}");
        assert!(stdout.starts_with("MIDI output ports"), "{stdout}");
    } else {
        // No ALSA sequencer on this machine (containers, CI): a clear error, not an empty success.
        assert!(!run.status.success());
        assert!(stderr.contains("--list-midi: cannot open the MIDI system"), "{stderr}");
    }
}

#[test]
fn a_bad_map_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let map = dir.path().join("bad.toml");
    std::fs::write(&map, "[fields.waveHeightM]\nmin = 0\ncc = 200\n").expect("write");
    let run = bridge().args(["--osc", "127.0.0.1:9", "--map"]).arg(&map).output().expect("bridge runs");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("bad.toml:3: waveHeightM: cc 200 is outside 0..=119"), "{stderr}");
}

/// One of the workspace's NDBC fixture files (`tests/fixtures/ndbc/`).
fn fixture(relative: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/ndbc")).join(relative)
}

/// Every CC (absolute tick, status, controller, value) of a .mid file, after checking its header.
fn midi_ccs(path: &std::path::Path) -> Vec<(u64, u8, u8)> {
    let bytes = std::fs::read(path).expect("the .mid file exists");
    let smf = midly::Smf::parse(&bytes).expect("a complete SMF");
    assert_eq!(smf.header.format, midly::Format::SingleTrack);
    assert_eq!(smf.header.timing, midly::Timing::Metrical(480.into()));
    let mut tick = 0;
    let mut out = Vec::new();
    for event in &smf.tracks[0] {
        tick += u64::from(event.delta.as_int());
        if let midly::TrackEventKind::Midi {
            message: midly::MidiMessage::Controller { controller, value },
            ..
        } = event.kind
        {
            out.push((tick, controller.as_int(), value.as_int()));
        }
    }
    out
}

#[test]
fn replay_to_a_midi_file_ends_by_itself_with_exit_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mid = dir.path().join("waves.mid");
    let file = fixture("realtime2/41002.txt");
    // 41002.txt: 2018-06-17 .. 2018-08-01 in 10-minute rows; at 3,600,000x an hour of data is 1 ms.
    let run = bridge()
        .args(["--replay"])
        .arg(&file)
        .args(["--speed", "3600000", "--midi-file"])
        .arg(&mid)
        .output()
        .expect("bridge runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let ccs = midi_ccs(&mid);
    assert!(!ccs.is_empty());
    assert_eq!(ccs[0].0, 0, "the first observation is at the start");
    // 45 days of data at 3,600,000x last 1.08 s of media time: 1037 ticks at 960 a second.
    let last = ccs.last().expect("ccs").0;
    assert!((900..=1100).contains(&last), "last CC at tick {last}");
    assert!(ccs
        .iter()
        .all(|(_, cc, _)| [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 85, 86].contains(cc)));
}

/// Whether process `pid` catches SIGINT and SIGTERM (`SigCgt` in
/// /proc/PID/status). The bridge installs SIGINT's handler and registers its
/// listener before it installs SIGTERM's, so both bits set means a SIGINT
/// will be seen, not kill it.
#[cfg(target_os = "linux")]
fn catches_sigint_and_sigterm(pid: u32) -> bool {
    const SIGINT: u32 = 2;
    const SIGTERM: u32 = 15;
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| {
            let wanted = (1u64 << (SIGINT - 1)) | (1u64 << (SIGTERM - 1));
            mask & wanted == wanted
        })
}

/// Starts the bridge with `args`, waits until it handles SIGINT (sent
/// earlier, the default action would kill it), lets it run for `settle`,
/// sends SIGINT, and returns its exit status, how long it took to exit, and
/// its log.
#[cfg(unix)]
fn run_until_sigint(
    args: &[&std::ffi::OsStr],
    settle: std::time::Duration,
) -> (std::process::ExitStatus, std::time::Duration, Vec<String>) {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let mut child = bridge().args(args).stderr(std::process::Stdio::piped()).spawn().expect("bridge starts");
    // Its log, read as it comes (a full pipe would stall the bridge), line by line.
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        log.extend(lines_rx.try_iter());
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the bridge exited before the signal: {status:?}\n{}", log.join("\n"));
        }
        #[cfg(target_os = "linux")]
        let ready = catches_sigint_and_sigterm(child.id());
        // Elsewhere no /proc: its first log line is the best sign that it is up.
        #[cfg(not(target_os = "linux"))]
        let ready = !log.is_empty();
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "the bridge did not install its SIGINT handler within 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(settle);
    let started = Instant::now();
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() >= Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running 5 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    reader.join().expect("stderr reader");
    log.extend(lines_rx.try_iter());
    (status, took, log)
}

#[cfg(unix)]
#[test]
fn sigint_stops_a_live_bridge_and_writes_a_complete_midi_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mid = dir.path().join("live.mid");
    // A gateway that is not there: the source keeps retrying until the signal.
    let args = ["--source".as_ref(), "http://127.0.0.1:9".as_ref(), "--midi-file".as_ref(), mid.as_os_str()];
    let (status, took, log) = run_until_sigint(&args, std::time::Duration::ZERO);
    assert!(took < std::time::Duration::from_secs(5));
    assert!(status.success(), "exit 0 on SIGINT: {status:?}\n{}", log.join("\n"));
    assert!(midi_ccs(&mid).is_empty(), "no observation came, but the file is complete");
}

/// `--learn FIELD@STATION` sweeps that field's CC on the channel that
/// station gets: here the second `--station`, so channel 2.
#[cfg(unix)]
#[test]
fn learn_sweeps_on_the_stations_channel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mid = dir.path().join("learn.mid");
    let args = [
        "--station".as_ref(),
        "46026,46042".as_ref(),
        "--learn".as_ref(),
        "windSpeedMps@46042".as_ref(),
        "--midi-file".as_ref(),
        mid.as_os_str(),
    ];
    let (status, _, log) = run_until_sigint(&args, std::time::Duration::from_millis(300));
    assert!(status.success(), "{status:?}\n{}", log.join("\n"));
    let bytes = std::fs::read(&mid).expect("the .mid file exists");
    let smf = midly::Smf::parse(&bytes).expect("a complete SMF");
    let controls: Vec<(u8, u8)> = smf.tracks[0]
        .iter()
        .filter_map(|event| match event.kind {
            midly::TrackEventKind::Midi {
                channel,
                message: midly::MidiMessage::Controller { controller, .. },
            } => Some((channel.as_int() + 1, controller.as_int())),
            _ => None,
        })
        .collect();
    assert!(!controls.is_empty(), "the sweep was written");
    assert!(
        controls.iter().all(|&control| control == (2, 24)),
        "CC 24 (windSpeedMps) on channel 2: {controls:?}"
    );
}

#[test]
fn bad_values_are_refused_naming_the_flag() {
    for (args, needle) in [
        (&["--learn", "waveHeight"][..], "--learn"),
        (&["--learn", "waveHeightM@46-042"][..], "--learn"),
        (&["--resend-every", "0"][..], "--resend-every"),
        (&["--resend-every", "1e19"][..], "--resend-every"),
        (&["--latency", "99999999999"][..], "--latency"),
        (&["--station", "46-026"][..], "--station"),
        (&["--osc", "nowhere"][..], "--osc"),
        (&["--replay", "46026", "--speed", "0"][..], "--speed"),
        (&["--spectrum-audible", "880:440"][..], "--spectrum-audible"),
        (&["--spectrum-channel", "17"][..], "--spectrum-channel"),
        (&["--oscquery-layout", "flat"][..], "--oscquery-layout"),
    ] {
        let out = bridge().args(args).output().expect("bridge runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// Every OSC message in a datagram (bundles unpacked).
fn messages_of(packet: rosc::OscPacket, out: &mut Vec<rosc::OscMessage>) {
    match packet {
        rosc::OscPacket::Message(message) => out.push(message),
        rosc::OscPacket::Bundle(bundle) => bundle.content.into_iter().for_each(|p| messages_of(p, out)),
    }
}

#[test]
fn replay_of_a_spectral_set_sends_every_spectrum_to_osc() {
    use buoycast::observation::StationId;
    use buoycast::sources::ndbc::spectral::{self, SpectralFile};
    use rosc::OscType;

    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    receiver.set_read_timeout(Some(std::time::Duration::from_secs(2))).expect("timeout");
    let target = receiver.local_addr().expect("addr").to_string();
    // Read while the bridge sends (a socket buffer alone holds a few dozen spectra).
    let reader = std::thread::spawn(move || {
        let mut messages = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = receiver.recv(&mut buf) {
            let (_, packet) = rosc::decoder::decode_udp(&buf[..n]).expect("valid OSC");
            messages_of(packet, &mut messages);
        }
        messages
    });
    // Any file of the set: the other four are found beside it.
    let run = bridge()
        .arg("--replay")
        .arg(fixture("realtime2/41010.swr1"))
        .args(["--speed", "1e6", "--osc", &target, "--bundle", "--spectrum-audible", "110:1760"])
        .output()
        .expect("bridge runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let messages = reader.join().expect("reader");
    let floats = |m: &rosc::OscMessage| -> Vec<f32> {
        m.args.iter().map(|a| if let OscType::Float(x) = a { *x } else { panic!("{m:?}") }).collect()
    };
    let density: Vec<&rosc::OscMessage> =
        messages.iter().filter(|m| m.addr == "/buoy/41010/spectrum/density").collect();
    assert_eq!(density.len(), 149, "one spectrum per time, oldest first");

    // The newest spectrum (sent last) against the file's newest row.
    let station = StationId::parse("41010").expect("id");
    let bytes = std::fs::read(fixture("realtime2/41010.data_spec")).expect("read");
    let Ok(SpectralFile::Quantity(parsed)) = spectral::parse(&bytes, &station, Some("41010.data_spec"))
    else {
        panic!("the density file parses");
    };
    let newest = &parsed.rows[0];
    let expected: Vec<f32> = newest.bands.iter().map(|(_, v)| v.map_or(0.0, |v| v as f32)).collect();
    assert_eq!(floats(density[148]), expected);
    let last =
        |addr: &str| messages.iter().rev().find(|m| m.addr == addr).unwrap_or_else(|| panic!("{addr}"));
    let freqs = floats(last("/buoy/41010/spectrum/freqs"));
    assert_eq!(freqs, newest.bands.iter().map(|(f, _)| *f as f32).collect::<Vec<_>>());
    // 0.033 Hz lands at 110 × 16^(ln(0.033/0.02) / ln 25).
    let audible = floats(last("/buoy/41010/spectrum/audible"));
    let expected_low = 110.0 * 16f64.powf((0.033f64 / 0.02).ln() / 25f64.ln());
    assert!((f64::from(audible[0]) - expected_low).abs() < 0.01, "{} vs {expected_low}", audible[0]);
    assert!(audible.windows(2).all(|w| w[0] < w[1]));
    for list in ["alpha1", "alpha2", "r1", "r2", "spread"] {
        assert_eq!(floats(last(&format!("/buoy/41010/spectrum/{list}"))).len(), freqs.len(), "{list}");
    }
    assert_eq!(floats(last("/buoy/41010/spectrum/sepFreqHz")), vec![0.225]);
    assert!(floats(last("/buoy/41010/spectrum/significantHeightM"))[0] > 0.5);
    assert_eq!(
        last("/buoy/41010/spectrum/time").args,
        [2020, 6, 8, 3, 50].into_iter().map(OscType::Int).collect::<Vec<_>>()
    );
    assert!(!messages.iter().any(|m| m.addr == "/observation"), "a spectrum is not an observation");
}

#[test]
fn replay_of_a_spectral_set_plays_a_band_bank_into_a_midi_file() {
    use buoycast::observation::StationId;
    use buoycast::sources::ndbc::spectral::{self, SpectralFile};

    let dir = tempfile::tempdir().expect("tempdir");
    let mid = dir.path().join("spectra.mid");
    let run = bridge()
        .arg("--replay")
        .arg(fixture("realtime2/41010.data_spec"))
        .args(["--speed", "1e6", "--spectrum-channel", "16", "--midi-file"])
        .arg(&mid)
        .output()
        .expect("bridge runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    // Channel 16's last value of each controller: the newest spectrum's bands.
    let bytes = std::fs::read(&mid).expect("the .mid file");
    let smf = midly::Smf::parse(&bytes).expect("a complete SMF");
    let mut last = std::collections::BTreeMap::new();
    for event in &smf.tracks[0] {
        if let midly::TrackEventKind::Midi {
            channel,
            message: midly::MidiMessage::Controller { controller, value },
        } = event.kind
        {
            assert_eq!(channel.as_int(), 15, "only the spectrum channel (16) plays");
            last.insert(controller.as_int(), value.as_int());
        }
    }
    let station = StationId::parse("41010").expect("id");
    let density = std::fs::read(fixture("realtime2/41010.data_spec")).expect("read");
    let Ok(SpectralFile::Quantity(parsed)) = spectral::parse(&density, &station, Some("41010.data_spec"))
    else {
        panic!("the density file parses");
    };
    let newest = &parsed.rows[0];
    let loudest = newest.bands.iter().filter_map(|(_, d)| *d).fold(0.0, f64::max);
    let ccs = buoycast_bridges::sink::midi::SPECTRUM_CCS;
    assert_eq!(last.len(), newest.bands.len(), "one controller per band: {last:?}");
    for ((_, density), cc) in newest.bands.iter().zip(ccs) {
        let expected = (127.0 * (density.unwrap_or(0.0) / loudest).sqrt()).round() as u8;
        assert_eq!(last.get(&cc), Some(&expected), "CC {cc}");
    }
    assert!(!last.contains_key(&64) && !last.contains_key(&32), "no pedal, no LSB controller");
    assert_eq!(last.values().copied().max(), Some(127), "the loudest band at full scale");
}
