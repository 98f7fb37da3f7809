//! Every metric `breakwater run` exports, with its help text: Prometheus
//! tooling (`promtool check metrics`, Grafana) expects `# HELP` on each.
//! Call [`describe`] once after installing a recorder, and give the
//! exporter the buckets of [`HISTOGRAM_BUCKETS`] (without them the
//! Prometheus exporter renders a histogram as a summary, which cannot be
//! aggregated across instances).

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Buckets (seconds) of the histograms this module describes: from a
/// millisecond (a fast decode or checkpoint) to minutes (a consumer far
/// behind, a broker that does not acknowledge).
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The histograms exported with buckets, by full name.
/// `breakwater_restore_duration_seconds` is not among them: it stays a
/// summary (its dashboards read its quantiles; a restore is rare).
pub const HISTOGRAM_BUCKETS: &[(&str, &[f64])] = &[
    ("breakwater_decode_duration_seconds", SECONDS_BUCKETS),
    ("breakwater_processing_latency_seconds", SECONDS_BUCKETS),
    ("breakwater_input_age_seconds", SECONDS_BUCKETS),
    ("breakwater_checkpoint_duration_seconds", SECONDS_BUCKETS),
];

/// Registers the help text and unit of every metric, and starts the
/// unlabelled counters at zero so they exist before their first event
/// (a rate over a series that appears late misses its first increments).
pub fn describe() {
    for name in [
        "breakwater_events_total",
        "breakwater_events_replayed_total",
        "breakwater_output_delivery_failures_total",
        "breakwater_consumer_errors_total",
        "breakwater_commit_failures_total",
        "breakwater_rebalances_total",
        "breakwater_registry_unavailable_total",
        "breakwater_restore_failures_total",
        "breakwater_table_records_refused_total",
        "breakwater_agent_series_omitted_total",
        "breakwater_input_records_total",
        "breakwater_parallel_turns_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for reason in ["duplicate", "late"] {
        metrics::counter!("breakwater_events_skipped_total", "reason" => reason).increment(0);
    }
    for trigger in ["PERIODIC", "STATUS_CHANGE", "FINAL"] {
        metrics::counter!("breakwater_snapshot_records_total", "trigger" => trigger).increment(0);
    }
    // Processor health.
    describe_counter!(
        "breakwater_events_total",
        "Task events counted by an engine."
    );
    describe_counter!(
        "breakwater_input_records_total",
        "Records read from the events topic (good and bad; added once per batch)."
    );
    describe_counter!(
        "breakwater_events_skipped_total",
        "Decoded events an engine did not count, by reason: duplicate (event id seen recently) or late (older than the budget window)."
    );
    describe_counter!(
        "breakwater_events_replayed_total",
        "Events re-read after a restore and skipped: the restored agent already counted them."
    );
    describe_counter!(
        "breakwater_parallel_turns_total",
        "Batches whose partitions ran side by side on the processing threads (kafka.processing_threads)."
    );
    describe_counter!(
        "breakwater_dead_letters_total",
        "Input records sent to the dead-letter topic, by kind of failure."
    );
    describe_counter!(
        "breakwater_output_records_total",
        "Output records acknowledged by the broker, by topic."
    );
    describe_counter!(
        "breakwater_output_delivery_failures_total",
        "Output records the producer gave up on or that were refused (they are sent again)."
    );
    describe_counter!(
        "breakwater_kafka_client_errors_total",
        "Errors reported by the Kafka clients, by client."
    );
    describe_counter!(
        "breakwater_consumer_errors_total",
        "Errors returned by the group consumer's poll."
    );
    describe_counter!(
        "breakwater_commit_failures_total",
        "Offset commits that failed after a checkpoint (retried)."
    );
    describe_counter!("breakwater_rebalances_total", "Partition revocations seen.");
    describe_counter!(
        "breakwater_registry_unavailable_total",
        "Decodes delayed because the schema registry was unreachable."
    );
    describe_counter!(
        "breakwater_restore_failures_total",
        "Agent states that could not be restored (the agent started afresh)."
    );
    describe_counter!(
        "breakwater_table_records_refused_total",
        "Declaration or command records refused when reading the tables."
    );
    describe_histogram!(
        "breakwater_restore_duration_seconds",
        Unit::Seconds,
        "Time to restore the agents of newly assigned partitions."
    );
    describe_histogram!(
        "breakwater_decode_duration_seconds",
        Unit::Seconds,
        "Time to take one batch of input records from the consumer and decode them, from its first record (one observation per non-empty batch)."
    );
    describe_histogram!(
        "breakwater_input_age_seconds",
        Unit::Seconds,
        "Age of the newest record of each partition's batch when processed: Kafka record timestamp to the engine (one observation per partition per batch)."
    );
    describe_histogram!(
        "breakwater_processing_latency_seconds",
        Unit::Seconds,
        "Kafka timestamp of an agent's newest input record in the batch that caused a breaker transition or alert, to the broker's acknowledgement of that output (as seen by the job, which serves acknowledgements every poll_interval)."
    );
    describe_histogram!(
        "breakwater_checkpoint_duration_seconds",
        Unit::Seconds,
        "Time of a checkpoint: snapshot the changed agents, wait for every output sent up to then to be acknowledged, commit the input offsets (the periodic checkpoint does not stop processing meanwhile)."
    );
    describe_counter!(
        "breakwater_snapshot_records_total",
        "Budget snapshot records written to the snapshots topic, by trigger (PERIODIC, STATUS_CHANGE, FINAL)."
    );
    describe_gauge!(
        "breakwater_consumer_lag_records",
        "Records of an assigned input partition not yet read: end offset minus position, from the consumer's statistics (every statistics.interval.ms, default 5 s)."
    );
    describe_gauge!(
        "breakwater_consumer_queue_records",
        "Records fetched by the consumer and not yet taken by the job, over all assigned partitions."
    );
    describe_gauge!(
        "breakwater_producer_queue_records",
        "Output records handed to the producer and not yet acknowledged (or their acknowledgement not yet served)."
    );
    describe_gauge!(
        "breakwater_assigned_partitions",
        "Input partitions owned by this instance."
    );
    describe_gauge!(
        "breakwater_ready",
        "1 when the instance owns its partitions with their agents restored."
    );
    // The fleet.
    describe_gauge!(
        "breakwater_agents",
        "Agents tracked by this instance, by breaker state."
    );
    describe_gauge!(
        "breakwater_agents_by_budget_status",
        "Agents tracked by this instance, by error budget status."
    );
    describe_gauge!(
        "breakwater_agents_dormant",
        "Agents of this instance kept as their exported state after a quiet spell (woken by their next event)."
    );
    describe_counter!(
        "breakwater_agent_series_omitted_total",
        "Agents left without per-agent series at a publication (the http.max_agent_series cap)."
    );
    // Per agent (bounded set, see http.max_agent_series).
    describe_gauge!(
        "breakwater_agent_tasks",
        "Tasks in the agent's budget window."
    );
    describe_gauge!(
        "breakwater_agent_task_success_ratio",
        "Task success rate over the budget window."
    );
    describe_gauge!(
        "breakwater_agent_availability_ratio",
        "Availability over the budget window."
    );
    describe_gauge!(
        "breakwater_agent_tool_calls_avg",
        "Average tool calls per task."
    );
    describe_gauge!(
        "breakwater_agent_latency_p99_seconds",
        Unit::Seconds,
        "p99 task latency over the budget window."
    );
    describe_gauge!(
        "breakwater_agent_error_budget_remaining_ratio",
        "Error budget remaining (1 = untouched, 0 = exhausted, negative = overspent)."
    );
    describe_gauge!(
        "breakwater_agent_hallucination_ratio",
        "Hallucination rate over the budget window."
    );
    describe_gauge!(
        "breakwater_agent_policy_violation_ratio",
        "Policy violations per tool call over the budget window."
    );
    describe_gauge!(
        "breakwater_agent_delegation_depth_avg",
        "Average sub-agent delegation depth."
    );
    describe_gauge!(
        "breakwater_agent_circuit_state",
        "1 for the agent's current breaker state, 0 for the others."
    );
    describe_gauge!(
        "breakwater_agent_circuit_opens_24h",
        "Times the breaker opened in the last 24 h."
    );
    describe_gauge!(
        "breakwater_agent_time_until_retry_seconds",
        Unit::Seconds,
        "Time until an OPEN breaker half-opens."
    );
    describe_gauge!(
        "breakwater_agent_burn_rate",
        "Error budget burn rate over each window of the agent's burn-rate rules (1 = spending the budget exactly over the budget window; 0 with no task in the window)."
    );
    describe_gauge!(
        "breakwater_agent_window_tasks",
        "Tasks in each window of the agent's burn-rate rules."
    );
}
