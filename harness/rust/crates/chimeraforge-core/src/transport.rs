//! What the workflow needs from an HTTP stack: POST a body, then response lines with their arrival time.

use std::collections::VecDeque;

use crate::clock::monotonic_ns;
use crate::error::TransportError;

/// Status line and the headers the records use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// `X-Chimeraforge-Simulated: 1` was present.
    pub simulated: bool,
}

/// One response line (without its line break) and the `CLOCK_MONOTONIC` ns at which it became available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub bytes: Vec<u8>,
    pub arrival_ns: i64,
}

/// The body of one response, line by line.
// The futures' `Send`-ness follows the concrete transport; every runtime here names it concretely.
#[allow(async_fn_in_trait)]
pub trait LineSource {
    /// The next line, `None` at the end of the body.
    async fn next_line(&mut self) -> Result<Option<Line>, TransportError>;
}

/// One HTTP stack bound to one server.
#[allow(async_fn_in_trait)]
pub trait Transport {
    type Lines: LineSource;

    /// The server URL as given, without a trailing slash (the records' `base_url`).
    fn base_url(&self) -> &str;

    /// How long one call may take in all (connect, request, the whole response); None: no deadline.
    fn call_deadline(&self) -> Option<std::time::Duration> {
        None
    }

    /// POST `body` (`content-type: application/json`) to `path` under the base URL.
    async fn post(&self, path: &str, body: Vec<u8>) -> Result<(Head, Self::Lines), TransportError>;

    /// GET `path` under the base URL (`/api/ps`, polled while an unload completes).
    async fn get(&self, path: &str) -> Result<(Head, Self::Lines), TransportError>;
}

/// Splits body bytes into lines as soon as a full line is there. With `min_batch > 0` no line is released
/// until at least that many unparsed bytes are buffered (or the body ended): the `smol-1kb` flaw.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    ready: VecDeque<Line>,
    min_batch: usize,
}

impl LineSplitter {
    pub fn new(min_batch: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            ready: VecDeque::new(),
            min_batch,
        }
    }

    /// Add body bytes that arrived at `arrival_ns`.
    pub fn push(&mut self, data: &[u8], arrival_ns: i64) {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.min_batch {
            self.release(arrival_ns);
        }
    }

    fn release(&mut self, arrival_ns: i64) {
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            self.ready.push_back(Line {
                bytes: line.to_vec(),
                arrival_ns,
            });
            start = end + 1;
        }
        self.buf.drain(..start);
    }

    /// The body ended: release everything, the last line even without a line break.
    pub fn finish(&mut self, arrival_ns: i64) {
        self.release(arrival_ns);
        if !self.buf.is_empty() {
            let mut rest = std::mem::take(&mut self.buf);
            if rest.last() == Some(&b'\r') {
                rest.pop();
            }
            self.ready.push_back(Line {
                bytes: rest,
                arrival_ns,
            });
        }
    }

    pub fn pop(&mut self) -> Option<Line> {
        self.ready.pop_front()
    }
}

/// Read every remaining line and join them with `\n` (error bodies).
pub async fn read_all<L: LineSource>(lines: &mut L) -> Result<String, TransportError> {
    let mut parts = Vec::new();
    while let Some(line) = lines.next_line().await? {
        parts.push(String::from_utf8_lossy(&line.bytes).into_owned());
    }
    Ok(parts.join("\n"))
}

/// Now, for transports that stamp arrivals themselves.
pub fn now_ns() -> i64 {
    monotonic_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_across_pushes() {
        let mut s = LineSplitter::new(0);
        s.push(b"{\"a\":1}\n{\"b\"", 1);
        assert_eq!(s.pop().unwrap().bytes, b"{\"a\":1}");
        assert!(s.pop().is_none());
        s.push(b":2}\r\n\n", 2);
        let l = s.pop().unwrap();
        assert_eq!((l.bytes.as_slice(), l.arrival_ns), (&b"{\"b\":2}"[..], 2));
        assert_eq!(s.pop().unwrap().bytes, b"");
        s.push(b"tail", 3);
        s.finish(4);
        assert_eq!(s.pop().unwrap().bytes, b"tail");
    }

    #[test]
    fn min_batch_holds_lines_back() {
        let mut s = LineSplitter::new(16);
        s.push(b"a\nb\n", 1);
        assert!(s.pop().is_none());
        s.push(b"cccccccccccccc\n", 2);
        assert_eq!(s.pop().unwrap().arrival_ns, 2);
        assert_eq!(s.pop().unwrap().bytes, b"b");
    }
}
