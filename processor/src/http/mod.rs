//! The HTTP surface of `breakwater run`: Prometheus `/metrics`, the
//! `/healthz` and `/readyz` probes a Kubernetes deployment wires up, and
//! the agents this instance owns (`/agents`, `/agents/{id}`, in
//! [`agents`]). deploy/http/openapi.yaml documents every route in
//! [`routes`], and tests/http_api.rs holds the server to it.
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

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::kafka::{Control, OperatorCommand};

mod agents;

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
    endpoints()
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| {
            r.route(path, handler)
        })
        .with_state(AppState {
            probes,
            metrics,
            operators,
        })
}

/// Every route the server answers, as (method, path template): the router
/// is built from the same table, so this list is complete by construction.
///
/// ```
/// let routes = breakwater::http::routes();
/// assert!(routes.contains(&(axum::http::Method::GET, "/agents/{id}")));
/// ```
pub fn routes() -> Vec<(Method, &'static str)> {
    endpoints().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// The table [`routes`] and the router come from; one method per path.
fn endpoints() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::GET, "/metrics", get(render_metrics)),
        (Method::GET, "/healthz", get(healthz)),
        (Method::GET, "/readyz", get(readyz)),
        (Method::GET, "/agents", get(agents::list_agents)),
        (Method::GET, "/agents/{id}", get(agents::get_agent)),
        (
            Method::POST,
            "/agents/{id}/breaker",
            post(agents::breaker_command),
        ),
    ]
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

/// Serves `app` on `listener` until the process exits.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) -> std::io::Result<()> {
    axum::serve(listener, app).await
}
