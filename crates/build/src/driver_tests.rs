//! Step sequencing and caching against an in-memory backend that records calls and fakes image ids (the real
//! engine integration, with real containers, is exercised by the engine's tests).

use super::*;
use crate::backend::{BackendError, CommitSpec, CopyPlan, RunSpec};
use crate::cache::step_key;
use berth_image::config::ContainerConfig;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

#[derive(Default)]
struct FakeBackend {
    configs: HashMap<String, ContainerConfig>,
    authors: HashMap<String, Option<String>>,
    cache: HashMap<(String, String), String>,
    calls: Vec<String>,
    keys: Vec<String>,
    runs: Vec<RunSpec>,
    copies: Vec<CopyPlan>,
    rootfs: PathBuf,
    next_container: u32,
    tags: Vec<(String, String)>,
    created_dirs: Vec<String>,
}

impl FakeBackend {
    fn new(rootfs: &Path) -> Self {
        let mut b = FakeBackend {
            rootfs: rootfs.to_path_buf(),
            ..Default::default()
        };
        let cfg = ContainerConfig {
            env: Some(vec!["PATH=/usr/bin:/bin".into()]),
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        b.configs.insert(format!("sha256:{}", "b".repeat(64)), cfg);
        let onbuild = ContainerConfig {
            on_build: Some(vec!["RUN echo triggered".into()]),
            ..Default::default()
        };
        b.configs
            .insert(format!("sha256:{}", "c".repeat(64)), onbuild);
        b
    }
    fn commit(&mut self, spec: &CommitSpec) -> String {
        let id = step_key(&spec.parent, &spec.cache_key, &[]);
        self.configs.insert(id.clone(), spec.config.clone());
        self.authors.insert(id.clone(), spec.author.clone());
        self.cache
            .insert((spec.parent.clone(), spec.cache_key.clone()), id.clone());
        id
    }
}

impl BuildBackend for FakeBackend {
    fn resolve_image(
        &mut self,
        reference: &str,
        _platform: Option<&str>,
        _pull: bool,
    ) -> Result<ImageInfo, BackendError> {
        self.calls.push(format!("resolve {reference}"));
        let id = match reference {
            "busybox" | "busybox:latest" => format!("sha256:{}", "b".repeat(64)),
            "withtrigger" => format!("sha256:{}", "c".repeat(64)),
            other => return Err(BackendError::new(format!("pull access denied for {other}"))),
        };
        Ok(ImageInfo {
            config: self.configs[&id].clone(),
            id,
        })
    }
    fn find_cached(&mut self, parent: &str, key: &str) -> Result<Option<String>, BackendError> {
        self.keys.push(key.to_string());
        Ok(self
            .cache
            .get(&(parent.to_string(), key.to_string()))
            .cloned())
    }
    fn create_container(&mut self, spec: &RunSpec) -> Result<String, BackendError> {
        self.next_container += 1;
        self.runs.push(spec.clone());
        self.calls.push(format!("create {:?}", spec.argv));
        Ok(format!("{:064x}", 0xabc000 + self.next_container))
    }
    fn run_container(&mut self, _c: &str, output: &mut dyn Write) -> Result<i64, BackendError> {
        let argv = &self.runs.last().expect("created").argv;
        writeln!(output, "ran {}", argv.join(" ")).map_err(|e| BackendError::new(e.to_string()))?;
        Ok(if argv.last().is_some_and(|a| a.contains("false")) {
            3
        } else {
            0
        })
    }
    fn commit_container(&mut self, _c: &str, spec: &CommitSpec) -> Result<String, BackendError> {
        self.calls.push("commit".into());
        Ok(self.commit(spec))
    }
    fn remove_container(&mut self, c: &str) -> Result<(), BackendError> {
        self.calls.push(format!("rm {}", &c[..12]));
        Ok(())
    }
    fn copy(&mut self, plan: &CopyPlan, spec: &CommitSpec) -> Result<String, BackendError> {
        self.calls.push(format!(
            "copy {}",
            plan.ops
                .iter()
                .map(|o| format!("{}->{}", o.source.path, o.dest))
                .collect::<Vec<_>>()
                .join(",")
        ));
        self.copies.push(plan.clone());
        Ok(self.commit(spec))
    }
    fn commit_config(&mut self, spec: &CommitSpec) -> Result<String, BackendError> {
        self.calls.push("config".into());
        self.created_dirs.extend(spec.create_dir.clone());
        Ok(self.commit(spec))
    }
    fn image_rootfs(&mut self, image_id: &str) -> Result<PathBuf, BackendError> {
        self.calls.push(format!("rootfs {}", &image_id[7..19]));
        Ok(self.rootfs.clone())
    }
    fn tag(&mut self, image_id: &str, reference: &str) -> Result<(), BackendError> {
        self.tags
            .push((image_id.to_string(), reference.to_string()));
        Ok(())
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    backend: FakeBackend,
}

fn fixture(dockerfile: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    fs::create_dir_all(ctx.join("app")).unwrap();
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    fs::write(ctx.join("app/main.c"), "int main(){}").unwrap();
    fs::write(ctx.join("hello.txt"), "hello").unwrap();
    let rootfs = dir.path().join("rootfs");
    fs::create_dir_all(rootfs.join("out")).unwrap();
    fs::write(rootfs.join("out/bin"), "binary").unwrap();
    let backend = FakeBackend::new(&rootfs);
    Fixture { dir, backend }
}

impl Fixture {
    fn opts(&self) -> BuildOptions {
        BuildOptions {
            context_dir: self.dir.path().join("ctx"),
            ..Default::default()
        }
    }
    fn build(&mut self, opts: &BuildOptions) -> (Result<BuildResult, BuildError>, String) {
        let mut out = Vec::new();
        let r = Builder::build(opts, &mut self.backend, &mut out);
        (r, String::from_utf8(out).unwrap())
    }
    fn config(&self, id: &str) -> ContainerConfig {
        self.backend.configs[id].clone()
    }
}

#[test]
fn steps_print_like_the_classic_builder_and_cache() {
    let mut f = fixture("FROM busybox\nRUN echo hi\nCOPY hello.txt /\nCMD [\"sh\"]\n");
    let mut opts = f.opts();
    opts.tags = vec!["x:latest".into()];
    let (r, out) = f.build(&opts);
    let r = r.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Step 1/4 : FROM busybox");
    assert_eq!(lines[1], " ---> bbbbbbbbbbbb");
    assert_eq!(lines[2], "Step 2/4 : RUN echo hi");
    assert!(lines[3].starts_with(" ---> Running in 0000"), "{out}");
    assert_eq!(lines[4], "ran /bin/sh -c echo hi");
    assert!(lines[5].starts_with("Removing intermediate container "));
    assert!(lines[6].starts_with(" ---> ") && lines[6].len() == 18);
    assert_eq!(lines[7], "Step 3/4 : COPY hello.txt /");
    assert_eq!(lines[9], "Step 4/4 : CMD [\"sh\"]");
    assert_eq!(
        lines[11],
        format!("Successfully built {}", &r.image_id[7..19])
    );
    assert_eq!(lines[12], "Successfully tagged x:latest");
    assert_eq!(
        f.backend.tags,
        vec![(r.image_id.clone(), "x:latest".to_string())]
    );
    assert_eq!(f.backend.runs[0].network, "none");
    assert_eq!(f.backend.runs[0].env, vec!["PATH=/usr/bin:/bin"]);

    // Same input: every step from the cache, same id.
    let (r2, out2) = f.build(&opts);
    assert_eq!(r2.unwrap().image_id, r.image_id);
    assert_eq!(out2.matches(" ---> Using cache").count(), 3, "{out2}");
    assert!(!out2.contains("Running in"));
    // --no-cache runs again (and the fake's deterministic ids give the same image).
    opts.no_cache = true;
    let (r3, out3) = f.build(&opts);
    assert_eq!(r3.unwrap().image_id, r.image_id);
    assert!(!out3.contains("Using cache"));
    assert!(out3.contains("Running in"));
}

#[test]
fn changed_file_changes_its_copy_and_everything_after() {
    let df = "FROM busybox\nENV A=1\nCOPY app /src/\nRUN make\nCMD make run\n";
    let mut f = fixture(df);
    let opts = f.opts();
    f.build(&opts).0.unwrap();
    let k1 = std::mem::take(&mut f.backend.keys);
    f.build(&opts).0.unwrap();
    let k2 = std::mem::take(&mut f.backend.keys);
    assert_eq!(k1, k2, "same input, same keys");
    fs::write(f.dir.path().join("ctx/app/main.c"), "int main(){return 1;}").unwrap();
    let (r, out) = f.build(&opts);
    r.unwrap();
    let k3 = std::mem::take(&mut f.backend.keys);
    assert_eq!(k3.len(), 4);
    assert_eq!(k3[0], k1[0], "ENV unchanged");
    for i in 1..4 {
        assert_ne!(k3[i], k1[i], "step {i} must change");
    }
    assert_eq!(out.matches("Using cache").count(), 1);
    // An unrelated file (not copied) changes nothing.
    fs::write(f.dir.path().join("ctx/hello.txt"), "other").unwrap();
    f.build(&opts).0.unwrap();
    assert_eq!(f.backend.keys, k3);
}

#[test]
fn failing_run_stops_with_its_code() {
    let mut f = fixture("FROM busybox\nRUN false\nRUN echo never\n");
    let (r, out) = f.build(&f.opts());
    let e = r.unwrap_err();
    assert_eq!(
        e.to_string(),
        "The command '/bin/sh -c false' returned a non-zero code: 3"
    );
    assert_eq!(e.exit_code(), 3);
    assert!(!out.contains("never"));
    // berth's `--rm` (the default) leaves no dangling container behind a failed step.
    assert!(f.backend.calls.iter().any(|c| c.starts_with("rm")));
    assert!(out.contains("Removing intermediate container"), "{out}");
    f.backend.calls.clear();
    let mut opts = f.opts();
    opts.rm = false;
    f.build(&opts).0.unwrap_err();
    assert!(
        !f.backend.calls.iter().any(|c| c.starts_with("rm")),
        "--rm=false keeps the failed container"
    );
    opts.force_rm = true;
    f.build(&opts).0.unwrap_err();
    assert!(f.backend.calls.iter().any(|c| c.starts_with("rm")));
}

#[test]
fn target_and_unused_stages() {
    let df = "FROM busybox AS unused\nRUN echo unused\nFROM busybox AS build\nRUN echo build\nFROM scratch AS final\nCOPY --from=build /out/bin /bin/app\nFROM busybox AS other\nRUN echo other\n";
    let mut f = fixture(df);
    let mut opts = f.opts();
    opts.target = Some("final".into());
    let (r, out) = f.build(&opts);
    let r = r.unwrap();
    assert!(!out.contains("unused") && !out.contains("other"), "{out}");
    assert!(out.contains("Step 1/4 : FROM busybox AS build"), "{out}");
    assert!(out.contains("Step 4/4 : COPY --from=build /out/bin /bin/app"));
    let plan = &f.backend.copies[0];
    assert_eq!(plan.ops[0].dest, "/bin/app");
    assert_eq!(plan.ops[0].source.path, "out/bin");
    assert!(f.backend.calls.iter().any(|c| c.starts_with("rootfs ")));
    assert!(!r.image_id.is_empty());
    opts.target = Some("nope".into());
    assert_eq!(
        f.build(&opts).0.unwrap_err().to_string(),
        "failed to reach build target nope in Dockerfile"
    );
    // Without --target the last stage is built; its unused predecessors are skipped.
    let (r, out) = f.build(&f.opts());
    r.unwrap();
    assert!(out.contains("Step 1/2 : FROM busybox AS other"), "{out}");
}

#[test]
fn arg_scoping() {
    let df = "ARG BASE=busybox\nARG V=1\nFROM ${BASE}\nRUN echo $V\nARG V\nARG W=w-$V\nENV W=env\nRUN echo\nLABEL v=$V w=$W b=$BASE\n";
    let mut f = fixture(df);
    let mut opts = f.opts();
    opts.build_args
        .insert("HTTP_PROXY".into(), "http://p".into());
    opts.build_args.insert("UNUSED".into(), "x".into());
    let (r, out) = f.build(&opts);
    let r = r.unwrap();
    assert!(f.backend.calls.contains(&"resolve busybox".to_string()));
    // First RUN: V not declared in the stage yet, so not in its env; the predefined proxy arg is.
    assert_eq!(
        f.backend.runs[0].env,
        vec!["PATH=/usr/bin:/bin", "HTTP_PROXY=http://p"]
    );
    // Second RUN: V (redeclared, takes the global value); W is overridden by ENV.
    assert_eq!(
        f.backend.runs[1].env,
        vec!["PATH=/usr/bin:/bin", "W=env", "V=1", "HTTP_PROXY=http://p"]
    );
    let labels = f.config(&r.image_id).labels.unwrap();
    assert_eq!(labels["v"], "1");
    assert_eq!(labels["w"], "env");
    assert_eq!(
        labels["b"], "",
        "global ARGs are not visible in a stage unless redeclared"
    );
    assert!(out.contains("[Warning] One or more build-args [UNUSED] were not consumed"));
    // A --build-arg overrides defaults, globally and in the stage.
    let mut opts = f.opts();
    opts.build_args.insert("V".into(), "9".into());
    let (r, _) = f.build(&opts);
    let labels = f.config(&r.unwrap().image_id).labels.unwrap();
    assert_eq!(labels["v"], "9");
}

#[test]
fn config_instructions() {
    let df = "FROM busybox\nMAINTAINER me\nENV A=1 B=\"two words\"\nENV C $A-x\nWORKDIR /app\nWORKDIR sub/$A\nUSER 10:10\nEXPOSE 80 53/udp 8000-8001\nVOLUME /data\nSTOPSIGNAL SIGINT\nSHELL [\"/bin/bash\", \"-c\"]\nCMD run\nENTRYPOINT [\"/ep\"]\nHEALTHCHECK --interval=5s CMD true\nONBUILD RUN echo child\n";
    let mut f = fixture(df);
    let mut opts = f.opts();
    opts.labels.insert("com.x".into(), "$notexpanded".into());
    let (r, out) = f.build(&opts);
    let r = r.unwrap();
    assert!(
        out.contains("Step 16/16 : LABEL \"com.x\"=\"$notexpanded\""),
        "{out}"
    );
    let c = f.config(&r.image_id);
    assert_eq!(
        c.env.unwrap(),
        vec!["PATH=/usr/bin:/bin", "A=1", "B=two words", "C=1-x"]
    );
    assert_eq!(c.working_dir.as_deref(), Some("/app/sub/1"));
    assert_eq!(f.backend.created_dirs, vec!["/app", "/app/sub/1"]);
    assert_eq!(c.user.as_deref(), Some("10:10"));
    let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
    assert_eq!(ports, vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
    assert!(c.volumes.unwrap().contains_key("/data"));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(c.shell.unwrap(), vec!["/bin/bash", "-c"]);
    assert_eq!(
        c.cmd.unwrap(),
        vec!["/bin/bash", "-c", "run"],
        "CMD set in this stage survives ENTRYPOINT"
    );
    assert_eq!(c.entrypoint.unwrap(), vec!["/ep"]);
    assert_eq!(
        c.healthcheck.unwrap(),
        serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64})
    );
    assert_eq!(c.on_build.unwrap(), vec!["RUN echo child"]);
    assert_eq!(c.labels.unwrap()["com.x"], "$notexpanded");
    assert_eq!(f.backend.authors[&r.image_id].as_deref(), Some("me"));

