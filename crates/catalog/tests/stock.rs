//! Stock and prices against a real database (SQLite, or PostgreSQL with
//! `FERIA_TEST_BACKEND=postgres`): concurrent reservations never oversell, and the price
//! in force follows the seasons.

// Test helpers panic on failure: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use feria_catalog::pricing::{self, NewSeasonalPrice};
use feria_catalog::product::{self, Actor, NewProduct};
use feria_catalog::{CatalogError, ProductId, stock};
use feria_kernel::testing::TestDatabase;
use feria_kernel::{Db, DbConn, Mode, Tenant, Timestamp};
use feria_platforms::NewPlatform;
use feria_users::Role;
use rust_decimal::Decimal;

struct World {
    test_db: TestDatabase,
    tenant: Tenant,
    seller: Actor,
}

async fn world() -> World {
    let test_db = TestDatabase::from_env().await.expect("test database");
    let mut conn = test_db.db().conn().await.unwrap();
    let platform = feria_platforms::platform::create(
        &mut conn,
        NewPlatform {
            name: "Acme".into(),
            domain: "acme.example.com".into(),
            description: None,
            url: None,
        },
    )
    .await
    .unwrap();
    let tenant = Tenant::new(platform.id, Mode::Live);
    let user = feria_users::user::create(&mut conn, &tenant, "seller@example.com", Role::Member)
        .await
        .unwrap();
    World {
        test_db,
        tenant,
        seller: Actor::user(user.id, false),
    }
}

impl World {
    fn db(&self) -> &Db {
        self.test_db.db()
    }

    async fn product(&self, quantity: i64, price: &str) -> ProductId {
        let mut conn = self.db().conn().await.unwrap();
        let new: NewProduct = serde_json::from_value(serde_json::json!({
            "name": "Lamp",
            "price": price.parse::<f64>().unwrap(),
            "quantity": quantity,
        }))
        .unwrap();
        product::create(&mut conn, &self.tenant, &self.seller, new)
            .await
            .unwrap()
            .id
    }

    async fn quantity(&self, id: &ProductId) -> i64 {
        let mut conn = self.db().conn().await.unwrap();
        product::get(&mut conn, &self.tenant, id)
            .await
            .unwrap()
            .quantity
    }
}

