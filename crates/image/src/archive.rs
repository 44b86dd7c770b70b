//! docker save / load / import.

/// Errors reading or writing image archives.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("invalid archive: {0}")]
    Invalid(String),
}

use crate::{store::Store, Image, LoadedImage, Progress, Result, StoreOptions};
use std::io::{Read, Write};

pub fn save(_s: &Store, _r: &[&str], _w: &mut dyn Write) -> Result<()> {
    Err(crate::Error::InvalidArgument("not implemented yet".into()))
}
pub fn load(
    _s: &Store,
    _o: &StoreOptions,
    _r: &mut dyn Read,
    _p: &dyn Progress,
) -> Result<Vec<LoadedImage>> {
    Err(crate::Error::InvalidArgument("not implemented yet".into()))
}
pub fn import(
    _s: &Store,
    _o: &StoreOptions,
    _r: &mut dyn Read,
    _f: Option<&str>,
    _c: &[String],
    _m: Option<&str>,
) -> Result<Image> {
    Err(crate::Error::InvalidArgument("not implemented yet".into()))
}
