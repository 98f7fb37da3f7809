//! `breakwater chaos`: break agents on purpose and check that Breakwater
//! notices (SPEC §10).
//!
//! - [`scenario`]: the scenario file (`scenarios/*.yaml`), validated and
//!   resolved into a [`crate::generate::Scenario`] plus the ground truth of
//!   the injected faults (a [`Manifest`]);
//! - [`readback`]: the output topics read back to their end;
//! - [`report`]: per fault, did the breaker trip, how fast, did it recover,
//!   were violations caught, and false positives (a table or JSON);
//! - [`budgets`]: the latest snapshots' budgets against a recomputation
//!   from the generated stream.

pub mod budgets;
pub mod readback;
pub mod report;
pub mod scenario;
mod table;

pub use report::{Outputs, Report};
pub use scenario::{ChaosScenario, FaultSpec, Manifest, ManifestFault, ScenarioError};
