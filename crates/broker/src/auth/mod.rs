//! Who a connection is: [`principal::KafkaPrincipal`] (`User:<name>`) from a TLS client
//! certificate, mapped with `ssl.principal.mapping.rules` as Kafka's `SslPrincipalMapper`
//! does. ACLs and quotas will key on it.

pub mod acl;
pub mod principal;
pub mod sasl;
pub mod scram;
