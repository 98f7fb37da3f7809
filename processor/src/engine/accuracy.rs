//! Accuracy declarations (SPEC §8): a versioned statement of the accuracy an
//! agent guarantees, checked continuously against what is measured.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::TimestampMs;

const DAY_MS: i64 = 86_400_000;

/// An accuracy declaration as published (the record on the declarations topic).
///
/// ```
/// use breakwater::engine::accuracy::AccuracyDeclaration;
/// let d = AccuracyDeclaration {
///     agent_id: "research-agent".into(),
///     version: "1.2.0".into(),
///     declared_accuracy: [("factual_retrieval".to_string(), 0.94)].into(),
///     measurement_method: "automated_eval_suite_v3".into(),
///     valid_for_days: 90,
///     published_at: 0,
///     supersedes: Some("1.1.0".into()),
/// };
/// assert!(d.validate_against(None).is_ok());
/// assert_eq!(d.expires_at(), 90 * 86_400_000);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyDeclaration {
    pub agent_id: String,
    /// Semantic version, e.g. `1.2.0`.
    pub version: String,
    /// Category → guaranteed accuracy in [0, 1]. `task_completion` is checked
    /// against the task success rate, `policy_compliance` against
    /// 1 − policy violation rate, any other name against that eval
    /// category's pass rate.
    pub declared_accuracy: BTreeMap<String, f64>,
    pub measurement_method: String,
    pub valid_for_days: i32,
    /// Epoch milliseconds; read also from an RFC 3339 date-time (the rules
    /// of a task event's `timestamp`), always written as epoch milliseconds.
    #[serde(deserialize_with = "crate::decode::timestamp_ms")]
    pub published_at: TimestampMs,
    /// The version this one replaces.
    pub supersedes: Option<String>,
}

/// Why a declaration is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeclarationError {
    #[error("agent_id must not be empty")]
    EmptyAgent,
    #[error("version {0:?} is not a semantic version (expected e.g. 1.2.0)")]
    BadVersion(String),
    #[error("supersedes {0:?} is not a semantic version (expected e.g. 1.1.0)")]
    BadSupersedes(String),
    #[error("declared_accuracy must name at least one category")]
    NoCategories,
    #[error("declared_accuracy.{category} is {value}: allowed is a number in [0, 1]")]
    OutOfRange { category: String, value: f64 },
    #[error("valid_for_days must be at least 1 (a whole number of days)")]
    NoValidity,
    #[error("version {new} must be greater than the current version {current}")]
    NotNewer { new: String, current: String },
    #[error(
        "version {new} must supersede the current version {current}, but supersedes {supersedes}"
    )]
    WrongSupersedes {
        new: String,
        current: String,
        supersedes: String,
    },
    #[error("version {version} cannot supersede itself")]
    SupersedesItself { version: String },
}

impl AccuracyDeclaration {
    /// When the declaration stops being valid.
    pub fn expires_at(&self) -> TimestampMs {
        self.published_at
            .saturating_add((self.valid_for_days as i64).saturating_mul(DAY_MS))
    }

