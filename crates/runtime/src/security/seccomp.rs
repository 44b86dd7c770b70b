//! seccomp: compile `linux.seccomp` with libseccomp (what runc, crun and youki use) and load it.
//!
//! Semantics follow runc:
//! - the native architecture is always in the filter; of the listed `architectures`, those the native kernel can
//!   run (x86 and x32 on x86_64, arm on aarch64, ...) are added, others are skipped with a debug log;
//! - syscall names libseccomp does not know are skipped (a profile written for a newer kernel still loads);
//! - a rule whose action equals the default action is skipped (libseccomp refuses it, and it changes nothing);
//! - conditions on distinct arguments are ANDed in one rule; when one argument is compared more than once the
//!   conditions become separate rules (ORed), as runc does;
//! - `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` without `errnoRet` return `EPERM`; `SCMP_ACT_KILL` kills the thread;
//!   `SCMP_ACT_NOTIFY` is refused: berth has no seccomp-notify listener;
//! - syscalls newer than every syscall the profile names fail with `ENOSYS` (runc's stub, `seccomp_enosys.rs`),
//!   so libc falls back to older syscalls instead of taking the default `EPERM` as a refusal.
//!
//! [`compile`] builds the libseccomp context; [`CompiledFilter`] turns it into the final BPF program (stub
//! included), which can be generated ahead of time (it is the slow part) and loaded with one syscall; [`load`]
//! does both.
//!
//! **Loading needs either `no_new_privs` or `CAP_SYS_ADMIN` in the effective set**: the filter never sets
//! no_new_privs itself (that is `process.noNewPrivileges`' job), so the caller must load it while it still has
//! `CAP_SYS_ADMIN` or after `PR_SET_NO_NEW_PRIVS`. `super::apply_process_security` gets this right.

use std::io::{Read, Seek};
use std::os::fd::FromRawFd;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

/// Errors from compiling or loading a seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// `SCMP_ACT_NOTIFY` needs a listener berth does not implement.
    #[error(
        "seccomp action SCMP_ACT_NOTIFY is not supported (no seccomp notify listener in berth)"
    )]
    NotifyUnsupported,
    /// Argument index outside 0..6.
    #[error("seccomp rule for {syscall}: argument index {index} is out of range (0-5)")]
    ArgIndex {
        /// Syscall name.
        syscall: String,
        /// The offending index.
        index: usize,
    },
    /// libseccomp refused an operation.
    #[error("seccomp: {what}: {source}")]
    Lib {
        /// What was being done.
        what: String,
        /// libseccomp's error.
        source: libseccomp::error::SeccompError,
    },
    /// The kernel refused the filter.
    #[error(
        "loading the seccomp filter failed: {0} (it needs no_new_privs or CAP_SYS_ADMIN, and a kernel with \
         seccomp filter support)"
    )]
    Load(nix::Error),
    /// Writing or reading back the compiled program failed.
    #[error("exporting the seccomp BPF program: {0}")]
    Export(std::io::Error),
    /// BPF bytes that are not a valid program size.
    #[error("invalid seccomp BPF program of {0} bytes")]
    BadProgram(usize),
}

fn lib(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    move |source| SeccompError::Lib {
        what: what.into(),
        source,
    }
}

/// The libseccomp action for an OCI action and its optional `errnoRet`.
pub fn action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
) -> Result<ScmpAction, SeccompError> {
    // seccomp's return data is 16 bits wide; larger values are truncated by the kernel anyway.
    let ret = |d: i32| errno_ret.map_or(d, |e| (e & 0xffff) as i32);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(ret(libc::EPERM)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret(libc::EPERM) as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => return Err(SeccompError::NotifyUnsupported),
    })
}

/// libseccomp's architecture for an OCI one.
pub fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
    }
}

/// Architectures whose syscalls a kernel of the `native` architecture can run (besides `native` itself).
pub fn compatible_arches(native: ScmpArch) -> &'static [ScmpArch] {
    match native {
        ScmpArch::X8664 => &[ScmpArch::X86, ScmpArch::X32],
        ScmpArch::Aarch64 => &[ScmpArch::Arm],
        ScmpArch::Mips64 => &[ScmpArch::Mips, ScmpArch::Mips64N32],
        ScmpArch::Mips64N32 => &[ScmpArch::Mips, ScmpArch::Mips64],
        ScmpArch::Mipsel64 => &[ScmpArch::Mipsel, ScmpArch::Mipsel64N32],
        ScmpArch::Mipsel64N32 => &[ScmpArch::Mipsel, ScmpArch::Mipsel64],
        ScmpArch::Ppc64 => &[ScmpArch::Ppc],
        ScmpArch::Ppc64Le => &[ScmpArch::Ppc64, ScmpArch::Ppc],
        ScmpArch::S390X => &[ScmpArch::S390],
        _ => &[],
    }
}

