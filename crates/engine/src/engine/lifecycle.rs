//! Running containers: `start` (bundle, etc files, the monitor process and its sync pipe), the exit watcher
//! (a pidfd per monitor), `--rm`, and re-attaching to monitors that outlived a previous berthd.

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::unix::AsyncFd;

use super::{internal, Engine, EngineError, Result};
use crate::record::{
    now_rfc3339, read_json, write_json_sync, Container, Durability, MonitorStatus, ZERO_TIME,
};

impl Engine {
    /// Writes /etc/hostname, /etc/hosts and /etc/resolv.conf for the container.
    fn write_etc_files(&self, c: &Container) -> Result<()> {
        let hostname = c.config["Hostname"].as_str().unwrap_or("localhost");
        let host_net = c.host_config["NetworkMode"] == "host";
        fs::write(&c.hostname_path, format!("{hostname}\n")).map_err(internal)?;
        let hosts = if host_net {
            fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
            )
        };
        let mut hosts = hosts;
        for (name, ip) in crate::net::extra_hosts(&c.host_config, None).unwrap_or_default() {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
        fs::write(&c.hosts_path, hosts).map_err(internal)?;
        let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = if host_net {
            host_resolv
        } else if self.networks().is_some() {
            berth_network::resolv_conf(
                &host_resolv,
                self.net_uses_embedded_dns(c),
                &super::network::dns_settings(&c.host_config),
            )
        } else {
            container_resolv_conf(&host_resolv)
        };
        fs::write(&c.resolv_conf_path, resolv).map_err(internal)?;
        Ok(())
    }

    fn cgroup_v2_only() -> bool {
        Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    }

