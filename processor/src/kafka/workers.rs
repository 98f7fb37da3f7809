//! The processing threads (`kafka.processing_threads`). A turn's tasks
//! share nothing — one engine per input partition — so each task's events,
//! and the encoding of what they caused, can run on its own thread; only
//! sending the records stays on the job's thread, in the order a single
//! thread would have sent them. What each engine computes does not depend
//! on the thread count, so outputs and snapshots are the same byte for
//! byte, and per-agent order is kept since an agent lives in one task.
//!
//! A turn with little input runs on the job's thread: waking the pool costs
//! more than it saves, and that is the low-latency case.

use std::num::NonZeroUsize;

use rayon::prelude::*;

use super::JobError;

/// Fewest events in a turn worth running on the pool (a few µs of engine
/// work per partition at least, against the wake-up of a sleeping thread).
pub const MIN_PARALLEL_EVENTS: usize = 512;

/// A pool of processing threads, or none (everything on the caller).
///
/// ```
/// use std::num::NonZeroUsize;
/// use breakwater::kafka::workers::Workers;
/// let workers = Workers::new(NonZeroUsize::new(2)).unwrap();
/// let inputs = [(1..=1000).collect::<Vec<u64>>(), vec![5; 900]];
/// let mut totals = [0u64; 2];
/// let mut work: Vec<(&Vec<u64>, &mut u64)> = inputs.iter().zip(totals.iter_mut()).collect();
/// // Weighted by length: 1 900 in all, enough to go to the pool.
/// workers.each(&mut work, |w| w.0.len(), |w| *w.1 = w.0.iter().sum());
/// assert_eq!(totals, [500_500, 4_500]);
/// ```
pub struct Workers {
    pool: Option<rayon::ThreadPool>,
}

impl Workers {
    /// `threads` processing threads (`None`: one per core). One thread
    /// means no pool: the job's thread does everything, as it always did.
    pub fn new(threads: Option<NonZeroUsize>) -> Result<Self, JobError> {
        let n = threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get);
        if n == 1 {
            return Ok(Workers { pool: None });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("breakwater-proc-{i}"))
            .build()
            .map_err(|e| JobError::Threads(e.to_string()))?;
        Ok(Workers { pool: Some(pool) })
    }

    /// How many threads run a turn's tasks.
    pub fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or(1, rayon::ThreadPool::current_num_threads)
    }

    /// Runs `f` on every item, side by side when there are two or more
    /// and their `weight`s (events) add up to [`MIN_PARALLEL_EVENTS`];
    /// otherwise in order on the caller's thread. Returns when all are
    /// done: whether they ran side by side.
    pub fn each<T: Send>(
        &self,
        items: &mut [T],
        weight: impl Fn(&T) -> usize,
        f: impl Fn(&mut T) + Sync + Send,
    ) -> bool {
        match &self.pool {
            Some(pool)
                if items.len() > 1
                    && items.iter().map(weight).sum::<usize>() >= MIN_PARALLEL_EVENTS =>
            {
                // One item per job: a turn has a few tasks, each worth
                // micro- to milliseconds, and stealing evens out their sizes.
                pool.install(|| items.par_iter_mut().with_max_len(1).for_each(f));
                true
            }
            _ => {
                items.iter_mut().for_each(f);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    #[test]
    fn a_big_turn_runs_on_the_pool_and_a_small_one_on_the_caller() {
        let workers = Workers::new(NonZeroUsize::new(2)).unwrap();
        assert_eq!(workers.threads(), 2);
        let caller = std::thread::current().id();
        let seen = Mutex::new(BTreeSet::new());
        let mut items = vec![MIN_PARALLEL_EVENTS / 2; 2];
        let parallel = workers.each(
            &mut items,
            |&w| w,
            |w| {
                *w += 1;
                seen.lock()
                    .unwrap()
                    .insert(format!("{:?}", std::thread::current().id()));
            },
        );
        assert!(parallel);
        assert_eq!(items, [MIN_PARALLEL_EVENTS / 2 + 1; 2]);
        let pool_threads = std::mem::take(&mut *seen.lock().unwrap());
        assert!(
            !pool_threads.contains(&format!("{caller:?}")),
            "{pool_threads:?}"
        );

        let mut small = vec![1usize, 2];
        let parallel = workers.each(
            &mut small,
            |&w| w,
            |w| {
                *w *= 10;
                seen.lock()
                    .unwrap()
                    .insert(format!("{:?}", std::thread::current().id()));
            },
        );
        assert!(!parallel);
        assert_eq!(small, [10, 20]);
        assert_eq!(
            *seen.lock().unwrap(),
            BTreeSet::from([format!("{caller:?}")])
        );
    }

    #[test]
    fn one_thread_is_no_pool() {
        let workers = Workers::new(NonZeroUsize::new(1)).unwrap();
        assert_eq!(workers.threads(), 1);
        let mut items = vec![MIN_PARALLEL_EVENTS; 3];
        let caller = std::thread::current().id();
        let parallel = workers.each(
            &mut items,
            |&w| w,
            |w| {
                assert_eq!(std::thread::current().id(), caller);
                *w = 0;
            },
        );
        assert!(!parallel);
        assert_eq!(items, [0; 3]);
    }
}
