//! The ledger against real databases (SQLite file; PostgreSQL with
//! `FERIA_TEST_BACKEND=postgres`): settlements, refunds, idempotency, and a randomized
//! storm of concurrent money operations after which the ledger must verify.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_billing::BillingError;
use feria_billing::credits;
use feria_billing::ledger::{self, AccountKey, AccountKind, EXTERNAL_LIMIT_MINOR};
use feria_billing::settlement::{self, Settlement, SettlementFees};
use feria_billing::transactions::{self, TransactionKind};
use feria_kernel::money::{Currency, MAX_AMOUNT_MINOR, Money};
use feria_kernel::testing::TestDatabase;
use feria_kernel::{Mode, Tenant, UserId};
use rand::{Rng, SeedableRng};

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::USD)
}

async fn setup() -> (TestDatabase, Tenant) {
    let test_db = TestDatabase::from_env().await.expect("test database");
    let mut conn = test_db.db().conn().await.unwrap();
    let platform = feria_platforms::platform::create(
        &mut conn,
        feria_platforms::NewPlatform {
            name: "Ledger".into(),
            domain: "ledger.example.com".into(),
            description: None,
            url: None,
        },
    )
    .await
    .unwrap();
    (test_db, Tenant::new(platform.id, Mode::Live))
}

fn simple_settlement(
    key: &str,
    buyer: &UserId,
    seller: &UserId,
    amount: i64,
    fee: i64,
) -> Settlement {
    Settlement {
        key: key.into(),
        contract_id: Some(format!("inv_{key}")),
        escrow_owner: key.into(),
        currency: Currency::USD,
        charges: vec![(buyer.clone(), usd(amount))],
        earnings: vec![(seller.clone(), usd(amount - fee))],
        fees: SettlementFees {
            platform: usd(fee),
            ..SettlementFees::zero(Currency::USD)
        },
        description: None,
    }
}

#[tokio::test]
async fn settlement_moves_credits_to_sellers_and_fees_once() {
    let (db, tenant) = setup().await;
    let mut conn = db.db().conn().await.unwrap();
    let (buyer, seller) = (UserId::new(), UserId::new());
    credits::top_up(&mut conn, &tenant, &buyer, usd(10_000), None)
        .await
        .unwrap();

    let settled = settlement::settle(
        &mut conn,
        &tenant,
        simple_settlement("k1", &buyer, &seller, 6_000, 150),
    )
    .await
    .unwrap();
    assert!(!settled.replayed);
    let kinds: Vec<TransactionKind> = settled.transactions.iter().map(|t| t.kind).collect();
    assert_eq!(
        kinds,
        [
            TransactionKind::Charge,
            TransactionKind::Earning,
            TransactionKind::Fee
        ]
    );
    assert_eq!(
        credits::balance(&mut conn, &tenant, &buyer, Currency::USD)
            .await
            .unwrap(),
        usd(4_000)
    );
    let receivable = AccountKey::new(
        AccountKind::SellerReceivable,
        seller.as_str(),
        Currency::USD,
    );
    assert_eq!(
        ledger::balance(&mut conn, &tenant, &receivable)
            .await
            .unwrap(),
        usd(5_850)
    );
    let escrow = AccountKey::new(AccountKind::Escrow, "k1", Currency::USD);
    assert_eq!(
        ledger::balance(&mut conn, &tenant, &escrow).await.unwrap(),
        usd(0)
    );

    // The same key and parameters: the first result, nothing moves.
    let again = settlement::settle(
        &mut conn,
        &tenant,
        simple_settlement("k1", &buyer, &seller, 6_000, 150),
    )
    .await
    .unwrap();
    assert!(again.replayed);
    let ids = |settled: &feria_billing::settlement::Settled| {
        let mut ids: Vec<_> = settled.transactions.iter().map(|t| t.id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&again), ids(&settled));
    assert_eq!(
        credits::balance(&mut conn, &tenant, &buyer, Currency::USD)
            .await
            .unwrap(),
        usd(4_000)
    );
    // The same key, other parameters: refused.
    let other = settlement::settle(
        &mut conn,
        &tenant,
        simple_settlement("k1", &buyer, &seller, 5_000, 150),
    )
    .await;
    assert!(
        matches!(other, Err(BillingError::IdempotencyKeyReused)),
        "{other:?}"
    );

    // Not enough credits: nothing at all happens.
    let broke = settlement::settle(
        &mut conn,
        &tenant,
        simple_settlement("k2", &buyer, &seller, 4_001, 0),
    )
    .await;
    assert!(
        matches!(broke, Err(BillingError::InsufficientFunds { .. })),
        "{broke:?}"
    );
    assert_eq!(
        credits::balance(&mut conn, &tenant, &buyer, Currency::USD)
            .await
            .unwrap(),
        usd(4_000)
    );
    assert_eq!(
        ledger::balance(&mut conn, &tenant, &receivable)
            .await
            .unwrap(),
        usd(5_850)
    );

    // Amounts that do not add up are refused before anything is written.
    let mut wrong = simple_settlement("k3", &buyer, &seller, 1_000, 0);
    wrong.earnings[0].1 = usd(999);
    assert!(matches!(
        settlement::settle(&mut conn, &tenant, wrong).await,
        Err(BillingError::Invalid {
            field: "earnings",
            ..
        })
    ));
    assert!(ledger::verify(&mut conn).await.unwrap().is_ok());
}

