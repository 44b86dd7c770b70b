//! berth-runtime: an OCI runtime (runtime-spec v1.2) as a library.
//!
//! `berth runtime` (runc's CLI) and the engine's monitor both drive containers through the functions
//! re-exported here. The caller of [`create`] is the parent of the container's init process, so a monitor can
//! `waitpid` it; the CLI simply exits and lets it be reparented.

pub mod security;
