//! l2watch's lab: a private layer-2 segment built from network namespaces (a hub bridge, a
//! monitor port, host ports), real software on it (dnsmasq, dhclient, arping) and crafted
//! frames for what this kernel cannot send itself (VLAN and QinQ tags). Used by the
//! integration tests as a library, and by `cargo xtask lab` and `cargo xtask demo`.
//!
//! Safety rules kept here: every namespace and interface is created by the lab with a unique
//! name and deleted by it; nothing is attached to or sent from the root namespace; processes
//! are ended only by the PID the lab started them with (checked against their start time).
pub mod dhcp_health;
pub mod frames;
pub mod ipv6;
pub mod lab;
pub mod netns;
pub mod proc;
pub mod scenario;
pub mod switch;
