//! berth-build: Dockerfiles, build contexts and the classic builder (`berth build`, `POST /build`).

pub mod instructions;
pub mod parser;
pub mod substitution;
