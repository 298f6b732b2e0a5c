//! The HTTP surface: one module per area, each with a `configure` function and its
//! OpenAPI paths. Handlers stay thin: extract, call one service function, map the result.

pub mod auth;
pub mod health;
pub mod meta;
pub mod platforms;
pub mod users;
pub mod waitlists;

use actix_web::web;

/// Routes under `/api/v1`; domain modules register here as they land.
pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.configure(auth::configure)
        .configure(platforms::configure)
        .configure(users::configure)
        .configure(waitlists::configure);
}
