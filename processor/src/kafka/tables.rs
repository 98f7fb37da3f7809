//! The declarations and commands topics, read whole by every instance as
//! tables keyed by agent id (Kafka Streams' global tables): any instance
//! may own any agent, so each needs every agent's latest declaration and
//! latest operator command.
//!
//! A declaration is state: the latest valid one per agent is put in force
//! for that agent wherever and whenever the agent is (or later becomes)
//! local. A command is an action at a time: it is applied when it arrives
//! if it was issued after this instance started; older ones only leave
//! their state behind (FORCED_OPEN, DISABLED, CLOSED), applied to the agent
//! when it becomes local, so a restart neither replays every old command
//! nor forgets that an operator forced a breaker open.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::client::Observed;
use super::topics::partition_count;
use super::JobError;
use crate::engine::accuracy::AccuracyDeclaration;
use crate::engine::breaker::Command;
use crate::event::TimestampMs;

/// An operator command on the commands topic (JSON, keyed by agent id).
///
/// ```
/// use breakwater::kafka::OperatorCommand;
/// let c: OperatorCommand = serde_json::from_str(
///     r#"{"agent_id":"research-agent","command":"force_open","issued_at":1700000000000,"operator":"sre@example.com"}"#,
/// ).unwrap();
/// assert_eq!(c.command, breakwater::engine::breaker::Command::ForceOpen);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorCommand {
    pub agent_id: String,
    pub command: Command,
    /// Epoch milliseconds.
    pub issued_at: TimestampMs,
    /// Who asked, for the audit trail in logs.
    #[serde(default)]
    pub operator: Option<String>,
}

/// Something the job must apply to the agents it owns.
#[derive(Debug, Clone, PartialEq)]
pub enum TableUpdate {
    Declared(AccuracyDeclaration),
    Command(OperatorCommand),
}

/// Both tables and the consumer that keeps them current.
pub struct Tables {
    consumer: BaseConsumer<Observed>,
    declarations_topic: String,
    declarations: HashMap<String, AccuracyDeclaration>,
    /// Latest command per agent that leaves a state (not `reset`).
    commands: HashMap<String, OperatorCommand>,
    started_at: TimestampMs,
    /// Records that were not a valid declaration or command.
    pub refused: u64,
}

impl Tables {
    /// Assigns every partition of both topics from the beginning.
    pub fn open(
        consumer: BaseConsumer<Observed>,
        declarations_topic: &str,
        commands_topic: &str,
        started_at: TimestampMs,
    ) -> Result<Self, JobError> {
        let mut tpl = TopicPartitionList::new();
        for topic in [declarations_topic, commands_topic] {
            for p in 0..partition_count(&consumer, topic)? {
                tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
                    .map_err(|e| JobError::kafka("assigning table partitions", e))?;
            }
        }
        consumer
            .assign(&tpl)
            .map_err(|e| JobError::kafka("assigning table partitions", e))?;
        Ok(Tables {
            consumer,
            declarations_topic: declarations_topic.to_string(),
            declarations: HashMap::new(),
            commands: HashMap::new(),
            started_at,
            refused: 0,
        })
    }

    /// Reads what has arrived (without waiting) and returns what to apply now.
    pub fn poll(&mut self) -> Vec<TableUpdate> {
        let mut updates = Vec::new();
        let mut records = Vec::new();
        while let Some(m) = self.consumer.poll(Duration::ZERO) {
            match m {
                Ok(m) => records.push((
                    m.topic() == self.declarations_topic,
                    format!("{}[{}]@{}", m.topic(), m.partition(), m.offset()),
                    m.payload().unwrap_or_default().to_vec(),
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the declaration/command tables");
                    break;
                }
            }
        }
        for (is_declaration, place, payload) in records {
            if is_declaration {
                if let Some(d) = self.declaration(&payload, &place) {
                    updates.push(TableUpdate::Declared(d));
                }
            } else if let Some(c) = self.command(&payload, &place) {
                updates.push(TableUpdate::Command(c));
            }
        }
        updates
    }

    fn declaration(&mut self, payload: &[u8], place: &str) -> Option<AccuracyDeclaration> {
        let d: AccuracyDeclaration = match serde_json::from_slice(payload) {
            Ok(d) => d,
            Err(e) => return self.refuse(place, format!("not an accuracy declaration: {e}")),
        };
        if let Err(e) = d.validate_against(self.declarations.get(&d.agent_id)) {
            let why = format!("declaration {} {} refused: {e}", d.agent_id, d.version);
            return self.refuse(place, why);
        }
        self.declarations.insert(d.agent_id.clone(), d.clone());
        Some(d)
    }

    fn command(&mut self, payload: &[u8], place: &str) -> Option<OperatorCommand> {
        let c: OperatorCommand = match serde_json::from_slice(payload) {
            Ok(c) => c,
            Err(e) => return self.refuse(place, format!("not an operator command: {e}")),
        };
        if c.command != Command::Reset {
            self.commands.insert(c.agent_id.clone(), c.clone());
        }
        (c.issued_at >= self.started_at).then_some(c)
    }

    fn refuse<T>(&mut self, place: &str, why: String) -> Option<T> {
        self.refused += 1;
        metrics::counter!("breakwater_table_records_refused_total").increment(1);
        tracing::warn!("{place}: {why}");
        None
    }

    /// What an agent that just became local must get from the tables.
    pub fn for_new_agent(&self, agent_id: &str) -> Vec<TableUpdate> {
        let d = self
            .declarations
            .get(agent_id)
            .cloned()
            .map(TableUpdate::Declared);
        let c = self
            .commands
            .get(agent_id)
            .cloned()
            .map(TableUpdate::Command);
        d.into_iter().chain(c).collect()
    }
}
