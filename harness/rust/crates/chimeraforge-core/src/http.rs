//! A small HTTP/1.1 client over `futures-io` streams, for runtimes without a native client of their own
//! (smol, async-std): one request per connection (`Connection: close`), `Content-Length`, chunked or
//! until-close bodies, lines released as soon as they are complete.

use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::clock::monotonic_ns;
use crate::error::TransportError;
use crate::transport::{Head, Line, LineSource, LineSplitter};

const MAX_HEAD_BYTES: usize = 64 * 1024;
const READ_BUF: usize = 8 * 1024;

/// `http://HOST[:PORT][/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub base_url: String,
    pub host: String,
    pub port: u16,
    pub prefix: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, TransportError> {
        let trimmed = url.trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("http://")
            .ok_or_else(|| TransportError::Url(url.into()))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| TransportError::Url(url.into()))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| TransportError::Url(url.into()))?,
                None if after.is_empty() => 80,
                None => return Err(TransportError::Url(url.into())),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_owned(),
                    p.parse().map_err(|_| TransportError::Url(url.into()))?,
                ),
                None => (authority.to_owned(), 80),
            }
        };
        if host.is_empty() {
            return Err(TransportError::Url(url.into()));
        }
        Ok(Endpoint {
            base_url: trimmed.to_owned(),
            host,
            port,
            prefix: prefix.to_owned(),
        })
    }

    /// `host:port` for connecting (IPv6 literals bracketed).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Incremental body decoder: feed raw bytes, get body bytes out.
#[derive(Debug)]
pub struct BodyDecoder {
    framing: Framing,
    state: ChunkState,
    line: Vec<u8>,
}

impl BodyDecoder {
    pub fn chunked() -> Self {
        Self::new(Framing::Chunked)
    }

    pub fn length(n: u64) -> Self {
        Self::new(Framing::Length(n))
    }

    pub fn until_close() -> Self {
        Self::new(Framing::UntilClose)
    }

    fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => ChunkState::Done,
            _ => ChunkState::Size,
        };
        BodyDecoder {
            framing,
            state,
            line: Vec::new(),
        }
    }

    /// The body is complete (further bytes are ignored).
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// The connection closed: fine only when the framing says the body is over.
    pub fn finish(&self) -> Result<(), TransportError> {
        match self.framing {
            Framing::UntilClose => Ok(()),
            _ if self.is_done() => Ok(()),
            _ => Err(TransportError::Protocol(
                "connection closed before the end of the body".into(),
            )),
        }
    }

    /// Decode `input`, appending body bytes to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), TransportError> {
        match self.framing {
            Framing::UntilClose => {
                out.extend_from_slice(input);
                return Ok(());
            }
            Framing::Length(_) => {
                if let Framing::Length(left) = &mut self.framing {
                    let take = (*left).min(input.len() as u64) as usize;
                    out.extend_from_slice(&input[..take]);
                    *left -= take as u64;
                    if *left == 0 {
                        self.state = ChunkState::Done;
                    }
                }
                return Ok(());
            }
            Framing::Chunked => {}
        }
        while !input.is_empty() {
            match self.state {
                ChunkState::Size | ChunkState::Trailers | ChunkState::DataEnd => {
                    let Some(pos) = input.iter().position(|b| *b == b'\n') else {
                        self.line.extend_from_slice(input);
                        self.check_line_len()?;
                        return Ok(());
                    };
                    self.line.extend_from_slice(&input[..pos]);
                    input = &input[pos + 1..];
                    let line = std::mem::take(&mut self.line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    self.state = match self.state {
                        ChunkState::Size => {
                            let text = std::str::from_utf8(line).map_err(|_| bad("chunk size"))?;
                            let digits = text.split(';').next().unwrap_or("").trim();
                            let size =
                                u64::from_str_radix(digits, 16).map_err(|_| bad("chunk size"))?;
                            if size == 0 {
                                ChunkState::Trailers
                            } else {
                                ChunkState::Data(size)
                            }
                        }
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => return Err(bad("chunk terminator")),
                        _ if line.is_empty() => ChunkState::Done,
                        _ => ChunkState::Trailers,
                    };
                }
                ChunkState::Data(left) => {
                    let take = left.min(input.len() as u64) as usize;
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = if left == take as u64 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take as u64)
                    };
                }
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }

    fn check_line_len(&self) -> Result<(), TransportError> {
        if self.line.len() > 4096 {
            Err(bad("chunk header line too long"))
        } else {
            Ok(())
        }
    }
}

fn bad(what: &str) -> TransportError {
    TransportError::Protocol(format!("malformed {what}"))
}

/// The body of a response on an owned connection.
pub struct BodyLines<S> {
    stream: S,
    decoder: BodyDecoder,
    splitter: LineSplitter,
    ended: bool,
    buf: Vec<u8>,
    decoded: Vec<u8>,
}

