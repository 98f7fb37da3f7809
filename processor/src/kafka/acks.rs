//! Which output records the broker has not acknowledged yet, counted by
//! the *epoch* they were sent in. A periodic checkpoint closes an epoch
//! (see [`super::collector::RecordCollector::mark`]) and may commit its
//! input offsets once every record of that epoch and of all earlier ones
//! is acknowledged: the processing loop never waits for the broker.
//!
//! A record the producer gives up on keeps its epoch while it is sent
//! again, so a failed delivery holds the commit of its checkpoint (and of
//! every later one) until the record is acknowledged.

use std::collections::BTreeMap;

/// Unacknowledged records per epoch. Pure bookkeeping: the collector
/// counts sends into it and the delivery callback counts acknowledgements.
#[derive(Debug, Default)]
pub struct Unacked {
    /// Only epochs with at least one unacknowledged record.
    by_epoch: BTreeMap<u64, usize>,
}

impl Unacked {
    /// A record of `epoch` was handed to the producer.
    pub fn sent(&mut self, epoch: u64) {
        *self.by_epoch.entry(epoch).or_default() += 1;
    }

    /// The broker acknowledged a record of `epoch`.
    pub fn acked(&mut self, epoch: u64) {
        if let Some(n) = self.by_epoch.get_mut(&epoch) {
            *n -= 1;
            if *n == 0 {
                self.by_epoch.remove(&epoch);
            }
        } else {
            debug_assert!(false, "an acknowledgement of epoch {epoch} never sent");
        }
    }

    /// Whether every record sent in `epoch` or an earlier one is acknowledged.
    pub fn acked_through(&self, epoch: u64) -> bool {
        self.by_epoch
            .first_key_value()
            .is_none_or(|(&oldest, _)| oldest > epoch)
    }

    /// Records sent and not acknowledged yet, in every epoch.
    pub fn total(&self) -> usize {
        self.by_epoch.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_is_acknowledged_once_it_and_every_earlier_one_are() {
        let mut u = Unacked::default();
        assert!(u.acked_through(0), "nothing sent, nothing to wait for");
        u.sent(0);
        u.sent(1);
        u.sent(1);
        assert!(!u.acked_through(0) && !u.acked_through(1));
        // Acknowledgements come in any order across partitions: the later
        // epoch's are not enough while an earlier record is out.
        u.acked(1);
        u.acked(1);
        assert!(!u.acked_through(1), "epoch 0 still has a record out");
        u.acked(0);
        assert!(u.acked_through(1) && u.acked_through(5));
        assert_eq!(u.total(), 0);
    }

    #[test]
    fn a_record_out_in_a_later_epoch_does_not_hold_an_earlier_one() {
        let mut u = Unacked::default();
        u.sent(3);
        u.sent(4);
        u.acked(3);
        assert!(u.acked_through(3));
        assert!(!u.acked_through(4));
        assert_eq!(u.total(), 1);
    }
}
