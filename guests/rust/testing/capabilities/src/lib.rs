//! Activities that need capabilities granted at deploy (activity-only
//! component, so it may import filesystem WASI):
//! - `ReadEnv` `"NAME"`: the value of environment variable NAME, or fails
//!   with `NotGranted`.
//! - `ReadFile` `"/path"`: the file's text, or fails with `NotGranted`.
//! - `WriteFile` `{"path", "text"}`: writes the file, or fails with `NotGranted`.

use cairn_sdk::{ActivityContext, Failure};
use serde::Deserialize;

cairn_sdk::register! {
    activities: {
        "ReadEnv" => read_env,
        "ReadFile" => read_file,
        "WriteFile" => write_file,
    },
}

fn read_env(_ctx: &ActivityContext, name: String) -> Result<String, Failure> {
    std::env::var(&name).map_err(|e| Failure::new("NotGranted", format!("env {name}: {e}")))
}

fn read_file(_ctx: &ActivityContext, path: String) -> Result<String, Failure> {
    std::fs::read_to_string(&path).map_err(|e| Failure::new("NotGranted", format!("{path}: {e}")))
}

#[derive(Deserialize)]
struct WriteInput {
    path: String,
    text: String,
}

fn write_file(_ctx: &ActivityContext, input: WriteInput) -> Result<bool, Failure> {
    std::fs::write(&input.path, input.text)
        .map(|()| true)
        .map_err(|e| Failure::new("NotGranted", format!("{}: {e}", input.path)))
}
