//! The HTTP surface of `breakwater run`: Prometheus `/metrics`, and the
//! `/healthz` and `/readyz` probes a Kubernetes deployment wires up.
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
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::kafka::Control;

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

#[derive(Clone)]
struct AppState {
    probes: Probes,
    metrics: Option<PrometheusHandle>,
}

/// The routes; `metrics` is the installed recorder's handle (`None`: no
/// `/metrics`, e.g. in tests of the probes alone).
pub fn router(probes: Probes, metrics: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { probes, metrics })
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
