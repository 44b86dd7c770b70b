//! Layer unpacking (gzip, zstd, plain tar) with overlay2 whiteouts and safe extraction.

/// Errors unpacking a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer: {0}")]
    Io(#[from] std::io::Error),
}

/// Default cap on a layer's unpacked size (64 GiB).
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;
