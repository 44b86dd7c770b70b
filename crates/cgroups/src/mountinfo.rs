//! Parsing `/proc/self/mountinfo` and `/proc/self/cgroup`, and finding the mounted hierarchies.
//!
//! Controllers are found from the mount table rather than assumed at `/sys/fs/cgroup/<name>`:
//! `cpu` and `cpuacct` are co-mounted as `cpu,cpuacct` on most hosts but separate on others, and
//! a container may see its hierarchies mounted with a non-`/` root.

use std::path::PathBuf;

/// Mount table / proc file problems.
#[derive(Debug, thiserror::Error)]
pub enum MountInfoError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed line in {path}: {line:?}")]
    Malformed { path: String, line: String },
}

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// The root of the mount inside its filesystem (`/` unless a subtree was bind-mounted).
    pub root: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: String,
}

/// One line of `/proc/<pid>/cgroup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcCgroup {
    pub hierarchy_id: u32,
    /// Controllers (and `name=` entries); empty for the unified hierarchy.
    pub controllers: Vec<String>,
    pub path: String,
}

/// The v1 controllers the kernel knows; anything else in a cgroup mount's super options is a
/// mount flag (`clone_children`, `xattr`, `release_agent=`...).
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// Undoes mountinfo's octal escaping of space, tab, newline and backslash.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo content.
pub fn parse_mountinfo(content: &str) -> Result<Vec<MountEntry>, MountInfoError> {
    let mut out = Vec::new();
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let malformed = || MountInfoError::Malformed {
            path: "mountinfo".into(),
            line: line.to_string(),
        };
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .ok_or_else(malformed)?;
        if sep < 6 || fields.len() < sep + 4 {
            return Err(malformed());
        }
        out.push(MountEntry {
            root: unescape(fields[3]),
            mount_point: PathBuf::from(unescape(fields[4])),
            fs_type: fields[sep + 1].to_string(),
            super_options: fields[sep + 3].to_string(),
        });
    }
    Ok(out)
}

/// Parses `/proc/<pid>/cgroup` content.
pub fn parse_proc_cgroup(content: &str) -> Result<Vec<ProcCgroup>, MountInfoError> {
    let mut out = Vec::new();
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let malformed = || MountInfoError::Malformed {
            path: "/proc/self/cgroup".into(),
            line: line.to_string(),
        };
        let mut parts = line.splitn(3, ':');
        let id = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(malformed)?;
        let ctrls = parts.next().ok_or_else(malformed)?;
        let path = parts.next().ok_or_else(malformed)?;
        out.push(ProcCgroup {
            hierarchy_id: id,
            controllers: ctrls
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            path: path.to_string(),
        });
    }
    Ok(out)
}

/// A mounted hierarchy, before a cgroup path is chosen in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mounted {
    pub v2: bool,
    /// v1: controllers from the super options; v2: filled later from `cgroup.controllers`.
    pub controllers: Vec<String>,
    pub mount_point: PathBuf,
    pub root: String,
}

/// The controllers of a v1 mount, from its super options.
pub fn v1_controllers(super_options: &str) -> Vec<String> {
    super_options
        .split(',')
        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
        .map(String::from)
        .collect()
}

/// Picks one mount per hierarchy: a v1 hierarchy is identified by its controller set, and when it
/// is mounted several times (bind mounts, a container's view) the first mount under
/// `/sys/fs/cgroup` with the widest root wins. The unified tree is the cgroup2 mount at
/// `/sys/fs/cgroup` or `/sys/fs/cgroup/unified` (or the first cgroup2 mount otherwise).
pub fn find_hierarchies(mounts: &[MountEntry]) -> Vec<Mounted> {
    let preferred = |m: &MountEntry| m.mount_point.starts_with("/sys/fs/cgroup");
    let mut out: Vec<Mounted> = Vec::new();
    let mut v2: Option<&MountEntry> = None;
    for m in mounts {
        match m.fs_type.as_str() {
            "cgroup" => {
                let ctrls = v1_controllers(&m.super_options);
                if ctrls.is_empty() {
                    continue;
                }
                let cand = Mounted {
                    v2: false,
                    controllers: ctrls,
                    mount_point: m.mount_point.clone(),
                    root: m.root.clone(),
                };
                if let Some(prev) = out.iter_mut().find(|h| h.controllers == cand.controllers) {
                    let prev_pref = prev.mount_point.starts_with("/sys/fs/cgroup");
                    if (!prev_pref && preferred(m))
                        || (prev_pref == preferred(m) && m.root.len() < prev.root.len())
                    {
                        *prev = cand;
                    }
                } else {
                    out.push(cand);
                }
            }
            "cgroup2" => {
                let better = match v2 {
                    None => true,
                    Some(p) => {
                        let canon = |e: &MountEntry| {
                            e.mount_point == std::path::Path::new("/sys/fs/cgroup")
                                || e.mount_point == std::path::Path::new("/sys/fs/cgroup/unified")
                        };
                        !canon(p) && canon(m)
                    }
                };
                if better {
                    v2 = Some(m);
                }
            }
            _ => {}
        }
    }
    if let Some(m) = v2 {
        out.push(Mounted {
            v2: true,
            controllers: Vec::new(),
            mount_point: m.mount_point.clone(),
            root: m.root.clone(),
        });
    }
    out
}

