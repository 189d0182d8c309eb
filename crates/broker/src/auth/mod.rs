//! Who a connection is: [`principal::KafkaPrincipal`] (`User:<name>`) from a TLS client
//! certificate, mapped with `ssl.principal.mapping.rules` as Kafka's `SslPrincipalMapper`
//! does, or from SASL ([`sasl`], [`oauthbearer`]). ACLs ([`acl`]) and client quotas ([`quota`]) key on it.

pub mod acl;
pub mod oauthbearer;
pub mod principal;
pub mod quota;
pub mod sasl;
pub mod scram;
