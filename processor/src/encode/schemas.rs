//! The output record types and their Avro schemas (`schemas/*.avsc`).

use std::sync::OnceLock;

use apache_avro::Schema;

use crate::config::Topics;
use crate::output::Output;

/// Which output record: one Avro schema and one topic each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    BreakerTransition,
    Alert,
    BudgetSnapshot,
}

impl OutputKind {
    /// All of them, in a fixed order.
    pub const ALL: [OutputKind; 3] = [
        OutputKind::BreakerTransition,
        OutputKind::Alert,
        OutputKind::BudgetSnapshot,
    ];

    /// The kind of `output`.
    pub fn of(output: &Output) -> Self {
        match output {
            Output::BreakerTransition(_) => OutputKind::BreakerTransition,
            Output::Alert(_) => OutputKind::Alert,
            Output::BudgetSnapshot(_) => OutputKind::BudgetSnapshot,
        }
    }

    /// The schema's full name, e.g. `io.breakwater.BreakerTransition`.
    pub fn schema_name(self) -> &'static str {
        match self {
            OutputKind::BreakerTransition => "io.breakwater.BreakerTransition",
            OutputKind::Alert => "io.breakwater.AlertEvent",
            OutputKind::BudgetSnapshot => "io.breakwater.BudgetSnapshot",
        }
    }

    /// The schema as JSON text, as `schemas/` holds it.
    pub fn schema_json(self) -> &'static str {
        match self {
            OutputKind::BreakerTransition => {
                include_str!("../../../schemas/breaker_transition.avsc")
            }
            OutputKind::Alert => include_str!("../../../schemas/alert.avsc"),
            OutputKind::BudgetSnapshot => include_str!("../../../schemas/budget_snapshot.avsc"),
        }
    }

    /// The parsed schema, parsed once.
    pub fn schema(self) -> &'static Schema {
        static SCHEMAS: OnceLock<[Schema; 3]> = OnceLock::new();
        let schemas = SCHEMAS.get_or_init(|| {
            OutputKind::ALL.map(|kind| {
                Schema::parse_str(kind.schema_json())
                    .expect("the output schemas parse (a unit test checks it)")
            })
        });
        &schemas[self.index()]
    }

    /// The key in `output.schema_ids`.
    pub fn config_key(self) -> &'static str {
        match self {
            OutputKind::BreakerTransition => "breaker_transition",
            OutputKind::Alert => "alert",
            OutputKind::BudgetSnapshot => "budget_snapshot",
        }
    }

    /// The topic its records go to.
    pub fn topic(self, topics: &Topics) -> &str {
        match self {
            OutputKind::BreakerTransition => &topics.breaker_state,
            OutputKind::Alert => &topics.alerts,
            OutputKind::BudgetSnapshot => &topics.snapshots,
        }
    }

    /// The registry subject of its schema: `<topic>-value`
    /// (Confluent's TopicNameStrategy).
    pub fn subject(self, topics: &Topics) -> String {
        format!("{}-value", self.topic(topics))
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_parse_and_carry_their_names() {
        for kind in OutputKind::ALL {
            let Schema::Record(record) = kind.schema() else {
                panic!("{kind:?} is not a record");
            };
            assert_eq!(record.name.fullname(None), kind.schema_name());
            assert_eq!(OutputKind::ALL[kind.index()], kind);
        }
        let topics = Topics::default();
        assert_eq!(
            OutputKind::Alert.subject(&topics),
            format!("{}-value", topics.alerts)
        );
    }
}
