use super::*;
use crate::security::seccomp::LIBSECCOMP_COMPILES;

fn compiles() -> usize {
    LIBSECCOMP_COMPILES.with(|n| n.get())
}

fn profile() -> LinuxSeccomp {
    crate::security::defaults::docker_default_seccomp()
}

#[test]
fn second_compile_hits_the_cache() {
    let root = tempfile::tempdir().unwrap();
    let p = profile();
    let before = compiles();
    let first = compile_cached(&p, root.path()).unwrap();
    assert_eq!(
        compiles(),
        before + 1,
        "a cold cache compiles with libseccomp"
    );
    let entry = root
        .path()
        .join(CACHE_DIR)
        .join(format!("{}.bpf", key(&p).unwrap()));
    assert_eq!(std::fs::read(&entry).unwrap(), first.bpf());
    let md = std::fs::metadata(root.path().join(CACHE_DIR)).unwrap();
    assert_eq!(md.mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&entry).unwrap().mode() & 0o777, 0o600);

    let second = compile_cached(&p, root.path()).unwrap();
    assert_eq!(
        compiles(),
        before + 1,
        "the second compile must not call libseccomp"
    );
    assert_eq!(second, first);
    // Same profile built differently (a JSON round trip) has the same key.
    let again: LinuxSeccomp = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
    assert_eq!(key(&again).unwrap(), key(&p).unwrap());
}

#[test]
fn different_profiles_have_different_keys() {
    let a = profile();
    let mut b = profile();
    b.set_default_errno_ret(Some(38));
    assert_ne!(key(&a).unwrap(), key(&b).unwrap());
}

#[test]
fn corrupted_entry_is_recompiled_and_rewritten() {
    let root = tempfile::tempdir().unwrap();
    let p = profile();
    let good = compile_cached(&p, root.path()).unwrap();
    let entry = root
        .path()
        .join(CACHE_DIR)
        .join(format!("{}.bpf", key(&p).unwrap()));
    for bad in [
        vec![],
        vec![0u8; 7],
        good.bpf()[..good.bpf().len() - 3].to_vec(),
        vec![0u8; 8 * (BPF_MAXINSNS + 1)],
    ] {
        std::fs::write(&entry, &bad).unwrap();
        let before = compiles();
        let f = compile_cached(&p, root.path()).unwrap();
        assert_eq!(
            compiles(),
            before + 1,
            "a {}-byte entry must be recompiled",
            bad.len()
        );
        assert_eq!(f, good);
        assert_eq!(
            std::fs::read(&entry).unwrap(),
            good.bpf(),
            "entry rewritten"
        );
    }
}

#[test]
fn group_writable_cache_dir_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let p = profile();
    compile_cached(&p, root.path()).unwrap();
    let dir = root.path().join(CACHE_DIR);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = compiles();
    compile_cached(&p, root.path()).unwrap();
    assert_eq!(
        compiles(),
        before + 1,
        "an unsafe cache directory is ignored"
    );
}

#[test]
fn cache_directory_is_bounded() {
    let root = tempfile::tempdir().unwrap();
    let dir = cache_dir(root.path()).unwrap();
    let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for i in 0..(MAX_ENTRIES + 6) {
        let f = File::create(dir.join(format!("{i:03}.bpf"))).unwrap();
        f.set_modified(t0 + std::time::Duration::from_secs(i as u64))
            .unwrap();
    }
    // Not an entry: never counted nor removed.
    std::fs::write(dir.join("other"), "x").unwrap();
    // A real miss writes its entry (the newest) and prunes the oldest.
    let p = profile();
    compile_cached(&p, root.path()).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), MAX_ENTRIES + 1, "{names:?}");
    assert!(names.contains(&format!("{}.bpf", key(&p).unwrap())));
    assert!(names.contains(&"other".to_string()));
    for i in 0..7 {
        assert!(!names.contains(&format!("{i:03}.bpf")), "{i:03}.bpf kept");
    }
    assert!(names.contains(&"007.bpf".to_string()));
}