    /// Starts one run of the container (a manual `start` or a restart policy's, see [`super::restart`]).
    pub(super) async fn start_run(self: &Arc<Self>, key: &str) -> Result<()> {
        let c = self.get(key)?;
        if c.state.running {
            return Err(EngineError::NotModified("container already started".into()));
        }
        let (c, joined_netns) = self.join_container_net(c)?;
        let img = self
            .images
            .resolve(&c.image)
            .map_err(|e| EngineError::Internal(format!("image of container: {e}")))?;
        let layer = berth_storage::RwLayer::new(
            &self.cfg.data_root,
            &c.id,
            self.images.container_lower_dirs(&img)?,
        )
        .map_err(internal)?;
        layer.create().map_err(internal)?;
        let rootfs = layer.mount().map_err(internal)?;
        if joined_netns.is_none() {
            // A container:<x> container uses x's files; they are x's to write.
            self.write_etc_files(&c)?;
        }
        let mut argv = vec![c.path.clone()];
        argv.extend(c.args.iter().cloned());
        let mut env: Vec<String> = vec![format!(
            "HOSTNAME={}",
            c.config["Hostname"].as_str().unwrap_or("")
        )];
        if c.config["Tty"].as_bool().unwrap_or(false) {
            env.push("TERM=xterm".into());
        }
        env.extend(
            c.config["Env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from)),
        );
        let dir = Container::dir(&self.cfg.data_root, &c.id);
        let spec = crate::spec::build(
            &crate::spec::SpecInput {
                id: &c.id,
                rootfs: &rootfs,
                args: &argv,
                env: &env,
                hostname: c.config["Hostname"].as_str().unwrap_or(""),
                etc_files: [
                    Path::new(&c.hostname_path),
                    Path::new(&c.hosts_path),
                    Path::new(&c.resolv_conf_path),
                ],
                cgroup_v2: Self::cgroup_v2_only(),
            },
            &c.config,
            &c.host_config,
        );
        let spec = match spec {
            Ok(mut s) => {
                if let Some(p) = &joined_netns {
                    super::container_net::set_netns_path(&mut s, p);
                }
                s
            }
            Err(e) => {
                let _ = layer.unmount();
                return Err(EngineError::InvalidParameter(e.to_string()));
            }
        };
        // Mounts are re-made from the record on every start (restarts included).
        let mut spec = spec;
        if let Err(e) = self.add_user_mounts(&c, &rootfs, &mut spec) {
            let _ = layer.unmount();
            return Err(e);
        }
        if c.host_config["Init"].as_bool().unwrap_or(false) {
            match crate::init::install(&self.cfg.exec_root) {
                Ok(p) => crate::init::apply(&mut spec, &p),
                Err(e) => {
                    let _ = layer.unmount();
                    return Err(internal(e));
                }
            }
        }
        // Re-made at every start: nothing needs it after a power loss (record.rs).
        write_json_sync(&dir.join("config.json"), &spec, Durability::None).map_err(internal)?;
        let plan = match self.net_plan(&c) {
            Ok(p) => p,
            Err(e) => {
                let _ = layer.unmount();
                return Err(e);
            }
        };
        crate::net::write_plan(&dir, plan.as_ref()).map_err(internal)?;
        let _ = fs::remove_file(MonitorStatus::path(&self.cfg.data_root, &c.id));
        let (monitor_pid, sync_r) = self.spawn_monitor(&c.id)?;
        self.update(&c.id, |c| {
            c.monitor_pid = monitor_pid;
            c.state.error.clear();
            c.state.exit_code = 0;
            c.state.oom_killed = false;
            c.state.finished_at = ZERO_TIME.into();
        })?;
        self.watch_monitor(c.id.clone(), monitor_pid);
        let reply = tokio::task::spawn_blocking(move || {
            let mut f = fs::File::from(sync_r);
            let mut s = String::new();
            let _ = f.read_to_string(&mut s);
            s
        })
        .await
        .map_err(internal)?;
        let reply = reply.trim();
        if reply == "ok" || reply.starts_with("ok ") {
            // `ok PID STARTED_AT` (an older monitor: just `ok`, the rest in monitor.json).
            let st = match reply.strip_prefix("ok ").and_then(|r| r.split_once(' ')) {
                Some((pid, at)) => MonitorStatus {
                    pid: pid.parse().unwrap_or(0),
                    started_at: at.to_string(),
                    ..Default::default()
                },
                None => {
                    read_json(&MonitorStatus::path(&self.cfg.data_root, &c.id)).unwrap_or_default()
                }
            };
            // The monitor may already have finished (a very short-lived container, maybe even auto-removed):
            // the exit watcher recorded that, so only mark running when the monitor is still there.
            // A --rm container's "running" stays in memory: whatever berthd finds after a crash, it removes
            // a --rm container whose monitor is gone (on_monitor_exit).
            let res = self.update_as(&c.id, !c.auto_remove(), |c| {
                if st.exit_code.is_none() && c.monitor_pid == monitor_pid {
                    c.state.restarting = false;
                    c.state.running = true;
                    c.state.status = "running".into();
                    c.state.pid = st.pid;
                    c.state.started_at = st.started_at.clone();
                }
            });
            match res {
                Ok(_) | Err(EngineError::NoSuchContainer(_)) => {
                    self.container_event(&c, "start", json!({}));
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            let msg = reply
                .trim()
                .strip_prefix("error: ")
                .unwrap_or("monitor exited before starting the container");
            // Go spells errno texts in lower case, and the docker CLI matches them that way to pick its exit
            // code (127 for a missing executable, 126 for a permission problem).
            let msg = msg
                .replace("No such file or directory", "no such file or directory")
                .replace("Permission denied", "permission denied");
            let code = if msg.contains("not found") || msg.contains("no such file") {
                127
            } else if msg.contains("permission denied") {
                126
            } else {
                128
            };
            let res = self.update(&c.id, |c| {
                c.state.error = msg.clone();
                c.state.exit_code = code;
            });
            // A --rm container may be gone already (the exit watcher removed it): the start error still is
            // the answer.
            match res {
                Ok(_) | Err(EngineError::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
            if code == 128 {
                Err(EngineError::Internal(msg))
            } else {
                Err(EngineError::InvalidParameter(msg))
            }
        }
    }

    /// Spawns `berth monitor` detached (own session, stdio on /dev/null), returning its pid and the read end of
    /// its sync pipe.
    fn spawn_monitor(&self, id: &str) -> Result<(i32, OwnedFd)> {
        let (sync_r, sync_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(internal)?;
        // From a sealed view of the binary kept by the daemon: the monitor starts sealed (CVE-2019-5736).
        let mut cmd = crate::monitor::spawn::command(&self.cfg.berth_binary);
        cmd.arg("monitor")
            .arg("--data-root")
            .arg(&self.cfg.data_root)
            .arg("--exec-root")
            .arg(&self.cfg.exec_root)
            .arg("--id")
            .arg(id)
            .arg("--runtime")
            .arg(&self.cfg.runtime)
            .arg("--sync-fd")
            .arg("3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The monitor's steady state runs in the small `berth-shim` when it is installed.
        crate::monitor::spawn::pass_shim(&mut cmd, &self.cfg.berth_binary);
        let w = sync_w.as_raw_fd();
        // SAFETY: only async-signal-safe calls (setsid, dup2, fcntl) run between fork and exec, and `w` stays
        // open in the parent until after spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if w == 3 {
                    // dup2 onto itself keeps FD_CLOEXEC; clear it by hand.
                    if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(w, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            EngineError::Internal(format!(
                "starting monitor {}: {e}",
                self.cfg.berth_binary.display()
            ))
        })?;
        drop(sync_w);
        Ok((child.id() as i32, sync_r))
    }

    /// Watches a monitor (our child or adopted after a restart) with a pidfd and records the exit when it dies.
    fn watch_monitor(self: &Arc<Self>, id: String, pid: i32) {
        let engine = Arc::clone(self);
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if fd < 0 {
            // Already gone (and reaped). The cleanup blocks (see below): not on this async caller's thread.
            tokio::task::spawn_blocking(move || engine.on_monitor_exit(&id, pid));
            return;
        }
        // SAFETY: fd is a fresh pidfd that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
        tokio::spawn(async move {
            // SAFETY: the AsyncFd owns the pidfd, so the fd stays open for as long as it is registered.
            let registered = unsafe { AsyncFd::register(pidfd) };
            if let Ok(afd) = registered {
                let _ = afd.readable().await;
            } else {
                // No reactor registration: fall back to polling for the pid to vanish.
                while Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            // The cleanup deletes the runtime state (which SIGKILLs and waits out what is left in the cgroup:
            // up to seconds when a monitor died with its container still running), detaches the network
            // (ip/nft) and unmounts the rootfs: blocking work, kept off the async worker threads so the API
            // keeps answering meanwhile.
            let _ = tokio::task::spawn_blocking(move || engine.on_monitor_exit(&id, pid)).await;
        });
    }

    /// The cleanup after a run that needs no process of its own (berth-shim exits after recording the exit
    /// instead of re-executing the full `berth monitor --finish`, which cost an exec and the page faults of a
    /// large binary on the critical path of `run --rm`): the builtin runtime's state and cgroup (and any
    /// process left in it), the network endpoints, the rootfs mount. A monitor that finished itself (a
    /// runtime CLI, or a monitor that never handed over) has done all this already; then it costs a few
    /// failed lookups. Done before the exit is published, so a start that follows cannot lose its new state.
    fn cleanup_run(&self, id: &str) {
        self.delete_runtime(id);
        self.release_run(id);
    }

    /// The builtin runtime's state and cgroup of a finished run (and any process left in it).
    fn delete_runtime(&self, id: &str) {
        if self.cfg.runtime.split_whitespace().next() == Some("builtin") {
            match berth_runtime::delete(&self.cfg.exec_root.join("runtime"), id, true) {
                Ok(()) | Err(berth_runtime::RuntimeError::NotFound(_)) => {}
                Err(e) => log::warn!("container {id}: deleting its runtime state: {e}"),
            }
        }
    }

    /// The network endpoints and the rootfs mount of a finished run.
    fn release_run(&self, id: &str) {
        if let Some(m) = self.networks() {
            let _ = m.detach_all(id);
        }
        if let Ok(l) = berth_storage::RwLayer::open(&self.cfg.data_root, id) {
            let _ = l.unmount();
        }
    }

    /// Records a finished run from monitor.json, and removes the container if AutoRemove.
    fn on_monitor_exit(self: &Arc<Self>, id: &str, pid: i32) {
        // Reap it if it is our child; a monitor adopted after a restart is not, and that is fine.
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        // Only the current monitor's leftovers are ours to clean (a stale watcher must not touch a new run).
        let Ok(cur) = self.get(id) else {
            // Removed while its monitor ran (`rm -f` during the start): nothing is left to record, but its
            // runtime state and cgroups are still there, and no other container has its id.
            self.delete_runtime(id);
            return;
        };
        if cur.monitor_pid != pid {
            return;
        }
        // A --rm container never starts again (it cannot have a restart policy), so its runtime state and
        // cgroups can go after the removal that `run --rm` waits for; the rootfs must be unmounted before.
        let auto = cur.auto_remove();
        if auto {
            self.release_run(id);
        } else {
            self.cleanup_run(id);
        }
        let st: MonitorStatus =
            read_json(&MonitorStatus::path(&self.cfg.data_root, id)).unwrap_or_default();
        let mut again = None;
        // A --rm container's exit is not written: its removal follows (at the next start of berthd if it
        // crashes first, from the monitor pid still on disk).
        let persist = !cur.auto_remove();
        let Ok(c) = self.update_as(id, persist, |c| {
            if c.monitor_pid != pid {
                return;
            }
            // A run berthd saw start counts too: a monitor killed in its first moments has not written
            // monitor.json yet, and its container did run (its exit code is unknown: 255).
            let was_started = st.pid != 0 || c.state.running;
            c.monitor_pid = 0;
            c.state.running = false;
            c.state.paused = false;
            c.state.pid = 0;
            // A restart policy decides again below, for runs that did start.
            c.state.restarting = false;
            c.state.status = if was_started || c.state.status != "created" {
                "exited".into()
            } else {
                "created".into()
            };
            if was_started {
                c.state.status = "exited".into();
                c.state.exit_code = st.exit_code.unwrap_or(255);
                c.state.finished_at = st.finished_at.clone().unwrap_or_else(now_rfc3339);
                c.state.oom_killed = st.oom_killed;
                if c.state.started_at == ZERO_TIME || c.state.started_at.is_empty() {
                    c.state.started_at = st.started_at.clone();
                }
                c.exits += 1;
                // Before the new state is published (the table lock is held here): a `stop` waiting for the
                // exit answers, and logs its `stop` event, only after this `die`, in docker's order.
                let ran = super::restart::secs_between(&c.state.started_at, &c.state.finished_at);
                self.container_event(
                    c,
                    "die",
                    json!({
                        "exitCode": c.state.exit_code.to_string(),
                        "execDuration": ran.as_secs().to_string(),
                    }),
                );
                again = self.decide_restart(c);
            } else if let Some(e) = &st.error {
                c.state.error = e.clone();
                c.state.exit_code = st.exit_code.unwrap_or(128);
                c.state.status = "exited".into();
                c.state.finished_at = st.finished_at.clone().unwrap_or_else(now_rfc3339);
                c.exits += 1;
            }
        }) else {
            if auto {
                self.delete_runtime(id);
            }
            return;
        };
        if let Some((delay, generation)) = again {
            self.schedule_restart(c.id.clone(), delay, generation);
        } else if c.host_config["AutoRemove"].as_bool().unwrap_or(false) && !c.state.running {
            self.auto_remove(c.id.clone());
        }
        if auto {
            self.delete_runtime(id);
        }
    }

    /// `--rm`: removes the container after its run (files that cannot be deleted are logged; the container is
    /// gone from the API either way, so `wait?condition=removed` returns).
    pub(super) fn auto_remove(&self, id: String) {
        if let Ok(c) = self.get(&id) {
            if !c.state.running && c.monitor_pid == 0 {
                // docker's --rm takes the anonymous volumes along; before the record goes, so that a client
                // waiting for the removal sees them gone too.
                self.remove_anonymous_volumes(&c.mount_points, Some(&c.id));
                let _ = self.remove_now(&c);
            }
        }
    }

    /// Re-reads containers from disk after a (re)start of berthd.
    pub(super) fn recover(self: &Arc<Self>) {
        let Ok(rd) = fs::read_dir(self.cfg.data_root.join("containers")) else {
            return;
        };
        let mut watch = Vec::new();
        {
            let mut t = self.table();
            for e in rd.flatten() {
                let Some(id) = e.file_name().to_str().map(String::from) else {
                    continue;
                };
                let Ok(c) = Container::load(&self.cfg.data_root, &id) else {
                    log::warn!("skipping unreadable container record {id}");
                    continue;
                };
                if c.monitor_pid != 0 {
                    watch.push((id.clone(), c.monitor_pid));
                }
                t.insert(id, c);
            }
        }
        watch.extend(self.adopt_unrecorded_monitors());
        for (id, pid) in watch {
            if monitor_alive(pid, &id) {
                // Catch up with a start that finished while we were away.
                let st: MonitorStatus =
                    read_json(&MonitorStatus::path(&self.cfg.data_root, &id)).unwrap_or_default();
                let res = self.update(&id, |c| {
                    if st.pid != 0 && st.exit_code.is_none() {
                        c.state.running = true;
                        c.state.status = "running".into();
                        c.state.pid = st.pid;
                        c.state.started_at = st.started_at.clone();
                    }
                });
                if res.is_ok_and(|c| !c.state.running) && st.exit_code.is_none() {
                    // berthd died before the monitor answered, and the monitor has not recorded the start
                    // yet either: adopt.rs.
                    self.follow_start(id.clone(), pid);
                }
                self.watch_monitor(id, pid);
            } else {
                let _ = self.update(&id, |c| {
                    // Without the monitor's record we know only that it is gone.
                    c.state.exit_code = 255;
                });
                self.on_monitor_exit(&id, pid);
            }
        }
        // A --rm container that ran and whose removal a crash cut short (the others went through
        // on_monitor_exit above): docker removes those at its start too.
        let stopped: Vec<String> = self
            .all()
            .into_iter()
            .filter(|c| c.auto_remove() && c.monitor_pid == 0 && c.state.status == "exited")
            .map(|c| c.id)
            .collect();
        for id in stopped {
            self.auto_remove(id);
        }
    }
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Whether `pid` is a live `berth monitor` for `id` (and not a recycled pid).
pub(super) fn monitor_alive(pid: i32, id: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    !is_zombie(pid) && args.iter().any(|a| *a == b"monitor") && args.contains(&id.as_bytes())
}

/// resolv.conf for a container with its own network namespace: the host's, minus loopback resolvers (they are
/// unreachable from there); docker's public fallbacks when none remain.
pub fn container_resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for l in host.lines() {
        let mut f = l.split_whitespace();
        if f.next() == Some("nameserver") {
            let ip = f.next().unwrap_or("");
            if ip.starts_with("127.") || ip == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(l);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv() {
        let r = container_resolv_conf("search x\nnameserver 127.0.0.53\n");
        assert_eq!(r, "search x\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let r = container_resolv_conf("nameserver 10.0.0.1\nnameserver ::1\n");
        assert_eq!(r, "nameserver 10.0.0.1\n");
    }
}
