//! Garbage collection and disk usage: everything no image record references (and no operation in flight
//! has pinned) goes.

use super::layers::LAYER_MARKER;
use super::{dir_size, io_err, remove_any, Store};
use crate::types::{DiskUsage, GcReport};
use crate::Result;
use std::collections::HashSet;
use std::fs;

impl Store {
    pub fn gc(&self) -> Result<GcReport> {
        let _g = self.write_lock()?;
        let mut rep = GcReport::default();
        let pinned = self.pinned();
        let records = self.records()?;
        let used_layers: HashSet<String> = records
            .iter()
            .flat_map(|r| r.chain_ids.iter().cloned())
            .collect();

        for chain in self.layer_chain_ids() {
            if used_layers.contains(&chain) || pinned.contains(&chain) {
                continue;
            }
            match self.delete_layer(&chain) {
                Ok(sz) => {
                    rep.layers_removed += 1;
                    rep.bytes_freed += sz;
                }
                Err(e) => log::warn!("image gc: layer {chain}: {e}"),
            }
        }

        // Blobs: configs of recorded images and the kept blobs of remaining layers.
        let mut used_blobs: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        let mut used_cache: HashSet<String> = HashSet::new();
        for chain in self.layer_chain_ids() {
            if let Ok(m) = self.layer(&chain) {
                used_cache.insert(m.cache_id.clone());
                if let Some(b) = m.blob {
                    used_blobs.insert(b.digest);
                }
            }
        }
        let bdir = self.image_dir().join("blobs/sha256");
        for e in fs::read_dir(&bdir)
            .map_err(io_err(&bdir))
            .map_err(crate::Error::from)?
            .flatten()
        {
            let Some(h) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let d = format!("sha256:{h}");
            if used_blobs.contains(&d) || pinned.contains(&d) {
                continue;
            }
            let sz = e.metadata().map(|m| m.len()).unwrap_or(0);
            if fs::remove_file(e.path()).is_ok() {
                rep.blobs_removed += 1;
                rep.bytes_freed += sz;
            }
        }

        let chains: HashSet<String> = self.layer_chain_ids().into_iter().collect();
        rep.layers_removed += self.gc_init_layers(&chains);

        // Unpacked dirs whose metadata never got committed (crash between the two renames).
        let ov = self.root.join("overlay2");
        for e in fs::read_dir(&ov)
            .map_err(io_err(&ov))
            .map_err(crate::Error::from)?
            .flatten()
        {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if used_cache.contains(&name) || !e.path().join(LAYER_MARKER).is_file() {
                continue;
            }
            let sz = dir_size(&e.path());
            if remove_any(&e.path()).is_ok() {
                rep.layers_removed += 1;
                rep.bytes_freed += sz;
            }
        }

        let tmp = self.tmp_root();
        for e in fs::read_dir(&tmp)
            .map_err(io_err(&tmp))
            .map_err(crate::Error::from)?
            .flatten()
        {
            // Pins are checked now, not in the snapshot above: temp files are made without the write lock,
            // so one may have appeared (pinned first, then created) since. A file that exists and is unpinned
            // now is a leftover.
            if self.is_pinned(&e.path().display().to_string()) {
                continue;
            }
            if remove_any(&e.path()).is_ok() {
                rep.temp_removed += 1;
            }
        }
        Ok(rep)
    }

    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let images = self.list()?;
        let mut layers_size = 0i64;
        for c in self.layer_chain_ids() {
            if let Ok(m) = self.layer(&c) {
                layers_size += m.size as i64;
            }
        }
        Ok(DiskUsage {
            images,
            layers_size,
        })
    }
}
