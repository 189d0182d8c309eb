//! Idempotent-producer state per partition (KIP-98): for each `producer_id`, its epoch and the
//! last [`MAX_CACHED_BATCHES`] batches' sequence ranges and offsets, so a retried batch is
//! acknowledged with its original offset instead of being appended twice, and a gap is refused
//! with `OUT_OF_ORDER_SEQUENCE_NUMBER`. Rebuilt from batch headers when a log is opened.

use std::collections::{HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::error::LogError;

/// Kafka keeps the last five batches per producer (`max.in.flight.requests.per.connection` <= 5).
pub const MAX_CACHED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy)]
struct CachedBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    max_timestamp: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<CachedBatch>,
    /// Timestamp of its last batch or marker (ms).
    last_timestamp: i64,
}

/// Outcome of checking a batch against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent or next in sequence: append it.
    Append,
    /// Exactly a batch already appended: acknowledge with its original `base_offset`.
    Duplicate {
        base_offset: i64,
        max_timestamp: i64,
    },
}

/// Per-partition idempotent producer table.
#[derive(Debug, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStateTable {
    /// Checks `header` (an incoming batch) against the table, without changing it.
    ///
    /// Errors: [`LogError::InvalidProducerEpoch`] for an epoch older than the known one;
    /// [`LogError::OutOfOrderSequence`] when the sequence neither continues the last batch nor
    /// repeats a cached one, or a new epoch does not start at sequence 0.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, LogError> {
        if !header.has_producer_id() || header.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // No state (new producer, or state lost to retention): accept, as Kafka does.
            return Ok(SequenceCheck::Append);
        };
        if header.producer_epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: header.producer_id,
                current: entry.epoch,
                got: header.producer_epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            if header.base_sequence != 0 {
                return Err(LogError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                    expected: 0,
                    got: header.base_sequence,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        let last_seq = header.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
                max_timestamp: dup.max_timestamp,
            });
        }
        let expected = entry.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if header.base_sequence != expected {
            return Err(LogError::OutOfOrderSequence {
                producer_id: header.producer_id,
                expected,
                got: header.base_sequence,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Checks a transaction marker (control batch) for `header.producer_id`: a marker may
    /// carry a newer epoch than the producer's batches (the coordinator fenced it), never an
    /// older one.
    ///
    /// Errors: [`LogError::InvalidProducerEpoch`] for an epoch older than the known one.
    pub fn check_marker(&self, header: &BatchHeader) -> Result<(), LogError> {
        match self.producers.get(&header.producer_id) {
            Some(entry) if header.producer_epoch < entry.epoch => {
                Err(LogError::InvalidProducerEpoch {
                    producer_id: header.producer_id,
                    current: entry.epoch,
                    got: header.producer_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// `(producer_id, producer_epoch, last_sequence, last_timestamp_ms)` of every producer
    /// known here, by producer id; `last_sequence` is -1 when only markers were seen.
    pub fn describe(&self) -> Vec<(i64, i16, i32, i64)> {
        let mut v: Vec<(i64, i16, i32, i64)> = self
            .producers
            .iter()
            .map(|(pid, e)| {
                let seq = e.batches.back().map_or(-1, |b| b.last_seq);
                (*pid, e.epoch, seq, e.last_timestamp)
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// Records an appended batch (live append or recovery replay); `header.base_offset` must
    /// be the assigned offset. A control batch moves the producer to its epoch (when newer)
    /// without caching a sequence range.
    pub fn record(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() {
            return;
        }
        if header.is_control() {
            let entry = self.producers.entry(header.producer_id).or_default();
            if header.producer_epoch > entry.epoch || entry.batches.is_empty() {
                if header.producer_epoch != entry.epoch {
                    entry.batches.clear();
                }
                entry.epoch = header.producer_epoch;
            }
            entry.last_timestamp = header.max_timestamp;
            return;
        }
        if header.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.last_timestamp = header.max_timestamp;
        entry.batches.push_back(CachedBatch {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            base_offset: header.base_offset,
            max_timestamp: header.max_timestamp,
        });
    }

    /// Forgets every producer (used when a log is truncated to empty).
    pub fn clear(&mut self) {
        self.producers.clear();
    }
}
