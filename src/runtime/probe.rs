//! `umbra probe`: build a 3-hop circuit and echo bytes through it, checking every byte.
//!
//! The application half of the probe: it reacts to circuit events and feeds the stream as
//! back-pressure allows (at most [`IN_FLIGHT`] bytes queued in the node). Not in this
//! module: the driver loop.

use super::driver::App;
use crate::ids::{CircHandle, StreamHandle};
use crate::node::{Node, NodeEvent};
use crate::time::Time;

/// Bytes the probe keeps queued in the node at most.
pub const IN_FLIGHT: usize = 512 * 1024;

/// The byte at offset `i` of the probe's pattern.
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

/// The echo probe.
#[derive(Debug)]
pub struct Probe {
    total: u64,
    circ: Option<CircHandle>,
    stream: Option<StreamHandle>,
    sent: u64,
    received: u64,
    started: Time,
    built: Option<Time>,
    opened: Option<Time>,
    result: Option<i32>,
    quiet: bool,
}

impl Probe {
    /// Echo `total` bytes.
    pub fn new(total: u64, quiet: bool) -> Probe {
        Probe {
            total,
            circ: None,
            stream: None,
            sent: 0,
            received: 0,
            started: Time::ZERO,
            built: None,
            opened: None,
            result: None,
            quiet,
        }
    }

    fn fail(&mut self, why: &str) {
        eprintln!(
            "umbra probe: FAILED: {why} ({} of {} bytes echoed)",
            self.received, self.total
        );
        self.result = Some(1);
    }
}

impl App for Probe {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.started = now;
        self.circ = Some(node.build_circuit(now));
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        if self.result.is_some() {
            return;
        }
        match event {
            NodeEvent::Built { circ, path } if Some(circ) == self.circ => {
                self.built = Some(now);
                if !self.quiet {
                    println!(
                        "circuit built in {:.1} ms through {} hops",
                        (now - self.started).as_secs_f64() * 1e3,
                        path.len()
                    );
                }
                match node.open_stream(now, circ, b"echo") {
                    Ok(s) => self.stream = Some(s),
                    Err(e) => self.fail(&e.to_string()),
                }
            }
            NodeEvent::Failed { failure, .. } | NodeEvent::Closed { failure, .. } => {
                self.fail(&failure.to_string())
            }
            NodeEvent::StreamOpened { stream } if Some(stream) == self.stream => {
                self.opened = Some(now);
            }
            NodeEvent::StreamData { stream, data } if Some(stream) == self.stream => {
                for (k, b) in data.iter().enumerate() {
                    if *b != pattern(self.received + k as u64) {
                        self.fail(&format!(
                            "byte {} came back altered",
                            self.received + k as u64
                        ));
                        return;
                    }
                }
                self.received += data.len() as u64;
                if self.received == self.total {
                    let secs = self.opened.map_or(0.0, |o| (now - o).as_secs_f64());
                    println!(
                        "echoed {} bytes intact in {:.3} s ({:.1} MB/s each way)",
                        self.total,
                        secs,
                        self.total as f64 / secs.max(1e-9) / 1e6
                    );
                    if let Some(c) = self.circ {
                        node.close_circuit(now, c);
                    }
                    self.result = Some(0);
                }
            }
            NodeEvent::StreamEnded { stream, reason } if Some(stream) == self.stream => {
                self.fail(&format!("stream ended (reason {reason})"))
            }
            _ => {}
        }
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        let (Some(stream), Some(_)) = (self.stream, self.opened) else {
            return;
        };
        while self.sent < self.total && node.stream_queued(stream) < IN_FLIGHT {
            let n = (self.total - self.sent).min(64 * 1024);
            let chunk: Vec<u8> = (self.sent..self.sent + n).map(pattern).collect();
            if let Err(e) = node.stream_send(now, stream, &chunk) {
                self.fail(&e.to_string());
                return;
            }
            self.sent += n;
        }
    }

    fn finished(&self) -> Option<i32> {
        self.result
    }
}