impl<S: AsyncRead + Unpin> LineSource for BodyLines<S> {
    async fn next_line(&mut self) -> Result<Option<Line>, TransportError> {
        loop {
            if let Some(line) = self.splitter.pop() {
                return Ok(Some(line));
            }
            if self.ended {
                return Ok(None);
            }
            if self.decoder.is_done() {
                self.ended = true;
                self.splitter.finish(monotonic_ns());
                continue;
            }
            let n = self.stream.read(&mut self.buf).await?;
            let now = monotonic_ns();
            if n == 0 {
                self.decoder.finish()?;
                self.ended = true;
                self.splitter.finish(now);
                continue;
            }
            self.decoded.clear();
            self.decoder.feed(&self.buf[..n], &mut self.decoded)?;
            self.splitter.push(&self.decoded, now);
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Send one POST on `stream` (already connected to `endpoint`) and read the response head.
/// `min_batch` is passed to the [`LineSplitter`] (0: release lines at once).
pub async fn post<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    endpoint: &Endpoint,
    path: &str,
    body: &[u8],
    min_batch: usize,
) -> Result<(Head, BodyLines<S>), TransportError> {
    let head = format!(
        "POST {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: chimeraforge-agent\r\nAccept: */*\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        endpoint.prefix,
        path,
        endpoint.authority(),
        body.len()
    );
    exchange(stream, head, body, min_batch).await
}

/// Send one GET (no body) on `stream` and read the response head: the unload wait's `/api/ps`.
pub async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    endpoint: &Endpoint,
    path: &str,
) -> Result<(Head, BodyLines<S>), TransportError> {
    let head = format!(
        "GET {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: chimeraforge-agent\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        endpoint.prefix,
        path,
        endpoint.authority(),
    );
    exchange(stream, head, &[], 0).await
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: String,
    body: &[u8],
    min_batch: usize,
) -> Result<(Head, BodyLines<S>), TransportError> {
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await?;
    stream.flush().await?;

    let mut buf = vec![0u8; READ_BUF];
    let mut head = Vec::new();
    let (head_len, status, headers) = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(TransportError::Protocol(
                "connection closed before the response head".into(),
            ));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find_head_end(&head) {
            let (status, headers) = parse_head(&head[..end])?;
            if (100..200).contains(&status) {
                head.drain(..end);
                continue;
            }
            break (end, status, headers);
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(TransportError::Protocol("response head too long".into()));
        }
    };
    let header = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let decoder = if header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        BodyDecoder::chunked()
    } else if let Some(len) = header("content-length") {
        BodyDecoder::length(
            len.trim()
                .parse()
                .map_err(|_| TransportError::Protocol(format!("bad Content-Length {len:?}")))?,
        )
    } else {
        BodyDecoder::until_close()
    };
    let simulated = header("x-chimeraforge-simulated").is_some_and(|v| v.trim() == "1");
    let mut lines = BodyLines {
        stream,
        decoder,
        splitter: LineSplitter::new(min_batch),
        ended: false,
        buf,
        decoded: Vec::new(),
    };
    let rest = head.split_off(head_len);
    if !rest.is_empty() {
        let now = monotonic_ns();
        lines.decoder.feed(&rest, &mut lines.decoded)?;
        let decoded = std::mem::take(&mut lines.decoded);
        lines.splitter.push(&decoded, now);
    }
    Ok((Head { status, simulated }, lines))
}

type Headers = Vec<(String, String)>;

fn parse_head(head: &[u8]) -> Result<(u16, Headers), TransportError> {
    let text = std::str::from_utf8(head)
        .map_err(|_| TransportError::Protocol("response head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(TransportError::Protocol(format!(
            "bad status line {status_line:?}"
        )));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| TransportError::Protocol(format!("bad status line {status_line:?}")))?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:11434/").unwrap();
        assert_eq!(
            (
                e.base_url.as_str(),
                e.host.as_str(),
                e.port,
                e.prefix.as_str()
            ),
            ("http://127.0.0.1:11434", "127.0.0.1", 11434, "")
        );
        let e = Endpoint::parse("http://ollama/x").unwrap();
        assert_eq!((e.port, e.prefix.as_str()), (80, "/x"));
        let e = Endpoint::parse("http://[::1]:9").unwrap();
        assert_eq!(e.authority(), "[::1]:9");
        assert!(Endpoint::parse("https://h").is_err());
        assert!(Endpoint::parse("http://h:x").is_err());
    }

    #[test]
    fn chunked_decoding_byte_by_byte() {
        let wire = b"4;ext=1\r\nab\nc\r\n3\r\nd\ne\r\n0\r\nX-T: 1\r\n\r\nIGNORED";
        for step in [1usize, 2, 5, wire.len()] {
            let mut d = BodyDecoder::chunked();
            let mut out = Vec::new();
            for piece in wire.chunks(step) {
                d.feed(piece, &mut out).unwrap();
            }
            assert!(d.is_done(), "step {step}");
            assert_eq!(out, b"ab\ncd\ne", "step {step}");
        }
        let mut d = BodyDecoder::chunked();
        assert!(d.feed(b"zz\r\n", &mut Vec::new()).is_err());
        let mut d = BodyDecoder::chunked();
        d.feed(b"5\r\nab", &mut Vec::new()).unwrap();
        assert!(d.finish().is_err());
    }

    #[test]
    fn length_decoding() {
        let mut d = BodyDecoder::length(3);
        let mut out = Vec::new();
        d.feed(b"ab", &mut out).unwrap();
        assert!(!d.is_done());
        d.feed(b"cd", &mut out).unwrap();
        assert!(d.is_done());
        assert_eq!(out, b"abc");
    }
}
