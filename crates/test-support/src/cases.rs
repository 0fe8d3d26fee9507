//! A table of named cases, run in order: each prints one line, `case
//! <name>: ok`, and a case that fails panics again with its name in the
//! message (`case <name> failed: <what it panicked with>`), after the
//! panic hook has printed where it failed.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs the case `name` to its end and prints `case <name>: ok`; if it
/// panics, panics with a message that names it.
pub async fn run<T>(name: &str, case: impl Future<Output = T>) -> T {
    match CatchUnwind(Box::pin(case)).await {
        Ok(value) => {
            println!("case {name}: ok");
            value
        }
        Err(panic) => panic!("case {name} failed: {}", message(panic.as_ref())),
    }
}

/// What a panic said, when it said it with a string.
fn message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(a panic without a message)")
}

/// A future whose panic becomes its output.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(context))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Polls a future that never waits.
    fn ready<T>(future: impl Future<Output = T>) -> T {
        let mut future = Box::pin(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("the future waited"),
        }
    }

    #[test]
    fn a_case_that_ends_gives_its_value() {
        assert_eq!(ready(run("adds", async { 1 + 1 })), 2);
    }

    #[test]
    fn a_case_that_panics_is_named_in_the_panic() {
        let formatted =
            catch_unwind(|| ready(run("gate1/api-key", async { panic!("401 != 403") })));
        let literal =
            catch_unwind(|| ready(run("literal", async { std::panic::panic_any("a literal") })));
        for (outcome, said) in [
            (formatted, "case gate1/api-key failed: 401 != 403"),
            (literal, "case literal failed: a literal"),
        ] {
            let panic = outcome.expect_err("the case panicked");
            assert_eq!(message(panic.as_ref()), said);
        }
    }
}
