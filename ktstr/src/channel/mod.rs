//! The guest-to-host channel: typed messages in framed, checksummed
//! records on the VM's second serial port (the first carries the kernel
//! console). Data flows one way: the guest reports, the host listens.

mod frame;

pub use crate::wire::message::{GuestMessage, GuestStep, LogStream, Stage};
pub use frame::{encode, Decoder, MAX_PAYLOAD};
