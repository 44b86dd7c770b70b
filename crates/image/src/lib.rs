//! berth-image: image references, the content-addressed store under `<data-root>/image/`, layer unpacking into
//! `<data-root>/overlay2/`, the registry client (pull/push with token and basic auth), docker-archive /
//! OCI-layout save and load, and import. The engine uses the [`ImageStore`] facade; see ARCHITECTURE.md.
//!
//! ```no_run
//! use berth_image::{ImageStore, NoProgress, ProgressEvent};
//! let store = ImageStore::open("/var/lib/berth")?;
//! let img = store.pull("busybox", None, None, &|e: ProgressEvent| eprintln!("{e:?}"))?;
//! let lower = store.layer_dirs(&img.id)?; // lowest first; overlay's lowerdir is the reverse
//! let cfg = img.container_config(); // Env, Cmd, Entrypoint, WorkingDir, User, ...
//! # let _ = (lower, cfg, NoProgress);
//! # Ok::<(), berth_image::Error>(())
//! ```

pub mod archive;
pub mod auth;
pub mod commit;
pub mod config;
pub mod digest;
mod direct_io;
pub mod import;
pub mod layer;
mod layer_fs;
pub mod manifest;
pub mod pack;
mod pipe;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod store;
pub mod types;

mod facade;

pub use auth::AuthConfig;
pub use config::{ContainerConfig, ImageConfig};
pub use facade::{ImageStore, StoreOptions};
pub use manifest::Platform;
pub use progress::{NoProgress, Progress, ProgressEvent};
pub use reference::{Reference, ReferenceError};
pub use types::*;

/// Errors of the [`ImageStore`] facade. `Display` is the one-line message the CLI prints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// docker: "No such image: busybox:latest"
    #[error("No such image: {0}")]
    NotFound(String),
    /// Refused because of the image's state (docker answers 409).
    #[error("{0}")]
    Conflict(String),
    /// Bad argument from the caller (docker answers 400).
    #[error("{0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Layer(#[from] layer::LayerError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
}

impl Error {
    /// The HTTP status the Docker API uses for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Reference(_) | Error::InvalidArgument(_) => 400,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::Registry(e) => e.http_status(),
            Error::Manifest(manifest::ManifestError::NoMatchingPlatform(_)) => 404,
            Error::Manifest(manifest::ManifestError::InvalidPlatform(_)) => 400,
            Error::Archive(_) => 400,
            _ => 500,
        }
    }
}

/// Result of the facade.
pub type Result<T, E = Error> = std::result::Result<T, E>;
