//! Persistent network state and IPAM: `<data-root>/network/state.json`, written atomically (temp file, fsync,
//! rename, fsync of the directory) and read-modify-written under an exclusive `flock` on
//! `<data-root>/network/lock`, so the daemon and the per-container monitors can all use it and allocations
//! survive restarts and crashes.
//!
//! IPAM is derived from the state itself: an address is allocated exactly when an endpoint record holds it, so
//! there is no separate bitmap that could drift from the endpoints.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::ports::PortMapping;
use crate::subnet::Ipv4Net;

/// Errors from loading and saving state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing a state file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The state file is not valid JSON for this version.
    #[error("{path}: corrupt network state: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// A bridge network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Network {
    /// 64-hex id.
    pub id: String,
    /// Unique name (`bridge` for the default network).
    pub name: String,
    /// Always `bridge`.
    pub driver: String,
    /// Bridge device name (`berth0`, `br-<id12>`, or the `com.docker.network.bridge.name` option).
    pub bridge: String,
    /// Subnet (network address form).
    pub subnet: Ipv4Net,
    /// Gateway address, on the bridge.
    pub gateway: Ipv4Addr,
    /// No NAT and no forwarding in or out of the bridge.
    pub internal: bool,
    /// Whether this is the default bridge (no embedded DNS there, like docker).
    pub default: bool,
    /// Driver options as given.
    pub options: BTreeMap<String, String>,
    /// Labels as given.
    pub labels: BTreeMap<String, String>,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// Attached containers, by container id.
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// A container's attachment to a network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// 64-hex endpoint id (docker's `EndpointID`).
    #[serde(default)]
    pub id: String,
    /// Network id.
    pub network_id: String,
    /// Network name.
    pub network_name: String,
    /// Container id.
    pub container_id: String,
    /// Names the embedded DNS answers for this container on this network (name, aliases, short id).
    pub aliases: Vec<String>,
    /// Container address.
    pub ip: Ipv4Addr,
    /// Prefix length of the subnet.
    pub prefix: u8,
    /// MAC address, `02:42:` followed by the address bytes like docker.
    pub mac: String,
    /// Gateway (also set as default route if the container had none).
    pub gateway: Ipv4Addr,
    /// Host-side veth name.
    pub veth: String,
    /// Interface name inside the container (`eth0`, ...).
    pub ifname: String,
    /// Published ports.
    pub ports: Vec<PortMapping>,
}

impl Network {
    /// The lowest free host address, or `requested` if it is usable; `None` when exhausted or unusable.
    pub fn allocate(&self, requested: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        let used = |ip: Ipv4Addr| ip == self.gateway || self.endpoints.values().any(|e| e.ip == ip);
        if let Some(ip) = requested {
            return (self.subnet.is_host(ip) && !used(ip)).then_some(ip);
        }
        (self.subnet.first()..=self.subnet.last())
            .map(Ipv4Addr::from)
            .find(|ip| self.subnet.is_host(*ip) && !used(*ip))
    }
}

/// Everything persisted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Networks by id.
    pub networks: BTreeMap<String, Network>,
}

impl State {
    /// Finds a network by id, unique id prefix, or name (docker's lookup order: exact id, name, prefix).
    pub fn find(&self, key: &str) -> Option<&Network> {
        self.networks
            .get(key)
            .or_else(|| self.networks.values().find(|n| n.name == key))
            .or_else(|| {
                let mut m = self
                    .networks
                    .values()
                    .filter(|n| !key.is_empty() && n.id.starts_with(key));
                match (m.next(), m.next()) {
                    (Some(n), None) => Some(n),
                    _ => None,
                }
            })
    }
}

/// The state directory with its lock.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

