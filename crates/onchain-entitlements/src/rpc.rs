//! A small Ethereum JSON-RPC client over HTTP: the five reads confirmation needs
//! (`eth_chainId`, `eth_blockNumber`, `eth_getTransactionByHash`,
//! `eth_getTransactionReceipt`, `eth_getBlockByNumber`), each with a timeout and a few
//! retries on transport failures. Node errors and malformed answers become
//! [`RpcError`], never a panic.

use std::time::Duration;

use feria_kernel::provider_errors::ProviderErrors;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::evm::{self, Address, Log};

/// Why a call to the node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The node did not answer (connection refused, timeout, HTTP 5xx) after retries.
    #[error("the chain's JSON-RPC node is unreachable: {0}")]
    Unreachable(String),
    /// The node answered with a JSON-RPC error or something that is not one.
    #[error("the chain's JSON-RPC node answered with an error: {0}")]
    Node(String),
}

/// A transaction as `eth_getTransactionByHash` shows it (the fields confirmation reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub from: Address,
    /// `None` for a contract creation.
    pub to: Option<Address>,
    pub input: Vec<u8>,
    /// `None` while pending.
    pub block_number: Option<u64>,
}

/// A receipt (`eth_getTransactionReceipt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// `status == 0x1`.
    pub succeeded: bool,
    pub block_number: u64,
    /// `0x` and 64 lower-case hex digits: the block the receipt is in (a reorg changes it).
    pub block_hash: String,
    pub logs: Vec<Log>,
}

/// One node's JSON-RPC endpoint. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    url: String,
    retries: u32,
    /// Where failed calls are counted (the server's metrics); nowhere by default.
    errors: ProviderErrors,
}

/// A failed attempt, and how to count it if it is the call's last: `unreachable`,
/// `invalid_answer`, or the node's JSON-RPC error code (`-32000`, ...).
struct Failure {
    error: RpcError,
    code: String,
}

impl Failure {
    fn unreachable(reason: String) -> Failure {
        Failure {
            error: RpcError::Unreachable(reason),
            code: "unreachable".to_owned(),
        }
    }
}

