//! A short run of every fuzz target (a few thousand inputs each), in the test command: the
//! targets keep compiling against the code they exercise, and regressions on the seeds and
//! their near neighbours show up in `cargo test`. The long runs are `scripts/fuzz.sh`.

use affinity_fuzz::targets::Target;
use affinity_fuzz::{Options, run};

#[test]
fn every_target_survives_a_short_run() {
    let options = Options {
        inputs: 3_000,
        seed: 7,
        ..Options::default()
    };
    for target in Target::ALL {
        let r = run(target, &options);
        assert_eq!(r.panics, 0, "{}: {:?}", target.name(), r.findings);
        assert!(
            r.outcomes > 3,
            "{}: only {} distinct outcomes: the mutations do not reach the parser",
            target.name(),
            r.outcomes
        );
    }
}
