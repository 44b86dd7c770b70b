//! Pull.
use crate::{store::Store, AuthConfig, Image, Platform, Progress, Result, StoreOptions};

pub fn pull(
    _s: &Store,
    _o: &StoreOptions,
    _r: &str,
    _p: Option<&Platform>,
    _a: Option<&AuthConfig>,
    _g: &dyn Progress,
) -> Result<Image> {
    Err(crate::Error::InvalidArgument("not implemented yet".into()))
}
