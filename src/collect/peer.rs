//! The other gateway's view (`--peer FILE`: its `vmpath routers --json`), for the one-primary
//! check across the pair.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What `--peer` needs from the other gateway's `vmpath routers --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerDoc {
    pub host: Option<String>,
    pub routers: Vec<PeerRouter>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRouter {
    pub router_id: String,
    pub views: PeerViews,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerViews {
    pub addresses: String,
    pub state_file: String,
}

/// Read and parse `--peer FILE`. A file that is not such a document is bad usage.
pub fn read(p: &Path) -> Result<PeerDoc> {
    // A file or a pipe (`--peer <(ssh gwB vmpath routers --json)`), at most 64 MiB, within 30 s.
    let text = crate::collect::files::read_text_or_pipe(
        p,
        64 << 20,
        std::time::Instant::now() + std::time::Duration::from_secs(30),
    )
    .map_err(|e| Error::usage(format!("cannot read --peer {}: {e}", p.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::usage(format!(
            "--peer {}: not the JSON of `vmpath routers --json` ({e})",
            p.display()
        ))
    })
}
