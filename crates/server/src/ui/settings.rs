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

impl UiSettings {
    /// Refuses an `embed_ancestors` entry a CSP cannot carry (spaces, `;`, `,`, non-ASCII:
    /// write international names in punycode).
    pub fn check(&self) -> Result<(), String> {
        for source in &self.embed_ancestors {
            let ok = !source.is_empty()
                && source
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != ';' && c != ',');
            if !ok {
                return Err(format!(
                    "ui.embed_ancestors: `{source}` is not a CSP source such as https://blog.example.com or *"
                ));
            }
        }
        Ok(())
    }
}

/// Whether `source` can stand in a CSP source list as one entry.
pub fn is_csp_source(source: &str) -> bool {
    !source.is_empty()
        && source
            .chars()
            .all(|c| c.is_ascii_graphic() && c != ';' && c != ',')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embed_ancestors_must_be_csp_sources() {
        let ok = UiSettings {
            embed_ancestors: vec!["*".into(), "https://blog.example".into(), "'self'".into()],
        };
        assert!(ok.check().is_ok());
        for bad in ["https://bücher.example", "a b", "x; script-src *", ""] {
            let s = UiSettings {
                embed_ancestors: vec![bad.into()],
            };
            assert!(s.check().is_err(), "{bad}");
        }
    }
}
