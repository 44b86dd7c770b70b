//! Deleting directories off the critical path: `<data-root>/trash/`.
//!
//! Removing a container (`rm`, and `run --rm` before its client returns) must take it out of the API at once,
//! but deleting its files (the record directory, the overlay upper/work dirs with whatever the container wrote)
//! costs an unlink per file on a filesystem where each costs. So a directory to delete is renamed into
//! `<data-root>/trash/` (one rename on the same filesystem: atomic, and the original path is free again at
//! once) and a low-priority background thread deletes it. berthd empties whatever a previous run left there
//! when it starts ([`empty_leftovers`]). Nothing else reads the trash: a crash with things in it loses nothing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

/// Errors of moving a directory to the trash.
#[derive(Debug, thiserror::Error)]
pub enum TrashError {
    /// The directory could be neither moved to the trash nor deleted.
    #[error("removing {path}: {source}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// The trash directory of a data root.
pub fn dir(data_root: &Path) -> PathBuf {
    data_root.join("trash")
}

/// The background deleter: started on first use, lives as long as the process.
fn worker() -> Option<Sender<PathBuf>> {
    static WORKER: OnceLock<Mutex<Option<Sender<PathBuf>>>> = OnceLock::new();
    let cell = WORKER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let spawned = std::thread::Builder::new()
            .name("berth-trash".into())
            .spawn(move || {
                // Runs behind the containers being started and removed: deleting is never urgent.
                // SAFETY: setpriority on our own thread id (gettid) only changes its nice value.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
                }
                for p in rx {
                    remove_all(&p);
                }
            });
        Mutex::new(spawned.ok().map(|_| tx))
    });
    cell.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn remove_all(p: &Path) {
    match fs::remove_dir_all(p) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("emptying the trash: removing {}: {e}", p.display()),
    }
}

/// Removes `path` (a directory; absent is fine): renamed into the trash of `data_root` and deleted in the
/// background, or deleted here when the rename is not possible. Once this returns, `path` is gone.
pub fn discard(data_root: &Path, path: &Path) -> Result<(), TrashError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let trash = dir(data_root);
    let name = format!(
        "{}.{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let target = trash.join(name);
    let moved = match fs::rename(path, &target) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !trash.is_dir() => {
            // The trash itself may be missing (a data root made by an older berthd): make it, try again.
            fs::create_dir_all(&trash).is_ok() && fs::rename(path, &target).is_ok()
        }
        Err(_) => false,
    };
    if moved {
        if let Some(tx) = worker() {
            if tx.send(target.clone()).is_ok() {
                return Ok(());
            }
        }
        remove_all(&target);
        return Ok(());
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(TrashError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates the trash of `data_root` and has the background thread delete what a previous berthd left in it.
pub fn empty_leftovers(data_root: &Path) {
    let trash = dir(data_root);
    if let Err(e) = fs::create_dir_all(&trash) {
        log::warn!("creating {}: {e}", trash.display());
        return;
    }
    let Ok(rd) = fs::read_dir(&trash) else {
        return;
    };
    let tx = worker();
    for e in rd.flatten() {
        let p = e.path();
        match &tx {
            Some(tx) if tx.send(p.clone()).is_ok() => {}
            _ => remove_all(&p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discards_and_empties() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        empty_leftovers(root);
        let victim = root.join("containers").join("abc");
        fs::create_dir_all(victim.join("sub")).unwrap();
        fs::write(victim.join("sub").join("f"), "x").unwrap();
        discard(root, &victim).unwrap();
        assert!(!victim.exists(), "the path is free once discard returns");
        // Absent is fine.
        discard(root, &victim).unwrap();
        // A leftover from an earlier run is deleted at start.
        let left = dir(root).join("old.1.2");
        fs::create_dir_all(left.join("x")).unwrap();
        empty_leftovers(root);
        // The worker deletes in the background: poll for it (not a timing assertion: it must happen at all).
        for _ in 0..500 {
            if fs::read_dir(dir(root)).unwrap().count() == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            fs::read_dir(dir(root)).unwrap().count(),
            0,
            "trash not emptied"
        );
    }
}
