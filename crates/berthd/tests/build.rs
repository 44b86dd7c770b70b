//! `berth build` and `DOCKER_BUILDKIT=0 docker build` through berthd's `POST /build`: the hello-world example
//! FROM scratch, a multi-stage build, ARG/ENV/WORKDIR/USER/.dockerignore checked by running the result, the
//! build cache (a full rebuild is all cache hits, a changed file invalidates exactly the steps from its COPY
//! on), a malformed Dockerfile and a failing RUN (its exit code, no container left). Every scenario runs with
//! both CLIs. Run as root inside `unshare -m --propagation private`.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{workspace, Daemon, DOCKER};

#[derive(Clone, Copy, Debug)]
enum Cli {
    Berth,
    Docker,
}

/// The berth CLI next to berthd in the target dir (`cargo build --workspace --bins` puts it there).
fn berth_bin() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_berthd")).with_file_name("berth");
    p.is_file().then_some(p)
}

/// The clients to test: the real docker CLI always, berth's when it is built.
fn clis() -> Vec<Cli> {
    let mut v = vec![Cli::Docker];
    match berth_bin() {
        Some(_) => v.insert(0, Cli::Berth),
        None => eprintln!("SKIPPED (berth CLI part): target/debug/berth not built; run cargo build --workspace --bins"),
    }
    v
}