#[tokio::test]
async fn refunds_are_funded_in_proportion_and_never_exceed_the_charge() {
    let (db, tenant) = setup().await;
    let mut conn = db.db().conn().await.unwrap();
    let (buyer, seller_a, seller_b) = (UserId::new(), UserId::new(), UserId::new());
    credits::top_up(&mut conn, &tenant, &buyer, usd(10_000), None)
        .await
        .unwrap();
    let settled = settlement::settle(
        &mut conn,
        &tenant,
        Settlement {
            key: "multi".into(),
            contract_id: Some("inv_multi".into()),
            escrow_owner: "multi".into(),
            currency: Currency::USD,
            charges: vec![(buyer.clone(), usd(10_000))],
            earnings: vec![
                (seller_a.clone(), usd(6_000)),
                (seller_b.clone(), usd(3_000)),
            ],
            fees: SettlementFees {
                platform: usd(700),
                service: usd(300),
                processor: usd(0),
            },
            description: None,
        },
    )
    .await
    .unwrap();
    let charge = settled
        .transactions
        .iter()
        .find(|t| t.kind == TransactionKind::Charge)
        .unwrap();

    // 33.33 refunded: 60 % / 30 % / 7 % / 3 %, parts summing exactly.
    let refunded = settlement::refund(
        &mut conn,
        &tenant,
        &charge.id,
        Some(usd(3_333)),
        Some("r1".into()),
    )
    .await
    .unwrap();
    let amounts: Vec<(TransactionKind, String)> = refunded
        .transactions
        .iter()
        .map(|t| (t.kind, t.amount.to_string()))
        .collect();
    assert_eq!(amounts[0], (TransactionKind::Refund, "33.33".into()));
    let parts: rust_decimal::Decimal = refunded.transactions[1..].iter().map(|t| t.amount).sum();
    assert_eq!(parts.to_string(), "33.33");
    assert_eq!(
        credits::balance(&mut conn, &tenant, &buyer, Currency::USD)
            .await
            .unwrap(),
        usd(3_333)
    );
    let a = AccountKey::new(
        AccountKind::SellerReceivable,
        seller_a.as_str(),
        Currency::USD,
    );
    assert_eq!(
        ledger::balance(&mut conn, &tenant, &a).await.unwrap(),
        usd(6_000 - 2_000)
    );

    // A repeat with the same key returns the same refund; nothing moves.
    let again = settlement::refund(
        &mut conn,
        &tenant,
        &charge.id,
        Some(usd(3_333)),
        Some("r1".into()),
    )
    .await
    .unwrap();
    assert!(again.replayed);
    let ids = |settled: &feria_billing::settlement::Settled| {
        let mut ids: Vec<_> = settled.transactions.iter().map(|t| t.id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&again), ids(&refunded));
    assert_eq!(
        credits::balance(&mut conn, &tenant, &buyer, Currency::USD)
            .await
            .unwrap(),
        usd(3_333)
    );

    // More than is left → refused; the rest → fine; then nothing is left.
    assert!(matches!(
        settlement::refund(&mut conn, &tenant, &charge.id, Some(usd(6_668)), None).await,
        Err(BillingError::RefundTooLarge { remaining: 6_667 })
    ));
    settlement::refund(&mut conn, &tenant, &charge.id, None, None)
        .await
        .unwrap();
    assert!(matches!(
        settlement::refund(&mut conn, &tenant, &charge.id, None, None).await,
        Err(BillingError::NotRefundable(_))
    ));
    assert_eq!(
        credits::balance(&mut conn, &tenant, &buyer, Currency::USD)
            .await
            .unwrap(),
        usd(10_000)
    );
    assert_eq!(
        ledger::balance(&mut conn, &tenant, &a).await.unwrap(),
        usd(0)
    );
    let charge = transactions::get(&mut conn, &tenant, &charge.id)
        .await
        .unwrap();
    assert_eq!(charge.refunded_amount.to_string(), "100.00");
    // Only charges are refunded.
    let earning = settled
        .transactions
        .iter()
        .find(|t| t.kind == TransactionKind::Earning)
        .unwrap();
    assert!(matches!(
        settlement::refund(&mut conn, &tenant, &earning.id, None, None).await,
        Err(BillingError::NotRefundable(_))
    ));
    assert!(ledger::verify(&mut conn).await.unwrap().is_ok());
}

