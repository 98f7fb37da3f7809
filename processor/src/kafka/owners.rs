//! Where an agent lives when it is not here: its input partition (see
//! [`super::partitioner`]) and the group member the broker says owns that
//! partition (DescribeGroups: each member's client id, host and consumer
//! protocol assignment). For the HTTP API's 404; best effort, never fatal:
//! a broker that cannot describe the group leaves the owner unknown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::client::ClientContext;
use serde::Serialize;

use super::partitioner::Partitioner;
use super::query::Locator;
use crate::config::KafkaSettings;

/// How long one metadata or DescribeGroups call may take: an HTTP client
/// is waiting.
const BROKER_TIMEOUT: Duration = Duration::from_secs(3);

/// A consumer protocol assignment that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed consumer protocol assignment: {0}")]
pub struct AssignmentError(&'static str);

/// The topic partitions of a consumer protocol `Assignment` (KIP-429's
/// layout, the same in versions 0 to 3): version int16, then an array of
/// (topic string, partitions int32 array); user data after it is ignored.
///
/// ```
/// use breakwater::kafka::owners::parse_assignment;
/// let mut b = vec![0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2];
/// b.extend([0xff, 0xff, 0xff, 0xff]); // null user data
/// assert_eq!(parse_assignment(&b).unwrap(), vec![("t".to_string(), vec![0, 2])]);
/// ```
pub fn parse_assignment(bytes: &[u8]) -> Result<Vec<(String, Vec<i32>)>, AssignmentError> {
    let mut r = Reader(bytes);
    let _version = r.i16()?;
    let topics = r.count()?;
    let mut out = Vec::with_capacity(topics.min(64));
    for _ in 0..topics {
        let len = usize::try_from(r.i16()?).map_err(|_| AssignmentError("null topic name"))?;
        let name = String::from_utf8(r.take(len)?.to_vec())
            .map_err(|_| AssignmentError("topic name is not UTF-8"))?;
        let n = r.count()?;
        let partitions = (0..n).map(|_| r.i32()).collect::<Result<_, _>>()?;
        out.push((name, partitions));
    }
    Ok(out)
}

/// Big-endian reads over a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], AssignmentError> {
        if self.0.len() < n {
            return Err(AssignmentError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Result<i16, AssignmentError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, AssignmentError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    /// An array length; -1 (null) is empty.
    fn count(&mut self) -> Result<usize, AssignmentError> {
        Ok(usize::try_from(self.i32()?).unwrap_or(0))
    }
}

/// The group member owning a partition, as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    pub member_id: String,
    /// `breakwater-<host>-<pid>` unless `client.id` is overridden.
    pub client_id: String,
    /// The member's address as the broker sees it (e.g. `/10.0.0.7`).
    pub client_host: String,
    /// Whether that member is this instance (it owns the partition but has
    /// seen no events of the agent).
    pub this_instance: bool,
}

/// Where an agent's partition is and who owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The agent's input partition; `None` when it cannot be computed (a
    /// `random` partitioner, or no metadata for the events topic).
    pub partition: Option<i32>,
    /// The `partitioner` property the partition was computed with.
    pub partitioner: Option<String>,
    /// Partitions of the events topic.
    pub partitions: Option<i32>,
    /// The owning member; `None` when the broker could not tell.
    pub owner: Option<GroupMember>,
    /// Why `owner` is `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_unknown: Option<String>,
}

impl Location {
    /// Nothing known, for `why`.
    pub fn unknown(why: &str) -> Self {
        Location {
            partition: None,
            partitioner: None,
            partitions: None,
            owner: None,
            owner_unknown: Some(why.to_string()),
        }
    }
}

/// Finds the owners of input partitions through the broker.
pub struct Directory<C: ClientContext + 'static> {
    admin: AdminClient<C>,
    events_topic: String,
    group_id: String,
    /// `partitioner` as configured (for the response), and what it means.
    partitioner_name: String,
    partitioner: Option<Partitioner>,
    /// The broker's last answers, reused for [`CACHE_FOR`].
    cache: Mutex<Option<Snapshot>>,
}