/// Reads and parses `/proc/self/mountinfo`.
pub fn self_mounts() -> Result<Vec<MountEntry>, MountInfoError> {
    let path = "/proc/self/mountinfo";
    let s = std::fs::read_to_string(path).map_err(|source| MountInfoError::Read {
        path: path.into(),
        source,
    })?;
    parse_mountinfo(&s)
}

/// Reads and parses `/proc/self/cgroup`.
pub fn self_cgroups() -> Result<Vec<ProcCgroup>, MountInfoError> {
    let path = "/proc/self/cgroup";
    let s = std::fs::read_to_string(path).map_err(|source| MountInfoError::Read {
        path: path.into(),
        source,
    })?;
    parse_proc_cgroup(&s)
}

/// This process's cgroup path in the hierarchy `h` (the line whose controller set matches, or the
/// `0::` line for v2).
pub fn own_path<'a>(own: &'a [ProcCgroup], h: &Mounted) -> Option<&'a str> {
    own.iter()
        .find(|p| {
            if h.v2 {
                p.hierarchy_id == 0 && p.controllers.is_empty()
            } else {
                let mut a = p.controllers.clone();
                let mut b = h.controllers.clone();
                a.sort();
                b.sort();
                a == b
            }
        })
        .map(|p| p.path.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEPARATE: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const COMOUNTED: &str = "\
25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw shared:14 - cgroup cgroup rw,net_cls,net_prio
99 25 0:26 /docker /mnt/cpu\\040x rw - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn separate_controllers() {
        let h = find_hierarchies(&parse_mountinfo(SEPARATE).unwrap());
        let names: Vec<_> = h.iter().map(|m| m.controllers.join(",")).collect();
        assert_eq!(names, ["cpu", "cpuacct", "memory", "name=systemd", ""]);
        assert!(h[4].v2);
        assert_eq!(h[4].mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn comounted_controllers_and_escapes() {
        let mounts = parse_mountinfo(COMOUNTED).unwrap();
        assert_eq!(mounts[4].mount_point, PathBuf::from("/mnt/cpu x"));
        assert_eq!(mounts[4].root, "/docker");
        let h = find_hierarchies(&mounts);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].controllers, ["cpu", "cpuacct"]);
        // The bind mount with a narrower root does not replace the canonical mount.
        assert_eq!(
            h[0].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(h[1].controllers, ["net_cls", "net_prio"]);
        assert!(h[2].v2);
    }

    #[test]
    fn pure_v2() {
        let m =
            "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let h = find_hierarchies(&parse_mountinfo(m).unwrap());
        assert_eq!(h.len(), 1);
        assert!(h[0].v2);
        assert_eq!(h[0].mount_point, PathBuf::from("/sys/fs/cgroup"));
    }

    #[test]
    fn proc_cgroup_lines() {
        let own = parse_proc_cgroup(
            "4:memory:/process_api/abc\n2:cpu,cpuacct:/\n9:name=systemd:/x\n0::/user.slice\n",
        )
        .unwrap();
        assert_eq!(own[1].controllers, ["cpu", "cpuacct"]);
        let cpu = Mounted {
            v2: false,
            controllers: vec!["cpuacct".into(), "cpu".into()],
            mount_point: "/x".into(),
            root: "/".into(),
        };
        assert_eq!(own_path(&own, &cpu), Some("/"));
        let uni = Mounted {
            v2: true,
            controllers: vec![],
            mount_point: "/u".into(),
            root: "/".into(),
        };
        assert_eq!(own_path(&own, &uni), Some("/user.slice"));
        assert!(parse_proc_cgroup("garbage\n").is_err());
        assert!(parse_mountinfo("1 2 3\n").is_err());
    }
}
