//! Black-box checks of the command line: help, config errors, check-config.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_outage-radar"));
    c.env_remove("OUTAGE_RADAR_CONFIG");
    c
}

#[test]
fn help_explains_each_command() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "check-config", "OUTAGE_RADAR_"] {
        assert!(text.contains(word), "{word} missing from --help:\n{text}");
    }
    let out = bin().args(["run", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("SIGTERM"));
}

#[test]
fn check_config_accepts_the_shipped_configs_and_redacts_secrets() {
    for config in [
        "deploy/config.example.toml",
        "deploy/profiles/nab-realtweets.toml",
        "deploy/profiles/defaults-5m.toml",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(config);
        let out = bin()
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("configuration OK"));
        // The build speaks what the example configuration suggests.
        let client = stdout
            .lines()
            .find(|l| l.starts_with("kafka client: librdkafka"))
            .unwrap_or_else(|| panic!("no kafka client line:\n{stdout}"));
        for feature in ["ssl", "sasl_plain", "sasl_scram", "zstd"] {
            assert!(
                client.split([' ', ',']).any(|f| f == feature),
                "{feature} missing: {client}"
            );
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[kafka.properties_from_env]\n\"sasl.password\" = \"TEST_KAFKA_PASSWORD\"\n",
    )
    .unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&path)
        .env("TEST_KAFKA_PASSWORD", "hunter2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(
        stdout.contains("sasl.password=<from $TEST_KAFKA_PASSWORD>"),
        "{stdout}"
    );
}

#[test]
fn bad_config_fails_with_file_field_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[kafka]\npoll_timeout = \"soon\"\n").unwrap();
    for cmd in ["check-config", "run"] {
        let out = bin().args([cmd, "--config"]).arg(&path).output().unwrap();
        // Exit code 3: a bad configuration (README, exit codes).
        assert_eq!(out.status.code(), Some(3), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains("kafka.poll_timeout"), "{err}");
    }
    let out = bin()
        .args(["check-config", "--config", "/no/such/file.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.toml"));
}

/// `healthcheck` fails, saying why, when nothing answers (the success case
/// runs against a live instance in `run_detects`).
#[test]
fn healthcheck_fails_clearly_when_nothing_listens() {
    // A port that was free a moment ago: bind, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/-/ready");
    let out = bin()
        .args(["healthcheck", "--url", &url, "--timeout", "2s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&url) && err.contains("no answer"), "{err}");
}

/// Exit codes tell failure kinds apart: an input file that cannot be read
/// is 5, an evaluation bar that fails is 4.
#[test]
fn exit_codes_tell_failure_kinds_apart() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["replay", "--input", "/no/such/reports.jsonl", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The alexa-2018 truth against no incident at all: recall 0.
    let reports = dir.path().join("r.jsonl");
    let sim = bin()
        .args(["simulate", "--scenario", "alexa-2018", "--out"])
        .arg(&reports)
        .output()
        .unwrap();
    assert!(sim.status.success());
    let empty = dir.path().join("none.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = bin()
        .args(["evaluate", "--truth"])
        .arg(dir.path().join("r.truth.json"))
        .arg("--incidents")
        .arg(&empty)
        .args(["--min-recall", "0.9"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Credentials over plain http and unverified certificates work, but
/// `check-config` (and `run`, in its log) says so.
#[test]
fn check_config_warns_about_clear_text_credentials_and_unverified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("am.toml");
    std::fs::write(
        &path,
        "[alertmanager]\nurls = [\"http://am.example:9093\", \"https://am2.example:9093\"]\n\
         basic_auth_username = \"radar\"\nbasic_auth_password_env = \"AM_PASSWORD\"\n\
         tls_insecure_skip_verify = true\n",
    )
    .unwrap();
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning: alertmanager.urls: credentials are sent in clear text to http://am.example:9093"),
        "{text}"
    );
    assert!(!text.contains("clear text to https://am2"), "{text}");
    assert!(
        text.contains("warning: alertmanager.tls_insecure_skip_verify"),
        "{text}"
    );
    // The shipped example has neither.
    let out = bin()
        .args(["check-config", "--config", "deploy/config.example.toml"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("warning:"));
}
