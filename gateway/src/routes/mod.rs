//! The HTTP surface: one module per area, each with a `configure` function and its
//! OpenAPI paths. Handlers stay thin: extract, call one service function, map the result.

pub mod health;
pub mod meta;

use actix_web::web;

/// Routes under `/api/v1`; domain modules register here as they land.
pub fn configure_api(_cfg: &mut web::ServiceConfig) {}