    // ENTRYPOINT without a CMD in the stage resets the base image's CMD.
    let mut f = fixture("FROM busybox\nENTRYPOINT top -b\n");
    let (r, _) = f.build(&f.opts());
    let c = f.config(&r.unwrap().image_id);
    assert_eq!(c.cmd, None);
    assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "top -b"]);
}

#[test]
fn onbuild_triggers_run_in_the_child() {
    let mut f = fixture("FROM withtrigger\nCMD x\n");
    let (r, out) = f.build(&f.opts());
    let r = r.unwrap();
    assert!(out.contains("# Executing 1 build trigger\n"), "{out}");
    assert_eq!(
        f.backend.runs[0].argv,
        vec!["/bin/sh", "-c", "echo triggered"]
    );
    assert_eq!(
        f.config(&r.image_id).on_build,
        None,
        "triggers are not inherited"
    );
}

#[test]
fn copy_errors_and_semantics() {
    let mut f = fixture("FROM busybox\nWORKDIR /w\nCOPY hello.txt app .\nCOPY missing /x\n");
    let (r, _) = f.build(&f.opts());
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("line 4: COPY failed: file not found in build context"),
        "{e}"
    );
    let plan = &f.backend.copies[0];
    assert_eq!(plan.ops.len(), 2);
    assert_eq!(plan.ops[0].dest, "/w");
    assert!(plan.ops[0].dest_is_dir);
    let mut f = fixture("FROM busybox\nCOPY hello.txt app /notadir\n");
    let e = f.build(&f.opts()).0.unwrap_err().to_string();
    assert!(
        e.contains("the destination must be a directory and end with a /"),
        "{e}"
    );
    let mut f = fixture("FROM busybox\nADD http://example.com/x /x\n");
    let e = f.build(&f.opts()).0.unwrap_err().to_string();
    assert!(e.contains("http://example.com/x"), "{e}");
    let mut f = fixture("FROM busybox\nADD --chown=app:app --chmod=640 hello.txt /h\n");
    let (r, _) = f.build(&f.opts());
    r.unwrap();
    let plan = &f.backend.copies[0];
    assert_eq!(plan.chown.as_deref(), Some("app:app"));
    assert_eq!(plan.chmod, Some(0o640));
    assert!(!plan.ops[0].extract);
}

