//! The engine's one error type. Each variant says whose fault it is and what to do; the
//! server maps every variant to an HTTP answer in one place, the CLI prints it.

use thiserror::Error;

use affinity_model::ModelError;
use affinity_store::StoreError;

/// One problem with a request, naming the field: requests are validated whole and every
/// problem is reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<(String, String)> for Problem {
    fn from((field, message): (String, String)) -> Self {
        Self { field, message }
    }
}

impl From<affinity_core::catalog::Problem> for Problem {
    fn from(p: affinity_core::catalog::Problem) -> Self {
        Self {
            field: p.field,
            message: p.message,
        }
    }
}

/// What kind of definition a list of problems is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Catalog,
    CatalogFile,
    Trait,
    Audience,
    Destination,
    Goal,
}

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(
        "no catalog is configured yet: PUT /api/v1/catalog (or `affinity catalog FILE.json`) first"
    )]
    NotConfigured,
    #[error("the catalog is being built; retry in a few seconds")]
    CatalogBuilding,
    #[error("the last catalog build failed: {0}")]
    CatalogFailed(String),
    #[error("no model has been trained yet: configure the catalog, then POST /api/v1/models/train")]
    NoModel,
    /// Training found nothing to learn from; the message names each event and its mapping.
    #[error("{0}")]
    NoInteractions(String),
    /// A model is on its way (the saved one loading, or the first training): retrying helps.
    #[error("{0}")]
    ModelNotReady(&'static str),
    /// A saved model that cannot be read or does not fit the store's data.
    #[error(transparent)]
    Snapshot(#[from] affinity_model::snapshot::SnapshotError),
    #[error("{0}")]
    NotFound(String),
    /// A request parameter the engine checks against its data (a filter naming a value the
    /// catalog lacks, a column that does not exist).
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{} problem(s): {}", problems.len(), problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid {
        kind: Invalid,
        problems: Vec<Problem>,
    },
    #[error(
        "a trait named {0:?} already exists: change it with PUT /api/v1/traits/{0} (fields you leave out are kept), or DELETE it first"
    )]
    TraitExists(String),
    #[error("the audience is still queued or computing; refresh it once it is live")]
    AudienceComputing,
    /// A snapshot's messages were queued again and again for destinations that kept being
    /// replaced: the snapshot fails rather than go live with messages for the wrong ones.
    #[error(
        "the audience's destinations were replaced {attempts} times while snapshot {snapshot}'s messages were queued; refresh it once they settle"
    )]
    DestinationsChanging { snapshot: i64, attempts: usize },
    /// A bounded queue of background work is full: retrying after `retry_after` helps.
    #[error(
        "too much work: {capacity} {what} are already queued or running ({workers} at once); retry in {} s",
        retry_after.as_secs().max(1)
    )]
    Busy {
        what: &'static str,
        capacity: usize,
        workers: usize,
        retry_after: std::time::Duration,
    },
    /// Work on the blocking pool panicked or was cancelled: a bug, not the caller's fault.
    #[error("background work failed: {0}")]
    Task(String),
    /// Something that cannot fail did (encoding a value, writing into memory): a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    pub fn invalid(kind: Invalid, problems: impl IntoIterator<Item = impl Into<Problem>>) -> Self {
        Self::Invalid {
            kind,
            problems: problems.into_iter().map(Into::into).collect(),
        }
    }

    /// Several independent checks of one definition as one result: every problem of the
    /// `Invalid` ones together (with the first one's kind), so a client fixes them all in one
    /// round; any other error (no model yet, a failed read) first, as it is.
    pub fn together(checks: impl IntoIterator<Item = Result<()>>) -> Result<()> {
        let mut invalid: Option<(Invalid, Vec<Problem>)> = None;
        for check in checks {
            match check {
                Ok(()) => {}
                Err(Self::Invalid { kind, problems }) => match &mut invalid {
                    Some((_, all)) => all.extend(problems),
                    None => invalid = Some((kind, problems)),
                },
                Err(other) => return Err(other),
            }
        }
        match invalid {
            Some((kind, problems)) => Err(Self::Invalid { kind, problems }),
            None => Ok(()),
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(field: &str) -> Result<()> {
        Err(EngineError::invalid(
            Invalid::Audience,
            [Problem::new(field, "wrong")],
        ))
    }

    #[test]
    fn checks_together_report_every_problem_and_let_other_errors_through_first() {
        assert!(EngineError::together([Ok(()), Ok(())]).is_ok());
        match EngineError::together([problem("target"), Ok(()), problem("event")]) {
            Err(EngineError::Invalid { kind, problems }) => {
                assert_eq!(kind, Invalid::Audience);
                let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
                assert_eq!(fields, ["target", "event"]);
            }
            other => panic!("{other:?}"),
        }
        let other = EngineError::together([
            problem("target"),
            Err(EngineError::Internal("a read failed".to_string())),
        ]);
        assert!(matches!(other, Err(EngineError::Internal(_))), "{other:?}");
    }
}
