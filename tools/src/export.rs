//! `ember export`: item vectors to `.fvecs` (ids beside them), and every
//! item's top-N similar items to CSV or JSON lines, searched in batches
//! through the indexes by every core.

use std::path::{Path, PathBuf};

use clap::Args;
use emberdb::{Hit, Query};

use crate::cmd::{open_existing, progress};

/// Each item of a batch with its similar items.
type Neighbours = Vec<(u64, Vec<Hit>)>;

#[derive(Args, Debug)]
pub struct ExportArgs {
    store: PathBuf,
    /// Write every item vector here (.fvecs), and the ids, one per line, to
    /// the same path with `.ids` appended.
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Write every item's top-N similar items here (CSV
    /// `item_id,rank,similar_id,score`, or JSON lines with --jsonl).
    #[arg(long)]
    similar: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    top: usize,
    #[arg(long)]
    jsonl: bool,
}

pub fn export(a: ExportArgs) -> Result<(), String> {
    use std::io::Write as _;
    if a.vectors.is_none() && a.similar.is_none() {
        return Err("nothing to export: pass --vectors and/or --similar".into());
    }
    let store = open_existing(&a.store).map_err(|e| e.to_string())?;
    store.wait_for_indexes();
    let ids = store.ids().map_err(|e| e.to_string())?;
    let create = |p: &Path| {
        std::fs::File::create(p)
            .map(std::io::BufWriter::new)
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    if let Some(path) = &a.vectors {
        let ids_path = {
            let mut s = path.clone().into_os_string();
            s.push(".ids");
            PathBuf::from(s)
        };
        let (mut out, mut id_out) = (create(path)?, create(&ids_path)?);
        for id in &ids {
            let Some(v) = store.get(*id).map_err(|e| e.to_string())? else {
                continue;
            };
            let io = |e: std::io::Error| format!("{}: {e}", path.display());
            out.write_all(&(v.len() as i32).to_le_bytes()).map_err(io)?;
            for x in &v {
                out.write_all(&x.to_le_bytes()).map_err(io)?;
            }
            writeln!(id_out, "{id}").map_err(|e| format!("{}: {e}", ids_path.display()))?;
        }
        out.flush().map_err(|e| format!("{}: {e}", path.display()))?;
        id_out.flush().map_err(|e| format!("{}: {e}", ids_path.display()))?;
        println!(
            "{} vectors to {} (ids in {})",
            ids.len(),
            path.display(),
            ids_path.display()
        );
    }
    if let Some(path) = &a.similar {
        // Batches of items, searched by every core through the indexes.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut out = create(path)?;
        let bar = progress(ids.len() as u64, "exporting");
        if !a.jsonl {
            writeln!(out, "item_id,rank,similar_id,score").map_err(|e| e.to_string())?;
        }
        for batch in ids.chunks(4_096) {
            let per = batch.len().div_ceil(threads);
            let results: Vec<Result<Neighbours, String>> = std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .chunks(per.max(1))
                    .map(|part| {
                        let store = &store;
                        s.spawn(move || {
                            part.iter()
                                .map(|id| {
                                    store
                                        .knn(&Query::item(*id).k(a.top))
                                        .map(|h| (*id, h))
                                        .map_err(|e| e.to_string())
                                })
                                .collect()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("a search thread failed".into())))
                    .collect()
            });
            bar.inc(batch.len() as u64);
            for part in results {
                for (id, hits) in part? {
                    if a.jsonl {
                        let list: Vec<String> = hits
                            .iter()
                            .map(|h| format!("{{\"id\":{},\"score\":{}}}", h.id, h.score))
                            .collect();
                        writeln!(out, "{{\"item_id\":{id},\"similar\":[{}]}}", list.join(","))
                    } else {
                        hits.iter()
                            .enumerate()
                            .try_for_each(|(r, h)| writeln!(out, "{id},{},{},{}", r + 1, h.id, h.score))
                    }
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
        }
        out.flush().map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "top {} similar items of {} items to {}",
            a.top,
            ids.len(),
            path.display()
        );
    }
    Ok(())
}