impl RpcClient {
    /// `timeout` bounds each attempt; transport failures are retried `retries` times.
    pub fn new(url: &str, timeout: Duration, retries: u32) -> Result<RpcClient, RpcError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| RpcError::Unreachable(e.to_string()))?;
        Ok(RpcClient {
            http,
            url: url.to_owned(),
            retries,
            errors: ProviderErrors::default(),
        })
    }

    /// Counts each failed call (after its retries) in `errors`: provider `chain_rpc`,
    /// code `unreachable`, `invalid_answer` or the node's JSON-RPC error code.
    pub fn with_error_counter(mut self, errors: ProviderErrors) -> Self {
        self.errors = errors;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` and returns its `result` (which may be JSON `null`).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut attempt = 0;
        loop {
            match self.attempt(&body).await {
                Ok(value) => return Ok(value),
                Err(Failure {
                    error: RpcError::Unreachable(reason),
                    ..
                }) if attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!(method, attempt, %reason, "JSON-RPC call failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(failure) => {
                    self.errors.count("chain_rpc", &failure.code);
                    return Err(failure.error);
                }
            }
        }
    }

    async fn attempt(&self, body: &Value) -> Result<Value, Failure> {
        let response = self
            .http
            .post(&self.url)
            .json(body)
            .send()
            .await
            .map_err(|e| Failure::unreachable(e.to_string()))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(Failure::unreachable(format!("HTTP {status}")));
        }
        let envelope: Envelope = response.json().await.map_err(|e| Failure {
            error: RpcError::Node(format!("not a JSON-RPC answer (HTTP {status}): {e}")),
            code: "invalid_answer".to_owned(),
        })?;
        if let Some(error) = envelope.error {
            return Err(Failure {
                error: RpcError::Node(format!("{} ({})", error.message, error.code)),
                // An integer: a bounded label whatever the node sends.
                code: error.code.to_string(),
            });
        }
        Ok(envelope.result.unwrap_or(Value::Null))
    }

    pub async fn chain_id(&self) -> Result<u64, RpcError> {
        let result = self.call("eth_chainId", json!([])).await?;
        quantity(&result, "eth_chainId")
    }

    pub async fn block_number(&self) -> Result<u64, RpcError> {
        let result = self.call("eth_blockNumber", json!([])).await?;
        quantity(&result, "eth_blockNumber")
    }

    /// The block's timestamp (Unix seconds); `None` when the node has no such block.
    pub async fn block_timestamp(&self, number: u64) -> Result<Option<u64>, RpcError> {
        let result = self
            .call(
                "eth_getBlockByNumber",
                json!([format!("0x{number:x}"), false]),
            )
            .await?;
        if result.is_null() {
            return Ok(None);
        }
        quantity(&result["timestamp"], "block timestamp").map(Some)
    }

    /// `None` when the node knows no such transaction.
    /// The number of the chain's `finalized` block, or `None` when the node does not
    /// serve the tag (older nodes answer with an error; some with `null`).
    pub async fn finalized_block(&self) -> Result<Option<u64>, RpcError> {
        match self
            .call("eth_getBlockByNumber", json!(["finalized", false]))
            .await
        {
            Ok(Value::Null) => Ok(None),
            Ok(block) => quantity(&block["number"], "finalized block number").map(Some),
            Err(RpcError::Node(reason)) => {
                tracing::debug!(%reason, "the node serves no `finalized` block");
                Ok(None)
            }
            Err(unreachable) => Err(unreachable),
        }
    }

    pub async fn transaction(&self, hash: &str) -> Result<Option<Transaction>, RpcError> {
        let result = self.call("eth_getTransactionByHash", json!([hash])).await?;
        if result.is_null() {
            return Ok(None);
        }
        let from = address(&result["from"], "transaction from")?;
        let to = match &result["to"] {
            Value::Null => None,
            value => Some(address(value, "transaction to")?),
        };
        let input = bytes(&result["input"], "transaction input")?;
        let block_number = match &result["blockNumber"] {
            Value::Null => None,
            value => Some(quantity(value, "transaction blockNumber")?),
        };
        Ok(Some(Transaction {
            from,
            to,
            input,
            block_number,
        }))
    }

    /// `None` while the transaction is unknown or not yet mined.
    pub async fn receipt(&self, hash: &str) -> Result<Option<Receipt>, RpcError> {
        let result = self
            .call("eth_getTransactionReceipt", json!([hash]))
            .await?;
        if result.is_null() {
            return Ok(None);
        }
        let status = quantity(&result["status"], "receipt status")?;
        let block_number = quantity(&result["blockNumber"], "receipt blockNumber")?;
        let block_hash = evm::to_hex(&word(&result["blockHash"], "receipt blockHash")?);
        let logs = match &result["logs"] {
            Value::Array(logs) => logs
                .iter()
                .map(|log| {
                    let topics = match &log["topics"] {
                        Value::Array(topics) => topics
                            .iter()
                            .map(|topic| word(topic, "log topic"))
                            .collect::<Result<Vec<_>, _>>()?,
                        _ => return Err(malformed("log topics")),
                    };
                    Ok(Log {
                        address: address(&log["address"], "log address")?,
                        topics,
                        data: bytes(&log["data"], "log data")?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(malformed("receipt logs")),
        };
        Ok(Some(Receipt {
            succeeded: status == 1,
            block_number,
            block_hash,
            logs,
        }))
    }
}

#[derive(Deserialize)]
struct Envelope {
    result: Option<Value>,
    error: Option<NodeError>,
}

#[derive(Deserialize)]
struct NodeError {
    code: i64,
    message: String,
}

fn malformed(what: &str) -> RpcError {
    RpcError::Node(format!("malformed {what} in the node's answer"))
}

fn quantity(value: &Value, what: &str) -> Result<u64, RpcError> {
    value
        .as_str()
        .and_then(evm::parse_quantity)
        .ok_or_else(|| malformed(what))
}

fn bytes(value: &Value, what: &str) -> Result<Vec<u8>, RpcError> {
    value
        .as_str()
        .and_then(evm::from_hex)
        .ok_or_else(|| malformed(what))
}

fn address(value: &Value, what: &str) -> Result<Address, RpcError> {
    value
        .as_str()
        .and_then(|text| Address::parse(&text.to_ascii_lowercase()).ok())
        .ok_or_else(|| malformed(what))
}

fn word(value: &Value, what: &str) -> Result<[u8; 32], RpcError> {
    let raw = bytes(value, what)?;
    raw.try_into().map_err(|_| malformed(what))
}
