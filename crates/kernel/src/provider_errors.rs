//! Counting failed calls to outside providers (Stripe, a chain's JSON-RPC node) for the
//! server's metrics, without a metrics library below the gateway.
//!
//! A provider's client holds a [`ProviderErrors`] handle and reports each failed call with
//! a short code; whoever built the client decides where the count goes. The gateway hands
//! in one that increments `feria_provider_errors_total` in its own Prometheus registry:
//! several servers in one process (the test suite) keep their own counts, which a global
//! recorder (the `metrics` facade) would mix. A client built without one counts nothing.

use std::fmt;
use std::sync::Arc;

type Counter = dyn Fn(&'static str, &str) + Send + Sync;

/// Where a client reports its failed calls. Cheap to clone.
#[derive(Clone, Default)]
pub struct ProviderErrors(Option<Arc<Counter>>);

impl ProviderErrors {
    /// Reports to `count(provider, code)`.
    pub fn new(count: impl Fn(&'static str, &str) + Send + Sync + 'static) -> ProviderErrors {
        ProviderErrors(Some(Arc::new(count)))
    }

    /// One failed call to `provider` (`stripe`, `chain_rpc`), with a short code that says
    /// how it failed (the provider's own error code, or `timeout`, `unreachable`, ...).
    pub fn count(&self, provider: &'static str, code: &str) {
        if let Some(count) = &self.0 {
            count(provider, code);
        }
    }
}

impl fmt::Debug for ProviderErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProviderErrors(counted)"
        } else {
            "ProviderErrors(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn counts_go_where_the_builder_said_and_nowhere_without_one() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let errors = ProviderErrors::new(move |provider, code| {
            sink.lock().unwrap().push(format!("{provider}:{code}"));
        });
        errors.count("stripe", "card_declined");
        errors.clone().count("chain_rpc", "unreachable");
        ProviderErrors::default().count("stripe", "timeout");
        assert_eq!(
            *seen.lock().unwrap(),
            ["stripe:card_declined", "chain_rpc:unreachable"]
        );
    }
}
