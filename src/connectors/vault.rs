//! Secret material at rest: XChaCha20-Poly1305 (RFC 8439 ChaCha20-Poly1305 with a 24-byte
//! nonce) under a 32-byte master key, with the record id as associated data so a sealed value
//! only opens in the record it was written for.
//!
//! The master key comes from `SLUICE_MASTER_KEY` (64 hex characters) or, when unset, from the
//! key file `master.key` in the data directory, created with a fresh random key and mode 0600
//! on first start. Keep that file (or the variable) apart from copies of the data: without it
//! the sealed credentials are unreadable.

use std::path::Path;

use anyhow::{Context, bail};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// Name of the key file inside the data directory.
pub const KEY_FILE: &str = "master.key";

/// Seals and opens secret material.
pub struct Vault {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    /// A vault over a known key.
    pub fn from_key(key: [u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// The vault of a data directory: `SLUICE_MASTER_KEY` when set, else the key file,
    /// created (0600) if missing.
    ///
    /// # Errors
    /// A malformed variable or key file, or a key file that cannot be created.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        if let Ok(hex_key) = std::env::var("SLUICE_MASTER_KEY")
            && !hex_key.is_empty()
        {
            return Ok(Self::from_key(
                parse_key(&hex_key).context("SLUICE_MASTER_KEY")?,
            ));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Self::from_key(
                parse_key(text.trim()).with_context(|| format!("{}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_private(&path, hex::encode(key).as_bytes())
                    .with_context(|| format!("creating {}", path.display()))?;
                Ok(Self::from_key(key))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Seals `plaintext` for record `id`: returns (nonce, ciphertext with tag).
    ///
    /// # Errors
    /// Only if the AEAD refuses (it does not for inputs under 256 GiB).
    pub fn seal(&self, id: &str, plaintext: &[u8]) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        Ok((nonce.to_vec(), ct))
    }

    /// Opens what [`Vault::seal`] sealed for record `id`.
    ///
    /// # Errors
    /// A wrong key, a wrong record id, or tampered bytes.
    pub fn open_sealed(
        &self,
        id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        if nonce.len() != 24 {
            bail!("bad nonce length {}", nonce.len());
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot open the sealed secret of {id:?} (wrong master key or altered data)"
                )
            })
    }
}

fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text).context("expected 64 hex characters")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected 32 bytes (64 hex characters)"))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_per_record_and_refuses_other_keys_ids_and_tampering() {
        let v = Vault::from_key([7; 32]);
        let (nonce, ct) = v.seal("cred_1", b"sk_live_secret").expect("seal");
        assert!(!ct.windows(14).any(|w| w == b"sk_live_secret"));
        assert_eq!(
            v.open_sealed("cred_1", &nonce, &ct).expect("open"),
            b"sk_live_secret"
        );
        assert!(
            v.open_sealed("cred_2", &nonce, &ct).is_err(),
            "bound to the record id"
        );
        assert!(
            Vault::from_key([8; 32])
                .open_sealed("cred_1", &nonce, &ct)
                .is_err()
        );
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(v.open_sealed("cred_1", &nonce, &bad).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        // When the environment sets SLUICE_MASTER_KEY the file is not used and this test
        // only checks that sealing round-trips.
        let a = Vault::open(dir.path()).expect("open");
        let (n, c) = a.seal("x", b"s").expect("seal");
        let b = Vault::open(dir.path()).expect("reopen");
        assert_eq!(b.open_sealed("x", &n, &c).expect("open"), b"s");
        if std::env::var("SLUICE_MASTER_KEY").is_err() {
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
