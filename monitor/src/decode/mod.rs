//! Decode stage: turns kernel events into typed observations for the engine.
pub mod dhcp;

pub use dhcp::{decode as decode_dhcp, DhcpError, DhcpMessage};
