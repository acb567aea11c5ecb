//! `umbra keygen`: write a new key file (mode 0600, never over an existing one) and say what
//! it is; an identity key's public key is what `umbra writers add --writer` takes
//! (`protocol-spec/00-overview.md#key-files`). Not in this module: the key file format
//! (`crypto::keystore`).

use std::process::ExitCode;

use crate::crypto::keys::{IdentityKey, LinkKeypair};
use crate::crypto::keystore;

/// Run `umbra keygen --kind KIND --out FILE`.
pub fn keygen_cmd(kind: &str, out: &std::path::Path) -> ExitCode {
    let mut rng = super::driver::os_rng();
    let result = match kind {
        "identity" => {
            let key = IdentityKey::generate(&mut rng);
            // The public key is what `umbra writers add --writer` takes.
            keystore::write_identity(out, &key).map(|()| {
                format!(
                    "Ed25519 identity, node id {}\npublic key {}\nas a site {}",
                    key.public().node_id(),
                    crate::wire::hex::encode(&key.public().to_bytes()),
                    crate::site::address::SiteAddress(key.public())
                )
            })
        }
        "link" => {
            let key = LinkKeypair::generate(&mut rng);
            keystore::write_static(out, &key).map(|()| "X25519 static key".to_string())
        }
        other => {
            eprintln!("umbra keygen: unknown kind `{other}` (use `identity` or `link`)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(what) => {
            // The first line is the key's kind; any further lines (an identity's public key
            // and address) follow the `wrote` line on their own.
            let (kind, rest) = what.split_once('\n').unwrap_or((&what, ""));
            println!("wrote {} ({kind})", out.display());
            if !rest.is_empty() {
                println!("{rest}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("umbra keygen: {e}");
            ExitCode::FAILURE
        }
    }
}
