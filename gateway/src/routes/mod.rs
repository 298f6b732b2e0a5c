//! The HTTP surface: one module per area, each with a `configure` function and its
//! OpenAPI paths. Handlers stay thin: extract, call one service function, map the result.

pub mod auth;
pub mod calendars;
pub mod carts;
pub mod catalog;
pub mod contracts;
pub mod credits;
pub mod events;
pub mod fees;
pub mod health;
pub mod marketplace;
pub mod media;
pub mod meta;
pub mod onchain;
pub mod platforms;
pub mod subscriptions;
pub mod transactions;
pub mod uploads;
pub mod user_payments;
pub mod usernames;
pub mod users;
pub mod waitlists;

use actix_web::web;

/// Routes under `/api/v1`; domain modules register here as they land.
pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.configure(auth::configure)
        .configure(calendars::configure)
        .configure(platforms::configure)
        .configure(users::configure)
        .configure(user_payments::configure)
        .configure(credits::configure)
        .configure(transactions::configure)
        .configure(events::configure)
        .configure(usernames::configure)
        .configure(uploads::configure)
        .configure(fees::configure)
        .configure(waitlists::configure)
        .configure(catalog::configure)
        .configure(carts::configure)
        .configure(contracts::configure)
        .configure(subscriptions::configure)
        // Static /marketplace/offers, /checkout, /entitlements before /marketplace/{id}.
        .configure(onchain::configure)
        .configure(marketplace::configure);
}
