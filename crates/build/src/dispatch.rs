//! Executing one stage's instructions (moby `dispatchers.go`): variable scoping (global ARGs, stage ARGs,
//! ENV winning over ARG), config updates for metadata instructions, RUN through a step container, COPY/ADD
//! through the backend, ONBUILD triggers of the base image, and the cache probe before every step.

use crate::archive::is_archive;
use crate::backend::{CommitSpec, CopyOp, CopyPlan, ImageInfo, RunSpec};
use crate::cache::step_key;
use crate::context::{SourceKind, SourceRoot};
use crate::dockerignore::clean;
use crate::driver::{BuildError, Run, PREDEFINED_ARGS};
use crate::instructions::{parse_node, CmdForm, Command, CopyArgs, Health, Instruction, Stage};
use crate::substitution::Lex;
use berth_image::config::ContainerConfig;
use std::collections::BTreeMap;

/// Per-stage state.
pub(crate) struct StageState {
    pub image_id: String,
    pub config: ContainerConfig,
    pub author: Option<String>,
    /// ARGs declared in this stage with their effective values.
    pub args: Vec<(String, Option<String>)>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it; otherwise ENTRYPOINT resets the base's CMD).
    pub cmd_set: bool,
}

impl StageState {
    fn env_value(&self, name: &str) -> Option<String> {
        self.config.env.as_ref()?.iter().rev().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| v.to_string())
        })
    }
}

fn set_env(list: &mut Vec<String>, k: &str, v: &str) {
    let entry = format!("{k}={v}");
    match list
        .iter_mut()
        .find(|e| e.split_once('=').map(|(a, _)| a) == Some(k) || e.as_str() == k)
    {
        Some(e) => *e = entry,
        None => list.push(entry),
    }
}

enum Step {
    Meta {
        key: String,
    },
    Run {
        argv: Vec<String>,
        args: Vec<String>,
    },
    Copy {
        plan: CopyPlan,
        key: String,
        created_by: String,
    },
}

