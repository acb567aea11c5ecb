//! Window flow control (`protocol-spec/05-streams.md#flow-control`).
//!
//! Each circuit end keeps, per circuit and per stream, a send window (DATA cells it may still
//! send) and a receive window (DATA cells the peer may still send). The receiver returns
//! credit with SENDME after the data was consumed, so a slow consumer stops the sender and
//! no hop buffers without bound. Not in this module: cells or streams.

use crate::error::{ErrorKind, HasKind};

/// Initial circuit window, in DATA cells.
pub const CIRC_WINDOW: u32 = 4000;
/// Credit one circuit SENDME returns.
pub const CIRC_INCREMENT: u32 = 100;
/// Initial stream window, in DATA cells.
pub const STREAM_WINDOW: u32 = 2000;
/// Credit one stream SENDME returns.
pub const STREAM_INCREMENT: u32 = 50;

/// A flow-control rule was broken by the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// DATA beyond the receive window (`05-streams.md#flow-control`).
    #[error("data beyond the window")]
    Overrun,
    /// A SENDME that would raise the window above its initial size.
    #[error("unexpected SENDME")]
    UnexpectedSendme,
}

impl HasKind for FlowError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::PeerProtocolViolation
    }
}

/// How many DATA cells may still be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    window: u32,
    increment: u32,
    max: u32,
}

impl SendWindow {
    /// A full window.
    pub fn new(initial: u32, increment: u32) -> Self {
        SendWindow {
            window: initial,
            increment,
            max: initial,
        }
    }

    /// Cells that may be sent now.
    pub fn available(&self) -> u32 {
        self.window
    }

    /// Account for one DATA cell sent; `false` (and no change) if the window is closed.
    pub fn take(&mut self) -> bool {
        if self.window == 0 {
            return false;
        }
        self.window -= 1;
        true
    }

    /// A SENDME arrived.
    pub fn sendme(&mut self) -> Result<(), FlowError> {
        let w = self.window + self.increment;
        if w > self.max {
            return Err(FlowError::UnexpectedSendme);
        }
        self.window = w;
        Ok(())
    }
}

/// How many DATA cells the peer may still send, and credit owed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWindow {
    window: u32,
    consumed: u32,
    increment: u32,
}

impl RecvWindow {
    /// A full window.
    pub fn new(initial: u32, increment: u32) -> Self {
        RecvWindow {
            window: initial,
            consumed: 0,
            increment,
        }
    }

    /// A DATA cell arrived.
    pub fn receive(&mut self) -> Result<(), FlowError> {
        self.window = self.window.checked_sub(1).ok_or(FlowError::Overrun)?;
        Ok(())
    }

    /// `n` received cells were consumed; returns how many SENDMEs to send now.
    pub fn consume(&mut self, n: u32) -> u32 {
        self.consumed += n;
        let sendmes = self.consumed / self.increment;
        self.consumed %= self.increment;
        self.window += sendmes * self.increment;
        sendmes
    }
}

#[cfg(test)]
mod tests {
    use super::{FlowError, RecvWindow, SendWindow};

    #[test]
    fn windows_close_and_reopen() {
        let mut s = SendWindow::new(3, 2);
        assert!(s.take() && s.take() && s.take());
        assert!(!s.take());
        assert_eq!(s.sendme(), Ok(()));
        assert_eq!(s.available(), 2);
        assert_eq!(s.sendme(), Err(FlowError::UnexpectedSendme));
        let mut r = RecvWindow::new(3, 2);
        for _ in 0..3 {
            r.receive().unwrap();
        }
        assert_eq!(r.receive(), Err(FlowError::Overrun));
        assert_eq!(r.consume(1), 0);
        assert_eq!(r.consume(2), 1);
        r.receive().unwrap();
        r.receive().unwrap();
        assert_eq!(r.receive(), Err(FlowError::Overrun));
    }
}