#[test]
fn scratch_only_and_parse_errors() {
    let mut f = fixture("FROM scratch\n");
    assert_eq!(
        f.build(&f.opts()).0.unwrap_err().to_string(),
        "No image was generated. Is your Dockerfile empty?"
    );
    let mut f = fixture("FROM busybox\nFOO bar\n");
    assert_eq!(
        f.build(&f.opts()).0.unwrap_err().to_string(),
        "Dockerfile parse error line 2: unknown instruction: FOO"
    );
    let mut f = fixture("FROM busybox\n");
    let mut opts = f.opts();
    opts.dockerfile = "nope/Dockerfile".into();
    assert_eq!(
        f.build(&opts).0.unwrap_err().to_string(),
        "Cannot locate specified Dockerfile: nope/Dockerfile"
    );
    opts.dockerfile_text = Some("FROM busybox\nLABEL a=b\n".into());
    opts.quiet = true;
    let (r, out) = f.build(&opts);
    assert_eq!(out, format!("{}\n", r.unwrap().image_id));
}

#[test]
fn docker_docs_substitution_and_arg_examples() {
    // https://docs.docker.com/reference/dockerfile/#environment-replacement
    let df = "FROM busybox\nENV FOO=/bar\nWORKDIR ${FOO}\nCOPY hello.txt $FOO/\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nUSER ${username:-some_user}\nLABEL u1=$username\nARG username\nUSER $username\nLABEL u2=$username\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\nARG OTHER\nENV OTHER=fixed\nRUN echo $CONT_IMG_VER\n";
    let mut f = fixture(df);
    let mut opts = f.opts();
    opts.build_args
        .insert("username".into(), "what_user".into());
    opts.build_args.insert("OTHER".into(), "from-arg".into());
    let (r, _) = f.build(&opts);
    let r = r.unwrap();
    let c = f.config(&r.image_id);
    assert_eq!(c.working_dir.as_deref(), Some("/bar"));
    assert_eq!(f.backend.copies[0].ops[0].dest, "/bar");
    let env = c.env.clone().unwrap();
    assert!(env.contains(&"def=hello".to_string()), "{env:?}");
    assert!(env.contains(&"ghi=bye".to_string()));
    assert!(env.contains(&"CONT_IMG_VER=v1.0.0".to_string()));
    assert!(
        env.contains(&"OTHER=fixed".to_string()),
        "ENV wins over a --build-arg"
    );
    assert_eq!(c.user.as_deref(), Some("what_user"));
    let labels = c.labels.unwrap();
    assert_eq!(labels["u1"], "", "not declared yet");
    assert_eq!(labels["u2"], "what_user");
    // RUN sees ENV's value, not the ARG's.
    assert!(f.backend.runs[0].env.contains(&"OTHER=fixed".to_string()));
    assert!(!f.backend.runs[0]
        .env
        .contains(&"OTHER=from-arg".to_string()));
    // An escaped `$` stays literal in COPY.
    let mut f = fixture("FROM busybox\nENV FOO=/bar\nCOPY \\$FOO /quux\n");
    let e = f.build(&f.opts()).0.unwrap_err().to_string();
    assert!(e.contains("stat $FOO"), "{e}");
}

