//! Pure status decisions: from what was observed to the conditions to write.

use paved_api::{conditions, reasons, ChildStatus, Condition, Status};

/// What the reconciler observed about one child claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedChild {
    pub kind: String,
    pub name: String,
    /// The child's conditions and generation, or None when it does not exist (yet).
    pub observed: Option<(Vec<Condition>, Option<i64>)>,
}

/// The ServiceClaim's children and its Ready condition: Ready only when every child
/// is Ready at its current generation; otherwise the message names the first that
/// is not, and why.
pub fn service_ready(
    children: &[ObservedChild],
    generation: Option<i64>,
    now: &str,
) -> (Vec<ChildStatus>, Condition) {
    let statuses: Vec<ChildStatus> = children
        .iter()
        .map(|c| {
            let (ready, reason) = match &c.observed {
                None => (false, "NotFound".to_string()),
                Some((conds, gen)) => {
                    let ready = conditions::is_ready(conds, *gen);
                    let reason = conditions::find(conds, conditions::READY)
                        .map(|r| r.reason.to_string())
                        .unwrap_or_else(|| "NotReconciled".into());
                    (ready, reason)
                }
            };
            ChildStatus {
                kind: c.kind.clone(),
                name: c.name.clone(),
                ready,
                reason,
            }
        })
        .collect();
    let cond = match statuses.iter().find(|s| !s.ready) {
        None => Condition::new(
            conditions::READY,
            Status::True,
            reasons::AVAILABLE,
            "namespace and every child resource are ready",
            generation,
            now,
        ),
        Some(first) => {
            let waiting = statuses.iter().filter(|s| !s.ready).count();
            let message = match first.reason.as_str() {
                "NotFound" => format!("{} {} does not exist yet", first.kind, first.name),
                "NotReconciled" => format!(
                    "{} {} has not been reconciled yet (is its controller running?)",
                    first.kind, first.name
                ),
                r => format!("{} {} is not ready: {r}", first.kind, first.name),
            };
            let message = if waiting > 1 {
                format!("{message} (and {} more)", waiting - 1)
            } else {
                message
            };
            Condition::new(
                conditions::READY,
                Status::False,
                reasons::CHILD_NOT_READY,
                message,
                generation,
                now,
            )
        }
    };
    (statuses, cond)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(gen: i64) -> Option<(Vec<Condition>, Option<i64>)> {
        Some((
            vec![Condition::new(
                "Ready",
                Status::True,
                "Available",
                "",
                Some(gen),
                "t",
            )],
            Some(gen),
        ))
    }

    #[test]
    fn ready_without_children() {
        let (s, c) = service_ready(&[], Some(3), "now");
        assert!(s.is_empty());
        assert!(c.is_true());
        assert_eq!(c.observed_generation, Some(3));
    }

    #[test]
    fn names_the_first_child_that_is_not_ready() {
        let children = vec![
            ObservedChild {
                kind: "PostgreSQLInstance".into(),
                name: "a".into(),
                observed: ready(1),
            },
            ObservedChild {
                kind: "PostgreSQLInstance".into(),
                name: "b".into(),
                observed: None,
            },
            ObservedChild {
                kind: "TemporalNamespace".into(),
                name: "c".into(),
                observed: Some((vec![], Some(1))),
            },
        ];
        let (s, c) = service_ready(&children, Some(1), "now");
        assert!(!c.is_true());
        assert_eq!(c.reason, "ChildNotReady");
        assert!(
            c.message
                .contains("PostgreSQLInstance b does not exist yet"),
            "{}",
            c.message
        );
        assert!(c.message.contains("and 1 more"), "{}", c.message);
        assert_eq!(s.iter().filter(|x| x.ready).count(), 1);
        assert_eq!(s[2].reason, "NotReconciled");
    }

    #[test]
    fn a_child_ready_at_an_old_generation_is_not_ready() {
        let stale = Some((
            vec![Condition::new(
                "Ready",
                Status::True,
                "Available",
                "",
                Some(1),
                "t",
            )],
            Some(2),
        ));
        let children = vec![ObservedChild {
            kind: "TemporalNamespace".into(),
            name: "t".into(),
            observed: stale,
        }];
        let (_, c) = service_ready(&children, Some(1), "now");
        assert!(!c.is_true());
    }
}