/// Runs `attempts` reservations of `units` at once, each on its own connection, inside
/// a transaction when `in_transaction`; returns how many succeeded.
async fn race(
    world: &World,
    id: &ProductId,
    attempts: usize,
    units: i64,
    in_transaction: bool,
) -> usize {
    let tasks: Vec<_> = (0..attempts)
        .map(|_| {
            let db = world.db().clone();
            let tenant = world.tenant.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let mut conn = db.conn().await.unwrap();
                if in_transaction {
                    conn.transaction(async |c: &mut DbConn| {
                        stock::reserve(c, &tenant, &id, units).await
                    })
                    .await
                } else {
                    stock::reserve(&mut conn, &tenant, &id, units).await
                }
            })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(left) => {
                assert!(left >= 0);
                succeeded += 1;
            }
            Err(CatalogError::OutOfStock | CatalogError::InsufficientStock { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    succeeded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_decrements_succeed_exactly_as_often_as_there_is_stock() {
    let world = world().await;
    let id = world.product(5, "10").await;
    assert_eq!(race(&world, &id, 20, 1, false).await, 5);
    assert_eq!(world.quantity(&id).await, 0);

    // Several units at a time: 7 units, 2 per order → 3 orders, 1 unit left.
    let id = world.product(7, "10").await;
    assert_eq!(race(&world, &id, 12, 2, false).await, 3);
    assert_eq!(world.quantity(&id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_decrements_inside_transactions_never_oversell() {
    let world = world().await;
    let id = world.product(4, "10").await;
    assert_eq!(race(&world, &id, 16, 1, true).await, 4);
    assert_eq!(world.quantity(&id).await, 0);
}

#[tokio::test]
async fn reserve_and_release_report_what_is_left() {
    let world = world().await;
    let id = world.product(3, "10").await;
    let mut conn = world.db().conn().await.unwrap();
    assert_eq!(
        stock::reserve(&mut conn, &world.tenant, &id, 2)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        stock::reserve(&mut conn, &world.tenant, &id, 2).await,
        Err(CatalogError::InsufficientStock { available: 1 })
    ));
    assert_eq!(
        stock::reserve(&mut conn, &world.tenant, &id, 1)
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        stock::reserve(&mut conn, &world.tenant, &id, 1).await,
        Err(CatalogError::OutOfStock)
    ));
    assert_eq!(
        stock::release(&mut conn, &world.tenant, &id, 4)
            .await
            .unwrap(),
        4
    );
    assert!(matches!(
        stock::reserve(&mut conn, &world.tenant, &id, 0).await,
        Err(CatalogError::Invalid { .. })
    ));
    // Another tenant (the test world of the same platform) does not see the product.
    let test_world = Tenant::new(world.tenant.platform_id.clone(), Mode::Test);
    assert!(matches!(
        stock::reserve(&mut conn, &test_world, &id, 1).await,
        Err(CatalogError::ProductNotFound)
    ));
}

#[tokio::test]
async fn the_price_in_force_follows_the_seasons_when_in_use() {
    let world = world().await;
    let id = world.product(3, "100").await;
    let mut conn = world.db().conn().await.unwrap();
    let season = NewSeasonalPrice {
        name: "Winter sale".into(),
        price: Decimal::new(8000, 2),
        start: Timestamp::parse("2026-12-01T00:00:00Z").unwrap(),
        end: Timestamp::parse("2027-01-01T00:00:00Z").unwrap(),
    };
    pricing::add(&mut conn, &world.tenant, &world.seller, &id, season)
        .await
        .unwrap();
    let inside = Timestamp::parse("2026-12-24T12:00:00Z").unwrap();
    let outside = Timestamp::parse("2027-01-02T00:00:00Z").unwrap();
    // Usage off: the base price, season or not.
    let off = pricing::price_at(&mut conn, &world.tenant, &id, inside)
        .await
        .unwrap();
    assert_eq!(off.price.minor(), 10000);
    assert_eq!(off.season, None);
    pricing::set_usage(
        &mut conn,
        &world.tenant,
        &world.seller,
        &id,
        pricing::SeasonalPriceUsage {
            use_seasonal_prices: true,
        },
    )
    .await
    .unwrap();
    let on = pricing::price_at(&mut conn, &world.tenant, &id, inside)
        .await
        .unwrap();
    assert_eq!(on.price.minor(), 8000);
    assert!(on.season.is_some());
    assert_eq!(
        pricing::price_at(&mut conn, &world.tenant, &id, outside)
            .await
            .unwrap()
            .price
            .minor(),
        10000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_seasons_added_at_once_cannot_both_land() {
    let world = world().await;
    let id = world.product(3, "100").await;
    // As many racers as the test pool has connections, released together.
    let racers = 4;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(racers));
    let tasks: Vec<_> = (0..racers)
        .map(|day| {
            let db = world.db().clone();
            let tenant = world.tenant.clone();
            let seller = world.seller.clone();
            let id = id.clone();
            let start = start.clone();
            tokio::spawn(async move {
                let mut conn = db.conn().await.unwrap();
                start.wait().await;
                // Every season covers 2026-12-10; they start on different days.
                let season = NewSeasonalPrice {
                    name: format!("Season {day}"),
                    price: Decimal::new(5000, 2),
                    start: Timestamp::parse(&format!("2026-12-0{}T00:00:00Z", day + 1)).unwrap(),
                    end: Timestamp::parse("2026-12-20T00:00:00Z").unwrap(),
                };
                pricing::add(&mut conn, &tenant, &seller, &id, season).await
            })
        })
        .collect();
    let mut landed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => landed += 1,
            Err(CatalogError::SeasonOverlap { .. }) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(landed, 1);
}
