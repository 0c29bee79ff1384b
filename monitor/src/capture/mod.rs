//! Capture stage: the XDP program's loader and attachments, its ring buffer, and its counters.
pub mod event;
pub mod probe;

pub use event::{decode, hex, DecodeError, EventRecord, KernelEvent, Mac, Place};
pub use probe::{AttachMode, Baseline, Probe, ProbeConfig, ProbeError, Snapshot, Storm};