/// How long the broker's answers are reused: a burst of 404s (a client
/// asking every instance for an agent) costs the brokers one round of
/// requests, and an owner is at most this much out of date after a
/// rebalance.
const CACHE_FOR: Duration = Duration::from_secs(2);

/// What the broker said about the events topic and the group.
#[derive(Clone)]
struct Snapshot {
    at: Instant,
    partitions: Option<i32>,
    /// The group's state and members, or why the broker did not describe it.
    group: Result<Arc<Described>, String>,
}

/// A described group, owned.
struct Described {
    state: String,
    /// Member id, client id, client host, assignment.
    members: Vec<(String, String, String, Vec<u8>)>,
}

impl<C: ClientContext + 'static> Directory<C> {
    /// Over `admin`, for the job configured by `settings`.
    pub fn new(admin: AdminClient<C>, settings: &KafkaSettings) -> Self {
        let producer = settings.client_properties(false);
        let configured = producer.get("partitioner").map(String::as_str);
        Directory {
            admin,
            events_topic: settings.topics.events.clone(),
            group_id: settings.group_id.clone(),
            partitioner_name: configured.unwrap_or("consistent_random").to_string(),
            partitioner: Partitioner::from_property(configured),
            cache: Mutex::new(None),
        }
    }

    /// A [`Locator`] for the HTTP API that does not keep the directory
    /// (and its admin client) alive once the job has returned.
    pub fn locator(self: &Arc<Self>) -> Locator
    where
        C: Send + Sync,
    {
        let directory = Arc::downgrade(self);
        Arc::new(move |id: &str, owned: &[i32]| match directory.upgrade() {
            Some(d) => d.locate(id, owned),
            None => Location::unknown("the job has stopped"),
        })
    }

    /// Locates `agent_id`: its partition from the events topic's metadata,
    /// then that partition's owner from the group's description. Blocking
    /// (a few broker round trips, unless answered in the last
    /// [`CACHE_FOR`]). `owned`: this instance's partitions.
    pub fn locate(&self, agent_id: &str, owned: &[i32]) -> Location {
        let snapshot = self.snapshot();
        let partition = self
            .partitioner
            .zip(snapshot.partitions)
            .filter(|_| !agent_id.is_empty())
            .map(|(p, n)| p.partition(agent_id.as_bytes(), n));
        let found = match (partition, &snapshot.group) {
            (None, _) => Err("the agent's partition is unknown".to_string()),
            (Some(_), Err(why)) => Err(why.clone()),
            (Some(p), Ok(group)) => self.owner_in(group, p, owned),
        };
        let (owner, owner_unknown) = match found {
            Ok(m) => (Some(m), None),
            Err(why) => (None, Some(why)),
        };
        Location {
            partition,
            partitioner: Some(self.partitioner_name.clone()),
            partitions: snapshot.partitions,
            owner,
            owner_unknown,
        }
    }

    /// The cached snapshot, or a new one from the broker.
    fn snapshot(&self) -> Snapshot {
        let mut cache = self.cache.lock().expect("directory cache lock");
        if let Some(s) = cache.as_ref().filter(|s| s.at.elapsed() < CACHE_FOR) {
            return s.clone();
        }
        let client = self.admin.inner();
        let partitions = client
            .fetch_metadata(Some(&self.events_topic), BROKER_TIMEOUT)
            .ok()
            .and_then(|md| {
                let t = md.topics().iter().find(|t| t.name() == self.events_topic)?;
                i32::try_from(t.partitions().len()).ok().filter(|&n| n > 0)
            });
        let s = Snapshot {
            at: Instant::now(),
            partitions,
            group: self.describe().map(Arc::new),
        };
        *cache = Some(s.clone());
        s
    }

    /// The group as the broker describes it. librdkafka lists the groups
    /// (ListGroups) and describes the one asked for (DescribeGroups); Tansu
    /// 0.6 lists none and describes groups without members, so there the
    /// owner stays unknown.
    fn describe(&self) -> Result<Described, String> {
        let list = self
            .admin
            .inner()
            .fetch_group_list(Some(&self.group_id), BROKER_TIMEOUT)
            .map_err(|e| format!("the broker did not describe group {}: {e}", self.group_id))?;
        let group = list
            .groups()
            .iter()
            .find(|g| g.name() == self.group_id)
            .ok_or_else(|| format!("the broker does not list group {}", self.group_id))?;
        let members = group.members().iter().map(|m| {
            let assignment = m.assignment().unwrap_or_default().to_vec();
            (
                m.id().into(),
                m.client_id().into(),
                m.client_host().into(),
                assignment,
            )
        });
        Ok(Described {
            state: group.state().to_string(),
            members: members.collect(),
        })
    }

    /// The member of `group` assigned `partition` of the events topic, or
    /// why none is.
    fn owner_in(
        &self,
        group: &Described,
        partition: i32,
        owned: &[i32],
    ) -> Result<GroupMember, String> {
        let members = group
            .members
            .iter()
            .map(|(id, client_id, host, assignment)| Member {
                id,
                client_id,
                client_host: host,
                assignment,
            });
        find_owner(members, &self.events_topic, partition)
            .map(|m| GroupMember {
                this_instance: owned.contains(&partition),
                ..m
            })
            .ok_or_else(|| {
                format!(
                    "no member of group {} (state {}, {} members described) is assigned partition {partition}",
                    self.group_id,
                    group.state,
                    group.members.len()
                )
            })
    }
}

