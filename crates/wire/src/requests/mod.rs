//! Request schemas, one file per API family. Each gives `ALL`, its requests at the versions
//! Shoal advertises (`handlers::api_versions::SUPPORTED` in the broker; a broker test checks the
//! two agree). Field versions are inclusive; `MAX` means "and later".

pub mod admin;
pub mod groups;
pub mod produce_fetch;
pub mod security;
pub mod share;
pub mod txn;

use crate::schema::Request;

/// Every family's requests.
pub static ALL: &[&[&Request]] = &[
    produce_fetch::ALL,
    groups::ALL,
    share::ALL,
    txn::ALL,
    security::ALL,
    admin::ALL,
];