/// `build ARGS` with `cli` in `dir`, optional stdin; the docker CLI uses the classic builder.
fn build(d: &Daemon, cli: Cli, dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("timeout");
    match cli {
        Cli::Berth => cmd.arg("300").arg(berth_bin().expect("berth built")),
        Cli::Docker => cmd.args(["300", DOCKER]),
    };
    cmd.arg("build")
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("BERTH_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", &d.docker_config)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run build");
    if let Some(input) = stdin {
        let mut s = child.stdin.take().unwrap();
        s.write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// A build that must succeed; returns stdout.
fn build_ok(d: &Daemon, cli: Cli, dir: &Path, args: &[&str]) -> String {
    let o = build(d, cli, dir, args, None);
    assert!(
        o.status.success(),
        "{cli:?} build {args:?} failed: {}\nstdout: {}\nstderr: {}\n--- berthd log ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        d.log()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Per step of the classic builder's output: whether it was a cache hit.
fn cache_hits(out: &str) -> Vec<bool> {
    let mut steps = Vec::new();
    for l in out.lines() {
        if l.starts_with("Step ") {
            steps.push(false);
        } else if l == " ---> Using cache" {
            *steps.last_mut().expect("cache line inside a step") = true;
        }
    }
    steps
}

/// The short id of `Successfully built <id>`.
fn built_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap_or_else(|| panic!("no 'Successfully built' in:\n{out}"))
        .to_string()
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

fn ctx(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.root.path().join(name);
    fs::create_dir_all(&dir).unwrap();
    write(&dir, files);
    dir
}

fn no_containers(d: &Daemon) {
    let ps = d.ok(&["ps", "-a", "-q"]);
    assert!(ps.trim().is_empty(), "containers left behind: {ps}");
}

#[test]
fn hello_world_from_scratch() {
    require!();
    let d = Daemon::start();
    let out = d.root.path().join("hello-world");
    let st = Command::new("bash")
        .arg(workspace().join("examples/hello-world/build.sh"))
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .expect("build hello-world");
    assert!(st.success(), "examples/hello-world/build.sh failed");
    assert!(out.join("Dockerfile").is_file() && out.join("hello").is_file());
    let mut ids = Vec::new();
    for cli in clis() {
        let tag = format!("hello-{cli:?}").to_lowercase();
        let o = build_ok(&d, cli, &out, &["-t", &tag, "."]);
        assert!(o.contains("Step 1/3 : FROM scratch\n"), "{o}");
        assert!(o.contains("Step 2/3 : COPY hello /\n"), "{o}");
        assert!(
            o.contains(&format!("Successfully tagged {tag}:latest\n")),
            "{o}"
        );
        let run = d.ok(&["run", "--rm", &tag]);
        assert!(run.contains("Hello from berth!"), "{run}");
        ids.push(built_id(&o));
    }
    // The second client's build is the first one's, from the cache.
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    // A built image is an ordinary image: save, remove, load, run.
    let tar = d.root.path().join("hello.tar");
    d.ok(&["save", "-o", tar.to_str().unwrap(), "hello-docker"]);
    d.ok(&["rmi", "hello-docker"]);
    let _ = d.docker(&["rmi", "hello-berth"]);
    d.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(d
        .ok(&["run", "--rm", "hello-docker"])
        .contains("Hello from berth!"));
    // ... and push and pull.
    if common::which("docker-registry").is_some() {
        let reg = common::Registry::start();
        let name = format!("127.0.0.1:{}/built/hello:v1", reg.port);
        d.ok(&["tag", "hello-docker", &name]);
        d.ok(&["push", &name]);
        d.ok(&["rmi", &name, "hello-docker"]);
        d.ok(&["pull", &name]);
        assert!(d.ok(&["run", "--rm", &name]).contains("Hello from berth!"));
    } else {
        eprintln!("SKIPPED (push/pull part): docker-registry not installed");
    }
    no_containers(&d);
}

#[test]
fn multi_stage_args_env_workdir_user_dockerignore() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let multi = ctx(
        &d,
        "multi",
        &[(
            "Dockerfile",
            "FROM busybox AS build\nRUN mkdir /out && echo made-in-build-stage > /out/msg\n\
             FROM busybox AS unused\nRUN exit 9\n\
             FROM busybox\nCOPY --from=build /out/msg /msg\nCMD [\"cat\", \"/msg\"]\n",
        )],
    );
    let scoped = ctx(
        &d,
        "scoped",
        &[
            (
                "Dockerfile",
                "ARG BASE=busybox\nFROM $BASE\nARG NAME=default\nARG UNSET\nENV APP_NAME=$NAME GREETING=\"hello ${NAME:-x}\"\n\
                 WORKDIR /srv\nWORKDIR app\nCOPY . .\nRUN chown -R nobody /srv/app\nUSER nobody\n\
                 CMD [\"sh\", \"-c\", \"echo $APP_NAME; echo $GREETING; echo [$UNSET]; pwd; id -u; ls -a\"]\n",
            ),
            (".dockerignore", "secret.txt\n*.log\nsub/skip\n"),
            ("keep.txt", "k\n"),
            ("secret.txt", "s\n"),
            ("debug.log", "l\n"),
            ("sub/skip", "x\n"),
            ("sub/ok", "y\n"),
        ],
    );
    for cli in clis() {
        let tag = format!("multi-{cli:?}").to_lowercase();
        let o = build_ok(&d, cli, &multi, &["-t", &tag, "."]);
        // The stage nothing depends on is skipped.
        assert!(!o.contains("exit 9"), "{o}");
        assert_eq!(d.ok(&["run", "--rm", &tag]), "made-in-build-stage\n");

        let tag = format!("scoped-{cli:?}").to_lowercase();
        build_ok(
            &d,
            cli,
            &scoped,
            &["-t", &tag, "--build-arg", "NAME=custom", "."],
        );
        let run = d.ok(&["run", "--rm", &tag]);
        let lines: Vec<&str> = run.lines().collect();
        assert_eq!(
            &lines[..5],
            &["custom", "hello custom", "[]", "/srv/app", "65534"],
            "{run}"
        );
        let listed: Vec<&str> = lines[5..].to_vec();
        assert!(
            listed.contains(&"keep.txt") && listed.contains(&"sub"),
            "{run}"
        );
        assert!(
            !listed.contains(&"secret.txt") && !listed.contains(&"debug.log"),
            ".dockerignore'd files were sent: {run}"
        );
        let sub = d.ok(&["run", "--rm", &tag, "ls", "sub"]);
        assert_eq!(sub, "ok\n");
        let cfg = d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.User}} {{.Config.WorkingDir}}",
            &tag,
        ]);
        assert_eq!(cfg.trim(), "nobody /srv/app");
    }
    // What a RUN writes under an image VOLUME is discarded (docker), and the step's anonymous volume goes with
    // its container.
    // ADD unpacks a local archive; COPY --chown/--chmod.
    let vol = ctx(
        &d,
        "vol",
        &[
            (
                "Dockerfile",
                "FROM busybox\nADD inner.tar.gz /opt/\nCOPY --chown=nobody:nogroup --chmod=600 owned.txt /owned\n\
                 VOLUME /data\nRUN echo x > /data/f && echo y > /kept\n",
            ),
            ("owned.txt", "o\n"),
            ("inner/deep/inner.txt", "from the archive\n"),
        ],
    );
    let st = Command::new("tar")
        .arg("-czf")
        .arg(vol.join("inner.tar.gz"))
        .arg("-C")
        .arg(vol.join("inner"))
        .arg("deep")
        .status()
        .unwrap();
    assert!(st.success());
    build_ok(&d, Cli::Docker, &vol, &["-t", "vol", "."]);
    assert_eq!(
        d.ok(&["run", "--rm", "vol", "cat", "/opt/deep/inner.txt"]),
        "from the archive\n"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "vol", "stat", "-c", "%u:%g %a", "/owned"]),
        "65534:65534 600\n"
    );
    assert_eq!(d.ok(&["run", "--rm", "vol", "cat", "/kept"]), "y\n");
    assert_eq!(d.ok(&["run", "--rm", "vol", "ls", "/data"]), "");
    let vols = d.ok(&["volume", "ls", "-q"]);
    assert!(vols.trim().is_empty(), "volumes left behind: {vols}");
    no_containers(&d);
}

