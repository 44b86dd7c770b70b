//! Process security settings applied just before `execve`: capabilities, seccomp, rlimits, user and groups,
//! plus Docker's defaults (capabilities, seccomp profile, masked and read-only paths) for the engine.

pub mod capabilities;
pub mod rlimits;
pub mod seccomp;

#[cfg(test)]
pub(crate) mod test_util;
