//! berth-storage: see ARCHITECTURE.md.
