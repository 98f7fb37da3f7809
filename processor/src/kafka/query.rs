//! Interactive queries (Kafka Streams' word): the HTTP API reads the
//! agents this instance owns through a [`StateQuery`], which the job
//! attaches its stream to once it runs.

use std::sync::{Arc, Mutex, OnceLock};

use super::owners::Location;
use super::stream::Stream;
use crate::engine::query::{AgentStatus, AgentSummary};

/// Finds where an agent lives (see [`super::owners::Directory::locate`]):
/// given the agent id and this instance's partitions; blocking.
pub type Locator = Arc<dyn Fn(&str, &[i32]) -> Location + Send + Sync>;

/// What a lookup of one agent found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(Box<AgentStatus>),
    /// Not among this instance's agents; these are the input partitions it
    /// owns (another instance of the group owns the agent's partition).
    NotHere {
        partitions: Vec<i32>,
    },
    /// The job has not started its stream yet.
    NotRunning,
}

/// A handle on the running job's agents; cheap to clone.
#[derive(Clone, Default)]
pub struct StateQuery {
    stream: Arc<OnceLock<Arc<Mutex<Stream>>>>,
    locator: Arc<OnceLock<Locator>>,
}

impl std::fmt::Debug for StateQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateQuery")
            .field("attached", &self.stream.get().is_some())
            .finish()
    }
}

impl StateQuery {
    pub(crate) fn attach(&self, stream: Arc<Mutex<Stream>>) {
        let _ = self.stream.set(stream);
    }

    pub(crate) fn attach_locator(&self, locator: Locator) {
        let _ = self.locator.set(locator);
    }

    /// Where `agent_id` lives: its partition and that partition's owner,
    /// as far as the broker can tell; `None` before the job has started.
    /// Blocking (asks the broker): call it off the async runtime.
    pub fn locate(&self, agent_id: &str, owned: &[i32]) -> Option<Location> {
        self.locator.get().map(|l| l(agent_id, owned))
    }

    /// The status view of one agent.
    pub fn agent(&self, agent_id: &str) -> Lookup {
        let Some(stream) = self.stream.get() else {
            return Lookup::NotRunning;
        };
        let mut s = stream.lock().expect("stream lock");
        match s.agent_status(agent_id) {
            Some(status) => Lookup::Found(Box::new(status)),
            None => Lookup::NotHere {
                partitions: s.owned_partitions(),
            },
        }
    }

    /// Every agent this instance owns, sorted by id; `None` before the job runs.
    pub fn agents(&self) -> Option<Vec<AgentSummary>> {
        let stream = self.stream.get()?;
        let s = stream.lock().expect("stream lock");
        let mut all = s.agent_summaries();
        all.sort_unstable_by(|a, b| a.agent_id.cmp(&b.agent_id));
        Some(all)
    }
}