#[test]
fn cache_hits_and_invalidation() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let dir = ctx(
        &d,
        "cache",
        &[
            (
                "Dockerfile",
                "FROM busybox\nENV A=1\nRUN echo base > /base\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\nCOPY other.txt /other.txt\nCMD [\"cat\", \"/b.txt\"]\n",
            ),
            ("a.txt", "one\n"),
            ("other.txt", "o\n"),
        ],
    );
    let first = build_ok(&d, Cli::Docker, &dir, &["-t", "cached", "."]);
    assert_eq!(cache_hits(&first), vec![false; 7], "{first}");
    let mut id = built_id(&first);
    for (round, cli) in clis().into_iter().enumerate() {
        let again = build_ok(&d, cli, &dir, &["-t", "cached", "."]);
        // FROM is never a "cache hit"; every other step is.
        let mut want = vec![true; 7];
        want[0] = false;
        assert_eq!(cache_hits(&again), want, "{cli:?}:\n{again}");
        assert_eq!(built_id(&again), id);
        assert!(!again.contains("Running in"), "{again}");

        // Change the file of step 4: steps 2-3 stay cached, 4-7 run again.
        fs::write(dir.join("a.txt"), format!("changed {round}\n")).unwrap();
        let changed = build_ok(&d, cli, &dir, &["-t", "cached", "."]);
        assert_eq!(
            cache_hits(&changed),
            vec![false, true, true, false, false, false, false],
            "{cli:?}:\n{changed}"
        );
        assert_eq!(
            d.ok(&["run", "--rm", "cached"]),
            format!("changed {round}\n")
        );

        // --no-cache runs everything.
        let fresh = build_ok(&d, cli, &dir, &["--no-cache", "-t", "cached", "."]);
        assert!(!fresh.contains("Using cache"), "{fresh}");

        // -q prints only the id.
        let quiet = build_ok(&d, cli, &dir, &["-q", "."]);
        let q = quiet.trim();
        assert!(
            q.starts_with("sha256:") && q.len() == 71 && quiet.lines().count() == 1,
            "{quiet:?}"
        );
        // The same context as a tar on stdin (`build -`): all from the cache.
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .args(["-cf", "-", "."])
            .output()
            .unwrap();
        assert!(tar.status.success());
        let o = build(&d, cli, &dir, &["-"], Some(&tar.stdout));
        let piped = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{cli:?}: {piped}");
        assert_eq!(cache_hits(&piped), want, "{cli:?}:\n{piped}");
        // The next round's rebuild is this one's image, from the cache.
        id = q["sha256:".len().."sha256:".len() + 12].to_string();
    }
    no_containers(&d);
}

#[test]
fn malformed_dockerfile_and_failing_run() {
    require!();
    let d = Daemon::start();
    d.import_busybox();
    let bad = ctx(
        &d,
        "bad",
        &[("Dockerfile", "FROM busybox\nRUN true\nFROBNICATE now\n")],
    );
    let fail = ctx(
        &d,
        "fail",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo before\nRUN echo output-of-failing-step; exit 3\nRUN echo never\n",
        )],
    );
    let images_before = d.ok(&["images", "-a", "-q"]);
    for cli in clis() {
        let o = build(&d, cli, &bad, &["."], None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{cli:?}: {err}");
        assert!(
            err.contains("Dockerfile parse error line 3: unknown instruction: FROBNICATE"),
            "{cli:?}: {err}"
        );

        let o = build(&d, cli, &fail, &["-t", "never", "."], None);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        // The docker CLI exits with the failing step's code (the daemon sends it in errorDetail.code).
        assert_eq!(o.status.code(), Some(3), "{cli:?}: {out}\n{err}");
        assert!(
            err.contains(
                "The command '/bin/sh -c echo output-of-failing-step; exit 3' returned a non-zero code: 3"
            ),
            "{cli:?}: {err}"
        );
        assert!(out.contains("output-of-failing-step"), "{out}");
        assert!(!out.contains("never"), "{out}");
        no_containers(&d);
        assert!(!d.ok(&["images", "-q"]).contains("never"));

        // A Dockerfile on stdin (`build -`) with a failing RUN, too.
        let o = build(
            &d,
            cli,
            &fail,
            &["-"],
            Some(b"FROM busybox\nRUN exit 5\n".as_slice()),
        );
        assert_eq!(o.status.code(), Some(5), "{cli:?}");
        no_containers(&d);
    }
    // Only the cached "RUN echo before" step was added.
    let images_after = d.ok(&["images", "-a", "-q"]);
    assert_eq!(
        images_after.lines().count(),
        images_before.lines().count() + 1,
        "{images_after}"
    );
}