    /// Checks the declaration on its own and as the successor of `current`:
    /// its version must be greater and it must name `current` in `supersedes`.
    pub fn validate_against(
        &self,
        current: Option<&AccuracyDeclaration>,
    ) -> Result<(), DeclarationError> {
        if self.agent_id.is_empty() {
            return Err(DeclarationError::EmptyAgent);
        }
        let version = semver::Version::parse(&self.version)
            .map_err(|_| DeclarationError::BadVersion(self.version.clone()))?;
        let supersedes = match &self.supersedes {
            Some(s) => Some(
                semver::Version::parse(s)
                    .map_err(|_| DeclarationError::BadSupersedes(s.clone()))?,
            ),
            None => None,
        };
        if supersedes.as_ref() == Some(&version) {
            return Err(DeclarationError::SupersedesItself {
                version: self.version.clone(),
            });
        }
        if self.declared_accuracy.is_empty() {
            return Err(DeclarationError::NoCategories);
        }
        for (category, &value) in &self.declared_accuracy {
            if !(0.0..=1.0).contains(&value) {
                return Err(DeclarationError::OutOfRange {
                    category: category.clone(),
                    value,
                });
            }
        }
        if self.valid_for_days < 1 {
            return Err(DeclarationError::NoValidity);
        }
        if let Some(cur) = current {
            let cur_version = semver::Version::parse(&cur.version)
                .map_err(|_| DeclarationError::BadVersion(cur.version.clone()))?;
            if version <= cur_version {
                return Err(DeclarationError::NotNewer {
                    new: self.version.clone(),
                    current: cur.version.clone(),
                });
            }
            if supersedes.as_ref() != Some(&cur_version) {
                return Err(DeclarationError::WrongSupersedes {
                    new: self.version.clone(),
                    current: cur.version.clone(),
                    supersedes: self.supersedes.clone().unwrap_or_else(|| "nothing".into()),
                });
            }
        }
        Ok(())
    }
}

/// How a declared category is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Measure {
    /// The task success rate; samples are tasks.
    TaskCompletion,
    /// 1 − policy violation rate; samples are tool calls.
    PolicyCompliance,
    /// The pass rate of an eval category (interned id); samples are evaluations.
    Eval(u16),
}

impl Measure {
    /// The measure for a category name; `intern` gives eval categories their id.
    pub fn for_category(name: &str, intern: impl FnOnce(&str) -> u16) -> Self {
        match name {
            "task_completion" => Measure::TaskCompletion,
            "policy_compliance" => Measure::PolicyCompliance,
            other => Measure::Eval(intern(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(version: &str, supersedes: Option<&str>) -> AccuracyDeclaration {
        AccuracyDeclaration {
            agent_id: "research-agent".into(),
            version: version.into(),
            declared_accuracy: [("task_completion".to_string(), 0.97)].into(),
            measurement_method: "automated_eval_suite_v3".into(),
            valid_for_days: 90,
            published_at: 1_000,
            supersedes: supersedes.map(String::from),
        }
    }

    #[test]
    fn successor_must_be_newer_and_supersede_the_current() {
        let v1 = decl("1.1.0", None);
        assert!(v1.validate_against(None).is_ok());
        assert!(decl("1.2.0", Some("1.1.0"))
            .validate_against(Some(&v1))
            .is_ok());
        assert_eq!(
            decl("1.0.9", Some("1.1.0")).validate_against(Some(&v1)),
            Err(DeclarationError::NotNewer {
                new: "1.0.9".into(),
                current: "1.1.0".into()
            })
        );
        assert!(matches!(
            decl("1.2.0", Some("1.0.0")).validate_against(Some(&v1)),
            Err(DeclarationError::WrongSupersedes { .. })
        ));
        assert!(matches!(
            decl("1.2.0", None).validate_against(Some(&v1)),
            Err(DeclarationError::WrongSupersedes { .. })
        ));
        assert!(matches!(
            decl("1.1.0", Some("1.1.0")).validate_against(None),
            Err(DeclarationError::SupersedesItself { .. })
        ));
    }

    #[test]
    fn malformed_declarations_are_refused_with_the_reason() {
        assert!(matches!(
            decl("v1", None).validate_against(None),
            Err(DeclarationError::BadVersion(_))
        ));
        let mut d = decl("1.0.0", None);
        d.declared_accuracy.insert("factual_retrieval".into(), 1.2);
        let err = d.validate_against(None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "declared_accuracy.factual_retrieval is 1.2: allowed is a number in [0, 1]"
        );
        let mut d = decl("1.0.0", None);
        d.valid_for_days = 0;
        assert_eq!(d.validate_against(None), Err(DeclarationError::NoValidity));
        let mut d = decl("1.0.0", None);
        d.declared_accuracy.clear();
        assert_eq!(
            d.validate_against(None),
            Err(DeclarationError::NoCategories)
        );
    }
}
