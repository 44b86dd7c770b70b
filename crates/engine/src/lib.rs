//! berth-engine: container records, lifecycle, the per-container monitor, logs and events.
//!
//! - [`record`]: the on-disk container records (`config.v2.json`, `hostconfig.json`, `monitor.json`).
//! - [`names`]: ids, short ids and generated names.
//! - [`images`]: the local image store adapter (until berth-image lands).
//! - [`spec`]: the OCI `config.json` builder.
//! - [`logs`]: json-file logs and docker's multiplexed stream framing.
//! - [`monitor`]: the per-container monitor process (`berth monitor`).
//! - [`mounts`]: binds, volumes and tmpfs mounts of containers (`-v`, `--mount`, `--tmpfs`).
//! - [`net`]: networking through berth-network (attach plan, monitor hooks, settings).
//! - [`events`]: the `/events` bus.
//! - [`exec`]: `docker exec` through a helper process.
//! - [`build`]: the classic builder's backend (RUN in step containers, COPY/ADD layers, the build cache).
//! - [`init`]: `--init`, the embedded docker-init.
//! - [`tty`]: detach keys and terminal resizes.
//! - [`trash`]: directories deleted in the background after a rename.
//! - [`archive`], [`stats`], [`top`], [`changes`]: `docker cp`, `docker stats`, `docker top` and `docker diff`.
//! - [`engine`]: the daemon side: create/start/stop/wait/remove/list, exit tracking, recovery after restart.

pub mod archive;
pub mod build;
pub mod changes;
pub mod engine;
pub mod events;
pub mod exec;
pub mod images;
pub mod init;
pub mod logs;
pub mod monitor;
pub mod mounts;
pub mod names;
pub mod net;
pub mod query;
pub mod record;
pub mod spec;
pub mod stats;
pub mod top;
pub mod trash;
pub mod tty;

pub use engine::{Engine, EngineConfig, EngineError};
