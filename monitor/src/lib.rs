//! l2watch: an XDP/eBPF monitor for ARP and DHCPv4 on VLAN trunks.
//!
//! Data flows one way: `capture` (the XDP program, its ring buffer and counters) feeds
//! `replay` (offline, through BPF_PROG_TEST_RUN) and `run` (live); `counts` turns kernel
//! counters into reports.
pub mod capture;
pub mod check;
pub mod config;
pub mod counts;
pub mod decode;
pub mod detect;
pub mod engine;
pub mod export;
pub mod links;
pub mod maas;
pub mod model;
pub mod pcap;
pub mod pipeline;
pub mod query;
pub mod replay;
pub mod run;
pub mod state;
pub mod store;
pub mod supervise;