fn compare_op(arg: &LinuxSeccompArg) -> (ScmpCompareOp, u64) {
    match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        // OCI (like libseccomp's C API): `value` is the mask, `valueTwo` the datum the masked argument must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    }
}

fn conditions(name: &str, args: &[LinuxSeccompArg]) -> Result<Vec<ScmpArgCompare>, SeccompError> {
    args.iter()
        .map(|a| {
            if a.index() >= 6 {
                return Err(SeccompError::ArgIndex {
                    syscall: name.to_string(),
                    index: a.index(),
                });
            }
            let (op, datum) = compare_op(a);
            // Checked above: the index is below 6.
            Ok(ScmpArgCompare::new(a.index() as u32, op, datum))
        })
        .collect()
}

fn add_syscall_rule(
    ctx: &mut ScmpFilterContext,
    rule: &LinuxSyscall,
    default: ScmpAction,
) -> Result<(), SeccompError> {
    let act = action(rule.action(), rule.errno_ret())?;
    if act == default {
        return Ok(());
    }
    let args = rule.args().as_deref().unwrap_or(&[]);
    let mut seen = [0u8; 6];
    for a in args {
        if let Some(n) = seen.get_mut(a.index()) {
            *n += 1;
        }
    }
    let repeated = seen.iter().any(|&n| n > 1);
    for name in rule.names() {
        let Ok(sc) = ScmpSyscall::from_name(name) else {
            log::debug!("seccomp: skipping syscall {name:?} unknown to libseccomp");
            continue;
        };
        let conds = conditions(name, args)?;
        let what = || format!("adding rule for {name}");
        if repeated {
            for c in &conds {
                ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))
                    .map_err(lib(what()))?;
            }
        } else {
            ctx.add_rule_conditional(act, sc, &conds)
                .map_err(lib(what()))?;
        }
    }
    Ok(())
}

/// Compile `seccomp` into a libseccomp filter context (nothing is loaded yet).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompError> {
    #[cfg(test)]
    LIBSECCOMP_COMPILES.with(|n| n.set(n.get() + 1));
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("creating the filter"))?;
    // The caller owns no_new_privs (process.noNewPrivileges): libseccomp must not set it behind its back.
    ctx.set_ctl_nnp(false)
        .map_err(lib("clearing the no_new_privs control"))?;

    let native = ScmpArch::native();
    let compatible = compatible_arches(native);
    for a in seccomp.architectures().as_deref().unwrap_or(&[]) {
        let sa = arch(*a);
        if sa == ScmpArch::Native || sa == native {
            continue;
        }
        if !compatible.contains(&sa) {
            log::debug!("seccomp: skipping architecture {a} (not runnable on {native:?})");
            continue;
        }
        if !ctx.is_arch_present(sa).unwrap_or(false) {
            ctx.add_arch(sa)
                .map_err(lib(format!("adding architecture {a}")))?;
        }
    }

    for flag in seccomp.flags().as_deref().unwrap_or(&[]) {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
        }
        .map_err(lib(format!("setting flag {flag}")))?;
    }

    for rule in seccomp.syscalls().as_deref().unwrap_or(&[]) {
        add_syscall_rule(&mut ctx, rule, default)?;
    }
    Ok(ctx)
}

