//! runc's "ENOSYS stub": syscalls newer than every syscall a profile names answer `ENOSYS` instead of the
//! profile's default action.
//!
//! Profiles are allow-lists written against some kernel; a syscall added later (say `fchmodat2`) is unknown to
//! them and would get the default `EPERM`, which libc reads as a real refusal, where `ENOSYS` makes it fall back
//! to the older syscall, as it would on an older kernel. runc patches this into its filters; berth prepends the
//! same check to the compiled program: per architecture, `nr > max(nr named in the profile)` returns
//! `SECCOMP_RET_ERRNO | ENOSYS`, everything else continues into libseccomp's program unchanged.
//!
//! The stub can only ever refuse (with `ENOSYS`) syscalls the profile cannot mention, so it never widens a
//! filter. x32 syscalls (the `__X32_SYSCALL_BIT` on x86_64) are left to the main program.

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

const X32_SYSCALL_BIT: u32 = 0x4000_0000;
// ENOSYS is a small positive errno.
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// `AUDIT_ARCH_*` of the architectures the stub covers.
fn audit_arch(a: ScmpArch) -> Option<u32> {
    Some(match a {
        ScmpArch::X8664 => 0xc000_003e,
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::Aarch64 => 0xc000_00b7,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Riscv64 => 0xc000_00f3,
        ScmpArch::S390X => 0x8000_0016,
        ScmpArch::S390 => 0x0000_0016,
        ScmpArch::Ppc64Le => 0xc000_0015,
        ScmpArch::Ppc64 => 0x8000_0015,
        ScmpArch::Ppc => 0x0000_0014,
        _ => return None,
    })
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    // BPF opcodes fit 16 bits by definition.
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | code | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// The highest syscall number, on `arch`, of the syscalls `seccomp` names (`None` if it names none there).
fn max_named(seccomp: &LinuxSeccomp, arch: ScmpArch) -> Option<u32> {
    seccomp
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names())
        .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
        .filter_map(|s| u32::try_from(s.as_raw_syscall()).ok())
        .max()
}

/// The stub to prepend for `arches` (those in the filter), empty when the default action already allows.
pub(super) fn stub(seccomp: &LinuxSeccomp, arches: &[ScmpArch]) -> Vec<libc::sock_filter> {
    if matches!(
        seccomp.default_action(),
        LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog
    ) {
        return Vec::new();
    }
    let blocks: Vec<(u32, u32, bool)> = arches
        .iter()
        .filter_map(|a| {
            Some((
                audit_arch(*a)?,
                max_named(seccomp, *a)?,
                *a == ScmpArch::X8664,
            ))
        })
        .collect();
    if blocks.is_empty() {
        return Vec::new();
    }
    // Block: jeq arch / ld nr / [jge x32 bit -> main] / jgt max -> ret / ret ENOSYS.
    let size = |x32: bool| if x32 { 5 } else { 4 };
    let total = 1 + blocks.iter().map(|b| size(b.2)).sum::<usize>();
    // Jump offsets are relative to the next instruction and, with at most a few blocks, far below 255.
    let to_main = |pc: usize| u8::try_from(total - (pc + 1)).unwrap_or(u8::MAX);
    let mut v = vec![stmt(
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        ARCH_OFFSET,
    )];
    for (audit, max, x32) in blocks {
        let skip = u8::try_from(size(x32) - 1).unwrap_or(0);
        v.push(jump(libc::BPF_JEQ, audit, 0, skip));
        v.push(stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR_OFFSET));
        if x32 {
            let pc = v.len();
            v.push(jump(libc::BPF_JGE, X32_SYSCALL_BIT, to_main(pc), 0));
        }
        let pc = v.len();
        v.push(jump(libc::BPF_JGT, max, 0, to_main(pc)));
        v.push(stmt(libc::BPF_RET | libc::BPF_K, RET_ENOSYS));
    }
    debug_assert_eq!(v.len(), total);
    v
}

/// The stub as bytes in native order, ready to go in front of libseccomp's exported program.
pub(super) fn stub_bytes(seccomp: &LinuxSeccomp, arches: &[ScmpArch]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in stub(seccomp, arches) {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}
