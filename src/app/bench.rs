//! The reader-side halves of `umbra bench` (`docs/performance.md`): [`App`]s that build
//! circuits and move bytes on the real driver, recording when each step happened. They
//! measure; the caller reports. [`CircuitBench`] and [`IdleCircuits`] measure circuit
//! building itself, so they use circuits and no service; [`BulkBench`] reaches the exit's
//! `discard` service through a [`ServiceSession`] with a budget of one circuit (a lost
//! circuit fails the measurement rather than being hidden by a retry).
//!
//! Not in this module: processes, CPU or memory readings, the table (`runtime/bench/`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::App;
use super::echo::{IN_FLIGHT, pattern};
use super::session::{ServiceSession, SessionEvent};
use crate::ids::{CircHandle, StreamHandle};
use crate::node::{Node, NodeEvent};
use crate::time::Time;

/// Which part of a [`CircuitBench`] a circuit was launched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Sequential,
    Concurrent,
}

/// Circuit builds: `warmup` untimed ones (`parallel` in flight; they open the links between
/// relays, as on a running network), `sequential` one after another, then `concurrent` with
/// at most `parallel` in flight. Every circuit is closed once built. Each circuit is
/// counted in the phase it was launched in, so a failure does not shift the others.
#[derive(Debug)]
pub struct CircuitBench {
    warmup: usize,
    sequential: usize,
    concurrent: usize,
    parallel: usize,
    /// Build times of the sequential circuits, in order.
    pub sequential_ms: Vec<f64>,
    /// When the concurrent phase started, and when its last circuit was built.
    pub concurrent_span: Option<(Time, Time)>,
    /// Circuits the concurrent phase built.
    pub concurrent_built: usize,
    /// Circuits that failed.
    pub failed: usize,
    pending: BTreeMap<CircHandle, (Time, Phase)>,
    launched: usize,
    result: Option<i32>,
}

impl CircuitBench {
    /// `warmup` untimed circuits, `sequential` one by one, then `concurrent` with
    /// `parallel` in flight.
    pub fn new(
        warmup: usize,
        sequential: usize,
        concurrent: usize,
        parallel: usize,
    ) -> CircuitBench {
        CircuitBench {
            warmup,
            sequential,
            concurrent,
            parallel: parallel.max(1),
            sequential_ms: Vec::new(),
            concurrent_span: None,
            concurrent_built: 0,
            failed: 0,
            pending: BTreeMap::new(),
            launched: 0,
            result: None,
        }
    }

    fn launch(&mut self, node: &mut Node, now: Time) {
        let (phase, limit, in_flight) = if self.launched < self.warmup {
            (Phase::Warmup, self.warmup, self.parallel)
        } else if self.launched < self.warmup + self.sequential {
            // One at a time, and only once the warm-up circuits are all done.
            (Phase::Sequential, self.warmup + self.sequential, 1)
        } else {
            (
                Phase::Concurrent,
                self.warmup + self.sequential + self.concurrent,
                self.parallel,
            )
        };
        if phase == Phase::Concurrent && self.concurrent_span.is_none() {
            if !self.pending.is_empty() {
                return;
            }
            self.concurrent_span = Some((now, now));
        }
        if phase == Phase::Sequential && self.pending.values().any(|p| p.1 == Phase::Warmup) {
            return;
        }
        while self.launched < limit && self.pending.len() < in_flight {
            self.launched += 1;
            self.pending.insert(node.build_circuit(now), (now, phase));
        }
        if self.launched == self.warmup + self.sequential + self.concurrent
            && self.pending.is_empty()
        {
            self.result = Some(if self.failed * 10 > self.launched {
                1
            } else {
                0
            });
        }
    }
}

impl App for CircuitBench {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.launch(node, now);
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        match event {
            NodeEvent::Built { circ, .. } => {
                let Some((start, phase)) = self.pending.remove(&circ) else {
                    return;
                };
                match phase {
                    Phase::Warmup => {}
                    Phase::Sequential => self
                        .sequential_ms
                        .push(now.saturating_since(start).as_secs_f64() * 1e3),
                    Phase::Concurrent => {
                        self.concurrent_built += 1;
                        if let Some((s, _)) = self.concurrent_span {
                            self.concurrent_span = Some((s, now));
                        }
                    }
                }
                node.close_circuit(now, circ);
            }
            NodeEvent::Failed { circ, .. } if self.pending.remove(&circ).is_some() => {
                self.failed += 1;
            }
            _ => {}
        }
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        if self.result.is_none() {
            self.launch(node, now);
        }
    }

    fn finished(&self) -> Option<i32> {
        self.result
    }
}

/// What one bulk stream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    Building,
    Opening,
    Sending,
    /// Everything went out; a one-byte echo on the same circuit follows the data, so its
    /// return proves the exit consumed every byte before it.
    Pinging,
    Done,
}

#[derive(Debug)]
struct BulkStream {
    /// The circuit and its `discard` stream.
    session: ServiceSession,
    leg: Leg,
    /// The one-byte echo stream opened on the same circuit once every byte went out.
    ping: Option<StreamHandle>,
    sent: u64,
}

/// `streams` circuits, each with one `discard` stream carrying `bytes_each` bytes.
#[derive(Debug)]
pub struct BulkBench {
    bytes_each: u64,
    count: usize,
    streams: Vec<BulkStream>,
    /// When the first byte was queued and when the last stream's ping came back.
    pub span: Option<(Time, Time)>,
    /// Set when something failed, with why.
    pub error: Option<String>,
    chunk: Vec<u8>,
    result: Option<i32>,
}

