//! Users: the people of a platform.
//!
//! Profiles, links, images, and references to payment methods and bank accounts held by a
//! payment provider. Users belong to one platform and have a role there (owner, admin,
//! editor, member).
//!
//! Planned surface (identity issue): create on first sign-in, read, update, list with
//! pagination, links and images. May call `platforms`.
