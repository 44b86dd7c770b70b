//! Healthchecks.

use std::sync::Arc;

use super::Engine;

impl Engine {
    /// Starts the healthcheck loop of a run that just started.
    pub(super) fn health_begin(self: &Arc<Self>, _id: &str) {}
}
