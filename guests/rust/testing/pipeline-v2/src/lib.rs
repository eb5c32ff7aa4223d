//! Version 2 of the pipeline of `pipeline-v1`, with `StepB` and `StepC`
//! reordered: returns `["A", "C", "B"]`. A version-1 instance still waiting
//! for `go` replays cleanly against it; one that already called `StepB`
//! diverges (task 1 was `StepB`, now `StepC`).

const LATER_STEPS: [&str; 2] = ["StepC", "StepB"];

include!("../../pipeline-v1/src/pipeline.rs");
