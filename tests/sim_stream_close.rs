//! Tier 4: closing a stream while its data is in flight (`protocol-spec/05-streams.md#closing`,
//! issue 17's finding 5).
//!
//! A reader sends 64 KiB into an `echo` stream; when the first echoed bytes come back it sends
//! 64 KiB more and closes the stream at once, so the echo of those is still to come. That data is dropped (its
//! circuit credit returned) and the circuit lives on: a second stream on the same circuit
//! echoes its bytes intact. Before the fix the reader took the in-flight `DATA` for "a stream
//! that does not exist" and destroyed the whole circuit.

mod common;

use std::time::Duration;

use common::seed;
use umbra::app::App;
use umbra::app::echo::pattern;
use umbra::ids::{CircHandle, StreamHandle};
use umbra::node::{Node, NodeEvent};
use umbra::sim::{NetModel, World};
use umbra::time::Time;

const CHUNK: u64 = 64 * 1024;
const SECOND: &[u8] = b"the circuit still carries streams";

#[derive(Debug, Default)]
struct CloseEarly {
    circ: Option<CircHandle>,
    first: Option<StreamHandle>,
    second: Option<StreamHandle>,
    /// Bytes of the second stream's echo.
    echoed: Vec<u8>,
    /// Why the circuit went, if it did.
    lost: Option<String>,
}

impl App for CloseEarly {
    fn start(&mut self, node: &mut Node, now: Time) {
        self.circ = Some(node.build_circuit(now));
    }

    fn on_event(&mut self, node: &mut Node, now: Time, event: NodeEvent) {
        match event {
            NodeEvent::Built { circ, .. } if Some(circ) == self.circ => {
                self.first = node.open_stream(now, circ, b"echo").ok();
            }
            NodeEvent::StreamOpened { stream } if Some(stream) == self.first => {
                let data: Vec<u8> = (0..CHUNK).map(pattern).collect();
                let _ = node.stream_send(now, stream, &data);
            }
            NodeEvent::StreamData { stream, .. } if Some(stream) == self.first => {
                // The first echoed bytes: more data, then close at once; its echo is to come.
                let data: Vec<u8> = (CHUNK..2 * CHUNK).map(pattern).collect();
                let _ = node.stream_send(now, stream, &data);
                if let (Ok(()), Some(circ)) = (node.close_stream(now, stream), self.circ) {
                    self.first = None;
                    self.second = node.open_stream(now, circ, b"echo").ok();
                }
            }
            NodeEvent::StreamOpened { stream } if Some(stream) == self.second => {
                let _ = node.stream_send(now, stream, SECOND);
            }
            NodeEvent::StreamData { stream, data } if Some(stream) == self.second => {
                self.echoed.extend_from_slice(&data);
            }
            NodeEvent::Failed { circ, failure, .. } | NodeEvent::Closed { circ, failure }
                if Some(circ) == self.circ =>
            {
                self.lost = Some(failure.to_string());
            }
            _ => {}
        }
    }

    fn tick(&mut self, _: &mut Node, _: Time) {}

    fn finished(&self) -> Option<i32> {
        if self.lost.is_some() {
            Some(1)
        } else if self.echoed.len() >= SECOND.len() {
            Some(0)
        } else {
            None
        }
    }
}

#[test]
fn a_stream_closed_with_data_in_flight_leaves_its_circuit_working() {
    let mut w = World::new(seed(175), 6, 2, NetModel::default());
    w.run_until(Time::ZERO + Duration::from_secs(20));
    let id = w.spawn(6, Box::new(CloseEarly::default()));
    w.run_apps(&[id], Time::ZERO + Duration::from_secs(120));
    let app = w.app::<CloseEarly>(id).unwrap();
    assert_eq!(app.lost, None, "the circuit was lost");
    assert!(app.second.is_some(), "the second stream never opened");
    assert_eq!(app.echoed, SECOND, "the second stream's echo");
}
