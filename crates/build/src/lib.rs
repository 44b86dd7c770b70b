//! berth-build: Dockerfiles, build contexts and the classic builder (`berth build`, `POST /build`).

pub mod archive;
pub mod context;
pub mod dockerignore;
pub mod glob;
pub mod instructions;
pub mod parser;
pub mod substitution;