#[test]
fn global_args_in_from_and_stage_scope() {
    // https://docs.docker.com/reference/dockerfile/#understand-how-arg-and-from-interact
    let df = "ARG CODE_VERSION=latest\nFROM busybox:${CODE_VERSION}\nLABEL v=${CODE_VERSION}\nARG S1=one\nFROM busybox AS second\nARG CODE_VERSION\nLABEL v=${CODE_VERSION} s1=${S1}\n";
    let mut f = fixture(df);
    let (r, out) = f.build(&f.opts());
    let r = r.unwrap();
    assert!(out.contains("Step 1/4 : ARG CODE_VERSION=latest"), "{out}");
    assert!(
        !f.backend
            .calls
            .contains(&"resolve busybox:latest".to_string()),
        "the first stage is unused"
    );
    let labels = f.config(&r.image_id).labels.unwrap();
    assert_eq!(labels["v"], "latest");
    assert_eq!(
        labels["s1"], "",
        "a stage's ARG does not leak into the next stage"
    );
    let mut opts = f.opts();
    opts.target = Some("0".into());
    let (r, _) = f.build(&opts);
    let r = r.unwrap();
    assert!(f
        .backend
        .calls
        .contains(&"resolve busybox:latest".to_string()));
    assert_eq!(
        f.config(&r.image_id).labels.unwrap()["v"],
        "",
        "global ARG not visible without redeclaring"
    );
}
