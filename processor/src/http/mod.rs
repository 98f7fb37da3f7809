//! The HTTP surface of `breakwater run`: Prometheus `/metrics`, the
//! `/healthz` and `/readyz` probes a Kubernetes deployment wires up, and
//! the agents this instance owns (`/agents`, `/agents/{id}`).
//!
//! A thin shell: it reads the job's [`Control`] and renders the metrics
//! recorder; it decides nothing.
//!
//! ```
//! use breakwater::http::{router, Probes};
//! use breakwater::kafka::Control;
//! let app = router(Probes::new(Control::new()), None);
//! # let _ = app;
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;

use crate::engine::breaker::Command;
use crate::engine::breaker::StateName;
use crate::engine::budget::BudgetStatus;
use crate::kafka::query::Lookup;
use crate::kafka::{Control, OperatorCommand};

/// What the probes look at.
#[derive(Clone)]
pub struct Probes {
    control: Control,
    /// Cleared when the job loop has returned (stopped or failed): the
    /// process is then on its way out and should not be sent traffic.
    alive: Arc<AtomicBool>,
}

impl Probes {
    pub fn new(control: Control) -> Self {
        Probes {
            control,
            alive: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Call when the job loop returns.
    pub fn job_ended(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }
}

/// Publishes an operator command (to the commands topic, so that every
/// instance agrees); blocking; the error says why it could not.
pub type CommandSink = Arc<dyn Fn(&OperatorCommand) -> Result<(), String> + Send + Sync>;

/// Who may send operator commands, and where they go.
#[derive(Clone)]
pub struct Operators {
    pub token: String,
    pub sink: CommandSink,
    pub now: Arc<dyn Fn() -> i64 + Send + Sync>,
}

#[derive(Clone)]
struct AppState {
    probes: Probes,
    metrics: Option<PrometheusHandle>,
    operators: Option<Operators>,
}

/// The routes; `metrics` is the installed recorder's handle (`None`: no
/// `/metrics`, e.g. in tests of the probes alone). Without
/// [`router_with_operators`], `POST /agents/{id}/breaker` is refused.
pub fn router(probes: Probes, metrics: Option<PrometheusHandle>) -> Router {
    router_with_operators(probes, metrics, None)
}

/// [`router`] with operator commands enabled for holders of the token.
pub fn router_with_operators(
    probes: Probes,
    metrics: Option<PrometheusHandle>,
    operators: Option<Operators>,
) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/agents", get(list_agents))
        .route("/agents/{id}", get(get_agent))
        .route("/agents/{id}/breaker", post(breaker_command))
        .with_state(AppState {
            probes,
            metrics,
            operators,
        })
}

async fn render_metrics(State(s): State<AppState>) -> impl IntoResponse {
    match s.metrics {
        Some(h) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render(),
        ),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no metrics recorder\n".to_string(),
        ),
    }
}

/// Live while the job loop runs (a stopping job is still live until it
/// has flushed and committed).
async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    if s.probes.alive.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the job has stopped\n")
    }
}

/// Ready once the instance owns its partitions with their agents restored,
/// and not stopping.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let c = &s.probes.control;
    if c.is_ready() && !c.is_stopped() && s.probes.alive.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else if c.is_stopped() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: joining the group or restoring agent state\n",
        )
    }
}

/// `GET /agents/{id}`: the seed's AgentMetrics view plus budget status,
/// recommendation and retry time; 404 naming the partitions this instance
/// owns when the agent is not among them.
async fn get_agent(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.probes.control.query.agent(&id) {
        Lookup::Found(status) => Json(*status).into_response(),
        Lookup::NotHere { partitions } => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": format!("agent {id} is not tracked by this instance"),
                "owned_partitions": partitions,
                "hint": "an agent lives on the instance that owns its input partition; ask the others",
            })),
        )
            .into_response(),
        Lookup::NotRunning => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the job is not running yet"})),
        )
            .into_response(),
    }
}

/// Filters and page of `GET /agents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
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
async fn list_agents(
    State(s): State<AppState>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "error": e.body_text(),
                    "allowed": "status=HEALTHY|WARNING|CRITICAL|EXHAUSTED, state=CLOSED|OPEN|HALF_OPEN|FORCED_OPEN|DISABLED, offset, limit (1 to 1000)",
                })),
            )
                .into_response()
        }
    };
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("limit {limit} is not allowed"), "allowed": "1 to 1000"})),
        )
            .into_response();
    }
    let Some(all) = s.probes.control.query.agents() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the job is not running yet"})),
        )
            .into_response();
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
struct CommandBody {
    command: Command,
    operator: Option<String>,
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
async fn breaker_command(
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
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "error": e.body_text(),
                    "allowed": "{\"command\": \"force_open\"|\"force_close\"|\"disable\"|\"reset\", \"operator\": \"name\"}",
                })),
            )
                .into_response()
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

/// Serves `app` on `listener` until the process exits.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}
