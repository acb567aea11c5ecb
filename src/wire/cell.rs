//! Link cells (`protocol-spec/03-cells.md`).
//!
//! Every cell on a link has the same size, [`CELL_LEN`] bytes: a circuit id, a command and a
//! fixed body. Commands form an open code space: [`Command`] keeps any byte, known or not, so
//! an unknown command survives decoding and the receiving context decides what to do
//! (`03-cells.md#errors`). Not in this module: what a context may receive (see
//! [`super::restrict`]) and any cryptography on the body.

use core::fmt;
use core::num::NonZeroU32;

use super::{DecodeError, Readable, Reader, Writeable, Writer};

/// Length of an authentication tag of one sealed onion layer.
pub const TAG_LEN: usize = 16;
/// The most onion layers a RELAY body can carry (`03-cells.md#relay-body`).
pub const MAX_LAYERS: usize = 3;
/// Length of the end-to-end relay payload inside a RELAY body (`rationale.md#cell-size`).
pub const RELAY_PAYLOAD_LEN: usize = 512;
/// Length of a cell body (`03-cells.md#cell-layout`).
pub const BODY_LEN: usize = MAX_LAYERS * TAG_LEN + RELAY_PAYLOAD_LEN;
/// Length of a cell header: circuit id and command.
pub const HEADER_LEN: usize = 5;
/// Length of every cell on a link (`03-cells.md#cell-layout`).
pub const CELL_LEN: usize = HEADER_LEN + BODY_LEN;

/// A circuit identifier, unique per link and never zero (`03-cells.md#circuit-ids`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CircId(NonZeroU32);

impl CircId {
    /// The smallest circuit id, 1.
    pub const MIN: CircId = CircId(NonZeroU32::MIN);
    /// The largest circuit id.
    pub const MAX: CircId = CircId(NonZeroU32::MAX);

    /// A circuit id from its wire value, or `None` for zero (which addresses the link).
    pub fn new(v: u32) -> Option<CircId> {
        NonZeroU32::new(v).map(CircId)
    }

    /// The wire value.
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// Whether the dialler of the link allocated this id (top bit set,
    /// `03-cells.md#circuit-ids`).
    pub fn is_dialler_allocated(self) -> bool {
        self.get() & 0x8000_0000 != 0
    }
}

impl fmt::Display for CircId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circ#{:08x}", self.get())
    }
}

/// A cell command: an open code space (`03-cells.md#commands`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Command(pub u8);

impl Command {
    /// Link keepalive; body ignored. Circuit id 0.
    pub const PADDING: Command = Command(0);
    /// Open a circuit hop: hop handshake message 1.
    pub const CREATE: Command = Command(1);
    /// Answer to CREATE: hop handshake message 2.
    pub const CREATED: Command = Command(2);
    /// A sealed onion cell travelling along a circuit.
    pub const RELAY: Command = Command(3);
    /// Tear a circuit down, with a reason.
    pub const DESTROY: Command = Command(4);
    /// The sender switches its sending key after the frame that carries this cell. Circuit id 0.
    pub const REKEY: Command = Command(5);
    /// A fragment of a DHT message between relays (`03-cells.md#dht`). Circuit id 0.
    pub const DHT: Command = Command(6);
    /// A fragment of a directory message (`03-cells.md#dir`, `10-directory.md`). Circuit id 0.
    pub const DIR: Command = Command(7);

    /// Every command this version knows.
    pub const KNOWN: [Command; 8] = [
        Command::PADDING,
        Command::CREATE,
        Command::CREATED,
        Command::RELAY,
        Command::DESTROY,
        Command::REKEY,
        Command::DHT,
        Command::DIR,
    ];

    /// Whether this version knows the command.
    pub fn is_known(self) -> bool {
        Command::KNOWN.contains(&self)
    }

    /// Whether the command addresses the link itself (circuit id 0) rather than a circuit.
    pub fn is_link_level(self) -> bool {
        self == Command::PADDING
            || self == Command::REKEY
            || self == Command::DHT
            || self == Command::DIR
    }

    /// The command's name in the spec, or `None` when unknown.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Command::PADDING => "PADDING",
            Command::CREATE => "CREATE",
            Command::CREATED => "CREATED",
            Command::RELAY => "RELAY",
            Command::DESTROY => "DESTROY",
            Command::REKEY => "REKEY",
            Command::DHT => "DHT",
            Command::DIR => "DIR",
            _ => return None,
        })
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Command({})", self.0),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One fixed-size link cell, decoded only as far as its header (`03-cells.md#cell-layout`).
#[derive(Clone, PartialEq, Eq)]
pub struct Cell {
    /// Circuit id on this link; 0 addresses the link itself.
    pub circ_id: u32,
    /// The command, known or not.
    pub command: Command,
    /// The body, always [`BODY_LEN`] bytes.
    pub body: [u8; BODY_LEN],
}

impl Cell {
    /// A cell whose body is `content` followed by zero padding; `None` if `content` is longer
    /// than a body.
    pub fn with_content(circ_id: u32, command: Command, content: &[u8]) -> Option<Cell> {
        let mut body = [0u8; BODY_LEN];
        body.get_mut(..content.len())?.copy_from_slice(content);
        Some(Cell {
            circ_id,
            command,
            body,
        })
    }

    /// The link-level keepalive cell.
    pub fn padding() -> Cell {
        Cell {
            circ_id: 0,
            command: Command::PADDING,
            body: [0u8; BODY_LEN],
        }
    }

    /// Encode into exactly [`CELL_LEN`] bytes appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.circ_id.to_be_bytes());
        out.push(self.command.0);
        out.extend_from_slice(&self.body);
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cell")
            .field("circ_id", &self.circ_id)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

impl Readable for Cell {
    fn read_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let circ_id = r.u32()?;
        let command = Command(r.u8()?);
        let body = r.array::<BODY_LEN>()?;
        Ok(Cell {
            circ_id,
            command,
            body,
        })
    }
}

impl Writeable for Cell {
    fn write_to(&self, w: &mut Writer) {
        w.u32(self.circ_id).u8(self.command.0).bytes(&self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::{BODY_LEN, CELL_LEN, Cell, CircId, Command};
    use crate::wire::{Readable, Writeable};

    #[test]
    fn sizes_are_as_specified() {
        assert_eq!(BODY_LEN, 560);
        assert_eq!(CELL_LEN, 565);
    }

    #[test]
    fn unknown_commands_survive_decoding() {
        let cell = Cell::with_content(9, Command(200), b"future").unwrap();
        let bytes = cell.to_bytes();
        assert_eq!(bytes.len(), CELL_LEN);
        let back = Cell::decode_exact(&bytes).unwrap();
        assert_eq!(back.command, Command(200));
        assert!(!back.command.is_known());
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn circ_ids_are_nonzero() {
        assert!(CircId::new(0).is_none());
        assert!(CircId::new(0x8000_0001).unwrap().is_dialler_allocated());
        assert!(!CircId::new(1).unwrap().is_dialler_allocated());
        assert!(Cell::with_content(1, Command::CREATE, &[0; BODY_LEN + 1]).is_none());
    }
}
