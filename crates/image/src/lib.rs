//! berth-image: see ARCHITECTURE.md.
