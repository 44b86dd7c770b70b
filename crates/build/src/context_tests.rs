use super::*;
use std::os::unix::fs::symlink;

fn ctx() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    fs::create_dir_all(r.join("src/sub")).unwrap();
    fs::write(r.join("src/a.txt"), "a").unwrap();
    fs::write(r.join("src/b.md"), "b").unwrap();
    fs::write(r.join("src/sub/c.txt"), "c").unwrap();
    fs::write(r.join("top.txt"), "top").unwrap();
    fs::write(r.join("secret.key"), "k").unwrap();
    fs::write(r.join("Dockerfile"), "FROM x").unwrap();
    fs::write(r.join(".dockerignore"), "*.key\nsrc/*.md\n").unwrap();
    symlink("/etc/passwd", r.join("escape")).unwrap();
    symlink("../top.txt", r.join("src/link")).unwrap();
    d
}

#[test]
fn resolves_files_dirs_and_wildcards() {
    let d = ctx();
    let root = SourceRoot::context(d.path()).unwrap();
    let s = root.sources("top.txt").unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].kind, SourceKind::File);
    let s = root.sources("/src/").unwrap();
    assert_eq!(s[0].kind, SourceKind::Dir);
    let rels: Vec<_> = s[0].entries.iter().map(|e| e.rel.as_str()).collect();
    // b.md is ignored; the symlink is kept as a symlink.
    assert_eq!(rels, vec!["", "a.txt", "link", "sub", "sub/c.txt"]);
    let s = root.sources("src/*.txt").unwrap();
    assert_eq!(
        s.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
        vec!["src/a.txt"]
    );
    let s = root.sources("*/sub").unwrap();
    assert_eq!(s[0].path, "src/sub");
    assert!(matches!(
        root.sources("secret.key"),
        Err(ContextError::NotFound(_))
    ));
    assert!(matches!(
        root.sources("nope"),
        Err(ContextError::NotFound(_))
    ));
    assert!(matches!(
        root.sources("*.none"),
        Err(ContextError::NoSources)
    ));
    let all = root.sources(".").unwrap();
    assert!(!all[0].entries.iter().any(|e| e.rel == "secret.key"));
}

#[test]
fn symlinks_stay_inside_the_root() {
    let d = ctx();
    let root = SourceRoot::context(d.path()).unwrap();
    // /etc/passwd through the link resolves to <ctx>/etc/passwd, which does not exist.
    assert_eq!(
        root.resolve("escape", true).unwrap(),
        d.path().join("etc/passwd")
    );
    assert!(root.sources("escape").is_err());
    assert_eq!(
        root.resolve("src/link", true).unwrap(),
        d.path().join("top.txt")
    );
    assert_eq!(
        root.resolve("../../top.txt", true).unwrap(),
        d.path().join("top.txt")
    );
}

#[test]
fn checksums_follow_content_and_mode_not_mtime() {
    let d = ctx();
    let root = SourceRoot::context(d.path()).unwrap();
    let c1 = root.sources("src").unwrap()[0].checksum.clone();
    assert_eq!(root.sources("src").unwrap()[0].checksum, c1);
    // Touching (mtime only) keeps the sum.
    let f = fs::File::options()
        .append(true)
        .open(d.path().join("src/a.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(root.sources("src").unwrap()[0].checksum, c1);
    fs::write(d.path().join("src/sub/c.txt"), "changed").unwrap();
    let c2 = root.sources("src").unwrap()[0].checksum.clone();
    assert_ne!(c1, c2);
    fs::set_permissions(
        d.path().join("src/a.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    assert_ne!(root.sources("src").unwrap()[0].checksum, c2);
    // An ignored file does not count.
    let top = root.sources("top.txt").unwrap()[0].checksum.clone();
    fs::write(d.path().join("src/b.md"), "changed").unwrap();
    assert_eq!(root.sources("top.txt").unwrap()[0].checksum, top);
}

#[test]
fn exceptions_inside_ignored_dirs() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir_all(d.path().join("docs/keep")).unwrap();
    fs::write(d.path().join("docs/x"), "x").unwrap();
    fs::write(d.path().join("docs/keep/y"), "y").unwrap();
    fs::write(d.path().join(".dockerignore"), "docs\n!docs/keep\n").unwrap();
    let root = SourceRoot::context(d.path()).unwrap();
    let s = root.sources(".").unwrap();
    let rels: Vec<_> = s[0].entries.iter().map(|e| e.rel.as_str()).collect();
    assert!(rels.contains(&"docs/keep/y"));
    assert!(!rels.contains(&"docs/x"));
}

#[test]
fn unpacks_tar_context() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "Dockerfile", &b"FROM x"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let d = tempfile::tempdir().unwrap();
    unpack_context(std::io::Cursor::new(data), &d.path().join("ctx")).unwrap();
    assert_eq!(
        fs::read_to_string(d.path().join("ctx/Dockerfile")).unwrap(),
        "FROM x"
    );
}

#[test]
fn stream_is_tar_or_dockerfile() {
    let d = tempfile::tempdir().unwrap();
    let kind = context_from_stream(
        std::io::Cursor::new(b"FROM busybox\nRUN true\n".to_vec()),
        &d.path().join("a"),
    )
    .unwrap();
    assert_eq!(kind, StreamKind::Dockerfile);
    assert_eq!(
        fs::read_to_string(d.path().join("a/Dockerfile")).unwrap(),
        "FROM busybox\nRUN true\n"
    );
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "sub/f", &b"x"[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
    let kind = context_from_stream(
        std::io::Cursor::new(gz.finish().unwrap()),
        &d.path().join("b"),
    )
    .unwrap();
    assert_eq!(kind, StreamKind::Tar);
    assert_eq!(fs::read_to_string(d.path().join("b/sub/f")).unwrap(), "x");
}
