use super::*;
use crate::parser::parse;

fn stages(s: &str) -> Result<Stages, String> {
    let df = parse(s).map_err(|e| e.to_string())?;
    parse_stages(&df).map_err(|e| e.to_string())
}

fn one(s: &str) -> Instruction {
    let st = stages(&format!("FROM scratch\n{s}\n")).unwrap();
    st.stages[0].commands[0].inst.clone()
}

fn error(s: &str) -> String {
    stages(s).unwrap_err()
}

#[test]
fn every_instruction() {
    let st = stages(
        "ARG BASE=busybox\nFROM --platform=linux/amd64 ${BASE} AS Build\nRUN echo hi\nFROM build\nCOPY --from=build /a /b/\n",
    )
    .unwrap();
    assert_eq!(st.meta_args.len(), 1);
    assert_eq!(st.stages.len(), 2);
    assert_eq!(st.stages[0].name.as_deref(), Some("build"));
    assert_eq!(
        st.stages[0].from.inst,
        Instruction::From {
            image: "${BASE}".into(),
            alias: Some("build".into()),
            platform: Some("linux/amd64".into())
        }
    );
    assert_eq!(
        one("RUN [\"a\", \"b\"]"),
        Instruction::Run(CmdForm::Exec(vec!["a".into(), "b".into()]))
    );
    assert_eq!(
        one("RUN a  b"),
        Instruction::Run(CmdForm::Shell("a  b".into()))
    );
    assert_eq!(one("CMD x"), Instruction::Cmd(CmdForm::Shell("x".into())));
    assert_eq!(
        one("ENTRYPOINT [\"x\"]"),
        Instruction::Entrypoint(CmdForm::Exec(vec!["x".into()]))
    );
    assert_eq!(
        one("LABEL a=b \"c d\"=\"e f\""),
        Instruction::Label(vec![
            ("a".into(), "b".into()),
            ("\"c d\"".into(), "\"e f\"".into())
        ])
    );
    assert_eq!(
        one("ENV K v  w"),
        Instruction::Env(vec![("K".into(), "v  w".into())])
    );
    assert_eq!(
        one("ENV A=1 B=\"x y\""),
        Instruction::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"x y\"".into())
        ])
    );
    assert_eq!(
        one("EXPOSE 80 53/udp"),
        Instruction::Expose(vec!["80".into(), "53/udp".into()])
    );
    assert_eq!(
        one("COPY --chown=1:2 --chmod=644 a* b /dst/"),
        Instruction::Copy(CopyArgs {
            sources: vec!["a*".into(), "b".into()],
            dest: "/dst/".into(),
            from: None,
            chown: Some("1:2".into()),
            chmod: Some("644".into())
        })
    );
    assert!(matches!(one("ADD x.tar.gz /"), Instruction::Add(_)));
    assert_eq!(
        one("VOLUME [\"/a\", \"/b\"]"),
        Instruction::Volume {
            json: true,
            values: vec!["/a".into(), "/b".into()]
        }
    );
    assert_eq!(
        one("VOLUME /a /b"),
        Instruction::Volume {
            json: false,
            values: vec!["/a".into(), "/b".into()]
        }
    );
    assert_eq!(one("USER app:app"), Instruction::User("app:app".into()));
    assert_eq!(
        one("WORKDIR /my dir"),
        Instruction::Workdir("/my dir".into())
    );
    assert_eq!(
        one("ARG A B=2"),
        Instruction::Arg(vec![("A".into(), None), ("B".into(), Some("2".into()))])
    );
    assert_eq!(
        one("onbuild run echo x"),
        Instruction::Onbuild("RUN echo x".into())
    );
    assert_eq!(
        one("STOPSIGNAL SIGKILL"),
        Instruction::StopSignal("SIGKILL".into())
    );
    assert_eq!(
        one("HEALTHCHECK NONE"),
        Instruction::Healthcheck(Health::None)
    );
    assert_eq!(
        one("HEALTHCHECK --interval=5s --timeout=1m30s --start-period=100ms --start-interval=2s --retries=3 CMD curl x"),
        Instruction::Healthcheck(Health::Cmd {
            test: CmdForm::Shell("curl x".into()),
            interval: Some(5_000_000_000),
            timeout: Some(90_000_000_000),
            start_period: Some(100_000_000),
            start_interval: Some(2_000_000_000),
            retries: Some(3)
        })
    );
    assert_eq!(
        one("SHELL [\"/bin/bash\", \"-c\"]"),
        Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert_eq!(
        one("MAINTAINER Jane <j@x>"),
        Instruction::Maintainer("Jane <j@x>".into())
    );
}

