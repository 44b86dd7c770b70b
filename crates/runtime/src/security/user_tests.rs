use super::*;
use crate::security::test_util::{in_child, require_root};

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
    # a comment\n\
    broken line\n\
    app:x:1000:1001:App:/home/app:/bin/sh\n\
    nohome:x:1002:1002::\n";
const GROUP: &str = "root:x:0:\n\
    wheel:x:10:root,app\n\
    audio:x:29:app\n\
    appgrp:x:1001:\n\
    staff:x:50:\n";

fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
    std::fs::write(dir.path().join("etc/group"), GROUP).unwrap();
    dir
}

#[test]
fn parses_passwd_and_group() {
    let p = parse_passwd(PASSWD);
    assert_eq!(p.len(), 4);
    assert_eq!(
        p[2],
        PasswdEntry {
            name: "app".into(),
            uid: 1000,
            gid: 1001,
            home: "/home/app".into()
        }
    );
    let g = parse_group(GROUP);
    assert_eq!(
        g[1],
        (
            "wheel".to_string(),
            10,
            vec!["root".to_string(), "app".to_string()]
        )
    );
}

#[test]
fn resolves_docker_user_specs() {
    let r = rootfs();
    let root = r.path();
    assert_eq!(resolve_user(root, "").unwrap(), (0, 0, vec![10]));
    assert_eq!(
        resolve_user(root, "app").unwrap(),
        (1000, 1001, vec![10, 29])
    );
    assert_eq!(
        resolve_user(root, "1000").unwrap(),
        (1000, 1001, vec![10, 29])
    );
    assert_eq!(resolve_user(root, "app:staff").unwrap(), (1000, 50, vec![]));
    assert_eq!(resolve_user(root, "app:77").unwrap(), (1000, 77, vec![]));
    assert_eq!(
        resolve_user(root, "1000:1000").unwrap(),
        (1000, 1000, vec![])
    );
    assert_eq!(resolve_user(root, "4242").unwrap(), (4242, 0, vec![]));
    assert_eq!(
        resolve_user(root, "4242:audio").unwrap(),
        (4242, 29, vec![])
    );
    assert_eq!(
        resolve_user(root, "app:").unwrap(),
        (1000, 1001, vec![10, 29])
    );
}

#[test]
fn unknown_names_and_bad_specs_are_clear_errors() {
    let r = rootfs();
    let err = resolve_user(r.path(), "ghost").unwrap_err();
    assert!(
        err.to_string().contains("unable to find user ghost"),
        "{err}"
    );
    let err = resolve_user(r.path(), "app:ghosts").unwrap_err();
    assert!(
        err.to_string().contains("unable to find group ghosts"),
        "{err}"
    );
    assert!(matches!(
        resolve_user(r.path(), "a:b:c"),
        Err(UserError::InvalidSpec(_))
    ));
    assert!(matches!(
        resolve_user(r.path(), "99999999999"),
        Err(UserError::InvalidSpec(_))
    ));
}

#[test]
fn works_without_passwd_for_numeric_ids() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        resolve_user(dir.path(), "123:456").unwrap(),
        (123, 456, vec![])
    );
    assert_eq!(resolve_user(dir.path(), "123").unwrap(), (123, 0, vec![]));
    assert!(matches!(
        resolve_user(dir.path(), "app"),
        Err(UserError::UserNotFound(_))
    ));
}

#[test]
fn symlinked_passwd_cannot_escape_the_root() {
    let host = tempfile::tempdir().unwrap();
    let host_file = host.path().join("passwd");
    std::fs::write(&host_file, "hostonly:x:4000:4000::/host:/bin/sh\n").unwrap();
    let r = tempfile::tempdir().unwrap();
    std::fs::create_dir(r.path().join("etc")).unwrap();
    // An absolute symlink to a host path: inside the root it resolves to <root><host path>, which is absent.
    std::os::unix::fs::symlink(&host_file, r.path().join("etc/passwd")).unwrap();
    assert!(matches!(
        resolve_user(r.path(), "hostonly"),
        Err(UserError::UserNotFound(_))
    ));
    // A relative symlink that stays inside works.
    std::fs::write(r.path().join("etc/passwd.real"), PASSWD).unwrap();
    std::fs::remove_file(r.path().join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink("../../../etc/passwd.real", r.path().join("etc/passwd")).unwrap();
    assert_eq!(resolve_user(r.path(), "app").unwrap().0, 1000);
}

#[test]
fn home_from_passwd_when_env_has_none() {
    let r = rootfs();
    let mut env = vec!["PATH=/bin".to_string()];
    ensure_home_env(&mut env, r.path(), 1000);
    assert_eq!(env, ["PATH=/bin", "HOME=/home/app"]);
    let mut env = vec!["HOME=/custom".to_string()];
    ensure_home_env(&mut env, r.path(), 1000);
    assert_eq!(env, ["HOME=/custom"]);
    assert_eq!(home_dir(r.path(), 1002), "/");
    assert_eq!(home_dir(r.path(), 5555), "/");
}

#[test]
fn switches_uid_gid_groups_and_keeps_caps() {
    require_root!();
    let user: User = serde_json::from_str(
        r#"{"uid": 1000, "gid": 1001, "additionalGids": [10, 29], "umask": 63}"#,
    )
    .unwrap();
    let code = in_child(move || {
        if switch(&user).is_err() {
            return 1;
        }
        apply_umask(&user);
        // SAFETY: plain getters; getgroups with a valid buffer of the given size; umask is read and restored.
        let (uid, euid, gid, egid, mask, keep) = unsafe {
            let m = libc::umask(0);
            libc::umask(m);
            (
                libc::getuid(),
                libc::geteuid(),
                libc::getgid(),
                libc::getegid(),
                m,
                libc::prctl(libc::PR_GET_KEEPCAPS),
            )
        };
        if (uid, euid, gid, egid) != (1000, 1000, 1001, 1001) {
            return 2;
        }
        let mut groups = [0 as libc::gid_t; 8];
        // SAFETY: the buffer holds 8 entries.
        let n = unsafe { libc::getgroups(8, groups.as_mut_ptr()) };
        if n != 2 || groups[..2] != [10, 29] {
            return 3;
        }
        if mask != 0o077 {
            return 4;
        }
        // Keepcaps is cleared again, and permitted survived the switch (effective is empty until capset).
        if keep != 0 {
            return 5;
        }
        match capabilities::current() {
            Ok((0, perm, _)) if perm != 0 => 0,
            _ => 6,
        }
    });
    assert_eq!(code, 0, "child check {code} failed");
}

#[test]
fn setgroups_denied_in_a_user_namespace() {
    require_root!();
    let code = in_child(|| {
        // SAFETY: unshare in the single-threaded forked child.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
            return 10;
        }
        let w = |p: &str, s: &str| std::fs::write(p, s).is_ok();
        if !(w("/proc/self/setgroups", "deny")
            && w("/proc/self/uid_map", "0 0 1")
            && w("/proc/self/gid_map", "0 0 1"))
        {
            return 11;
        }
        // No additional gids: the denied setgroups is skipped.
        if set_ids(0, 0, &[]).is_err() {
            return 1;
        }
        match set_ids(0, 0, &[0]) {
            Err(UserError::SetgroupsDenied(g)) if g == [0] => 0,
            _ => 2,
        }
    });
    if code == 10 {
        eprintln!("skipped: cannot create a user namespace here");
        return;
    }
    assert_eq!(code, 0, "child check {code} failed");
}
