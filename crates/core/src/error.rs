//! Error kinds that decide lakebuild's exit code: 2 for usage and rule errors
//! (nothing was attempted), 1 for a build that ran and failed.

use std::fmt;

/// An error in what the user wrote: a rule file, an argument, a target name.
/// Carries the full, actionable message (file, line, what to change).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for returning a usage error.
pub fn usage<T>(msg: impl Into<String>) -> anyhow::Result<T> {
    Err(UsageError(msg.into()).into())
}

/// Whether a failure is worth retrying (network, rate limits, I/O timeouts) or not
/// (bad data, failed check, bad configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    Transient,
    Permanent,
}

/// An op failure that knows whether it is transient.
#[derive(Debug)]
pub struct OpError {
    pub transience: Transience,
    pub message: String,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OpError {}

/// Classifies any error from an op: explicit `OpError`s say so themselves, I/O
/// timeouts and resets are transient, everything else is permanent.
pub fn transience(err: &anyhow::Error) -> Transience {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<OpError>() {
            return e.transience;
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                e.kind(),
                TimedOut | ConnectionReset | ConnectionAborted | ConnectionRefused | Interrupted
            ) {
                return Transience::Transient;
            }
        }
    }
    Transience::Permanent
}

/// The process exit code for an error that reached `main`.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.chain().any(|c| c.is::<UsageError>()) {
        2
    } else {
        1
    }
}