/// Holds the exclusive lock until dropped.
#[derive(Debug)]
pub struct Locked {
    _file: File,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Store {
    /// Uses (and creates) `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the exclusive lock (blocks while another process holds it).
    pub fn lock(&self) -> Result<Locked, StateError> {
        let path = self.dir.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.lock().map_err(io_err(&path))?;
        Ok(Locked { _file: f })
    }

    /// Loads the state; a missing file is the empty state.
    pub fn load(&self, _lock: &Locked) -> Result<State, StateError> {
        let path = self.dir.join("state.json");
        match fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|source| StateError::Corrupt { path, source })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(StateError::Io { path, source: e }),
        }
    }

    /// Saves the state atomically.
    pub fn save(&self, lock: &Locked, state: &State) -> Result<(), StateError> {
        self.write(lock, state, true)
    }

    /// Saves an endpoint change (attach, detach, ports) atomically but without fsync: endpoints only matter
    /// while the running kernel and its containers live, and after a power loss every endpoint is stale and
    /// pruned at daemon start anyway, so durability buys nothing there and costs two fsyncs per `run`.
    pub fn save_endpoints(&self, lock: &Locked, state: &State) -> Result<(), StateError> {
        self.write(lock, state, false)
    }

    fn write(&self, _lock: &Locked, state: &State, durable: bool) -> Result<(), StateError> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec_pretty(state).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&data).map_err(io_err(&tmp))?;
        if !durable {
            return fs::rename(&tmp, &path).map_err(io_err(&path));
        }
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }

    /// Deletes the state file (uninstall/cleanup).
    pub fn remove(&self, _lock: &Locked) -> Result<(), StateError> {
        let path = self.dir.join("state.json");
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(StateError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Network {
        Network {
            id: "a".repeat(64),
            name: "n".into(),
            driver: "bridge".into(),
            bridge: "b".into(),
            subnet: "10.9.0.0/29".parse().unwrap(),
            gateway: "10.9.0.1".parse().unwrap(),
            internal: false,
            default: false,
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
            created: 0,
            endpoints: BTreeMap::new(),
        }
    }

    fn ep(ip: Ipv4Addr) -> Endpoint {
        Endpoint {
            id: String::new(),
            network_id: String::new(),
            network_name: String::new(),
            container_id: ip.to_string(),
            aliases: vec![],
            ip,
            prefix: 29,
            mac: String::new(),
            gateway: "10.9.0.1".parse().unwrap(),
            veth: String::new(),
            ifname: "eth0".into(),
            ports: vec![],
        }
    }

    #[test]
    fn allocation_and_persistence() {
        let mut n = net();
        let mut got = vec![];
        while let Some(ip) = n.allocate(None) {
            n.endpoints.insert(ip.to_string(), ep(ip));
            got.push(ip.to_string());
        }
        // .0 network, .1 gateway, .7 broadcast are never handed out.
        assert_eq!(
            got,
            ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
        );
        n.endpoints.remove("10.9.0.4");
        assert_eq!(n.allocate(None), Some("10.9.0.4".parse().unwrap()));
        assert_eq!(
            n.allocate(Some("10.9.0.2".parse().unwrap())),
            None,
            "in use"
        );
        assert_eq!(
            n.allocate(Some("10.9.0.1".parse().unwrap())),
            None,
            "gateway"
        );
        assert_eq!(
            n.allocate(Some("10.9.1.2".parse().unwrap())),
            None,
            "outside"
        );

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let l = store.lock().unwrap();
        assert_eq!(store.load(&l).unwrap(), State::default());
        let mut s = State::default();
        s.networks.insert(n.id.clone(), n.clone());
        store.save(&l, &s).unwrap();
        drop(l);
        let store2 = Store::open(dir.path()).unwrap();
        let l = store2.lock().unwrap();
        let back = store2.load(&l).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.find("n").map(|n| n.id.as_str()), Some(n.id.as_str()));
        assert!(back.find("aaaa").is_some() && back.find("b").is_none());
        fs::write(dir.path().join("state.json"), "{").unwrap();
        assert!(matches!(store2.load(&l), Err(StateError::Corrupt { .. })));
    }
}
