//! Newtype identifiers. Every id has a one-letter prefix in its `Display` form
//! (`j7`, `w3`, `l42`) and parses from either that form or the bare number, so
//! `picluster wait j7` and `picluster wait 7` mean the same job.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The string was not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a valid {kind} id (expected {prefix}N or N, N a whole number)")]
pub struct ParseIdError {
    input: String,
    kind: &'static str,
    prefix: char,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $repr:ty, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub $repr);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let digits = s.strip_prefix($prefix).unwrap_or(s);
                digits.parse::<$repr>().map($name).map_err(|_| ParseIdError {
                    input: s.to_string(),
                    kind: $kind,
                    prefix: $prefix,
                })
            }
        }
    };
}

id_type!(
    /// A job submitted to the coordinator.
    JobId, u64, 'j', "job"
);
id_type!(
    /// One worker session: a new id each time a worker (re)connects.
    WorkerId, u64, 'w', "worker"
);
id_type!(
    /// One lease: a range of one job's keyspace handed to one worker. Lease ids are
    /// never reused, so a report naming an expired or revoked lease is recognisably stale.
    LeaseId, u64, 'l', "lease"
);
id_type!(
    /// A client request, echoed in the coordinator's reply so a client can have several
    /// requests in flight on one stream.
    RequestId, u32, 'r', "request"
);
id_type!(
    /// One accepted connection, assigned by the coordinator's driver. Never on the wire.
    ConnId, u64, 'c', "connection"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_with_prefix_and_parse_both_forms() {
        assert_eq!(JobId(7).to_string(), "j7");
        assert_eq!("j7".parse::<JobId>(), Ok(JobId(7)));
        assert_eq!("7".parse::<JobId>(), Ok(JobId(7)));
        let err = "w7".parse::<JobId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`w7` is not a valid job id (expected jN or N, N a whole number)"
        );
        assert!("j".parse::<JobId>().is_err());
        assert!("j-1".parse::<JobId>().is_err());
    }
}
