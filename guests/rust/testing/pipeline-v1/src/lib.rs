//! Version 1 of a three-step pipeline: `StepA`, event `go`, `StepB`, event
//! `go2`, `StepC`; returns `["A", "B", "C"]`. See `pipeline.rs`.

const LATER_STEPS: [&str; 2] = ["StepB", "StepC"];

include!("pipeline.rs");
