//! A version of `hello-cities` whose actions keep their kinds and names but
//! not their inputs: `HelloCities` still calls `SayHello` three times, with
//! the cities reordered (Seattle, Tokyo, London). Replaying a version-1
//! history against it matches every action by name, and differs at task 0
//! in its input (`"Tokyo"` recorded, `"Seattle"` now). A fresh instance
//! returns `["Hello Seattle!", "Hello Tokyo!", "Hello London!"]`.

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};

cairn_sdk::register! {
    orchestrators: { "HelloCities" => hello_cities },
    activities: { "SayHello" => say_hello },
}

fn hello_cities(
    ctx: &OrchestrationContext,
    _input: serde_json::Value,
) -> Result<Vec<String>, Failure> {
    let mut greetings = Vec::new();
    for city in ["Seattle", "Tokyo", "London"] {
        greetings.push(ctx.call_activity("SayHello", city)?);
    }
    Ok(greetings)
}

fn say_hello(_ctx: &ActivityContext, name: String) -> Result<String, Failure> {
    Ok(format!("Hello {name}!"))
}
