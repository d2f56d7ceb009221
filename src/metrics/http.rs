//! The metrics endpoint: a deliberately tiny HTTP/1.x server that answers `GET /metrics` with
//! the node's metrics and nothing else.
//!
//! Owns its socket, its connections and their limits: a request head of at most
//! [`MAX_HEAD_BYTES`] arriving within [`READ_TIMEOUT`], at most [`MAX_CONNECTIONS`] connections
//! at once (one more is answered 503 and closed), one request per connection, a response
//! written within [`WRITE_TIMEOUT`]. Nothing a client sends is trusted or echoed back. It must
//! never record or compute a metric ([`super::Exposition`] renders them) and never block the
//! runtime it runs on: it is a few tokio tasks beside the node's actors.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::exposition::{CONTENT_TYPE, Exposition};

/// The only path served.
pub const METRICS_PATH: &str = "/metrics";
/// A scrape's request head (request line and headers) is a few hundred bytes; 8 KiB, the
/// common server default, leaves room for proxies' headers and refuses anything bigger.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Prometheus scrapes one target at a time, a few dashboards or curls may join; beyond this a
/// flood of connections gets a 503, so it can hold neither memory nor descriptors.
pub const MAX_CONNECTIONS: usize = 16;
/// Time for the whole request head to arrive: a scraper sends it at once, so a connection
/// dribbling bytes (slowloris) or idle is closed after this.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the response to be taken: a client that stops reading is dropped after this.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (e.g. out of descriptors), so the loop never spins a core.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// A running metrics endpoint; dropping it stops accepting.
#[derive(Debug)]
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsEndpoint {
    /// Serves `exposition` on `listener` (bound already, so that a port 0 is known at once) from
    /// the current tokio runtime.
    pub fn start(listener: std::net::TcpListener, exposition: Exposition) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let local_addr = listener.local_addr()?;
        let task = tokio::spawn(accept_loop(listener, Arc::new(exposition)));
        Ok(MetricsEndpoint { local_addr, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, exposition: Arc<Exposition>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let exposition = exposition.clone();
                tokio::spawn(async move {
                    serve(stream, &exposition).await;
                    drop(permit);
                });
            }
            // Over the limit: say so with one non-blocking write (whatever the socket buffer
            // takes; no task, no wait) and close, so a flood costs nothing that lasts.
            Err(_) => {
                let _ =
                    stream.try_write(&Response::status(503, "Service Unavailable").into_bytes());
            }
        }
    }
}

/// One connection: read one request head, answer, close.
async fn serve(mut stream: TcpStream, exposition: &Exposition) {
    let response = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        // Too slow or gone: nothing worth answering.
        Err(_) | Ok(Err(HeadError::Closed)) => return,
        Ok(Err(HeadError::TooLarge)) => Response::status(431, "Request Header Fields Too Large"),
        Ok(Ok(head)) => route(&head, exposition),
    };
    respond(stream, response).await;
}

async fn respond(mut stream: TcpStream, response: Response) {
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&response.into_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

#[derive(Debug)]
enum HeadError {
    TooLarge,
    /// The client closed the connection, or reading from it failed.
    Closed,
}

/// Reads until the blank line that ends a request head, refusing more than `MAX_HEAD_BYTES`.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        // Look for the end only where the new bytes could complete it.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find_head_end(&head[from..]) {
            head.truncate(from + end);
            return Ok(head);
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// The answer to a complete request head.
fn route(head: &[u8], exposition: &Exposition) -> Response {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::status(400, "Bad Request");
    };
    if !version.starts_with(b"HTTP/1.") {
        return Response::status(400, "Bad Request");
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if path != METRICS_PATH.as_bytes() {
        return Response::status(404, "Not Found");
    }
    if method != b"GET" {
        return Response::status(405, "Method Not Allowed").with_header("Allow: GET");
    }
    Response {
        status: "200 OK".into(),
        headers: vec![format!("Content-Type: {CONTENT_TYPE}")],
        body: exposition.render(),
    }
}

struct Response {
    status: String,
    headers: Vec<String>,
    body: String,
}

impl Response {
    fn status(code: u16, reason: &str) -> Response {
        Response {
            status: format!("{code} {reason}"),
            headers: vec!["Content-Type: text/plain; charset=utf-8".into()],
            body: format!("{code} {reason}\n"),
        }
    }

    fn with_header(mut self, header: &str) -> Response {
        self.headers.push(header.into());
        self
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut text = format!("HTTP/1.1 {}\r\n", self.status);
        for header in &self.headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        text.push_str(&self.body);
        text.into_bytes()
    }
}
