//! The HTTP calls this process's executions have in flight, each under a random token that
//! the connector invoker sends as `x-sluice-call`.
//!
//! The execute API uses it to tell a synchronous call that one of this server's own running
//! executions makes (that execution holds one of its tenant's slots while it waits, see
//! `sluice_actors::runtime::TenantMsg::RunCalled`) from any other request, including one that
//! copies Sluice's `CDN-Loop` header. A token is 128 random bits, valid only while its call
//! is in flight, and names the calling execution only to this process. It is sent with every
//! HTTP call an execution makes, to whatever server, so it binds to the first execution it
//! is claimed for: a token that leaks to a third party, who also holds an API key, lets at
//! most one execution run on its caller's account.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The request header carrying a call's token.
pub const HEADER: &str = "x-sluice-call";

/// The execution making a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Its space.
    pub space: String,
    /// Its tenant.
    pub tenant: String,
    /// Its id.
    pub execution_id: String,
}

/// The calls in flight, by token. Cloning shares the set.
#[derive(Debug, Clone, Default)]
pub struct OwnCalls {
    in_flight: Arc<Mutex<HashMap<String, Claim>>>,
}

/// A call in flight: its caller, and the execution its token was first claimed for.
#[derive(Debug)]
struct Claim {
    caller: Caller,
    callee: Option<String>,
}

/// One call in flight; its token stops being recognised when this drops.
#[derive(Debug)]
pub struct InFlight {
    calls: OwnCalls,
    token: String,
}

impl OwnCalls {
    /// Registers a call `caller` is about to make; send [`InFlight::token`] with it.
    pub fn begin(&self, caller: Caller) -> InFlight {
        let token = format!("{:032x}", rand::random::<u128>());
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                token.clone(),
                Claim {
                    caller,
                    callee: None,
                },
            );
        InFlight {
            calls: self.clone(),
            token,
        }
    }

    /// The execution whose call in flight carries `token`, without claiming it.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .map(|c| c.caller.clone())
    }

    /// The execution whose call in flight carries `token`, claiming the token for execution
    /// `callee`; none when no call in flight carries it or it was claimed for another
    /// execution (the same one again is fine: a repeated request of one call).
    pub fn claim(&self, token: &str, callee: &str) -> Option<Caller> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let claim = in_flight.get_mut(token)?;
        match &claim.callee {
            Some(bound) if bound != callee => None,
            Some(_) => Some(claim.caller.clone()),
            None => {
                claim.callee = Some(callee.to_owned());
                Some(claim.caller.clone())
            }
        }
    }
}

impl InFlight {
    /// The token to send in [`HEADER`]: 32 lowercase hex digits.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.calls
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_caller_only_while_its_call_is_in_flight() {
        let calls = OwnCalls::default();
        let caller = Caller {
            space: "sp".into(),
            tenant: "t".into(),
            execution_id: "exe_1".into(),
        };
        let first = calls.begin(caller.clone());
        let second = calls.begin(caller.clone());
        assert_ne!(first.token(), second.token());
        assert_eq!(first.token().len(), 32);
        assert_eq!(calls.caller(first.token()), Some(caller.clone()));
        assert_eq!(calls.claim(first.token(), "exe_a"), Some(caller.clone()));
        assert_eq!(
            calls.claim(first.token(), "exe_a"),
            Some(caller.clone()),
            "the same callee again"
        );
        assert_eq!(calls.claim(first.token(), "exe_b"), None, "bound to exe_a");
        assert_eq!(
            calls.claim("0123456789abcdef0123456789abcdef", "exe_a"),
            None
        );
        let token = first.token().to_owned();
        drop(first);
        assert_eq!(calls.claim(&token, "exe_a"), None, "no longer in flight");
        assert_eq!(calls.claim(second.token(), "exe_b"), Some(caller));
    }
}
