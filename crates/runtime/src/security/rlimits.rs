//! POSIX resource limits (`process.rlimits`), applied with `prlimit` on the calling process.
//!
//! A hard limit can only be raised above the current one with `CAP_SYS_RESOURCE`. On these hosts the hard
//! `RLIMIT_NOFILE` is 20000 and `CAP_SYS_RESOURCE` is not in the bounding set, so asking for more fails with
//! `EPERM`: the error then names the limit, what was asked and the host's hard limit, instead of a bare errno.
//! Apply rlimits while still root and before capabilities are dropped (see `super` for the order).

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};
use std::str::FromStr;

/// Errors from applying resource limits.
#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    /// Not an `RLIMIT_*` name.
    #[error("unknown rlimit type {0:?}")]
    Unknown(String),
    /// Soft limit above the hard one.
    #[error("{name}: soft limit {soft} is above the hard limit {hard}")]
    SoftAboveHard {
        /// Limit name, e.g. `RLIMIT_NOFILE`.
        name: &'static str,
        /// Requested soft limit.
        soft: u64,
        /// Requested hard limit.
        hard: u64,
    },
    /// Raising the hard limit was refused.
    #[error(
        "{name}: cannot raise the hard limit to {hard}: the current hard limit is {current_hard} and raising it \
         needs CAP_SYS_RESOURCE ({source})"
    )]
    AboveHard {
        /// Limit name.
        name: &'static str,
        /// Requested hard limit.
        hard: u64,
        /// The process's (host's) current hard limit.
        current_hard: u64,
        /// errno from prlimit.
        source: nix::Error,
    },
    /// Any other `prlimit` failure.
    #[error("{name}: setting soft {soft} hard {hard}: {source}")]
    Set {
        /// Limit name.
        name: &'static str,
        /// Requested soft limit.
        soft: u64,
        /// Requested hard limit.
        hard: u64,
        /// errno from prlimit.
        source: nix::Error,
    },
}

/// Parse an `RLIMIT_*` name (docker's `--ulimit nofile=` uses the lower-case suffix: `nofile` is accepted too).
pub fn parse(name: &str) -> Result<PosixRlimitType, RlimitError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("RLIMIT_") {
        upper
    } else {
        format!("RLIMIT_{upper}")
    };
    PosixRlimitType::from_str(&full).map_err(|_| RlimitError::Unknown(name.to_string()))
}

