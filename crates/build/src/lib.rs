//! berth-build: Dockerfiles, build contexts and the classic builder (`berth build`, `POST /build`).

pub mod apply;
pub mod archive;
pub mod backend;
pub mod cache;
pub mod context;
mod dispatch;
pub mod dockerignore;
pub mod driver;
pub mod glob;
pub mod instructions;
pub mod output;
pub mod parser;
pub mod substitution;

#[cfg(test)]
mod e2e_tests;
