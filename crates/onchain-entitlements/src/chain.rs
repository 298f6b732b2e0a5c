//! Configured chains: per chain id a JSON-RPC node, the token contract (USDC), the
//! treasury that receives payments and the confirmations a payment needs.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::OnchainError;
use crate::evm::Address;
use crate::rpc::RpcClient;

/// One chain as configured (addresses as text; checked by [`Onchain::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    pub chain_id: i64,
    pub rpc_url: String,
    /// The ERC-20 token offers are paid in.
    pub token_address: String,
    /// Where payments go.
    pub treasury_address: String,
    /// Blocks a payment's block needs, itself included, before it counts (at least 1).
    pub confirmations: u64,
    /// Blocks a payment's block needs, itself included, to be final when the node serves
    /// no `finalized` block (at least `confirmations`).
    pub finality_blocks: u64,
}

/// Settings of the on-chain marketplace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnchainSettings {
    pub chains: Vec<ChainConfig>,
    /// How long a quote may be paid.
    pub quote_ttl: Duration,
    /// Bound on each JSON-RPC attempt.
    pub rpc_timeout: Duration,
    /// Retries of a JSON-RPC call that did not reach the node.
    pub rpc_retries: u32,
    /// How long a receipt (signed JWS) is valid.
    pub receipt_ttl: Duration,
    /// How often the finality watcher runs; `None`: it does not.
    pub finality_interval: Option<Duration>,
}

impl Default for OnchainSettings {
    fn default() -> Self {
        OnchainSettings {
            chains: Vec::new(),
            quote_ttl: Duration::from_secs(15 * 60),
            rpc_timeout: Duration::from_secs(5),
            rpc_retries: 2,
            receipt_ttl: Duration::from_secs(24 * 60 * 60),
            finality_interval: Some(Duration::from_secs(15)),
        }
    }
}

/// A configured chain, ready to use.
#[derive(Debug, Clone)]
pub struct Chain {
    pub chain_id: i64,
    pub rpc: RpcClient,
    pub token: Address,
    pub treasury: Address,
    pub confirmations: u64,
    pub finality_blocks: u64,
}

/// The on-chain marketplace's runtime: its chains, quote and receipt lifetimes. Cheap to
/// share.
#[derive(Debug, Clone)]
pub struct Onchain {
    chains: HashMap<i64, Chain>,
    pub quote_ttl: Duration,
    pub receipt_ttl: Duration,
    pub finality_interval: Option<Duration>,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("on-chain settings: {0}")]
pub struct OnchainConfigError(String);

impl Onchain {
    pub fn new(settings: &OnchainSettings) -> Result<Onchain, OnchainConfigError> {
        let mut chains = HashMap::new();
        for chain in &settings.chains {
            let id = chain.chain_id;
            if id <= 0 {
                return Err(OnchainConfigError(format!("chain id {id} is not positive")));
            }
            let address = |what: &str, value: &str| {
                Address::parse(value)
                    .map_err(|e| OnchainConfigError(format!("chain {id}: {what} `{value}`: {e}")))
            };
            let rpc = RpcClient::new(&chain.rpc_url, settings.rpc_timeout, settings.rpc_retries)
                .map_err(|e| OnchainConfigError(format!("chain {id}: {e}")))?;
            let ready = Chain {
                chain_id: id,
                rpc,
                token: address("token address", &chain.token_address)?,
                treasury: address("treasury address", &chain.treasury_address)?,
                confirmations: chain.confirmations.max(1),
                finality_blocks: chain.finality_blocks.max(chain.confirmations).max(1),
            };
            if chains.insert(id, ready).is_some() {
                return Err(OnchainConfigError(format!(
                    "chain {id} is configured twice"
                )));
            }
        }
        Ok(Onchain {
            chains,
            quote_ttl: settings.quote_ttl,
            receipt_ttl: settings.receipt_ttl,
            finality_interval: settings.finality_interval,
        })
    }

    /// Counts the failed JSON-RPC calls of every chain in `errors` (see
    /// [`RpcClient::with_error_counter`]).
    pub fn with_error_counter(
        mut self,
        errors: feria_kernel::provider_errors::ProviderErrors,
    ) -> Onchain {
        for chain in self.chains.values_mut() {
            chain.rpc = chain.rpc.clone().with_error_counter(errors.clone());
        }
        self
    }

    /// Every configured chain.
    pub fn chains(&self) -> impl Iterator<Item = &Chain> {
        self.chains.values()
    }

    /// The chain with this id; `unsupported_chain` when none is configured.
    pub fn chain(&self, chain_id: i64) -> Result<&Chain, OnchainError> {
        self.chains
            .get(&chain_id)
            .ok_or(OnchainError::UnsupportedChain(chain_id))
    }
}
