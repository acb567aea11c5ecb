//! Services at the last hop (`protocol-spec/05-streams.md#services`).
//!
//! A circuit's last hop answers BEGIN for the services it runs. Version 1 has one service,
//! `echo`, which sends every byte back: the diagnostic the simulator and the loopback tests
//! measure circuits with. Flow control is end to end: the exit returns credit (SENDME) only
//! after it has sent the echoed bytes on, so a reader that stops reading stops the echo and
//! nothing is buffered without bound. Not in this module: layers or cells.

use std::collections::{BTreeMap, VecDeque};

use crate::flow::{
    CIRC_INCREMENT, CIRC_WINDOW, FlowError, RecvWindow, STREAM_INCREMENT, STREAM_WINDOW, SendWindow,
};
use crate::wire::relay_msg::RelayMsg;

/// The echo service's name.
pub const ECHO: &[u8] = b"echo";

/// END reasons (`05-streams.md#end-reasons`).
pub mod end_reason {
    /// Normal close.
    pub const DONE: u8 = 0;
    /// The service does not exist here.
    pub const NO_SERVICE: u8 = 1;
}

/// Why the exit refused a message; the circuit is torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExitError {
    /// Flow control was violated.
    #[error("flow control: {0}")]
    Flow(#[from] FlowError),
    /// A message for a stream that does not exist, or BEGIN for one that does.
    #[error("stream state violation: {0}")]
    Stream(&'static str),
}

#[derive(Debug)]
struct ExitStream {
    send: SendWindow,
    recv: RecvWindow,
    pending: VecDeque<Vec<u8>>,
}

/// The exit side of one circuit's streams.
#[derive(Debug)]
pub struct ExitCirc {
    send: SendWindow,
    recv: RecvWindow,
    streams: BTreeMap<u16, ExitStream>,
}

impl Default for ExitCirc {
    fn default() -> Self {
        ExitCirc {
            send: SendWindow::new(CIRC_WINDOW, CIRC_INCREMENT),
            recv: RecvWindow::new(CIRC_WINDOW, CIRC_INCREMENT),
            streams: BTreeMap::new(),
        }
    }
}

impl ExitCirc {
    /// Cells of echo data waiting for window.
    pub fn pending_cells(&self) -> usize {
        self.streams.values().map(|s| s.pending.len()).sum()
    }

    /// Handle a stream message; the replies (to seal backward, in order) go into `out`.
    pub fn handle(&mut self, msg: RelayMsg, out: &mut Vec<RelayMsg>) -> Result<(), ExitError> {
        match msg {
            RelayMsg::Begin { stream_id, service } => {
                if stream_id == 0 || self.streams.contains_key(&stream_id) {
                    return Err(ExitError::Stream("BEGIN for stream 0 or an open stream"));
                }
                if service != ECHO {
                    out.push(RelayMsg::End {
                        stream_id,
                        reason: end_reason::NO_SERVICE,
                    });
                    return Ok(());
                }
                self.streams.insert(
                    stream_id,
                    ExitStream {
                        send: SendWindow::new(STREAM_WINDOW, STREAM_INCREMENT),
                        recv: RecvWindow::new(STREAM_WINDOW, STREAM_INCREMENT),
                        pending: VecDeque::new(),
                    },
                );
                out.push(RelayMsg::Connected { stream_id });
            }
            RelayMsg::Data { stream_id, data } => {
                self.recv.receive()?;
                let s = self
                    .streams
                    .get_mut(&stream_id)
                    .ok_or(ExitError::Stream("DATA for an unknown stream"))?;
                s.recv.receive()?;
                s.pending.push_back(data);
            }
            RelayMsg::End { stream_id, .. } => {
                self.streams
                    .remove(&stream_id)
                    .ok_or(ExitError::Stream("END for an unknown stream"))?;
            }
            RelayMsg::Sendme { stream_id: 0 } => self.send.sendme()?,
            RelayMsg::Sendme { stream_id } => {
                self.streams
                    .get_mut(&stream_id)
                    .ok_or(ExitError::Stream("SENDME for an unknown stream"))?
                    .send
                    .sendme()?;
            }
            _ => return Err(ExitError::Stream("not a stream message")),
        }
        self.flush(out);
        Ok(())
    }

    /// Echo what the windows allow, returning credit for what went out.
    fn flush(&mut self, out: &mut Vec<RelayMsg>) {
        let mut progress = true;
        while progress && self.send.available() > 0 {
            progress = false;
            for (&stream_id, s) in self.streams.iter_mut() {
                if self.send.available() == 0 {
                    break;
                }
                if s.send.available() == 0 {
                    continue;
                }
                let Some(data) = s.pending.pop_front() else {
                    continue;
                };
                s.send.take();
                self.send.take();
                out.push(RelayMsg::Data { stream_id, data });
                for _ in 0..s.recv.consume(1) {
                    out.push(RelayMsg::Sendme { stream_id });
                }
                for _ in 0..self.recv.consume(1) {
                    out.push(RelayMsg::Sendme { stream_id: 0 });
                }
                progress = true;
            }
        }
    }
}
