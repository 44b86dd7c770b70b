//! berth-cgroups: see ARCHITECTURE.md.
