//! The push path against a real Alertmanager (Debian's binary, started by
//! the testkit), a dead one, and a recording webhook for headers.

use std::net::TcpListener;
use std::time::Duration;

use outage_detect::detector::SpreadEntry;
use outage_detect::IncidentEvent;
use outage_detect::{Country, Incident, Scope};
use outage_export::alert::{build_alert, start};
use outage_export::{AlertMetrics, AlertmanagerConfig};
use outage_testkit::{wait_until, Alertmanager, WebhookReceiver};
use prometheus::Registry;
use serde_json::Value;

const AM_CONFIG: &str = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n";

fn incident(service: &str, region: &str) -> Incident {
    let c = Country::parse(region).unwrap();
    Incident {
        id: format!("{service}-{region}"),
        service: service.into(),
        scope: Scope::Region(c),
        regions: vec![SpreadEntry {
            region: c,
            started_at_ms: 1_537_956_000_000,
            peak_ratio: 8.0,
        }],
        started_at_ms: 1_537_956_000_000,
        detected_at_ms: 1_537_956_120_000,
        resolved_at_ms: None,
        peak_ratio: 8.0,
        peak_surprise: 14.0,
        problems: [5, 0, 0, 0, 0, 0, 0, 0],
    }
}

/// A TCP server that accepts connections and never answers.
fn black_hole() -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    (url, handle)
}

