//! Certificates across restarts: a certificate is renewed once, and the renewed one
//! retires the certificate it replaces (and every copy of it) when first used.

use super::*;

const DAY: u64 = 86_400_000;

/// A worker certificate for `name` issued at `issued_ms`, valid for 90 days.
fn certificate(name: &str, issued_ms: u64) -> PeerIdentity {
    PeerIdentity {
        role: Role::Worker,
        name: name.into(),
        issued_ms,
        not_before_ms: issued_ms,
        expires_ms: issued_ms + 90 * DAY,
    }
}

fn to_worker(out: &[Transmit], conn: ConnId) -> Vec<CoordToWorker> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::ToWorker(c, m) if *c == conn => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn closed(out: &[Transmit]) -> Vec<(ConnId, CloseCode)> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::Close(c, reason) => Some((*c, reason.code())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_certificate_is_renewed_once_and_the_renewed_one_retires_it_for_good() {
    let mut d = Durable::new(Durable::config());
    // Issued 70 days before now, of 90: due for renewal.
    let old = certificate("pi-1", T0_MS - 70 * DAY);
    let w = d.add_worker_as(old.clone(), PROTOCOL_MINOR);
    d.sync();
    d.worker_says(w, WorkerToCoord::Renew(Renew { csr: vec![1] }));
    let out = d.sync();
    let issued: Vec<_> = out
        .iter()
        .filter_map(|t| match t {
            Transmit::Issue(c, issue) if *c == w => Some((issue.renewal, issue.issued_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(issued, vec![(true, T0_MS)]);
    assert_eq!(d.store.renewed.get("pi-1"), Some(&T0_MS));

    // After a restart, a copy of the old certificate asks again: refused, saying why.
    d.crash();
    let copy = d.add_worker_as(old.clone(), PROTOCOL_MINOR);
    d.sync();
    d.worker_says(copy, WorkerToCoord::Renew(Renew { csr: vec![2] }));
    let out = d.sync();
    assert!(!out.iter().any(|t| matches!(t, Transmit::Issue(..))));
    assert_eq!(
        to_worker(&out, copy),
        vec![CoordToWorker::RenewRefused(JoinRefusal::BadRequest(format!(
            "this certificate was renewed already (the renewed one was issued at {T0_MS}, Unix ms): only the newest certificate of pi-1 is renewed; if this machine never received it, ask the admin for a new bundle (picluster add-worker pi-1 --replace)"
        )))]
    );

    // The renewed certificate comes into use: the copy is cut off and the old
    // certificate is revoked from then on, across restarts.
    let renewed = certificate("pi-1", T0_MS);
    let new = d.add_worker_as(renewed.clone(), PROTOCOL_MINOR);
    let out = d.sync();
    assert_eq!(closed(&out), vec![(copy, CloseCode::Revoked)]);
    assert_eq!(d.store.revoked.get("pi-1"), Some(&(T0_MS - 1)));
    d.core.handle_disconnected(d.now, new);
    d.sync();
    d.crash();
    let again = d.add_worker_as(old, PROTOCOL_MINOR);
    assert_eq!(closed(&d.sync()), vec![(again, CloseCode::Revoked)]);
    let back = d.add_worker_as(renewed, PROTOCOL_MINOR);
    let out = d.sync();
    assert_eq!(closed(&out), vec![]);
    assert!(
        matches!(&to_worker(&out, back)[..], [CoordToWorker::Welcome(_), ..]),
        "{out:?}"
    );
}
