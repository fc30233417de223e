//! outage-testkit: real services for tests, on free loopback ports.
//!
//! Each handle starts its service as a child process in a private temp
//! directory, waits until it answers, and kills it on drop. A missing binary
//! is a test failure with instructions (run `scripts/test`), never a skip.
//! Only ever binds and connects to 127.0.0.1.

mod process;
mod prometheus;
mod tansu;
mod tls;
mod webhook;

pub use process::{find_binary, free_port, wait_until};
pub use prometheus::{Alertmanager, Prometheus};
pub use tansu::{consume_all, send_blocking, test_producer, unique_name, Tansu};
pub use tls::{TestCerts, TlsProxy};
pub use webhook::{Received, WebhookReceiver};
