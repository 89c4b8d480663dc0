//! irun cache: the local cache's status, or every entry removed.

use crate::cache::local::LocalStore;
use crate::cli::CacheAction;
use crate::config::Config;

pub(super) fn text(config: &Config, action: CacheAction) -> Result<String, super::Failure> {
    let (store, warning) = LocalStore::from_env(&config.root);
    if let Some(w) = warning {
        eprintln!("irun: warning: {w}");
    }
    let location = store.dir().display();
    Ok(match action {
        CacheAction::Status => {
            let status = store.status();
            let (remote, warning) = crate::cache::remote::from_env();
            if let Some(w) = warning {
                eprintln!("irun: warning: {w}");
            }
            let remote = remote
                .map_or("none (IRUN_REMOTE_CACHE_URL is not set, or IRUN_REMOTE_CACHE=off)".into(), |r| r.describe());
            let off = if crate::cache::enabled() { "" } else { " (not used: IRUN_CACHE=off)" };
            format!(
                "entries: {}{off}\nsize: {} bytes\nlimit: {} bytes (IRUN_CACHE_MAX)\nlocation: {location}\nremote: {remote}\n",
                status.entries,
                status.bytes,
                store.max()
            )
        }
        CacheAction::Clean => {
            let n = store
                .clean()
                .map_err(|e| super::Failure::Internal(format!("cannot remove the cache at {location}: {e}")))?;
            format!("removed {n} cache entries from {location}\n")
        }
    })
}
