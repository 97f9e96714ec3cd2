//! The `[ui]` section: how the web UI's pages may be embedded by other sites.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiSettings {
    /// Sites allowed to put `/embed/{id}` in an `<iframe>`: CSP `frame-ancestors`
    /// sources such as `https://blog.example.com` or `*`. Default `*` (any site, as for
    /// a video platform's embeds); `'none'` turns embedding off. Other pages are never
    /// framed.
    pub embed_ancestors: Vec<String>,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            embed_ancestors: vec!["*".into()],
        }
    }
}