/// One member of a described group.
pub struct Member<'a> {
    pub id: &'a str,
    pub client_id: &'a str,
    pub client_host: &'a str,
    /// The consumer protocol assignment (empty before the first sync).
    pub assignment: &'a [u8],
}

/// The member whose assignment holds `partition` of `topic`; members whose
/// assignment cannot be read are skipped. `this_instance` is left false.
///
/// ```
/// use breakwater::kafka::owners::{find_owner, Member};
/// let a = [0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 2];
/// let m = Member { id: "m-1", client_id: "breakwater-h-7", client_host: "/10.0.0.7", assignment: &a };
/// assert_eq!(find_owner([m], "t", 2).unwrap().client_id, "breakwater-h-7");
/// ```
pub fn find_owner<'a>(
    members: impl IntoIterator<Item = Member<'a>>,
    topic: &str,
    partition: i32,
) -> Option<GroupMember> {
    members.into_iter().find_map(|m| {
        let assigned = parse_assignment(m.assignment).ok()?;
        let owns = assigned
            .iter()
            .any(|(t, ps)| t == topic && ps.contains(&partition));
        owns.then(|| GroupMember {
            member_id: m.id.to_string(),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            this_instance: false,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_assignment_is_an_error_not_a_panic() {
        let full = [0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 5];
        assert_eq!(
            parse_assignment(&full).unwrap(),
            vec![("t".into(), vec![5])]
        );
        for cut in 0..full.len() {
            assert!(parse_assignment(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// An assignment of `partitions` of `topic` (and of another topic).
    fn assignment(topic: &str, partitions: &[i32]) -> Vec<u8> {
        let mut b = vec![0, 1, 0, 0, 0, 2];
        for (t, ps) in [(topic, partitions), ("other", &[0, 1, 2][..])] {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            ps.iter().for_each(|p| b.extend(p.to_be_bytes()));
        }
        b.extend((-1i32).to_be_bytes());
        b
    }

    #[test]
    fn the_owner_is_the_member_assigned_the_partition_of_the_events_topic() {
        let (a, b) = (assignment("events", &[0, 2]), assignment("events", &[1]));
        let members = || {
            [
                Member {
                    id: "m-0",
                    client_id: "c-0",
                    client_host: "/h0",
                    assignment: b"\x00",
                },
                Member {
                    id: "m-a",
                    client_id: "c-a",
                    client_host: "/ha",
                    assignment: &a,
                },
                Member {
                    id: "m-b",
                    client_id: "c-b",
                    client_host: "/hb",
                    assignment: &b,
                },
            ]
        };
        let owner = |p| find_owner(members(), "events", p).map(|m| m.client_id);
        assert_eq!(owner(0).as_deref(), Some("c-a"));
        assert_eq!(owner(1).as_deref(), Some("c-b"));
        assert_eq!(owner(2).as_deref(), Some("c-a"));
        assert_eq!(owner(3), None, "nobody has it");
        assert_eq!(find_owner(members(), "nope", 0), None, "another topic");
    }
}
