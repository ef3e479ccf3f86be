//! What the coordinator knows of credentials: revoked names, join tokens, enrolled
//! names (durable), and the certificates of its connected peers (this run only).
//!
//! A revocation names a name and a time: every certificate of that name issued up to
//! then is refused (its issuing time is in its serial number), and one issued later,
//! for a replacement machine, is not. A token's secret is kept as its SHA-256 only.
//!
//! This file owns the table and its checks (a token request, a join against a
//! token); the flows that act on them (a join, a renewal, a revocation closing
//! connections) are in `enroll`.

use super::journal::{StoredToken, UnixMillis};
use crate::identity::{PeerIdentity, Role};
use crate::ids::ConnId;
use crate::token::{constant_time_eq, secret_hash, TOKEN_ID_LEN};
use crate::wire::{
    CertificateStatus, CreateToken, CredentialReport, JoinRefusal, Revocation, TokenInfo,
    TokenRequestError,
};
use std::collections::BTreeMap;

/// The longest a join token may live: one day.
pub const MAX_TOKEN_TTL_S: u64 = 24 * 3600;
/// The most enrollments one token may allow.
pub const MAX_TOKEN_USES: u32 = 1000;
/// The most join tokens kept at once.
pub const MAX_TOKENS: usize = 1000;

#[derive(Default)]
pub(super) struct Credentials {
    revoked: BTreeMap<String, UnixMillis>,
    tokens: BTreeMap<String, StoredToken>,
    enrolled: BTreeMap<String, Role>,
    /// When each renewed name's newest renewed certificate was issued.
    renewed: BTreeMap<String, UnixMillis>,
    connected: BTreeMap<ConnId, PeerIdentity>,
}

/// What a valid join may do.
pub(super) struct Admitted {
    pub(super) role: Role,
    /// The token after this use (kept when used up, so a second use is told so,
    /// until it expires).
    pub(super) token: StoredToken,
    /// The name was enrolled and the token may replace it: revoke the old
    /// certificates.
    pub(super) replaces: bool,
}

impl Credentials {
    pub(super) fn restore(
        &mut self,
        revoked: BTreeMap<String, UnixMillis>,
        tokens: BTreeMap<String, StoredToken>,
        enrolled: BTreeMap<String, Role>,
        renewed: BTreeMap<String, UnixMillis>,
    ) {
        self.revoked = revoked;
        self.tokens = tokens;
        self.enrolled = enrolled;
        self.renewed = renewed;
    }

    /// Whether `identity`'s certificate is revoked.
    pub(super) fn is_revoked(&self, identity: &PeerIdentity) -> bool {
        self.revoked
            .get(&identity.name)
            .is_some_and(|&at| identity.issued_ms <= at)
    }

    pub(super) fn revoke(&mut self, name: &str, at: UnixMillis) {
        self.revoked.insert(name.to_string(), at);
    }

    /// `name`'s certificate was renewed by one issued at `at`.
    pub(super) fn renewed(&mut self, name: &str, at: UnixMillis) {
        self.renewed.insert(name.to_string(), at);
    }

    /// Whether `identity`'s certificate may be renewed: each certificate once, so
    /// only the newest of a name. `Err` with when the newer one was issued.
    pub(super) fn may_renew(&self, identity: &PeerIdentity) -> Result<(), UnixMillis> {
        match self.renewed.get(&identity.name) {
            Some(&successor) if identity.issued_ms < successor => Err(successor),
            _ => Ok(()),
        }
    }

    /// `identity` is a renewed certificate in use, whose predecessors are not retired
    /// yet: up to when the name's certificates are to be revoked (those issued before
    /// it).
    pub(super) fn retire_below(&self, identity: &PeerIdentity) -> Option<UnixMillis> {
        let successor = *self.renewed.get(&identity.name)?;
        let below = successor.checked_sub(1)?;
        let retired = self
            .revoked
            .get(&identity.name)
            .is_some_and(|&at| at >= below);
        (identity.issued_ms >= successor && !retired).then_some(below)
    }

    /// Connections whose certificate a revocation of `name` at `at` covers.
    pub(super) fn covered(&self, name: &str, at: UnixMillis) -> Vec<ConnId> {
        self.connected
            .iter()
            .filter(|(_, id)| id.name == name && id.issued_ms <= at)
            .map(|(conn, _)| *conn)
            .collect()
    }

    pub(super) fn connected(&mut self, conn: ConnId, identity: PeerIdentity) {
        self.connected.insert(conn, identity);
    }

    pub(super) fn disconnected(&mut self, conn: ConnId) {
        self.connected.remove(&conn);
    }

    pub(super) fn identity(&self, conn: ConnId) -> Option<&PeerIdentity> {
        self.connected.get(&conn)
    }

    /// Enrolls `name` in `role`; `true` if that changed anything (to be recorded).
    pub(super) fn enroll(&mut self, name: &str, role: Role) -> bool {
        self.enrolled.insert(name.to_string(), role) != Some(role)
    }

    pub(super) fn is_enrolled(&self, name: &str) -> bool {
        self.enrolled.contains_key(name)
    }

