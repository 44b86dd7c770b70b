//! The classic builder's driver: reads the Dockerfile, evaluates global ARGs, picks the stages the target needs
//! (unused stages are skipped), runs every step through a [`BuildBackend`] with cache lookups, prints docker's
//! step output, and tags the result.

use crate::backend::{BackendError, BuildBackend, ImageInfo};
use crate::context::{ContextError, SourceRoot};
use crate::instructions::{parse_stages, Command, Instruction, InstructionError, Stages};
use crate::output::{OutputError, Progress};
use crate::parser::{parse, ParseError};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

/// Build args docker lets through without an ARG declaration (kept out of the cache key and history).
pub const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Errors of a build. `NonZero` carries the failing RUN's exit code for the CLI's exit status.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Instruction(#[from] InstructionError),
    #[error("{0}")]
    Context(#[from] ContextError),
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Output(#[from] OutputError),
    #[error("Cannot locate specified Dockerfile: {0}")]
    NoDockerfile(String),
    #[error("Dockerfile parse error line {line}: {msg}")]
    Step { line: usize, msg: String },
    #[error("The command '{command}' returned a non-zero code: {code}")]
    NonZero { command: String, code: i64 },
    #[error("failed to reach build target {0} in Dockerfile")]
    NoTarget(String),
    #[error("No image was generated. Is your Dockerfile empty?")]
    NoImage,
}

impl BuildError {
    /// The exit code docker's CLI uses for this failure (the RUN's own code for a failing command).
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::NonZero { code, .. } => i32::try_from(*code).unwrap_or(1),
            _ => 1,
        }
    }
}

/// `berth build` / `POST /build` options.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The context directory (a tar context is unpacked into one first, see [`crate::context::unpack_context`]).
    pub context_dir: PathBuf,
    /// Dockerfile path, relative to the context (`-f`), default `Dockerfile`.
    pub dockerfile: String,
    /// Dockerfile text given directly (`-f -`, or the remote `dockerfile` of the API); wins over `dockerfile`.
    pub dockerfile_text: Option<String>,
    pub tags: Vec<String>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub labels: BTreeMap<String, String>,
    pub quiet: bool,
    /// Remove intermediate containers after a successful step (docker's `--rm`, default true).
    pub rm: bool,
    /// Remove them even when the step fails.
    pub force_rm: bool,
    /// Default platform for FROM (`--platform`).
    pub platform: Option<String>,
    /// `--pull`: always look for a newer base image.
    pub pull: bool,
    /// `--network` for RUN steps; `None` means `none` (berth builds offline).
    pub network: Option<String>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            context_dir: PathBuf::from("."),
            dockerfile: "Dockerfile".into(),
            dockerfile_text: None,
            tags: Vec::new(),
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            labels: BTreeMap::new(),
            quiet: false,
            rm: true,
            force_rm: false,
            platform: None,
            pull: false,
            network: None,
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    pub image_id: String,
    pub tags: Vec<String>,
    /// Warnings printed during the build (unconsumed build args, empty continuation lines).
    pub warnings: Vec<String>,
}

/// The classic builder.
#[derive(Debug, Default)]
pub struct Builder;

/// Mutable state shared by all stages of one build.
pub(crate) struct Run<'a> {
    pub opts: &'a BuildOptions,
    pub backend: &'a mut dyn BuildBackend,
    pub progress: Progress<'a>,
    pub context: SourceRoot,
    pub escape: char,
    pub stage_names: Vec<Option<String>>,
    pub stage_images: Vec<Option<ImageInfo>>,
    pub meta: Vec<(String, Option<String>)>,
    pub consumed: BTreeSet<String>,
    pub step: usize,
    pub total: usize,
}

impl Builder {
    /// Runs a build.
    pub fn build(
        opts: &BuildOptions,
        backend: &mut dyn BuildBackend,
        out: &mut dyn Write,
    ) -> Result<BuildResult, BuildError> {
        let text = match &opts.dockerfile_text {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(opts.context_dir.join(&opts.dockerfile))
                .map_err(|_| BuildError::NoDockerfile(opts.dockerfile.clone()))?,
        };
        let df = parse(&text)?;
        let stages = parse_stages(&df)?;
        let context = SourceRoot::context(&opts.context_dir)?;
        let mut run = Run {
            opts,
            backend,
            progress: Progress::new(out, opts.quiet),
            context,
            escape: stages.escape,
            stage_names: stages.stages.iter().map(|s| s.name.clone()).collect(),
            stage_images: vec![None; stages.stages.len()],
            meta: Vec::new(),
            consumed: BTreeSet::new(),
            step: 0,
            total: 0,
        };
        let mut warnings = df.warnings.clone();
        for w in &warnings {
            run.progress.line(w)?;
        }
        let target = match &opts.target {
            Some(t) => run
                .stage_index(t)
                .ok_or_else(|| BuildError::NoTarget(t.clone()))?,
            None => stages.stages.len() - 1,
        };
        let needed = needed_stages(&stages, target, &run);
        run.total = stages.meta_args.len()
            + needed
                .iter()
                .map(|i| 1 + stages.stages[*i].commands.len())
                .sum::<usize>()
            + usize::from(!opts.labels.is_empty());
        for cmd in &stages.meta_args {
            run.meta_arg(cmd)?;
        }
        for i in needed {
            let mut stage = stages.stages[i].clone();
            if i == target && !opts.labels.is_empty() {
                stage.commands.push(label_command(&opts.labels));
            }
            let info = run.build_stage(&stage)?;
            run.stage_images[i] = Some(info);
        }
        let image_id = run.stage_images[target]
            .as_ref()
            .map(|i| i.id.clone())
            .unwrap_or_default();
        if image_id.is_empty() {
            return Err(BuildError::NoImage);
        }
        let unused: Vec<&String> = opts
            .build_args
            .keys()
            .filter(|k| !run.consumed.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            let w = format!(
                "[Warning] One or more build-args [{}] were not consumed",
                names.join(" ")
            );
            run.progress.line(&w)?;
            warnings.push(w);
        }
        for t in &opts.tags {
            run.backend.tag(&image_id, t)?;
        }
        run.progress.done(&image_id, &opts.tags)?;
        Ok(BuildResult {
            image_id,
            tags: opts.tags.clone(),
            warnings,
        })
    }
}

fn label_command(labels: &BTreeMap<String, String>) -> Command {
    let pairs: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let text = pairs
        .iter()
        .map(|(k, v)| format!("{k:?}={v:?}"))
        .collect::<Vec<_>>()
        .join(" ");
    // Line 0 marks a synthetic command: its values are literal, never substituted.
    Command {
        line: 0,
        original: format!("LABEL {text}"),
        inst: Instruction::Label(pairs),
    }
}

/// Stages the target depends on (FROM another stage, `COPY --from`), in Dockerfile order.
fn needed_stages(stages: &Stages, target: usize, run: &Run) -> Vec<usize> {
    let mut need = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !need.insert(i) {
            continue;
        }
        let st = &stages.stages[i];
        if let Instruction::From { image, .. } = &st.from.inst {
            let image = run.expand_meta(image).unwrap_or_else(|_| image.clone());
            if let Some(j) = run.stage_index(&image).filter(|j| *j < i) {
                todo.push(j);
            }
        }
        for c in &st.commands {
            if let Instruction::Copy(a) = &c.inst {
                if let Some(j) = a
                    .from
                    .as_deref()
                    .and_then(|f| run.stage_index(f))
                    .filter(|j| *j < i)
                {
                    todo.push(j);
                }
            }
        }
    }
    need.into_iter().collect()
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