impl Run<'_> {
    /// Stage by name or index.
    pub(crate) fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self
            .stage_names
            .iter()
            .position(|n| n.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        name.parse::<usize>()
            .ok()
            .filter(|i| *i < self.stage_names.len())
    }

    fn lex(&self) -> Lex {
        Lex {
            escape: self.escape,
        }
    }

    fn meta_value(&self, name: &str) -> Option<String> {
        self.meta
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    }

    /// Expands a FROM line's words with the global ARGs only.
    pub(crate) fn expand_meta(&self, s: &str) -> Result<String, String> {
        let env = |n: &str| self.meta_value(n);
        self.lex().process_word(s, &env).map_err(|e| e.to_string())
    }

    fn sub_err(line: usize, word: &str, e: impl std::fmt::Display) -> BuildError {
        BuildError::Step {
            line,
            msg: format!("failed to process {word:?}: {e}"),
        }
    }

    fn expand(&self, st: &StageState, line: usize, s: &str) -> Result<String, BuildError> {
        if line == 0 {
            return Ok(s.to_string());
        }
        let env = |n: &str| self.lookup(st, n);
        self.lex()
            .process_word(s, &env)
            .map_err(|e| Self::sub_err(line, s, e))
    }

    fn expand_words(
        &self,
        st: &StageState,
        line: usize,
        s: &str,
    ) -> Result<Vec<String>, BuildError> {
        let env = |n: &str| self.lookup(st, n);
        self.lex()
            .process_words(s, &env)
            .map_err(|e| Self::sub_err(line, s, e))
    }

    /// Variable lookup in a stage: ENV first, then the stage's ARGs, then predefined args passed in.
    fn lookup(&self, st: &StageState, name: &str) -> Option<String> {
        if let Some(v) = st.env_value(name) {
            return Some(v);
        }
        if let Some((_, v)) = st.args.iter().rev().find(|(k, _)| k == name) {
            return v.clone();
        }
        if PREDEFINED_ARGS.contains(&name) {
            return self.opts.build_args.get(name).cloned();
        }
        None
    }

    fn next_step(&mut self, text: &str) -> Result<(), BuildError> {
        self.step += 1;
        self.progress.step(self.step, self.total, text)?;
        Ok(())
    }

    /// A global ARG (before the first FROM).
    pub(crate) fn meta_arg(&mut self, cmd: &Command) -> Result<(), BuildError> {
        self.next_step(&cmd.original)?;
        let Instruction::Arg(list) = &cmd.inst else {
            return Ok(());
        };
        for (k, default) in list {
            self.consumed.insert(k.clone());
            let v = match (self.opts.build_args.get(k), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(
                    self.expand_meta(d)
                        .map_err(|e| Self::sub_err(cmd.line, d, e))?,
                ),
                (None, None) => None,
            };
            self.meta.push((k.clone(), v));
        }
        Ok(())
    }

    /// Builds one stage; returns its final image.
    pub(crate) fn build_stage(&mut self, stage: &Stage) -> Result<ImageInfo, BuildError> {
        self.next_step(&stage.from.original)?;
        let Instruction::From {
            image, platform, ..
        } = &stage.from.inst
        else {
            return Err(BuildError::NoImage);
        };
        let line = stage.from.line;
        let image = self
            .expand_meta(image)
            .map_err(|e| Self::sub_err(line, image, e))?;
        let platform = match platform {
            Some(p) => Some(self.expand_meta(p).map_err(|e| Self::sub_err(line, p, e))?),
            None => self.opts.platform.clone(),
        };
        let base = match self.stage_index(&image) {
            // Only an earlier, already built stage; any other name is an image reference.
            Some(i)
                if self.stage_names[i].as_deref() == Some(image.to_ascii_lowercase().as_str())
                    && self.stage_images[i].is_some() =>
            {
                self.stage_images[i].clone().ok_or(BuildError::NoImage)?
            }
            _ if image.eq_ignore_ascii_case("scratch") => ImageInfo::default(),
            _ => self
                .backend
                .resolve_image(&image, platform.as_deref(), self.opts.pull)?,
        };
        if !base.id.is_empty() {
            self.progress.image(&base.id)?;
        }
        let mut st = StageState {
            image_id: base.id,
            config: base.config,
            author: None,
            args: Vec::new(),
            cmd_set: false,
        };
        let triggers = st.config.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            let s = if triggers.len() == 1 { "" } else { "s" };
            self.progress
                .line(&format!("# Executing {} build trigger{s}", triggers.len()))?;
            for t in &triggers {
                let df = crate::parser::parse(t)?;
                let inst = parse_node(&df.nodes[0], self.escape)?;
                let cmd = Command {
                    line: stage.from.line,
                    original: t.clone(),
                    inst,
                };
                self.dispatch(&mut st, &cmd)?;
            }
        }
        for cmd in &stage.commands {
            self.next_step(&cmd.original)?;
            self.dispatch(&mut st, cmd)?;
        }
        Ok(ImageInfo {
            id: st.image_id,
            config: st.config,
        })
    }

    /// Applies one instruction (config update and/or new image).
    fn dispatch(&mut self, st: &mut StageState, cmd: &Command) -> Result<(), BuildError> {
        let line = cmd.line;
        let shell = |c: &ContainerConfig| {
            c.shell
                .clone()
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
        };
        let form = |c: &ContainerConfig, f: &CmdForm| match f {
            CmdForm::Exec(v) => v.clone(),
            CmdForm::Shell(s) => {
                let mut v = shell(c);
                v.push(s.clone());
                v
            }
        };
        let mut cfg = st.config.clone();
        let step = match &cmd.inst {
            Instruction::From { .. } => return Ok(()),
            Instruction::Run(f) => {
                let argv = form(&cfg, f);
                let mut args: Vec<String> = Vec::new();
                for (k, v) in &st.args {
                    if let (Some(v), None) = (v, st.env_value(k)) {
                        args.push(format!("{k}={v}"));
                    }
                }
                args.sort();
                args.dedup();
                Step::Run { argv, args }
            }
            Instruction::Cmd(f) => {
                cfg.cmd = Some(form(&cfg, f));
                st.cmd_set = true;
                Step::Meta {
                    key: format!("CMD {:?}", cfg.cmd),
                }
            }
            Instruction::Entrypoint(f) => {
                let ep = form(&cfg, f);
                cfg.entrypoint = if matches!(f, CmdForm::Exec(v) if v.is_empty()) {
                    None
                } else {
                    Some(ep)
                };
                if !st.cmd_set {
                    cfg.cmd = None;
                }
                Step::Meta {
                    key: format!("ENTRYPOINT {:?} {:?}", cfg.entrypoint, cfg.cmd),
                }
            }
            Instruction::Label(pairs) => {
                let mut labels = cfg.labels.take().unwrap_or_default();
                let mut key = String::from("LABEL");
                for (k, v) in pairs {
                    let (k, v) = (self.expand(st, line, k)?, self.expand(st, line, v)?);
                    key.push_str(&format!(" {k:?}={v:?}"));
                    labels.insert(k, v);
                }
                cfg.labels = Some(labels);
                Step::Meta { key }
            }
            Instruction::Env(pairs) => {
                // Every value sees the environment from before this instruction, like docker.
                let mut env = cfg.env.take().unwrap_or_default();
                let mut key = String::from("ENV");
                for (k, v) in pairs {
                    let (k, v) = (self.expand(st, line, k)?, self.expand(st, line, v)?);
                    key.push_str(&format!(" {k:?}={v:?}"));
                    set_env(&mut env, &k, &v);
                }
                cfg.env = Some(env);
                Step::Meta { key }
            }
            Instruction::Maintainer(m) => {
                st.author = Some(m.clone());
                Step::Meta {
                    key: format!("MAINTAINER {m}"),
                }
            }
            Instruction::Expose(words) => {
                let mut ports = cfg.exposed_ports.take().unwrap_or_default();
                for w in words {
                    for p in self.expand_words(st, line, w)? {
                        for spec in expand_port(&p).map_err(|msg| BuildError::Step { line, msg })? {
                            ports.insert(spec, serde_json::json!({}));
                        }
                    }
                }
                let key = format!("EXPOSE {:?}", ports.keys().collect::<Vec<_>>());
                cfg.exposed_ports = Some(ports);
                Step::Meta { key }
            }
            Instruction::Volume { values, .. } => {
                let mut vols = cfg.volumes.take().unwrap_or_default();
                for v in values {
                    let v = self.expand(st, line, v)?;
                    if v.trim().is_empty() {
                        return Err(BuildError::Step {
                            line,
                            msg: "VOLUME specified can not be an empty string".into(),
                        });
                    }
                    vols.insert(v, serde_json::json!({}));
                }
                let key = format!("VOLUME {:?}", vols.keys().collect::<Vec<_>>());
                cfg.volumes = Some(vols);
                Step::Meta { key }
            }
            Instruction::User(u) => {
                cfg.user = Some(self.expand(st, line, u)?);
                Step::Meta {
                    key: format!("USER {:?}", cfg.user),
                }
            }
            Instruction::Workdir(w) => {
                let w = self.expand(st, line, w)?;
                let base = cfg
                    .working_dir
                    .clone()
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "/".into());
                let joined = if w.starts_with('/') {
                    w
                } else {
                    format!("{base}/{w}")
                };
                cfg.working_dir = Some(clean(&joined));
                Step::Meta {
                    key: format!("WORKDIR {:?}", cfg.working_dir),
                }
            }
            Instruction::StopSignal(s) => {
                let s = self.expand(st, line, s)?;
                if !valid_signal(&s) {
                    return Err(BuildError::Step {
                        line,
                        msg: format!("Invalid signal: {s}"),
                    });
                }
                cfg.stop_signal = Some(s);
                Step::Meta {
                    key: format!("STOPSIGNAL {:?}", cfg.stop_signal),
                }
            }
            Instruction::Shell(v) => {
                cfg.shell = Some(v.clone());
                Step::Meta {
                    key: format!("SHELL {v:?}"),
                }
            }
            Instruction::Onbuild(t) => {
                cfg.on_build.get_or_insert_with(Vec::new).push(t.clone());
                Step::Meta {
                    key: format!("ONBUILD {t}"),
                }
            }
            Instruction::Healthcheck(h) => {
                let value = health_json(h);
                let key = format!("HEALTHCHECK {value}");
                cfg.healthcheck = Some(value);
                Step::Meta { key }
            }
            Instruction::Arg(list) => {
                let mut key = String::from("ARG");
                for (k, default) in list {
                    self.consumed.insert(k.clone());
                    let v = match (self.opts.build_args.get(k), default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(d)) => Some(self.expand(st, line, d)?),
                        // A bare ARG re-declares a global one and takes its value.
                        (None, None) => self.meta_value(k),
                    };
                    key.push_str(&format!(" {k}={v:?}"));
                    st.args.push((k.clone(), v));
                }
                Step::Meta { key }
            }
            Instruction::Copy(a) => self.copy_step(st, cmd, a, false)?,
            Instruction::Add(a) => self.copy_step(st, cmd, a, true)?,
        };
        self.execute(st, cmd, cfg, step)
    }

    fn commit_spec(
        &self,
        st: &StageState,
        config: ContainerConfig,
        created_by: String,
        cache_key: String,
        empty: bool,
    ) -> CommitSpec {
        CommitSpec {
            parent: st.image_id.clone(),
            config,
            author: st.author.clone(),
            created_by,
            cache_key,
            empty_layer: empty,
            create_dir: None,
        }
    }

    fn probe(&mut self, st: &mut StageState, key: &str) -> Result<bool, BuildError> {
        if self.opts.no_cache {
            return Ok(false);
        }
        match self.backend.find_cached(&st.image_id, key)? {
            Some(id) => {
                self.progress.using_cache()?;
                self.progress.image(&id)?;
                st.image_id = id;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn execute(
        &mut self,
        st: &mut StageState,
        cmd: &Command,
        cfg: ContainerConfig,
        step: Step,
    ) -> Result<(), BuildError> {
        match step {
            Step::Meta { key } => {
                let key = step_key(&st.image_id, &key, &[]);
                if !self.probe(st, &key)? {
                    let created_by = format!("/bin/sh -c #(nop)  {}", cmd.original);
                    let mut spec = self.commit_spec(st, cfg.clone(), created_by, key, true);
                    if matches!(cmd.inst, Instruction::Workdir(_)) {
                        spec.create_dir = cfg.working_dir.clone();
                    }
                    st.image_id = self.backend.commit_config(&spec)?;
                    self.progress.image(&st.image_id)?;
                }
            }
            Step::Run { argv, args } => {
                let key = step_key(&st.image_id, &format!("RUN {argv:?}"), &args);
                if !self.probe(st, &key)? {
                    let created_by = if args.is_empty() {
                        argv.join(" ")
                    } else {
                        format!("|{} {} {}", args.len(), args.join(" "), argv.join(" "))
                    };
                    let mut env = cfg.env.clone().unwrap_or_default();
                    env.extend(args.iter().cloned());
                    for p in PREDEFINED_ARGS {
                        if let (Some(v), None) = (self.opts.build_args.get(*p), st.env_value(p)) {
                            env.push(format!("{p}={v}"));
                        }
                    }
                    let spec = RunSpec {
                        image_id: st.image_id.clone(),
                        argv: argv.clone(),
                        env,
                        user: cfg.user.clone().filter(|u| !u.is_empty()),
                        workdir: cfg.working_dir.clone().filter(|w| !w.is_empty()),
                        network: self.opts.network.clone().unwrap_or_else(|| "none".into()),
                        volumes: cfg
                            .volumes
                            .as_ref()
                            .map(|v| v.keys().cloned().collect())
                            .unwrap_or_default(),
                    };
                    let id = self.backend.create_container(&spec)?;
                    self.progress.running_in(&id)?;
                    let code = self
                        .backend
                        .run_container(&id, self.progress.run_output())?;
                    if code != 0 {
                        // docker's `--rm` (the default) cleans up the failed step's container too.
                        if self.opts.rm || self.opts.force_rm {
                            self.backend.remove_container(&id)?;
                            self.progress.removing(&id)?;
                        }
                        return Err(BuildError::NonZero {
                            command: argv.join(" "),
                            code,
                        });
                    }
                    let spec = self.commit_spec(st, cfg.clone(), created_by, key, false);
                    st.image_id = self.backend.commit_container(&id, &spec)?;
                    if self.opts.rm || self.opts.force_rm {
                        self.backend.remove_container(&id)?;
                        self.progress.removing(&id)?;
                    }
                    self.progress.image(&st.image_id)?;
                }
            }
            Step::Copy {
                plan,
                key,
                created_by,
            } => {
                if !self.probe(st, &key)? {
                    let spec = self.commit_spec(st, cfg.clone(), created_by, key, false);
                    st.image_id = self.backend.copy(&plan, &spec)?;
                    self.progress.image(&st.image_id)?;
                }
            }
        }
        st.config = cfg;
        Ok(())
    }

    fn copy_step(
        &mut self,
        st: &StageState,
        cmd: &Command,
        a: &CopyArgs,
        add: bool,
    ) -> Result<Step, BuildError> {
        let line = cmd.line;
        let verb = if add { "ADD" } else { "COPY" };
        let dest_raw = self.expand(st, line, &a.dest)?;
        let workdir = st
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into());
        let dest_is_dir = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let dest = clean(&if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{workdir}/{dest_raw}")
        });
        let (root, from_id) = match &a.from {
            None => (self.context.clone(), String::new()),
            Some(f) => {
                let id = match self.stage_index(f) {
                    Some(i) => self.stage_images[i]
                        .as_ref()
                        .map(|s| s.id.clone())
                        .ok_or_else(|| BuildError::Step {
                            line,
                            msg: format!("stage {f} is not built before this step"),
                        })?,
                    None => {
                        self.backend
                            .resolve_image(f, self.opts.platform.as_deref(), self.opts.pull)?
                            .id
                    }
                };
                (SourceRoot::rootfs(&self.backend.image_rootfs(&id)?), id)
            }
        };
        let mut ops = Vec::new();
        for s in &a.sources {
            let s = self.expand(st, line, s)?;
            if add
                && (s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@"))
            {
                return Err(BuildError::Step { line, msg: format!("ADD of the remote URL {s} is not supported: berth builds offline; download it into the build context and COPY it") });
            }
            for source in root.sources(&s).map_err(|e| BuildError::Step {
                line,
                msg: format!("{verb} failed: {e}"),
            })? {
                let extract = add
                    && source.kind == SourceKind::File
                    && is_archive(&source.host).unwrap_or(false);
                ops.push(CopyOp {
                    source,
                    dest: dest.clone(),
                    dest_is_dir: dest_is_dir || extract,
                    extract,
                });
            }
        }
        if ops.len() > 1 && !dest_is_dir {
            return Err(BuildError::Step { line, msg: format!("When using {verb} with more than one source file, the destination must be a directory and end with a /") });
        }
        let chown = a
            .chown
            .as_ref()
            .map(|c| self.expand(st, line, c))
            .transpose()?;
        let chmod = a
            .chmod
            .as_ref()
            .map(|m| u32::from_str_radix(m, 8))
            .transpose()
            .map_err(|e| BuildError::Step {
                line,
                msg: format!("invalid chmod: {e}"),
            })?;
        let mut extra = vec![
            from_id,
            format!("{chown:?}"),
            format!("{chmod:?}"),
            dest.clone(),
            dest_is_dir.to_string(),
        ];
        let mut sums = Vec::new();
        for op in &ops {
            extra.push(format!(
                "{}\0{}\0{}",
                op.source.path, op.source.checksum, op.extract
            ));
            sums.push(op.source.checksum.clone());
        }
        let key = step_key(&st.image_id, verb, &extra);
        let kind = if ops.len() == 1 && ops[0].source.kind == SourceKind::Dir {
            "dir"
        } else if ops.len() == 1 {
            "file"
        } else {
            "multi"
        };
        let created_by = format!(
            "/bin/sh -c #(nop) {verb} {kind}:{} in {dest} ",
            crate::cache::step_key("", &sums.join(","), &[]).trim_start_matches("sha256:")
        );
        Ok(Step::Copy {
            plan: CopyPlan { ops, chown, chmod },
            key,
            created_by,
        })
    }
}

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let u = s.to_ascii_uppercase();
    let name = u.strip_prefix("SIG").unwrap_or(&u);
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-')
}

/// `80` → `80/tcp`; `8000-8002/udp` → each port. Docker's `nat.ParsePortSpecs` for EXPOSE.
pub(crate) fn expand_port(p: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {ports}");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let n = ports.parse::<u16>().map_err(|_| bad())?;
            (n, n)
        }
    };
    if hi < lo {
        return Err(format!("invalid range specified for container: {ports}"));
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

fn health_json(h: &Health) -> serde_json::Value {
    match h {
        Health::None => serde_json::json!({ "Test": ["NONE"] }),
        Health::Cmd {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => {
            let test: Vec<String> = match test {
                CmdForm::Exec(v) => std::iter::once("CMD".to_string())
                    .chain(v.iter().cloned())
                    .collect(),
                CmdForm::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
            };
            let mut m = BTreeMap::new();
            m.insert("Test", serde_json::json!(test));
            for (k, v) in [
                ("Interval", interval),
                ("Timeout", timeout),
                ("StartPeriod", start_period),
                ("StartInterval", start_interval),
                ("Retries", retries),
            ] {
                if let Some(v) = v {
                    m.insert(k, serde_json::json!(v));
                }
            }
            serde_json::json!(m)
        }
    }
}