    /// The role `name` was last enrolled in.
    pub(super) fn enrolled_role(&self, name: &str) -> Option<Role> {
        self.enrolled.get(name).copied()
    }

    /// Checks a new token request; the stored token if it is valid.
    pub(super) fn new_token(
        &self,
        request: &CreateToken,
        created_by: &str,
        now: UnixMillis,
    ) -> Result<StoredToken, TokenRequestError> {
        let id_ok = request.id.len() == 2 * TOKEN_ID_LEN
            && request
                .id
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !id_ok {
            return Err(TokenRequestError::BadId {
                id: request.id.clone(),
                digits: 2 * TOKEN_ID_LEN as u32,
            });
        }
        if self.tokens.contains_key(&request.id) {
            return Err(TokenRequestError::Exists(request.id.clone()));
        }
        if self.tokens.len() >= MAX_TOKENS {
            return Err(TokenRequestError::TooMany(MAX_TOKENS as u32));
        }
        if !matches!(request.role, Role::Worker | Role::Client) {
            return Err(TokenRequestError::Role(request.role));
        }
        if request.ttl_s == 0 || request.ttl_s > MAX_TOKEN_TTL_S {
            return Err(TokenRequestError::Lifetime {
                ttl_s: request.ttl_s,
                max_s: MAX_TOKEN_TTL_S,
            });
        }
        if request.uses == 0 || request.uses > MAX_TOKEN_USES {
            return Err(TokenRequestError::Uses {
                uses: request.uses,
                max: MAX_TOKEN_USES,
            });
        }
        Ok(StoredToken {
            role: request.role,
            secret_sha256: request.secret_sha256,
            created_by: created_by.to_string(),
            created_ms: now,
            expires_ms: now.saturating_add(request.ttl_s.saturating_mul(1000)),
            uses_left: request.uses,
            replace: request.replace,
        })
    }

    pub(super) fn insert_token(&mut self, id: &str, token: StoredToken) {
        self.tokens.insert(id.to_string(), token);
    }

    /// Removes a token; `false` if there was none.
    pub(super) fn remove_token(&mut self, id: &str) -> bool {
        self.tokens.remove(id).is_some()
    }

    /// Tokens past their expiry.
    pub(super) fn expired_tokens(&self, now: UnixMillis) -> Vec<String> {
        self.tokens
            .iter()
            .filter(|(_, t)| t.expires_ms <= now)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Decides a join: the token must exist with this secret, be unexpired and have
    /// a use left, and the name must be free or the token allowed to replace it.
    pub(super) fn admit(
        &self,
        id: &str,
        secret: &[u8],
        name: &str,
        role: Role,
        name_in_use: bool,
        now: UnixMillis,
    ) -> Result<Admitted, JoinRefusal> {
        let token = self.tokens.get(id).ok_or(JoinRefusal::UnknownToken)?;
        if !constant_time_eq(&secret_hash(secret), &token.secret_sha256) {
            return Err(JoinRefusal::UnknownToken);
        }
        if token.role != role {
            return Err(JoinRefusal::WrongRole {
                token: token.role,
                asked: role,
            });
        }
        if token.expires_ms <= now {
            return Err(JoinRefusal::Expired(id.to_string()));
        }
        if token.uses_left == 0 {
            return Err(JoinRefusal::UsedUp(id.to_string()));
        }
        if !crate::identity::is_valid_name(name) {
            return Err(JoinRefusal::BadName(name.to_string()));
        }
        let taken = name_in_use || self.enrolled.contains_key(name);
        if taken && !token.replace {
            return Err(JoinRefusal::NameTaken(name.to_string()));
        }
        let mut after = token.clone();
        after.uses_left -= 1;
        Ok(Admitted {
            role: token.role,
            token: after,
            replaces: taken,
        })
    }

    pub(super) fn tokens(&self) -> Vec<TokenInfo> {
        self.tokens
            .iter()
            .map(|(id, t)| TokenInfo {
                id: id.clone(),
                role: t.role,
                created_by: t.created_by.clone(),
                created_ms: t.created_ms,
                expires_ms: t.expires_ms,
                uses_left: t.uses_left,
                replace: t.replace,
            })
            .collect()
    }

    pub(super) fn token_info(&self, id: &str) -> Option<TokenInfo> {
        self.tokens().into_iter().find(|t| t.id == id)
    }

    pub(super) fn report(&self) -> CredentialReport {
        let mut connected: Vec<CertificateStatus> = self
            .connected
            .values()
            .map(|id| CertificateStatus {
                name: id.name.clone(),
                role: id.role,
                issued_ms: id.issued_ms,
                expires_ms: id.expires_ms,
            })
            .collect();
        connected.sort_by(|a, b| (&a.name, a.role).cmp(&(&b.name, b.role)));
        connected.dedup();
        CredentialReport {
            connected,
            revoked: self
                .revoked
                .iter()
                .map(|(name, &at)| Revocation {
                    name: name.clone(),
                    revoked_ms: at,
                    closed: 0,
                })
                .collect(),
        }
    }
}
