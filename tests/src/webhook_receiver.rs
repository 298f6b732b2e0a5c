//! A webhook receiver on loopback for tests: records every request (headers and body)
//! and answers as told — `200` (after a delay, if one is set), `500`, or nothing at all
//! (it hangs).
//!
//! tests/tests/events.rs scripts its answers; gateway/tests/multi_node.rs and
//! gateway/tests/chaos.rs (which include this file with `#[path]`: the gateway's tests
//! cannot depend on the kit, which depends on the gateway) count the `Feria-Event-Id`s
//! several nodes delivered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the receiver answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `200 OK`, after the receiver's delay ([`Receiver::delay`]).
    Ok,
    /// `500 Internal Server Error`.
    Fail,
    /// Nothing for 30 seconds, then the connection is dropped.
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// The value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a webhook's body is JSON")
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Answers for the next requests, in order; `always` once empty.
    script: Vec<Answer>,
    /// When set, every request after the script gets this answer; `Ok` otherwise.
    always: Option<Answer>,
    /// How long an `Ok` waits before it is sent.
    delay: Duration,
}

/// The receiver; clones share it.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hooks`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Listens on a free port of loopback, answering `200` at once until told otherwise.
    /// Each request is recorded when it has arrived whole, before it is answered.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port on loopback");
        let url = format!(
            "http://{}/hooks",
            listener.local_addr().expect("the listener's address")
        );
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, shared.clone()));
            }
        });
        Receiver { url, state }
    }

    /// The answers to the next requests, in order.
    pub fn script(&self, answers: &[Answer]) {
        self.lock().script = answers.to_vec();
    }

    /// The answer to every request after the script.
    pub fn always(&self, answer: Answer) {
        self.lock().always = Some(answer);
    }

    /// How long each `200` waits before it is sent (a slow receiver).
    pub fn delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Every request so far, in the order they arrived.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The `Feria-Event-Id` of every request so far, in the order they arrived.
    pub fn event_ids(&self) -> Vec<String> {
        self.lock()
            .received
            .iter()
            .filter_map(|r| r.header("Feria-Event-Id").map(str::to_owned))
            .collect()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.lock().received.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panicking holder is a failed test already; its data is still what was received.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads one request from `socket`, records it and answers it.
async fn serve(mut socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 8192];
    let (head_end, length) = loop {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while buffer.len() < head_end + length {
        let Ok(n) = socket.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let (answer, delay) = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.received.push(Received {
            headers,
            body: buffer[head_end..head_end + length].to_vec(),
        });
        let answer = if state.script.is_empty() {
            state.always.unwrap_or(Answer::Ok)
        } else {
            state.script.remove(0)
        };
        (answer, state.delay)
    };
    let response: &[u8] = match answer {
        Answer::Ok => {
            tokio::time::sleep(delay).await;
            b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nreceived"
        }
        Answer::Fail => {
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops"
        }
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
    };
    let _ = socket.write_all(response).await;
    let _ = socket.shutdown().await;
}
