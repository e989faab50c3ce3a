//! Crash points for the crash-consistency tests.

/// Test builds only (feature `test-crash-points`): `PAVED_TEST_CRASH_POINT=<name>`
/// kills the process at that point, as SIGKILL would, to prove crash consistency;
/// with `PAVED_TEST_CRASH_CLAIM=<namespace>/<name>` only while reconciling that claim, so one
/// armed run stops at one claim's step while it handles the others normally.
/// Release builds compile this to nothing.
pub fn crash_point(name: &str, claim: &str) {
    #[cfg(feature = "test-crash-points")]
    if std::env::var("PAVED_TEST_CRASH_POINT").as_deref() == Ok(name)
        && std::env::var("PAVED_TEST_CRASH_CLAIM").map_or(true, |c| c == claim)
    {
        eprintln!(
            "{{\"level\":\"WARN\",\"message\":\"test crash point {name} at {claim}: aborting\"}}"
        );
        std::process::abort();
    }
    let _ = (name, claim);
}