impl BulkBench {
    /// `count` parallel streams of `bytes_each` bytes.
    pub fn new(count: usize, bytes_each: u64) -> BulkBench {
        BulkBench {
            bytes_each,
            count,
            streams: Vec::new(),
            span: None,
            error: None,
            chunk: (0..64 * 1024u64).map(pattern).collect(),
            result: None,
        }
    }

    fn fail(&mut self, why: String) {
        self.error = Some(why);
        self.result = Some(1);
    }
}

impl App for BulkBench {
    fn start(&mut self, node: &mut Node, now: Time) {
        for _ in 0..self.count {
            let mut session = ServiceSession::new(crate::relay::exit::DISCARD, 1);
            session.start(node, now);
            self.streams.push(BulkStream {
                session,
                leg: Leg::Building,
                ping: None,
                sent: 0,
            });
        }
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        if self.result.is_some() {
            return;
        }
        if let NodeEvent::StreamData { stream, data } = &event {
            if let Some(s) = self.streams.iter_mut().find(|s| s.ping == Some(*stream)) {
                if data.first() != Some(&0x5a) {
                    self.fail("the ping came back altered".into());
                    return;
                }
                s.leg = Leg::Done;
                s.session.finish(node, now);
                if self.streams.iter().all(|s| s.leg == Leg::Done) {
                    if let Some((start, _)) = self.span {
                        self.span = Some((start, now));
                    }
                    self.result = Some(0);
                }
                return;
            }
        }
        if let NodeEvent::StreamEnded { stream, reason } = &event {
            if self.streams.iter().any(|s| s.ping == Some(*stream)) {
                self.fail(format!("the ping stream ended early (reason {reason})"));
                return;
            }
        }
        let mut outcome = None;
        for s in &mut self.streams {
            if let Some(ev) = s.session.on_event(node, now, event.clone()) {
                match ev {
                    SessionEvent::Built { .. } => s.leg = Leg::Opening,
                    SessionEvent::Opened => s.leg = Leg::Sending,
                    SessionEvent::Data(_) => {}
                    SessionEvent::Retrying { why, .. } | SessionEvent::GaveUp { why } => {
                        outcome = Some(why)
                    }
                }
                break;
            }
        }
        if let Some(why) = outcome {
            self.fail(why);
            return;
        }
        if self
            .streams
            .iter()
            .all(|s| s.leg != Leg::Building && s.leg != Leg::Opening)
            && self.span.is_none()
        {
            self.span = Some((now, now));
        }
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        if self.result.is_some() || self.span.is_none() {
            return;
        }
        let mut failure = None;
        for s in &mut self.streams {
            while s.leg == Leg::Sending
                && s.sent < self.bytes_each
                && s.session.queued(node) < IN_FLIGHT
            {
                let n = (self.bytes_each - s.sent).min(self.chunk.len() as u64) as usize;
                if let Some(SessionEvent::GaveUp { why }) =
                    s.session.send(node, now, &self.chunk[..n])
                {
                    failure = Some(format!("send: {why}"));
                    break;
                }
                s.sent += n as u64;
            }
            let Some(circ) = s.session.circuit() else {
                continue;
            };
            if s.leg == Leg::Sending && s.sent == self.bytes_each && s.session.queued(node) == 0 {
                // Every byte is in cells ahead of this BEGIN on the same circuit.
                match node.open_stream(now, circ, crate::relay::exit::ECHO) {
                    Ok(h) => {
                        s.ping = Some(h);
                        s.leg = Leg::Pinging;
                        if let Err(e) = node.stream_send(now, h, &[0x5a]) {
                            failure = Some(format!("ping: {e}"));
                        }
                    }
                    Err(e) => failure = Some(format!("ping stream: {e}")),
                }
            }
        }
        if let Some(f) = failure {
            self.fail(f);
        }
    }

    fn finished(&self) -> Option<i32> {
        self.result
    }
}

/// Circuits [`IdleCircuits`] apps have built and seen fail, shared with the caller.
#[derive(Debug, Default)]
pub struct IdleCounts {
    /// Built and held.
    pub built: AtomicUsize,
    /// Failed.
    pub failed: AtomicUsize,
}

/// Builds `count` circuits (`parallel` in flight) and keeps them open and idle until the
/// driver is stopped, counting into `counts`.
#[derive(Debug)]
pub struct IdleCircuits {
    count: usize,
    parallel: usize,
    launched: usize,
    in_flight: usize,
    counts: Arc<IdleCounts>,
}

impl IdleCircuits {
    /// Hold `count` circuits.
    pub fn new(count: usize, parallel: usize, counts: Arc<IdleCounts>) -> IdleCircuits {
        IdleCircuits {
            count,
            parallel: parallel.max(1),
            launched: 0,
            in_flight: 0,
            counts,
        }
    }
}

impl App for IdleCircuits {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.tick(node, now);
    }

    fn on_event(&mut self, _: &mut Node, _: Time, event: NodeEvent) {
        let counter = match event {
            NodeEvent::Built { .. } => &self.counts.built,
            NodeEvent::Failed { .. } => &self.counts.failed,
            _ => return,
        };
        self.in_flight = self.in_flight.saturating_sub(1);
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn tick(&mut self, node: &mut Node, now: Time) {
        while self.launched < self.count && self.in_flight < self.parallel {
            self.launched += 1;
            self.in_flight += 1;
            node.build_circuit(now);
        }
    }

    fn finished(&self) -> Option<i32> {
        None
    }
}
