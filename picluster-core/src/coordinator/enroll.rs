//! Credential flows over the credential, connection and worker tables: a joining
//! connection's request against a join token ([`on_join`]), a worker's renewal
//! ([`renew`]), revocation ([`revoke`]: live connections close at once), and the
//! admin's token requests. The state machine holds no key: a certificate to sign
//! leaves as [`Transmit::Issue`] for the driver, after what it depends on is durable.

use super::conns::Conn;
use super::effects::Effects;
use super::journal::Record;
use super::peers;
use super::tables::Tables;
use super::transmit::{Issue, Transmit};
use crate::identity::Role;
use crate::ids::{ConnId, RequestId};
use crate::wire::{
    negotiate_minor, CoordToClient, CoordToJoin, CoordToWorker, CreateToken, CsrError, JoinRefusal,
    JoinRequest, Refusal, Revocation, TokenRequest,
};
use std::time::Instant;

/// A join request: a valid token spends a use, the name is enrolled (replacing,
/// if the token allows it, the certificates it had: they are revoked), and the
/// driver signs the request once that is durable. Anything else is refused with
/// its reason; a token is never spent on a refusal.
pub(super) fn on_join(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    request: JoinRequest,
    checked: Result<(), CsrError>,
) {
    t.conns.insert(conn, Conn::Joining { answered: true });
    let minor = request.minor;
    let at = fx.unix_ms(now);
    let reserved = matches!(request.name.as_str(), "admin" | "coordinator");
    let in_use = reserved
        || t.workers.named(&request.name).is_some()
        || t.credentials.is_enrolled(&request.name);
    let decision = checked
        .map_err(JoinRefusal::BadCsr)
        .and_then(|()| {
            t.credentials.admit(
                &request.token,
                &request.secret,
                &request.name,
                request.role,
                in_use,
                at,
            )
        })
        .and_then(|admitted| {
            let other_role = t
                .credentials
                .enrolled_role(&request.name)
                .is_some_and(|role| role != admitted.role);
            if reserved || (admitted.replaces && other_role) {
                // A worker token may not take over a client's name, nor anyone the
                // admin's.
                Err(JoinRefusal::NameTaken(request.name.clone()))
            } else {
                Ok(admitted)
            }
        });
    match decision {
        Err(refusal) => {
            fx.stats.violations += 1;
            // The joiner closes once it has read the answer (a close from here
            // could overtake it); one that does not is closed by its idle timeout.
            fx.reply(
                &t.jobs,
                Transmit::ToJoiner(conn, CoordToJoin::Refused(refusal.for_minor(minor))),
            );
        }
        Ok(admitted) => {
            t.credentials
                .insert_token(&request.token, admitted.token.clone());
            fx.record(Record::Token(request.token.clone(), admitted.token));
            let mut issued_ms = at;
            if admitted.replaces {
                revoke(t, fx, now, &request.name);
                issued_ms = at + 1;
            }
            if t.credentials.enroll(&request.name, admitted.role) {
                fx.record(Record::Enrolled(request.name.clone(), admitted.role));
            }
            fx.reply(
                &t.jobs,
                Transmit::Issue(
                    conn,
                    Issue {
                        role: admitted.role,
                        name: request.name,
                        csr: request.csr,
                        issued_ms,
                        renewal: false,
                    },
                ),
            );
        }
    }
}

