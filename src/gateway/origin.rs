//! Which site, and which of its views, a browser origin serves
//! (`protocol-spec/08-gateway.md#origins`, `#writers`).
//!
//! A site's main view is at `<address>.localhost`; a site with writers
//! (`11-writers.md`) also has an origin per branch name and per writer's line, so that each
//! keeps its pages, links and storage apart from the others':
//!
//! | host labels before `.localhost` | view |
//! | --- | --- |
//! | `<address>` | the main merged view (or the site's manifest) |
//! | `<branch>.branch.<address>` | the merged view of branch `<branch>` over every writer |
//! | `<writer>.writer.<address>` | writer `<writer>`'s main line alone |
//! | `<branch>.<writer>.writer.<address>` | writer `<writer>`'s line `<branch>` alone |
//!
//! `<writer>` is the writer's key in address form (56 characters). Branch names are DNS
//! labels by rule (`11-writers.md#lines`), so every branch has an origin. Not in this module:
//! the frame page's `view.` label and routing ([`super::route`]).

use crate::site::address::SiteAddress;
use crate::site::writers::{ViewSpec, check_branch};

use super::{LOCALHOST_SUFFIX, Refusal};

/// The label that names a branch's merged view.
pub const BRANCH_LABEL: &str = "branch";
/// The label that names one writer's line.
pub const WRITER_LABEL: &str = "writer";

/// A site and the view of it one origin serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteOrigin {
    /// The site.
    pub site: SiteAddress,
    /// Its view.
    pub view: ViewSpec,
}

impl SiteOrigin {
    /// The site's main view.
    pub fn main(site: SiteAddress) -> SiteOrigin {
        SiteOrigin {
            site,
            view: ViewSpec::default(),
        }
    }

    /// The host labels before `.localhost` (or `.umbra`).
    pub fn labels(&self) -> String {
        let site = self.site.encode();
        match (&self.view.writer, self.view.branch.as_str()) {
            (None, "") => site,
            (None, b) => format!("{b}.{BRANCH_LABEL}.{site}"),
            (Some(w), "") => format!("{}.{WRITER_LABEL}.{site}", SiteAddress(*w).encode()),
            (Some(w), b) => format!("{b}.{}.{WRITER_LABEL}.{site}", SiteAddress(*w).encode()),
        }
    }

    /// `http://<labels>.localhost:PORT`.
    pub fn url(&self, port: u16) -> String {
        format!("http://{}{LOCALHOST_SUFFIX}:{port}", self.labels())
    }

    /// Parse host labels (lower-case, without `.localhost`): the last is the site's address,
    /// the ones before it one of the forms in the module's table.
    pub fn parse(labels: &str) -> Result<SiteOrigin, Refusal> {
        let (view, address) = match labels.rsplit_once('.') {
            Some((v, a)) => (Some(v), a),
            None => (None, labels),
        };
        let site = SiteAddress::parse(address).map_err(|error| Refusal::BadAddress {
            name: address.to_string(),
            error,
        })?;
        let Some(view) = view else {
            return Ok(SiteOrigin::main(site));
        };
        let bad = |why: String| Refusal::BadView {
            name: labels.to_string(),
            why,
        };
        let branch = |b: &str| -> Result<String, Refusal> {
            check_branch(b)
                .map(|()| b.to_string())
                .map_err(|_| bad(format!("{b:?} is not a branch name")))
        };
        let writer = |w: &str| -> Result<_, Refusal> {
            SiteAddress::parse(w)
                .map(|a| a.0)
                .map_err(|e| bad(format!("{w:?} is not a writer's key: {e}")))
        };
        let parts: Vec<&str> = view.split('.').collect();
        let view = match parts.as_slice() {
            [b, BRANCH_LABEL] if !b.is_empty() => ViewSpec {
                branch: branch(b)?,
                writer: None,
            },
            [w, WRITER_LABEL] => ViewSpec {
                branch: String::new(),
                writer: Some(writer(w)?),
            },
            [b, w, WRITER_LABEL] if !b.is_empty() => ViewSpec {
                branch: branch(b)?,
                writer: Some(writer(w)?),
            },
            _ => {
                return Err(Refusal::UnknownHost(format!("{labels}{LOCALHOST_SUFFIX}")));
            }
        };
        Ok(SiteOrigin { site, view })
    }
}

#[cfg(test)]
mod tests {
    use super::SiteOrigin;
    use crate::crypto::keys::IdentityKey;
    use crate::gateway::Refusal;
    use crate::site::address::SiteAddress;
    use crate::site::writers::ViewSpec;

    fn addr(b: u8) -> SiteAddress {
        SiteAddress(IdentityKey::from_secret_bytes([b; 32]).public())
    }

    #[test]
    fn every_view_of_a_site_has_an_origin_that_parses_back() {
        let (site, w) = (addr(1), addr(2));
        let views = [
            ViewSpec::default(),
            ViewSpec {
                branch: "draft".into(),
                writer: None,
            },
            ViewSpec {
                branch: String::new(),
                writer: Some(w.0),
            },
            ViewSpec {
                branch: "v-2".into(),
                writer: Some(w.0),
            },
        ];
        for view in views {
            let o = SiteOrigin { site, view };
            assert_eq!(SiteOrigin::parse(&o.labels()), Ok(o.clone()));
            assert!(o.url(8470).ends_with(".localhost:8470"));
        }
        let s = site.encode();
        assert_eq!(
            SiteOrigin::parse(&format!("draft.branch.{s}")).map(|o| o.view.branch),
            Ok("draft".to_string())
        );
        // Not branch names (upper case never reaches here: hosts are lower-cased first).
        for bad in ["-x.branch", "view.branch", "a_b.branch"] {
            assert!(
                matches!(
                    SiteOrigin::parse(&format!("{bad}.{s}")),
                    Err(Refusal::BadView { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            SiteOrigin::parse(&format!("abc.writer.{s}")),
            Err(Refusal::BadView { .. })
        ));
        for unknown in ["x", "x.y", "branch", "a.b.branch"] {
            assert!(
                matches!(
                    SiteOrigin::parse(&format!("{unknown}.{s}")),
                    Err(Refusal::UnknownHost(_))
                ),
                "{unknown}"
            );
        }
        assert!(matches!(
            SiteOrigin::parse("draft.branch.nope"),
            Err(Refusal::BadAddress { .. })
        ));
    }
}
