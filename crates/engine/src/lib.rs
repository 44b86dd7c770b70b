//! berth-engine: container records, lifecycle, the per-container monitor, logs and events.

pub mod monitor;
