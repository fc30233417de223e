//! A webhook receiver for Alertmanager notifications: a plain HTTP/1.1
//! listener on a free loopback port that records every POSTed JSON body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One received request.
#[derive(Clone, Debug)]
pub struct Received {
    /// Request path.
    pub path: String,
    /// Request headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Parsed JSON body.
    pub body: serde_json::Value,
}

/// Records notifications until dropped (the listener thread is detached
/// and dies with the test process).
pub struct WebhookReceiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl WebhookReceiver {
    /// Starts a receiver on a free port of 127.0.0.1.
    pub fn start() -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(stream, &sink));
            }
        });
        WebhookReceiver { port, received }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every alert of every notification, with the notification's path:
    /// `(path, alert)` where `alert` has `status`, `labels`, `annotations`.
    pub fn alerts(&self) -> Vec<(String, serde_json::Value)> {
        self.received()
            .into_iter()
            .flat_map(|r| {
                let path = r.path.clone();
                r.body["alerts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |a| (path.clone(), a))
            })
            .collect()
    }
}

/// Answers requests on one keep-alive connection.
fn serve(stream: TcpStream, sink: &Mutex<Vec<Received>>) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let mut length = 0usize;
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                if name == "content-length" {
                    length = value.parse().unwrap_or(0);
                }
                headers.push((name, value.to_string()));
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        sink.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Received {
                path,
                headers,
                body,
            });
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}
