//! A minimal HTTP/1.1 keep-alive client for `umbra bench`: sequential GETs on one
//! connection to the gateway, each timed from request to the last body byte. It reads only
//! what the gateway sends (a status line, headers, a `content-length` body). Not in this
//! module: anything a general HTTP client needs (chunked bodies, redirects, TLS).

use crate::runtime::error::RuntimeError;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One timed GET.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    /// Request written → head read.
    pub first_byte: Duration,
    /// Request written → last body byte read.
    pub total: Duration,
}

/// A keep-alive connection to the gateway.
pub struct Client {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Client {
    /// Connect to `gateway`, sending `host` as the Host header.
    pub fn connect(gateway: SocketAddr, host: String) -> Result<Client, RuntimeError> {
        let s = TcpStream::connect_timeout(&gateway, Duration::from_secs(5))
            .map_err(|e| RuntimeError::Bench(format!("cannot connect to the gateway: {e}")))?;
        let _ = s.set_nodelay(true);
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| RuntimeError::Bench(e.to_string()))?;
        Ok(Client {
            reader: BufReader::new(s),
            host,
        })
    }

    /// GET `path`; the body must be `want` exactly.
    pub fn get(&mut self, path: &str, want: &[u8]) -> Result<Timed, RuntimeError> {
        let (timed, body) = self.fetch(path)?;
        if body != want {
            return Err(RuntimeError::Bench(format!(
                "GET {path}: the body differs from the published file"
            )));
        }
        Ok(timed)
    }

    /// GET `path` as JSON (the dashboard's `/api/status`).
    pub fn json(&mut self, path: &str) -> Result<serde_json::Value, RuntimeError> {
        let (_, body) = self.fetch(path)?;
        serde_json::from_slice(&body)
            .map_err(|e| RuntimeError::Bench(format!("GET {path}: not JSON: {e}")))
    }

    /// GET `path`: its timing and body (status 200 only).
    fn fetch(&mut self, path: &str) -> Result<(Timed, Vec<u8>), RuntimeError> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        let start = Instant::now();
        self.reader
            .get_mut()
            .write_all(req.as_bytes())
            .map_err(|e| RuntimeError::Bench(format!("GET {path}: {e}")))?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| RuntimeError::Bench(format!("GET {path}: {e}")))?;
        let first_byte = start.elapsed();
        let status = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = None;
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(|e| RuntimeError::Bench(format!("GET {path}: {e}")))?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                }
            }
        }
        let len =
            len.ok_or_else(|| RuntimeError::Bench(format!("GET {path}: no content-length")))?;
        let mut body = vec![0u8; len];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| RuntimeError::Bench(format!("GET {path}: body: {e}")))?;
        let total = start.elapsed();
        if status != "200" {
            return Err(RuntimeError::Bench(format!("GET {path}: status {status}")));
        }
        Ok((Timed { first_byte, total }, body))
    }
}
