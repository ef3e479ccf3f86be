//! Join tokens: the one line an admin pastes onto a new Pi (`picluster-worker
//! --join TOKEN`), as kubeadm's `kubeadm join` and k3s' `K3S_TOKEN` do.
//!
//! `pcj1.ID.SECRET.PIN@HOST:PORT`: a version tag, the token's id (6 bytes, 12 hex
//! digits), its secret (16 bytes, 32 hex digits), the SHA-256 pin of the cluster
//! CA's public key (64 hex digits), and the coordinator's address; with several
//! coordinators sharing etcd, every coordinator's, comma-separated
//! (`@HOST:PORT,HOST:PORT,...`: the joiner tries them in turn and follows a
//! standby's word on who leads). The worker checks
//! the coordinator's CA against the pin before it sends the secret; the coordinator
//! keeps only the secret's SHA-256.

use crate::hex;
use sha2::{Digest, Sha256};

/// The tag every token starts with.
pub const TOKEN_PREFIX: &str = "pcj1.";
/// Bytes in a token id.
pub const TOKEN_ID_LEN: usize = 6;
/// Bytes in a token secret.
pub const TOKEN_SECRET_LEN: usize = 16;
/// The longest token accepted (an address is at most a DNS name and a port).
pub const MAX_TOKEN_LEN: usize = 512;

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The token's id (lower-case hex).
    pub id: String,
    /// The secret.
    pub secret: [u8; TOKEN_SECRET_LEN],
    /// SHA-256 of the CA certificate's SubjectPublicKeyInfo.
    pub ca_pin: [u8; 32],
    /// Where the coordinator listens, `HOST:PORT`.
    pub address: String,
    /// The other coordinators' addresses, when several share etcd (empty for one).
    pub more: Vec<String>,
}

impl JoinToken {
    /// Every coordinator's address, `address` first.
    pub fn addresses(&self) -> Vec<String> {
        let mut all = vec![self.address.clone()];
        all.extend(self.more.iter().filter(|a| **a != self.address).cloned());
        all
    }
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}{}.{}.{}@{}",
            self.id,
            hex::encode(&self.secret),
            hex::encode(&self.ca_pin),
            self.addresses().join(",")
        )
    }
}

/// Why a join token does not parse. A different token is needed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The text is not a token; the string says which part is wrong.
    #[error("not a join token ({0}): expected pcj1.ID.SECRET.PIN@HOST:PORT as printed by `picluster token create`")]
    Malformed(&'static str),
}

impl std::str::FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(text: &str) -> Result<JoinToken, TokenError> {
        let text = text.trim();
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        let rest = text
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::Malformed("it does not start with pcj1."))?;
        let (fields, address) = rest
            .split_once('@')
            .ok_or(TokenError::Malformed("no @HOST:PORT"))?;
        let mut parts = fields.split('.');
        let (Some(id), Some(secret), Some(pin), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed(
                "it needs three dot-separated fields before the @",
            ));
        };
        let fixed = |field: &str, len: usize, what: &'static str| -> Result<Vec<u8>, TokenError> {
            match hex::decode(field) {
                Ok(bytes) if bytes.len() == len && !field.starts_with("0x") => Ok(bytes),
                _ => Err(TokenError::Malformed(what)),
            }
        };
        fixed(id, TOKEN_ID_LEN, "the id is not 12 hex digits")?;
        let secret = fixed(secret, TOKEN_SECRET_LEN, "the secret is not 32 hex digits")?;
        let pin = fixed(pin, 32, "the CA pin is not 64 hex digits")?;
        let valid_address = |address: &str| {
            address.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && port.parse::<u16>().is_ok_and(|p| p != 0)
                    && host.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    })
            })
        };
        let mut addresses = address.split(',');
        let first = addresses.next().unwrap_or_default();
        let more: Vec<String> = addresses.map(str::to_string).collect();
        if !valid_address(first) || !more.iter().all(|a| valid_address(a)) {
            return Err(TokenError::Malformed("the address is not HOST:PORT"));
        }
        Ok(JoinToken {
            id: id.to_ascii_lowercase(),
            secret: secret.try_into().expect("length checked"),
            ca_pin: pin.try_into().expect("length checked"),
            address: first.to_string(),
            more,
        })
    }
}

/// SHA-256 of a token secret: what the coordinator stores and compares.
pub fn secret_hash(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Whether `a` and `b` are equal, in time independent of where they differ.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_bad_ones_name_the_part() {
        let token = JoinToken {
            id: "0a1b2c3d4e5f".into(),
            secret: [7; 16],
            ca_pin: [9; 32],
            address: "[::1]:7878".into(),
            more: Vec::new(),
        };
        let text = token.to_string();
        assert_eq!(text.parse::<JoinToken>().unwrap(), token);
        // Several coordinators: every address, comma-separated.
        let several = JoinToken {
            more: vec!["pi2.local:7878".into(), "10.0.0.3:7878".into()],
            ..token.clone()
        };
        let text2 = several.to_string();
        assert!(text2.ends_with("@[::1]:7878,pi2.local:7878,10.0.0.3:7878"));
        assert_eq!(text2.parse::<JoinToken>().unwrap(), several);
        assert!(format!("{text2},")
            .parse::<JoinToken>()
            .unwrap_err()
            .to_string()
            .contains("address"));
        let bad = |t: &str| t.parse::<JoinToken>().unwrap_err().to_string();
        assert!(bad("hello").contains("does not start with pcj1."));
        assert!(bad(&text.replace('@', "#")).contains("no @HOST:PORT"));
        assert!(bad(&text.replace("0a1b2c3d4e5f", "0a1b")).contains("id is not 12 hex"));
        assert!(bad(&text.replace(":7878", ":0")).contains("address is not HOST:PORT"));
        assert!(bad(&text.replace(".0707", ".zz07")).contains("secret"));
        assert!(bad(&format!("{text}.x")).contains("address"));
        assert!(constant_time_eq(&secret_hash(b"a"), &secret_hash(b"a")));
        assert!(!constant_time_eq(&secret_hash(b"a"), &secret_hash(b"b")));
    }
}
