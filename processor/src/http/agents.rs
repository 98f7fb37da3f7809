//! The agents this instance owns: `GET /agents/{id}`, `GET /agents`, and
//! operator commands (`POST /agents/{id}/breaker`). The response bodies are
//! described in deploy/http/openapi.yaml.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::engine::breaker::Command;
use crate::engine::breaker::StateName;
use crate::engine::budget::BudgetStatus;
use crate::kafka::owners::Location;
use crate::kafka::query::Lookup;
use crate::kafka::OperatorCommand;

/// `GET /agents/{id}`: the seed's AgentMetrics view plus budget status,
/// recommendation and retry time. 404 when this instance does not track
/// the agent, saying which partition the agent's key maps to and, when the
/// broker can describe the group, which member owns that partition.
pub(super) async fn get_agent(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let query = s.probes.control.query.clone();
    let partitions = match query.agent(&id) {
        Lookup::Found(status) => return Json(*status).into_response(),
        Lookup::NotRunning => return not_running(),
        Lookup::NotHere { partitions } => partitions,
    };
    // DescribeGroups and metadata are blocking broker round trips.
    let (agent, owned) = (id.clone(), partitions.clone());
    let location = tokio::task::spawn_blocking(move || query.locate(&agent, &owned))
        .await
        .ok()
        .flatten();
    (
        StatusCode::NOT_FOUND,
        Json(not_here(&id, &partitions, location)),
    )
        .into_response()
}

/// The 404 body of `GET /agents/{id}` (schema `AgentNotHere`).
fn not_here(id: &str, owned: &[i32], location: Option<Location>) -> serde_json::Value {
    let partition = location.as_ref().and_then(|l| l.partition);
    let error = match partition {
        Some(p) if owned.contains(&p) => format!(
            "agent {id} is unknown: this instance owns its partition {p} and has no events of it in its window"
        ),
        Some(p) => format!("agent {id} is on partition {p}, which another instance owns"),
        None => format!("agent {id} is not tracked by this instance"),
    };
    let location =
        location.unwrap_or_else(|| Location::unknown("the job could not look the partition up"));
    let location = serde_json::to_value(location).expect("a location serializes");
    let mut body = json!({
        "error": error,
        "owned_partitions": owned,
        "hint": "an agent lives on the instance that owns its input partition; ask that instance",
    });
    let fields = body.as_object_mut().expect("an object");
    fields.extend(location.as_object().expect("an object").clone());
    body
}

fn not_running() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "the job is not running yet"})),
    )
        .into_response()
}

/// Filters and page of `GET /agents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    status: Option<BudgetStatus>,
    state: Option<StateName>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// Most agents per page, and the default page size.
const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;

/// `GET /agents?status=EXHAUSTED&state=OPEN&offset=0&limit=100`: this
/// instance's agents sorted by id, filtered, one page at a time.
pub(super) async fn list_agents(
    State(s): State<AppState>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => {
            return bad_request(
                e.body_text(),
                "status=HEALTHY|WARNING|CRITICAL|EXHAUSTED, state=CLOSED|OPEN|HALF_OPEN|FORCED_OPEN|DISABLED, offset, limit (1 to 1000)",
            )
        }
    };
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return bad_request(format!("limit {limit} is not allowed"), "1 to 1000");
    }
    let Some(all) = s.probes.control.query.agents() else {
        return not_running();
    };
    let matching: Vec<_> = all
        .into_iter()
        .filter(|a| p.status.is_none_or(|st| a.budget_status == st))
        .filter(|a| p.state.is_none_or(|st| a.circuit_state == st))
        .collect();
    let total = matching.len();
    let page: Vec<_> = matching.into_iter().skip(p.offset).take(limit).collect();
    let next = (p.offset + page.len() < total).then_some(p.offset + page.len());
    Json(json!({"agents": page, "total": total, "offset": p.offset, "next_offset": next}))
        .into_response()
}

/// Body of `POST /agents/{id}/breaker`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandBody {
    command: Command,
    operator: Option<String>,
}

/// 400 with what was wrong and what is allowed (the document's `BadRequest`).
fn bad_request(error: String, allowed: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "allowed": allowed})),
    )
        .into_response()
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in
/// constant time.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `POST /agents/{id}/breaker` with `{"command": "force_open" | "force_close"
/// | "disable" | "reset", "operator": "…"}`: published to the commands
/// topic (every instance reads it; the owner applies it and the transition
/// appears on the breaker topic with reason OPERATOR). 202 once the broker
/// has the command.
pub(super) async fn breaker_command(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<CommandBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(ops) = s.operators else {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "operator commands over HTTP are disabled: set http.token (or BREAKWATER_HTTP_TOKEN)"})),
        )
            .into_response();
    };
    if !authorized(&headers, &ops.token) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "a valid bearer token is required"})),
        )
            .into_response();
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return bad_request(
                e.body_text(),
                "{\"command\": \"force_open\"|\"force_close\"|\"disable\"|\"reset\", \"operator\": \"name\"}",
            )
        }
    };
    let command = OperatorCommand {
        agent_id: id,
        command: body.command,
        issued_at: (ops.now)(),
        operator: body.operator,
    };
    let sink = ops.sink.clone();
    let sent = command.clone();
    match tokio::task::spawn_blocking(move || sink(&sent)).await {
        Ok(Ok(())) => (StatusCode::ACCEPTED, Json(json!({"sent": command}))).into_response(),
        Ok(Err(e)) => (StatusCode::BAD_GATEWAY, Json(json!({"error": e}))).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}
