//! berth-runtime: see ARCHITECTURE.md.