#[cfg(test)]
thread_local! {
    /// How many times this thread called into libseccomp to compile a profile (the cache tests count misses).
    pub(crate) static LIBSECCOMP_COMPILES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Compile and load `seccomp` into the calling process (through [`CompiledFilter`], so with runc's ENOSYS
/// stub). Needs no_new_privs or `CAP_SYS_ADMIN` (module doc).
pub fn load(seccomp: &LinuxSeccomp) -> Result<(), SeccompError> {
    CompiledFilter::compile(seccomp)?.load()
}

/// A filter compiled to classic BPF, with the `seccomp(2)` flags to load it with.
///
/// Unlike [`load`], the program starts with runc's ENOSYS stub (`seccomp_enosys.rs`): syscalls newer than any the
/// profile names fail with `ENOSYS` rather than the default action, so libc falls back to older ones.
///
/// Generating the BPF is the expensive part of seccomp (tens of milliseconds for docker's profile on three
/// x86 architectures); loading it is a single syscall. Compile once where it is cheap to do so (the daemon can
/// cache it per profile and put [`CompiledFilter::bpf`] in the bundle), then [`CompiledFilter::load`] in the
/// container child. Compiling before the child changes rlimits or user also keeps allocation failures and
/// profile errors out of the last steps before `execve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledFilter {
    bpf: Vec<u8>,
    flags: u32,
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_TSYNC: u32 = 1;
const SECCOMP_FILTER_FLAG_LOG: u32 = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: u32 = 4;

impl CompiledFilter {
    /// Compile `seccomp` (see [`compile`]) to BPF.
    pub fn compile(seccomp: &LinuxSeccomp) -> Result<Self, SeccompError> {
        let ctx = compile(seccomp)?;
        let flags = Self::flags_of(seccomp);
        // libseccomp writes the program to an fd (its in-memory export needs libseccomp 2.6): use a memfd.
        // SAFETY: memfd_create with a NUL-terminated name and valid flags.
        let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            return Err(SeccompError::Export(err));
        }
        // SAFETY: memfd_create just returned this fd and nothing else owns it.
        let mut file = std::fs::File::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        ctx.export_bpf(&file)
            .map_err(lib("exporting the BPF program"))?;
        // runc's ENOSYS stub goes first (see seccomp_enosys.rs); libseccomp's jumps are relative, so its
        // program is unaffected by being moved.
        let native = ScmpArch::native();
        let arches: Vec<ScmpArch> = std::iter::once(native)
            .chain(
                compatible_arches(native)
                    .iter()
                    .copied()
                    .filter(|a| ctx.is_arch_present(*a).unwrap_or(false)),
            )
            .collect();
        let mut bpf = enosys::stub_bytes(seccomp, &arches);
        file.seek(std::io::SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut bpf))
            .map_err(SeccompError::Export)?;
        Self::from_bpf(bpf, flags)
    }

    /// The `SECCOMP_FILTER_FLAG_*` flags `seccomp` asks for.
    pub fn flags_of(seccomp: &LinuxSeccomp) -> u32 {
        let mut flags = 0;
        for flag in seccomp.flags().as_deref().unwrap_or(&[]) {
            flags |= match flag {
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                    SECCOMP_FILTER_FLAG_SPEC_ALLOW
                }
            };
        }
        flags
    }

    /// A filter from BPF bytes (a whole number of 8-byte `struct sock_filter`s) and `SECCOMP_FILTER_FLAG_*` flags,
    /// e.g. as cached by the engine from [`CompiledFilter::bpf`] and [`CompiledFilter::flags`].
    pub fn from_bpf(bpf: Vec<u8>, flags: u32) -> Result<Self, SeccompError> {
        let insn = std::mem::size_of::<libc::sock_filter>();
        let n = bpf.len() / insn;
        if n == 0 || n * insn != bpf.len() || n > usize::from(u16::MAX) {
            return Err(SeccompError::BadProgram(bpf.len()));
        }
        Ok(Self { bpf, flags })
    }

    /// The BPF program: `struct sock_filter` instructions in native byte order.
    pub fn bpf(&self) -> &[u8] {
        &self.bpf
    }

    /// The `SECCOMP_FILTER_FLAG_*` flags it is loaded with.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Load the program into the calling process: one `seccomp(SECCOMP_SET_MODE_FILTER)`. Needs no_new_privs
    /// or `CAP_SYS_ADMIN` (module doc).
    pub fn load(&self) -> Result<(), SeccompError> {
        // Copy into properly aligned instructions: the byte buffer has no alignment guarantee.
        let insns: Vec<libc::sock_filter> = self
            .bpf
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        // Checked in from_bpf: at most u16::MAX instructions.
        let prog = libc::sock_fprog {
            len: insns.len() as u16,
            filter: insns.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `insns`, both alive across the call; the kernel copies the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        match rc {
            0 => Ok(()),
            // With TSYNC, a positive return is the id of a thread that could not be synchronized.
            r if r > 0 => Err(SeccompError::Load(nix::Error::EBUSY)),
            _ => Err(SeccompError::Load(nix::Error::last())),
        }
    }
}

#[path = "seccomp_enosys.rs"]
mod enosys;

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