/// A worker asks for a new certificate for its own name: once its certificate is in
/// the last third of its life, once per connection, and once per certificate (only
/// the newest certificate of a name is renewed). The renewed certificate's
/// predecessors are retired when it is first used (`peers::connected`).
pub(super) fn renew(t: &mut Tables, fx: &mut Effects, now: Instant, conn: ConnId, csr: Vec<u8>) {
    let Some((name, minor)) = t.workers.get(conn).map(|w| {
        (
            w.name.clone(),
            w.hello().map_or(0, |h| negotiate_minor(h.minor)),
        )
    }) else {
        return;
    };
    // A renewal extends a certificate's life: granted only when it is due, so a
    // copy of a credential cannot be renewed over and over into one that never
    // expires.
    if let Some(identity) = t.credentials.identity(conn) {
        let life = identity.expires_ms.saturating_sub(identity.not_before_ms);
        let due_ms = identity.not_before_ms.saturating_add(life / 3 * 2);
        if fx.unix_ms(now) < due_ms {
            tracing::warn!(worker = %name, due_ms, "renewal refused: the certificate is not due");
            let refusal = JoinRefusal::NotDue { due_ms }.for_minor(minor);
            fx.push(Transmit::ToWorker(
                conn,
                CoordToWorker::RenewRefused(refusal),
            ));
            return;
        }
    }
    if let Some(identity) = t.credentials.identity(conn) {
        if let Err(successor_ms) = t.credentials.may_renew(identity) {
            tracing::warn!(worker = %name, issued_ms = identity.issued_ms, successor_ms, "renewal refused: this certificate was renewed already; if the worker never received the renewed one, or a copy of its credential is in use elsewhere, give it a new bundle");
            fx.push(Transmit::ToWorker(
                conn,
                CoordToWorker::RenewRefused(JoinRefusal::BadRequest(format!(
                    "this certificate was renewed already (the renewed one was issued at {successor_ms}, Unix ms): only the newest certificate of {name} is renewed; if this machine never received it, ask the admin for a new bundle (picluster add-worker {name} --replace)"
                ))),
            ));
            return;
        }
    }
    if !t.workers.note_renewal(conn) {
        fx.push(Transmit::ToWorker(
            conn,
            CoordToWorker::RenewRefused(JoinRefusal::BadRequest(
                "one renewal per connection".into(),
            )),
        ));
        return;
    }
    let issued_ms = fx.unix_ms(now);
    t.credentials.renewed(&name, issued_ms);
    fx.record(Record::Renewed(name.clone(), issued_ms));
    fx.reply(
        &t.jobs,
        Transmit::Issue(
            conn,
            Issue {
                role: Role::Worker,
                name,
                csr,
                issued_ms,
                renewal: true,
            },
        ),
    );
}

/// Revokes every certificate of `name` issued up to now: its live connections
/// close at once (a worker's leases return to the queue) and later handshakes
/// with those certificates are refused.
pub(super) fn revoke(t: &mut Tables, fx: &mut Effects, now: Instant, name: &str) -> Revocation {
    let at = fx.unix_ms(now);
    t.credentials.revoke(name, at);
    fx.record(Record::Revoked(name.to_string(), at));
    let closed = peers::close_revoked(t, fx, name, at);
    Revocation {
        name: name.to_string(),
        revoked_ms: at,
        closed: u32::try_from(closed).unwrap_or(u32::MAX),
    }
}

/// Drops the tokens past their expiry.
fn purge_tokens(t: &mut Tables, fx: &mut Effects, now: Instant) {
    for id in t.credentials.expired_tokens(fx.unix_ms(now)) {
        t.credentials.remove_token(&id);
        fx.record(Record::TokenGone(id));
    }
}

/// An admin (`by`) makes a join token.
pub(super) fn create_token(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    by: &str,
    create: CreateToken,
) -> CoordToClient {
    purge_tokens(t, fx, now);
    match t.credentials.new_token(&create, by, fx.unix_ms(now)) {
        Ok(token) => {
            t.credentials.insert_token(&create.id, token.clone());
            fx.record(Record::Token(create.id.clone(), token));
            match t.credentials.token_info(&create.id) {
                Some(info) => CoordToClient::TokenCreated(create.request, info),
                None => CoordToClient::Refused(create.request, Refusal::UnknownToken(create.id)),
            }
        }
        Err(why) => CoordToClient::Refused(create.request, Refusal::BadToken(why)),
    }
}

/// An admin lists the join tokens (expired ones are dropped first).
pub(super) fn list_tokens(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    request: RequestId,
) -> CoordToClient {
    purge_tokens(t, fx, now);
    CoordToClient::Tokens(request, t.credentials.tokens())
}

/// An admin withdraws a join token.
pub(super) fn revoke_token(
    t: &mut Tables,
    fx: &mut Effects,
    request: TokenRequest,
) -> CoordToClient {
    let TokenRequest { request, id } = request;
    if t.credentials.remove_token(&id) {
        fx.record(Record::TokenGone(id.clone()));
        CoordToClient::TokenRevoked(request, id)
    } else {
        CoordToClient::Refused(request, Refusal::UnknownToken(id))
    }
}
