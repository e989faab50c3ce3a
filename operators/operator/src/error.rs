//! The operator's error: what a reconcile could not do against the apiserver, with a
//! typed category that decides the retry and labels the metric. (What a provider or
//! a Composition refuses is not an error: it is a condition with a `Reason`.)

/// Errors that are worth a retry: the apiserver, or a response we could not read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("serialization: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Stopped(&'static str),
    /// The create guard could not be written to the claim (retried; nothing was
    /// created past it).
    #[error("{0}")]
    Record(String),
}

/// How a failed reconcile is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// The apiserver asked to slow down (429).
    Throttled,
    /// Refused (a 4xx other than a conflict, or a body we cannot read): a human or
    /// another controller must change something; retried, not hot.
    Terminal,
    /// Anything else (a conflict, a timeout, the apiserver away).
    Retryable,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Throttled => "throttled",
            Category::Terminal => "terminal",
            Category::Retryable => "retryable",
        }
    }

    /// The base of the jittered requeue after a failure of this category.
    pub fn backoff(self) -> std::time::Duration {
        match self {
            Category::Throttled => std::time::Duration::from_secs(30),
            // Not hot, but soon enough that a human fix (RBAC, a policy) is picked up.
            Category::Terminal => std::time::Duration::from_secs(30),
            Category::Retryable => std::time::Duration::from_secs(5),
        }
    }
}

impl Error {
    pub fn category(&self) -> Category {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 429 => Category::Throttled,
            // A conflict, or an object gone meanwhile (the garbage collector, a
            // concurrent delete): the next try sees the new state.
            Error::Kube(kube::Error::Api(e))
                if (400..500).contains(&e.code) && e.code != 409 && e.code != 404 =>
            {
                Category::Terminal
            }
            Error::Json(_) => Category::Terminal,
            _ => Category::Retryable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> Error {
        Error::Kube(kube::Error::Api(
            kube::core::Status::failure("m", "r")
                .with_code(code)
                .boxed(),
        ))
    }

    #[test]
    fn the_category_decides_the_retry() {
        assert_eq!(api(429).category(), Category::Throttled);
        assert_eq!(api(403).category(), Category::Terminal);
        assert_eq!(api(409).category(), Category::Retryable);
        assert_eq!(api(404).category(), Category::Retryable);
        assert_eq!(api(503).category(), Category::Retryable);
        assert_eq!(Error::Stopped("x").category(), Category::Retryable);
        assert!(Category::Retryable.backoff() < Category::Terminal.backoff());
    }
}
