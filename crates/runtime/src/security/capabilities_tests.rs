use super::*;
use crate::security::test_util::{in_child, require_root};

fn set_of(names: &[&str]) -> Capabilities {
    parse_all(names).expect("known capabilities")
}

#[test]
fn parses_docker_and_oci_spellings() {
    assert_eq!(parse("CAP_NET_ADMIN").unwrap(), Capability::NetAdmin);
    assert_eq!(parse("net_admin").unwrap(), Capability::NetAdmin);
    assert_eq!(parse("Cap_Sys_Admin").unwrap(), Capability::SysAdmin);
    assert_eq!(
        parse("CAP_CHECKPOINT_RESTORE").unwrap(),
        Capability::CheckpointRestore
    );
}

#[test]
fn unknown_capability_is_named_in_the_error() {
    let err = parse_all(&["CAP_CHOWN", "CAP_FLY"]).unwrap_err();
    assert!(matches!(&err, CapsError::Unknown(n) if n == "CAP_FLY"));
    assert!(err.to_string().contains("CAP_FLY"), "{err}");
}

#[test]
fn table_matches_kernel_numbers_and_oci_names() {
    for (i, (cap, n, nm)) in ALL.iter().enumerate() {
        assert_eq!(usize::from(*n), i);
        assert_eq!(name(*cap), *nm);
        // oci-spec serializes the same canonical name.
        assert_eq!(serde_json::to_string(cap).unwrap(), format!("\"{nm}\""));
    }
    assert_eq!(number(Capability::SysAdmin), 21);
    assert_eq!(all_names().len(), 41);
}

#[test]
fn last_cap_matches_proc() {
    let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").expect("read cap_last_cap");
    assert_eq!(last_cap(), text.trim().parse::<u8>().unwrap());
}

#[test]
fn mask_skips_caps_the_kernel_does_not_know() {
    let s = set_of(&["CAP_CHOWN", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]);
    assert_eq!(mask(Some(&s), 40), 1 | (1 << 39) | (1 << 40));
    assert_eq!(mask(Some(&s), 38), 1);
    assert_eq!(mask(None, 40), 0);
}

/// Read a capability line of /proc/self/status as a mask.
fn status_mask(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

#[test]
fn applies_all_five_sets_as_root() {
    require_root!();
    let code = in_child(|| {
        let caps = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
            .bounding(set_of(&[
                "CAP_CHOWN",
                "CAP_KILL",
                "CAP_NET_BIND_SERVICE",
                "CAP_SETPCAP",
            ]))
            .permitted(set_of(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]))
            .effective(set_of(&["CAP_CHOWN", "CAP_KILL"]))
            .inheritable(set_of(&["CAP_NET_BIND_SERVICE"]))
            // CAP_KILL is not inheritable: the kernel would refuse it, so it is skipped.
            .ambient(set_of(&["CAP_NET_BIND_SERVICE", "CAP_KILL"]))
            .build()
            .unwrap();
        if apply(&caps).is_err() {
            return 1;
        }
        let (b, p, e, i, a) = (
            1 << 8 | 1 << 0 | 1 << 5 | 1 << 10,
            1 | 1 << 5 | 1 << 10,
            1 | 1 << 5,
            1 << 10,
            1 << 10,
        );
        if status_mask("CapBnd:") != b {
            return 2;
        }
        if status_mask("CapPrm:") != p {
            return 3;
        }
        if status_mask("CapEff:") != e {
            return 4;
        }
        if status_mask("CapInh:") != i {
            return 5;
        }
        if status_mask("CapAmb:") != a {
            return 6;
        }
        // The kernel now refuses what was dropped: CAP_SYS_ADMIN is gone.
        // SAFETY: sethostname with a valid buffer; it must fail with EPERM here.
        let rc = unsafe { libc::sethostname(c"x".as_ptr(), 1) };
        if rc == 0 || nix::Error::last() != nix::Error::EPERM {
            return 7;
        }
        0
    });
    assert_eq!(code, 0, "child check {code} failed");
}

#[test]
fn capset_error_is_clear() {
    require_root!();
    let code = in_child(|| {
        // Effective outside permitted: the kernel refuses, and the error says what was asked.
        match set(1 << 21, 0, 0) {
            Err(e @ CapsError::Capset { .. }) if e.to_string().contains("0x200000") => 0,
            _ => 1,
        }
    });
    assert_eq!(code, 0);
}

#[test]
fn keepcaps_preserves_permitted_across_uid_switch() {
    require_root!();
    let code = in_child(|| {
        if prepare_for_user_switch().is_err() {
            return 1;
        }
        // SAFETY: plain setresgid/setresuid calls in the forked child.
        let rc = unsafe { libc::setresgid(1000, 1000, 1000) | libc::setresuid(1000, 1000, 1000) };
        if rc != 0 {
            return 2;
        }
        if finish_user_switch().is_err() {
            return 3;
        }
        let caps = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
            .bounding(set_of(&["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]))
            .permitted(set_of(&["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]))
            .effective(set_of(&["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]))
            .inheritable(set_of(&["CAP_NET_BIND_SERVICE"]))
            .ambient(set_of(&["CAP_NET_BIND_SERVICE"]))
            .build()
            .unwrap();
        if apply(&caps).is_err() {
            return 4;
        }
        let want = 1 << 10 | 1;
        if status_mask("CapEff:") != want
            || status_mask("CapBnd:") != want
            || status_mask("CapAmb:") != 1 << 10
        {
            return 5;
        }
        0
    });
    assert_eq!(code, 0, "child check {code} failed");
}
