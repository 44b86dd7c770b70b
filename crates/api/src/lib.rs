//! berth-api: see ARCHITECTURE.md.
