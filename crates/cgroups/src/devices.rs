//! cgroup v2 device control: an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the
//! cgroup, since v2 has no devices.allow/deny files (runc's `devicefilter`).
//!
//! The program sees `(access << 16 | type, major, minor)` for every device access and returns 1
//! to allow. Rules are checked last to first (in the spec later rules override earlier ones), and
//! an access no rule matches is allowed, which is what a fresh v1 devices cgroup does too (Docker
//! always starts its list with "deny all").
//!
//! It is attached with `BPF_F_ALLOW_MULTI`, so programs of ancestors and of the container's own
//! sub-cgroups all run and all must allow: a container cannot widen its device access by
//! attaching a permissive program below. Re-applying attaches the new program first and then
//! detaches the old ones, so there is no window without a filter.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// eBPF device filter failures.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot open cgroup {}: {source}", dir.display())]
    Open {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("bpf({cmd}) failed for {}: {source}{}", dir.display(), if log.is_empty() { String::new() } else { format!("; verifier: {log}") })]
    Bpf {
        cmd: &'static str,
        dir: PathBuf,
        source: std::io::Error,
        log: String,
    },
    #[error("invalid device access {0:?} (expected letters from \"rwm\")")]
    Access(String),
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}
// Opcodes used: BPF_LDX|BPF_MEM|BPF_W, ALU32 AND/RSH/MOV (imm and reg), ALU64 MOV imm, JNE imm,
// EXIT.
const LDX_W: u8 = 0x61;
const AND32_K: u8 = 0x54;
const RSH32_K: u8 = 0x74;
const MOV32_X: u8 = 0xbc;
const MOV64_K: u8 = 0xb7;
const JNE_K: u8 = 0x55;
const EXIT: u8 = 0x95;

fn access_mask(access: &str) -> Result<i32, DeviceError> {
    let mut m = 0;
    for c in access.chars() {
        m |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return Err(DeviceError::Access(access.to_string())),
        };
    }
    Ok(m)
}

/// Compiles OCI device rules into a program.
pub fn compile(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, DeviceError> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),        // r2 = ctx->access_type
        insn(AND32_K, 2, 0, 0, 0xffff), // r2 = device type
        insn(LDX_W, 3, 1, 0, 0),        // r3 = ctx->access_type
        insn(RSH32_K, 3, 0, 0, 16),     // r3 = access bits
        insn(LDX_W, 4, 1, 4, 0),        // r4 = major
        insn(LDX_W, 5, 1, 8, 0),        // r5 = minor
    ];
    for r in rules.iter().rev() {
        let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            // The device cgroup only ever sees block and char devices.
            LinuxDeviceType::P => continue,
        };
        let access = match r.access().as_deref() {
            None | Some("") => 7,
            Some(a) => access_mask(a)?,
        };
        // A jump target of "next rule" is patched once the block length is known.
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps = Vec::new();
        if let Some(t) = typ {
            jumps.push(block.len());
            block.push(insn(JNE_K, 2, 0, 0, t));
        }
        if access != 7 {
            // Match only if every requested bit is in the rule (runc's semantics).
            block.push(insn(MOV32_X, 1, 3, 0, 0));
            block.push(insn(AND32_K, 1, 0, 0, !access & 7));
            jumps.push(block.len());
            block.push(insn(JNE_K, 1, 0, 0, 0));
        }
        for (reg, v) in [(4u8, r.major()), (5u8, r.minor())] {
            if let Some(v) = v.filter(|&v| v >= 0) {
                jumps.push(block.len());
                block.push(insn(JNE_K, reg, 0, 0, v as i32));
            }
        }
        block.push(insn(MOV64_K, 0, 0, 0, i32::from(r.allow())));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let n = block.len();
        for j in &jumps {
            block[*j].off = (n - 1 - j) as i16;
        }
        p.extend(block);
        if jumps.is_empty() {
            // Matches everything: earlier rules are unreachable, and the verifier rejects
            // unreachable instructions.
            return Ok(p);
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 1));
    p.push(insn(EXIT, 0, 0, 0, 0));
    Ok(p)
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i64> {
    // SAFETY: attr is a properly initialised #[repr(C)] bpf_attr prefix that lives for the call,
    // and the size passed is its size; the kernel zero-extends shorter attrs.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: fd was just returned by the kernel for us and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn load(prog: &[Insn], dir: &Path) -> Result<OwnedFd, DeviceError> {
    let license = c"Apache";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..12].copy_from_slice(b"berth_devcg\0");
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(source) => {
            // Load again with the verifier log so the error says why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr).map(owned);
            let end = log.iter().position(|&b| b == 0).unwrap_or(0);
            let log = String::from_utf8_lossy(&log[..end])
                .trim()
                .replace('\n', "; ");
            Err(DeviceError::Bpf {
                cmd: "BPF_PROG_LOAD",
                dir: dir.into(),
                source,
                log,
            })
        }
    }
}