fn am_alerts(am: &Alertmanager) -> Vec<Value> {
    let body = ureq::get(&format!("{}/api/v2/alerts", am.url()))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_dead_alertmanager_never_delays_its_ha_peer_and_resolutions_arrive() {
    let am = Alertmanager::start(AM_CONFIG);
    let (dead, _hold) = black_hole();
    let registry = Registry::new();
    let metrics = AlertMetrics::register(&registry).unwrap();
    let config = AlertmanagerConfig {
        urls: vec![dead.clone(), am.url()],
        resend_interval: Duration::from_secs(1),
        // Longer than the wait for the live peer below: if the dead one
        // held the push back, the live one would not see it in time.
        timeout: Duration::from_secs(10),
        max_attempts: 1,
        ..AlertmanagerConfig::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let queue = {
        let _g = rt.enter();
        start(&config, metrics.clone()).unwrap().unwrap()
    };
    let inc = incident("alexa", "GB");
    queue.push(build_alert(&config, IncidentEvent::Opened, &inc, None));
    assert!(
        wait_until(Duration::from_secs(8), || am_alerts(&am)
            .iter()
            .any(|a| a["labels"]["region"] == "GB")),
        "the live Alertmanager got the alert while its peer hung"
    );
    let alert = am_alerts(&am)
        .into_iter()
        .find(|a| a["labels"]["region"] == "GB")
        .unwrap();
    assert_eq!(alert["labels"]["alertname"], "RegionOutage");
    assert_eq!(alert["annotations"]["incident_id"], "alexa-GB");
    let ends_first = alert["endsAt"].as_str().unwrap().to_string();

    // Re-sent while firing: endsAt moves forward.
    assert!(
        wait_until(Duration::from_secs(5), || am_alerts(&am)
            .iter()
            .any(|a| a["labels"]["region"] == "GB"
                && a["endsAt"].as_str().unwrap() > ends_first.as_str())),
        "firing alerts are re-sent with a later endsAt"
    );

    // Resolved: gone from the active alerts.
    let mut resolved = inc.clone();
    resolved.resolved_at_ms = Some(1_537_957_000_000);
    queue.push(build_alert(
        &config,
        IncidentEvent::Resolved,
        &resolved,
        None,
    ));
    assert!(
        wait_until(Duration::from_secs(5), || am_alerts(&am)
            .iter()
            .all(|a| a["status"]["state"] != "active")),
        "resolved alert still active: {:?}",
        am_alerts(&am)
    );

    // The dead peer's failures are counted and given up, not retried forever.
    let label = dead.trim_end_matches('/');
    assert!(wait_until(Duration::from_secs(20), || {
        metrics.pushes.with_label_values(&[label, "error"]).get() >= 1
            && metrics.abandoned.get() >= 1
    }));
    assert!(
        metrics
            .pushes
            .with_label_values(&[&am.url(), "success"])
            .get()
            >= 3
    );
    assert_eq!(metrics.firing.get(), 0);
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let (dead, _hold) = black_hole();
    let registry = Registry::new();
    let metrics = AlertMetrics::register(&registry).unwrap();
    let config = AlertmanagerConfig {
        urls: vec![dead],
        timeout: Duration::from_secs(30),
        queue_capacity: 8,
        ..AlertmanagerConfig::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let queue = {
        let _g = rt.enter();
        start(&config, metrics.clone()).unwrap().unwrap()
    };
    for i in 0..10_000 {
        let inc = incident(&format!("svc{i}"), "DE");
        queue.push(build_alert(&config, IncidentEvent::Opened, &inc, None));
    }
    assert!(metrics.dropped.get() > 0, "drops are counted");
}

#[test]
fn basic_auth_and_bearer_tokens_are_sent() {
    let hook = WebhookReceiver::start();
    std::env::set_var("OUTAGE_RADAR_TEST_AM_PASSWORD", "pass");
    std::env::set_var("OUTAGE_RADAR_TEST_AM_TOKEN", "tok123\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (config, expected) in [
        (
            AlertmanagerConfig {
                urls: vec![hook.url()],
                basic_auth_username: Some("user".into()),
                basic_auth_password_env: Some("OUTAGE_RADAR_TEST_AM_PASSWORD".into()),
                ..AlertmanagerConfig::default()
            },
            "Basic dXNlcjpwYXNz",
        ),
        (
            AlertmanagerConfig {
                urls: vec![hook.url()],
                bearer_token_env: Some("OUTAGE_RADAR_TEST_AM_TOKEN".into()),
                ..AlertmanagerConfig::default()
            },
            "Bearer tok123",
        ),
    ] {
        let metrics = AlertMetrics::register(&Registry::new()).unwrap();
        let queue = {
            let _g = rt.enter();
            start(&config, metrics).unwrap().unwrap()
        };
        queue.push(build_alert(
            &config,
            IncidentEvent::Opened,
            &incident("alexa", "FR"),
            None,
        ));
        assert!(
            wait_until(Duration::from_secs(5), || hook.received().iter().any(|r| {
                r.path == "/api/v2/alerts"
                    && r.headers
                        .iter()
                        .any(|(k, v)| k == "authorization" && v == expected)
            })),
            "{expected} not sent: {:?}",
            hook.received()
        );
    }
    // A missing secret is a config error naming the field.
    let config = AlertmanagerConfig {
        urls: vec![hook.url()],
        bearer_token_env: Some("OUTAGE_RADAR_TEST_AM_UNSET".into()),
        ..AlertmanagerConfig::default()
    };
    let _g = rt.enter();
    let err = start(&config, AlertMetrics::register(&Registry::new()).unwrap())
        .err()
        .unwrap();
    assert_eq!(err.field, "alertmanager.bearer_token_env");
}

/// bcrypt of `am-test-password` (cost 4), for Alertmanager's
/// `basic_auth_users`.
const AM_USER_HASH: &str = "$2b$04$eoFOBbEqGzVTeSonOkyzfuJm/QCEdzU4vEdmDVjjqI.9Cv0zTXz6K";

/// An Alertmanager that serves only https with the test CA's certificate,
/// requires a client certificate the CA signed, and basic auth.
#[test]
fn pushes_reach_an_alertmanager_behind_tls_client_certificates_and_basic_auth() {
    use outage_testkit::TestCerts;
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path(), &["127.0.0.1"]);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n\
         basic_auth_users:\n  radar: '{AM_USER_HASH}'\n"
    );
    let am = Alertmanager::start_with_web_config(
        AM_CONFIG,
        &web,
        &[
            ("server.pem", &read(&certs.server_cert)),
            ("server.key", &read(&certs.server_key)),
            ("ca.pem", &read(&certs.ca)),
        ],
    );
    std::env::set_var("OUTAGE_RADAR_TEST_TLS_AM_PASSWORD", "am-test-password");
    std::env::set_var("OUTAGE_RADAR_TEST_TLS_AM_WRONG", "not-it");
    let good = AlertmanagerConfig {
        urls: vec![am.url()],
        basic_auth_username: Some("radar".into()),
        basic_auth_password_env: Some("OUTAGE_RADAR_TEST_TLS_AM_PASSWORD".into()),
        tls_ca_file: Some(certs.ca.clone()),
        tls_cert_file: Some(certs.client_cert.clone()),
        tls_key_file: Some(certs.client_key.clone()),
        max_attempts: 1,
        ..AlertmanagerConfig::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let label = outage_export::alert::display_url(&am.url());
    // Pushes one alert for `region` with `config`; returns the metrics.
    let push = |config: &AlertmanagerConfig, region: &str| {
        let metrics = AlertMetrics::register(&Registry::new()).unwrap();
        let queue = {
            let _g = rt.enter();
            start(config, metrics.clone()).unwrap().unwrap()
        };
        queue.push(build_alert(
            config,
            IncidentEvent::Opened,
            &incident("alexa", region),
            None,
        ));
        (queue, metrics)
    };

    let (_q, metrics) = push(&good, "FR");
    assert!(
        wait_until(Duration::from_secs(10), || {
            metrics.pushes.with_label_values(&[&label, "success"]).get() >= 1
        }),
        "the alert was not accepted: {}",
        std::fs::read_to_string(am.dir().join("alertmanager.log")).unwrap_or_default()
    );
    // Alertmanager has it: read back over the same TLS and credentials.
    let body = rt.block_on(async {
        let identity = reqwest::Identity::from_pem(
            format!("{}\n{}", read(&certs.client_cert), read(&certs.client_key)).as_bytes(),
        )
        .unwrap();
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(read(&certs.ca).as_bytes()).unwrap(),
            )
            .identity(identity)
            .build()
            .unwrap()
            .get(format!("{}/api/v2/alerts", am.url()))
            .basic_auth("radar", Some("am-test-password"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(body.contains(r#""region":"FR""#), "{body}");

    // Each missing piece is refused by Alertmanager and counted as an
    // error, never as delivered.
    let other_ca = certs.other_ca.clone();
    let refused = [
        (
            "wrong password",
            AlertmanagerConfig {
                basic_auth_password_env: Some("OUTAGE_RADAR_TEST_TLS_AM_WRONG".into()),
                ..good.clone()
            },
        ),
        (
            "no client certificate",
            AlertmanagerConfig {
                tls_cert_file: None,
                tls_key_file: None,
                ..good.clone()
            },
        ),
        (
            "a CA that did not sign the server's certificate",
            AlertmanagerConfig {
                tls_ca_file: Some(other_ca),
                ..good.clone()
            },
        ),
    ];
    for (what, config) in refused {
        let (_q, metrics) = push(&config, "DE");
        assert!(
            wait_until(Duration::from_secs(10), || {
                metrics.pushes.with_label_values(&[&label, "error"]).get() >= 1
            }),
            "{what}: no error counted"
        );
        assert_eq!(
            metrics.pushes.with_label_values(&[&label, "success"]).get(),
            0,
            "{what}: delivered"
        );
    }
}

#[test]
fn a_withdrawn_alert_is_not_resent_and_its_new_owner_keeps_it_firing_once() {
    // Two instances push to one Alertmanager. The incident's partition
    // moves from `one` to `two`: `one` withdraws the alert (stops
    // re-sending it, does not resolve it), `two` carries it over. One
    // alert fires throughout, and it resolves once.
    let am = Alertmanager::start(AM_CONFIG);
    let config = AlertmanagerConfig {
        urls: vec![am.url()],
        resend_interval: Duration::from_secs(2),
        ..AlertmanagerConfig::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (one_metrics, two_metrics) = (
        AlertMetrics::register(&Registry::new()).unwrap(),
        AlertMetrics::register(&Registry::new()).unwrap(),
    );
    let (one, two) = {
        let _g = rt.enter();
        (
            start(&config, one_metrics.clone()).unwrap().unwrap(),
            start(&config, two_metrics.clone()).unwrap().unwrap(),
        )
    };
    let inc = incident("alexa", "GB");
    let gb = |am: &Alertmanager| -> Vec<Value> {
        am_alerts(am)
            .into_iter()
            .filter(|a| a["labels"]["region"] == "GB")
            .collect()
    };
    let ends = |am: &Alertmanager| gb(am)[0]["endsAt"].as_str().unwrap().to_string();
    one.push(build_alert(&config, IncidentEvent::Opened, &inc, None));
    assert!(wait_until(Duration::from_secs(8), || gb(&am).len() == 1));

    one.withdraw(outage_export::alert::alert_key(&inc));
    assert!(wait_until(Duration::from_secs(2), || one_metrics
        .firing
        .get()
        == 0));
    // Past one resend interval (a re-send already in flight has landed),
    // `one` no longer moves endsAt, and the alert is still active.
    std::thread::sleep(Duration::from_millis(2_500));
    let settled = ends(&am);
    std::thread::sleep(Duration::from_secs(3));
    let alerts = gb(&am);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["status"]["state"], "active", "{alerts:?}");
    assert_eq!(ends(&am), settled, "a withdrawn alert was re-sent");

    // The new owner carries it over: same labels, still one alert, and
    // its re-sends move endsAt again.
    two.push(build_alert(&config, IncidentEvent::Opened, &inc, None));
    assert!(wait_until(Duration::from_secs(5), || ends(&am) > settled));
    assert_eq!(gb(&am).len(), 1);
    let mut resolved = inc.clone();
    resolved.resolved_at_ms = Some(1_537_957_000_000);
    two.push(build_alert(
        &config,
        IncidentEvent::Resolved,
        &resolved,
        None,
    ));
    assert!(
        wait_until(Duration::from_secs(5), || gb(&am)
            .iter()
            .all(|a| a["status"]["state"] != "active")),
        "{:?}",
        gb(&am)
    );
    assert_eq!((one_metrics.firing.get(), two_metrics.firing.get()), (0, 0));
}