/// The kernel resource number and canonical name of a limit type.
pub fn resource(typ: PosixRlimitType) -> (libc::c_int, &'static str) {
    // libc's RLIMIT_* constants have a platform-dependent type; the values are small non-negative integers.
    #[allow(clippy::unnecessary_cast)]
    let r = |n, s| (n as libc::c_int, s);
    match typ {
        PosixRlimitType::RlimitCpu => r(libc::RLIMIT_CPU, "RLIMIT_CPU"),
        PosixRlimitType::RlimitFsize => r(libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        PosixRlimitType::RlimitData => r(libc::RLIMIT_DATA, "RLIMIT_DATA"),
        PosixRlimitType::RlimitStack => r(libc::RLIMIT_STACK, "RLIMIT_STACK"),
        PosixRlimitType::RlimitCore => r(libc::RLIMIT_CORE, "RLIMIT_CORE"),
        PosixRlimitType::RlimitRss => r(libc::RLIMIT_RSS, "RLIMIT_RSS"),
        PosixRlimitType::RlimitNproc => r(libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        PosixRlimitType::RlimitNofile => r(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        PosixRlimitType::RlimitMemlock => r(libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        PosixRlimitType::RlimitAs => r(libc::RLIMIT_AS, "RLIMIT_AS"),
        PosixRlimitType::RlimitLocks => r(libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        PosixRlimitType::RlimitSigpending => r(libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        PosixRlimitType::RlimitMsgqueue => r(libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        PosixRlimitType::RlimitNice => r(libc::RLIMIT_NICE, "RLIMIT_NICE"),
        PosixRlimitType::RlimitRtprio => r(libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        PosixRlimitType::RlimitRttime => r(libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// The calling process's (soft, hard) limit.
pub fn get(typ: PosixRlimitType) -> Result<(u64, u64), nix::Error> {
    let (res, _) = resource(typ);
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit64 on ourselves (pid 0) with a null new limit and a valid out pointer only reads.
    if unsafe { libc::prlimit64(0, res as _, std::ptr::null(), &mut old) } != 0 {
        return Err(nix::Error::last());
    }
    Ok((old.rlim_cur, old.rlim_max))
}

/// Set one limit on the calling process.
pub fn set(typ: PosixRlimitType, soft: u64, hard: u64) -> Result<(), RlimitError> {
    let (res, name) = resource(typ);
    if soft > hard {
        return Err(RlimitError::SoftAboveHard { name, soft, hard });
    }
    let new = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: prlimit64 on ourselves with a valid new limit and no old-limit pointer.
    if unsafe { libc::prlimit64(0, res as _, &new, std::ptr::null_mut()) } == 0 {
        return Ok(());
    }
    let source = nix::Error::last();
    match (source, get(typ)) {
        (nix::Error::EPERM, Ok((_, current_hard))) if hard > current_hard => {
            Err(RlimitError::AboveHard {
                name,
                hard,
                current_hard,
                source,
            })
        }
        _ => Err(RlimitError::Set {
            name,
            soft,
            hard,
            source,
        }),
    }
}

/// Apply every limit in order; the first failure stops and is returned.
pub fn apply(rlimits: &[PosixRlimit]) -> Result<(), RlimitError> {
    for rl in rlimits {
        set(rl.typ(), rl.soft(), rl.hard())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::test_util::{in_child, require_root};
    use oci_spec::runtime::PosixRlimitBuilder;

    #[test]
    fn parses_oci_and_docker_names() {
        assert_eq!(
            parse("RLIMIT_NOFILE").unwrap(),
            PosixRlimitType::RlimitNofile
        );
        assert_eq!(parse("nofile").unwrap(), PosixRlimitType::RlimitNofile);
        assert_eq!(
            parse("rlimit_rttime").unwrap(),
            PosixRlimitType::RlimitRttime
        );
        let err = parse("RLIMIT_BANANAS").unwrap_err();
        assert!(err.to_string().contains("RLIMIT_BANANAS"), "{err}");
    }

    #[test]
    fn every_type_maps_to_its_kernel_number() {
        assert_eq!(
            resource(PosixRlimitType::RlimitNofile),
            (7, "RLIMIT_NOFILE")
        );
        assert_eq!(
            resource(PosixRlimitType::RlimitRttime),
            (15, "RLIMIT_RTTIME")
        );
        assert_eq!(resource(PosixRlimitType::RlimitCpu), (0, "RLIMIT_CPU"));
        // The oci-spec JSON name round-trips through our name table.
        for n in [
            "RLIMIT_AS",
            "RLIMIT_CORE",
            "RLIMIT_MEMLOCK",
            "RLIMIT_MSGQUEUE",
            "RLIMIT_NICE",
            "RLIMIT_SIGPENDING",
        ] {
            assert_eq!(resource(parse(n).unwrap()).1, n);
        }
    }

    #[test]
    fn soft_above_hard_is_refused_before_the_kernel() {
        let err = set(PosixRlimitType::RlimitNofile, 10, 5).unwrap_err();
        assert!(matches!(err, RlimitError::SoftAboveHard { .. }), "{err}");
    }

    /// Lowering limits works for anyone; checked in a child so the harness keeps its own.
    #[test]
    fn applies_limits_in_a_child() {
        let code = in_child(|| {
            let rl = [
                PosixRlimitBuilder::default()
                    .typ(PosixRlimitType::RlimitNofile)
                    .soft(512u64)
                    .hard(1024u64)
                    .build(),
                PosixRlimitBuilder::default()
                    .typ(PosixRlimitType::RlimitCore)
                    .soft(0u64)
                    .hard(0u64)
                    .build(),
            ];
            let rl: Vec<PosixRlimit> = match rl.into_iter().collect() {
                Ok(v) => v,
                Err(_) => return 1,
            };
            if apply(&rl).is_err() {
                return 2;
            }
            match (
                get(PosixRlimitType::RlimitNofile),
                get(PosixRlimitType::RlimitCore),
            ) {
                (Ok((512, 1024)), Ok((0, 0))) => 0,
                _ => 3,
            }
        });
        assert_eq!(code, 0, "child check {code} failed");
    }

    /// Above the hard limit without CAP_SYS_RESOURCE: a clear error naming the limit and the host's hard limit.
    #[test]
    fn raising_the_hard_limit_without_cap_sys_resource_is_a_clear_error() {
        require_root!();
        let (_, host_hard) = get(PosixRlimitType::RlimitNofile).unwrap();
        let code = in_child(move || {
            // Make sure CAP_SYS_RESOURCE is gone even where the host allows it, so the outcome is certain.
            // SAFETY: PR_CAPBSET_DROP with an integer argument, in the forked child only.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, 24, 0, 0, 0) };
            let Ok((eff, perm, inh)) = crate::security::capabilities::current() else {
                return 1;
            };
            let without = !(1u64 << 24);
            if crate::security::capabilities::set(eff & without, perm & without, inh & without)
                .is_err()
            {
                return 2;
            }
            match set(PosixRlimitType::RlimitNofile, 1024, host_hard + 1) {
                Err(e @ RlimitError::AboveHard { .. })
                    if e.to_string().contains("RLIMIT_NOFILE")
                        && e.to_string().contains(&host_hard.to_string()) =>
                {
                    0
                }
                _ => 3,
            }
        });
        assert_eq!(code, 0, "child check {code} failed");
    }
}
