//! berth-build: Dockerfiles, build contexts and the classic builder (`berth build`, `POST /build`,
//! `DOCKER_BUILDKIT=0 docker build`).
//!
//! Pieces, in the order a build uses them:
//! - [`parser`] tokenizes a Dockerfile (directives, continuations, comments, flags, exec/shell form);
//!   [`instructions`] turns it into typed, validated instructions grouped in stages, with docker's
//!   `Dockerfile parse error line N: …` messages; [`substitution`] is docker's `$VAR`/`${VAR:-x}` expansion.
//! - [`context`] is the build context (a directory, or a tar/Dockerfile stream materialised into one with
//!   [`context::context_from_stream`]), filtered by [`dockerignore`], resolving COPY/ADD sources ([`glob`] for
//!   wildcards) with content checksums; [`archive`] detects compressed tarballs for ADD.
//! - [`driver::Builder::build`] runs the stages through a [`backend::BuildBackend`] the engine implements,
//!   with [`cache`] keys (parent id + instruction after substitution + build args in use + source checksums),
//!   printing docker's classic output ([`output`]).
//! - [`apply::apply_copy`] does the file work of a COPY/ADD step into a rootfs directory for the engine;
//!   [`options::from_query`] turns `POST /build` query parameters into [`driver::BuildOptions`].
//!
//! ```no_run
//! use berth_build::backend::BuildBackend;
//! use berth_build::driver::{BuildOptions, Builder};
//! fn build(backend: &mut dyn BuildBackend) -> Result<(), berth_build::driver::BuildError> {
//!     let opts = BuildOptions { context_dir: "/tmp/ctx".into(), tags: vec!["app:latest".into()], ..Default::default() };
//!     let result = Builder::build(&opts, backend, &mut std::io::stdout())?;
//!     println!("{}", result.image_id);
//!     Ok(())
//! }
//! ```

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
pub mod options;
pub mod output;
pub mod parser;
pub mod substitution;

#[cfg(test)]
mod e2e_tests;