#[tokio::test]
async fn concurrent_settlements_with_one_key_settle_once() {
    let (db, tenant) = setup().await;
    let (buyer, seller) = (UserId::new(), UserId::new());
    {
        let mut conn = db.db().conn().await.unwrap();
        credits::top_up(&mut conn, &tenant, &buyer, usd(1_000), None)
            .await
            .unwrap();
    }
    let attempts = (0..8).map(|_| {
        let (db, tenant, buyer, seller) = (
            db.db().clone(),
            tenant.clone(),
            buyer.clone(),
            seller.clone(),
        );
        tokio::spawn(async move {
            let mut conn = db.conn().await.unwrap();
            settlement::settle(
                &mut conn,
                &tenant,
                simple_settlement("once", &buyer, &seller, 700, 0),
            )
            .await
        })
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut fresh = 0;
    for result in results {
        match result.unwrap() {
            Ok(settled) if !settled.replayed => fresh += 1,
            Ok(_) => {}
            Err(error) => panic!("a repeat must replay, not fail: {error:?}"),
        }
    }
    assert_eq!(fresh, 1);
    let mut conn = db.db().conn().await.unwrap();
    assert_eq!(
        credits::balance(&mut conn, &tenant, &buyer, Currency::USD)
            .await
            .unwrap(),
        usd(300)
    );
}

/// Every account stays within its bound, checked in the database without computing past
/// it: a credit account holds at most `MAX_AMOUNT_MINOR`, the outside world goes at most
/// `EXTERNAL_LIMIT_MINOR` either way, a posting past that is refused before any SQL, and
/// a refused entry moves nothing.
#[tokio::test]
async fn balances_stay_within_their_bounds_and_refusals_move_nothing() {
    let (db, tenant) = setup().await;
    let mut conn = db.db().conn().await.unwrap();
    let (buyer, seller) = (UserId::new(), UserId::new());
    let balance = async |conn: &mut feria_kernel::DbConn, key: &AccountKey| {
        ledger::balance(conn, &tenant, key).await.unwrap().minor()
    };
    let credit = AccountKey::new(AccountKind::UserCredit, buyer.as_str(), Currency::USD);

    // A top-up past the bound is invalid; up to it, fine; a unit more, refused.
    assert!(matches!(
        credits::top_up(&mut conn, &tenant, &buyer, usd(MAX_AMOUNT_MINOR + 1), None).await,
        Err(BillingError::Invalid {
            field: "amount",
            ..
        })
    ));
    credits::top_up(&mut conn, &tenant, &buyer, usd(MAX_AMOUNT_MINOR - 5), None)
        .await
        .unwrap();
    for amount in [6, 1_000, MAX_AMOUNT_MINOR] {
        let refused = credits::top_up(&mut conn, &tenant, &buyer, usd(amount), None).await;
        assert!(
            matches!(
                refused,
                Err(BillingError::BalanceLimitExceeded {
                    kind: AccountKind::UserCredit,
                    ..
                })
            ),
            "{amount}: {refused:?}"
        );
        assert_eq!(balance(&mut conn, &credit).await, MAX_AMOUNT_MINOR - 5);
    }
    credits::top_up(&mut conn, &tenant, &buyer, usd(5), None)
        .await
        .unwrap();
    assert_eq!(balance(&mut conn, &credit).await, MAX_AMOUNT_MINOR);

    // Charges adding up past the bound are refused before anything is written.
    let mut two = simple_settlement("two", &buyer, &seller, MAX_AMOUNT_MINOR, 0);
    two.charges.push((UserId::new(), usd(1)));
    two.earnings[0].1 = usd(MAX_AMOUNT_MINOR + 1);
    assert!(matches!(
        settlement::settle(&mut conn, &tenant, two).await,
        Err(BillingError::Invalid {
            field: "charges",
            ..
        })
    ));

    // The outside world: two external accounts trade up to the wide bound, not past it.
    let (a, b) = (
        AccountKey::new(AccountKind::External, "a", Currency::USD),
        AccountKey::new(AccountKind::External, "b", Currency::USD),
    );
    let transfer = |minor: i64| ledger::NewEntry {
        kind: ledger::EntryKind::Payout,
        reference: None,
        idempotency_key: None,
        fingerprint: None,
        postings: vec![(a.clone(), usd(-minor)), (b.clone(), usd(minor))],
    };
    ledger::post(&mut conn, &tenant, transfer(EXTERNAL_LIMIT_MINOR))
        .await
        .unwrap();
    assert!(matches!(
        ledger::post(&mut conn, &tenant, transfer(1)).await,
        Err(BillingError::BalanceLimitExceeded {
            kind: AccountKind::External,
            ..
        })
    ));
    assert_eq!(balance(&mut conn, &a).await, -EXTERNAL_LIMIT_MINOR);
    assert_eq!(balance(&mut conn, &b).await, EXTERNAL_LIMIT_MINOR);
    // Back the other way it moves again; a delta past the wide bound is refused as out of
    // range before any SQL could overflow.
    ledger::post(&mut conn, &tenant, transfer(-EXTERNAL_LIMIT_MINOR))
        .await
        .unwrap();
    for minor in [EXTERNAL_LIMIT_MINOR + 1, i64::MAX, i64::MIN + 1] {
        assert!(matches!(
            ledger::post(&mut conn, &tenant, transfer(minor)).await,
            Err(BillingError::Money(
                feria_kernel::money::MoneyError::Overflow
            ))
        ));
    }
    assert_eq!(balance(&mut conn, &a).await, 0);
    assert_eq!(balance(&mut conn, &b).await, 0);
    let verification = ledger::verify(&mut conn).await.unwrap();
    assert!(verification.is_ok(), "{verification:?}");
}

/// A retryable refusal: the database stayed busy past its timeout (SQLite on a loaded
/// machine). The server answers such a request 503 and nothing of it is written — which
/// the verification below checks like any other outcome.
fn busy(error: &BillingError) -> bool {
    matches!(error, BillingError::Db(db) if db.is_retryable())
}

/// Thousands of top-ups, settlements (some overdrawing) and refunds from concurrent
/// writers over a few users; afterwards the ledger balances to the unit, every balance
/// equals its postings, no credit account is negative, and the money in the system is
/// exactly what was topped up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_concurrent_money_operations_leaves_the_ledger_balanced() {
    let (db, tenant) = setup().await;
    let users: Vec<UserId> = (0..6).map(|_| UserId::new()).collect();
    // As many writers as the test pool has connections: each waits for the database,
    // never for a connection, however slow the machine is.
    let workers = 4;
    let operations_per_worker = 500;
    let tasks = (0..workers).map(|worker| {
        let (db, tenant, users) = (db.db().clone(), tenant.clone(), users.clone());
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(worker);
            let mut charges = Vec::new();
            let (mut topped_up, mut refused) = (0i64, 0u32);
            for op in 0..operations_per_worker {
                let buyer = &users[rng.random_range(0..users.len())];
                let seller = &users[rng.random_range(0..users.len())];
                // A connection per operation, as requests take them.
                let mut conn = db.conn().await.unwrap();
                match rng.random_range(0..10) {
                    0..=2 => {
                        let amount = rng.random_range(1..5_000);
                        match credits::top_up(&mut conn, &tenant, buyer, usd(amount), None).await {
                            Ok(_) => topped_up += amount,
                            Err(error) if busy(&error) => refused += 1,
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                    3..=7 => {
                        let amount = rng.random_range(100..4_000);
                        let fee = amount / 20;
                        let key = format!("w{worker}-{op}");
                        match settlement::settle(
                            &mut conn,
                            &tenant,
                            simple_settlement(&key, buyer, seller, amount, fee),
                        )
                        .await
                        {
                            Ok(settled) => charges.push(settled.transactions[0].id.clone()),
                            Err(BillingError::InsufficientFunds { .. }) => refused += 1,
                            Err(error) if busy(&error) => refused += 1,
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                    _ => {
                        if let Some(charge) = charges.get(rng.random_range(0..charges.len().max(1)))
                        {
                            let amount = usd(rng.random_range(1..200));
                            match settlement::refund(&mut conn, &tenant, charge, Some(amount), None)
                                .await
                            {
                                Ok(_)
                                | Err(BillingError::RefundTooLarge { .. })
                                | Err(BillingError::NotRefundable(_))
                                | Err(BillingError::InsufficientFunds { .. }) => {}
                                Err(error) if busy(&error) => {}
                                Err(other) => panic!("unexpected {other:?}"),
                            }
                        }
                    }
                }
            }
            (topped_up, refused)
        })
    });
    let mut topped_up = 0;
    for outcome in futures_util::future::join_all(tasks).await {
        topped_up += outcome.unwrap().0;
    }

    let mut conn = db.db().conn().await.unwrap();
    let report = ledger::verify(&mut conn).await.unwrap();
    assert!(report.is_ok(), "{report:#?}");
    assert!(
        report.entries > 500,
        "the storm wrote {} entries",
        report.entries
    );
    // All money in Feria came in through top-ups: the outside world's account says so.
    let external = AccountKey::new(AccountKind::External, credits::INTERNAL, Currency::USD);
    assert_eq!(
        ledger::balance(&mut conn, &tenant, &external)
            .await
            .unwrap(),
        usd(-topped_up)
    );
    for user in &users {
        assert!(
            !credits::balance(&mut conn, &tenant, user, Currency::USD)
                .await
                .unwrap()
                .is_negative()
        );
    }
}
