//! The coordinator's refusals, one per Kafka error it answers with (mapped to codes at the
//! broker's handler boundary, as `org.apache.kafka.common.protocol.Errors` names them).

/// Why a transaction request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// INVALID_REQUEST (42): an empty transactional id.
    #[error("invalid request")]
    InvalidRequest,
    /// INVALID_TRANSACTION_TIMEOUT (50): not in `1..=transaction.max.timeout.ms`.
    #[error("transaction timeout is larger than transaction.max.timeout.ms or not positive")]
    InvalidTransactionTimeout,
    /// CONCURRENT_TRANSACTIONS (51): markers of the previous transaction are being written;
    /// retriable.
    #[error("the previous transaction is still completing")]
    ConcurrentTransactions,
    /// PRODUCER_FENCED (90; INVALID_PRODUCER_EPOCH (47) for request versions before KIP-588):
    /// the epoch is not the current one.
    #[error("there is a newer producer with the same transactional id")]
    ProducerFenced,
    /// INVALID_PRODUCER_ID_MAPPING (49): the producer id is not the transactional id's.
    #[error("the producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    /// INVALID_TXN_STATE (48): the request does not fit the transaction's state.
    #[error("the request is not valid in the transaction's current state")]
    InvalidTxnState,
    /// TRANSACTIONAL_ID_NOT_FOUND (105): DescribeTransactions of an unknown id.
    #[error("transactional id not found")]
    TransactionalIdNotFound,
    /// COORDINATOR_NOT_AVAILABLE (15): no producer id could be allocated, or the state log
    /// failed.
    #[error("the transaction coordinator is not available")]
    CoordinatorNotAvailable,
}
