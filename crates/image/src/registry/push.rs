//! Push.
use crate::{store::Store, AuthConfig, Progress, PushResult, Result, StoreOptions};

pub fn push(
    _s: &Store,
    _o: &StoreOptions,
    _r: &str,
    _a: Option<&AuthConfig>,
    _g: &dyn Progress,
) -> Result<PushResult> {
    Err(crate::Error::InvalidArgument("not implemented yet".into()))
}