#[test]
fn errors_name_the_line() {
    assert_eq!(
        error("FROM a\nRUN x\n\nFOO bar\n"),
        "Dockerfile parse error line 4: unknown instruction: FOO"
    );
    assert_eq!(
        error("# c\n\nFROM a b\n"),
        "Dockerfile parse error line 3: FROM requires either one or three arguments"
    );
    assert_eq!(
        error("FROM a x b\n"),
        "Dockerfile parse error line 1: FROM requires either one or three arguments"
    );
    assert!(error("FROM a AS 1x\n").contains("invalid name for build stage"));
    assert!(error("FROM a\nRUN --mount=type=cache,target=/x echo\n")
        .contains("line 2: the --mount option requires BuildKit"));
    assert!(error("FROM a\nRUN --network=none echo\n")
        .contains("the --network option requires BuildKit"));
    assert!(error("FROM a\nCOPY --bogus=1 a b\n").contains("line 2: Unknown flag: bogus"));
    assert!(error("FROM a\nCOPY a\n").contains("requires at least two arguments"));
    assert!(error("FROM a\nADD --from=x a b\n").contains("Unknown flag: from"));
    assert!(error("FROM a\nENV\n").contains("ENV requires at least one argument"));
    assert!(error("FROM a\nENV a=b c\n").contains("can't find = in \"c\""));
    assert!(error("FROM a\nUSER\n").contains("USER requires exactly one argument"));
    assert!(error("FROM a\nSHELL /bin/sh -c\n")
        .contains("SHELL requires the arguments to be in JSON form"));
    assert!(error("FROM a\nONBUILD ONBUILD RUN x\n").contains("Chaining ONBUILD"));
    assert!(error("FROM a\nONBUILD FROM x\n").contains("FROM isn't allowed as an ONBUILD trigger"));
    assert!(error("FROM a\nONBUILD FOO x\n").contains("line 2: unknown instruction: FOO"));
    assert!(error("FROM a\nHEALTHCHECK --interval=1x CMD a\n").contains("invalid duration"));
    assert!(error("FROM a\nHEALTHCHECK NONE x\n").contains("takes no arguments"));
    assert!(error("FROM a\nCOPY --chmod=9z a b\n").contains("invalid chmod"));
    assert_eq!(
        error("RUN x\nFROM a\n"),
        "no build stage in current context"
    );
    assert_eq!(error("ARG A=1\n"), "no build stage in current context");
    // A continuation: the error names the line the instruction starts on.
    assert!(
        error("FROM a\nRUN a \\\n  b\nBAD \\\n x\n").starts_with("Dockerfile parse error line 4:")
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("0"), Some(0));
    assert_eq!(parse_duration("1h2m3s"), Some(3_723_000_000_000));
    assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
    assert_eq!(parse_duration("10"), None);
    assert_eq!(parse_duration(""), None);
}

#[test]
fn word_splitting_keeps_quotes() {
    assert_eq!(
        split_words("a \"b c\" 'd e' f\\ g", '\\'),
        vec!["a", "\"b c\"", "'d e'", "f\\ g"]
    );
}

#[test]
fn garbage_never_panics() {
    // A deterministic generator over Dockerfile-ish fragments: parsing and expansion must return errors,
    // never panic, whatever the input.
    let frags = [
        "FROM ",
        "RUN ",
        "COPY ",
        "ENV ",
        "ARG ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "LABEL ",
        "--from=",
        "--chown",
        "=",
        "\"",
        "'",
        "\\",
        "`",
        "$",
        "${",
        "}",
        ":-",
        ":+",
        "[",
        "]",
        "\"a\"",
        ",",
        " ",
        "\n",
        "\\\n",
        "#",
        "# escape=`\n",
        "AS ",
        "x",
        "é",
        "\t",
        "NONE",
        "CMD ",
        "--interval=",
        "1s",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let lex = crate::substitution::Lex::default();
    let env = |_: &str| Some("v".to_string());
    for _ in 0..3000 {
        let mut s = String::new();
        for _ in 0..(seed % 24) {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            s.push_str(frags[(seed >> 33) as usize % frags.len()]);
        }
        if let Ok(df) = parse(&s) {
            let _ = parse_stages(&df);
        }
        let _ = lex.process_word(&s, &env);
        let _ = lex.process_words(&s, &env);
        let _ = crate::glob::Pattern::new(&s, true).map(|p| p.matches(&s));
        let _ = crate::dockerignore::Ignore::parse(&s).map(|i| i.matches(&s));
    }
}
