//! The `bridge` binary's command line: every SPEC 5 flag is documented in
//! `--help`, bad values are refused naming the flag, and the unbuilt work
//! says "not implemented yet" instead of faking success.

use std::process::Command;

fn bridge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
}

#[test]
fn help_lists_every_spec_flag() {
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
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}

#[test]
fn unbuilt_paths_fail_with_not_implemented_yet() {
    let run = bridge().args(["--osc", "127.0.0.1:57120"]).output().expect("bridge runs");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("not implemented yet"));
}

#[test]
fn bad_values_are_refused_naming_the_flag() {
    for (args, needle) in [
        (&["--learn", "waveHeight"][..], "--learn"),
        (&["--station", "46-026"][..], "--station"),
        (&["--osc", "nowhere"][..], "--osc"),
        (&["--replay", "46026", "--speed", "0"][..], "--speed"),
    ] {
        let out = bridge().args(args).output().expect("bridge runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
