//! On-chain entitlements over HTTP against a real local EVM node (Foundry's anvil, started by
//! `scripts/evm-node.sh`; see docs/ONCHAIN.md):
//!
//! - `EVM_TEST_RPC_URL` set (CI): the node must answer there;
//! - unset: the tests run the script, which installs anvil into a cache directory and
//!   starts it on 127.0.0.1:8545. If it cannot, the tests fail; they never skip.
//!
//! Each test deploys its own test USDC (`tests/fixtures/usdc`, 6 decimals), mints to
//! accounts created for the test, sends real transfers and confirms them through the API.
//! Tests never move the node's clock (`evm_increaseTime`): they share the node.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use feria_onchain_entitlements::{ChainConfig, OnchainSettings};
use feria_testkit::{CreatedPlatform, Method, TestApp, TestResponse};
use serde_json::{Value, json};

const CHAIN_ID: i64 = 8453;
const PRICE: u128 = 199_000_000;
const MEMBERSHIP_PRICE: u128 = 5_000_000;

fn rpc_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(locate_node)
        .clone()
        .unwrap_or_else(|message| panic!("{message}"))
}

fn locate_node() -> Result<String, String> {
    if let Ok(url) = std::env::var("EVM_TEST_RPC_URL")
        && !url.trim().is_empty()
    {
        return Ok(url.trim().trim_end_matches('/').to_owned());
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/evm-node.sh");
    let output = Command::new("bash")
        .arg(script)
        .output()
        .map_err(|e| format!("could not run {script}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last().map(str::trim) {
        Some(url) if output.status.success() && url.starts_with("http") => Ok(url.to_owned()),
        _ => Err(format!(
            "EVM_TEST_RPC_URL is unset and {script} could not start the EVM node ({}):\n{}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// The local chain: a JSON-RPC client, this test's token and its own accounts.
///
/// Tests run in parallel processes against one node. Every call that changes the chain
/// holds an exclusive lock on a file that all test processes share (`write`), so blocks
/// are mined one transaction at a time in a known order (a test counting confirmations
/// mines exact numbers of blocks); every account a test sends from is created for that
/// test (`new_account`: no nonce is shared), and the client gives up after 30 s (a node
/// that stops answering fails the test, never hangs it). `owner` (the deployer and
/// minter) is the test's first account.
struct Chain {
    url: String,
    http: reqwest::Client,
    token: String,
    owner: String,
}

impl Chain {
    /// Connects to the node and deploys a fresh test USDC from a fresh account.
    async fn start() -> Chain {
        Chain::start_at(rpc_url()).await
    }

    /// [`Chain::start`] on the node at `url` (a private one: [`PrivateNode`]).
    async fn start_at(url: String) -> Chain {
        // A node that stops answering fails the test instead of hanging it.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut chain = Chain {
            url,
            http,
            token: String::new(),
            owner: String::new(),
        };
        let chain_id = chain.rpc("eth_chainId", json!([])).await;
        assert_eq!(
            chain_id,
            json!(format!("0x{CHAIN_ID:x}")),
            "the node must serve chain {CHAIN_ID}"
        );
        chain.owner = chain.new_account().await;
        let bytecode = include_str!("../fixtures/usdc/TestUSDC.bin").trim();
        let deployer = chain.owner.clone();
        let hash = chain
            .send_raw(json!({"from": deployer, "data": format!("0x{bytecode}")}))
            .await;
        let receipt = chain.receipt(&hash).await;
        assert_eq!(receipt["status"], "0x1", "token deployment: {receipt}");
        chain.token = receipt["contractAddress"].as_str().unwrap().to_owned();
        chain
    }

    /// A new account only this test sends from: impersonated (the node signs its
    /// `eth_sendTransaction`s without a key) and given 100 ETH for gas.
    async fn new_account(&self) -> String {
        let address = random_address();
        self.write("anvil_impersonateAccount", json!([address]))
            .await;
        self.write("anvil_setBalance", json!([address, "0x56bc75e2d63100000"]))
            .await;
        address
    }

    /// A call that changes the chain, made while no other test process makes one.
    async fn write(&self, method: &str, params: Value) -> Value {
        let lock_path = std::env::temp_dir().join("feria-evm-node-writes.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap();
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .unwrap()
            .unwrap();
        let mut answer = self.rpc(method, params).await;
        if method == "eth_sendTransaction" {
            // anvil answers with the hash and mines the block a moment later; the tests
            // count blocks, so the next write waits until this one is in its block.
            let hash = answer.as_str().unwrap().to_owned();
            self.receipt(&hash).await;
            answer = json!(hash);
        }
        drop(lock);
        answer
    }

    async fn rpc(&self, method: &str, params: Value) -> Value {
        let answer: Value = self
            .http
            .post(&self.url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("the EVM node at {} answers: {e}", self.url))
            .json()
            .await
            .unwrap();
        if let Some(error) = answer.get("error") {
            panic!("{method} failed: {error}");
        }
        answer["result"].clone()
    }

    async fn send_raw(&self, tx: Value) -> String {
        self.write("eth_sendTransaction", json!([tx]))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Sends `data` to the token from `from`; `gas` set skips estimation (which refuses
    /// a transaction that would revert).
    async fn call_token(&self, from: &str, data: &str, gas: Option<u64>) -> String {
        let mut tx = json!({"from": from, "to": self.token, "data": data});
        if let Some(gas) = gas {
            tx["gas"] = json!(format!("0x{gas:x}"));
        }
        self.send_raw(tx).await
    }

    /// The transaction's receipt once it is mined (polled for at most 10 s).
    async fn receipt(&self, hash: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
            if !receipt.is_null() {
                return receipt;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{hash} was not mined within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn mint(&self, to: &str, amount: u128) {
        let data = format!("0x40c10f19{}{}", word_address(to), word_u128(amount));
        let hash = self.call_token(&self.owner, &data, None).await;
        assert_eq!(self.receipt(&hash).await["status"], "0x1");
    }

    async fn mine(&self, blocks: u32) {
        for _ in 0..blocks {
            self.write("evm_mine", json!([])).await;
        }
    }
}

fn word_address(address: &str) -> String {
    format!(
        "{:0>64}",
        address.trim_start_matches("0x").to_ascii_lowercase()
    )
}

fn word_u128(value: u128) -> String {
    format!("{value:064x}")
}

/// `transfer(to, amount)` calldata followed by `tail` (hex, no 0x).
fn transfer_data(to: &str, amount: u128, tail: &str) -> String {
    format!("0xa9059cbb{}{}{tail}", word_address(to), word_u128(amount))
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A fresh treasury address (no key needed: it only receives).
fn random_address() -> String {
    // "feria" (5 bytes) and a fresh ULID (15 of its 16 bytes): 20 bytes.
    let id: String = ulid::Ulid::new()
        .0
        .to_be_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("0x{}{}", hex_of("feria"), &id[..30])
}

struct World {
    app: TestApp,
    chain: Chain,
    treasury: String,
    acme: CreatedPlatform,
}

impl World {
    fn key(&self) -> &str {
        &self.acme.api_keys.live
    }

    async fn send(&self, token: &str, method: Method, path: &str, body: &Value) -> TestResponse {
        self.app.send_json_as(token, method, path, body).await
    }

    async fn create_offer(&self, body: Value) -> Value {
        self.send(
            self.key(),
            Method::POST,
            "/api/v1/marketplace/offers",
            &body,
        )
        .await
        .assert_status(201)
        .json_value()
    }

    async fn quote(&self, wallet: &str, offer_id: &str, workspace: Option<&str>) -> TestResponse {
        let mut body = json!({"wallet": wallet, "offer_id": offer_id});
        if let Some(workspace) = workspace {
            body["workspace_id"] = json!(workspace);
        }
        self.send(
            self.key(),
            Method::POST,
            "/api/v1/marketplace/checkout/quote",
            &body,
        )
        .await
    }

    async fn confirm(&self, quote: &Value, tx_hash: &str) -> TestResponse {
        self.confirm_as(self.key(), quote, tx_hash).await
    }

    async fn confirm_as(&self, token: &str, quote: &Value, tx_hash: &str) -> TestResponse {
        self.send(
            token,
            Method::POST,
            "/api/v1/marketplace/checkout/confirm",
            &json!({
                "quote_id": quote["quote_id"],
                "wallet": quote["wallet"],
                "offer_id": quote["offer_id"],
                "tx_hash": tx_hash,
                "chain_id": CHAIN_ID,
            }),
        )
        .await
    }

    /// Sends the quote's transaction from its wallet.
    async fn pay(&self, quote: &Value) -> String {
        let wallet = quote["wallet"].as_str().unwrap();
        assert_eq!(quote["tx"]["to"].as_str().unwrap(), self.chain.token);
        self.chain
            .call_token(wallet, quote["tx"]["data"].as_str().unwrap(), None)
            .await
    }

    async fn entitlements(&self, wallet: &str) -> Vec<Value> {
        let body = self
            .app
            .get_as(
                self.key(),
                &format!("/api/v1/marketplace/entitlements?wallet={wallet}"),
            )
            .await
            .assert_status(200)
            .json_value();
        body["entitlements"].as_array().unwrap().clone()
    }
}

fn settings(chain: &Chain, treasury: &str, confirmations: u64) -> OnchainSettings {
    OnchainSettings {
        chains: vec![ChainConfig {
            chain_id: CHAIN_ID,
            rpc_url: chain.url.clone(),
            token_address: chain.token.clone(),
            treasury_address: treasury.to_owned(),
            confirmations,
            finality_blocks: 64,
        }],
        ..OnchainSettings::default()
    }
}

async fn world_with(
    confirmations: u64,
    adjust: impl FnOnce(&mut OnchainSettings) + 'static,
) -> World {
    world_on(Chain::start().await, confirmations, adjust).await
}

async fn world_on(
    chain: Chain,
    confirmations: u64,
    adjust: impl FnOnce(&mut OnchainSettings) + 'static,
) -> World {
    let treasury = random_address();
    let mut onchain = settings(&chain, &treasury, confirmations);
    adjust(&mut onchain);
    let app = TestApp::builder()
        .config(move |config| config.onchain = onchain)
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    World {
        app,
        chain,
        treasury,
        acme,
    }
}

async fn world() -> World {
    world_with(1, |_| {}).await
}

fn membership_offer() -> Value {
    json!({
        "offer_id": "edut.membership.annual",
        "issuer_id": "edut.firstparty",
        "title": "EDUT Membership",
        "summary": "Membership for a year.",
        "pricing": {"currency": "USDC", "amount_atomic": MEMBERSHIP_PRICE.to_string(), "decimals": 6, "chain_id": CHAIN_ID},
        "policies": {"member_only": false, "workspace_bound": false, "transferable": false},
        "membership": true,
        "duration_days": 365
    })
}

fn crm_offer() -> Value {
    json!({
        "offer_id": "edut.crm.pro.annual",
        "issuer_id": "edut.firstparty",
        "title": "EDUT CRM Pro",
        "summary": "Workspace-bound CRM module.",
        "pricing": {"currency": "USDC", "amount_atomic": "199000000", "decimals": 6, "chain_id": CHAIN_ID},
        "policies": {"member_only": true, "workspace_bound": true, "transferable": false},
        "duration_days": 365
    })
}

/// Buys the membership for `wallet` (minting it the price first).
async fn become_member(w: &World, wallet: &str) -> Value {
    w.chain.mint(wallet, MEMBERSHIP_PRICE).await;
    let quote = w
        .quote(wallet, "edut.membership.annual", None)
        .await
        .assert_status(200)
        .json_value();
    let hash = w.pay(&quote).await;
    w.confirm(&quote, &hash)
        .await
        .assert_status(200)
        .json_value()
}

#[tokio::test]
async fn the_seed_flow_works_against_the_chain() {
    let w = world().await;
    let wallet = w.chain.new_account().await;
    w.create_offer(membership_offer()).await;
    let created = w.create_offer(crm_offer()).await;
    assert_eq!(created["status"], "active");

    // GET /marketplace/offers: the seed's shape.
    let offers = w
        .app
        .get_as(w.key(), "/api/v1/marketplace/offers")
        .await
        .assert_status(200)
        .json_value();
    let crm = offers["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["offer_id"] == "edut.crm.pro.annual")
        .unwrap()
        .clone();
    assert_eq!(crm["issuer_id"], "edut.firstparty");
    assert_eq!(crm["title"], "EDUT CRM Pro");
    assert_eq!(crm["summary"], "Workspace-bound CRM module.");
    assert_eq!(crm["status"], "active");
    assert_eq!(
        crm["pricing"],
        json!({"currency": "USDC", "amount_atomic": "199000000", "decimals": 6, "chain_id": 8453})
    );
    assert_eq!(
        crm["policies"],
        json!({"member_only": true, "workspace_bound": true, "transferable": false})
    );

    // Member-only: no membership yet.
    let refused = w
        .quote(&wallet, "edut.crm.pro.annual", Some("workspace.work.acme"))
        .await;
    let error = refused.assert_error(403, "membership_required");
    assert_eq!(error.message, "Active membership is required for checkout.");

    let membership = become_member(&w, &wallet).await;
    assert_eq!(
        membership["entitlement_id"],
        format!("ent:8453:{wallet}:000001")
    );

    // The quote, as the seed shows it.
    w.chain.mint(&wallet, PRICE).await;
    let quote = w
        .quote(&wallet, "edut.crm.pro.annual", Some("workspace.work.acme"))
        .await
        .assert_status(200)
        .json_value();
    let quote_id = quote["quote_id"].as_str().unwrap();
    assert!(
        quote_id.starts_with("cq_") && quote_id.len() == 29,
        "{quote_id}"
    );
    assert_eq!(quote["wallet"], wallet);
    assert_eq!(quote["offer_id"], "edut.crm.pro.annual");
    assert_eq!(quote["currency"], "USDC");
    assert_eq!(quote["amount"], "199.00");
    assert_eq!(quote["amount_atomic"], "199000000");
    assert_eq!(quote["decimals"], 6);
    assert_eq!(quote["policy_hash"].as_str().unwrap().len(), 64);
    assert!(quote["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(quote["tx"]["to"], w.chain.token);
    assert_eq!(quote["tx"]["value"], "0x0");
    assert_eq!(
        quote["tx"]["data"],
        transfer_data(&w.treasury, PRICE, &hex_of(quote_id))
    );

    // Pay on chain, confirm.
    let hash = w.pay(&quote).await;
    let confirmed = w
        .confirm(&quote, &hash)
        .await
        .assert_status(200)
        .json_value();
    let entitlement_id = format!("ent:8453:{wallet}:000002");
    assert_eq!(confirmed["status"], "entitlement_active");
    assert_eq!(confirmed["entitlement_id"], entitlement_id);
    assert_eq!(confirmed["offer_id"], "edut.crm.pro.annual");
    assert_eq!(confirmed["wallet"], wallet);
    assert_eq!(confirmed["tx_hash"], hash);
    assert_eq!(confirmed["policy_hash"], quote["policy_hash"]);
    assert!(confirmed["activated_at"].as_str().unwrap().ends_with('Z'));

    // The treasury got the tokens.
    let balance = w
        .chain
        .rpc(
            "eth_call",
            json!([{"to": w.chain.token, "data": format!("0x70a08231{}", word_address(&w.treasury))}, "latest"]),
        )
        .await;
    assert_eq!(
        u128::from_str_radix(balance.as_str().unwrap().trim_start_matches("0x"), 16).unwrap(),
        PRICE + MEMBERSHIP_PRICE
    );

    // Replaying the same hash for the same quote: the same entitlement.
    let again = w
        .confirm(&quote, &hash)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(again, confirmed);

    // GET /marketplace/entitlements: the seed's fields.
    let listed = w.entitlements(&wallet).await;
    assert_eq!(listed.len(), 2);
    let crm = &listed[1];
    assert_eq!(crm["entitlement_id"], entitlement_id);
    assert_eq!(crm["offer_id"], "edut.crm.pro.annual");
    assert_eq!(crm["wallet_address"], wallet);
    assert_eq!(crm["workspace_id"], "workspace.work.acme");
    assert_eq!(crm["state"], "active");
    assert_eq!(crm["policy_hash"], quote["policy_hash"]);
    assert_eq!(crm["issued_at"], confirmed["activated_at"]);
    assert!(crm["expires_at"].is_string(), "annual offers expire");
    assert_eq!(listed[0]["workspace_id"], Value::Null);

    // A mixed-case (EIP-55) wallet finds the same entitlements.
    let checksummed = feria_onchain_entitlements::evm::Address::parse(&wallet)
        .unwrap()
        .checksummed();
    assert_eq!(w.entitlements(&checksummed).await.len(), 2);
}

#[tokio::test]
async fn each_failed_verification_has_its_code() {
    let w = world().await;
    let wallet = w.chain.new_account().await;
    let other = w.chain.new_account().await;
    w.create_offer(membership_offer()).await;
    w.chain.mint(&wallet, 100 * MEMBERSHIP_PRICE).await;
    w.chain.mint(&other, 100 * MEMBERSHIP_PRICE).await;
    let quote = w
        .quote(&wallet, "edut.membership.annual", None)
        .await
        .assert_status(200)
        .json_value();
    let binding = hex_of(quote["quote_id"].as_str().unwrap());

    // Wrong amount.
    let hash = w
        .chain
        .call_token(
            &wallet,
            &transfer_data(&w.treasury, MEMBERSHIP_PRICE - 1, &binding),
            None,
        )
        .await;
    w.confirm(&quote, &hash)
        .await
        .assert_error(422, "amount_mismatch");

    // Wrong recipient (the tokens go elsewhere).
    let hash = w
        .chain
        .call_token(
            &wallet,
            &transfer_data(&other, MEMBERSHIP_PRICE, &binding),
            None,
        )
        .await;
    w.confirm(&quote, &hash)
        .await
        .assert_error(422, "wrong_recipient");

    // Not the token contract: ether straight to the treasury.
    let hash = w
        .chain
        .send_raw(json!({"from": wallet, "to": w.treasury, "value": "0x1"}))
        .await;
    w.confirm(&quote, &hash)
        .await
        .assert_error(422, "wrong_recipient");

    // The right transfer without the quote bound into it.
    let hash = w
        .chain
        .call_token(
            &wallet,
            &transfer_data(&w.treasury, MEMBERSHIP_PRICE, ""),
            None,
        )
        .await;
    w.confirm(&quote, &hash)
        .await
        .assert_error(422, "calldata_mismatch");

    // Paid by another wallet than the quote's.
    let hash = w
        .chain
        .call_token(&other, quote["tx"]["data"].as_str().unwrap(), None)
        .await;
    w.confirm(&quote, &hash)
        .await
        .assert_error(422, "wallet_mismatch");

    // A reverted transaction: a wallet without tokens sends the exact calldata.
    let broke = w.chain.new_account().await;
    let broke_quote = w
        .quote(&broke, "edut.membership.annual", None)
        .await
        .assert_status(200)
        .json_value();
    let hash = w
        .chain
        .call_token(
            &broke,
            broke_quote["tx"]["data"].as_str().unwrap(),
            Some(200_000),
        )
        .await;
    assert_eq!(w.chain.receipt(&hash).await["status"], "0x0");
    w.confirm(&broke_quote, &hash)
        .await
        .assert_error(422, "tx_failed");

    // A hash the chain does not know.
    let unknown = format!("0x{}", "ab".repeat(32));
    w.confirm(&quote, &unknown)
        .await
        .assert_error(404, "tx_not_found");

    // Malformed hash, unknown quote, another offer than the quote's, unsupported chain.
    w.confirm(&quote, "0x1234")
        .await
        .assert_error(422, "validation_failed");
    w.send(
        w.key(),
        Method::POST,
        "/api/v1/marketplace/checkout/confirm",
        &json!({"quote_id": "cq_01HZZXFQ27ZP6MP0V2R9M6V3KX", "wallet": wallet,
                "offer_id": "edut.membership.annual", "tx_hash": unknown, "chain_id": CHAIN_ID}),
    )
    .await
    .assert_error(404, "not_found");
    w.send(
        w.key(),
        Method::POST,
        "/api/v1/marketplace/checkout/confirm",
        &json!({"quote_id": quote["quote_id"], "wallet": wallet,
                "offer_id": "edut.crm.pro.annual", "tx_hash": unknown, "chain_id": CHAIN_ID}),
    )
    .await
    .assert_error(422, "quote_mismatch");
    w.send(
        w.key(),
        Method::POST,
        "/api/v1/marketplace/checkout/confirm",
        &json!({"quote_id": quote["quote_id"], "wallet": wallet,
                "offer_id": "edut.membership.annual", "tx_hash": unknown, "chain_id": 1}),
    )
    .await
    .assert_error(422, "unsupported_chain");

    // None of these granted anything; the real payment still does.
    assert!(w.entitlements(&wallet).await.is_empty());
    let hash = w.pay(&quote).await;
    w.confirm(&quote, &hash).await.assert_status(200);
}

#[tokio::test]
async fn a_hash_grants_one_entitlement_only() {
    let w = world().await;
    let wallet = w.chain.new_account().await;
    w.create_offer(membership_offer()).await;
    w.chain.mint(&wallet, 10 * MEMBERSHIP_PRICE).await;
    let first = w
        .quote(&wallet, "edut.membership.annual", None)
        .await
        .assert_status(200)
        .json_value();
    let second = w
        .quote(&wallet, "edut.membership.annual", None)
        .await
        .assert_status(200)
        .json_value();
    let hash = w.pay(&first).await;
    w.confirm(&first, &hash).await.assert_status(200);

    // The same hash for another quote.
    w.confirm(&second, &hash)
        .await
        .assert_error(409, "tx_already_used");
    // The first quote again with another (valid-looking) transaction.
    let other_hash = w.pay(&second).await;
    w.confirm(&first, &other_hash)
        .await
        .assert_error(409, "quote_already_used");
    // The second quote's own payment works.
    let confirmed = w
        .confirm(&second, &other_hash)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        confirmed["entitlement_id"],
        format!("ent:8453:{wallet}:000002")
    );
    assert_eq!(w.entitlements(&wallet).await.len(), 2);
}

#[tokio::test]
async fn parallel_confirmations_of_one_hash_create_one_entitlement() {
    let w = world().await;
    let wallet = w.chain.new_account().await;
    w.create_offer(membership_offer()).await;
    w.chain.mint(&wallet, MEMBERSHIP_PRICE).await;
    let quote = w
        .quote(&wallet, "edut.membership.annual", None)
        .await
        .assert_status(200)
        .json_value();
    let hash = w.pay(&quote).await;
    let answers = futures_util::future::join_all((0..10).map(|_| w.confirm(&quote, &hash))).await;
    let ids: Vec<Value> = answers
        .into_iter()
        .map(|answer| answer.assert_status(200).json_value()["entitlement_id"].clone())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(w.entitlements(&wallet).await.len(), 1);
}

#[tokio::test]
async fn too_few_confirmations_is_pending_until_the_chain_is_deep_enough() {
    let w = world_with(1_000_000, |_| {}).await;
    let wallet = w.chain.new_account().await;
    w.create_offer(membership_offer()).await;
    w.chain.mint(&wallet, MEMBERSHIP_PRICE).await;
    let quote = w
        .quote(&wallet, "edut.membership.annual", None)
        .await
        .assert_status(200)
        .json_value();
    let hash = w.pay(&quote).await;
    w.chain.mine(2).await;
    let pending = w
        .confirm(&quote, &hash)
        .await
        .assert_status(202)
        .json_value();
    assert_eq!(pending["status"], "pending_confirmation");
    assert_eq!(pending["code"], "insufficient_confirmations");
    assert_eq!(pending["required"], 1_000_000);
    let confirmations = pending["confirmations"].as_u64().unwrap();
    assert!((1..1_000_000).contains(&confirmations), "{pending}");
    assert!(w.entitlements(&wallet).await.is_empty());
}

#[tokio::test]
async fn a_quote_paid_after_it_expired_is_refused() {
    let w = world_with(1, |settings| settings.quote_ttl = Duration::from_secs(1)).await;
    let wallet = w.chain.new_account().await;
    w.create_offer(membership_offer()).await;
    w.chain.mint(&wallet, MEMBERSHIP_PRICE).await;
    let quote = w
        .quote(&wallet, "edut.membership.annual", None)
        .await
        .assert_status(200)
        .json_value();
    // Block timestamps are whole seconds of the wall clock.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let hash = w.pay(&quote).await;
    w.confirm(&quote, &hash)
        .await
        .assert_error(422, "quote_expired");
}

#[tokio::test]
async fn a_node_on_another_chain_is_a_chain_mismatch() {
    // The node serves 8453; this server believes it serves chain 1.
    let chain = Chain::start().await;
    let treasury = random_address();
    let mut onchain = settings(&chain, &treasury, 1);
    onchain.chains[0].chain_id = 1;
    let app = TestApp::builder()
        .config(move |config| config.onchain = onchain)
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let key = acme.api_keys.live.as_str();
    let mut offer = membership_offer();
    offer["pricing"]["chain_id"] = json!(1);
    app.send_json_as(key, Method::POST, "/api/v1/marketplace/offers", &offer)
        .await
        .assert_status(201);
    let wallet = chain.new_account().await;
    let quote = app
        .send_json_as(
            key,
            Method::POST,
            "/api/v1/marketplace/checkout/quote",
            &json!({"wallet": wallet, "offer_id": "edut.membership.annual"}),
        )
        .await
        .assert_status(200)
        .json_value();
    chain.mint(&wallet, MEMBERSHIP_PRICE).await;
    let hash = chain
        .call_token(&wallet, quote["tx"]["data"].as_str().unwrap(), None)
        .await;
    app.send_json_as(
        key,
        Method::POST,
        "/api/v1/marketplace/checkout/confirm",
        &json!({"quote_id": quote["quote_id"], "wallet": wallet, "offer_id": "edut.membership.annual",
                "tx_hash": hash, "chain_id": 1}),
    )
    .await
    .assert_error(422, "chain_mismatch");
}

/// Quotes and confirms on a server whose chain 8453 is served by `rpc_url`.
async fn confirm_through(chain: &Chain, rpc_url: &str) -> TestResponse {
    let treasury = random_address();
    let mut onchain = settings(chain, &treasury, 1);
    onchain.chains[0].rpc_url = rpc_url.to_owned();
    onchain.rpc_retries = 1;
    let app = TestApp::builder()
        .config(move |config| config.onchain = onchain)
        .spawn()
        .await;
    let acme = app
        .create_platform("Acme", "acme.example.com", "owner@acme.example")
        .await;
    let key = acme.api_keys.live.as_str();
    app.send_json_as(
        key,
        Method::POST,
        "/api/v1/marketplace/offers",
        &membership_offer(),
    )
    .await
    .assert_status(201);
    let wallet = chain.new_account().await;
    let quote = app
        .send_json_as(
            key,
            Method::POST,
            "/api/v1/marketplace/checkout/quote",
            &json!({"wallet": wallet, "offer_id": "edut.membership.annual"}),
        )
        .await
        .assert_status(200)
        .json_value();
    app.send_json_as(
        key,
        Method::POST,
        "/api/v1/marketplace/checkout/confirm",
        &json!({"quote_id": quote["quote_id"], "wallet": wallet, "offer_id": "edut.membership.annual",
                "tx_hash": format!("0x{}", "cd".repeat(32)), "chain_id": CHAIN_ID}),
    )
    .await
}

#[tokio::test]
async fn a_node_that_fails_is_a_clear_503() {
    let chain = Chain::start().await;
    // Nothing listens on port 9 of the loopback.
    let answer = confirm_through(&chain, "http://127.0.0.1:9").await;
    let error = answer.assert_error(503, "chain_unavailable");
    assert!(error.message.contains("retry"));
    assert!(answer.header("retry-after").is_some());
    // Something answers, but not JSON-RPC: another Feria server.
    let not_a_node = TestApp::spawn().await;
    confirm_through(&chain, &not_a_node.base_url)
        .await
        .assert_error(503, "chain_rpc_error");
}

#[tokio::test]
async fn checkout_validates_wallets_workspaces_and_offers() {
    let w = world().await;
    w.create_offer(membership_offer()).await;
    let mut crm = crm_offer();
    crm["policies"]["member_only"] = json!(false);
    w.create_offer(crm).await;

    // Wallets: malformed, bad EIP-55 checksum, good checksum (answered lower-case).
    for bad in [
        "0x123",
        "3ea6cbf98d23e2cf7b6f4f9bb1fb4f50b710f2d5",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD",
    ] {
        let error = w
            .quote(bad, "edut.membership.annual", None)
            .await
            .assert_error(422, "validation_failed");
        assert_eq!(error.details[0].field, "wallet");
    }
    let good = w
        .quote(
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "edut.membership.annual",
            None,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(good["wallet"], "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed");
    assert_eq!(good["amount"], "5.00");

    // Workspace-bound offers need a workspace.
    let error = w
        .quote(&w.chain.owner, "edut.crm.pro.annual", None)
        .await
        .assert_error(422, "validation_failed");
    assert_eq!(error.details[0].field, "workspace_id");

    // Unknown and retired offers.
    w.quote(&w.chain.owner, "no.such.offer", None)
        .await
        .assert_error(404, "not_found");
    let retired = w
        .send(
            w.key(),
            Method::DELETE,
            "/api/v1/marketplace/offers/edut.membership.annual",
            &json!({}),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(retired["status"], "retired");
    w.quote(&w.chain.owner, "edut.membership.annual", None)
        .await
        .assert_error(404, "not_found");
    let offers = w
        .app
        .get_as(w.key(), "/api/v1/marketplace/offers")
        .await
        .json_value();
    assert_eq!(offers["offers"].as_array().unwrap().len(), 1);

    // Operators replace offers; bad fields and duplicates are refused.
    let mut fields = crm_offer();
    fields.as_object_mut().unwrap().remove("offer_id");
    fields["pricing"]["amount_atomic"] = json!("250000000");
    let updated = w
        .send(
            w.key(),
            Method::PUT,
            "/api/v1/marketplace/offers/edut.crm.pro.annual",
            &fields,
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(updated["pricing"]["amount_atomic"], "250000000");
    w.send(
        w.key(),
        Method::PUT,
        "/api/v1/marketplace/offers/nope",
        &fields,
    )
    .await
    .assert_error(404, "not_found");
    w.send(
        w.key(),
        Method::POST,
        "/api/v1/marketplace/offers",
        &crm_offer(),
    )
    .await
    .assert_error(409, "offer_exists");
    for (path, value) in [
        ("/offer_id", json!("Bad Id")),
        ("/pricing/amount_atomic", json!("1.5")),
        ("/pricing/amount_atomic", json!("0")),
        ("/pricing/decimals", json!(-1)),
        ("/title", json!("")),
    ] {
        let mut offer = crm_offer();
        offer["offer_id"] = json!("x.valid");
        *offer.pointer_mut(path).unwrap() = value;
        w.send(w.key(), Method::POST, "/api/v1/marketplace/offers", &offer)
            .await
            .assert_error(422, "validation_failed");
    }
    // An offer on a chain this server does not know cannot be checked out.
    let mut elsewhere = membership_offer();
    elsewhere["offer_id"] = json!("on.chain.ten");
    elsewhere["pricing"]["chain_id"] = json!(10);
    w.create_offer(elsewhere).await;
    w.quote(&w.chain.owner, "on.chain.ten", None)
        .await
        .assert_error(422, "unsupported_chain");
}

#[tokio::test]
async fn auth_tenancy_and_revocation() {
    let w = world().await;
    let wallet = w.chain.new_account().await;
    w.create_offer(membership_offer()).await;
    w.create_offer(crm_offer()).await;

    // No credentials.
    w.app
        .get("/api/v1/marketplace/offers")
        .await
        .assert_error(401, "unauthorized");
    w.app
        .post_json(
            "/api/v1/marketplace/checkout/quote",
            &json!({"wallet": wallet, "offer_id": "edut.membership.annual"}),
        )
        .await
        .assert_error(401, "unauthorized");

    // A signed-in user reads offers, quotes and confirms, but is no operator.
    let session = w
        .app
        .sign_in(w.acme.platform.id.as_str(), "buyer@example.com", "live")
        .await;
    let user = session["access_token"].as_str().unwrap();
    let offers = w
        .app
        .get_as(user, "/api/v1/marketplace/offers")
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(offers["offers"].as_array().unwrap().len(), 2);
    let mut offer = crm_offer();
    offer["offer_id"] = json!("by.a.user");
    w.send(user, Method::POST, "/api/v1/marketplace/offers", &offer)
        .await
        .assert_status(403);
    w.chain.mint(&wallet, MEMBERSHIP_PRICE).await;
    let quote = w
        .send(
            user,
            Method::POST,
            "/api/v1/marketplace/checkout/quote",
            &json!({"wallet": wallet, "offer_id": "edut.membership.annual"}),
        )
        .await
        .assert_status(200)
        .json_value();
    let hash = w.pay(&quote).await;
    let granted = w
        .confirm_as(user, &quote, &hash)
        .await
        .assert_status(200)
        .json_value();
    let entitlement_id = granted["entitlement_id"].as_str().unwrap().to_owned();

    // Test mode and another platform see none of it; the hash cannot be reused there.
    let other = w
        .app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    for key in [&other.api_keys.live, &w.acme.api_keys.test] {
        let listed = w
            .app
            .get_as(
                key,
                &format!("/api/v1/marketplace/entitlements?wallet={wallet}"),
            )
            .await
            .assert_status(200)
            .json_value();
        assert_eq!(listed["entitlements"], json!([]));
        let offers = w
            .app
            .get_as(key, "/api/v1/marketplace/offers")
            .await
            .json_value();
        assert_eq!(offers["offers"], json!([]));
        w.send(
            key,
            Method::POST,
            "/api/v1/marketplace/checkout/confirm",
            &json!({
            "quote_id": quote["quote_id"], "wallet": wallet, "offer_id": "edut.membership.annual",
            "tx_hash": hash, "chain_id": CHAIN_ID}),
        )
        .await
        .assert_error(404, "not_found");
    }
    w.app
        .send_json_as(
            &other.api_keys.live,
            Method::POST,
            "/api/v1/marketplace/offers",
            &membership_offer(),
        )
        .await
        .assert_status(201);
    let foreign_quote = w
        .app
        .send_json_as(
            &other.api_keys.live,
            Method::POST,
            "/api/v1/marketplace/checkout/quote",
            &json!({"wallet": wallet, "offer_id": "edut.membership.annual"}),
        )
        .await
        .assert_status(200)
        .json_value();
    w.app
        .send_json_as(&other.api_keys.live, Method::POST, "/api/v1/marketplace/checkout/confirm", &json!({
            "quote_id": foreign_quote["quote_id"], "wallet": wallet, "offer_id": "edut.membership.annual",
            "tx_hash": hash, "chain_id": CHAIN_ID}))
        .await
        .assert_error(409, "tx_already_used");

    // The membership lets the wallet quote the member-only offer ...
    w.quote(&wallet, "edut.crm.pro.annual", Some("ws.1"))
        .await
        .assert_status(200);
    // ... until an operator revokes it (users may not).
    let revoke = format!("/api/v1/marketplace/entitlements/{entitlement_id}/revoke");
    w.send(user, Method::POST, &revoke, &json!({}))
        .await
        .assert_status(403);
    w.send(&other.api_keys.live, Method::POST, &revoke, &json!({}))
        .await
        .assert_error(404, "not_found");
    let revoked = w
        .send(w.key(), Method::POST, &revoke, &json!({}))
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(w.entitlements(&wallet).await[0]["state"], "revoked");
    // One `entitlement.revoked` event, however often it is revoked.
    w.send(w.key(), Method::POST, &revoke, &json!({}))
        .await
        .assert_status(200);
    let events = w
        .app
        .get_as(w.key(), "/api/v1/events?type=entitlement.revoked")
        .await
        .assert_status(200)
        .json_value();
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["object"]["state"], "revoked");
    w.quote(&wallet, "edut.crm.pro.annual", Some("ws.1"))
        .await
        .assert_error(403, "membership_required");

    // The wallet query is required and checked.
    w.app
        .get_as(w.key(), "/api/v1/marketplace/entitlements")
        .await
        .assert_error(400, "invalid_query");
    w.app
        .get_as(w.key(), "/api/v1/marketplace/entitlements?wallet=0xnope")
        .await
        .assert_error(422, "validation_failed");
}

/// Membership is checked when the quote is made, not again at confirmation: a member-only
/// quote paid on chain within its lifetime is honoured even when the membership was
/// revoked between quote and payment (the payment cannot be taken back; docs/ONCHAIN.md,
/// "Membership"). A new quote after the revocation is refused.
#[tokio::test]
async fn a_paid_member_only_quote_is_honoured_after_the_membership_is_revoked() {
    let w = world().await;
    let wallet = w.chain.new_account().await;
    w.create_offer(membership_offer()).await;
    w.create_offer(crm_offer()).await;
    let membership = become_member(&w, &wallet).await;
    let membership_id = membership["entitlement_id"].as_str().unwrap().to_owned();

    w.chain.mint(&wallet, PRICE).await;
    let quote = w
        .quote(&wallet, "edut.crm.pro.annual", Some("ws.1"))
        .await
        .assert_status(200)
        .json_value();
    let revoke = format!("/api/v1/marketplace/entitlements/{membership_id}/revoke");
    w.send(w.key(), Method::POST, &revoke, &json!({}))
        .await
        .assert_status(200);

    let hash = w.pay(&quote).await;
    let granted = w
        .confirm(&quote, &hash)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(granted["offer_id"], "edut.crm.pro.annual");
    assert_eq!(granted["status"], "entitlement_active");
    // The revocation stands, and a new quote needs a membership again.
    let held = w.entitlements(&wallet).await;
    let states: Vec<(&str, &str)> = held
        .iter()
        .map(|e| {
            (
                e["offer_id"].as_str().unwrap(),
                e["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        states.contains(&("edut.membership.annual", "revoked")),
        "{states:?}"
    );
    assert!(
        states.contains(&("edut.crm.pro.annual", "active")),
        "{states:?}"
    );
    w.quote(&wallet, "edut.crm.pro.annual", Some("ws.1"))
        .await
        .assert_error(403, "membership_required");
}

// ---------------------------------------------------------------------------------------
// Receipts (docs/ONCHAIN.md, "Receipts").

/// The server's keyring, as the server made it (the key file on SQLite, the test key on
/// PostgreSQL): what `feria keys rotate` would use.
fn server_keys(app: &TestApp) -> feria_kernel::sealed::Keyring {
    let settings = feria::config::SecretKeySettings {
        current: (app.backend() == feria_kernel::Backend::Postgres)
            .then(|| feria_testkit::TEST_SECRET_KEY.to_owned()),
        previous: None,
    };
    feria::secrets::keyring(&settings, app.backend(), app.data_dir()).unwrap()
}

/// Verifies `receipt` with PyJWT (scripts/receipt-verify.sh) against `jwks`: Feria's code
/// plays no part. The claims, or the verifier's complaint.
fn verify_with_pyjwt(jwks: &Value, receipt: &str, platform: &str) -> Result<Value, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/receipt-verify.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg(&file)
        .arg(receipt)
        .arg(platform)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

async fn jwks(w: &World, query: &str) -> Value {
    // Public: no credentials.
    w.app
        .get(&format!("/.well-known/jwks.json?{query}"))
        .await
        .assert_status(200)
        .json_value()
}

/// A wallet with a paid, confirmed membership: (wallet, entitlement id).
async fn entitled(w: &World) -> (String, String) {
    let wallet = w.chain.new_account().await;
    let confirmed = become_member(w, &wallet).await;
    (
        wallet,
        confirmed["entitlement_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_receipt_verifies_offline_with_pyjwt_and_outlives_a_key_rotation() {
    let w = world().await;
    w.create_offer(membership_offer()).await;
    let (wallet, id) = entitled(&w).await;
    let platform = w.acme.platform.id.to_string();
    let path = format!("/api/v1/marketplace/entitlements/{id}/receipt");

    let first = w
        .app
        .get_as(w.key(), &path)
        .await
        .assert_status(200)
        .json_value();
    let receipt = first["receipt"].as_str().unwrap().to_owned();
    assert_eq!(receipt.split('.').count(), 3, "a compact JWS");
    // Another platform's key and the test mode's key do not reach it.
    let other = w
        .app
        .create_platform("Other", "other.example.com", "owner@other.example")
        .await;
    for key in [&other.api_keys.live, &w.acme.api_keys.test] {
        w.app.get_as(key, &path).await.assert_status(404);
    }
    assert_eq!(
        first["jwks_uri"],
        format!("/.well-known/jwks.json?platform={platform}&mode=live")
    );
    let keys = jwks(&w, &format!("platform={platform}")).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert_eq!(keys["keys"][0]["kty"], "OKP");
    assert_eq!(keys["keys"][0]["crv"], "Ed25519");
    assert_eq!(keys["keys"][0]["kid"], first["kid"]);

    let claims = verify_with_pyjwt(&keys, &receipt, &platform).unwrap();
    assert_eq!(claims["entitlement_id"], id);
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["offer_id"], "edut.membership.annual");
    assert_eq!(claims["wallet"], wallet);
    assert_eq!(claims["workspace_id"], Value::Null);
    assert_eq!(claims["chain_id"], CHAIN_ID);
    assert_eq!(claims["mode"], "live");
    assert_eq!(claims["iss"], format!("feria:{platform}:live"));
    assert_eq!(claims["finality"], "pending");
    assert_eq!(claims["policy_hash"].as_str().unwrap().len(), 64);
    assert_eq!(claims["tx_hash"].as_str().unwrap().len(), 66);
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 86_400, "ONCHAIN_RECEIPT_TTL_SECS by default");
    assert_eq!(claims, first["claims"]);

    // Altered claims, another platform's keys, or the test mode's keys: refused.
    let mut parts: Vec<String> = receipt.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    assert!(verify_with_pyjwt(&keys, &parts.join("."), &platform).is_err());
    assert!(verify_with_pyjwt(&keys, &receipt, "plat_someoneelse").is_err());
    let test_keys = jwks(&w, &format!("platform={platform}&mode=test")).await;
    assert_eq!(test_keys["keys"], json!([]));
    assert!(verify_with_pyjwt(&test_keys, &receipt, &platform).is_err());
    assert_eq!(jwks(&w, "platform=plat_nobody").await["keys"], json!([]));
    w.app
        .get("/.well-known/jwks.json")
        .await
        .assert_error(400, "invalid_query");

    // `feria keys rotate`: a new key signs; the old one stays published, so the receipt
    // it signed still verifies.
    let tenant = feria_kernel::Tenant::new(w.acme.platform.id.clone(), feria_kernel::Mode::Live);
    let mut conn = w.app.db().conn().await.unwrap();
    let new_kid = feria_onchain_entitlements::receipt::rotate(
        &mut conn,
        &tenant,
        &server_keys(&w.app),
        Duration::from_secs(86_400),
    )
    .await
    .unwrap();
    drop(conn);
    let second = w
        .app
        .get_as(w.key(), &path)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(second["kid"], new_kid);
    let keys = jwks(&w, &format!("platform={platform}")).await;
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str(), first["kid"].as_str().unwrap()]);
    verify_with_pyjwt(&keys, &receipt, &platform).unwrap();
    verify_with_pyjwt(&keys, second["receipt"].as_str().unwrap(), &platform).unwrap();

    // Only active entitlements get receipts; credentials are needed; ids are per tenant.
    w.send(
        w.key(),
        Method::POST,
        &format!("/api/v1/marketplace/entitlements/{id}/revoke"),
        &json!({}),
    )
    .await
    .assert_status(200);
    w.app
        .get_as(w.key(), &path)
        .await
        .assert_error(409, "entitlement_not_active");
    w.app.get(&path).await.assert_status(401);
    w.app
        .get_as(&w.acme.api_keys.test, &path)
        .await
        .assert_error(404, "not_found");
}

// ---------------------------------------------------------------------------------------
// Finality (docs/ONCHAIN.md, "Finality"). Reorgs are made with evm_snapshot/evm_revert,
// which would undo other tests' transactions on the shared node: these tests run nodes of
// their own.

/// Blocks anvil keeps between its head and its `finalized` block: twice its epoch.
const PRIVATE_SLOTS_PER_EPOCH: u64 = 4;

/// An anvil of this test only (killed when dropped), whose `finalized` block trails the
/// head by `2 × PRIVATE_SLOTS_PER_EPOCH` blocks.
struct PrivateNode {
    child: std::process::Child,
    url: String,
}

impl PrivateNode {
    async fn start() -> PrivateNode {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/evm-node.sh");
        let output = Command::new("bash")
            .arg(script)
            .arg("binary")
            .output()
            .unwrap();
        let binary = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(
            output.status.success() && !binary.is_empty(),
            "{script} binary: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--chain-id", &CHAIN_ID.to_string(), "--silent"])
            .args(["--slots-in-an-epoch", &PRIVATE_SLOTS_PER_EPOCH.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let node = PrivateNode {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let answer = http
                .post(&node.url)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return node;
            }
            assert!(std::time::Instant::now() < deadline, "anvil did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A world on a private node: one confirmation; the watcher every 100 ms.
async fn reorg_world(node: &PrivateNode) -> World {
    let chain = Chain::start_at(node.url.clone()).await;
    world_on(chain, 2, |onchain| {
        onchain.finality_interval = Some(Duration::from_millis(100));
    })
    .await
}

async fn entitlement(w: &World, wallet: &str, id: &str) -> Value {
    w.entitlements(wallet)
        .await
        .into_iter()
        .find(|e| e["entitlement_id"] == id)
        .unwrap()
}

/// Polls the wallet's entitlement until `done` holds (at most 20 s).
async fn wait_for(w: &World, wallet: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = entitlement(w, wallet, id).await;
        if done(&found) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not get there: {found}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn revoked_events(w: &World, id: &str) -> usize {
    let events = w
        .app
        .get_as(w.key(), "/api/v1/events?type=entitlement.revoked&limit=100")
        .await
        .assert_status(200)
        .json_value();
    events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["object"]["entitlement_id"] == id)
        .count()
}

#[tokio::test]
async fn a_reorg_after_the_confirmations_and_before_finality_revokes_once_and_frees_the_quote() {
    let node = PrivateNode::start().await;
    let w = reorg_world(&node).await;
    w.create_offer(membership_offer()).await;
    let wallet = w.chain.new_account().await;
    w.chain.mint(&wallet, 2 * MEMBERSHIP_PRICE).await;
    let quote = w
        .quote(&wallet, "edut.membership.annual", None)
        .await
        .assert_status(200)
        .json_value();

    // Paid and confirmed (two confirmations), then the chain forgets the payment.
    let before_payment = w.chain.write("evm_snapshot", json!([])).await;
    let hash = w.pay(&quote).await;
    w.chain.mine(1).await;
    let granted = w
        .confirm(&quote, &hash)
        .await
        .assert_status(200)
        .json_value();
    let id = granted["entitlement_id"].as_str().unwrap().to_owned();
    let shown = entitlement(&w, &wallet, &id).await;
    assert_eq!(
        (shown["state"].clone(), shown["finality"].clone()),
        (json!("active"), json!("pending"))
    );
    assert_eq!(
        w.chain.write("evm_revert", json!([before_payment])).await,
        json!(true)
    );
    w.chain.mine(1).await;

    // Other nodes' watchers on the same database at the same time: still one revocation.
    let onchain =
        feria_onchain_entitlements::Onchain::new(&settings(&w.chain, &w.treasury, 2)).unwrap();
    let mut others = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let db = w.app.db().clone();
        let onchain = onchain.clone();
        others.spawn(async move {
            for _ in 0..20 {
                feria_onchain_entitlements::finality::run_round(
                    &db,
                    &onchain,
                    Duration::from_millis(10),
                )
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    let revoked = wait_for(&w, &wallet, &id, |e| e["state"] == "revoked").await;
    while let Some(joined) = others.join_next().await {
        joined.unwrap();
    }
    assert_eq!(revoked["revoked_reason"], "payment_reorged");
    assert_eq!(revoked["finality"], "pending");
    assert_eq!(revoked_events(&w, &id).await, 1, "one entitlement.revoked");
    // No receipt for it any more.
    w.app
        .get_as(
            w.key(),
            &format!("/api/v1/marketplace/entitlements/{id}/receipt"),
        )
        .await
        .assert_error(409, "entitlement_not_active");

    // The quote may be paid again: the new payment grants a new entitlement.
    let again = w.pay(&quote).await;
    w.chain.mine(1).await;
    let regranted = w
        .confirm(&quote, &again)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(
        regranted["entitlement_id"],
        format!("ent:8453:{wallet}:000002")
    );
    // ... once: a replay answers the same entitlement; the quote holds its new payment.
    let replay = w
        .confirm(&quote, &again)
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(replay["entitlement_id"], regranted["entitlement_id"]);
    if again != hash {
        w.confirm(&quote, &hash)
            .await
            .assert_error(409, "quote_already_used");
    }
    // ... and it becomes final once the chain finalizes its block.
    w.chain.mine(2 * PRIVATE_SLOTS_PER_EPOCH as u32 + 1).await;
    let id2 = regranted["entitlement_id"].as_str().unwrap();
    let last = wait_for(&w, &wallet, id2, |e| e["finality"] == "final").await;
    assert_eq!(last["state"], "active");
}

#[tokio::test]
async fn a_reorg_after_finality_changes_nothing() {
    let node = PrivateNode::start().await;
    let w = reorg_world(&node).await;
    w.create_offer(membership_offer()).await;
    let wallet = w.chain.new_account().await;
    w.chain.mint(&wallet, MEMBERSHIP_PRICE).await;
    let quote = w
        .quote(&wallet, "edut.membership.annual", None)
        .await
        .assert_status(200)
        .json_value();
    let before_payment = w.chain.write("evm_snapshot", json!([])).await;
    let hash = w.pay(&quote).await;
    w.chain.mine(1).await;
    let granted = w
        .confirm(&quote, &hash)
        .await
        .assert_status(200)
        .json_value();
    let id = granted["entitlement_id"].as_str().unwrap().to_owned();

    // Not final while the node's `finalized` block is below the payment's ...
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(entitlement(&w, &wallet, &id).await["finality"], "pending");
    // ... final once it is at or above it.
    w.chain.mine(2 * PRIVATE_SLOTS_PER_EPOCH as u32 + 1).await;
    let finalized = w
        .chain
        .rpc("eth_getBlockByNumber", json!(["finalized", false]))
        .await;
    let receipt = w.chain.receipt(&hash).await;
    assert!(
        u64::from_str_radix(
            finalized["number"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
            16
        )
        .unwrap()
            >= u64::from_str_radix(
                receipt["blockNumber"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("0x"),
                16
            )
            .unwrap()
    );
    wait_for(&w, &wallet, &id, |e| e["finality"] == "final").await;
    let receipt = w
        .app
        .get_as(
            w.key(),
            &format!("/api/v1/marketplace/entitlements/{id}/receipt"),
        )
        .await
        .assert_status(200)
        .json_value();
    assert_eq!(receipt["claims"]["finality"], "final");

    // A reorg deeper than finality (which a real chain does not do): nothing changes.
    assert_eq!(
        w.chain.write("evm_revert", json!([before_payment])).await,
        json!(true)
    );
    w.chain.mine(1).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = entitlement(&w, &wallet, &id).await;
    assert_eq!(after["state"], "active");
    assert_eq!(after["finality"], "final");
    assert_eq!(after["revoked_reason"], Value::Null);
    assert_eq!(revoked_events(&w, &id).await, 0);
}
