//! A real HTTP server on 127.0.0.1 that records each request and answers as scripted: the
//! webhook receiver and any outbound target.

#![allow(clippy::unwrap_used)] // a test's helpers fail the test by panicking

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;
use tokio::sync::mpsc;

/// What the receiver answers: a status and headers.
#[derive(Debug, Clone)]
pub struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A request the receiver got.
#[derive(Debug)]
pub struct Got {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    otherwise: Arc<Mutex<Answer>>,
    got: mpsc::UnboundedSender<Got>,
}

/// A real HTTP server on 127.0.0.1 that records each request and answers as scripted.
pub struct Receiver {
    pub url: String,
    script: Script,
    got: mpsc::UnboundedReceiver<Got>,
}

impl Receiver {
    pub async fn start() -> Self {
        let (sender, got) = mpsc::unbounded_channel();
        let script = Script {
            answers: Arc::default(),
            otherwise: Arc::new(Mutex::new(Answer::status(200))),
            got: sender,
        };
        let app = axum::Router::new()
            .fallback(
                |axum::extract::State(script): axum::extract::State<Script>,
                 uri: axum::http::Uri,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let answer = script
                        .answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or_else(|| script.otherwise.lock().unwrap().clone());
                    let _ = script.got.send(Got {
                        path: uri.to_string(),
                        headers,
                        body,
                    });
                    let mut response: Response = "ok".into_response();
                    *response.status_mut() = answer.status.try_into().unwrap();
                    for (name, value) in answer.headers {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response
                },
            )
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, script, got }
    }

    pub fn answer(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.answers.lock().unwrap().extend(answers);
    }

    pub fn otherwise(&self, answer: Answer) {
        *self.script.otherwise.lock().unwrap() = answer;
    }

    /// The next request, within 10 s.
    pub async fn next(&mut self) -> Got {
        tokio::time::timeout(Duration::from_secs(10), self.got.recv())
            .await
            .expect("a delivery within 10 s")
            .expect("receiver running")
    }

    /// Nothing arrived so far (everything sent before was taken with `next`). An absence is
    /// only worth asserting once what should have arrived has (a later marker, a recorded
    /// state), so callers pair it with one.
    #[must_use]
    pub fn nothing_pending(&mut self) -> bool {
        self.got.try_recv().is_err()
    }
}
