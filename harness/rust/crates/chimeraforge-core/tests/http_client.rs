//! The kit's HTTP/1.1 client against an in-test TCP server: chunked NDJSON split at awkward places,
//! Content-Length bodies, lines released as soon as they are complete (or, with a 1 KiB batch, late).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use chimeraforge_core::http::{post, Endpoint};
use chimeraforge_core::transport::{Line, LineSource};
use futures_lite::future::block_on;
use futures_lite::io::AssertAsync;

/// Serve one connection: read the request, then write `parts` with `gap` between them.
fn serve_once(
    parts: Vec<Vec<u8>>,
    gap: Duration,
) -> (String, thread::JoinHandle<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        for part in parts {
            stream.write_all(&part).unwrap();
            stream.flush().unwrap();
            thread::sleep(gap);
        }
        (head, body)
    });
    (url, handle)
}

fn collect(url: &str, min_batch: usize) -> (u16, bool, Vec<Line>) {
    let endpoint = Endpoint::parse(url).unwrap();
    let stream = AssertAsync::new(TcpStream::connect(endpoint.authority()).unwrap());
    block_on(async {
        let (head, mut lines) = post(stream, &endpoint, "/api/generate", b"{\"x\":1}", min_batch)
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            out.push(line);
        }
        (head.status, head.simulated, out)
    })
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn chunked_lines_arrive_as_they_complete() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nX-Chimeraforge-Simulated: 1\r\n\r\n".to_vec();
    let mut first = head;
    first.extend(chunk(b"{\"response\":\"a\"}\n{\"resp"));
    let parts = vec![
        first,
        chunk(b"onse\":\"b\"}\n"),
        chunk(b"{\"done\":true}\n"),
        b"0\r\n\r\n".to_vec(),
    ];
    let (url, server) = serve_once(parts, Duration::from_millis(40));
    let (status, simulated, lines) = collect(&url, 0);
    let (head, body) = server.join().unwrap();
    assert_eq!((status, simulated), (200, true));
    assert!(
        head.starts_with("POST /api/generate HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("Connection: close\r\n"));
    assert_eq!(body, b"{\"x\":1}");
    let texts: Vec<&[u8]> = lines.iter().map(|l| l.bytes.as_slice()).collect();
    assert_eq!(
        texts,
        [
            &b"{\"response\":\"a\"}"[..],
            b"{\"response\":\"b\"}",
            b"{\"done\":true}"
        ]
    );
    // The first line was released with the first read, not at the end of the body.
    assert!(lines[1].arrival_ns - lines[0].arrival_ns >= 30_000_000);
    assert!(lines[2].arrival_ns - lines[1].arrival_ns >= 30_000_000);
}

#[test]
fn content_length_body() {
    let body = b"{\"error\":\"model not found\"}";
    let mut resp = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(body);
    let (url, server) = serve_once(vec![resp], Duration::from_millis(1));
    let (status, simulated, lines) = collect(&url, 0);
    server.join().unwrap();
    assert_eq!((status, simulated), (404, false));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].bytes, body);
}

#[test]
fn one_kib_batch_delays_the_first_line() {
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let small = b"{\"response\":\"tok\"}\n".to_vec(); // 19 bytes
    let mut parts = vec![head];
    for _ in 0..60 {
        parts.push(chunk(&small));
    }
    parts.push(b"0\r\n\r\n".to_vec());
    let (url, server) = serve_once(parts.clone(), Duration::from_millis(2));
    let (_, _, eager) = collect(&url, 0);
    server.join().unwrap();
    let (url, server) = serve_once(parts, Duration::from_millis(2));
    let (_, _, flawed) = collect(&url, 1024);
    server.join().unwrap();
    assert_eq!(eager.len(), 60);
    assert_eq!(flawed.len(), 60);
    // Eager: line 1 long before line 50. Flawed: nothing before ~54 lines (1 KiB) were buffered.
    assert!(eager[49].arrival_ns - eager[0].arrival_ns > 50_000_000);
    assert_eq!(flawed[0].arrival_ns, flawed[52].arrival_ns);
}
