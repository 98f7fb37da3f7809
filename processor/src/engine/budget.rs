//! The error budget (SPEC §5): how much of the allowed failure an agent has
//! left over its rolling window, and how fast it is burning.

use serde::{Deserialize, Serialize};

use crate::config::{BudgetAction, Slo};

/// Budget status bands: HEALTHY ≥ 25 %, WARNING < 25 %, CRITICAL < 10 %,
/// EXHAUSTED ≤ 0 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BudgetStatus {
    Healthy,
    Warning,
    Critical,
    Exhausted,
}

impl BudgetStatus {
    /// The band `remaining_percent` falls in.
    ///
    /// ```
    /// use breakwater::engine::budget::BudgetStatus;
    /// assert_eq!(BudgetStatus::from_remaining(25.0), BudgetStatus::Healthy);
    /// assert_eq!(BudgetStatus::from_remaining(9.9), BudgetStatus::Critical);
    /// assert_eq!(BudgetStatus::from_remaining(0.0), BudgetStatus::Exhausted);
    /// ```
    pub fn from_remaining(remaining_percent: f64) -> Self {
        if remaining_percent <= 0.0 {
            BudgetStatus::Exhausted
        } else if remaining_percent < 10.0 {
            BudgetStatus::Critical
        } else if remaining_percent < 25.0 {
            BudgetStatus::Warning
        } else {
            BudgetStatus::Healthy
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BudgetStatus::Healthy => "HEALTHY",
            BudgetStatus::Warning => "WARNING",
            BudgetStatus::Critical => "CRITICAL",
            BudgetStatus::Exhausted => "EXHAUSTED",
        }
    }
}

/// The budget over one window's counts.
///
/// ```
/// use breakwater::config::Slo;
/// use breakwater::engine::budget::{ErrorBudget, BudgetStatus};
/// // The seed's worked example: 0.95 objective, 1000 tasks, 60 failed.
/// let b = ErrorBudget::compute(&Slo::default(), 1000, 60);
/// assert_eq!(b.remaining_percent, -20.0);
/// assert_eq!(b.status, BudgetStatus::Exhausted);
/// assert_eq!(b.recommendation(&Slo::default()), "Throttle agent — error budget depleted");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorBudget {
    pub tasks: u64,
    pub failed: u64,
    /// Fraction of the budget used (1.0 = all of it); 0 with no task.
    pub consumed: f64,
    /// 100 × (1 − consumed); may go negative.
    pub remaining_percent: f64,
    pub status: BudgetStatus,
}

impl ErrorBudget {
    /// consumed = failed / (budget × tasks); an agent with no task is HEALTHY at 100 %.
    pub fn compute(slo: &Slo, tasks: u64, failed: u64) -> Self {
        let consumed = if tasks == 0 {
            0.0
        } else {
            // failed·10⁹ / (budget_ppb · tasks): integer parts keep it exact.
            failed as f64 * 1e9 / (slo.budget_ppb() as f64 * tasks as f64)
        };
        let remaining_percent = if tasks == 0 {
            100.0
        } else {
            100.0 - failed as f64 * 1e11 / (slo.budget_ppb() as f64 * tasks as f64)
        };
        ErrorBudget {
            tasks,
            failed,
            consumed,
            remaining_percent,
            status: BudgetStatus::from_remaining(remaining_percent),
        }
    }

    /// What to do about it. The seed defines the EXHAUSTED texts; the others
    /// tell an operator what is coming.
    pub fn recommendation(&self, slo: &Slo) -> &'static str {
        match (self.status, slo.on_budget_exhausted) {
            (BudgetStatus::Exhausted, BudgetAction::Throttle) => {
                "Throttle agent — error budget depleted"
            }
            (BudgetStatus::Exhausted, BudgetAction::Degrade) => {
                "Degrade agent to its fallback mode — error budget depleted"
            }
            (BudgetStatus::Exhausted, BudgetAction::CircuitBreak) => {
                "Circuit break agent — error budget depleted"
            }
            (BudgetStatus::Critical, _) => "Investigate now — error budget below 10%",
            (BudgetStatus::Warning, _) => "Review recent failures — error budget below 25%",
            (BudgetStatus::Healthy, _) => "No action — error budget healthy",
        }
    }
}

/// Burn rate = (failed / tasks) / budget: 1.0 spends the budget exactly over
/// the window, 14.4 spends a 30-day budget in ~2 days. `None` with no task.
///
/// ```
/// let slo = breakwater::config::Slo::default();
/// assert_eq!(breakwater::engine::budget::burn_rate(&slo, 100, 5), Some(1.0));
/// assert_eq!(breakwater::engine::budget::burn_rate(&slo, 0, 0), None);
/// ```
pub fn burn_rate(slo: &Slo, tasks: u64, failed: u64) -> Option<f64> {
    (tasks > 0).then(|| failed as f64 * 1e9 / (slo.budget_ppb() as f64 * tasks as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example_exact() {
        let slo = Slo::default();
        let b = ErrorBudget::compute(&slo, 1000, 60);
        assert_eq!(b.remaining_percent, -20.0);
        assert_eq!(b.consumed, 1.2);
        assert_eq!(b.status, BudgetStatus::Exhausted);
    }

    #[test]
    fn bands() {
        let slo = Slo::default();
        // 1000 tasks → budget of 50 failures.
        assert_eq!(ErrorBudget::compute(&slo, 1000, 0).remaining_percent, 100.0);
        assert_eq!(
            ErrorBudget::compute(&slo, 1000, 37).status,
            BudgetStatus::Healthy
        ); // 26 %
        assert_eq!(
            ErrorBudget::compute(&slo, 1000, 38).status,
            BudgetStatus::Warning
        ); // 24 %
        assert_eq!(
            ErrorBudget::compute(&slo, 1000, 45).status,
            BudgetStatus::Warning
        ); // 10 %
        assert_eq!(
            ErrorBudget::compute(&slo, 1000, 46).status,
            BudgetStatus::Critical
        ); // 8 %
        assert_eq!(
            ErrorBudget::compute(&slo, 1000, 50).status,
            BudgetStatus::Exhausted
        ); // 0 %
        let empty = ErrorBudget::compute(&slo, 0, 0);
        assert_eq!(
            (empty.remaining_percent, empty.status),
            (100.0, BudgetStatus::Healthy)
        );
    }

    #[test]
    fn recommendations_follow_the_action() {
        let mut slo = Slo::default();
        let b = ErrorBudget::compute(&slo, 1000, 60);
        slo.on_budget_exhausted = BudgetAction::Degrade;
        assert_eq!(
            b.recommendation(&slo),
            "Degrade agent to its fallback mode — error budget depleted"
        );
        slo.on_budget_exhausted = BudgetAction::CircuitBreak;
        assert_eq!(
            b.recommendation(&slo),
            "Circuit break agent — error budget depleted"
        );
    }

    #[test]
    fn burn_rates() {
        let slo = Slo::default();
        assert_eq!(burn_rate(&slo, 1000, 60), Some(1.2));
        assert_eq!(burn_rate(&slo, 100, 72), Some(14.4));
    }
}