/// The ids of the device programs attached directly to the cgroup.
fn query(cg: &OwnedFd, dir: &Path) -> Result<Vec<u32>, DeviceError> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|source| DeviceError::Bpf {
        cmd: "BPF_PROG_QUERY",
        dir: dir.into(),
        source,
        log: String::new(),
    })?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Installs `rules` as the device filter of the v2 cgroup `dir`, replacing any filter attached
/// there before.
pub fn apply_bpf(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), DeviceError> {
    let prog = compile(rules)?;
    let prog_fd = load(&prog, dir)?;
    let cg = std::fs::File::open(dir).map_err(|source| DeviceError::Open {
        dir: dir.into(),
        source,
    })?;
    let cg: OwnedFd = cg.into();
    let old = query(&cg, dir)?;
    let err = |cmd, source| DeviceError::Bpf {
        cmd,
        dir: dir.into(),
        source,
        log: String::new(),
    };
    let mut attr = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| err("BPF_PROG_ATTACH", e))?;
    for id in old {
        let mut g = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let old_fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut g) {
            Ok(fd) => owned(fd),
            // Detached concurrently.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(err("BPF_PROG_GET_FD_BY_ID", e)),
        };
        let mut d = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match bpf(BPF_PROG_DETACH, &mut d) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(err("BPF_PROG_DETACH", e)),
        }
    }
    Ok(())
}

/// The number of device programs attached directly to `dir` (for tests and diagnostics).
pub fn attached_count(dir: &Path) -> Result<usize, DeviceError> {
    let cg = std::fs::File::open(dir).map_err(|source| DeviceError::Open {
        dir: dir.into(),
        source,
    })?;
    Ok(query(&cg.into(), dir)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(acc);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    #[test]
    fn compiles_docker_like_rules() {
        let rules = [
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            rule(true, LinuxDeviceType::C, Some(136), None, "rw"),
        ];
        let p = compile(&rules).unwrap();
        // Header 6, pts rule: type, access(3), major, mov, exit = 7; null rule: type, major,
        // minor, mov, exit = 5; deny-all: mov, exit = 2, and no default after it.
        assert_eq!(p.len(), 6 + 7 + 5 + 2);
        assert_eq!(p[6], insn(JNE_K, 2, 0, 6, DEV_CHAR));
        assert_eq!(p[8], insn(AND32_K, 1, 0, 0, ACC_MKNOD));
        assert_eq!(p.last().unwrap().code, EXIT);
        assert_eq!(p[p.len() - 2], insn(MOV64_K, 0, 0, 0, 0));
        // Without a catch-all, the default is allow.
        let p = compile(&rules[1..]).unwrap();
        assert_eq!(p[p.len() - 2], insn(MOV64_K, 0, 0, 0, 1));
        assert!(compile(&[rule(true, LinuxDeviceType::C, None, None, "rx")]).is_err());
    }
}
