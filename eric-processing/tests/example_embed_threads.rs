//! The example `embed_threads`, run as its `main` runs it: every job is processed on
//! the pool, every result reaches the watcher thread, and the program ends.

#[path = "../examples/embed_threads.rs"]
#[allow(dead_code)] // its `main` is the example's, not the test's
mod embed_threads;

#[test]
fn every_result_reaches_the_watcher_and_the_run_ends() {
    let outcome = embed_threads::run(50);
    assert_eq!(outcome.processed, 50);
    let mut watched = outcome.watched;
    watched.sort_unstable();
    let expected: Vec<(u64, u64)> = (0..50).map(|n| (n, n * n)).collect();
    assert_eq!(watched, expected);
}
